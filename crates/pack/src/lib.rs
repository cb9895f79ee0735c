//! `ferry pack`: images from live registries into one OCI image layout
//! tarball.
//!
//! Every manifest is carried as the exact bytes the registry served, so
//! digests never change; every blob is written straight to its planned
//! offset in the archive and checked against its digest from the same
//! reads that make the archive's sha256, so memory does not grow with blob
//! size; the archive is deterministic (same images, any order,
//! same bytes) and appears under its name only once it is complete.

#![deny(missing_docs)]

mod archive_hash;
mod cache;
mod error;
mod flush;
mod graph;
mod merge;
mod pieces;
mod resume;
mod signatures;
mod since;
mod write;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use ferry_oci::layout::{BlobClass, LayoutPlan};
use ferry_oci::manifest::{ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME};
use ferry_oci::{media_type, Descriptor, Digest, Platform, Progress, Reference};
use ferry_registry::{Client, Repository};
use ferry_sign::{Keyring, PrivateKey, SignatureReport};

pub use error::{Error, Result};
pub use merge::{merge, Media, MergeSummary};
pub use resume::{partial_path, record_path, Transfer};
pub use since::DeltaSummary;

use cache::RepoCache;
use graph::{Resolved, WalkOptions};
pub use write::WrittenPart;
use write::{BlobJob, Keep, PendingBundle};

/// What to pack and how.
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// The images to carry (duplicates are carried once).
    pub references: Vec<Reference>,
    /// Only these platforms of multi-platform indexes (empty: all).
    pub platforms: Vec<Platform>,
    /// Whether to carry signatures, SBOMs and other referrers.
    pub referrers: bool,
    /// How many blobs to fetch at once.
    pub jobs: usize,
    /// Where the bundle goes.
    pub output: PathBuf,
    /// Bases (bundles, deltas, receipts): when any, write a delta that
    /// leaves out the layers they hold.
    pub since: Vec<PathBuf>,
    /// Refuse, before writing anything, an image without a cosign
    /// signature that holds for one of these keys.
    pub require_signature: Option<Keyring>,
    /// Sign the bundle with this key: `OUT.sig` beside `OUT.sha256`.
    pub sign: Option<Arc<PrivateKey>>,
    /// Cut the bundle into parts of this many bytes (`OUT.000`, `OUT.001`,
    /// …; the last may be shorter) instead of one file.
    pub split: Option<u64>,
    /// With `split`: this many Reed–Solomon parity parts (`OUT.p00`, …);
    /// any that many lost or damaged parts can be rebuilt.
    pub parity: usize,
    /// Discard what an earlier run to the same output left
    /// (`OUT.partial`, `OUT.resume.json`) instead of resuming it.
    pub fresh: bool,
}

/// One packed reference, for the summary.
#[derive(Debug, Clone, Serialize)]
pub struct PackedImage {
    /// The fully qualified reference recorded in the bundle.
    pub reference: String,
    /// Its manifest digest (distribution digest).
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Platforms carried (multi-platform images).
    pub platforms_carried: Vec<String>,
    /// Platforms of the index left out by `--platform`.
    pub platforms_left_out: Vec<String>,
    /// Config digests (image IDs) of the images carried.
    pub config_digests: Vec<Digest>,
    /// Referrers (signatures, SBOMs, attestations) carried with it.
    pub referrers: usize,
}

