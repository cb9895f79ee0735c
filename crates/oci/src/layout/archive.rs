//! Reading any OCI image layout tarball by offset.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::classify::ScanState;
use super::parts::PartSet;
use super::problem::{LayoutProblem, LayoutProblemKind};
use super::reader::BlobReader;
use super::scan::scan;
use super::{INDEX_JSON, OCI_LAYOUT};
use crate::digest::{Digest, DigestHasher};
use crate::manifest::{Descriptor, Manifest};
use crate::{Error, Result};

/// The largest manifest or index [`LayoutArchive::manifest`] reads (4 MiB,
/// the limit registries commonly enforce).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
/// The smallest inflate limit [`LayoutArchive::open`] applies (1 GiB).
pub const MIN_INFLATE_LIMIT: u64 = 1 << 30;
/// [`LayoutArchive::open`] refuses compressed input that inflates more than
/// this many times its compressed size (beyond [`MIN_INFLATE_LIMIT`]).
pub const MAX_INFLATE_RATIO: u64 = 100;

const MISSING: &str = "missing: not an OCI image layout \
    (oci-layout and index.json belong at the top level)";

/// How the archive file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (possibly multi-member).
    Gzip,
    /// zstd (possibly multi-frame).
    Zstd,
}

impl Compression {
    /// The compression whose magic number starts `magic` (the first six
    /// bytes of the input, or fewer when it is shorter). xz and bzip2 are
    /// recognized and refused; `what` names the input in the error.
    pub(crate) fn detect(magic: &[u8], what: &dyn std::fmt::Display) -> Result<Compression> {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Ok(Compression::Gzip)
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Ok(Compression::Zstd)
        } else if magic.starts_with(b"\xfd7zXZ\0") || magic.starts_with(b"BZh") {
            Err(Error::Layout {
                entry: what.to_string(),
                reason:
                    "compressed with xz or bzip2, which ferry does not read; decompress it first"
                        .into(),
            })
        } else {
            Ok(Compression::None)
        }
    }
}

/// Check `oci-layout` and parse `index.json`, as found in an archive:
/// the layout version and the descriptors listed.
pub(crate) fn parse_layout(
    oci_layout: Option<Vec<u8>>,
    index_json: Option<&[u8]>,
) -> Result<(String, Vec<Descriptor>)> {
    let oci_layout = oci_layout.ok_or_else(|| missing(OCI_LAYOUT))?;
    let index_json = index_json.ok_or_else(|| missing(INDEX_JSON))?;
    Ok((check_oci_layout(&oci_layout)?, parse_index(index_json)?))
}

/// The error for a missing `oci-layout` or `index.json`.
pub(crate) fn missing(entry: &str) -> Error {
    Error::Layout {
        entry: entry.into(),
        reason: MISSING.into(),
    }
}

/// The `imageLayoutVersion` of an `oci-layout` file, refused unless 1.x.
pub(crate) fn check_oci_layout(oci_layout: &[u8]) -> Result<String> {
    let layout: OciLayoutFile =
        serde_json::from_slice(oci_layout).map_err(|source| Error::LayoutJson {
            entry: OCI_LAYOUT.into(),
            source,
        })?;
    if !layout.image_layout_version.starts_with("1.") {
        return Err(Error::Layout {
            entry: OCI_LAYOUT.into(),
            reason: format!(
                "unsupported imageLayoutVersion {:?}; ferry reads 1.x",
                layout.image_layout_version
            ),
        });
    }
    Ok(layout.image_layout_version)
}

/// The descriptors an `index.json` lists.
pub(crate) fn parse_index(index_json: &[u8]) -> Result<Vec<Descriptor>> {
    let index: IndexFile =
        serde_json::from_slice(index_json).map_err(|source| Error::LayoutJson {
            entry: INDEX_JSON.into(),
            source,
        })?;
    Ok(index.manifests)
}

/// Where one blob's bytes are in the (inflated) archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobEntry {
    /// The digest its entry name claims (`blobs/<algorithm>/<hex>`); not
    /// checked until the blob is read.
    pub digest: Digest,
    /// Where its data starts.
    pub data_offset: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// An OCI image layout tarball, opened for reading.
