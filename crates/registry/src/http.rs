//! The HTTP clients and what their failures mean.
//!
//! Two reqwest clients: one verifying TLS (against the system roots plus
//! any `--ca-cert`), one for hosts named with `--insecure`. Neither
//! follows redirects by itself: the request layer follows them, so that it
//! decides which origin gets credentials. Names are resolved by
//! [`Resolver`], whose failures carry their own type, so that
//! [`classify`] can tell an unknown host from a refused connection by
//! type, as it tells a plain-HTTP answer from an untrusted certificate by
//! the rustls error inside, never by searching message text.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::{ClientConfig, Error, Result};

/// The two clients, built once: the unverified one only when a host was
/// named with `--insecure` (each loads the system's CA certificates, a
/// walk of `/etc/ssl/certs`).
pub(crate) struct Clients {
    verified: reqwest::Client,
    unverified: Option<reqwest::Client>,
}

impl Clients {
    pub(crate) fn new(config: &ClientConfig) -> Result<Clients> {
        let builder = || {
            reqwest::Client::builder()
                .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(config.connect_timeout)
                .read_timeout(config.read_timeout)
                .pool_max_idle_per_host(32)
                .redirect(reqwest::redirect::Policy::none())
                .dns_resolver(Arc::new(Resolver))
        };
        let mut verified = builder();
        let pems = read_ca_certs(config)?;
        if !pems.is_empty() {
            let tls = crate::tls::client_config(&pems).map_err(|why| Error::Config {
                what: format!("cannot use the --ca-cert certificates: {why}"),
                source: None,
            })?;
            verified = verified.use_preconfigured_tls(tls);
        }
        let build = |b: reqwest::ClientBuilder| {
            b.build().map_err(|e| Error::Config {
                what: "cannot set up the HTTP client".to_string(),
                source: Some(Box::new(e)),
            })
        };
        let unverified = match config.insecure.is_empty() {
            true => None,
            false => Some(build(builder().danger_accept_invalid_certs(true))?),
        };
        Ok(Clients {
            verified: build(verified)?,
            unverified,
        })
    }

    /// The client for `host`: unverified only if named with `--insecure`.
    pub(crate) fn for_host(&self, config: &ClientConfig, host: &str) -> &reqwest::Client {
        match &self.unverified {
            Some(unverified) if config.is_insecure(host) => unverified,
            _ => &self.verified,
        }
    }
}

fn read_ca_certs(config: &ClientConfig) -> Result<Vec<Vec<u8>>> {
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
    Ok(pems)
}

/// The system resolver (getaddrinfo on tokio's blocking pool, as reqwest's
/// own), with failures typed as [`Unresolved`].
struct Resolver;

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await;
            let addrs: Vec<SocketAddr> = match found {
                Ok(addrs) => addrs.collect(),
                Err(source) => return Err(Box::new(Unresolved { source }) as _),
            };
            if addrs.is_empty() {
                let source = std::io::Error::from(std::io::ErrorKind::NotFound);
                return Err(Box::new(Unresolved { source }) as _);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A host name that does not resolve.
#[derive(Debug, thiserror::Error)]
#[error("the name does not resolve")]
struct Unresolved {
    #[source]
    source: std::io::Error,
}

/// What a transport failure comes down to, found by type in its causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// TLS was spoken to a server answering in plain HTTP.
    PlainHttp,
    /// The server's certificate was not accepted.
    Certificate,
    /// The host name does not resolve.
    Unresolved,
}

fn cause_of(error: &(dyn StdError + 'static)) -> Option<Cause> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            match tls {
                rustls::Error::InvalidMessage(_) => return Some(Cause::PlainHttp),
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
                    return Some(Cause::Certificate)
                }
                _ => {}
            }
        }
        if e.downcast_ref::<Unresolved>().is_some() {
            return Some(Cause::Unresolved);
        }
        // io::Error::source skips the error it wraps; look inside.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(cause) = cause_of(inner) {
                return Some(cause);
            }
        }
        next = e.source();
    }
    None
}

/// The typed [`Error`] for a request to `url` on `host` that failed in
/// transit. `read_timeout` is named in the timeout message.
pub(crate) fn classify(host: &str, url: &str, read_timeout: Duration, e: reqwest::Error) -> Error {
    let host = host.to_string();
    match cause_of(&e) {
        Some(Cause::PlainHttp) => return Error::PlainHttpNotAllowed { host },
        Some(Cause::Certificate) => {
            return Error::Tls {
                host,
                source: e.without_url(),
            }
        }
        Some(Cause::Unresolved) => {
            return Error::UnknownHost {
                host,
                source: e.without_url(),
            }
        }
        None => {}
    }
    if e.is_connect() && !e.is_timeout() {
        return Error::Connect {
            host,
            url: strip_query(url),
            source: e.without_url(),
        };
    }
    body_error(url, read_timeout, e)
}

/// A request or body that broke in transit: timed out, or cut.
pub(crate) fn body_error(url: &str, read_timeout: Duration, e: reqwest::Error) -> Error {
    let url = strip_query(url);
    if e.is_timeout() {
        Error::Timeout {
            url,
            secs: read_timeout.as_secs().max(1),
            source: e.without_url(),
        }
    } else {
        Error::Transport {
            url,
            source: e.without_url(),
        }
    }
}

/// URLs of upload sessions carry state in the query; keep messages short.
pub(crate) fn strip_query(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_found_by_type_through_io_errors() {
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        );
        assert_eq!(cause_of(&tls), Some(Cause::PlainHttp));
        let cert = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert_eq!(cause_of(&cert), Some(Cause::Certificate));
        let dns = Unresolved {
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(cause_of(&dns), Some(Cause::Unresolved));
        // The words alone mean nothing.
        let words = std::io::Error::other("certificate dns error InvalidContentType");
        assert_eq!(cause_of(&words), None);
    }
}
