//! One authorized, retried request to a registry.
//!
//! Every operation in [`Client`](crate::Client) goes through
//! [`Transport::send`]: pick the scheme and TLS settings for the host, attach
//! a cached token, answer a `401` challenge once, and try again with bounded
//! backoff when the failure is transient.

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{HeaderMap, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use crate::auth::{basic, fetch_token, not_allowed, refused, Authorization, Challenge, TokenCache};
use crate::credentials::{Credential, DockerCredentials};
use crate::{ClientConfig, Error, Repository, Result};

/// Access a request needs on its repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Pull,
    Push,
}

pub(crate) struct Transport {
    pub(crate) config: ClientConfig,
    verified: reqwest::Client,
    unverified: reqwest::Client,
    credentials: DockerCredentials,
    credential_cache: Mutex<HashMap<String, Option<Credential>>>,
    tokens: TokenCache,
}

/// An answer read whole (manifests, tag lists, referrers).
pub(crate) struct Whole {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    /// The body is longer than the limit asked for (reading stopped there).
    pub(crate) too_large: bool,
}

impl Whole {
    /// A header's value as text.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// What one request is for, to build it again on each try.
pub(crate) struct RequestPlan<'a> {
    pub(crate) method: Method,
    pub(crate) repo: &'a Repository,
    pub(crate) access: Access,
    /// Other repositories the token must cover for pull (cross-repo mount).
    pub(crate) also_pull: Option<&'a str>,
    /// Path and query after the base URL (`/v2/...`), or an absolute URL.
    pub(crate) target: String,
    /// Statuses the caller handles itself (not turned into errors).
    pub(crate) accept: &'a [StatusCode],
    /// Whether a transient failure may be retried here. Off for requests
    /// whose retry must start a whole new exchange (an upload session).
    pub(crate) retry: bool,
}

impl Transport {
    pub(crate) fn new(config: ClientConfig) -> Result<Transport> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .pool_max_idle_per_host(32);
        let mut pems = Vec::new();
        for path in &config.ca_certs {
            let pem = std::fs::read(path).map_err(|e| Error::Config {
                what: format!("cannot read CA certificate {}", path.display()),
                source: Some(Box::new(e)),
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| Error::Config {
                what: format!("{} holds no PEM certificate", path.display()),
                source: Some(Box::new(e)),
            })?;
            if certs.is_empty() {
                return Err(Error::Config {
                    what: format!("{} holds no PEM certificate", path.display()),
                    source: None,
                });
            }
            pems.push(pem);
        }
        if !pems.is_empty() {
            let tls = crate::tls::client_config(&pems).map_err(|why| Error::Config {
                what: format!("cannot use the --ca-cert certificates: {why}"),
                source: None,
            })?;
            builder = builder.use_preconfigured_tls(tls);
        }
        let build = |b: reqwest::ClientBuilder| {
            b.build().map_err(|e| Error::Config {
                what: "cannot set up the HTTP client".to_string(),
                source: Some(Box::new(e)),
            })
        };
        let unverified = build(
            reqwest::Client::builder()
                .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(config.connect_timeout)
                .read_timeout(config.read_timeout)
                .danger_accept_invalid_certs(true),
        )?;
        let verified = build(builder)?;
        let credentials = if config.use_docker_credentials {
            DockerCredentials::load(config.docker_config_dir.as_deref())?
        } else {
            DockerCredentials::default()
        };
        Ok(Transport {
            config,
            verified,
            unverified,
            credentials,
            credential_cache: Mutex::new(HashMap::new()),
            tokens: TokenCache::default(),
        })
    }

    fn http_for(&self, host: &str) -> &reqwest::Client {
        if self.config.is_insecure(host) {
            &self.unverified
        } else {
            &self.verified
        }
    }

    /// `https://host` or `http://host`, with docker.io's API host.
    pub(crate) fn base_url(&self, host: &str) -> String {
        let scheme = if self.config.is_plain_http(host) {
            "http"
        } else {
            "https"
        };
        let api_host = if host == "docker.io" {
            "registry-1.docker.io"
        } else {
            host
        };
        format!("{scheme}://{api_host}")
    }

