//! The one manifest-graph walk, and the rules every command shares about
//! the graph: how deep indexes may nest, which index entries are real
//! platforms, and which tags are cosign-style referrers.
//!
//! [`Walk`] knows nothing of where manifests come from. It is a small
//! iterative state machine: it asks for the manifest a descriptor points at
//! ([`Step::Fetch`]), the caller fetches it (from a registry, `async`; from
//! an archive; from a stream's buffered head) and hands it over with
//! [`Walk::enter`] or declines with [`Walk::skip`]; once everything below a
//! manifest was visited the walk gives it back ([`Step::Leave`]), so
//! children always come before their parents. No recursion: a hostile graph
//! (indexes nested thousands deep, or a cycle through content that does not
//! match its digest) costs a bounded stack and ends in
//! [`Step::TooDeep`] or [`Step::Cycle`], which the caller turns into an
//! error or a reported problem.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::digest::Digest;
use crate::manifest::{Descriptor, Manifest, Platform};

/// How deep manifests may sit below the one a walk starts from: the root is
/// depth 0, an image of an index depth 1, index -> index -> image is depth
/// 2. Real images nest one or two levels; 8 leaves room for any layout a
/// tool produces while a crafted bundle or registry cannot make a walk go
/// on without end.
pub const MAX_DEPTH: usize = 8;

/// The suffixes cosign (and tools following it) tag beside a subject's
/// digest: `sha256-<hex>.sig`, `.att`, `.sbom`.
pub const COSIGN_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

/// Annotation BuildKit puts on an index entry that is not an image but an
/// attestation about another entry (value `attestation-manifest`).
pub const ANNOTATION_REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// Annotation BuildKit puts on an attestation entry: the digest of the
/// image entry it is about.
pub const ANNOTATION_REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// The platform of an index entry when it names something that runs.
///
/// An entry is a real platform when it has a platform, neither its OS nor
/// its architecture is `unknown`, and it is not marked as a reference to
/// another entry ([`ANNOTATION_REFERENCE_TYPE`], BuildKit's attestation
/// manifests, which carry `unknown/unknown`). Entries that are not real
/// platforms are never filtered by `--platform`, never listed as platforms
/// carried or left out, and follow the entry they are about.
pub fn real_platform(entry: &Descriptor) -> Option<&Platform> {
    if entry.annotation(ANNOTATION_REFERENCE_TYPE).is_some() {
        return None;
    }
    entry
        .platform
        .as_ref()
        .filter(|p| p.os != "unknown" && p.architecture != "unknown")
}

/// The entry an attestation entry of an index is about
/// ([`ANNOTATION_REFERENCE_DIGEST`]), when it says.
pub fn attestation_subject(entry: &Descriptor) -> Option<Digest> {
    entry.annotation(ANNOTATION_REFERENCE_TYPE)?;
    entry.annotation(ANNOTATION_REFERENCE_DIGEST)?.parse().ok()
}

/// Which entries of an index to carry when only `wanted` platforms are
/// (all when `wanted` is empty): real platforms that match, and every other
/// entry unless it is an attestation about an entry left out.
pub fn select_platforms(entries: &[Descriptor], wanted: &[Platform]) -> Vec<bool> {
    let matches = |e: &Descriptor| match real_platform(e) {
        Some(p) => wanted.is_empty() || wanted.iter().any(|w| p.matches(w)),
        None => true,
    };
    let left_out: HashSet<&Digest> = entries
        .iter()
        .filter(|e| !matches(e))
        .map(|e| &e.digest)
        .collect();
    entries
        .iter()
        .map(|e| matches(e) && attestation_subject(e).is_none_or(|s| !left_out.contains(&s)))
        .collect()
}

/// Whether an entry of an index may be absent (from a bundle, from a
/// target) without the graph being broken: the index is sparse — some of
/// its entries are `present` — and the entry is a real platform, or an
/// attestation about an entry that is absent too.
pub fn may_be_left_out(
    entries: &[Descriptor],
    entry: &Descriptor,
    present: impl Fn(&Digest) -> bool,
) -> bool {
    if !entries.iter().any(|e| present(&e.digest)) {
        return false;
    }
    real_platform(entry).is_some() || attestation_subject(entry).is_some_and(|s| !present(&s))
}

