//! What the server serves: every named image of the bundles, grouped into
//! repositories named as the originals were (without their registry host),
//! with the manifests and blobs each repository may serve.
//!
//! Built once at start. Every manifest is read, hashed and parsed here, so a
//! broken bundle stops the server before it answers anything; manifests are
//! small and kept in memory as their exact bytes. Blobs are only located
//! (bundle and size); their bytes are read on request, at their offsets.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use ferry_oci::graph::{attach_referrers, may_be_left_out, ReferrerGraph, Step, Walk};
use ferry_oci::manifest::{ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME};
use ferry_oci::{Descriptor, Digest, LayoutArchive, Manifest, Reference};

use crate::route::valid_name;
use crate::{Error, Result};

/// One repository as served: the images of one original registry's path.
#[derive(Debug, Default)]
pub(crate) struct Repo {
    /// The original registry (`docker.io`, `registry.example:5000`); what
    /// containerd sends as `ns=`.
    pub registry: String,
    /// Tags -> manifest digests.
    pub tags: BTreeMap<String, Digest>,
    /// Every manifest the repository serves (named images, their children,
    /// their referrers).
    pub manifests: BTreeSet<Digest>,
    /// Every config and layer it serves.
    pub blobs: BTreeSet<Digest>,
}

impl Repo {
    /// Whether the repository serves `digest` (a manifest or a blob).
    pub fn holds(&self, digest: &Digest) -> bool {
        self.manifests.contains(digest) || self.blobs.contains(digest)
    }
}

/// Where a blob's bytes are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlobLoc {
    /// Index into [`Content::bundles`].
    pub bundle: usize,
    /// Size in bytes.
    pub size: u64,
}

/// Everything served, decided at start.
#[derive(Debug)]
pub(crate) struct Content {
    /// The bundles, in the order given.
    pub bundles: Vec<Arc<LayoutArchive>>,
    /// Every manifest reached, checked against its digest.
    pub manifests: HashMap<Digest, Manifest>,
    /// Every config and layer held, by digest (first bundle holding it).
    pub blobs: HashMap<Digest, BlobLoc>,
    /// Served repository path -> one entry per original registry, sorted.
    pub repos: BTreeMap<String, Vec<Repo>>,
    /// Referrers of each subject: descriptors as the referrers API lists
    /// them, sorted by digest.
    pub referrers: HashMap<Digest, Vec<Descriptor>>,
}

/// What the start-up check found that does not stop the server.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ContentReport {
    /// Bundles opened.
    pub bundles: Vec<PathBuf>,
    /// Repositories served.
    pub repositories: usize,
    /// Tags served.
    pub tags: usize,
    /// Manifests served.
    pub manifests: usize,
    /// Configs and layers served.
    pub blobs: usize,
    /// Their total size.
    pub blob_bytes: u64,
    /// Warnings: blobs the bundles do not carry, paths shared by several
    /// registries, unnamed manifests that refer to nothing.
    pub warnings: Vec<String>,
}

