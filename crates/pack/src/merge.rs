//! `ferry merge`: a base and deltas back into the full bundle, offline.
//!
//! The same plan as `pack` (the last delta's `index.json` without its
//! delta annotation, every manifest, config and layer in its class), filled
//! from the files given instead of from registries: so the result is byte
//! for byte the bundle `ferry pack` makes of the same images.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use ferry_oci::bases::{delta_record, file_sha256, reachable};
use ferry_oci::delta::full_index_json;
use ferry_oci::layout::{BlobClass, LayoutPlan};
use ferry_oci::{fsutil, DeltaRecord, Digest, LayoutArchive, Progress};

use crate::write::{Keep, PendingBundle, WrittenPart};
use crate::{Error, Result};

/// How a bundle is cut for media (`--split`, `--parity`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Media {
    /// Part size in bytes; `None` writes one file.
    pub split: Option<u64>,
    /// Parity parts to add (with `split`).
    pub parity: usize,
}

/// What a merge did.
#[derive(Debug, Clone, Serialize)]
pub struct MergeSummary {
    /// The full bundle written.
    pub output: PathBuf,
    /// Its sha256 hex (also in `OUT.sha256`).
    pub sha256: String,
    /// Its size in bytes.
    pub archive_bytes: u64,
    /// With a part size: the parts written (data, then parity).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<WrittenPart>,
    /// Files of an earlier bundle to the same name, removed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<PathBuf>,
    /// Blobs taken from the files given before the last delta.
    pub blobs_from_bases: usize,
    /// Their bytes.
    pub bytes_from_bases: u64,
    /// Wall time.
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

struct Input {
    path: PathBuf,
    archive: LayoutArchive,
    sha256: String,
    record: Option<DeltaRecord>,
}

/// Rebuild the full bundle of the last of `inputs` (a delta) from it and the
/// files before it (its base, earlier deltas), into `output`. Every delta's
/// bases must be among the files given before it, by sha256; every blob is
/// hashed as it is copied. Nothing is written unless all of it works.
/// `media` cuts the result into parts (and parity parts) as `pack --split`
/// does: the same bytes, the same part files.
pub async fn merge(
    inputs: &[PathBuf],
    output: &Path,
    media: Media,
    progress: Arc<dyn Progress>,
) -> Result<MergeSummary> {
    let started = Instant::now();
    let (inputs, output_path) = (inputs.to_vec(), output.to_path_buf());
    let p = progress.clone();
    let (bundle, from_bases, bytes_from_bases) =
        tokio::task::spawn_blocking(move || fill(&inputs, &output_path, media, p))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
    let committed = bundle.commit(progress).await?;
    Ok(MergeSummary {
        output: output.to_path_buf(),
        sha256: committed.sha256,
        archive_bytes: committed.len,
        parts: committed.parts,
        removed: committed.removed,
        blobs_from_bases: from_bases,
        bytes_from_bases,
        elapsed: started.elapsed(),
    })
}

/// Check the inputs, plan, and copy every blob into the pending bundle.
fn fill(
    inputs: &[PathBuf],
    output: &Path,
    media: Media,
    progress: Arc<dyn Progress>,
) -> Result<(PendingBundle, usize, u64)> {
    let mut opened: Vec<Input> = Vec::new();
    for path in inputs {
        let base_err = |source| Error::Base {
            path: path.clone(),
            source,
        };
        progress.note(&format!("reading {}", path.display()));
        let archive = LayoutArchive::open(path).map_err(base_err)?;
        let record = delta_record(&archive).map_err(base_err)?;
        let sha256 = file_sha256(path, false).map_err(base_err)?;
        // The first file is the base: a delta there brings what it carries,
        // and whatever it left out must come from nowhere (checked below).
        if let Some(record) = record.as_ref().filter(|_| !opened.is_empty()) {
            for base in &record.bases {
                if !opened.iter().any(|i| base.matches(&i.sha256)) {
                    return Err(Error::BaseMismatch {
                        delta: path.clone(),
                        wanted: base.describe(),
                        given: given(&opened),
                    });
                }
            }
        }
        opened.push(Input {
            path: path.clone(),
            archive,
            sha256,
            record,
        });
    }
    let last = match opened.last() {
        Some(last) if last.record.is_some() && opened.len() > 1 => last,
        Some(last) => {
            return Err(Error::NotADelta {
                path: last.path.clone(),
            })
        }
        None => return Err(Error::NothingToPack),
    };
    let base_err = |source| Error::Base {
        path: last.path.clone(),
        source,
    };
    let graph = reachable(&last.archive).map_err(base_err)?;
    // Where each blob comes from: the delta itself first, then the files
    // given before it, latest first.
    let mut sources: BTreeMap<Digest, usize> = BTreeMap::new();
    let mut missing: Vec<(&Digest, u64)> = Vec::new();
    for (digest, (size, _)) in &graph.blobs {
        let found = (0..opened.len()).rev().find(|&i| {
            opened[i]
                .archive
                .blob(digest)
                .is_some_and(|b| b.size == *size)
        });
        match found {
            Some(i) => {
                sources.insert(digest.clone(), i);
            }
            None => missing.push((digest, *size)),
        }
    }
    if let Some(&(example, _)) = missing.first() {
        let record = last.record.as_ref().expect("the last input is a delta");
        let bases: Vec<String> = record
            .bases_of(missing.iter().map(|(d, _)| *d))
            .iter()
            .map(|b| b.describe())
            .collect();
        return Err(Error::MergeMissing {
            delta: last.path.clone(),
            count: missing.len(),
            bytes: missing.iter().map(|(_, s)| s).sum(),
            example: example.clone(),
            bases: if bases.is_empty() {
                "no recorded base".into()
            } else {
                bases.join(", ")
            },
        });
    }
    let index_json = full_index_json(last.archive.index_json()).map_err(base_err)?;
    let plan = LayoutPlan::new(
        index_json,
        graph
            .manifests
            .iter()
            .map(|(d, size)| (d.clone(), *size, BlobClass::Manifest))
            .chain(
                graph
                    .blobs
                    .iter()
                    .map(|(d, (size, class))| (d.clone(), *size, *class)),
            ),
    )
    .map_err(|source| Error::Plan { source })?;
    let bundle = PendingBundle::create(
        output,
        &plan,
        media.split,
        media.parity,
        Keep::No,
        progress.as_ref(),
    )?;
    let last_index = opened.len() - 1;
    let (mut from_bases, mut bytes_from_bases) = (0, 0);
    let total: u64 = plan.blobs().iter().map(|b| b.size).sum();
    progress.start("copying", plan.blobs().len() as u64, total);
    for planned in plan.blobs() {
        let i = sources.get(&planned.digest).copied().unwrap_or(last_index);
        if i != last_index {
            from_bases += 1;
            bytes_from_bases += planned.size;
        }
        let input = &opened[i];
        copy_blob(
            input,
            &planned.digest,
            planned.data_offset,
            &bundle,
            progress.as_ref(),
        )?;
        progress.item_done();
    }
    progress.finish();
    Ok((bundle, from_bases, bytes_from_bases))
}

fn given(opened: &[Input]) -> String {
    if opened.is_empty() {
        return "none".into();
    }
    opened
        .iter()
        .map(|i| {
            let short = i.sha256.get(..12).unwrap_or(&i.sha256);
            format!("{} sha256 {short}…", i.path.display())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn copy_blob(
    input: &Input,
    digest: &Digest,
    offset: u64,
    bundle: &PendingBundle,
    progress: &dyn Progress,
) -> Result<()> {
    let read_err = |source: std::io::Error| Error::Base {
        path: input.path.clone(),
        source: ferry_oci::Error::Io {
            context: format!("reading blob {digest}"),
            source,
        },
    };
    let mut reader = input
        .archive
        .verifying_blob_reader(digest)
        .map_err(|source| Error::Base {
            path: input.path.clone(),
            source,
        })?;
    let mut buf = vec![0u8; fsutil::HASH_READ];
    let mut at = offset;
    loop {
        let n = reader.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            return Ok(());
        }
        bundle.write_at(&buf[..n], at)?;
        at += n as u64;
        progress.bytes(n as u64);
    }
}
