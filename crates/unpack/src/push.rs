//! The registry half of unpack: blobs streamed from the archive (or
//! skipped, or mounted), manifests as exact bytes, tags, and the referrers
//! tag schema.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use ferry_oci::layout::read_full;
use ferry_oci::{media_type, Descriptor, Digest, LayoutArchive, Progress};
use ferry_registry::{Client, MountOutcome, Repository, SINGLE_REQUEST_UPLOAD_MAX};

use crate::plan::PlannedManifest;
use crate::{Error, PlannedReferrer, Result};
use ferry_oci::error_chain;

/// Bytes per chunk of an upload body; with the bounded channel, about the
/// most memory one upload holds.
const CHUNK: usize = 256 << 10;
/// Chunks buffered between the reading thread and the upload.
pub(crate) const CHUNKS_IN_FLIGHT: usize = 4;

/// Counters for the summary.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub blobs_uploaded: AtomicU64,
    pub blobs_mounted: AtomicU64,
    pub blobs_present: AtomicU64,
    pub bytes_uploaded: AtomicU64,
    pub manifests_pushed: AtomicU64,
    pub manifests_present: AtomicU64,
    pub tags_set: AtomicU64,
    pub tags_unchanged: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// An upload body: chunks from a reading thread.
pub(crate) type BodyChunks = tokio::sync::mpsc::Receiver<io::Result<Bytes>>;

/// Pushes into one target registry.
pub(crate) struct Pusher {
    pub client: Client,
    pub progress: Arc<dyn Progress>,
    pub stats: Stats,
    /// Blobs known to be in a repository of the target: digest -> path.
    located: Mutex<HashMap<Digest, String>>,
    /// Bounds the registry requests for blobs in flight, over every
    /// repository being filled at once.
    transfers: Semaphore,
    /// One lock per blob: repositories needing the same blob take turns, so
    /// it is uploaded once and mounted into the others.
    per_blob: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
}

impl Pusher {
    pub fn new(client: Client, jobs: usize, progress: Arc<dyn Progress>) -> Pusher {
        Pusher {
            client,
            progress,
            stats: Stats::default(),
            located: Mutex::new(HashMap::new()),
            transfers: Semaphore::new(jobs.max(1)),
            per_blob: Mutex::new(HashMap::new()),
        }
    }

    /// Push `blobs` into `repo` from `archive`; at most `jobs` transfers run
    /// at once over all repositories. Each blob's outcome: `None` when it is
    /// in place, else what went wrong. `untagged`: see
    /// [`push_blob`](Self::push_blob).
    pub async fn push_blobs(
        self: &Arc<Self>,
        archive: &Arc<LayoutArchive>,
        repo: &Repository,
        blobs: BTreeMap<Digest, u64>,
        untagged: bool,
    ) -> Result<BTreeMap<Digest, Option<String>>> {
        let mut tasks = JoinSet::new();
        for (digest, size) in blobs {
            let this = self.clone();
            let repo = repo.clone();
            let archive = archive.clone();
            tasks.spawn(async move {
                let corrupt = Arc::new(AtomicBool::new(false));
                let open = || {
                    let reader = archive.verifying_blob_reader(&digest);
                    let reader = reader.map_err(io::Error::other)?;
                    let (tx, rx) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
                    let (corrupt, progress) = (corrupt.clone(), this.progress.clone());
                    let pumping = move || pump(reader, size, &tx, &corrupt, &*progress);
                    tokio::task::spawn_blocking(pumping);
                    Ok(rx)
                };
                let outcome = this
                    .push_blob(&repo, &digest, size, open, &corrupt, untagged)
                    .await;
                this.progress.item_done();
                (digest, outcome.err().map(|e| error_chain(&e)))
            });
        }
        let mut out = BTreeMap::new();
        while let Some(joined) = tasks.join_next().await {
            let (digest, outcome) = joined.map_err(|e| Error::Task {
                reason: e.to_string(),
            })?;
            out.insert(digest, outcome);
        }
        Ok(out)
    }

