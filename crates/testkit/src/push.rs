//! A small, blocking distribution-API pusher, independent of `ferry-registry`
//! (which is the code under test).

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::blocking::{Body, Client, RequestBuilder, Response};
use reqwest::{StatusCode, Url};
use sha2::{Digest as _, Sha256};

use crate::bearer::BearerTokens;
use crate::token::TokenAuth;

/// Pushes blobs and manifests to one registry over the distribution API.
///
/// Every failure panics with the request and the registry's answer: this is
/// test code, and a failed fixture push means the test cannot proceed.
#[derive(Debug, Clone)]
pub struct Pusher {
    client: Client,
    base: String,
    credentials: Option<(String, String)>,
    bearer: Option<Arc<BearerTokens>>,
}

impl Pusher {
    /// A pusher for the registry at `base_url` (`http://127.0.0.1:5000`).
    /// TLS certificates are not verified: test registries are self-signed.
    pub fn new(base_url: &str) -> Pusher {
        Pusher {
            client: test_client(),
            base: base_url.trim_end_matches('/').to_string(),
            credentials: None,
            bearer: None,
        }
    }

    /// Go through the bearer-token flow of `auth`: every request carries a
    /// token for its repository, fetched once from the realm.
    pub fn with_token_auth(mut self, auth: TokenAuth) -> Pusher {
        self.bearer = Some(Arc::new(BearerTokens::new(auth)));
        self
    }

    /// Send HTTP basic credentials with every request.
    pub fn with_basic_auth(mut self, user: &str, password: &str) -> Pusher {
        self.credentials = Some((user.to_string(), password.to_string()));
        self
    }

    /// The registry's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, url: &str) -> RequestBuilder {
        let builder = self.client.request(method, url);
        if let Some(bearer) = &self.bearer {
            return builder.header("Authorization", bearer.header_for(url));
        }
        match &self.credentials {
            Some((user, password)) => builder.basic_auth(user, Some(password)),
            None => builder,
        }
    }

    fn send(&self, what: &str, builder: RequestBuilder) -> Response {
        builder
            .send()
            .unwrap_or_else(|e| panic!("{what}: request to {} failed: {e}", self.base))
    }

    /// The digest of the manifest `repo:reference` (the sha256 of the bytes
    /// served, any manifest media type).
    pub fn manifest_digest(&self, repo: &str, reference: &str) -> String {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let accept = "application/vnd.oci.image.index.v1+json, \
            application/vnd.oci.image.manifest.v1+json, \
            application/vnd.docker.distribution.manifest.list.v2+json, \
            application/vnd.docker.distribution.manifest.v2+json";
        let response = self.send(
            "getting a manifest",
            self.request(reqwest::Method::GET, &url)
                .header("Accept", accept),
        );
        let response = expect_status(
            response,
            StatusCode::OK,
            &format!("GET manifest {repo}:{reference}"),
        );
        let bytes = response
            .bytes()
            .unwrap_or_else(|e| panic!("reading manifest {repo}:{reference}: {e}"));
        crate::content::sha256(&bytes)
    }

    /// Whether `repo` already holds blob `digest`.
    pub fn blob_exists(&self, repo: &str, digest: &str) -> bool {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let response = self.send("checking a blob", self.request(reqwest::Method::HEAD, &url));
        match response.status() {
            StatusCode::OK => true,
            StatusCode::NOT_FOUND => false,
            other => panic!("HEAD {url}: unexpected status {other}"),
        }
    }

    /// Ask the registry to mount blob `digest` from repository `from` into
    /// `repo` (same registry). Returns whether it did (`201`); on `202` the
    /// registry opened an upload session instead, which is left to expire.
    pub fn mount_blob(&self, repo: &str, from: &str, digest: &str) -> bool {
        let url = format!(
            "{}/v2/{repo}/blobs/uploads/?mount={digest}&from={from}",
            self.base
        );
        let response = self.send("mounting a blob", self.request(reqwest::Method::POST, &url));
        match response.status() {
            StatusCode::CREATED => true,
            StatusCode::ACCEPTED => false,
            other => panic!("POST {url}: unexpected status {other}"),
        }
    }

    /// Start an upload session in `repo`; returns the upload URL.
    fn start_upload(&self, repo: &str) -> Url {
        let url = format!("{}/v2/{repo}/blobs/uploads/", self.base);
        let response = self.send(
            "starting an upload",
            self.request(reqwest::Method::POST, &url),
        );
        let response = expect_status(response, StatusCode::ACCEPTED, &format!("POST {url}"));
        location(&response, &url)
    }

    /// Push `bytes` as a blob into `repo` (monolithic: POST then PUT
    /// `?digest=`), unless the repository already has it. Returns the digest.
    pub fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = crate::content::sha256(bytes);
        if self.blob_exists(repo, &digest) {
            return digest;
        }
        let mut upload = self.start_upload(repo);
        upload.query_pairs_mut().append_pair("digest", &digest);
        let response = self.send(
            "uploading a blob",
            self.request(reqwest::Method::PUT, upload.as_str())
                .header("Content-Type", "application/octet-stream")
                .body(bytes.to_vec()),
        );
        let response = expect_status(
            response,
            StatusCode::CREATED,
            &format!("PUT blob {digest} into {repo}"),
        );
        check_digest_header(&response, &digest);
        digest
    }

    /// Push a blob read from `reader`, streaming: one chunked PATCH whose body
    /// is hashed as it goes out, then PUT `?digest=`. Memory use does not
    /// depend on the blob's size. Returns the digest and the size.
    pub fn push_blob_streaming(
        &self,
        repo: &str,
        reader: impl Read + Send + 'static,
    ) -> (String, u64) {
        let state = Arc::new(Mutex::new((Sha256::new(), 0u64)));
        let hashing = HashingReader {
            inner: reader,
            state: Arc::clone(&state),
        };
        let upload = self.start_upload(repo);
        let response = self.send(
            "streaming a blob",
            self.request(reqwest::Method::PATCH, upload.as_str())
                .header("Content-Type", "application/octet-stream")
                .body(Body::new(hashing)),
        );
        let response = expect_status(response, StatusCode::ACCEPTED, &format!("PATCH {upload}"));
        let mut upload = location(&response, upload.as_str());
        let (hasher, size) = {
            let mut guard = state.lock().expect("hasher lock");
            std::mem::replace(&mut *guard, (Sha256::new(), 0))
        };
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        upload.query_pairs_mut().append_pair("digest", &digest);
        let response = self.send(
            "completing an upload",
            self.request(reqwest::Method::PUT, upload.as_str()),
        );
        let response = expect_status(
            response,
            StatusCode::CREATED,
            &format!("PUT blob {digest} into {repo}"),
        );
        check_digest_header(&response, &digest);
        (digest, size)
    }

    /// Push a manifest or index under `reference` (a tag or a digest) with
    /// the given Content-Type. Returns the digest the registry reports, after
    /// checking it is the sha256 of `bytes`.
    pub fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let digest = crate::content::sha256(bytes);
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let response = self.send(
            "pushing a manifest",
            self.request(reqwest::Method::PUT, &url)
                .header("Content-Type", media_type)
                .body(bytes.to_vec()),
        );
        let response = expect_status(
            response,
            StatusCode::CREATED,
            &format!("PUT manifest {repo}:{reference} ({media_type})"),
        );
        check_digest_header(&response, &digest);
        digest
    }
}

