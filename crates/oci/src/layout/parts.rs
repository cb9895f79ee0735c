//! A bundle as one file or as an ordered set of parts, read (and written)
//! as one byte range.
//!
//! `ferry pack --split SIZE` cuts the planned archive into parts
//! `OUT.tar.000`, `OUT.tar.001`, … of exactly `SIZE` bytes but the last;
//! concatenated they are the single-file bundle byte for byte. A
//! [`PartSet`] maps an archive offset to (part, offset in part), so every
//! positioned read or write lands in the right file and one that straddles
//! a boundary is cut in two. A plain file is a set of one part, so the
//! reader has one code path whatever shape the bundle arrived in.
//!
//! Opening a set checks what can be checked without reading it: parts
//! numbered from `000` with no gap, every part but the last of one size,
//! the last no larger and not empty, and, when `OUT.tar.sha256` lists
//! parts, exactly the parts it lists (a missing last part or a stale extra
//! part is named). Damage inside a part is found by hashing it
//! (`ferry verify`) or when a blob spanning it fails its digest.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::checksums::ChecksumFile;
use crate::{Error, Result};

/// The most data parts a set may have (`000` to `999`).
pub const MAX_PARTS: usize = 1000;

/// The path of data part `index` of the bundle `base`: `base.000`.
pub fn part_path(base: &Path, index: usize) -> PathBuf {
    suffixed(base, &format!(".{index:03}"))
}

/// The path of parity part `index` of the bundle `base`: `base.p00`,
/// named apart from the data parts so `cat base.[0-9]*` is the bundle.
pub fn parity_path(base: &Path, index: usize) -> PathBuf {
    suffixed(base, &format!(".p{index:02}"))
}

/// The checksum file of the bundle `base`: `base.sha256`.
pub fn checksum_path(base: &Path) -> PathBuf {
    suffixed(base, ".sha256")
}

/// `base` with `suffix` added to its file name: `OUT.tar` and `.sha256`
/// give `OUT.tar.sha256`. Every name beside a bundle is made so.
pub fn suffixed(base: &Path, suffix: &str) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// If `path` names a data part (`X.NNN`, three digits), the bundle `X` and
/// the part's index.
pub fn split_part_path(path: &Path) -> Option<(PathBuf, usize)> {
    let name = path.file_name()?.to_str()?;
    let (stem, digits) = name.rsplit_once('.')?;
    if stem.is_empty() || digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((path.with_file_name(stem), digits.parse().ok()?))
}

/// One file of a set.
#[derive(Debug)]
struct Part {
    path: PathBuf,
    file: File,
    len: u64,
    /// Written to since its data was last flushed to disk.
    unflushed: AtomicBool,
}

/// A byte range stored as one file or as consecutive parts of equal size
/// (but the last), with positioned reads and writes across part
/// boundaries. Shared by reference: every method takes `&self`.
#[derive(Debug)]
pub struct PartSet {
    parts: Vec<Part>,
    /// The size of every part but the last.
    part_size: u64,
    len: u64,
}

impl PartSet {
    /// One plain file.
    pub fn single(path: &Path, file: File) -> io::Result<PartSet> {
        let len = file.metadata()?.len();
        Ok(PartSet {
            parts: vec![Part {
                path: path.to_path_buf(),
                file,
                len,
                unflushed: AtomicBool::new(false),
            }],
            part_size: len.max(1),
            len,
        })
    }

    /// Files to be written as parts of `part_size` bytes holding `len`
    /// bytes in all; `files` must be as many as
    /// [`parts_needed`](Self::parts_needed) says. Call
    /// [`set_lengths`](Self::set_lengths) before writing.
    pub fn for_writing(files: Vec<(PathBuf, File)>, part_size: u64, len: u64) -> PartSet {
        assert!(part_size > 0, "a part holds at least one byte");
        assert_eq!(files.len(), Self::parts_needed(len, part_size));
        let count = files.len() as u64;
        let parts = files
            .into_iter()
            .enumerate()
            .map(|(i, (path, file))| {
                let i = i as u64;
                let part_len = if i + 1 == count {
                    len - i * part_size
                } else {
                    part_size
                };
                // An earlier run's pages may not be on disk yet either.
                Part {
                    path,
                    file,
                    len: part_len,
                    unflushed: AtomicBool::new(true),
                }
            })
            .collect();
        PartSet {
            parts,
            part_size,
            len,
        }
    }

