//! Blob uploads: an upload session opened by `POST` and filled by one
//! monolithic `PUT`, or, for a small blob where the registry takes it, the
//! whole blob in the `POST` itself (the distribution spec's single-request
//! upload, `POST .../blobs/uploads/?digest=` with the body).
//!
//! Why both: a platform release is hundreds of small blobs, and each round
//! trip counts; the single request saves one per blob. But only where the
//! registry honours it: docker-registry 2.8 (distribution 2.x) opens a
//! session (`202`) whatever the `POST` carries, and a body offered to it
//! crossed the wire for nothing. So each registry origin is asked once per
//! run, by one upload while the others go by `POST` + `PUT`, and its
//! answer is kept for the run ([`SingleRequestMemory`]).
//!
//! A small blob is read into memory once (at most
//! [`SINGLE_REQUEST_UPLOAD_MAX`] per upload in flight), so its body can be
//! sent again, to the session a registry opened instead, after a `401`,
//! on a retry, even when it came from a stream that cannot be read twice
//! (`ferry unpack -`). Larger blobs stream, and their source is opened
//! again for each send.

use std::collections::HashMap;
use std::io;
use std::sync::{Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, StatusCode};

use ferry_oci::Digest;

use crate::client::{Client, Repository};
use crate::http::strip_query;
use crate::request::{status_error, Access};
use crate::response::header_text;
use crate::{Error, Failure, Result};

/// Largest blob offered in a single request; such a blob is read whole
/// into memory first, so it can be sent again.
pub const SINGLE_REQUEST_UPLOAD_MAX: u64 = 1024 * 1024;

/// What a registry origin did with a blob offered in one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// One upload is offering now; the others open sessions meanwhile.
    Asking,
    /// It stored the blob (`201`).
    Honoured,
    /// It opened a session instead (`202`), or refused the form.
    Refused,
}

/// Per registry origin, for the run: whether it honours single-request
/// uploads. Unknown origins are asked by one upload at a time, so a
/// registry that does not honour them receives at most one body twice.
#[derive(Debug, Default)]
pub(crate) struct SingleRequestMemory {
    verdicts: Mutex<HashMap<String, Verdict>>,
}

impl SingleRequestMemory {
    /// Whether to offer the whole blob to `origin`: yes when it honours
    /// single requests, or when nobody has asked it yet (the caller asks,
    /// and reports through the returned [`Ask`]).
    fn offer<'a>(&'a self, origin: &'a str) -> Option<Ask<'a>> {
        let mut verdicts = self.verdicts.lock().unwrap_or_else(PoisonError::into_inner);
        let asking = match verdicts.get(origin) {
            Some(Verdict::Honoured) => false,
            Some(Verdict::Asking | Verdict::Refused) => return None,
            None => {
                verdicts.insert(origin.to_string(), Verdict::Asking);
                true
            }
        };
        Some(Ask {
            memory: self,
            origin,
            asking,
            verdict: None,
        })
    }

    /// Keep what `origin` did; `None` (no answer to learn from) lets a
    /// later upload ask again.
    fn settle(&self, origin: &str, verdict: Option<Verdict>) {
        let mut verdicts = self.verdicts.lock().unwrap_or_else(PoisonError::into_inner);
        match verdict {
            Some(verdict) => {
                verdicts.insert(origin.to_string(), verdict);
            }
            None => {
                if verdicts.get(origin) == Some(&Verdict::Asking) {
                    verdicts.remove(origin);
                }
            }
        }
    }
}

/// One offer of a whole blob; what the registry did is kept when it is
/// dropped (also when the upload is abandoned half way).
struct Ask<'a> {
    memory: &'a SingleRequestMemory,
    origin: &'a str,
    /// Whether this offer asks (nobody knew); else the origin honours
    /// single requests already.
    asking: bool,
    verdict: Option<Verdict>,
}

impl Drop for Ask<'_> {
    fn drop(&mut self) {
        self.memory.settle(self.origin, self.verdict);
    }
}

/// `url` (an upload session's) with the `digest` query that completes it.
fn with_digest(mut url: String, digest: &Digest) -> String {
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str(&format!("digest={digest}"));
    url
}

/// Whether `error`, the answer to a whole blob in a `POST`, says the
/// registry does not take that form (rather than failing for a reason the
/// session's `POST` would meet as well, or a transient one).
fn refuses_form(error: &Error) -> bool {
    matches!(error, Error::Status { .. }) && !error.is_retryable()
}

