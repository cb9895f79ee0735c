//! Resuming a pack that stopped: killed, interrupted, or left without its
//! registry halfway.
//!
//! A pack writes its bundle under fixed names beside the output —
//! `OUT.partial`, or `OUT.000.partial`, `OUT.001.partial`, … with
//! `--split` — and, before it fetches a byte, a small record
//! `OUT.resume.json` (format in `docs/resume.md`) saying what those files
//! are meant to become: a fingerprint of the arguments that decide the
//! bundle's bytes and one of the plan (every blob's digest, size and
//! offset). A run that fails leaves both; a run that succeeds renames the
//! partial files into place and removes the record.
//!
//! Run again, the pack resolves and plans as always. When the record
//! matches both fingerprints, the partial files are kept as they are and
//! every blob planned in them is checked by hash where it lies (a blob
//! written whole as the archive's sha256 passes it, see
//! `ArchiveHasher::reused`; a beginning cut short here, [`look_for`]): a
//! blob whose bytes hash to its digest stays, a beginning is continued,
//! any other (never written, damaged) is fetched. The record is not a
//! journal of what landed — nothing it says
//! is trusted for content, only the hash is — so a file edited by hand, a
//! crash between a write and its record, or a record from elsewhere can
//! cost a refetch but never give a wrong bundle. The skeleton (headers,
//! `index.json`) and the manifests are written again every time.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use ferry_oci::layout::{parity_path, part_path, suffixed, LayoutPlan, PartSet, MAX_PARTS};
use ferry_oci::{fsutil, Digest, Platform, Progress, Reference};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The record's `format` value.
const FORMAT: &str = "ferry-pack-resume";
/// The record's version this ferry writes and reads.
pub(crate) const VERSION: u32 = 1;
/// A record larger than this is not one ferry wrote.
const MAX_RECORD: u64 = 16 << 20;
/// A blob whose first bytes (this many at most) are all zero was most
/// likely never written: it is fetched whole.
const HEAD: u64 = 4096;

/// `OUT.partial`, or with `--split` the partial of part `part`:
/// `OUT.000.partial`.
pub fn partial_path(output: &Path, part: Option<usize>) -> PathBuf {
    match part {
        Some(i) => suffixed(&part_path(output, i), ".partial"),
        None => suffixed(output, ".partial"),
    }
}

/// The partial of parity part `index`: `OUT.p00.partial`.
pub(crate) fn parity_partial_path(output: &Path, index: usize) -> PathBuf {
    suffixed(&parity_path(output, index), ".partial")
}

/// `OUT.resume.json`, the record of what the partial files are.
pub fn record_path(output: &Path) -> PathBuf {
    suffixed(output, ".resume.json")
}

/// What identifies one pack's bundle before it is planned.
#[derive(Debug, Clone)]
pub(crate) struct ResumeKey {
    /// Fingerprint of the arguments that decide the bytes.
    pub arguments: String,
    /// Each reference's resolved top manifest, for messages.
    pub images: BTreeMap<String, String>,
    /// `--fresh`: discard whatever is there.
    pub fresh: bool,
}

impl ResumeKey {
    /// The key of a pack of `references` (normalized, sorted, unique) with
    /// these options; `bases` are the sha256 of the `--since` bases.
    pub fn new(
        references: &[Reference],
        platforms: &[Platform],
        referrers: bool,
        bases: &[String],
        split: Option<u64>,
        parity: usize,
    ) -> ResumeKey {
        let mut platforms: Vec<String> = platforms.iter().map(|p| p.to_string()).collect();
        platforms.sort();
        platforms.dedup();
        let mut bases = bases.to_vec();
        bases.sort();
        let canonical = serde_json::json!({
            "references": references.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            "platforms": platforms,
            "referrers": referrers,
            "since": bases,
            "split": split,
            "parity": if split.is_some() { parity } else { 0 },
        });
        ResumeKey {
            arguments: Digest::sha256_of(canonical.to_string().as_bytes()).to_string(),
            images: BTreeMap::new(),
            fresh: false,
        }
    }
}

/// `OUT.resume.json`, version 1.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    format: String,
    version: u32,
    /// sha256 of the arguments that decide the bundle's bytes.
    arguments: String,
    /// [`LayoutPlan::fingerprint`].
    plan: String,
    /// The bundle's planned size.
    size: u64,
    /// `--split` part size, if any.
    part_size: Option<u64>,
    /// The partial files, by name, in order.
    partials: Vec<String>,
    /// Each reference and the digest it resolved to.
    images: BTreeMap<String, String>,
}

