//! `OUT.sha256`: the bundle's checksums in `sha256sum` format.
//!
//! One line per file, `<64 hex>  <name>`, names relative to the file's own
//! directory: for a split bundle every data part, then every parity part,
//! then the whole bundle under its unsplit name (the same line an unsplit
//! pack writes, so the published checksum does not depend on the media).
//! `sha256sum -c --ignore-missing OUT.tar.sha256` checks the parts;
//! `cat OUT.tar.[0-9]* | sha256sum` prints the whole's hash. The format is
//! documented (version 1) in docs/bundle-format.md.

use std::path::Path;

use crate::digest::{Algorithm, DigestHasher};
use crate::{Error, Result};

/// The largest checksum file read (a thousand parts fit many times over).
const MAX_LEN: u64 = 1 << 20;

/// The lines of a `sha256sum` file: (sha256 hex, file name), in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChecksumFile {
    entries: Vec<(String, String)>,
}

impl ChecksumFile {
    /// An empty file.
    pub fn new() -> ChecksumFile {
        ChecksumFile::default()
    }

    /// Add a line.
    pub fn push(&mut self, sha256_hex: impl Into<String>, name: impl Into<String>) {
        self.entries.push((sha256_hex.into(), name.into()));
    }

    /// The lines, in order.
    pub fn entries(&self) -> &[(String, String)] {
        &self.entries
    }

    /// The sha256 hex listed for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(_, n)| n == name)
            .map(|(h, _)| h.as_str())
    }

    /// Parse `sha256sum` output: `<hex>  <name>` or `<hex> *<name>`;
    /// blank lines are skipped, anything else is an error naming the line.
    pub fn parse(text: &str, path: &Path) -> Result<ChecksumFile> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let parsed = line.split_once(' ').and_then(|(hex, rest)| {
                let name = rest.strip_prefix(' ').or_else(|| rest.strip_prefix('*'))?;
                let ok = hex.len() == 64
                    && hex.bytes().all(|b| b.is_ascii_hexdigit())
                    && !name.is_empty()
                    && !name.contains('/');
                ok.then(|| (hex.to_ascii_lowercase(), name.to_string()))
            });
            match parsed {
                Some(entry) => entries.push(entry),
                None => {
                    return Err(Error::Layout {
                        entry: format!("{}:{}", path.display(), n + 1),
                        reason: "not a sha256sum line (<64 hex digits>  <file name>)".into(),
                    })
                }
            }
        }
        Ok(ChecksumFile { entries })
    }

    /// Read and parse the file at `path`.
    pub fn load(path: &Path) -> Result<ChecksumFile> {
        let meta = std::fs::metadata(path).map_err(|source| Error::Io {
            context: format!("reading {}", path.display()),
            source,
        })?;
        if meta.len() > MAX_LEN {
            return Err(Error::Layout {
                entry: path.display().to_string(),
                reason: format!("more than {MAX_LEN} bytes: not a bundle's checksum file"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            context: format!("reading {}", path.display()),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// The file's text.
    pub fn render(&self) -> String {
        self.entries
            .iter()
            .map(|(hex, name)| format!("{hex}  {name}\n"))
            .collect()
    }
}

/// The sha256 hex of the file at `path` and its length, read front to
/// back; `on_bytes` hears of each chunk (progress).
pub fn sha256_file(path: &Path, on_bytes: &mut dyn FnMut(u64)) -> std::io::Result<(String, u64)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = DigestHasher::new(Algorithm::Sha256);
    let mut buf = vec![0u8; crate::fsutil::HASH_READ];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                on_bytes(n as u64);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = hasher.len();
    Ok((hasher.finish().hex().to_string(), len))
}

/// The sha256 hex of a whole bundle: a plain file, or a split part set
/// (named by its first part `X.000`, or by `X` when only its parts exist),
/// whose parts are hashed in order as the one file they make up — what
/// `OUT.sha256` names as the whole and what a bundle signature covers.
pub fn bundle_sha256(path: &Path) -> Result<String> {
    use std::io::Read;
    let parts = super::PartSet::open(path)?;
    let mut reader = parts.reader();
    let mut hasher = DigestHasher::new(Algorithm::Sha256);
    let mut buf = vec![0u8; crate::fsutil::HASH_READ];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(Error::Io {
                    context: format!("reading {}", path.display()),
                    source,
                })
            }
        }
    }
    Ok(hasher.finish().hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_junk() {
        let a = "a".repeat(64);
        let text = format!("{a}  b.tar.000\n\n{} *b.tar\n", "B".repeat(64));
        let sums = ChecksumFile::parse(&text, Path::new("b.tar.sha256")).unwrap();
        assert_eq!(sums.get("b.tar"), Some("b".repeat(64).as_str()));
        assert_eq!(
            sums.render(),
            format!("{a}  b.tar.000\n{}  b.tar\n", "b".repeat(64))
        );
        for bad in ["nonsense", &format!("{a} b"), &format!("{a}  ../x")] {
            let err = ChecksumFile::parse(bad, Path::new("s")).unwrap_err();
            assert!(err.to_string().contains("s:1"), "{err}");
        }
    }
}
