//! A split bundle's parts, each checked on its own against `OUT.sha256`,
//! so a bad part is named (and the images it holds bytes of), not just
//! found somewhere in the whole.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use ferry_oci::layout::{
    checksum_path, parity_path, part_path, sha256_file, split_part_path, ChecksumFile,
};
use ferry_oci::{LayoutArchive, Progress};
use serde::Serialize;

use crate::problem::Problem;

/// What became of one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartStatus {
    /// Its sha256 is the one listed.
    Ok,
    /// Listed, but not there.
    Missing,
    /// There, but its content is not what is listed.
    Damaged,
    /// It holds what another listed part should hold (renamed, reordered).
    Misplaced,
}

/// One part as checked.
#[derive(Debug, Clone, Serialize)]
pub struct PartCheck {
    /// Its path.
    pub path: PathBuf,
    /// Where it starts in the whole bundle (data parts; parity parts hold
    /// none of the bundle's bytes).
    pub offset: Option<u64>,
    /// Its size on disk (none when missing).
    pub size: Option<u64>,
    /// The outcome.
    pub status: PartStatus,
}

/// Every part of a split bundle, checked against its checksum file.
#[derive(Debug, Clone, Serialize)]
pub struct PartsReport {
    /// The checksum file the parts were checked against.
    pub checksums: PathBuf,
    /// Data parts, in order.
    pub parts: Vec<PartCheck>,
    /// Parity parts (`OUT.tar.pNN`), in order.
    pub parity: Vec<PartCheck>,
    /// Whether `ferry repair` can rebuild every bad part (no more bad parts,
    /// data or parity, than there are parity parts); false when there are
    /// no parity parts.
    pub repairable: bool,
}

impl PartsReport {
    /// The parts that are not [`PartStatus::Ok`].
    pub fn bad(&self) -> impl Iterator<Item = &PartCheck> {
        self.parts
            .iter()
            .chain(&self.parity)
            .filter(|p| p.status != PartStatus::Ok)
    }
}

/// The bundle `path` names, when it is a split set: its unsplit name.
pub(crate) fn split_base(path: &Path) -> Option<PathBuf> {
    match split_part_path(path) {
        Some((base, 0)) => Some(base),
        Some(_) => None,
        None => (!path.exists() && part_path(path, 0).is_file()).then(|| path.to_path_buf()),
    }
}

/// Check each data part listed in `base.sha256`; `None` when `path` is not
/// a split bundle. A set without a checksum file, or one listing no parts,
/// gives a warning: its parts cannot be checked one by one.
pub(crate) fn check_parts(
    path: &Path,
    jobs: usize,
    progress: &dyn Progress,
    problems: &mut Vec<Problem>,
) -> Option<PartsReport> {
    let base = split_base(path)?;
    let sums_path = checksum_path(&base);
    let sums = match sums_path.is_file().then(|| ChecksumFile::load(&sums_path)) {
        None => {
            problems.push(Problem::warning(
                sums_path.display().to_string(),
                "not found: the parts cannot be checked one by one \
                 (blobs are still hashed)",
            ));
            return None;
        }
        Some(Err(e)) => {
            problems.push(Problem::error(
                sums_path.display().to_string(),
                crate::problem::error_chain(&e),
            ));
            return None;
        }
        Some(Ok(s)) => s,
    };
    let listed: Vec<(Option<usize>, PathBuf, String)> = sums
        .entries()
        .iter()
        .filter_map(|(hex, name)| {
            let p = base.with_file_name(name);
            match split_part_path(&p) {
                Some((b, i)) if b == base => Some((Some(i), p, hex.clone())),
                _ => (0..100)
                    .any(|j| parity_path(&base, j) == p)
                    .then(|| (None, p, hex.clone())),
            }
        })
        .collect();
    if listed.is_empty() {
        problems.push(Problem::warning(
            sums_path.display().to_string(),
            "lists no parts: the parts cannot be checked one by one",
        ));
        return None;
    }
    let part_size = std::fs::metadata(part_path(&base, 0)).map(|m| m.len()).ok();
    let found = hash_files(listed.iter().map(|(_, p, _)| p.as_path()), jobs, progress);
    let mut parts = Vec::new();
    let mut parity = Vec::new();
    for ((index, p, hex), (size, actual)) in listed.iter().zip(found) {
        let status = match (&actual, size) {
            (None, _) => PartStatus::Missing,
            (Some(a), _) if a == hex => PartStatus::Ok,
            (Some(a), _) if listed.iter().any(|(_, _, h)| h == a) => PartStatus::Misplaced,
            _ => PartStatus::Damaged,
        };
        let entry = p.display().to_string();
        match status {
            PartStatus::Ok => {}
            PartStatus::Missing => problems.push(
                Problem::error(
                    &entry,
                    format!("is missing (listed in {})", sums_path.display()),
                )
                .expected_found(format!("sha256 {hex}"), "no such file"),
            ),
            PartStatus::Misplaced => {
                let a = actual.as_deref().unwrap_or_default();
                let other = listed
                    .iter()
                    .find(|(_, _, h)| h == a)
                    .map(|(_, o, _)| o.display().to_string())
                    .unwrap_or_default();
                problems.push(
                    Problem::error(
                        &entry,
                        format!("holds the content of {other}: parts renamed or out of order"),
                    )
                    .expected_found(format!("sha256 {hex}"), format!("sha256 {a}")),
                );
            }
            PartStatus::Damaged => problems.push(
                Problem::error(
                    &entry,
                    format!(
                        "is damaged: its content does not match {}",
                        sums_path.display()
                    ),
                )
                .expected_found(
                    format!("sha256 {hex}"),
                    format!(
                        "sha256 {} ({} bytes)",
                        actual.as_deref().unwrap_or_default(),
                        size.unwrap_or(0)
                    ),
                ),
            ),
        }
        let check = PartCheck {
            path: p.clone(),
            offset: index.and(part_size).map(|s| s * index.unwrap_or(0) as u64),
            size,
            status,
        };
        match index {
            Some(_) => parts.push(check),
            None => parity.push(check),
        }
    }
    let mut report = PartsReport {
        checksums: sums_path,
        parts,
        parity,
        repairable: false,
    };
    let bad = report.bad().count();
    report.repairable = bad > 0 && bad <= report.parity.len();
    let advice = if report.repairable {
        format!(
            "; {bad} bad part(s), {} parity part(s): `ferry repair {}` rebuilds them",
            report.parity.len(),
            part_path(&base, 0).display()
        )
    } else if report.parity.is_empty() {
        "; no parity parts: copy this part again from the source".to_string()
    } else {
        format!(
            "; {bad} bad part(s) but only {} parity part(s): too many to rebuild",
            report.parity.len()
        )
    };
    for part in report.bad() {
        let entry = part.path.display().to_string();
        if let Some(p) = problems.iter_mut().find(|p| p.entry == entry) {
            p.message.push_str(&advice);
        }
    }
    Some(report)
}

