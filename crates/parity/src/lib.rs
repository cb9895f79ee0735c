//! Reed–Solomon parity parts for split bundles.
//!
//! `ferry pack --split SIZE --parity N` writes `N` parity parts beside the
//! data parts (`OUT.tar.p00`, …, named apart so `cat OUT.tar.[0-9]*` is
//! still the bundle). Any `N` parts of the set — data or parity — may then
//! be lost or damaged: [`repair`] rebuilds them offline and checks each
//! against `OUT.tar.sha256` before it replaces anything.
//!
//! The code is Reed–Solomon over GF(2^16) (reed-solomon-simd), applied in
//! stripes: stripe `k` takes bytes `[k·S, k·S + S)` of every data part
//! (the short last part reads as zeros past its end) as the original
//! shards, and the recovery shards are bytes `[k·S, k·S + S)` of the
//! parity parts, after their header. Only one stripe of every part is in
//! memory at a time (the stripe width is chosen so that is about 32 MiB),
//! whatever the part size.
//!
//! Each parity part starts with a header (format 1, docs/bundle-format.md):
//! the line `ferry-parity 1`, one line of JSON with the set's geometry and
//! the part's index, zero padding to a multiple of 4096 bytes. Any intact
//! parity part describes the whole set.

#![deny(missing_docs)]

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use ferry_oci::layout::{
    checksum_path, parity_path, part_path, sha256_file, split_part_path, ChecksumFile,
};
use ferry_oci::{fsutil, Progress};
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};
use serde::{Deserialize, Serialize};

/// The most parity parts a set may have (`p00` to `p99`).
pub const MAX_PARITY: usize = 100;
const MAGIC: &str = "ferry-parity 1\n";
const ALIGN: u64 = 4096;
/// About how much memory one stripe of every part may take.
const STRIPE_MEMORY: u64 = 32 << 20;
const MAX_HEADER: usize = 64 << 10;

