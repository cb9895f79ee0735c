//! Reading what a delta is made against, and what a layout's graph holds.
//!
//! [`OpenedBase::open`] reads a base the way `ferry pack --since` needs it:
//! a bundle or delta from its tar headers and manifests only (its layers are
//! never read), a receipt from its JSON. [`reachable`] walks a layout's
//! manifests from `index.json` and classes every blob as `pack` does, which
//! is what `merge` needs to plan the full bundle.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::delta::{delta_record_digest, Base, BaseKind, DeltaRecord, Receipt, MAX_RECORD_SIZE};
use crate::graph::{Step, Walk, MAX_DEPTH};
use crate::layout::{BlobClass, LayoutArchive};
use crate::{Digest, Error, Result};

/// Everything reachable from a layout's `index.json`.
#[derive(Debug, Default, Clone)]
pub struct Reachable {
    /// Manifests and indexes in the layout, with their sizes.
    pub manifests: BTreeMap<Digest, u64>,
    /// Configs and layers (never a manifest's digest), with size and the
    /// lowest class they were reached as.
    pub blobs: BTreeMap<Digest, (u64, BlobClass)>,
}

/// Walk `archive` from `index.json` with the one graph walk
/// ([`crate::graph::Walk`]): every manifest it holds (entries of indexes it
/// does not hold are taken as left out, as `--platform` leaves them), and
/// every config and layer they name, held or not.
pub fn reachable(archive: &LayoutArchive) -> Result<Reachable> {
    let mut out = Reachable::default();
    for root in archive.index() {
        let mut walk: Walk = Walk::new(root.clone());
        for digest in out.manifests.keys() {
            walk.visited(digest.clone());
        }
        while let Some(step) = walk.next() {
            match step {
                Step::Fetch {
                    descriptor, parent, ..
                } => {
                    if parent.is_some() && archive.blob(&descriptor.digest).is_none() {
                        walk.skip();
                        continue;
                    }
                    let manifest =
                        archive.manifest(&descriptor.digest, Some(&descriptor.media_type))?;
                    walk.enter(manifest);
                }
                Step::Leave {
                    descriptor,
                    manifest,
                    ..
                } => {
                    out.manifests
                        .insert(descriptor.digest, manifest.bytes().len() as u64);
                    for (i, blob) in manifest.blobs().enumerate() {
                        let class = if i == 0 && manifest.config().is_some() {
                            BlobClass::Config
                        } else {
                            BlobClass::Layer
                        };
                        let entry = out
                            .blobs
                            .entry(blob.digest.clone())
                            .or_insert((blob.size, class));
                        entry.1 = entry.1.min(class);
                    }
                }
                Step::TooDeep { descriptor, parent } | Step::Cycle { descriptor, parent } => {
                    return Err(Error::BadRecord {
                        kind: "image layout",
                        reason: format!(
                            "{} below {parent} nests deeper than {MAX_DEPTH} or loops",
                            descriptor.digest
                        ),
                    });
                }
            }
        }
    }
    let manifests = &out.manifests;
    out.blobs.retain(|d, _| !manifests.contains_key(d));
    Ok(out)
}

/// The delta record of `archive`, if it is a delta.
pub fn delta_record(archive: &LayoutArchive) -> Result<Option<DeltaRecord>> {
    let Some(digest) = delta_record_digest(archive.index_json())? else {
        return Ok(None);
    };
    let bytes = archive.read_blob(&digest, MAX_RECORD_SIZE)?;
    DeltaRecord::parse(&bytes).map(Some)
}

/// A base read for `ferry pack --since`.
#[derive(Debug, Clone)]
pub struct OpenedBase {
    /// How a delta names it.
    pub base: Base,
    /// The configs and layers a target loaded from it holds, with sizes.
    pub holds: BTreeMap<Digest, u64>,
}

impl OpenedBase {
    /// Read the base at `path`: a receipt (JSON) or a bundle or delta
    /// (an OCI layout tarball, read from its headers and manifests). A
    /// bundle's sha256 is taken from `PATH.sha256` when that names it (as
    /// `ferry pack` writes it), else the file is hashed.
    pub fn open(path: &Path) -> Result<OpenedBase> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let io = |source, doing: &str| Error::Io {
            context: format!("{doing} {}", path.display()),
            source,
        };
        let mut head = [0u8; 1];
        let n = std::fs::File::open(path)
            .and_then(|mut f| f.read(&mut head))
            .map_err(|e| io(e, "reading"))?;
        if n == 1 && head[0] == b'{' {
            let bytes = read_capped(path, crate::delta::MAX_RECEIPT_SIZE)?;
            let receipt = Receipt::parse(&bytes)?;
            let holds = receipt
                .blobs
                .iter()
                .chain(&receipt.manifests)
                .map(|h| (h.digest.clone(), h.size))
                .collect();
            return Ok(OpenedBase {
                base: Base {
                    kind: BaseKind::Receipt,
                    name,
                    sha256: hex::encode(Sha256::digest(&bytes)),
                    bundles: receipt.bundles.clone(),
                    target: Some(receipt.target()),
                },
                holds,
            });
        }
        let archive = LayoutArchive::open(path)?;
        let record = delta_record(&archive)?;
        let graph = reachable(&archive)?;
        let left_out = record
            .as_ref()
            .map(DeltaRecord::left_out_sizes)
            .unwrap_or_default();
        let mut holds = BTreeMap::new();
        for (digest, (size, _)) in &graph.blobs {
            let present = archive.blob(digest).is_some_and(|b| b.size == *size);
            if present || left_out.get(digest) == Some(size) {
                holds.insert(digest.clone(), *size);
            }
        }
        Ok(OpenedBase {
            base: Base {
                kind: if record.is_some() {
                    BaseKind::Delta
                } else {
                    BaseKind::Bundle
                },
                name,
                sha256: file_sha256(path, true)?,
                bundles: Vec::new(),
                target: None,
            },
            holds,
        })
    }
}

fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        context: format!("opening {}", path.display()),
        source,
    })?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Io {
            context: format!("reading {}", path.display()),
            source,
        })?;
    if bytes.len() as u64 > max {
        return Err(Error::BadRecord {
            kind: "receipt",
            reason: format!("{} is more than {max} bytes", path.display()),
        });
    }
    Ok(bytes)
}

/// The sha256 hex of the bundle at `path` (a file or a split part set,
/// [`bundle_sha256`](crate::layout::bundle_sha256)). With `sidecar`, `PATH.sha256` (in
/// `sha256sum` form, naming the file) is trusted when present, so a big
/// bundle is not read again.
pub fn file_sha256(path: &Path, sidecar: bool) -> Result<String> {
    if sidecar {
        let mut sum = path.as_os_str().to_owned();
        sum.push(".sha256");
        if let Ok(text) = std::fs::read_to_string(&sum) {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if let Some((hex, file)) = text.lines().next().and_then(|l| l.split_once("  ")) {
                let well_formed = hex.len() == 64
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                if well_formed && Some(file.trim_start_matches('*')) == name.as_deref() {
                    return Ok(hex.to_string());
                }
            }
        }
    }
    crate::layout::bundle_sha256(path)
}
