//! The registry authentication dance: `WWW-Authenticate` challenges, the
//! bearer-token flow, and a cache of tokens per host and scope.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::credentials::Credential;
use crate::origin::Origin;
use crate::{Error, Repository, Result};

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Basic realm=...`
    Basic,
    /// `Bearer realm=...,service=...`
    Bearer {
        realm: String,
        service: Option<String>,
        /// `error=` of a refused token: `invalid_token` (expired, not
        /// trusted) or `insufficient_scope` (valid, but not allowed).
        error: Option<String>,
    },
}

impl Challenge {
    /// Parse the header value; `None` for schemes ferry does not speak.
    pub(crate) fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Challenge::Basic),
            "bearer" => {
                let params = parse_params(rest);
                Some(Challenge::Bearer {
                    realm: params.get("realm")?.clone(),
                    service: params.get("service").cloned(),
                    error: params.get("error").cloned(),
                })
            }
            _ => None,
        }
    }
}

fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        out.insert(key, value.to_string());
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// What a request needs to be authorized: the host's answer and the scope.
#[derive(Clone)]
pub(crate) enum Authorization {
    Basic(String),
    Bearer(String),
}

impl Authorization {
    pub(crate) fn header_value(&self) -> String {
        match self {
            Authorization::Basic(v) => format!("Basic {v}"),
            Authorization::Bearer(t) => format!("Bearer {t}"),
        }
    }
}

struct Cached {
    auth: Authorization,
    until: Instant,
}

/// Tokens already obtained, keyed by host and scope.
///
/// Requests run concurrently (`--jobs` blobs into the same repository), so
/// many can meet the same `401` at once; [`TokenCache::gate`] lets one of
/// them fetch the token and the others use it, so the token service is
/// asked once per scope per run (and again only when a token is refused or
/// expires), not once per blob.
#[derive(Default)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<(String, String), Cached>>,
    gates: Mutex<HashMap<(String, String), Gate>>,
}

/// Held while one request answers a challenge for a host and scope.
type Gate = Arc<tokio::sync::Mutex<()>>;

impl TokenCache {
    pub(crate) fn get(&self, host: &str, scope: &str) -> Option<Authorization> {
        let entries = self.entries.lock().expect("token cache poisoned");
        let c = entries.get(&(host.to_string(), scope.to_string()))?;
        (c.until > Instant::now()).then(|| c.auth.clone())
    }

    pub(crate) fn put(&self, host: &str, scope: &str, auth: Authorization, ttl: Duration) {
        let now = Instant::now();
        let until = now
            .checked_add(ttl.min(crate::response::MAX_TOKEN_TTL))
            .unwrap_or(now);
        let mut entries = self.entries.lock().expect("token cache poisoned");
        entries.insert(
            (host.to_string(), scope.to_string()),
            Cached { auth, until },
        );
    }

    /// The lock that answering a challenge for `scope` on `host` holds.
    pub(crate) fn gate(&self, host: &str, scope: &str) -> Gate {
        let mut gates = self.gates.lock().expect("token cache poisoned");
        gates
            .entry((host.to_string(), scope.to_string()))
            .or_default()
            .clone()
    }

    pub(crate) fn forget(&self, host: &str, scope: &str) {
        let mut entries = self.entries.lock().expect("token cache poisoned");
        entries.remove(&(host.to_string(), scope.to_string()));
    }
}

/// Basic credentials, base64-encoded for the header.
pub(crate) fn basic(credential: &Credential) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", credential.username, credential.secret))
}

/// The most of a token service's answer ferry reads: real answers are a
/// few KiB (a JWT and its certificate chain).
const MAX_TOKEN_ANSWER_BYTES: usize = 1024 * 1024;

/// Obtain a bearer token for `scopes` from `realm`. `Ok(None)` when the
/// token service refuses the caller (401 or 403): the caller knows which
/// registry and repository that concerns, and words the error.
///
/// The realm is the registry's choice and may be on another host (a
/// federated token service, as docker.io's): the credentials go there, as
/// docker sends them, but never in the clear when the registry itself
/// (`home`) is reached over https.
pub(crate) async fn fetch_token(
    http: &reqwest::Client,
    home: &Origin,
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    credential: Option<&Credential>,
) -> Result<Option<(Authorization, Duration)>> {
    let token_error = |reason: String| Error::Token {
        realm: realm.to_string(),
        reason,
    };
    let mut query: Vec<(&str, &str)> = Vec::new();
    if let Some(s) = service {
        query.push(("service", s));
    }
    for s in scopes {
        query.push(("scope", s));
    }
    let realm_url = reqwest::Url::parse(realm)
        .map_err(|_| token_error("the registry named no usable token service URL".to_string()))?;
    if credential.is_some() && realm_url.scheme() != "https" && home.is_https() {
        return Err(token_error(
            "the registry, reached over https, names a token service over plain http; \
             ferry does not send credentials in the clear"
                .to_string(),
        ));
    }
    let mut request = http.get(realm_url).query(&query);
    if let Some(c) = credential {
        request = request.header(
            reqwest::header::AUTHORIZATION,
            format!("Basic {}", basic(c)),
        );
    }
    let response = request
        .send()
        .await
        .map_err(|e| token_error(format!("no answer ({})", e.without_url())))?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(token_error(format!("answered {status}")));
    }
    let mut response = response;
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| token_error(format!("broken answer ({})", e.without_url())))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_TOKEN_ANSWER_BYTES {
            return Err(token_error(
                "answer is larger than 1 MiB, no token document is; the token service \
                 is misbehaving"
                    .to_string(),
            ));
        }
    }
    let answer = crate::response::token_answer(&body)
        .ok_or_else(|| token_error("answer is not a token document with a token".to_string()))?;
    Ok(Some((Authorization::Bearer(answer.token), answer.ttl)))
}

/// The error for a refusal by `by` ("the registry", "the token service
/// URL"): names the host, the repository and where the credentials came
/// from (`source`), never the credentials.
pub(crate) fn refused(repo: &Repository, source: &str, had_credential: bool, by: &str) -> Error {
    Error::Unauthorized {
        host: repo.host().to_string(),
        repository: repo.name().to_string(),
        hint: if had_credential {
            format!("{by} refused the credentials from {source}")
        } else {
            format!(
                "no credentials for this host in {source}; run `docker login {}`",
                repo.host()
            )
        },
    }
}

/// The error for valid credentials that do not grant what `scopes` ask
/// (a bearer challenge with `error="insufficient_scope"`).
pub(crate) fn not_allowed(repo: &Repository, source: &str, scopes: &[String]) -> Error {
    let wanted: Vec<String> = scopes
        .iter()
        .filter_map(|s| s.strip_prefix("repository:")?.rsplit_once(':'))
        .map(|(name, actions)| format!("{actions} on {name}"))
        .collect();
    Error::Unauthorized {
        host: repo.host().to_string(),
        repository: repo.name().to_string(),
        hint: format!("the account from {source} may not {}", wanted.join(" and ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenge() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".to_string(),
                service: Some("registry.docker.io".to_string()),
                error: None,
            }
        );
        let refused = Challenge::parse(
            r#"Bearer realm="http://127.0.0.1:1/token",service="s",scope="repository:a:pull,push",error="insufficient_scope""#,
        );
        assert!(matches!(
            refused,
            Some(Challenge::Bearer { error: Some(e), .. }) if e == "insufficient_scope"
        ));
        assert_eq!(
            Challenge::parse(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate"), None);
        assert_eq!(Challenge::parse("Bearer service=x"), None);
    }
}
