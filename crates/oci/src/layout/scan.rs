//! One pass over tar headers, trusting nothing, from a file or a stream.
//!
//! The [`Scanner`] reads each 512-byte header and hands back the entry it
//! describes, pax and GNU long-name extensions applied. Over a file
//! ([`FileSource`]) it reads headers with positioned reads and jumps over
//! the data, checking every declared size against the file's length first;
//! over a stream ([`StreamSource`]) the caller reads (or skips) each entry's
//! data before asking for the next header. The only data the scanner reads
//! into memory is extension records (capped).

use std::io::{self, Read};

use tar::{EntryType, Header, PaxExtensions};

use super::parts::PartSet;
use super::tarfmt::{checksum_ok, BLOCK};
use crate::{Error, Result};

/// The largest pax or GNU long-name extension record accepted.
const MAX_EXTENSION: u64 = 1 << 20;

/// One entry as the archive describes it, extensions applied.
pub(crate) struct RawEntry {
    /// The name as stored (pax or GNU long name if any), not yet normalized.
    pub name: Vec<u8>,
    /// The entry type.
    pub kind: EntryType,
    /// The link target of a link entry.
    pub link: Option<Vec<u8>>,
    /// Where the data starts.
    pub data_offset: u64,
    /// How many data bytes the archive holds for it.
    pub size: u64,
}

impl RawEntry {
    /// The name for messages.
    pub fn display_name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// Where a [`Scanner`] reads from.
pub(crate) trait TarSource {
    /// How many bytes the source holds from `pos` on, when known (a file).
    fn available(&self, pos: u64) -> Option<u64>;
    /// Read into `buf` the bytes at `pos`, all of them unless the source
    /// ends first; returns how many were read.
    fn read_at(&mut self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    /// Where `pos` is, for messages.
    fn describe(&self, pos: u64) -> String {
        format!("offset {pos}")
    }
}

/// A file (or set of parts) of known length, read with positioned reads.
pub(crate) struct FileSource<'a> {
    pub file: &'a PartSet,
    pub len: u64,
}

impl TarSource for FileSource<'_> {
    fn available(&self, pos: u64) -> Option<u64> {
        Some(self.len.saturating_sub(pos))
    }

    fn read_at(&mut self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(pos)) as usize;
        self.file.read_exact_at(&mut buf[..n], pos).map(|()| n)
    }

    fn describe(&self, pos: u64) -> String {
        self.file.describe(pos)
    }
}

/// A stream read once, front to back. The scanner only asks for the bytes
/// at the stream's position: its owner reads or skips each entry's data
/// (and padding) before asking for the next header.
pub(crate) struct StreamSource<R> {
    pub reader: R,
    /// Bytes consumed so far.
    pub pos: u64,
}