/// The cosign-style tags of `subject`: `sha256-<hex>.sig`, `.att`, `.sbom`.
pub fn cosign_tags(subject: &Digest) -> impl Iterator<Item = String> + '_ {
    COSIGN_SUFFIXES
        .iter()
        .map(move |suffix| format!("{}.{suffix}", subject.tag_form()))
}

/// The subject a cosign-style tag names: `sha256-<hex>.sig` ->
/// `sha256:<hex>`. Accepts a bare tag or a whole reference ending in one.
pub fn cosign_subject(tag_or_reference: &str) -> Option<Digest> {
    let last = tag_or_reference.rsplit('/').next()?;
    let tag = last.rsplit_once(':').map_or(last, |(_, t)| t);
    let (digest, suffix) = tag.rsplit_once('.')?;
    if !COSIGN_SUFFIXES.contains(&suffix) {
        return None;
    }
    let (algorithm, hex) = digest.split_once('-')?;
    format!("{algorithm}:{hex}").parse().ok()
}

/// A referrer (a manifest with a `subject`) as [`attach_referrers`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct ReferrerGraph<'a> {
    /// The referrer's own digest.
    pub digest: &'a Digest,
    /// The digest its `subject` names.
    pub subject: &'a Digest,
    /// Every manifest of its own graph (an index referrer's children).
    pub manifests: &'a [Digest],
}

