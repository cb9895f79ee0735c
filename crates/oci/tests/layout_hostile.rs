//! Hostile and broken archives: the reader refuses or reports, never
//! follows, never allocates from declared sizes.

use std::io::{ErrorKind, Read, Write};
use std::path::PathBuf;

use ferry_oci::{Digest, Error, LayoutArchive, LayoutProblemKind};
use tar::{EntryType, Header};

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const INDEX: &[u8] = br#"{"schemaVersion":2,"manifests":[]}"#;

/// Append one entry with a raw (unvalidated) name and, optionally, a size
/// field that lies about the data that follows.
fn raw(out: &mut Vec<u8>, name: &str, kind: EntryType, data: &[u8], declared: Option<u64>) {
    let mut h = Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(declared.unwrap_or(data.len() as u64));
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
}

fn file(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    raw(out, name, EntryType::Regular, data, None);
}

fn layout_start() -> Vec<u8> {
    let mut out = Vec::new();
    file(&mut out, "oci-layout", OCI_LAYOUT);
    file(&mut out, "index.json", INDEX);
    out
}

fn finish(mut out: Vec<u8>) -> Vec<u8> {
    out.extend_from_slice(&[0; 1024]);
    out
}

struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Scratch {
        Scratch(tempfile::tempdir().unwrap())
    }
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
    fn open(&self, bytes: &[u8]) -> ferry_oci::Result<LayoutArchive> {
        LayoutArchive::open(&self.write("t.tar", bytes))
    }
}

fn blob_name(d: &Digest) -> String {
    d.blob_path()
}

