//! `--bundle-key` and `--require-signature`: signatures checked before
//! anything is pushed (see `ferry-sign`).

use std::path::Path;

use ferry_oci::LayoutArchive;
use ferry_sign::{BundleSignature, Keyring, SignatureReport, SignedGraph};

use crate::{open_bundle, Error, Result};

/// What must be signed for an unpack to start.
#[derive(Debug, Clone, Default)]
pub struct SignaturePolicy {
    /// `BUNDLE.sig` must hold for one of these keys (checked first).
    pub bundle_keys: Option<Keyring>,
    /// Every named image must carry a cosign signature that holds for one
    /// of these keys.
    pub image_keys: Option<Keyring>,
}

impl SignaturePolicy {
    /// Whether anything is required.
    pub fn is_empty(&self) -> bool {
        self.bundle_keys.is_none() && self.image_keys.is_none()
    }
}

/// Check the whole policy on the bundle at `path` (opening it), as
/// `unpack` does before pushing; for dry runs.
pub fn check_signatures(path: &Path, policy: &SignaturePolicy) -> Result<()> {
    if policy.is_empty() {
        return Ok(());
    }
    check_bundle_signature(path, policy)?;
    if policy.image_keys.is_some() {
        check_image_signatures(&open_bundle(path)?, policy)?;
    }
    Ok(())
}

/// Check `BUNDLE.sig` when the policy asks for it.
pub(crate) fn check_bundle_signature(path: &Path, policy: &SignaturePolicy) -> Result<()> {
    let Some(keys) = &policy.bundle_keys else {
        return Ok(());
    };
    if path == Path::new("-") {
        return Err(Error::SignatureNeedsFile);
    }
    BundleSignature::check_file(path, keys)
        .map(|_| ())
        .map_err(|source| Error::Signature { source })
}

/// Check every named image's cosign signatures when the policy asks for it.
pub(crate) fn check_image_signatures(
    archive: &LayoutArchive,
    policy: &SignaturePolicy,
) -> Result<Option<SignatureReport>> {
    let Some(keys) = &policy.image_keys else {
        return Ok(None);
    };
    let graph = SignedGraph::from_archive(archive).map_err(|source| Error::Signature { source })?;
    let report = graph.check(keys);
    let images: Vec<String> = report
        .failures()
        .map(|i| {
            format!(
                "{}: {}",
                i.reference,
                i.reason.as_deref().unwrap_or("no signature holds")
            )
        })
        .collect();
    if images.is_empty() {
        Ok(Some(report))
    } else {
        Err(Error::Unsigned {
            keys: report.keys,
            images,
        })
    }
}