    /// How many parts of `part_size` bytes hold `len` bytes (at least one).
    pub fn parts_needed(len: u64, part_size: u64) -> usize {
        (len.div_ceil(part_size.max(1)).max(1)) as usize
    }

    /// Open the bundle at `path`: a plain file, or, when `path` is the first
    /// part of a set (`X.000`), or names a bundle `X` that is not there but
    /// whose `X.000` is, the whole set. Checks the set as the module
    /// documentation says.
    pub fn open(path: &Path) -> Result<PartSet> {
        if let Some((base, index)) = split_part_path(path) {
            if index != 0 {
                return Err(part_error(
                    path,
                    format!(
                        "this is part {} of a split bundle; open its first part, {}",
                        index + 1,
                        part_path(&base, 0).display()
                    ),
                ));
            }
            return Self::open_set(&base);
        }
        if !path.exists() && part_path(path, 0).is_file() {
            return Self::open_set(path);
        }
        let file = File::open(path).map_err(|e| io_err(e, "opening", path))?;
        let meta = file.metadata().map_err(|e| io_err(e, "reading", path))?;
        if !meta.is_file() {
            return Err(Error::Layout {
                entry: path.display().to_string(),
                reason: "not a regular file; ferry reads archives by offset, \
                    so save a stream to a file first"
                    .into(),
            });
        }
        Self::single(path, file).map_err(|e| io_err(e, "reading", path))
    }

    /// Check a list of parts as given on a command line and return the
    /// first: every data part of one set, in order, none twice, none left
    /// out. `X.sha256` and parity parts (`X.pNN`) in the list are passed
    /// over, so `ferry verify OUT.tar.*` works.
    pub fn check_list(paths: &[PathBuf]) -> Result<PathBuf> {
        let Some(first) = paths.first() else {
            return Err(Error::Layout {
                entry: "(no bundle)".into(),
                reason: "name the bundle or its parts".into(),
            });
        };
        if paths.len() == 1 {
            return Ok(first.clone());
        }
        let Some((base, _)) = split_part_path(first) else {
            return Err(part_error(
                first,
                "several bundles given: name one bundle, or the parts of one split \
                 bundle (OUT.tar.000 OUT.tar.001 ...)",
            ));
        };
        let mut expected = 0usize;
        for path in paths {
            if *path == checksum_path(&base) || is_parity_of(path, &base) {
                continue;
            }
            match split_part_path(path) {
                Some((b, i)) if b == base => {
                    if i < expected {
                        let why = if i + 1 == expected {
                            "is listed twice"
                        } else {
                            "is listed out of order"
                        };
                        return Err(part_error(path, format!("{why}; list the parts in order")));
                    }
                    if i > expected {
                        let wanted = part_path(&base, expected);
                        if paths.contains(&wanted) {
                            return Err(part_error(
                                path,
                                format!(
                                    "is listed before {}; list the parts in order",
                                    wanted.display()
                                ),
                            ));
                        }
                        return Err(part_error(&wanted, "is missing from the list of parts"));
                    }
                    expected += 1;
                }
                _ => {
                    return Err(part_error(
                        path,
                        format!(
                            "is not a part of {} (parts are named {})",
                            base.display(),
                            part_path(&base, 0).display()
                        ),
                    ))
                }
            }
        }
        let next = part_path(&base, expected);
        if next.exists() {
            return Err(part_error(
                &next,
                "exists but was not listed; list every part, or give only the first",
            ));
        }
        Ok(part_path(&base, 0))
    }

