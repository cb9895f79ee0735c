//! Pushing what one relocated repository receives, once its blobs are in:
//! manifests children first, tags, referrers and the referrers tag schema.
//! The same for a file and a stream; only how blobs get in differs.

use std::collections::{BTreeMap, BTreeSet};

use ferry_oci::{Algorithm, Descriptor, Digest};
use ferry_registry::Repository;

use crate::push::{referrer_descriptor, Pusher};
use crate::{Error, Plan, PlannedImage, Result};
use ferry_oci::error_chain;

/// What goes into one relocated repository.
pub(crate) struct RepoPlan {
    /// The repository path (no host).
    pub path: String,
    /// The images of the plan that go there.
    pub images: Vec<usize>,
    /// The referrers of the plan that go there.
    pub referrers: Vec<usize>,
    /// The configs and layers they need, with their sizes.
    pub blobs: BTreeMap<Digest, u64>,
    /// Images whose top manifest the repository already has: the registry
    /// accepted it, so everything below it is there too.
    pub present_images: BTreeSet<usize>,
    /// Referrers the repository already has.
    pub present_referrers: BTreeSet<usize>,
    /// The target held nothing here, or no tag, before the run
    /// ([`Plan::untagged_repositories`]): it is taken to hold nothing of
    /// the plan, so manifests and small blobs go without asking first. What
    /// that risks is small: a blob of at most
    /// [`SINGLE_REQUEST_UPLOAD_MAX`](ferry_registry::SINGLE_REQUEST_UPLOAD_MAX)
    /// sent again, or a manifest put again, after a run stopped before its
    /// first tag. Bigger blobs are still asked for, so such a run resumes
    /// without sending them twice. Never for a delta, whose left-out blobs
    /// must be found, not sent.
    pub untagged: bool,
}

/// The images and referrers of the plan that failed, by index, with why;
/// the others were pushed. Sparse, so that each repository's run (one per
/// repository, hundreds in a platform release) costs nothing when all goes
/// well, rather than a slot for every image of the plan.
#[derive(Default)]
pub(crate) struct Outcome {
    pub image_errors: BTreeMap<usize, String>,
    pub referrer_errors: BTreeMap<usize, String>,
}

impl Outcome {
    /// Take in the failures of another repository's run (the first error
    /// of a referrer pushed into several repositories is kept).
    pub fn merge(&mut self, other: Outcome) {
        for (i, e) in other.image_errors {
            self.image_errors.entry(i).or_insert(e);
        }
        for (r, e) in other.referrer_errors {
            self.referrer_errors.entry(r).or_insert(e);
        }
    }
}

impl RepoPlan {
    /// Every repository of the plan, sorted by path.
    pub fn all(plan: &Plan) -> Vec<RepoPlan> {
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
        repos
            .into_iter()
            .map(|(path, (images, referrers))| {
                let untagged = plan.delta.is_none() && plan.untagged_repositories.contains(&path);
                let image_blobs = images.iter().flat_map(|&i| &plan.images[i].blobs);
                let referrer_blobs = referrers.iter().flat_map(|&r| &plan.referrers[r].blobs);
                let blobs = image_blobs
                    .chain(referrer_blobs)
                    .map(|d| (d.clone(), plan.blob_sizes[d]))
                    .collect();
                RepoPlan {
                    path,
                    images,
                    referrers,
                    blobs,
                    present_images: BTreeSet::new(),
                    present_referrers: BTreeSet::new(),
                    untagged,
                }
            })
            .collect()
    }

    /// Top-down presence: ask the repository for each image's and each
    /// referrer's top manifest by digest (one `HEAD` each) before anything
    /// below it. What it has is not looked at further: its manifests and
    /// blobs are dropped from this run, leaving the blobs only the rest
    /// needs.
    ///
    /// An image whose tag already points at its digest (looked up before
    /// anything, `tag_seen`) is there without asking again: the registry
    /// holds what a tag points at. An [`untagged`](Self::untagged)
    /// repository is not asked.
    pub async fn check_presence(&mut self, pusher: &Pusher, repo: &Repository, plan: &Plan) {
        if self.untagged {
            return;
        }
        for &i in &self.images {
            let image = &plan.images[i];
            let tagged_here = matches!(&image.tag_seen, Some(Some(d)) if *d == image.digest);
            if pusher.has_manifest(repo, &image.digest, tagged_here).await {
                self.present_images.insert(i);
            }
        }
        for &r in &self.referrers {
            if pusher
                .has_manifest(repo, &plan.referrers[r].digest, false)
                .await
            {
                self.present_referrers.insert(r);
            }
        }
        let images = self
            .images
            .iter()
            .filter(|i| !self.present_images.contains(i))
            .flat_map(|&i| &plan.images[i].blobs);
        let referrers = self
            .referrers
            .iter()
            .filter(|r| !self.present_referrers.contains(r))
            .flat_map(|&r| &plan.referrers[r].blobs);
        let needed: BTreeSet<&Digest> = images.chain(referrers).collect();
        self.blobs.retain(|d, _| needed.contains(d));
    }