impl Content {
    /// Open `paths` and index what they hold, under `prefix` when given.
    pub fn load(paths: &[PathBuf], prefix: Option<&str>) -> Result<(Content, ContentReport)> {
        if paths.is_empty() {
            return Err(Error::NoBundles);
        }
        if let Some(p) = prefix {
            if !valid_name(p) {
                return Err(Error::InvalidPrefix {
                    prefix: p.to_string(),
                });
            }
        }
        let mut bundles = Vec::new();
        for path in paths {
            let archive = LayoutArchive::open(path).map_err(|source| Error::Bundle {
                path: path.clone(),
                source,
            })?;
            bundles.push(Arc::new(archive));
        }
        let mut blobs = HashMap::new();
        for (i, b) in bundles.iter().enumerate() {
            for e in b.blobs() {
                blobs.entry(e.digest.clone()).or_insert(BlobLoc {
                    bundle: i,
                    size: e.size,
                });
            }
        }
        let mut builder = Builder {
            paths,
            bundles: &bundles,
            blobs: &blobs,
            manifests: HashMap::new(),
            missing: BTreeSet::new(),
        };
        // (registry, served path) -> repo
        let mut repos: BTreeMap<(String, String), Repo> = BTreeMap::new();
        let mut unnamed = Vec::new();
        for (i, bundle) in bundles.iter().enumerate() {
            for descriptor in bundle.index() {
                let Some((recorded, reference)) = name_of(&paths[i], descriptor)? else {
                    unnamed.push((i, descriptor.clone()));
                    continue;
                };
                let served = match prefix {
                    Some(p) => format!("{p}/{}", reference.repository()),
                    None => reference.repository().to_string(),
                };
                let repo = repos
                    .entry((reference.registry().to_string(), served))
                    .or_insert_with(|| Repo {
                        registry: reference.registry().to_string(),
                        ..Repo::default()
                    });
                builder.walk(i, descriptor, &recorded, repo)?;
                if let Some(tag) = reference.tag() {
                    repo.tags.insert(tag.to_string(), descriptor.digest.clone());
                }
            }
        }
        if repos.is_empty() {
            return Err(Error::Empty);
        }
        let mut warnings = Vec::new();
        // Unnamed manifests are referrers: each goes to every repository
        // holding its subject, and referrers of referrers follow
        // (`attach_referrers`, the rule unpack's plan shares).
        let mut pending = Vec::new();
        for (i, descriptor) in unnamed {
            let label = format!("unnamed {}", descriptor.digest);
            let manifest = builder.load(i, &descriptor, &label)?;
            let Some(subject) = manifest.subject() else {
                warnings.push(format!(
                    "{}: index.json lists {} without a name and it refers to nothing; not served",
                    paths[i].display(),
                    descriptor.digest
                ));
                continue;
            };
            // Its own graph, to know what a repository taking it holds.
            let mut own = Repo::default();
            builder.walk(i, &descriptor, &label, &mut own)?;
            let manifests: Vec<Digest> = own.manifests.into_iter().collect();
            pending.push((i, descriptor, subject.digest.clone(), manifests, label));
        }
        let shapes: Vec<ReferrerGraph<'_>> = pending
            .iter()
            .map(|(_, descriptor, subject, manifests, _)| ReferrerGraph {
                digest: &descriptor.digest,
                subject,
                manifests,
            })
            .collect();
        let joined = attach_referrers(repos.values().map(|r| &r.manifests), &shapes);
        let mut by_index: Vec<&mut Repo> = repos.values_mut().collect();
        for ((i, descriptor, subject, _, label), joined) in pending.iter().zip(joined) {
            if joined.is_empty() {
                warnings.push(format!(
                    "{}: {} refers to {subject}, which no named image holds; not served",
                    paths[*i].display(),
                    descriptor.digest
                ));
            }
            for repo in joined {
                builder.walk(*i, descriptor, label, by_index[repo])?;
            }
        }
        let Builder {
            manifests, missing, ..
        } = builder;
        let mut referrers: HashMap<Digest, Vec<Descriptor>> = HashMap::new();
        for m in manifests.values() {
            if let Some(subject) = m.subject() {
                referrers
                    .entry(subject.digest.clone())
                    .or_default()
                    .push(referrer_descriptor(m));
            }
        }
        for list in referrers.values_mut() {
            list.sort_by(|a, b| a.digest.cmp(&b.digest));
        }
        if !missing.is_empty() {
            warnings.push(format!(
                "{} blobs the manifests name are in no bundle given (foreign or \
                 non-distributable layers, or a delta without its base); requests for them \
                 get BLOB_UNKNOWN",
                missing.len()
            ));
        }
        let mut by_path: BTreeMap<String, Vec<Repo>> = BTreeMap::new();
        for ((_, path), repo) in repos {
            by_path.entry(path).or_default().push(repo);
        }
        for (path, list) in &by_path {
            if list.len() > 1 {
                let registries: Vec<&str> = list.iter().map(|r| r.registry.as_str()).collect();
                warnings.push(format!(
                    "{path} holds images from {}; a tag they share resolves only with \
                     containerd's ns=REGISTRY query parameter",
                    registries.join(", ")
                ));
            }
        }
        let served_blobs: BTreeSet<&Digest> =
            by_path.values().flatten().flat_map(|r| &r.blobs).collect();
        let report = ContentReport {
            bundles: paths.to_vec(),
            repositories: by_path.len(),
            tags: by_path.values().flatten().map(|r| r.tags.len()).sum(),
            manifests: manifests.len(),
            blobs: served_blobs.len(),
            blob_bytes: served_blobs
                .iter()
                .filter_map(|d| blobs.get(*d))
                .map(|l| l.size)
                .sum(),
            warnings,
        };
        Ok((
            Content {
                bundles,
                manifests,
                blobs,
                repos: by_path,
                referrers,
            },
            report,
        ))
    }

    /// The repositories at `path`, only the one from registry `ns` when given.
    pub fn repos<'a>(&'a self, path: &str, ns: Option<&str>) -> Vec<&'a Repo> {
        let Some(list) = self.repos.get(path) else {
            return Vec::new();
        };
        list.iter()
            .filter(|r| ns.is_none_or(|ns| same_registry(&r.registry, ns)))
            .collect()
    }
}

/// Whether the recorded registry `recorded` is the one containerd names
/// `ns` (docker.io has several spellings).
fn same_registry(recorded: &str, ns: &str) -> bool {
    let canon = |h: &str| match h {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        other => other.to_ascii_lowercase(),
    };
    canon(recorded) == canon(ns)
}

/// A referrer's descriptor as the referrers API lists it: media type,
/// digest, size, artifact type and the manifest's own annotations.
fn referrer_descriptor(m: &Manifest) -> Descriptor {
    #[derive(serde::Deserialize)]
    struct Annotated {
        #[serde(default)]
        annotations: Option<BTreeMap<String, String>>,
    }
    let mut d = m.descriptor();
    d.artifact_type = m.artifact_type().map(str::to_string);
    d.annotations = serde_json::from_slice::<Annotated>(m.bytes())
        .ok()
        .and_then(|a| a.annotations);
    d
}

