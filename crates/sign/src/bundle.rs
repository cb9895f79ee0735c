//! The detached signature of a bundle (`OUT.sig`): ECDSA P-256 over the
//! bundle's sha256, in a four-line text format.
//!
//! ```text
//! ferry-bundle-signature v1
//! sha256 <hex sha256 of the whole bundle, as in OUT.sha256>
//! key sha256:<hex sha256 of the signer's DER SubjectPublicKeyInfo>
//! signature <base64 of the ASN.1 DER ECDSA P-256 signature>
//! ```
//!
//! The signature is what `openssl dgst -sha256 -sign KEY` makes over the
//! bundle's bytes: ECDSA over their sha256. A verifier needs only that
//! digest, so a bundle split into parts (whose sums carry the whole
//! bundle's sha256) is checked the same way. See `docs/signatures.md`.

use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::error::{Error, Result};
use crate::key::{PrivateKey, PublicKey};
use crate::trust::Keyring;

/// The first line of a bundle signature file.
pub const BUNDLE_SIGNATURE_VERSION: &str = "ferry-bundle-signature v1";

/// The largest signature file read (they are about 250 bytes).
const MAX_SIGNATURE_FILE: u64 = 16 << 10;

/// Where the detached signature of `bundle` lives: `BUNDLE.sig`.
pub fn signature_path(bundle: &Path) -> PathBuf {
    let mut path = bundle.as_os_str().to_owned();
    path.push(".sig");
    PathBuf::from(path)
}

/// The sha256 of a whole bundle: a plain file or a split part set, hashed
/// as the one file it makes up ([`ferry_oci::layout::bundle_sha256`]).
pub fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let hex = ferry_oci::layout::bundle_sha256(path).map_err(|source| Error::OpenBundle {
        path: path.to_path_buf(),
        source,
    })?;
    let mut sha = [0u8; 32];
    hex::decode_to_slice(&hex, &mut sha).expect("a sha256 hex is 32 bytes");
    Ok(sha)
}

/// The name a bundle is signed under: `X` for `X` itself and for the parts
/// of a set (`X.000`, `X.001`, …), whose signature is `X.sig` beside
/// `X.sha256`.
fn signed_name(bundle: &Path) -> PathBuf {
    match ferry_oci::layout::split_part_path(bundle) {
        Some((base, _)) => base,
        None => bundle.to_path_buf(),
    }
}

/// A bundle's detached signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSignature {
    /// The sha256 of the bundle signed.
    pub sha256: [u8; 32],
    /// The signer's key fingerprint (`sha256:<hex>`), for reports.
    pub key: String,
    /// The ASN.1 DER ECDSA P-256 signature over `sha256`.
    pub signature: Vec<u8>,
}

impl BundleSignature {
    /// Sign the bundle whose sha256 is `sha256`.
    pub fn sign(sha256: [u8; 32], key: &PrivateKey) -> BundleSignature {
        BundleSignature {
            sha256,
            key: key.public().fingerprint().to_string(),
            signature: key.sign_prehash(&sha256),
        }
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        format!(
            "{BUNDLE_SIGNATURE_VERSION}\nsha256 {}\nkey {}\nsignature {}\n",
            hex::encode(self.sha256),
            self.key,
            base64::engine::general_purpose::STANDARD.encode(&self.signature)
        )
    }

    /// Read the signature file at `path`.
    pub fn load(path: &Path) -> Result<BundleSignature> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::SignatureMissing {
                    path: path.to_path_buf(),
                })
            }
            Err(source) => {
                return Err(Error::ReadSignature {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let mut bytes = Vec::new();
        file.take(MAX_SIGNATURE_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| Error::ReadSignature {
                path: path.to_path_buf(),
                source,
            })?;
        Self::parse(&bytes, path)
    }

    /// Parse a signature file's bytes; `path` names it in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<BundleSignature> {
        let bad = |line: usize, reason: &str| Error::SignatureFormat {
            path: path.to_path_buf(),
            line,
            reason: reason.to_string(),
        };
        if bytes.len() as u64 > MAX_SIGNATURE_FILE {
            return Err(bad(0, "far too large for a signature file"));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| bad(0, "not text"))?;
        let mut lines = text.lines();
        let mut field = |n: usize, name: &str| -> Result<String> {
            let line = lines
                .next()
                .ok_or_else(|| bad(n, &format!("missing the `{name}` line (truncated?)")))?;
            if n == 1 {
                return if line == BUNDLE_SIGNATURE_VERSION {
                    Ok(String::new())
                } else {
                    Err(bad(
                        1,
                        &format!("first line is not {BUNDLE_SIGNATURE_VERSION:?}"),
                    ))
                };
            }
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .map(str::to_string)
                .ok_or_else(|| bad(n, &format!("expected `{name} ...`")))
        };
        field(1, "")?;
        let sha256 = field(2, "sha256")?;
        let key = field(3, "key")?;
        let signature = field(4, "signature")?;
        let sha256: [u8; 32] = hex::decode(&sha256)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad(2, "not 64 hex digits"))?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .map_err(|_| bad(4, "not base64 (truncated?)"))?;
        if p256::ecdsa::Signature::from_der(&signature).is_err() {
            return Err(bad(
                4,
                "not an ASN.1 DER ECDSA P-256 signature (truncated?)",
            ));
        }
        Ok(BundleSignature {
            sha256,
            key,
            signature,
        })
    }

    /// Check this signature of `bundle` (whose sha256 is `actual`) against
    /// `keyring`; `path` is the signature file, for messages. Returns the
    /// key that verifies it.
    pub fn verify<'k>(
        &self,
        bundle: &Path,
        path: &Path,
        actual: &[u8; 32],
        keyring: &'k Keyring,
    ) -> Result<&'k PublicKey> {
        let by = |digest: &[u8; 32]| {
            keyring
                .keys()
                .find(|k| k.verify_prehash(digest, &self.signature) == Ok(true))
        };
        if let Some(key) = by(actual) {
            return Ok(key);
        }
        if &self.sha256 != actual && by(&self.sha256).is_some() {
            return Err(Error::BundleChanged {
                bundle: bundle.to_path_buf(),
                signature: path.to_path_buf(),
                expected: hex::encode(self.sha256),
                found: hex::encode(actual),
            });
        }
        Err(Error::BundleSignatureRefused {
            bundle: bundle.to_path_buf(),
            signature: path.to_path_buf(),
            signer: self.key.clone(),
            keys: keyring.describe(),
        })
    }

    /// Check the bundle at `bundle` (a file, or a split part set named by
    /// its first part or its unsplit name) against its `BUNDLE.sig`: hash
    /// the whole bundle, then [`verify`](Self::verify). Returns the bundle's
    /// sha256 hex and the key that verified it.
    pub fn check_file<'k>(bundle: &Path, keyring: &'k Keyring) -> Result<(String, &'k PublicKey)> {
        let path = signature_path(&signed_name(bundle));
        let signature = BundleSignature::load(&path)?;
        let actual = sha256_file(bundle)?;
        let key = signature.verify(bundle, &path, &actual, keyring)?;
        Ok((hex::encode(actual), key))
    }
}