    /// Blob pushes in all: one per blob per repository.
    pub fn items(repos: &[RepoPlan]) -> u64 {
        repos.iter().map(|r| r.blobs.len() as u64).sum()
    }

    /// Bytes of all blob pushes.
    pub fn bytes(repos: &[RepoPlan]) -> u64 {
        repos.iter().flat_map(|r| r.blobs.values()).sum()
    }

    /// Push this repository's manifests, tags and referrers, given how its
    /// blobs fared (`None` when in place); failures go into `outcome`.
    ///
    /// Referrers follow their subject: images first, then cosign-style tags
    /// and OCI referrers, each skipped (with the reason in the summary) when
    /// the manifest it is about failed here.
    pub async fn finish(
        &self,
        pusher: &Pusher,
        repo: &Repository,
        plan: &Plan,
        blob_results: &BTreeMap<Digest, Option<String>>,
        outcome: &mut Outcome,
    ) {
        let mut fate = Fate::default();
        let (plain, tagged): (Vec<usize>, Vec<usize>) = self
            .images
            .iter()
            .partition(|&&i| plan.images[i].subject.is_none());
        for i in plain.into_iter().chain(tagged) {
            let image = &plan.images[i];
            let result = match image.subject.as_ref().and_then(|s| fate.failed(s)) {
                Some(subject) => Err(skipped(subject)),
                None if self.present_images.contains(&i) => tag_image(pusher, repo, plan, image)
                    .await
                    .map_err(|e| error_chain(&e)),
                None => {
                    let graph = Graph {
                        manifests: &image.manifests,
                        top: &image.digest,
                        needed: &image.blobs,
                        ask: !self.untagged,
                        landed: &fate.landed,
                    };
                    push_image(pusher, repo, plan, image, graph, blob_results)
                        .await
                        .map_err(|e| error_chain(&e))
                }
            };
            let graph = image.manifests.iter().chain(&image.bundle_digest);
            match result {
                Ok(()) => fate.landed(graph),
                Err(e) => {
                    pusher.progress.note(&format!("failed: {e}"));
                    fate.fail(graph, &image.original);
                    outcome.image_errors.insert(i, e);
                }
            }
        }
        let referrer_errors = &mut outcome.referrer_errors;
        let mut pushed: BTreeMap<&Digest, Vec<Descriptor>> = BTreeMap::new();
        for r in subjects_first(plan, &self.referrers) {
            let referrer = &plan.referrers[r];
            let (manifests, blobs) = (&referrer.manifests, &referrer.blobs);
            if let Some(subject) = fate.failed(&referrer.subject) {
                referrer_errors.insert(r, skipped(subject));
                fate.fail(manifests, &referrer.digest.to_string());
                continue;
            }
            let pushed_graph = if self.present_referrers.contains(&r) {
                Ok(())
            } else {
                let graph = Graph {
                    manifests,
                    top: &referrer.digest,
                    needed: blobs,
                    ask: !self.untagged,
                    landed: &fate.landed,
                };
                push_graph(pusher, repo, plan, graph, None, blob_results).await
            };
            match pushed_graph {
                Ok(()) => {
                    fate.landed(manifests);
                    pushed
                        .entry(&referrer.subject)
                        .or_default()
                        .push(referrer_descriptor(
                            referrer,
                            plan.manifest(&referrer.digest),
                        ))
                }
                Err(e) => {
                    fate.fail(manifests, &referrer.digest.to_string());
                    referrer_errors.insert(r, error_chain(&e));
                }
            }
        }
        for (subject, manifests) in pushed {
            if let Err(source) = pusher.update_referrers_tag(repo, subject, &manifests).await {
                let e = Error::Registry {
                    what: format!(
                        "listing referrers of {subject} in {repo} (tag {})",
                        subject.tag_form()
                    ),
                    source,
                };
                for &r in &self.referrers {
                    if &plan.referrers[r].subject == subject {
                        referrer_errors.entry(r).or_insert_with(|| error_chain(&e));
                    }
                }
            }
        }
    }
}

/// Which manifests of one repository landed and which failed, and for
/// whom: what a referrer needs to know about its subject.
#[derive(Default)]
struct Fate {
    landed: BTreeSet<Digest>,
    failed: BTreeMap<Digest, String>,
}

impl Fate {
    fn landed<'a>(&mut self, graph: impl IntoIterator<Item = &'a Digest>) {
        self.landed.extend(graph.into_iter().cloned());
    }

    fn fail<'a>(&mut self, graph: impl IntoIterator<Item = &'a Digest>, who: &str) {
        for digest in graph {
            self.failed
                .entry(digest.clone())
                .or_insert_with(|| who.to_string());
        }
    }

    /// Who failed with `subject` when it did not land here by another way.
    fn failed(&self, subject: &Digest) -> Option<String> {
        if self.landed.contains(subject) {
            return None;
        }
        let who = self.failed.get(subject)?;
        Some(format!("{subject} ({who})"))
    }
}