impl<R: Read> StreamSource<R> {
    /// Read into `buf` until it is full or the stream ends.
    pub fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = super::reader::read_full(&mut self.reader, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read> TarSource for StreamSource<R> {
    fn available(&self, _pos: u64) -> Option<u64> {
        None
    }

    fn read_at(&mut self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        debug_assert_eq!(pos, self.pos, "a stream is read in order");
        self.fill(buf)
    }
}

/// Extension values waiting for the entry they describe.
#[derive(Default)]
struct Pending {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
}

/// Walks the headers of a tar, one entry at a time.
pub(crate) struct Scanner<S> {
    pub source: S,
    /// Where the next header is.
    next: u64,
    pending: Pending,
    done: bool,
}

impl<S: TarSource> Scanner<S> {
    pub fn new(source: S) -> Scanner<S> {
        Scanner {
            source,
            next: 0,
            pending: Pending::default(),
            done: false,
        }
    }

    /// Where the header after the last entry returned starts.
    pub fn next_header(&self) -> u64 {
        self.next
    }

    /// The next entry that is not itself an extension header, or `None` at
    /// the first zero block or the end of the source. A stream's owner must
    /// have consumed the previous entry's data and padding.
    pub fn next_entry(&mut self) -> Result<Option<RawEntry>> {
        while !self.done {
            if let Some(entry) = self.step()? {
                return Ok(Some(entry));
            }
        }
        Ok(None)
    }

    /// Read one header; an entry, or `None` for an extension or the end.
    fn step(&mut self) -> Result<Option<RawEntry>> {
        let pos = self.next;
        let at = self.source.describe(pos);
        let here = || format!("header at {at}");
        let mut block = [0u8; BLOCK as usize];
        let known = self.source.available(pos);
        if known == Some(0) {
            self.done = true;
            return Ok(None);
        }
        let got = self.read(&mut block, pos, &here)?;
        if got == 0 && known.is_none() {
            self.done = true;
            return Ok(None);
        }
        if got < BLOCK as usize {
            return Err(truncated(here(), BLOCK, got as u64));
        }
        if block.iter().all(|&b| b == 0) {
            self.done = true;
            return Ok(None);
        }
        if !checksum_ok(&block) {
            return Err(Error::Layout {
                entry: here(),
                reason: "header checksum does not match: not a tar archive, or corrupt".into(),
            });
        }
        let header = Header::from_byte_slice(&block);
        let kind = header.entry_type();
        let name = self
            .pending
            .path
            .take()
            .unwrap_or_else(|| header.path_bytes().into_owned());
        let shown = || String::from_utf8_lossy(&name).into_owned();
        // Some writers leave the size of links and directories empty.
        let size_field = &header.as_old().size;
        let header_size = if size_field.iter().all(|&b| b == 0 || b == b' ') {
            0
        } else {
            header.entry_size().map_err(|_| Error::Layout {
                entry: shown(),
                reason: "size field is not a number".into(),
            })?
        };
        let mut data_offset = offset_after(pos, BLOCK, &here)?;
        // Old GNU sparse headers may be followed by extension blocks.
        if kind.is_gnu_sparse() && block[482] != 0 {
            let mut ext = [0u8; BLOCK as usize];
            loop {
                let got = self.read(&mut ext, data_offset, &shown)?;
                if got < BLOCK as usize {
                    return Err(truncated(shown(), BLOCK, got as u64));
                }
                data_offset = offset_after(data_offset, BLOCK, &shown)?;
                if ext[504] == 0 {
                    break;
                }
            }
        }
        let is_extension = kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink();
        let size = if is_extension {
            header_size
        } else {
            self.pending.size.take().unwrap_or(header_size)
        };
        let available = self.source.available(data_offset);
        if let Some(available) = available.filter(|&a| size > a) {
            return Err(truncated(shown(), size, available));
        }
        // A size whose padded end passes 2^64 can only be hostile: refused
        // here rather than wrapped into a small offset.
        let padded_size = size
            .checked_next_multiple_of(BLOCK)
            .ok_or_else(|| too_large(shown(), size))?;
        self.next = data_offset
            .checked_add(padded_size.min(available.unwrap_or(u64::MAX)))
            .ok_or_else(|| too_large(shown(), size))?;
        if kind.is_pax_local_extensions() || kind.is_gnu_longname() || kind.is_gnu_longlink() {
            let data = self.read_extension(data_offset, size, &shown)?;
            if kind.is_gnu_longname() {
                self.pending.path = Some(trim_nul(data));
            } else if kind.is_gnu_longlink() {
                self.pending.link = Some(trim_nul(data));
            } else {
                apply_pax(&data, &mut self.pending, &shown)?;
            }
            return Ok(None);
        }
        if is_extension {
            // A global pax header: skipped, as every reader does.
            self.skip_stream_data(data_offset, size, &shown)?;
            return Ok(None);
        }
        let link = self
            .pending
            .link
            .take()
            .or_else(|| header.link_name_bytes().map(|l| l.into_owned()));
        Ok(Some(RawEntry {
            name,
            kind,
            link,
            data_offset,
            size,
        }))
    }

    fn read(&mut self, buf: &mut [u8], at: u64, what: &dyn Fn() -> String) -> Result<usize> {
        self.source.read_at(buf, at).map_err(|source| Error::Io {
            context: format!("reading the archive at {}", what()),
            source,
        })
    }

    fn read_extension(&mut self, at: u64, size: u64, what: &dyn Fn() -> String) -> Result<Vec<u8>> {
        if size > MAX_EXTENSION {
            return Err(Error::Layout {
                entry: what(),
                reason: format!(
                    "extension header of {size} bytes, more than the {MAX_EXTENSION} allowed"
                ),
            });
        }
        // `size` is at most MAX_EXTENSION here, so padding cannot overflow.
        let mut data = vec![0; size.next_multiple_of(BLOCK) as usize];
        let want = if self.source.available(at).is_some() {
            size as usize
        } else {
            data.len()
        };
        let got = self.read(&mut data[..want], at, what)?;
        if got < want {
            return Err(truncated(what(), size, got.min(size as usize) as u64));
        }
        data.truncate(size as usize);
        Ok(data)
    }

    /// On a stream, read past data nobody wants (a global pax header).
    fn skip_stream_data(&mut self, at: u64, size: u64, what: &dyn Fn() -> String) -> Result<()> {
        if self.source.available(at).is_none() {
            self.read_extension(at, size, what)?;
        }
        Ok(())
    }
}

/// Scan the tar in `file` (of length `len`), calling `each` for every entry
/// that is not itself an extension header. Stops at the first zero block or
/// at the end of the file.
pub(crate) fn scan(
    file: &PartSet,
    len: u64,
    mut each: impl FnMut(RawEntry) -> Result<()>,
) -> Result<()> {
    let mut scanner = Scanner::new(FileSource { file, len });
    while let Some(entry) = scanner.next_entry()? {
        each(entry)?;
    }
    Ok(())
}

/// `offset + len`, or an error for an archive that claims to pass 2^64 bytes.
fn offset_after(offset: u64, len: u64, what: &dyn Fn() -> String) -> Result<u64> {
    offset.checked_add(len).ok_or_else(|| Error::Layout {
        entry: what(),
        reason: "offset beyond 2^64 bytes: not a real archive".into(),
    })
}

/// The error for an entry whose declared size, padded to whole blocks, ends
/// beyond 2^64 bytes.
fn too_large(entry: String, size: u64) -> Error {
    Error::Layout {
        entry,
        reason: format!(
            "declares {size} bytes of data, which ends beyond 2^64 bytes: hostile or corrupt"
        ),
    }
}

/// The error for an entry whose data is cut short.
pub(crate) fn truncated(entry: String, declared: u64, available: u64) -> Error {
    Error::Truncated {
        entry,
        declared,
        available,
    }
}

fn trim_nul(mut data: Vec<u8>) -> Vec<u8> {
    while data.last() == Some(&0) {
        data.pop();
    }
    data
}

fn apply_pax(data: &[u8], pending: &mut Pending, what: &dyn Fn() -> String) -> Result<()> {
    let bad = |reason: String| Error::Layout {
        entry: what(),
        reason,
    };
    for ext in PaxExtensions::new(data) {
        let ext = ext.map_err(|_| bad("malformed pax extension record".into()))?;
        match ext.key_bytes() {
            b"path" => pending.path = Some(ext.value_bytes().to_vec()),
            b"linkpath" => pending.link = Some(ext.value_bytes().to_vec()),
            b"size" => {
                let size = ext
                    .value()
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| bad("pax size is not a number".into()))?;
                pending.size = Some(size);
            }
            _ => {}
        }
    }
    Ok(())
}
