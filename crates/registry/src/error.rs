//! The error type of the registry client.

use ferry_oci::Digest;

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The registry could not be reached at all.
    #[error("cannot reach registry {host} ({url})")]
    Connect {
        /// Registry host as named by the user.
        host: String,
        /// The URL tried.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The registry's host name does not resolve. Final: trying again
    /// will not make a mistyped or unknown name resolve.
    #[error("cannot reach registry {host}: its name does not resolve; check the reference, or the DNS of this machine")]
    UnknownHost {
        /// Registry host as named by the user.
        host: String,
        /// The resolver error.
        #[source]
        source: reqwest::Error,
    },
    /// A request failed in transit (reset, timeout, broken body).
    #[error("request to {url} failed")]
    Transport {
        /// The URL of the request.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The registry sent nothing for longer than the read timeout.
    #[error("request to {url} timed out: no data for {secs} s (wait longer with --timeout SECS)")]
    Timeout {
        /// The URL of the request.
        url: String,
        /// The read timeout, in seconds.
        secs: u64,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The host speaks plain HTTP but was not named with `--plain-http`.
    #[error("registry {host} answered in plain HTTP; if that is intended, name it with --plain-http {host}")]
    PlainHttpNotAllowed {
        /// Registry host.
        host: String,
    },
    /// TLS verification failed.
    #[error("TLS certificate of {host} is not trusted; give its CA with --ca-cert FILE, or skip verification for this host with --insecure {host}")]
    Tls {
        /// Registry host.
        host: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// Credentials were refused, or none were given where needed.
    #[error("authentication failed for {host} (repository {repository}): {hint}")]
    Unauthorized {
        /// Registry host.
        host: String,
        /// Repository asked for.
        repository: String,
        /// What to do about it.
        hint: String,
    },
    /// The token endpoint misbehaved.
    #[error("token request to {realm} failed: {reason}")]
    Token {
        /// The token realm URL.
        realm: String,
        /// What went wrong.
        reason: String,
    },
    /// A manifest or blob does not exist.
    #[error("{what} not found in {host}/{repository}")]
    NotFound {
        /// Registry host.
        host: String,
        /// Repository.
        repository: String,
        /// What was asked for (`manifest nginx:1.25`, `blob sha256:...`).
        what: String,
    },
    /// The registry answered with an error status.
    #[error("{method} {url} answered {status}{}", describe(.code, .message))]
    Status {
        /// HTTP method.
        method: String,
        /// URL of the request (no credentials).
        url: String,
        /// HTTP status.
        status: u16,
        /// The registry's error code (`MANIFEST_BLOB_UNKNOWN`, ...), if any.
        code: Option<String>,
        /// The registry's error message, if any.
        message: Option<String>,
        /// The registry's `Retry-After`, if any.
        retry_after: Option<std::time::Duration>,
    },
    /// Content served did not match its digest.
    #[error("{host}/{repository} served {what} with digest {found}, expected {expected}")]
    DigestMismatch {
        /// Registry host.
        host: String,
        /// Repository.
        repository: String,
        /// What was fetched.
        what: String,
        /// Expected digest.
        expected: Digest,
        /// Digest of the bytes received.
        found: Digest,
    },
    /// A manifest is larger than ferry accepts.
    #[error("manifest {what} from {host} is larger than {limit} bytes")]
    ManifestTooLarge {
        /// Registry host.
        host: String,
        /// What was fetched.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// The registry's answer makes no sense (missing header, bad JSON).
    #[error("{host} answered {what} unexpectedly: {reason}")]
    Protocol {
        /// Registry host.
        host: String,
        /// What was asked.
        what: String,
        /// What was wrong.
        reason: String,
    },
    /// Local configuration is wrong (CA file, docker config).
    #[error("{what}")]
    Config {
        /// What is wrong.
        what: String,
        /// Underlying error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Reading local content for an upload failed.
    #[error("reading content for upload of {digest}")]
    Source {
        /// The blob being uploaded.
        digest: Digest,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

fn describe(code: &Option<String>, message: &Option<String>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!(" {c}: {m}"),
        (Some(c), None) => format!(" {c}"),
        (None, Some(m)) => format!(": {m}"),
        (None, None) => String::new(),
    }
}

impl Error {
    /// Whether trying the same request again may succeed: transport
    /// failures, 5xx answers, 429. Authentication, not-found, digest and
    /// configuration errors are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Transport { .. } | Error::Timeout { .. } => true,
            Error::Status { status, .. } => *status == 429 || *status == 408 || *status >= 500,
            _ => false,
        }
    }

    /// This error as the retry policy sees it: transient when
    /// [`is_retryable`](Self::is_retryable) (with the registry's
    /// `Retry-After`, if any), else final.
    pub fn failure(self) -> crate::Failure<Error> {
        let after = match &self {
            Error::Status { retry_after, .. } => *retry_after,
            _ => None,
        };
        if self.is_retryable() {
            crate::Failure::Transient { error: self, after }
        } else {
            crate::Failure::Final(self)
        }
    }

    /// The registry's error code, when it sent one.
    pub fn registry_code(&self) -> Option<&str> {
        match self {
            Error::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// Result with the registry client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
