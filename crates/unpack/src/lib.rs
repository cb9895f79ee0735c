//! `ferry unpack`: a bundle (any OCI image layout tarball) into a private
//! registry, offline, with a relocation mapping.
//!
//! [`plan`] does everything that needs no network: it names each image of
//! the bundle, relocates the names (see [`ferry_oci::naming`]), and checks
//! the whole graph, so nothing is pushed from a broken bundle. [`unpack`]
//! then pushes per repository: blobs (skipped when present, mounted from a
//! repository already filled, else streamed from the archive and hashed on
//! the way), manifests children first as their exact bytes, tags last.
//! Referrers go beside their subjects. Running it again is cheap: what the
//! target has is skipped.

#![deny(missing_docs)]

mod error;
mod mapping;
mod plan;
mod push;
mod sparse;
mod summary;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use ferry_oci::{Digest, LayoutArchive, Manifest, Naming, Progress, RelocationTarget};
use ferry_registry::{Client, Repository};

pub use error::{Error, Result};
pub use mapping::write_mapping;
pub use plan::{plan, Plan, PlannedImage, PlannedReferrer, SparseMode};
pub use summary::{UnpackSummary, UnpackedImage, UnpackedReferrer};

use push::Pusher;
use summary::chain;

/// What to unpack, where, and how.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// The bundle: an OCI image layout tarball, plain, gzip or zstd.
    pub bundle: PathBuf,
    /// The target registry and prefix.
    pub target: RelocationTarget,
    /// How repositories are named under the prefix.
    pub naming: Naming,
    /// What to do with sparse indexes.
    pub sparse: SparseMode,
    /// How many blobs to push at once.
    pub jobs: usize,
    /// Where to write the relocation mapping, if anywhere.
    pub mapping: Option<PathBuf>,
}

/// Open a bundle for [`plan`]: a file (`-`, standard input, is refused:
/// blobs are read by offset).
pub fn open_bundle(path: &Path) -> Result<LayoutArchive> {
    if path == Path::new("-") {
        return Err(Error::Stdin);
    }
    LayoutArchive::open(path).map_err(|source| Error::Bundle {
        path: path.to_path_buf(),
        source,
    })
}

/// Unpack `options.bundle` into `options.target`.
///
/// Fails before pushing anything when the bundle is unreadable, its graph
/// is incomplete, or names collide. Once pushing starts, an image that
/// fails (a blob that will not push, a corrupt blob, a sparse index the
/// registry refuses) gets no tag and is reported in the summary with its
/// error; the others carry on. The mapping then lists only the images
/// pushed; check [`UnpackSummary::failed`].
pub async fn unpack(
    client: &Client,
    options: &UnpackOptions,
    progress: Arc<dyn Progress>,
) -> Result<UnpackSummary> {
    let started = Instant::now();
    let (archive, plan) = {
        let options = options.clone();
        tokio::task::spawn_blocking(move || {
            let archive = open_bundle(&options.bundle)?;
            let plan = plan(&archive, &options.target, options.naming, options.sparse)?;
            Ok::<_, Error>((archive, plan))
        })
        .await
        .map_err(|e| Error::Task {
            reason: e.to_string(),
        })??
    };
    let host = plan.target.registry().to_string();
    let pusher = Arc::new(Pusher::new(
        client.clone(),
        Arc::new(archive),
        options.jobs,
        progress.clone(),
    ));

    // Per relocated repository: the images and referrers that go there.
    let mut repos: BTreeMap<String, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for (i, image) in plan.images.iter().enumerate() {
        let path = image.repository_path().to_string();
        repos.entry(path).or_default().0.push(i);
    }
    for (r, referrer) in plan.referrers.iter().enumerate() {
        for path in &referrer.repositories {
            repos.entry(path.clone()).or_default().1.push(r);
        }
    }
    let blobs_per_repo: Vec<BTreeMap<Digest, u64>> = repos
        .values()
        .map(|(images, referrers)| {
            let image_blobs = images.iter().flat_map(|&i| &plan.images[i].blobs);
            let referrer_blobs = referrers.iter().flat_map(|&r| &plan.referrers[r].blobs);
            image_blobs
                .chain(referrer_blobs)
                .map(|d| (d.clone(), plan.blob_sizes[d]))
                .collect()
        })
        .collect();
    let items = blobs_per_repo.iter().map(|b| b.len() as u64).sum();
    let bytes = blobs_per_repo.iter().flat_map(|b| b.values()).sum();
    progress.start("pushing", items, bytes);

    let mut image_errors: Vec<Option<String>> = vec![None; plan.images.len()];
    let mut referrer_errors: Vec<Option<String>> = vec![None; plan.referrers.len()];
    for ((path, (images, referrers)), blobs) in repos.iter().zip(blobs_per_repo) {
        let repo = Repository::new(host.clone(), path.clone());
        let blob_results = pusher.push_blobs(&repo, blobs).await?;
        for &i in images {
            let image = &plan.images[i];
            if let Err(e) = push_image(&pusher, &repo, &plan, image, &blob_results).await {
                progress.note(&format!("failed: {}", chain(&e)));
                image_errors[i] = Some(chain(&e));
            }
        }
        let mut pushed: BTreeMap<&Digest, Vec<&Manifest>> = BTreeMap::new();
        for &r in referrers {
            let referrer = &plan.referrers[r];
            match push_graph(
                &pusher,
                &repo,
                &plan,
                &referrer.manifests,
                &referrer.blobs,
                &blob_results,
            )
            .await
            {
                Ok(()) => pushed
                    .entry(&referrer.subject)
                    .or_default()
                    .push(plan.manifest(&referrer.digest)),
                Err(e) => referrer_errors[r] = Some(chain(&e)),
            }
        }
        for (subject, manifests) in pushed {
            if let Err(source) = pusher
                .update_referrers_tag(&repo, subject, &manifests)
                .await
            {
                let e = Error::Registry {
                    what: format!(
                        "listing referrers of {subject} in {repo} (tag {})",
                        subject.tag_form()
                    ),
                    source,
                };
                for &r in referrers {
                    if &plan.referrers[r].subject == subject {
                        referrer_errors[r].get_or_insert_with(|| chain(&e));
                    }
                }
            }
        }
    }
    progress.finish();
    finish(
        options,
        &plan,
        &pusher,
        image_errors,
        referrer_errors,
        started,
    )
}

