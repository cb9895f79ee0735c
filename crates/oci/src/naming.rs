//! Relocation naming: where an original repository lands in the private
//! registry.
//!
//! A [`RelocationTarget`] is `HOST[:PORT][/PREFIX]`; a [`Naming`] strategy
//! turns an original repository name into a repository under that prefix.
//! The tag and digest of the original are kept as they are.
//!
//! The default, [`Naming::Hash`], is the rule of the reference Go library
//! (`pivotal/image-relocation`, `pathmapping.FlattenRepoPath`), reproduced
//! exactly so a mapping written by ferry matches one written by that
//! library: `PREFIX/<path flattened with '-'>-<md5 hex of the original name>`,
//! shortened to fit the 255-character name limit.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use md5::{Digest as _, Md5};

use crate::reference::{self, Reference, NAME_TOTAL_LENGTH_MAX};
use crate::{Error, Result};

/// Length of an md5 digest in hex.
const HASH_LEN: usize = 32;

/// How an original repository is named in the target registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Naming {
    /// `PREFIX/<path joined with '-'>-<md5 of registry/path>`, shortened to
    /// fit 255 characters: the Go library's rule. Never collides, keeps
    /// only two levels of path (works on registries that allow no deeper
    /// nesting).
    #[default]
    Hash,
    /// `PREFIX/<original path>`: `team/mirror/library/nginx`. Repositories
    /// of the same path on different registries collide.
    Preserve,
    /// `PREFIX/<path joined with '-'>`: `team/mirror/library-nginx`. Paths
    /// differing only in `/` versus `-`, or by registry, collide.
    Flatten,
}

impl Naming {
    /// Every strategy, default first.
    pub const ALL: [Naming; 3] = [Naming::Hash, Naming::Preserve, Naming::Flatten];

    /// The strategy's name as given on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Naming::Hash => "hash",
            Naming::Preserve => "preserve",
            Naming::Flatten => "flatten",
        }
    }
}

impl FromStr for Naming {
    type Err = Error;

    fn from_str(s: &str) -> Result<Naming> {
        Naming::ALL
            .into_iter()
            .find(|naming| naming.as_str() == s)
            .ok_or_else(|| Error::InvalidNaming {
                input: s.to_string(),
            })
    }
}

impl fmt::Display for Naming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where images are relocated: a registry host and a repository prefix.
///
/// Parsed from `HOST[:PORT][/PREFIX]`, e.g.
/// `registry.internal:5000/team/mirror`. Unlike in an image reference, the
/// first component is always the host, even `myhost` without a dot (see
/// [`Reference::has_recognizable_registry`] for what that means for the
/// printed names).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelocationTarget {
    registry: String,
    prefix: String,
    max_depth: Option<usize>,
}

impl RelocationTarget {
    /// Parse `HOST[:PORT][/PREFIX]`. Trailing slashes are ignored;
    /// `index.docker.io` is `docker.io`, which needs a prefix (a Docker Hub
    /// namespace). Prefix components follow the repository grammar.
    pub fn parse(input: &str) -> Result<RelocationTarget> {
        let invalid = |reason: String| Error::InvalidRelocationTarget {
            input: input.to_string(),
            reason,
        };
        if input.is_empty() {
            return Err(invalid(
                "empty target, expected HOST[:PORT][/PREFIX]".into(),
            ));
        }
        if input.contains("://") {
            return Err(invalid(
                "expected HOST[:PORT][/PREFIX] without a scheme such as https://".into(),
            ));
        }
        let trimmed = input.trim_end_matches('/');
        let (host, prefix) = trimmed.split_once('/').unwrap_or((trimmed, ""));
        reference::validate_host(host).map_err(&invalid)?;
        if !prefix.is_empty() {
            reference::validate_repository(prefix)
                .map_err(|reason| invalid(format!("prefix: {reason}")))?;
        }
        let registry = if host == "index.docker.io" {
            reference::DOCKER_HUB
        } else {
            host
        };
        if registry == reference::DOCKER_HUB && prefix.is_empty() {
            return Err(invalid(
                "docker.io needs a prefix naming a namespace, e.g. docker.io/myorg".into(),
            ));
        }
        let target = RelocationTarget {
            registry: registry.to_string(),
            prefix: prefix.to_string(),
            max_depth: None,
        };
        // Room for at least "/x".
        let len = target.to_string().len();
        if len + 2 > NAME_TOTAL_LENGTH_MAX {
            return Err(invalid(format!(
                "{len} characters leave no room for a repository within \
                 {NAME_TOTAL_LENGTH_MAX}"
            )));
        }
        Ok(target)
    }