/// What a pack did.
#[derive(Debug, Clone, Serialize)]
pub struct PackSummary {
    /// The bundle written.
    pub output: PathBuf,
    /// sha256 hex of the bundle (also in `OUT.sha256`).
    pub sha256: String,
    /// Size of the bundle in bytes.
    pub archive_bytes: u64,
    /// The parts written with `--split` (empty otherwise), parity parts
    /// last.
    pub parts: Vec<WrittenPart>,
    /// Files an earlier pack to the same name left (stale parts), removed.
    pub removed: Vec<PathBuf>,
    /// Blobs fetched, and blobs found whole in the partial bundle of an
    /// earlier run that stopped (resumed).
    pub transfer: Transfer,
    /// The references carried.
    pub images: Vec<PackedImage>,
    /// Manifests and indexes carried.
    pub manifests: usize,
    /// Configs and layers carried (each once).
    pub blobs: usize,
    /// Bytes of configs and layers carried.
    pub blob_bytes: u64,
    /// Bytes not stored twice because images share blobs.
    pub bytes_saved_by_sharing: u64,
    /// What a delta (`--since`) leaves to its bases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaSummary>,
    /// Who signed each image (`--require-signature`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signatures: Option<SignatureReport>,
    /// The bundle's detached signature file (`--sign`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_file: Option<PathBuf>,
    /// Wall time.
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Pack `options.references` into `options.output`.
pub async fn pack(
    client: &Client,
    options: &PackOptions,
    progress: Arc<dyn Progress>,
) -> Result<PackSummary> {
    let started = Instant::now();
    let mut references: Vec<Reference> = options.references.clone();
    references.sort_by_key(|r| r.to_string());
    references.dedup_by_key(|r| r.to_string());
    if references.is_empty() {
        return Err(Error::NothingToPack);
    }
    let bases = since::open_bases(&options.since)?;
    let walk = WalkOptions {
        platforms: options.platforms.clone(),
        referrers: options.referrers,
    };
    progress.note(&format!("resolving {} reference(s)", references.len()));
    let cache = RepoCache::default();
    let mut resolved: Vec<Resolved> = stream::iter(references.iter())
        .map(|r| graph::resolve(client, &cache, r, &walk))
        .buffer_unordered(options.jobs.clamp(1, 16))
        .try_collect()
        .await?;
    resolved.sort_by_key(|r| r.reference.to_string());
    let signatures = match &options.require_signature {
        Some(keys) => {
            progress.note("checking image signatures");
            Some(signatures::require(client, &resolved, keys).await?)
        }
        None => None,
    };

    let content = Content::merge(&resolved);
    let mut index_json = content.index_json();
    let delta = (!bases.is_empty()).then(|| {
        since::PlannedDelta::new(
            &bases,
            content.blobs.iter().map(|(d, b)| (d, b.size, b.class)),
        )
    });
    let mut extra = Vec::new();
    if let Some(delta) = &delta {
        index_json = delta.index_json(&index_json);
        extra.push((
            delta.digest.clone(),
            delta.bytes.len() as u64,
            BlobClass::Manifest,
        ));
    }
    let left_out = delta.as_ref().map(|d| &d.left_out);
    let carried = |d: &Digest| !left_out.is_some_and(|l| l.contains_key(d));
    let plan = LayoutPlan::new(
        index_json,
        content
            .manifests
            .iter()
            .map(|(d, bytes)| (d.clone(), bytes.len() as u64, BlobClass::Manifest))
            .chain(extra)
            .chain(
                content
                    .blobs
                    .iter()
                    .filter(|(d, _)| carried(d))
                    .map(|(d, b)| (d.clone(), b.size, b.class)),
            ),
    )
    .map_err(|source| Error::Plan { source })?;
    let mut key = resume::ResumeKey::new(
        &references,
        &options.platforms,
        options.referrers,
        &bases
            .iter()
            .map(|b| b.base.sha256.clone())
            .collect::<Vec<_>>(),
        options.split,
        options.parity,
    );
    key.fresh = options.fresh;
    key.images = resolved
        .iter()
        .map(|r| (r.reference.to_string(), r.root.digest.to_string()))
        .collect();
    let mut bundle = PendingBundle::create(
        &options.output,
        &plan,
        options.split,
        options.parity,
        Keep::Resumable(&key),
        progress.as_ref(),
    )?;
    let mut jobs = Vec::new();
    for planned in plan.blobs() {
        if let Some(bytes) = content.manifests.get(&planned.digest) {
            bundle
                .write_at(bytes, planned.data_offset)
                .map_err(|e| bundle.kept(e))?;
        } else if let Some(d) = delta.as_ref().filter(|d| d.digest == planned.digest) {
            bundle
                .write_at(&d.bytes, planned.data_offset)
                .map_err(|e| bundle.kept(e))?;
        } else if let Some(blob) = content.blobs.get(&planned.digest) {
            jobs.push(BlobJob {
                digest: planned.digest.clone(),
                size: blob.size,
                offset: planned.data_offset,
                sources: blob.sources.clone(),
            });
        }
    }
    let transfer = match bundle
        .fetch_all(client, jobs, options.jobs, progress.clone())
        .await
    {
        Ok(t) => t,
        Err(e) => return Err(bundle.kept(e)),
    };
    let committed = bundle.commit(progress).await?;
    let signature_file = match &options.sign {
        Some(key) => Some(write::sign_bundle(&options.output, &committed.sha256, key)?),
        None => None,
    };

    let images = resolved.iter().map(packed_image).collect();
    let blob_bytes = content.blobs.values().map(|b| b.size).sum::<u64>();
    let (blobs_carried, bytes_carried) = match &delta {
        Some(d) => (
            content.blobs.len() - d.left_out.len(),
            blob_bytes - d.summary.bytes_left_out,
        ),
        None => (content.blobs.len(), blob_bytes),
    };
    let per_image_bytes: u64 = resolved
        .iter()
        .map(|r| r.blobs.values().map(|(size, _)| size).sum::<u64>())
        .sum();
    Ok(PackSummary {
        output: options.output.clone(),
        sha256: committed.sha256,
        archive_bytes: committed.len,
        parts: committed.parts,
        removed: committed.removed,
        transfer,
        images,
        manifests: content.manifests.len(),
        blobs: blobs_carried,
        blob_bytes: bytes_carried,
        bytes_saved_by_sharing: per_image_bytes.saturating_sub(blob_bytes),
        delta: delta.map(|d| d.summary),
        signatures,
        signature_file,
        elapsed: started.elapsed(),
    })
}

fn packed_image(r: &Resolved) -> PackedImage {
    let names = |ps: &[Platform]| {
        let mut v: Vec<String> = ps.iter().map(Platform::to_string).collect();
        v.sort();
        v.dedup();
        v
    };
    PackedImage {
        reference: r.reference.to_string(),
        digest: r.root.digest.clone(),
        media_type: r.root.media_type.clone(),
        platforms_carried: names(&r.platforms_carried),
        platforms_left_out: names(&r.platforms_left_out),
        config_digests: r.images.iter().map(|(_, c)| c.clone()).collect(),
        referrers: r.referrers.len() + r.tagged.len(),
    }
}

/// A config or layer and where it can be fetched from.
struct BlobSource {
    size: u64,
    class: BlobClass,
    sources: Vec<(Repository, String)>,
}

/// Everything the bundle will hold, merged over all references.
struct Content {
    /// Named roots: reference string -> descriptor.
    named: BTreeMap<String, Descriptor>,
    /// Unnamed referrers, by digest.
    referrers: BTreeMap<Digest, Descriptor>,
    manifests: BTreeMap<Digest, Vec<u8>>,
    blobs: BTreeMap<Digest, BlobSource>,
}

impl Content {
    fn merge(resolved: &[Resolved]) -> Content {
        let mut content = Content {
            named: BTreeMap::new(),
            referrers: BTreeMap::new(),
            manifests: BTreeMap::new(),
            blobs: BTreeMap::new(),
        };
        for r in resolved {
            let label = r.reference.to_string();
            content.named.insert(label.clone(), r.root.clone());
            for (name, d) in &r.tagged {
                content.named.insert(name.clone(), d.clone());
            }
            for (digest, d) in &r.referrers {
                content.referrers.insert(digest.clone(), d.clone());
            }
            for (digest, m) in &r.manifests {
                content
                    .manifests
                    .entry(digest.clone())
                    .or_insert_with(|| m.bytes().to_vec());
            }
            for (digest, (size, class)) in &r.blobs {
                let entry = content.blobs.entry(digest.clone()).or_insert(BlobSource {
                    size: *size,
                    class: *class,
                    sources: Vec::new(),
                });
                entry.class = entry.class.min(*class);
                let source = (r.repository(), label.clone());
                if !entry.sources.contains(&source) {
                    entry.sources.push(source);
                }
            }
        }
        // A digest that is a manifest is stored as one.
        let manifests = &content.manifests;
        content.blobs.retain(|d, _| !manifests.contains_key(d));
        let named_digests: Vec<Digest> = content.named.values().map(|d| d.digest.clone()).collect();
        content.referrers.retain(|d, _| !named_digests.contains(d));
        content
    }

    /// `index.json`: named references sorted by name, then unnamed
    /// referrers sorted by digest.
    fn index_json(&self) -> Vec<u8> {
        let mut manifests: Vec<Descriptor> = Vec::new();
        for (name, d) in &self.named {
            let mut d = Descriptor::new(d.media_type.clone(), d.digest.clone(), d.size);
            d.annotations = Some(BTreeMap::from([
                (ANNOTATION_CONTAINERD_NAME.to_string(), name.clone()),
                (ANNOTATION_REF_NAME.to_string(), name.clone()),
            ]));
            manifests.push(d);
        }
        for d in self.referrers.values() {
            manifests.push(d.clone());
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": manifests,
        });
        serde_json::to_vec(&index).expect("index.json serializes")
    }
}
