//! The planned, deterministic writer.
//!
//! `pack` knows every blob's digest and size before fetching a byte, so the
//! whole archive is laid out up front: [`LayoutPlan::write_skeleton`] writes
//! every header, `oci-layout`, `index.json` and the end-of-archive blocks
//! into a pre-sized file, and the caller writes each blob's bytes at its
//! [`PlannedBlob::data_offset`] (in parallel, with positioned writes).

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

use super::parts::PartSet;
use super::tarfmt::{headers_len, padded, push_headers, BLOCK};
use super::{INDEX_JSON, OCI_LAYOUT, OCI_LAYOUT_CONTENT};
use crate::digest::{Algorithm, Digest};
use crate::{Error, Result};

/// What a blob is, which decides where it goes in the archive: manifests and
/// indexes first, then configs, then layers, so a reader streaming the
/// archive sees the small things it plans with before the big bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlobClass {
    /// A manifest or index.
    Manifest,
    /// An image config (or an artifact's config).
    Config,
    /// A layer, or any other blob.
    Layer,
}

/// One blob's place in a planned archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedBlob {
    /// The blob's digest; its entry is `blobs/<algorithm>/<hex>`.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Its class (the lowest one it was planned with).
    pub class: BlobClass,
    /// Where its first byte goes in the archive file.
    pub data_offset: u64,
}

/// The complete, deterministic layout of an OCI image layout tarball.
///
/// Entry order: `oci-layout`, `index.json`, `blobs/`, `blobs/sha256/` (and
/// `blobs/sha512/` when a sha512 blob is planned), then the blobs: manifests
/// sorted by digest, configs sorted by digest, layers sorted by digest.
/// Headers are ustar with mode 0644 (0755 for directories), owner 0:0, no
/// user or group names and a fixed mtime; names too long for ustar get a pax
/// `path` record. The same inputs, in any order, give the same bytes.
#[derive(Debug, Clone)]
pub struct LayoutPlan {
    index_json: Vec<u8>,
    blobs: Vec<PlannedBlob>,
    by_digest: HashMap<Digest, usize>,
    has_sha512: bool,
    total_size: u64,
}

