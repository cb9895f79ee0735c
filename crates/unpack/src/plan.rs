//! The offline half of unpack: name every image in the bundle, relocate the
//! names, check the whole graph, and decide what goes where. Nothing here
//! touches the network; `--dry-run` prints this and stops.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde::Serialize;

use ferry_oci::graph::{
    attach_referrers, attestation_subject, cosign_subject, real_platform, ReferrerGraph,
};
use ferry_oci::manifest::{ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME};
use ferry_oci::{
    check_collisions, Descriptor, Digest, LayoutArchive, Manifest, Naming, Reference,
    RelocationTarget, Step, Walk, MAX_DEPTH,
};

use crate::delta::{check_target, plan_delta, PlanDelta, WithBase};
use crate::holdings::{Held, Holdings};
use crate::sparse;
use crate::{Error, Result};

/// What to do with an index whose children were not all carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SparseMode {
    /// Push the index unchanged, so its digest holds; a registry that checks
    /// children (distribution does) refuses it.
    #[default]
    Keep,
    /// Push a new index listing only the carried children (a new digest).
    Rewrite,
}

impl FromStr for SparseMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<SparseMode, String> {
        match s {
            "keep" => Ok(SparseMode::Keep),
            "rewrite" => Ok(SparseMode::Rewrite),
            other => Err(format!(
                "unknown sparse mode {other:?}: expected keep or rewrite"
            )),
        }
    }
}

impl fmt::Display for SparseMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SparseMode::Keep => "keep",
            SparseMode::Rewrite => "rewrite",
        })
    }
}

/// One named reference of the bundle and where it goes.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedImage {
    /// The original reference as recorded in the bundle's `index.json`.
    pub original: String,
    /// The relocated reference, tag kept, digest pinned: the mapping's value.
    pub relocated: Reference,
    /// The relocated repository, `host[:port]/path`.
    pub repository: String,
    /// The digest the target will serve.
    pub digest: Digest,
    /// The media type of the top manifest.
    pub media_type: String,
    /// The digest in the bundle, when the index was rewritten (`--sparse
    /// rewrite`) and `digest` is new.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle_digest: Option<Digest>,
    /// Children of the index not carried in the bundle (their platforms, or
    /// digests when they have none).
    pub platforms_missing: Vec<String>,
    /// For a cosign-style tag (`sha256-<hex>.sig`, `.att`, `.sbom`), the
    /// manifest it is about: when that fails at unpack, this is not pushed
    /// either.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<Digest>,
    /// Manifests to push, children first, the top one last.
    #[serde(skip)]
    pub(crate) manifests: Vec<Digest>,
    /// Configs and layers to push.
    #[serde(skip)]
    pub(crate) blobs: Vec<Digest>,
    /// Push the image but leave its tag where it is (`--existing-tag
    /// skip` and the tag would move).
    #[serde(skip)]
    pub(crate) leave_tag: bool,
    /// Where the target's tag pointed when it was looked up before any
    /// push (`Some(None)`: no such tag), so tagging need not ask again.
    #[serde(skip)]
    pub(crate) tag_seen: Option<Option<Digest>>,
}

impl PlannedImage {
    /// `HOST[:PORT]/PATH:TAG` of its relocated tag, if it has one.
    pub fn tag_reference(&self) -> Option<String> {
        self.relocated
            .tag()
            .map(|tag| format!("{}:{tag}", self.repository))
    }

    /// The repository path in the target registry (no host).
    pub fn repository_path(&self) -> &str {
        self.relocated.repository()
    }
}

/// An unnamed referrer (signature, SBOM, attestation) and the repositories
/// it goes to: those of every named image that holds its subject.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedReferrer {
    /// The referrer's manifest digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its artifact type, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The digest it refers to.
    pub subject: Digest,
    /// Relocated repository paths (no host) it is pushed into.
    pub repositories: Vec<String>,
    /// Manifests to push, children first, the referrer last.
    #[serde(skip)]
    pub(crate) manifests: Vec<Digest>,
    /// Configs and layers to push.
    #[serde(skip)]
    pub(crate) blobs: Vec<Digest>,
}

