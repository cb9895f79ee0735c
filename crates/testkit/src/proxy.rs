//! A fault-injecting HTTP/1.1 reverse proxy for tests.
//!
//! [`FaultProxy`] listens on `127.0.0.1:<free port>` and forwards every
//! request to a plain-HTTP upstream (usually a [`RegistryProcess`]), one
//! fresh upstream connection per request, while keeping the client's
//! connection alive. Bodies stream through in both directions, framed by
//! `Content-Length`, `Transfer-Encoding: chunked` or end of stream.
//!
//! A test arms faults with [`FaultProxy::inject`]: the first rule whose
//! [`Match`] fits a request and still has uses left decides what happens to
//! it ([`Fault`]). Every request is logged, so a test can count how often a
//! path was asked for ([`FaultProxy::count`]) and prove retries happened.
//! Threads stop and sockets close when the proxy is dropped.
//!
//! The `Host` header is forwarded unchanged, so the registry writes upload
//! `Location`s that point back at the proxy: uploads stream through it too.
//!
//! [`FaultProxy::stall_after`] lets a number of response bytes through
//! and then holds everything after, as a network that dies halfway through
//! a transfer without a word: the way to stop a pack at about half of its
//! bytes.
//!
//! [`FaultProxy::start_foreign`] opens a second origin in front of the same
//! registry; [`Fault::MoveLocation`] and [`Fault::Redirect`] send clients
//! there, and its log tells whether they brought credentials along.
//!
//! [`FaultProxy::limit_rate`] makes it a link of a given speed: response
//! bodies, all connections together, pass at that many bytes a second.
//!
//! [`Fault::TakeSingleRequestUpload`] makes it a registry that takes the
//! spec's single-request blob uploads, which docker-registry 2.8 is not.

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::http1::{copy_body, read_head, BodyFraming, Head};
use crate::RegistryProcess;

/// Uses of a rule meaning "every matching request, forever".
pub const FOREVER: usize = usize::MAX;

/// What the proxy does to a request that a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status (500, 503, 429, ...) with a registry-style JSON
    /// error body, optionally with `Retry-After: SECS`. The request never
    /// reaches the upstream.
    Status {
        /// The HTTP status code.
        code: u16,
        /// `Retry-After` in seconds, if any.
        retry_after: Option<u64>,
    },
    /// Cut a body in the middle and close the connection: for a request
    /// with a body (an upload), forward only its first half; otherwise
    /// forward the request, then send the response headers and the first
    /// half of the response body.
    ResetMidBody,
    /// Read the request, then say nothing for this long, then close the
    /// connection without an answer.
    Stall(Duration),
    /// Forward the request, send the headers and half the body, then say
    /// nothing for this long, then close.
    StallMidBody(Duration),
    /// Forward the request without its `Authorization` header, so the
    /// upstream itself answers `401` with its challenge, as when a token
    /// expires. (With an upstream that needs no auth this changes nothing.)
    ExpireToken,
    /// Forward the request, and point the answer's `Location` (an upload
    /// session) at another origin, `http://HOST:PORT`, keeping its path
    /// and query: as a registry that hands uploads to a separate upload
    /// service does.
    MoveLocation {
        /// `host:port` of the other origin (usually a
        /// [`FaultProxy::start_foreign`]).
        to: String,
    },
    /// Forward the request, and set header `name` of the answer to
    /// `value` (replacing any): a `Link` that misleads, say.
    SetHeader {
        /// The header's name.
        name: String,
        /// Its value.
        value: String,
    },
    /// Forward the request without its header `name`: a `Range` that a
    /// registry ignores (answering 200 with the whole body), say.
    DropHeader {
        /// The header's name (any case).
        name: String,
    },
    /// Forward the request, and flip every bit of the byte in the middle
    /// of the answer's body: a blob served damaged, as from a bad disk or
    /// a cache in between.
    FlipByte,
    /// Answer `307 Temporary Redirect` to the same path and query on
    /// another origin, `http://HOST:PORT`, as a registry that serves blobs
    /// from object storage does. The request never reaches the upstream.
    Redirect {
        /// `host:port` of the other origin.
        to: String,
    },
    /// Behave as a registry that honours the distribution spec's
    /// single-request upload, which docker-registry 2.8 does not (it opens
    /// a session, `202`, whatever the `POST` carries). A `POST
    /// .../blobs/uploads/?digest=D` with a body (framed by
    /// `Content-Length`) is done on the client's behalf as the upstream
    /// takes it: a `POST` that opens a session, then a `PUT` of the body to
    /// the session's `Location` with `digest=D`. The client gets `201
    /// Created` with the upstream's `Location` and `Docker-Content-Digest`,
    /// or the upstream's answer to whichever step failed (a digest that
    /// does not match: `400`). Those two requests are the proxy's own and
    /// are not logged. Any other request (no body, no `digest`, a mount)
    /// passes through unchanged.
    TakeSingleRequestUpload,
}

