//! One request to a registry: authorized for its own origin only,
//! following redirects, answering `401` challenges, and tried again under
//! the retry policy when it fails in a transient way.

use reqwest::header::{HeaderMap, AUTHORIZATION, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};

use crate::auth::{basic, fetch_token, not_allowed, refused, Authorization, Challenge};
use crate::http::{body_error, classify, strip_query};
use crate::origin::Origin;
use crate::transport::Transport;
use crate::{Error, Repository, Result};

/// Redirects followed for one request, as browsers and Go's client allow.
const MAX_REDIRECTS: usize = 10;

/// Access a request needs on its repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Pull,
    Push,
    /// The registry's catalog (`registry:catalog:*`), not a repository.
    Catalog,
}

/// What one request is for, to build it again on each try.
pub(crate) struct RequestPlan<'a> {
    pub(crate) method: Method,
    pub(crate) repo: &'a Repository,
    pub(crate) access: Access,
    /// Other repositories the token must cover for pull (cross-repo mount).
    pub(crate) also_pull: Option<&'a str>,
    /// Path and query after the base URL (`/v2/...`), or an absolute URL
    /// the registry named (an upload `Location`, a `Link`).
    pub(crate) target: String,
    /// Statuses the caller handles itself (not turned into errors).
    pub(crate) accept: &'a [StatusCode],
    /// Whether a transient failure may be retried here. Off for requests
    /// whose retry must start a whole new exchange (an upload session).
    pub(crate) retry: bool,
}

impl RequestPlan<'_> {
    fn scopes(&self) -> Vec<String> {
        let action = match self.access {
            Access::Pull => "pull",
            Access::Push => "pull,push",
            Access::Catalog => return vec!["registry:catalog:*".to_string()],
        };
        let mut scopes = vec![format!("repository:{}:{action}", self.repo.name())];
        if let Some(other) = self.also_pull {
            scopes.push(format!("repository:{other}:pull"));
        }
        scopes
    }
}

/// An answer read whole (manifests, tag lists, referrers).
pub(crate) struct Whole {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    /// The URL that answered (after redirects).
    pub(crate) url: Url,
    pub(crate) body: Vec<u8>,
    /// The body is longer than the limit asked for (reading stopped there).
    pub(crate) too_large: bool,
}

impl Whole {
    /// A header's value as text.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        crate::response::header_text(&self.headers, name)
    }
}

/// How answering a `401` went.
enum Answered {
    /// Authorization is in the token cache: send again.
    TryAgain,
    /// Refused for good.
    Refused(Error),
}

