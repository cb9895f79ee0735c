//! A parsed view of manifests and indexes, kept beside the exact bytes.
//!
//! ferry never serializes a manifest back: the bytes a registry served are the
//! bytes it stores and pushes, so digests hold. [`Manifest`] pairs those bytes
//! with a read-only view used to walk the graph.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::digest::{Algorithm, Digest, DigestHasher};
use crate::media_type;
use crate::{Error, Result};

/// Annotation carrying a reference name in `index.json` (OCI).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation carrying the full image name in `index.json` (containerd).
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes of the referenced content.
    pub size: u64,
    /// Platform of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Artifact type of a referrer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Alternative download locations (foreign layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

impl Descriptor {
    /// A descriptor with only the three required fields.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            platform: None,
            artifact_type: None,
            annotations: None,
            urls: None,
        }
    }

    /// One annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// The platform an image runs on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// Operating system (`linux`, `windows`, ...).
    pub os: String,
    /// OS version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// CPU variant (`v7`, `v8`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Parse `os/arch[/variant]` as given on the command line.
    pub fn parse(input: &str) -> Result<Platform> {
        let parts: Vec<&str> = input.split('/').collect();
        let invalid = || Error::InvalidPlatform {
            input: input.to_string(),
        };
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(invalid());
        }
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: parts[1].to_ascii_lowercase(),
            os_version: None,
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }

    /// Whether an image of platform `self` satisfies a request for `wanted`.
    ///
    /// A request without a variant matches every variant; `arm64` without a
    /// variant and `arm64/v8` are the same platform.
    pub fn matches(&self, wanted: &Platform) -> bool {
        if self.os != wanted.os || self.architecture != wanted.architecture {
            return false;
        }
        match &wanted.variant {
            None => true,
            Some(v) => {
                let mine = self
                    .variant
                    .as_deref()
                    .or(match self.architecture.as_str() {
                        "arm64" => Some("v8"),
                        _ => None,
                    });
                mine == Some(v.as_str())
            }
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// What a manifest or index points at.
// One view per manifest, built once and matched often: boxing the image
// variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestView {
    /// An OCI index or Docker manifest list.
    Index {
        /// The child manifests.
        manifests: Vec<Descriptor>,
        /// The manifest this index refers to, when it is a referrer.
        subject: Option<Descriptor>,
    },
    /// An image or artifact manifest.
    Image {
        /// The config blob (absent in OCI artifact manifests).
        config: Option<Descriptor>,
        /// Layers (`blobs` in an OCI artifact manifest).
        layers: Vec<Descriptor>,
        /// The manifest this one refers to, when it is a referrer.
        subject: Option<Descriptor>,
        /// The artifact type (explicit, else the config media type for
        /// non-image configs).
        artifact_type: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    blobs: Option<Vec<Descriptor>>,
    #[serde(default)]
    subject: Option<Descriptor>,
    #[serde(default)]
    artifact_type: Option<String>,
}

/// A manifest or index: the exact bytes and a parsed view of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    bytes: Vec<u8>,
    digest: Digest,
    media_type: String,
    view: ManifestView,
}

impl Manifest {
    /// Parse `bytes`, served with the content type `served_media_type` (when
    /// known). The media type recorded is the one inside the document when it
    /// has one, else the served one, else inferred from the shape.
    ///
    /// The digest recorded is the sha256 of the bytes; for a manifest named
    /// under another algorithm, use [`Manifest::parse_as`].
    pub fn parse(bytes: Vec<u8>, served_media_type: Option<&str>) -> Result<Manifest> {
        Manifest::parse_as(bytes, served_media_type, Algorithm::Sha256)
    }

    /// [`Manifest::parse`], with the digest computed under `algorithm`: a
    /// manifest a descriptor names by `sha512:` is pushed and checked under
    /// that digest, not under a sha256 no one asked for.
    pub fn parse_as(
        bytes: Vec<u8>,
        served_media_type: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<Manifest> {
        let mut hasher = DigestHasher::new(algorithm);
        hasher.update(&bytes);
        let digest = hasher.finish();
        let raw: RawManifest =
            serde_json::from_slice(&bytes).map_err(|source| Error::ManifestParse {
                digest: digest.clone(),
                source,
            })?;
        if raw.schema_version == Some(1) {
            return Err(Error::UnsupportedMediaType {
                digest,
                media_type: "application/vnd.docker.distribution.manifest.v1+json (schema 1)"
                    .to_string(),
            });
        }
        let served = served_media_type
            .map(|m| m.split(';').next().unwrap_or(m).trim())
            .filter(|m| media_type::is_manifest_like(m));
        let media_type = match (raw.media_type.as_deref(), served) {
            (Some(inner), _) => inner.to_string(),
            (None, Some(served)) => served.to_string(),
            (None, None) if raw.manifests.is_some() => media_type::OCI_INDEX.to_string(),
            (None, None) if raw.blobs.is_some() => media_type::OCI_ARTIFACT_MANIFEST.to_string(),
            (None, None) => media_type::OCI_MANIFEST.to_string(),
        };
        let view = if media_type::is_index(&media_type) {
            ManifestView::Index {
                manifests: raw.manifests.unwrap_or_default(),
                subject: raw.subject,
            }
        } else if media_type::is_manifest(&media_type) {
            let artifact_type = raw.artifact_type.or_else(|| {
                raw.config
                    .as_ref()
                    .map(|c| c.media_type.clone())
                    .filter(|m| m != media_type::OCI_CONFIG && m != media_type::DOCKER_CONFIG)
            });
            ManifestView::Image {
                config: raw.config,
                layers: raw.layers.or(raw.blobs).unwrap_or_default(),
                subject: raw.subject,
                artifact_type,
            }
        } else {
            return Err(Error::UnsupportedMediaType { digest, media_type });
        };
        Ok(Manifest {
            bytes,
            digest,
            media_type,
            view,
        })
    }

    /// The exact bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The exact bytes, owned: the manifest without its parsed view.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The digest of the bytes (sha256 unless parsed with
    /// [`Manifest::parse_as`]).
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The media type.
    pub fn media_type(&self) -> &str {
        &self.media_type
    }

    /// The parsed view.
    pub fn view(&self) -> &ManifestView {
        &self.view
    }

    /// Whether this is an index or manifest list.
    pub fn is_index(&self) -> bool {
        matches!(self.view, ManifestView::Index { .. })
    }

    /// A descriptor pointing at this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.clone(),
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }

    /// The subject of a referrer.
    pub fn subject(&self) -> Option<&Descriptor> {
        match &self.view {
            ManifestView::Index { subject, .. } | ManifestView::Image { subject, .. } => {
                subject.as_ref()
            }
        }
    }

    /// The child manifests of an index (empty for an image).
    pub fn children(&self) -> &[Descriptor] {
        match &self.view {
            ManifestView::Index { manifests, .. } => manifests,
            ManifestView::Image { .. } => &[],
        }
    }

    /// The config descriptor of an image.
    pub fn config(&self) -> Option<&Descriptor> {
        match &self.view {
            ManifestView::Image { config, .. } => config.as_ref(),
            ManifestView::Index { .. } => None,
        }
    }

    /// The layers of an image (empty for an index).
    pub fn layers(&self) -> &[Descriptor] {
        match &self.view {
            ManifestView::Image { layers, .. } => layers,
            ManifestView::Index { .. } => &[],
        }
    }

    /// The blobs (config, then layers) an image needs.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config().into_iter().chain(self.layers())
    }

    /// The artifact type of an image/artifact manifest.
    pub fn artifact_type(&self) -> Option<&str> {
        match &self.view {
            ManifestView::Image { artifact_type, .. } => artifact_type.as_deref(),
            ManifestView::Index { .. } => None,
        }
    }
}

