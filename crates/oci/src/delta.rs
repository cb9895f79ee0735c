//! Delta bundles and receipts: the two small formats that let a site be fed
//! only what it lacks (see `docs/delta.md`).
//!
//! A **receipt** ([`Receipt`]) says what a target registry holds under a
//! prefix: every manifest and blob digest with its size, and the sha256 of
//! the bundles it was loaded from. A **delta** is an ordinary ferry bundle
//! whose `index.json` names every image as a full bundle would, but whose
//! archive leaves out the configs-and-layers that its bases (earlier
//! bundles, deltas or receipts) hold. What it leaves out, and the sha256 of
//! each base, is its [`DeltaRecord`]: a small JSON blob inside the layout,
//! pointed at by the `index.json` annotation [`ANNOTATION_DELTA`].
//!
//! Both are sorted, versioned JSON written in one canonical form, so the
//! same content always gives the same bytes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::Digest;
use crate::{Error, Result};

/// The `index.json` annotation (on the index itself, not on a descriptor)
/// whose value is the digest of the delta's record blob.
pub const ANNOTATION_DELTA: &str = "dev.ferry.delta";
/// The version of [`DeltaRecord`] this code writes and reads.
pub const DELTA_VERSION: u32 = 1;
/// The version of [`Receipt`] this code writes and reads.
pub const RECEIPT_VERSION: u32 = 1;
/// The largest delta record read (it is buffered with the manifests, so it
/// keeps to the manifest limit): about 30,000 left-out blobs.
pub const MAX_RECORD_SIZE: u64 = 4 << 20;
/// The largest receipt read.
pub const MAX_RECEIPT_SIZE: u64 = 64 << 20;

/// What a base of a delta was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaseKind {
    /// A full bundle.
    Bundle,
    /// An earlier delta (what it carries and what it left out both count).
    Delta,
    /// A receipt sent back from a site.
    Receipt,
}

impl std::fmt::Display for BaseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BaseKind::Bundle => "bundle",
            BaseKind::Delta => "delta",
            BaseKind::Receipt => "receipt",
        })
    }
}

/// One base of a delta.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Base {
    /// What it is.
    pub kind: BaseKind,
    /// Its file name when the delta was made (no directory), for messages.
    pub name: String,
    /// sha256 hex of the file.
    pub sha256: String,
    /// For a receipt: the sha256 hex of the bundles it says were loaded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bundles: Vec<String>,
    /// For a receipt: the `HOST[:PORT][/PREFIX]` it describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl Base {
    /// Whether a bundle file with sha256 `hex` is this base (or, for a
    /// receipt, one of the bundles it was made from).
    pub fn matches(&self, hex: &str) -> bool {
        self.sha256 == hex
            || (self.kind == BaseKind::Receipt && self.bundles.iter().any(|b| b == hex))
    }

    /// `v1.tar (bundle, sha256 1234abcd…)`, for messages.
    pub fn describe(&self) -> String {
        let short = self.sha256.get(..12).unwrap_or(&self.sha256);
        format!("{} ({}, sha256 {short}…)", self.name, self.kind)
    }
}

/// A blob a delta leaves out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeftOut {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// The bases (indexes into [`DeltaRecord::bases`]) that hold it.
    pub from: Vec<usize>,
}

/// What a delta leaves to its bases, version [`DELTA_VERSION`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeltaRecord {
    /// Always [`DELTA_VERSION`].
    pub ferry_delta: u32,
    /// The bases, sorted by sha256.
    pub bases: Vec<Base>,
    /// The blobs left out, sorted by digest.
    pub left_out: Vec<LeftOut>,
}

/// One digest and size, in a receipt.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Held {
    /// The digest.
    pub digest: Digest,
    /// The size in bytes.
    pub size: u64,
}

/// What a target registry holds under a prefix, version
/// [`RECEIPT_VERSION`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Receipt {
    /// Always [`RECEIPT_VERSION`].
    pub ferry_receipt: u32,
    /// The registry host (with its port, if any).
    pub registry: String,
    /// The repository prefix (may be empty).
    pub prefix: String,
    /// sha256 hex of the bundles loaded, sorted.
    pub bundles: Vec<String>,
    /// Manifests and indexes present, sorted by digest.
    pub manifests: Vec<Held>,
    /// Configs and layers present, sorted by digest.
    pub blobs: Vec<Held>,
}

fn bad(kind: &'static str, reason: impl Into<String>) -> Error {
    Error::BadRecord {
        kind,
        reason: reason.into(),
    }
}

