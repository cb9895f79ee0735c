//! Image references (`registry/repository:tag@digest`), parsed and normalized
//! as docker does.
//!
//! The grammar is the one of `github.com/distribution/reference`, and the
//! normalization the one of `ParseNormalizedNamed` followed by
//! `TagNameOnly`:
//!
//! - the first `/`-separated component is a registry host if it contains `.`
//!   or `:`, is `localhost`, or has an uppercase letter; otherwise the
//!   registry is `docker.io`;
//! - `index.docker.io` is `docker.io`, and a one-component repository on
//!   `docker.io` is an official image under `library/`;
//! - a reference with neither tag nor digest gets the tag `latest`.
//!
//! So `nginx` is `docker.io/library/nginx:latest`, and every [`Reference`]
//! names one manifest: it has a tag, a digest, or both.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::{Error, Result};

/// The registry of images given without one.
pub const DOCKER_HUB: &str = "docker.io";
/// The legacy name of Docker Hub, normalized to [`DOCKER_HUB`].
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
/// The namespace of official images on Docker Hub.
const OFFICIAL_NAMESPACE: &str = "library";
/// The tag given to references with neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// The longest name (`registry/repository`) a registry accepts.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// The longest tag.
const TAG_LENGTH_MAX: usize = 128;

/// A fully qualified, validated image reference.
///
/// Always has a registry and a repository, and at least one of a tag and a
/// digest. Compares, hashes and orders by its parts, so `nginx` and
/// `docker.io/library/nginx:latest` are equal.
///
/// `Display` prints the fully qualified form
/// (`docker.io/library/nginx:1.25`, `host:5000/a/b:t@sha256:...`), and
/// [`Reference::parse`] reads it back to an equal value, provided the
/// registry is recognizable as one (see [`Reference::has_recognizable_registry`]).
/// Serde uses the same string form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parse and normalize a reference as `docker pull` would.
    ///
    /// Errors are [`Error::InvalidReference`], quoting `input` and saying
    /// what is wrong with it.
    pub fn parse(input: &str) -> Result<Reference> {
        let invalid = |reason: String| Error::InvalidReference {
            input: input.to_string(),
            reason,
        };
        if input.is_empty() {
            return Err(invalid("empty reference".into()));
        }
        if input.len() == 64 && input.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                "a 64-character hexadecimal string is an image ID, not a repository name".into(),
            ));
        }

        let (name_and_tag, digest) = match input.split_once('@') {
            Some((name_and_tag, digest)) => {
                let digest = digest
                    .parse::<Digest>()
                    .map_err(|err| invalid(err.to_string()))?;
                (name_and_tag, Some(digest))
            }
            None => (input, None),
        };

        // A tag follows the last `:` that comes after the last `/`; an
        // earlier `:` separates a registry host from its port.
        let path_start = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[path_start..].rfind(':') {
            Some(i) => {
                let at = path_start + i;
                (&name_and_tag[..at], Some(&name_and_tag[at + 1..]))
            }
            None => (name_and_tag, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(invalid)?;
        }
        if name.is_empty() {
            return Err(invalid("empty repository name".into()));
        }
        let (registry, path) = split_docker_domain(name);
        Reference::assemble(registry, path, tag, digest, invalid)
    }

    /// Normalize and validate parts already split (the tag checked by the
    /// caller): registry and repository (`index.docker.io` -> `docker.io`, `library/` for
    /// one-component Docker Hub names), and `latest` when there is neither
    /// tag nor digest.
    fn assemble(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<Digest>,
        invalid: impl Fn(String) -> Error,
    ) -> Result<Reference> {
        let (registry, repository) = normalize(registry, repository);
        validate_name(&registry, &repository).map_err(&invalid)?;
        let tag = match (tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (tag, _) => tag.map(str::to_string),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// A reference built from its parts, validated and normalized like a
    /// parsed one.
    ///
    /// `registry` is always taken as the registry host, even one docker
    /// would not recognize as such (`myhost`); `index.docker.io` becomes
    /// `docker.io`, and a one-component repository on `docker.io` gets
    /// `library/`. With neither tag nor digest the tag is `latest`.
    pub fn in_repository(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<Digest>,
    ) -> Result<Reference> {
        let mut input = format!("{registry}/{repository}");
        if let Some(tag) = tag {
            input = format!("{input}:{tag}");
        }
        if let Some(digest) = &digest {
            input = format!("{input}@{digest}");
        }
        let invalid = |reason: String| Error::InvalidReference {
            input: input.clone(),
            reason,
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(invalid)?;
        }
        if repository.is_empty() {
            return Err(invalid("empty repository name".into()));
        }
        Reference::assemble(registry, repository, tag, digest, invalid)
    }

    /// The registry host, with its port if any: `docker.io`,
    /// `localhost:5000`, `10.0.0.1:5000`, `[::1]:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry: `library/nginx`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The repository name, `registry/repository`, without tag or digest:
    /// `docker.io/library/nginx`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository with `tag` and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference> {
        validate_tag(tag).map_err(|reason| Error::InvalidReference {
            input: format!("{}:{tag}", self.name()),
            reason,
        })?;
        Ok(Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    /// The same repository with `digest` and no tag.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// This reference with its tag kept and `digest` set
    /// (`name:tag@digest`), as written into a relocation mapping.
    pub fn pinned(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// What follows `/manifests/` in the registry API: the digest if there
    /// is one, else the tag.
    pub fn tag_or_digest(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            // Every constructor sets a tag or a digest.
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// Whether the printed form of this reference is read back with the
    /// same registry: false for a host such as `myhost` (no `.` or `:`, not
    /// `localhost`, lowercase), which docker, and [`Reference::parse`], take
    /// for a Docker Hub namespace. Such references come only from
    /// [`Reference::in_repository`] (or a relocation target).
    pub fn has_recognizable_registry(&self) -> bool {
        self.registry == DOCKER_HUB || looks_like_domain(&self.registry)
    }
}

/// Split a name into registry and path as docker's `splitDockerDomain`.
fn split_docker_domain(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest)) if looks_like_domain(first) => (first, rest),
        _ => (DOCKER_HUB, name),
    }
}

/// Whether docker takes this first path component for a registry host.
fn looks_like_domain(component: &str) -> bool {
    component.contains(['.', ':'])
        || component == "localhost"
        || component.bytes().any(|b| b.is_ascii_uppercase())
}

/// Docker Hub's legacy host and its `library/` namespace.
fn normalize(registry: &str, path: &str) -> (String, String) {
    let registry = if registry == DOCKER_HUB_LEGACY {
        DOCKER_HUB
    } else {
        registry
    };
    let repository = if registry == DOCKER_HUB && !path.contains('/') {
        format!("{OFFICIAL_NAMESPACE}/{path}")
    } else {
        path.to_string()
    };
    (registry.to_string(), repository)
}

/// Check a normalized `registry/repository`, saying what is wrong.
fn validate_name(registry: &str, repository: &str) -> std::result::Result<(), String> {
    validate_host(registry)?;
    validate_repository(repository)?;
    let len = registry.len() + 1 + repository.len();
    if len > NAME_TOTAL_LENGTH_MAX {
        return Err(format!(
            "name longer than {NAME_TOTAL_LENGTH_MAX} characters ({len})"
        ));
    }
    Ok(())
}

/// Check a tag: `[\w][\w.-]{0,127}`.
pub(crate) fn validate_tag(tag: &str) -> std::result::Result<(), String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= TAG_LENGTH_MAX
        && word(bytes[0])
        && bytes[1..]
            .iter()
            .all(|&b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid tag {tag:?}: expected 1 to {TAG_LENGTH_MAX} characters of \
             [A-Za-z0-9_.-], not starting with '.' or '-'"
        ))
    }
}