/// What a pack fetched, and what it found already written by an earlier
/// run of the same pack that stopped.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Transfer {
    /// Whether the partial bundle of an earlier run was reused.
    pub resumed: bool,
    /// Configs and layers found whole in it, not fetched again.
    pub blobs_reused: usize,
    /// Bytes found in it: those blobs, and the beginnings of those
    /// continued.
    pub bytes_reused: u64,
    /// Configs and layers fetched (continued ones included).
    pub blobs_fetched: usize,
    /// Of them, blobs begun by the stopped run and fetched from where it
    /// stopped (ranged requests).
    pub blobs_continued: usize,
    /// Bytes fetched.
    pub bytes_fetched: u64,
}

impl Transfer {
    /// A blob of `size` bytes landed, fetched from `from` on (after a
    /// beginning found in the partial bundle, when not 0).
    pub(crate) fn fetched(&mut self, size: u64, from: u64) {
        self.blobs_fetched += 1;
        self.blobs_continued += usize::from(from > 0);
        self.bytes_reused += from;
        self.bytes_fetched += size - from;
    }
}

/// Decide whether the partial files at `partials` (planned for `plan`) may
/// be reused, saying why not when there is something to say. Reads only:
/// [`clear_stale`] removes what is not reused, once the partial files are
/// locked.
pub(crate) fn decide(
    output: &Path,
    key: &ResumeKey,
    plan: &LayoutPlan,
    partials: &[PathBuf],
    progress: &dyn Progress,
) -> bool {
    let record_file = record_path(output);
    let there: Vec<PathBuf> = leftovers(output);
    let first = partials.first().map_or(String::new(), |p| name(p));
    if key.fresh {
        if !there.is_empty() || record_file.exists() {
            progress.warn(&format!(
                "--fresh: discarding the partial pack {first} and starting over"
            ));
        }
        return false;
    }
    match load(&record_file) {
        Ok(None) => {
            if let Some(p) = there.first() {
                progress.warn(&format!(
                    "{} has no {} beside it: not reused, starting over",
                    p.display(),
                    name(&record_file)
                ));
            }
            false
        }
        Err(why) => {
            progress.warn(&format!(
                "{} cannot be used ({why}): the partial pack is not reused, starting over",
                record_file.display()
            ));
            false
        }
        Ok(Some(record)) => match mismatch(&record, key, plan, partials) {
            Some(why) => {
                progress.warn(&format!(
                    "{first} is a partial pack {why}: not reused, starting over"
                ));
                false
            }
            None if !partials.iter().all(|p| p.is_file()) => {
                progress.warn(&format!(
                    "{} names partial files that are gone: starting over",
                    record_file.display()
                ));
                false
            }
            None => {
                progress.note(&format!(
                    "resuming the partial pack {first}: checking the blobs it holds"
                ));
                true
            }
        },
    }
}

/// Remove the partial files a pack to `output` left that are not `ours`
/// (another shape: an unsplit pack's when split, parts beyond the count,
/// parity parts), each locked first so a running pack's files are never
/// pulled from under it; and the record unless `reuse`.
pub(crate) fn clear_stale(output: &Path, ours: &[PathBuf], reuse: bool) -> Result<()> {
    for path in leftovers(output).iter().filter(|p| !ours.contains(p)) {
        let io = |action| {
            move |source| Error::Io {
                action,
                path: path.clone(),
                source,
            }
        };
        let locked =
            fsutil::open_partial(path).map_err(io("cannot remove the stale partial file"))?;
        fsutil::remove_if_there(path).map_err(io("cannot remove the stale partial file"))?;
        drop(locked);
    }
    if !reuse {
        forget(output)?;
    }
    Ok(())
}

/// Why `record` does not describe the partial files this pack would write,
/// as the rest of the sentence "X is a partial pack …".
fn mismatch(
    record: &Record,
    key: &ResumeKey,
    plan: &LayoutPlan,
    partials: &[PathBuf],
) -> Option<String> {
    let names: Vec<String> = partials.iter().map(|p| name(p)).collect();
    if record.arguments != key.arguments || record.partials != names {
        return Some(
            "made with other arguments (images, --platform, --no-referrers, --since, --split \
             or --parity differ)"
                .into(),
        );
    }
    if record.plan != plan.fingerprint().to_string() || record.size != plan.total_size() {
        let moved: Vec<String> = key
            .images
            .iter()
            .filter_map(|(r, now)| {
                let was = record.images.get(r)?;
                (was != now).then(|| format!("{r} is now {now}, was {was}"))
            })
            .collect();
        return Some(match moved.is_empty() {
            true => "of images whose content changed since (referrers or blobs)".into(),
            false => format!("of images that changed since ({})", moved.join("; ")),
        });
    }
    None
}

