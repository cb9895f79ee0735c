//! Writing the bundle: plan the whole tar, write the small entries, then
//! fetch blobs in parallel straight to their offsets, hashing as they land.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_oci::fsutil;
use ferry_oci::layout::LayoutPlan;
use ferry_oci::{Digest, DigestHasher, Progress};
use ferry_registry::{Client, Failure, Repository};
use ferry_sign::{BundleSignature, PrivateKey};
use tokio::task::JoinSet;

use crate::archive_hash::ArchiveHasher;
use crate::{Error, Result};

/// One blob to fetch: where from, where to.
#[derive(Debug, Clone)]
pub(crate) struct BlobJob {
    pub digest: Digest,
    pub size: u64,
    pub offset: u64,
    /// Repositories known to hold it, with the reference that needs it.
    pub sources: Vec<(Repository, String)>,
}

/// A bundle being written: a temporary file beside the output, removed
/// unless [`PendingBundle::commit`] renames it into place.
pub(crate) struct PendingBundle {
    temp: tempfile::NamedTempFile,
    file: Arc<File>,
    output: PathBuf,
    /// The archive's planned length.
    len: u64,
    /// Hashes the archive while blobs arrive (started by `fetch_all`).
    hasher: Option<Arc<ArchiveHasher>>,
}

impl PendingBundle {
    /// Create the temporary file and write the planned skeleton into it.
    pub fn create(output: &Path, plan: &LayoutPlan) -> Result<PendingBundle> {
        if output.is_dir() {
            return Err(Error::Io {
                action: "cannot write the bundle over the directory",
                path: output.to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::IsADirectory),
            });
        }
        let temp = fsutil::temp_beside(output, ".partial").map_err(|source| Error::Io {
            action: "cannot create a temporary file in",
            path: fsutil::parent_dir(output).to_path_buf(),
            source,
        })?;
        let file = Arc::new(temp.as_file().try_clone().map_err(|source| Error::Io {
            action: "cannot open",
            path: temp.path().to_path_buf(),
            source,
        })?);
        plan.write_skeleton(&file).map_err(|source| Error::Io {
            action: "cannot write",
            path: temp.path().to_path_buf(),
            source,
        })?;
        Ok(PendingBundle {
            temp,
            file,
            output: output.to_path_buf(),
            len: plan.total_size(),
            hasher: None,
        })
    }

    /// Write bytes already in memory (manifests) at their offset.
    pub fn write_at(&self, bytes: &[u8], offset: u64) -> Result<()> {
        self.file
            .write_all_at(bytes, offset)
            .map_err(|source| self.io_error(source))
    }

    fn io_error(&self, source: std::io::Error) -> Error {
        Error::Io {
            action: "cannot write",
            path: self.temp.path().to_path_buf(),
            source,
        }
    }

    /// Fetch every job, `jobs` at a time. The first failure stops the rest.
    /// Everything else must be written already: the archive's sha256 is
    /// computed from here on, following the blobs as they land.
    pub async fn fetch_all(
        &mut self,
        client: &Client,
        mut queue: Vec<BlobJob>,
        jobs: usize,
        progress: Arc<dyn Progress>,
    ) -> Result<()> {
        queue.sort_by_key(|j| j.offset);
        let regions: Vec<(u64, u64)> = queue.iter().map(|j| (j.offset, j.size)).collect();
        let hasher = Arc::new(ArchiveHasher::start(self.file.clone(), self.len, &regions));
        self.hasher = Some(hasher.clone());
        let mut queue: Vec<(usize, BlobJob)> = queue.into_iter().enumerate().collect();
        // Biggest first keeps every worker busy until the end.
        queue.sort_by(|(_, a), (_, b)| b.size.cmp(&a.size).then(a.digest.cmp(&b.digest)));
        let mut queue = queue.into_iter();
        let mut running = JoinSet::new();
        loop {
            while running.len() < jobs.max(1) {
                let Some((slot, job)) = queue.next() else {
                    break;
                };
                let client = client.clone();
                let file = self.file.clone();
                let progress = progress.clone();
                let place = Placement {
                    file,
                    hasher: hasher.clone(),
                    slot,
                };
                running.spawn(
                    async move { fetch_blob(&client, &job, &place, progress.as_ref()).await },
                );
            }
            match running.join_next().await {
                None => return Ok(()),
                Some(Ok(Ok(()))) => progress.item_done(),
                Some(Ok(Err(e))) => return Err(e),
                Some(Err(e)) => return Err(Error::Task(e.to_string())),
            }
        }
    }

    /// Flush to disk while the archive's hash finishes, rename it into
    /// place and write `OUT.sha256`. Returns the archive's sha256 hex and
    /// size.
    pub async fn commit(mut self, progress: Arc<dyn Progress>) -> Result<(String, u64)> {
        let path = self.temp.path().to_path_buf();
        let hasher = match self.hasher.take() {
            Some(h) => h,
            None => Arc::new(ArchiveHasher::start(self.file.clone(), self.len, &[])),
        };
        let file = self.file.clone();
        let synced = tokio::task::spawn_blocking(move || file.sync_all());
        let hashed = tokio::task::spawn_blocking(move || hasher.finish(progress.as_ref()));
        let (synced, hashed) = tokio::join!(synced, hashed);
        let io = |action: &'static str| {
            let path = path.clone();
            move |source| Error::Io {
                action,
                path,
                source,
            }
        };
        synced
            .map_err(|e| Error::Task(e.to_string()))?
            .map_err(io("cannot flush"))?;
        let hashed = hashed
            .map_err(|e| Error::Task(e.to_string()))?
            .map_err(io("cannot read back"))?;
        let output = self.output.clone();
        // Already flushed above, alongside the hash: persist's own fsync of
        // the file finds nothing left to write.
        fsutil::persist(self.temp, &output).map_err(|source| Error::Io {
            action: "cannot move the finished bundle to",
            path: output.clone(),
            source,
        })?;
        write_checksum_file(&output, &hashed.0)?;
        Ok(hashed)
    }
}

