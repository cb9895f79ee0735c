//! A split bundle's parts, each checked on its own against `OUT.sha256`,
//! so a bad part is named (and the images it holds bytes of), not just
//! found somewhere in the whole.
//!
//! Each data part is read once: the blobs it holds whole are checked
//! against their digests from the same read, hashed together with the
//! part ([`ferry_lanes`]). Only blobs that span two parts are read again,
//! by the blob pass that follows. A set on a USB stick or a DVD is read
//! about once, not twice.

use std::collections::HashSet;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use ferry_lanes::{update_together, Lane};
use ferry_oci::layout::{checksum_path, parity_path, part_path, split_part_path, ChecksumFile};
use ferry_oci::{Algorithm, Digest, LayoutArchive, Progress};
use serde::Serialize;

use crate::problem::Problem;

/// What became of one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartStatus {
    /// Its sha256 is the one listed.
    Ok,
    /// Listed, but not there.
    Missing,
    /// There, but its content is not what is listed.
    Damaged,
    /// It holds what another listed part should hold (renamed, reordered).
    Misplaced,
}

/// One part as checked.
#[derive(Debug, Clone, Serialize)]
pub struct PartCheck {
    /// Its path.
    pub path: PathBuf,
    /// Where it starts in the whole bundle (data parts; parity parts hold
    /// none of the bundle's bytes).
    pub offset: Option<u64>,
    /// Its size on disk (none when missing).
    pub size: Option<u64>,
    /// The outcome.
    pub status: PartStatus,
}

/// Every part of a split bundle, checked against its checksum file.
#[derive(Debug, Clone, Serialize)]
pub struct PartsReport {
    /// The checksum file the parts were checked against.
    pub checksums: PathBuf,
    /// Data parts, in order.
    pub parts: Vec<PartCheck>,
    /// Parity parts (`OUT.tar.pNN`), in order.
    pub parity: Vec<PartCheck>,
    /// Whether `ferry repair` can rebuild every bad part (no more bad parts,
    /// data or parity, than there are parity parts); false when there are
    /// no parity parts.
    pub repairable: bool,
}

impl PartsReport {
    /// The parts that are not [`PartStatus::Ok`].
    pub fn bad(&self) -> impl Iterator<Item = &PartCheck> {
        self.parts
            .iter()
            .chain(&self.parity)
            .filter(|p| p.status != PartStatus::Ok)
    }
}

/// The bundle `path` names, when it is a split set: its unsplit name.
pub(crate) fn split_base(path: &Path) -> Option<PathBuf> {
    match split_part_path(path) {
        Some((base, 0)) => Some(base),
        Some(_) => None,
        None => (!path.exists() && part_path(path, 0).is_file()).then(|| path.to_path_buf()),
    }
}

/// What [`check_parts`] found: the parts' report, and the blobs found to
/// match their digests while the parts were read.
#[derive(Default)]
pub(crate) struct PartsChecked {
    /// `None` when the bundle is not a split set, or its parts cannot be
    /// checked one by one.
    pub report: Option<PartsReport>,
    /// Blobs that hashed to their digests as their part was read.
    pub blobs_ok: HashSet<Digest>,
}

/// Check each part listed in `base.sha256`, and, from the same reads, the
/// blobs of `blobs` (see [`SetBlobs`]). No report when `path` is not a
/// split bundle. A set without a checksum file, or one listing no parts,
/// gives a warning: its parts cannot be checked one by one (the blob pass
/// then reads every blob).
pub(crate) fn check_parts(
    path: &Path,
    jobs: usize,
    progress: &dyn Progress,
    blobs: Option<&SetBlobs>,
    problems: &mut Vec<Problem>,
) -> PartsChecked {
    let mut checked = PartsChecked::default();
    checked.report = parts_report(path, jobs, progress, blobs, &mut checked.blobs_ok, problems);
    checked
}

