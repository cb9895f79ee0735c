//! Signatures, checked offline: who signed each image, and whether a bundle
//! is the one its maker signed.
//!
//! - [`Keyring`] holds the trust sources a check accepts (today PEM public
//!   keys, ECDSA P-256, cosign's default; [`TrustSource`] is where keyless
//!   certificates with a carried trust root will go).
//! - [`SignedGraph`] gathers what a signature check needs — the named
//!   images, the cosign-format signature manifests found beside them (the
//!   `sha256-<hex>.sig` tag or an OCI referrer) and their simple-signing
//!   payloads — from a bundle ([`SignedGraph::from_archive`]) or from
//!   whatever a caller fetched (`ferry pack`). [`SignedGraph::check`] says,
//!   per image and per platform child, which signatures hold and why the
//!   others do not.
//! - [`BundleSignature`] is the detached signature `ferry pack --sign`
//!   writes beside a bundle (`OUT.sig`): ECDSA P-256 over the bundle's
//!   sha256, in a small text format documented in `docs/signatures.md`.
//!
//! The crate knows nothing of HTTP; the cryptography is RustCrypto's `p256`.

#![deny(missing_docs)]

mod bundle;
mod check;
mod cosign;
mod error;
mod graph;
mod key;
mod trust;

pub use bundle::{sha256_file, signature_path, BundleSignature, BUNDLE_SIGNATURE_VERSION};
pub use check::{ChildSignatures, ImageSignatures, Outcome, SignatureCheck, SignatureReport};
pub use cosign::{
    signature_tag_subject, COSIGN_SIGNATURE_ANNOTATION, SIGNATURE_ARTIFACT_TYPE,
    SIMPLE_SIGNING_MEDIA_TYPE,
};
pub use error::{Error, KeyProblem, Result};
pub use graph::{SignedGraph, MAX_PAYLOAD_SIZE};
pub use key::{PrivateKey, PublicKey};
pub use trust::{Keyring, Signer, TrustSource};
