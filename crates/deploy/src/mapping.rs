//! The relocation mapping `ferry unpack --mapping` writes (docs/mapping.md):
//! a JSON object from each original reference to its relocated,
//! digest-pinned reference.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ferry_oci::Reference;

use crate::{Error, Result};

/// The largest mapping file read (a mapping line is ~200 bytes: this is
/// hundreds of thousands of images).
const MAX_MAPPING_BYTES: u64 = 64 * 1024 * 1024;

/// One line of the mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key as written.
    pub key: String,
    /// The key, normalized.
    pub original: Reference,
    /// Where it lives now: always with a digest.
    pub relocated: Reference,
}

/// A relocation mapping, sorted by key.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    entries: Vec<Entry>,
    /// Entry index by normalized original.
    by_original: HashMap<Reference, usize>,
    /// Entry indexes by original repository name.
    by_name: HashMap<String, Vec<usize>>,
}

impl Mapping {
    /// Read and check a mapping file.
    pub fn load(path: &Path) -> Result<Mapping> {
        let bad = |reason: String| Error::Mapping {
            path: path.to_path_buf(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        if meta.len() > MAX_MAPPING_BYTES {
            return Err(bad(format!(
                "larger than {} MiB; not a mapping?",
                MAX_MAPPING_BYTES / 1024 / 1024
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        Mapping::from_json(&bytes).map_err(bad)
    }

    /// Read a mapping from its JSON text; the error says what is wrong.
    pub fn from_json(bytes: &[u8]) -> std::result::Result<Mapping, String> {
        let raw: BTreeMap<String, String> = serde_json::from_slice(bytes).map_err(|e| {
            format!("not a relocation mapping (a JSON object of reference strings): {e}")
        })?;
        let mut entries = Vec::with_capacity(raw.len());
        for (key, value) in raw {
            let original = Reference::parse(&key).map_err(|e| format!("key {key:?}: {e}"))?;
            let relocated =
                Reference::parse(&value).map_err(|e| format!("value of {key:?}: {e}"))?;
            if relocated.digest().is_none() {
                return Err(format!(
                    "value of {key:?} ({value}) has no digest; ferry unpack pins every value"
                ));
            }
            entries.push(Entry {
                key,
                original,
                relocated,
            });
        }
        let mut by_original = HashMap::with_capacity(entries.len());
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            by_original.entry(e.original.clone()).or_insert(i);
            by_name.entry(e.original.name()).or_default().push(i);
        }
        Ok(Mapping {
            entries,
            by_original,
            by_name,
        })
    }

    /// Every entry, sorted by key.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Where `reference` lives now, digest-pinned:
    ///
    /// - a key equal to it (after normalization): its value;
    /// - a reference with a digest: an entry of the same repository whose
    ///   key or value has that digest (packed by tag, pinned in the file),
    ///   relocated with the reference's own tag, if any, and that digest.
    pub fn lookup(&self, reference: &Reference) -> Option<Reference> {
        if let Some(&i) = self.by_original.get(reference) {
            return Some(self.entries[i].relocated.clone());
        }
        let digest = reference.digest()?;
        let e = self
            .by_name
            .get(&reference.name())?
            .iter()
            .map(|&i| &self.entries[i])
            .find(|e| {
                e.original.digest() == Some(digest) || e.relocated.digest() == Some(digest)
            })?;
        let repo = e.relocated.with_digest(digest.clone());
        match reference.tag() {
            Some(tag) => repo.with_tag(tag).ok().map(|r| r.pinned(digest.clone())),
            None => Some(repo),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn mapping() -> Mapping {
        Mapping::from_json(
            format!(r#"{{"docker.io/library/nginx:1.25": "reg.local/t/library-nginx:1.25@{D1}"}}"#)
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn short_names_find_their_fully_qualified_key() {
        let m = mapping();
        let r = m.lookup(&Reference::parse("nginx:1.25").unwrap()).unwrap();
        assert_eq!(
            r.to_string(),
            format!("reg.local/t/library-nginx:1.25@{D1}")
        );
        assert!(m.lookup(&Reference::parse("nginx:1.26").unwrap()).is_none());
    }

    #[test]
    fn a_pinned_reference_finds_the_entry_with_its_digest() {
        let m = mapping();
        let r = m
            .lookup(&Reference::parse(&format!("nginx@{D1}")).unwrap())
            .unwrap();
        assert_eq!(r.to_string(), format!("reg.local/t/library-nginx@{D1}"));
        let r = m
            .lookup(&Reference::parse(&format!("nginx:1.25@{D1}")).unwrap())
            .unwrap();
        assert_eq!(
            r.to_string(),
            format!("reg.local/t/library-nginx:1.25@{D1}")
        );
    }

    #[test]
    fn unpinned_values_and_junk_are_refused() {
        assert!(Mapping::from_json(br#"{"nginx:1": "reg.local/x:1"}"#)
            .unwrap_err()
            .contains("no digest"));
        assert!(Mapping::from_json(b"[1]")
            .unwrap_err()
            .contains("not a relocation mapping"));
    }
}
