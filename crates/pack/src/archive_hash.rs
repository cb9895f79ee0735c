//! The bundle's own sha256, computed while the bundle is still being
//! written.
//!
//! Blobs land in parallel at their planned offsets, so the archive cannot
//! be hashed as a stream of arrivals. Instead a thread follows the written
//! frontier: everything before the first blob that is still arriving is
//! final, and so is the part of that blob already written (each blob is
//! written front to back). The thread hashes up to the frontier and waits
//! for more, so by the time the last blob lands little is left to hash.
//!
//! A blob fetched again after a broken transfer may rewrite bytes the
//! thread has already hashed; any such retry marks the running hash as
//! spoiled and the archive is hashed again from the start at commit.
//!
//! The same thread checks the blobs against their digests: a blob fetched
//! from its start lands unhashed, its check asked for before its first
//! byte ([`ArchiveHasher::check`]), and a blob found whole in a resumed
//! pack's partial bundle is handed over with its digest
//! ([`ArchiveHasher::reused`]). As the thread passes a blob's bytes it
//! feeds them to the whole's hash, the part's (when split) and the blob's
//! from the one read, hashed together ([`ferry_lanes`]: three streams cost
//! 1.3 to 2 times one, by the CPU, where the blob's hash made by the worker
//! as it arrived cost a whole second pass). The verdict comes back when the
//! thread has passed the blob's last byte; a blob that does not hash to
//! its digest spoils the running hash (it is fetched again, over what was
//! hashed). Once spoiled, the thread goes on only for the checks still to
//! make, reading nothing else.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ferry_lanes::{update_together, Lane};
use ferry_oci::layout::PartSet;
use ferry_oci::{fsutil, Algorithm, Digest, DigestHasher, Progress};
use tokio::sync::oneshot;

/// How much the thread reads at once.
const READ: usize = fsutil::HASH_READ;
/// How long the thread waits for the frontier to move.
const POLL: Duration = Duration::from_millis(2);

type FollowResult = std::io::Result<Option<Hashed>>;

/// The archive's sha256 and, for a split bundle, each part's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hashed {
    /// sha256 hex of the whole archive.
    pub sha256: String,
    /// Its length.
    pub len: u64,
    /// sha256 hex of each part, in order; empty for a single file.
    pub parts: Vec<String>,
}

/// One blob's planned place in the archive and how much of it is written.
struct Region {
    offset: u64,
    size: u64,
    written: AtomicU64,
    /// The blob's check against its digest, made as the thread passes
    /// it: set before `written` says any of it is written, taken when the
    /// verdict is given (or when the blob is fetched again, hashed by its
    /// worker).
    check: Mutex<Option<Check>>,
}

impl Region {
    fn end(&self) -> u64 {
        self.offset + self.size
    }

    fn check(&self) -> std::sync::MutexGuard<'_, Option<Check>> {
        self.check.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A blob's check, under way.
struct Check {
    expected: Digest,
    hash: CheckHash,
    verdict: oneshot::Sender<bool>,
}

/// A check's running hash: a lane beside the whole's when the digest is a
/// sha256 (all but a rare sha512 one).
enum CheckHash {
    Sha256(Lane),
    Other(DigestHasher),
}

impl CheckHash {
    fn for_digest(digest: &Digest) -> CheckHash {
        match digest.algorithm() {
            Algorithm::Sha256 => CheckHash::Sha256(Lane::new()),
            _ => CheckHash::Other(DigestHasher::for_digest(digest)),
        }
    }

