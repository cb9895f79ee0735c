//! Auditing ferry bundles: what an archive holds, whether every byte of it
//! is what its names promise, and whether a relocation holds in the target
//! registry.
//!
//! - [`inspect`] lists an OCI image layout tarball — references, manifest
//!   digests (what registries show), config digests (the image IDs engines
//!   show), platforms carried and not carried, referrers, totals — without
//!   hashing layers. It never fails on a sparse or referrer-laden archive.
//! - [`verify_archive`] reads the archive once, hashes every blob, checks
//!   every descriptor reachable from `index.json`, and lists every problem
//!   it finds, each naming the entry, what was expected and what was found.
//!   It is offline: it never contacts a registry.
//! - [`diff`] compares two bundles offline: references added, removed and
//!   moved (per platform), blobs and bytes added, signatures gained and lost.
//! - [`verify_mapping`] checks a relocation mapping (written by
//!   `ferry unpack`) against the target registry: every relocated tag
//!   resolves to the digest recorded and everything below it is present.
//!
//! Findings are data ([`Problem`]), not errors: the audit goes on after the
//! first one. [`Error`] is only for what stops an audit from starting (an
//! unreadable mapping file, an archive `inspect` cannot open).

#![deny(missing_docs)]

mod diff;
mod error;
mod mapping;
mod parts;
mod problem;
mod report;
mod signatures;
mod verify;
mod walk;

pub use diff::{
    diff, DiffBlobs, DiffMoved, DiffPlatform, DiffPlatformChange, DiffReference, DiffReport,
    DiffSide, DiffSignature, DiffSignatures, DIFF_VERSION,
};
pub use error::{Error, Result};
pub use mapping::{verify_mapping, Mapping, MappingCheck, MappingOptions, MappingReport};
pub use parts::{PartCheck, PartStatus, PartsReport};
pub use problem::{Problem, Severity, MAX_PROBLEMS};
pub use report::{
    BundleReport, DeltaReport, ImageReport, Inspection, ManifestKind, ReferenceReport,
    ReferrerReport, ReferrerSource, Totals, UnreferencedBlob,
};
pub use signatures::BundleSignatureReport;
pub use verify::{verify_archive, VerifyOptions, VerifyReport};
pub use walk::inspect;
