//! How the client reaches registries: which hosts speak plain HTTP, which
//! skip TLS verification, extra CAs, credentials and retries.

use std::path::PathBuf;
use std::time::Duration;

/// Settings for a [`Client`](crate::Client), usually built from command-line flags.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Hosts (`host` or `host:port`) reached over plain HTTP. A host without
    /// a port matches every port of that host.
    pub plain_http: Vec<String>,
    /// Hosts reached over TLS without verifying the certificate.
    pub insecure: Vec<String>,
    /// Extra CA certificates (PEM files) trusted for every host.
    pub ca_certs: Vec<PathBuf>,
    /// Directory holding docker's `config.json`; `None` means
    /// `$DOCKER_CONFIG`, else `~/.docker`.
    pub docker_config_dir: Option<PathBuf>,
    /// Whether to read docker credentials at all.
    pub use_docker_credentials: bool,
    /// When and how often to try again.
    pub retry: RetryPolicy,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// How long a read may stall before the request fails.
    pub read_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            plain_http: Vec::new(),
            insecure: Vec::new(),
            ca_certs: Vec::new(),
            docker_config_dir: None,
            use_docker_credentials: true,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
        }
    }
}

impl ClientConfig {
    /// Whether `host` was named with `--plain-http`.
    pub fn is_plain_http(&self, host: &str) -> bool {
        host_listed(&self.plain_http, host)
    }

    /// Whether `host` was named with `--insecure`.
    pub fn is_insecure(&self, host: &str) -> bool {
        host_listed(&self.insecure, host)
    }
}

fn host_listed(list: &[String], host: &str) -> bool {
    let bare = strip_port(host);
    list.iter()
        .any(|entry| entry == host || (!has_port(entry) && entry == bare))
}

fn has_port(host: &str) -> bool {
    strip_port(host) != host
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [::1]:5000
        return match rest.find(']') {
            Some(end) => &host[..end + 2],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Bounded exponential backoff for requests that are safe to repeat.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Total tries, the first included (1 = never retry).
    pub attempts: u32,
    /// Delay before the second try; doubled each time.
    pub base_delay: Duration,
    /// Longest delay between tries, `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Delay before try number `attempt` (1-based; attempt 2 waits
    /// `base_delay`), or the server's `Retry-After`, capped at `max_delay`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(2).min(16));
        retry_after.unwrap_or(exp).min(self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_matching() {
        let c = ClientConfig {
            plain_http: vec!["reg.internal".into(), "other:5000".into(), "[::1]".into()],
            ..ClientConfig::default()
        };
        assert!(c.is_plain_http("reg.internal"));
        assert!(c.is_plain_http("reg.internal:5000"));
        assert!(c.is_plain_http("other:5000"));
        assert!(!c.is_plain_http("other:5001"));
        assert!(!c.is_plain_http("other"));
        assert!(c.is_plain_http("[::1]:5000"));
        assert!(!c.is_plain_http("reg.internal.evil"));
        assert!(!c.is_insecure("reg.internal"));
    }

    #[test]
    fn backoff_is_bounded() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(2, None), Duration::from_millis(250));
        assert_eq!(p.delay(3, None), Duration::from_millis(500));
        assert_eq!(p.delay(30, None), Duration::from_secs(10));
        assert_eq!(
            p.delay(2, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            p.delay(2, Some(Duration::from_secs(300))),
            Duration::from_secs(10)
        );
    }
}
