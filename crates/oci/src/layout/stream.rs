//! Reading an OCI image layout tarball once, front to back, from a pipe.

use std::io::{self, Read};

use super::archive::{check_oci_layout, missing, parse_index, Compression};
use super::classify::{
    check_small, classify, duplicate_conflict, Classified, MAX_INDEX_JSON, MAX_OCI_LAYOUT,
};
use super::problem::{LayoutProblem, LayoutProblemKind};
use super::scan::{truncated, RawEntry, Scanner, StreamSource};
use super::{INDEX_JSON, OCI_LAYOUT};
use crate::digest::Digest;
use crate::manifest::Descriptor;
use crate::{Error, Result};

/// The most findings [`LayoutStream::problems`] keeps.
const MAX_PROBLEMS: usize = 1000;

type Source = StreamSource<Box<dyn Read + Send>>;

/// An OCI image layout tarball read sequentially from any reader (standard
/// input, a pipe), plain, gzip or zstd (detected from the first bytes).
///
/// [`next_blob`](Self::next_blob) hands out the blobs in archive order,
/// each as a bounded reader; `oci-layout` and `index.json` are read and
/// checked on the way, everything else is skipped. Nothing is written to
/// disk and memory does not grow with blob size. The same rules as
/// [`LayoutArchive`](super::LayoutArchive) apply: absolute names and `..`
/// components are fatal, links and special files are never followed (they
/// are listed in [`problems`](Self::problems)), and an entry cut short is
/// [`Error::Truncated`].
pub struct LayoutStream {
    scanner: Scanner<Source>,
    compression: Compression,
    /// Data bytes of the current entry not yet read.
    left: u64,
    /// The current entry's name and size, for messages.
    current: Option<(String, u64)>,
    layout_version: Option<String>,
    oci_layout: Option<Vec<u8>>,
    index_json: Option<Vec<u8>>,
    index: Option<Vec<Descriptor>>,
    problems: Vec<LayoutProblem>,
}

impl std::fmt::Debug for LayoutStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayoutStream")
            .field("compression", &self.compression)
            .field("position", &self.scanner.source.pos)
            .finish_non_exhaustive()
    }
}