    /// Whether what was fed hashes to `expected`.
    fn is(self, expected: &Digest) -> bool {
        match self {
            CheckHash::Sha256(lane) => hex::encode(lane.finalize()) == expected.hex(),
            CheckHash::Other(hasher) => hasher.finish() == *expected,
        }
    }
}

struct Shared {
    /// Blob regions in offset order.
    regions: Vec<Region>,
    /// A blob was fetched again: hashed bytes may have changed.
    spoiled: AtomicBool,
    /// The bundle is abandoned: stop.
    stop: AtomicBool,
    /// The thread has ended (or never started): no check will be made.
    ended: AtomicBool,
    /// Bytes hashed so far, for progress.
    hashed: AtomicU64,
}

/// The sha256 of the archive, computed by a thread that follows the
/// written frontier. Dropping it stops the thread.
pub(crate) struct ArchiveHasher {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<FollowResult>>>,
    file: Arc<PartSet>,
}

impl ArchiveHasher {
    /// Start hashing `file` (`len` bytes). Everything outside `regions`
    /// (`(offset, size)` of each blob still to arrive, in offset order) must
    /// already be written. Slot `i` in [`ArchiveHasher::written`] is
    /// `regions[i]`.
    pub fn start(file: Arc<PartSet>, len: u64, regions: &[(u64, u64)]) -> ArchiveHasher {
        debug_assert!(regions.windows(2).all(|w| w[0].0 <= w[1].0));
        let shared = Arc::new(Shared {
            regions: regions
                .iter()
                .map(|&(offset, size)| Region {
                    offset,
                    size,
                    written: AtomicU64::new(0),
                    check: Mutex::new(None),
                })
                .collect(),
            spoiled: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            hashed: AtomicU64::new(0),
        });
        let thread = {
            let shared = shared.clone();
            let file = file.clone();
            std::thread::Builder::new()
                .name("ferry-archive-sha256".to_string())
                .spawn(move || follow(&shared, &file, len))
                .ok()
        };
        if thread.is_none() {
            shared.ended.store(true, Ordering::Release);
        }
        ArchiveHasher {
            shared,
            thread: Mutex::new(thread),
            file,
        }
    }

    /// The first `bytes` of the blob in `slot` are written and final
    /// (unless the blob is fetched again, see [`ArchiveHasher::restarted`]).
    pub fn written(&self, slot: usize, bytes: u64) {
        self.shared.regions[slot]
            .written
            .store(bytes, Ordering::Release);
    }

    /// The blob in `slot` is already in the file, every byte of it, it
    /// seems (a partial bundle being resumed): its bytes count as written
    /// from now on, and as the thread passes them they are checked against
    /// `digest`, from the same reads as the archive's hash. The verdict
    /// (`true`: they hash to `digest`) comes on the returned channel; when
    /// it is `false` the running hash is spoiled already, ready for the
    /// blob to be fetched again over it. No verdict at all (the channel
    /// closed) means the thread ended first, on an error or dropped: the
    /// blob is unchecked.
    pub fn reused(&self, slot: usize, digest: &Digest) -> oneshot::Receiver<bool> {
        let receiver = self.check(slot, digest);
        let region = &self.shared.regions[slot];
        region.written.store(region.size, Ordering::Release);
        receiver
    }

    /// The blob in `slot` is to land (or to be found) unhashed, and marked
    /// [`ArchiveHasher::written`] as it does: as the thread passes its
    /// bytes they are checked against `digest`, from the same reads as the
    /// archive's hash. The verdict comes as for [`ArchiveHasher::reused`].
    /// Must be called before any byte of it is said to be written.
    pub fn check(&self, slot: usize, digest: &Digest) -> oneshot::Receiver<bool> {
        let (verdict, receiver) = oneshot::channel();
        let region = &self.shared.regions[slot];
        if region.size == 0 {
            // Nothing for the thread to pass.
            let _ = verdict.send(DigestHasher::for_digest(digest).finish() == *digest);
            return receiver;
        }
        // Under the region's lock: the thread, ending, empties every
        // region's check after saying so.
        let mut check = region.check();
        if !self.shared.ended.load(Ordering::Acquire) {
            *check = Some(Check {
                expected: digest.clone(),
                hash: CheckHash::for_digest(digest),
                verdict,
            });
        }
        receiver
    }

