//! `ferry unpack --check`: a preflight of the target that pushes nothing.
//!
//! Everything a long unpack could discover too late, asked up front: is the
//! registry reachable (and its TLS trusted), may these credentials push to
//! every repository of the plan (an upload session is opened and cancelled
//! in each), does it offer the referrers API, do the names fit, which tags
//! would move and from what to what, and how much is left to upload (the
//! blobs each repository lacks, by `HEAD`).

use std::collections::BTreeMap;
use std::fmt;

use futures_util::StreamExt;
use serde::Serialize;

use ferry_oci::Digest;
use ferry_registry::{Client, Repository};

use crate::repos::RepoPlan;
use crate::{Plan, Result};
use ferry_oci::error_chain as chain;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Fine.
    Ok,
    /// Worth knowing; the unpack would still work.
    Warn,
    /// The unpack would fail, or do what it was told not to.
    Block,
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Warn => "warn",
            CheckStatus::Block => "BLOCK",
        })
    }
}

/// One row of the preflight table.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRow {
    /// What was checked: `registry`, `push`, `referrers`, `names`, `tags`,
    /// `upload`.
    pub check: String,
    /// How it came out.
    pub status: CheckStatus,
    /// What was found, and what to do.
    pub detail: String,
}

/// A tag of the target that an unpack would point somewhere new.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagMove {
    /// The relocated `HOST/PATH:TAG`.
    pub reference: String,
    /// The digest it points at now.
    pub from: Digest,
    /// The digest the unpack would give it.
    pub to: Digest,
}

/// What the preflight found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The target.
    pub target: String,
    /// One row per check, in order.
    pub checks: Vec<CheckRow>,
    /// Tags that would move.
    pub tag_moves: Vec<TagMove>,
    /// Blobs to upload (distinct digests the target lacks anywhere in the
    /// plan's repositories).
    pub blobs_to_upload: u64,
    /// Their size.
    pub bytes_to_upload: u64,
    /// Blobs already in place.
    pub blobs_present: u64,
    /// How many rows block.
    pub blockers: usize,
}

/// Which tags of the target the plan would move: the tag exists and points
/// at another digest. A tag that already points where the plan would put
/// it is not a move.
pub async fn tag_moves(client: &Client, plan: &Plan, jobs: usize) -> Result<Vec<TagMove>> {
    let tags = crate::target_tags::look_up(client, plan, jobs).await?;
    Ok(moves_of(plan, &tags.current))
}

/// The moves among `states` (where each tag the plan sets points now).
pub(crate) fn moves_of(plan: &Plan, states: &[(usize, Option<Digest>)]) -> Vec<TagMove> {
    states
        .iter()
        .filter_map(|(i, current)| {
            let image = &plan.images[*i];
            current
                .as_ref()
                .filter(|d| **d != image.digest)
                .map(|from| TagMove {
                    reference: image.tag_reference().unwrap_or_default(),
                    from: from.clone(),
                    to: image.digest.clone(),
                })
        })
        .collect()
}

