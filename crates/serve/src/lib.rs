//! `ferry serve`: a read-only OCI distribution API straight from one or more
//! bundles, for a site that has no registry yet.
//!
//! [`Server::bind`] opens the bundles through [`ferry_oci::LayoutArchive`]
//! (so every shape of bundle it reads is served), checks their structure —
//! every manifest read, hashed and parsed, every descriptor's size matched
//! — and groups the named images into repositories named as the originals
//! were, without their registry host (`src/base:1` for
//! `registry.example/src/base:1`), under an optional prefix. Where two
//! registries' images share a path, containerd's `ns=<registry>` query
//! parameter picks one. [`Server::run`] then answers `/v2/`, manifests by
//! tag and digest, blobs (with one `Range`), `tags/list`, `_catalog` and
//! the referrers API until told to stop. Writes are refused with
//! distribution-spec errors.
//!
//! Blobs are read at their offsets in the bundle, a chunk at a time, off
//! the async threads; nothing is extracted and no blob is held in memory.
//! Each blob is hashed on its first read, and one that does not match its
//! digest is cut off and never served again.

#![deny(missing_docs)]

mod api;
mod auth;
mod blob;
mod content;
mod error;
mod range;
mod route;
mod server;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use content::ContentReport;
pub use error::{Error, Result};
pub use server::Limits;

use api::Api;
use auth::Htpasswd;
use content::Content;

/// The address served unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5000";

/// What to serve, and how.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The bundles; a blob is read from the first that holds it.
    pub bundles: Vec<PathBuf>,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Serve HTTPS with this certificate chain and private key (PEM).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Require HTTP basic auth from an account in this htpasswd file
    /// (bcrypt entries).
    pub htpasswd: Option<PathBuf>,
    /// Serve every repository under this path.
    pub prefix: Option<String>,
    /// Limits on clients.
    pub limits: Limits,
}

/// A server bound to its address, its content checked, not yet answering.
pub struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    api: Arc<Api>,
    limits: Limits,
    report: ContentReport,
}

impl Server {
    /// Open and check the bundles, load TLS and htpasswd, and bind.
    pub async fn bind(options: &ServeOptions) -> Result<Server> {
        // Reading the bundles blocks; nothing else runs yet.
        let (content, report) = Content::load(&options.bundles, options.prefix.as_deref())?;
        let tls = options
            .tls
            .as_ref()
            .map(|(cert, key)| tls_acceptor(cert, key))
            .transpose()?;
        let htpasswd = options
            .htpasswd
            .as_deref()
            .map(Htpasswd::load)
            .transpose()?;
        let listener = TcpListener::bind(options.listen)
            .await
            .map_err(|source| Error::Listen {
                addr: options.listen.to_string(),
                source,
            })?;
        Ok(Server {
            listener,
            tls,
            api: Arc::new(Api {
                content,
                verdicts: Arc::default(),
                htpasswd,
            }),
            limits: options.limits.clone(),
            report,
        })
    }

    /// The address it listens on (the port chosen, when asked for port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        server::local_addr(&self.listener)
    }

    /// Whether it speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// What the start-up check found.
    pub fn report(&self) -> &ContentReport {
        &self.report
    }

    /// Answer requests until `shutdown` completes, then finish the
    /// responses in flight (up to [`Limits::drain_timeout`]) and return.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        server::run(self.listener, self.tls, self.api, self.limits, shutdown).await
    }
}

fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<std::result::Result<_, _>>())
        .map_err(|e| Error::Tls {
            reason: format!("reading certificates from {}: {e}", cert.display()),
        })?;
    if certs.is_empty() {
        return Err(Error::Tls {
            reason: format!("{} holds no PEM certificate", cert.display()),
        });
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| Error::Tls {
        reason: format!("reading the private key from {}: {e}", key.display()),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls {
            reason: e.to_string(),
        })?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| Error::Tls {
            reason: format!("{} and {}: {e}", cert.display(), key.display()),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
