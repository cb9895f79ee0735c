//! What every request shares: the settings, the HTTP clients, the
//! credentials and the tokens. Sending a request is in
//! [`request`](crate::request); the clients and what their failures mean
//! in [`http`](crate::http); the retry policy in [`retry`](crate::retry).

use reqwest::Url;

use crate::auth::TokenCache;
use crate::credentials::{Credential, CredentialCache, DockerCredentials};
use crate::http::Clients;
use crate::origin::Origin;
use crate::{ClientConfig, Error, Result};

pub(crate) struct Transport {
    pub(crate) config: ClientConfig,
    pub(crate) clients: Clients,
    credentials: CredentialCache,
    pub(crate) tokens: TokenCache,
}

impl Transport {
    pub(crate) fn new(config: ClientConfig) -> Result<Transport> {
        let clients = Clients::new(&config)?;
        let credentials = if config.use_docker_credentials {
            DockerCredentials::load(config.docker_config_dir.as_deref())?
        } else {
            DockerCredentials::default()
        };
        Ok(Transport {
            config,
            clients,
            credentials: CredentialCache::new(credentials),
            tokens: TokenCache::default(),
        })
    }

    /// The HTTP client for `host` (verified, or not for `--insecure`).
    pub(crate) fn http_for(&self, host: &str) -> &reqwest::Client {
        self.clients.for_host(&self.config, host)
    }

    /// `https://host` or `http://host`, with docker.io's API host.
    pub(crate) fn base_url(&self, host: &str) -> String {
        let scheme = if self.config.is_plain_http(host) {
            "http"
        } else {
            "https"
        };
        let api_host = if host == "docker.io" {
            "registry-1.docker.io"
        } else {
            host
        };
        format!("{scheme}://{api_host}")
    }

    /// The URL for `target`: a path on the registry `host`, or an absolute
    /// URL the registry named.
    pub(crate) fn url(&self, host: &str, target: &str) -> Result<Url> {
        let text = if target.starts_with("http://") || target.starts_with("https://") {
            target.to_string()
        } else {
            format!("{}{target}", self.base_url(host))
        };
        Url::parse(&text).map_err(|e| Error::Protocol {
            host: host.to_string(),
            what: "a URL it named".to_string(),
            reason: format!("{} is not a URL ({e})", crate::http::strip_query(&text)),
        })
    }

    /// The origin of the registry `host`: the only one its credentials go to.
    pub(crate) fn origin(&self, host: &str) -> Result<Origin> {
        Ok(Origin::of(&self.url(host, "/v2/")?))
    }

    /// The docker credential for `host`, if any (looked up once, off the
    /// async threads).
    pub(crate) async fn credential(&self, host: &str) -> Result<Option<Credential>> {
        self.credentials.get(host).await
    }

    /// Where the credentials came from, for messages.
    pub(crate) fn credential_source(&self) -> String {
        self.credentials
            .source()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the docker config".to_string())
    }
}