    /// The check asked for the blob in `slot` is off (the blob is fetched
    /// again, and hashed as it arrives): its verdict never comes.
    pub fn uncheck(&self, slot: usize) {
        self.shared.regions[slot].check().take();
    }

    /// A blob is being fetched again: its bytes may be rewritten.
    pub fn restarted(&self) {
        self.shared.spoiled.store(true, Ordering::Release);
    }

    /// Wait for the hash of the whole archive (every blob must be written);
    /// hash it again from the start if it was spoiled.
    pub fn finish(&self, progress: &dyn Progress) -> std::io::Result<Hashed> {
        let len = self.file.len();
        progress.start("sha256", 1, len);
        let mut reported = 0;
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        let outcome = match thread {
            Some(thread) => {
                while !thread.is_finished() {
                    let hashed = self.shared.hashed.load(Ordering::Relaxed);
                    progress.bytes(hashed.saturating_sub(reported));
                    reported = reported.max(hashed);
                    std::thread::sleep(Duration::from_millis(20));
                }
                thread
                    .join()
                    .map_err(|_| std::io::Error::other("the hashing thread panicked"))??
            }
            None => None,
        };
        let result = match outcome {
            Some(done) if !self.shared.spoiled.load(Ordering::Acquire) => {
                progress.bytes(len.saturating_sub(reported));
                done
            }
            _ => {
                progress.start("sha256", 1, len);
                hash_all(&self.file, &mut |n| progress.bytes(n))?
            }
        };
        progress.finish();
        Ok(result)
    }
}

impl Drop for ArchiveHasher {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
    }
}

/// The whole's sha256 and, for a split bundle, its parts', fed in order;
/// and beside them the checks of the blobs the bytes belong to, every
/// sha256 stream fed from the same read and hashed together (see
/// [`ferry_lanes`]).
struct SetHasher<'a> {
    set: &'a PartSet,
    whole: Lane,
    /// The part being hashed (when split).
    part: Lane,
    /// Each part's sha256 hex, as each ends.
    parts: Vec<String>,
    /// Bytes fed to the whole's hash.
    pos: u64,
    /// More than one part: part hashes are made, and reads stop at part
    /// ends.
    split: bool,
}

