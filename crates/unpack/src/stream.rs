//! Reading a bundle once, front to back, from a stream (`ferry unpack -`):
//! plan from its head, then hand each blob the plan needs over as it goes
//! by. Nothing is written to disk.
//!
//! The head is what comes before the first big blob: `oci-layout`,
//! `index.json` and the manifests, as `ferry pack` writes them. Blobs of up
//! to [`MAX_MANIFEST_SIZE`] are kept in memory (at most [`HEAD_LIMIT`] in
//! all) until every manifest reachable from `index.json` is in; then the
//! same [`plan`](crate::plan) as for a file is made. A bigger blob before
//! that ends the head early: fine when every manifest `index.json` names
//! is in (children of indexes not yet seen are taken as not carried, as in
//! a sparse bundle), otherwise the archive puts layers first and cannot be
//! read from a stream.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ferry_oci::layout::{Compression, MAX_MANIFEST_SIZE};
use ferry_oci::{Digest, LayoutStream, Manifest, Naming, RelocationTarget, Step, StreamBlob, Walk};

use crate::holdings::Buffered;
use crate::plan::plan_holdings;
use crate::{Error, Plan, Result, SparseMode};

/// The most bytes of small blobs kept in memory before the plan is made.
pub const HEAD_LIMIT: u64 = 64 << 20;

/// Where [`drive`] sends what it reads.
pub(crate) trait Arrivals {
    /// The plan is made; blobs follow.
    fn planned(&mut self, plan: &Plan) -> Result<()>;
    /// A blob the plan needs, the first time it goes by: its `size` bytes
    /// (unchecked), or why they cannot be used.
    fn arrived(
        &mut self,
        digest: &Digest,
        size: u64,
        data: std::result::Result<&mut dyn Read, String>,
    ) -> Result<()>;
}

/// How to plan.
pub(crate) struct Settings {
    pub target: RelocationTarget,
    pub naming: Naming,
    pub sparse: SparseMode,
    /// Set once the end-of-archive block of an uncompressed stream has
    /// been read, before the rest is drained: a reader hashing the stream
    /// for the receipt keeps what follows apart.
    pub archive_end: Option<Arc<AtomicBool>>,
}

/// The part of the stream read before the plan.
#[derive(Default)]
struct Head {
    buffered: Buffered,
    bytes: u64,
    /// Buffered manifests, parsed once (`None`: not a manifest).
    parsed: HashMap<Digest, Option<Arc<Manifest>>>,
}

impl Head {
    /// The manifests reachable from `index.json` not buffered yet, and
    /// whether one `index.json` names itself is among them. The walk stops
    /// at the depth limit; the plan reports what lies beyond.
    fn missing(&mut self) -> (BTreeSet<Digest>, bool) {
        let mut missing = BTreeSet::new();
        let mut named_missing = false;
        for entry in &self.buffered.index {
            let mut walk: Walk<Arc<Manifest>> = Walk::new(entry.clone());
            for digest in &missing {
                walk.visited(Digest::clone(digest));
            }
            while let Some(step) = walk.next() {
                let Step::Fetch {
                    descriptor, depth, ..
                } = step
                else {
                    continue;
                };
                let digest = descriptor.digest;
                let Some(bytes) = self.buffered.blobs.get(&digest) else {
                    named_missing |= depth == 0;
                    missing.insert(digest);
                    continue;
                };
                let parsed = self.parsed.entry(digest).or_insert_with_key(|d| {
                    Manifest::parse_as(bytes.clone(), None, d.algorithm())
                        .ok()
                        .map(Arc::new)
                });
                if let Some(m) = parsed {
                    walk.enter(m.clone());
                }
            }
        }
        // A delta's record is planned with, like a manifest `index.json`
        // names.
        if let Ok(Some(record)) = ferry_oci::delta::delta_record_digest(&self.buffered.index_json) {
            if !self.buffered.blobs.contains_key(&record) {
                named_missing = true;
                missing.insert(record);
            }
        }
        (missing, named_missing)
    }
}

fn stream_err(source: ferry_oci::Error) -> Error {
    Error::Stream { source }
}

