//! Writing the bundle: plan the whole tar, write the small entries, then
//! fetch blobs in parallel straight to their offsets, each checked by the
//! archive's hash as it passes (see `archive_hash.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_oci::fsutil;
use ferry_oci::layout::{
    checksum_path, parity_path, part_path, sha256_file, ChecksumFile, LayoutPlan, PartSet,
    MAX_PARTS,
};
use ferry_oci::{Digest, DigestHasher, Progress};
use ferry_parity::Geometry;
use ferry_registry::{Client, Failure, Repository};
use ferry_sign::{BundleSignature, PrivateKey};
use tokio::task::JoinSet;

use crate::archive_hash::{ArchiveHasher, Hashed};
use crate::flush::Flusher;
use crate::pieces;
use crate::resume::{self, Found, ResumeKey, Transfer};
use crate::{Error, Result};

/// One blob to fetch: where from, where to.
#[derive(Clone)]
pub(crate) struct BlobJob {
    pub digest: Digest,
    pub size: u64,
    pub offset: u64,
    /// Repositories known to hold it, with the reference that needs it.
    pub sources: Vec<(Repository, String)>,
}

/// A bundle being written: partial files beside the output (`OUT.partial`,
/// or `OUT.000.partial`, … with `--split`), renamed into place by
/// [`PendingBundle::commit`]. A resumable one ([`Keep::Resumable`]) leaves
/// them, with their record, when the run fails; any other removes them.
pub(crate) struct PendingBundle {
    /// The partial files, in order, and a handle on each (locked).
    partials: Vec<(PathBuf, std::fs::File)>,
    file: Arc<PartSet>,
    /// What happens to the partial files when the run fails.
    keep: bool,
    /// They hold what an earlier run wrote: check blobs before fetching.
    reuse: bool,
    /// Renamed into place: nothing to clean up.
    done: bool,
    output: PathBuf,
    split: bool,
    /// Parity parts to write (with `split`).
    parity: usize,
    /// The archive's planned length.
    len: u64,
    /// Hashes the archive while blobs arrive (started by `fetch_all`).
    hasher: Option<Arc<ArchiveHasher>>,
    /// Moves written bytes to disk while blobs arrive (or are copied, for
    /// `merge`), until the bundle is sealed.
    flusher: Option<Flusher>,
}

/// One part of a split bundle, as written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WrittenPart {
    /// Its path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its sha256 hex (also in `OUT.sha256`).
    pub sha256: String,
}

/// What becomes of a pending bundle's partial files when the run fails.
pub(crate) enum Keep<'a> {
    /// Kept, with a record naming this key, to be resumed by the next run
    /// with the same key (`pack`).
    Resumable(&'a ResumeKey),
    /// Removed (`merge`: there is nothing to save).
    No,
}

/// What [`PendingBundle::commit`] wrote.
pub(crate) struct Committed {
    pub sha256: String,
    pub len: u64,
    pub parts: Vec<WrittenPart>,
    /// Files of an earlier pack to the same name, removed.
    pub removed: Vec<PathBuf>,
}

