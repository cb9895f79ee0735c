//! The registry operations ferry needs: manifests as exact bytes, blobs as
//! streams, existence checks, cross-repository mounts, referrers.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use reqwest::{Method, Response, StatusCode};

use ferry_oci::{media_type, Descriptor, Digest};

use crate::http::{body_error, strip_query};
use crate::request::{Access, RequestPlan};
use crate::response::{bare_media_type, content_digest, content_length, header_text, next_link};
use crate::transport::Transport;
use crate::upload::SingleRequestMemory;
use crate::{ClientConfig, Error, Result};

/// Largest manifest ferry accepts (the OCI distribution spec's floor is 4 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// A repository in a registry: `host[:port]` and path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    host: String,
    name: String,
}

impl Repository {
    /// The repository `name` (`library/nginx`) on `host` (`docker.io`).
    pub fn new(host: impl Into<String>, name: impl Into<String>) -> Repository {
        Repository {
            host: host.into(),
            name: name.into(),
        }
    }

    /// The registry host as the user named it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The repository path.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl From<&ferry_oci::Reference> for Repository {
    fn from(reference: &ferry_oci::Reference) -> Repository {
        Repository::new(reference.registry(), reference.repository())
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.name)
    }
}

/// A manifest as served: exact bytes, the served media type, their digest.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The exact bytes served.
    pub bytes: Vec<u8>,
    /// The `Content-Type` served (parameters stripped).
    pub media_type: String,
    /// The sha256 of `bytes`.
    pub digest: Digest,
}

/// What a `HEAD` on a manifest tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    /// `Docker-Content-Digest`.
    pub digest: Option<Digest>,
    /// `Content-Type`.
    pub media_type: Option<String>,
    /// `Content-Length`.
    pub size: Option<u64>,
}

/// A blob body arriving from the registry, chunk by chunk.
pub struct BlobStream {
    response: Response,
    url: String,
    transport: Arc<Transport>,
}

impl BlobStream {
    /// The next chunk, `None` at the end. A failure here is retryable:
    /// fetch the blob again from the start.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        let result = self.response.chunk().await;
        let timeout = self.transport.config.read_timeout;
        result.map_err(|e| body_error(&self.url, timeout, e))
    }

    /// The length the registry announced, if any.
    pub fn content_length(&self) -> Option<u64> {
        self.response.content_length()
    }
}

/// The outcome of asking a registry to mount a blob from another repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOutcome {
    /// The blob is now in the target repository.
    Mounted,
    /// The registry did not mount it; upload it instead.
    NotMounted,
}

/// A registry client; cheap to clone, share it between tasks.
#[derive(Clone)]
pub struct Client {
    pub(crate) transport: Arc<Transport>,
    /// What each registry origin did with a blob offered in one request.
    pub(crate) single_request: Arc<SingleRequestMemory>,
}

impl Client {
    /// A client with `config`. Reads docker credentials and CA files now,
    /// so configuration mistakes surface before any work starts.
    pub fn new(config: ClientConfig) -> Result<Client> {
        Ok(Client {
            transport: Arc::new(Transport::new(config)?),
            single_request: Arc::default(),
        })
    }

    /// The settings this client was made with.
    pub fn config(&self) -> &ClientConfig {
        &self.transport.config
    }

