//! What can stop `ferry serve` from starting.

use std::path::PathBuf;

use ferry_oci::Digest;

/// Why the server did not start (once it runs, request failures are
/// answered with distribution-spec errors, never returned).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No bundle was named.
    #[error("no bundle to serve: name at least one")]
    NoBundles,
    /// A bundle could not be opened.
    #[error("cannot open bundle {path}")]
    Bundle {
        /// The bundle.
        path: PathBuf,
        /// Why.
        #[source]
        source: ferry_oci::Error,
    },
    /// A manifest a bundle names or points at is broken.
    #[error("bundle {path}: manifest {digest} (needed by {needed_by})")]
    Manifest {
        /// The bundle.
        path: PathBuf,
        /// The manifest.
        digest: Digest,
        /// The image that needs it.
        needed_by: String,
        /// What is wrong.
        #[source]
        source: ferry_oci::Error,
    },
    /// A manifest `index.json` names is not in any bundle.
    #[error("bundle {path}: manifest {digest} of {needed_by} is in no bundle given")]
    ManifestMissing {
        /// The bundle.
        path: PathBuf,
        /// The manifest.
        digest: Digest,
        /// The image that needs it.
        needed_by: String,
    },
    /// Indexes nest deeper than [`ferry_oci::graph::MAX_DEPTH`].
    #[error(
        "bundle {path}: {parent} lists {digest} deeper than {max} levels below {needed_by}; \
         no real image nests like this, the bundle is damaged or crafted",
        max = ferry_oci::graph::MAX_DEPTH
    )]
    TooDeep {
        /// The bundle.
        path: PathBuf,
        /// The entry not followed.
        digest: Digest,
        /// The index listing it.
        parent: Digest,
        /// The image that needs it.
        needed_by: String,
    },
    /// An index lists one of its own ancestors.
    #[error(
        "bundle {path}: {parent} lists its own ancestor {digest} (below {needed_by}); \
         the bundle is damaged or crafted"
    )]
    Cycle {
        /// The bundle.
        path: PathBuf,
        /// The entry not followed.
        digest: Digest,
        /// The index listing it.
        parent: Digest,
        /// The image that needs it.
        needed_by: String,
    },
    /// A descriptor's size disagrees with the blob in the bundle.
    #[error(
        "bundle {path}: {digest} is {found} bytes in the bundle but {expected} in the \
         descriptor of {needed_by}; the bundle is damaged"
    )]
    SizeMismatch {
        /// The bundle.
        path: PathBuf,
        /// The blob.
        digest: Digest,
        /// The image that needs it.
        needed_by: String,
        /// The descriptor's size.
        expected: u64,
        /// The size in the bundle.
        found: u64,
    },
    /// An `index.json` entry names something that is not a reference.
    #[error("bundle {path}: index.json names {digest} {name:?}, which is not an image reference")]
    InvalidName {
        /// The bundle.
        path: PathBuf,
        /// The manifest named.
        digest: Digest,
        /// The name recorded.
        name: String,
        /// Why it does not parse.
        #[source]
        source: ferry_oci::Error,
    },
    /// `--prefix` is not a repository path.
    #[error(
        "prefix {prefix:?} is not a repository path (lowercase letters, digits and \
         . _ - separators, components joined by /)"
    )]
    InvalidPrefix {
        /// The prefix given.
        prefix: String,
    },
    /// The bundles hold no named image.
    #[error("the bundles name no image to serve")]
    Empty,
    /// The TLS certificate or key could not be loaded.
    #[error("TLS: {reason}")]
    Tls {
        /// What is wrong.
        reason: String,
    },
    /// The htpasswd file could not be read or parsed.
    #[error("htpasswd {path}: {reason}")]
    Htpasswd {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
