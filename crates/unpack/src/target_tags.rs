//! Where the target's tags point before anything is pushed: what
//! `--existing-tag` decides on, what `--check` reports, and what tells a
//! repository that holds nothing yet.
//!
//! First the registry's catalog, read once, when it answers it whole (every
//! page, at most [`CATALOG_PAGES`], within [`CATALOG_BUDGET`]): a
//! repository it does not list holds
//! nothing, so none of its tags is asked for. Each repository it lists is
//! asked one `HEAD` per tag. A registry that refuses the catalog, or holds
//! too many repositories to read it, gets one tag list per repository
//! instead (`GET tags/list`), and a `HEAD` only for the tags a list names.
//! A platform release pushed for the first time sends one catalog request;
//! a repeat sends it and a `HEAD` per tag. A registry that will not list
//! tags either is asked one `HEAD` per tag.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};

use ferry_oci::Digest;
use ferry_registry::{Client, Repository};

use crate::{Error, Plan, Result};

/// The target's tags as the plan meets them.
#[derive(Debug, Default)]
pub(crate) struct TargetTags {
    /// Where each tag the plan sets points now (`None`: no such tag), by
    /// image index.
    pub current: Vec<(usize, Option<Digest>)>,
    /// Repositories of the plan (paths, no host) that hold nothing (not in
    /// the catalog) or no tag at all (an empty tag list): a first unpack
    /// there, or the remains of one stopped before its first tag.
    pub untagged: BTreeSet<String>,
}

/// Catalog pages (of 1,000 repositories) read at most; a registry with more
/// is asked per repository.
const CATALOG_PAGES: usize = 10;

/// How long the catalog may take before each repository is listed instead.
/// distribution answers it by walking its storage (`catalog.go`: "a quite
/// expensive operation"); on a large registry over object storage that can
/// take far longer than the tag lists it would save.
const CATALOG_BUDGET: Duration = Duration::from_secs(2);

/// What the target is known to hold in one repository before its tags are
/// asked for.
enum Known {
    /// Nothing: not in the catalog, or no tag in its list.
    Nothing,
    /// These tags (its list).
    Tags(BTreeSet<String>),
    /// Not known: ask each tag.
    Ask,
}

/// Look up every tag `plan` sets: the catalog, or one tag list per
/// repository, then one `HEAD` per tag that may exist (a `GET` when the
/// registry answers without a digest); `jobs` requests at once.
pub(crate) async fn look_up(client: &Client, plan: &Plan, jobs: usize) -> Result<TargetTags> {
    let host = plan.target.registry().to_string();
    let mut by_repo: BTreeMap<&str, Vec<(usize, &str)>> = BTreeMap::new();
    for (i, image) in plan.images.iter().enumerate() {
        if let Some(tag) = image.relocated.tag() {
            by_repo
                .entry(image.repository_path())
                .or_default()
                .push((i, tag));
        }
    }
    // A catalog refused is no loss: each repository is listed instead.
    let registry = Repository::new(host.clone(), String::new());
    let catalog = if by_repo.is_empty() {
        None
    } else {
        let whole = client.catalog_whole(&registry, CATALOG_PAGES);
        let whole = tokio::time::timeout(CATALOG_BUDGET, whole).await;
        whole.ok().and_then(Result::ok).flatten()
    };
    let known: Vec<(&str, Known)> = futures_util::stream::iter(by_repo.keys())
        .map(|&path| {
            let repo = Repository::new(host.clone(), path.to_string());
            let in_catalog = catalog.as_ref().map(|c| c.contains(path));
            async move {
                let known = match in_catalog {
                    Some(false) => Known::Nothing,
                    Some(true) => Known::Ask,
                    // A list refused is no loss: each tag is asked instead.
                    None => match client.list_tags(&repo).await {
                        Ok(tags) if tags.is_empty() => Known::Nothing,
                        Ok(tags) => Known::Tags(tags.into_iter().collect()),
                        Err(_) => Known::Ask,
                    },
                };
                (path, known)
            }
        })
        .buffered(jobs.max(1))
        .collect()
        .await;
    let mut out = TargetTags::default();
    let mut to_ask = Vec::new();
    for (path, known) in known {
        let images = &by_repo[path];
        match known {
            Known::Nothing => {
                out.untagged.insert(path.to_string());
                out.current.extend(images.iter().map(|&(i, _)| (i, None)));
            }
            Known::Tags(tags) => {
                for &(i, tag) in images {
                    if tags.contains(tag) {
                        to_ask.push((i, path, tag));
                    } else {
                        out.current.push((i, None));
                    }
                }
            }
            Known::Ask => to_ask.extend(images.iter().map(|&(i, tag)| (i, path, tag))),
        }
    }
    let asked: Vec<(usize, Option<Digest>)> = futures_util::stream::iter(to_ask)
        .map(|(i, path, tag)| {
            let repo = Repository::new(host.clone(), path.to_string());
            let name = plan.images[i].repository.as_str();
            async move { Ok::<_, Error>((i, tag_digest(client, &repo, name, tag).await?)) }
        })
        .buffered(jobs.max(1))
        .try_collect()
        .await?;
    out.current.extend(asked);
    out.current.sort_by_key(|&(i, _)| i);
    Ok(out)
}

/// The digest `tag` of `repo` points at, if it exists (`name`: the
/// repository as the user knows it, for messages).
async fn tag_digest(
    client: &Client,
    repo: &Repository,
    name: &str,
    tag: &str,
) -> Result<Option<Digest>> {
    let registry = |what: String| move |source| Error::Registry { what, source };
    let head = client
        .head_manifest(repo, tag)
        .await
        .map_err(registry(format!("looking up tag {name}:{tag}")))?;
    let Some(head) = head else {
        return Ok(None);
    };
    if let Some(digest) = head.digest {
        return Ok(Some(digest));
    }
    // No digest header: ask for the bytes.
    let manifest = client
        .get_manifest(repo, tag)
        .await
        .map_err(registry(format!("reading tag {name}:{tag}")))?;
    Ok(Some(manifest.digest))
}
