//! Unpacking from a stream: the reading thread ([`drive`]) hands each
//! needed blob over through a bounded channel; the async side pushes it
//! into the first repository that needs it (uploaded, or skipped when
//! present) and mounts it into the others. After the end of the stream,
//! manifests, tags and referrers go exactly as for a file. Blobs go one at
//! a time: a stream has one reader.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;

use ferry_oci::{Digest, Progress, VerifyingReader};
use ferry_registry::{Client, Repository};

use crate::push::{pump, BodyChunks, Pusher, CHUNKS_IN_FLIGHT};
use crate::repos::{Outcome, RepoPlan};
use crate::stream::{drive, Arrivals, Settings};
use crate::{finish, Error, Plan, Result, UnpackOptions, UnpackSummary};
use ferry_oci::error_chain;

/// What the reading thread tells the pushing side.
enum Event {
    /// The plan, before any blob.
    Planned(Box<Plan>),
    /// A blob the plan needs: its chunks (and a flag set if they do not
    /// match the digest), or why it cannot be used.
    Blob {
        digest: Digest,
        body: std::result::Result<(BodyChunks, Arc<AtomicBool>), String>,
    },
}

/// The reading thread's side of the channel.
struct Sender {
    events: mpsc::Sender<Event>,
    progress: Arc<dyn Progress>,
}

impl Sender {
    fn send(&self, event: Event) -> Result<()> {
        self.events.blocking_send(event).map_err(|_| Error::Task {
            reason: "the pushing side stopped before the stream was read".into(),
        })
    }
}

impl Arrivals for Sender {
    fn planned(&mut self, plan: &Plan) -> Result<()> {
        self.send(Event::Planned(Box::new(plan.clone())))
    }

    fn arrived(
        &mut self,
        digest: &Digest,
        size: u64,
        data: std::result::Result<&mut dyn Read, String>,
    ) -> Result<()> {
        let data = match data {
            Ok(data) => data,
            Err(reason) => {
                let digest = digest.clone();
                return self.send(Event::Blob {
                    digest,
                    body: Err(reason),
                });
            }
        };
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
        let corrupt = Arc::new(AtomicBool::new(false));
        self.send(Event::Blob {
            digest: digest.clone(),
            body: Ok((rx, corrupt.clone())),
        })?;
        let reader = VerifyingReader::new(data, digest, size);
        pump(reader, size, &tx, &corrupt, &*self.progress);
        Ok(())
    }
}

/// How the stream being unpacked is hashed for the receipt.
pub(crate) struct StreamHashing {
    /// Set when the archive's end block has been read (see
    /// [`Settings::archive_end`]).
    pub archive_end: Arc<std::sync::atomic::AtomicBool>,
    /// The archive's sha256, once the stream has been read to its end;
    /// called after every run (it also warns of what followed the
    /// archive), the sha256 kept for the receipt.
    pub sha256: Box<dyn FnOnce() -> io::Result<String> + Send>,
}

