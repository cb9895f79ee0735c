//! Rewriting a sparse index (`--sparse rewrite`): the same document with
//! only the carried children listed.

use serde_json::Value;

/// `index` with only the `manifests` entries whose digest `keep` accepts.
///
/// Every other field, and the order of fields, is kept as it was (the
/// document is parsed in order, with `serde_json`'s `preserve_order`); the
/// result is written compactly, so its digest is new.
pub(crate) fn rewrite_index(
    index: &[u8],
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut doc: Value = serde_json::from_slice(index)?;
    if let Some(list) = doc.get_mut("manifests").and_then(Value::as_array_mut) {
        list.retain(|entry| {
            entry
                .get("digest")
                .and_then(Value::as_str)
                .is_some_and(&keep)
        });
    }
    serde_json::to_vec(&doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_field_order_and_unknown_fields() {
        let index = br#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {"mediaType": "m", "digest": "sha256:aa", "size": 1, "platform": {"os": "linux", "architecture": "amd64"}},
    {"mediaType": "m", "digest": "sha256:bb", "size": 2, "platform": {"os": "linux", "architecture": "arm64"}},
    {"mediaType": "m", "digest": "sha256:cc", "size": 3, "annotations": {"z": "1", "a": "2"}}
  ],
  "annotations": {"zz": "last", "aa": "first"},
  "x-unknown": [1, 2.5, null]
}"#;
        let out = rewrite_index(index, |d| d != "sha256:bb").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"m","digest":"sha256:aa","size":1,"platform":{"os":"linux","architecture":"amd64"}},{"mediaType":"m","digest":"sha256:cc","size":3,"annotations":{"z":"1","a":"2"}}],"annotations":{"zz":"last","aa":"first"},"x-unknown":[1,2.5,null]}"#
        );
    }

    #[test]
    fn refuses_broken_json() {
        assert!(rewrite_index(b"{", |_| true).is_err());
    }
}
