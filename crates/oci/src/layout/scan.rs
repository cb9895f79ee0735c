//! One pass over tar headers, by offset, trusting nothing.
//!
//! The scanner reads each 512-byte header with a positioned read and jumps
//! over the data, so a plain archive of any size costs one small read per
//! entry. pax and GNU long-name extensions are applied; every declared size
//! is checked against the file's length before anything is read, and the
//! only data read into memory is extension records (capped).

use std::fs::File;
use std::os::unix::fs::FileExt;

use tar::{EntryType, Header, PaxExtensions};

use super::tarfmt::{checksum_ok, padded, BLOCK};
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

/// Extension values waiting for the entry they describe.
#[derive(Default)]
struct Pending {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
}

/// Scan the tar in `file` (of length `len`), calling `each` for every entry
/// that is not itself an extension header. Stops at the first zero block or
/// at the end of the file.
pub(crate) fn scan(
    file: &File,
    len: u64,
    mut each: impl FnMut(RawEntry) -> Result<()>,
) -> Result<()> {
    let mut pos = 0u64;
    let mut pending = Pending::default();
    let mut block = [0u8; BLOCK as usize];
    while pos < len {
        let here = || format!("header at offset {pos}");
        if len - pos < BLOCK {
            return Err(Error::Truncated {
                entry: here(),
                declared: BLOCK,
                available: len - pos,
            });
        }
        read_at(file, &mut block, pos, &here)?;
        if block.iter().all(|&b| b == 0) {
            return Ok(());
        }
        if !checksum_ok(&block) {
            return Err(Error::Layout {
                entry: here(),
                reason: "header checksum does not match: not a tar archive, or corrupt".into(),
            });
        }
        let header = Header::from_byte_slice(&block);
        let kind = header.entry_type();
        let name = pending
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
        let mut data_offset = pos + BLOCK;
        // Old GNU sparse headers may be followed by extension blocks.
        if kind.is_gnu_sparse() && block[482] != 0 {
            let mut ext = [0u8; BLOCK as usize];
            loop {
                if len - data_offset < BLOCK {
                    return Err(truncated(shown(), BLOCK, len - data_offset));
                }
                read_at(file, &mut ext, data_offset, &shown)?;
                data_offset += BLOCK;
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
            pending.size.take().unwrap_or(header_size)
        };
        let available = len - data_offset;
        if size > available {
            return Err(truncated(shown(), size, available));
        }
        let next = data_offset + padded(size).min(available);
        if kind.is_pax_local_extensions() || kind.is_gnu_longname() || kind.is_gnu_longlink() {
            let data = read_extension(file, data_offset, size, &shown)?;
            if kind.is_gnu_longname() {
                pending.path = Some(trim_nul(data));
            } else if kind.is_gnu_longlink() {
                pending.link = Some(trim_nul(data));
            } else {
                apply_pax(&data, &mut pending, &shown)?;
            }
        } else if !kind.is_pax_global_extensions() {
            let link = pending
                .link
                .take()
                .or_else(|| header.link_name_bytes().map(|l| l.into_owned()));
            each(RawEntry {
                name,
                kind,
                link,
                data_offset,
                size,
            })?;
        }
        pos = next;
    }
    Ok(())
}

fn truncated(entry: String, declared: u64, available: u64) -> Error {
    Error::Truncated {
        entry,
        declared,
        available,
    }
}

fn read_at(file: &File, buf: &mut [u8], at: u64, what: &dyn Fn() -> String) -> Result<()> {
    file.read_exact_at(buf, at).map_err(|source| Error::Io {
        context: format!("reading the archive at {}", what()),
        source,
    })
}

fn read_extension(file: &File, at: u64, size: u64, what: &dyn Fn() -> String) -> Result<Vec<u8>> {
    if size > MAX_EXTENSION {
        return Err(Error::Layout {
            entry: what(),
            reason: format!(
                "extension header of {size} bytes, more than the {MAX_EXTENSION} allowed"
            ),
        });
    }
    let mut data = vec![0; size as usize];
    read_at(file, &mut data, at, what)?;
    Ok(data)
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