    pub(crate) fn plan<'a>(
        method: Method,
        repo: &'a Repository,
        access: Access,
        target: String,
        accept: &'a [StatusCode],
    ) -> RequestPlan<'a> {
        RequestPlan {
            method,
            repo,
            access,
            also_pull: None,
            target,
            accept,
            retry: true,
        }
    }

    /// A pull request whose 404 the caller answers itself (absent, not an error).
    fn lookup(method: Method, repo: &Repository, target: String) -> RequestPlan<'_> {
        Self::plan(method, repo, Access::Pull, target, &[StatusCode::NOT_FOUND])
    }

    /// Fetch the manifest `reference` (a tag or a digest) as the exact bytes
    /// served. When `reference` is a digest the bytes are checked against it.
    pub async fn get_manifest(
        &self,
        repo: &Repository,
        reference: &str,
    ) -> Result<FetchedManifest> {
        let target = format!("/v2/{}/manifests/{reference}", repo.name());
        let plan = Self::lookup(Method::GET, repo, target);
        let accept = media_type::MANIFEST_ACCEPT.join(", ");
        let answer = self
            .transport
            .send_whole(
                &plan,
                |r| Ok(r.header(ACCEPT, accept.as_str())),
                MAX_MANIFEST_BYTES,
            )
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Err(not_found(repo, format!("manifest {reference}")));
        }
        let what = format!("manifest {reference}");
        if answer.too_large {
            return Err(Error::ManifestTooLarge {
                host: repo.host().to_string(),
                what,
                limit: MAX_MANIFEST_BYTES,
            });
        }
        let served_digest = content_digest(&answer.headers);
        let media_type = answer
            .header(CONTENT_TYPE.as_str())
            .map(|m| bare_media_type(&m))
            .unwrap_or_default();
        let bytes = answer.body;
        let expected = match reference.parse::<Digest>() {
            Ok(d) => Some(d),
            Err(_) => served_digest,
        };
        if let Some(expected) = &expected {
            let found = expected.recompute(&bytes);
            if &found != expected {
                return Err(Error::DigestMismatch {
                    host: repo.host().to_string(),
                    repository: repo.name().to_string(),
                    what,
                    expected: expected.clone(),
                    found,
                });
            }
        }
        // The digest under the algorithm it was asked by (sha512 stays
        // sha512), else sha256.
        let digest = expected.unwrap_or_else(|| Digest::sha256_of(&bytes));
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// `HEAD` a manifest: `None` when the registry does not have it.
    pub async fn head_manifest(
        &self,
        repo: &Repository,
        reference: &str,
    ) -> Result<Option<ManifestHead>> {
        let target = format!("/v2/{}/manifests/{reference}", repo.name());
        let plan = Self::lookup(Method::HEAD, repo, target);
        let accept = media_type::MANIFEST_ACCEPT.join(", ");
        let response = self
            .transport
            .send(&plan, |r| Ok(r.header(ACCEPT, accept.as_str())))
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let headers = response.headers();
        Ok(Some(ManifestHead {
            digest: content_digest(headers),
            media_type: header_text(headers, CONTENT_TYPE.as_str()).map(|m| bare_media_type(&m)),
            size: content_length(headers),
        }))
    }

    /// Start fetching a blob. The caller hashes what arrives; on a broken
    /// stream it may call this again.
    pub async fn get_blob(&self, repo: &Repository, digest: &Digest) -> Result<BlobStream> {
        let target = format!("/v2/{}/blobs/{digest}", repo.name());
        let plan = Self::lookup(Method::GET, repo, target);
        let response = self.transport.send(&plan, Ok).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(not_found(repo, format!("blob {digest}")));
        }
        let url = strip_query(response.url().as_str());
        Ok(BlobStream {
            response,
            url,
            transport: self.transport.clone(),
        })
    }

    /// Start fetching bytes `from..end` of a blob (`Range:
    /// bytes=FROM-(END-1)`, or `bytes=FROM-` without `end`): the rest of
    /// one already partly held, or one of several pieces fetched side by
    /// side. Returns the stream and the offset in the blob of its first
    /// byte: `from` when the registry honoured the range (206), 0 when it
    /// sent the whole blob (200, as it may); the stream may then run past
    /// `end`, and the caller stops reading there.
    pub async fn get_blob_range(
        &self,
        repo: &Repository,
        digest: &Digest,
        from: u64,
        end: Option<u64>,
    ) -> Result<(BlobStream, u64)> {
        let target = format!("/v2/{}/blobs/{digest}", repo.name());
        let plan = Self::lookup(Method::GET, repo, target);
        let range = match end {
            Some(end) if end > from => format!("bytes={from}-{}", end - 1),
            _ => format!("bytes={from}-"),
        };
        let response = self
            .transport
            .send(&plan, |r| Ok(r.header(RANGE, range.as_str())))
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(not_found(repo, format!("blob {digest}")));
        }
        let start = match response.status() {
            StatusCode::PARTIAL_CONTENT => {
                // `bytes START-END/TOTAL`: it must start where asked.
                let start = header_text(response.headers(), CONTENT_RANGE.as_str()).and_then(|v| {
                    let v = v.strip_prefix("bytes ")?;
                    v.split('-').next()?.trim().parse::<u64>().ok()
                });
                if start != Some(from) {
                    return Err(Error::Protocol {
                        host: repo.host().to_string(),
                        what: format!("bytes {from}- of blob {digest}"),
                        reason: format!(
                            "206 with Content-Range {:?}",
                            header_text(response.headers(), CONTENT_RANGE.as_str())
                        ),
                    });
                }
                from
            }
            _ => 0,
        };
        let url = strip_query(response.url().as_str());
        Ok((
            BlobStream {
                response,
                url,
                transport: self.transport.clone(),
            },
            start,
        ))
    }

    /// Whether the repository has the blob.
    pub async fn blob_exists(&self, repo: &Repository, digest: &Digest) -> Result<bool> {
        let target = format!("/v2/{}/blobs/{digest}", repo.name());
        let plan = Self::lookup(Method::HEAD, repo, target);
        let response = self.transport.send(&plan, Ok).await?;
        Ok(response.status() != StatusCode::NOT_FOUND)
    }

    /// Ask the registry to link a blob `repo` lacks from `from` (same host).
    pub async fn mount_blob(
        &self,
        repo: &Repository,
        from: &str,
        digest: &Digest,
    ) -> Result<MountOutcome> {
        let target = format!(
            "/v2/{}/blobs/uploads/?mount={digest}&from={from}",
            repo.name()
        );
        let mut plan = Self::plan(Method::POST, repo, Access::Push, target, &[]);
        plan.also_pull = Some(from);
        let response = self
            .transport
            .send(&plan, |r| Ok(r.header(CONTENT_LENGTH, "0")))
            .await?;
        if response.status() == StatusCode::CREATED {
            return Ok(MountOutcome::Mounted);
        }
        // 202: the registry opened an upload session instead; leave it to expire.
        Ok(MountOutcome::NotMounted)
    }

    /// Whether these credentials may push to `repo`: open an upload session
    /// and cancel it at once. Nothing is stored. Fails as a push would
    /// (unauthorized, denied, a read-only registry's `UNSUPPORTED`).
    pub async fn probe_push(&self, repo: &Repository) -> Result<()> {
        let what = format!("opening an upload session in {}", repo.name());
        let url = self.open_session(repo, &what).await?;
        // Cancelling is a courtesy: sessions left behind expire.
        let gone = [StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED];
        let mut cancel = Self::plan(Method::DELETE, repo, Access::Push, url, &gone);
        cancel.retry = false;
        let _ = self.transport.send(&cancel, Ok).await;
        Ok(())
    }

    /// Store a manifest under `reference` (a tag or its digest), as the
    /// exact bytes, with its media type. Returns the digest the registry
    /// reports, checked against the bytes.
    pub async fn put_manifest(
        &self,
        repo: &Repository,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest> {
        let target = format!("/v2/{}/manifests/{reference}", repo.name());
        let plan = Self::plan(Method::PUT, repo, Access::Push, target, &[]);
        let response = self
            .transport
            .send(&plan, |r| {
                Ok(r.header(CONTENT_TYPE, media_type).body(bytes.clone()))
            })
            .await?;
        let digest = Digest::sha256_of(&bytes);
        if let Some(served) = content_digest(response.headers()) {
            if served.algorithm() == digest.algorithm() && served != digest {
                return Err(Error::DigestMismatch {
                    host: repo.host().to_string(),
                    repository: repo.name().to_string(),
                    what: format!("manifest {reference} (as stored)"),
                    expected: digest,
                    found: served,
                });
            }
        }
        Ok(digest)
    }

    /// The referrers of `digest` through the OCI referrers API; `None` when
    /// the registry does not offer the API.
    pub async fn referrers(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<Option<Vec<Descriptor>>> {
        let target = format!("/v2/{}/referrers/{digest}", repo.name());
        let unsupported = [
            StatusCode::NOT_FOUND,
            StatusCode::BAD_REQUEST,
            StatusCode::METHOD_NOT_ALLOWED,
            StatusCode::NOT_IMPLEMENTED,
        ];
        let plan = Self::plan(Method::GET, repo, Access::Pull, target, &unsupported);
        let answer = self
            .transport
            .send_whole(
                &plan,
                |r| Ok(r.header(ACCEPT, media_type::OCI_INDEX)),
                MAX_MANIFEST_BYTES,
            )
            .await?;
        if unsupported.contains(&answer.status) {
            return Ok(None);
        }
        let is_index = answer
            .header(CONTENT_TYPE.as_str())
            .is_some_and(|c| c.starts_with(media_type::OCI_INDEX));
        if !is_index {
            return Ok(None);
        }
        if answer.too_large {
            return Err(Error::ManifestTooLarge {
                host: repo.host().to_string(),
                what: format!("referrers of {digest}"),
                limit: MAX_MANIFEST_BYTES,
            });
        }
        let manifests =
            crate::response::referrers_index(&answer.body).map_err(|e| Error::Protocol {
                host: repo.host().to_string(),
                what: format!("referrers of {digest}"),
                reason: format!("not an index ({e})"),
            })?;
        Ok(Some(manifests))
    }

    /// Every tag of the repository (following `Link` pagination). A
    /// registry whose pages lead back to one already read, or that never
    /// end, gets an error rather than a loop.
    pub async fn list_tags(&self, repo: &Repository) -> Result<Vec<String>> {
        const MAX_PAGES: usize = 10_000;
        let protocol = |reason: String| Error::Protocol {
            host: repo.host().to_string(),
            what: "tag list".to_string(),
            reason,
        };
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut target = format!("/v2/{}/tags/list?n=1000", repo.name());
        loop {
            let plan = Self::lookup(Method::GET, repo, target.clone());
            let answer = self
                .transport
                .send_whole(&plan, Ok, 16 * MAX_MANIFEST_BYTES)
                .await?;
            if answer.status == StatusCode::NOT_FOUND {
                return Ok(out);
            }
            if answer.too_large {
                return Err(protocol(format!(
                    "a page is larger than {} bytes",
                    16 * MAX_MANIFEST_BYTES
                )));
            }
            seen.insert(answer.url.to_string());
            out.extend(
                crate::response::tag_page(&answer.body).map_err(|e| protocol(e.to_string()))?,
            );
            let Some(link) = answer.header("link") else {
                return Ok(out);
            };
            let Some(next) = next_link(&link) else {
                return Ok(out);
            };
            // Relative to the page that named it; on another origin it is
            // fetched without the registry's credentials.
            let next = answer
                .url
                .join(next)
                .map_err(|e| protocol(format!("its Link names no URL ({e})")))?;
            if seen.contains(next.as_str()) || seen.len() >= MAX_PAGES {
                return Err(protocol(format!(
                    "its pages do not end (page {} links to {})",
                    seen.len(),
                    strip_query(next.as_str())
                )));
            }
            target = next.to_string();
        }
    }

    /// The repositories the registry lists (`/v2/_catalog`, following
    /// `Link` pagination) whose names start with `prefix/` (all, when
    /// `prefix` is empty). `registry` names the host; its repository name
    /// is not used. Many registries refuse the catalog: callers treat an
    /// error as "nothing known".
    pub async fn catalog(&self, registry: &Repository, prefix: &str) -> Result<Vec<String>> {
        let wanted = format!("{prefix}/");
        let (names, _) = self.catalog_pages(registry, 100).await?;
        Ok(names
            .into_iter()
            .filter(|r| prefix.is_empty() || r.starts_with(&wanted))
            .collect())
    }

    /// Every repository the registry holds, when its catalog answers
    /// whole: every page `200`, in at most `max_pages` pages of 1,000.
    /// `None` when it answers `404` or has more pages: then what it lists
    /// says nothing of what it does not. (distribution lists a repository
    /// once a blob is linked into it — `registry/storage/catalog.go` walks
    /// for `_layers` — which every manifest it accepts there needs.)
    pub async fn catalog_whole(
        &self,
        registry: &Repository,
        max_pages: usize,
    ) -> Result<Option<std::collections::BTreeSet<String>>> {
        let (names, whole) = self.catalog_pages(registry, max_pages).await?;
        Ok(whole.then(|| names.into_iter().collect()))
    }

    /// The catalog's names, and whether they are all of them (every page
    /// answered, the last one reached within `max_pages`).
    async fn catalog_pages(
        &self,
        registry: &Repository,
        max_pages: usize,
    ) -> Result<(Vec<String>, bool)> {
        #[derive(serde::Deserialize)]
        struct Catalog {
            #[serde(default)]
            repositories: Option<Vec<String>>,
        }
        let mut out = Vec::new();
        let mut target = "/v2/_catalog?n=1000".to_string();
        let not_found = [StatusCode::NOT_FOUND];
        for _ in 0..max_pages {
            let plan = Self::plan(
                Method::GET,
                registry,
                Access::Catalog,
                target.clone(),
                &not_found,
            );
            let answer = self
                .transport
                .send_whole(&plan, Ok, 16 * MAX_MANIFEST_BYTES)
                .await?;
            if !answer.status.is_success() || answer.too_large {
                return Ok((out, false));
            }
            let next = answer.header("link").and_then(|l| {
                let start = l.find('<')? + 1;
                let end = l.find('>')?;
                Some(l[start..end].to_string())
            });
            let catalog: Catalog =
                serde_json::from_slice(&answer.body).map_err(|e| Error::Protocol {
                    host: registry.host().to_string(),
                    what: "catalog".to_string(),
                    reason: e.to_string(),
                })?;
            out.extend(catalog.repositories.unwrap_or_default());
            match next {
                Some(n) => target = n,
                None => return Ok((out, true)),
            }
        }
        Ok((out, false))
    }
}

fn not_found(repo: &Repository, what: String) -> Error {
    Error::NotFound {
        host: repo.host().to_string(),
        repository: repo.name().to_string(),
        what,
    }
}
