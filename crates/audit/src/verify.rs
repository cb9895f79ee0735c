//! `verify`: the archive read once, every blob hashed, every descriptor
//! checked, every problem listed.

use std::collections::HashSet;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ferry_oci::{BlobEntry, Digest, LayoutArchive, Progress};
use ferry_sign::{Keyring, SignatureReport};
use serde::Serialize;

use crate::parts::{check_parts, name_affected, PartsReport, SetBlobs};
use crate::problem::{content_mismatch, error_chain, Problem, Problems};
use crate::report::BundleReport;
use crate::signatures::{self, BundleSignatureReport};
use crate::walk::walk;

/// How [`verify_archive`] runs.
#[derive(Clone)]
pub struct VerifyOptions {
    /// How many threads hash blobs at once (at least 1).
    pub jobs: usize,
    /// Where hashing progress goes (bytes, blobs).
    pub progress: Arc<dyn Progress>,
    /// Require `BUNDLE.sig` to hold for one of these keys, checked before
    /// anything else (`--bundle-key`).
    pub bundle_keys: Option<Keyring>,
    /// Require every named image to carry a cosign signature that holds for
    /// one of these keys (`--require-signature`).
    pub image_keys: Option<Keyring>,
}

impl Default for VerifyOptions {
    fn default() -> VerifyOptions {
        VerifyOptions {
            jobs: 4,
            progress: Arc::new(ferry_oci::NoProgress),
            bundle_keys: None,
            image_keys: None,
        }
    }
}

/// The outcome of [`verify_archive`].
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// True when everything holds: no problem of severity `error`.
    pub ok: bool,
    /// Problems that fail the audit (including any beyond the listing cap).
    pub errors: u64,
    /// Warnings (including any beyond the listing cap).
    pub warnings: u64,
    /// Blobs whose content was hashed.
    pub blobs_hashed: u64,
    /// Bytes hashed.
    pub bytes_hashed: u64,
    /// The findings, at most [`MAX_PROBLEMS`](crate::MAX_PROBLEMS).
    pub problems: Vec<Problem>,
    /// Findings left out of `problems` because of the cap.
    pub problems_omitted: u64,
    /// What the bundle holds; `None` when it cannot be opened at all.
    pub bundle: Option<BundleReport>,
    /// The bundle's detached signature, when asked for and it holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle_signature: Option<BundleSignatureReport>,
    /// Who signed each image, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signatures: Option<SignatureReport>,
    /// A split bundle's parts, each checked against `OUT.sha256`.
    pub parts: Option<PartsReport>,
}

/// Verify the archive at `path` offline.
///
/// The tar is scanned once; an archive that cannot be opened (truncated,
/// hostile names, a missing or broken `oci-layout` or `index.json`) gives a
/// failed report with one problem naming the entry. Otherwise every
/// descriptor reachable from `index.json` is checked (present, size) and every
/// blob in the archive is hashed against its name, on `options.jobs`
/// threads. A split bundle's parts are hashed one by one against
/// `OUT.sha256`, and the blobs each part holds whole are checked from the
/// same read: a missing, damaged or misplaced part is named, with the
/// references it holds bytes of. Never writes anything.
///
/// With [`VerifyOptions::bundle_keys`], `BUNDLE.sig` is checked first and a
/// bundle whose signature is missing or does not hold is not read further;
/// with [`VerifyOptions::image_keys`], each named image's cosign signatures
/// are checked and listed.
pub fn verify_archive(path: &Path, options: &VerifyOptions) -> VerifyReport {
    let mut problems = Problems::default();
    let bundle_signature = match &options.bundle_keys {
        Some(keys) => match signatures::bundle(path, keys) {
            Ok(report) => Some(report),
            Err(p) => {
                problems.push(p);
                return finish(problems, 0, 0, None, None);
            }
        },
        None => None,
    };
    let mut part_problems = Vec::new();
    let progress = options.progress.as_ref();
    let archive = match LayoutArchive::open(path) {
        Ok(a) => a,
        Err(e) => {
            let parts = check_parts(path, options.jobs, progress, None, &mut part_problems);
            for p in part_problems {
                problems.push(p);
            }
            problems.push(open_problem(path, &e));
            return finish(problems, 0, 0, None, parts.report);
        }
    };
    let mut walked = walk(&archive, path, &mut problems);
    let blobs = SetBlobs::of(&archive, &walked.checked);
    let parts = check_parts(
        path,
        options.jobs,
        progress,
        blobs.as_ref(),
        &mut part_problems,
    );
    if let Some(report) = &parts.report {
        name_affected(report, &archive, &walked.uses, &mut part_problems);
    }
    for p in part_problems {
        problems.push(p);
    }
    let image_signatures = options
        .image_keys
        .as_ref()
        .and_then(|keys| signatures::images(&archive, keys, &mut problems));
    // Blobs checked by the walk (manifests, configs) or as their part was
    // read are not read again.
    walked.checked.extend(parts.blobs_ok);
    let (hashed, bytes) = hash_all(&archive, &walked.checked, options, &mut problems);
    let checked = walked.checked.len() as u64;
    let checked_bytes: u64 = walked
        .checked
        .iter()
        .filter_map(|d| archive.blob(d))
        .map(|b| b.size)
        .sum();
    let mut report = finish(
        problems,
        hashed + checked,
        bytes + checked_bytes,
        Some(walked.report),
        parts.report,
    );
    report.bundle_signature = bundle_signature;
    report.signatures = image_signatures;
    report
}