    fn open_set(base: &Path) -> Result<PartSet> {
        let mut paths = Vec::new();
        while paths.len() < MAX_PARTS {
            let path = part_path(base, paths.len());
            if !path.exists() {
                break;
            }
            paths.push(path);
        }
        if let Some(later) = later_part(base, paths.len()) {
            return Err(part_error(
                &part_path(base, paths.len()),
                format!(
                    "is missing ({} is there): copy the missing part, \
                     or repair the set if it has parity parts",
                    later.display()
                ),
            ));
        }
        let sums = checksum_path(base);
        if sums.is_file() {
            let sums = ChecksumFile::load(&sums)?;
            check_listed(base, &paths, &sums)?;
        }
        let mut parts = Vec::with_capacity(paths.len());
        for path in paths {
            let file = File::open(&path).map_err(|e| io_err(e, "opening", &path))?;
            let meta = file.metadata().map_err(|e| io_err(e, "reading", &path))?;
            if !meta.is_file() {
                return Err(part_error(&path, "is not a regular file"));
            }
            parts.push(Part {
                path,
                file,
                len: meta.len(),
                unflushed: AtomicBool::new(false),
            });
        }
        let part_size = parts[0].len;
        let last = parts.len() - 1;
        for (i, part) in parts.iter().enumerate() {
            if part.len == 0 {
                return Err(part_error(&part.path, "is empty: truncated or not copied"));
            }
            if i < last && part.len != part_size {
                return Err(part_error(
                    &part.path,
                    format!(
                        "is {} bytes, but every part before the last is {part_size} bytes \
                         (as {} is): truncated, or from another pack",
                        part.len,
                        parts[0].path.display()
                    ),
                ));
            }
            if i == last && part.len > part_size {
                return Err(part_error(
                    &part.path,
                    format!(
                        "is {} bytes, more than the {part_size} of {}: the last part is never \
                         larger; parts from two packs, or out of order",
                        part.len,
                        parts[0].path.display()
                    ),
                ));
            }
        }
        let len = part_size * last as u64 + parts[last].len;
        Ok(PartSet {
            parts,
            part_size,
            len,
        })
    }

    /// The length of the whole range.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether this is a set of more than one file, or one `X.000` part.
    pub fn is_split(&self) -> bool {
        self.parts.len() > 1 || split_part_path(&self.parts[0].path).is_some()
    }

    /// The size of every part but the last.
    pub fn part_size(&self) -> u64 {
        self.part_size
    }

    /// Each part's path, first offset in the whole, and length, in order.
    pub fn parts(&self) -> impl Iterator<Item = (&Path, u64, u64)> {
        self.parts
            .iter()
            .enumerate()
            .map(|(i, p)| (p.path.as_path(), i as u64 * self.part_size, p.len))
    }

    /// The indexes of the parts holding `[offset, offset + len)`.
    pub fn parts_of(&self, offset: u64, len: u64) -> std::ops::RangeInclusive<usize> {
        let first = self.index_of(offset);
        let last = self.index_of(offset + len.saturating_sub(1).min(u64::MAX - offset));
        first..=last
    }

    fn index_of(&self, offset: u64) -> usize {
        ((offset / self.part_size) as usize).min(self.parts.len() - 1)
    }

    /// Where `offset` is, for messages: `offset N` for a plain file,
    /// `offset N (PART at byte M)` in a set.
    pub fn describe(&self, offset: u64) -> String {
        if !self.is_split() {
            return format!("offset {offset}");
        }
        let i = self.index_of(offset);
        let part = &self.parts[i];
        format!(
            "offset {offset} ({} at byte {})",
            part.path.display(),
            offset - i as u64 * self.part_size
        )
    }

