//! The `Range` header of a blob request.
//!
//! One byte range per request is served (`206 Partial Content`); that is
//! what registry clients send to resume a download. A header with more than
//! one range, or one that is not a byte range, is refused with `416` rather
//! than answered with a multipart body: it costs a client nothing to ask
//! again, and a header of thousands of tiny ranges costs the server
//! nothing to refuse.

/// What a `Range` header asks of a blob of a given size.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// No usable range header: the whole blob.
    All,
    /// Bytes `start..start+len`.
    Part { start: u64, len: u64 },
    /// Not satisfiable (past the end, several ranges, malformed).
    Unsatisfiable(&'static str),
}

/// The longest `Range` header looked at.
const MAX_HEADER: usize = 256;

/// Interpret `header` (the raw `Range` value, if any) for a blob of `size`
/// bytes.
pub(crate) fn wanted(header: Option<&[u8]>, size: u64) -> Wanted {
    let Some(raw) = header else {
        return Wanted::All;
    };
    if raw.len() > MAX_HEADER {
        return Wanted::Unsatisfiable("the Range header is too long");
    }
    let Ok(text) = std::str::from_utf8(raw) else {
        return Wanted::Unsatisfiable("the Range header is not text");
    };
    let Some(spec) = text.trim().strip_prefix("bytes=") else {
        return Wanted::Unsatisfiable("only byte ranges are served");
    };
    if spec.contains(',') {
        return Wanted::Unsatisfiable("one range per request is served");
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::Unsatisfiable("malformed byte range");
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (first, last) = (first.trim(), last.trim());
    let (start, end_incl) = match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => {
            let Some(n) = num(last) else {
                return Wanted::Unsatisfiable("malformed byte range");
            };
            if n == 0 || size == 0 {
                return Wanted::Unsatisfiable("empty suffix range");
            }
            (size.saturating_sub(n), size - 1)
        }
        (false, _) => {
            let Some(a) = num(first) else {
                return Wanted::Unsatisfiable("malformed byte range");
            };
            let b = if last.is_empty() {
                u64::MAX
            } else {
                match num(last) {
                    Some(b) if b >= a => b,
                    _ => return Wanted::Unsatisfiable("malformed byte range"),
                }
            };
            if a >= size {
                return Wanted::Unsatisfiable("the range starts past the end of the blob");
            }
            (a, b.min(size - 1))
        }
        (true, true) => return Wanted::Unsatisfiable("malformed byte range"),
    };
    Wanted::Part {
        start,
        len: end_incl - start + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(h: &str, size: u64) -> Wanted {
        wanted(Some(h.as_bytes()), size)
    }

    #[test]
    fn ranges() {
        assert_eq!(wanted(None, 10), Wanted::All);
        assert_eq!(w("bytes=0-", 10), Wanted::Part { start: 0, len: 10 });
        assert_eq!(w("bytes=2-4", 10), Wanted::Part { start: 2, len: 3 });
        assert_eq!(w("bytes=2-400", 10), Wanted::Part { start: 2, len: 8 });
        assert_eq!(w("bytes=-3", 10), Wanted::Part { start: 7, len: 3 });
        assert_eq!(w("bytes=-30", 10), Wanted::Part { start: 0, len: 10 });
        assert_eq!(
            w("bytes=18446744073709551615-", 10),
            Wanted::Unsatisfiable("the range starts past the end of the blob")
        );
    }

    #[test]
    fn refused() {
        for h in [
            "bytes=10-",
            "bytes=5-2",
            "bytes=-0",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=x-1",
            "bytes=-",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
        ] {
            assert!(matches!(w(h, 10), Wanted::Unsatisfiable(_)), "{h}");
        }
        let many = format!("bytes={}", "0-0,".repeat(1000));
        assert!(matches!(w(&many, 10), Wanted::Unsatisfiable(_)));
        assert!(matches!(w("bytes=0-", 0), Wanted::Unsatisfiable(_)));
    }
}