    fn credential(&self, host: &str) -> Result<Option<Credential>> {
        let mut cache = self
            .credential_cache
            .lock()
            .expect("credential cache poisoned");
        if let Some(c) = cache.get(host) {
            return Ok(c.clone());
        }
        let c = self.credentials.lookup(host)?;
        cache.insert(host.to_string(), c.clone());
        Ok(c)
    }

    fn scopes(plan: &RequestPlan<'_>) -> Vec<String> {
        let action = match plan.access {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        };
        let mut scopes = vec![format!("repository:{}:{action}", plan.repo.name())];
        if let Some(other) = plan.also_pull {
            scopes.push(format!("repository:{other}:pull"));
        }
        scopes
    }

    /// Send the request `build` makes, authorized and retried. `build` is
    /// called once per try, so it may open a fresh body stream each time.
    pub(crate) async fn send<F>(&self, plan: &RequestPlan<'_>, build: F) -> Result<Response>
    where
        F: Fn(RequestBuilder) -> Result<RequestBuilder>,
    {
        let host = plan.repo.host();
        let scopes = Self::scopes(plan);
        let scope_key = scopes.join(" ");
        let url = if plan.target.starts_with("http://") || plan.target.starts_with("https://") {
            plan.target.clone()
        } else {
            format!("{}{}", self.base_url(host), plan.target)
        };
        let attempts = if plan.retry {
            self.config.retry.attempts
        } else {
            1
        };
        let policy = self.config.retry;
        let mut attempt = 1;
        let mut auth_rounds = 0;
        loop {
            let mut request = self.http_for(host).request(plan.method.clone(), &url);
            if let Some(auth) = self.tokens.get(host, &scope_key) {
                request = request.header(AUTHORIZATION, auth.header_value());
            }
            let outcome = match build(request)?.send().await {
                Ok(response) => Ok(response),
                Err(e) => Err(self.transport_error(host, &url, e)),
            };
            let response = match outcome {
                Ok(r) => r,
                Err(e) if e.is_retryable() && attempt < attempts => {
                    attempt += 1;
                    tokio::time::sleep(policy.delay(attempt, None)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let status = response.status();
            if plan.accept.contains(&status) || status.is_success() {
                return Ok(response);
            }
            if status == StatusCode::UNAUTHORIZED && auth_rounds < 2 {
                auth_rounds += 1;
                self.tokens.forget(host, &scope_key);
                let challenge = response
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(Challenge::parse);
                let credential = self.credential(host)?;
                let auth = match challenge {
                    Some(Challenge::Bearer { realm, service, .. }) => {
                        let answer = fetch_token(
                            self.http_for(host),
                            &realm,
                            service.as_deref(),
                            &scopes,
                            credential.as_ref(),
                        )
                        .await?;
                        let Some((auth, ttl)) = answer else {
                            let by = format!("the token service {}", strip_query(&realm));
                            return Err(self.unauthorized(plan, credential.is_some(), &by));
                        };
                        self.tokens.put(host, &scope_key, auth, ttl);
                        continue;
                    }
                    Some(Challenge::Basic) => credential.as_ref().map(basic),
                    None => None,
                };
                match auth {
                    Some(b) if auth_rounds == 1 => {
                        self.tokens.put(
                            host,
                            &scope_key,
                            Authorization::Basic(b),
                            Duration::from_secs(3600),
                        );
                        continue;
                    }
                    _ => return Err(self.unauthorized(plan, credential.is_some(), "the registry")),
                }
            }
            if status == StatusCode::UNAUTHORIZED {
                let has_credential = self.credential(host)?.is_some();
                let refusal = match response
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(Challenge::parse)
                {
                    Some(Challenge::Bearer { error, .. }) => error,
                    _ => None,
                };
                return Err(match refusal.as_deref() {
                    Some("insufficient_scope") if has_credential => self.not_allowed(plan, &scopes),
                    Some("invalid_token") => Error::Unauthorized {
                        host: host.to_string(),
                        repository: plan.repo.name().to_string(),
                        hint: "the registry rejects the tokens its token service issues \
                               (expired on arrival or signed by a key it does not trust; \
                               check both clocks)"
                            .to_string(),
                    },
                    _ => self.unauthorized(plan, has_credential, "the registry"),
                });
            }
            let retry_after = retry_after(response.headers());
            let error = status_error(&plan.method, &url, response).await;
            if error.is_retryable() && attempt < attempts {
                attempt += 1;
                tokio::time::sleep(policy.delay(attempt, retry_after)).await;
                continue;
            }
            return Err(error);
        }
    }

    /// [`send`](Self::send), then read the body whole, up to `limit` bytes.
    /// A body that breaks in transit (cut, timed out) is fetched again,
    /// within the retry policy.
    pub(crate) async fn send_whole<F>(
        &self,
        plan: &RequestPlan<'_>,
        build: F,
        limit: u64,
    ) -> Result<Whole>
    where
        F: Fn(RequestBuilder) -> Result<RequestBuilder>,
    {
        let policy = self.config.retry;
        let mut attempt = 1;
        loop {
            let mut response = self.send(plan, &build).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let url = response.url().to_string();
            if response.content_length().unwrap_or(0) > limit {
                return Ok(Whole {
                    status,
                    headers,
                    body: Vec::new(),
                    too_large: true,
                });
            }
            let mut body = Vec::new();
            let outcome = loop {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        body.extend_from_slice(&chunk);
                        if body.len() as u64 > limit {
                            break Ok(true);
                        }
                    }
                    Ok(None) => break Ok(false),
                    Err(e) => break Err(self.body_error(&url, e)),
                }
            };
            match outcome {
                Ok(too_large) => {
                    return Ok(Whole {
                        status,
                        headers,
                        body,
                        too_large,
                    })
                }
                Err(e) if e.is_retryable() && plan.retry && attempt < policy.attempts => {
                    attempt += 1;
                    tokio::time::sleep(policy.delay(attempt, None)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Where the credentials came from, for messages.
    fn credential_source(&self) -> String {
        self.credentials
            .source()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the docker config".to_string())
    }

    fn unauthorized(&self, plan: &RequestPlan<'_>, had_credential: bool, by: &str) -> Error {
        let source = self.credential_source();
        refused(plan.repo, &source, had_credential, by)
    }

    fn not_allowed(&self, plan: &RequestPlan<'_>, scopes: &[String]) -> Error {
        not_allowed(plan.repo, &self.credential_source(), scopes)
    }

    pub(crate) fn transport_error(&self, host: &str, url: &str, e: reqwest::Error) -> Error {
        let chain = error_chain(&e);
        if chain.contains("InvalidContentType") || chain.contains("corrupt message") {
            return Error::PlainHttpNotAllowed {
                host: host.to_string(),
            };
        }
        if chain.contains("certificate") || chain.contains("UnknownIssuer") {
            return Error::Tls {
                host: host.to_string(),
                source: e.without_url(),
            };
        }
        if e.is_timeout() {
            return self.body_error(url, e);
        }
        if e.is_connect() && chain.contains("dns error") {
            return Error::UnknownHost {
                host: host.to_string(),
                source: e.without_url(),
            };
        }
        if e.is_connect() {
            return Error::Connect {
                host: host.to_string(),
                url: url.to_string(),
                source: e.without_url(),
            };
        }
        Error::Transport {
            url: url.to_string(),
            source: e.without_url(),
        }
    }
}

impl Transport {
    /// A body that broke in transit: timed out, or cut.
    pub(crate) fn body_error(&self, url: &str, e: reqwest::Error) -> Error {
        let url = strip_query(url);
        if e.is_timeout() {
            Error::Timeout {
                url,
                secs: self.config.read_timeout.as_secs().max(1),
                source: e.without_url(),
            }
        } else {
            Error::Transport {
                url,
                source: e.without_url(),
            }
        }
    }
}

fn error_chain(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Turn an unexpected status into an error, with the registry's error code.
pub(crate) async fn status_error(method: &Method, url: &str, response: Response) -> Error {
    let status = response.status().as_u16();
    let mut body = Vec::new();
    let mut response = response;
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > 64 * 1024 {
            break;
        }
    }
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<RegistryError>,
    }
    #[derive(serde::Deserialize)]
    struct RegistryError {
        code: Option<String>,
        message: Option<String>,
    }
    let (code, message) = serde_json::from_slice::<Errors>(&body)
        .ok()
        .and_then(|e| e.errors.into_iter().next())
        .map(|e| (e.code, e.message))
        .unwrap_or((None, None));
    Error::Status {
        method: method.to_string(),
        url: strip_query(url),
        status,
        code,
        message,
    }
}

/// URLs of upload sessions carry state in the query; keep messages short.
pub(crate) fn strip_query(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}
