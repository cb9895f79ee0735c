//! How fast one, two and three lanes hash the same bytes, against the
//! sha2 crate alone, and how fast this CPU's SHA unit runs at all:
//! `cargo run --release -p ferry-lanes --example lanes_speed [MiB]`. Run by
//! `scripts/bench.sh`.

use std::time::Instant;

use ferry_lanes::{update_together, Lane};
use sha2::{Digest, Sha256};

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(512);
    let data: Vec<u8> = (0..mib << 20).map(|i| (i >> 7) as u8 ^ i as u8).collect();
    let gb = data.len() as f64 / 1e9;
    let best = |f: &dyn Fn()| {
        (0..3)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min)
    };
    let alone = best(&|| {
        std::hint::black_box(Sha256::digest(&data));
    });
    println!("sha2, one stream: {:.2} GB/s", gb / alone);
    // Lanes at the same place in a block share its message schedule;
    // one 35 bytes further on (a part that begins off a block boundary)
    // has one of its own.
    for (count, off) in [(1, 0), (2, 0), (3, 0), (2, 1), (3, 1)] {
        let took = best(&|| {
            let mut lanes: Vec<Lane> = (0..count).map(|_| Lane::new()).collect();
            for lane in lanes.iter_mut().take(off) {
                lane.update(&[0; 35]);
            }
            let mut refs: Vec<&mut Lane> = lanes.iter_mut().collect();
            for read in data.chunks(1 << 20) {
                update_together(&mut refs, read);
            }
            for lane in lanes {
                std::hint::black_box(lane.finalize());
            }
        });
        println!(
            "{count} lane(s) together, {off} off the others' blocks: {:.2} s per GB, {:.2}x one sha2 stream",
            took / gb,
            took / alone
        );
    }
    #[cfg(target_arch = "x86_64")]
    sha_unit::report();
}

/// The SHA unit alone: `sha256rnds2` (two of SHA-256's 64 rounds a block)
/// in one dependent chain, then in six independent ones. One chain gives
/// the instruction's latency, six its throughput; no SHA-256 stream can go
/// faster than 32 of them a 64-byte block at the throughput, and no two
/// streams together faster than twice that. Where one chain runs as fast
/// as six, a lone stream already keeps the unit busy, and lanes save only
/// the message schedule.
#[cfg(target_arch = "x86_64")]
mod sha_unit {
    use std::arch::x86_64::{__m128i, _mm_set1_epi32, _mm_sha256rnds2_epu32, _mm_xor_si128};
    use std::time::Instant;

    /// Dependent `sha256rnds2`s per chain per timing.
    const STEPS: u64 = 20_000_000;

    #[target_feature(enable = "sha,sse2")]
    fn chains<const C: usize>() -> __m128i {
        let mut a = [_mm_set1_epi32(1); C];
        let mut b = [_mm_set1_epi32(2); C];
        let k = _mm_set1_epi32(3);
        for _ in 0..STEPS / 2 {
            for c in 0..C {
                a[c] = _mm_sha256rnds2_epu32(a[c], b[c], k);
            }
            for c in 0..C {
                b[c] = _mm_sha256rnds2_epu32(b[c], a[c], k);
            }
        }
        (0..C).fold(k, |x, c| _mm_xor_si128(x, _mm_xor_si128(a[c], b[c])))
    }

    /// Nanoseconds per `sha256rnds2`, best of three, with `C` chains.
    fn per_instruction<const C: usize>() -> f64 {
        (0..3)
            .map(|_| {
                let start = Instant::now();
                // SAFETY: `report` runs this only on a CPU with SHA-NI.
                #[allow(unsafe_code)]
                std::hint::black_box(unsafe { chains::<C>() });
                start.elapsed().as_secs_f64() * 1e9 / (STEPS * C as u64) as f64
            })
            .fold(f64::MAX, f64::min)
    }

    pub fn report() {
        if !std::is_x86_feature_detected!("sha") {
            println!("SHA unit: this CPU has no SHA-NI");
            return;
        }
        let latency = per_instruction::<1>();
        let throughput = per_instruction::<6>();
        // 32 instructions a 64-byte block: seconds per GB at the throughput.
        let floor = throughput * 32.0 / 64.0;
        println!(
            "SHA unit: sha256rnds2 {latency:.2} ns in one chain, {throughput:.2} ns in six: \
             at best {floor:.2} s per GB a stream, whatever the lanes"
        );
    }
}