/// Write the record for this pack (atomically).
pub(crate) fn save(
    output: &Path,
    key: &ResumeKey,
    plan: &LayoutPlan,
    part_size: Option<u64>,
    partials: &[PathBuf],
) -> Result<()> {
    let record = Record {
        format: FORMAT.into(),
        version: VERSION,
        arguments: key.arguments.clone(),
        plan: plan.fingerprint().to_string(),
        size: plan.total_size(),
        part_size,
        partials: partials.iter().map(|p| name(p)).collect(),
        images: key.images.clone(),
    };
    let mut bytes = serde_json::to_vec_pretty(&record).expect("the record serializes");
    bytes.push(b'\n');
    let path = record_path(output);
    fsutil::write_atomic(&path, &bytes).map_err(|source| Error::Io {
        action: "cannot write",
        path,
        source,
    })
}

/// Remove the record after success.
pub(crate) fn forget(output: &Path) -> Result<()> {
    let path = record_path(output);
    fsutil::remove_if_there(&path).map_err(|source| Error::Io {
        action: "cannot remove",
        path,
        source,
    })
}

/// The record at `path`: `Ok(None)` when there is none, `Err(why)` when it
/// cannot be read or is not a version-1 record.
fn load(path: &Path) -> Result<Option<Record>, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut bytes = Vec::new();
    file.take(MAX_RECORD + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_RECORD {
        return Err(format!("larger than {MAX_RECORD} bytes"));
    }
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))?;
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(format!("not a {FORMAT} record"));
    }
    match value.get("version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => return Err(format!("version {v}; this ferry reads version {VERSION}")),
        None => return Err("no version".into()),
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| format!("not a valid version {VERSION} record: {e}"))
}