#[test]
fn truncated_archive_names_the_entry() {
    let s = Scratch::new();
    let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    let d = Digest::sha256_of(&big);
    let mut out = layout_start();
    file(&mut out, &blob_name(&d), &big);
    let whole = finish(out);
    let header_at = 2048; // after oci-layout and index.json

    let cut = &whole[..header_at + 512 + 50_000];
    let err = s.open(cut).unwrap_err();
    match &err {
        Error::Truncated {
            entry,
            declared,
            available,
        } => {
            assert_eq!(entry, &blob_name(&d));
            assert_eq!((*declared, *available), (100_000, 50_000));
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains(&d.hex()[..12]), "{err}");

    let err = s.open(&whole[..header_at + 100]).unwrap_err();
    assert!(
        matches!(&err, Error::Truncated { entry, .. } if entry.contains("offset 2048")),
        "{err}"
    );
}

#[test]
fn huge_declared_size_is_refused_without_allocating() {
    let s = Scratch::new();
    let mut out = layout_start();
    let d = Digest::sha256_of(b"small");
    raw(
        &mut out,
        &blob_name(&d),
        EntryType::Regular,
        b"small",
        Some(10 << 40),
    );
    let err = s.open(&finish(out)).unwrap_err();
    assert!(
        matches!(err, Error::Truncated { declared, .. } if declared == 10 << 40),
        "{err}"
    );

    // The same lie in a pax header's size record.
    let mut out = layout_start();
    raw(
        &mut out,
        "PaxHeaders/x",
        EntryType::XHeader,
        b"23 size=10995116277760\n",
        None,
    );
    file(&mut out, &blob_name(&d), b"small");
    let err = s.open(&finish(out)).unwrap_err();
    assert!(
        matches!(err, Error::Truncated { declared, .. } if declared == 10 << 40),
        "{err}"
    );

    // An extension header too big to hold in memory.
    let mut out = layout_start();
    raw(
        &mut out,
        "././@LongLink",
        EntryType::GNULongName,
        &[b'a'; 100],
        Some(1 << 40),
    );
    let err = s.open(&out).unwrap_err();
    assert!(matches!(err, Error::Truncated { .. }), "{err}");
}

#[test]
fn pax_size_and_long_names_from_other_writers_are_honoured() {
    let s = Scratch::new();
    let d = Digest::sha256_of(b"hello");
    let mut out = layout_start();
    raw(
        &mut out,
        "PaxHeaders/x",
        EntryType::XHeader,
        b"9 size=5\n",
        None,
    );
    raw(
        &mut out,
        &blob_name(&d),
        EntryType::Regular,
        b"hello",
        Some(0),
    );
    let name = format!("./././{}", blob_name(&d)).into_bytes();
    raw(
        &mut out,
        "././@LongLink",
        EntryType::GNULongName,
        &name,
        None,
    );
    file(&mut out, "ignored-short-name", b"hello");
    let archive = s.open(&finish(out)).unwrap();
    assert_eq!(archive.read_blob(&d, 10).unwrap(), b"hello");
    let kinds: Vec<_> = archive.problems().iter().map(|p| &p.kind).collect();
    assert_eq!(kinds, [&LayoutProblemKind::Duplicate]);
}

#[test]
fn escaping_names_are_refused() {
    let s = Scratch::new();
    for evil in ["../evil", "blobs/../../evil", "./a/../../x", "/etc/passwd"] {
        let mut out = layout_start();
        file(&mut out, evil, b"x");
        let err = s.open(&finish(out)).unwrap_err();
        assert!(
            matches!(&err, Error::Layout { entry, .. } if entry == evil),
            "{evil}: {err}"
        );
        assert!(err.to_string().contains("hostile"), "{err}");
    }
}

#[test]
fn links_and_special_files_are_problems_never_followed() {
    let s = Scratch::new();
    let d = Digest::sha256_of(b"x");
    let mut out = layout_start();
    let mut link = Header::new_gnu();
    link.set_entry_type(EntryType::Symlink);
    link.set_path(blob_name(&d)).unwrap();
    link.set_link_name("/etc/passwd").unwrap();
    link.set_cksum();
    out.extend_from_slice(link.as_bytes());
    raw(&mut out, "blobs/sha256/hard", EntryType::Link, b"", None);
    raw(&mut out, "fifo", EntryType::Fifo, b"", None);
    raw(&mut out, "blobs/sha256/E3B0", EntryType::Regular, b"", None);
    let archive = s.open(&finish(out)).unwrap();
    assert!(archive.blob(&d).is_none());
    let p = archive.problems();
    assert_eq!(p.len(), 4, "{p:?}");
    assert!(
        matches!(&p[0].kind, LayoutProblemKind::Link { hard: false, target } if target == "/etc/passwd")
    );
    assert!(matches!(
        &p[1].kind,
        LayoutProblemKind::Link { hard: true, .. }
    ));
    assert!(matches!(
        &p[2].kind,
        LayoutProblemKind::SpecialFile { type_flag: '6' }
    ));
    assert!(matches!(&p[3].kind, LayoutProblemKind::BadBlobName { .. }));
    assert!(p[0].to_string().contains("not followed"), "{}", p[0]);

    // A link standing in for index.json leaves the layout without one.
    let mut out = Vec::new();
    file(&mut out, "oci-layout", OCI_LAYOUT);
    raw(&mut out, "index.json", EntryType::Symlink, b"", None);
    let err = s.open(&finish(out)).unwrap_err();
    assert!(
        matches!(&err, Error::Layout { entry, .. } if entry == "index.json"),
        "{err}"
    );
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn inflating_without_end_is_refused() {
    let s = Scratch::new();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        enc.write_all(&zeros).unwrap();
    }
    let path = s.write("bomb.tar.gz", &enc.finish().unwrap());
    let err = LayoutArchive::open_with_limit(&path, 4 << 20).unwrap_err();
    assert!(
        matches!(err, Error::InflateLimit { limit } if limit == 4 << 20),
        "{err}"
    );
    assert!(err.to_string().contains("decompress it first"), "{err}");

    let zst = s.write(
        "bomb.tar.zst",
        &zstd::encode_all(&vec![0u8; 8 << 20][..], 3).unwrap(),
    );
    let err = LayoutArchive::open_with_limit(&zst, 1 << 20).unwrap_err();
    assert!(matches!(err, Error::InflateLimit { .. }), "{err}");
}

#[test]
fn broken_compressed_streams_and_unknown_formats_are_refused() {
    let s = Scratch::new();
    let gz = gzip(&finish(layout_start()));
    let err = s.open(&gz[..gz.len() / 2]).unwrap_err();
    assert!(err.to_string().starts_with("decompressing"), "{err}");
    let err = s.open(b"\xfd7zXZ\0rest").unwrap_err();
    assert!(err.to_string().contains("xz"), "{err}");
    let err = s.open(&[b'x'; 2048]).unwrap_err();
    assert!(err.to_string().contains("not a tar archive"), "{err}");
    let err = s.open(b"").unwrap_err();
    assert!(err.to_string().contains("oci-layout"), "{err}");
}

#[test]
fn metadata_must_be_present_valid_and_supported() {
    let s = Scratch::new();
    let mut out = Vec::new();
    file(&mut out, "index.json", INDEX);
    let err = s.open(&finish(out)).unwrap_err();
    assert!(
        err.to_string().contains("oci-layout") && err.to_string().contains("missing"),
        "{err}"
    );

    let mut out = Vec::new();
    file(&mut out, "oci-layout", OCI_LAYOUT);
    file(
        &mut out,
        "index.json",
        b"{\"manifests\": [{\"digest\": \"sha256:nope\"}]}",
    );
    let err = s.open(&finish(out)).unwrap_err();
    assert!(
        matches!(&err, Error::LayoutJson { entry, .. } if entry == "index.json"),
        "{err}"
    );

    let mut out = Vec::new();
    file(&mut out, "oci-layout", br#"{"imageLayoutVersion":"2.0.0"}"#);
    file(&mut out, "index.json", INDEX);
    let err = s.open(&finish(out)).unwrap_err();
    assert!(err.to_string().contains("2.0.0"), "{err}");
}

#[test]
fn duplicates_are_problems_unless_they_differ() {
    let s = Scratch::new();
    let d = Digest::sha256_of(b"abc");
    let mut out = layout_start();
    file(&mut out, &blob_name(&d), b"abc");
    file(&mut out, &format!("./{}", blob_name(&d)), b"abc");
    file(&mut out, "index.json", INDEX);
    let archive = s.open(&finish(out.clone())).unwrap();
    assert_eq!(archive.problems().len(), 2);
    assert!(archive
        .problems()
        .iter()
        .all(|p| p.kind == LayoutProblemKind::Duplicate));
    assert_eq!(archive.blob(&d).unwrap().data_offset, 3072 + 512); // the later copy

    let mut longer = out.clone();
    file(&mut longer, &blob_name(&d), b"abcd");
    assert!(matches!(s.open(&finish(longer)), Err(Error::Layout { .. })));
    file(&mut out, "index.json", br#"{"manifests":[]}"#);
    let err = s.open(&finish(out)).unwrap_err();
    assert!(err.to_string().contains("different content"), "{err}");
}

fn archive_with(blobs: &[(&Digest, &[u8])]) -> Vec<u8> {
    let mut out = layout_start();
    for (d, b) in blobs {
        file(&mut out, &blob_name(d), b);
    }
    finish(out)
}

#[test]
fn content_not_matching_its_name_is_caught_on_read() {
    let s = Scratch::new();
    let claimed = Digest::sha256_of(b"the real thing");
    let archive = s
        .open(&archive_with(&[(&claimed, b"an impostor!!!")]))
        .unwrap();
    assert!(matches!(
        archive.read_blob(&claimed, 100),
        Err(Error::DigestMismatch { .. })
    ));
    let mut plain = Vec::new();
    archive
        .blob_reader(&claimed)
        .unwrap()
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, b"an impostor!!!");
    let err = archive
        .verifying_blob_reader(&claimed)
        .unwrap()
        .read_to_end(&mut Vec::new())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert!(archive.manifest(&claimed, None).is_err());
}

#[test]
fn threads_read_one_archive_at_once() {
    fn assert_shareable<T: Send + Sync>() {}
    assert_shareable::<LayoutArchive>();
    let s = Scratch::new();
    let a: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let b: Vec<u8> = (0..2_500_000u32).map(|i| (i % 241) as u8).collect();
    let (da, db) = (Digest::sha256_of(&a), Digest::sha256_of(&b));
    let archive = s.open(&archive_with(&[(&da, &a), (&db, &b)])).unwrap();
    std::thread::scope(|scope| {
        for (d, want) in [(&da, &a), (&db, &b), (&da, &a)] {
            let archive = &archive;
            scope.spawn(move || {
                let mut reader = archive.verifying_blob_reader(d).unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = reader.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                assert!(got == *want);
            });
        }
    });
}