    /// Push one blob into `repo` unless it is there already: mounted from a
    /// repository of the target that has it, else uploaded from the chunks
    /// `open` starts (once per try). `corrupt` is set by the reading side
    /// when the bytes did not match the digest.
    ///
    /// In an `untagged` repository ([`RepoPlan::untagged`](crate::repos::RepoPlan::untagged))
    /// a blob small enough to go in one request is not asked for first:
    /// were it there, sending it again costs less than asking every time.
    pub async fn push_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        open: impl Fn() -> io::Result<BodyChunks>,
        corrupt: &AtomicBool,
        untagged: bool,
    ) -> Result<()> {
        let registry = |source| Error::Registry {
            what: format!("pushing blob {digest} into {repo}"),
            source,
        };
        let turn = self
            .per_blob
            .lock()
            .expect("lock")
            .entry(digest.clone())
            .or_default()
            .clone();
        let _turn = turn.lock().await;
        let _permit = self.transfers.acquire().await.map_err(|e| Error::Task {
            reason: e.to_string(),
        })?;
        let ask = !untagged || size > SINGLE_REQUEST_UPLOAD_MAX;
        if ask
            && self
                .client
                .blob_exists(repo, digest)
                .await
                .map_err(registry)?
        {
            add(&self.stats.blobs_present, 1);
            self.progress.bytes(size);
            self.locate(digest, repo);
            return Ok(());
        }
        let from = self.located.lock().expect("lock").get(digest).cloned();
        if let Some(from) = from.filter(|f| f != repo.name()) {
            // A refused or failed mount only costs the upload it would save.
            if let Ok(MountOutcome::Mounted) = self.client.mount_blob(repo, &from, digest).await {
                add(&self.stats.blobs_mounted, 1);
                self.progress.bytes(size);
                self.locate(digest, repo);
                return Ok(());
            }
        }
        let result = self
            .client
            .push_blob(repo, digest, size, || {
                if corrupt.load(Ordering::Relaxed) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the blob does not match its digest",
                    ));
                }
                Ok(futures_util::stream::unfold(open()?, |mut rx| async move {
                    rx.recv().await.map(|item| (item, rx))
                }))
            })
            .await;
        if corrupt.load(Ordering::Relaxed) {
            return Err(Error::BlobCorrupt {
                digest: digest.clone(),
            });
        }
        result.map_err(registry)?;
        add(&self.stats.blobs_uploaded, 1);
        add(&self.stats.bytes_uploaded, size);
        self.locate(digest, repo);
        Ok(())
    }

    /// Repositories of the target under `prefix`, as its catalog lists
    /// them; empty when the registry will not say.
    pub async fn catalog_under(&self, registry: &Repository, prefix: &str) -> Vec<String> {
        self.client
            .catalog(registry, prefix)
            .await
            .unwrap_or_default()
    }

    /// Remember that `repo` holds `digest`, so other repositories mount it.
    pub(crate) fn locate(&self, digest: &Digest, repo: &Repository) {
        self.located
            .lock()
            .expect("lock")
            .entry(digest.clone())
            .or_insert_with(|| repo.name().to_string());
    }

    /// Push `manifest` unless the repository has it (asked with one `HEAD`
    /// when `ask`: not for a top manifest the repository's presence check
    /// has just asked about, nor in an untagged repository).
    ///
    /// Under `tag`, when given, rather than its digest (and without asking):
    /// one `PUT` stores the manifest and sets the tag, where a `PUT` by
    /// digest then one by tag would send it twice.
    pub async fn push_manifest(
        &self,
        repo: &Repository,
        digest: &Digest,
        manifest: &PlannedManifest,
        ask: bool,
        tag: Option<&str>,
    ) -> ferry_registry::Result<()> {
        let digest = digest.to_string();
        let ask = ask && tag.is_none();
        if ask && self.client.head_manifest(repo, &digest).await?.is_some() {
            add(&self.stats.manifests_present, 1);
            return Ok(());
        }
        let reference = tag.unwrap_or(&digest);
        let bytes = manifest.bytes.clone();
        self.client
            .put_manifest(repo, reference, &manifest.media_type, bytes)
            .await?;
        add(&self.stats.manifests_pushed, 1);
        if tag.is_some() {
            add(&self.stats.tags_set, 1);
        }
        Ok(())
    }

    /// Whether `repo` has the manifest `digest` (one `HEAD`); a registry
    /// that cannot answer counts as not having it (the push then says why).
    ///
    /// `known`: a tag of `repo` was seen pointing at `digest` already, so
    /// it is there without asking.
    pub async fn has_manifest(&self, repo: &Repository, digest: &Digest, known: bool) -> bool {
        let present = known
            || matches!(
                self.client.head_manifest(repo, &digest.to_string()).await,
                Ok(Some(_))
            );
        if present {
            add(&self.stats.manifests_present, 1);
        }
        present
    }

    /// Point `tag` at `manifest` unless it already does. `seen` is where
    /// the tag pointed when it was looked up before any push (`Some(None)`:
    /// absent); `None` asks the registry now.
    pub async fn push_tag(
        &self,
        repo: &Repository,
        tag: &str,
        digest: &Digest,
        manifest: &PlannedManifest,
        seen: Option<&Option<Digest>>,
    ) -> ferry_registry::Result<()> {
        let current = match seen {
            Some(current) => current.clone(),
            None => self
                .client
                .head_manifest(repo, tag)
                .await?
                .and_then(|h| h.digest),
        };
        if current.as_ref() == Some(digest) {
            add(&self.stats.tags_unchanged, 1);
            return Ok(());
        }
        let bytes = manifest.bytes.clone();
        self.client
            .put_manifest(repo, tag, &manifest.media_type, bytes)
            .await?;
        add(&self.stats.tags_set, 1);
        Ok(())
    }

    /// On a registry without the referrers API, list `referrers` of
    /// `subject` (their descriptors, as [`referrer_descriptor`] makes them)
    /// in the referrers tag schema index (`sha256-<hex>`) of `repo`, keeping
    /// what it lists already.
    pub async fn update_referrers_tag(
        &self,
        repo: &Repository,
        subject: &Digest,
        referrers: &[Descriptor],
    ) -> ferry_registry::Result<()> {
        if self.client.referrers(repo, subject).await?.is_some() {
            return Ok(());
        }
        let tag = subject.tag_form();
        let mut entries: Vec<Value> = match self.client.get_manifest(repo, &tag).await {
            Ok(existing) => serde_json::from_slice::<Value>(&existing.bytes)
                .ok()
                .and_then(|v| v.get("manifests").and_then(Value::as_array).cloned())
                .unwrap_or_default(),
            Err(ferry_registry::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let listed: BTreeSet<String> = entries
            .iter()
            .filter_map(|e| e.get("digest").and_then(Value::as_str).map(str::to_string))
            .collect();
        let mut added = false;
        for referrer in referrers {
            if !listed.contains(&referrer.digest.to_string()) {
                entries.push(serde_json::to_value(referrer).expect("descriptor serializes"));
                added = true;
            }
        }
        if !added {
            add(&self.stats.tags_unchanged, 1);
            return Ok(());
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": entries,
        });
        let bytes = serde_json::to_vec(&index).expect("index serializes");
        self.client
            .put_manifest(repo, &tag, media_type::OCI_INDEX, Bytes::from(bytes))
            .await?;
        add(&self.stats.tags_set, 1);
        Ok(())
    }
}

