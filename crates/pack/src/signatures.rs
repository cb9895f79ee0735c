//! `--require-signature`: every reference's cosign signatures checked
//! against the given keys before anything is written (see `ferry-sign`).

use std::collections::BTreeMap;

use ferry_oci::Digest;
use ferry_registry::{Client, Repository};
use ferry_sign::{Keyring, SignatureReport, SignedGraph, MAX_PAYLOAD_SIZE};

use crate::graph::Resolved;
use crate::{Error, Result};

/// Check the signatures of every resolved reference; an error naming each
/// image without a signature that holds, and why.
pub(crate) async fn require(
    client: &Client,
    resolved: &[Resolved],
    keys: &Keyring,
) -> Result<SignatureReport> {
    let mut graph = SignedGraph::new();
    let mut sources: BTreeMap<Digest, Repository> = BTreeMap::new();
    for r in resolved {
        let carried = |d: &Digest| r.manifests.contains_key(d);
        if let Some(root) = r.manifests.get(&r.root.digest) {
            graph.add_named(&r.reference.to_string(), root, carried);
        }
        for (name, d) in &r.tagged {
            if let Some(m) = r.manifests.get(&d.digest) {
                graph.add_named(name, m, carried);
            }
        }
        for digest in r.referrers.keys() {
            if let Some(m) = r.manifests.get(digest) {
                graph.add_referrer(m);
            }
        }
        for digest in r.blobs.keys() {
            sources
                .entry(digest.clone())
                .or_insert_with(|| r.repository());
        }
    }
    for digest in graph.payloads_needed() {
        let bytes = match sources.get(&digest) {
            Some(repo) => fetch_small(client, repo, &digest).await,
            None => Err("not found beside the signature".to_string()),
        };
        graph.add_payload(digest, bytes);
    }
    let report = graph.check(keys);
    let failures: Vec<String> = report
        .failures()
        .map(|i| {
            format!(
                "{}: {}",
                i.reference,
                i.reason.as_deref().unwrap_or("no signature holds")
            )
        })
        .collect();
    if failures.is_empty() {
        Ok(report)
    } else {
        Err(Error::Unsigned {
            keys: report.keys.clone(),
            images: failures,
        })
    }
}

/// A payload blob, at most [`MAX_PAYLOAD_SIZE`] bytes (checked against its
/// digest by the signature check).
async fn fetch_small(
    client: &Client,
    repo: &Repository,
    digest: &Digest,
) -> Result<Vec<u8>, String> {
    let mut stream = client
        .get_blob(repo, digest)
        .await
        .map_err(|e| format!("cannot be fetched: {e}"))?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream
        .next_chunk()
        .await
        .map_err(|e| format!("cannot be fetched: {e}"))?
    {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > MAX_PAYLOAD_SIZE {
            return Err(format!("larger than {MAX_PAYLOAD_SIZE} bytes"));
        }
    }
    Ok(bytes)
}
