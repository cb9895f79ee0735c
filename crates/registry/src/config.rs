//! How the client reaches registries: which hosts speak plain HTTP, which
//! skip TLS verification, extra CAs, credentials and retries.

use std::path::PathBuf;
use std::time::Duration;

use crate::RetryPolicy;

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
}
