//! The rest of a big blob a stopped pack began, fetched as several ranged
//! requests side by side.
//!
//! A pack stopped halfway has usually finished every small blob and left
//! the biggest partway. Resumed, that blob's rest is nearly the whole run,
//! and in one stream it took about as long as the full pack's fetch phase:
//! one stream from docker-registry ran at about 250 MB/s on the bench
//! machine, eight side by side at about 520. So a rest of at least two
//! [`PIECE_MIN`] is cut into up to [`PIECES`] ranges fetched at once. Only
//! the first follows the blob's hash as it arrives (it continues the
//! prefix's); the others land at their offsets unhashed, and once all have
//! landed the blob's hash reads them back from the file (the page cache,
//! at the speed of sha256, not of the network). Anything wrong and the
//! caller fetches the blob whole, as it does after a failed continuation.

use std::path::PathBuf;

use futures_util::future::try_join_all;

use ferry_oci::{DigestHasher, Progress};
use ferry_registry::{Client, Repository};

use crate::write::{check_digest, BlobJob, Failed, Placement};
use crate::Error;

/// The smallest piece worth a request of its own.
pub(crate) const PIECE_MIN: u64 = 8 << 20;
/// At most this many requests for one blob's rest.
pub(crate) const PIECES: u64 = 4;
/// Bytes read back at once to finish the blob's hash.
const READ_BACK: usize = 1 << 20;

/// Whether the rest of `job` after `from` bytes goes in pieces.
pub(crate) fn worth_pieces(job: &BlobJob, from: u64) -> bool {
    job.size.saturating_sub(from) >= 2 * PIECE_MIN
}

/// Fetch bytes `from..` of `job` (whose first `from` bytes are written and
/// hashed into `hasher`) as several ranged requests at once, from its first
/// source, and check the whole against its digest. Returns `from`.
pub(crate) async fn fetch_rest(
    client: &Client,
    job: &BlobJob,
    place: &Placement,
    progress: &dyn Progress,
    (from, hasher): (u64, &DigestHasher),
) -> Result<u64, Failed> {
    let Some(source) = job.sources.first() else {
        return Err(Failed::Final(Error::Task(format!(
            "no source for blob {}",
            job.digest
        ))));
    };
    let rest = job.size - from;
    let count = (rest / PIECE_MIN).clamp(1, PIECES);
    let step = rest.div_ceil(count);
    let bounds: Vec<(u64, u64)> = (0..count)
        .map(|i| (from + i * step, (from + (i + 1) * step).min(job.size)))
        .filter(|(start, end)| start < end)
        .collect();
    let first_end = bounds[0].1;
    let mut hasher = hasher.clone();
    let first = piece(
        client,
        source,
        job,
        place,
        progress,
        bounds[0],
        Some(&mut hasher),
    );
    let others = bounds[1..]
        .iter()
        .map(|&range| piece(client, source, job, place, progress, range, None));
    futures_util::try_join!(first, try_join_all(others))?;
    // Every piece has landed: hash what the first did not cover.
    let (file, offset, size) = (place.file.clone(), job.offset, job.size);
    let hasher = tokio::task::spawn_blocking(move || -> std::io::Result<DigestHasher> {
        let mut buf = vec![0u8; READ_BACK];
        let mut at = first_end;
        while at < size {
            let n = (size - at).min(READ_BACK as u64) as usize;
            file.read_exact_at(&mut buf[..n], offset + at)?;
            hasher.update(&buf[..n]);
            at += n as u64;
        }
        Ok(hasher)
    })
    .await
    .map_err(|e| Failed::Final(Error::Task(e.to_string())))?
    .map_err(|source| {
        Failed::Final(Error::Io {
            action: "cannot read back",
            path: PathBuf::from(job.digest.blob_path()),
            source,
        })
    })?;
    check_digest(job, &source.1, hasher)?;
    place.hasher.written(place.slot, job.size);
    Ok(from)
}

/// Fetch bytes `start..end` of `job` into its place; `follow`: the blob's
/// hash, fed as they arrive, and the archive's hash told they are final
/// (the first piece, which continues what is written).
async fn piece(
    client: &Client,
    (repo, label): &(Repository, String),
    job: &BlobJob,
    place: &Placement,
    progress: &dyn Progress,
    (start, end): (u64, u64),
    mut follow: Option<&mut DigestHasher>,
) -> Result<(), Failed> {
    let registry = |source| {
        Failed::Final(Error::Registry {
            reference: label.to_string(),
            source,
        })
    };
    let (mut stream, served_from) = client
        .get_blob_range(repo, &job.digest, start, Some(end))
        .await
        .map_err(registry)?;
    if served_from != start {
        return Err(Failed::Final(Error::Task(format!(
            "{label}: the registry did not honour a range of blob {}",
            job.digest
        ))));
    }
    let mut at = start;
    while at < end {
        let Some(chunk) = stream.next_chunk().await.map_err(|source| {
            Failed::InBody(Error::Registry {
                reference: label.to_string(),
                source,
            })
        })?
        else {
            break;
        };
        let take = chunk.len().min((end - at) as usize);
        let bytes = &chunk[..take];
        place.write(job, bytes, at)?;
        at += take as u64;
        if let Some(hasher) = follow.as_deref_mut() {
            hasher.update(bytes);
            place.hasher.written(place.slot, at);
        }
        progress.bytes(take as u64);
    }
    if at != end {
        return Err(Failed::Final(Error::BlobSizeMismatch {
            reference: label.to_string(),
            digest: job.digest.clone(),
            expected: job.size,
            found: at,
        }));
    }
    Ok(())
}
