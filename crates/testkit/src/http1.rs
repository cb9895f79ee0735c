//! Just enough HTTP/1.1 for the fault proxy: message heads, and bodies
//! framed by `Content-Length`, chunked encoding or end of stream, copied
//! through without being held in memory.

use std::io::{self, BufRead, Read, Write};

/// Longest message head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// A request or status line and its header fields, in order.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) start: String,
    pub(crate) fields: Vec<(String, String)>,
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body at all.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the sender closes (responses only).
    UntilClose,
}

impl Head {
    /// `(method, path)` of a request line.
    pub(crate) fn request_line(&self) -> Option<(String, String)> {
        let mut parts = self.start.split(' ');
        let method = parts.next()?.to_string();
        let path = parts.next()?.to_string();
        Some((method, path))
    }

    /// The status code of a status line (0 if there is none).
    pub(crate) fn status(&self) -> u16 {
        self.start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// The first value of field `name` (case-insensitive).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Drop every field called `name`.
    pub(crate) fn remove(&mut self, name: &str) {
        self.fields.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    /// Append a field.
    pub(crate) fn push(&mut self, name: &str, value: &str) {
        self.fields.push((name.to_string(), value.to_string()));
    }

    /// Whether the sender asked to close the connection after this message.
    pub(crate) fn wants_close(&self) -> bool {
        self.get("connection")
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
            || self.start.ends_with("HTTP/1.0")
    }

    fn chunked(&self) -> bool {
        self.get("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    fn length(&self) -> Option<u64> {
        self.get("content-length")
            .and_then(|v| v.trim().parse().ok())
    }

    /// Body framing of a request.
    pub(crate) fn request_framing(&self) -> BodyFraming {
        if self.chunked() {
            BodyFraming::Chunked
        } else {
            match self.length() {
                Some(0) | None => BodyFraming::Empty,
                Some(n) => BodyFraming::Length(n),
            }
        }
    }

    /// Body framing of a response to a `method` request.
    pub(crate) fn response_framing(&self, method: &str) -> BodyFraming {
        let status = self.status();
        if method == "HEAD" || (100..200).contains(&status) || status == 204 || status == 304 {
            BodyFraming::Empty
        } else if self.chunked() {
            BodyFraming::Chunked
        } else {
            match self.length() {
                Some(0) => BodyFraming::Empty,
                Some(n) => BodyFraming::Length(n),
                None => BodyFraming::UntilClose,
            }
        }
    }

    /// The head as sent on the wire.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start);
        for (k, v) in &self.fields {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Read one line ending in CRLF (or LF), without the line end.
fn read_line(reader: &mut impl BufRead, budget: &mut usize) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let n = (&mut *reader)
        .take(*budget as u64)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    *budget = budget.saturating_sub(n);
    if line.last() != Some(&b'\n') {
        return Err(bad("message head too long or cut short"));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| bad("non-UTF-8 head"))
}

/// Read a message head; `None` when the peer closed before sending one.
pub(crate) fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut budget = MAX_HEAD;
    let start = loop {
        match read_line(reader, &mut budget)? {
            None => return Ok(None),
            // Tolerate stray CRLFs between messages.
            Some(l) if l.is_empty() => continue,
            Some(l) => break l,
        }
    };
    let mut fields = Vec::new();
    loop {
        let line = read_line(reader, &mut budget)?.ok_or_else(|| bad("head cut short"))?;
        if line.is_empty() {
            return Ok(Some(Head { start, fields }));
        }
        let (k, v) = line.split_once(':').ok_or_else(|| bad("bad header line"))?;
        fields.push((k.trim().to_string(), v.trim().to_string()));
    }
}

/// Copy one body from `from` to `to` as framed, chunk framing included.
pub(crate) fn copy_body(
    from: &mut impl BufRead,
    to: &mut impl Write,
    framing: BodyFraming,
) -> io::Result<()> {
    match framing {
        BodyFraming::Empty => Ok(()),
        BodyFraming::Length(n) => {
            let copied = io::copy(&mut (&mut *from).take(n), to)?;
            if copied != n {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
            Ok(())
        }
        BodyFraming::UntilClose => io::copy(from, to).map(|_| ()),
        BodyFraming::Chunked => loop {
            let mut budget = 4096;
            let line = read_line(from, &mut budget)?.ok_or_else(|| bad("chunk cut short"))?;
            to.write_all(line.as_bytes())?;
            to.write_all(b"\r\n")?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_text, 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                // Trailer fields, then an empty line.
                loop {
                    let mut budget = MAX_HEAD;
                    let t =
                        read_line(from, &mut budget)?.ok_or_else(|| bad("trailer cut short"))?;
                    to.write_all(t.as_bytes())?;
                    to.write_all(b"\r\n")?;
                    if t.is_empty() {
                        return Ok(());
                    }
                }
            }
            let copied = io::copy(&mut (&mut *from).take(size), to)?;
            if copied != size {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
            let mut budget = 16;
            let end = read_line(from, &mut budget)?.ok_or_else(|| bad("chunk cut short"))?;
            if !end.is_empty() {
                return Err(bad("chunk not followed by CRLF"));
            }
            to.write_all(b"\r\n")?;
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_pass_through_unchanged() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: y\r\n\r\nNEXT";
        let mut reader = io::BufReader::new(&wire[..]);
        let mut out = Vec::new();
        copy_body(&mut reader, &mut out, BodyFraming::Chunked).unwrap();
        assert_eq!(out, &wire[..wire.len() - 4]);
        let mut rest = String::new();
        reader.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "NEXT");
    }

    #[test]
    fn heads_and_framing() {
        let wire = b"PUT /v2/x/blobs/uploads/abc?digest=sha256:1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET";
        let mut reader = io::BufReader::new(&wire[..]);
        let head = read_head(&mut reader).unwrap().unwrap();
        assert_eq!(
            head.request_line().unwrap(),
            (
                "PUT".to_string(),
                "/v2/x/blobs/uploads/abc?digest=sha256:1".to_string()
            )
        );
        assert_eq!(head.request_framing(), BodyFraming::Length(3));
        assert!(!head.wants_close());
        let response = Head {
            start: "HTTP/1.1 200 OK".into(),
            fields: vec![("Content-Length".into(), "9".into())],
        };
        assert_eq!(response.response_framing("HEAD"), BodyFraming::Empty);
        assert_eq!(response.response_framing("GET"), BodyFraming::Length(9));
        let eof = Head {
            start: "HTTP/1.1 200 OK".into(),
            fields: vec![],
        };
        assert_eq!(eof.response_framing("GET"), BodyFraming::UntilClose);
        assert!(read_head(&mut io::BufReader::new(&b""[..]))
            .unwrap()
            .is_none());
    }
}
