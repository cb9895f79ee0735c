//! PEM keys: ECDSA P-256 public keys to verify with, private keys to sign
//! with, and clear refusals for every other kind of key.

use std::fmt;
use std::path::{Path, PathBuf};

use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::der::pem;
use p256::pkcs8::spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};
use p256::pkcs8::{DecodePrivateKey, EncodePublicKey, PrivateKeyInfo};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, KeyProblem, Result};

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// The largest key file read (keys are a few hundred bytes).
const MAX_KEY_FILE: u64 = 64 << 10;

/// An ECDSA P-256 public key, with the file it came from and its
/// fingerprint.
#[derive(Clone)]
pub struct PublicKey {
    key: VerifyingKey,
    fingerprint: String,
    origin: PathBuf,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("fingerprint", &self.fingerprint)
            .field("origin", &self.origin)
            .finish()
    }
}

impl PublicKey {
    /// Load a PEM public key (`-----BEGIN PUBLIC KEY-----`, as cosign and
    /// `openssl pkey -pubout` write it).
    pub fn load(path: &Path) -> Result<PublicKey> {
        Self::from_pem(&read_key_file(path)?, path)
    }

    /// Parse a PEM public key; `origin` names it in errors and reports.
    pub fn from_pem(pem_text: &[u8], origin: &Path) -> Result<PublicKey> {
        let bad = |problem| Error::Key {
            path: origin.to_path_buf(),
            problem,
        };
        let (label, der) = first_block(pem_text).map_err(bad)?;
        match label.as_str() {
            "PUBLIC KEY" => {}
            "RSA PUBLIC KEY" => return Err(bad(unsupported("RSA"))),
            l if is_private_label(l) => return Err(bad(KeyProblem::PrivateGiven)),
            "CERTIFICATE" => return Err(bad(KeyProblem::Certificate)),
            _ => return Err(bad(KeyProblem::UnknownLabel { label })),
        }
        let spki = SubjectPublicKeyInfoRef::try_from(der.as_slice())
            .map_err(|e| bad(malformed(&label, e)))?;
        check_algorithm(spki.algorithm.oid, spki.algorithm.parameters_oid().ok()).map_err(bad)?;
        let key = VerifyingKey::try_from(spki).map_err(|e| bad(malformed(&label, e)))?;
        Ok(Self::from_key(key, origin))
    }

    fn from_key(key: VerifyingKey, origin: &Path) -> PublicKey {
        let der = key
            .to_public_key_der()
            .expect("a P-256 public key encodes as SubjectPublicKeyInfo");
        PublicKey {
            key,
            fingerprint: format!("sha256:{}", hex::encode(Sha256::digest(der.as_bytes()))),
            origin: origin.to_path_buf(),
        }
    }

    /// `sha256:<hex>` of the key's DER SubjectPublicKeyInfo (what
    /// `openssl pkey -pubin -in KEY -outform DER | sha256sum` prints).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The file the key was read from.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// Whether `der_signature` (ASN.1 DER ECDSA) is this key's signature of
    /// a message whose sha256 is `sha256`. `Err` when the signature is not
    /// valid DER at all.
    pub fn verify_prehash(&self, sha256: &[u8; 32], der_signature: &[u8]) -> Result<bool, String> {
        let signature = Signature::from_der(der_signature)
            .map_err(|_| "not an ASN.1 DER ECDSA P-256 signature".to_string())?;
        Ok(self.key.verify_prehash(sha256, &signature).is_ok())
    }
}

/// An ECDSA P-256 private key, to sign bundles with.
pub struct PrivateKey {
    key: SigningKey,
    public: PublicKey,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Load an unencrypted PEM private key: PKCS#8 (`-----BEGIN PRIVATE
    /// KEY-----`, `openssl genpkey`) or SEC1 (`-----BEGIN EC PRIVATE
    /// KEY-----`, `openssl ecparam -genkey`).
    pub fn load(path: &Path) -> Result<PrivateKey> {
        Self::from_pem(&read_key_file(path)?, path)
    }