impl AsRef<Manifest> for Manifest {
    fn as_ref(&self) -> &Manifest {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_list_keeping_bytes() {
        let child = Digest::sha256_of(b"child");
        let bytes = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{child}","size":5,"platform":{{"architecture":"arm","os":"linux","variant":"v7"}}}}]}}"#,
            media_type::DOCKER_MANIFEST_LIST,
            media_type::DOCKER_MANIFEST
        )
        .into_bytes();
        let m = Manifest::parse(bytes.clone(), Some("application/json")).unwrap();
        assert_eq!(m.bytes(), &bytes[..]);
        assert_eq!(m.digest(), &Digest::sha256_of(&bytes));
        assert_eq!(m.media_type(), media_type::DOCKER_MANIFEST_LIST);
        assert_eq!(m.children().len(), 1);
        assert_eq!(
            m.children()[0].platform.as_ref().unwrap().to_string(),
            "linux/arm/v7"
        );
    }

    #[test]
    fn media_type_from_server_when_document_has_none() {
        let cfg = Digest::sha256_of(b"{}");
        let bytes = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"{cfg}","size":2}},"layers":[]}}"#
        )
        .into_bytes();
        let m = Manifest::parse(bytes, Some(media_type::OCI_MANIFEST)).unwrap();
        assert_eq!(m.media_type(), media_type::OCI_MANIFEST);
        assert_eq!(
            m.artifact_type(),
            Some("application/vnd.cncf.helm.config.v1+json")
        );
    }

    #[test]
    fn refuses_broken_json_with_digest() {
        let err = Manifest::parse(b"{not json".to_vec(), None).unwrap_err();
        assert!(err.to_string().contains("sha256:"), "{err}");
    }

    #[test]
    fn platform_matching() {
        let want = Platform::parse("linux/arm64").unwrap();
        let have = Platform::parse("linux/arm64/v8").unwrap();
        assert!(have.matches(&want));
        assert!(Platform::parse("linux/arm64").unwrap().matches(&have));
        assert!(!Platform::parse("linux/arm/v7").unwrap().matches(&have));
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//v7").is_err());
    }
}
