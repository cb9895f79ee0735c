//! The error type of the OCI core.

use crate::digest::Digest;

/// Everything that can go wrong in the OCI core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A digest string is malformed.
    #[error("invalid digest {input:?}: {reason}")]
    InvalidDigest {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An image reference is malformed.
    #[error("invalid reference {input:?}: {reason}")]
    InvalidReference {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A platform string is malformed.
    #[error("invalid platform {input:?}: expected os/arch[/variant], e.g. linux/arm64")]
    InvalidPlatform {
        /// The text given.
        input: String,
    },
    /// Content hashed to another digest than promised.
    #[error("digest mismatch: expected {expected}, found {found}")]
    DigestMismatch {
        /// The digest promised by the descriptor.
        expected: Digest,
        /// The digest of the bytes actually read.
        found: Digest,
    },
    /// Content had another size than promised.
    #[error("size mismatch for {digest}: expected {expected} bytes, found {found}")]
    SizeMismatch {
        /// The digest of the content.
        digest: Digest,
        /// The size promised by the descriptor.
        expected: u64,
        /// The number of bytes actually read.
        found: u64,
    },
    /// A manifest is not valid JSON of the expected shape.
    #[error("manifest {digest} does not parse")]
    ManifestParse {
        /// The digest of the bytes that failed to parse.
        digest: Digest,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A manifest has a media type ferry cannot carry.
    #[error("manifest {digest} has unsupported media type {media_type}")]
    UnsupportedMediaType {
        /// The digest of the manifest.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
}

/// Result with the OCI core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
