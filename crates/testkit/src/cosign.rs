//! Real cosign-format signatures for tests, made with the openssl CLI (not
//! with the code under test): ECDSA P-256 key pairs, simple-signing
//! payloads signed with `openssl dgst -sha256 -sign`, pushed as a
//! `sha256-<hex>.sig` tag beside the image as `cosign sign --key` does.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::json;

use crate::content::{compact, sha256};
use crate::fixtures::{COSIGN_PAYLOAD, COSIGN_SIGNATURE_ANNOTATION};
use crate::push::Pusher;

/// An ECDSA P-256 key pair made by `openssl genpkey`.
#[derive(Debug, Clone)]
pub struct KeyPair {
    /// The PKCS#8 PEM private key.
    pub private: PathBuf,
    /// The PEM public key (SubjectPublicKeyInfo).
    pub public: PathBuf,
}

impl KeyPair {
    /// Make `dir/NAME.key` and `dir/NAME.pub`.
    pub fn generate(dir: &Path, name: &str) -> KeyPair {
        let private = dir.join(format!("{name}.key"));
        let public = dir.join(format!("{name}.pub"));
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            path_str(&private),
        ]);
        openssl(&[
            "pkey",
            "-in",
            path_str(&private),
            "-pubout",
            "-out",
            path_str(&public),
        ]);
        KeyPair { private, public }
    }

    /// The base64 DER ECDSA signature of `payload`, by openssl.
    pub fn sign(&self, payload: &[u8]) -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        let input = dir.path().join("payload");
        let output = dir.path().join("sig");
        std::fs::write(&input, payload).expect("write payload");
        openssl(&[
            "dgst",
            "-sha256",
            "-sign",
            path_str(&self.private),
            "-out",
            path_str(&output),
            path_str(&input),
        ]);
        let der = std::fs::read(&output).expect("read signature");
        base64::engine::general_purpose::STANDARD.encode(der)
    }
}

/// The simple-signing payload cosign signs for `digest`.
pub fn simple_signing_payload(docker_reference: &str, digest: &str) -> Vec<u8> {
    compact(&json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": null,
    }))
}

/// One payload layer of a signature manifest: the payload bytes and the
/// base64 signature annotation (any string, to make broken ones).
#[derive(Debug, Clone)]
pub struct SignedPayload {
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// The `dev.cosignproject.cosign/signature` annotation.
    pub signature: String,
}

impl SignedPayload {
    /// `payload` signed with `key`.
    pub fn new(key: &KeyPair, payload: Vec<u8>) -> SignedPayload {
        SignedPayload {
            signature: key.sign(&payload),
            payload,
        }
    }

    /// The cosign payload for `digest` in `repo`, signed with `key`.
    pub fn for_digest(key: &KeyPair, repo: &str, digest: &str) -> SignedPayload {
        Self::new(key, simple_signing_payload(repo, digest))
    }
}

/// Push a cosign signature manifest with `layers` into `repo`, tagged
/// `sha256-<hex of subject>.sig` (replacing any there). Returns the
/// signature manifest's digest.
pub fn push_signature(
    pusher: &Pusher,
    repo: &str,
    subject: &str,
    layers: &[SignedPayload],
) -> String {
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in layers {
        let digest = pusher.push_blob(repo, &layer.payload);
        diff_ids.push(digest.clone());
        descriptors.push(json!({
            "mediaType": COSIGN_PAYLOAD,
            "size": layer.payload.len(),
            "digest": digest,
            "annotations": {COSIGN_SIGNATURE_ANNOTATION: layer.signature},
        }));
    }
    let config = compact(&json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    }));
    let config_digest = pusher.push_blob(repo, &config);
    let manifest = compact(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": config.len(),
            "digest": config_digest,
        },
        "layers": descriptors,
    }));
    let tag = format!("{}.sig", subject.replacen(':', "-", 1));
    let digest = pusher.push_manifest(
        repo,
        &tag,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    );
    assert_eq!(digest, sha256(&manifest));
    digest
}

/// Push a cosign signature as an OCI referrer of the subject (`subject`
/// field, artifact type `application/vnd.dev.cosign.artifact.sig.v1+json`),
/// by digest, listed in the referrers tag-schema index `sha256-<hex>`
/// (replacing any there). Returns the signature manifest's digest.
pub fn push_signature_referrer(
    pusher: &Pusher,
    repo: &str,
    subject: (&str, &str, u64),
    layers: &[SignedPayload],
) -> String {
    let (subject_media_type, subject_digest, subject_size) = subject;
    let empty = b"{}";
    let empty_digest = pusher.push_blob(repo, empty);
    let descriptors: Vec<_> = layers
        .iter()
        .map(|layer| {
            json!({
                "mediaType": COSIGN_PAYLOAD,
                "size": layer.payload.len(),
                "digest": pusher.push_blob(repo, &layer.payload),
                "annotations": {COSIGN_SIGNATURE_ANNOTATION: layer.signature},
            })
        })
        .collect();
    let artifact_type = "application/vnd.dev.cosign.artifact.sig.v1+json";
    let manifest = compact(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": artifact_type,
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "size": empty.len(),
            "digest": empty_digest,
        },
        "layers": descriptors,
        "subject": {"mediaType": subject_media_type, "digest": subject_digest, "size": subject_size},
    }));
    let oci_manifest = "application/vnd.oci.image.manifest.v1+json";
    let digest = sha256(&manifest);
    pusher.push_manifest(repo, &digest, oci_manifest, &manifest);
    let index = compact(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": oci_manifest,
            "digest": digest,
            "size": manifest.len(),
            "artifactType": artifact_type,
        }],
    }));
    pusher.push_manifest(
        repo,
        &subject_digest.replacen(':', "-", 1),
        "application/vnd.oci.image.index.v1+json",
        &index,
    );
    digest
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
