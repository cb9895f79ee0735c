//! Sorting scanned entries into what a layout holds and what it should not.

use std::collections::HashMap;

use super::archive::BlobEntry;
use super::parts::PartSet;
use super::problem::{LayoutProblem, LayoutProblemKind};
use super::scan::RawEntry;
use super::{INDEX_JSON, OCI_LAYOUT};
use crate::digest::Digest;
use crate::{Error, Result};

/// The largest `oci-layout` read.
pub(crate) const MAX_OCI_LAYOUT: u64 = 64 << 10;
/// The largest `index.json` read.
pub(crate) const MAX_INDEX_JSON: u64 = 64 << 20;
const MAX_PROBLEMS: usize = 1000;

/// What the scan has found so far.
#[derive(Default)]
pub(crate) struct ScanState {
    pub oci_layout: Option<Vec<u8>>,
    pub index_json: Option<Vec<u8>>,
    pub blobs: HashMap<Digest, BlobEntry>,
    pub problems: Vec<LayoutProblem>,
    pub omitted: u64,
}

impl ScanState {
    fn problem(&mut self, entry: &RawEntry, kind: LayoutProblemKind) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(LayoutProblem {
                entry: entry.display_name(),
                kind,
            });
        } else {
            self.omitted += 1;
        }
    }

    pub fn add(&mut self, file: &PartSet, entry: RawEntry) -> Result<()> {
        match classify(&entry)? {
            Classified::Ignored(None) => {}
            Classified::Ignored(Some(kind)) => self.problem(&entry, kind),
            Classified::OciLayout => {
                let bytes = read_small(file, &entry, MAX_OCI_LAYOUT)?;
                Self::replace(&mut self.oci_layout, bytes, &entry)?
                    .then(|| self.problem(&entry, LayoutProblemKind::Duplicate));
            }
            Classified::IndexJson => {
                let bytes = read_small(file, &entry, MAX_INDEX_JSON)?;
                Self::replace(&mut self.index_json, bytes, &entry)?
                    .then(|| self.problem(&entry, LayoutProblemKind::Duplicate));
            }
            Classified::Blob(digest) => self.add_blob(&entry, digest)?,
        }
        Ok(())
    }

    /// Store `bytes` in `slot`; true when it held the same bytes already.
    fn replace(slot: &mut Option<Vec<u8>>, bytes: Vec<u8>, entry: &RawEntry) -> Result<bool> {
        match slot {
            Some(old) if *old != bytes => Err(duplicate_conflict(entry)),
            Some(_) => Ok(true),
            None => {
                *slot = Some(bytes);
                Ok(false)
            }
        }
    }

    fn add_blob(&mut self, entry: &RawEntry, digest: Digest) -> Result<()> {
        let blob = BlobEntry {
            digest: digest.clone(),
            data_offset: entry.data_offset,
            size: entry.size,
        };
        match self.blobs.insert(digest, blob) {
            Some(old) if old.size != entry.size => Err(duplicate_conflict(entry)),
            Some(_) => {
                self.problem(entry, LayoutProblemKind::Duplicate);
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// What one entry of a layout archive is.
pub(crate) enum Classified {
    /// Nothing ferry reads; with a finding when it is odd.
    Ignored(Option<LayoutProblemKind>),
    /// The `oci-layout` marker.
    OciLayout,
    /// `index.json`.
    IndexJson,
    /// A blob, by the digest its name claims.
    Blob(Digest),
}

/// Sort one entry. Absolute names and names with a `..` component are an
/// error: they can only be hostile. Links, special files, stray entries and
/// unparseable blob names are ignored with a finding.
pub(crate) fn classify(entry: &RawEntry) -> Result<Classified> {
    let Ok(name) = std::str::from_utf8(&entry.name) else {
        return Ok(Classified::Ignored(Some(LayoutProblemKind::NonUtf8Name)));
    };
    let path = normalize(name).map_err(|reason| Error::Layout {
        entry: entry.display_name(),
        reason: reason.into(),
    })?;
    let kind = entry.kind;
    if kind.is_symlink() || kind.is_hard_link() {
        let target = String::from_utf8_lossy(entry.link.as_deref().unwrap_or_default());
        return Ok(Classified::Ignored(Some(LayoutProblemKind::Link {
            hard: kind.is_hard_link(),
            target: target.into_owned(),
        })));
    }
    let is_dir = kind.is_dir() || (kind.is_file() && name.ends_with('/') && entry.size == 0);
    if is_dir {
        let layout_dir = matches!(
            path.as_str(),
            "" | "blobs" | "blobs/sha256" | "blobs/sha512"
        );
        return Ok(Classified::Ignored(
            (!layout_dir).then_some(LayoutProblemKind::Stray),
        ));
    }
    if !(kind.is_file() || kind.is_contiguous()) {
        let type_flag = char::from(kind.as_byte());
        return Ok(Classified::Ignored(Some(LayoutProblemKind::SpecialFile {
            type_flag,
        })));
    }
    Ok(match path.as_str() {
        OCI_LAYOUT => Classified::OciLayout,
        INDEX_JSON => Classified::IndexJson,
        p if p.starts_with("blobs/") => match blob_digest(p) {
            Ok(digest) => Classified::Blob(digest),
            Err(reason) => Classified::Ignored(Some(LayoutProblemKind::BadBlobName { reason })),
        },
        _ => Classified::Ignored(Some(LayoutProblemKind::Stray)),
    })
}

fn blob_digest(path: &str) -> std::result::Result<Digest, String> {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["blobs", alg, hex] => format!("{alg}:{hex}")
            .parse::<Digest>()
            .map_err(|e| match e {
                Error::InvalidDigest { reason, .. } => reason,
                other => other.to_string(),
            }),
        _ => Err("expected blobs/<algorithm>/<hex>".to_string()),
    }
}

/// Refuse an `oci-layout` or `index.json` larger than ferry reads.
pub(crate) fn check_small(entry: &RawEntry, max: u64) -> Result<()> {
    if entry.size > max {
        return Err(Error::Layout {
            entry: entry.display_name(),
            reason: format!("{} bytes, more than the {max} allowed", entry.size),
        });
    }
    Ok(())
}

/// The error for a file that appears twice with different content.
pub(crate) fn duplicate_conflict(entry: &RawEntry) -> Error {
    Error::Layout {
        entry: entry.display_name(),
        reason: "appears twice with different content".into(),
    }
}

fn read_small(file: &PartSet, entry: &RawEntry, max: u64) -> Result<Vec<u8>> {
    check_small(entry, max)?;
    let mut bytes = vec![0; entry.size as usize];
    file.read_exact_at(&mut bytes, entry.data_offset)
        .map_err(|source| Error::Io {
            context: format!("reading {} from the archive", entry.display_name()),
            source,
        })?;
    Ok(bytes)
}

/// The entry name relative to the layout root: `./` prefixes, `.`
/// components, repeated and trailing slashes removed. Absolute names and
/// names with a `..` component are refused: they can only be hostile.
fn normalize(name: &str) -> std::result::Result<String, &'static str> {
    if name.starts_with('/') {
        return Err("absolute path in a layout archive: refused as hostile");
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("path with a '..' component: refused as hostile"),
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn names_normalize_and_escapes_are_refused() {
        assert_eq!(
            normalize("./blobs//sha256/./ab").unwrap(),
            "blobs/sha256/ab"
        );
        assert_eq!(normalize("./").unwrap(), "");
        assert_eq!(normalize("blobs/").unwrap(), "blobs");
        for bad in ["/x", "../x", "a/../b", "a/.."] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
    }
}