fn parts_report(
    path: &Path,
    jobs: usize,
    progress: &dyn Progress,
    blobs: Option<&SetBlobs>,
    blobs_ok: &mut HashSet<Digest>,
    problems: &mut Vec<Problem>,
) -> Option<PartsReport> {
    let base = split_base(path)?;
    let sums_path = checksum_path(&base);
    let sums = match sums_path.is_file().then(|| ChecksumFile::load(&sums_path)) {
        None => {
            problems.push(Problem::warning(
                sums_path.display().to_string(),
                "not found: the parts cannot be checked one by one \
                 (blobs are still hashed)",
            ));
            return None;
        }
        Some(Err(e)) => {
            problems.push(Problem::error(
                sums_path.display().to_string(),
                crate::problem::error_chain(&e),
            ));
            return None;
        }
        Some(Ok(s)) => s,
    };
    let listed: Vec<(Option<usize>, PathBuf, String)> = sums
        .entries()
        .iter()
        .filter_map(|(hex, name)| {
            let p = base.with_file_name(name);
            match split_part_path(&p) {
                Some((b, i)) if b == base => Some((Some(i), p, hex.clone())),
                _ => (0..100)
                    .any(|j| parity_path(&base, j) == p)
                    .then(|| (None, p, hex.clone())),
            }
        })
        .collect();
    if listed.is_empty() {
        problems.push(Problem::warning(
            sums_path.display().to_string(),
            "lists no parts: the parts cannot be checked one by one",
        ));
        return None;
    }
    let part_size = std::fs::metadata(part_path(&base, 0)).map(|m| m.len()).ok();
    let (found, ok) = hash_runs(&listed, jobs, blobs, progress);
    blobs_ok.extend(ok);
    let mut parts = Vec::new();
    let mut parity = Vec::new();
    for ((index, p, hex), (size, actual)) in listed.iter().zip(found) {
        let status = match (&actual, size) {
            (None, _) => PartStatus::Missing,
            (Some(a), _) if a == hex => PartStatus::Ok,
            (Some(a), _) if listed.iter().any(|(_, _, h)| h == a) => PartStatus::Misplaced,
            _ => PartStatus::Damaged,
        };
        let entry = p.display().to_string();
        match status {
            PartStatus::Ok => {}
            PartStatus::Missing => problems.push(
                Problem::error(
                    &entry,
                    format!("is missing (listed in {})", sums_path.display()),
                )
                .expected_found(format!("sha256 {hex}"), "no such file"),
            ),
            PartStatus::Misplaced => {
                let a = actual.as_deref().unwrap_or_default();
                let other = listed
                    .iter()
                    .find(|(_, _, h)| h == a)
                    .map(|(_, o, _)| o.display().to_string())
                    .unwrap_or_default();
                problems.push(
                    Problem::error(
                        &entry,
                        format!("holds the content of {other}: parts renamed or out of order"),
                    )
                    .expected_found(format!("sha256 {hex}"), format!("sha256 {a}")),
                );
            }
            PartStatus::Damaged => problems.push(
                Problem::error(
                    &entry,
                    format!(
                        "is damaged: its content does not match {}",
                        sums_path.display()
                    ),
                )
                .expected_found(
                    format!("sha256 {hex}"),
                    format!(
                        "sha256 {} ({} bytes)",
                        actual.as_deref().unwrap_or_default(),
                        size.unwrap_or(0)
                    ),
                ),
            ),
        }
        let check = PartCheck {
            path: p.clone(),
            offset: index.and(part_size).map(|s| s * index.unwrap_or(0) as u64),
            size,
            status,
        };
        match index {
            Some(_) => parts.push(check),
            None => parity.push(check),
        }
    }
    let mut report = PartsReport {
        checksums: sums_path,
        parts,
        parity,
        repairable: false,
    };
    let bad = report.bad().count();
    report.repairable = bad > 0 && bad <= report.parity.len();
    let advice = if report.repairable {
        format!(
            "; {bad} bad part(s), {} parity part(s): `ferry repair {}` rebuilds them",
            report.parity.len(),
            part_path(&base, 0).display()
        )
    } else if report.parity.is_empty() {
        "; no parity parts: copy this part again from the source".to_string()
    } else {
        format!(
            "; {bad} bad part(s) but only {} parity part(s): too many to rebuild",
            report.parity.len()
        )
    };
    for part in report.bad() {
        let entry = part.path.display().to_string();
        if let Some(p) = problems.iter_mut().find(|p| p.entry == entry) {
            p.message.push_str(&advice);
        }
    }
    Some(report)
}

