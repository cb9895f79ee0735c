//! Reading what a registry answers: headers and small JSON bodies.
//!
//! Everything here reads input a registry chose, so every function takes
//! any bytes and returns `None` or an error for what it cannot use; none
//! panics (property-tested below). The transport and the client call these
//! and nothing else to read a response.

use std::time::Duration;

use ferry_oci::{Descriptor, Digest};
use reqwest::header::HeaderMap;

/// The target of the `rel="next"` link in a `Link` header (RFC 8288):
/// `</v2/repo/tags/list?last=x&n=1000>; rel="next"`. `None` when there is
/// no such link, or the header is malformed.
pub(crate) fn next_link(header: &str) -> Option<&str> {
    let mut rest = header;
    loop {
        let open = rest.find('<')?;
        let after_open = &rest[open + 1..];
        let close = after_open.find('>')?;
        let target = &after_open[..close];
        let after_close = &after_open[close + 1..];
        // Parameters run up to the next link-value.
        let params_end = after_close.find('<').unwrap_or(after_close.len());
        let params = &after_close[..params_end];
        if is_rel_next(params) && !target.trim().is_empty() {
            return Some(target.trim());
        }
        rest = &after_close[params_end..];
    }
}

fn is_rel_next(params: &str) -> bool {
    params.split(';').any(|param| {
        let Some((key, value)) = param.split_once('=') else {
            return false;
        };
        key.trim().eq_ignore_ascii_case("rel")
            && value
                .trim()
                .trim_matches('"')
                .split_ascii_whitespace()
                .any(|rel| rel.eq_ignore_ascii_case("next"))
    })
}

/// `Retry-After` in seconds. An HTTP-date (rare from registries) is not
/// read: the retry policy's own backoff applies instead.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A header's value as text (`None` when absent or not visible ASCII).
pub(crate) fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `Docker-Content-Digest`, when present and a valid digest.
pub(crate) fn content_digest(headers: &HeaderMap) -> Option<Digest> {
    header_text(headers, "docker-content-digest")?
        .trim()
        .parse()
        .ok()
}

/// `Content-Length`, when present and a number.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    header_text(headers, reqwest::header::CONTENT_LENGTH.as_str())?
        .trim()
        .parse()
        .ok()
}

/// A `Content-Type` value without its parameters (`; charset=...`).
pub(crate) fn bare_media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// The first entry of a registry error body
/// (`{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"..."}]}`):
/// its code and message, each when present.
pub(crate) fn registry_error(body: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: Option<String>,
        message: Option<String>,
    }
    serde_json::from_slice::<Errors>(body)
        .ok()
        .and_then(|e| e.errors.into_iter().next())
        .map(|e| (e.code, e.message))
        .unwrap_or((None, None))
}

/// The tags of a tag-list page (`{"name":..,"tags":[..]}`; `tags` may be
/// `null` or absent for a repository without tags).
pub(crate) fn tag_page(body: &[u8]) -> Result<Vec<String>, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Tags {
        #[serde(default)]
        tags: Option<Vec<String>>,
    }
    serde_json::from_slice::<Tags>(body).map(|t| t.tags.unwrap_or_default())
}

/// The descriptors of a referrers index.
pub(crate) fn referrers_index(body: &[u8]) -> Result<Vec<Descriptor>, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Index {
        #[serde(default)]
        manifests: Vec<Descriptor>,
    }
    serde_json::from_slice::<Index>(body).map(|i| i.manifests)
}

/// A token service's answer: the token, and how long to keep it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TokenAnswer {
    pub(crate) token: String,
    pub(crate) ttl: Duration,
}