/// The descriptor of a referrer as the referrers API lists it: media type,
/// digest, size, artifact type and the manifest's annotations.
pub(crate) fn referrer_descriptor(
    referrer: &PlannedReferrer,
    manifest: &PlannedManifest,
) -> Descriptor {
    let size = manifest.bytes.len() as u64;
    let mut d = Descriptor::new(referrer.media_type.clone(), referrer.digest.clone(), size);
    d.artifact_type = referrer.artifact_type.clone();
    d.annotations = serde_json::from_slice::<Value>(&manifest.bytes)
        .ok()
        .and_then(|v| v.get("annotations").cloned())
        .and_then(|a| serde_json::from_value(a).ok());
    d
}

/// Read `reader` (a blob of `size` bytes) to its end in chunks into `tx`,
/// for an upload body; run on a blocking thread. The last chunk is held
/// back until the reader has ended cleanly (a verifying reader checks the
/// digest there), so a corrupt blob never reaches the registry whole;
/// `corrupt` is set when it did not match. Returns early, reading no
/// further, when the upload side hangs up.
///
/// Each chunk is allocated at the size still to come (at most [`CHUNK`]):
/// a 4 KiB layer no longer holds a 256 KiB buffer while it waits to be
/// sent, which across thousands of small blobs left glibc's per-thread
/// arenas holding megabytes they could not give back.
pub(crate) fn pump(
    mut reader: impl Read,
    size: u64,
    tx: &tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    corrupt: &AtomicBool,
    progress: &dyn Progress,
) {
    let mut pending: Option<Bytes> = None;
    let mut read = 0u64;
    loop {
        // One byte past the end lets the read that finds the end be small.
        let left = size.saturating_sub(read).saturating_add(1);
        let mut buf = vec![0u8; usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK))];
        match read_full(&mut reader, &mut buf) {
            Ok(0) => {
                if let Some(last) = pending.take() {
                    progress.bytes(last.len() as u64);
                    let _ = tx.blocking_send(Ok(last));
                }
                return;
            }
            Ok(n) => {
                read = read.saturating_add(n as u64);
                buf.truncate(n);
                if let Some(chunk) = pending.replace(Bytes::from(buf)) {
                    progress.bytes(chunk.len() as u64);
                    if tx.blocking_send(Ok(chunk)).is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                if e.kind() == io::ErrorKind::InvalidData {
                    corrupt.store(true, Ordering::Relaxed);
                }
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    }
}
