//! Where the target's tags point before anything is pushed: what
//! `--existing-tag` decides on, what `--check` reports, and what tells a
//! repository the target has never tagged anything in.
//!
//! Each repository of the plan is listed once (`GET tags/list`); only the
//! tags the list names are looked up (`HEAD`) for their digest. A platform
//! release pushed for the first time sends one list per repository rather
//! than one `HEAD` per tag; a repeat sends the list and a `HEAD` per tag.
//! A registry that will not list (an error other than "no such
//! repository") is asked one `HEAD` per tag, as before lists were used.

use std::collections::{BTreeMap, BTreeSet};

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
    /// Repositories of the plan (paths, no host) in which the target listed
    /// no tag at all: a first unpack there, or the remains of one stopped
    /// before its first tag.
    pub untagged: BTreeSet<String>,
}

/// Look up every tag `plan` sets: one tag list per repository, then one
/// `HEAD` per tag the list names (a `GET` when the registry answers
/// without a digest); `jobs` requests at once.
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
    let listed: Vec<(&str, Option<BTreeSet<String>>)> = futures_util::stream::iter(by_repo.keys())
        .map(|&path| {
            let repo = Repository::new(host.clone(), path.to_string());
            async move {
                // A list refused is no loss: each tag is asked instead.
                let tags = client.list_tags(&repo).await.ok();
                (path, tags.map(|t| t.into_iter().collect()))
            }
        })
        .buffered(jobs.max(1))
        .collect()
        .await;
    let mut out = TargetTags::default();
    let mut to_ask = Vec::new();
    for (path, tags) in listed {
        let images = &by_repo[path];
        match tags {
            Some(tags) if tags.is_empty() => {
                out.untagged.insert(path.to_string());
                out.current.extend(images.iter().map(|&(i, _)| (i, None)));
            }
            Some(tags) => {
                for &(i, tag) in images {
                    if tags.contains(tag) {
                        to_ask.push((i, path, tag));
                    } else {
                        out.current.push((i, None));
                    }
                }
            }
            None => to_ask.extend(images.iter().map(|&(i, tag)| (i, path, tag))),
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
