//! The error type of `pack`.

use std::path::PathBuf;

use ferry_oci::{Digest, Reference};

/// Everything that can stop a pack.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The registry failed for one reference.
    #[error("{reference}")]
    Registry {
        /// The reference being packed.
        reference: String,
        /// What the registry client said.
        #[source]
        source: ferry_registry::Error,
    },
    /// A manifest could not be understood.
    #[error("{reference}: manifest {digest}")]
    Manifest {
        /// The reference being packed.
        reference: String,
        /// The manifest's digest.
        digest: Digest,
        /// Why it was refused.
        #[source]
        source: ferry_oci::Error,
    },
    /// No child of an index matches the platforms asked for.
    #[error("{reference} has no image for {wanted}; it has: {available}")]
    NoMatchingPlatform {
        /// The reference.
        reference: Reference,
        /// The platforms asked for.
        wanted: String,
        /// The platforms it has.
        available: String,
    },
    /// A blob's bytes did not match its descriptor.
    #[error("{reference}: blob {expected} arrived with digest {found} ({size} bytes); the registry served corrupt content")]
    BlobDigestMismatch {
        /// A reference that needs the blob.
        reference: String,
        /// The digest promised.
        expected: Digest,
        /// The digest of what arrived.
        found: Digest,
        /// How many bytes arrived.
        size: u64,
    },
    /// A blob's size did not match its descriptor.
    #[error("{reference}: blob {digest} should be {expected} bytes, the registry sent {found}")]
    BlobSizeMismatch {
        /// A reference that needs the blob.
        reference: String,
        /// The blob.
        digest: Digest,
        /// The size promised.
        expected: u64,
        /// The bytes that arrived (at least).
        found: u64,
    },
    /// A manifest references itself through its children (a cycle).
    #[error("{reference}: manifest graph is deeper than {limit} levels (a cycle?)")]
    TooDeep {
        /// The reference.
        reference: String,
        /// The depth limit.
        limit: usize,
    },
    /// Writing the output failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The archive could not be planned (conflicting sizes for one digest).
    #[error("planning the bundle")]
    Plan {
        /// The planning error.
        #[source]
        source: ferry_oci::Error,
    },
    /// A `--since` base, or an input of `merge`, cannot be used.
    #[error("{path}")]
    Base {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: ferry_oci::Error,
    },
    /// A delta given to `merge` was made against a base not given before it.
    #[error(
        "{delta} was made against {wanted}, which is not among the files given before it \
         ({given}); give that base first"
    )]
    BaseMismatch {
        /// The delta.
        delta: PathBuf,
        /// The base it records (name, kind, sha256).
        wanted: String,
        /// The files given before it, with their sha256.
        given: String,
    },
    /// Blobs a delta left out are in none of the files given to `merge`.
    #[error(
        "{count} blob(s) ({bytes} bytes) that {delta} leaves to its base are in none of the \
         files given, e.g. {example}; they come from {bases}"
    )]
    MergeMissing {
        /// The delta.
        delta: PathBuf,
        /// How many blobs are missing.
        count: usize,
        /// Their total size.
        bytes: u64,
        /// One of them.
        example: Digest,
        /// The bases that hold them, as the delta records them.
        bases: String,
    },
    /// `merge` was given no delta.
    #[error("{path} is not a delta: merge takes a base and one or more deltas made with `ferry pack --since`")]
    NotADelta {
        /// The file.
        path: PathBuf,
    },
    /// `--split` would cut the bundle into more parts than can be named.
    #[error("the bundle is {size} bytes: parts of {part_size} bytes would make {parts} parts, more than the 1000 allowed (.000 to .999); choose a larger --split")]
    TooManyParts {
        /// The bundle's size.
        size: u64,
        /// The part size asked for.
        part_size: u64,
        /// How many parts that makes.
        parts: usize,
    },
    /// Parity parts could not be computed or written.
    #[error("writing parity parts")]
    Parity {
        /// What went wrong.
        #[source]
        source: ferry_parity::Error,
    },
    /// Nothing to pack.
    #[error("no images to pack: name at least one reference or give --images-file")]
    NothingToPack,
    /// Images without a signature that holds (`--require-signature`).
    #[error("{} image(s) without a signature that holds for the key(s) given ({keys}):\n  {}", images.len(), images.join("\n  "))]
    Unsigned {
        /// The fingerprints of the keys given.
        keys: String,
        /// Each image and why, `reference: reason`.
        images: Vec<String>,
    },
    /// The pack stopped after it began writing; what it wrote is kept.
    #[error(
        "the work so far is kept in {}: run the same command again to resume it, \
         or add --fresh to start over",
        partial.display()
    )]
    Interrupted {
        /// The (first) partial file kept.
        partial: PathBuf,
        /// Why the pack stopped.
        #[source]
        source: Box<Error>,
    },
    /// A worker task died.
    #[error("internal error: a transfer task failed: {0}")]
    Task(String),
}

/// Result with pack's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