/// Which requests a rule applies to. Every condition set must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    method: Option<String>,
    path_contains: Option<String>,
    query_contains: Option<String>,
}

impl Match {
    /// Every request.
    pub fn any() -> Match {
        Match::default()
    }

    /// Requests whose path (query excluded) contains `needle`.
    pub fn path_contains(needle: &str) -> Match {
        Match {
            path_contains: Some(needle.to_string()),
            ..Match::default()
        }
    }

    /// Also require the query (after `?`) to contain `needle`: the
    /// single-request upload's `digest=`, a mount's `mount=`.
    pub fn query_contains(mut self, needle: &str) -> Match {
        self.query_contains = Some(needle.to_string());
        self
    }

    /// Also require this method (`GET`, `PUT`, ...).
    pub fn method(mut self, method: &str) -> Match {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Whether a request with `method` and `path` matches.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        self.method.iter().all(|m| m == method)
            && self.path_contains.iter().all(|n| path.contains(n.as_str()))
            && self
                .query_contains
                .iter()
                .all(|n| query.contains(n.as_str()))
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The method.
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The fault applied to it, if any.
    pub fault: Option<Fault>,
    /// Whether it carried an `Authorization` header.
    pub authorization: bool,
}

struct Rule {
    fault: Fault,
    matcher: Match,
    remaining: usize,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    log: Vec<Seen>,
    budget: Option<Budget>,
}

/// Response bytes [`FaultProxy::stall_after`] still lets through.
struct Budget {
    matcher: Match,
    remaining: u64,
    /// Bodies held so far.
    stalled: usize,
}

struct Shared {
    upstream: SocketAddr,
    /// Set for a foreign origin: how it authorizes itself upstream.
    own_auth: Option<OwnAuth>,
    state: Mutex<State>,
    stop: AtomicBool,
    sockets: Mutex<Vec<(u64, TcpStream)>>,
    next_socket: AtomicU64,
    /// Set by [`FaultProxy::limit_rate`].
    pace: Mutex<Option<Pace>>,
}

/// A link's speed, shared by every connection: each write of a response
/// body takes the next free slot of the link's time.
struct Pace {
    bytes_per_second: u64,
    /// When the link is free again.
    free_at: Instant,
}

impl Pace {
    /// Slack: a sleep that overran is made up by the next writes, up to
    /// this much of the link's time, so the rate holds on average.
    const CREDIT: Duration = Duration::from_millis(5);

    /// Take the link's next slot for `bytes`, asked for at `now`; when
    /// the slot ends (the caller waits until then).
    fn reserve(&mut self, bytes: u64, now: Instant) -> Instant {
        let credit = now.checked_sub(Pace::CREDIT).unwrap_or(now);
        let start = self.free_at.max(credit);
        self.free_at = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_second as f64);
        self.free_at
    }
}

/// A write half whose bytes pass at the proxy's rate ([`Shared::pace`]).
struct Paced<'a> {
    shared: &'a Shared,
    out: &'a mut TcpStream,
}

