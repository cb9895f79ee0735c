//! The OCI image layout tarball: a planned, deterministic writer
//! ([`LayoutPlan`]) and a streaming, offset-based reader ([`LayoutArchive`])
//! that accepts any layout tarball and trusts none of it.
//!
//! Both work on plain files with positioned I/O, so blobs are written and
//! read in parallel without extracting anything. [`LayoutStream`] reads the
//! same tarballs once, front to back, from a pipe.

mod archive;
mod checksums;
mod classify;
mod parts;
mod plan;
mod problem;
mod reader;
mod scan;
mod stream;
mod tarfmt;

pub use archive::{
    BlobEntry, Compression, LayoutArchive, MAX_INFLATE_RATIO, MAX_MANIFEST_SIZE, MIN_INFLATE_LIMIT,
};
pub use checksums::{bundle_sha256, sha256_file, ChecksumFile};
pub use parts::{
    checksum_path, parity_path, part_path, split_part_path, suffixed, PartSet, PartSetReader,
    MAX_PARTS,
};
pub use plan::{BlobClass, LayoutPlan, PlannedBlob, WriteAt};
pub use problem::{LayoutProblem, LayoutProblemKind};
pub use reader::{read_full, BlobReader, VerifyingReader};
pub use stream::{LayoutStream, StreamBlob};
pub use tarfmt::BLOCK;

/// The name of the layout marker file.
pub const OCI_LAYOUT: &str = "oci-layout";
/// The name of the layout's index.
pub const INDEX_JSON: &str = "index.json";
/// The content of the `oci-layout` file ferry writes.
pub const OCI_LAYOUT_CONTENT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
