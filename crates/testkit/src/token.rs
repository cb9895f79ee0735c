//! A docker token server (the bearer-token flow of Docker Hub, Harbor,
//! GitLab, Quay) on a loopback port, for a `docker-registry` started with
//! `auth: token`.
//!
//! `GET /token?service=S&scope=repository:NAME:pull,push` with optional
//! HTTP basic credentials answers `{"token": JWT, "access_token": JWT,
//! "expires_in": N}`. The JWT is signed RS256 (by `openssl dgst`, so the
//! testkit needs no crypto crate) with a key and a self-signed certificate
//! made by `openssl req` at start; the certificate travels in the `x5c`
//! header and is the registry's `rootcertbundle`, which is what distribution
//! verifies (`registry/auth/token/token.go`).
//!
//! Policy: a known user with the right password gets every action asked
//! for (only `pull` if listed in [`TokenServerOptions::pull_only`]); an anonymous caller gets `pull` if [`TokenServerOptions::anonymous_pull`]
//! allows it, else a token granting nothing (as Docker Hub does, so the
//! registry answers 401); a wrong password is a 401 from the token server.
//!
//! For deterministic expiry tests, [`TokenServer::expire_next`] makes the next
//! tokens issued dead on arrival: their `exp` lies an hour in the past (well
//! beyond distribution's 60 s leeway) while the answer still says
//! `expires_in`, so a client believes them good until the registry says 401.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use reqwest::Url;
use serde_json::json;
use tempfile::TempDir;

/// The `service` the token server issues for (the JWT `aud`).
pub const TOKEN_SERVICE: &str = "ferry-test";
/// The `iss` of every token.
pub const TOKEN_ISSUER: &str = "ferry-test-issuer";

/// Who may do what, and how tokens are answered.
#[derive(Debug, Clone)]
pub struct TokenServerOptions {
    /// Accounts (user, password); each may pull and push everywhere and list
    /// the catalog.
    pub users: Vec<(String, String)>,
    /// Accounts of `users` limited to `pull` (a read-only robot account).
    pub pull_only: Vec<String>,
    /// Whether a caller without credentials gets `pull`.
    pub anonymous_pull: bool,
    /// The `expires_in` of an answer and the life of a token.
    pub lifetime: Duration,
    /// Answer only `access_token` (OAuth2 style), not `token`.
    pub access_token_only: bool,
}

impl Default for TokenServerOptions {
    fn default() -> TokenServerOptions {
        TokenServerOptions {
            users: Vec::new(),
            pull_only: Vec::new(),
            anonymous_pull: false,
            lifetime: Duration::from_secs(300),
            access_token_only: false,
        }
    }
}

impl TokenServerOptions {
    /// One account, no anonymous pull.
    pub fn user(name: &str, password: &str) -> TokenServerOptions {
        TokenServerOptions {
            users: vec![(name.to_string(), password.to_string())],
            ..TokenServerOptions::default()
        }
    }
}

/// One request the token server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The account that authenticated; `None` for anonymous (or refused).
    pub account: Option<String>,
    /// The `scope` parameters, as sent.
    pub scopes: Vec<String>,
    /// The HTTP status answered (200, or 401 for a wrong password).
    pub status: u16,
    /// What the token grants, as `type:name:action,action` strings.
    pub granted: Vec<String>,
    /// Whether the token was issued already expired ([`TokenServer::expire_next`]).
    pub expired: bool,
}

/// What a `docker-registry` needs to trust a [`TokenServer`], and the
/// account the testkit's own helpers (pusher, manifest checks) use.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    /// `http://127.0.0.1:PORT/token`.
    pub realm: String,
    /// The `service` (audience).
    pub service: String,
    /// The `issuer`.
    pub issuer: String,
    /// The PEM certificate that signs tokens (`rootcertbundle`).
    pub rootcertbundle: PathBuf,
    /// Credentials for the testkit's helpers; `None` to go anonymous.
    pub account: Option<(String, String)>,
}

struct State {
    options: TokenServerOptions,
    key: PathBuf,
    x5c: String,
    expire_next: AtomicUsize,
    padding: AtomicUsize,
    issued: AtomicUsize,
    log: Mutex<Vec<TokenRequest>>,
    stop: AtomicBool,
}

