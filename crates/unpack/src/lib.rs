//! `ferry unpack`: a bundle (any OCI image layout tarball) into a private
//! registry, offline, with a relocation mapping.
//!
//! [`plan`] does everything that needs no network: it names each image of
//! the bundle, relocates the names (see [`ferry_oci::naming`]), and checks
//! the whole graph, so nothing is pushed from a broken bundle. [`unpack`]
//! then asks each repository for its images' top manifests by digest
//! (what is there is whole: only its tag is checked) and pushes the rest:
//! blobs (skipped when present, mounted from a
//! repository already filled, else streamed from the archive and hashed on
//! the way), manifests children first as their exact bytes, tags last.
//! Referrers go beside their subjects. Running it again is cheap: what the
//! target has is skipped.

#![deny(missing_docs)]

mod check;
mod delta;
mod error;
mod existing;
mod holdings;
mod mapping;
mod plan;
mod push;
mod receipt;
mod repos;
mod sparse;
mod stream;
mod stream_push;
mod summary;
mod target_tags;
mod trust;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt};

use ferry_oci::{LayoutArchive, Naming, Progress, RelocationTarget};
use ferry_registry::{Client, Repository};

pub use check::TagMove;
pub use check::{check, tag_moves, CheckReport, CheckRow, CheckStatus};
pub use delta::PlanDelta;
pub use error::{Error, Result};
pub use existing::ExistingTag;
pub use mapping::write_mapping;
pub use plan::{plan, Plan, PlannedImage, PlannedReferrer, SparseMode};
pub use receipt::{collect_receipt, write_receipt};
pub use stream::HEAD_LIMIT;
pub use stream_push::plan_stream;
pub use summary::{UnpackSummary, UnpackedImage, UnpackedReferrer};
pub use trust::{check_signatures, SignaturePolicy};

use push::Pusher;
use repos::{Outcome, RepoPlan};
use stream_push::unpack_stream;

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
    /// What to do with tags of the target that would move.
    pub existing_tag: ExistingTag,
    /// Where to write the receipt after the run, if anywhere.
    pub receipt: Option<PathBuf>,
    /// Signatures that must hold before anything is pushed.
    pub signatures: SignaturePolicy,
}

/// Open a bundle file for [`plan`] (`-`, standard input, is refused: blobs
/// are read by offset; see [`plan_bundle`]).
pub fn open_bundle(path: &Path) -> Result<LayoutArchive> {
    if path == Path::new("-") {
        return Err(Error::Stdin);
    }
    LayoutArchive::open(path).map_err(|source| Error::Bundle {
        path: path.to_path_buf(),
        source,
    })
}

/// Plan the unpack of the bundle at `path` offline; `-` reads it from
/// standard input (see [`plan_stream`]).
pub fn plan_bundle(
    path: &Path,
    target: &RelocationTarget,
    naming: Naming,
    sparse: SparseMode,
) -> Result<Plan> {
    if path == Path::new("-") {
        return plan_stream(std::io::stdin(), target, naming, sparse);
    }
    plan(&open_bundle(path)?, target, naming, sparse)
}

