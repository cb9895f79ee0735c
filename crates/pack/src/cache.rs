//! Per-repository lookups done once per run: a platform release names many
//! tags of each repository, and each reference's walk would otherwise list
//! the repository's tags (and ask the referrers API about shared subjects,
//! or of a registry that has no such API) again.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use ferry_oci::{Descriptor, Digest};
use ferry_registry::{Client, Repository};
use tokio::sync::OnceCell;

/// A repository's tag list: `None` when the registry would not list them.
pub(crate) type Tags = Option<Arc<BTreeSet<String>>>;

/// What the referrers API said of a subject: `None` when it has no such API.
type Referrers = Option<Vec<Descriptor>>;

type Cells<K, V> = Mutex<HashMap<K, Arc<OnceCell<V>>>>;

/// Tag lists and referrer answers, asked once per repository (and subject)
/// for the whole run. Concurrent walks asking the same thing wait for one
/// request; a failed request is not remembered, so the next asker tries
/// again.
#[derive(Default)]
pub(crate) struct RepoCache {
    tags: Cells<Repository, Tags>,
    referrers: Cells<(Repository, Digest), Referrers>,
    /// Whether a repository's registry offers the referrers API, learnt
    /// from the first subject asked there.
    has_api: Cells<Repository, bool>,
}

fn cell<K: std::hash::Hash + Eq, V>(cells: &Cells<K, V>, key: K) -> Arc<OnceCell<V>> {
    let mut cells = cells
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cells.entry(key).or_default().clone()
}

impl RepoCache {
    /// The tags of `repo`, listed on first ask. A registry that refuses to
    /// list them is remembered as such (the walk then asks per tag).
    pub async fn tags(&self, client: &Client, repo: &Repository) -> Tags {
        let cell = cell(&self.tags, repo.clone());
        cell.get_or_init(|| async {
            client
                .list_tags(repo)
                .await
                .ok()
                .map(|tags| Arc::new(tags.into_iter().collect()))
        })
        .await
        .clone()
    }

    /// The referrers API's answer for `subject` in `repo`, asked on first use.
    ///
    /// The first subject asked in a repository also finds out whether the
    /// registry offers the API at all (the others wait for that answer).
    /// One that does not (`404`: a registry that offers it must never
    /// answer so, says the distribution spec) is not asked again in this
    /// run: a release of hundreds of images saves a request per manifest.
    pub async fn referrers(
        &self,
        client: &Client,
        repo: &Repository,
        subject: &Digest,
    ) -> ferry_registry::Result<Referrers> {
        let has_api = cell(&self.has_api, repo.clone());
        let has_api = *has_api
            .get_or_try_init(|| async {
                let answer = self.referrers_of(client, repo, subject).await?;
                Ok::<_, ferry_registry::Error>(answer.is_some())
            })
            .await?;
        if !has_api {
            return Ok(None);
        }
        // The subject that found out is answered from its cell.
        self.referrers_of(client, repo, subject).await
    }

    async fn referrers_of(
        &self,
        client: &Client,
        repo: &Repository,
        subject: &Digest,
    ) -> ferry_registry::Result<Referrers> {
        let cell = cell(&self.referrers, (repo.clone(), subject.clone()));
        cell.get_or_try_init(|| client.referrers(repo, subject))
            .await
            .cloned()
    }
}
