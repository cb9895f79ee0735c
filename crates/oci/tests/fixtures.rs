//! The committed archives other tools made (`fixtures/`, see its README):
//! both readers, the file one (`LayoutArchive`) and the pipe one
//! (`LayoutStream`), read skopeo's and podman's archives whole and verified,
//! and refuse the hostile ones with an error, never a panic.

use std::io::Read;
use std::path::{Path, PathBuf};

use ferry_oci::{Digest, Error, LayoutArchive, LayoutStream, VerifyingReader};

fn fixture(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name);
    assert!(
        path.is_file(),
        "{} missing: run fixtures/make.sh",
        path.display()
    );
    path
}

/// Every blob of the archive read through the file reader, verified; the
/// digests in archive order.
fn read_file(path: &Path) -> Vec<Digest> {
    let archive = LayoutArchive::open(path).unwrap();
    assert!(archive.problems().is_empty(), "{:?}", archive.problems());
    assert_eq!(archive.index().len(), 1);
    let mut blobs: Vec<_> = archive.blobs().cloned().collect();
    blobs.sort_by_key(|b| b.data_offset);
    for b in &blobs {
        let mut sink = Vec::new();
        archive
            .verifying_blob_reader(&b.digest)
            .unwrap()
            .read_to_end(&mut sink)
            .unwrap();
        assert_eq!(sink.len() as u64, b.size);
    }
    blobs.into_iter().map(|b| b.digest).collect()
}

/// Every blob of the archive read from a pipe, verified; the digests in
/// archive order.
fn read_stream(path: &Path) -> Result<Vec<Digest>, Error> {
    let mut stream = LayoutStream::new(std::fs::File::open(path).unwrap())?;
    let mut seen = Vec::new();
    while let Some(blob) = stream.next_blob()? {
        let (digest, size) = (blob.digest().clone(), blob.size());
        let mut sink = Vec::new();
        VerifyingReader::new(blob, &digest, size)
            .read_to_end(&mut sink)
            .map_err(|source| Error::Io {
                context: format!("reading {digest}"),
                source,
            })?;
        seen.push(digest);
    }
    assert_eq!(stream.index().map(<[_]>::len), Some(1));
    stream.finish()?;
    Ok(seen)
}

#[test]
fn skopeo_and_podman_archives_read_the_same_through_both_readers() {
    for name in ["skopeo-base.tar", "podman-base.oci.tar"] {
        let path = fixture(name);
        let from_file = read_file(&path);
        assert_eq!(from_file.len(), 5, "{name}");
        assert_eq!(read_stream(&path).unwrap(), from_file, "{name}");
    }
}

#[test]
fn hostile_archives_are_refused_by_both_readers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/hostile");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.display().to_string();
        let stream = read_stream(&path).unwrap_err();
        let file = LayoutArchive::open(&path).map(|_| ()).unwrap_err();
        for err in [&stream, &file] {
            assert!(
                matches!(err, Error::Layout { .. } | Error::Truncated { .. }),
                "{name}: {err:?}"
            );
        }
        seen += 1;
    }
    assert!(
        seen >= 3,
        "only {seen} hostile fixtures in {}",
        dir.display()
    );
}
