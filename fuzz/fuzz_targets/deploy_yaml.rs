//! Deployment files are untrusted input: reading and rewriting any bytes
//! must never panic, and a rewrite must keep every line break.
#![no_main]

use ferry_deploy::{rewrite_text, Mapping};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mapping = Mapping::from_json(
        br#"{"docker.io/library/nginx:1": "reg.local/m/library-nginx:1@sha256:8888888888888888888888888888888888888888888888888888888888888888"}"#,
    )
    .unwrap();
    if let Ok(r) = rewrite_text("fuzz", None, text, &mapping) {
        assert_eq!(text.matches('\n').count(), r.text.matches('\n').count());
    }
});