impl Write for Paced<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.shared.pace(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A fault-injecting reverse proxy in front of a plain-HTTP upstream; see
/// the [module docs](self). Stopped on `Drop`.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    workers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl FaultProxy {
    /// A proxy in front of `registry` (which must speak plain HTTP).
    pub fn start(registry: &RegistryProcess) -> FaultProxy {
        assert!(
            registry.options().tls.is_none(),
            "FaultProxy forwards plain HTTP only"
        );
        let upstream = ([127, 0, 0, 1], registry.port()).into();
        FaultProxy::start_to(upstream)
    }

    /// A proxy in front of any plain-HTTP server at `upstream`.
    pub fn start_to(upstream: SocketAddr) -> FaultProxy {
        FaultProxy::launch(upstream, None)
    }

    /// Another origin in front of `registry` (another port, so another
    /// origin to a client): what an object store or an upload service is to
    /// a registry that sends clients there with a redirect or an upload
    /// `Location`. Such a service holds its own access (a signed URL, in
    /// real life), so this one drops the client's `Authorization` header,
    /// noting in the log that it came ([`Seen::authorization`]), and sends
    /// the registry's own credentials instead (basic or bearer, as the
    /// registry wants), so the request succeeds without the client's.
    pub fn start_foreign(registry: &RegistryProcess) -> FaultProxy {
        assert!(
            registry.options().tls.is_none(),
            "FaultProxy forwards plain HTTP only"
        );
        let options = registry.options();
        let own = if let Some(token) = &options.token {
            OwnAuth::Bearer(crate::bearer::BearerTokens::new(token.clone()))
        } else if let Some((user, password)) = &options.htpasswd {
            use base64::Engine as _;
            let pair =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            OwnAuth::Basic(format!("Basic {pair}"))
        } else {
            OwnAuth::None
        };
        FaultProxy::launch(([127, 0, 0, 1], registry.port()).into(), Some(own))
    }

    fn launch(upstream: SocketAddr, own_auth: Option<OwnAuth>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy to 127.0.0.1:0");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            upstream,
            own_auth,
            state: Mutex::new(State::default()),
            stop: AtomicBool::new(false),
            sockets: Mutex::new(Vec::new()),
            next_socket: AtomicU64::new(0),
            pace: Mutex::new(None),
        });
        let workers: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = {
            let shared = shared.clone();
            let workers = workers.clone();
            std::thread::Builder::new()
                .name("fault-proxy-accept".into())
                .spawn(move || accept_loop(listener, shared, workers))
                .expect("spawning the proxy thread")
        };
        FaultProxy {
            addr,
            shared,
            accept: Some(accept),
            workers,
        }
    }

    /// `127.0.0.1:PORT`, the registry part of references through the proxy.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Apply `fault` to the next `times` requests that `matcher` fits
    /// ([`FOREVER`] for all of them). Rules are tried in the order added.
    pub fn inject(&self, fault: Fault, matcher: Match, times: usize) {
        self.state().rules.push(Rule {
            fault,
            matcher,
            remaining: times,
        });
    }

    /// Remove every rule and any [`stall_after`](Self::stall_after)
    /// budget (bodies held by it are then cut and their connections
    /// closed); requests pass untouched from now on.
    pub fn clear(&self) {
        let mut state = self.state();
        state.rules.clear();
        state.budget = None;
    }

    /// Let the response bodies of requests that `matcher` fits through up
    /// to `bytes` in all (in arrival order, whatever the connection), then
    /// hold every further byte of them: the connection stays open and
    /// silent, as when a network dies mid-transfer, until the proxy is
    /// dropped or [`clear`](Self::clear)ed. Only bodies framed by
    /// `Content-Length` (blobs) count. Replaces an earlier budget.
    pub fn stall_after(&self, matcher: Match, bytes: u64) {
        self.state().budget = Some(Budget {
            matcher,
            remaining: bytes,
            stalled: 0,
        });
    }

    /// Pass response bodies, all connections together, at no more than
    /// `bytes_per_second` (`None`: as fast as they come), as a link of that
    /// speed between the client and the registry would. A body a fault
    /// cuts, flips or holds is not paced.
    pub fn limit_rate(&self, bytes_per_second: Option<u64>) {
        *self.shared.pace.lock().expect("proxy pace poisoned") = bytes_per_second
            .filter(|&b| b > 0)
            .map(|bytes_per_second| Pace {
                bytes_per_second,
                free_at: Instant::now(),
            });
    }

    /// How many bodies [`stall_after`](Self::stall_after) holds or held.
    pub fn stalled(&self) -> usize {
        self.state().budget.as_ref().map_or(0, |b| b.stalled)
    }

    /// Forget the request log.
    pub fn reset_log(&self) {
        self.state().log.clear();
    }

    /// The requests seen since the last call (or the start), in arrival
    /// order, and forget them: for a caller that writes the log out as it
    /// goes (`ferry-fixtures proxy`).
    pub fn take_log(&self) -> Vec<Seen> {
        std::mem::take(&mut self.state().log)
    }

    /// Every request seen so far, in arrival order.
    pub fn log(&self) -> Vec<Seen> {
        self.state().log.clone()
    }

    /// How many requests `matcher` fits so far (faulted ones included).
    pub fn count(&self, matcher: &Match) -> usize {
        self.state()
            .log
            .iter()
            .filter(|s| matcher.matches(&s.method, &s.path))
            .count()
    }

    /// How many requests got a fault so far.
    pub fn faults_applied(&self) -> usize {
        self.state()
            .log
            .iter()
            .filter(|s| s.fault.is_some())
            .count()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().expect("proxy state poisoned")
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop, then every worker blocked on a socket.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for (_, socket) in self.shared.sockets.lock().expect("sockets").drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
        let workers: Vec<_> = self.workers.lock().expect("workers").drain(..).collect();
        for worker in workers {
            let _ = worker.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    workers: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let shared = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("fault-proxy-conn".into())
            .spawn(move || {
                let id = shared.track(&stream);
                let _ = serve_connection(&shared, stream);
                shared.untrack(id);
            });
        if let Ok(handle) = spawned {
            let mut workers = workers.lock().expect("workers");
            workers.retain(|h| !h.is_finished());
            workers.push(handle);
        }
    }
}

