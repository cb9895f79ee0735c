//! Checking image signatures: per image, per platform child, per signature,
//! what holds and why the rest does not.

use std::fmt;

use ferry_oci::{Descriptor, Digest, DigestHasher};
use serde::Serialize;

use crate::cosign::parse_payload;
use crate::graph::{SignatureManifest, SignedGraph};
use crate::trust::{Keyring, Refused, Signer};

/// The outcome of checking one signature (one payload layer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// The signature verifies, and its payload names this digest.
    Holds {
        /// Who signed.
        signer: Signer,
        /// The `docker-reference` the payload names (reported, not
        /// required: relocation changes names).
        docker_reference: Option<String>,
    },
    /// A well-formed signature that none of the given keys made.
    WrongKey {
        /// The keys tried.
        keys: String,
    },
    /// A signature by a given key over a payload for another image.
    OtherDigest {
        /// The `docker-manifest-digest` the payload claims.
        claimed: String,
    },
    /// The signature or its payload is broken.
    Broken {
        /// What is wrong.
        detail: String,
    },
}

impl Outcome {
    /// Whether the signature holds.
    pub fn holds(&self) -> bool {
        matches!(self, Outcome::Holds { .. })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Holds {
                signer,
                docker_reference,
            } => {
                write!(f, "signed by {signer}")?;
                if let Some(r) = docker_reference {
                    write!(f, " as {r}")?;
                }
                Ok(())
            }
            Outcome::WrongKey { keys } => {
                write!(f, "wrong key: made by none of the keys given ({keys})")
            }
            Outcome::OtherDigest { claimed } => write!(
                f,
                "payload for another digest: it signs {claimed} (a signature moved from another image)"
            ),
            Outcome::Broken { detail } => write!(f, "broken signature: {detail}"),
        }
    }
}

/// One signature checked.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureCheck {
    /// The signature manifest.
    pub signature: Digest,
    /// The payload layer (absent when the manifest has none).
    pub payload: Option<Digest>,
    /// What the check found.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The signatures of one platform child of an index.
#[derive(Debug, Clone, Serialize)]
pub struct ChildSignatures {
    /// The child's platform.
    pub platform: Option<String>,
    /// The child's manifest digest.
    pub digest: Digest,
    /// Whether a signature of its own holds.
    pub ok: bool,
    /// Its own signatures.
    pub signatures: Vec<SignatureCheck>,
}

/// The signatures of one named image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageSignatures {
    /// The reference.
    pub reference: String,
    /// Its manifest digest.
    pub digest: Digest,
    /// Whether a signature of this digest holds (for an index, this covers
    /// its platform children).
    pub ok: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its signatures.
    pub signatures: Vec<SignatureCheck>,
    /// Platform children that carry signatures of their own.
    pub children: Vec<ChildSignatures>,
}

impl ImageSignatures {
    /// Who signed the image itself (signatures that hold).
    pub fn signers(&self) -> impl Iterator<Item = &Outcome> {
        self.signatures
            .iter()
            .map(|s| &s.outcome)
            .filter(|o| o.holds())
    }
}

/// Every named image's signatures.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureReport {
    /// Whether every image has a signature that holds.
    pub ok: bool,
    /// The keys checked against.
    pub keys: String,
    /// Per image, sorted by reference.
    pub images: Vec<ImageSignatures>,
}

impl SignatureReport {
    /// The images without a signature that holds.
    pub fn failures(&self) -> impl Iterator<Item = &ImageSignatures> {
        self.images.iter().filter(|i| !i.ok)
    }
}

