//! Receipts: what the target holds of a bundle, found by HEAD requests
//! only, written for the connected side's `ferry pack --since`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{StreamExt, TryStreamExt};

use ferry_oci::{Algorithm, Digest, DigestHasher, Receipt};
use ferry_registry::{Client, Repository};

use crate::repos::RepoPlan;
use crate::{Error, Plan, Result};

/// Find, by HEAD requests, every manifest and blob of `plan` the target
/// holds in the repositories the plan puts it in (a blob counts when any of
/// them holds it); `bundles` are the sha256 hex of the bundles loaded.
pub async fn collect_receipt(
    client: &Client,
    plan: &Plan,
    bundles: Vec<String>,
    jobs: usize,
) -> Result<Receipt> {
    let host = plan.target.registry().to_string();
    let repos = RepoPlan::all(plan);
    // Each digest with the repositories that should hold it, in order.
    let mut manifests: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
    let mut blobs: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
    for repo in &repos {
        let image_manifests = repo.images.iter().flat_map(|&i| &plan.images[i].manifests);
        let referrer_manifests = repo
            .referrers
            .iter()
            .flat_map(|&r| &plan.referrers[r].manifests);
        for digest in image_manifests.chain(referrer_manifests) {
            manifests
                .entry(digest.clone())
                .or_default()
                .push(repo.path.clone());
        }
        for digest in repo.blobs.keys() {
            blobs
                .entry(digest.clone())
                .or_default()
                .push(repo.path.clone());
        }
    }
    let look = |digest: Digest, paths: Vec<String>, manifest: bool| {
        let host = host.clone();
        async move {
            for path in paths {
                let repo = Repository::new(host.clone(), path);
                let found = if manifest {
                    client
                        .head_manifest(&repo, &digest.to_string())
                        .await
                        .map(|h| h.is_some())
                } else {
                    client.blob_exists(&repo, &digest).await
                };
                let found = found.map_err(|source| Error::Registry {
                    what: format!("looking for {digest} in {repo}"),
                    source,
                })?;
                if found {
                    return Ok(Some(digest));
                }
            }
            Ok::<_, Error>(None)
        }
    };
    let held_manifests: Vec<Option<Digest>> = futures_util::stream::iter(manifests)
        .map(|(d, paths)| look(d, paths, true))
        .buffer_unordered(jobs.max(1))
        .try_collect()
        .await?;
    let held_blobs: Vec<Option<Digest>> = futures_util::stream::iter(blobs)
        .map(|(d, paths)| look(d, paths, false))
        .buffer_unordered(jobs.max(1))
        .try_collect()
        .await?;
    let manifest_size = |d: Digest| {
        let size = plan.manifests[&d].bytes.len() as u64;
        (d, size)
    };
    let blob_size = |d: Digest| {
        let size = plan.blob_sizes[&d];
        (d, size)
    };
    Ok(Receipt::new(
        plan.target.registry(),
        plan.target.prefix(),
        bundles,
        held_manifests.into_iter().flatten().map(manifest_size),
        held_blobs.into_iter().flatten().map(blob_size),
    ))
}

/// After an unpack: the receipt of `plan`, written where the options say.
pub(crate) async fn after_run(
    client: &Client,
    options: &crate::UnpackOptions,
    plan: &Plan,
    bundle_sha256: String,
) -> Result<()> {
    let Some(path) = &options.receipt else {
        return Ok(());
    };
    let receipt = collect_receipt(client, plan, vec![bundle_sha256], options.jobs).await?;
    write_receipt(path, &receipt)
}

/// Write `receipt` to `path` atomically.
pub fn write_receipt(path: &Path, receipt: &Receipt) -> Result<()> {
    ferry_oci::fsutil::write_atomic(path, &receipt.to_bytes()).map_err(|source| Error::Receipt {
        path: path.to_path_buf(),
        source,
    })
}

/// A reader that hashes (sha256) what goes through it, for the receipt of
/// a bundle read from a stream: the archive and the zero blocks that pad
/// it, not what follows them (see [`StreamHash`]).
pub(crate) struct HashingReader<R> {
    pub inner: R,
    pub hash: Arc<Mutex<StreamHash>>,
    /// Set once the archive's end-of-archive block has been read (see
    /// `stream::Settings::archive_end`): what comes after is trailing.
    pub archive_end: Arc<AtomicBool>,
}

