//! Walking what a reference names: index, children, configs, layers and
//! referrers, fetched as exact bytes from the source registry.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use ferry_oci::layout::BlobClass;
use ferry_oci::{Descriptor, Digest, Manifest, Platform, Reference};
use ferry_registry::{Client, Repository};

use crate::{Error, Result};

/// How deep indexes may nest (index -> index -> manifest is depth 2).
const MAX_DEPTH: usize = 8;
/// Suffixes cosign (and friends) tag beside a digest.
const COSIGN_SUFFIXES: &[&str] = &["sig", "att", "sbom"];

/// Everything one reference brings into the bundle.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// The reference as the user named it, normalized.
    pub reference: Reference,
    /// The top-level manifest.
    pub root: Descriptor,
    /// The config digest of each image carried (platform, config).
    pub images: Vec<(Option<Platform>, Digest)>,
    /// Platforms of the index that were carried.
    pub platforms_carried: Vec<Platform>,
    /// Platforms of the index that were left out.
    pub platforms_left_out: Vec<Platform>,
    /// Every manifest reached, by digest.
    pub manifests: BTreeMap<Digest, Manifest>,
    /// Every config and layer reached.
    pub blobs: BTreeMap<Digest, (u64, BlobClass)>,
    /// Referrers found through the referrers API or tag schema (unnamed).
    pub referrers: BTreeMap<Digest, Descriptor>,
    /// Referrers found as cosign-style tags (named).
    pub tagged: BTreeMap<String, Descriptor>,
}

impl Resolved {
    /// The repository the content came from.
    pub fn repository(&self) -> Repository {
        Repository::new(self.reference.registry(), self.reference.repository())
    }
}

/// What to follow.
#[derive(Debug, Clone)]
pub(crate) struct WalkOptions {
    pub platforms: Vec<Platform>,
    pub referrers: bool,
}

/// Fetch and walk everything `reference` names.
pub(crate) async fn resolve(
    client: &Client,
    reference: &Reference,
    options: &WalkOptions,
) -> Result<Resolved> {
    let repo = Repository::new(reference.registry(), reference.repository());
    let label = reference.to_string();
    let registry_error = |source| Error::Registry {
        reference: label.clone(),
        source,
    };
    let fetched = client
        .get_manifest(&repo, &reference.tag_or_digest())
        .await
        .map_err(registry_error)?;
    let root = parse(&label, fetched.bytes, Some(&fetched.media_type))?;
    let mut resolved = Resolved {
        reference: reference.clone(),
        root: root.descriptor(),
        images: Vec::new(),
        platforms_carried: Vec::new(),
        platforms_left_out: Vec::new(),
        manifests: BTreeMap::new(),
        blobs: BTreeMap::new(),
        referrers: BTreeMap::new(),
        tagged: BTreeMap::new(),
    };
    let mut walker = Walker {
        client,
        repo: &repo,
        label: &label,
        resolved: &mut resolved,
    };
    walker.walk(root, &options.platforms, 0, true).await?;
    if options.referrers {
        walker.follow_referrers().await?;
    }
    Ok(resolved)
}

fn parse(label: &str, bytes: Vec<u8>, media_type: Option<&str>) -> Result<Manifest> {
    let digest = Digest::sha256_of(&bytes);
    Manifest::parse(bytes, media_type).map_err(|source| Error::Manifest {
        reference: label.to_string(),
        digest,
        source,
    })
}

struct Walker<'a> {
    client: &'a Client,
    repo: &'a Repository,
    label: &'a str,
    resolved: &'a mut Resolved,
}