/// The recorded name of an `index.json` entry and its reference, or `None`
/// when it has none. A bare tag (`1.0`, as some tools write) is no
/// repository and is refused.
fn name_of(path: &Path, descriptor: &Descriptor) -> Result<Option<(String, Reference)>> {
    let containerd = descriptor.annotation(ANNOTATION_CONTAINERD_NAME);
    let Some(name) = containerd.or(descriptor.annotation(ANNOTATION_REF_NAME)) else {
        return Ok(None);
    };
    let invalid = |source| Error::InvalidName {
        path: path.to_path_buf(),
        digest: descriptor.digest.clone(),
        name: name.to_string(),
        source,
    };
    if containerd.is_none() && !name.contains(['/', ':', '@']) {
        // A bare tag names no repository: serve nothing for it.
        return Ok(None);
    }
    let reference = Reference::parse(name).map_err(invalid)?;
    Ok(Some((name.to_string(), reference)))
}

struct Builder<'a> {
    paths: &'a [PathBuf],
    bundles: &'a [Arc<LayoutArchive>],
    blobs: &'a HashMap<Digest, BlobLoc>,
    manifests: HashMap<Digest, Manifest>,
    missing: BTreeSet<Digest>,
}

impl Builder<'_> {
    /// Read (once), check and parse the manifest `descriptor` points at,
    /// from whichever bundle holds it.
    fn load(&mut self, from: usize, descriptor: &Descriptor, needed_by: &str) -> Result<Manifest> {
        let digest = &descriptor.digest;
        if let Some(m) = self.manifests.get(digest) {
            return Ok(m.clone());
        }
        let path = &self.paths[from];
        let Some(loc) = self.blobs.get(digest).copied() else {
            return Err(Error::ManifestMissing {
                path: path.clone(),
                digest: digest.clone(),
                needed_by: needed_by.to_string(),
            });
        };
        self.check_size(from, descriptor, loc.size, needed_by)?;
        let manifest = self.bundles[loc.bundle]
            .manifest(digest, Some(&descriptor.media_type))
            .map_err(|source| Error::Manifest {
                path: self.paths[loc.bundle].clone(),
                digest: digest.clone(),
                needed_by: needed_by.to_string(),
                source,
            })?;
        self.manifests.insert(digest.clone(), manifest.clone());
        Ok(manifest)
    }

    fn check_size(&self, from: usize, d: &Descriptor, found: u64, needed_by: &str) -> Result<()> {
        if d.size != found {
            return Err(Error::SizeMismatch {
                path: self.paths[from].clone(),
                digest: d.digest.clone(),
                needed_by: needed_by.to_string(),
                expected: d.size,
                found,
            });
        }
        Ok(())
    }

    /// Add `top` and everything below it to `repo`, walking with the one
    /// graph walk ([`Walk`]): depth-bounded, each manifest once. An index
    /// entry no bundle carries is skipped when the shared rule allows it
    /// ([`may_be_left_out`]: a platform left out of a sparse index) and
    /// stops the server otherwise; blobs no bundle carries are counted as
    /// missing.
    fn walk(
        &mut self,
        from: usize,
        top: &Descriptor,
        needed_by: &str,
        repo: &mut Repo,
    ) -> Result<()> {
        let mut walk: Walk = Walk::new(top.clone());
        let mut parents: HashMap<Digest, Manifest> = HashMap::new();
        while let Some(step) = walk.next() {
            match step {
                Step::Fetch {
                    descriptor, parent, ..
                } => {
                    if repo.manifests.contains(&descriptor.digest) {
                        walk.skip();
                        continue;
                    }
                    if let Some(parent) = parent.as_ref().and_then(|p| parents.get(p)) {
                        let carried = |d: &Digest| self.blobs.contains_key(d);
                        if !carried(&descriptor.digest)
                            && may_be_left_out(parent.children(), &descriptor, carried)
                        {
                            walk.skip();
                            continue;
                        }
                    }
                    let manifest = self.load(from, &descriptor, needed_by)?;
                    if !manifest.children().is_empty() {
                        parents.insert(descriptor.digest.clone(), manifest.clone());
                    }
                    walk.enter(manifest);
                }
                Step::Leave {
                    descriptor,
                    manifest,
                    ..
                } => {
                    parents.remove(&descriptor.digest);
                    for blob in manifest.blobs() {
                        match self.blobs.get(&blob.digest) {
                            Some(loc) => {
                                self.check_size(from, blob, loc.size, needed_by)?;
                                repo.blobs.insert(blob.digest.clone());
                            }
                            None => {
                                self.missing.insert(blob.digest.clone());
                            }
                        }
                    }
                    repo.manifests.insert(descriptor.digest);
                }
                Step::TooDeep { descriptor, parent } => {
                    return Err(Error::TooDeep {
                        path: self.paths[from].clone(),
                        digest: descriptor.digest,
                        parent,
                        needed_by: needed_by.to_string(),
                    })
                }
                Step::Cycle { descriptor, parent } => {
                    return Err(Error::Cycle {
                        path: self.paths[from].clone(),
                        digest: descriptor.digest,
                        parent,
                        needed_by: needed_by.to_string(),
                    })
                }
            }
        }
        Ok(())
    }
}
