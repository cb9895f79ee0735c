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

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ferry_oci::Progress;
use sha2::{Digest as _, Sha256};

/// How much the thread reads at once.
const READ: usize = 1 << 20;
/// How long the thread waits for the frontier to move.
const POLL: Duration = Duration::from_millis(2);

type FollowResult = std::io::Result<Option<(String, u64)>>;

/// One blob's planned place in the archive and how much of it is written.
struct Region {
    offset: u64,
    size: u64,
    written: AtomicU64,
}

struct Shared {
    /// Blob regions in offset order.
    regions: Vec<Region>,
    /// A blob was fetched again: hashed bytes may have changed.
    spoiled: AtomicBool,
    /// The bundle is abandoned: stop.
    stop: AtomicBool,
    /// Bytes hashed so far, for progress.
    hashed: AtomicU64,
}

/// The sha256 of the archive, computed by a thread that follows the
/// written frontier. Dropping it stops the thread.
pub(crate) struct ArchiveHasher {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<FollowResult>>>,
    file: Arc<File>,
}

impl ArchiveHasher {
    /// Start hashing `file` (`len` bytes). Everything outside `regions`
    /// (`(offset, size)` of each blob still to arrive, in offset order) must
    /// already be written. Slot `i` in [`ArchiveHasher::written`] is
    /// `regions[i]`.
    pub fn start(file: Arc<File>, len: u64, regions: &[(u64, u64)]) -> ArchiveHasher {
        debug_assert!(regions.windows(2).all(|w| w[0].0 <= w[1].0));
        let shared = Arc::new(Shared {
            regions: regions
                .iter()
                .map(|&(offset, size)| Region {
                    offset,
                    size,
                    written: AtomicU64::new(0),
                })
                .collect(),
            spoiled: AtomicBool::new(false),
            stop: AtomicBool::new(false),
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

    /// A blob is being fetched again: its bytes may be rewritten.
    pub fn restarted(&self) {
        self.shared.spoiled.store(true, Ordering::Release);
    }

    /// Wait for the hash of the whole archive (every blob must be written);
    /// hash it again from the start if it was spoiled. Returns the sha256
    /// hex and the length.
    pub fn finish(&self, progress: &dyn Progress) -> std::io::Result<(String, u64)> {
        let len = self.file.metadata()?.len();
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
                hash_range(&self.file, 0, len, &mut |n| progress.bytes(n))?
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

/// The thread: hash up to the frontier, wait, repeat. `None` when stopped
/// or spoiled (the caller hashes from scratch).
fn follow(shared: &Shared, file: &File, len: u64) -> FollowResult {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; READ];
    let mut pos = 0u64;
    let mut next = 0usize;
    loop {
        if shared.stop.load(Ordering::Acquire) || shared.spoiled.load(Ordering::Acquire) {
            return Ok(None);
        }
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
                return Ok(Some((hex::encode(hasher.finalize()), pos)));
            }
            std::thread::park_timeout(POLL);
            continue;
        }
        let n = usize::try_from(frontier - pos)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        file.read_exact_at(&mut buf[..n], pos)?;
        hasher.update(&buf[..n]);
        pos += n as u64;
        shared.hashed.store(pos, Ordering::Relaxed);
    }
}

/// sha256 of `file[from..to]` in one pass.
fn hash_range(
    file: &File,
    from: u64,
    to: u64,
    on_bytes: &mut dyn FnMut(u64),
) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; READ];
    let mut pos = from;
    while pos < to {
        let n = usize::try_from(to - pos)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        file.read_exact_at(&mut buf[..n], pos)?;
        hasher.update(&buf[..n]);
        on_bytes(n as u64);
        pos += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), pos - from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_oci::NoProgress;
    use std::io::Write as _;

    fn sha256_hex(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn hashes_what_lands_in_any_order() {
        let mut expected = vec![7u8; 100];
        expected.extend((0..3_000_000u32).map(|i| (i % 251) as u8));
        let temp = tempfile::tempfile().unwrap();
        let file = Arc::new(temp);
        file.set_len(expected.len() as u64).unwrap();
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
        let (hex, len) = hasher.finish(&NoProgress).unwrap();
        assert_eq!(len, expected.len() as u64);
        assert_eq!(hex, sha256_hex(&expected));
    }

    #[test]
    fn a_restarted_blob_is_hashed_again_from_the_file() {
        let mut temp = tempfile::tempfile().unwrap();
        temp.write_all(&[1u8; 10]).unwrap();
        temp.write_all(&[0u8; 1000]).unwrap();
        let file = Arc::new(temp);
        let hasher = ArchiveHasher::start(file.clone(), 1010, &[(10, 1000)]);
        // A first attempt writes wrong bytes, then breaks; a retry rewrites.
        file.write_all_at(&[9u8; 500], 10).unwrap();
        hasher.written(0, 500);
        std::thread::sleep(Duration::from_millis(50));
        hasher.restarted();
        file.write_all_at(&[2u8; 1000], 10).unwrap();
        hasher.written(0, 1000);
        let (hex, _) = hasher.finish(&NoProgress).unwrap();
        let mut expected = vec![1u8; 10];
        expected.extend([2u8; 1000]);
        assert_eq!(hex, sha256_hex(&expected));
    }
}