impl<R> HashingReader<R> {
    pub fn new(inner: R) -> HashingReader<R> {
        HashingReader {
            inner,
            hash: Arc::new(Mutex::new(StreamHash::default())),
            archive_end: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let trailing = self.archive_end.load(Ordering::Acquire);
        self.hash.lock().expect("lock").update(&buf[..n], trailing);
        Ok(n)
    }
}

/// The sha256 of an archive read from a stream. Every byte up to its
/// end-of-archive block is hashed; after it, whole zero blocks are too
/// (the end's second block, a writer's padding to its record size). The
/// first block after the end that is not all zeros, and everything after
/// it, is not the archive's — the parity parts and the checksum file that
/// `cat OUT.tar.*` sends after the data parts — and is only counted: the
/// receipt's sha256 is then the bundle's, as `OUT.sha256` has it.
pub(crate) struct StreamHash {
    hasher: DigestHasher,
    /// Bytes after the end, not yet a whole block.
    block: Vec<u8>,
    /// A block after the end held something else than zeros.
    beyond: bool,
    /// Bytes read but not hashed.
    ignored: u64,
}

impl Default for StreamHash {
    fn default() -> StreamHash {
        StreamHash {
            hasher: DigestHasher::new(Algorithm::Sha256),
            block: Vec::with_capacity(TAR_BLOCK),
            beyond: false,
            ignored: 0,
        }
    }
}

/// A tar block, in bytes.
const TAR_BLOCK: usize = ferry_oci::layout::BLOCK as usize;

impl StreamHash {
    /// Bytes read, `trailing` when after the archive's end.
    fn update(&mut self, mut bytes: &[u8], trailing: bool) {
        if !trailing {
            self.hasher.update(bytes);
            return;
        }
        while !bytes.is_empty() {
            if self.beyond {
                self.ignored += bytes.len() as u64;
                return;
            }
            let take = (TAR_BLOCK - self.block.len()).min(bytes.len());
            self.block.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.block.len() == TAR_BLOCK {
                self.end_block();
            }
        }
    }

    /// The block after the end just read whole (or cut short at the
    /// stream's end; none is gathered once `beyond`): hashed when zeros,
    /// else the end of what is hashed.
    fn end_block(&mut self) {
        if self.block.iter().all(|&b| b == 0) {
            self.hasher.update(&self.block);
        } else {
            self.beyond = true;
            self.ignored += self.block.len() as u64;
        }
        self.block.clear();
    }

    /// The sha256 hex of the archive, and how many bytes after it were
    /// left out. Starts afresh.
    pub(crate) fn finish(&mut self) -> (String, u64) {
        let mut done = std::mem::take(self);
        if !done.block.is_empty() {
            done.end_block();
        }
        (done.hasher.finish().hex().to_string(), done.ignored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256_hex(bytes: &[u8]) -> String {
        Digest::sha256_of(bytes).hex().to_string()
    }

    /// Feed `archive` (up to and with its first end block) as read, then
    /// `after` as trailing, in reads of `read` bytes.
    fn hashed(archive: &[u8], after: &[u8], read: usize) -> (String, u64) {
        let mut hash = StreamHash::default();
        for chunk in archive.chunks(read) {
            hash.update(chunk, false);
        }
        for chunk in after.chunks(read) {
            hash.update(chunk, true);
        }
        hash.finish()
    }

    #[test]
    fn the_stream_hash_is_the_archive_with_its_padding_not_what_follows() {
        let archive: Vec<u8> = (0..3072u32).map(|i| (i % 251) as u8 | 1).collect();
        let mut with_end = archive.clone();
        with_end.extend([0u8; 512]);
        for read in [1, 100, 512, 700, 65536] {
            // A ferry bundle: the second end block, then EOF.
            let mut bundle = with_end.clone();
            bundle.extend([0u8; 512]);
            assert_eq!(
                hashed(&with_end, &[0; 512], read),
                (sha256_hex(&bundle), 0),
                "read {read}"
            );
            // Padding to a 10 KiB record, as GNU tar writes: all of it.
            let mut padded = with_end.clone();
            padded.resize(10240, 0);
            assert_eq!(
                hashed(&with_end, &padded[with_end.len()..], read),
                (sha256_hex(&padded), 0)
            );
            // `cat OUT.tar.*`: a parity part and a checksum file behind
            // the bundle are counted, not hashed.
            let mut behind = vec![0u8; 512];
            behind.extend([7u8; 1000]);
            behind.extend(b"0123abcd  b.tar.000\n");
            assert_eq!(
                hashed(&with_end, &behind, read),
                (sha256_hex(&bundle), 1020)
            );
            // A last block cut short: zeros are padding, anything else not.
            assert_eq!(
                hashed(&with_end, &[0u8; 512 + 100], read),
                (sha256_hex(&[&bundle[..], &[0u8; 100]].concat()), 0)
            );
            assert_eq!(hashed(&with_end, &[0, 0, 9], read).1, 3);
        }
    }
}