fn finish(
    problems: Problems,
    blobs_hashed: u64,
    bytes_hashed: u64,
    bundle: Option<BundleReport>,
    parts: Option<PartsReport>,
) -> VerifyReport {
    let errors = problems.errors();
    VerifyReport {
        ok: errors == 0,
        errors,
        warnings: problems.warnings(),
        blobs_hashed,
        bytes_hashed,
        problems: problems.list,
        problems_omitted: problems.omitted,
        bundle,
        bundle_signature: None,
        signatures: None,
        parts,
    }
}

/// A fatal open error as a problem naming the entry.
fn open_problem(path: &Path, e: &ferry_oci::Error) -> Problem {
    use ferry_oci::Error as E;
    match e {
        E::Layout { entry, reason } => Problem::error(entry, reason),
        E::LayoutJson { entry, source } => {
            Problem::error(entry, "not valid JSON of the expected shape")
                .expected_found("an OCI image index (JSON)", source)
        }
        E::Truncated {
            entry,
            declared,
            available,
        } => Problem::error(entry, "archive is truncated or corrupt here").expected_found(
            format!("{declared} bytes of data"),
            format!("{available} bytes left in the archive"),
        ),
        E::Io { source, .. } => Problem::error(
            path.display().to_string(),
            format!("cannot be read: {source}"),
        ),
        other => Problem::error(path.display().to_string(), error_chain(other)),
    }
}

/// Hash every blob not already hashed by the walk; returns (blobs, bytes).
fn hash_all(
    archive: &LayoutArchive,
    done: &HashSet<Digest>,
    options: &VerifyOptions,
    problems: &mut Problems,
) -> (u64, u64) {
    let mut todo: Vec<&BlobEntry> = archive
        .blobs()
        .filter(|b| !done.contains(&b.digest))
        .collect();
    // Largest first, so the threads finish together.
    todo.sort_by(|a, b| b.size.cmp(&a.size).then(a.digest.cmp(&b.digest)));
    let total: u64 = todo.iter().map(|b| b.size).sum();
    let progress = &options.progress;
    progress.start("verify", todo.len() as u64, total);
    let next = AtomicUsize::new(0);
    let found: Mutex<Vec<Problem>> = Mutex::new(Vec::new());
    let jobs = options.jobs.clamp(1, todo.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(blob) = todo.get(i) else { break };
                if let Err(p) = hash_one(archive, blob, progress.as_ref()) {
                    found.lock().expect("problem list lock").push(p);
                }
                progress.item_done();
            });
        }
    });
    progress.finish();
    let mut found = found.into_inner().expect("problem list lock");
    found.sort_by(|a, b| a.entry.cmp(&b.entry));
    for p in found {
        problems.push(p);
    }
    (todo.len() as u64, total)
}

/// Hash one blob with the verifying reader.
fn hash_one(
    archive: &LayoutArchive,
    blob: &BlobEntry,
    progress: &dyn Progress,
) -> Result<(), Problem> {
    let entry = blob.digest.blob_path();
    let cannot_read = |e: &dyn std::error::Error| {
        Problem::error(&entry, format!("cannot be read: {}", error_chain(e)))
    };
    let mut reader = archive
        .verifying_blob_reader(&blob.digest)
        .map_err(|e| cannot_read(&e))?;
    let mut buf = vec![0u8; ferry_oci::fsutil::HASH_READ];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => progress.bytes(n as u64),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let inner = e
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<ferry_oci::Error>());
                return Err(match inner {
                    Some(ferry_oci::Error::DigestMismatch { expected, found }) => {
                        content_mismatch(archive, expected, found)
                    }
                    Some(ferry_oci::Error::SizeMismatch {
                        expected, found, ..
                    }) => Problem::error(&entry, "size does not match")
                        .expected_found(expected, found),
                    _ => cannot_read(&e),
                });
            }
        }
    }
}