fn check_hex(kind: &'static str, hex: &str) -> Result<()> {
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad(
            kind,
            format!("{hex:?} is not a sha256 in lowercase hex"),
        ));
    }
    Ok(())
}

/// Sorted, deduplicated, and no digest with two sizes.
fn check_sorted(kind: &'static str, list: &[(&Digest, u64)]) -> Result<()> {
    for pair in list.windows(2) {
        if pair[0].0 >= pair[1].0 {
            return Err(bad(
                kind,
                format!("{} is listed twice or out of order", pair[1].0),
            ));
        }
    }
    Ok(())
}

impl DeltaRecord {
    /// A record of `left_out` (digest -> size and the bases holding it, as
    /// indexes into `bases`); bases are sorted and indexes remapped, so the
    /// input order does not matter.
    pub fn new(mut bases: Vec<Base>, left_out: BTreeMap<Digest, (u64, BTreeSet<usize>)>) -> Self {
        let mut order: Vec<usize> = (0..bases.len()).collect();
        order.sort_by(|&a, &b| bases[a].cmp(&bases[b]));
        let mut new_index = vec![0; bases.len()];
        for (new, &old) in order.iter().enumerate() {
            new_index[old] = new;
        }
        let sorted: Vec<Base> = order.iter().map(|&i| bases[i].clone()).collect();
        bases = sorted;
        let left_out = left_out
            .into_iter()
            .map(|(digest, (size, from))| {
                let mut from: Vec<usize> = from.into_iter().map(|i| new_index[i]).collect();
                from.sort_unstable();
                LeftOut { digest, size, from }
            })
            .collect();
        DeltaRecord {
            ferry_delta: DELTA_VERSION,
            bases,
            left_out,
        }
    }

    /// The canonical bytes: compact JSON, fields in declaration order.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a delta record serializes")
    }

    /// Parse and check a record: known version, at least one base, sha256
    /// in hex, left-out blobs sorted by digest with valid base indexes.
    pub fn parse(bytes: &[u8]) -> Result<DeltaRecord> {
        const KIND: &str = "delta record";
        let version: Value = serde_json::from_slice(bytes)
            .map_err(|source| Error::RecordJson { kind: KIND, source })?;
        match version.get("ferryDelta").and_then(Value::as_u64) {
            Some(v) if v == u64::from(DELTA_VERSION) => {}
            Some(v) => {
                return Err(bad(
                    KIND,
                    format!("version {v}; this ferry reads version {DELTA_VERSION}, upgrade it"),
                ))
            }
            None => return Err(bad(KIND, "no ferryDelta version field")),
        }
        let record: DeltaRecord = serde_json::from_value(version)
            .map_err(|source| Error::RecordJson { kind: KIND, source })?;
        if record.bases.is_empty() {
            return Err(bad(KIND, "it names no base"));
        }
        for base in &record.bases {
            check_hex(KIND, &base.sha256)?;
            for b in &base.bundles {
                check_hex(KIND, b)?;
            }
        }
        let list: Vec<(&Digest, u64)> = record
            .left_out
            .iter()
            .map(|l| (&l.digest, l.size))
            .collect();
        check_sorted(KIND, &list)?;
        for l in &record.left_out {
            if l.from.is_empty() || l.from.iter().any(|&i| i >= record.bases.len()) {
                return Err(bad(KIND, format!("{} names no valid base", l.digest)));
            }
        }
        Ok(record)
    }

    /// Total bytes left out.
    pub fn left_out_bytes(&self) -> u64 {
        self.left_out.iter().map(|l| l.size).sum()
    }

    /// The left-out blobs by digest, with their sizes.
    pub fn left_out_sizes(&self) -> BTreeMap<Digest, u64> {
        self.left_out
            .iter()
            .map(|l| (l.digest.clone(), l.size))
            .collect()
    }

    /// The bases that hold any of `digests`, for messages.
    pub fn bases_of<'a>(&self, digests: impl IntoIterator<Item = &'a Digest>) -> Vec<&Base> {
        let wanted: BTreeSet<&Digest> = digests.into_iter().collect();
        let indexes: BTreeSet<usize> = self
            .left_out
            .iter()
            .filter(|l| wanted.contains(&l.digest))
            .flat_map(|l| l.from.iter().copied())
            .collect();
        indexes.into_iter().map(|i| &self.bases[i]).collect()
    }
}

