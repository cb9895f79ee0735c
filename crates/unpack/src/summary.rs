//! What an unpack did, for people (`Display` in the CLI) and scripts
//! (`--json`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use ferry_oci::Digest;

use crate::SparseMode;

/// One named reference after the unpack.
#[derive(Debug, Clone, Serialize)]
pub struct UnpackedImage {
    /// The original reference as recorded in the bundle.
    pub original: String,
    /// The relocated reference, tag kept, digest pinned; by digest only
    /// when its tag was left where it was (`tag_left`).
    pub relocated: String,
    /// `--existing-tag skip` left the relocated tag pointing at another
    /// image; this one is pushed by digest only.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tag_left: bool,
    /// The digest the target serves.
    pub digest: Digest,
    /// The digest in the bundle, when the index was rewritten.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle_digest: Option<Digest>,
    /// Platforms of the index not carried in the bundle.
    pub platforms_missing: Vec<String>,
    /// Why it was not pushed; `None` when it was.
    pub error: Option<String>,
}

/// One unnamed referrer after the unpack.
#[derive(Debug, Clone, Serialize)]
pub struct UnpackedReferrer {
    /// Its digest.
    pub digest: Digest,
    /// Its subject.
    pub subject: Digest,
    /// Its artifact type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The relocated repositories (`host/path`) it was pushed into.
    pub repositories: Vec<String>,
    /// Why it was not (fully) pushed; `None` when it was.
    pub error: Option<String>,
}

/// What an unpack did.
#[derive(Debug, Clone, Serialize)]
pub struct UnpackSummary {
    /// `HOST[:PORT][/PREFIX]`.
    pub target: String,
    /// The naming strategy.
    pub naming: String,
    /// The sparse mode.
    pub sparse: SparseMode,
    /// Every named reference, sorted by original.
    pub images: Vec<UnpackedImage>,
    /// Every unnamed referrer, sorted by digest.
    pub referrers: Vec<UnpackedReferrer>,
    /// Blobs uploaded from the bundle.
    pub blobs_uploaded: u64,
    /// Blobs mounted from another relocated repository.
    pub blobs_mounted: u64,
    /// Blobs the target already had (skipped).
    pub blobs_present: u64,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
    /// Manifests pushed.
    pub manifests_pushed: u64,
    /// Manifests the target already had.
    pub manifests_present: u64,
    /// Tags set or moved (referrers tag schema indexes included).
    pub tags_set: u64,
    /// Tags that already pointed at the right manifest.
    pub tags_unchanged: u64,
    /// Existing tags this run moved, old digest -> new.
    pub tags_moved: Vec<crate::TagMove>,
    /// Existing tags left where they were (`--existing-tag skip`).
    pub tags_left: Vec<crate::TagMove>,
    /// Images and referrers that failed.
    pub failed: usize,
    /// The mapping file written, if any.
    pub mapping_file: Option<PathBuf>,
    /// The receipt file written, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_file: Option<PathBuf>,
    /// The mapping of the images pushed: original -> relocated.
    pub mapping: BTreeMap<String, String>,
    /// Wall time in seconds.
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}
