//! Blob bodies: read at their offsets in the bundle, a chunk at a time, off
//! the async threads, and checked against their digest on first read.
//!
//! A blob's bytes are hashed the first time it is sent whole (or, for a
//! range request, read whole before the range is sent). The last chunk of a
//! first read is held back until the hash is known: when the bytes do not
//! match, the response is cut short (the client sees a body shorter than
//! its `Content-Length` and fails) and the blob is marked bad, so every
//! later request for it is answered with an error instead.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{combinators::BoxBody, BodyExt, StreamBody};
use hyper::body::Frame;

use ferry_oci::layout::read_full;
use ferry_oci::{BlobReader, Digest};

/// How many bytes are read and sent at once.
pub(crate) const CHUNK: usize = 128 << 10;

/// The body of every response.
pub(crate) type Body = BoxBody<Bytes, io::Error>;

/// What is known of a blob's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checked {
    /// Read whole and matched its digest.
    Good,
    /// Read whole and did not match: never served again.
    Bad,
}

/// The verdicts reached so far, shared by all connections.
#[derive(Debug, Default)]
pub(crate) struct Verdicts {
    map: Mutex<HashMap<Digest, Checked>>,
}

impl Verdicts {
    /// The verdict on `digest`, if its bytes were read whole.
    pub fn get(&self, digest: &Digest) -> Option<Checked> {
        self.map.lock().expect("lock").get(digest).copied()
    }

    fn set(&self, digest: &Digest, verdict: Checked) {
        if verdict == Checked::Bad {
            eprintln!("ferry serve: blob {digest} does not match its digest in the bundle; it will not be served");
        }
        self.map
            .lock()
            .expect("lock")
            .insert(digest.clone(), verdict);
    }

    /// Read `reader` (a verifying reader over a whole blob) to its end off
    /// the async threads and record the verdict.
    pub async fn check(self: &Arc<Self>, digest: &Digest, mut reader: BlobReader) -> Checked {
        let verdict =
            tokio::task::spawn_blocking(move || match io::copy(&mut reader, &mut io::sink()) {
                Ok(_) => Checked::Good,
                Err(_) => Checked::Bad,
            })
            .await
            .unwrap_or(Checked::Bad);
        self.set(digest, verdict);
        verdict
    }
}

/// A body streaming `reader`'s bytes. When `verdicts` is given the reader
/// verifies, and the outcome is recorded for `reader`'s digest; the body
/// ends with an error (cutting the response) when the bytes are bad or the
/// bundle cannot be read.
pub(crate) fn body(reader: BlobReader, verdicts: Option<Arc<Verdicts>>) -> Body {
    let remaining = reader.size();
    let state = Some((reader, remaining, verdicts));
    let chunks = stream::unfold(state, |state| async move {
        let (mut reader, remaining, verdicts) = state?;
        if remaining == 0 {
            return None;
        }
        let read = tokio::task::spawn_blocking(move || {
            let want = remaining.min(CHUNK as u64) as usize;
            let mut buf = vec![0u8; want];
            let result = read_full(&mut reader, &mut buf).and_then(|n| {
                if n < want {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the bundle ended inside a blob",
                    ));
                }
                // The last chunk: a verifying reader checks the digest on
                // the read that finds the end, before the chunk goes out.
                if n as u64 == remaining {
                    let _end: usize = reader.read(&mut [])?;
                }
                Ok(n)
            });
            (reader, buf, result)
        })
        .await;
        let (reader, buf, result) = match read {
            Ok(r) => r,
            Err(e) => return Some((Err(io::Error::other(e.to_string())), None)),
        };
        match result {
            Ok(n) => {
                let left = remaining - n as u64;
                if left == 0 {
                    if let Some(v) = &verdicts {
                        v.set(reader.digest(), Checked::Good);
                    }
                }
                Some((
                    Ok(Frame::data(Bytes::from(buf))),
                    Some((reader, left, verdicts)),
                ))
            }
            Err(e) => {
                if e.kind() == io::ErrorKind::InvalidData {
                    if let Some(v) = &verdicts {
                        v.set(reader.digest(), Checked::Bad);
                    }
                } else {
                    eprintln!("ferry serve: reading blob {}: {e}", reader.digest());
                }
                Some((Err(e), None))
            }
        }
    });
    StreamBody::new(chunks).boxed()
}