/// Unpack `options.bundle` into `options.target`; `-` reads it from
/// standard input, which works when the archive puts manifests before
/// layers, as `ferry pack` does (otherwise [`Error::LayersFirst`]): blobs
/// are pushed as they go by, one at a time, and nothing is written to
/// disk.
///
/// Fails before pushing anything when a signature the policy
/// ([`UnpackOptions::signatures`]) requires does not hold, the bundle is
/// unreadable, its graph is incomplete, or names collide. Once pushing starts, an image that
/// fails (a blob that will not push, a corrupt blob, a sparse index the
/// registry refuses) gets no tag and is reported in the summary with its
/// error; the others carry on. The mapping then lists only the images
/// pushed; check [`UnpackSummary::failed`].
pub async fn unpack(
    client: &Client,
    options: &UnpackOptions,
    progress: Arc<dyn Progress>,
) -> Result<UnpackSummary> {
    if options.bundle == Path::new("-") {
        if !options.signatures.is_empty() {
            return Err(Error::SignatureNeedsFile);
        }
        let reader = receipt::HashingReader::new(std::io::stdin());
        let archive_end = reader.archive_end.clone();
        let (hash, ended) = (reader.hash.clone(), archive_end.clone());
        let warned = progress.clone();
        // The receipt's sha256 is the archive's: what the layout reader
        // left (end-of-archive padding) goes through the same hash, which
        // leaves out what follows the archive (`cat OUT.tar.*`).
        let sha256 = move || {
            let mut rest = receipt::HashingReader {
                inner: std::io::stdin(),
                hash,
                archive_end: ended,
            };
            std::io::copy(&mut rest, &mut std::io::sink())?;
            let (hex, ignored) = rest.hash.lock().expect("lock").finish();
            if ignored > 0 {
                warned.warn(&format!(
                    "standard input went on for {ignored} bytes after the end of the archive: \
                     ignored (parity parts or a checksum file behind the data parts? \
                     `cat OUT.tar.[0-9]*` sends the bundle alone)"
                ));
            }
            Ok(hex)
        };
        return unpack_stream(
            client,
            options,
            reader,
            progress,
            stream_push::StreamHashing {
                archive_end,
                sha256: Box::new(sha256),
            },
        )
        .await;
    }
    let started = Instant::now();
    let (archive, mut plan) = {
        let options = options.clone();
        tokio::task::spawn_blocking(move || {
            trust::check_bundle_signature(&options.bundle, &options.signatures)?;
            let archive = open_bundle(&options.bundle)?;
            trust::check_image_signatures(&archive, &options.signatures)?;
            let plan = plan(&archive, &options.target, options.naming, options.sparse)?;
            Ok::<_, Error>((archive, plan))
        })
        .await
        .map_err(|e| Error::Task {
            reason: e.to_string(),
        })??
    };
    let moves = existing::settle(client, &mut plan, options.existing_tag, options.jobs).await?;
    let host = plan.target.registry().to_string();
    let archive = Arc::new(archive);
    let pusher = Arc::new(Pusher::new(client.clone(), options.jobs, progress.clone()));
    let bundle_sha256 = options.receipt.is_some().then(|| {
        let path = options.bundle.clone();
        tokio::task::spawn_blocking(move || ferry_oci::bases::file_sha256(&path, false))
    });

    let repos = repos_to_fill(&pusher, &plan, options.jobs).await;
    if let Some(delta) = &plan.delta {
        delta::ensure_base(&pusher, delta, &repos, &plan.target).await?;
    }
    progress.start("pushing", RepoPlan::items(&repos), RepoPlan::bytes(&repos));
    // Repositories fill side by side; the pusher bounds the transfers in
    // flight and lets a blob shared between repositories be uploaded once.
    let per_repo = futures_util::stream::iter(&repos)
        .map(|repo_plan| {
            let (pusher, archive, plan) = (&pusher, &archive, &plan);
            let repo = Repository::new(host.clone(), repo_plan.path.clone());
            async move {
                let blobs = repo_plan.blobs.clone();
                let untagged = repo_plan.untagged;
                let blob_results = pusher.push_blobs(archive, &repo, blobs, untagged).await?;
                let mut outcome = Outcome::default();
                repo_plan
                    .finish(pusher, &repo, plan, &blob_results, &mut outcome)
                    .await;
                Ok::<_, Error>(outcome)
            }
        })
        .buffer_unordered(options.jobs.max(1));
    let outcome = per_repo
        .try_fold(Outcome::default(), |mut outcome, other| async move {
            outcome.merge(other);
            Ok(outcome)
        })
        .await?;
    progress.finish();
    let summary = finish(options, &plan, &pusher, outcome, moves, started)?;
    if let Some(hashing) = bundle_sha256 {
        let sha256 = hashing
            .await
            .map_err(|e| Error::Task {
                reason: e.to_string(),
            })?
            .map_err(|source| Error::Bundle {
                path: options.bundle.clone(),
                source,
            })?;
        receipt::after_run(client, options, &plan, sha256).await?;
    }
    Ok(summary)
}

/// Every repository of the plan, with what it already has found top-down
/// (`jobs` repositories asked at once).
pub(crate) async fn repos_to_fill(pusher: &Pusher, plan: &Plan, jobs: usize) -> Vec<RepoPlan> {
    let host = plan.target.registry().to_string();
    futures_util::stream::iter(RepoPlan::all(plan))
        .map(|mut repo_plan| {
            let repo = Repository::new(host.clone(), repo_plan.path.clone());
            async move {
                repo_plan.check_presence(pusher, &repo, plan).await;
                repo_plan
            }
        })
        .buffered(jobs.max(1))
        .collect()
        .await
}

/// The summary of a run, and the mapping file written.
fn finish(
    options: &UnpackOptions,
    plan: &Plan,
    pusher: &Pusher,
    outcome: Outcome,
    moves: Vec<TagMove>,
    started: Instant,
) -> Result<UnpackSummary> {
    let Outcome {
        mut image_errors,
        mut referrer_errors,
    } = outcome;
    let images: Vec<UnpackedImage> = plan
        .images
        .iter()
        .enumerate()
        .map(|(n, i)| UnpackedImage {
            original: i.original.clone(),
            // A tag left where it was does not name this image: by digest.
            relocated: if i.leave_tag {
                format!("{}@{}", i.repository, i.digest)
            } else {
                i.relocated.to_string()
            },
            tag_left: i.leave_tag,
            digest: i.digest.clone(),
            bundle_digest: i.bundle_digest.clone(),
            platforms_missing: i.platforms_missing.clone(),
            error: image_errors.remove(&n),
        })
        .collect();
    let referrers: Vec<UnpackedReferrer> = plan
        .referrers
        .iter()
        .enumerate()
        .map(|(n, r)| UnpackedReferrer {
            digest: r.digest.clone(),
            subject: r.subject.clone(),
            artifact_type: r.artifact_type.clone(),
            repositories: r
                .repositories
                .iter()
                .map(|p| format!("{}/{p}", plan.target.registry()))
                .collect(),
            error: referrer_errors.remove(&n),
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
    // Moves found before pushing: left (skip), or made (the image pushed).
    let (mut tags_moved, mut tags_left) = (Vec::new(), Vec::new());
    for m in moves {
        let owner = plan
            .images
            .iter()
            .zip(&images)
            .find(|(p, _)| p.tag_reference().as_deref() == Some(m.reference.as_str()));
        match owner {
            Some((p, _)) if p.leave_tag => tags_left.push(m),
            Some((_, u)) if u.error.is_none() => tags_moved.push(m),
            _ => {}
        }
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
        tags_moved,
        tags_left,
        failed,
        mapping_file: options.mapping.clone(),
        receipt_file: options.receipt.clone(),
        mapping,
        elapsed: started.elapsed(),
    })
}