/// Which graphs each referrer joins: a graph holding a referrer's subject
/// takes the referrer and its manifests, so referrers of referrers follow
/// (a signature of an SBOM of an image goes where the image goes). Each of
/// `graphs` lists the manifest digests of one group (a named image, a
/// served repository). Returns, for each referrer, the indexes of the
/// graphs it joined, ascending; an empty list is a referrer whose subject
/// no graph holds.
///
/// The one rule for this: unpack's plan and serve both place unnamed
/// referrers with it. Which graphs hold a digest is indexed, so the cost
/// grows with referrers × the graphs each is about, not referrers × all
/// graphs (a platform release signs every one of thousands of images), and
/// it ends after at most `referrers × graphs` joins, even for referrers
/// that name each other.
pub fn attach_referrers<'a, G, D>(graphs: G, referrers: &[ReferrerGraph<'_>]) -> Vec<Vec<usize>>
where
    G: IntoIterator<Item = D>,
    D: IntoIterator<Item = &'a Digest>,
{
    let mut holders: HashMap<Digest, BTreeSet<usize>> = HashMap::new();
    for (g, digests) in graphs.into_iter().enumerate() {
        for digest in digests {
            holders.entry(digest.clone()).or_default().insert(g);
        }
    }
    let mut joined = vec![Vec::new(); referrers.len()];
    loop {
        let mut changed = false;
        for (r, referrer) in referrers.iter().enumerate() {
            let Some(about) = holders.get(referrer.subject) else {
                continue;
            };
            let has = holders.get(referrer.digest);
            let gaining: Vec<usize> = about
                .iter()
                .filter(|g| !has.is_some_and(|h| h.contains(g)))
                .copied()
                .collect();
            for g in gaining {
                for digest in referrer.manifests.iter().chain([referrer.digest]) {
                    holders.entry(digest.clone()).or_default().insert(g);
                }
                joined[r].push(g);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    for list in &mut joined {
        list.sort_unstable();
    }
    joined
}

/// One step of a [`Walk`].
#[derive(Debug)]
pub enum Step<M = Manifest> {
    /// The walk needs the manifest `descriptor` points at: hand it over
    /// with [`Walk::enter`], or decline with [`Walk::skip`] (absent,
    /// filtered out, already known). `parent` is `None` for the root.
    Fetch {
        /// What to fetch.
        descriptor: Descriptor,
        /// Its depth (the root is 0).
        depth: usize,
        /// The digest of the index listing it.
        parent: Option<Digest>,
    },
    /// Everything below `manifest` was visited (post-order).
    Leave {
        /// The descriptor the manifest was reached by.
        descriptor: Descriptor,
        /// The manifest.
        manifest: M,
        /// Its depth.
        depth: usize,
    },
    /// An entry of `parent` lies deeper than [`MAX_DEPTH`]; not followed.
    TooDeep {
        /// The entry.
        descriptor: Descriptor,
        /// The index that lists it.
        parent: Digest,
    },
    /// An entry of `parent` is one of its own ancestors; not followed.
    /// (Only content that does not match its digest can do this.)
    Cycle {
        /// The entry.
        descriptor: Descriptor,
        /// The index that lists it.
        parent: Digest,
    },
}

struct Frame<M> {
    descriptor: Descriptor,
    manifest: M,
    depth: usize,
    next: usize,
}

/// An iterative, depth-bounded, post-order walk of the manifest graph below
/// one root descriptor. Each manifest is asked for once per walk.
///
/// `M` is how the caller holds a manifest: [`Manifest`] itself, or an
/// `Arc<Manifest>` when it keeps a cache of them.
///
/// ```ignore
/// let mut walk = Walk::new(root);
/// while let Some(step) = walk.next() {
///     match step {
///         Step::Fetch { descriptor, .. } => walk.enter(fetch(&descriptor).await?),
///         Step::Leave { manifest, .. } => done.push(manifest),
///         Step::TooDeep { descriptor, .. } => return Err(too_deep(descriptor)),
///         Step::Cycle { descriptor, .. } => return Err(cycle(descriptor)),
///     }
/// }
/// ```
pub struct Walk<M = Manifest> {
    root: Option<Descriptor>,
    stack: Vec<Frame<M>>,
    asked: HashSet<Digest>,
    on_stack: HashSet<Digest>,
    awaiting: Option<(Descriptor, usize)>,
}

impl<M: AsRef<Manifest>> Walk<M> {
    /// A walk from `root`.
    pub fn new(root: Descriptor) -> Walk<M> {
        Walk {
            root: Some(root),
            stack: Vec::new(),
            asked: HashSet::new(),
            on_stack: HashSet::new(),
            awaiting: None,
        }
    }

    /// Mark `digest` as already visited: the walk will not ask for it.
    pub fn visited(&mut self, digest: Digest) {
        self.asked.insert(digest);
    }

    /// Hand over the manifest the last [`Step::Fetch`] asked for; the walk
    /// goes below it next. Does nothing when no fetch is pending.
    pub fn enter(&mut self, manifest: M) {
        if let Some((descriptor, depth)) = self.awaiting.take() {
            self.on_stack.insert(descriptor.digest.clone());
            self.stack.push(Frame {
                descriptor,
                manifest,
                depth,
                next: 0,
            });
        }
    }

    /// Decline the manifest the last [`Step::Fetch`] asked for: nothing
    /// below it is visited. A pending fetch not answered before the next
    /// [`Walk::next`] is skipped too.
    pub fn skip(&mut self) {
        self.awaiting = None;
    }

    /// The next step, or `None` when the walk is over.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Step<M>> {
        self.awaiting = None;
        if let Some(root) = self.root.take() {
            self.asked.insert(root.digest.clone());
            self.awaiting = Some((root.clone(), 0));
            return Some(Step::Fetch {
                descriptor: root,
                depth: 0,
                parent: None,
            });
        }
        loop {
            let frame = self.stack.last_mut()?;
            let Some(child) = frame.manifest.as_ref().children().get(frame.next).cloned() else {
                let frame = self.stack.pop().expect("a frame is on the stack");
                self.on_stack.remove(&frame.descriptor.digest);
                return Some(Step::Leave {
                    descriptor: frame.descriptor,
                    manifest: frame.manifest,
                    depth: frame.depth,
                });
            };
            frame.next += 1;
            let parent = frame.descriptor.digest.clone();
            let depth = frame.depth + 1;
            if self.on_stack.contains(&child.digest) {
                return Some(Step::Cycle {
                    descriptor: child,
                    parent,
                });
            }
            if !self.asked.insert(child.digest.clone()) {
                continue;
            }
            if depth > MAX_DEPTH {
                return Some(Step::TooDeep {
                    descriptor: child,
                    parent,
                });
            }
            self.awaiting = Some((child.clone(), depth));
            return Some(Step::Fetch {
                descriptor: child,
                depth,
                parent: Some(parent),
            });
        }
    }
}

#[cfg(test)]
#[path = "graph_tests.rs"]
mod tests;