impl LayoutPlan {
    /// Plan an archive holding `index_json` (its exact bytes) and `blobs`.
    ///
    /// Blobs may come in any order; a digest given more than once is planned
    /// once, in the lowest class it was given. The same digest with two
    /// different sizes is an error ([`Error::PlanConflict`]), as are sizes
    /// adding up beyond what a file can hold.
    pub fn new(
        index_json: Vec<u8>,
        blobs: impl IntoIterator<Item = (Digest, u64, BlobClass)>,
    ) -> Result<LayoutPlan> {
        let mut unique: HashMap<Digest, (u64, BlobClass)> = HashMap::new();
        for (digest, size, class) in blobs {
            match unique.get_mut(&digest) {
                Some((known, _)) if *known != size => {
                    // Report the sizes in a fixed order, whatever the input order.
                    return Err(Error::PlanConflict {
                        digest,
                        first: (*known).min(size),
                        second: (*known).max(size),
                    });
                }
                Some((_, known)) => *known = (*known).min(class),
                None => {
                    unique.insert(digest, (size, class));
                }
            }
        }
        let mut sorted: Vec<(Digest, u64, BlobClass)> = unique
            .into_iter()
            .map(|(digest, (size, class))| (digest, size, class))
            .collect();
        sorted.sort_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)));
        let has_sha512 = sorted
            .iter()
            .any(|(d, _, _)| d.algorithm() == Algorithm::Sha512);

        let mut offset = Self::prelude_len(index_json.len() as u64, has_sha512);
        let mut planned = Vec::with_capacity(sorted.len());
        for (digest, size, class) in sorted {
            let data_offset = offset
                .checked_add(headers_len(&digest.blob_path()))
                .ok_or(Error::PlanTooLarge)?;
            let padded_size = size.checked_next_multiple_of(BLOCK);
            offset = padded_size
                .and_then(|p| data_offset.checked_add(p))
                .ok_or(Error::PlanTooLarge)?;
            planned.push(PlannedBlob {
                digest,
                size,
                class,
                data_offset,
            });
        }
        let total_size = offset.checked_add(2 * BLOCK).ok_or(Error::PlanTooLarge)?;
        let by_digest = planned
            .iter()
            .enumerate()
            .map(|(i, b)| (b.digest.clone(), i))
            .collect();
        Ok(LayoutPlan {
            index_json,
            blobs: planned,
            by_digest,
            has_sha512,
            total_size,
        })
    }

    /// Bytes before the first blob's header.
    fn prelude_len(index_len: u64, has_sha512: bool) -> u64 {
        let dirs = if has_sha512 { 3 } else { 2 };
        BLOCK + padded(OCI_LAYOUT_CONTENT.len() as u64) + BLOCK + padded(index_len) + dirs * BLOCK
    }

    /// The size of the finished archive file, in bytes.
    pub fn total_size(&self) -> u64 {
        self.total_size
    }

    /// The exact bytes of `index.json`.
    pub fn index_json(&self) -> &[u8] {
        &self.index_json
    }

    /// Every blob, in archive order.
    pub fn blobs(&self) -> &[PlannedBlob] {
        &self.blobs
    }

    /// The place of one blob.
    pub fn blob(&self, digest: &Digest) -> Option<&PlannedBlob> {
        self.by_digest.get(digest).map(|&i| &self.blobs[i])
    }

    /// A sha256 over everything that decides the archive's bytes: the
    /// exact `index.json`, and every blob's digest, size and offset. Two
    /// plans with the same fingerprint give byte-identical archives (blobs
    /// being content-addressed), so a partial archive written for one can
    /// be finished for the other.
    pub fn fingerprint(&self) -> Digest {
        let mut text = format!(
            "ferry layout plan 1\nsize {}\nindex.json {}\n",
            self.total_size,
            Digest::sha256_of(&self.index_json)
        );
        for blob in &self.blobs {
            text.push_str(&format!(
                "{} {} {}\n",
                blob.digest, blob.size, blob.data_offset
            ));
        }
        Digest::sha256_of(text.as_bytes())
    }

    /// Set `file`'s length to [`total_size`](Self::total_size) and write
    /// everything but the blobs' data: headers, `oci-layout`, `index.json`,
    /// directory entries, padding and the two end-of-archive blocks.
    ///
    /// Only the byte ranges `[data_offset, data_offset + size)` of the blobs
    /// are left for the caller, so this may run before or after the blobs
    /// are written, on a fresh (sparse) file or one being rewritten. `file`
    /// must be open for writing.
    pub fn write_skeleton(&self, file: &(impl WriteAt + ?Sized)) -> std::io::Result<()> {
        file.set_len(self.total_size)?;
        let mut buf = Vec::with_capacity(8 * BLOCK as usize + self.index_json.len());
        push_headers(&mut buf, OCI_LAYOUT, OCI_LAYOUT_CONTENT.len() as u64, false);
        push_padded(&mut buf, OCI_LAYOUT_CONTENT.as_bytes());
        push_headers(&mut buf, INDEX_JSON, self.index_json.len() as u64, false);
        push_padded(&mut buf, &self.index_json);
        push_headers(&mut buf, "blobs/", 0, true);
        push_headers(&mut buf, "blobs/sha256/", 0, true);
        if self.has_sha512 {
            push_headers(&mut buf, "blobs/sha512/", 0, true);
        }
        // Each write covers one gap between two blobs' data: the previous
        // blob's padding and the next blob's header(s).
        let mut gap_start = 0;
        for blob in &self.blobs {
            push_headers(&mut buf, &blob.digest.blob_path(), blob.size, false);
            debug_assert_eq!(gap_start + buf.len() as u64, blob.data_offset);
            file.write_all_at(&buf, gap_start)?;
            buf.clear();
            gap_start = blob.data_offset + blob.size;
            buf.resize((padded(blob.size) - blob.size) as usize, 0);
        }
        buf.resize(buf.len() + 2 * BLOCK as usize, 0);
        debug_assert_eq!(gap_start + buf.len() as u64, self.total_size);
        file.write_all_at(&buf, gap_start)
    }
}

/// Where a planned archive is written: one file, or a split bundle's parts
/// ([`PartSet`]), with positioned writes.
pub trait WriteAt {
    /// Write all of `buf` at `offset`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()>;
    /// Make the whole `len` bytes long (zero-filled, sparse where the file
    /// system allows).
    fn set_len(&self, len: u64) -> std::io::Result<()>;
}

impl WriteAt for File {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        File::set_len(self, len)
    }
}

impl WriteAt for PartSet {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        PartSet::write_all_at(self, buf, offset)
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        if len != self.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the parts hold {} bytes, not {len}", self.len()),
            ));
        }
        self.set_lengths()
    }
}

fn push_padded(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    out.resize(
        out.len() + (padded(data.len() as u64) as usize - data.len()),
        0,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(byte: u8) -> Digest {
        Digest::sha256_of(&[byte])
    }

    #[test]
    fn the_fingerprint_follows_what_decides_the_bytes_only() {
        let blobs = [
            (digest(1), 10, BlobClass::Manifest),
            (digest(2), 2000, BlobClass::Layer),
            (digest(3), 30, BlobClass::Config),
        ];
        let plan = |index: &[u8], blobs: &[(Digest, u64, BlobClass)]| {
            LayoutPlan::new(index.to_vec(), blobs.iter().cloned())
                .unwrap()
                .fingerprint()
        };
        let a = plan(b"{}", &blobs);
        let mut reversed = blobs.clone();
        reversed.reverse();
        assert_eq!(a, plan(b"{}", &reversed));
        assert_ne!(a, plan(b"{ }", &blobs));
        let mut bigger = blobs.clone();
        bigger[1].1 = 2001;
        assert_ne!(a, plan(b"{}", &bigger));
        let mut other = blobs.clone();
        other[2].0 = digest(4);
        assert_ne!(a, plan(b"{}", &other));
    }
}