/// Add to each bad part's problem what it holds bytes of: the references
/// whose blobs overlap it.
pub(crate) fn name_affected(
    report: &PartsReport,
    archive: &LayoutArchive,
    uses: &[(String, std::collections::BTreeSet<ferry_oci::Digest>)],
    problems: &mut [Problem],
) {
    let Some(set) = archive.part_set() else {
        return;
    };
    let part_size = set.part_size();
    for part in report.bad() {
        let Some(start) = part.offset else { continue };
        let end = (start + part_size).min(set.len());
        let hit: Vec<_> = archive
            .blobs()
            .filter(|b| b.data_offset < end && b.data_offset + b.size > start)
            .map(|b| &b.digest)
            .collect();
        let mut refs: Vec<&str> = uses
            .iter()
            .filter(|(_, blobs)| hit.iter().any(|d| blobs.contains(*d)))
            .map(|(r, _)| r.as_str())
            .collect();
        refs.dedup();
        let entry = part.path.display().to_string();
        if let Some(p) = problems.iter_mut().find(|p| p.entry == entry) {
            if refs.is_empty() {
                p.message.push_str("; it holds no image's blob bytes");
            } else {
                p.message
                    .push_str(&format!("; affects {}: {}", refs.len(), refs.join(", ")));
            }
        }
    }
}

/// A blob checked as the parts are read: where its bytes lie in the whole
/// set.
#[derive(Debug, Clone)]
pub(crate) struct SetBlob {
    at: u64,
    size: u64,
    digest: Digest,
}

/// The blobs to check as a split set's data parts are read.
#[derive(Debug, Clone)]
pub(crate) struct SetBlobs {
    part_size: u64,
    /// In order of place.
    blobs: Vec<SetBlob>,
}

impl SetBlobs {
    /// The blobs of `archive`, but those in `skip`; `None` when the archive
    /// is not read straight from a split set (a compressed set is inflated
    /// first: its parts do not hold the blobs' bytes).
    pub(crate) fn of(archive: &LayoutArchive, skip: &HashSet<Digest>) -> Option<SetBlobs> {
        let set = archive.part_set().filter(|s| s.is_split())?;
        let mut blobs: Vec<SetBlob> = archive
            .blobs()
            .filter(|b| {
                b.size > 0 && b.digest.algorithm() == Algorithm::Sha256 && !skip.contains(&b.digest)
            })
            .map(|b| SetBlob {
                at: b.data_offset,
                size: b.size,
                digest: b.digest.clone(),
            })
            .collect();
        blobs.sort_by_key(|b| b.at);
        Some(SetBlobs {
            part_size: set.part_size(),
            blobs,
        })
    }

    /// Whether a blob runs on from part `index - 1` into part `index`.
    fn crosses_into(&self, index: usize) -> bool {
        let at = self.part_size.saturating_mul(index as u64);
        let before = self.blobs.partition_point(|b| b.at < at);
        before > 0
            && self.blobs[before - 1]
                .at
                .saturating_add(self.blobs[before - 1].size)
                > at
    }

    /// Those that lie whole in the `count` parts from part `first` on.
    fn within(&self, first: usize, count: usize) -> Vec<SetBlob> {
        let start = self.part_size.saturating_mul(first as u64);
        let end = self.part_size.saturating_mul((first + count) as u64);
        let from = self.blobs.partition_point(|b| b.at < start);
        self.blobs[from..]
            .iter()
            .take_while(|b| b.at < end)
            .filter(|b| b.at.checked_add(b.size).is_some_and(|e| e <= end))
            .cloned()
            .collect()
    }
}

