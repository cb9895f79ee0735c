//! The signature checks of `verify`: the bundle's detached signature, and
//! each image's cosign signatures (see `ferry-sign`).

use std::path::Path;

use ferry_oci::LayoutArchive;
use ferry_sign::{signature_path, BundleSignature, Keyring, SignatureReport, SignedGraph};
use serde::Serialize;

use crate::problem::{error_chain, Problem, Problems};

/// The bundle's detached signature, when it holds.
#[derive(Debug, Clone, Serialize)]
pub struct BundleSignatureReport {
    /// The signature file (`BUNDLE.sig`).
    pub file: String,
    /// The bundle's sha256 hex, as signed.
    pub sha256: String,
    /// The fingerprint of the key that verifies it.
    pub key: String,
    /// The key file it was given as.
    pub key_file: String,
}

/// Check `BUNDLE.sig` against `keys`; a problem naming the signature file
/// when it is missing, malformed or does not hold.
pub(crate) fn bundle(path: &Path, keys: &Keyring) -> Result<BundleSignatureReport, Problem> {
    let file = signature_path(path);
    match BundleSignature::check_file(path, keys) {
        Ok((sha256, key)) => Ok(BundleSignatureReport {
            file: file.display().to_string(),
            sha256,
            key: key.fingerprint().to_string(),
            key_file: key.origin().display().to_string(),
        }),
        Err(e) => Err(Problem::error(
            file.display().to_string(),
            format!("bundle signature does not hold: {}", error_chain(&e)),
        )),
    }
}

/// Check every named image's cosign signatures against `keys`: an error for
/// each image without a signature that holds, a warning for each platform
/// child whose own signatures do not hold (the index's cover it).
pub(crate) fn images(
    archive: &LayoutArchive,
    keys: &Keyring,
    problems: &mut Problems,
) -> Option<SignatureReport> {
    let graph = match SignedGraph::from_archive(archive) {
        Ok(g) => g,
        Err(e) => {
            problems.push(Problem::error(
                "index.json",
                format!("signatures cannot be checked: {}", error_chain(&e)),
            ));
            return None;
        }
    };
    let report = graph.check(keys);
    for image in &report.images {
        if let Some(reason) = &image.reason {
            problems.push(Problem::error(
                &image.reference,
                format!("image {}: {reason}", image.digest),
            ));
        }
        for child in image.children.iter().filter(|c| !c.ok) {
            let outcomes: Vec<String> = child
                .signatures
                .iter()
                .map(|s| format!("signature {}: {}", s.signature, s.outcome))
                .collect();
            problems.push(Problem::warning(
                &image.reference,
                format!(
                    "platform {} ({}) has signatures of its own and none holds ({})",
                    child.platform.as_deref().unwrap_or("?"),
                    child.digest,
                    outcomes.join("; ")
                ),
            ));
        }
    }
    Some(report)
}