/// Everything an unpack will do, decided offline.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Where images go.
    pub target: RelocationTarget,
    /// How repositories are named.
    pub naming: Naming,
    /// What happens to sparse indexes.
    pub sparse: SparseMode,
    /// Named references, sorted by original.
    pub images: Vec<PlannedImage>,
    /// Unnamed referrers, sorted by digest.
    pub referrers: Vec<PlannedReferrer>,
    /// Distinct manifests to push.
    pub manifest_count: usize,
    /// Distinct configs and layers to push.
    pub blob_count: usize,
    /// Their total size.
    pub blob_bytes: u64,
    /// For a delta: what it leaves to its base, which the target must hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<PlanDelta>,
    #[serde(skip)]
    pub(crate) manifests: BTreeMap<Digest, PlannedManifest>,
    #[serde(skip)]
    pub(crate) blob_sizes: BTreeMap<Digest, u64>,
    /// Repositories (paths) the target holds nothing in (not in its
    /// catalog) or no tag in (an empty tag list) before any push (see
    /// [`crate::target_tags`]); empty until the tags are looked up.
    #[serde(skip)]
    pub(crate) untagged_repositories: BTreeSet<String>,
}

impl Plan {
    /// The relocation mapping: each original reference as recorded -> the
    /// relocated `HOST[:PORT]/PATH[:TAG]@DIGEST`.
    pub fn mapping(&self) -> BTreeMap<String, String> {
        self.images
            .iter()
            .map(|i| (i.original.clone(), i.relocated.to_string()))
            .collect()
    }

    /// A manifest of the plan, by digest.
    pub(crate) fn manifest(&self, digest: &Digest) -> &PlannedManifest {
        &self.manifests[digest]
    }
}

/// A manifest as the plan keeps it until it is pushed: its exact bytes and
/// media type. The parsed view is dropped once the graph is walked: for a
/// platform release of thousands of images it was most of the plan's
/// memory (issue 15), and pushing needs only the bytes.
#[derive(Debug, Clone)]
pub(crate) struct PlannedManifest {
    /// The media type it is pushed with.
    pub media_type: String,
    /// The exact bytes; cloning them for a request copies nothing.
    pub bytes: Bytes,
}

impl PlannedManifest {
    fn of(manifest: Manifest) -> PlannedManifest {
        PlannedManifest {
            media_type: manifest.media_type().to_string(),
            bytes: Bytes::from(manifest.into_bytes()),
        }
    }
}

/// Plan the relocation of everything in `archive` to `target`, offline:
/// name every `index.json` descriptor, relocate and check for collisions,
/// and check that every manifest is present and parses and every blob is
/// present with its size (children left out of a sparse index excepted).
pub fn plan(
    archive: &LayoutArchive,
    target: &RelocationTarget,
    naming: Naming,
    sparse: SparseMode,
) -> Result<Plan> {
    plan_holdings(archive, target, naming, sparse)
}