impl Shared {
    fn track(&self, stream: &TcpStream) -> Option<u64> {
        let clone = stream.try_clone().ok()?;
        let id = self.next_socket.fetch_add(1, Ordering::SeqCst);
        self.sockets.lock().expect("sockets").push((id, clone));
        if self.stop.load(Ordering::SeqCst) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        Some(id)
    }

    fn untrack(&self, id: Option<u64>) {
        if let Some(id) = id {
            self.sockets
                .lock()
                .expect("sockets")
                .retain(|(i, _)| *i != id);
        }
    }

    /// Log the request and pick the fault for it, using up one of its uses.
    fn decide(&self, method: &str, path: &str, authorization: bool) -> Option<Fault> {
        let mut state = self.state.lock().expect("proxy state poisoned");
        let fault = state
            .rules
            .iter_mut()
            .find(|r| r.remaining > 0 && r.matcher.matches(method, path))
            .map(|r| {
                if r.remaining != FOREVER {
                    r.remaining -= 1;
                }
                r.fault.clone()
            });
        state.log.push(Seen {
            method: method.to_string(),
            path: path.to_string(),
            fault: fault.clone(),
            authorization,
        });
        fault
    }

    /// Whether a `stall_after` budget applies to this request.
    fn budgeted(&self, method: &str, path: &str) -> bool {
        let state = self.state.lock().expect("proxy state poisoned");
        state
            .budget
            .as_ref()
            .is_some_and(|b| b.matcher.matches(method, path))
    }

    /// Take up to `want` bytes from the budget; `None` when it is gone.
    fn take_budget(&self, want: u64) -> Option<u64> {
        let mut state = self.state.lock().expect("proxy state poisoned");
        let budget = state.budget.as_mut()?;
        let got = want.min(budget.remaining);
        budget.remaining -= got;
        if got < want {
            budget.stalled += 1;
        }
        Some(got)
    }

