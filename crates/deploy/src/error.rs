//! The error type of ferry-deploy.

use std::path::PathBuf;

/// What can go wrong outside a single deployment file (trouble in one file
/// is a [`crate::Problem`], and the rest still counts).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A relocation mapping cannot be read or is not one.
    #[error("relocation mapping {}: {reason}", path.display())]
    Mapping {
        /// The mapping file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A form name is not one ferry writes.
    #[error("unknown format {input:?}: expected text, idms, itms, containerd, registries-yaml or kustomize")]
    UnknownForm {
        /// The text given.
        input: String,
    },
    /// The mapping cannot be said exactly in this form.
    #[error("cannot write the mapping as {form}: {reason}")]
    Unrepresentable {
        /// The form.
        form: &'static str,
        /// Why not, and what works instead.
        reason: String,
    },
}

/// Results of ferry-deploy.
pub type Result<T> = std::result::Result<T, Error>;