    /// Parse a PEM private key; `origin` names it in errors.
    pub fn from_pem(pem_text: &[u8], origin: &Path) -> Result<PrivateKey> {
        let bad = |problem| Error::Key {
            path: origin.to_path_buf(),
            problem,
        };
        let (label, der) = first_block(pem_text).map_err(bad)?;
        let secret = match label.as_str() {
            "PRIVATE KEY" => {
                let info = PrivateKeyInfo::try_from(der.as_slice())
                    .map_err(|e| bad(malformed(&label, e)))?;
                check_algorithm(info.algorithm.oid, info.algorithm.parameters_oid().ok())
                    .map_err(bad)?;
                p256::SecretKey::from_pkcs8_der(&der).map_err(|e| bad(malformed(&label, e)))?
            }
            "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(&der).map_err(|_| {
                bad(KeyProblem::Malformed {
                    label: label.clone(),
                    detail: "not a P-256 SEC1 key; ferry signs with ECDSA P-256 only".into(),
                })
            })?,
            "RSA PRIVATE KEY" => return Err(bad(unsupported("RSA"))),
            l if l.contains("ENCRYPTED") => return Err(bad(KeyProblem::Encrypted { label })),
            "PUBLIC KEY" | "RSA PUBLIC KEY" => return Err(bad(KeyProblem::PublicGiven)),
            "CERTIFICATE" => return Err(bad(KeyProblem::Certificate)),
            _ => return Err(bad(KeyProblem::UnknownLabel { label })),
        };
        let key = SigningKey::from(secret);
        let public = PublicKey::from_key(*key.verifying_key(), origin);
        Ok(PrivateKey { key, public })
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Sign a message whose sha256 is `sha256`: an ASN.1 DER ECDSA P-256
    /// signature (deterministic, RFC 6979), as `openssl dgst -sha256 -sign`
    /// makes over the message itself.
    pub fn sign_prehash(&self, sha256: &[u8; 32]) -> Vec<u8> {
        let signature: Signature = self
            .key
            .sign_prehash(sha256)
            .expect("signing a 32-byte prehash with P-256 cannot fail");
        signature.to_der().as_bytes().to_vec()
    }
}

fn read_key_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let read_err = |source| Error::ReadKey {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(Error::Key {
            path: path.to_path_buf(),
            problem: KeyProblem::NotPem {
                detail: format!("larger than {MAX_KEY_FILE} bytes"),
            },
        });
    }
    Ok(bytes)
}

fn is_private_label(label: &str) -> bool {
    label.contains("PRIVATE KEY")
}

fn unsupported(kind: &str) -> KeyProblem {
    KeyProblem::Unsupported { kind: kind.into() }
}

fn malformed(label: &str, e: impl fmt::Display) -> KeyProblem {
    KeyProblem::Malformed {
        label: label.into(),
        detail: e.to_string(),
    }
}

/// Refuse every algorithm but ECDSA on P-256, naming what was found.
fn check_algorithm(
    oid: ObjectIdentifier,
    curve: Option<ObjectIdentifier>,
) -> Result<(), KeyProblem> {
    let kind = match oid.to_string().as_str() {
        "1.2.840.10045.2.1" => {
            debug_assert_eq!(oid, ID_EC_PUBLIC_KEY);
            match curve {
                Some(c) if c == P256 => return Ok(()),
                Some(c) => match c.to_string().as_str() {
                    "1.3.132.0.34" => "ECDSA P-384".to_string(),
                    "1.3.132.0.35" => "ECDSA P-521".to_string(),
                    "1.3.132.0.10" => "ECDSA secp256k1".to_string(),
                    other => format!("ECDSA on curve {other}"),
                },
                None => "ECDSA with explicit curve parameters".to_string(),
            }
        }
        "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => "RSA".to_string(),
        "1.3.101.112" => "Ed25519".to_string(),
        "1.3.101.113" => "Ed448".to_string(),
        "1.2.840.10040.4.1" => "DSA".to_string(),
        other => format!("algorithm {other}"),
    };
    Err(KeyProblem::Unsupported { kind })
}

/// The first PEM block of `text` that is not `EC PARAMETERS` (which
/// `openssl ecparam -genkey` writes before the key): its label and DER.
fn first_block(text: &[u8]) -> Result<(String, Vec<u8>), KeyProblem> {
    let text = std::str::from_utf8(text).map_err(|_| KeyProblem::NotPem {
        detail: "not text".into(),
    })?;
    let mut rest = text;
    loop {
        let Some(start) = rest.find("-----BEGIN ") else {
            return Err(KeyProblem::NotPem {
                detail: "no -----BEGIN line".into(),
            });
        };
        let block = &rest[start..];
        let label_end = block[11..].find("-----").map(|i| i + 11);
        let Some(label_end) = label_end else {
            return Err(KeyProblem::NotPem {
                detail: "unterminated -----BEGIN line".into(),
            });
        };
        let label = block[11..label_end].to_string();
        let end_marker = format!("-----END {label}-----");
        let Some(end) = block.find(&end_marker) else {
            return Err(KeyProblem::NotPem {
                detail: format!("no {end_marker} line (truncated?)"),
            });
        };
        let whole = &block[..end + end_marker.len()];
        rest = &block[end + end_marker.len()..];
        if label == "EC PARAMETERS" {
            continue;
        }
        let (decoded_label, der) =
            pem::decode_vec(whole.as_bytes()).map_err(|e| KeyProblem::Malformed {
                label: label.clone(),
                detail: format!("bad PEM encoding: {e}"),
            })?;
        return Ok((decoded_label.to_string(), der));
    }
}