impl LayoutStream {
    /// Start reading `reader`; its first bytes tell the compression.
    pub fn new(reader: impl Read + Send + 'static) -> Result<LayoutStream> {
        let mut reader: Box<dyn Read + Send> = Box::new(reader);
        let mut magic = [0u8; 6];
        let mut head = StreamSource { reader, pos: 0 };
        let n = head.fill(&mut magic).map_err(|source| Error::Io {
            context: "reading the archive from the stream".into(),
            source,
        })?;
        reader = Box::new(io::Cursor::new(magic[..n].to_vec()).chain(head.reader));
        let compression = Compression::detect(&magic[..n], &"the stream")?;
        let reader: Box<dyn Read + Send> = match compression {
            Compression::None => reader,
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader).map_err(
                |source| Error::Io {
                    context: "starting to decompress the stream".into(),
                    source,
                },
            )?),
        };
        Ok(LayoutStream {
            scanner: Scanner::new(StreamSource { reader, pos: 0 }),
            compression,
            left: 0,
            current: None,
            layout_version: None,
            oci_layout: None,
            index_json: None,
            index: None,
            problems: Vec::new(),
        })
    }

    /// How the stream is compressed.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The `imageLayoutVersion` of `oci-layout`, once it has been read.
    pub fn oci_layout_version(&self) -> Option<&str> {
        self.layout_version.as_deref()
    }

    /// The exact bytes of `index.json`, once it has been read.
    pub fn index_json(&self) -> Option<&[u8]> {
        self.index_json.as_deref()
    }

    /// The descriptors `index.json` lists, once it has been read.
    pub fn index(&self) -> Option<&[Descriptor]> {
        self.index.as_deref()
    }

    /// Non-fatal findings so far, in archive order (at most 1000).
    pub fn problems(&self) -> &[LayoutProblem] {
        &self.problems
    }

    /// The next blob entry, reading `oci-layout` and `index.json` and
    /// skipping everything else on the way; `None` at the end of the
    /// archive. Whatever of the previous blob was not read is skipped.
    pub fn next_blob(&mut self) -> Result<Option<StreamBlob<'_>>> {
        loop {
            self.skip_current()?;
            let Some(entry) = self.scanner.next_entry()? else {
                return Ok(None);
            };
            self.left = entry.size;
            self.current = Some((entry.display_name(), entry.size));
            match classify(&entry)? {
                Classified::Blob(digest) => {
                    return Ok(Some(StreamBlob {
                        digest,
                        size: entry.size,
                        stream: self,
                    }))
                }
                Classified::OciLayout => {
                    let bytes = self.read_small(&entry, MAX_OCI_LAYOUT)?;
                    if self.oci_layout.is_none() {
                        self.layout_version = Some(check_oci_layout(&bytes)?);
                    }
                    keep(&mut self.oci_layout, bytes, &entry, &mut self.problems)?;
                }
                Classified::IndexJson => {
                    let bytes = self.read_small(&entry, MAX_INDEX_JSON)?;
                    if self.index_json.is_none() {
                        self.index = Some(parse_index(&bytes)?);
                    }
                    keep(&mut self.index_json, bytes, &entry, &mut self.problems)?;
                }
                Classified::Ignored(Some(kind)) => note(&mut self.problems, &entry, kind),
                Classified::Ignored(None) => {}
            }
        }
    }

    /// Read the rest of the stream (so a writer piping into it is not cut
    /// off) and check that it held `oci-layout` and `index.json`.
    pub fn finish(mut self) -> Result<()> {
        while self.next_blob()?.is_some() {}
        let mut sink = [0u8; 64 << 10];
        while self.source_read(&mut sink)? > 0 {}
        if self.layout_version.is_none() {
            return Err(missing(OCI_LAYOUT));
        }
        if self.index.is_none() {
            return Err(missing(INDEX_JSON));
        }
        Ok(())
    }

    fn source_read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let source = &mut self.scanner.source;
        source.fill(buf).map_err(|source| Error::Io {
            context: "reading the archive from the stream".into(),
            source,
        })
    }

    /// Read the current entry's data into memory (at most `max` bytes).
    fn read_small(&mut self, entry: &RawEntry, max: u64) -> Result<Vec<u8>> {
        check_small(entry, max)?;
        let mut bytes = vec![0; entry.size as usize];
        self.read_exact_data(&mut bytes)?;
        Ok(bytes)
    }

    fn read_exact_data(&mut self, buf: &mut [u8]) -> Result<()> {
        let mut n = 0;
        while n < buf.len() {
            n += self.read_data(&mut buf[n..])?;
        }
        Ok(())
    }

    /// Read some of the current entry's data; an error if the stream ends
    /// before the entry does.
    fn read_data(&mut self, buf: &mut [u8]) -> Result<usize> {
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        if want == 0 {
            return Ok(0);
        }
        let got = self.source_read(&mut buf[..want])?;
        if got == 0 {
            let (name, size) = self.current.clone().unwrap_or_default();
            return Err(truncated(name, size, size - self.left));
        }
        self.left -= got as u64;
        Ok(got)
    }

    /// Skip what is left of the current entry and its padding.
    fn skip_current(&mut self) -> Result<()> {
        let mut sink = [0u8; 64 << 10];
        while self.left > 0 {
            self.read_data(&mut sink)?;
        }
        let padding = self
            .scanner
            .next_header()
            .saturating_sub(self.scanner.source.pos);
        let got = self.source_read(&mut sink[..padding as usize])?;
        if got < padding as usize {
            let (name, size) = self.current.clone().unwrap_or_default();
            return Err(Error::Layout {
                entry: name,
                reason: format!(
                    "archive ends in the padding after the {size} bytes of data: truncated"
                ),
            });
        }
        self.current = None;
        Ok(())
    }
}

/// Keep the first copy of a small file; a later copy must be identical.
fn keep(
    slot: &mut Option<Vec<u8>>,
    bytes: Vec<u8>,
    entry: &RawEntry,
    problems: &mut Vec<LayoutProblem>,
) -> Result<()> {
    match slot {
        Some(old) if *old != bytes => Err(duplicate_conflict(entry)),
        Some(_) => {
            note(problems, entry, LayoutProblemKind::Duplicate);
            Ok(())
        }
        None => {
            *slot = Some(bytes);
            Ok(())
        }
    }
}

fn note(problems: &mut Vec<LayoutProblem>, entry: &RawEntry, kind: LayoutProblemKind) {
    if problems.len() < MAX_PROBLEMS {
        problems.push(LayoutProblem {
            entry: entry.display_name(),
            kind,
        });
    }
}

/// One blob of a [`LayoutStream`]: its claimed digest, its size, and its
/// bytes as a reader that ends where the entry does (unchecked; wrap it in
/// a [`VerifyingReader`](super::VerifyingReader) to check). A stream that
/// ends inside the blob fails the read with [`io::ErrorKind::UnexpectedEof`].
pub struct StreamBlob<'a> {
    digest: Digest,
    size: u64,
    stream: &'a mut LayoutStream,
}

impl StreamBlob<'_> {
    /// The digest its entry name claims (`blobs/<algorithm>/<hex>`).
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Its size in bytes, as the tar header says.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The stream it is read from (to look at `index.json` on the way).
    pub fn stream(&self) -> &LayoutStream {
        self.stream
    }
}

impl Read for StreamBlob<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read_data(buf).map_err(|e| match e {
            Error::Io { source, .. } => source,
            e @ Error::Truncated { .. } => io::Error::new(io::ErrorKind::UnexpectedEof, e),
            e => io::Error::other(e),
        })
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