/// Push `bytes` as a blob into `repo` of the registry at `reg_url`
/// (`http://host:port`); skipped if the blob is already there. Returns the
/// digest.
pub fn push_blob(reg_url: &str, repo: &str, bytes: &[u8]) -> String {
    Pusher::new(reg_url).push_blob(repo, bytes)
}

/// Push a manifest or index into `repo` of the registry at `reg_url` under
/// `reference` (tag or digest). Returns its digest.
pub fn push_manifest(
    reg_url: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> String {
    Pusher::new(reg_url).push_manifest(repo, reference, media_type, bytes)
}

/// The blocking HTTP client the testkit uses: generous timeouts, no
/// certificate verification (test registries use self-signed certificates).
pub(crate) fn test_client() -> Client {
    Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(600))
        .danger_accept_invalid_certs(true)
        .build()
        .expect("building the testkit HTTP client")
}

fn expect_status(response: Response, wanted: StatusCode, what: &str) -> Response {
    if response.status() == wanted {
        return response;
    }
    let status = response.status();
    let body = response.text().unwrap_or_default();
    panic!("{what}: registry answered {status} (wanted {wanted}): {body}");
}

fn location(response: &Response, request_url: &str) -> Url {
    let value = response
        .headers()
        .get("Location")
        .unwrap_or_else(|| panic!("{request_url}: no Location header"))
        .to_str()
        .expect("ASCII Location header");
    Url::parse(request_url)
        .and_then(|base| base.join(value))
        .unwrap_or_else(|e| panic!("{request_url}: bad Location {value:?}: {e}"))
}

fn check_digest_header(response: &Response, digest: &str) {
    if let Some(served) = response.headers().get("Docker-Content-Digest") {
        assert_eq!(
            served.to_str().unwrap_or_default(),
            digest,
            "registry reports a different digest for {}",
            response.url()
        );
    }
}

struct HashingReader<R> {
    inner: R,
    state: Arc<Mutex<(Sha256, u64)>>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut guard = self.state.lock().expect("hasher lock");
        guard.0.update(&buf[..n]);
        guard.1 += n as u64;
        Ok(n)
    }
}
