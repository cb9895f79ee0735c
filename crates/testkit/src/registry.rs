//! A real `docker-registry` (CNCF distribution) process on a loopback port.

use std::fs::{self, File};
use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry_oci::media_type;
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::StatusCode;
use tempfile::TempDir;

use crate::bearer::BearerTokens;
use crate::fixtures::{FixtureOptions, FixtureSet};
use crate::push::{test_client, Pusher};
use crate::token::TokenAuth;

/// Where the registry binary is looked for, unless `FERRY_REGISTRY_BIN` says
/// otherwise.
pub const DEFAULT_REGISTRY_BIN: &str = "/usr/bin/docker-registry";

const START_TIMEOUT: Duration = Duration::from_secs(10);
const PORT_ATTEMPTS: usize = 5;

/// How to run a [`RegistryProcess`]. `Default` is plain HTTP, no auth,
/// storage in the process's temporary directory.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Require HTTP basic auth with this user and password (htpasswd).
    pub htpasswd: Option<(String, String)>,
    /// Serve HTTPS with this certificate and key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Require bearer tokens from this token server (`auth: token`); the
    /// testkit's own helpers fetch tokens with its account.
    pub token: Option<TokenAuth>,
    /// Keep the storage in this directory instead of a temporary one (it is
    /// not deleted on drop).
    pub storage_dir: Option<PathBuf>,
    /// Refuse every write (distribution's `maintenance: readonly`): pulls
    /// work, pushes get `405 UNSUPPORTED`.
    pub read_only: bool,
}

/// A running `docker-registry` on `127.0.0.1:<free port>`, with its config,
/// log and (by default) storage in a temporary directory. The process is
/// killed and waited for on `Drop`.
///
/// All methods are blocking and panic on failure; call them from plain
/// `#[test]` functions, not from inside an async runtime.
#[derive(Debug)]
pub struct RegistryProcess {
    child: Option<Child>,
    port: u16,
    options: RegistryOptions,
    storage: PathBuf,
    client: Client,
    bearer: Option<BearerTokens>,
    // Dropped last: holds the config, the log and the default storage.
    dir: TempDir,
}

impl RegistryProcess {
    /// Start a plain-HTTP registry without auth.
    ///
    /// Panics if the registry binary is missing (install Debian's
    /// `docker-registry` package) or does not answer `GET /v2/` within 10 s.
    pub fn start() -> RegistryProcess {
        RegistryProcess::start_with(RegistryOptions::default())
    }

    /// Start a registry that takes `user` and `password` only (HTTP basic
    /// auth).
    pub fn start_with_basic_auth(user: &str, password: &str) -> RegistryProcess {
        RegistryProcess::start_with(RegistryOptions {
            htpasswd: Some((user.into(), password.into())),
            ..RegistryOptions::default()
        })
    }

