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
    /// An image layout (or its tarball) is malformed in a way that leaves
    /// no trustworthy picture of its content.
    #[error("invalid image layout at {entry}: {reason}")]
    Layout {
        /// The entry (or `header at offset N`) where the problem is.
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// A JSON file of an image layout (`oci-layout`, `index.json`) does not
    /// parse.
    #[error("{entry} in the image layout is not valid JSON of the expected shape")]
    LayoutJson {
        /// The entry name.
        entry: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The archive ends before an entry's data does.
    #[error(
        "archive is truncated or corrupt: {entry} declares {declared} bytes but only {available} remain"
    )]
    Truncated {
        /// The entry whose data is cut.
        entry: String,
        /// The size its header declares.
        declared: u64,
        /// How many bytes the archive still holds after the header.
        available: u64,
    },
    /// A compressed archive inflates beyond the allowed size.
    #[error(
        "compressed archive inflates beyond {limit} bytes; if it is genuine, decompress it first (gunzip, unzstd) and use the plain tar"
    )]
    InflateLimit {
        /// The limit, in bytes of inflated data.
        limit: u64,
    },
    /// A blob is not in the layout.
    #[error("blob {digest} is not in the image layout")]
    BlobNotFound {
        /// The digest looked for.
        digest: Digest,
    },
    /// A blob is bigger than the caller is willing to hold in memory.
    #[error("blob {digest} is {size} bytes, more than the {max} allowed here")]
    BlobTooLarge {
        /// The blob's digest.
        digest: Digest,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A byte range asked of a blob does not lie inside it.
    #[error("bytes {start}..+{len} lie outside blob {digest} ({size} bytes)")]
    BlobRange {
        /// The blob's digest.
        digest: Digest,
        /// Where the range starts.
        start: u64,
        /// Its length.
        len: u64,
        /// The blob's size.
        size: u64,
    },
    /// The same blob was planned twice with different sizes.
    #[error("blob {digest} is described with two sizes, {first} and {second} bytes")]
    PlanConflict {
        /// The blob's digest.
        digest: Digest,
        /// One size.
        first: u64,
        /// The other.
        second: u64,
    },
    /// A part of a split bundle is missing, short, stale, out of order or
    /// from another pack.
    #[error("split bundle part {part} {reason}")]
    Part {
        /// The part's path.
        part: String,
        /// What is wrong with it, and what to do.
        reason: String,
    },
    /// A planned archive would be larger than a file can be.
    #[error("planned archive does not fit in a file: sizes add up beyond 2^64 bytes")]
    PlanTooLarge,
    /// A delta record, receipt or delta `index.json` is not what ferry
    /// writes.
    #[error("invalid {kind}: {reason}")]
    BadRecord {
        /// What was read: `delta record`, `receipt` or `index.json`.
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A delta record or receipt is not valid JSON of the expected shape.
    #[error("{kind} is not valid JSON of the expected shape")]
    RecordJson {
        /// What was read: `delta record`, `receipt` or `index.json`.
        kind: &'static str,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// An I/O operation failed.
    #[error("{context}")]
    Io {
        /// What was being done, e.g. `reading /tmp/bundle.tar`.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Result with the OCI core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its sources on one line, joined with `: ` (`a: b: c`), for
/// summaries and reports that keep an error as text.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        out.push_str(": ");
        out.push_str(&inner.to_string());
        source = inner.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_joins_every_source() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = Error::Io {
            context: "reading /x".into(),
            source: io,
        };
        assert_eq!(error_chain(&err), "reading /x: no such file");
    }
}
