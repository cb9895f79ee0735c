//! Credentials from docker's config file (`~/.docker/config.json`,
//! `$DOCKER_CONFIG`), including credential helpers.
//!
//! Secrets are kept in [`Credential`], whose `Debug` never shows them.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use base64::Engine as _;
use serde::Deserialize;

use crate::{Error, Result};

/// A username and secret for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The user name (`<token>` for identity tokens).
    pub username: String,
    /// The password, token or identity token. Never printed.
    pub secret: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

/// The credentials docker would use, loaded once.
#[derive(Default)]
pub struct DockerCredentials {
    config: ConfigFile,
    source: Option<PathBuf>,
}

impl DockerCredentials {
    /// Load `config.json` from `dir`, or from `$DOCKER_CONFIG`, or
    /// `~/.docker`. A missing file means anonymous access everywhere.
    pub fn load(dir: Option<&Path>) -> Result<DockerCredentials> {
        let dir = match dir {
            Some(d) => Some(d.to_path_buf()),
            None => std::env::var_os("DOCKER_CONFIG")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker"))),
        };
        let Some(dir) = dir else {
            return Ok(DockerCredentials::default());
        };
        let path = dir.join("config.json");
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(DockerCredentials::default())
            }
            Err(e) => {
                return Err(Error::Config {
                    what: format!("cannot read docker config {}", path.display()),
                    source: Some(Box::new(e)),
                })
            }
        };
        let config: ConfigFile = serde_json::from_slice(&text).map_err(|e| Error::Config {
            what: format!("docker config {} is not valid JSON", path.display()),
            source: Some(Box::new(e)),
        })?;
        Ok(DockerCredentials {
            config,
            source: Some(path),
        })
    }

    /// Where the credentials came from, for messages.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// The credential for `host` (as in a reference: `docker.io`,
    /// `registry.local:5000`), if docker has one.
    pub fn lookup(&self, host: &str) -> Result<Option<Credential>> {
        let keys = candidate_keys(host);
        if let Some(helper) = keys.iter().find_map(|k| self.config.cred_helpers.get(k)) {
            return run_helper(helper, &keys[0]);
        }
        for key in &keys {
            if let Some(entry) = self.config.auths.get(key) {
                if let Some(c) = decode_entry(entry, host)? {
                    return Ok(Some(c));
                }
            }
        }
        // Keys written with a scheme or path (`https://host/v1/`).
        for (key, entry) in &self.config.auths {
            if normalize_key(key) == host {
                if let Some(c) = decode_entry(entry, host)? {
                    return Ok(Some(c));
                }
            }
        }
        if let Some(store) = &self.config.creds_store {
            return run_helper(store, &keys[0]);
        }
        Ok(None)
    }
}

/// Credentials looked up once per host, for the async client.
///
/// A lookup may run a credential helper (`docker-credential-*`): a process
/// that can take seconds (a keychain prompt, a cloud CLI). It runs on
/// tokio's blocking pool, never on an async worker thread, and no lock is
/// held while it runs: the map's mutex is held only to find the host's
/// cell. Tasks asking for the same host meanwhile wait for that one
/// lookup (the cell's async initialization) rather than each starting a
/// helper. A failed lookup is not remembered; the next request tries again.
#[derive(Default)]
pub(crate) struct CredentialCache {
    docker: Arc<DockerCredentials>,
    hosts: Mutex<HashMap<String, Arc<OnceCell<Option<Credential>>>>>,
}

impl CredentialCache {
    pub(crate) fn new(docker: DockerCredentials) -> CredentialCache {
        CredentialCache {
            docker: Arc::new(docker),
            hosts: Mutex::default(),
        }
    }

    /// Where the credentials come from, for messages.
    pub(crate) fn source(&self) -> Option<&Path> {
        self.docker.source()
    }

    /// The credential for `host`, if docker has one.
    pub(crate) async fn get(&self, host: &str) -> Result<Option<Credential>> {
        let cell = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
            hosts.entry(host.to_string()).or_default().clone()
        };
        let found = cell
            .get_or_try_init(|| {
                let docker = self.docker.clone();
                let host = host.to_string();
                async move {
                    tokio::task::spawn_blocking(move || docker.lookup(&host))
                        .await
                        .map_err(|e| Error::Config {
                            what: "looking up docker credentials failed".to_string(),
                            source: Some(Box::new(e)),
                        })?
                }
            })
            .await?;
        Ok(found.clone())
    }
}

fn candidate_keys(host: &str) -> Vec<String> {
    if host == "docker.io" {
        vec![
            "https://index.docker.io/v1/".to_string(),
            "docker.io".to_string(),
            "index.docker.io".to_string(),
            "registry-1.docker.io".to_string(),
        ]
    } else {
        vec![host.to_string()]
    }
}

fn normalize_key(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let k = k.split('/').next().unwrap_or(k);
    match k {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        other => other.to_string(),
    }
}