    /// The same target on a registry that allows at most `depth` path
    /// components in a repository name (GitLab allows few): relocated names
    /// deeper than that keep their first components and join the rest with
    /// `-` (`team/a/b/c` at depth 3 is `team/a/b-c`). Deterministic; names
    /// that end up equal are refused by [`check_collisions`].
    pub fn with_max_depth(mut self, depth: usize) -> RelocationTarget {
        self.max_depth = Some(depth);
        self
    }

    /// The path depth limit, if any.
    pub fn max_depth(&self) -> Option<usize> {
        self.max_depth
    }

    /// The registry host, with its port if any.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository prefix, without leading or trailing `/`; may be empty.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The repository path (no host) `original` is relocated to with
    /// `naming`, e.g. `team/mirror/library-nginx-<md5>`.
    ///
    /// Fails with [`Error::Relocation`] when the result would not be a
    /// valid name, e.g. longer than 255 characters with `preserve` or
    /// `flatten`, or with a prefix too long for even the hash.
    pub fn relocate_repository(&self, original: &Reference, naming: Naming) -> Result<String> {
        let path = original.repository();
        let leaf = match naming {
            Naming::Hash => self.hash_leaf(original),
            Naming::Preserve => path.to_string(),
            Naming::Flatten => path.replace('/', "-"),
        };
        let leaf = match self.max_depth {
            Some(max) => self
                .fit_depth(&leaf, max)
                .map_err(|reason| self.relocation_error(original, naming, reason))?,
            None => leaf,
        };
        let repository = if self.prefix.is_empty() {
            leaf
        } else {
            format!("{}/{leaf}", self.prefix)
        };
        reference::validate_repository(&repository)
            .and_then(|()| {
                let len = self.registry.len() + 1 + repository.len();
                if len > NAME_TOTAL_LENGTH_MAX {
                    Err(format!(
                        "{}/{repository} is longer than {NAME_TOTAL_LENGTH_MAX} characters ({len})",
                        self.registry
                    ))
                } else {
                    Ok(())
                }
            })
            .map_err(|reason| self.relocation_error(original, naming, reason))?;
        Ok(repository)
    }

    /// `original` relocated with `naming`: the same tag and digest, in the
    /// repository [`RelocationTarget::relocate_repository`] gives.
    pub fn relocate(&self, original: &Reference, naming: Naming) -> Result<Reference> {
        let repository = self.relocate_repository(original, naming)?;
        Reference::in_repository(
            &self.registry,
            &repository,
            original.tag(),
            original.digest().cloned(),
        )
        .map_err(|err| self.relocation_error(original, naming, err.to_string()))
    }

