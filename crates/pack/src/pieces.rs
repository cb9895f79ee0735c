//! The rest of a blob a stopped pack began, fetched as ranged requests
//! side by side.
//!
//! A pack stopped halfway has usually finished every small blob and left
//! the biggest partway. Resumed, that blob's rest is nearly the whole run,
//! and in one stream it took about as long as the full pack's fetch phase:
//! one stream from docker-registry ran at about 250 MB/s on the bench
//! machine, eight side by side at about 520. So a rest is cut into pieces
//! of [`PIECE`] at most (one request for a rest no bigger), fetched in
//! order, as many at once as `--jobs` ([`Turns`]): each lands at its offset as it arrives, and
//! the archive's hash is told the blob is written up to the end of the
//! first piece not yet whole, so it follows the blob in as it comes (four
//! big pieces side by side left it the last three quarters of the blob to
//! hash alone once the first had landed). The blob's own hash is made
//! from the same reads as the archive's ([`ArchiveHasher::check`]),
//! beginning included: the beginning is not hashed before the rest is
//! asked for, and nothing is read back. Anything wrong and the caller
//! fetches the blob whole, as it does after a failed continuation.
//!
//! [`ArchiveHasher::check`]: crate::archive_hash::ArchiveHasher::check

use std::sync::Mutex;

use futures_util::{StreamExt, TryStreamExt};

use ferry_oci::Progress;
use ferry_registry::{Client, Repository};

use crate::write::{BlobJob, Failed, Placement};
use crate::Error;

/// The biggest piece: small enough for the archive's hash to follow the
/// blob closely, big enough that a request's round trip is nothing.
const PIECE: u64 = 16 << 20;

/// The pieces of `from..size`: as few as [`PIECE`] allows, of even size.
fn pieces(from: u64, size: u64) -> Vec<(u64, u64)> {
    let rest = size.saturating_sub(from);
    let count = rest.div_ceil(PIECE).max(1);
    let step = rest.div_ceil(count).max(1);
    (0..count)
        .map(|i| (from + i * step, (from + (i + 1) * step).min(size)))
        .filter(|(start, end)| start < end)
        .collect()
}

/// Fetch bytes `from..` of `job` (whose first `from` bytes are written,
/// and the whole to be checked by the archive's hash: the caller has
/// asked for that check) as ranged requests side by side, from its first
/// source, each piece once its turn has come (`turns`). Returns once
/// every piece has landed.
pub(crate) async fn fetch_rest(
    client: &Client,
    job: &BlobJob,
    place: &Placement,
    progress: &dyn Progress,
    from: u64,
    turns: &Turns,
) -> Result<(), Failed> {
    let Some(source) = job.sources.first() else {
        return Err(Failed::Final(Error::Task(format!(
            "no source for blob {}",
            job.digest
        ))));
    };
    let bounds = pieces(from, job.size);
    let landing = Landing::new(&bounds);
    let landing = &landing;
    futures_util::stream::iter(bounds.into_iter().enumerate())
        .map(|(index, range)| async move {
            let _turn = turns.take(job.offset + range.0).await;
            piece(client, source, job, place, progress, range, &|at| {
                if let Some(frontier) = landing.landed(index, at) {
                    place.hasher.written(place.slot, frontier);
                }
            })
            .await
        })
        .buffer_unordered(turns.count)
        .try_collect::<()>()
        .await
}

/// The pieces of every continued blob's rest share as many turns as the
/// pack has workers (`--jobs`), lowest offset in the archive first: the archive's hash cannot pass a
/// blob still landing, so the pieces nearest the front get the requests
/// and the hash follows them in, passing the reused blobs behind them
/// while the next rest lands. Fetched side by side, four rests at a time
/// each crept in at a quarter of the speed, and the hash, waiting on the
/// one nearest the front, was left half the bundle to hash alone at the
/// end.
pub(crate) struct Turns {
    /// How many.
    count: usize,
    state: Mutex<TurnsState>,
}

struct TurnsState {
    /// Turns not taken.
    free: usize,
    /// Pieces waiting, by their offset in the archive.
    waiting: std::collections::BTreeMap<u64, tokio::sync::oneshot::Sender<()>>,
}

impl Turns {
    /// `count` turns (at least one).
    pub fn new(count: usize) -> Turns {
        let count = count.max(1);
        Turns {
            count,
            state: Mutex::new(TurnsState {
                free: count,
                waiting: Default::default(),
            }),
        }
    }

    /// Wait for a turn for the piece at `offset` in the archive: at once
    /// while one is free, else when the pieces waiting before it (lower
    /// offsets) have had theirs. The turn passes on when the returned
    /// guard is dropped.
    async fn take(&self, offset: u64) -> Turn<'_> {
        let waiting = {
            let mut state = self.lock();
            if state.free > 0 {
                state.free -= 1;
                None
            } else {
                let (go, wait) = tokio::sync::oneshot::channel();
                state.waiting.insert(offset, go);
                Some(wait)
            }
        };
        if let Some(wait) = waiting {
            // A closed channel means the turns are being torn down (the
            // pack failed): go on, to fail the same way.
            let _ = wait.await;
        }
        Turn(self)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TurnsState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A piece's turn; dropping it passes the turn on.
struct Turn<'a>(&'a Turns);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        // The lowest offset waiting that is still there to take it.
        while let Some((_, go)) = state.waiting.pop_first() {
            if go.send(()).is_ok() {
                return;
            }
        }
        state.free += 1;
    }
}

/// How far each piece has landed, and so how far the blob is written
/// without a gap. Offsets are within the blob.
struct Landing {
    state: Mutex<LandingState>,
}

