//! HTTP basic authentication against an htpasswd file (bcrypt entries, as
//! distribution's htpasswd auth reads them).
//!
//! bcrypt is slow on purpose, so a password checked once is remembered (by
//! a SHA-256 of user and password, never the password itself) and checks
//! run off the async threads, two at a time, so a flood of bad passwords
//! cannot starve the server.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;

use crate::{Error, Result};

/// How many remembered logins at most.
const REMEMBERED: usize = 1024;

/// The accounts of an htpasswd file.
#[derive(Debug)]
pub(crate) struct Htpasswd {
    users: HashMap<String, String>,
    remembered: Mutex<HashSet<[u8; 32]>>,
    checks: Semaphore,
}

impl Htpasswd {
    /// Read `path`: `user:hash` lines, bcrypt hashes only.
    pub fn load(path: &Path) -> Result<Htpasswd> {
        let bad = |reason: String| Error::Htpasswd {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(bad(format!("line {}: expected user:hash", n + 1)));
            };
            if !(hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$")) {
                return Err(bad(format!(
                    "line {}: user {user:?} has no bcrypt hash; create entries with \
                     `htpasswd -B`",
                    n + 1
                )));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        if users.is_empty() {
            return Err(bad("no accounts".into()));
        }
        Ok(Htpasswd {
            users,
            remembered: Mutex::new(HashSet::new()),
            checks: Semaphore::new(2),
        })
    }

    /// Whether the `Authorization` header value names an account with its
    /// password.
    pub async fn allows(&self, authorization: Option<&[u8]>) -> bool {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let Some(hash) = self.users.get(&user) else {
            return false;
        };
        let key: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .finalize()
            .into();
        if self.remembered.lock().expect("lock").contains(&key) {
            return true;
        }
        let Ok(_permit) = self.checks.acquire().await else {
            return false;
        };
        let hash = hash.clone();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or(false);
        if ok {
            let mut remembered = self.remembered.lock().expect("lock");
            if remembered.len() >= REMEMBERED {
                remembered.clear();
            }
            remembered.insert(key);
        }
        ok
    }
}

/// `Basic base64(user:password)` -> (user, password).
fn parse_basic(value: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, b64) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || b64.len() > 4096 {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (user, password) = raw.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header() {
        // "user:pa:ss"
        assert_eq!(
            parse_basic(b"Basic dXNlcjpwYTpzcw=="),
            Some(("user".into(), "pa:ss".into()))
        );
        assert_eq!(parse_basic(b"Bearer x"), None);
        assert_eq!(parse_basic(b"Basic !!!"), None);
        assert_eq!(parse_basic(b"Basic"), None);
    }

    #[tokio::test]
    async fn checks_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        let hash = bcrypt::hash("secret", 4).unwrap();
        std::fs::write(&path, format!("# comment\nalice:{hash}\n")).unwrap();
        let h = Htpasswd::load(&path).unwrap();
        let header = |s: &str| format!("Basic {}", encode(s));
        assert!(h.allows(Some(header("alice:secret").as_bytes())).await);
        assert!(h.allows(Some(header("alice:secret").as_bytes())).await);
        assert!(!h.allows(Some(header("alice:wrong").as_bytes())).await);
        assert!(!h.allows(Some(header("bob:secret").as_bytes())).await);
        assert!(!h.allows(None).await);

        std::fs::write(&path, "alice:{SHA}abc\n").unwrap();
        let err = Htpasswd::load(&path).unwrap_err().to_string();
        assert!(err.contains("htpasswd -B"), "{err}");
    }

    fn encode(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }
}
