//! Answering distribution API requests from the [`Content`].

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use serde::Serialize;

use ferry_oci::{media_type, Digest};

use crate::auth::Htpasswd;
use crate::blob::{self, Body, Checked, Verdicts};
use crate::content::{Content, Repo};
use crate::range::{wanted, Wanted};
use crate::route::{query_param, route, Ref, Route};

/// The most entries one `tags/list` or `_catalog` page holds.
pub(crate) const MAX_PAGE: usize = 10_000;

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct Api {
    pub content: Content,
    pub verdicts: Arc<Verdicts>,
    pub htpasswd: Option<Htpasswd>,
}

/// A distribution-spec error code with its status.
#[derive(Debug, Clone, Copy)]
enum Code {
    BlobUnknown,
    ManifestUnknown,
    NameUnknown,
    NameInvalid,
    DigestInvalid,
    TagInvalid,
    PaginationNumberInvalid,
    Unauthorized,
    Unsupported,
    RangeInvalid,
    Unknown,
}

impl Code {
    fn parts(self) -> (StatusCode, &'static str) {
        match self {
            Code::BlobUnknown => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
            Code::ManifestUnknown => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
            Code::NameUnknown => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
            Code::NameInvalid => (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            Code::DigestInvalid => (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
            Code::TagInvalid => (StatusCode::BAD_REQUEST, "TAG_INVALID"),
            Code::PaginationNumberInvalid => (StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID"),
            Code::Unauthorized => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            Code::Unsupported => (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
            Code::RangeInvalid => (StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_INVALID"),
            Code::Unknown => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
        }
    }
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn response(status: StatusCode) -> http::response::Builder {
    Response::builder()
        .status(status)
        .header("Docker-Distribution-API-Version", "registry/2.0")
}

/// A distribution-spec error: `{"errors":[{"code","message"}]}`.
fn error(code: Code, message: impl Into<String>, head: bool) -> Response<Body> {
    let (status, name) = code.parts();
    let body = serde_json::json!({"errors": [{"code": name, "message": message.into()}]});
    let bytes = serde_json::to_vec(&body).expect("json");
    let mut r = response(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, bytes.len());
    if matches!(code, Code::Unauthorized) {
        r = r.header(header::WWW_AUTHENTICATE, r#"Basic realm="ferry serve""#);
    }
    if matches!(code, Code::Unsupported) {
        r = r.header(header::ALLOW, "GET, HEAD");
    }
    r.body(if head { empty() } else { full(bytes) })
        .expect("response")
}

fn json<T: Serialize>(value: &T, content_type: &str, head: bool) -> http::Result<Response<Body>> {
    let bytes = serde_json::to_vec(value).expect("json");
    response(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, bytes.len())
        .body(if head { empty() } else { full(bytes) })
}

impl Api {
    /// Answer one request. Never fails: every problem is a spec error.
    pub async fn handle<B>(self: Arc<Self>, req: Request<B>) -> Response<Body> {
        let head = req.method() == Method::HEAD;
        if let Some(h) = &self.htpasswd {
            let auth = req
                .headers()
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes());
            if !h.allows(auth).await {
                return error(Code::Unauthorized, "authentication required", head);
            }
        }
        let path = req.uri().path();
        let query = req.uri().query();
        let route = route(path);
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            let what = if route == Route::NotFound {
                "not a registry API endpoint"
            } else {
                "ferry serve is read-only: it serves a bundle and accepts no pushes or deletes"
            };
            return error(Code::Unsupported, what, head);
        }
        let result = match route {
            Route::Base => json(&serde_json::json!({}), "application/json", head),
            Route::Catalog => self.catalog(query, head),
            Route::Manifest { name, reference } => {
                return self.manifest(name, reference, query, head)
            }
            Route::Blob { name, digest } => {
                return self.blob(name, &digest, query, req.headers(), head).await
            }
            Route::Tags { name } => self.tags(name, query, head),
            Route::Referrers { name, digest } => self.referrers(name, &digest, query, head),
            Route::Upload => {
                return error(
                    Code::Unsupported,
                    "ferry serve is read-only: it serves a bundle and accepts no pushes",
                    head,
                )
            }
            Route::BadName => return error(Code::NameInvalid, "not a valid repository name", head),
            Route::BadDigest => return error(Code::DigestInvalid, "not a valid digest", head),
            Route::BadTag => return error(Code::TagInvalid, "not a valid tag", head),
            Route::NotFound => {
                return error(Code::NameUnknown, "not a registry API endpoint", head)
            }
        };
        result.unwrap_or_else(|e| error(Code::Unknown, e.to_string(), head))
    }

    /// The repositories a request names (`ns=` picks one registry's).
    fn repos(&self, name: &str, query: Option<&str>) -> Result<Vec<&Repo>, Response<Body>> {
        let ns = query_param(query, "ns");
        let repos = self.content.repos(name, ns.as_deref());
        if repos.is_empty() {
            let message = match ns {
                Some(ns) => format!("no repository {name} from {ns} in the bundles"),
                None => format!("no repository {name} in the bundles"),
            };
            return Err(error(Code::NameUnknown, message, false));
        }
        Ok(repos)
    }

    fn manifest(
        &self,
        name: &str,
        reference: Ref<'_>,
        query: Option<&str>,
        head: bool,
    ) -> Response<Body> {
        let repos = match self.repos(name, query) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let digest = match reference {
            Ref::Digest(d) => {
                if !repos.iter().any(|r| r.manifests.contains(&d)) {
                    return error(
                        Code::ManifestUnknown,
                        format!("no manifest {d} in {name}"),
                        head,
                    );
                }
                d
            }
            Ref::Tag(tag) => {
                let mut found: Vec<&Digest> =
                    repos.iter().filter_map(|r| r.tags.get(tag)).collect();
                found.sort();
                found.dedup();
                match found.as_slice() {
                    [d] => (*d).clone(),
                    [] => {
                        return error(
                            Code::ManifestUnknown,
                            format!("no tag {tag} in {name}"),
                            head,
                        )
                    }
                    _ => {
                        let registries: Vec<&str> = repos
                            .iter()
                            .filter(|r| r.tags.contains_key(tag))
                            .map(|r| r.registry.as_str())
                            .collect();
                        return error(
                            Code::ManifestUnknown,
                            format!(
                                "{name}:{tag} names different images from {}; ask with ?ns=REGISTRY",
                                registries.join(", ")
                            ),
                            head,
                        );
                    }
                }
            }
        };
        let Some(manifest) = self.content.manifests.get(&digest) else {
            return error(Code::ManifestUnknown, format!("no manifest {digest}"), head);
        };
        let bytes = Bytes::copy_from_slice(manifest.bytes());
        response(StatusCode::OK)
            .header(header::CONTENT_TYPE, manifest.media_type())
            .header(header::CONTENT_LENGTH, bytes.len())
            .header("Docker-Content-Digest", digest.to_string())
            .header(header::ETAG, format!("\"{digest}\""))
            .body(if head { empty() } else { full(bytes) })
            .expect("response")
    }

    async fn blob(
        &self,
        name: &str,
        digest: &Digest,
        query: Option<&str>,
        headers: &http::HeaderMap,
        head: bool,
    ) -> Response<Body> {
        let repos = match self.repos(name, query) {
            Ok(r) => r,
            Err(e) => return e,
        };
        if !repos.iter().any(|r| r.holds(digest)) {
            return error(
                Code::BlobUnknown,
                format!("no blob {digest} in {name}"),
                head,
            );
        }
        let range = headers.get(header::RANGE).map(HeaderValue::as_bytes);
        // A manifest asked for as a blob: its bytes are in memory, checked.
        if let Some(m) = self.content.manifests.get(digest) {
            let bytes = Bytes::copy_from_slice(m.bytes());
            let size = bytes.len() as u64;
            return match wanted(range, size) {
                Wanted::All => blob_response(StatusCode::OK, digest, size, None, head)
                    .body(if head { empty() } else { full(bytes) })
                    .expect("response"),
                Wanted::Part { start, len } => {
                    let part = bytes.slice(start as usize..(start + len) as usize);
                    blob_response(
                        StatusCode::PARTIAL_CONTENT,
                        digest,
                        len,
                        Some((start, size)),
                        head,
                    )
                    .body(if head { empty() } else { full(part) })
                    .expect("response")
                }
                Wanted::Unsatisfiable(why) => unsatisfiable(why, size, head),
            };
        }
        let Some(loc) = self.content.blobs.get(digest).copied() else {
            return error(
                Code::BlobUnknown,
                format!("no blob {digest} in the bundles"),
                head,
            );
        };
        let bundle = &self.content.bundles[loc.bundle];
        let bad = || {
            error(
                Code::Unknown,
                format!(
                    "blob {digest} does not match its digest in the bundle; the bundle is damaged"
                ),
                head,
            )
        };
        let mut verdict = self.verdicts.get(digest);
        if verdict == Some(Checked::Bad) {
            return bad();
        }
        let size = loc.size;
        match wanted(range, size) {
            Wanted::Unsatisfiable(why) => unsatisfiable(why, size, head),
            Wanted::All => {
                let builder = blob_response(StatusCode::OK, digest, size, None, head);
                if head {
                    return builder.body(empty()).expect("response");
                }
                let reader = match verdict {
                    Some(_) => bundle.blob_reader(digest),
                    None => bundle.verifying_blob_reader(digest),
                };
                match reader {
                    Ok(r) => {
                        let verdicts = verdict.is_none().then(|| self.verdicts.clone());
                        builder.body(blob::body(r, verdicts)).expect("response")
                    }
                    Err(e) => error(Code::Unknown, e.to_string(), head),
                }
            }
            Wanted::Part { start, len } => {
                let builder = blob_response(
                    StatusCode::PARTIAL_CONTENT,
                    digest,
                    len,
                    Some((start, size)),
                    head,
                );
                if head {
                    return builder.body(empty()).expect("response");
                }
                if verdict.is_none() {
                    // A part cannot be checked alone: read the whole blob
                    // once before serving parts of it.
                    verdict = Some(match bundle.verifying_blob_reader(digest) {
                        Ok(r) => self.verdicts.check(digest, r).await,
                        Err(_) => Checked::Bad,
                    });
                }
                if verdict == Some(Checked::Bad) {
                    return bad();
                }
                match bundle.blob_range_reader(digest, start, len) {
                    Ok(r) => builder.body(blob::body(r, None)).expect("response"),
                    Err(e) => error(Code::Unknown, e.to_string(), head),
                }
            }
        }
    }

    fn tags(&self, name: &str, query: Option<&str>, head: bool) -> http::Result<Response<Body>> {
        let repos = match self.repos(name, query) {
            Ok(r) => r,
            Err(e) => return Ok(e),
        };
        let mut tags: Vec<&str> = repos
            .iter()
            .flat_map(|r| r.tags.keys())
            .map(String::as_str)
            .collect();
        tags.sort();
        tags.dedup();
        let (page, next) = match paginate(&tags, query) {
            Ok(p) => p,
            Err(e) => return Ok(e),
        };
        let mut r = json(
            &serde_json::json!({"name": name, "tags": page}),
            "application/json",
            head,
        )?;
        if let Some((last, n)) = next {
            add_link(&mut r, &format!("/v2/{name}/tags/list?n={n}&last={last}"));
        }
        Ok(r)
    }

    fn catalog(&self, query: Option<&str>, head: bool) -> http::Result<Response<Body>> {
        let names: Vec<&str> = self.content.repos.keys().map(String::as_str).collect();
        let (page, next) = match paginate(&names, query) {
            Ok(p) => p,
            Err(e) => return Ok(e),
        };
        let mut r = json(
            &serde_json::json!({"repositories": page}),
            "application/json",
            head,
        )?;
        if let Some((last, n)) = next {
            add_link(&mut r, &format!("/v2/_catalog?n={n}&last={last}"));
        }
        Ok(r)
    }

    fn referrers(
        &self,
        name: &str,
        digest: &Digest,
        query: Option<&str>,
        head: bool,
    ) -> http::Result<Response<Body>> {
        let repos = match self.repos(name, query) {
            Ok(r) => r,
            Err(e) => return Ok(e),
        };
        let filter = query_param(query, "artifactType");
        let list: Vec<_> = self
            .content
            .referrers
            .get(digest)
            .map(|l| {
                l.iter()
                    .filter(|d| repos.iter().any(|r| r.manifests.contains(&d.digest)))
                    .filter(|d| {
                        filter
                            .as_deref()
                            .is_none_or(|f| d.artifact_type.as_deref() == Some(f))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": list,
        });
        let mut r = json(&index, media_type::OCI_INDEX, head)?;
        if filter.is_some() {
            r.headers_mut().insert(
                "OCI-Filters-Applied",
                HeaderValue::from_static("artifactType"),
            );
        }
        Ok(r)
    }
}

/// One page of `items` (sorted) after `last`, at most `n`; and, when more
/// follow, the last item given and `n` for the next page's link.
#[allow(clippy::type_complexity)]
fn paginate<'a>(
    items: &[&'a str],
    query: Option<&str>,
) -> Result<(Vec<&'a str>, Option<(String, usize)>), Response<Body>> {
    let n = match query_param(query, "n") {
        None => None,
        Some(n) => match n.parse::<usize>() {
            Ok(n) => Some(n.min(MAX_PAGE)),
            Err(_) => {
                return Err(error(
                    Code::PaginationNumberInvalid,
                    format!("n={n:?} is not a number"),
                    false,
                ))
            }
        },
    };
    let last = query_param(query, "last");
    let start = match &last {
        Some(l) => items.partition_point(|i| *i <= l.as_str()),
        None => 0,
    };
    let take = n.unwrap_or(MAX_PAGE);
    let page: Vec<&str> = items[start..].iter().take(take).copied().collect();
    let more = start + page.len() < items.len();
    let next = (more && !page.is_empty()).then(|| (page[page.len() - 1].to_string(), take));
    Ok((page, next))
}

fn add_link(r: &mut Response<Body>, target: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("<{target}>; rel=\"next\"")) {
        r.headers_mut().insert(header::LINK, v);
    }
}

fn blob_response(
    status: StatusCode,
    digest: &Digest,
    len: u64,
    range: Option<(u64, u64)>,
    _head: bool,
) -> http::response::Builder {
    let mut b = response(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len)
        .header(header::ACCEPT_RANGES, "bytes")
        .header("Docker-Content-Digest", digest.to_string())
        .header(header::ETAG, format!("\"{digest}\""))
        .header(header::CACHE_CONTROL, "max-age=31536000");
    if let Some((start, size)) = range {
        b = b.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    b
}

fn unsatisfiable(why: &str, size: u64, head: bool) -> Response<Body> {
    let mut r = error(Code::RangeInvalid, why, head);
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
        r.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    r
}
