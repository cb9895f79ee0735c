//! Origins (scheme, host, port), to keep credentials with theirs.
//!
//! A registry names other URLs: upload `Location`s, `Link`s to the next
//! page, redirects to object storage. Those may be on another origin, and
//! ferry sends a registry's `Authorization` (basic or bearer) to that
//! registry's own origin only, as docker and containerd do
//! (containerd's pusher drops its authorizer when an upload `Location`
//! names another host). Comparing whole origins, scheme included, also
//! keeps credentials from going out in the clear when a registry reached
//! over https names an http URL on its own host.

use reqwest::Url;

/// Scheme, host and port (explicit or the scheme's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    /// The origin of `url`.
    pub(crate) fn of(url: &Url) -> Origin {
        Origin {
            scheme: url.scheme().to_ascii_lowercase(),
            host: url.host_str().unwrap_or("").to_ascii_lowercase(),
            port: url.port_or_known_default(),
        }
    }

    /// Whether the scheme is https.
    pub(crate) fn is_https(&self) -> bool {
        self.scheme == "https"
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(url: &str) -> Origin {
        Origin::of(&Url::parse(url).unwrap())
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let registry = origin("https://reg.example/v2/");
        assert_eq!(
            registry,
            origin("https://REG.example:443/v2/a/blobs/uploads/x")
        );
        assert_ne!(registry, origin("http://reg.example/v2/"));
        assert_ne!(registry, origin("https://reg.example:5000/v2/"));
        assert_ne!(registry, origin("https://uploads.reg.example/v2/"));
        assert_eq!(
            origin("http://127.0.0.1:5000/x"),
            origin("http://127.0.0.1:5000/y?z")
        );
        assert_ne!(
            origin("http://127.0.0.1:5000/"),
            origin("http://127.0.0.1:5001/")
        );
        assert_eq!(
            origin("http://[::1]:5000/").to_string(),
            "http://[::1]:5000"
        );
    }
}