/// Files read one after another by one thread: a run of data parts in
/// order (a blob may run on from one part into the next), or any one file.
struct Run<'a> {
    /// Each file's place in the list given to [`hash_runs`], and its path.
    files: Vec<(usize, &'a Path)>,
    /// Where the first file starts in the whole set.
    start: u64,
    part_size: u64,
    blobs: Vec<SetBlob>,
}

/// Cut the listed files into runs: data parts listed once each, with
/// consecutive indices, kept together wherever a blob runs on from one
/// into the next (so every blob is checked from the one read), cut apart
/// everywhere else (so the threads share the work); every other file
/// alone. Biggest runs first.
fn plan_runs<'a>(
    listed: &'a [(Option<usize>, PathBuf, String)],
    blobs: Option<&SetBlobs>,
) -> Vec<Run<'a>> {
    let alone = |i: usize, path: &'a Path| Run {
        files: vec![(i, path)],
        start: 0,
        part_size: 0,
        blobs: Vec::new(),
    };
    let Some(blobs) = blobs else {
        return listed
            .iter()
            .enumerate()
            .map(|(i, (_, p, _))| alone(i, p))
            .collect();
    };
    let mut data: Vec<(usize, usize)> = listed
        .iter()
        .enumerate()
        .filter_map(|(i, (index, _, _))| index.map(|index| (index, i)))
        .collect();
    data.sort();
    let mut runs = Vec::new();
    let mut taken = vec![false; listed.len()];
    let mut group: Vec<(usize, usize)> = Vec::new();
    let close = |group: &mut Vec<(usize, usize)>, runs: &mut Vec<Run<'a>>| {
        if let Some(&(first, _)) = group.first() {
            runs.push(Run {
                files: group
                    .iter()
                    .map(|&(_, i)| (i, listed[i].1.as_path()))
                    .collect(),
                start: blobs.part_size.saturating_mul(first as u64),
                part_size: blobs.part_size,
                blobs: blobs.within(first, group.len()),
            });
        }
        group.clear();
    };
    let mut previous = None;
    for (index, i) in data {
        if previous == Some(index) {
            continue; // listed twice: read alone, below
        }
        previous = Some(index);
        let runs_on = group
            .last()
            .is_some_and(|&(last, _)| index == last + 1 && blobs.crosses_into(index));
        if !runs_on {
            close(&mut group, &mut runs);
        }
        group.push((index, i));
        taken[i] = true;
    }
    close(&mut group, &mut runs);
    for (i, (_, path, _)) in listed.iter().enumerate() {
        if !taken[i] {
            runs.push(alone(i, path));
        }
    }
    runs.sort_by_key(|run| std::cmp::Reverse(run.files.len()));
    runs
}

/// A file's size and sha256 hex, each `None` when it cannot be read.
type FileHash = (Option<u64>, Option<String>);