/// The `index.json` of a delta: `full` (the exact bytes a full bundle of the
/// same images has) with the annotation [`ANNOTATION_DELTA`] pointing at
/// the record blob.
pub fn delta_index_json(full: &[u8], record: &Digest) -> Result<Vec<u8>> {
    let mut index = parse_index_object(full)?;
    let annotations = index
        .entry("annotations")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    let Value::Object(annotations) = annotations else {
        return Err(bad("index.json", "annotations is not an object"));
    };
    annotations.insert(ANNOTATION_DELTA.into(), Value::String(record.to_string()));
    Ok(serde_json::to_vec(&index).expect("index.json serializes"))
}

/// The digest of the delta record an `index.json` points at, if it is a
/// delta's.
pub fn delta_record_digest(index_json: &[u8]) -> Result<Option<Digest>> {
    let index = parse_index_object(index_json)?;
    let Some(value) = index
        .get("annotations")
        .and_then(|a| a.get(ANNOTATION_DELTA))
    else {
        return Ok(None);
    };
    let text = value.as_str().ok_or_else(|| {
        bad(
            "index.json",
            format!("annotation {ANNOTATION_DELTA} is not a string"),
        )
    })?;
    text.parse().map(Some).map_err(|_| {
        bad(
            "index.json",
            format!("annotation {ANNOTATION_DELTA} is not a digest: {text:?}"),
        )
    })
}

/// The `index.json` of the full bundle a delta stands for: the delta's with
/// [`ANNOTATION_DELTA`] removed (and `annotations` with it when it empties).
pub fn full_index_json(delta: &[u8]) -> Result<Vec<u8>> {
    let mut index = parse_index_object(delta)?;
    if let Some(Value::Object(annotations)) = index.get_mut("annotations") {
        annotations.shift_remove(ANNOTATION_DELTA);
        if annotations.is_empty() {
            index.shift_remove("annotations");
        }
    }
    Ok(serde_json::to_vec(&index).expect("index.json serializes"))
}

fn parse_index_object(bytes: &[u8]) -> Result<serde_json::Map<String, Value>> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(bad("index.json", "not a JSON object")),
        Err(source) => Err(Error::RecordJson {
            kind: "index.json",
            source,
        }),
    }
}

impl Receipt {
    /// A receipt for `registry`/`prefix`: the lists are sorted and
    /// deduplicated here.
    pub fn new(
        registry: &str,
        prefix: &str,
        bundles: impl IntoIterator<Item = String>,
        manifests: impl IntoIterator<Item = (Digest, u64)>,
        blobs: impl IntoIterator<Item = (Digest, u64)>,
    ) -> Receipt {
        let held = |it: &mut dyn Iterator<Item = (Digest, u64)>| -> Vec<Held> {
            let set: BTreeMap<Digest, u64> = it.collect();
            set.into_iter()
                .map(|(digest, size)| Held { digest, size })
                .collect()
        };
        let bundles: BTreeSet<String> = bundles.into_iter().collect();
        Receipt {
            ferry_receipt: RECEIPT_VERSION,
            registry: registry.to_string(),
            prefix: prefix.to_string(),
            bundles: bundles.into_iter().collect(),
            manifests: held(&mut manifests.into_iter()),
            blobs: held(&mut blobs.into_iter()),
        }
    }

    /// The canonical bytes: pretty JSON (people read receipts), fields in
    /// declaration order, a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a receipt serializes");
        out.push(b'\n');
        out
    }

    /// Parse and check a receipt: known version, sorted unique lists, sha256
    /// in hex.
    pub fn parse(bytes: &[u8]) -> Result<Receipt> {
        const KIND: &str = "receipt";
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|source| Error::RecordJson { kind: KIND, source })?;
        match value.get("ferryReceipt").and_then(Value::as_u64) {
            Some(v) if v == u64::from(RECEIPT_VERSION) => {}
            Some(v) => {
                return Err(bad(
                    KIND,
                    format!("version {v}; this ferry reads version {RECEIPT_VERSION}, upgrade it"),
                ))
            }
            None => {
                return Err(bad(
                    KIND,
                    "no ferryReceipt version field: not a ferry receipt",
                ))
            }
        }
        let receipt: Receipt = serde_json::from_value(value)
            .map_err(|source| Error::RecordJson { kind: KIND, source })?;
        for b in &receipt.bundles {
            check_hex(KIND, b)?;
        }
        for list in [&receipt.manifests, &receipt.blobs] {
            let pairs: Vec<(&Digest, u64)> = list.iter().map(|h| (&h.digest, h.size)).collect();
            check_sorted(KIND, &pairs)?;
        }
        Ok(receipt)
    }

    /// `host[:port]/prefix`, as `--to` takes it.
    pub fn target(&self) -> String {
        if self.prefix.is_empty() {
            self.registry.clone()
        } else {
            format!("{}/{}", self.registry, self.prefix)
        }
    }
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