    /// Read up to `buf.len()` bytes at `offset`, across parts; fewer only
    /// at the end of the range. A part shorter than when it was opened is
    /// an error naming it.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let want = (buf.len() as u64).min(self.len.saturating_sub(offset)) as usize;
        let mut done = 0;
        while done < want {
            let pos = offset + done as u64;
            let i = self.index_of(pos);
            let part = &self.parts[i];
            let at = pos - i as u64 * self.part_size;
            let n = ((want - done) as u64).min(part.len - at) as usize;
            part.file
                .read_exact_at(&mut buf[done..done + n], at)
                .map_err(|e| {
                    let hint = match e.kind() {
                        io::ErrorKind::UnexpectedEof => " (was it truncated while open?)",
                        _ => "",
                    };
                    let path = part.path.display();
                    io::Error::new(e.kind(), format!("reading {path} at byte {at}: {e}{hint}"))
                })?;
            done += n;
        }
        Ok(done)
    }

    /// Read exactly `buf.len()` bytes at `offset`.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let n = self.read_at(buf, offset)?;
        if n < buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the bundle ends at byte {}", self.len),
            ));
        }
        Ok(())
    }

    /// Write all of `buf` at `offset`, cut at part boundaries.
    pub fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let pos = offset + done as u64;
            let i = self.index_of(pos);
            let part = &self.parts[i];
            let at = pos - i as u64 * self.part_size;
            if at >= part.len && i + 1 == self.parts.len() && self.parts.len() > 1 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("write beyond the planned end, at byte {pos}"),
                ));
            }
            let room = if self.parts.len() == 1 {
                u64::MAX
            } else {
                part.len - at
            };
            let n = ((buf.len() - done) as u64).min(room) as usize;
            part.file.write_all_at(&buf[done..done + n], at)?;
            part.unflushed.store(true, Ordering::Release);
            done += n;
        }
        Ok(())
    }

    /// The first offset in `[offset, offset + len)` that lies in a hole of
    /// its file — a range never written since the file was sized, which
    /// reads as zeros — or `None` when every byte there was written, as far
    /// as the file system tells (one that keeps no holes says every byte
    /// was). Holes are whole file-system blocks: the written bytes just
    /// before one may be followed by zeros that were never written.
    pub fn first_hole(&self, offset: u64, len: u64) -> io::Result<Option<u64>> {
        let end = offset.saturating_add(len).min(self.len);
        let mut pos = offset;
        while pos < end {
            let i = self.index_of(pos);
            let part = &self.parts[i];
            let base = i as u64 * self.part_size;
            let until = if i + 1 == self.parts.len() {
                end
            } else {
                end.min(base + part.len)
            };
            let hole = match rustix::fs::seek(&part.file, rustix::fs::SeekFrom::Hole(pos - base)) {
                Ok(h) => h,
                // At or past the file's end: all hole (a truncated part).
                Err(rustix::io::Errno::NXIO) => pos - base,
                Err(e) => return Err(e.into()),
            };
            if base + hole < until {
                return Ok(Some((base + hole).max(pos)));
            }
            pos = until;
        }
        Ok(None)
    }

    /// Give every part its planned length (sparse, zero-filled).
    pub fn set_lengths(&self) -> io::Result<()> {
        for part in &self.parts {
            part.file.set_len(part.len)?;
        }
        Ok(())
    }

    /// Flush the data of every part written to since the last call (or,
    /// for a set opened for writing, since it was opened) to disk. Called
    /// from a thread while a bundle is being written, it keeps the disk
    /// busy alongside the network, so that the final
    /// [`sync_all`](Self::sync_all) has little left to wait for; otherwise the kernel
    /// may hold every written byte in memory until then.
    pub fn flush_written(&self) -> io::Result<()> {
        for part in &self.parts {
            if part.unflushed.swap(false, Ordering::AcqRel) {
                part.file.sync_data().inspect_err(|_| {
                    part.unflushed.store(true, Ordering::Release);
                })?;
            }
        }
        Ok(())
    }

    /// Flush every part to disk.
    pub fn sync_all(&self) -> io::Result<()> {
        for part in &self.parts {
            part.file.sync_all()?;
        }
        Ok(())
    }

    /// A reader over the whole range, front to back.
    pub fn reader(&self) -> PartSetReader<'_> {
        PartSetReader { set: self, pos: 0 }
    }
}

/// Reads a [`PartSet`] front to back.
pub struct PartSetReader<'a> {
    set: &'a PartSet,
    pos: u64,
}

impl Read for PartSetReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.set.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Whether `path` is a parity part of `base` (`base.pNN`).
fn is_parity_of(path: &Path, base: &Path) -> bool {
    let (Some(name), Some(base_name)) = (path.file_name(), base.file_name()) else {
        return false;
    };
    let (Some(name), Some(base_name)) = (name.to_str(), base_name.to_str()) else {
        return false;
    };
    path.parent() == base.parent()
        && name
            .strip_prefix(base_name)
            .and_then(|rest| rest.strip_prefix(".p"))
            .is_some_and(|d| d.len() == 2 && d.bytes().all(|b| b.is_ascii_digit()))
}

/// A data part of `base` numbered after `count` (a gap in the numbering).
fn later_part(base: &Path, count: usize) -> Option<PathBuf> {
    let dir = match base.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut later: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let path = base.with_file_name(e.file_name());
            let (b, i) = split_part_path(&path)?;
            (b == base && i > count).then_some((i, path))
        })
        .collect();
    later.sort();
    later.into_iter().next().map(|(_, p)| p)
}