///
/// [`open`](Self::open) scans the tar headers once and keeps an offset table;
/// nothing is extracted and blob bytes are read only on request, with
/// positioned reads, so many threads can read one archive at once. Any
/// layout tarball is accepted (ferry's, skopeo's, crane's, regctl's, oras's)
/// in any entry order, with or without `./` prefixes, plain, gzip or zstd.
///
/// Fatal, from `open`: anything that leaves no trustworthy offset table
/// (a truncated archive, a bad header checksum, a size beyond the end of the
/// file), a name that is absolute or has a `..` component, a missing or
/// invalid `oci-layout` or `index.json`, an unsupported layout version, and
/// the same file twice with different sizes or content. Everything else odd
/// (links, special files, stray entries, unparseable blob names, identical
/// duplicates) is collected in [`problems`](Self::problems).
#[derive(Debug)]
pub struct LayoutArchive {
    path: PathBuf,
    file: Arc<PartSet>,
    compression: Compression,
    layout_version: String,
    index_json: Vec<u8>,
    index: Vec<Descriptor>,
    blobs: Vec<BlobEntry>,
    by_digest: HashMap<Digest, usize>,
    problems: Vec<LayoutProblem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciLayoutFile {
    image_layout_version: String,
}

#[derive(Deserialize)]
struct IndexFile {
    manifests: Vec<Descriptor>,
}

impl LayoutArchive {
    /// Open the archive at `path`: a file, or a split bundle's part set
    /// when `path` is its first part (`OUT.tar.000`) or its unsplit name
    /// with only the parts on disk (see [`PartSet::open`]). Compressed
    /// input is inflated into an anonymous temporary file (in `TMPDIR`) and
    /// refused when it inflates beyond [`MAX_INFLATE_RATIO`] times its size
    /// (at least [`MIN_INFLATE_LIMIT`]); see
    /// [`open_with_limit`](Self::open_with_limit).
    pub fn open(path: &Path) -> Result<LayoutArchive> {
        let set = PartSet::open(path)?;
        let limit = set
            .len()
            .saturating_mul(MAX_INFLATE_RATIO)
            .max(MIN_INFLATE_LIMIT);
        Self::open_set(path, set, limit)
    }

    /// Open the archive at `path`, refusing compressed input that inflates
    /// beyond `max_inflated` bytes.
    pub fn open_with_limit(path: &Path, max_inflated: u64) -> Result<LayoutArchive> {
        Self::open_set(path, PartSet::open(path)?, max_inflated)
    }

    fn open_set(path: &Path, set: PartSet, max_inflated: u64) -> Result<LayoutArchive> {
        let mut magic = [0u8; 6];
        let n = set
            .read_at(&mut magic, 0)
            .map_err(|e| io_err(e, "reading", path))?;
        let inflated = match Compression::detect(&magic[..n], &path.display())? {
            Compression::Gzip => {
                let reader = flate2::read::MultiGzDecoder::new(set.reader());
                Some((Compression::Gzip, inflate(reader, max_inflated, path)?))
            }
            Compression::Zstd => {
                let reader = zstd::stream::read::Decoder::new(set.reader())
                    .map_err(|e| io_err(e, "decompressing", path))?;
                Some((Compression::Zstd, inflate(reader, max_inflated, path)?))
            }
            Compression::None => None,
        };
        let (compression, set) = match inflated {
            Some((compression, file)) => (
                compression,
                PartSet::single(path, file).map_err(|e| io_err(e, "reading", path))?,
            ),
            None => (Compression::None, set),
        };
        Self::scan(path, set, compression)
    }

    fn scan(path: &Path, file: PartSet, compression: Compression) -> Result<LayoutArchive> {
        let len = file.len();
        let mut state = ScanState::default();
        scan(&file, len, |entry| state.add(&file, entry)).map_err(|e| match e {
            Error::Truncated {
                entry,
                declared,
                available,
            } if file.is_split() => {
                let (last, _, _) = file.parts().last().expect("a set has a part");
                Error::Part {
                    part: last.display().to_string(),
                    reason: format!(
                        "ends inside {entry} ({declared} bytes declared, {available} left): \
                         parts are missing at the end of the set, or this one is truncated"
                    ),
                }
            }
            e => e,
        })?;
        let ScanState {
            oci_layout,
            index_json,
            blobs,
            mut problems,
            omitted,
            ..
        } = state;
        if omitted > 0 {
            problems.push(LayoutProblem {
                entry: "...".into(),
                kind: LayoutProblemKind::MoreProblems { omitted },
            });
        }
        let (layout_version, index) = parse_layout(oci_layout, index_json.as_deref())?;
        let index_json = index_json.unwrap_or_default();
        let mut blobs: Vec<BlobEntry> = blobs.into_values().collect();
        blobs.sort_by_key(|b| b.data_offset);
        let by_digest = blobs
            .iter()
            .enumerate()
            .map(|(i, b)| (b.digest.clone(), i))
            .collect();
        Ok(LayoutArchive {
            path: path.to_path_buf(),
            file: Arc::new(file),
            compression,
            layout_version,
            index_json,
            index,
            blobs,
            by_digest,
            problems,
        })
    }

    /// The bundle's files and where each starts, when the archive is read
    /// straight from them (not inflated): one file, or a split bundle's
    /// parts.
    pub fn part_set(&self) -> Option<&PartSet> {
        (self.compression == Compression::None).then_some(&*self.file)
    }

    /// How the archive file is compressed.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The `imageLayoutVersion` of `oci-layout`.
    pub fn oci_layout_version(&self) -> &str {
        &self.layout_version
    }

    /// The exact bytes of `index.json`.
    pub fn index_json(&self) -> &[u8] {
        &self.index_json
    }

    /// The descriptors listed in `index.json`.
    pub fn index(&self) -> &[Descriptor] {
        &self.index
    }

