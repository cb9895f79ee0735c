//! `diff`: what changed between two bundles, offline — references added,
//! removed and moved (per platform), blobs and bytes added, signatures
//! gained and lost. The JSON form is documented in `docs/diff-json.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ferry_oci::graph::cosign_subject;
use ferry_oci::{Digest, LayoutArchive};
use ferry_sign::SignedGraph;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::problem::Problems;
use crate::report::ReferenceReport;
use crate::walk::walk;

/// The version of the `ferry diff --json` document.
pub const DIFF_VERSION: u32 = 1;

/// One side of a diff.
#[derive(Debug, Clone, Serialize)]
pub struct DiffSide {
    /// The bundle's path as given.
    pub archive: String,
    /// Named references (cosign `.sig/.att/.sbom` tags not counted).
    pub references: usize,
    /// Blob entries.
    pub blobs: u64,
    /// Bytes of blob entries.
    pub bytes: u64,
}

/// A reference only one side has.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReference {
    /// The reference.
    pub reference: String,
    /// Its manifest digest.
    pub digest: Digest,
    /// Its platforms, each with its manifest digest.
    pub platforms: Vec<DiffPlatform>,
    /// Blobs it needs that the other bundle does not hold.
    pub blobs_added: usize,
    /// Their bytes.
    pub bytes_added: u64,
}

/// A reference whose digest changed.
#[derive(Debug, Clone, Serialize)]
pub struct DiffMoved {
    /// The reference.
    pub reference: String,
    /// Its digest in the old bundle.
    pub old_digest: Digest,
    /// Its digest in the new bundle.
    pub new_digest: Digest,
    /// Platform by platform (those that changed, appeared or went away).
    pub platforms: Vec<DiffPlatformChange>,
    /// Blobs the new version needs that the old bundle does not hold.
    pub blobs_added: usize,
    /// Their bytes.
    pub bytes_added: u64,
}

/// One platform of a reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffPlatform {
    /// `os/arch[/variant]`, or `-` when nothing says.
    pub platform: String,
    /// The platform's manifest digest.
    pub digest: Digest,
}

/// How one platform of a moved reference changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffPlatformChange {
    /// `os/arch[/variant]`, or `-`.
    pub platform: String,
    /// `added`, `removed` or `moved`.
    pub change: &'static str,
    /// Its manifest digest in the old bundle.
    pub old_digest: Option<Digest>,
    /// Its manifest digest in the new bundle.
    pub new_digest: Option<Digest>,
}

/// Blob counts between the bundles.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DiffBlobs {
    /// Blobs only the new bundle holds.
    pub added: usize,
    /// Their bytes: what carrying only the difference would cost.
    pub bytes_added: u64,
    /// Blobs only the old bundle holds.
    pub removed: usize,
    /// Their bytes.
    pub bytes_removed: u64,
}

/// A signature gained or lost.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DiffSignature {
    /// The reference whose image (or platform child) it signs.
    pub reference: String,
    /// The signed manifest's digest.
    pub subject: Digest,
    /// The signature manifest's digest.
    pub signature: Digest,
}

/// Signatures gained and lost.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DiffSignatures {
    /// Signatures in the new bundle that the old one lacks.
    pub gained: Vec<DiffSignature>,
    /// Signatures in the old bundle that the new one lacks.
    pub lost: Vec<DiffSignature>,
}

/// What changed from one bundle to another.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// [`DIFF_VERSION`].
    pub diff_version: u32,
    /// The old bundle.
    pub old: DiffSide,
    /// The new bundle.
    pub new: DiffSide,
    /// References only the new bundle has.
    pub added: Vec<DiffReference>,
    /// References only the old bundle has.
    pub removed: Vec<DiffReference>,
    /// References in both, with another digest.
    pub moved: Vec<DiffMoved>,
    /// References in both with the same digest.
    pub unchanged: Vec<String>,
    /// Blobs between the bundles.
    pub blobs: DiffBlobs,
    /// Cosign signatures (`.sig` tags and referrers) gained and lost.
    pub signatures: DiffSignatures,
}

impl DiffReport {
    /// Whether the bundles carry the same references at the same digests
    /// with the same signatures and blobs.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.moved.is_empty()
            && self.blobs.added == 0
            && self.blobs.removed == 0
            && self.signatures.gained.is_empty()
            && self.signatures.lost.is_empty()
    }
}

/// One opened bundle, summarized for diffing.
struct Side {
    archive: LayoutArchive,
    side: DiffSide,
    references: BTreeMap<String, ReferenceReport>,
    signatures: SignedGraph,
}

impl Side {
    fn open(path: &Path) -> Result<Side> {
        let open_err = |source| Error::Open {
            path: path.to_path_buf(),
            source,
        };
        let archive = LayoutArchive::open(path).map_err(open_err)?;
        let mut problems = Problems::default();
        let walked = walk(&archive, path, &mut problems);
        let signatures = SignedGraph::from_archive(&archive).map_err(|e| Error::Signatures {
            path: path.to_path_buf(),
            source: e,
        })?;
        let references: BTreeMap<String, ReferenceReport> = walked
            .report
            .references
            .into_iter()
            .filter_map(|r| {
                let name = r.reference.clone()?;
                cosign_subject(&name).is_none().then_some((name, r))
            })
            .collect();
        let side = DiffSide {
            archive: path.display().to_string(),
            references: references.len(),
            blobs: archive.blobs().count() as u64,
            bytes: archive.blobs().map(|b| b.size).sum(),
        };
        Ok(Side {
            archive,
            side,
            references,
            signatures,
        })
    }