impl PendingBundle {
    /// Open the partial file(s) and write the planned skeleton into them:
    /// one file, or parts of `split` bytes. A resumable bundle whose record
    /// matches `key` and `plan` keeps what its files hold (every blob is
    /// checked by hash in [`PendingBundle::fetch_all`]); otherwise they
    /// start empty.
    pub fn create(
        output: &Path,
        plan: &LayoutPlan,
        split: Option<u64>,
        parity: usize,
        keep: Keep<'_>,
        progress: &dyn Progress,
    ) -> Result<PendingBundle> {
        if output.is_dir() {
            return Err(Error::Io {
                action: "cannot write the bundle over the directory",
                path: output.to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::IsADirectory),
            });
        }
        let len = plan.total_size();
        let part_size = split.unwrap_or(len);
        let count = PartSet::parts_needed(len, part_size);
        if count > MAX_PARTS {
            return Err(Error::TooManyParts {
                size: len,
                part_size,
                parts: count,
            });
        }
        let paths: Vec<PathBuf> = (0..count)
            .map(|i| resume::partial_path(output, split.map(|_| i)))
            .collect();
        let reuse = match &keep {
            Keep::Resumable(key) => resume::decide(output, key, plan, &paths, progress),
            Keep::No => false,
        };
        let mut partials = Vec::with_capacity(count);
        for path in &paths {
            let file = fsutil::open_partial(path).map_err(|source| Error::Io {
                action: "cannot open the partial bundle",
                path: path.clone(),
                source,
            })?;
            partials.push((path.clone(), file));
        }
        let mut pending = PendingBundle {
            file: Arc::new(PartSet::for_writing(
                partials
                    .iter()
                    .map(|(p, f)| Ok((p.clone(), f.try_clone()?)))
                    .collect::<std::io::Result<_>>()
                    .map_err(|source| Error::Io {
                        action: "cannot open",
                        path: paths[0].clone(),
                        source,
                    })?,
                part_size.max(1),
                len,
            )),
            partials,
            keep: matches!(keep, Keep::Resumable(_)),
            reuse,
            done: false,
            output: output.to_path_buf(),
            split: split.is_some(),
            parity: if split.is_some() { parity } else { 0 },
            len,
            hasher: None,
            flusher: None,
        };
        // A failure from here on is the disk's: `kept` removes what was
        // opened (`merge`'s bundle is removed on drop).
        if let Err(e) = pending.prepare(output, plan, split, &keep, progress) {
            return Err(pending.kept(e));
        }
        pending.flusher = Some(Flusher::start(pending.file.clone()));
        Ok(pending)
    }

    /// Clear what another shape of pack left, write the record, size the
    /// files (empty unless reused) and write the skeleton.
    fn prepare(
        &mut self,
        output: &Path,
        plan: &LayoutPlan,
        split: Option<u64>,
        keep: &Keep<'_>,
        progress: &dyn Progress,
    ) -> Result<()> {
        let (len, reuse) = (self.len, self.reuse);
        let paths: Vec<PathBuf> = self.partials.iter().map(|(p, _)| p.clone()).collect();
        if let Keep::Resumable(key) = keep {
            resume::clear_stale(output, &paths, reuse)?;
            resume::save(output, key, plan, split, &paths)?;
        }
        for (path, file) in &self.partials {
            let planned = match split {
                Some(_) => self
                    .file
                    .parts()
                    .find(|(p, _, _)| p == path)
                    .map(|(_, _, l)| l),
                None => Some(len),
            };
            let found = file.metadata().map(|m| m.len()).unwrap_or(0);
            if !reuse {
                // Zeros where no blob is written yet: never mistaken for one.
                file.set_len(0).map_err(|source| Error::Io {
                    action: "cannot write",
                    path: path.clone(),
                    source,
                })?;
            } else if planned.is_some_and(|l| l != found) {
                progress.warn(&format!(
                    "{} is {found} bytes, not the {} planned: truncated or edited? \
                     what it holds is checked all the same",
                    path.display(),
                    planned.unwrap_or(0)
                ));
            }
        }
        plan.write_skeleton(&*self.file)
            .map_err(|source| self.io_error(source))
    }

    /// Write bytes already in memory (manifests) at their offset.
    pub fn write_at(&self, bytes: &[u8], offset: u64) -> Result<()> {
        self.file
            .write_all_at(bytes, offset)
            .map_err(|source| self.io_error(source))
    }

    fn io_error(&self, source: std::io::Error) -> Error {
        Error::Io {
            action: "cannot write",
            path: self.partials[0].0.clone(),
            source,
        }
    }

    /// Fetch every job, `jobs` at a time. The first failure stops the rest.
    /// Everything else must be written already: the archive's sha256 is
    /// computed from here on, following the blobs as they land, and checks
    /// each blob against its digest from the same reads. When the partial
    /// files are reused, each worker first looks where its blob is planned:
    /// a blob written whole is handed to the archive's hash, and the worker
    /// goes on to the next job; the rest of a beginning is fetched in
    /// pieces (the whole checked the same way); anything else is fetched.
    /// Returns once every blob has landed and has its verdict (a blob that
    /// fails it is fetched whole, hashed by its worker).
    pub async fn fetch_all(
        &mut self,
        client: &Client,
        mut queue: Vec<BlobJob>,
        jobs: usize,
        progress: Arc<dyn Progress>,
    ) -> Result<Transfer> {
        queue.sort_by_key(|j| j.offset);
        let regions: Vec<(u64, u64)> = queue.iter().map(|j| (j.offset, j.size)).collect();
        let hasher = Arc::new(ArchiveHasher::start(self.file.clone(), self.len, &regions));
        self.hasher = Some(hasher.clone());
        let mut transfer = Transfer {
            resumed: self.reuse,
            ..Transfer::default()
        };
        let mut queue: Vec<(usize, BlobJob)> = queue.into_iter().enumerate().collect();
        progress.start(
            "fetching",
            queue.len() as u64,
            queue.iter().map(|(_, j)| j.size).sum(),
        );
        queue.sort_by(|(_, a), (_, b)| fetch_order(a, b));
        let mut queue = queue.into_iter();
        // Reused blobs that failed their check: fetched whole, first.
        let mut again: Vec<(usize, BlobJob)> = Vec::new();
        let mut running = JoinSet::new();
        // Reused blobs awaiting their verdict from the archive's hash.
        let mut checking = JoinSet::new();
        // The pieces of blobs a stopped run began, front of the bundle first.
        let turns = Arc::new(pieces::Turns::new(jobs));
        loop {
            while running.len() < jobs.max(1) {
                // A blob fetched again after failing its check is hashed
                // by its worker as it arrives.
                let (first, look, (slot, job)) = match again.pop() {
                    Some(next) => (false, false, next),
                    None => match queue.next() {
                        Some(next) => (true, self.reuse, next),
                        None => break,
                    },
                };
                let client = client.clone();
                let progress = progress.clone();
                let place = Placement {
                    file: self.file.clone(),
                    hasher: hasher.clone(),
                    slot,
                };
                let partial = self.partials[0].0.clone();
                let turns = turns.clone();
                running.spawn(async move {
                    let mut begun = None;
                    if look {
                        match look_for(&place, &job, partial).await? {
                            Found::Written => {
                                let verdict = place.hasher.reused(place.slot, &job.digest);
                                return Ok(Landed::Written {
                                    slot: place.slot,
                                    job,
                                    verdict,
                                });
                            }
                            Found::Begun { len } => {
                                // Written front to back: the beginning is
                                // final unless the whole fails its digest
                                // (then the blob is fetched again, spoiling
                                // the hash). The whole is checked by the
                                // archive's hash: asked for before the pass
                                // may read a byte of it.
                                let verdict = place.hasher.check(place.slot, &job.digest);
                                place.hasher.written(place.slot, len);
                                begun = Some(Begun { len, verdict });
                            }
                            Found::Missing => {}
                        }
                    }
                    let fetched = fetch_blob(
                        &client,
                        &job,
                        &place,
                        progress.as_ref(),
                        begun,
                        first,
                        &turns,
                    );
                    Ok(match fetched.await? {
                        Fetch::Checked => Landed::Fetched { size: job.size },
                        Fetch::Unchecked { from, verdict } => Landed::Unchecked {
                            slot: place.slot,
                            job,
                            from,
                            verdict,
                        },
                    })
                });
            }
            if running.is_empty() && checking.is_empty() {
                break;
            }
            tokio::select! {
                Some(joined) = running.join_next(), if !running.is_empty() => {
                    match joined.map_err(|e| Error::Task(e.to_string()))?? {
                        Landed::Written { slot, job, verdict } => {
                            checking.spawn(async move { (slot, job, verdict.await, None) });
                        }
                        Landed::Unchecked { slot, job, from, verdict } => {
                            checking.spawn(async move { (slot, job, verdict.await, Some(from)) });
                        }
                        Landed::Fetched { size } => {
                            progress.item_done();
                            transfer.fetched(size, 0);
                        }
                    }
                }
                Some(checked) = checking.join_next(), if !checking.is_empty() => {
                    let (slot, job, verdict, continued) =
                        checked.map_err(|e| Error::Task(e.to_string()))?;
                    if let (Ok(true), Some(from)) = (&verdict, continued) {
                        // Fetched (from `from`, after a beginning found and
                        // not hashed until now).
                        progress.bytes(from);
                        progress.item_done();
                        transfer.fetched(job.size, from);
                    } else if verdict == Ok(true) {
                        progress.bytes(job.size);
                        progress.item_done();
                        transfer.blobs_reused += 1;
                        transfer.bytes_reused += job.size;
                    } else {
                        // Damaged where it lies, or a beginning found and
                        // the rest fetched do not make the blob, or what the
                        // registry sent is not the blob (or any of these was
                        // left unchecked, the hash having stopped): fetched
                        // whole over it, and hashed as it arrives.
                        let why = match verdict {
                            Ok(_) => "does not match its digest",
                            Err(_) => "could not be checked",
                        };
                        let partial = self.partials[0].0.display();
                        let (what, again_from) = match continued {
                            Some(0) => (format!("as {} sent it", source_of(&job)), ""),
                            Some(_) => (format!("continued from {partial}"), " from its start"),
                            None => (format!("in {partial}"), ""),
                        };
                        let message = format!(
                            "blob {} {what} {why}: fetching it again{again_from}",
                            job.digest,
                        );
                        // What a registry sent wrong is worth a warning
                        // (the registry, or something on the way, is at
                        // fault); a partial bundle found damaged is not.
                        match continued {
                            Some(0) => progress.warn(&message),
                            _ => progress.note(&message),
                        }
                        hasher.restarted();
                        again.push((slot, job));
                    }
                }
            }
        }
        progress.finish();
        Ok(transfer)
    }

    /// Flush to disk while the archive's hash finishes, rename the file
    /// (or every part) into place, remove what an earlier pack to the same
    /// name left (`OUT.tar`, parts, parity parts) and write `OUT.sha256`;
    /// then the resume record goes.
    pub async fn commit(mut self, progress: Arc<dyn Progress>) -> Result<Committed> {
        let (hashed, parity) = match self.seal(progress).await {
            Ok(sealed) => sealed,
            Err(e) => return Err(self.kept(e)),
        };
        let finals: Vec<PathBuf> = match self.split {
            true => (0..self.partials.len())
                .map(|i| part_path(&self.output, i))
                .collect(),
            false => vec![self.output.clone()],
        };
        let mut parts = Vec::new();
        for (i, ((partial, file), target)) in self.partials.iter().zip(&finals).enumerate() {
            // Already flushed above, alongside the hash: the fsync here
            // finds nothing left to write.
            fsutil::persist_file(file, partial, target).map_err(|source| {
                self.kept(Error::Io {
                    action: "cannot move the finished bundle to",
                    path: target.clone(),
                    source,
                })
            })?;
            if self.split {
                let size = self.file.parts().nth(i).map_or(0, |(_, _, len)| len);
                // One part (a part size above the bundle's) is hashed as
                // a single file: its sha256 is the whole's.
                let sha256 = match finals.len() {
                    1 => hashed.sha256.clone(),
                    _ => hashed.parts.get(i).cloned().unwrap_or_default(),
                };
                parts.push(WrittenPart {
                    path: target.clone(),
                    size,
                    sha256,
                });
            }
        }
        // Renamed: a failure from here on must not remove the bundle.
        self.done = true;
        let mut written = finals.clone();
        let mut parity_parts = Vec::new();
        for (j, (partial, file, sha256)) in parity.iter().enumerate() {
            let target = parity_path(&self.output, j);
            let size = file.metadata().map_or(0, |m| m.len());
            fsutil::persist_file(file, partial, &target).map_err(|source| Error::Io {
                action: "cannot move a finished parity part to",
                path: target.clone(),
                source,
            })?;
            written.push(target.clone());
            parity_parts.push(WrittenPart {
                path: target,
                size,
                sha256: sha256.clone(),
            });
        }
        let removed = remove_stale(&self.output, &written)?;
        let name = file_name(&self.output);
        let mut sums = ChecksumFile::new();
        for part in parts.iter().chain(&parity_parts) {
            sums.push(part.sha256.clone(), file_name(&part.path));
        }
        parts.extend(parity_parts);
        sums.push(hashed.sha256.clone(), name);
        write_checksum_file(&self.output, &sums)?;
        if self.keep {
            resume::forget(&self.output)?;
        }
        Ok(Committed {
            sha256: hashed.sha256,
            len: hashed.len,
            parts,
            removed,
        })
    }
}

