//! Trust sources: what a signature must verify against to hold.
//!
//! Today a source is a public key. Keyless signatures (a Fulcio certificate
//! in the layer's `dev.sigstore.cosign/certificate` annotation, a Rekor
//! bundle in `dev.sigstore.cosign/bundle`, checked against a trust root
//! carried into the gap) become another [`TrustSource`] variant: each
//! source gets the whole payload layer descriptor, annotations included,
//! and answers with the [`Signer`] it vouches for.

use std::path::Path;

use base64::Engine as _;
use ferry_oci::Descriptor;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::cosign::COSIGN_SIGNATURE_ANNOTATION;
use crate::error::Result;
use crate::key::PublicKey;

/// One thing a signature may verify against.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TrustSource {
    /// An ECDSA P-256 public key (`cosign sign --key`).
    Key(PublicKey),
}

/// Who vouches for a signature that holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Signer {
    /// A public key.
    Key {
        /// `sha256:<hex>` of the key's DER SubjectPublicKeyInfo.
        fingerprint: String,
        /// The key file it was given as.
        file: String,
    },
}

impl std::fmt::Display for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signer::Key { fingerprint, file } => write!(f, "key {fingerprint} ({file})"),
        }
    }
}

/// Why a payload layer's signature does not verify against a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The signature is well formed but made by another key.
    OtherSigner,
    /// The signature itself is broken (missing, not base64, not DER).
    Broken(String),
}

impl TrustSource {
    /// Check the signature carried on `layer` over `payload`.
    pub(crate) fn check(&self, layer: &Descriptor, payload: &[u8]) -> Result<Signer, Refused> {
        match self {
            TrustSource::Key(key) => {
                let Some(encoded) = layer.annotation(COSIGN_SIGNATURE_ANNOTATION) else {
                    return Err(Refused::Broken(format!(
                        "the payload layer has no {COSIGN_SIGNATURE_ANNOTATION} annotation"
                    )));
                };
                let der = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|_| {
                        Refused::Broken("the signature annotation is not base64".into())
                    })?;
                let digest: [u8; 32] = Sha256::digest(payload).into();
                match key.verify_prehash(&digest, &der) {
                    Ok(true) => Ok(Signer::Key {
                        fingerprint: key.fingerprint().to_string(),
                        file: key.origin().display().to_string(),
                    }),
                    Ok(false) => Err(Refused::OtherSigner),
                    Err(e) => Err(Refused::Broken(e)),
                }
            }
        }
    }

    /// How the source is named in reports.
    pub(crate) fn describe(&self) -> String {
        match self {
            TrustSource::Key(key) => key.fingerprint().to_string(),
        }
    }
}

/// The trust sources a check accepts: a signature holds when any of them
/// verifies it.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    sources: Vec<TrustSource>,
}

impl Keyring {
    /// A keyring of the PEM public keys at `paths`.
    pub fn load(paths: &[impl AsRef<Path>]) -> Result<Keyring> {
        let mut sources = Vec::new();
        for path in paths {
            sources.push(TrustSource::Key(PublicKey::load(path.as_ref())?));
        }
        Ok(Keyring { sources })
    }

    /// A keyring of the given sources.
    pub fn new(sources: Vec<TrustSource>) -> Keyring {
        Keyring { sources }
    }

    /// The sources.
    pub fn sources(&self) -> &[TrustSource] {
        &self.sources
    }

    /// The public keys among the sources.
    pub fn keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.sources.iter().map(|s| match s {
            TrustSource::Key(k) => k,
        })
    }

    /// Whether there is nothing to check against.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// The sources as named in reports, comma-separated.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self.sources.iter().map(TrustSource::describe).collect();
        names.join(", ")
    }
}