/// [`plan`] over any [`Holdings`].
pub(crate) fn plan_holdings(
    archive: &dyn Holdings,
    target: &RelocationTarget,
    naming: Naming,
    sparse: SparseMode,
) -> Result<Plan> {
    let record = archive.delta().map_err(|source| Error::Delta { source })?;
    let with_base;
    let archive: &dyn Holdings = match &record {
        Some(record) => {
            check_target(record, target)?;
            with_base = WithBase {
                inner: archive,
                left_out: record.left_out_sizes(),
            };
            &with_base
        }
        None => archive,
    };
    let mut walker = Walker {
        archive,
        manifests: BTreeMap::new(),
        blob_sizes: BTreeMap::new(),
    };
    let mut images = Vec::new();
    let mut unnamed = Vec::new();
    for descriptor in archive.index() {
        match original_name(descriptor)? {
            Some((recorded, original)) => {
                images.push(walker.image(descriptor, recorded, original, target, naming, sparse)?)
            }
            None => unnamed.push(descriptor),
        }
    }
    images.sort_by(|a, b| a.image.original.cmp(&b.image.original));
    check_collisions(
        images
            .iter()
            .map(|i| (&i.reference_original, &i.image.relocated)),
    )
    .map_err(|source| Error::Relocation { source })?;
    let images: Vec<PlannedImage> = images.into_iter().map(|i| i.image).collect();

    let mut referrers = Vec::new();
    let mut not_referrers = Vec::new();
    for descriptor in unnamed {
        let label = format!("unnamed {}", descriptor.digest);
        let manifest = walker.load(descriptor, &label)?;
        match manifest.subject() {
            Some(subject) => {
                let mut graph = Graph::default();
                walker.walk(descriptor, &label, &mut graph)?;
                referrers.push(PlannedReferrer {
                    digest: descriptor.digest.clone(),
                    media_type: manifest.media_type().to_string(),
                    artifact_type: manifest.artifact_type().map(str::to_string),
                    subject: subject.digest.clone(),
                    repositories: Vec::new(),
                    manifests: graph.manifests,
                    blobs: graph.blobs,
                });
            }
            None => not_referrers.push(descriptor.digest.clone()),
        }
    }
    if !not_referrers.is_empty() {
        return Err(Error::Unnamed {
            digests: not_referrers,
        });
    }
    if images.is_empty() {
        return Err(Error::Empty);
    }
    referrers.sort_by(|a, b| a.digest.cmp(&b.digest));
    assign_referrers(&images, &mut referrers)?;

    let mut manifests = BTreeSet::new();
    let mut blobs = BTreeSet::new();
    for (m, b) in images
        .iter()
        .map(|i| (&i.manifests, &i.blobs))
        .chain(referrers.iter().map(|r| (&r.manifests, &r.blobs)))
    {
        manifests.extend(m.iter().cloned());
        blobs.extend(b.iter().cloned());
    }
    let blob_bytes = blobs.iter().map(|d| walker.blob_sizes[d]).sum();
    let needed: BTreeMap<Digest, u64> = blobs
        .iter()
        .map(|d| (d.clone(), walker.blob_sizes[d]))
        .collect();
    let delta = record.map(|r| plan_delta(r, &needed));
    Ok(Plan {
        target: target.clone(),
        naming,
        sparse,
        images,
        referrers,
        manifest_count: manifests.len(),
        blob_count: blobs.len(),
        blob_bytes,
        delta,
        manifests: walker.manifests,
        blob_sizes: walker.blob_sizes,
        untagged_repositories: BTreeSet::new(),
    })
}

/// Each referrer goes to the repository of every named image whose graph
/// holds its subject; referrers of referrers follow
/// ([`attach_referrers`], the rule serve shares; its cost grows with the
/// images each referrer is about, not with all images).
fn assign_referrers(images: &[PlannedImage], referrers: &mut [PlannedReferrer]) -> Result<()> {
    let shapes: Vec<ReferrerGraph<'_>> = referrers
        .iter()
        .map(|r| ReferrerGraph {
            digest: &r.digest,
            subject: &r.subject,
            manifests: &r.manifests,
        })
        .collect();
    let graphs = images
        .iter()
        .map(|i| i.manifests.iter().chain(i.bundle_digest.iter()));
    let joined = attach_referrers(graphs, &shapes);
    for (referrer, joined) in referrers.iter_mut().zip(joined) {
        if joined.is_empty() {
            return Err(Error::OrphanReferrer {
                digest: referrer.digest.clone(),
                subject: referrer.subject.clone(),
            });
        }
        for image in joined {
            let repo = images[image].repository_path().to_string();
            if !referrer.repositories.contains(&repo) {
                referrer.repositories.push(repo);
            }
        }
        referrer.repositories.sort();
    }
    Ok(())
}