/// Everything that can go wrong writing parity or repairing a set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A parity part's header is not one ferry wrote.
    #[error("parity part {path}: {reason}")]
    Header {
        /// The parity part.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The coder refused the shards (a geometry it does not support).
    #[error("Reed-Solomon coding of {data} data and {parity} parity parts failed")]
    Coding {
        /// Data parts.
        data: usize,
        /// Parity parts.
        parity: usize,
        /// The coder's error.
        #[source]
        source: reed_solomon_simd::Error,
    },
    /// Repair needs the checksum file to know which parts are intact.
    #[error("{path} is needed to repair the set (it tells which parts are intact), and it cannot be read")]
    NoChecksums {
        /// The checksum file.
        path: PathBuf,
        /// Why it cannot be used.
        #[source]
        source: ferry_oci::Error,
    },
    /// The set has no parity parts to repair from.
    #[error("{path} lists no parity parts: the set was packed without --parity, so lost parts cannot be rebuilt")]
    NoParity {
        /// The checksum file.
        path: PathBuf,
    },
    /// More parts are bad than parity can rebuild.
    #[error("cannot repair: {bad} of {total} parts are missing or damaged ({names}); {parity} parity part(s) rebuild at most {parity}")]
    TooManyBad {
        /// Bad parts.
        bad: usize,
        /// All parts, data and parity.
        total: usize,
        /// Parity parts in the set.
        parity: usize,
        /// The bad parts' names.
        names: String,
    },
    /// A rebuilt part does not hash to what the checksum file lists.
    #[error("the rebuilt {path} does not match {checksums}; nothing was replaced (are the parity parts from another pack?)")]
    RebuiltMismatch {
        /// The part rebuilt.
        path: PathBuf,
        /// The checksum file.
        checksums: PathBuf,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The shape of a split set with parity, as every parity part records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Geometry {
    /// How many data parts.
    pub data_parts: usize,
    /// How many parity parts.
    pub parity_parts: usize,
    /// The size of every data part but the last.
    pub part_size: u64,
    /// The size of the whole bundle.
    pub total_size: u64,
    /// The stripe width in bytes (even).
    pub stripe: u64,
}

#[derive(Serialize, Deserialize)]
struct Header {
    #[serde(flatten)]
    geometry: Geometry,
    index: usize,
}

impl Geometry {
    /// The geometry of `parity_parts` parity parts over a bundle of
    /// `total_size` bytes cut into parts of `part_size`.
    pub fn new(total_size: u64, part_size: u64, parity_parts: usize) -> Result<Geometry> {
        let data_parts = total_size.div_ceil(part_size.max(1)).max(1) as usize;
        if !ReedSolomonEncoder::supports(data_parts, parity_parts) || parity_parts > MAX_PARITY {
            return Err(Error::Coding {
                data: data_parts,
                parity: parity_parts,
                source: reed_solomon_simd::Error::UnsupportedShardCount {
                    original_count: data_parts,
                    recovery_count: parity_parts,
                },
            });
        }
        let per_part = STRIPE_MEMORY / (data_parts + parity_parts) as u64;
        let stripe = even(per_part.clamp(64, 1 << 20).min(even(part_size)));
        Ok(Geometry {
            data_parts,
            parity_parts,
            part_size,
            total_size,
            stripe,
        })
    }

    /// The length of data part `i`.
    pub fn data_len(&self, i: usize) -> u64 {
        if i + 1 < self.data_parts {
            self.part_size
        } else {
            self.total_size - self.part_size * (self.data_parts as u64 - 1)
        }
    }

    /// Each stripe: its offset in the parts and its shard width.
    fn stripes(&self) -> impl Iterator<Item = (u64, usize)> + '_ {
        (0..self.part_size)
            .step_by(self.stripe as usize)
            .map(|off| (off, even(self.stripe.min(self.part_size - off)) as usize))
    }

    fn header(&self, index: usize) -> Vec<u8> {
        let header = Header {
            geometry: self.clone(),
            index,
        };
        let mut bytes = MAGIC.as_bytes().to_vec();
        bytes.extend(serde_json::to_vec(&header).expect("a header serializes"));
        bytes.push(b'\n');
        let len = (bytes.len() as u64).next_multiple_of(ALIGN);
        bytes.resize(len as usize, 0);
        bytes
    }

    fn header_len(&self) -> u64 {
        self.header(0).len() as u64
    }

    /// The length of each parity part.
    pub fn parity_len(&self) -> u64 {
        self.header_len() + self.stripes().map(|(_, w)| w as u64).sum::<u64>()
    }
}

fn even(n: u64) -> u64 {
    n + (n & 1)
}

/// Read a parity part's header: the geometry and the part's index.
pub fn read_header(path: &Path) -> Result<(Geometry, usize)> {
    let bad = |reason: &str| Error::Header {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let file = File::open(path).map_err(|source| Error::Io {
        action: "cannot open",
        path: path.to_path_buf(),
        source,
    })?;
    let mut buf = vec![0u8; MAX_HEADER];
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(Error::Io {
                    action: "cannot read",
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
    let rest = buf[..n]
        .strip_prefix(MAGIC.as_bytes())
        .ok_or_else(|| bad("does not start with \"ferry-parity 1\": not a parity part"))?;
    let end = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| bad("header line does not end"))?;
    let header: Header = serde_json::from_slice(&rest[..end])
        .map_err(|e| bad(&format!("header is not valid JSON: {e}")))?;
    let g = header.geometry;
    let sane = g.data_parts >= 1
        && g.parity_parts >= 1
        && g.parity_parts <= MAX_PARITY
        && header.index < g.parity_parts
        && g.part_size > 0
        && g.stripe > 0
        && g.stripe & 1 == 0
        && g.total_size > g.part_size * (g.data_parts as u64 - 1)
        && g.total_size <= g.part_size.saturating_mul(g.data_parts as u64);
    if !sane {
        return Err(bad("header describes an impossible set"));
    }
    Ok((g, header.index))
}

/// Fills `buf` with the bytes of data part `i` from `offset` (never past
/// the part's end).
pub type ReadData<'a> = dyn Fn(usize, u64, &mut [u8]) -> io::Result<()> + 'a;

/// Compute the parity parts of the data `read` gives and write those with
/// a file in `outputs` (index = parity index; `None` to skip one), header
/// first. `progress` hears of data bytes read.
pub fn encode(
    geometry: &Geometry,
    read: &ReadData<'_>,
    outputs: &[Option<(&Path, &File)>],
    progress: &dyn Progress,
) -> Result<()> {
    let g = geometry;
    let header_len = g.header_len();
    for (j, out) in outputs.iter().enumerate() {
        if let Some((path, file)) = out {
            write_at(file, path, &g.header(j), 0)?;
        }
    }
    let coding = |source| Error::Coding {
        data: g.data_parts,
        parity: g.parity_parts,
        source,
    };
    let mut shards = vec![vec![0u8; g.stripe as usize]; g.data_parts];
    let mut encoder =
        ReedSolomonEncoder::new(g.data_parts, g.parity_parts, g.stripe as usize).map_err(coding)?;
    for (off, width) in g.stripes() {
        encoder
            .reset(g.data_parts, g.parity_parts, width)
            .map_err(coding)?;
        for (i, shard) in shards.iter_mut().enumerate() {
            let shard = &mut shard[..width];
            fill(g, i, off, shard, read)?;
            progress.bytes(width as u64);
            encoder.add_original_shard(&*shard).map_err(coding)?;
        }
        let result = encoder.encode().map_err(coding)?;
        for (j, recovery) in result.recovery_iter().enumerate() {
            if let Some(Some((path, file))) = outputs.get(j) {
                write_at(file, path, recovery, header_len + off)?;
            }
        }
    }
    Ok(())
}

/// Read one shard of data part `i` at `off`, zeros past the part's end.
fn fill(g: &Geometry, i: usize, off: u64, shard: &mut [u8], read: &ReadData<'_>) -> Result<()> {
    let real = (shard.len() as u64).min(g.data_len(i).saturating_sub(off)) as usize;
    shard[real..].fill(0);
    read(i, off, &mut shard[..real]).map_err(|source| Error::Io {
        action: "cannot read data part",
        path: PathBuf::from(format!("#{i}")),
        source,
    })
}

fn write_at(file: &File, path: &Path, bytes: &[u8], offset: u64) -> Result<()> {
    file.write_all_at(bytes, offset)
        .map_err(|source| Error::Io {
            action: "cannot write",
            path: path.to_path_buf(),
            source,
        })
}

/// What [`repair`] found and did.
#[derive(Debug, Clone, Serialize)]
pub struct Repaired {
    /// Parts checked against the checksum file.
    pub checked: usize,
    /// Parts rebuilt (now matching the checksum file).
    pub rebuilt: Vec<PathBuf>,
}

/// One listed part and whether it is intact.
struct Listed {
    path: PathBuf,
    sha256: String,
    intact: bool,
}

/// Rebuild the missing or damaged parts (data or parity) of the split
/// bundle `base` (`OUT.tar`, whose parts are `OUT.tar.000`, …) from the
/// intact ones, offline. Every part listed in `base.sha256` is hashed;
/// bad ones are rebuilt into temporary files, checked against the
/// checksum file, and only then renamed into place. Fails, replacing
/// nothing, when more parts are bad than there are parity parts.
pub fn repair(base: &Path, progress: &dyn Progress) -> Result<Repaired> {
    let sums_path = checksum_path(base);
    let sums = ChecksumFile::load(&sums_path).map_err(|source| Error::NoChecksums {
        path: sums_path.clone(),
        source,
    })?;
    let mut data = Vec::new();
    let mut parity = Vec::new();
    for (hex, name) in sums.entries() {
        let path = base.with_file_name(name);
        if split_part_path(&path).is_some_and(|(b, _)| b == base) {
            data.push((path, hex.clone()));
        } else if (0..MAX_PARITY).any(|j| parity_path(base, j) == path) {
            parity.push((path, hex.clone()));
        }
    }
    if parity.is_empty() {
        return Err(Error::NoParity { path: sums_path });
    }
    let total: u64 = data
        .iter()
        .chain(&parity)
        .filter_map(|(p, _)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    progress.start("checking", (data.len() + parity.len()) as u64, total);
    let check = |(path, sha256): (PathBuf, String)| {
        let intact =
            sha256_file(&path, &mut |n| progress.bytes(n)).is_ok_and(|(hex, _)| hex == sha256);
        progress.item_done();
        Listed {
            path,
            sha256,
            intact,
        }
    };
    let data: Vec<Listed> = data.into_iter().map(check).collect();
    let parity: Vec<Listed> = parity.into_iter().map(check).collect();
    progress.finish();
    let checked = data.len() + parity.len();
    let bad: Vec<&Listed> = data.iter().chain(&parity).filter(|p| !p.intact).collect();
    if bad.is_empty() {
        return Ok(Repaired {
            checked,
            rebuilt: Vec::new(),
        });
    }
    if bad.len() > parity.len() {
        return Err(Error::TooManyBad {
            bad: bad.len(),
            total: checked,
            parity: parity.len(),
            names: names(&bad),
        });
    }
    let Some(geometry) = parity
        .iter()
        .filter(|p| p.intact)
        .find_map(|p| read_header(&p.path).ok().map(|(g, _)| g))
    else {
        return Err(Error::TooManyBad {
            bad: bad.len(),
            total: checked,
            parity: parity.len(),
            names: format!("{}; no intact parity part left to read", names(&bad)),
        });
    };
    if geometry.data_parts != data.len() || geometry.parity_parts != parity.len() {
        return Err(Error::Header {
            path: parity[0].path.clone(),
            reason: format!(
                "describes {} data and {} parity parts, the checksum file lists {} and {}",
                geometry.data_parts,
                geometry.parity_parts,
                data.len(),
                parity.len()
            ),
        });
    }
    rebuild(base, &geometry, &data, &parity, &sums_path, progress)
}

fn names(parts: &[&Listed]) -> String {
    parts
        .iter()
        .map(|p| p.path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|source| Error::Io {
        action: "cannot open",
        path: path.to_path_buf(),
        source,
    })
}

fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile> {
    fsutil::temp_beside(path, ".partial").map_err(|source| Error::Io {
        action: "cannot create a temporary file in",
        path: fsutil::parent_dir(path).to_path_buf(),
        source,
    })
}

/// Decode the lost data parts stripe by stripe, then encode the lost
/// parity parts from the (now whole) data; check and rename.
fn rebuild(
    _base: &Path,
    g: &Geometry,
    data: &[Listed],
    parity: &[Listed],
    sums_path: &Path,
    progress: &dyn Progress,
) -> Result<Repaired> {
    let coding = |source| Error::Coding {
        data: g.data_parts,
        parity: g.parity_parts,
        source,
    };
    let data_files: Vec<Option<File>> = data
        .iter()
        .map(|p| p.intact.then(|| open(&p.path)).transpose())
        .collect::<Result<_>>()?;
    let parity_files: Vec<Option<File>> = parity
        .iter()
        .map(|p| p.intact.then(|| open(&p.path)).transpose())
        .collect::<Result<_>>()?;
    let mut temps: Vec<(usize, tempfile::NamedTempFile)> = Vec::new();
    for (i, p) in data.iter().enumerate().filter(|(_, p)| !p.intact) {
        let temp = temp_beside(&p.path)?;
        temp.as_file()
            .set_len(g.data_len(i))
            .map_err(|source| Error::Io {
                action: "cannot write",
                path: temp.path().to_path_buf(),
                source,
            })?;
        temps.push((i, temp));
    }
    let header_len = g.header_len();
    progress.start("rebuilding", 1, g.part_size * g.data_parts as u64);
    if !temps.is_empty() {
        let mut decoder = ReedSolomonDecoder::new(g.data_parts, g.parity_parts, g.stripe as usize)
            .map_err(coding)?;
        let mut buf = vec![0u8; g.stripe as usize];
        for (off, width) in g.stripes() {
            decoder
                .reset(g.data_parts, g.parity_parts, width)
                .map_err(coding)?;
            for (i, file) in data_files.iter().enumerate() {
                let Some(file) = file else { continue };
                let shard = &mut buf[..width];
                let real = (width as u64).min(g.data_len(i).saturating_sub(off)) as usize;
                shard[real..].fill(0);
                read_exact(file, &data[i].path, &mut shard[..real], off)?;
                decoder.add_original_shard(i, &*shard).map_err(coding)?;
            }
            for (j, file) in parity_files.iter().enumerate() {
                let Some(file) = file else { continue };
                let shard = &mut buf[..width];
                read_exact(file, &parity[j].path, shard, header_len + off)?;
                decoder.add_recovery_shard(j, &*shard).map_err(coding)?;
            }
            let result = decoder.decode().map_err(coding)?;
            for (i, temp) in &temps {
                let restored = result.restored_original(*i).ok_or_else(|| Error::Header {
                    path: data[*i].path.clone(),
                    reason: "the coder did not restore it".into(),
                })?;
                let real = (width as u64).min(g.data_len(*i).saturating_sub(off)) as usize;
                write_at(temp.as_file(), temp.path(), &restored[..real], off)?;
            }
            progress.bytes(width as u64 * g.data_parts as u64);
        }
    }
    progress.finish();
    // Lost parity parts: encode again from the data, rebuilt parts included.
    let mut parity_temps: Vec<(usize, tempfile::NamedTempFile)> = Vec::new();
    for (j, p) in parity.iter().enumerate().filter(|(_, p)| !p.intact) {
        parity_temps.push((j, temp_beside(&p.path)?));
    }
    if !parity_temps.is_empty() {
        let source = |i: usize| -> &File {
            match &data_files[i] {
                Some(f) => f,
                None => temps
                    .iter()
                    .find(|(k, _)| *k == i)
                    .map(|(_, t)| t.as_file())
                    .expect("every lost data part has a rebuilt file"),
            }
        };
        let read = |i: usize, off: u64, buf: &mut [u8]| source(i).read_exact_at(buf, off);
        let outputs: Vec<Option<(&Path, &File)>> = (0..g.parity_parts)
            .map(|j| {
                parity_temps
                    .iter()
                    .find(|(k, _)| *k == j)
                    .map(|(_, t)| (t.path(), t.as_file()))
            })
            .collect();
        progress.start("parity", 1, g.part_size * g.data_parts as u64);
        encode(g, &read, &outputs, progress)?;
        progress.finish();
    }
    // Check every rebuilt part before any is renamed.
    let all: Vec<(&Listed, tempfile::NamedTempFile)> = temps
        .into_iter()
        .map(|(i, t)| (&data[i], t))
        .chain(parity_temps.into_iter().map(|(j, t)| (&parity[j], t)))
        .collect();
    for (listed, temp) in &all {
        let (hex, _) = sha256_file(temp.path(), &mut |_| {}).map_err(|source| Error::Io {
            action: "cannot read back",
            path: temp.path().to_path_buf(),
            source,
        })?;
        if hex != listed.sha256 {
            return Err(Error::RebuiltMismatch {
                path: listed.path.clone(),
                checksums: sums_path.to_path_buf(),
            });
        }
    }
    let mut rebuilt = Vec::new();
    for (listed, temp) in all {
        fsutil::persist(temp, &listed.path).map_err(|source| Error::Io {
            action: "cannot move the rebuilt part to",
            path: listed.path.clone(),
            source,
        })?;
        rebuilt.push(listed.path.clone());
    }
    let checked = data.len() + parity.len();
    Ok(Repaired { checked, rebuilt })
}

fn read_exact(file: &File, path: &Path, buf: &mut [u8], offset: u64) -> Result<()> {
    file.read_exact_at(buf, offset).map_err(|source| Error::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    })
}

/// The data part paths of `base` for `geometry` (for callers writing a set).
pub fn data_paths(base: &Path, geometry: &Geometry) -> Vec<PathBuf> {
    (0..geometry.data_parts)
        .map(|i| part_path(base, i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_oci::NoProgress;

    /// A set of `n` data parts (the last short) and `parity` parity parts
    /// with its checksum file, in `dir`; returns the base.
    fn make_set(dir: &Path, len: usize, part: u64, parity: usize) -> PathBuf {
        let base = dir.join("s.tar");
        let bytes: Vec<u8> = (0..len as u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let g = Geometry::new(len as u64, part, parity).unwrap();
        let mut sums = ChecksumFile::new();
        for (i, chunk) in bytes.chunks(part as usize).enumerate() {
            std::fs::write(part_path(&base, i), chunk).unwrap();
        }
        let files: Vec<File> = data_paths(&base, &g)
            .iter()
            .map(|p| File::open(p).unwrap())
            .collect();
        let read = |i: usize, off: u64, buf: &mut [u8]| files[i].read_exact_at(buf, off);
        let outs: Vec<(PathBuf, File)> = (0..parity)
            .map(|j| {
                let p = parity_path(&base, j);
                (p.clone(), File::create(&p).unwrap())
            })
            .collect();
        let outputs: Vec<Option<(&Path, &File)>> =
            outs.iter().map(|(p, f)| Some((p.as_path(), f))).collect();
        encode(&g, &read, &outputs, &NoProgress).unwrap();
        for p in data_paths(&base, &g)
            .iter()
            .chain(outs.iter().map(|(p, _)| p))
        {
            let (hex, _) = sha256_file(p, &mut |_| {}).unwrap();
            sums.push(hex, p.file_name().unwrap().to_str().unwrap());
        }
        std::fs::write(checksum_path(&base), sums.render()).unwrap();
        assert_eq!(
            std::fs::metadata(parity_path(&base, 0)).unwrap().len(),
            g.parity_len()
        );
        base
    }

    #[test]
    fn rebuilds_up_to_n_lost_or_damaged_parts() {
        let dir = tempfile::tempdir().unwrap();
        let base = make_set(dir.path(), 100_001, 9_999, 2);
        let originals: Vec<Vec<u8>> = (0..11)
            .map(|i| std::fs::read(part_path(&base, i)).unwrap())
            .collect();
        let p0 = std::fs::read(parity_path(&base, 0)).unwrap();
        // A data part lost and the short last part damaged.
        std::fs::remove_file(part_path(&base, 3)).unwrap();
        let mut last = originals[10].clone();
        last[5] ^= 1;
        std::fs::write(part_path(&base, 10), &last).unwrap();
        let done = repair(&base, &NoProgress).unwrap();
        assert_eq!(done.rebuilt.len(), 2);
        for (i, original) in originals.iter().enumerate() {
            assert_eq!(
                &std::fs::read(part_path(&base, i)).unwrap(),
                original,
                "part {i}"
            );
        }
        // A parity part and a data part lost.
        std::fs::remove_file(parity_path(&base, 0)).unwrap();
        std::fs::write(part_path(&base, 0), b"junk").unwrap();
        repair(&base, &NoProgress).unwrap();
        assert_eq!(std::fs::read(parity_path(&base, 0)).unwrap(), p0);
        assert_eq!(std::fs::read(part_path(&base, 0)).unwrap(), originals[0]);
        // Three bad with two parity parts: refused, nothing replaced.
        for i in [1, 2, 4] {
            std::fs::write(part_path(&base, i), b"x").unwrap();
        }
        let err = repair(&base, &NoProgress).unwrap_err().to_string();
        assert!(err.contains("3 of 13 parts"), "{err}");
        assert_eq!(std::fs::read(part_path(&base, 1)).unwrap(), b"x");
    }

    #[test]
    fn a_bad_header_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.p00");
        std::fs::write(&p, b"not parity").unwrap();
        assert!(read_header(&p)
            .unwrap_err()
            .to_string()
            .contains("not a parity part"));
        let mut h = Geometry::new(10_000, 1_000, 2).unwrap().header(0);
        let text = String::from_utf8_lossy(&h).replace("\"data_parts\":10", "\"data_parts\":1");
        h = text.into_bytes();
        std::fs::write(&p, &h).unwrap();
        assert!(read_header(&p)
            .unwrap_err()
            .to_string()
            .contains("impossible"));
    }
}