/// Write `OUT.sha256` in `sha256sum` format, atomically.
fn write_checksum_file(output: &Path, hex: &str) -> Result<()> {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    write_beside(
        output,
        ".sha256",
        format!(
            "{hex}  {name}
"
        )
        .as_bytes(),
    )?;
    Ok(())
}

/// Write `OUT.sig`, the bundle's detached signature over its sha256
/// (`hex`), atomically; returns its path.
pub(crate) fn sign_bundle(output: &Path, hex: &str, key: &PrivateKey) -> Result<PathBuf> {
    let mut sha256 = [0u8; 32];
    hex::decode_to_slice(hex, &mut sha256)
        .map_err(|e| Error::Task(format!("the bundle's sha256 {hex:?} is not hex: {e}")))?;
    let text = BundleSignature::sign(sha256, key).to_text();
    write_beside(output, ".sig", text.as_bytes())
}

/// Write `OUT<suffix>` beside the bundle with the one atomic write; returns
/// its path.
fn write_beside(output: &Path, suffix: &str, contents: &[u8]) -> Result<PathBuf> {
    let mut path = output.as_os_str().to_owned();
    path.push(suffix);
    let path = PathBuf::from(path);
    fsutil::write_atomic(&path, contents).map_err(|source| Error::Io {
        action: "cannot write",
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Where a blob's bytes go: the archive, and the hasher's slot for it.
struct Placement {
    file: Arc<File>,
    hasher: Arc<ArchiveHasher>,
    slot: usize,
}

async fn fetch_blob(
    client: &Client,
    job: &BlobJob,
    place: &Placement,
    progress: &dyn Progress,
) -> Result<()> {
    client
        .config()
        .retry
        .run_noting(
            |attempt| async move {
                if attempt > 1 {
                    place.hasher.restarted();
                }
                // Only a body broken in transit is tried again here: a
                // request that failed was already retried by the client, and
                // trying it again would multiply the bound on tries.
                fetch_once(client, job, place, progress)
                    .await
                    .map_err(|failed| match failed {
                        Failed::InBody(e)
                            if matches!(&e, Error::Registry { source, .. } if source.is_retryable()) =>
                        {
                            Failure::transient(e)
                        }
                        Failed::InBody(e) | Failed::Final(e) => Failure::Final(e),
                    })
            },
            |e, _| {
                if let Error::Registry { reference, source } = e {
                    progress.note(&format!(
                        "retrying blob {} for {reference}: {source}",
                        job.digest
                    ));
                }
            },
        )
        .await
}

/// How one try at a blob failed.
enum Failed {
    /// While its body was arriving.
    InBody(Error),
    /// Anywhere else; not worth another try here.
    Final(Error),
}

async fn fetch_once(
    client: &Client,
    job: &BlobJob,
    place: &Placement,
    progress: &dyn Progress,
) -> Result<(), Failed> {
    let mut last_error = None;
    for (repo, label) in &job.sources {
        let mut stream = match client.get_blob(repo, &job.digest).await {
            Ok(s) => s,
            Err(e @ ferry_registry::Error::NotFound { .. }) => {
                last_error = Some(Error::Registry {
                    reference: label.clone(),
                    source: e,
                });
                continue;
            }
            Err(source) => {
                return Err(Failed::Final(Error::Registry {
                    reference: label.clone(),
                    source,
                }))
            }
        };
        let mut hasher = DigestHasher::for_digest(&job.digest);
        let mut written = 0u64;
        while let Some(chunk) = stream.next_chunk().await.map_err(|source| {
            Failed::InBody(Error::Registry {
                reference: label.clone(),
                source,
            })
        })? {
            let len = chunk.len() as u64;
            if written + len > job.size {
                return Err(Failed::Final(Error::BlobSizeMismatch {
                    reference: label.clone(),
                    digest: job.digest.clone(),
                    expected: job.size,
                    found: written + len,
                }));
            }
            hasher.update(&chunk);
            place
                .file
                .write_all_at(&chunk, job.offset + written)
                .map_err(|source| {
                    Failed::Final(Error::Io {
                        action: "cannot write blob data to the bundle",
                        path: PathBuf::from(job.digest.blob_path()),
                        source,
                    })
                })?;
            written += len;
            place.hasher.written(place.slot, written);
            progress.bytes(len);
        }
        if written != job.size {
            return Err(Failed::Final(Error::BlobSizeMismatch {
                reference: label.clone(),
                digest: job.digest.clone(),
                expected: job.size,
                found: written,
            }));
        }
        let found = hasher.finish();
        if found != job.digest {
            return Err(Failed::Final(Error::BlobDigestMismatch {
                reference: label.clone(),
                expected: job.digest.clone(),
                found,
                size: written,
            }));
        }
        return Ok(());
    }
    Err(Failed::Final(last_error.unwrap_or_else(|| {
        Error::Task(format!("no source for blob {}", job.digest))
    })))
}
