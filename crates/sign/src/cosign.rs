//! The cosign signature format: where signatures live beside an image, and
//! the simple-signing payload they sign.

use ferry_oci::graph::cosign_subject;
use ferry_oci::{Digest, Manifest};
use serde::Deserialize;

/// The media type of a cosign simple-signing payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 DER ECDSA signature of the
/// payload.
pub const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The artifact type cosign gives signatures stored as OCI referrers.
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// The subject digest a cosign signature tag names: `sha256-<hex>.sig` ->
/// `sha256:<hex>`. The tag may be given bare or as the end of a reference
/// (`registry/repo:sha256-<hex>.sig`).
pub fn signature_tag_subject(tag: &str) -> Option<Digest> {
    cosign_subject(tag).filter(|_| tag.ends_with(".sig"))
}

/// Whether a name is a cosign-style tag beside a digest (`.sig`, `.att`,
/// `.sbom`): signatures, attestations and SBOMs need no signature
/// themselves.
pub(crate) fn is_cosign_tag(name: &str) -> bool {
    cosign_subject(name).is_some()
}

/// Whether a manifest is a cosign signature: an image manifest with at
/// least one simple-signing payload layer.
pub(crate) fn is_signature_manifest(manifest: &Manifest) -> bool {
    manifest
        .layers()
        .iter()
        .any(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
}

/// What a simple-signing payload claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Payload {
    /// `critical.image.docker-manifest-digest`.
    pub manifest_digest: String,
    /// `critical.identity.docker-reference`.
    pub docker_reference: Option<String>,
}

#[derive(Deserialize)]
struct RawPayload {
    critical: RawCritical,
}

#[derive(Deserialize)]
struct RawCritical {
    #[serde(default)]
    identity: Option<RawIdentity>,
    image: RawImage,
}

#[derive(Deserialize)]
struct RawIdentity {
    #[serde(rename = "docker-reference", default)]
    docker_reference: Option<String>,
}

#[derive(Deserialize)]
struct RawImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// Parse a simple-signing payload; the error says what is wrong.
pub(crate) fn parse_payload(bytes: &[u8]) -> Result<Payload, String> {
    let raw: RawPayload = serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "payload is not simple-signing JSON with critical.image.docker-manifest-digest ({e})"
        )
    })?;
    Ok(Payload {
        manifest_digest: raw.critical.image.docker_manifest_digest,
        docker_reference: raw.critical.identity.and_then(|i| i.docker_reference),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_subject() {
        let hex = "a".repeat(64);
        let want: Digest = format!("sha256:{hex}").parse().unwrap();
        assert_eq!(
            signature_tag_subject(&format!("sha256-{hex}.sig")),
            Some(want.clone())
        );
        assert_eq!(
            signature_tag_subject(&format!("reg:5000/a/b:sha256-{hex}.sig")),
            Some(want)
        );
        assert_eq!(signature_tag_subject(&format!("sha256-{hex}.att")), None);
        assert_eq!(signature_tag_subject("sha256-short.sig"), None);
        assert!(is_cosign_tag(&format!("r/x:sha256-{hex}.sbom")));
        assert!(!is_cosign_tag("r/x:1.0"));
    }

    #[test]
    fn payloads() {
        let p = parse_payload(
            br#"{"critical":{"identity":{"docker-reference":"r/x"},"image":{"docker-manifest-digest":"sha256:00"},"type":"cosign container image signature"},"optional":null}"#,
        )
        .unwrap();
        assert_eq!(p.manifest_digest, "sha256:00");
        assert_eq!(p.docker_reference.as_deref(), Some("r/x"));
        assert!(parse_payload(b"not json")
            .unwrap_err()
            .contains("not simple-signing JSON"));
        assert!(parse_payload(br#"{"critical":{}}"#).is_err());
    }
}
