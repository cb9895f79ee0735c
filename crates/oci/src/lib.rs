//! The OCI core of ferry: digests, references, manifests, the OCI image
//! layout tarball (reader and planned, deterministic writer) and relocation
//! naming.
//!
//! This crate knows nothing of HTTP: it is shared by the registry client,
//! `pack`, `unpack` and `verify`, and everything in it can be tested offline.

#![deny(missing_docs)]

pub mod bases;
pub mod delta;
pub mod digest;
mod error;
pub mod fsutil;
pub mod graph;
pub mod layout;
pub mod manifest;
pub mod media_type;
pub mod naming;
pub mod progress;
pub mod reference;
pub mod serde_str;

pub use delta::{Base, BaseKind, DeltaRecord, Receipt};
pub use digest::{Algorithm, Digest, DigestHasher};
pub use error::{error_chain, Error, Result};
pub use graph::{Step, Walk, MAX_DEPTH};
pub use layout::{
    BlobClass, BlobEntry, BlobReader, LayoutArchive, LayoutPlan, LayoutProblem, LayoutProblemKind,
    LayoutStream, PlannedBlob, StreamBlob, VerifyingReader,
};
pub use manifest::{Descriptor, Manifest, ManifestView, Platform};
pub use naming::{check_collisions, Naming, RelocationTarget};
pub use progress::{NoProgress, Progress};
pub use reference::Reference;