/// Read a small blob's body whole, checking it is `size` bytes long.
async fn read_small<S>(digest: &Digest, size: u64, stream: S) -> Result<Bytes>
where
    S: Stream<Item = io::Result<Bytes>>,
{
    let source = |source| Error::Source {
        digest: digest.clone(),
        source,
    };
    let mut stream = std::pin::pin!(stream);
    let mut body = BytesMut::with_capacity(usize::try_from(size).unwrap_or(0));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(source)?;
        if (body.len() + chunk.len()) as u64 > size {
            let reason = format!("longer than its size, {size} bytes");
            return Err(source(io::Error::new(io::ErrorKind::InvalidData, reason)));
        }
        body.extend_from_slice(&chunk);
    }
    if body.len() as u64 != size {
        let reason = format!("ended after {} of its {size} bytes", body.len());
        return Err(source(io::Error::new(io::ErrorKind::UnexpectedEof, reason)));
    }
    Ok(body.freeze())
}

impl Client {
    /// Upload a blob of `size` bytes from the body `open` makes.
    ///
    /// A blob of at most [`SINGLE_REQUEST_UPLOAD_MAX`] (1 MiB) is read once
    /// (`open` is called once) and sent from memory: in one `POST` where
    /// the registry's origin honours single-request uploads (asked once
    /// per run), else by `POST` + `PUT`. A larger blob streams by `POST` +
    /// `PUT`, and `open` is called again for each send (a `401` answered,
    /// a retry after a failed `PUT`, which restarts from a fresh session).
    pub async fn push_blob<F, S>(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        open: F,
    ) -> Result<()>
    where
        F: Fn() -> io::Result<S>,
        S: Stream<Item = io::Result<Bytes>> + Send + 'static,
    {
        let source = |source| Error::Source {
            digest: digest.clone(),
            source,
        };
        if size <= SINGLE_REQUEST_UPLOAD_MAX {
            let body = read_small(digest, size, open().map_err(source)?).await?;
            return self.push_small(repo, digest, body).await;
        }
        let body = || Ok(reqwest::Body::wrap_stream(open().map_err(source)?));
        let body = &body;
        self.config()
            .retry
            .run(|_| async move {
                // Opening a session is retried by the transport itself; only
                // a PUT that failed (and spoiled its session) starts over
                // here, so no request is tried more than `attempts` times.
                let url = self
                    .start_upload(repo, digest)
                    .await
                    .map_err(Failure::Final)?;
                self.put_upload(repo, size, url, body)
                    .await
                    .map_err(Error::failure)
            })
            .await
    }

    /// Upload a blob held in memory: whole in the `POST` where the origin
    /// takes it (or has not been asked yet), else `POST` + `PUT`.
    async fn push_small(&self, repo: &Repository, digest: &Digest, body: Bytes) -> Result<()> {
        let origin = self.transport.origin(repo.host())?.to_string();
        let size = body.len() as u64;
        let again = || Ok(reqwest::Body::from(body.clone()));
        let (origin, body, again) = (&origin, &body, &again);
        self.config()
            .retry
            .run(|_| async move {
                // An empty blob is not offered: a registry may take a POST
                // without a body for a plain session opener, which would
                // say nothing about single requests.
                let offer = (size > 0).then(|| self.single_request.offer(origin));
                let url = match offer.flatten() {
                    Some(mut ask) => match self.post_whole(repo, digest, body).await {
                        Ok(None) => {
                            ask.verdict = Some(Verdict::Honoured);
                            return Ok(());
                        }
                        Ok(Some(url)) => {
                            ask.verdict = Some(Verdict::Refused);
                            url
                        }
                        Err(e) if refuses_form(&e) => {
                            // From an origin that took single requests,
                            // this refusal is this blob's (a digest it
                            // found wrong, say), not the form's.
                            if ask.asking {
                                ask.verdict = Some(Verdict::Refused);
                            }
                            drop(ask);
                            self.start_upload(repo, digest)
                                .await
                                .map_err(Failure::Final)?
                        }
                        Err(e) => return Err(Failure::Final(e)),
                    },
                    None => self
                        .start_upload(repo, digest)
                        .await
                        .map_err(Failure::Final)?,
                };
                self.put_upload(repo, size, url, again)
                    .await
                    .map_err(Error::failure)
            })
            .await
    }

    /// Offer the whole blob in one `POST`: `None` when the registry stored
    /// it (`201`), else the session it opened instead (`202`), ready for
    /// the `PUT` that completes it.
    async fn post_whole(
        &self,
        repo: &Repository,
        digest: &Digest,
        body: &Bytes,
    ) -> Result<Option<String>> {
        let target = format!("/v2/{}/blobs/uploads/?digest={digest}", repo.name());
        let plan = Self::plan(Method::POST, repo, Access::Push, target, &[]);
        let response = self
            .transport
            .send(&plan, |r| {
                Ok(r.header(CONTENT_LENGTH, body.len())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(body.clone()))
            })
            .await?;
        match response.status() {
            StatusCode::CREATED => Ok(None),
            StatusCode::ACCEPTED => {
                let url = self.session_url(repo, &format!("upload of {digest}"), &response)?;
                Ok(Some(with_digest(url, digest)))
            }
            _ => Err(status_error(&Method::POST, &plan.target, response).await),
        }
    }