    /// Where one blob is, if the archive holds it.
    pub fn blob(&self, digest: &Digest) -> Option<&BlobEntry> {
        self.by_digest.get(digest).map(|&i| &self.blobs[i])
    }

    /// Every blob, in archive order.
    pub fn blobs(&self) -> impl Iterator<Item = &BlobEntry> {
        self.blobs.iter()
    }

    /// Non-fatal findings of the scan, in archive order.
    pub fn problems(&self) -> &[LayoutProblem] {
        &self.problems
    }

    fn entry(&self, digest: &Digest) -> Result<&BlobEntry> {
        self.blob(digest).ok_or_else(|| Error::BlobNotFound {
            digest: digest.clone(),
        })
    }

    /// Read a whole blob into memory (manifests, configs), refusing blobs of
    /// more than `max` bytes, and check it against its digest.
    pub fn read_blob(&self, digest: &Digest, max: u64) -> Result<Vec<u8>> {
        let (bytes, found) = self.read_blob_hashed(digest, max)?;
        if &found != digest {
            return Err(Error::DigestMismatch {
                expected: digest.clone(),
                found,
            });
        }
        Ok(bytes)
    }

    /// Read a whole blob into memory, refusing blobs of more than `max`
    /// bytes ([`Error::BlobTooLarge`]), and hash it with its digest's
    /// algorithm: the bytes and the digest they really have, for a caller
    /// that reports a mismatch rather than failing on it (`ferry verify`).
    pub fn read_blob_hashed(&self, digest: &Digest, max: u64) -> Result<(Vec<u8>, Digest)> {
        let entry = self.entry(digest)?;
        if entry.size > max {
            return Err(Error::BlobTooLarge {
                digest: digest.clone(),
                size: entry.size,
                max,
            });
        }
        let mut bytes = vec![0; entry.size as usize];
        self.file
            .read_exact_at(&mut bytes, entry.data_offset)
            .map_err(|source| Error::Io {
                context: format!("reading blob {digest} from {}", self.path.display()),
                source,
            })?;
        let mut hasher = DigestHasher::for_digest(digest);
        hasher.update(&bytes);
        Ok((bytes, hasher.finish()))
    }

    /// Read and parse a manifest or index (at most [`MAX_MANIFEST_SIZE`]),
    /// with the media type of the descriptor that points at it, when known.
    pub fn manifest(&self, digest: &Digest, media_type: Option<&str>) -> Result<Manifest> {
        Manifest::parse_as(
            self.read_blob(digest, MAX_MANIFEST_SIZE)?,
            media_type,
            digest.algorithm(),
        )
    }

    /// A reader over one blob's bytes, unchecked.
    pub fn blob_reader(&self, digest: &Digest) -> Result<BlobReader> {
        self.reader(digest, false)
    }

    /// A reader over one blob's bytes that hashes them and fails at the end
    /// if they do not match the digest.
    pub fn verifying_blob_reader(&self, digest: &Digest) -> Result<BlobReader> {
        self.reader(digest, true)
    }

    /// A reader over `len` bytes of one blob starting `start` bytes in,
    /// unchecked (a part of a blob cannot be checked against its digest);
    /// [`Error::BlobRange`] when the range does not lie inside the blob.
    pub fn blob_range_reader(&self, digest: &Digest, start: u64, len: u64) -> Result<BlobReader> {
        let e = self.entry(digest)?;
        if start.checked_add(len).is_none_or(|end| end > e.size) {
            return Err(Error::BlobRange {
                digest: digest.clone(),
                start,
                len,
                size: e.size,
            });
        }
        Ok(BlobReader::new(
            self.file.clone(),
            digest.clone(),
            e.data_offset + start,
            len,
            false,
        ))
    }

    fn reader(&self, digest: &Digest, verify: bool) -> Result<BlobReader> {
        let e = self.entry(digest)?;
        Ok(BlobReader::new(
            self.file.clone(),
            digest.clone(),
            e.data_offset,
            e.size,
            verify,
        ))
    }
}

fn io_err(source: std::io::Error, doing: &str, path: &Path) -> Error {
    Error::Io {
        context: format!("{doing} {}", path.display()),
        source,
    }
}

/// Inflate `reader` into an anonymous temporary file, at most `limit` bytes.
fn inflate(mut reader: impl Read, limit: u64, path: &Path) -> Result<File> {
    let tmp = tempfile::tempfile().map_err(|source| Error::Io {
        context: "creating a temporary file in TMPDIR for the inflated archive".into(),
        source,
    })?;
    let write_err = |source| Error::Io {
        context: "writing the inflated archive to a temporary file in TMPDIR".into(),
        source,
    };
    let mut out = BufWriter::with_capacity(1 << 20, &tmp);
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(Error::Io {
                    context: format!(
                        "decompressing {}: the compressed data is corrupt or truncated",
                        path.display()
                    ),
                    source,
                })
            }
        };
        total += n as u64;
        if total > limit {
            return Err(Error::InflateLimit { limit });
        }
        out.write_all(&buf[..n]).map_err(write_err)?;
    }
    out.flush().map_err(write_err)?;
    drop(out);
    Ok(tmp)
}