/// Every partial file a pack to `output` may have left, of any shape,
/// that is there.
fn leftovers(output: &Path) -> Vec<PathBuf> {
    let mut candidates = vec![partial_path(output, None)];
    candidates.extend((0..MAX_PARTS).map(|i| partial_path(output, Some(i))));
    candidates.extend((0..100).map(|i| parity_partial_path(output, i)));
    candidates
        .into_iter()
        .filter(|p| std::fs::symlink_metadata(p).is_ok())
        .collect()
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// What a partial file holds of one blob.
#[derive(Clone)]
pub(crate) enum Found {
    /// All of it, it seems: no byte of its place was left unwritten, and
    /// it does not start with zeros. Whether the bytes are the blob's is
    /// for its digest to say, checked as the archive's sha256 passes them
    /// (`ArchiveHasher::reused`).
    Written,
    /// Its first `len` bytes, it seems (written front to back, then
    /// stopped), not hashed: the whole is checked as the archive's sha256
    /// passes it (`ArchiveHasher::check`), so the rest can be asked for at
    /// once.
    Begun {
        /// How many bytes.
        len: u64,
    },
    /// Nothing worth keeping.
    Missing,
}

/// Look for the blob of `size` bytes at `offset` in `file`, reading
/// little and hashing nothing (the archive's sha256 checks what is kept).
/// Bytes in a hole of the file (never written) end what is there. A blob
/// with no hole in its place is [`Found::Written`], read no further than
/// its first bytes; one with a hole is [`Found::Begun`], up to the last
/// byte before the hole that is not zero (a file-system block is written
/// whole, the bytes after the last one written are zeros), read backwards
/// from the hole.
pub(crate) fn look_for(file: &PartSet, offset: u64, size: u64) -> std::io::Result<Found> {
    let written = match file.first_hole(offset, size)? {
        Some(hole) => hole - offset,
        None => size,
    };
    let mut buf = vec![0u8; HEAD as usize];
    let head = HEAD.min(written) as usize;
    if head > 0 {
        file.read_exact_at(&mut buf[..head], offset)?;
        if buf[..head].iter().all(|&b| b == 0) {
            // Not written (on a file system without holes), or a blob that
            // starts with zeros: fetched, never wrongly kept.
            return Ok(Found::Missing);
        }
    }
    if written == size {
        return Ok(Found::Written);
    }
    Ok(match last_not_zero(file, offset, written)? {
        Some(last) => Found::Begun { len: last + 1 },
        None => Found::Missing,
    })
}

/// Where, in the `len` bytes at `offset`, the last byte that is not zero
/// is (counted from `offset`), read backwards.
fn last_not_zero(file: &PartSet, offset: u64, len: u64) -> std::io::Result<Option<u64>> {
    const BACK: u64 = 64 << 10;
    let mut buf = vec![0u8; BACK.min(len) as usize];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(BACK);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, offset + start)?;
        if let Some(i) = chunk.iter().rposition(|&b| b != 0) {
            return Ok(Some(start + i as u64));
        }
        end = start;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_oci::layout::BlobClass;
    use ferry_oci::NoProgress;

    fn plan(index: &[u8]) -> LayoutPlan {
        LayoutPlan::new(
            index.to_vec(),
            [(Digest::sha256_of(b"x"), 1, BlobClass::Layer)],
        )
        .unwrap()
    }

    fn key() -> ResumeKey {
        ResumeKey::new(
            &[Reference::parse("example.com/a:1").unwrap()],
            &[],
            true,
            &[],
            None,
            0,
        )
    }

    #[test]
    fn a_matching_record_is_reused_and_anything_else_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("b.tar");
        let partials = vec![partial_path(&out, None)];
        let (key, plan) = (key(), plan(b"{}"));
        std::fs::write(&partials[0], b"x").unwrap();
        save(&out, &key, &plan, None, &partials).unwrap();
        let decide =
            |key: &ResumeKey, plan: &LayoutPlan| decide(&out, key, plan, &partials, &NoProgress);
        assert!(decide(&key, &plan));
        assert!(!decide(&key, &super::tests::plan(b"{ }")));
        let mut other = key.clone();
        other.arguments = ResumeKey::new(&[], &[], true, &[], None, 0).arguments;
        assert!(!decide(&other, &plan));
        let fresh = ResumeKey {
            fresh: true,
            ..key.clone()
        };
        assert!(!decide(&fresh, &plan));

        // Garbage, a future version, a wrong field, a huge record: not
        // reused, no panic.
        for bytes in [
            b"\x00\xffgarbage".to_vec(),
            br#"{"format":"ferry-pack-resume","version":2}"#.to_vec(),
            br#"{"format":"ferry-pack-resume","version":1,"plan":7}"#.to_vec(),
            vec![b' '; MAX_RECORD as usize + 10],
        ] {
            std::fs::write(record_path(&out), &bytes).unwrap();
            assert!(load(&record_path(&out)).is_err());
            assert!(!decide(&key, &plan));
        }

        // Partial files of another shape go; ours stay; the record goes
        // unless reused.
        let part = partial_path(&out, Some(0));
        std::fs::write(&part, b"x").unwrap();
        std::fs::write(parity_partial_path(&out, 3), b"x").unwrap();
        clear_stale(&out, &partials, false).unwrap();
        assert!(partials[0].exists() && !part.exists());
        assert!(!record_path(&out).exists());
        assert!(!parity_partial_path(&out, 3).exists());
    }

    #[test]
    fn a_blob_with_no_hole_is_written_and_left_to_its_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        // A blob that ends in zeros, as tar layers do.
        let mut blob: Vec<u8> = (0..200_000u32).map(|i| (i % 7) as u8 + 1).collect();
        blob.extend([0u8; 3000]);
        let mut bytes = vec![0u8; 100];
        bytes.extend(&blob);
        bytes.extend([0u8; 5000]);
        std::fs::write(&path, &bytes).unwrap();
        let set = PartSet::single(&path, std::fs::File::open(&path).unwrap()).unwrap();
        let found = |offset, size| look_for(&set, offset, size);
        assert!(matches!(found(100, blob.len() as u64), Ok(Found::Written)));
        // Zeros are never taken for a blob.
        assert!(matches!(
            found(100 + blob.len() as u64, 5000),
            Ok(Found::Missing)
        ));
        // Shifted by one: written too; its digest will refuse it.
        assert!(matches!(found(101, blob.len() as u64), Ok(Found::Written)));
        assert!(matches!(found(5, 0), Ok(Found::Written)));
    }

    #[test]
    fn a_blob_cut_short_is_begun_up_to_the_zeros_before_its_hole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let blob: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8 | 1).collect();
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.set_len(2_000_000).unwrap();
        // 300,001 bytes written at 512: the rest of the region is a hole
        // (and zeros up to the end of the last block written).
        std::os::unix::fs::FileExt::write_all_at(&file, &blob[..300_001], 512).unwrap();
        let set = PartSet::single(&path, file).unwrap();
        let found = look_for(&set, 512, blob.len() as u64);
        assert!(matches!(found, Ok(Found::Begun { len: 300_001 })));
        // Nothing but zeros before the hole: nothing to keep.
        assert!(matches!(
            look_for(&set, 400_000, 500_000),
            Ok(Found::Missing)
        ));
    }
}
