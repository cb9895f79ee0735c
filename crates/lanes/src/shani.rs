//! The x86 SHA-NI kernel: several SHA-256 states, each over its stream of
//! blocks, interleaved.
//!
//! One SHA-256 stream cannot keep the SHA unit busy: each pair of rounds
//! (`sha256rnds2`) waits for the one before it. Several states are
//! independent chains the CPU runs side by side, and states that take the
//! same blocks share their message schedule (`sha256msg1`/`sha256msg2`,
//! computed once a stream). On the bench machine (AMD EPYC, Zen 3) two
//! states over the same blocks cost 1.15–1.22 times one, three 1.21–1.29;
//! with one of them over blocks of its own, 1.39–1.51 and 1.44–1.53 —
//! where separate passes cost 2 and 3 times.
//!
//! The rounds follow the sha2 crate's own SHA-NI backend
//! (`sha2/src/sha256/x86.rs`, 0.10), with the lanes interleaved.

use core::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_extract_epi32, _mm_set_epi32, _mm_set_epi64x,
    _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32, _mm_shuffle_epi32,
    _mm_shuffle_epi8,
};

use crate::K;

/// Whether this CPU runs [`compress`].
pub(crate) fn available() -> bool {
    std::is_x86_feature_detected!("sha")
        && std::is_x86_feature_detected!("sse2")
        && std::is_x86_feature_detected!("ssse3")
        && std::is_x86_feature_detected!("sse4.1")
}

/// Run each state in `states` over its stream of blocks (`map[lane]` is
/// its stream in `streams`), as many blocks as the shortest stream has.
pub(crate) fn compress<const N: usize, const M: usize, const MAP: usize>(
    states: [&mut [u32; 8]; N],
    streams: [&[[u8; 64]]; M],
) {
    assert!(
        (0..N).all(|lane| stream::<MAP>(lane) < M),
        "a lane mapped to no stream"
    );
    assert!(available(), "SHA-NI kernel called on a CPU without SHA-NI");
    // SAFETY: the CPU has every feature `rounds` is compiled for (checked
    // just above, and by the caller before it chose this kernel).
    #[allow(unsafe_code)]
    unsafe {
        rounds::<N, M, MAP>(states, streams)
    }
}

/// The stream of `lane` in a lane-to-stream map: four bits a lane, the
/// first lane's lowest. A constant, so that the kernel's loops unroll to
/// straight code with every register known.
#[inline(always)]
const fn stream<const MAP: usize>(lane: usize) -> usize {
    (MAP >> (4 * lane)) & 0xF
}

/// A state `[a, b, c, d, e, f, g, h]` as the two registers the SHA
/// instructions work on: `abef` and `cdgh`.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn load(state: &[u32; 8]) -> (__m128i, __m128i) {
    let word = |i: usize| state[i] as i32;
    let abef = _mm_set_epi32(word(0), word(1), word(4), word(5));
    let cdgh = _mm_set_epi32(word(2), word(3), word(6), word(7));
    (abef, cdgh)
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn store(state: &mut [u32; 8], abef: __m128i, cdgh: __m128i) {
    *state = [
        _mm_extract_epi32::<3>(abef) as u32,
        _mm_extract_epi32::<2>(abef) as u32,
        _mm_extract_epi32::<3>(cdgh) as u32,
        _mm_extract_epi32::<2>(cdgh) as u32,
        _mm_extract_epi32::<1>(abef) as u32,
        _mm_extract_epi32::<0>(abef) as u32,
        _mm_extract_epi32::<1>(cdgh) as u32,
        _mm_extract_epi32::<0>(cdgh) as u32,
    ];
}

/// 16 message bytes, big-endian words in SHA order.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn message(bytes: &[u8]) -> __m128i {
    let half = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        i64::from_le_bytes(word)
    };
    let raw = _mm_set_epi64x(half(8), half(0));
    let swap = _mm_set_epi64x(
        0x0C0D_0E0F_0809_0A0Bu64 as i64,
        0x0405_0607_0001_0203u64 as i64,
    );
    _mm_shuffle_epi8(raw, swap)
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn schedule(w0: __m128i, w1: __m128i, w2: __m128i, w3: __m128i) -> __m128i {
    let t1 = _mm_sha256msg1_epu32(w0, w1);
    let t2 = _mm_alignr_epi8::<4>(w3, w2);
    _mm_sha256msg2_epu32(_mm_add_epi32(t1, t2), w3)
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn rounds<const N: usize, const M: usize, const MAP: usize>(
    states: [&mut [u32; 8]; N],
    streams: [&[[u8; 64]]; M],
) {
    let count = streams.iter().map(|s| s.len()).min().unwrap_or(0);
    let mut abef = [_mm_set_epi32(0, 0, 0, 0); N];
    let mut cdgh = abef;
    for (lane, state) in states.iter().enumerate() {
        (abef[lane], cdgh[lane]) = load(state);
    }
    for b in 0..count {
        let (abef_before, cdgh_before) = (abef, cdgh);
        let mut w = [[_mm_set_epi32(0, 0, 0, 0); 4]; M];
        for (s, stream) in streams.iter().enumerate() {
            let block = &stream[b];
            w[s] = [
                message(&block[0..16]),
                message(&block[16..32]),
                message(&block[32..48]),
                message(&block[48..64]),
            ];
        }
        for i in 0..16 {
            let k = _mm_set_epi32(
                K[4 * i + 3] as i32,
                K[4 * i + 2] as i32,
                K[4 * i + 1] as i32,
                K[4 * i] as i32,
            );
            let mut first = [k; M];
            let mut second = [k; M];
            for s in 0..M {
                if i >= 4 {
                    let w = &mut w[s];
                    w[i % 4] = schedule(w[i % 4], w[(i + 1) % 4], w[(i + 2) % 4], w[(i + 3) % 4]);
                }
                first[s] = _mm_add_epi32(w[s][i % 4], k);
                second[s] = _mm_shuffle_epi32::<0x0E>(first[s]);
            }
            for lane in 0..N {
                cdgh[lane] =
                    _mm_sha256rnds2_epu32(cdgh[lane], abef[lane], first[stream::<MAP>(lane)]);
            }
            for lane in 0..N {
                abef[lane] =
                    _mm_sha256rnds2_epu32(abef[lane], cdgh[lane], second[stream::<MAP>(lane)]);
            }
        }
        for lane in 0..N {
            abef[lane] = _mm_add_epi32(abef[lane], abef_before[lane]);
            cdgh[lane] = _mm_add_epi32(cdgh[lane], cdgh_before[lane]);
        }
    }
    for (lane, state) in states.into_iter().enumerate() {
        store(state, abef[lane], cdgh[lane]);
    }
}
