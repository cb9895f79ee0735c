use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::*;

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn bytes(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt) ^ (i >> 9) as u8)
        .collect()
}

/// Both ways of feeding lanes, where the CPU has both.
fn ways() -> Vec<bool> {
    match kernel_available() {
        true => vec![true, false],
        false => vec![false],
    }
}

#[test]
fn one_lane_hashes_as_sha256_at_every_length_around_the_padding() {
    for len in (0..200).chain([1 << 20, (1 << 20) + 55, (1 << 20) + 56]) {
        let data = bytes(len, 3);
        let mut lane = Lane::new();
        lane.update(&data);
        assert_eq!(lane.len(), len as u64);
        assert_eq!(lane.finalize(), sha256(&data), "length {len}");
    }
}

#[test]
fn lanes_joining_and_leaving_at_any_offset_each_hash_their_own_span() {
    // Lanes begin and end at offsets on and off block boundaries, and the
    // bytes come in reads of uneven size, as in a pack.
    let data = bytes(300_000, 7);
    let spans = [
        (0, data.len()),
        (512, 200_512),
        (1024, 4096),
        (1000, 299_999),
        (64 * 700 + 5, 64 * 3000 + 5),
        (512, 100_000),
    ];
    for kernel in ways() {
        let mut lanes: Vec<Lane> = spans.iter().map(|_| Lane::new()).collect();
        let mut at = 0;
        let mut read = 1;
        while at < data.len() {
            let end = (at + read).min(data.len());
            feed_spans(&mut lanes, &spans, &data, at, end, kernel);
            at = end;
            read = read * 3 + 17;
        }
        for (lane, &(from, to)) in lanes.into_iter().zip(&spans) {
            assert_eq!(lane.finalize(), sha256(&data[from..to]), "{from}..{to}");
        }
    }
}

/// Feed `data[at..end]` to the lanes, each its part of its span, the way a
/// caller does: cut where a lane starts or stops, the lanes inside a cut
/// fed together.
fn feed_spans(
    lanes: &mut [Lane],
    spans: &[(usize, usize)],
    data: &[u8],
    at: usize,
    end: usize,
    kernel: bool,
) {
    let mut cuts: Vec<usize> = spans
        .iter()
        .flat_map(|&(from, to)| [from, to])
        .filter(|&c| c > at && c < end)
        .chain([at, end])
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    for window in cuts.windows(2) {
        let (from, to) = (window[0], window[1]);
        let mut inside: Vec<&mut Lane> = lanes
            .iter_mut()
            .zip(spans)
            .filter(|(_, &(s, e))| s <= from && to <= e)
            .map(|(lane, _)| lane)
            .collect();
        update_with(&mut inside, &data[from..to], kernel);
    }
}

#[test]
fn more_lanes_than_the_kernel_takes_are_hashed_in_groups() {
    let data = bytes(10_000, 1);
    for kernel in ways() {
        let mut lanes: Vec<Lane> = (0..7).map(|_| Lane::new()).collect();
        let mut refs: Vec<&mut Lane> = lanes.iter_mut().collect();
        update_with(&mut refs, &data[..5_000], kernel);
        update_with(&mut refs, &data[5_000..], kernel);
        for lane in lanes {
            assert_eq!(lane.finalize(), sha256(&data));
        }
    }
}

proptest! {
    #[test]
    fn lanes_with_any_history_fed_the_same_reads_match_sha256(
        prefixes in proptest::collection::vec(0usize..200, 1..5),
        reads in proptest::collection::vec(0usize..700, 1..8),
        salt in any::<u8>(),
    ) {
        let total: usize = reads.iter().sum();
        let shared = bytes(total, salt);
        for kernel in ways() {
            let mut lanes: Vec<Lane> = Vec::new();
            let mut expected: Vec<Vec<u8>> = Vec::new();
            for (i, &prefix) in prefixes.iter().enumerate() {
                let own = bytes(prefix, i as u8);
                let mut lane = Lane::new();
                lane.update(&own);
                lanes.push(lane);
                expected.push(own);
            }
            let mut at = 0;
            for &read in &reads {
                let mut refs: Vec<&mut Lane> = lanes.iter_mut().collect();
                update_with(&mut refs, &shared[at..at + read], kernel);
                at += read;
            }
            for (lane, mut own) in lanes.into_iter().zip(expected) {
                own.extend_from_slice(&shared);
                prop_assert_eq!(lane.finalize(), sha256(&own));
            }
        }
    }
}
