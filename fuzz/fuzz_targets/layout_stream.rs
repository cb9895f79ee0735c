//! Any bytes as a layout tarball read from a pipe (`ferry unpack -`):
//! every blob handed out, read verified or skipped, then the rest of the
//! stream drained — each call returns Ok or Err, never panics, wraps or
//! hangs.
#![no_main]

use std::io::Read;

use ferry_oci::{LayoutStream, VerifyingReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut stream) = LayoutStream::new(std::io::Cursor::new(data.to_vec())) else {
        return;
    };
    let mut n = 0usize;
    loop {
        let blob = match stream.next_blob() {
            Ok(Some(blob)) => blob,
            Ok(None) => break,
            Err(_) => return,
        };
        // Read every other blob (verified); leave the rest for the stream
        // to skip, as unpack does with blobs the target already holds.
        if n.is_multiple_of(2) {
            let (digest, size) = (blob.digest().clone(), blob.size());
            let mut sink = Vec::new();
            let _ = VerifyingReader::new(blob, &digest, size)
                .take(1 << 20)
                .read_to_end(&mut sink);
        }
        n += 1;
    }
    let _ = (stream.index(), stream.index_json(), stream.problems().len());
    let _ = stream.finish();
});