    /// The platforms of a reference: platform -> manifest digest.
    fn platforms(r: &ReferenceReport) -> BTreeMap<String, Digest> {
        r.images
            .iter()
            .map(|i| {
                (
                    i.platform.clone().unwrap_or_else(|| "-".into()),
                    i.manifest_digest.clone(),
                )
            })
            .collect()
    }

    /// Every blob (config, layer) below a reference's images, with sizes.
    fn blobs(&self, r: &ReferenceReport) -> BTreeMap<Digest, u64> {
        let mut out = BTreeMap::new();
        for image in &r.images {
            if let Ok(m) = self.archive.manifest(&image.manifest_digest, None) {
                for b in m.blobs() {
                    out.insert(b.digest.clone(), b.size);
                }
            }
        }
        out
    }

    /// The signature manifests of a reference's image and platform children.
    fn signatures_of(&self, r: &ReferenceReport) -> BTreeSet<(Digest, Digest)> {
        std::iter::once(&r.digest)
            .chain(r.images.iter().map(|i| &i.manifest_digest))
            .flat_map(|subject| {
                self.signatures
                    .signatures_of(subject)
                    .into_iter()
                    .map(move |s| (subject.clone(), s.clone()))
            })
            .collect()
    }

    /// Blobs of `r` (in this bundle) that `other` does not hold.
    fn added_against(&self, r: &ReferenceReport, other: &Side) -> (usize, u64) {
        let blobs = self.blobs(r);
        let new: Vec<u64> = blobs
            .iter()
            .filter(|(d, _)| other.archive.blob(d).is_none())
            .map(|(_, s)| *s)
            .collect();
        (new.len(), new.iter().sum())
    }
}

/// Compare the bundle at `old` with the bundle at `new`, offline. Reads
/// `index.json`, manifests and configs of both (never layer bytes: blobs are
/// compared by digest); hash them with `ferry verify`.
pub fn diff(old: &Path, new: &Path) -> Result<DiffReport> {
    let old = Side::open(old)?;
    let new = Side::open(new)?;
    let mut report = DiffReport {
        diff_version: DIFF_VERSION,
        old: old.side.clone(),
        new: new.side.clone(),
        added: Vec::new(),
        removed: Vec::new(),
        moved: Vec::new(),
        unchanged: Vec::new(),
        blobs: DiffBlobs::default(),
        signatures: DiffSignatures::default(),
    };
    let one_side = |side: &Side, other: &Side, name: &str, r: &ReferenceReport| {
        let (blobs_added, bytes_added) = side.added_against(r, other);
        DiffReference {
            reference: name.to_string(),
            digest: r.digest.clone(),
            platforms: Side::platforms(r)
                .into_iter()
                .map(|(platform, digest)| DiffPlatform { platform, digest })
                .collect(),
            blobs_added,
            bytes_added,
        }
    };
    for (name, r) in &new.references {
        match old.references.get(name) {
            None => report.added.push(one_side(&new, &old, name, r)),
            Some(o) if o.digest == r.digest => report.unchanged.push(name.clone()),
            Some(o) => {
                let (blobs_added, bytes_added) = new.added_against(r, &old);
                report.moved.push(DiffMoved {
                    reference: name.clone(),
                    old_digest: o.digest.clone(),
                    new_digest: r.digest.clone(),
                    platforms: platform_changes(&Side::platforms(o), &Side::platforms(r)),
                    blobs_added,
                    bytes_added,
                });
            }
        }
    }
    for (name, r) in &old.references {
        if !new.references.contains_key(name) {
            report.removed.push(one_side(&old, &new, name, r));
        }
    }
    for b in new.archive.blobs() {
        if old.archive.blob(&b.digest).is_none() {
            report.blobs.added += 1;
            report.blobs.bytes_added += b.size;
        }
    }
    for b in old.archive.blobs() {
        if new.archive.blob(&b.digest).is_none() {
            report.blobs.removed += 1;
            report.blobs.bytes_removed += b.size;
        }
    }
    let names: BTreeSet<&String> = old.references.keys().chain(new.references.keys()).collect();
    for name in names {
        let before = old
            .references
            .get(name)
            .map(|r| old.signatures_of(r))
            .unwrap_or_default();
        let after = new
            .references
            .get(name)
            .map(|r| new.signatures_of(r))
            .unwrap_or_default();
        let entry = |(subject, signature): &(Digest, Digest)| DiffSignature {
            reference: name.clone(),
            subject: subject.clone(),
            signature: signature.clone(),
        };
        report
            .signatures
            .gained
            .extend(after.difference(&before).map(entry));
        report
            .signatures
            .lost
            .extend(before.difference(&after).map(entry));
    }
    Ok(report)
}

fn platform_changes(
    old: &BTreeMap<String, Digest>,
    new: &BTreeMap<String, Digest>,
) -> Vec<DiffPlatformChange> {
    let platforms: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    platforms
        .into_iter()
        .filter_map(|p| {
            let (o, n) = (old.get(p), new.get(p));
            let change = match (o, n) {
                (Some(a), Some(b)) if a == b => return None,
                (Some(_), Some(_)) => "moved",
                (None, Some(_)) => "added",
                (Some(_), None) => "removed",
                (None, None) => return None,
            };
            Some(DiffPlatformChange {
                platform: p.clone(),
                change,
                old_digest: o.cloned(),
                new_digest: n.cloned(),
            })
        })
        .collect()
}