impl<'a> SetHasher<'a> {
    fn new(set: &'a PartSet) -> SetHasher<'a> {
        SetHasher {
            set,
            whole: Lane::new(),
            part: Lane::new(),
            parts: Vec::new(),
            pos: 0,
            split: set.parts().count() > 1,
        }
    }

    /// How many bytes from here may be read before a part ends.
    fn room(&self) -> u64 {
        match self.split {
            true => self.set.part_size() - self.pos % self.set.part_size(),
            false => u64::MAX,
        }
    }

    /// `bytes`, read at `at`: fed to the whole's hash (and its part's) when
    /// `next` (they are the next bytes in order), and to the checks of the
    /// regions they cover (`checks`: the regions, and the first not wholly
    /// checked, moved on past those done with), giving each region's
    /// verdict at its last byte.
    fn feed(&mut self, at: u64, bytes: &[u8], next: bool, checks: Option<(&Shared, &mut usize)>) {
        let end = at + bytes.len() as u64;
        let slice = |from: u64, to: u64| &bytes[(from - at) as usize..(to - at) as usize];
        // Everything before `fed` is fed.
        let mut fed = at;
        if let Some((shared, checking)) = checks {
            while let Some(region) = shared.regions.get(*checking) {
                if region.offset >= end {
                    break;
                }
                if region.end() > fed {
                    let mut slot = region.check();
                    if let Some(check) = slot.as_mut() {
                        let from = region.offset.max(fed);
                        let to = region.end().min(end);
                        self.ordered(slice(fed, from), next, None);
                        self.ordered(slice(from, to), next, Some(&mut check.hash));
                        fed = to;
                        if to == region.end() {
                            if let Some(check) = slot.take() {
                                let right = check.hash.is(&check.expected);
                                if !right {
                                    // To be fetched again, over bytes hashed
                                    // already.
                                    shared.spoiled.store(true, Ordering::Release);
                                }
                                let _ = check.verdict.send(right);
                            }
                        }
                    }
                }
                if region.end() > end {
                    break;
                }
                *checking += 1;
            }
        }
        self.ordered(slice(fed, end), next, None);
    }

    /// Feed `bytes` to the whole's hash and its part's when `next`, and to
    /// `check`, all together.
    fn ordered(&mut self, bytes: &[u8], next: bool, check: Option<&mut CheckHash>) {
        if bytes.is_empty() {
            return;
        }
        let mut lanes: Vec<&mut Lane> = Vec::with_capacity(3);
        if next {
            lanes.push(&mut self.whole);
            if self.split {
                lanes.push(&mut self.part);
            }
        }
        match check {
            Some(CheckHash::Sha256(lane)) => lanes.push(lane),
            Some(CheckHash::Other(hasher)) => hasher.update(bytes),
            None => {}
        }
        update_together(&mut lanes, bytes);
        if next {
            self.pos += bytes.len() as u64;
            let ends_part =
                self.pos.is_multiple_of(self.set.part_size()) || self.pos == self.set.len();
            if self.split && ends_part {
                let part = std::mem::take(&mut self.part);
                self.parts.push(hex::encode(part.finalize()));
            }
        }
    }

    fn finish(self) -> Hashed {
        Hashed {
            sha256: hex::encode(self.whole.finalize()),
            len: self.pos,
            parts: self.parts,
        }
    }
}

/// The thread: hash up to the frontier, wait, repeat; check each blob
/// that has a check as it is passed. `None` when stopped or spoiled (the
/// caller hashes from scratch).
fn follow(shared: &Shared, file: &PartSet, len: u64) -> FollowResult {
    let _ended = Ended(shared);
    let mut archive = SetHasher::new(file);
    let mut buffer = vec![0u8; READ];
    // The first region not wholly written; the first not wholly checked.
    let (mut next, mut checking) = (0usize, 0usize);
    // Everything before `pos` is hashed (or, once spoiled, passed).
    let mut pos = 0u64;
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return Ok(None);
        }
        let spoiled = shared.spoiled.load(Ordering::Acquire);
        let frontier = loop {
            let Some(region) = shared.regions.get(next) else {
                break len;
            };
            let written = region.written.load(Ordering::Acquire);
            if written >= region.size {
                next += 1;
                continue;
            }
            break region.offset + written;
        };
        if frontier <= pos {
            if pos >= len {
                return match spoiled {
                    true => Ok(None),
                    false => Ok(Some(archive.finish())),
                };
            }
            std::thread::park_timeout(POLL);
            continue;
        }
        let (from, to) = if spoiled {
            // The archive is hashed again at the end: only the checks
            // still need bytes.
            match next_check(shared, pos, frontier) {
                Some(at) => (at, frontier.min(at + READ as u64)),
                None => {
                    pos = frontier;
                    continue;
                }
            }
        } else {
            let n = (frontier - pos).min(READ as u64).min(archive.room());
            (pos, pos + n)
        };
        let bytes = &mut buffer[..(to - from) as usize];
        file.read_exact_at(bytes, from)?;
        archive.feed(from, bytes, !spoiled, Some((shared, &mut checking)));
        pos = to;
        shared.hashed.store(pos, Ordering::Relaxed);
    }
}

/// Where, at or after `pos` and before `frontier`, the next region with a
/// check to make begins (or `pos`, inside one).
fn next_check(shared: &Shared, pos: u64, frontier: u64) -> Option<u64> {
    let first = shared.regions.partition_point(|r| r.end() <= pos);
    shared.regions[first..]
        .iter()
        .filter(|r| r.end() > pos)
        .take_while(|r| r.offset < frontier)
        .find(|r| r.check().is_some())
        .map(|r| r.offset.max(pos))
}