/// Read each listed file once, `jobs` runs at a time (see [`plan_runs`]):
/// each file's (size, sha256 hex; `None` when it cannot be read), in the
/// order listed, and the blobs that hashed to their digests.
fn hash_runs(
    listed: &[(Option<usize>, PathBuf, String)],
    jobs: usize,
    blobs: Option<&SetBlobs>,
    progress: &dyn Progress,
) -> (Vec<FileHash>, HashSet<Digest>) {
    let sizes: Vec<Option<u64>> = listed
        .iter()
        .map(|(_, p, _)| std::fs::metadata(p).ok().map(|m| m.len()))
        .collect();
    progress.start(
        "parts",
        listed.len() as u64,
        sizes.iter().flatten().sum::<u64>(),
    );
    let runs = plan_runs(listed, blobs);
    // Too few runs to keep every thread busy: a run's blobs get a thread
    // of their own.
    let lanes = match runs.len() < jobs {
        true => Lanes::Apart,
        false => Lanes::Together,
    };
    let next = AtomicUsize::new(0);
    let hashes: Mutex<Vec<Option<String>>> = Mutex::new(vec![None; listed.len()]);
    let blobs_ok: Mutex<HashSet<Digest>> = Mutex::new(HashSet::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, runs.len().max(1)) {
            s.spawn(|| loop {
                let r = next.fetch_add(1, Ordering::Relaxed);
                let Some(run) = runs.get(r) else { break };
                let (each, found) = hash_run(run, lanes, progress);
                let mut hashes = hashes.lock().expect("part hashes lock");
                for ((i, _), hex) in run.files.iter().zip(each) {
                    hashes[*i] = hex;
                }
                blobs_ok.lock().expect("blob checks lock").extend(found);
            });
        }
    });
    progress.finish();
    let hashes = hashes.into_inner().expect("part hashes lock");
    let found = sizes.into_iter().zip(hashes).collect();
    (found, blobs_ok.into_inner().expect("blob checks lock"))
}

/// Buffers read ahead of the hashing, per run.
const READ_AHEAD: usize = 4;

/// How a run's lanes are spread over threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lanes {
    /// One thread feeds the part's lane and the blob's together: the least
    /// CPU, for when there are runs enough to keep every thread busy.
    Together,
    /// One thread feeds the parts' lanes, another the blobs': for a run
    /// that would otherwise leave a thread idle.
    Apart,
}

/// Read a run's files front to back, one after another: each file's
/// sha256 hex (`None` when it cannot be read), and the run's blobs that
/// hash to their digests, fed from the same reads. A thread of its own
/// reads ahead, so the disk and the hashing overlap.
fn hash_run(
    run: &Run,
    lanes: Lanes,
    progress: &dyn Progress,
) -> (Vec<Option<String>>, Vec<Digest>) {
    let (to_reader, spare) = mpsc::channel();
    let (to_parts, for_parts) = mpsc::sync_channel(READ_AHEAD);
    std::thread::scope(|s| match lanes {
        Lanes::Together => {
            s.spawn(|| read_files(run, &[to_parts], spare));
            let feeder = Feeder::new(run, true, &run.blobs);
            feed_from(for_parts, &to_reader, feeder, Some(progress))
        }
        Lanes::Apart => {
            let (to_blobs, for_blobs) = mpsc::sync_channel(READ_AHEAD);
            s.spawn(|| read_files(run, &[to_parts, to_blobs], spare));
            let blobs = s.spawn(|| {
                let feeder = Feeder::new(run, false, &run.blobs);
                feed_from(for_blobs, &to_reader, feeder, None).1
            });
            let feeder = Feeder::new(run, true, &[]);
            let (hashes, _) = feed_from(for_parts, &to_reader, feeder, Some(progress));
            // Should that thread have failed, its blobs are left to the
            // blob pass.
            (hashes, blobs.join().unwrap_or_default())
        }
    })
}

/// Feed what the reader sends to `feeder`, file after file, sending each
/// buffer back; each file's sha256 hex and the blobs checked.
fn feed_from(
    read: mpsc::Receiver<Chunk>,
    to_reader: &mpsc::Sender<Arc<Vec<u8>>>,
    mut feeder: Feeder,
    progress: Option<&dyn Progress>,
) -> (Vec<Option<String>>, Vec<Digest>) {
    let mut hashes = Vec::with_capacity(feeder.run.files.len());
    let mut blobs_ok = Vec::new();
    for k in 0..feeder.run.files.len() {
        feeder.start_file(k);
        let hex = loop {
            match read.recv() {
                Ok(Chunk::Bytes(bytes)) => {
                    if let Some(progress) = progress {
                        progress.bytes(bytes.len() as u64);
                    }
                    feeder.feed(&bytes, &mut blobs_ok);
                    // The reader may have ended; the buffer is dropped.
                    let _ = to_reader.send(bytes);
                }
                Ok(Chunk::End) => break feeder.end_file(),
                Ok(Chunk::Failed) | Err(_) => break feeder.fail_file(),
            }
        };
        if let Some(progress) = progress {
            progress.item_done();
        }
        hashes.push(hex);
    }
    (hashes, blobs_ok)
}