struct LandingState {
    /// Each piece: where it has landed up to, and where it ends.
    pieces: Vec<(u64, u64)>,
    /// The first piece not yet whole.
    first: usize,
}

impl Landing {
    /// `bounds`: each piece's range, in order and without gaps.
    fn new(bounds: &[(u64, u64)]) -> Landing {
        Landing {
            state: Mutex::new(LandingState {
                pieces: bounds.to_vec(),
                first: 0,
            }),
        }
    }

    /// Piece `index` has landed up to `at` (front to back). The blob's new
    /// written frontier, when it moved.
    fn landed(&self, index: usize, at: u64) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let LandingState { pieces, first } = &mut *state;
        pieces[index].0 = at;
        let before = *first;
        while pieces
            .get(*first)
            .is_some_and(|&(landed, end)| landed >= end)
        {
            *first += 1;
        }
        let frontier = match pieces.get(*first) {
            Some(&(landed, _)) => landed,
            None => pieces.last().map_or(0, |&(_, end)| end),
        };
        (index == before || *first != before).then_some(frontier)
    }
}

/// Fetch bytes `start..end` of `job` into its place, saying how far it has
/// landed (`landed(at)`, within the blob) after each write.
async fn piece(
    client: &Client,
    (repo, label): &(Repository, String),
    job: &BlobJob,
    place: &Placement,
    progress: &dyn Progress,
    (start, end): (u64, u64),
    landed: &(dyn Fn(u64) + Sync),
) -> Result<(), Failed> {
    let registry = |source| {
        Failed::Final(Error::Registry {
            reference: label.to_string(),
            source,
        })
    };
    let (mut stream, served_from) = client
        .get_blob_range(repo, &job.digest, start, Some(end))
        .await
        .map_err(registry)?;
    if served_from != start {
        return Err(Failed::Final(Error::Task(format!(
            "{label}: the registry did not honour a range of blob {}",
            job.digest
        ))));
    }
    let mut at = start;
    while at < end {
        let Some(chunk) = stream.next_chunk().await.map_err(|source| {
            Failed::InBody(Error::Registry {
                reference: label.to_string(),
                source,
            })
        })?
        else {
            break;
        };
        let take = chunk.len().min((end - at) as usize);
        place.write(job, &chunk[..take], at)?;
        at += take as u64;
        landed(at);
        progress.bytes(take as u64);
    }
    if at != end {
        return Err(Failed::Final(Error::BlobSizeMismatch {
            reference: label.to_string(),
            digest: job.digest.clone(),
            expected: job.size,
            found: at,
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rest_is_cut_into_even_pieces_of_at_most_the_piece_size() {
        let mib = 1 << 20;
        assert_eq!(pieces(4 * mib, 20 * mib), vec![(4 * mib, 20 * mib)]);
        let cut = pieces(3, 3 + 33 * mib);
        assert_eq!(cut.len(), 3);
        assert_eq!(cut[0].0, 3);
        assert_eq!(cut.last().unwrap().1, 3 + 33 * mib);
        assert!(cut.windows(2).all(|w| w[0].1 == w[1].0));
        assert!(cut.iter().all(|(s, e)| e - s <= PIECE));
    }

    #[test]
    fn the_frontier_moves_with_the_first_piece_not_yet_whole() {
        let landing = Landing::new(&[(10, 20), (20, 30), (30, 35)]);
        // A later piece lands first: the frontier stays.
        assert_eq!(landing.landed(1, 25), None);
        assert_eq!(landing.landed(1, 30), None);
        assert_eq!(landing.landed(0, 15), Some(15));
        // The first piece whole: the frontier jumps over the second.
        assert_eq!(landing.landed(0, 20), Some(30));
        assert_eq!(landing.landed(2, 33), Some(33));
        assert_eq!(landing.landed(2, 35), Some(35));
    }

    #[test]
    fn pieces_take_turns_lowest_offset_first() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            const TURNS: usize = 4;
            let turns = std::sync::Arc::new(Turns::new(TURNS));
            let order = std::sync::Arc::new(Mutex::new(Vec::new()));
            // Every turn taken, by pieces far down the archive.
            let mut held = Vec::new();
            for offset in 0..TURNS as u64 {
                held.push(turns.take(1000 + offset).await);
            }
            let (mut tasks, mut releases) = (Vec::new(), Vec::new());
            for offset in [300, 100, 200] {
                let (turns, order) = (turns.clone(), order.clone());
                let (release, released) = tokio::sync::oneshot::channel::<()>();
                releases.push(release);
                tasks.push(tokio::spawn(async move {
                    let _turn = turns.take(offset).await;
                    order.lock().unwrap().push(offset);
                    let _ = released.await;
                }));
                tokio::task::yield_now().await;
            }
            // One waiting is stopped (its pack failed): the turn goes past
            // it.
            let gone = {
                let turns = turns.clone();
                tokio::spawn(async move {
                    let _turn = turns.take(50).await;
                    unreachable!("a stopped task never takes its turn");
                })
            };
            tokio::task::yield_now().await;
            gone.abort();
            let _ = gone.await;
            // One turn given back at a time: the lowest offset waiting
            // takes it.
            for expected in [&[100][..], &[100, 200], &[100, 200, 300]] {
                held.pop();
                tokio::task::yield_now().await;
                assert_eq!(*order.lock().unwrap(), expected);
            }
            drop(held);
            drop(releases);
            for task in tasks {
                task.await.unwrap();
            }
            assert_eq!(turns.lock().free, TURNS);
        });
    }
}