/// Check a registry host: a DNS name, IPv4 address or `[IPv6]` address,
/// with an optional `:port`.
pub(crate) fn validate_host(host: &str) -> std::result::Result<(), String> {
    let bad = |what: &str| format!("invalid registry host {host:?}: {what}");
    if host.is_empty() {
        return Err(bad("empty"));
    }
    let port = if let Some(rest) = host.strip_prefix('[') {
        let (address, after) = rest
            .split_once(']')
            .ok_or_else(|| bad("unclosed '[' of an IPv6 address"))?;
        if address.is_empty() || !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(bad("an IPv6 address has only hex digits and ':'"));
        }
        match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| bad("expected ':port' after ']'"))?,
            ),
        }
    } else {
        let (name, port) = match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        };
        for label in name.split('.') {
            let ok = !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(bad(&format!(
                    "bad host name component {label:?} (letters, digits and inner '-' only)"
                )));
            }
        }
        port
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(&format!("port {port:?} is not a number")));
        }
    }
    Ok(())
}

/// Check a repository path: lowercase components separated by `/`.
pub(crate) fn validate_repository(repository: &str) -> std::result::Result<(), String> {
    if repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "repository name must be lowercase, found {repository:?}"
        ));
    }
    for component in repository.split('/') {
        validate_path_component(component)?;
    }
    Ok(())
}

/// Check one path component:
/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
pub(crate) fn validate_path_component(component: &str) -> std::result::Result<(), String> {
    if component.is_empty() {
        return Err("empty path component (doubled, leading or trailing '/')".into());
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bad = || {
        format!(
            "invalid path component {component:?}: expected [a-z0-9] runs joined by \
             '.', '_', '__' or dashes"
        )
    };
    let bytes = component.as_bytes();
    let mut i = 0;
    loop {
        // A run of alphanumerics...
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        if i == bytes.len() {
            return Ok(());
        }
        // ...then one separator, then another run.
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return Err(bad());
        }
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Reference> {
        Reference::parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

crate::serde_str::serde_via_str!(Reference);

#[cfg(test)]
#[path = "reference_tests.rs"]
mod tests;