/// What the reader hands the hashing threads, file after file (each
/// thread a clone: the bytes are shared).
#[derive(Clone)]
enum Chunk {
    Bytes(Arc<Vec<u8>>),
    /// The file is read to its end.
    End,
    /// It could not be opened or read: the reader moves on to the next.
    Failed,
}

/// Read the run's files in turn, each chunk sent to every one of `to`,
/// into buffers sent back on `spare` (once every hashing thread is done
/// with one) or new ones while the channels have room; until done or
/// nobody listens.
fn read_files(run: &Run, to: &[mpsc::SyncSender<Chunk>], spare: mpsc::Receiver<Arc<Vec<u8>>>) {
    let send = |chunk: Chunk| to.iter().all(|t| t.send(chunk.clone()).is_ok());
    let size = ferry_oci::fsutil::HASH_READ;
    let mut pool: Vec<Vec<u8>> = Vec::new();
    for (_, path) in &run.files {
        let Ok(mut file) = std::fs::File::open(path) else {
            if !send(Chunk::Failed) {
                return;
            }
            continue;
        };
        let end = loop {
            // A buffer comes back once from each thread: the last one
            // back is free again.
            pool.extend(spare.try_iter().filter_map(|b| Arc::try_unwrap(b).ok()));
            let mut buffer = pool.pop().unwrap_or_default();
            buffer.resize(size, 0);
            match file.read(&mut buffer) {
                Ok(0) => break Chunk::End,
                Ok(n) => {
                    buffer.truncate(n);
                    if !send(Chunk::Bytes(Arc::new(buffer))) {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break Chunk::Failed,
            }
        };
        if !send(end) {
            return;
        }
    }
}

/// The hashing side of a run: the part's lane, the lane of the blob being
/// passed, or both, fed together.
struct Feeder<'a> {
    run: &'a Run<'a>,
    /// Whether the parts are hashed here.
    hash_parts: bool,
    part: Lane,
    /// The blobs checked here, in order of place.
    blobs: &'a [SetBlob],
    /// The blob being fed (its index in `blobs`, its lane), and the next
    /// to look for.
    current: Option<(usize, Lane)>,
    next: usize,
    /// Where the next byte fed lies in the whole set.
    pos: u64,
}

impl<'a> Feeder<'a> {
    fn new(run: &'a Run<'a>, hash_parts: bool, blobs: &'a [SetBlob]) -> Feeder<'a> {
        Feeder {
            run,
            hash_parts,
            part: Lane::new(),
            blobs,
            current: None,
            next: 0,
            pos: run.start,
        }
    }

    /// The `k`th file of the run begins.
    fn start_file(&mut self, k: usize) {
        let start = self.run.start + self.run.part_size * k as u64;
        if self.pos != start {
            // The file before was short or unreadable: the blob it ended
            // in cannot be checked here (the blob pass reads it).
            self.current = None;
            self.pos = start;
        }
        self.part = Lane::new();
    }

    /// The file's next bytes: to the part, and to whichever blob they
    /// belong to; a blob that ends here is checked into `blobs_ok`. A
    /// blob that overlaps the one before it is passed over.
    fn feed(&mut self, mut bytes: &[u8], blobs_ok: &mut Vec<Digest>) {
        let blobs = self.blobs;
        while !bytes.is_empty() {
            if self.current.is_none() {
                while blobs.get(self.next).is_some_and(|b| b.at < self.pos) {
                    self.next += 1;
                }
                if blobs.get(self.next).is_some_and(|b| b.at == self.pos) {
                    self.current = Some((self.next, Lane::new()));
                    self.next += 1;
                }
            }
            let until = match &self.current {
                Some((i, _)) => blobs[*i].at + blobs[*i].size,
                None => blobs.get(self.next).map_or(u64::MAX, |b| b.at),
            };
            let take = (until - self.pos).min(bytes.len() as u64) as usize;
            let (now, rest) = bytes.split_at(take);
            match (&mut self.current, self.hash_parts) {
                (Some((_, lane)), true) => update_together(&mut [&mut self.part, lane], now),
                (Some((_, lane)), false) => lane.update(now),
                (None, true) => self.part.update(now),
                (None, false) => {}
            }
            bytes = rest;
            self.pos += take as u64;
            if self.pos == until {
                if let Some((i, lane)) = self.current.take() {
                    if hex::encode(lane.finalize()) == blobs[i].digest.hex() {
                        blobs_ok.push(blobs[i].digest.clone());
                    }
                }
            }
        }
    }

    /// The file is read whole: its sha256 hex.
    fn end_file(&mut self) -> Option<String> {
        Some(hex::encode(std::mem::take(&mut self.part).finalize()))
    }

    /// The file could not be read through: no hash, and the blob it was
    /// in is not checked here.
    fn fail_file(&mut self) -> Option<String> {
        self.current = None;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Patterned bytes, cut into files of `part_size` (the last `cut` bytes
    /// short), and blobs at `places` (start, size) in the whole, with the
    /// digests of the pattern there.
    fn run_of(
        dir: &Path,
        len: usize,
        part_size: usize,
        cut: usize,
        places: &[(usize, usize)],
    ) -> (Vec<PathBuf>, Vec<SetBlob>) {
        let end = places
            .iter()
            .map(|&(at, size)| at + size)
            .fold(len, usize::max);
        let bytes: Vec<u8> = (0..end).map(|i| (i * 7 % 251) as u8).collect();
        let paths = bytes[..len]
            .chunks(part_size)
            .enumerate()
            .map(|(i, chunk)| {
                let path = dir.join(format!("f.tar.{i:03}"));
                std::fs::write(&path, &chunk[..chunk.len() - cut.min(chunk.len())]).unwrap();
                path
            })
            .collect();
        let blobs = places
            .iter()
            .map(|&(at, size)| SetBlob {
                at: at as u64,
                size: size as u64,
                digest: Digest::sha256_of(&bytes[at..at + size]),
            })
            .collect();
        (paths, blobs)
    }

    fn hash(
        paths: &[PathBuf],
        part_size: usize,
        blobs: &[SetBlob],
    ) -> (Vec<Option<String>>, Vec<Digest>) {
        let run = Run {
            files: paths
                .iter()
                .enumerate()
                .map(|(i, p)| (i, p.as_path()))
                .collect(),
            start: 0,
            part_size: part_size as u64,
            blobs: blobs.to_vec(),
        };
        // The lanes together on one thread, or apart on two: the same.
        let mut found = [Lanes::Together, Lanes::Apart]
            .map(|lanes| hash_run(&run, lanes, &ferry_oci::NoProgress));
        assert_eq!(found[0], found[1]);
        std::mem::take(&mut found[0])
    }

    fn sha256_of_file(path: &Path) -> Option<String> {
        Some(
            Digest::sha256_of(&std::fs::read(path).unwrap())
                .hex()
                .to_string(),
        )
    }

    #[test]
    fn one_read_gives_each_part_hash_and_checks_the_blobs_even_across_parts() {
        let dir = tempfile::tempdir().unwrap();
        let read = ferry_oci::fsutil::HASH_READ;
        let part = read + 5000;
        let len = 3 * part - 10;
        // One at the very start, one across a read boundary, one across
        // two part boundaries, one not on a 64-byte block boundary, one at
        // the very end.
        let places = [
            (0, 512),
            (1024, read),
            (read + 2048, part + 4000),
            (2 * part + 1103, 777),
            (len - 100, 100),
        ];
        let (paths, blobs) = run_of(dir.path(), len, part, 0, &places);
        let (hashes, ok) = hash(&paths, part, &blobs);
        let expected: Vec<_> = paths.iter().map(|p| sha256_of_file(p)).collect();
        assert_eq!(hashes, expected);
        let all: Vec<Digest> = blobs.iter().map(|b| b.digest.clone()).collect();
        assert_eq!(ok, all);
    }

    #[test]
    fn damaged_cut_short_and_overlapping_blobs_are_left_to_the_blob_pass() {
        let dir = tempfile::tempdir().unwrap();
        // Parts of 4000, each 10 bytes short: the blob across the first
        // boundary cannot be checked, nor the one that overlaps another;
        // those whole inside a part can.
        let places = [
            (0, 1000),
            (1000, 2900),
            (2000, 100),
            (3500, 1000),
            (4100, 500),
        ];
        let (paths, mut blobs) = run_of(dir.path(), 12_000, 4000, 10, &places);
        // The first blob's digest is another's: its bytes do not match.
        blobs[0].digest = Digest::sha256_of(b"something else");
        let (hashes, ok) = hash(&paths, 4000, &blobs);
        let expected: Vec<_> = paths.iter().map(|p| sha256_of_file(p)).collect();
        assert_eq!(hashes, expected);
        assert_eq!(ok, vec![blobs[1].digest.clone(), blobs[4].digest.clone()]);
    }

    #[test]
    fn a_missing_part_is_none_and_the_blob_running_into_it_unchecked() {
        let dir = tempfile::tempdir().unwrap();
        let places = [(100, 4000), (8100, 100)];
        let (paths, blobs) = run_of(dir.path(), 9000, 4000, 0, &places);
        std::fs::remove_file(&paths[1]).unwrap();
        let (hashes, ok) = hash(&paths, 4000, &blobs);
        assert_eq!(hashes[0], sha256_of_file(&paths[0]));
        assert_eq!(hashes[1], None);
        assert_eq!(hashes[2], sha256_of_file(&paths[2]));
        assert_eq!(ok, vec![blobs[1].digest.clone()]);
    }

    #[test]
    fn runs_cover_each_listed_file_once_and_hold_together_where_a_blob_runs_on() {
        let listed: Vec<(Option<usize>, PathBuf, String)> = [
            Some(0),
            Some(1),
            Some(2),
            Some(3),
            Some(5),
            Some(5),
            None,
            Some(6),
        ]
        .into_iter()
        .map(|i| (i, PathBuf::from(format!("{i:?}")), String::new()))
        .collect();
        let blob = |at: u64, size: u64| SetBlob {
            at,
            size,
            digest: Digest::sha256_of(&at.to_be_bytes()),
        };
        // Parts of 10: a blob from part 1 into part 3, one inside part 3,
        // one from part 5 into part 6 (the first 5 listed).
        let blobs = SetBlobs {
            part_size: 10,
            blobs: vec![blob(12, 15), blob(31, 5), blob(55, 7)],
        };
        let runs = plan_runs(&listed, Some(&blobs));
        let files: Vec<Vec<usize>> = runs
            .iter()
            .map(|r| r.files.iter().map(|(i, _)| *i).collect())
            .collect();
        assert_eq!(
            files,
            vec![vec![1, 2], vec![4, 7], vec![0], vec![3], vec![5], vec![6]]
        );
        assert_eq!((runs[0].start, runs[1].start, runs[3].start), (10, 50, 30));
        let at: Vec<Vec<u64>> = runs
            .iter()
            .map(|r| r.blobs.iter().map(|b| b.at).collect())
            .collect();
        assert_eq!(
            at,
            vec![vec![12], vec![55], vec![], vec![31], vec![], vec![]]
        );
        // Without the archive's blobs, each file alone.
        assert_eq!(plan_runs(&listed, None).len(), listed.len());
    }
}
