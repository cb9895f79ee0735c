//! `verify --mapping`: a relocation checked against the target registry.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Display;
use std::path::{Path, PathBuf};

use ferry_oci::graph::{may_be_left_out, real_platform};
use ferry_oci::{Descriptor, Digest, Manifest, Platform, Reference, Step, Walk, MAX_DEPTH};
use ferry_registry::{Client, Repository};
use futures_util::stream::{self, StreamExt};
use serde::Serialize;

use crate::problem::{error_chain, Problem, Problems};
use crate::report::BundleReport;
use crate::{Error, Result};

/// A relocation mapping: original reference to relocated reference
/// (`HOST[:PORT]/PATH[:TAG]@sha256:...`), as `ferry unpack --mapping` writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Mapping {
    /// The entries, sorted by original reference.
    pub entries: BTreeMap<String, String>,
    /// Where it was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

impl Mapping {
    /// Read a mapping file.
    pub fn load(path: &Path) -> Result<Mapping> {
        let bytes = std::fs::read(path).map_err(|source| Error::MappingRead {
            path: path.to_path_buf(),
            source,
        })?;
        let entries = serde_json::from_slice(&bytes).map_err(|source| Error::MappingJson {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Mapping {
            entries,
            path: path.to_path_buf(),
        })
    }
}

/// How [`verify_mapping`] runs.
#[derive(Debug, Clone, Copy)]
pub struct MappingOptions {
    /// How many registry requests (blob HEADs) are in flight at once.
    pub jobs: usize,
}

impl Default for MappingOptions {
    fn default() -> MappingOptions {
        MappingOptions { jobs: 8 }
    }
}

/// The check of one mapping entry.
#[derive(Debug, Clone, Serialize)]
pub struct MappingCheck {
    /// The original reference.
    pub original: String,
    /// The relocated reference.
    pub relocated: String,
    /// Whether everything below it holds.
    pub ok: bool,
    /// Manifests fetched by digest.
    pub manifests: u64,
    /// Blobs found present.
    pub blobs: u64,
    /// Platforms of a sparse index that are not in the target.
    pub platforms_not_carried: Vec<String>,
}

/// The outcome of [`verify_mapping`].
#[derive(Debug, Clone, Serialize)]
pub struct MappingReport {
    /// True when every entry holds (and, with a bundle, every reference in it
    /// is mapped).
    pub ok: bool,
    /// Problems that fail the check.
    pub errors: u64,
    /// One per mapping entry.
    pub references: Vec<MappingCheck>,
    /// The findings; each names the original reference.
    pub problems: Vec<Problem>,
}

/// Check `mapping` against the registries it names: every relocated
/// reference's tag resolves (HEAD) to the digest recorded, every manifest
/// below it is served by digest, and every config and layer exists (HEAD).
/// With `bundle`, every named reference in the bundle must be mapped to its
/// bundle digest. Children missing from a sparse index are platforms not
/// carried, not problems.
pub async fn verify_mapping(
    client: &Client,
    mapping: &Mapping,
    bundle: Option<&BundleReport>,
    options: MappingOptions,
) -> MappingReport {
    let mut problems = Problems::default();
    if let Some(bundle) = bundle {
        for r in &bundle.references {
            let Some(name) = &r.reference else { continue };
            match mapping.entries.get(name) {
                None => problems.push(
                    Problem::error(name, "is in the bundle but not in the mapping")
                        .expected_found("a mapping entry", "none"),
                ),
                Some(relocated) => {
                    let pinned = Reference::parse(relocated)
                        .ok()
                        .and_then(|r| r.digest().cloned());
                    if pinned.as_ref().is_some_and(|d| d != &r.digest) {
                        problems.push(
                            Problem::error(
                                name,
                                format!("mapped to {relocated}, another digest than the bundle's"),
                            )
                            .expected_found(&r.digest, pinned.expect("checked above")),
                        );
                    }
                }
            }
        }
    }
    let mut checks = Vec::new();
    for (original, relocated) in &mapping.entries {
        let mut c = Checker {
            client,
            original,
            problems: &mut problems,
            jobs: options.jobs.max(1),
            seen: HashSet::new(),
            check: MappingCheck {
                original: original.clone(),
                relocated: relocated.clone(),
                ok: true,
                manifests: 0,
                blobs: 0,
                platforms_not_carried: Vec::new(),
            },
        };
        let before = c.problems.errors();
        c.entry(relocated).await;
        c.check.ok = c.problems.errors() == before;
        checks.push(c.check);
    }
    let errors = problems.errors();
    MappingReport {
        ok: errors == 0,
        errors,
        references: checks,
        problems: problems.list,
    }
}

struct Checker<'a> {
    client: &'a Client,
    original: &'a str,
    problems: &'a mut Problems,
    jobs: usize,
    seen: HashSet<Digest>,
    check: MappingCheck,
}