impl Walker<'_> {
    async fn fetch(&self, descriptor: &Descriptor) -> Result<Manifest> {
        let fetched = self
            .client
            .get_manifest(self.repo, &descriptor.digest.to_string())
            .await
            .map_err(|source| Error::Registry {
                reference: self.label.to_string(),
                source,
            })?;
        if fetched.bytes.len() as u64 != descriptor.size {
            return Err(Error::BlobSizeMismatch {
                reference: self.label.to_string(),
                digest: descriptor.digest.clone(),
                expected: descriptor.size,
                found: fetched.bytes.len() as u64,
            });
        }
        // The descriptor's media type wins where the server sent none useful.
        let media_type = if fetched.media_type.is_empty() {
            descriptor.media_type.as_str()
        } else {
            fetched.media_type.as_str()
        };
        parse(self.label, fetched.bytes, Some(media_type))
    }

    /// Walk `manifest` and below. `top` marks the manifest the reference
    /// names, where the platform filter applies.
    async fn walk(
        &mut self,
        root: Manifest,
        platforms: &[Platform],
        depth: usize,
        top: bool,
    ) -> Result<()> {
        let mut queue = VecDeque::from([(root, depth, top)]);
        while let Some((manifest, depth, top)) = queue.pop_front() {
            if depth > MAX_DEPTH {
                return Err(Error::TooDeep {
                    reference: self.label.to_string(),
                    limit: MAX_DEPTH,
                });
            }
            if self.resolved.manifests.contains_key(manifest.digest()) {
                continue;
            }
            if manifest.is_index() {
                let children = manifest.children().to_vec();
                let filter = if top { platforms } else { &[] };
                let mut carried_any = filter.is_empty() || children.is_empty();
                for child in &children {
                    let carried = filter.is_empty() || wanted(child, filter);
                    if let Some(p) = child.platform.clone().filter(|p| p.os != "unknown") {
                        if carried {
                            self.resolved.platforms_carried.push(p);
                        } else {
                            self.resolved.platforms_left_out.push(p);
                        }
                    }
                    if carried {
                        if child.platform.as_ref().is_some_and(|p| p.os != "unknown") {
                            carried_any = true;
                        }
                        let m = self.fetch(child).await?;
                        queue.push_back((m, depth + 1, false));
                    }
                }
                if !carried_any {
                    return Err(Error::NoMatchingPlatform {
                        reference: self.resolved.reference.clone(),
                        wanted: list(filter.iter()),
                        available: list(children.iter().filter_map(|c| c.platform.as_ref())),
                    });
                }
            } else {
                if let Some(config) = manifest.config() {
                    let platform = self.platform_of(manifest.digest());
                    self.resolved.images.push((platform, config.digest.clone()));
                }
                for (i, blob) in manifest.blobs().enumerate() {
                    let class = if i == 0 && manifest.config().is_some() {
                        BlobClass::Config
                    } else {
                        BlobClass::Layer
                    };
                    let entry = self
                        .resolved
                        .blobs
                        .entry(blob.digest.clone())
                        .or_insert((blob.size, class));
                    if entry.1 > class {
                        entry.1 = class;
                    }
                }
            }
            self.resolved
                .manifests
                .insert(manifest.digest().clone(), manifest);
        }
        Ok(())
    }

    fn platform_of(&self, digest: &Digest) -> Option<Platform> {
        self.resolved
            .manifests
            .values()
            .flat_map(|m| m.children())
            .find(|c| &c.digest == digest)
            .and_then(|c| c.platform.clone())
    }

    /// Find referrers of every manifest carried so far (children included),
    /// and of the referrers themselves.
    async fn follow_referrers(&mut self) -> Result<()> {
        let tags = match self.client.list_tags(self.repo).await {
            Ok(tags) => Some(tags.into_iter().collect::<BTreeSet<_>>()),
            Err(_) => None,
        };
        let mut pending: VecDeque<Digest> = self.resolved.manifests.keys().cloned().collect();
        let mut seen: BTreeSet<Digest> = BTreeSet::new();
        while let Some(subject) = pending.pop_front() {
            if !seen.insert(subject.clone()) {
                continue;
            }
            let mut found: Vec<Descriptor> = Vec::new();
            let api = self
                .client
                .referrers(self.repo, &subject)
                .await
                .map_err(|source| Error::Registry {
                    reference: self.label.to_string(),
                    source,
                })?;
            match api {
                Some(list) => found.extend(list),
                None => {
                    let tag = subject.tag_form();
                    if self.tag_exists(tags.as_ref(), &tag).await? {
                        let index = self.fetch_tag(&tag).await?;
                        found.extend(index.children().iter().cloned());
                    }
                }
            }
            for descriptor in found {
                if self.resolved.manifests.contains_key(&descriptor.digest) {
                    continue;
                }
                let m = self.fetch(&descriptor).await?;
                let digest = m.digest().clone();
                let mut entry = m.descriptor();
                entry.artifact_type = m.artifact_type().map(str::to_string);
                self.resolved.referrers.insert(digest.clone(), entry);
                self.walk(m, &[], 1, false).await?;
                pending.push_back(digest);
            }
            for suffix in COSIGN_SUFFIXES {
                let tag = format!("{}.{suffix}", subject.tag_form());
                if !self.tag_exists(tags.as_ref(), &tag).await? {
                    continue;
                }
                let m = self.fetch_tag(&tag).await?;
                let digest = m.digest().clone();
                let name =
                    self.resolved
                        .reference
                        .with_tag(&tag)
                        .map_err(|source| Error::Manifest {
                            reference: self.label.to_string(),
                            digest: digest.clone(),
                            source,
                        })?;
                self.resolved
                    .tagged
                    .insert(name.to_string(), m.descriptor());
                self.walk(m, &[], 1, false).await?;
                pending.push_back(digest);
            }
        }
        Ok(())
    }

    async fn tag_exists(&self, tags: Option<&BTreeSet<String>>, tag: &str) -> Result<bool> {
        if let Some(tags) = tags {
            return Ok(tags.contains(tag));
        }
        let head = self
            .client
            .head_manifest(self.repo, tag)
            .await
            .map_err(|source| Error::Registry {
                reference: self.label.to_string(),
                source,
            })?;
        Ok(head.is_some())
    }

    async fn fetch_tag(&self, tag: &str) -> Result<Manifest> {
        let fetched = self
            .client
            .get_manifest(self.repo, tag)
            .await
            .map_err(|source| Error::Registry {
                reference: format!("{}:{tag}", self.repo),
                source,
            })?;
        parse(self.label, fetched.bytes, Some(&fetched.media_type))
    }
}

fn wanted(child: &Descriptor, filter: &[Platform]) -> bool {
    match &child.platform {
        // Attestations and other platform-less children come along.
        None => true,
        Some(p) if p.os == "unknown" => true,
        Some(p) => filter.iter().any(|w| p.matches(w)),
    }
}

fn list<'a>(platforms: impl Iterator<Item = &'a Platform>) -> String {
    let names: Vec<String> = platforms.map(Platform::to_string).collect();
    if names.is_empty() {
        "no platforms".to_string()
    } else {
        names.join(", ")
    }
}
