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
    /// A relocation target (`HOST[:PORT][/PREFIX]`) is malformed.
    #[error("invalid relocation target {input:?}: {reason}")]
    InvalidRelocationTarget {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A naming strategy name is not one ferry knows.
    #[error("unknown naming strategy {input:?}: expected hash, preserve or flatten")]
    InvalidNaming {
        /// The text given.
        input: String,
    },
    /// A repository cannot be relocated under a target with a naming strategy.
    #[error("cannot relocate {original} to {target} with {naming} naming: {reason}")]
    Relocation {
        /// The original repository name (`registry/repository`).
        original: String,
        /// The relocation target (`HOST[:PORT][/PREFIX]`).
        target: String,
        /// The naming strategy.
        naming: String,
        /// What went wrong, e.g. the name is too long.
        reason: String,
    },
    /// Two original repositories would be relocated to the same repository.
    #[error("relocation collision: {first} and {second} would both be relocated to {target}")]
    NameCollision {
        /// The first original repository name (`registry/repository`).
        first: String,
        /// The second original repository name.
        second: String,
        /// The relocated repository name both map to.
        target: String,
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