    /// Open an upload session; the URL to `PUT` the blob to.
    async fn start_upload(&self, repo: &Repository, digest: &Digest) -> Result<String> {
        let url = self
            .open_session(repo, &format!("upload of {digest}"))
            .await?;
        Ok(with_digest(url, digest))
    }

    /// Open an upload session (`what` names it in errors); its URL.
    pub(crate) async fn open_session(&self, repo: &Repository, what: &str) -> Result<String> {
        let target = format!("/v2/{}/blobs/uploads/", repo.name());
        let plan = Self::plan(Method::POST, repo, Access::Push, target, &[]);
        let response = self
            .transport
            .send(&plan, |r| Ok(r.header(CONTENT_LENGTH, "0")))
            .await?;
        self.session_url(repo, what, &response)
    }

    /// The session's URL, from the `Location` of the response that opened
    /// an upload session (`what` names it in errors).
    fn session_url(&self, repo: &Repository, what: &str, response: &Response) -> Result<String> {
        let protocol = |reason: String| Error::Protocol {
            host: repo.host().to_string(),
            what: what.to_string(),
            reason,
        };
        let location = header_text(response.headers(), LOCATION.as_str())
            .ok_or_else(|| protocol("no Location header".to_string()))?;
        // Relative to the URL that answered; it may name another origin,
        // which then gets the upload but not the registry's credentials.
        let url = response
            .url()
            .join(&location)
            .map_err(|e| {
                protocol(format!(
                    "Location {} is not a URL ({e})",
                    strip_query(&location)
                ))
            })?
            .to_string();
        Ok(url)
    }

    /// Send the blob into the session at `url` in one monolithic `PUT`;
    /// `body` makes the body for each send (a `401` answered, a redirect).
    async fn put_upload(
        &self,
        repo: &Repository,
        size: u64,
        url: String,
        body: &impl Fn() -> Result<reqwest::Body>,
    ) -> Result<()> {
        // A failed PUT spoils its session: push_blob retries from a new POST.
        let mut put = Self::plan(Method::PUT, repo, Access::Push, url, &[]);
        put.retry = false;
        let response = self
            .transport
            .send(&put, |r| {
                Ok(r.header(CONTENT_LENGTH, size)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(body()?))
            })
            .await?;
        if response.status() != StatusCode::CREATED && !response.status().is_success() {
            return Err(status_error(&Method::PUT, &put.target, response).await);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_upload_asks_an_origin_at_a_time_and_its_answer_is_kept() {
        let memory = SingleRequestMemory::default();
        let ask = memory.offer("http://a").expect("nobody asked yet");
        assert!(memory.offer("http://a").is_none(), "one asks at a time");
        assert!(memory.offer("http://b").is_some(), "origins are apart");
        drop(ask);
        // No verdict (failed, abandoned): the next upload asks again.
        let mut ask = memory.offer("http://a").expect("asks again");
        ask.verdict = Some(Verdict::Honoured);
        drop(ask);
        assert!(memory.offer("http://a").is_some());
        let offer = memory.offer("http://a").expect("honoured: all offer");
        assert!(!offer.asking, "honoured: nobody asks any more");
        drop(offer);
        let mut ask = memory.offer("http://a").unwrap();
        ask.verdict = Some(Verdict::Refused);
        drop(ask);
        assert!(memory.offer("http://a").is_none(), "refused for the run");
    }

    #[tokio::test]
    async fn a_small_body_is_read_whole_and_its_length_checked() {
        let digest = Digest::sha256_of(b"abc");
        let chunks = |parts: &[&'static [u8]]| {
            futures_util::stream::iter(
                parts
                    .iter()
                    .map(|p| Ok(Bytes::from_static(p)))
                    .collect::<Vec<_>>(),
            )
        };
        let body = read_small(&digest, 3, chunks(&[b"a", b"bc"])).await;
        assert_eq!(body.unwrap(), Bytes::from_static(b"abc"));
        let long = read_small(&digest, 2, chunks(&[b"a", b"bc"])).await;
        assert!(matches!(long, Err(Error::Source { .. })), "{long:?}");
        let short = read_small(&digest, 4, chunks(&[b"abc"])).await;
        assert!(matches!(short, Err(Error::Source { .. })), "{short:?}");
    }
}