impl SignedGraph {
    /// Check every named image against `keyring`: it holds when at least
    /// one of its signatures verifies with a key of the keyring and its
    /// payload names the image's digest. Signatures of platform children
    /// are checked and listed too; a signature on an index covers them.
    pub fn check(&self, keyring: &Keyring) -> SignatureReport {
        let images: Vec<ImageSignatures> = self
            .images
            .iter()
            .map(|(name, root)| {
                let signatures = self.check_subject(&root.digest, keyring);
                let ok = signatures.iter().any(|s| s.outcome.holds());
                let reason = (!ok).then(|| reason(&root.digest, &signatures));
                let children = root
                    .children
                    .iter()
                    .filter(|(_, d)| self.signatures.contains_key(d))
                    .map(|(platform, digest)| {
                        let signatures = self.check_subject(digest, keyring);
                        ChildSignatures {
                            platform: platform.as_ref().map(ToString::to_string),
                            digest: digest.clone(),
                            ok: signatures.iter().any(|s| s.outcome.holds()),
                            signatures,
                        }
                    })
                    .collect();
                ImageSignatures {
                    reference: name.clone(),
                    digest: root.digest.clone(),
                    ok,
                    reason,
                    signatures,
                    children,
                }
            })
            .collect();
        SignatureReport {
            ok: images.iter().all(|i| i.ok),
            keys: keyring.describe(),
            images,
        }
    }

    fn check_subject(&self, subject: &Digest, keyring: &Keyring) -> Vec<SignatureCheck> {
        let Some(list) = self.signatures.get(subject) else {
            return Vec::new();
        };
        let mut checks = Vec::new();
        for sig in list {
            if sig.layers.is_empty() {
                checks.push(SignatureCheck {
                    signature: sig.digest.clone(),
                    payload: None,
                    outcome: Outcome::Broken {
                        detail: "the signature manifest has no simple-signing payload layer".into(),
                    },
                });
            }
            for layer in &sig.layers {
                checks.push(SignatureCheck {
                    signature: sig.digest.clone(),
                    payload: Some(layer.digest.clone()),
                    outcome: self.check_layer(subject, sig, layer, keyring),
                });
            }
        }
        checks
    }

    fn check_layer(
        &self,
        subject: &Digest,
        _sig: &SignatureManifest,
        layer: &Descriptor,
        keyring: &Keyring,
    ) -> Outcome {
        let broken = |detail: String| Outcome::Broken { detail };
        let payload = match self.payloads.get(&layer.digest) {
            None => return broken(format!("payload {} was not read", layer.digest)),
            Some(Err(e)) => return broken(format!("payload {}: {e}", layer.digest)),
            Some(Ok(bytes)) => bytes,
        };
        let mut hasher = DigestHasher::for_digest(&layer.digest);
        hasher.update(payload);
        if hasher.verify(&layer.digest, layer.size).is_err() {
            return broken(format!(
                "payload does not match its layer digest {} ({} bytes)",
                layer.digest, layer.size
            ));
        }
        let mut signer = None;
        let mut first_broken = None;
        for source in keyring.sources() {
            match source.check(layer, payload) {
                Ok(s) => {
                    signer = Some(s);
                    break;
                }
                Err(Refused::Broken(detail)) => {
                    first_broken.get_or_insert(detail);
                }
                Err(Refused::OtherSigner) => {}
            }
        }
        let Some(signer) = signer else {
            return match first_broken {
                Some(detail) => broken(detail),
                None => Outcome::WrongKey {
                    keys: keyring.describe(),
                },
            };
        };
        let claims = match parse_payload(payload) {
            Ok(p) => p,
            Err(detail) => return broken(detail),
        };
        if claims.manifest_digest != subject.to_string() {
            return Outcome::OtherDigest {
                claimed: claims.manifest_digest,
            };
        }
        Outcome::Holds {
            signer,
            docker_reference: claims.docker_reference,
        }
    }
}

/// Why an image has no signature that holds.
fn reason(digest: &Digest, checks: &[SignatureCheck]) -> String {
    if checks.is_empty() {
        return format!(
            "no signature: no {}.sig tag and no cosign signature referrer of {digest} \
             (was it packed with --no-referrers, or never signed?)",
            digest.tag_form()
        );
    }
    let each: Vec<String> = checks
        .iter()
        .map(|c| format!("signature {}: {}", c.signature, c.outcome))
        .collect();
    format!("no signature holds; {}", each.join("; "))
}