/// Says the thread ended, however it did, and drops the checks it will
/// never make (their receivers hear no verdict).
struct Ended<'a>(&'a Shared);

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        self.0.ended.store(true, Ordering::Release);
        for region in &self.0.regions {
            region.check().take();
        }
    }
}

/// sha256 of the whole set (and of each part) in one pass.
pub(crate) fn hash_all(file: &PartSet, on_bytes: &mut dyn FnMut(u64)) -> std::io::Result<Hashed> {
    let mut hasher = SetHasher::new(file);
    let mut buffer = vec![0u8; READ];
    while hasher.pos < file.len() {
        let n = (file.len() - hasher.pos)
            .min(hasher.room())
            .min(READ as u64);
        let bytes = &mut buffer[..n as usize];
        file.read_exact_at(bytes, hasher.pos)?;
        hasher.feed(hasher.pos, bytes, true, None);
        on_bytes(n);
    }
    Ok(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_oci::NoProgress;
    use sha2::Digest as _;
    use std::io::Write as _;
    use std::path::Path;

    fn sha256_hex(bytes: &[u8]) -> String {
        hex::encode(sha2::Sha256::digest(bytes))
    }

    #[test]
    fn hashes_what_lands_in_any_order() {
        let mut expected = vec![7u8; 100];
        expected.extend((0..3_000_000u32).map(|i| (i % 251) as u8));
        let temp = tempfile::tempfile().unwrap();
        temp.set_len(expected.len() as u64).unwrap();
        let file = Arc::new(PartSet::single(std::path::Path::new("t"), temp).unwrap());
        file.write_all_at(&expected[..100], 0).unwrap();
        // Two blobs: [100, 2_000_100) and [2_000_100, end).
        let regions = [
            (100, 2_000_000),
            (2_000_100, expected.len() as u64 - 2_000_100),
        ];
        let hasher = ArchiveHasher::start(file.clone(), expected.len() as u64, &regions);
        // The second blob lands first, then the first in pieces.
        file.write_all_at(&expected[2_000_100..], 2_000_100)
            .unwrap();
        hasher.written(1, regions[1].1);
        for piece in (0..2_000_000).step_by(300_000) {
            let end = (piece + 300_000).min(2_000_000);
            file.write_all_at(&expected[100 + piece..100 + end], 100 + piece as u64)
                .unwrap();
            hasher.written(0, end as u64);
        }
        let hashed = hasher.finish(&NoProgress).unwrap();
        assert_eq!(hashed.len, expected.len() as u64);
        assert_eq!(hashed.sha256, sha256_hex(&expected));
        assert!(hashed.parts.is_empty());
    }

    #[test]
    fn a_restarted_blob_is_hashed_again_from_the_file() {
        let mut temp = tempfile::tempfile().unwrap();
        temp.write_all(&[1u8; 10]).unwrap();
        temp.write_all(&[0u8; 1000]).unwrap();
        let file = Arc::new(PartSet::single(std::path::Path::new("t"), temp).unwrap());
        let hasher = ArchiveHasher::start(file.clone(), 1010, &[(10, 1000)]);
        // A first attempt writes wrong bytes, then breaks; a retry rewrites.
        file.write_all_at(&[9u8; 500], 10).unwrap();
        hasher.written(0, 500);
        std::thread::sleep(Duration::from_millis(50));
        hasher.restarted();
        file.write_all_at(&[2u8; 1000], 10).unwrap();
        hasher.written(0, 1000);
        let hashed = hasher.finish(&NoProgress).unwrap();
        let mut expected = vec![1u8; 10];
        expected.extend([2u8; 1000]);
        assert_eq!(hashed.sha256, sha256_hex(&expected));
    }

    /// A file of `len` bytes holding `bytes` at `offset` each, zeros
    /// elsewhere, split into parts of `part_size`.
    fn parts_with(dir: &Path, len: u64, part_size: u64, pieces: &[(u64, &[u8])]) -> Arc<PartSet> {
        let count = PartSet::parts_needed(len, part_size);
        let files = (0..count)
            .map(|i| {
                let p = dir.join(format!("p.{i:03}"));
                let mut options = std::fs::File::options();
                let f = options.read(true).write(true).create(true).truncate(true);
                (p.clone(), f.open(&p).unwrap())
            })
            .collect();
        let file = Arc::new(PartSet::for_writing(files, part_size, len));
        file.set_lengths().unwrap();
        for (offset, bytes) in pieces {
            file.write_all_at(bytes, *offset).unwrap();
        }
        file
    }

    fn blob(len: u32, salt: u32) -> Vec<u8> {
        (0..len).map(|i| ((i + salt) % 251) as u8 | 1).collect()
    }

    #[test]
    fn reused_blobs_are_checked_in_the_archive_pass_with_no_second_read() {
        let dir = tempfile::tempdir().unwrap();
        // 10 header bytes, a reused blob spanning a read and a part, an
        // empty one, a fetched one, a reused one.
        let (a, c, d) = (blob(2_300_000, 0), blob(400_000, 3), blob(700_000, 5));
        let mut expected = vec![9u8; 10];
        for piece in [&a, &c, &d] {
            expected.extend(piece.iter());
        }
        let len = expected.len() as u64;
        let (at_c, at_d) = (10 + a.len() as u64, 10 + (a.len() + c.len()) as u64);
        let file = parts_with(
            dir.path(),
            len,
            1_000_000,
            &[(0, &expected[..10]), (10, &a), (at_d, &d)],
        );
        let regions = [
            (10, a.len() as u64),
            (at_c, 0),
            (at_c, c.len() as u64),
            (at_d, d.len() as u64),
        ];
        let hasher = ArchiveHasher::start(file.clone(), len, &regions);
        let verdict_d = hasher.reused(3, &Digest::sha256_of(&d));
        let verdict_a = hasher.reused(0, &Digest::sha256_of(&a));
        let verdict_empty = hasher.reused(1, &Digest::sha256_of(b""));
        // a is checked without waiting for c; d only once c has landed.
        assert_eq!(verdict_a.blocking_recv(), Ok(true));
        assert_eq!(verdict_empty.blocking_recv(), Ok(true));
        file.write_all_at(&c, at_c).unwrap();
        hasher.written(2, c.len() as u64);
        assert_eq!(verdict_d.blocking_recv(), Ok(true));
        let hashed = hasher.finish(&NoProgress).unwrap();
        assert!(!hasher.shared.spoiled.load(Ordering::Acquire));
        assert_eq!(hashed.sha256, sha256_hex(&expected));
        let parts: Vec<String> = expected.chunks(1_000_000).map(sha256_hex).collect();
        assert_eq!(hashed.parts, parts);
    }

    #[test]
    fn a_reused_blob_that_does_not_match_spoils_the_hash_and_is_fetched_again() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (blob(1_500_000, 0), blob(600_000, 7));
        let mut damaged = a.clone();
        damaged[1_200_000] ^= 0xff;
        let mut expected = vec![9u8; 10];
        expected.extend(&a);
        expected.extend(&b);
        let len = expected.len() as u64;
        let at_b = 10 + a.len() as u64;
        let file = parts_with(
            dir.path(),
            len,
            len,
            &[(0, &expected[..10]), (10, &damaged), (at_b, &b)],
        );
        let regions = [(10, a.len() as u64), (at_b, b.len() as u64)];
        let hasher = ArchiveHasher::start(file.clone(), len, &regions);
        let verdict_b = hasher.reused(1, &Digest::sha256_of(&b));
        let verdict_a = hasher.reused(0, &Digest::sha256_of(&a));
        assert_eq!(verdict_a.blocking_recv(), Ok(false));
        assert!(hasher.shared.spoiled.load(Ordering::Acquire));
        // Spoiled, the thread still checks what is left to check.
        assert_eq!(verdict_b.blocking_recv(), Ok(true));
        // a is fetched again over the damaged bytes.
        file.write_all_at(&a[..700_000], 10).unwrap();
        hasher.written(0, 700_000);
        file.write_all_at(&a[700_000..], 700_010).unwrap();
        hasher.written(0, a.len() as u64);
        let hashed = hasher.finish(&NoProgress).unwrap();
        assert_eq!(hashed.sha256, sha256_hex(&expected));
        assert_eq!(hashed.len, len);

        // A thread that has ended gives no verdict: the blob is unchecked.
        drop(hasher);
        let hasher = ArchiveHasher::start(file.clone(), len, &regions);
        hasher.written(0, a.len() as u64);
        hasher.written(1, b.len() as u64);
        hasher.finish(&NoProgress).unwrap();
        assert!(hasher
            .reused(0, &Digest::sha256_of(&a))
            .blocking_recv()
            .is_err());
    }

    #[test]
    fn a_blob_landing_unhashed_in_any_order_is_checked_as_the_thread_passes() {
        let dir = tempfile::tempdir().unwrap();
        let a = blob(3_500_000, 11);
        let mut expected = vec![9u8; 10];
        expected.extend(&a);
        let len = expected.len() as u64;
        for damaged in [false, true] {
            let file = parts_with(dir.path(), len, len, &[(0, &expected[..10])]);
            let hasher = ArchiveHasher::start(file.clone(), len, &[(10, a.len() as u64)]);
            let verdict = hasher.check(0, &Digest::sha256_of(&a));
            // A beginning found written, that the thread may pass at once...
            file.write_all_at(&a[..1_200_000], 10).unwrap();
            hasher.written(0, 1_200_000);
            std::thread::sleep(Duration::from_millis(20));
            // ...and the rest landing in two pieces, the later one first.
            let mut rest = a[1_200_000..].to_vec();
            if damaged {
                rest[2_000_000] ^= 1;
            }
            file.write_all_at(&rest[1_000_000..], 2_200_010).unwrap();
            file.write_all_at(&rest[..1_000_000], 1_200_010).unwrap();
            hasher.written(0, a.len() as u64);
            assert_eq!(verdict.blocking_recv(), Ok(!damaged));
            let hashed = hasher.finish(&NoProgress).unwrap();
            assert_eq!(hashed.sha256 == sha256_hex(&expected), !damaged);
        }
    }

    #[test]
    fn a_split_bundle_gets_each_part_hashed_too() {
        let dir = tempfile::tempdir().unwrap();
        let expected: Vec<u8> = (0..2_500_000u32).map(|i| (i % 253) as u8).collect();
        let files = (0..3)
            .map(|i| {
                let p = dir.path().join(format!("p.{i:03}"));
                let mut options = std::fs::File::options();
                let f = options.read(true).write(true).create(true).truncate(true);
                (p.clone(), f.open(&p).unwrap())
            })
            .collect();
        let file = Arc::new(PartSet::for_writing(files, 1_000_000, 2_500_000));
        file.set_lengths().unwrap();
        file.write_all_at(&expected[..10], 0).unwrap();
        let hasher = ArchiveHasher::start(file.clone(), 2_500_000, &[(10, 2_499_990)]);
        for piece in (10..2_500_000).step_by(700_000) {
            let end = (piece + 700_000).min(2_500_000);
            file.write_all_at(&expected[piece..end], piece as u64)
                .unwrap();
            hasher.written(0, (end - 10) as u64);
        }
        let hashed = hasher.finish(&NoProgress).unwrap();
        assert_eq!(hashed.sha256, sha256_hex(&expected));
        let parts: Vec<String> = expected.chunks(1_000_000).map(sha256_hex).collect();
        assert_eq!(hashed.parts, parts);
        let again = hash_all(&file, &mut |_| {}).unwrap();
        assert_eq!(again, hashed);
    }
}
