//! Streaming a blob out of an archive with positioned reads.

use std::io::{self, Read};
use std::sync::Arc;

use super::parts::PartSet;
use crate::digest::{Digest, DigestHasher};

/// Reads one blob's bytes from a layout archive.
///
/// Each reader holds its own position and reads with `pread` on a shared
/// file, so any number of readers, on any threads, read one archive at once.
/// A verifying reader (from
/// [`LayoutArchive::verifying_blob_reader`](super::LayoutArchive::verifying_blob_reader))
/// hashes as it goes and fails with [`io::ErrorKind::InvalidData`] at the
/// end if the bytes do not match the digest; the check happens when a read
/// returns the end of the blob, so read to the end (`io::copy`,
/// `read_to_end`) before trusting the bytes.
pub struct BlobReader {
    file: Arc<PartSet>,
    digest: Digest,
    size: u64,
    pos: u64,
    end: u64,
    check: Option<Check>,
}

impl BlobReader {
    pub(crate) fn new(
        file: Arc<PartSet>,
        digest: Digest,
        data_offset: u64,
        size: u64,
        verify: bool,
    ) -> BlobReader {
        let check = verify.then(|| Check::new(&digest, size));
        BlobReader {
            file,
            digest,
            size,
            pos: data_offset,
            // The scanner checked the entry against the file length; saturating
            // keeps a corrupt caller to a short read, not a wrap.
            end: data_offset.saturating_add(size),
            check,
        }
    }

    /// The digest of the blob being read.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// How many bytes this reader yields in all: the blob's size, or the
    /// range's length for a range reader.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.end || buf.is_empty() {
            if self.pos == self.end {
                if let Some(check) = self.check.take() {
                    check.finish()?;
                }
            }
            return Ok(0);
        }
        let want = buf
            .len()
            .min((self.end - self.pos).min(usize::MAX as u64) as usize);
        let got = self.file.read_at(&mut buf[..want], self.pos)?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "archive ended inside blob {} (was it truncated while open?)",
                    self.digest
                ),
            ));
        }
        if let Some(check) = &mut self.check {
            check.update(&buf[..got]);
        }
        self.pos += got as u64;
        Ok(got)
    }
}

/// Hashes a blob's bytes as they go by and checks them at the end.
struct Check {
    digest: Digest,
    size: u64,
    hasher: DigestHasher,
}

impl Check {
    fn new(digest: &Digest, size: u64) -> Check {
        Check {
            digest: digest.clone(),
            size,
            hasher: DigestHasher::for_digest(digest),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
    }

    /// [`io::ErrorKind::InvalidData`] unless the bytes seen match.
    fn finish(self) -> io::Result<()> {
        self.hasher
            .verify(&self.digest, self.size)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

/// Wraps any reader of one blob's bytes: hashes them as they are read and
/// fails with [`io::ErrorKind::InvalidData`] when the reader ends and they
/// do not match the digest and size. Read to the end before trusting them.
pub struct VerifyingReader<R> {
    inner: R,
    check: Option<Check>,
}

impl<R: Read> VerifyingReader<R> {
    /// Check what `inner` yields against `digest` and `size`.
    pub fn new(inner: R, digest: &Digest, size: u64) -> VerifyingReader<R> {
        VerifyingReader {
            inner,
            check: Some(Check::new(digest, size)),
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if let Some(check) = self.check.take() {
                check.finish()?;
            }
        } else if let Some(check) = &mut self.check {
            check.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Read until `buf` is full or the reader ends; the number of bytes read.
/// Unlike `read_exact`, a short read at the end is not an error.
pub fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
