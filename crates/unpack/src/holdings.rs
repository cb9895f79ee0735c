//! What a bundle holds, as the planner sees it: a file read by offset
//! ([`LayoutArchive`]), or the head of a stream, whose manifests (and small
//! blobs) are buffered in memory while the rest is still to come.

use std::collections::HashMap;

use ferry_oci::delta::{delta_record_digest, MAX_RECORD_SIZE};
use ferry_oci::{DeltaRecord, Descriptor, Digest, LayoutArchive, Manifest};

/// Whether a bundle holds a blob, as far as the planner can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Held {
    /// It is there, with this size.
    Yes(u64),
    /// It is not.
    No,
    /// Not known yet: a stream may still bring it (its size is checked
    /// when it arrives). Manifests must be held to be planned with.
    Later,
}

/// What planning needs of a bundle: a file read by offset, or the manifests
/// buffered from the head of a stream.
pub(crate) trait Holdings {
    /// The descriptors of `index.json`.
    fn index(&self) -> &[Descriptor];
    /// Whether the bundle holds `digest`.
    fn held(&self, digest: &Digest) -> Held;
    /// Read, check and parse the manifest `digest`.
    fn manifest(&self, digest: &Digest, media_type: Option<&str>) -> ferry_oci::Result<Manifest>;
    /// The delta record, when the bundle is a delta.
    fn delta(&self) -> ferry_oci::Result<Option<DeltaRecord>>;
}

impl Holdings for LayoutArchive {
    fn index(&self) -> &[Descriptor] {
        LayoutArchive::index(self)
    }

    fn held(&self, digest: &Digest) -> Held {
        self.blob(digest).map_or(Held::No, |b| Held::Yes(b.size))
    }

    fn manifest(&self, digest: &Digest, media_type: Option<&str>) -> ferry_oci::Result<Manifest> {
        LayoutArchive::manifest(self, digest, media_type)
    }

    fn delta(&self) -> ferry_oci::Result<Option<DeltaRecord>> {
        ferry_oci::bases::delta_record(self)
    }
}

/// The head of a stream: `index.json` and the blobs read so far that are
/// small enough to keep in memory.
#[derive(Debug, Default)]
pub(crate) struct Buffered {
    pub index: Vec<Descriptor>,
    /// The exact bytes of `index.json` (a delta's names its record).
    pub index_json: Vec<u8>,
    pub blobs: HashMap<Digest, Vec<u8>>,
    /// The stream has ended: what is not buffered is not in the bundle.
    pub ended: bool,
}

impl Holdings for Buffered {
    fn index(&self) -> &[Descriptor] {
        &self.index
    }

    fn held(&self, digest: &Digest) -> Held {
        match self.blobs.get(digest) {
            Some(bytes) => Held::Yes(bytes.len() as u64),
            None if self.ended => Held::No,
            None => Held::Later,
        }
    }

    fn manifest(&self, digest: &Digest, media_type: Option<&str>) -> ferry_oci::Result<Manifest> {
        let bytes = self
            .blobs
            .get(digest)
            .ok_or_else(|| ferry_oci::Error::BlobNotFound {
                digest: digest.clone(),
            })?;
        let found = digest.recompute(bytes);
        if &found != digest {
            return Err(ferry_oci::Error::DigestMismatch {
                expected: digest.clone(),
                found,
            });
        }
        Manifest::parse_as(bytes.clone(), media_type, digest.algorithm())
    }

    fn delta(&self) -> ferry_oci::Result<Option<DeltaRecord>> {
        let Some(digest) = delta_record_digest(&self.index_json)? else {
            return Ok(None);
        };
        let bytes = self
            .blobs
            .get(&digest)
            .ok_or(ferry_oci::Error::BlobNotFound {
                digest: digest.clone(),
            })?;
        if bytes.len() as u64 > MAX_RECORD_SIZE || digest.recompute(bytes) != digest {
            return Err(ferry_oci::Error::DigestMismatch {
                found: digest.recompute(bytes),
                expected: digest,
            });
        }
        DeltaRecord::parse(bytes).map(Some)
    }
}
