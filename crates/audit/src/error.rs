//! The error type of the audit crate: what stops an audit from starting.
//! Findings of a running audit are [`Problem`](crate::Problem)s instead.

use std::path::PathBuf;

/// What stops an audit from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The archive cannot be opened as an OCI image layout tarball.
    #[error("cannot read bundle {path}")]
    Open {
        /// The archive.
        path: PathBuf,
        /// Why.
        #[source]
        source: ferry_oci::Error,
    },
    /// A bundle's signatures cannot be read (for `diff`).
    #[error("cannot read the signatures in bundle {path}")]
    Signatures {
        /// The archive.
        path: PathBuf,
        /// Why.
        #[source]
        source: ferry_sign::Error,
    },
    /// The mapping file cannot be read.
    #[error("cannot read mapping file {path}")]
    MappingRead {
        /// The mapping file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The mapping file is not a JSON object of strings.
    #[error("mapping file {path} is not a JSON object of original to relocated references")]
    MappingJson {
        /// The mapping file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// Result with the audit crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