/// The recorded name of an `index.json` descriptor and the reference it
/// stands for, or `None` when it has no name.
fn original_name(descriptor: &Descriptor) -> Result<Option<(String, Reference)>> {
    let containerd = descriptor.annotation(ANNOTATION_CONTAINERD_NAME);
    let Some(name) = containerd.or(descriptor.annotation(ANNOTATION_REF_NAME)) else {
        return Ok(None);
    };
    if containerd.is_none() && !name.contains(['/', ':', '@']) {
        return Err(Error::TagOnlyName {
            digest: descriptor.digest.clone(),
            name: name.to_string(),
        });
    }
    let reference = Reference::parse(name).map_err(|source| Error::InvalidName {
        digest: descriptor.digest.clone(),
        name: name.to_string(),
        source,
    })?;
    Ok(Some((name.to_string(), reference)))
}

struct NamedImage {
    reference_original: Reference,
    image: PlannedImage,
}

/// The manifests (children first) and blobs one top manifest needs.
#[derive(Default)]
struct Graph {
    manifests: Vec<Digest>,
    blobs: Vec<Digest>,
    missing: Vec<String>,
}

struct Walker<'a> {
    archive: &'a dyn Holdings,
    /// Each manifest read so far, as bytes: one seen again (a child shared
    /// by two indexes, a digest under two tags) is parsed again, which
    /// costs less than keeping every parsed view.
    manifests: BTreeMap<Digest, PlannedManifest>,
    blob_sizes: BTreeMap<Digest, u64>,
}

