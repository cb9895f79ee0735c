//! What a signature check needs, gathered from a bundle or from what a
//! caller fetched: named images, the signature manifests beside them, and
//! their payloads.

use std::collections::BTreeMap;

use ferry_oci::manifest::{ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME};
use ferry_oci::{Descriptor, Digest, LayoutArchive, Manifest, Platform};

use crate::cosign::{
    is_cosign_tag, is_signature_manifest, signature_tag_subject, SIMPLE_SIGNING_MEDIA_TYPE,
};
use crate::error::{Error, Result};

/// The largest simple-signing payload read (they are a few hundred bytes).
pub const MAX_PAYLOAD_SIZE: u64 = 1 << 20;

/// A named image whose signatures are checked.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    pub digest: Digest,
    /// Platform children carried (indexes only).
    pub children: Vec<(Option<Platform>, Digest)>,
}

/// A cosign signature manifest: its digest and payload layers.
#[derive(Debug, Clone)]
pub(crate) struct SignatureManifest {
    pub digest: Digest,
    pub layers: Vec<Descriptor>,
}

/// Named images, the cosign signatures found beside them (by subject
/// digest) and the payloads of those signatures.
///
/// Built from a bundle with [`from_archive`](Self::from_archive), or piece
/// by piece ([`add_named`](Self::add_named),
/// [`add_referrer`](Self::add_referrer), then
/// [`add_payload`](Self::add_payload) for each of
/// [`payloads_needed`](Self::payloads_needed)) by a caller that fetched
/// the manifests itself.
#[derive(Debug, Clone, Default)]
pub struct SignedGraph {
    pub(crate) images: BTreeMap<String, Root>,
    pub(crate) signatures: BTreeMap<Digest, Vec<SignatureManifest>>,
    pub(crate) payloads: BTreeMap<Digest, Result<Vec<u8>, String>>,
}

impl SignedGraph {
    /// An empty graph.
    pub fn new() -> SignedGraph {
        SignedGraph::default()
    }

    /// A manifest carried under `name`. A cosign `sha256-<hex>.sig` tag is
    /// recorded as a signature of that digest; other cosign tags (`.att`,
    /// `.sbom`) and referrers (manifests with a subject) need no signature;
    /// anything else is an image to check, with the platform children of an
    /// index for which `carried` is true.
    pub fn add_named(
        &mut self,
        name: &str,
        manifest: &Manifest,
        carried: impl Fn(&Digest) -> bool,
    ) {
        if is_cosign_tag(name) {
            if let Some(subject) = signature_tag_subject(name) {
                self.add_signature(subject, manifest);
            }
            return;
        }
        if manifest.subject().is_some() {
            self.add_referrer(manifest);
            return;
        }
        let children = manifest
            .children()
            .iter()
            .filter(|c| carried(&c.digest))
            .map(|c| (c.platform.clone(), c.digest.clone()))
            .collect();
        self.images.insert(
            name.to_string(),
            Root {
                digest: manifest.digest().clone(),
                children,
            },
        );
    }

    /// A referrer found without a name: a cosign signature when it has a
    /// subject and a simple-signing layer; anything else is ignored.
    pub fn add_referrer(&mut self, manifest: &Manifest) {
        if let Some(subject) = manifest.subject() {
            if is_signature_manifest(manifest) {
                self.add_signature(subject.digest.clone(), manifest);
            }
        }
    }

    fn add_signature(&mut self, subject: Digest, manifest: &Manifest) {
        let list = self.signatures.entry(subject).or_default();
        if list.iter().any(|s| &s.digest == manifest.digest()) {
            return;
        }
        list.push(SignatureManifest {
            digest: manifest.digest().clone(),
            layers: manifest
                .layers()
                .iter()
                .filter(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
                .cloned()
                .collect(),
        });
    }

    /// The payload blobs not yet given, sorted.
    pub fn payloads_needed(&self) -> Vec<Digest> {
        let mut needed: Vec<Digest> = self
            .signatures
            .values()
            .flatten()
            .flat_map(|s| &s.layers)
            .map(|l| l.digest.clone())
            .filter(|d| !self.payloads.contains_key(d))
            .collect();
        needed.sort();
        needed.dedup();
        needed
    }

    /// A payload's bytes, or why they could not be had (checked against the
    /// digest later).
    pub fn add_payload(&mut self, digest: Digest, bytes: Result<Vec<u8>, String>) {
        self.payloads.insert(digest, bytes);
    }

    /// The signature manifests found for `subject`, by digest.
    pub fn signatures_of(&self, subject: &Digest) -> Vec<&Digest> {
        self.signatures
            .get(subject)
            .map(|list| list.iter().map(|s| &s.digest).collect())
            .unwrap_or_default()
    }

    /// Gather everything from an opened bundle: every `index.json` entry
    /// (named by `org.opencontainers.image.ref.name` or
    /// `io.containerd.image.name`) and every payload, read and bounded by
    /// [`MAX_PAYLOAD_SIZE`].
    pub fn from_archive(archive: &LayoutArchive) -> Result<SignedGraph> {
        let mut graph = SignedGraph::new();
        for entry in archive.index() {
            let manifest = archive
                .manifest(&entry.digest, Some(&entry.media_type))
                .map_err(|source| Error::Bundle {
                    entry: entry.digest.to_string(),
                    source,
                })?;
            let name = entry
                .annotation(ANNOTATION_CONTAINERD_NAME)
                .or_else(|| entry.annotation(ANNOTATION_REF_NAME));
            match name {
                Some(name) => graph.add_named(name, &manifest, |d| archive.blob(d).is_some()),
                None => graph.add_referrer(&manifest),
            }
        }
        for digest in graph.payloads_needed() {
            let bytes = archive
                .read_blob(&digest, MAX_PAYLOAD_SIZE)
                .map_err(|e| match e {
                    ferry_oci::Error::BlobNotFound { .. } => "not in the bundle".to_string(),
                    other => other.to_string(),
                });
            graph.add_payload(digest, bytes);
        }
        Ok(graph)
    }
}
