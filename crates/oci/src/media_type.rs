//! Media types ferry recognises, and how it classifies them.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI artifact manifest (image-spec 1.1 release candidates; still served by some registries).
pub const OCI_ARTIFACT_MANIFEST: &str = "application/vnd.oci.artifact.manifest.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The OCI empty descriptor's media type (`{}`).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// OCI image layout index file media type marker used in `oci-layout`.
pub const OCI_LAYOUT_VERSION: &str = "1.0.0";

/// Every manifest media type ferry asks registries for, in preference order.
pub const MANIFEST_ACCEPT: &[&str] = &[
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
    OCI_ARTIFACT_MANIFEST,
];

/// Whether `media_type` names an index (OCI index or Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Whether `media_type` names a single manifest (image or artifact).
pub fn is_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST
        || media_type == DOCKER_MANIFEST
        || media_type == OCI_ARTIFACT_MANIFEST
}

/// Whether `media_type` names an index or a manifest: something a registry
/// serves from `/manifests/` rather than `/blobs/`.
pub fn is_manifest_like(media_type: &str) -> bool {
    is_index(media_type) || is_manifest(media_type)
}