    /// Start a registry configured by `options`.
    pub fn start_with(options: RegistryOptions) -> RegistryProcess {
        let bin = registry_bin();
        let dir = tempfile::Builder::new()
            .prefix("ferry-registry-")
            .tempdir()
            .expect("creating the registry's temporary directory");
        let storage = options
            .storage_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        fs::create_dir_all(&storage).expect("creating the registry storage directory");
        if let Some((user, password)) = &options.htpasswd {
            let hash = bcrypt::hash(password, 4).expect("bcrypt hashing a test password");
            fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n"))
                .expect("writing htpasswd");
        }

        let client = test_client();
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let log_path = dir.path().join("registry.log");
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let config = dir.path().join("config.yml");
            fs::write(&config, render_config(&options, &storage, dir.path(), port))
                .expect("writing the registry config");
            let mut child = spawn(&bin, &config, &log_path);
            let url = format!("{scheme}://127.0.0.1:{port}/v2/");
            match wait_ready(&mut child, &client, port, &url) {
                Ok(()) => {
                    return RegistryProcess {
                        child: Some(child),
                        port,
                        bearer: options.token.clone().map(BearerTokens::new),
                        options,
                        storage,
                        client,
                        dir,
                    }
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = fs::read_to_string(&log_path).unwrap_or_default();
                    if !log.contains("address already in use") {
                        panic!(
                            "docker-registry did not come up on 127.0.0.1:{port} ({why}); \
                             its log:\n{log}"
                        );
                    }
                    last_log = log;
                }
            }
        }
        panic!(
            "docker-registry found no free port in {PORT_ATTEMPTS} attempts; last log:\n{last_log}"
        )
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port the registry listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` (or `https://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.host())
    }

    /// Kill the registry now (and wait for it). Idempotent. The storage stays
    /// until the `RegistryProcess` is dropped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The filesystem storage root (`rootdirectory`).
    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }

    /// The registry's combined stdout and stderr so far.
    pub fn log(&self) -> String {
        let mut log = String::new();
        if let Ok(mut file) = File::open(self.dir.path().join("registry.log")) {
            let _ = file.read_to_string(&mut log);
        }
        log
    }

    /// The options it was started with.
    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    /// A [`Pusher`] for this registry, with its credentials if any.
    pub fn pusher(&self) -> Pusher {
        let pusher = Pusher::new(&self.url());
        if let Some(token) = &self.options.token {
            return pusher.with_token_auth(token.clone());
        }
        match &self.options.htpasswd {
            Some((user, password)) => pusher.with_basic_auth(user, password),
            None => pusher,
        }
    }

    /// Push the standard fixture set into this registry.
    pub fn push_fixtures(&self) -> FixtureSet {
        self.push_fixtures_with(FixtureOptions::default())
    }

    /// Push the fixture set, with options, into this registry.
    pub fn push_fixtures_with(&self, options: FixtureOptions) -> FixtureSet {
        let set = FixtureSet::generate(&self.host(), &options);
        set.push(&self.pusher());
        set
    }

    /// Replace the current process with this registry: stop it, then `exec`
    /// the same binary with the same config and port, so that killing the
    /// process id kills the registry (used by `ferry-fixtures serve`). The
    /// temporary directory (config, log, default storage) is left on disk.
    /// Returns only if `exec` failed.
    pub fn exec(mut self) -> std::io::Error {
        use std::os::unix::process::CommandExt as _;
        self.stop();
        let mut command = registry_command(&registry_bin(), &self.dir.path().join("config.yml"));
        command.exec()
    }

    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        let builder = self.client.request(method, format!("{}{path}", self.url()));
        if let Some(bearer) = &self.bearer {
            return builder.header("Authorization", bearer.header_for(path));
        }
        match &self.options.htpasswd {
            Some((user, password)) => builder.basic_auth(user, Some(password)),
            None => builder,
        }
    }

    /// The `Docker-Content-Digest` of `repo:reference` (HEAD with every
    /// manifest media type accepted), or `None` if unknown.
    pub fn manifest_digest(&self, repo: &str, reference: &str) -> Option<String> {
        let response = self
            .request(
                reqwest::Method::HEAD,
                &format!("/v2/{repo}/manifests/{reference}"),
            )
            .header("Accept", accept_all())
            .send()
            .unwrap_or_else(|e| panic!("HEAD manifest {repo}:{reference}: {e}"));
        match response.status() {
            StatusCode::OK => Some(
                response
                    .headers()
                    .get("Docker-Content-Digest")
                    .expect("Docker-Content-Digest on a manifest HEAD")
                    .to_str()
                    .expect("ASCII digest")
                    .to_string(),
            ),
            StatusCode::NOT_FOUND => None,
            other => panic!("HEAD manifest {repo}:{reference}: unexpected status {other}"),
        }
    }

    /// The media type (`Content-Type`) and exact bytes of `repo:reference`,
    /// or `None` if unknown.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Option<(String, Vec<u8>)> {
        let response = self
            .request(
                reqwest::Method::GET,
                &format!("/v2/{repo}/manifests/{reference}"),
            )
            .header("Accept", accept_all())
            .send()
            .unwrap_or_else(|e| panic!("GET manifest {repo}:{reference}: {e}"));
        match response.status() {
            StatusCode::OK => {
                let media_type = response
                    .headers()
                    .get("Content-Type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let bytes = response.bytes().expect("reading a manifest body").to_vec();
                Some((media_type, bytes))
            }
            StatusCode::NOT_FOUND => None,
            other => panic!("GET manifest {repo}:{reference}: unexpected status {other}"),
        }
    }

    /// Whether `repo` has blob `digest` (HEAD).
    pub fn blob_exists(&self, repo: &str, digest: &str) -> bool {
        let response = self
            .request(reqwest::Method::HEAD, &format!("/v2/{repo}/blobs/{digest}"))
            .send()
            .unwrap_or_else(|e| panic!("HEAD blob {repo}@{digest}: {e}"));
        match response.status() {
            StatusCode::OK => true,
            StatusCode::NOT_FOUND => false,
            other => panic!("HEAD blob {repo}@{digest}: unexpected status {other}"),
        }
    }

    /// The bytes of blob `digest` in `repo`, or `None` if unknown.
    pub fn get_blob(&self, repo: &str, digest: &str) -> Option<Vec<u8>> {
        let response = self
            .request(reqwest::Method::GET, &format!("/v2/{repo}/blobs/{digest}"))
            .send()
            .unwrap_or_else(|e| panic!("GET blob {repo}@{digest}: {e}"));
        match response.status() {
            StatusCode::OK => Some(response.bytes().expect("reading a blob").to_vec()),
            StatusCode::NOT_FOUND => None,
            other => panic!("GET blob {repo}@{digest}: unexpected status {other}"),
        }
    }

    /// The tags of `repo`, sorted; empty if the repository is unknown.
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let mut tags = self.paged_list(&format!("/v2/{repo}/tags/list"), "tags");
        tags.sort();
        tags
    }

    /// Every repository in the registry, sorted.
    pub fn catalog(&self) -> Vec<String> {
        let mut repos = self.paged_list("/v2/_catalog", "repositories");
        repos.sort();
        repos
    }

    fn paged_list(&self, first: &str, field: &str) -> Vec<String> {
        let mut items = Vec::new();
        let mut next = Some(first.to_string());
        while let Some(path) = next.take() {
            let response = self
                .request(reqwest::Method::GET, &path)
                .send()
                .unwrap_or_else(|e| panic!("GET {path}: {e}"));
            match response.status() {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => return items,
                other => panic!("GET {path}: unexpected status {other}"),
            }
            // Link: </v2/_catalog?last=x&n=100>; rel="next"
            next = response
                .headers()
                .get("Link")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once('<'))
                .and_then(|(_, rest)| rest.split_once('>'))
                .map(|(target, _)| target.to_string());
            let body: serde_json::Value = response.json().expect("a JSON list body");
            if let Some(list) = body.get(field).and_then(|v| v.as_array()) {
                items.extend(list.iter().filter_map(|v| v.as_str()).map(String::from));
            }
        }
        items
    }
}