/// Read the bundle from `reader` to its end: plan from its head, then give
/// `arrivals` the plan and every blob it needs, once each, in archive
/// order. Blobs nobody needs are skipped.
pub(crate) fn drive(
    reader: impl Read + Send + 'static,
    settings: &Settings,
    arrivals: &mut dyn Arrivals,
) -> Result<()> {
    let mut stream = LayoutStream::new(reader).map_err(stream_err)?;
    let mut head = Head::default();
    let mut planned: Option<Planned> = None;
    while let Some(mut blob) = stream.next_blob().map_err(stream_err)? {
        if planned.is_none() {
            let (digest, size) = (blob.digest().clone(), blob.size());
            if size <= MAX_MANIFEST_SIZE && head.bytes + size <= HEAD_LIMIT {
                let mut bytes = Vec::with_capacity(size as usize);
                read_blob(&mut blob, &mut bytes)?;
                head.bytes += size;
                head.buffered.blobs.entry(digest).or_insert(bytes);
                if ready(&stream, &mut head, false) {
                    planned = Some(Planned::new(&mut head, settings, arrivals)?);
                }
                continue;
            }
            if !ready(blob.stream(), &mut head, true) {
                return Err(Error::LayersFirst { digest, size });
            }
            planned = Some(Planned::new(&mut head, settings, arrivals)?);
        }
        if let Some(planned) = &mut planned {
            planned.offer(&mut blob, arrivals)?;
        }
    }
    if let Some(end) = &settings.archive_end {
        // Uncompressed, nothing was read past the end block; a decoder
        // reads ahead, and its stream is hashed whole.
        if stream.compression() == Compression::None {
            end.store(true, Ordering::Release);
        }
    }
    let index = stream.index().map(<[_]>::to_vec);
    let index_json = stream.index_json().map(<[_]>::to_vec);
    stream.finish().map_err(stream_err)?;
    if planned.is_none() {
        head.buffered.index = index.unwrap_or_default();
        head.buffered.index_json = index_json.unwrap_or_default();
        head.buffered.ended = true;
        Planned::new(&mut head, settings, arrivals)?;
    }
    Ok(())
}

fn read_blob(blob: &mut StreamBlob<'_>, bytes: &mut Vec<u8>) -> Result<()> {
    blob.read_to_end(bytes).map_err(|source| {
        stream_err(ferry_oci::Error::Io {
            context: format!("reading blob {} from the stream", blob.digest()),
            source,
        })
    })?;
    Ok(())
}

/// Whether the head is complete enough to plan with: `oci-layout` and
/// `index.json` read, and every manifest reachable from `index.json` in
/// (with `partial`, every manifest `index.json` names).
fn ready(stream: &LayoutStream, head: &mut Head, partial: bool) -> bool {
    let Some(index) = stream.index() else {
        return false;
    };
    if stream.oci_layout_version().is_none() {
        return false;
    }
    if head.buffered.index.is_empty() {
        head.buffered.index = index.to_vec();
        head.buffered.index_json = stream.index_json().unwrap_or_default().to_vec();
    }
    let (missing, named_missing) = head.missing();
    if partial {
        !named_missing
    } else {
        missing.is_empty()
    }
}

/// After the plan: which blobs are wanted and which have gone by.
struct Planned {
    sizes: HashMap<Digest, u64>,
    sent: HashSet<Digest>,
    /// Manifests taken as not carried; one coming later is an error.
    assumed_missing: BTreeSet<Digest>,
}

impl Planned {
    /// Plan from `head`, tell `arrivals`, and hand over the blobs of the
    /// head the plan needs.
    fn new(head: &mut Head, settings: &Settings, arrivals: &mut dyn Arrivals) -> Result<Planned> {
        let plan = plan_holdings(
            &head.buffered,
            &settings.target,
            settings.naming,
            settings.sparse,
        )?;
        arrivals.planned(&plan)?;
        let mut planned = Planned {
            sizes: plan.blob_sizes.clone().into_iter().collect(),
            sent: HashSet::new(),
            assumed_missing: head.missing().0,
        };
        let blobs = std::mem::take(&mut head.buffered.blobs);
        let mut wanted: Vec<(Digest, Vec<u8>)> = blobs
            .into_iter()
            .filter(|(d, _)| planned.sizes.contains_key(d))
            .collect();
        wanted.sort_by(|a, b| a.0.cmp(&b.0));
        for (digest, bytes) in wanted {
            let size = bytes.len() as u64;
            planned.hand_over(&digest, size, &mut bytes.as_slice(), arrivals)?;
        }
        Ok(planned)
    }

    /// A blob going by after the plan.
    fn offer(&mut self, blob: &mut StreamBlob<'_>, arrivals: &mut dyn Arrivals) -> Result<()> {
        let digest = blob.digest().clone();
        if self.assumed_missing.contains(&digest) {
            return Err(Error::ManifestLate { digest });
        }
        self.hand_over(&digest, blob.size(), blob, arrivals)
    }

    fn hand_over(
        &mut self,
        digest: &Digest,
        size: u64,
        data: &mut dyn Read,
        arrivals: &mut dyn Arrivals,
    ) -> Result<()> {
        let Some(&expected) = self.sizes.get(digest) else {
            return Ok(());
        };
        if !self.sent.insert(digest.clone()) {
            return Ok(());
        }
        if size != expected {
            let reason = format!("{size} bytes in the bundle; its descriptor says {expected}");
            return arrivals.arrived(digest, size, Err(reason));
        }
        arrivals.arrived(digest, size, Ok(data))
    }
}