impl PendingBundle {
    /// Flush and hash the data, then write the parity parts.
    async fn seal(
        &mut self,
        progress: Arc<dyn Progress>,
    ) -> Result<(Hashed, Vec<(PathBuf, std::fs::File, String)>)> {
        let path = self.partials[0].0.clone();
        let parity_progress = progress.clone();
        let hasher = match self.hasher.take() {
            Some(h) => h,
            None => Arc::new(ArchiveHasher::start(self.file.clone(), self.len, &[])),
        };
        let file = self.file.clone();
        let flusher = self.flusher.take();
        let synced = tokio::task::spawn_blocking(move || {
            flusher.map_or(Ok(()), Flusher::finish)?;
            file.sync_all()
        });
        let hashed = tokio::task::spawn_blocking(move || hasher.finish(progress.as_ref()));
        let (synced, hashed) = tokio::join!(synced, hashed);
        let io = |action: &'static str| {
            let path = path.clone();
            move |source| Error::Io {
                action,
                path,
                source,
            }
        };
        synced
            .map_err(|e| Error::Task(e.to_string()))?
            .map_err(io("cannot flush"))?;
        let hashed = hashed
            .map_err(|e| Error::Task(e.to_string()))?
            .map_err(io("cannot read back"))?;
        let parity = self.write_parity(parity_progress).await?;
        Ok((hashed, parity))
    }

    /// `e`, saying that the partial files are kept for the next run when
    /// they are: when the source failed (the network, the registry). When
    /// the disk failed (full, read-only, I/O errors) they go, with their
    /// record: a full disk is not left full.
    pub fn kept(&self, e: Error) -> Error {
        if !self.keep || self.done {
            return e;
        }
        if matches!(e, Error::Io { .. }) {
            for (path, _) in &self.partials {
                let _ = fsutil::remove_if_there(path);
            }
            let _ = resume::forget(&self.output);
            return e;
        }
        Error::Interrupted {
            partial: self.partials[0].0.clone(),
            source: Box::new(e),
        }
    }
}

