//! The relocation mapping file.

use std::collections::BTreeMap;
use std::path::Path;

use crate::{Error, Result};

/// Write `mapping` (original -> relocated reference) to `path` as a JSON
/// object with sorted keys, atomically and durably
/// ([`ferry_oci::fsutil::write_atomic`]).
pub fn write_mapping(path: &Path, mapping: &BTreeMap<String, String>) -> Result<()> {
    let err = |source| Error::Mapping {
        path: path.to_path_buf(),
        source,
    };
    let mut json = serde_json::to_vec_pretty(mapping).map_err(|e| err(e.into()))?;
    json.push(b'\n');
    ferry_oci::fsutil::write_atomic(path, &json).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_sorted_json_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mapping.json");
        std::fs::write(&path, "old").unwrap();
        let mapping = BTreeMap::from([
            ("z.io/b:1".to_string(), "h/x:1@sha256:b".to_string()),
            ("a.io/a:1".to_string(), "h/y:1@sha256:a".to_string()),
        ]);
        write_mapping(&path, &mapping).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\n  \"a.io/a:1\": \"h/y:1@sha256:a\",\n  \"z.io/b:1\": \"h/x:1@sha256:b\"\n}\n"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn missing_directory_is_an_error_naming_the_file() {
        let err =
            write_mapping(Path::new("/nonexistent/dir/m.json"), &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/dir/m.json"), "{err}");
    }
}
