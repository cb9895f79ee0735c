//! Walking what a reference names: index, children, configs, layers and
//! referrers, fetched as exact bytes from the source registry.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use ferry_oci::graph::{cosign_tags, real_platform, select_platforms};
use ferry_oci::layout::BlobClass;
use ferry_oci::{Algorithm, DigestHasher};
use ferry_oci::{Descriptor, Digest, Manifest, Platform, Reference, Step, Walk, MAX_DEPTH};
use ferry_registry::{Client, Repository};

use crate::cache::{RepoCache, Tags};
use crate::{Error, Result};

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
    cache: &RepoCache,
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
    let algorithm = reference
        .digest()
        .map_or(Algorithm::Sha256, Digest::algorithm);
    let root = parse_as(&label, fetched.bytes, Some(&fetched.media_type), algorithm)?;
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
        cache,
        repo: &repo,
        label: &label,
        resolved: &mut resolved,
    };
    walker.walk(root, &options.platforms, true).await?;
    if options.referrers {
        walker.follow_referrers().await?;
    }
    Ok(resolved)
}

fn parse(label: &str, bytes: Vec<u8>, media_type: Option<&str>) -> Result<Manifest> {
    parse_as(label, bytes, media_type, Algorithm::Sha256)
}

/// Parse a manifest whose digest is taken under `algorithm` (that of the
/// descriptor or reference naming it).
fn parse_as(
    label: &str,
    bytes: Vec<u8>,
    media_type: Option<&str>,
    algorithm: Algorithm,
) -> Result<Manifest> {
    let mut hasher = DigestHasher::new(algorithm);
    hasher.update(&bytes);
    let digest = hasher.finish();
    Manifest::parse_as(bytes, media_type, algorithm).map_err(|source| Error::Manifest {
        reference: label.to_string(),
        digest,
        source,
    })
}

struct Walker<'a> {
    client: &'a Client,
    cache: &'a RepoCache,
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
        parse_as(
            self.label,
            fetched.bytes,
            Some(media_type),
            descriptor.digest.algorithm(),
        )
    }

    /// Walk `root` and below through the one graph walk. `top` marks the
    /// manifest the reference names, where the platform filter applies.
    async fn walk(&mut self, root: Manifest, platforms: &[Platform], top: bool) -> Result<()> {
        if self.resolved.manifests.contains_key(root.digest()) {
            return Ok(());
        }
        let mut walk = Walk::new(root.descriptor());
        for digest in self.resolved.manifests.keys() {
            walk.visited(digest.clone());
        }
        let mut root = Some(root);
        let mut carried: HashSet<Digest> = HashSet::new();
        while let Some(step) = walk.next() {
            match step {
                Step::Fetch {
                    descriptor, depth, ..
                } => {
                    let Some(manifest) = root.take() else {
                        if depth == 1 && !carried.contains(&descriptor.digest) {
                            continue;
                        }
                        walk.enter(self.fetch(&descriptor).await?);
                        continue;
                    };
                    carried = if manifest.is_index() {
                        let filter = if top { platforms } else { &[] };
                        self.select(&manifest, filter)?
                    } else {
                        HashSet::new()
                    };
                    walk.enter(manifest);
                }
                Step::Leave {
                    descriptor,
                    manifest,
                    ..
                } => {
                    self.add_blobs(&manifest, descriptor.platform);
                    self.resolved
                        .manifests
                        .insert(manifest.digest().clone(), manifest);
                }
                Step::TooDeep { .. } | Step::Cycle { .. } => {
                    return Err(Error::TooDeep {
                        reference: self.label.to_string(),
                        limit: MAX_DEPTH,
                    })
                }
            }
        }
        Ok(())
    }

    /// The entries of a top index to carry, given the platform filter;
    /// records platforms carried and left out.
    fn select(&mut self, index: &Manifest, filter: &[Platform]) -> Result<HashSet<Digest>> {
        let children = index.children();
        let chosen = select_platforms(children, filter);
        let mut carried_any = filter.is_empty() || children.is_empty();
        let mut carried = HashSet::new();
        for (child, chosen) in children.iter().zip(chosen) {
            if let Some(p) = real_platform(child).cloned() {
                if chosen {
                    carried_any = true;
                    self.resolved.platforms_carried.push(p);
                } else {
                    self.resolved.platforms_left_out.push(p);
                }
            }
            if chosen {
                carried.insert(child.digest.clone());
            }
        }
        if !carried_any {
            return Err(Error::NoMatchingPlatform {
                reference: self.resolved.reference.clone(),
                wanted: list(filter.iter()),
                available: list(children.iter().filter_map(real_platform)),
            });
        }
        Ok(carried)
    }

    /// Record the config and layers of an image.
    fn add_blobs(&mut self, manifest: &Manifest, platform: Option<Platform>) {
        if let Some(config) = manifest.config() {
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

    /// Find referrers of every manifest carried so far (children included),
    /// and of the referrers themselves.
    async fn follow_referrers(&mut self) -> Result<()> {
        let tags: Tags = self.cache.tags(self.client, self.repo).await;
        let mut pending: VecDeque<Digest> = self.resolved.manifests.keys().cloned().collect();
        let mut seen: BTreeSet<Digest> = BTreeSet::new();
        while let Some(subject) = pending.pop_front() {
            if !seen.insert(subject.clone()) {
                continue;
            }
            let mut found: Vec<Descriptor> = Vec::new();
            let api = self
                .cache
                .referrers(self.client, self.repo, &subject)
                .await
                .map_err(|source| Error::Registry {
                    reference: self.label.to_string(),
                    source,
                })?;
            match api {
                Some(list) => found.extend(list),
                None => {
                    let tag = subject.tag_form();
                    if self.tag_exists(tags.as_deref(), &tag).await? {
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
                self.walk(m, &[], false).await?;
                pending.push_back(digest);
            }
            for tag in cosign_tags(&subject) {
                if !self.tag_exists(tags.as_deref(), &tag).await? {
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
                self.walk(m, &[], false).await?;
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

fn list<'a>(platforms: impl Iterator<Item = &'a Platform>) -> String {
    let names: Vec<String> = platforms.map(Platform::to_string).collect();
    if names.is_empty() {
        "no platforms".to_string()
    } else {
        names.join(", ")
    }
}