impl Drop for PendingBundle {
    fn drop(&mut self) {
        if !self.done && !self.keep {
            for (path, _) in &self.partials {
                let _ = fsutil::remove_if_there(path);
            }
        }
    }
}

impl PendingBundle {
    /// Write the parity parts (Reed–Solomon over the finished data parts,
    /// stripe by stripe) into partial files (`OUT.p00.partial`, …, removed
    /// if this fails); each with its sha256.
    async fn write_parity(
        &self,
        progress: Arc<dyn Progress>,
    ) -> Result<Vec<(PathBuf, std::fs::File, String)>> {
        if self.parity == 0 {
            return Ok(Vec::new());
        }
        let file = self.file.clone();
        let output = self.output.clone();
        let parity = self.parity;
        let task = tokio::task::spawn_blocking(move || -> Result<_> {
            let geometry = Geometry::new(file.len(), file.part_size(), parity)
                .map_err(|source| Error::Parity { source })?;
            let mut partials = Scratch(Vec::new());
            for j in 0..parity {
                let path = resume::parity_partial_path(&output, j);
                let io = |source| Error::Io {
                    action: "cannot create the parity part",
                    path: path.clone(),
                    source,
                };
                let f = fsutil::open_partial(&path).map_err(io)?;
                partials.0.push((path.clone(), f));
                partials.0[j].1.set_len(0).map_err(io)?;
            }
            let size = geometry.part_size;
            let read =
                |i: usize, off: u64, buf: &mut [u8]| file.read_exact_at(buf, i as u64 * size + off);
            let outputs: Vec<Option<(&Path, &std::fs::File)>> = partials
                .0
                .iter()
                .map(|(p, f)| Some((p.as_path(), f)))
                .collect();
            progress.start("parity", 1, file.len());
            ferry_parity::encode(&geometry, &read, &outputs, progress.as_ref())
                .map_err(|source| Error::Parity { source })?;
            progress.finish();
            let mut sums = Vec::new();
            for (path, f) in &partials.0 {
                let io = |source| Error::Io {
                    action: "cannot read back",
                    path: path.clone(),
                    source,
                };
                f.sync_all().map_err(io)?;
                sums.push(sha256_file(path, &mut |_| {}).map_err(io)?.0);
            }
            let done = std::mem::take(&mut partials.0).into_iter().zip(sums);
            Ok(done.map(|((path, f), sha256)| (path, f, sha256)).collect())
        });
        task.await.map_err(|e| Error::Task(e.to_string()))?
    }
}

