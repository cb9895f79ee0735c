//! Any bytes as a layout tarball: opening it, listing it and reading every
//! blob (verified) must return Ok or Err, never panic or hang.
#![no_main]

use std::io::Read;

use ferry_oci::{Digest, LayoutArchive};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.tar");
    std::fs::write(&path, data).unwrap();
    let Ok(archive) = LayoutArchive::open_with_limit(&path, 1 << 20) else {
        return;
    };
    for d in archive.index() {
        let _ = archive.manifest(&d.digest, Some(&d.media_type));
    }
    let digests: Vec<Digest> = archive.blobs().map(|b| b.digest.clone()).collect();
    for digest in digests {
        let _ = archive.read_blob(&digest, 1 << 16);
        if let Ok(mut reader) = archive.verifying_blob_reader(&digest) {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        }
    }
});