/// Run every check against the target of `plan`. Only a failure to plan is
/// an error; what the registry answers goes in the report.
pub async fn check(client: &Client, plan: &Plan, jobs: usize) -> CheckReport {
    let host = plan.target.registry().to_string();
    let repos = RepoPlan::all(plan);
    let mut rows = Vec::new();
    let mut row = |check: &str, status, detail: String| {
        rows.push(CheckRow {
            check: check.to_string(),
            status,
            detail,
        })
    };
    let first = Repository::new(host.clone(), repos[0].path.clone());
    let scheme = if client.config().is_plain_http(&host) {
        "plain HTTP"
    } else if client.config().is_insecure(&host) {
        "TLS, not verified (--insecure)"
    } else {
        "TLS verified"
    };

    // Reachability, TLS and read access in one request.
    let reachable = client.head_manifest(&first, "latest").await;
    let mut report = CheckReport {
        target: plan.target.to_string(),
        checks: Vec::new(),
        tag_moves: Vec::new(),
        blobs_to_upload: 0,
        bytes_to_upload: 0,
        blobs_present: 0,
        blockers: 0,
    };
    if let Err(e) = reachable {
        row("registry", CheckStatus::Block, chain(&e));
        report.checks = rows;
        report.blockers = 1;
        return report;
    }
    row(
        "registry",
        CheckStatus::Ok,
        format!("{host} answers ({scheme})"),
    );

    // Push permission, in every repository.
    let probes: Vec<(String, std::result::Result<(), String>)> = futures_util::stream::iter(&repos)
        .map(|r| {
            let repo = Repository::new(host.clone(), r.path.clone());
            async move {
                let result = client.probe_push(&repo).await.map_err(|e| chain(&e));
                (r.path.clone(), result)
            }
        })
        .buffered(jobs.max(1))
        .collect()
        .await;
    let refused: Vec<String> = probes
        .iter()
        .filter_map(|(path, r)| r.as_ref().err().map(|e| format!("{path}: {e}")))
        .collect();
    if refused.is_empty() {
        row(
            "push",
            CheckStatus::Ok,
            format!(
                "may push to all {} repositories (an upload session opened and cancelled in each)",
                repos.len()
            ),
        );
    } else {
        row(
            "push",
            CheckStatus::Block,
            format!(
                "{} of {} repositories refuse a push: {}",
                refused.len(),
                repos.len(),
                refused.join("; ")
            ),
        );
    }

    // The referrers API.
    let probe_digest = plan.images[0].digest.clone();
    let referrers = client.referrers(&first, &probe_digest).await;
    let needed = !plan.referrers.is_empty();
    match referrers {
        Ok(Some(_)) => row(
            "referrers",
            CheckStatus::Ok,
            "the referrers API is offered".into(),
        ),
        Ok(None) => row(
            "referrers",
            if needed {
                CheckStatus::Warn
            } else {
                CheckStatus::Ok
            },
            format!(
                "the referrers API is not offered; {} referrer(s) are found through the \
                 sha256-<digest> tag schema ferry writes",
                plan.referrers.len()
            ),
        ),
        Err(e) => row("referrers", CheckStatus::Warn, chain(&e)),
    }

    // Names: the plan already refused what does not fit; say what it is.
    let longest = repos
        .iter()
        .map(|r| r.path.len() + host.len() + 1)
        .max()
        .unwrap_or(0);
    let deepest = repos
        .iter()
        .map(|r| r.path.split('/').count())
        .max()
        .unwrap_or(0);
    let limit = plan
        .target
        .max_depth()
        .map(|d| format!(" (--max-depth {d})"))
        .unwrap_or_default();
    row(
        "names",
        CheckStatus::Ok,
        format!(
            "{} repositories (naming {}), longest name {longest} of 255 characters, \
             at most {deepest} path components{limit}",
            repos.len(),
            plan.naming
        ),
    );

    // Tags that would move.
    match tag_moves(client, plan, jobs).await {
        Ok(moves) => {
            if moves.is_empty() {
                row("tags", CheckStatus::Ok, "no existing tag would move".into());
            } else {
                row(
                    "tags",
                    CheckStatus::Warn,
                    format!(
                        "{} existing tag(s) would move: {}",
                        moves.len(),
                        moves
                            .iter()
                            .map(|m| format!("{} {} -> {}", m.reference, m.from, m.to))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                );
            }
            report.tag_moves = moves;
        }
        Err(e) => row("tags", CheckStatus::Warn, chain(&e)),
    }

    // What is left to upload.
    let heads: Vec<(Digest, u64, std::result::Result<bool, String>)> =
        futures_util::stream::iter(repos.iter().flat_map(|r| {
            r.blobs
                .iter()
                .map(move |(d, size)| (r.path.clone(), d.clone(), *size))
        }))
        .map(|(path, digest, size)| {
            let repo = Repository::new(host.clone(), path);
            async move {
                let present = client
                    .blob_exists(&repo, &digest)
                    .await
                    .map_err(|e| chain(&e));
                (digest, size, present)
            }
        })
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    let mut missing: BTreeMap<Digest, u64> = BTreeMap::new();
    let mut present = 0u64;
    let mut errors = Vec::new();
    for (digest, size, result) in heads {
        match result {
            Ok(true) => present += 1,
            Ok(false) => {
                missing.insert(digest, size);
            }
            Err(e) => errors.push(e),
        }
    }
    report.blobs_to_upload = missing.len() as u64;
    report.bytes_to_upload = missing.values().sum();
    report.blobs_present = present;
    if errors.is_empty() {
        row(
            "upload",
            CheckStatus::Ok,
            format!(
                "{} blob(s) to upload, {} byte(s); {present} already in place",
                missing.len(),
                report.bytes_to_upload
            ),
        );
    } else {
        row(
            "upload",
            CheckStatus::Warn,
            format!("{} blob lookup(s) failed: {}", errors.len(), errors[0]),
        );
    }
    report.blockers = rows
        .iter()
        .filter(|r| r.status == CheckStatus::Block)
        .count();
    report.checks = rows;
    report
}