/// A running token server on `127.0.0.1:<free port>`; see the
/// [module docs](self). Stopped (and its key deleted) on `Drop`.
pub struct TokenServer {
    addr: SocketAddr,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
    dir: TempDir,
}

impl std::fmt::Debug for TokenServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl TokenServer {
    /// Make a key and certificate with `openssl`, then listen.
    ///
    /// Panics if `openssl` is missing or fails.
    pub fn start(options: TokenServerOptions) -> TokenServer {
        let dir = tempfile::Builder::new()
            .prefix("ferry-token-")
            .tempdir()
            .expect("creating the token server's temporary directory");
        let key = dir.path().join("token-key.pem");
        let cert = dir.path().join("token-cert.pem");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=ferry-test-token-issuer",
            "-keyout",
            path_str(&key),
            "-out",
            path_str(&cert),
        ]);
        let pem = std::fs::read_to_string(&cert).expect("reading the token certificate");
        // The PEM body is the base64 of the DER, which is what x5c holds.
        let x5c: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .concat();
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(State {
            options,
            key,
            x5c,
            expire_next: AtomicUsize::new(0),
            padding: AtomicUsize::new(0),
            issued: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let accept_state = Arc::clone(&state);
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_state.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let state = Arc::clone(&accept_state);
                std::thread::spawn(move || serve(&state, stream));
            }
        });
        TokenServer {
            addr,
            state,
            accept: Some(accept),
            dir,
        }
    }

    /// `http://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The PEM certificate a registry must trust (`rootcertbundle`).
    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("token-cert.pem")
    }

    /// The registry-side settings, with the first user (if any) as the
    /// account of the testkit's helpers.
    pub fn auth(&self) -> TokenAuth {
        TokenAuth {
            realm: self.realm(),
            service: TOKEN_SERVICE.to_string(),
            issuer: TOKEN_ISSUER.to_string(),
            rootcertbundle: self.cert_path(),
            account: self.state.options.users.first().cloned(),
        }
    }

    /// Issue the next `n` tokens already expired (see the module docs).
    /// Counts every token issued, the testkit helpers' too.
    pub fn expire_next(&self, n: usize) {
        self.state.expire_next.store(n, Ordering::SeqCst);
    }

    /// From now on, pad every answer with `bytes` of JSON whitespace (a
    /// token service answering without end, as a hostile one may).
    pub fn pad_answers(&self, bytes: usize) {
        self.state.padding.store(bytes, Ordering::SeqCst);
    }

    /// How many tokens were issued so far.
    pub fn issued(&self) -> usize {
        self.state.issued.load(Ordering::SeqCst)
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.log.lock().expect("token log").clone()
    }

    /// Forget the request log.
    pub fn reset_log(&self) {
        self.state.log.lock().expect("token log").clear();
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running openssl (install it): {e}"));
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// RS256: PKCS#1 v1.5 over SHA-256, by `openssl dgst -sign`.
fn sign(key: &Path, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign", path_str(key)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running openssl (install it): {e}"));
    child
        .stdin
        .take()
        .expect("openssl stdin")
        .write_all(input)
        .expect("writing to openssl");
    let output = child.wait_with_output().expect("waiting for openssl");
    assert!(
        output.status.success(),
        "openssl dgst -sign failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Answer one request on `stream`, then close it.
fn serve(state: &State, mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let target = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("/")
        .to_string();
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.trim().to_string());
    let (status, mut body) = answer(state, &target, authorization.as_deref());
    let padding = state.padding.load(Ordering::SeqCst);
    if status == 200 && padding > 0 {
        body.insert_str(1, &" ".repeat(padding));
    }
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        _ => "Not Found",
    };
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status == 401 {
        response.push_str("WWW-Authenticate: Basic realm=\"ferry-test-token\"\r\n");
    }
    response.push_str("\r\n");
    response.push_str(&body);
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