    /// Hold a connection until the proxy stops or its budget is cleared.
    fn hold(&self) {
        loop {
            let cleared = self
                .state
                .lock()
                .expect("proxy state poisoned")
                .budget
                .is_none();
            if cleared || self.stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `bytes` were sent: wait until the link has carried them (see
    /// [`Pace`]).
    fn pace(&self, bytes: u64) {
        let until = {
            let mut pace = self.pace.lock().expect("proxy pace poisoned");
            let Some(pace) = pace.as_mut() else { return };
            pace.reserve(bytes, Instant::now())
        };
        let now = Instant::now();
        if until > now {
            self.sleep(until - now);
        }
    }

    /// Sleep up to `d`, waking early when the proxy stops.
    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until && !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
        }
    }
}

/// Serve one client connection: requests one after another (keep-alive).
fn serve_connection(shared: &Shared, client: TcpStream) -> io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client;
    loop {
        let Some(request) = read_head(&mut reader)? else {
            return Ok(());
        };
        let Some((method, path)) = request.request_line() else {
            return Ok(());
        };
        let client_close = request.wants_close();
        let mut request = request;
        let fault = shared.decide(&method, &path, request.get("authorization").is_some());
        if let Some(own) = &shared.own_auth {
            request.remove("authorization");
            if let Some(value) = own.header_for(&path) {
                request.push("Authorization", &value);
            }
        }
        let keep_alive = match fault {
            Some(Fault::Status { code, retry_after }) => {
                copy_body(&mut reader, &mut io::sink(), request.request_framing())?;
                write_status(&mut writer, code, retry_after, client_close)?;
                !client_close
            }
            Some(Fault::Stall(d)) => {
                copy_body(&mut reader, &mut io::sink(), request.request_framing())?;
                shared.sleep(d);
                false
            }
            Some(Fault::ExpireToken) => {
                request.remove("authorization");
                forward(shared, &mut reader, &mut writer, &request, &method, None)?
            }
            Some(Fault::DropHeader { name }) => {
                request.remove(&name.to_ascii_lowercase());
                forward(shared, &mut reader, &mut writer, &request, &method, None)?
            }
            Some(Fault::ResetMidBody) => {
                let how = Forwarding::cut(None);
                forward(shared, &mut reader, &mut writer, &request, &method, how)?
            }
            Some(Fault::StallMidBody(d)) => {
                let how = Forwarding::cut(Some(d));
                forward(shared, &mut reader, &mut writer, &request, &method, how)?
            }
            Some(Fault::MoveLocation { to }) => {
                let how = Forwarding::move_location(to);
                forward(shared, &mut reader, &mut writer, &request, &method, how)?
            }
            Some(Fault::FlipByte) => {
                let how = Some(Forwarding {
                    flip: true,
                    ..Forwarding::default()
                });
                forward(shared, &mut reader, &mut writer, &request, &method, how)?
            }
            Some(Fault::SetHeader { name, value }) => {
                let how = Some(Forwarding {
                    set_header: Some((name, value)),
                    ..Forwarding::default()
                });
                forward(shared, &mut reader, &mut writer, &request, &method, how)?
            }
            Some(Fault::Redirect { to }) => {
                copy_body(&mut reader, &mut io::sink(), request.request_framing())?;
                write_redirect(&mut writer, &format!("http://{to}{path}"), client_close)?;
                !client_close
            }
            Some(Fault::TakeSingleRequestUpload) => match single_request_digest(&request, &path) {
                Some((digest, len)) => {
                    let mut body = Vec::new();
                    copy_body(&mut reader, &mut body, BodyFraming::Length(len))?;
                    let answer = single_request_upload(shared, &request, &path, &digest, &body)?;
                    answer.send(&mut writer, client_close)?
                }
                None => forward(shared, &mut reader, &mut writer, &request, &method, None)?,
            },
            None => forward(shared, &mut reader, &mut writer, &request, &method, None)?,
        };
        if !keep_alive {
            let _ = writer.flush();
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

fn write_status(
    out: &mut TcpStream,
    code: u16,
    retry_after: Option<u64>,
    close: bool,
) -> io::Result<()> {
    let body = format!(
        r#"{{"errors":[{{"code":"UNAVAILABLE","message":"injected fault: status {code}"}}]}}"#
    );
    let mut head = format!(
        "HTTP/1.1 {code} Injected Fault\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(secs) = retry_after {
        head.push_str(&format!("Retry-After: {secs}\r\n"));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.write_all(body.as_bytes())?;
    out.flush()
}

fn write_redirect(out: &mut TcpStream, location: &str, close: bool) -> io::Result<()> {
    let mut head =
        format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\n");
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.flush()
}

/// How a foreign origin authorizes itself to the registry behind it.
enum OwnAuth {
    None,
    Basic(String),
    Bearer(crate::bearer::BearerTokens),
}

impl OwnAuth {
    fn header_for(&self, path: &str) -> Option<String> {
        match self {
            OwnAuth::None => None,
            OwnAuth::Basic(value) => Some(value.clone()),
            OwnAuth::Bearer(tokens) => Some(tokens.header_for(path)),
        }
    }
}

/// What [`forward`] changes on the way.
#[derive(Default)]
struct Forwarding {
    /// `Some(stall)`: send only half the body (of an upload: of the
    /// request), then stall for `stall` (if any) and close.
    cut: Option<Option<Duration>>,
    /// Point the answer's `Location` at this `host:port`.
    move_location: Option<String>,
    /// Set this header of the answer.
    set_header: Option<(String, String)>,
    /// Flip the byte in the middle of the answer's body.
    flip: bool,
}

impl Forwarding {
    fn cut(stall: Option<Duration>) -> Option<Forwarding> {
        Some(Forwarding {
            cut: Some(stall),
            ..Forwarding::default()
        })
    }

    fn move_location(to: String) -> Option<Forwarding> {
        Some(Forwarding {
            move_location: Some(to),
            ..Forwarding::default()
        })
    }
}

/// `location` (absolute or a path) on the origin `http://to`.
fn relocate(location: &str, to: &str) -> String {
    format!("http://{to}{}", path_of(location))
}

/// The path and query of `location` (absolute or a path).
fn path_of(location: &str) -> &str {
    match location.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => location,
    }
}

/// Forward one request and its answer, changed as `how` says (`None`:
/// untouched). Returns whether the client connection stays open.
fn forward(
    shared: &Shared,
    client_in: &mut BufReader<TcpStream>,
    client_out: &mut TcpStream,
    request: &Head,
    method: &str,
    how: Option<Forwarding>,
) -> io::Result<bool> {
    let how = how.unwrap_or_default();
    let cut = how.cut;
    let upstream = TcpStream::connect(shared.upstream)?;
    let id = shared.track(&upstream);
    let result = (|| {
        let mut up_out = upstream.try_clone()?;
        // Bodies are copied a buffer at a time: 64 KiB makes a paced link
        // (`limit_rate`) wait once per 64 KiB rather than per 8.
        let mut up_in = BufReader::with_capacity(64 << 10, upstream.try_clone()?);
        let mut head = request.clone();
        head.remove("connection");
        head.remove("keep-alive");
        head.push("Connection", "close");
        up_out.write_all(&head.to_bytes())?;
        if let (Some(None), BodyFraming::Length(n)) = (cut, request.request_framing()) {
            // An upload: cut it in the middle, as a dropped connection would.
            io::copy(&mut (&mut *client_in).take(n / 2), &mut up_out)?;
            up_out.flush()?;
            return Ok(false);
        }
        copy_body(client_in, &mut up_out, request.request_framing())?;
        up_out.flush()?;
        let Some(mut response) = read_head(&mut up_in)? else {
            return Ok(false);
        };
        let framing = response.response_framing(method);
        if let Some(to) = &how.move_location {
            if let Some(location) = response.get("location").map(|l| relocate(l, to)) {
                response.remove("location");
                response.push("Location", &location);
            }
        }
        if let Some((name, value)) = &how.set_header {
            response.remove(name);
            response.push(name, value);
        }
        response.remove("connection");
        response.remove("keep-alive");
        let keep_alive = !request.wants_close() && framing != BodyFraming::UntilClose;
        if !keep_alive {
            response.push("Connection", "close");
        }
        client_out.write_all(&response.to_bytes())?;
        let path = request.request_line().map(|(_, p)| p).unwrap_or_default();
        if let (None, BodyFraming::Length(n), true) = (cut, framing, how.flip) {
            io::copy(&mut (&mut up_in).take(n / 2), client_out)?;
            let mut byte = [0u8; 1];
            if n > 0 {
                up_in.read_exact(&mut byte)?;
                client_out.write_all(&[!byte[0]])?;
            }
            io::copy(
                &mut (&mut up_in).take(n.saturating_sub(n / 2 + 1)),
                client_out,
            )?;
            client_out.flush()?;
            return Ok(keep_alive);
        }
        if let (None, BodyFraming::Length(n)) = (cut, framing) {
            if shared.budgeted(method, &path) {
                return copy_budgeted(shared, &mut up_in, client_out, n).map(|()| keep_alive);
            }
        }
        match cut {
            None => {
                let mut paced = Paced {
                    shared,
                    out: client_out,
                };
                copy_body(&mut up_in, &mut paced, framing)?;
                client_out.flush()?;
                Ok(keep_alive)
            }
            Some(stall) => {
                let half = match framing {
                    BodyFraming::Length(n) => n / 2,
                    _ => 0,
                };
                io::copy(&mut (&mut up_in).take(half), client_out)?;
                client_out.flush()?;
                if let Some(d) = stall {
                    shared.sleep(d);
                }
                Ok(false)
            }
        }
    })();
    shared.untrack(id);
    let _ = upstream.shutdown(Shutdown::Both);
    result
}

/// For [`Fault::TakeSingleRequestUpload`]: the digest and body length of
/// a single-request upload (`POST` to an upload path, `digest=` in the
/// query, a body framed by `Content-Length`); `None` for anything else.
fn single_request_digest(request: &Head, path: &str) -> Option<(String, u64)> {
    let (upload, query) = path.split_once('?')?;
    let method = request.request_line()?.0;
    if method != "POST" || !upload.ends_with("/blobs/uploads/") {
        return None;
    }
    let digest = query.split('&').find_map(|kv| kv.strip_prefix("digest="))?;
    match request.request_framing() {
        BodyFraming::Length(n) => Some((digest.to_string(), n)),
        _ => None,
    }
}

/// A whole response, held in memory, to relay to the client.
struct Answer {
    head: Head,
    body: Vec<u8>,
    framing: BodyFraming,
}

impl Answer {
    /// Send it to the client; whether the connection stays open.
    fn send(mut self, out: &mut TcpStream, client_close: bool) -> io::Result<bool> {
        self.head.remove("connection");
        self.head.remove("keep-alive");
        let keep_alive = !client_close && self.framing != BodyFraming::UntilClose;
        if !keep_alive {
            self.head.push("Connection", "close");
        }
        out.write_all(&self.head.to_bytes())?;
        out.write_all(&self.body)?;
        out.flush()?;
        Ok(keep_alive)
    }
}

/// One exchange of the proxy's own with the upstream, on a fresh
/// connection: `method target`, with the client's `request` fields (its
/// `Host` and `Authorization`) and `body` (a blob's, if any).
fn exchange(
    shared: &Shared,
    request: &Head,
    method: &str,
    target: &str,
    body: &[u8],
) -> io::Result<Answer> {
    let mut head = request.clone();
    head.start = format!("{method} {target} HTTP/1.1");
    for name in [
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-type",
        "expect",
    ] {
        head.remove(name);
    }
    head.push("Content-Length", &body.len().to_string());
    if !body.is_empty() {
        head.push("Content-Type", "application/octet-stream");
    }
    head.push("Connection", "close");
    let upstream = TcpStream::connect(shared.upstream)?;
    let id = shared.track(&upstream);
    let result = (|| {
        let mut up_out = upstream.try_clone()?;
        up_out.write_all(&head.to_bytes())?;
        up_out.write_all(body)?;
        up_out.flush()?;
        let mut up_in = BufReader::new(upstream.try_clone()?);
        let head = read_head(&mut up_in)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no answer upstream"))?;
        let framing = head.response_framing(method);
        let mut body = Vec::new();
        copy_body(&mut up_in, &mut body, framing)?;
        Ok(Answer {
            head,
            body,
            framing,
        })
    })();
    shared.untrack(id);
    let _ = upstream.shutdown(Shutdown::Both);
    result
}

/// Do the single-request upload of `body` (see
/// [`Fault::TakeSingleRequestUpload`]) as the upstream takes it: open a
/// session, `PUT` the body into it. The answer for the client.
fn single_request_upload(
    shared: &Shared,
    request: &Head,
    path: &str,
    digest: &str,
    body: &[u8],
) -> io::Result<Answer> {
    let upload = path.split_once('?').map_or(path, |(p, _)| p);
    let opened = exchange(shared, request, "POST", upload, &[])?;
    let Some(location) = opened
        .head
        .get("location")
        .filter(|_| opened.head.status() == 202)
    else {
        return Ok(opened);
    };
    let session = path_of(location);
    let separator = if session.contains('?') { '&' } else { '?' };
    let target = format!("{session}{separator}digest={digest}");
    let stored = exchange(shared, request, "PUT", &target, body)?;
    if stored.head.status() != 201 {
        return Ok(stored);
    }
    let mut head = Head {
        start: "HTTP/1.1 201 Created".to_string(),
        fields: vec![("Content-Length".to_string(), "0".to_string())],
    };
    for name in ["Location", "Docker-Content-Digest"] {
        if let Some(value) = stored.head.get(name) {
            head.push(name, value);
        }
    }
    Ok(Answer {
        head,
        body: Vec::new(),
        framing: BodyFraming::Empty,
    })
}

/// Copy a body of `len` bytes while the budget lasts; when it runs out,
/// send what it allows, then hold the connection (see
/// [`FaultProxy::stall_after`]) and fail so it closes.
fn copy_budgeted(
    shared: &Shared,
    from: &mut impl Read,
    to: &mut TcpStream,
    len: u64,
) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = from.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        let allowed = match shared.take_budget(n as u64) {
            Some(a) => a as usize,
            // Cleared meanwhile: pass the rest untouched.
            None => n,
        };
        to.write_all(&buf[..allowed])?;
        if allowed < n {
            to.flush()?;
            shared.hold();
            return Err(io::Error::other("held by stall_after"));
        }
        left -= n as u64;
    }
    to.flush()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{relocate, Pace};

    #[test]
    fn the_link_is_shared_and_idle_time_is_not_saved_up() {
        let t0 = Instant::now();
        let mut pace = Pace {
            bytes_per_second: 1_000_000,
            free_at: t0,
        };
        let ms = Duration::from_millis;
        // Two writers at once: the second waits for the first's slot.
        assert_eq!(pace.reserve(100_000, t0), t0 + ms(100));
        assert_eq!(pace.reserve(100_000, t0), t0 + ms(200));
        // A sleep that overran by a little is made up...
        assert_eq!(pace.reserve(100_000, t0 + ms(203)), t0 + ms(300));
        // ...but a link left idle does not bank a burst.
        let later = t0 + ms(1_000);
        assert_eq!(pace.reserve(100_000, later), later - Pace::CREDIT + ms(100));
    }

    #[test]
    fn locations_move_to_the_other_origin() {
        assert_eq!(
            relocate(
                "http://127.0.0.1:5000/v2/a/blobs/uploads/u?_state=x",
                "127.0.0.1:6000"
            ),
            "http://127.0.0.1:6000/v2/a/blobs/uploads/u?_state=x"
        );
        assert_eq!(
            relocate("/v2/a/blobs/uploads/u", "h:1"),
            "http://h:1/v2/a/blobs/uploads/u"
        );
        assert_eq!(relocate("https://h", "o:2"), "http://o:2/");
    }
}