impl Walker<'_> {
    fn image(
        &mut self,
        descriptor: &Descriptor,
        recorded: String,
        original: Reference,
        target: &RelocationTarget,
        naming: Naming,
        sparse: SparseMode,
    ) -> Result<NamedImage> {
        let relocated_name = target
            .relocate(&original, naming)
            .map_err(|source| Error::Relocation { source })?;
        let mut graph = Graph::default();
        self.walk(descriptor, &recorded, &mut graph)?;
        let root = self.load(descriptor, &recorded)?;
        let mut digest = descriptor.digest.clone();
        let mut bundle_digest = None;
        if sparse == SparseMode::Rewrite && !graph.missing.is_empty() && root.is_index() {
            let archive = self.archive;
            let bytes = sparse::rewrite_index(root.bytes(), |d| {
                d.parse::<Digest>()
                    .is_ok_and(|d| matches!(archive.held(&d), Held::Yes(_)))
            })
            .map_err(|source| Error::Rewrite {
                digest: digest.clone(),
                source,
            })?;
            let new = Manifest::parse_as(bytes, Some(root.media_type()), digest.algorithm())
                .map_err(|source| Error::Manifest {
                    digest: digest.clone(),
                    needed_by: recorded.clone(),
                    source,
                })?;
            bundle_digest = Some(digest);
            digest = new.digest().clone();
            graph.manifests.pop();
            graph.manifests.push(digest.clone());
            self.manifests
                .insert(digest.clone(), PlannedManifest::of(new));
        }
        let subject = original.tag().and_then(cosign_subject);
        Ok(NamedImage {
            reference_original: original,
            image: PlannedImage {
                original: recorded,
                repository: relocated_name.name(),
                relocated: relocated_name.pinned(digest.clone()),
                digest,
                media_type: root.media_type().to_string(),
                bundle_digest,
                platforms_missing: graph.missing,
                subject,
                manifests: graph.manifests,
                blobs: graph.blobs,
                leave_tag: false,
                tag_seen: None,
            },
        })
    }

    /// Read (once) and parse the manifest `descriptor` points at.
    fn load(&mut self, descriptor: &Descriptor, needed_by: &str) -> Result<Manifest> {
        let digest = &descriptor.digest;
        let parse_error = |source| Error::Manifest {
            digest: digest.clone(),
            needed_by: needed_by.to_string(),
            source,
        };
        if let Some(m) = self.manifests.get(digest) {
            let bytes = m.bytes.to_vec();
            return Manifest::parse_as(bytes, Some(&m.media_type), digest.algorithm())
                .map_err(parse_error);
        }
        let Held::Yes(size) = self.archive.held(digest) else {
            return Err(Error::ManifestMissing {
                digest: digest.clone(),
                needed_by: needed_by.to_string(),
            });
        };
        check_size(digest, needed_by, descriptor.size, size)?;
        let manifest = self
            .archive
            .manifest(digest, Some(&descriptor.media_type))
            .map_err(parse_error)?;
        let planned = PlannedManifest {
            media_type: manifest.media_type().to_string(),
            bytes: Bytes::copy_from_slice(manifest.bytes()),
        };
        self.manifests.insert(digest.clone(), planned);
        Ok(manifest)
    }

    /// Add `descriptor`'s manifest and everything below it to `graph`,
    /// children first, through the one graph walk (depth-bounded).
    fn walk(&mut self, descriptor: &Descriptor, needed_by: &str, graph: &mut Graph) -> Result<()> {
        if graph.manifests.contains(&descriptor.digest) {
            return Ok(());
        }
        let mut walk = Walk::new(descriptor.clone());
        for digest in &graph.manifests {
            walk.visited(digest.clone());
        }
        while let Some(step) = walk.next() {
            match step {
                Step::Fetch {
                    descriptor, depth, ..
                } => {
                    if depth > 0 && !matches!(self.archive.held(&descriptor.digest), Held::Yes(_)) {
                        // An attestation left out with its image is not
                        // named: it follows the platform listed.
                        if attestation_subject(&descriptor).is_none() {
                            let name = real_platform(&descriptor)
                                .map_or_else(|| descriptor.digest.to_string(), |p| p.to_string());
                            graph.missing.push(name);
                        }
                        walk.skip();
                        continue;
                    }
                    walk.enter(self.load(&descriptor, needed_by)?);
                }
                Step::Leave {
                    descriptor,
                    manifest,
                    ..
                } => {
                    self.blobs(&manifest, needed_by, graph)?;
                    graph.manifests.push(descriptor.digest);
                }
                Step::TooDeep { descriptor, parent } => {
                    return Err(Error::TooDeep {
                        digest: descriptor.digest,
                        parent,
                        needed_by: needed_by.to_string(),
                        limit: MAX_DEPTH,
                    })
                }
                Step::Cycle { descriptor, parent } => {
                    return Err(Error::Cycle {
                        digest: descriptor.digest,
                        parent,
                        needed_by: needed_by.to_string(),
                    })
                }
            }
        }
        Ok(())
    }

    /// Check and add the configs and layers of `manifest` to `graph`.
    fn blobs(&mut self, manifest: &Manifest, needed_by: &str, graph: &mut Graph) -> Result<()> {
        for blob in manifest.blobs() {
            match self.archive.held(&blob.digest) {
                Held::No => {
                    return Err(Error::BlobMissing {
                        digest: blob.digest.clone(),
                        needed_by: needed_by.to_string(),
                    })
                }
                Held::Yes(size) => check_size(&blob.digest, needed_by, blob.size, size)?,
                Held::Later => {}
            }
            self.blob_sizes.insert(blob.digest.clone(), blob.size);
            if !graph.blobs.contains(&blob.digest) {
                graph.blobs.push(blob.digest.clone());
            }
        }
        Ok(())
    }
}

fn check_size(digest: &Digest, needed_by: &str, expected: u64, found: u64) -> Result<()> {
    if expected != found {
        return Err(Error::SizeMismatch {
            digest: digest.clone(),
            needed_by: needed_by.to_string(),
            expected,
            found,
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