fn finish(
    options: &UnpackOptions,
    plan: &Plan,
    pusher: &Pusher,
    image_errors: Vec<Option<String>>,
    referrer_errors: Vec<Option<String>>,
    started: Instant,
) -> Result<UnpackSummary> {
    let images: Vec<UnpackedImage> = plan
        .images
        .iter()
        .zip(image_errors)
        .map(|(i, error)| UnpackedImage {
            original: i.original.clone(),
            relocated: i.relocated.to_string(),
            digest: i.digest.clone(),
            bundle_digest: i.bundle_digest.clone(),
            platforms_missing: i.platforms_missing.clone(),
            error,
        })
        .collect();
    let referrers: Vec<UnpackedReferrer> = plan
        .referrers
        .iter()
        .zip(referrer_errors)
        .map(|(r, error)| UnpackedReferrer {
            digest: r.digest.clone(),
            subject: r.subject.clone(),
            artifact_type: r.artifact_type.clone(),
            repositories: r
                .repositories
                .iter()
                .map(|p| format!("{}/{p}", plan.target.registry()))
                .collect(),
            error,
        })
        .collect();
    let mapping: BTreeMap<String, String> = images
        .iter()
        .filter(|i| i.error.is_none())
        .map(|i| (i.original.clone(), i.relocated.clone()))
        .collect();
    if let Some(path) = &options.mapping {
        write_mapping(path, &mapping)?;
    }
    let failed = images.iter().filter(|i| i.error.is_some()).count()
        + referrers.iter().filter(|r| r.error.is_some()).count();
    let stat = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let s = &pusher.stats;
    Ok(UnpackSummary {
        target: plan.target.to_string(),
        naming: plan.naming.to_string(),
        sparse: plan.sparse,
        images,
        referrers,
        blobs_uploaded: stat(&s.blobs_uploaded),
        blobs_mounted: stat(&s.blobs_mounted),
        blobs_present: stat(&s.blobs_present),
        bytes_uploaded: stat(&s.bytes_uploaded),
        manifests_pushed: stat(&s.manifests_pushed),
        manifests_present: stat(&s.manifests_present),
        tags_set: stat(&s.tags_set),
        tags_unchanged: stat(&s.tags_unchanged),
        failed,
        mapping_file: options.mapping.clone(),
        mapping,
        elapsed: started.elapsed(),
    })
}

/// Push one named image: its manifests once all its blobs are in, then its
/// tag.
async fn push_image(
    pusher: &Pusher,
    repo: &Repository,
    plan: &Plan,
    image: &PlannedImage,
    blobs: &BTreeMap<Digest, Option<String>>,
) -> Result<()> {
    let reference = image.relocated.to_string();
    push_graph(pusher, repo, plan, &image.manifests, &image.blobs, blobs)
        .await
        .map_err(|e| match e {
            Error::Registry { source, .. }
                if source.registry_code() == Some("MANIFEST_BLOB_UNKNOWN")
                    && !image.platforms_missing.is_empty() =>
            {
                Error::SparseRefused {
                    reference: reference.clone(),
                    digest: image.digest.clone(),
                    missing: image.platforms_missing.clone(),
                    source,
                }
            }
            Error::BlobFailed { digest, reason, .. } => Error::BlobFailed {
                reference: reference.clone(),
                digest,
                reason,
            },
            other => other,
        })?;
    if let Some(tag) = image.relocated.tag() {
        pusher
            .push_tag(repo, tag, plan.manifest(&image.digest))
            .await
            .map_err(|source| Error::Registry {
                what: format!("tagging {reference}"),
                source,
            })?;
    }
    Ok(())
}

/// Push `manifests` (children first) by digest, once every blob they need
/// is in place.
async fn push_graph(
    pusher: &Pusher,
    repo: &Repository,
    plan: &Plan,
    manifests: &[Digest],
    needed: &[Digest],
    blobs: &BTreeMap<Digest, Option<String>>,
) -> Result<()> {
    for digest in needed {
        if let Some(Some(reason)) = blobs.get(digest) {
            return Err(Error::BlobFailed {
                reference: repo.to_string(),
                digest: digest.clone(),
                reason: reason.clone(),
            });
        }
    }
    let mut done = BTreeSet::new();
    for digest in manifests {
        if !done.insert(digest) {
            continue;
        }
        pusher
            .push_manifest(repo, plan.manifest(digest))
            .await
            .map_err(|source| Error::Registry {
                what: format!("pushing manifest {digest} into {repo}"),
                source,
            })?;
    }
    Ok(())
}
