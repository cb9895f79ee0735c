//! Which distribution API endpoint a request path names.
//!
//! Paths are matched as sent, never percent-decoded: a repository name
//! must match the distribution grammar (lowercase alphanumerics joined by
//! `.`, `_`, `__`, `-` runs, components by `/`), so `..`, `%2e%2e`, empty
//! components and anything encoded are simply names that do not exist.
//! Nothing here touches a filesystem path.

use ferry_oci::Digest;

/// The longest repository name served (the distribution limit).
pub(crate) const MAX_NAME: usize = 255;

/// An endpoint of the distribution API.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/manifests/<reference>`
    Manifest { name: &'a str, reference: Ref<'a> },
    /// `/v2/<name>/blobs/<digest>`
    Blob { name: &'a str, digest: Digest },
    /// `/v2/<name>/blobs/uploads/...`: writes, refused.
    Upload,
    /// `/v2/<name>/tags/list`
    Tags { name: &'a str },
    /// `/v2/<name>/referrers/<digest>`
    Referrers { name: &'a str, digest: Digest },
    /// A well-formed endpoint whose name is not a repository name.
    BadName,
    /// A digest that does not parse.
    BadDigest,
    /// A tag that does not parse.
    BadTag,
    /// Anything else.
    NotFound,
}

/// A manifest reference: a tag or a digest.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ref<'a> {
    Tag(&'a str),
    Digest(Digest),
}

/// Match a request path.
pub(crate) fn route(path: &str) -> Route<'_> {
    let Some(rest) = path.strip_prefix("/v2/") else {
        return if path == "/v2" {
            Route::Base
        } else {
            Route::NotFound
        };
    };
    if rest.is_empty() {
        return Route::Base;
    }
    if rest == "_catalog" {
        return Route::Catalog;
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let n = segments.len();
    if n < 2 {
        return Route::NotFound;
    }
    // Matched from the end, so a repository may have a component called
    // `manifests` or `blobs`.
    let name_before = |k: usize| -> Option<&str> {
        let len: usize = segments[..n - k].iter().map(|s| s.len() + 1).sum::<usize>();
        (len > 1).then(|| &rest[..len - 1])
    };
    let (last, second) = (segments[n - 1], segments[n - 2]);
    if n >= 3 && (second == "uploads" && segments[n - 3] == "blobs") {
        return Route::Upload;
    }
    if n >= 4 && segments[n - 3] == "uploads" && segments[n - 4] == "blobs" {
        return Route::Upload;
    }
    let checked = |k: usize| name_before(k).filter(|name| valid_name(name));
    match (second, last) {
        ("tags", "list") => match checked(2) {
            Some(name) => Route::Tags { name },
            None => Route::BadName,
        },
        ("manifests", reference) => {
            let Some(name) = checked(2) else {
                return Route::BadName;
            };
            if reference.contains(':') {
                match reference.parse() {
                    Ok(digest) => Route::Manifest {
                        name,
                        reference: Ref::Digest(digest),
                    },
                    Err(_) => Route::BadDigest,
                }
            } else if valid_tag(reference) {
                Route::Manifest {
                    name,
                    reference: Ref::Tag(reference),
                }
            } else {
                Route::BadTag
            }
        }
        ("blobs", digest) | ("referrers", digest) => {
            let Some(name) = checked(2) else {
                return Route::BadName;
            };
            let Ok(digest) = digest.parse::<Digest>() else {
                return Route::BadDigest;
            };
            if second == "blobs" {
                Route::Blob { name, digest }
            } else {
                Route::Referrers { name, digest }
            }
        }
        _ => Route::NotFound,
    }
}

/// Whether `name` is a repository name in the distribution grammar:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`,
/// at most [`MAX_NAME`] bytes.
pub(crate) fn valid_name(name: &str) -> bool {
    name.len() <= MAX_NAME && !name.is_empty() && name.split('/').all(valid_component)
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Whether `tag` is a tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub(crate) fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

/// The decoded value of query parameter `key`, if present (the first one).
/// `+` stays `+`: media types in `artifactType` contain it.
pub(crate) fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn endpoints() {
        assert_eq!(route("/v2/"), Route::Base);
        assert_eq!(route("/v2"), Route::Base);
        assert_eq!(route("/v2/_catalog"), Route::Catalog);
        assert_eq!(
            route("/v2/src/base/manifests/1"),
            Route::Manifest {
                name: "src/base",
                reference: Ref::Tag("1")
            }
        );
        assert_eq!(
            route(&format!("/v2/a/manifests/{D}")),
            Route::Manifest {
                name: "a",
                reference: Ref::Digest(D.parse().unwrap())
            }
        );
        assert_eq!(
            route(&format!("/v2/x/blobs/y/blobs/{D}")),
            Route::Blob {
                name: "x/blobs/y",
                digest: D.parse().unwrap()
            }
        );
        assert_eq!(route("/v2/a/b/tags/list"), Route::Tags { name: "a/b" });
        assert_eq!(
            route(&format!("/v2/a/referrers/{D}")),
            Route::Referrers {
                name: "a",
                digest: D.parse().unwrap()
            }
        );
        assert_eq!(route("/v2/a/blobs/uploads/"), Route::Upload);
        assert_eq!(route("/v2/a/blobs/uploads/abc"), Route::Upload);
    }

    #[test]
    fn hostile_paths_are_names_that_do_not_exist() {
        for path in [
            "/v2/../etc/manifests/1",
            "/v2/a/../b/manifests/1",
            "/v2/%2e%2e/manifests/1",
            "/v2/a%2fb/manifests/1",
            "/v2//a/manifests/1",
            "/v2/A/manifests/1",
            "/v2/a./manifests/1",
            "/v2/a..b/manifests/1",
            "/v2/a/tags/list/..",
        ] {
            assert!(
                matches!(route(path), Route::BadName | Route::NotFound),
                "{path}: {:?}",
                route(path)
            );
        }
        assert_eq!(route("/v2/a/manifests/..%2f"), Route::BadTag);
        assert_eq!(route("/v2/a/blobs/sha256:..%2f"), Route::BadDigest);
        assert_eq!(route("/v2/a/manifests/"), Route::BadTag);
        assert_eq!(route("/etc/passwd"), Route::NotFound);
        let long = format!("/v2/{}/tags/list", "a".repeat(300));
        assert_eq!(route(&long), Route::BadName);
    }

    #[test]
    fn names_and_tags() {
        for ok in ["a", "a/b", "a-b", "a--b", "a__b", "a.b", "a_b/c0"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a___b", "a._b", "a/", "/a", "a//b", "A"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_tag("v1.2_3-x"));
        assert!(!valid_tag(".x"));
        assert!(!valid_tag(&"a".repeat(129)));
    }

    #[test]
    fn query() {
        let q = Some("n=2&last=a%2Fb&artifactType=application/vnd.x+json");
        assert_eq!(query_param(q, "n").as_deref(), Some("2"));
        assert_eq!(query_param(q, "last").as_deref(), Some("a/b"));
        assert_eq!(
            query_param(q, "artifactType").as_deref(),
            Some("application/vnd.x+json")
        );
        assert_eq!(query_param(q, "ns"), None);
    }
}
