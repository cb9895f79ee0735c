//! SHA-256 of several streams that are fed the same bytes, computed
//! together.
//!
//! A pack hashes many bytes more than once: the bundle's sha256 covers
//! every byte, each blob is checked against its digest, and each part of a
//! split bundle gets a sha256 of its own. Fed one after another, three
//! streams cost three times one. A [`Lane`] is one such stream, and
//! [`update_together`] feeds the same bytes to several lanes at once: on a
//! CPU with SHA-NI the lanes run interleaved in one kernel (see
//! `shani.rs`), sharing the message schedule where their blocks line up.
//! What that saves depends on the CPU. Where a lone stream leaves the SHA
//! unit waiting on each round's result (the AMD EPYC of the earlier bench
//! runs), two cost about 1.2 times one and three 1.3 (1.45 for two when
//! their blocks do not line up). Where a lone stream already keeps it busy
//! (the Intel Xeon of the eighth stop's run: one lane as fast as OpenSSL's
//! SHA-NI code), only the shared schedule is saved: two cost about 1.5
//! times one and three 2 (docs/benchmarks.md). Elsewhere each lane is fed
//! on its own, through the sha2 crate.
//!
//! ```
//! use ferry_lanes::{update_together, Lane};
//! use sha2::{Digest, Sha256};
//!
//! let (mut whole, mut blob) = (Lane::new(), Lane::new());
//! whole.update(b"a tar header, say");
//! update_together(&mut [&mut whole, &mut blob], b"the blob's bytes");
//! assert_eq!(blob.finalize(), <[u8; 32]>::from(Sha256::digest(b"the blob's bytes")));
//! assert_eq!(
//!     whole.finalize(),
//!     <[u8; 32]>::from(Sha256::digest(b"a tar header, saythe blob's bytes"))
//! );
//! ```

use sha2::digest::consts::U64;
use sha2::digest::generic_array::GenericArray;

#[cfg(target_arch = "x86_64")]
mod shani;

/// SHA-256's round constants.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// SHA-256's initial state.
const INITIAL: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// The most lanes the kernel runs at once; more are run in groups.
const KERNEL_LANES: usize = 3;

/// One SHA-256 stream.
#[derive(Clone)]
pub struct Lane {
    state: [u32; 8],
    /// The bytes of a block not yet whole.
    pending: [u8; 64],
    pending_len: usize,
    /// Bytes fed so far.
    len: u64,
}

impl Default for Lane {
    fn default() -> Lane {
        Lane::new()
    }
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane").field("len", &self.len).finish()
    }
}

impl Lane {
    /// A stream fed nothing yet.
    pub fn new() -> Lane {
        Lane {
            state: INITIAL,
            pending: [0; 64],
            pending_len: 0,
            len: 0,
        }
    }

    /// How many bytes were fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Feed `bytes` to this lane alone.
    pub fn update(&mut self, bytes: &[u8]) {
        update_with(&mut [self], bytes, false);
    }

    /// The sha256 of everything fed.
    pub fn finalize(mut self) -> [u8; 32] {
        let bits = self.len.wrapping_mul(8);
        let mut tail = [0u8; 128];
        tail[..self.pending_len].copy_from_slice(&self.pending[..self.pending_len]);
        tail[self.pending_len] = 0x80;
        let blocks = if self.pending_len < 56 { 1 } else { 2 };
        tail[blocks * 64 - 8..blocks * 64].copy_from_slice(&bits.to_be_bytes());
        compress_alone(&mut self.state, &tail[..blocks * 64]);
        let mut out = [0u8; 32];
        for (word, bytes) in self.state.iter().zip(out.chunks_exact_mut(4)) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// Top the pending block up from `bytes`; returns how many it took.
    /// A block made whole is hashed, and the lane is then block-aligned at
    /// that many bytes into `bytes`.
    fn top_up(&mut self, bytes: &[u8]) -> usize {
        if self.pending_len == 0 {
            return 0;
        }
        let take = (64 - self.pending_len).min(bytes.len());
        self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&bytes[..take]);
        self.pending_len += take;
        if self.pending_len == 64 {
            let block = self.pending;
            compress_alone(&mut self.state, &block);
            self.pending_len = 0;
        }
        take
    }

    /// Keep `bytes` (less than a block) as the start of the next block.
    fn keep(&mut self, bytes: &[u8]) {
        debug_assert!(self.pending_len == 0 && bytes.len() < 64);
        self.pending[..bytes.len()].copy_from_slice(bytes);
        self.pending_len = bytes.len();
    }
}

/// Feed the same `bytes` to every lane in `lanes`, each where it stands.
/// On a CPU with SHA-NI the lanes are hashed together, three at a time at
/// most; those that stand at the same place in a block share its message
/// schedule.
pub fn update_together(lanes: &mut [&mut Lane], bytes: &[u8]) {
    update_with(lanes, bytes, kernel_available());
}

