//! `ferry pack --since`: what the bases hold, and which blobs the delta
//! leaves to them.
//!
//! Only layers (and other non-config blobs) are left out: manifests and
//! configs are small and always carried, so a delta is still a layout other
//! tools can inspect, and a tool that copies image by image (skopeo) can
//! load it into a registry that holds the layers already.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use ferry_oci::bases::OpenedBase;
use ferry_oci::delta::delta_index_json;
use ferry_oci::layout::BlobClass;
use ferry_oci::{Base, DeltaRecord, Digest};
use serde::Serialize;

use crate::{Error, Result};

/// Open every base, before anything is fetched. Two bases with the same
/// sha256 count once.
pub(crate) fn open_bases(paths: &[PathBuf]) -> Result<Vec<OpenedBase>> {
    let mut bases: Vec<OpenedBase> = Vec::new();
    for path in paths {
        let base = OpenedBase::open(path).map_err(|source| Error::Base {
            path: path.clone(),
            source,
        })?;
        if !bases.iter().any(|b| b.base.sha256 == base.base.sha256) {
            bases.push(base);
        }
    }
    Ok(bases)
}

/// A delta's record, as planned.
pub(crate) struct PlannedDelta {
    /// Its exact bytes.
    pub bytes: Vec<u8>,
    /// Their digest (the `index.json` annotation names it).
    pub digest: Digest,
    /// What it leaves out.
    pub left_out: BTreeMap<Digest, u64>,
    /// For the summary.
    pub summary: DeltaSummary,
}

/// What a delta leaves to its bases, for the summary.
#[derive(Debug, Clone, Serialize)]
pub struct DeltaSummary {
    /// The bases, as the record names them.
    pub bases: Vec<Base>,
    /// Configs and layers left out.
    pub blobs_left_out: usize,
    /// Their bytes.
    pub bytes_left_out: u64,
}

impl PlannedDelta {
    /// Leave out of `blobs` (digest -> size, class) every non-config blob a
    /// base holds with the same size.
    pub fn new<'a>(
        bases: &[OpenedBase],
        blobs: impl Iterator<Item = (&'a Digest, u64, BlobClass)>,
    ) -> PlannedDelta {
        let mut left_out: BTreeMap<Digest, (u64, BTreeSet<usize>)> = BTreeMap::new();
        for (digest, size, class) in blobs {
            if class != BlobClass::Layer {
                continue;
            }
            let from: BTreeSet<usize> = bases
                .iter()
                .enumerate()
                .filter(|(_, b)| b.holds.get(digest) == Some(&size))
                .map(|(i, _)| i)
                .collect();
            if !from.is_empty() {
                left_out.insert(digest.clone(), (size, from));
            }
        }
        let record = DeltaRecord::new(bases.iter().map(|b| b.base.clone()).collect(), left_out);
        let bytes = record.to_bytes();
        PlannedDelta {
            digest: Digest::sha256_of(&bytes),
            bytes,
            left_out: record.left_out_sizes(),
            summary: DeltaSummary {
                blobs_left_out: record.left_out.len(),
                bytes_left_out: record.left_out_bytes(),
                bases: record.bases,
            },
        }
    }

    /// The delta's `index.json`: the full bundle's, annotated.
    pub fn index_json(&self, full: &[u8]) -> Vec<u8> {
        delta_index_json(full, &self.digest).expect("pack's own index.json is an object")
    }
}