/// When the checksum file lists data parts, the parts found must be exactly
/// those.
fn check_listed(base: &Path, found: &[PathBuf], sums: &ChecksumFile) -> Result<()> {
    let listed: Vec<usize> = sums
        .entries()
        .iter()
        .filter_map(|(_, name)| split_part_path(&base.with_file_name(name)))
        .filter(|(b, _)| b == base)
        .map(|(_, i)| i)
        .collect();
    if listed.is_empty() {
        // Written for the whole file only (e.g. parts made with `split`).
        return Ok(());
    }
    let count = listed.iter().max().map_or(0, |m| m + 1);
    if found.len() < count {
        return Err(part_error(
            &part_path(base, found.len()),
            format!(
                "is missing: {} lists {count} parts, {} are here",
                checksum_path(base).display(),
                found.len()
            ),
        ));
    }
    if found.len() > count {
        return Err(part_error(
            &found[count],
            format!(
                "is not listed in {}, which lists {count} parts: a stale part from an \
                 earlier pack? remove it",
                checksum_path(base).display()
            ),
        ));
    }
    Ok(())
}

fn part_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Part {
        part: path.display().to_string(),
        reason: reason.into(),
    }
}

fn io_err(source: io::Error, doing: &str, path: &Path) -> Error {
    Error::Io {
        context: format!("{doing} {}", path.display()),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_of(dir: &Path, data: &[u8], size: usize) -> PathBuf {
        let base = dir.join("b.tar");
        for (i, chunk) in data.chunks(size).enumerate() {
            std::fs::write(part_path(&base, i), chunk).unwrap();
        }
        base
    }

    #[test]
    fn reads_across_part_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let base = set_of(dir.path(), &data, 1000);
        let set = PartSet::open(&part_path(&base, 0)).unwrap();
        assert_eq!(set.len(), 10_000);
        assert_eq!(set.parts().count(), 10);
        for (offset, len) in [(0, 10_000), (999, 2), (1500, 3000), (9990, 10)] {
            let mut buf = vec![0; len];
            set.read_exact_at(&mut buf, offset as u64).unwrap();
            assert_eq!(buf, data[offset..offset + len]);
        }
        let mut all = Vec::new();
        set.reader().read_to_end(&mut all).unwrap();
        assert_eq!(all, data);
        assert_eq!(set.parts_of(999, 2), 0..=1);
        assert!(set.describe(1001).contains("b.tar.001 at byte 1"));
        // Opening the bundle's own name finds the set.
        assert_eq!(PartSet::open(&base).unwrap().len(), 10_000);
    }

    /// Three empty files `STEM.000` to `STEM.002` in `dir`, to write a set to.
    fn part_files(dir: &Path, stem: &str) -> Vec<(PathBuf, File)> {
        (0..3)
            .map(|i| {
                let p = dir.join(format!("{stem}.{i:03}"));
                let mut options = File::options();
                let f = options.read(true).write(true).create(true).truncate(true);
                (p.clone(), f.open(&p).unwrap())
            })
            .collect()
    }

    #[test]
    fn writes_across_part_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let files = part_files(dir.path(), "w");
        let set = PartSet::for_writing(files, 4, 10);
        set.set_lengths().unwrap();
        set.write_all_at(b"abcdefghij", 0).unwrap();
        assert_eq!(std::fs::read(dir.path().join("w.001")).unwrap(), b"efgh");
        assert_eq!(std::fs::read(dir.path().join("w.002")).unwrap(), b"ij");
        assert!(set.write_all_at(b"x", 10).is_err());
    }

    #[test]
    fn only_parts_written_since_the_last_flush_are_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let files = part_files(dir.path(), "f");
        let set = PartSet::for_writing(files, 4, 10);
        let unflushed = |set: &PartSet| -> Vec<bool> {
            set.parts
                .iter()
                .map(|p| p.unflushed.load(Ordering::Acquire))
                .collect()
        };
        // Files being written may hold an earlier run's unflushed pages.
        assert_eq!(unflushed(&set), [true, true, true]);
        set.flush_written().unwrap();
        assert_eq!(unflushed(&set), [false, false, false]);
        set.write_all_at(b"fgh", 5).unwrap();
        assert_eq!(unflushed(&set), [false, true, false]);
        set.write_all_at(b"defghi", 3).unwrap();
        assert_eq!(unflushed(&set), [true, true, true]);
        set.flush_written().unwrap();
        assert_eq!(unflushed(&set), [false, false, false]);
        // A set opened for reading has nothing of its own to flush.
        let read = PartSet::open(&dir.path().join("f.000")).unwrap();
        assert_eq!(unflushed(&read), [false, false, false]);
    }

    #[test]
    fn holes_are_found_across_parts() {
        let dir = tempfile::tempdir().unwrap();
        let files = part_files(dir.path(), "h");
        let block = 1 << 16;
        let set = PartSet::for_writing(files, 4 * block, 10 * block);
        set.set_lengths().unwrap();
        set.write_all_at(&vec![1u8; 5 * block as usize], 0).unwrap();
        assert_eq!(set.first_hole(0, 5 * block).unwrap(), None);
        assert_eq!(set.first_hole(block, 2 * block).unwrap(), None);
        // On a file system that keeps holes (every one ferry is tested on).
        assert_eq!(set.first_hole(0, 10 * block).unwrap(), Some(5 * block));
        assert_eq!(set.first_hole(6 * block, block).unwrap(), Some(6 * block));
    }

    #[test]
    fn a_gap_a_short_part_or_a_later_part_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let base = set_of(dir.path(), &[7u8; 3500], 1000);
        std::fs::rename(part_path(&base, 1), dir.path().join("elsewhere")).unwrap();
        let err = PartSet::open(&part_path(&base, 0)).unwrap_err().to_string();
        assert!(
            err.contains("b.tar.001") && err.contains("missing"),
            "{err}"
        );
        std::fs::write(part_path(&base, 1), [7u8; 999]).unwrap();
        let err = PartSet::open(&part_path(&base, 0)).unwrap_err().to_string();
        assert!(
            err.contains("b.tar.001") && err.contains("999 bytes"),
            "{err}"
        );
        std::fs::write(part_path(&base, 1), [7u8; 1000]).unwrap();
        std::fs::write(part_path(&base, 3), [7u8; 1001]).unwrap();
        let err = PartSet::open(&part_path(&base, 0)).unwrap_err().to_string();
        assert!(err.contains("b.tar.003") && err.contains("larger"), "{err}");
        let err = PartSet::open(&part_path(&base, 2)).unwrap_err().to_string();
        assert!(err.contains("open its first part"), "{err}");
    }

    #[test]
    fn the_checksum_file_names_a_missing_last_part_or_a_stale_one() {
        let dir = tempfile::tempdir().unwrap();
        let base = set_of(dir.path(), &[1u8; 2500], 1000);
        let sums = "H  b.tar.000\nH  b.tar.001\nH  b.tar.002\nH  b.tar.003\nH  b.tar\n";
        std::fs::write(checksum_path(&base), sums.replace('H', &"a".repeat(64))).unwrap();
        let err = PartSet::open(&base).unwrap_err().to_string();
        assert!(err.contains("b.tar.003 is missing"), "{err}");
        let sums = "H  b.tar.000\nH  b.tar.001\nH  b.tar\n";
        std::fs::write(checksum_path(&base), sums.replace('H', &"a".repeat(64))).unwrap();
        let err = PartSet::open(&base).unwrap_err().to_string();
        assert!(err.contains("b.tar.002") && err.contains("stale"), "{err}");
    }

    #[test]
    fn lists_must_be_whole_ordered_and_of_one_set() {
        let dir = tempfile::tempdir().unwrap();
        let base = set_of(dir.path(), &[1u8; 2500], 1000);
        let p = |i| part_path(&base, i);
        let all = [
            p(0),
            p(1),
            p(2),
            checksum_path(&base),
            parity_path(&base, 0),
        ];
        assert_eq!(PartSet::check_list(&all).unwrap(), p(0));
        for (list, needle) in [
            (vec![p(0), p(2), p(1)], "b.tar.002 is listed before"),
            (vec![p(0), p(2)], "b.tar.001 is missing from the list"),
            (vec![p(0), p(1), p(1), p(2)], "listed twice"),
            (vec![p(0), p(1)], "b.tar.002 exists but was not listed"),
            (
                vec![p(0), dir.path().join("other.tar.001")],
                "is not a part of",
            ),
        ] {
            let err = PartSet::check_list(&list).unwrap_err().to_string();
            assert!(err.contains(needle), "{err} / {needle}");
        }
    }
}