/// [`update_together`], through the SHA-NI kernel when `kernel`.
fn update_with(lanes: &mut [&mut Lane], bytes: &[u8], kernel: bool) {
    // Each lane tops its pending block up on its own, and is then aligned
    // to blocks that start `from` bytes in; lanes that took as much are
    // fed the rest together.
    let mut aligned: Vec<(usize, usize)> = Vec::with_capacity(lanes.len());
    for (index, lane) in lanes.iter_mut().enumerate() {
        lane.len = lane.len.wrapping_add(bytes.len() as u64);
        let from = lane.top_up(bytes);
        if lane.pending_len == 0 {
            aligned.push((from, index));
        }
    }
    aligned.sort_unstable();
    let step = match kernel {
        true => KERNEL_LANES,
        false => 1,
    };
    for group in aligned.chunks(step) {
        // The whole blocks every lane of the group has, hashed together.
        let count = group
            .iter()
            .map(|&(from, _)| (bytes.len() - from) / 64)
            .min()
            .unwrap_or(0);
        if group.len() > 1 {
            compress_together(lanes, group, bytes, count);
        } else if let Some(&(from, index)) = group.first() {
            compress_alone(&mut lanes[index].state, &bytes[from..from + 64 * count]);
        }
        // What is left: a lane further back in its block than another may
        // have one more whole block, and then less than one.
        for &(from, index) in group {
            let rest = &bytes[from + 64 * count..];
            let whole = rest.len() / 64 * 64;
            compress_alone(&mut lanes[index].state, &rest[..whole]);
            lanes[index].keep(&rest[whole..]);
        }
    }
}

/// Run the lanes of `group` (two or three: where in `bytes` its blocks
/// start, and its index in `lanes`) over `count` blocks each, through the
/// SHA-NI kernel; lanes whose blocks start at the same place share them.
#[cfg(target_arch = "x86_64")]
fn compress_together(
    lanes: &mut [&mut Lane],
    group: &[(usize, usize)],
    bytes: &[u8],
    count: usize,
) {
    // Each distinct start is a stream of blocks; `group` is sorted by it.
    let mut starts: Vec<usize> = group.iter().map(|&(from, _)| from).collect();
    starts.dedup();
    let streams: Vec<&[[u8; 64]]> = starts
        .iter()
        .map(|&from| bytes[from..from + 64 * count].as_chunks::<64>().0)
        .collect();
    // Which stream each lane takes, four bits a lane (see `shani.rs`):
    // with the lanes sorted by where their blocks start, three lanes on two
    // streams share the first or the second.
    let first_two_share = group.len() == 3 && group[0].0 == group[1].0;
    // Take the states out, so the kernel can hold them all at once.
    let mut states: Vec<[u32; 8]> = group.iter().map(|&(_, i)| lanes[i].state).collect();
    match (states.as_mut_slice(), streams.as_slice()) {
        ([a, b], &[s]) => shani::compress::<2, 1, 0x00>([a, b], [s]),
        ([a, b], &[s, t]) => shani::compress::<2, 2, 0x10>([a, b], [s, t]),
        ([a, b, c], &[s]) => shani::compress::<3, 1, 0x000>([a, b, c], [s]),
        ([a, b, c], &[s, t]) if first_two_share => {
            shani::compress::<3, 2, 0x100>([a, b, c], [s, t])
        }
        ([a, b, c], &[s, t]) => shani::compress::<3, 2, 0x110>([a, b, c], [s, t]),
        ([a, b, c], &[s, t, u]) => shani::compress::<3, 3, 0x210>([a, b, c], [s, t, u]),
        _ => unreachable!("groups are of two or three lanes"),
    }
    for (&(_, index), state) in group.iter().zip(states) {
        lanes[index].state = state;
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn compress_together(_: &mut [&mut Lane], _: &[(usize, usize)], _: &[u8], _: usize) {
    unreachable!("the kernel is never chosen off x86_64")
}

/// Run one state over `blocks` (whole blocks), through the sha2 crate (its
/// own SHA-NI, ARMv8 or portable backend).
fn compress_alone(state: &mut [u32; 8], blocks: &[u8]) {
    // sha2 0.10 takes `GenericArray` blocks, which a byte slice cannot be
    // seen as without unsafe code: they are copied, a few at a time (a
    // call per block costs a tenth more).
    const BATCH: usize = 16;
    let mut batch = [GenericArray::<u8, U64>::default(); BATCH];
    for blocks in blocks.chunks(64 * BATCH) {
        let count = blocks.len() / 64;
        for (to, from) in batch.iter_mut().zip(blocks.chunks_exact(64)) {
            to.copy_from_slice(from);
        }
        sha2::compress256(state, &batch[..count]);
    }
}

/// Whether this CPU runs the SHA-NI kernel.
fn kernel_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return shani::available();
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

#[cfg(test)]
mod tests;