/// Longest a token is kept, whatever its answer claims.
pub(crate) const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// Read a token service's answer (`token` or the OAuth2 `access_token`,
/// `expires_in` seconds, 60 by default). The token is renewed 5 s early,
/// and kept at least 5 s and at most [`MAX_TOKEN_TTL`]. `None` when the
/// answer holds no token.
pub(crate) fn token_answer(body: &[u8]) -> Option<TokenAnswer> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        access_token: Option<String>,
        #[serde(default)]
        expires_in: Option<u64>,
    }
    let answer: Answer = serde_json::from_slice(body).ok()?;
    let token = answer
        .token
        .filter(|t| !t.is_empty())
        .or(answer.access_token)
        .filter(|t| !t.is_empty())?;
    let secs = answer
        .expires_in
        .unwrap_or(60)
        .clamp(10, MAX_TOKEN_TTL.as_secs());
    Some(TokenAnswer {
        token,
        ttl: Duration::from_secs(secs - 5),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn next_links() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=x&n=1000>; rel="next""#),
            Some("/v2/a/tags/list?last=x&n=1000")
        );
        assert_eq!(
            next_link(r#"<https://r.example/v2/a/tags/list?last=x>; rel=next"#),
            Some("https://r.example/v2/a/tags/list?last=x")
        );
        assert_eq!(
            next_link(r#"</prev>; rel="prev", </next>; rel="next""#),
            Some("/next")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
        assert_eq!(next_link(""), None);
        assert_eq!(next_link("<>; rel=next"), None);
    }

    /// Issue 14: `>` before `<` made the tag-list pagination slice
    /// `l[start..end]` with `start > end`, and panic.
    #[test]
    fn a_link_header_closed_before_it_opens_does_not_panic() {
        assert_eq!(next_link(r#">; rel="next" </v2/a/tags/list>"#), None);
        assert_eq!(next_link("><"), None);
        assert_eq!(next_link(r#"> <x>; rel="next""#), Some("x"));
    }

    /// A token answer claiming to live for ever panicked when its expiry
    /// (`Instant::now() + ttl`) overflowed.
    #[test]
    fn token_lifetimes_are_bounded() {
        let forever = format!(r#"{{"token":"t","expires_in":{}}}"#, u64::MAX);
        let answer = token_answer(forever.as_bytes()).unwrap();
        assert_eq!(answer.ttl, MAX_TOKEN_TTL - Duration::from_secs(5));
        let brief = token_answer(br#"{"access_token":"a","expires_in":0}"#).unwrap();
        assert_eq!(brief.token, "a");
        assert_eq!(brief.ttl, Duration::from_secs(5));
        let default = token_answer(br#"{"token":"","access_token":"b"}"#).unwrap();
        assert_eq!((default.token.as_str(), default.ttl.as_secs()), ("b", 55));
        assert_eq!(token_answer(br#"{"token":""}"#), None);
        assert_eq!(token_answer(b"not json"), None);
    }

    #[test]
    fn registry_errors_and_pages() {
        let (code, message) =
            registry_error(br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"m"}]}"#);
        assert_eq!(code.as_deref(), Some("MANIFEST_BLOB_UNKNOWN"));
        assert_eq!(message.as_deref(), Some("m"));
        assert_eq!(registry_error(b"<html>"), (None, None));
        assert_eq!(
            tag_page(br#"{"name":"a","tags":null}"#).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(tag_page(br#"{"tags":["1","2"]}"#).unwrap(), ["1", "2"]);
        assert!(tag_page(b"[").is_err());
        assert!(referrers_index(br#"{"manifests":[{"digest":"nope"}]}"#).is_err());
        assert_eq!(
            bare_media_type("application/json; charset=utf-8"),
            "application/json"
        );
    }

    fn headers(name: &'static str, value: &[u8]) -> Option<HeaderMap> {
        let value = reqwest::header::HeaderValue::from_bytes(value).ok()?;
        let mut map = HeaderMap::new();
        map.insert(name, value);
        Some(map)
    }

    /// Text shaped like the headers and bodies registries send, with the
    /// punctuation the parsers split on over-represented.
    fn registry_text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just("<".to_string()),
                Just(">".to_string()),
                Just(";".to_string()),
                Just(",".to_string()),
                Just("=".to_string()),
                Just("\"".to_string()),
                Just(" ".to_string()),
                Just("rel".to_string()),
                Just("next".to_string()),
                Just("realm".to_string()),
                Just("Bearer ".to_string()),
                Just("Basic ".to_string()),
                Just("sha256:".to_string()),
                Just("{\"errors\":[{\"code\":".to_string()),
                Just("{\"tags\":[".to_string()),
                Just("{\"manifests\":[{".to_string()),
                Just("{\"token\":".to_string()),
                Just("\"expires_in\":".to_string()),
                Just("18446744073709551615".to_string()),
                Just("}".to_string()),
                Just("]".to_string()),
                "[0-9a-f]{1,64}",
                "\\PC{0,8}",
            ],
            0..24,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn link_headers_never_panic(text in registry_text()) {
            if let Some(target) = next_link(&text) {
                prop_assert!(text.contains(target));
                prop_assert!(!target.contains('>'));
            }
        }

        #[test]
        fn headers_never_panic(value in prop::collection::vec(any::<u8>(), 0..80), text in registry_text()) {
            for bytes in [value.as_slice(), text.as_bytes()] {
                if let Some(map) = headers("retry-after", bytes) {
                    let _ = retry_after(&map);
                }
                if let Some(map) = headers("docker-content-digest", bytes) {
                    let _ = content_digest(&map);
                }
                if let Some(map) = headers("content-length", bytes) {
                    let _ = content_length(&map);
                }
                if let Some(map) = headers("content-type", bytes) {
                    let _ = header_text(&map, "content-type").map(|t| bare_media_type(&t));
                }
            }
        }

        #[test]
        fn challenges_never_panic(text in registry_text()) {
            let _ = crate::auth::Challenge::parse(&text);
        }

        #[test]
        fn bodies_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), text in registry_text()) {
            for body in [bytes.as_slice(), text.as_bytes()] {
                let _ = registry_error(body);
                let _ = tag_page(body);
                let _ = referrers_index(body);
                if let Some(answer) = token_answer(body) {
                    prop_assert!(answer.ttl <= MAX_TOKEN_TTL);
                    let _ = std::time::Instant::now() + answer.ttl;
                }
            }
        }
    }
}
