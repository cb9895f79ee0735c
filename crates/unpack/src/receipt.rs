//! Receipts: what the target holds of a bundle, found by HEAD requests
//! only, written for the connected side's `ferry pack --since`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
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
/// a bundle read from a stream.
pub(crate) struct HashingReader<R> {
    pub inner: R,
    pub hasher: Arc<Mutex<DigestHasher>>,
}

impl<R> HashingReader<R> {
    pub fn new(inner: R) -> HashingReader<R> {
        HashingReader {
            inner,
            hasher: Arc::new(Mutex::new(DigestHasher::new(Algorithm::Sha256))),
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.lock().expect("lock").update(&buf[..n]);
        Ok(n)
    }
}

/// The sha256 hex of what `hasher` saw.
pub(crate) fn hex_of(hasher: &Arc<Mutex<DigestHasher>>) -> String {
    let hasher = std::mem::replace(
        &mut *hasher.lock().expect("lock"),
        DigestHasher::new(Algorithm::Sha256),
    );
    hasher.finish().hex().to_string()
}