impl Transport {
    /// Send the request `build` makes, authorized and retried. `build` is
    /// called once per try and per redirect, so it may open a fresh body
    /// stream each time.
    pub(crate) async fn send<F>(&self, plan: &RequestPlan<'_>, build: F) -> Result<Response>
    where
        F: Fn(RequestBuilder) -> Result<RequestBuilder>,
    {
        let policy = if plan.retry {
            self.config.retry
        } else {
            self.config.retry.once()
        };
        let build = &build;
        policy
            .run(|_| async move { self.send_once(plan, build).await.map_err(Error::failure) })
            .await
    }

    /// One try: follow redirects and answer challenges, no retries.
    async fn send_once<F>(&self, plan: &RequestPlan<'_>, build: &F) -> Result<Response>
    where
        F: Fn(RequestBuilder) -> Result<RequestBuilder>,
    {
        let host = plan.repo.host();
        let home = self.origin(host)?;
        let scopes = plan.scopes();
        let scope_key = scopes.join(" ");
        let mut url = self.url(host, &plan.target)?;
        let mut method = plan.method.clone();
        let mut redirects = 0;
        let mut auth_rounds = 0;
        loop {
            let at_home = Origin::of(&url) == home;
            // TLS settings follow the host named: the registry as the user
            // named it, another origin by its own name.
            let tls_host = if at_home {
                host.to_string()
            } else {
                authority(&url)
            };
            let mut request = self
                .http_for(&tls_host)
                .request(method.clone(), url.clone());
            // The registry's credentials go to the registry's origin only.
            let mut sent = None;
            if at_home {
                if let Some(auth) = self.tokens.get(host, &scope_key) {
                    let value = auth.header_value();
                    request = request.header(AUTHORIZATION, &value);
                    sent = Some(value);
                }
            }
            let response = build(request)?
                .send()
                .await
                .map_err(|e| classify(host, url.as_str(), self.config.read_timeout, e))?;
            let status = response.status();
            if let Some(next) = redirect_target(&url, &response) {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(Error::Protocol {
                        host: host.to_string(),
                        what: format!("{method} {}", strip_query(plan.target.as_str())),
                        reason: format!("more than {MAX_REDIRECTS} redirects"),
                    });
                }
                if status == StatusCode::SEE_OTHER {
                    method = Method::GET;
                }
                url = next;
                continue;
            }
            if plan.accept.contains(&status) || status.is_success() {
                return Ok(response);
            }
            if status == StatusCode::UNAUTHORIZED {
                if !at_home {
                    // Another origin asks for credentials: those ferry
                    // holds are the registry's, and are not for it.
                    return Err(Error::Unauthorized {
                        host: host.to_string(),
                        repository: plan.repo.name().to_string(),
                        hint: format!(
                            "the registry sent ferry to {}, which asked for credentials; \
                             ferry gives a registry's credentials to that registry only",
                            Origin::of(&url)
                        ),
                    });
                }
                if auth_rounds < 2 {
                    auth_rounds += 1;
                    match self
                        .answer_challenge(plan, &home, &response, &scopes, auth_rounds, sent)
                        .await?
                    {
                        Answered::TryAgain => continue,
                        Answered::Refused(e) => return Err(e),
                    }
                }
                return Err(self.refusal(plan, &response, &scopes).await?);
            }
            return Err(status_error(&method, url.as_str(), response).await);
        }
    }

    /// Answer a `401` from the registry to a request that carried `sent`
    /// (an `Authorization` value, if any): fetch a token for the bearer
    /// challenge, or use the basic credentials (once). One request per
    /// scope answers at a time; one that waited uses what the other got.
    async fn answer_challenge(
        &self,
        plan: &RequestPlan<'_>,
        home: &Origin,
        response: &Response,
        scopes: &[String],
        round: u32,
        sent: Option<String>,
    ) -> Result<Answered> {
        let host = plan.repo.host();
        let scope_key = scopes.join(" ");
        let gate = self.tokens.gate(host, &scope_key);
        let _one_at_a_time = gate.lock().await;
        if let Some(current) = self.tokens.get(host, &scope_key) {
            if Some(current.header_value()) != sent {
                return Ok(Answered::TryAgain);
            }
        }
        self.tokens.forget(host, &scope_key);
        let credential = self.credential(host).await?;
        match challenge(response.headers()) {
            Some(Challenge::Bearer { realm, service, .. }) => {
                let answer = fetch_token(
                    self.http_for(host),
                    home,
                    &realm,
                    service.as_deref(),
                    scopes,
                    credential.as_ref(),
                )
                .await?;
                let Some((auth, ttl)) = answer else {
                    let by = format!("the token service {}", strip_query(&realm));
                    return Ok(Answered::Refused(self.unauthorized(
                        plan,
                        credential.is_some(),
                        &by,
                    )));
                };
                self.tokens.put(host, &scope_key, auth, ttl);
                Ok(Answered::TryAgain)
            }
            Some(Challenge::Basic) if round == 1 && credential.is_some() => {
                let value = basic(credential.as_ref().expect("checked"));
                self.tokens.put(
                    host,
                    &scope_key,
                    Authorization::Basic(value),
                    std::time::Duration::from_secs(3600),
                );
                Ok(Answered::TryAgain)
            }
            _ => Ok(Answered::Refused(self.unauthorized(
                plan,
                credential.is_some(),
                "the registry",
            ))),
        }
    }

    /// The error for a `401` that answering did not cure.
    async fn refusal(
        &self,
        plan: &RequestPlan<'_>,
        response: &Response,
        scopes: &[String],
    ) -> Result<Error> {
        let has_credential = self.credential(plan.repo.host()).await?.is_some();
        let refusal = match challenge(response.headers()) {
            Some(Challenge::Bearer { error, .. }) => error,
            _ => None,
        };
        Ok(match refusal.as_deref() {
            Some("insufficient_scope") if has_credential => {
                not_allowed(plan.repo, &self.credential_source(), scopes)
            }
            Some("invalid_token") => Error::Unauthorized {
                host: plan.repo.host().to_string(),
                repository: plan.repo.name().to_string(),
                hint: "the registry rejects the tokens its token service issues \
                       (expired on arrival or signed by a key it does not trust; \
                       check both clocks)"
                    .to_string(),
            },
            _ => self.unauthorized(plan, has_credential, "the registry"),
        })
    }

    fn unauthorized(&self, plan: &RequestPlan<'_>, had_credential: bool, by: &str) -> Error {
        refused(plan.repo, &self.credential_source(), had_credential, by)
    }

    /// Send, then read the body whole, up to `limit` bytes. A request that
    /// fails, or a body that breaks in transit (cut, timed out), is tried
    /// again, within the retry policy.
    pub(crate) async fn send_whole<F>(
        &self,
        plan: &RequestPlan<'_>,
        build: F,
        limit: u64,
    ) -> Result<Whole>
    where
        F: Fn(RequestBuilder) -> Result<RequestBuilder>,
    {
        let policy = if plan.retry {
            self.config.retry
        } else {
            self.config.retry.once()
        };
        let build = &build;
        policy
            .run(|_| async move {
                // Request and body are one try: `attempts` bounds both
                // together, rather than multiplying.
                let response = self.send_once(plan, build).await.map_err(Error::failure)?;
                self.read_whole(response, limit)
                    .await
                    .map_err(Error::failure)
            })
            .await
    }

    async fn read_whole(&self, mut response: Response, limit: u64) -> Result<Whole> {
        let status = response.status();
        let headers = response.headers().clone();
        let url = response.url().clone();
        if response.content_length().unwrap_or(0) > limit {
            return Ok(Whole {
                status,
                headers,
                url,
                body: Vec::new(),
                too_large: true,
            });
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() as u64 > limit {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(body_error(url.as_str(), self.config.read_timeout, e)),
            }
        }
        let too_large = body.len() as u64 > limit;
        Ok(Whole {
            status,
            headers,
            url,
            body,
            too_large,
        })
    }
}

/// `host` or `host:port` of `url`, as hosts are named in the settings.
fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

fn challenge(headers: &HeaderMap) -> Option<Challenge> {
    headers
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .and_then(Challenge::parse)
}

/// Where a redirect answer points, resolved against `url`.
fn redirect_target(url: &Url, response: &Response) -> Option<Url> {
    let redirect = [
        StatusCode::MOVED_PERMANENTLY,
        StatusCode::FOUND,
        StatusCode::SEE_OTHER,
        StatusCode::TEMPORARY_REDIRECT,
        StatusCode::PERMANENT_REDIRECT,
    ];
    if !redirect.contains(&response.status()) {
        return None;
    }
    let location = response.headers().get(LOCATION)?.to_str().ok()?;
    let next = url.join(location).ok()?;
    matches!(next.scheme(), "http" | "https").then_some(next)
}

/// Turn an unexpected status into an error, with the registry's error code.
pub(crate) async fn status_error(method: &Method, url: &str, mut response: Response) -> Error {
    let status = response.status().as_u16();
    let retry_after = crate::response::retry_after(response.headers());
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > 64 * 1024 {
            break;
        }
    }
    let (code, message) = crate::response::registry_error(&body);
    Error::Status {
        method: method.to_string(),
        url: strip_query(url),
        status,
        code,
        message,
        retry_after,
    }
}