/// Wait until the registry answers `GET /v2/` (any status); on failure, why.
fn wait_ready(child: &mut Child, client: &Client, port: u16, url: &str) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status}"));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok()
            && client
                .get(url)
                .timeout(Duration::from_secs(2))
                .send()
                .is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("no answer to GET {url} in {START_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `Accept` header listing every manifest media type ferry knows.
pub(crate) fn accept_all() -> String {
    media_type::MANIFEST_ACCEPT.join(", ")
}

fn registry_bin() -> PathBuf {
    let bin = std::env::var_os("FERRY_REGISTRY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_REGISTRY_BIN));
    if !bin.is_file() {
        panic!(
            "{} not found: install Debian's docker-registry package \
             (apt-get install docker-registry), or set FERRY_REGISTRY_BIN",
            bin.display()
        );
    }
    bin
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

fn registry_command(bin: &Path, config: &Path) -> Command {
    let mut command = Command::new(bin);
    command.arg("serve").arg(config).stdin(Stdio::null());
    // The registry lets REGISTRY_* variables override its config file.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("REGISTRY_") {
            command.env_remove(key);
        }
    }
    command
}

fn spawn(bin: &Path, config: &Path, log_path: &Path) -> Child {
    let log = File::create(log_path).expect("creating the registry log");
    registry_command(bin, config)
        .stdout(log.try_clone().expect("cloning the log handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()))
}

/// The registry's `config.yml`. `dir` holds the htpasswd file if any.
pub(crate) fn render_config(
    options: &RegistryOptions,
    storage: &Path,
    dir: &Path,
    port: u16,
) -> String {
    let mut config = format!(
        "version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: {read_only}
http:
  addr: 127.0.0.1:{port}
  secret: ferry-testkit-not-a-secret
",
        storage = yaml_str(storage),
        read_only = options.read_only,
    );
    if let Some((cert, key)) = &options.tls {
        config.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            yaml_str(cert),
            yaml_str(key)
        ));
    }
    config.push_str("health:\n  storagedriver:\n    enabled: false\n");
    if options.htpasswd.is_some() {
        config.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: ferry-test\n    path: {}\n",
            yaml_str(&dir.join("htpasswd"))
        ));
    }
    if let Some(token) = &options.token {
        config.push_str(&format!(
            "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            serde_json::to_string(&token.realm).expect("a JSON string"),
            serde_json::to_string(&token.service).expect("a JSON string"),
            serde_json::to_string(&token.issuer).expect("a JSON string"),
            yaml_str(&token.rootcertbundle)
        ));
    }
    config
}

/// A path as a double-quoted YAML scalar.
fn yaml_str(path: &Path) -> String {
    serde_json::to_string(&path.to_string_lossy()).expect("a JSON string is a YAML string")
}
