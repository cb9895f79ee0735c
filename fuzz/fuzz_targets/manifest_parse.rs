//! Any bytes as a manifest or index, with and without a served media type.
#![no_main]

use ferry_oci::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for served in [
        None,
        Some("application/vnd.oci.image.index.v1+json"),
        Some("application/vnd.docker.distribution.manifest.v2+json"),
    ] {
        if let Ok(m) = Manifest::parse(data.to_vec(), served) {
            let _ = (m.descriptor(), m.subject(), m.config(), m.artifact_type());
            let _ = (m.children().len(), m.layers().len(), m.blobs().count());
        }
    }
});