    /// `leaf` cut to the depth `max` leaves below the prefix: its first
    /// components kept, the rest joined with `-` into the last.
    fn fit_depth(&self, leaf: &str, max: usize) -> std::result::Result<String, String> {
        let prefix_depth = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.split('/').count()
        };
        if prefix_depth >= max {
            return Err(format!(
                "the prefix {:?} has {prefix_depth} path component(s), leaving none under \
                 --max-depth {max}",
                self.prefix
            ));
        }
        let room = max - prefix_depth;
        let parts: Vec<&str> = leaf.split('/').collect();
        if parts.len() <= room {
            return Ok(leaf.to_string());
        }
        let mut kept: Vec<String> = parts[..room - 1].iter().map(|p| p.to_string()).collect();
        kept.push(parts[room - 1..].join("-"));
        Ok(kept.join("/"))
    }

    /// The last component of a hash-named repository: the Go library's
    /// `FlattenRepoPath` without the prefix.
    fn hash_leaf(&self, original: &Reference) -> String {
        let hash = hex::encode(Md5::digest(original.name().as_bytes()));
        // What "PREFIX/" + "-" + hash leaves of the name limit; may be
        // negative, then nothing of the path fits.
        let fixed = self.to_string().len() + 1 + 1 + HASH_LEN;
        let available = NAME_TOTAL_LENGTH_MAX as isize - fixed as isize;
        let components: Vec<&str> = original.repository().split('/').collect();
        let kept = crunch(&components, available);
        if kept.is_empty() {
            hash
        } else {
            format!("{}-{hash}", kept.join("-"))
        }
    }

    fn relocation_error(&self, original: &Reference, naming: Naming, reason: String) -> Error {
        Error::Relocation {
            original: original.name(),
            target: self.to_string(),
            naming: naming.to_string(),
            reason,
        }
    }
}

/// The longest reduction of `components` whose `-`-join fits in `available`
/// characters, as the Go library's `crunch`: all components, then the
/// first n-1, a literal `-` component and the last, for n down to 1 (n = 1
/// keeps the last alone); failing all, the first alone, or nothing.
///
/// The `-` component makes names such as `a-b---z`: three dashes between
/// two alphanumerics are a valid separator, and every component starts
/// and ends alphanumeric, so the join is always a valid path component.
fn crunch<'a>(components: &[&'a str], available: isize) -> Vec<&'a str> {
    let fits = |kept: &[&str]| {
        let len = kept.iter().map(|c| c.len()).sum::<usize>() + kept.len().saturating_sub(1);
        len as isize <= available
    };
    for n in (1..=components.len()).rev() {
        let reduced = reduce(components, n);
        if fits(&reduced) {
            return reduced;
        }
    }
    match components.first() {
        Some(first) if first.len() as isize <= available => vec![*first],
        _ => Vec::new(),
    }
}

/// The Go library's `reduce`: `components` unchanged if it has fewer than
/// two or at most `n`; the last alone if `n` < 2; else the first `n`-1, `-`
/// and the last.
fn reduce<'a>(components: &[&'a str], n: usize) -> Vec<&'a str> {
    if components.len() < 2 || components.len() <= n {
        return components.to_vec();
    }
    let last = components[components.len() - 1];
    if n < 2 {
        return vec![last];
    }
    let mut reduced = components[..n - 1].to_vec();
    reduced.push("-");
    reduced.push(last);
    reduced
}

/// Fail if two different original repositories are relocated to the same
/// repository. `pairs` are (original, relocated) references; tags and
/// digests are ignored, so many tags of one repository are fine.
///
/// The error names the first two originals found colliding, in the order
/// given.
pub fn check_collisions<'a>(
    pairs: impl IntoIterator<Item = (&'a Reference, &'a Reference)>,
) -> Result<()> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (original, relocated) in pairs {
        let target = relocated.name();
        let name = original.name();
        match seen.get(&target) {
            Some(first) if *first != name => {
                return Err(Error::NameCollision {
                    first: first.clone(),
                    second: name,
                    target,
                });
            }
            Some(_) => {}
            None => {
                seen.insert(target, name);
            }
        }
    }
    Ok(())
}

impl FromStr for RelocationTarget {
    type Err = Error;

    fn from_str(s: &str) -> Result<RelocationTarget> {
        RelocationTarget::parse(s)
    }
}

impl fmt::Display for RelocationTarget {
    /// `HOST[:PORT][/PREFIX]`, the `P` of the Go library's rule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.registry)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

impl fmt::Debug for RelocationTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelocationTarget({self})")
    }
}

crate::serde_str::serde_via_str!(Naming, RelocationTarget);

#[cfg(test)]
#[path = "naming_tests.rs"]
mod tests;