/// Add to each bad part's problem what it holds bytes of: the references
/// whose blobs overlap it.
pub(crate) fn name_affected(
    report: &PartsReport,
    archive: &LayoutArchive,
    uses: &[(String, std::collections::BTreeSet<ferry_oci::Digest>)],
    problems: &mut [Problem],
) {
    let Some(set) = archive.part_set() else {
        return;
    };
    let part_size = set.part_size();
    for part in report.bad() {
        let Some(start) = part.offset else { continue };
        let end = (start + part_size).min(set.len());
        let hit: Vec<_> = archive
            .blobs()
            .filter(|b| b.data_offset < end && b.data_offset + b.size > start)
            .map(|b| &b.digest)
            .collect();
        let mut refs: Vec<&str> = uses
            .iter()
            .filter(|(_, blobs)| hit.iter().any(|d| blobs.contains(*d)))
            .map(|(r, _)| r.as_str())
            .collect();
        refs.dedup();
        let entry = part.path.display().to_string();
        if let Some(p) = problems.iter_mut().find(|p| p.entry == entry) {
            if refs.is_empty() {
                p.message.push_str("; it holds no image's blob bytes");
            } else {
                p.message
                    .push_str(&format!("; affects {}: {}", refs.len(), refs.join(", ")));
            }
        }
    }
}

/// Hash each file (`None` for a file that cannot be opened), `jobs` at a
/// time; returns (size, sha256 hex) in order.
pub(crate) fn hash_files<'a>(
    paths: impl Iterator<Item = &'a Path>,
    jobs: usize,
    progress: &dyn Progress,
) -> Vec<(Option<u64>, Option<String>)> {
    let paths: Vec<&Path> = paths.collect();
    let sizes: Vec<Option<u64>> = paths
        .iter()
        .map(|p| std::fs::metadata(p).ok().map(|m| m.len()))
        .collect();
    progress.start(
        "parts",
        paths.len() as u64,
        sizes.iter().flatten().sum::<u64>(),
    );
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<String>>> = Mutex::new(vec![None; paths.len()]);
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, paths.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = paths.get(i) else { break };
                let hex = hash_file(path, progress);
                out.lock().expect("part hashes lock")[i] = hex;
                progress.item_done();
            });
        }
    });
    progress.finish();
    let hashes = out.into_inner().expect("part hashes lock");
    sizes.into_iter().zip(hashes).collect()
}

fn hash_file(path: &Path, progress: &dyn Progress) -> Option<String> {
    sha256_file(path, &mut |n| progress.bytes(n))
        .ok()
        .map(|(hex, _)| hex)
}