/// The status and JSON body for `GET target`.
fn answer(state: &State, target: &str, authorization: Option<&str>) -> (u16, String) {
    let Ok(url) = Url::parse(&format!("http://token{target}")) else {
        return (404, "{}".to_string());
    };
    if url.path() != "/token" {
        return (404, "{}".to_string());
    }
    let scopes: Vec<String> = url
        .query_pairs()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| {
            v.split(' ')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    let account = match authorization {
        None => None,
        Some(header) => match check_basic(&state.options.users, header) {
            Some(user) => Some(user),
            None => {
                state.log.lock().expect("token log").push(TokenRequest {
                    account: None,
                    scopes,
                    status: 401,
                    granted: Vec::new(),
                    expired: false,
                });
                let body = json!({"errors": [{"code": "UNAUTHORIZED",
                    "message": "authentication required", "detail": null}]});
                return (401, body.to_string());
            }
        },
    };
    let access = grant(&state.options, account.as_deref(), &scopes);
    let expired = state
        .expire_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let serial = state.issued.fetch_add(1, Ordering::SeqCst);
    let lifetime = state.options.lifetime.as_secs().max(1);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let (iat, exp) = if expired {
        (now - 7200, now - 3600)
    } else {
        (now, now + lifetime as i64)
    };
    let claims = json!({
        "iss": TOKEN_ISSUER,
        "sub": account.clone().unwrap_or_default(),
        "aud": TOKEN_SERVICE,
        "exp": exp,
        "nbf": iat,
        "iat": iat,
        "jti": format!("ferry-test-{serial}"),
        "access": access.iter().map(|(kind, name, actions)| json!({
            "type": kind, "name": name, "actions": actions,
        })).collect::<Vec<_>>(),
    });
    let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [state.x5c]});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = sign(&state.key, signing_input.as_bytes());
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature));
    let body = if state.options.access_token_only {
        json!({"access_token": token, "expires_in": lifetime})
    } else {
        json!({"token": token, "access_token": token, "expires_in": lifetime})
    };
    state.log.lock().expect("token log").push(TokenRequest {
        account,
        scopes,
        status: 200,
        granted: access
            .iter()
            .map(|(kind, name, actions)| format!("{kind}:{name}:{}", actions.join(",")))
            .collect(),
        expired,
    });
    (200, body.to_string())
}

/// The user whose password `header` (`Basic base64(user:password)`) carries.
fn check_basic(users: &[(String, String)], header: &str) -> Option<String> {
    let (scheme, value) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(value.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    users
        .iter()
        .any(|(u, p)| u == user && p == password)
        .then(|| user.to_string())
}

/// What a caller gets for `scopes`: (type, name, actions), empty actions left
/// out.
fn grant(
    options: &TokenServerOptions,
    account: Option<&str>,
    scopes: &[String],
) -> Vec<(String, String, Vec<String>)> {
    let authenticated = account.is_some();
    let everything = account.is_some_and(|a| !options.pull_only.iter().any(|p| p == a));
    let mut out = Vec::new();
    for scope in scopes {
        let Some((kind, rest)) = scope.split_once(':') else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        if kind != "repository" && !(kind == "registry" && authenticated) {
            continue;
        }
        let allowed: Vec<String> = actions
            .split(',')
            .filter(|a| everything || (*a == "pull" && (authenticated || options.anonymous_pull)))
            .map(String::from)
            .collect();
        if !allowed.is_empty() {
            out.push((kind.to_string(), name.to_string(), allowed));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_follow_the_policy() {
        let options = TokenServerOptions::user("u", "p");
        let scopes = vec![
            "repository:a:pull,push".to_string(),
            "registry:catalog:*".to_string(),
        ];
        assert_eq!(grant(&options, Some("u"), &scopes).len(), 2);
        assert!(grant(&options, None, &scopes).is_empty());
        let reader = TokenServerOptions {
            pull_only: vec!["u".to_string()],
            ..options.clone()
        };
        assert_eq!(
            grant(&reader, Some("u"), &scopes[..1]),
            vec![("repository".into(), "a".into(), vec!["pull".into()])]
        );
        let anonymous = TokenServerOptions {
            anonymous_pull: true,
            ..options
        };
        assert_eq!(
            grant(&anonymous, None, &scopes),
            vec![("repository".into(), "a".into(), vec!["pull".into()])]
        );
    }
}
