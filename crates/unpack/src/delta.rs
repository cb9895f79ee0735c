//! Unpacking a delta: the plan counts the blobs it leaves to its base as
//! held, and before anything is pushed the target must hold each of them in
//! some repository under the prefix (then they are mounted where needed).

use std::collections::BTreeMap;

use serde::Serialize;

use ferry_oci::{Base, BaseKind, DeltaRecord, Descriptor, Digest, Manifest, RelocationTarget};
use ferry_registry::Repository;

use crate::holdings::{Held, Holdings};
use crate::push::Pusher;
use crate::repos::RepoPlan;
use crate::{Error, Result};

/// What a delta leaves to its base, as far as this plan needs it.
#[derive(Debug, Clone, Serialize)]
pub struct PlanDelta {
    /// The bases the delta was made against.
    pub bases: Vec<Base>,
    /// How many blobs the plan needs from the target rather than the bundle.
    pub blobs_expected: usize,
    /// Their bytes.
    pub bytes_expected: u64,
    /// Those blobs, with their sizes.
    #[serde(skip)]
    pub(crate) left_out: BTreeMap<Digest, u64>,
    #[serde(skip)]
    pub(crate) record: DeltaRecord,
}

/// A bundle's holdings with the blobs its delta record leaves out counted
/// as held (their sizes from the record).
pub(crate) struct WithBase<'a> {
    pub inner: &'a dyn Holdings,
    pub left_out: BTreeMap<Digest, u64>,
}

impl Holdings for WithBase<'_> {
    fn index(&self) -> &[Descriptor] {
        self.inner.index()
    }

    fn held(&self, digest: &Digest) -> Held {
        match (self.inner.held(digest), self.left_out.get(digest)) {
            (Held::Yes(size), _) => Held::Yes(size),
            (_, Some(&size)) => Held::Yes(size),
            (held, None) => held,
        }
    }

    fn manifest(&self, digest: &Digest, media_type: Option<&str>) -> ferry_oci::Result<Manifest> {
        self.inner.manifest(digest, media_type)
    }

    fn delta(&self) -> ferry_oci::Result<Option<DeltaRecord>> {
        self.inner.delta()
    }
}

/// Refuse a delta made against a receipt of another registry or prefix.
pub(crate) fn check_target(record: &DeltaRecord, target: &RelocationTarget) -> Result<()> {
    for base in &record.bases {
        let Some(receipt_target) = base.target.as_deref() else {
            continue;
        };
        let same = RelocationTarget::parse(receipt_target).is_ok_and(|t| t == *target);
        if base.kind == BaseKind::Receipt && !same {
            return Err(Error::ReceiptTarget {
                base: base.describe(),
                receipt_target: receipt_target.to_string(),
                target: target.to_string(),
            });
        }
    }
    Ok(())
}

/// The part of `record` a plan needing `blobs` uses.
pub(crate) fn plan_delta(record: DeltaRecord, blobs: &BTreeMap<Digest, u64>) -> PlanDelta {
    let left_out: BTreeMap<Digest, u64> = record
        .left_out
        .iter()
        .filter(|l| blobs.contains_key(&l.digest))
        .map(|l| (l.digest.clone(), l.size))
        .collect();
    PlanDelta {
        bases: record.bases.clone(),
        blobs_expected: left_out.len(),
        bytes_expected: left_out.values().sum(),
        left_out,
        record,
    }
}

/// Before anything is pushed: find every left-out blob in the target. A
/// blob a repository needs and lacks must be in another repository of the
/// target under the prefix (those of this plan, and any other the registry
/// lists under the prefix); it is remembered there, so the push mounts it.
/// Missing ones fail the run with [`Error::BaseMissing`].
pub(crate) async fn ensure_base(
    pusher: &Pusher,
    delta: &PlanDelta,
    repos: &[RepoPlan],
    target: &RelocationTarget,
) -> Result<()> {
    if delta.left_out.is_empty() {
        return Ok(());
    }
    let host = target.registry().to_string();
    let repo = |path: &str| Repository::new(host.clone(), path.to_string());
    let mut candidates: Vec<String> = repos.iter().map(|r| r.path.clone()).collect();
    for path in pusher.catalog_under(&repo(""), target.prefix()).await {
        if !candidates.contains(&path) {
            candidates.push(path);
        }
    }
    let head = |path: String, digest: Digest| {
        let repository = repo(&path);
        async move {
            let found = pusher.client.blob_exists(&repository, &digest).await;
            found.map_err(|source| Error::Registry {
                what: format!("looking for blob {digest} in {repository}"),
                source,
            })
        }
    };
    let mut missing: Vec<(&Digest, u64)> = Vec::new();
    for (digest, &size) in &delta.left_out {
        let mut lacking = false;
        let mut holder = None;
        for r in repos.iter().filter(|r| r.blobs.contains_key(digest)) {
            if head(r.path.clone(), digest.clone()).await? {
                holder.get_or_insert_with(|| r.path.clone());
            } else {
                lacking = true;
            }
        }
        if lacking && holder.is_none() {
            for path in &candidates {
                if head(path.clone(), digest.clone()).await? {
                    holder = Some(path.clone());
                    break;
                }
            }
        }
        match (holder, lacking) {
            (Some(path), _) => pusher.locate(digest, &repo(&path)),
            // Every repository that needs it has it already.
            (None, false) => {}
            (None, true) => missing.push((digest, size)),
        }
    }
    let Some(&(example, _)) = missing.first() else {
        return Ok(());
    };
    let bases: Vec<String> = delta
        .record
        .bases_of(missing.iter().map(|(d, _)| *d))
        .iter()
        .map(|b| b.describe())
        .collect();
    Err(Error::BaseMissing {
        target: target.to_string(),
        count: missing.len(),
        bytes: missing.iter().map(|(_, s)| s).sum(),
        example: example.clone(),
        bases: bases.join(", "),
    })
}