fn skipped(subject: String) -> String {
    format!("skipped: its subject {subject} failed")
}

/// `referrers` ordered so that a referrer of a referrer comes after it.
fn subjects_first(plan: &Plan, referrers: &[usize]) -> Vec<usize> {
    let mut pending: Vec<usize> = referrers.to_vec();
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let waiting: BTreeSet<&Digest> =
            pending.iter().map(|&r| &plan.referrers[r].digest).collect();
        let (ready, rest): (Vec<usize>, Vec<usize>) = pending
            .iter()
            .partition(|&&r| !waiting.contains(&plan.referrers[r].subject));
        if ready.is_empty() {
            // Only content that lies about its digest can loop; keep order.
            ordered.extend(rest);
            break;
        }
        ordered.extend(ready);
        pending = rest;
    }
    ordered
}

/// What one image or referrer pushes into a repository.
struct Graph<'a> {
    /// Its manifests, children first, the top one last.
    manifests: &'a [Digest],
    /// The top manifest, found absent by the repository's presence check
    /// (or not asked, in an untagged repository): it goes without a `HEAD`.
    top: &'a Digest,
    /// The configs and layers it needs.
    needed: &'a [Digest],
    /// Ask for each child manifest before putting it (not in an untagged
    /// repository).
    ask: bool,
    /// Manifests this run has already put into the repository.
    landed: &'a BTreeSet<Digest>,
}

/// Push one named image: its manifests once all its blobs are in, and its
/// tag. A tag known to be absent or to point elsewhere is set by putting
/// the top manifest under it, one request for both.
async fn push_image(
    pusher: &Pusher,
    repo: &Repository,
    plan: &Plan,
    image: &PlannedImage,
    graph: Graph<'_>,
    blobs: &BTreeMap<Digest, Option<String>>,
) -> Result<()> {
    let reference = image.relocated.to_string();
    let tag = image.relocated.tag().filter(|_| !image.leave_tag);
    let known_elsewhere =
        matches!(&image.tag_seen, Some(seen) if seen.as_ref() != Some(&image.digest));
    let top_tag = tag.filter(|_| known_elsewhere);
    push_graph(pusher, repo, plan, graph, top_tag, blobs)
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
    if top_tag.is_some() {
        return Ok(());
    }
    tag_image(pusher, repo, plan, image).await
}
/// Point an image's tag (if it has one) at its manifest.
async fn tag_image(
    pusher: &Pusher,
    repo: &Repository,
    plan: &Plan,
    image: &PlannedImage,
) -> Result<()> {
    if let Some(tag) = image.relocated.tag().filter(|_| !image.leave_tag) {
        pusher
            .push_tag(
                repo,
                tag,
                &image.digest,
                plan.manifest(&image.digest),
                image.tag_seen.as_ref(),
            )
            .await
            .map_err(|source| Error::Registry {
                what: format!("tagging {}", image.relocated),
                source,
            })?;
    }
    Ok(())
}

/// Push a graph's manifests (children first), once every blob they need
/// is in place: each by digest, but the top one under `top_tag` when given.
/// A manifest this run has put here already is not put again, unless it
/// is the top one and gets its tag that way.
async fn push_graph(
    pusher: &Pusher,
    repo: &Repository,
    plan: &Plan,
    graph: Graph<'_>,
    top_tag: Option<&str>,
    blobs: &BTreeMap<Digest, Option<String>>,
) -> Result<()> {
    for digest in graph.needed {
        if let Some(Some(reason)) = blobs.get(digest) {
            return Err(Error::BlobFailed {
                reference: repo.to_string(),
                digest: digest.clone(),
                reason: reason.clone(),
            });
        }
    }
    let mut done = BTreeSet::new();
    for digest in graph.manifests {
        let is_top = digest == graph.top;
        let tag = top_tag.filter(|_| is_top);
        if !done.insert(digest) || (graph.landed.contains(digest) && tag.is_none()) {
            continue;
        }
        pusher
            .push_manifest(
                repo,
                digest,
                plan.manifest(digest),
                graph.ask && !is_top,
                tag,
            )
            .await
            .map_err(|source| {
                if digest.algorithm() != Algorithm::Sha256
                    && source.registry_code() == Some("DIGEST_INVALID")
                {
                    return Error::AlgorithmRefused {
                        digest: digest.clone(),
                        algorithm: digest.algorithm().as_str(),
                        repository: repo.to_string(),
                        source,
                    };
                }
                Error::Registry {
                    what: format!("pushing manifest {digest} into {repo}"),
                    source,
                }
            })?;
    }
    Ok(())
}
