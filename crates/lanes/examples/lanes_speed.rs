//! How fast one, two and three lanes hash the same bytes, against the
//! sha2 crate alone: `cargo run --release -p ferry-lanes --example
//! lanes_speed [MiB]`. Run by `scripts/bench.sh`.

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
}
