//! The report model: what a bundle holds, for people and for scripts. The
//! JSON form is documented field by field in `docs/inspect-json.md`.

use std::collections::BTreeSet;

use ferry_oci::Digest;
use serde::Serialize;

use crate::problem::Problem;

/// What a bundle holds.
#[derive(Debug, Clone, Serialize)]
pub struct BundleReport {
    /// The archive's path as given.
    pub archive: String,
    /// `none`, `gzip` or `zstd`.
    pub compression: String,
    /// The `imageLayoutVersion` of `oci-layout`.
    pub layout_version: String,
    /// One entry per descriptor of `index.json` that is not a referrer, in
    /// `index.json` order.
    pub references: Vec<ReferenceReport>,
    /// Counts over the whole archive.
    pub totals: Totals,
    /// Blobs in the archive that nothing reachable from `index.json` points at.
    pub unreferenced_blobs: Vec<UnreferencedBlob>,
    /// For a delta (`ferry pack --since`): what it leaves to its bases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaReport>,
}

/// What a delta leaves out: the target it is unpacked into must hold these.
#[derive(Debug, Clone, Serialize)]
pub struct DeltaReport {
    /// The bases it was made against (kind, name, sha256).
    pub bases: Vec<ferry_oci::Base>,
    /// Blobs the target must already hold.
    pub blobs_expected: usize,
    /// Their bytes.
    pub bytes_expected: u64,
}

/// One named (or unnamed, non-referrer) entry of `index.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ReferenceReport {
    /// The reference it is carried under: `io.containerd.image.name`, else
    /// `org.opencontainers.image.ref.name`; `None` for an unnamed entry.
    pub reference: Option<String>,
    /// The manifest (distribution) digest: what registries show.
    pub digest: Digest,
    /// The media type of the descriptor in `index.json`.
    pub media_type: String,
    /// The manifest's size in bytes.
    pub size: u64,
    /// Index, image or artifact.
    pub kind: ManifestKind,
    /// For an index: the platforms whose manifests are in the archive.
    pub platforms_carried: Vec<String>,
    /// For a sparse index: the platforms it lists whose manifests were
    /// deliberately left out.
    pub platforms_not_carried: Vec<String>,
    /// Every image (or artifact) manifest carried below this reference.
    pub images: Vec<ImageReport>,
    /// Referrers whose subject is this manifest or one of its children.
    pub referrers: Vec<ReferrerReport>,
    /// Bytes of every manifest and blob carried for this reference, each
    /// distinct blob counted once (referrers not included).
    pub total_size: u64,
    /// Digests of every manifest in this reference's graph (for matching
    /// referrers; not serialized).
    #[serde(skip)]
    pub(crate) manifests: BTreeSet<Digest>,
}

/// What kind of manifest a reference names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ManifestKind {
    /// An OCI image index or Docker manifest list.
    Index,
    /// An image manifest (OCI or Docker schema 2) with an image config.
    Image,
    /// A manifest of something else (a Helm chart, a signature, an SBOM).
    Artifact,
    /// The manifest is missing or unreadable.
    Unknown,
}

/// One image or artifact manifest carried.
#[derive(Debug, Clone, Serialize)]
pub struct ImageReport {
    /// `os/arch[/variant]`, from the index entry or, for a single image,
    /// from its config; `None` when neither says.
    pub platform: Option<String>,
    /// The manifest's digest.
    pub manifest_digest: Digest,
    /// The manifest's media type.
    pub media_type: String,
    /// The config digest: the image ID engines (docker, podman, cri-o) show.
    pub config_digest: Option<Digest>,
    /// The config's media type.
    pub config_media_type: Option<String>,
    /// The artifact type, for a manifest that is not an image.
    pub artifact_type: Option<String>,
    /// How many layers (or artifact blobs).
    pub layer_count: usize,
    /// Bytes of the manifest, config and layers, as stored (compressed).
    pub size: u64,
}

/// A manifest that refers to another (a signature, an SBOM, an attestation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReferrerReport {
    /// The referrer manifest's digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its artifact type, when it declares one.
    pub artifact_type: Option<String>,
    /// The digest of the manifest it refers to.
    pub subject: Digest,
    /// How it is attached.
    pub source: ReferrerSource,
    /// For a tag-attached referrer, the reference it is carried under.
    pub reference: Option<String>,
}

/// How a referrer is attached to its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReferrerSource {
    /// A manifest whose `subject` field names the digest (OCI 1.1).
    Subject,
    /// A cosign-style tag `sha256-<hex>.sig` (`.att`, `.sbom`).
    Tag,
}

/// Counts over the whole archive.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Named references in `index.json`.
    pub references: u64,
    /// Distinct manifests and indexes reached from `index.json`.
    pub manifests: u64,
    /// Blob entries in the archive.
    pub blobs: u64,
    /// Bytes of every blob entry in the archive.
    pub bytes: u64,
}

/// A blob in the archive that nothing points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreferencedBlob {
    /// Its digest (from its entry name).
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

/// What [`inspect`](crate::inspect) returns: the report, and what the walk
/// found wrong without hashing layers.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The report.
    #[serde(flatten)]
    pub report: BundleReport,
    /// Findings of the archive scan and the walk of `index.json`
    /// (missing blobs, wrong sizes, unparseable manifests, unreferenced blobs).
    pub problems: Vec<Problem>,
}