fn decode_entry(entry: &AuthEntry, host: &str) -> Result<Option<Credential>> {
    if let Some(token) = entry.identitytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential {
            username: "<token>".to_string(),
            secret: token.clone(),
        }));
    }
    if let Some(auth) = entry.auth.as_ref().filter(|a| !a.is_empty()) {
        let bad = || Error::Config {
            what: format!("docker config entry for {host} has an unreadable \"auth\" field"),
            source: None,
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, pass) = decoded.split_once(':').ok_or_else(bad)?;
        return Ok(Some(Credential {
            username: user.to_string(),
            secret: pass.to_string(),
        }));
    }
    if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
        return Ok(Some(Credential {
            username: u.clone(),
            secret: p.clone(),
        }));
    }
    Ok(None)
}

fn run_helper(helper: &str, server: &str) -> Result<Option<Credential>> {
    let program = format!("docker-credential-{helper}");
    let fail = |what: String, source: Option<Box<dyn std::error::Error + Send + Sync>>| {
        Error::Config { what, source }
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(
                format!("cannot run credential helper {program} named in the docker config"),
                Some(Box::new(e)),
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| {
        fail(
            format!("credential helper {program} failed"),
            Some(Box::new(e)),
        )
    })?;
    if !out.status.success() {
        // Helpers answer "credentials not found" with a non-zero exit.
        let msg = String::from_utf8_lossy(&out.stdout);
        if msg.contains("not found") || String::from_utf8_lossy(&out.stderr).contains("not found") {
            return Ok(None);
        }
        return Err(fail(
            format!("credential helper {program} exited with {}", out.status),
            None,
        ));
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout).map_err(|e| {
        fail(
            format!("credential helper {program} gave an unreadable answer"),
            Some(Box::new(e)),
        )
    })?;
    Ok(Some(Credential {
        username: answer.username,
        secret: answer.secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_config(dir: &Path, json: &str) {
        std::fs::write(dir.join("config.json"), json).unwrap();
    }

    #[test]
    fn reads_auth_field_and_hides_secret() {
        let dir = tempfile::tempdir().unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        write_config(
            dir.path(),
            &format!(
                r#"{{"auths":{{"reg.example:5000":{{"auth":"{auth}"}},"https://index.docker.io/v1/":{{"auth":"{auth}"}}}}}}"#
            ),
        );
        let creds = DockerCredentials::load(Some(dir.path())).unwrap();
        let c = creds.lookup("reg.example:5000").unwrap().unwrap();
        assert_eq!(c.username, "alice");
        assert_eq!(c.secret, "s3cret");
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(creds.lookup("docker.io").unwrap().is_some());
        assert!(creds.lookup("other.example").unwrap().is_none());
    }

    #[test]
    fn key_with_scheme_matches_host() {
        let dir = tempfile::tempdir().unwrap();
        write_config(
            dir.path(),
            r#"{"auths":{"https://reg.example/v2/":{"username":"bob","password":"pw"}}}"#,
        );
        let creds = DockerCredentials::load(Some(dir.path())).unwrap();
        assert_eq!(
            creds.lookup("reg.example").unwrap().unwrap().username,
            "bob"
        );
    }

    #[test]
    fn missing_file_is_anonymous_and_bad_json_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let creds = DockerCredentials::load(Some(dir.path())).unwrap();
        assert!(creds.lookup("x.example").unwrap().is_none());
        write_config(dir.path(), "{nope");
        let err = DockerCredentials::load(Some(dir.path())).err().unwrap();
        assert!(err.to_string().contains("config.json"), "{err}");
    }

    /// A credential helper runs on the blocking pool: a helper that takes
    /// its time leaves the runtime's only worker thread free meanwhile.
    #[tokio::test(flavor = "current_thread")]
    async fn helpers_run_off_the_async_threads() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-ferry-slow");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread server\nsleep 1\necho '{\"Username\":\"u\",\"Secret\":\"s\"}'\n",
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        write_config(
            dir.path(),
            r#"{"credHelpers":{"slow.example":"ferry-slow"}}"#,
        );
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        // Only this test sets PATH, and it only adds a directory.
        std::env::set_var("PATH", path);
        let cache = CredentialCache::new(DockerCredentials::load(Some(dir.path())).unwrap());
        let ticks = std::sync::atomic::AtomicU32::new(0);
        let ticker = async {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                ticks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        };
        let lookup = async {
            let (a, b) = tokio::join!(cache.get("slow.example"), cache.get("slow.example"));
            (a.unwrap(), b.unwrap())
        };
        let (a, b) = tokio::select! {
            found = lookup => found,
            _ = ticker => unreachable!(),
        };
        assert_eq!(a.unwrap().username, "u");
        assert_eq!(b.unwrap().secret, "s");
        let ticks = ticks.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            ticks >= 10,
            "the runtime stalled while the helper ran ({ticks} ticks)"
        );
    }

    #[test]
    fn missing_helper_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        write_config(
            dir.path(),
            r#"{"credHelpers":{"reg.example":"ferry-test-nonexistent"}}"#,
        );
        let creds = DockerCredentials::load(Some(dir.path())).unwrap();
        let err = creds.lookup("reg.example").unwrap_err();
        assert!(
            err.to_string()
                .contains("docker-credential-ferry-test-nonexistent"),
            "{err}"
        );
    }
}