/// Unpack the bundle read from `reader` (see [`crate::unpack`]).
pub(crate) async fn unpack_stream(
    client: &Client,
    options: &UnpackOptions,
    reader: impl Read + Send + 'static,
    progress: Arc<dyn Progress>,
    hashing: StreamHashing,
) -> Result<UnpackSummary> {
    let started = Instant::now();
    let (events, mut received) = mpsc::channel(1);
    let settings = Settings {
        target: options.target.clone(),
        naming: options.naming,
        sparse: options.sparse,
        archive_end: Some(hashing.archive_end),
    };
    let bundle_sha256 = hashing.sha256;
    let mut sender = Sender {
        events,
        progress: progress.clone(),
    };
    let reading = tokio::task::spawn_blocking(move || drive(reader, &settings, &mut sender));
    let reading_result = |joined: std::result::Result<Result<()>, tokio::task::JoinError>| {
        joined.map_err(|e| Error::Task {
            reason: e.to_string(),
        })?
    };
    let Some(Event::Planned(mut plan)) = received.recv().await else {
        reading_result(reading.await)?;
        return Err(Error::Task {
            reason: "the stream was read without a plan".into(),
        });
    };
    let moves =
        crate::existing::settle(client, &mut plan, options.existing_tag, options.jobs).await?;
    let host = plan.target.registry().to_string();
    let pusher = Pusher::new(client.clone(), 1, progress.clone());
    let repos = crate::repos_to_fill(&pusher, &plan, options.jobs).await;
    let mut results: Vec<BTreeMap<Digest, Option<String>>> = vec![BTreeMap::new(); repos.len()];
    if let Some(delta) = &plan.delta {
        crate::delta::ensure_base(&pusher, delta, &repos, &plan.target).await?;
    }
    progress.start("pushing", RepoPlan::items(&repos), RepoPlan::bytes(&repos));
    if let Some(delta) = &plan.delta {
        // Left to the base: never in the stream; present or mounted.
        for (r, repo_plan) in repos.iter().enumerate() {
            let repo = Repository::new(host.clone(), repo_plan.path.clone());
            for (digest, &size) in repo_plan.blobs.iter() {
                if !delta.left_out.contains_key(digest) {
                    continue;
                }
                let open = || Err(io::Error::other("left to the delta's base, which lacks it"));
                let outcome = pusher
                    .push_blob(&repo, digest, size, open, &AtomicBool::new(false), false)
                    .await;
                progress.item_done();
                results[r].insert(digest.clone(), outcome.err().map(|e| error_chain(&e)));
            }
        }
    }
    // Which repositories need each blob, so a blob's arrival does not scan
    // every repository (hundreds, in a platform release).
    let mut needing: BTreeMap<&Digest, Vec<usize>> = BTreeMap::new();
    for (r, repo_plan) in repos.iter().enumerate() {
        for digest in repo_plan.blobs.keys() {
            needing.entry(digest).or_default().push(r);
        }
    }
    while let Some(Event::Blob { digest, body }) = received.recv().await {
        let size = plan.blob_sizes[&digest];
        let needed_by = needing.get(&digest).map_or(&[][..], Vec::as_slice);
        let (chunks, corrupt) = match body {
            Ok((chunks, corrupt)) => (Mutex::new(Some(chunks)), corrupt),
            Err(reason) => {
                for &r in needed_by {
                    progress.item_done();
                    results[r].insert(digest.clone(), Some(reason.clone()));
                }
                continue;
            }
        };
        for &r in needed_by {
            let repo_plan = &repos[r];
            let repo = Repository::new(host.clone(), repo_plan.path.clone());
            let open = || {
                chunks.lock().expect("lock").take().ok_or_else(|| {
                    io::Error::other(
                        "it was read from a stream, cannot be read again, and could not be \
                         mounted from the repository it went to first",
                    )
                })
            };
            let untagged = repo_plan.untagged;
            let outcome = pusher
                .push_blob(&repo, &digest, size, open, &corrupt, untagged)
                .await;
            // Whatever was not read is skipped: the stream moves on.
            chunks.lock().expect("lock").take();
            progress.item_done();
            results[r].insert(digest.clone(), outcome.err().map(|e| error_chain(&e)));
        }
    }
    reading_result(reading.await)?;
    let mut outcome = Outcome::default();
    for (repo_plan, results) in repos.iter().zip(&mut results) {
        for digest in repo_plan.blobs.keys() {
            results.entry(digest.clone()).or_insert_with(|| {
                progress.item_done();
                Some("not in the bundle: the stream ended without it".into())
            });
        }
        let repo = Repository::new(host.clone(), repo_plan.path.clone());
        repo_plan
            .finish(&pusher, &repo, &plan, results, &mut outcome)
            .await;
    }
    progress.finish();
    let summary = finish(options, &plan, &pusher, outcome, moves, started)?;
    // Read to its end either way: what followed the archive is said.
    let sha256 = tokio::task::spawn_blocking(bundle_sha256)
        .await
        .map_err(|e| Error::Task {
            reason: e.to_string(),
        })?
        .map_err(|source| Error::Stream {
            source: ferry_oci::Error::Io {
                context: "reading the rest of the stream".into(),
                source,
            },
        })?;
    if options.receipt.is_some() {
        crate::receipt::after_run(client, options, &plan, sha256).await?;
    }
    Ok(summary)
}

/// The reading side of a dry run: blobs are hashed and dropped.
#[derive(Default)]
struct Check {
    plan: Option<Plan>,
    arrived: BTreeMap<Digest, Option<String>>,
}

impl Arrivals for Check {
    fn planned(&mut self, plan: &Plan) -> Result<()> {
        self.plan = Some(plan.clone());
        Ok(())
    }

    fn arrived(
        &mut self,
        digest: &Digest,
        size: u64,
        data: std::result::Result<&mut dyn Read, String>,
    ) -> Result<()> {
        let problem = match data {
            Ok(data) => {
                let mut reader = VerifyingReader::new(data, digest, size);
                io::copy(&mut reader, &mut io::sink())
                    .err()
                    .map(|e| e.to_string())
            }
            Err(reason) => Some(reason),
        };
        self.arrived.insert(digest.clone(), problem);
        Ok(())
    }
}

/// Plan the unpack of the bundle read from `reader`, offline, reading the
/// stream to its end: every blob the plan needs must go by, intact
/// ([`Error::StreamBlobs`] otherwise). Blocks; nothing is pushed.
pub fn plan_stream(
    reader: impl Read + Send + 'static,
    target: &ferry_oci::RelocationTarget,
    naming: ferry_oci::Naming,
    sparse: crate::SparseMode,
) -> Result<Plan> {
    let settings = Settings {
        target: target.clone(),
        naming,
        sparse,
        archive_end: None,
    };
    let mut check = Check::default();
    drive(reader, &settings, &mut check)?;
    let plan = check.plan.ok_or_else(|| Error::Task {
        reason: "the stream was read without a plan".into(),
    })?;
    let left_out = plan.delta.as_ref().map(|d| &d.left_out);
    let problems: Vec<String> = plan
        .blob_sizes
        .keys()
        .filter(|d| !left_out.is_some_and(|l| l.contains_key(*d)))
        .filter_map(|d| match check.arrived.get(d) {
            None => Some(format!("{d}: not in the bundle")),
            Some(Some(problem)) => Some(format!("{d}: {problem}")),
            Some(None) => None,
        })
        .collect();
    if !problems.is_empty() {
        return Err(Error::StreamBlobs { problems });
    }
    Ok(plan)
}