impl Checker<'_> {
    fn problem(&mut self, message: String) {
        self.problems.push(Problem::error(self.original, message));
    }

    fn problem_ef(&mut self, message: String, expected: impl Display, found: impl Display) {
        self.problems
            .push(Problem::error(self.original, message).expected_found(expected, found));
    }

    async fn entry(&mut self, relocated: &str) {
        let reference = match Reference::parse(relocated) {
            Ok(r) => r,
            Err(e) => {
                self.problem(format!(
                    "relocated reference does not parse: {}",
                    error_chain(&e)
                ));
                return;
            }
        };
        let Some(digest) = reference.digest().cloned() else {
            self.problem(format!(
                "relocated reference {relocated} is not pinned by digest"
            ));
            return;
        };
        let repo = Repository::from(&reference);
        if let Some(tag) = reference.tag() {
            let served = match self.client.head_manifest(&repo, tag).await {
                Ok(Some(head)) => match head.digest {
                    Some(d) => Some(d),
                    None => self
                        .client
                        .get_manifest(&repo, tag)
                        .await
                        .ok()
                        .map(|m| m.digest),
                },
                Ok(None) => None,
                Err(e) => {
                    self.problem(format!(
                        "cannot check tag {repo}:{tag}: {}",
                        error_chain(&e)
                    ));
                    return;
                }
            };
            match served {
                None => {
                    self.problem_ef(
                        format!("tag {repo}:{tag} does not exist in the target"),
                        &digest,
                        "no such tag",
                    );
                }
                Some(found) if found != digest => {
                    self.problem_ef(
                        format!("tag {repo}:{tag} resolves to another manifest than recorded"),
                        &digest,
                        found,
                    );
                }
                Some(_) => {}
            }
        }
        self.manifest(&repo, &digest).await;
    }

    /// Fetch the manifest `root` by digest and check everything below it,
    /// through the one graph walk (bounded by [`MAX_DEPTH`]).
    async fn manifest(&mut self, repo: &Repository, root: &Digest) {
        let mut absent: HashSet<Digest> = HashSet::new();
        let mut walk = Walk::new(Descriptor::new("", root.clone(), 0));
        while let Some(step) = walk.next() {
            match step {
                Step::Fetch {
                    descriptor, parent, ..
                } => {
                    let digest = &descriptor.digest;
                    let fetched = match self.client.get_manifest(repo, &digest.to_string()).await {
                        Ok(f) => f,
                        Err(ferry_registry::Error::NotFound { .. }) => {
                            absent.insert(digest.clone());
                            continue;
                        }
                        Err(e) => {
                            self.problem(format!(
                                "cannot fetch manifest {repo}@{digest}: {}",
                                error_chain(&e)
                            ));
                            continue;
                        }
                    };
                    self.check.manifests += 1;
                    let served = match parent {
                        Some(_) => descriptor.media_type.clone(),
                        None => fetched.media_type,
                    };
                    match Manifest::parse_as(fetched.bytes, Some(&served), digest.algorithm()) {
                        Ok(m) => walk.enter(m),
                        Err(e) => self.problem(format!(
                            "manifest {repo}@{digest} does not parse: {}",
                            error_chain(&e)
                        )),
                    }
                }
                Step::Leave {
                    descriptor,
                    manifest,
                    ..
                } => {
                    if manifest.is_index() {
                        self.absent_children(repo, &descriptor.digest, &manifest, &absent);
                    } else {
                        self.blobs(repo, &descriptor.digest, &manifest).await;
                    }
                }
                Step::TooDeep { descriptor, parent } => self.problem(format!(
                    "index {repo}@{parent} lists {}, deeper than {MAX_DEPTH} levels of indexes; \
                     not followed",
                    descriptor.digest
                )),
                Step::Cycle { descriptor, parent } => self.problem(format!(
                    "index {repo}@{parent} lists {}, which lists it in turn (a cycle)",
                    descriptor.digest
                )),
            }
        }
    }

    /// Entries of an index the target does not have: platforms left out
    /// of a sparse index, or problems.
    fn absent_children(
        &mut self,
        repo: &Repository,
        digest: &Digest,
        index: &Manifest,
        absent: &HashSet<Digest>,
    ) {
        let present = |d: &Digest| !absent.contains(d);
        for child in index.children().iter().filter(|c| !present(&c.digest)) {
            let shown = child
                .platform
                .as_ref()
                .map(Platform::to_string)
                .unwrap_or_else(|| "no platform".into());
            if may_be_left_out(index.children(), child, present) {
                if real_platform(child).is_some() {
                    self.check.platforms_not_carried.push(shown);
                }
                continue;
            }
            self.problem_ef(
                format!(
                    "index {repo}@{digest} lists manifest {} ({shown}), which the target does not have",
                    child.digest
                ),
                "the manifest",
                "404 Not Found",
            );
        }
    }

    /// Check that every config and layer of image `digest` exists.
    async fn blobs(&mut self, repo: &Repository, digest: &Digest, m: &Manifest) {
        let blobs: BTreeSet<Digest> = m
            .blobs()
            .map(|b| b.digest.clone())
            .filter(|d| !self.seen.contains(d))
            .collect();
        self.seen.extend(blobs.iter().cloned());
        let client = self.client;
        let mut results: Vec<_> = stream::iter(blobs)
            .map(|d| async move {
                let r = client.blob_exists(repo, &d).await;
                (d, r)
            })
            .buffer_unordered(self.jobs)
            .collect()
            .await;
        results.sort_by(|a, b| a.0.cmp(&b.0));
        for (d, r) in results {
            match r {
                Ok(true) => self.check.blobs += 1,
                Ok(false) => {
                    self.problem_ef(
                        format!("blob {d} of manifest {repo}@{digest} is missing from the target"),
                        "the blob",
                        "404 Not Found",
                    );
                }
                Err(e) => {
                    self.problem(format!("cannot check blob {repo}@{d}: {}", error_chain(&e)));
                }
            }
        }
    }
}