/// Files removed on drop unless taken out (parity parts being written).
struct Scratch(Vec<(PathBuf, std::fs::File)>);

impl Drop for Scratch {
    fn drop(&mut self) {
        for (path, _) in &self.0 {
            let _ = fsutil::remove_if_there(path);
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Remove what an earlier pack to `output` left that this one did not
/// write: the unsplit file, data parts, parity parts. `ferry pack -o OUT`
/// owns `OUT`, `OUT.NNN`, `OUT.pNN` and `OUT.sha256`; after it only what it
/// wrote is there, so a stale part can never be read as part of the set.
fn remove_stale(output: &Path, written: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut candidates = vec![output.to_path_buf()];
    candidates.extend((0..MAX_PARTS).map(|i| part_path(output, i)));
    candidates.extend((0..100).map(|i| parity_path(output, i)));
    let mut removed = Vec::new();
    for path in candidates {
        if written.contains(&path) || !path.is_file() {
            continue;
        }
        std::fs::remove_file(&path).map_err(|source| Error::Io {
            action: "cannot remove a stale file of an earlier pack",
            path: path.clone(),
            source,
        })?;
        removed.push(path);
    }
    Ok(removed)
}

/// Write `OUT.sha256` in `sha256sum` format, atomically.
fn write_checksum_file(output: &Path, sums: &ChecksumFile) -> Result<()> {
    let sum_path = checksum_path(output);
    fsutil::write_atomic(&sum_path, sums.render().as_bytes()).map_err(|source| Error::Io {
        action: "cannot write",
        path: sum_path.clone(),
        source,
    })
}

/// Where `job`'s blob is fetched from, for a note: the first repository
/// that holds it.
fn source_of(job: &BlobJob) -> String {
    job.sources
        .first()
        .map_or_else(|| "the registry".to_string(), |(repo, _)| repo.to_string())
}

/// How one job's blob landed.
enum Landed {
    /// Found written whole in the partial bundle, handed to the archive's
    /// hash to check (`verdict`).
    Written {
        slot: usize,
        job: BlobJob,
        verdict: tokio::sync::oneshot::Receiver<bool>,
    },
    /// Fetched from its start and checked as it arrived, by its worker.
    Fetched { size: u64 },
    /// Fetched from `from` on (from its start, or after the beginning a
    /// stopped run wrote), the whole to be checked by the archive's hash
    /// (`verdict`).
    Unchecked {
        slot: usize,
        job: BlobJob,
        from: u64,
        verdict: tokio::sync::oneshot::Receiver<bool>,
    },
}

/// A beginning found in the partial bundle, not hashed: its first `len`
/// bytes are there, and the archive's hash checks the whole (`verdict`).
struct Begun {
    len: u64,
    verdict: tokio::sync::oneshot::Receiver<bool>,
}

/// How [`fetch_blob`] left a blob.
enum Fetch {
    /// Fetched from its start and checked against its digest as it
    /// arrived, by the worker.
    Checked,
    /// Landed, fetched from `from` on, its check to come from the
    /// archive's hash.
    Unchecked {
        from: u64,
        verdict: tokio::sync::oneshot::Receiver<bool>,
    },
}

/// Look for `job`'s blob in the partial bundle, off the async threads.
async fn look_for(place: &Placement, job: &BlobJob, partial: PathBuf) -> Result<Found> {
    let (file, offset, size) = (place.file.clone(), job.offset, job.size);
    tokio::task::spawn_blocking(move || resume::look_for(&file, offset, size))
        .await
        .map_err(|e| Error::Task(e.to_string()))?
        .map_err(|source| Error::Io {
            action: "cannot read back",
            path: partial,
            source,
        })
}

/// Where a blob's bytes go: the archive, and the hasher's slot for it.
pub(crate) struct Placement {
    pub file: Arc<PartSet>,
    pub hasher: Arc<ArchiveHasher>,
    pub slot: usize,
}

impl Placement {
    /// Write `bytes` of `job` where they belong, `at` bytes into the blob.
    pub fn write(&self, job: &BlobJob, bytes: &[u8], at: u64) -> Result<(), Failed> {
        self.file
            .write_all_at(bytes, job.offset + at)
            .map_err(|source| {
                Failed::Final(Error::Io {
                    action: "cannot write blob data to the bundle",
                    path: PathBuf::from(job.digest.blob_path()),
                    source,
                })
            })
    }
}

/// Blobs below this size are fetched before the others.
const FETCH_FIRST_BELOW: u64 = 1 << 20;

/// The order blobs are fetched in. Small ones (configs, tiny layers) first,
/// in offset order: they cost a round trip each and little else, and the
/// archive's hash cannot pass a blob that has not landed, so one left to
/// the end holds up the hash of everything after it, which then runs
/// alone once the network is done (0.4 s of a 1 GB pack here). Then the
/// rest, biggest first, which keeps every worker busy until the end.
fn fetch_order(a: &BlobJob, b: &BlobJob) -> std::cmp::Ordering {
    let small = |j: &BlobJob| j.size < FETCH_FIRST_BELOW;
    let by_size = || match small(a) {
        true => a.offset.cmp(&b.offset),
        false => b.size.cmp(&a.size),
    };
    small(b)
        .cmp(&small(a))
        .then_with(by_size)
        .then_with(|| a.digest.cmp(&b.digest))
}

/// Check that `hasher`, fed the whole of `job` as served for `label`,
/// found its digest.
pub(crate) fn check_digest(job: &BlobJob, label: &str, hasher: DigestHasher) -> Result<(), Failed> {
    let found = hasher.finish();
    if found != job.digest {
        return Err(Failed::Final(Error::BlobDigestMismatch {
            reference: label.to_string(),
            expected: job.digest.clone(),
            found,
            size: job.size,
        }));
    }
    Ok(())
}

/// Fetch one blob into its place (its rest, after a beginning found in
/// the partial bundle: `begun`). `first`: its first fetch in this run;
/// fetched from its start, it is then checked by the archive's hash as
/// that passes it, from the same reads (a retry is hashed as it arrives).
async fn fetch_blob(
    client: &Client,
    job: &BlobJob,
    place: &Placement,
    progress: &dyn Progress,
    begun: Option<Begun>,
    first: bool,
    turns: &pieces::Turns,
) -> Result<Fetch> {
    let pass_checks = first && begun.is_none();
    // The rest of a blob a stopped run began: one try (in pieces side by
    // side when it is big, checked by the archive's hash). Anything wrong
    // (the transfer broke, the registry ignored the range) and the blob is
    // fetched from its start below; a whole that does not hash to the
    // digest is fetched again by the caller.
    if let Some(Begun { len, verdict }) = begun {
        match pieces::fetch_rest(client, job, place, progress, len, turns).await {
            Ok(()) => return Ok(Fetch::Unchecked { from: len, verdict }),
            Err(Failed::InBody(e) | Failed::Final(e)) => {
                progress.note(&format!(
                    "fetching blob {} again from its start: {e}",
                    job.digest
                ));
                place.hasher.restarted();
                place.hasher.uncheck(place.slot);
            }
        }
    }
    // Asked for before a byte of it is written.
    let verdict = pass_checks.then(|| place.hasher.check(place.slot, &job.digest));
    let checked_here = client
        .config()
        .retry
        .run_noting(
            |attempt| async move {
                if attempt > 1 {
                    place.hasher.restarted();
                    if pass_checks {
                        place.hasher.uncheck(place.slot);
                    }
                }
                let hash_here = !pass_checks || attempt > 1;
                // Only a body broken in transit is tried again here: a
                // request that failed was already retried by the client, and
                // trying it again would multiply the bound on tries.
                fetch_once(client, job, place, progress, hash_here)
                    .await
                    .map(|()| hash_here)
                    .map_err(|failed| match failed {
                        Failed::InBody(e)
                            if matches!(&e, Error::Registry { source, .. } if source.is_retryable()) =>
                        {
                            Failure::transient(e)
                        }
                        Failed::InBody(e) | Failed::Final(e) => Failure::Final(e),
                    })
            },
            |e, _| {
                if let Error::Registry { reference, source } = e {
                    progress.note(&format!(
                        "retrying blob {} for {reference}: {source}",
                        job.digest
                    ));
                }
            },
        )
        .await?;
    Ok(match (checked_here, verdict) {
        (false, Some(verdict)) => Fetch::Unchecked { from: 0, verdict },
        _ => Fetch::Checked,
    })
}

/// How one try at a blob failed.
pub(crate) enum Failed {
    /// While its body was arriving.
    InBody(Error),
    /// Anywhere else; not worth another try here.
    Final(Error),
}

/// One try at `job` from each of its sources in turn, hashed as it
/// arrives when `hash_here` (otherwise the archive's hash checks it).
async fn fetch_once(
    client: &Client,
    job: &BlobJob,
    place: &Placement,
    progress: &dyn Progress,
    hash_here: bool,
) -> Result<(), Failed> {
    let mut last_error = None;
    for (repo, label) in &job.sources {
        let mut stream = match client.get_blob(repo, &job.digest).await {
            Ok(s) => s,
            Err(e @ ferry_registry::Error::NotFound { .. }) => {
                last_error = Some(Error::Registry {
                    reference: label.clone(),
                    source: e,
                });
                continue;
            }
            Err(source) => {
                return Err(Failed::Final(Error::Registry {
                    reference: label.clone(),
                    source,
                }))
            }
        };
        let mut hasher = hash_here.then(|| DigestHasher::for_digest(&job.digest));
        let mut written = 0;
        while let Some(chunk) = stream.next_chunk().await.map_err(|source| {
            Failed::InBody(Error::Registry {
                reference: label.clone(),
                source,
            })
        })? {
            let len = chunk.len() as u64;
            if written + len > job.size {
                return Err(Failed::Final(Error::BlobSizeMismatch {
                    reference: label.clone(),
                    digest: job.digest.clone(),
                    expected: job.size,
                    found: written + len,
                }));
            }
            if let Some(hasher) = hasher.as_mut() {
                hasher.update(&chunk);
            }
            place.write(job, &chunk, written)?;
            written += len;
            place.hasher.written(place.slot, written);
            progress.bytes(len);
        }
        if written != job.size {
            return Err(Failed::Final(Error::BlobSizeMismatch {
                reference: label.clone(),
                digest: job.digest.clone(),
                expected: job.size,
                found: written,
            }));
        }
        if let Some(hasher) = hasher {
            check_digest(job, label, hasher)?;
        }
        return Ok(());
    }
    Err(Failed::Final(last_error.unwrap_or_else(|| {
        Error::Task(format!("no source for blob {}", job.digest))
    })))
}

/// Write `OUT.sig`, the bundle's detached signature over its sha256
/// (`hex`: the whole bundle's, as in `OUT.sha256`, parts or not),
/// atomically; returns its path.
pub(crate) fn sign_bundle(output: &Path, hex: &str, key: &PrivateKey) -> Result<PathBuf> {
    let mut sha256 = [0u8; 32];
    hex::decode_to_slice(hex, &mut sha256)
        .map_err(|e| Error::Task(format!("the bundle's sha256 {hex:?} is not hex: {e}")))?;
    let text = BundleSignature::sign(sha256, key).to_text();
    let path = ferry_sign::signature_path(output);
    fsutil::write_atomic(&path, text.as_bytes()).map_err(|source| Error::Io {
        action: "cannot write",
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(size: u64, offset: u64) -> BlobJob {
        BlobJob {
            digest: Digest::sha256_of(format!("{size}@{offset}").as_bytes()),
            size,
            offset,
            sources: Vec::new(),
        }
    }

    #[test]
    fn small_blobs_go_first_in_offset_order_then_the_biggest() {
        let mut queue = [
            job(50 << 20, 0),
            job(1_200, 50 << 20),
            job(536 << 20, 60 << 20),
            job(32 << 10, 40 << 20),
            job((1 << 20) - 1, 10 << 20),
            job(1 << 20, 20 << 20),
            job(134 << 20, 30 << 20),
        ];
        queue.sort_by(fetch_order);
        let order: Vec<(u64, u64)> = queue.iter().map(|j| (j.size, j.offset)).collect();
        assert_eq!(
            order,
            [
                ((1 << 20) - 1, 10 << 20),
                (32 << 10, 40 << 20),
                (1_200, 50 << 20),
                (536 << 20, 60 << 20),
                (134 << 20, 30 << 20),
                (50 << 20, 0),
                (1 << 20, 20 << 20),
            ]
        );
    }
}
