//! The sequential reader against small archives built here.

use std::io::{Read, Write};

use super::super::tarfmt::{padded, push_headers};
use super::*;

const LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const INDEX: &[u8] = br#"{"schemaVersion":2,"manifests":[]}"#;

/// A tar of `(name, data)` entries written with ferry's own headers (pax
/// `path` records for long names), ended by two zero blocks.
fn tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in entries {
        push_headers(&mut out, name, data.len() as u64, name.ends_with('/'));
        out.extend_from_slice(data);
        out.resize(
            out.len() + (padded(data.len() as u64) as usize - data.len()),
            0,
        );
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn blob_name(data: &[u8], prefix: &str) -> (String, Digest) {
    let d = Digest::sha256_of(data);
    (format!("{prefix}blobs/sha256/{}", d.hex()), d)
}

/// Every blob of the stream: (digest, bytes), reading each fully.
fn blobs(stream: &mut LayoutStream) -> Result<Vec<(Digest, Vec<u8>)>> {
    let mut out = Vec::new();
    while let Some(mut blob) = stream.next_blob()? {
        let mut bytes = Vec::new();
        blob.read_to_end(&mut bytes).map_err(|source| Error::Io {
            context: "test".into(),
            source,
        })?;
        assert_eq!(bytes.len() as u64, blob.size());
        out.push((blob.digest().clone(), bytes));
    }
    Ok(out)
}

#[test]
fn blobs_come_in_archive_order_with_index_read_on_the_way() {
    let (a, da) = blob_name(b"first blob", "./");
    let (b, db) = blob_name(&[7u8; 1500], "");
    let data = tar(&[
        ("./", b""),
        ("./oci-layout", LAYOUT),
        ("./index.json", INDEX),
        ("./blobs/", b""),
        (&a, b"first blob"),
        (&b, &[7u8; 1500]),
    ]);
    let mut stream = LayoutStream::new(std::io::Cursor::new(data)).unwrap();
    assert_eq!(stream.compression(), Compression::None);
    let got = blobs(&mut stream).unwrap();
    assert_eq!(
        got,
        vec![(da, b"first blob".to_vec()), (db, vec![7u8; 1500])]
    );
    assert_eq!(stream.index_json(), Some(INDEX));
    assert_eq!(stream.oci_layout_version(), Some("1.0.0"));
    assert!(stream.problems().is_empty(), "{:?}", stream.problems());
    stream.finish().unwrap();
}

#[test]
fn unread_blobs_are_skipped_and_gzip_is_detected() {
    let (a, _) = blob_name(&[1u8; 3000], "");
    let (b, db) = blob_name(b"second", "");
    let data = tar(&[
        ("oci-layout", LAYOUT),
        ("index.json", INDEX),
        (&a, &[1u8; 3000]),
        (&b, b"second"),
    ]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&data).unwrap();
    let gz = gz.finish().unwrap();
    let mut stream = LayoutStream::new(std::io::Cursor::new(gz)).unwrap();
    assert_eq!(stream.compression(), Compression::Gzip);
    let mut first = stream.next_blob().unwrap().unwrap();
    let mut part = [0u8; 10];
    first.read_exact(&mut part).unwrap();
    let mut second = stream.next_blob().unwrap().unwrap();
    assert_eq!(second.digest(), &db);
    let mut bytes = Vec::new();
    second.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes, b"second");
    assert!(stream.next_blob().unwrap().is_none());
    stream.finish().unwrap();
}

#[test]
fn pax_long_names_are_applied() {
    let data = b"sha512 content";
    let hex = "ab".repeat(64);
    let long = format!("./blobs/sha512/{hex}");
    assert!(long.len() > 100);
    let bytes = tar(&[("oci-layout", LAYOUT), ("index.json", INDEX), (&long, data)]);
    let mut stream = LayoutStream::new(std::io::Cursor::new(bytes)).unwrap();
    let got = blobs(&mut stream).unwrap();
    assert_eq!(got[0].0.to_string(), format!("sha512:{hex}"));
    assert_eq!(got[0].1, data);
}

/// One ustar header naming `name` verbatim (no checks), then its data.
fn raw_entry(name: &str, data: &[u8], kind: tar::EntryType) -> Vec<u8> {
    let mut header = tar::Header::new_ustar();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_entry_type(kind);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(
        out.len() + (padded(data.len() as u64) as usize - data.len()),
        0,
    );
    out
}

#[test]
fn hostile_names_are_refused_and_links_ignored() {
    for bad in ["/etc/passwd", "../blobs/sha256/x", "blobs/../../x"] {
        let mut data = tar(&[("oci-layout", LAYOUT)]);
        data.truncate(data.len() - 1024);
        data.extend(raw_entry(bad, b"x", tar::EntryType::Regular));
        data.resize(data.len() + 1024, 0);
        let mut stream = LayoutStream::new(std::io::Cursor::new(data)).unwrap();
        let err = blobs(&mut stream).unwrap_err();
        assert!(
            err.to_string().contains("refused as hostile"),
            "{bad}: {err}"
        );
    }
    let mut data = raw_entry("index.json", b"", tar::EntryType::Symlink);
    data.extend(tar(&[("oci-layout", LAYOUT), ("index.json", INDEX)]));
    let mut stream = LayoutStream::new(std::io::Cursor::new(data)).unwrap();
    assert!(blobs(&mut stream).unwrap().is_empty());
    assert!(matches!(
        stream.problems()[0].kind,
        LayoutProblemKind::Link { hard: false, .. }
    ));
    assert_eq!(stream.index_json(), Some(INDEX));
}

#[test]
fn truncation_inside_a_blob_or_a_header_is_an_error() {
    let (a, _) = blob_name(&[9u8; 5000], "");
    let data = tar(&[
        ("oci-layout", LAYOUT),
        ("index.json", INDEX),
        (&a, &[9u8; 5000]),
    ]);
    let blob_start = data.len() - 1024 - padded(5000) as usize;
    // Cut inside the blob: reading it fails, and so does skipping it.
    let cut = data[..blob_start + 2000].to_vec();
    let mut stream = LayoutStream::new(std::io::Cursor::new(cut.clone())).unwrap();
    let err = blobs(&mut stream).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    let mut stream = LayoutStream::new(std::io::Cursor::new(cut)).unwrap();
    stream.next_blob().unwrap().unwrap();
    let err = stream.next_blob().err().expect("truncated");
    assert!(
        matches!(
            err,
            Error::Truncated {
                declared: 5000,
                available: 2000,
                ..
            }
        ),
        "{err}"
    );
    // Cut inside a header.
    let cut = data[..blob_start - 100].to_vec();
    let mut stream = LayoutStream::new(std::io::Cursor::new(cut)).unwrap();
    let err = stream.next_blob().err().expect("truncated");
    assert!(
        matches!(err, Error::Truncated { declared: 512, .. }),
        "{err}"
    );
}

#[test]
fn a_stream_without_index_json_is_not_a_layout() {
    let data = tar(&[("oci-layout", LAYOUT)]);
    let mut stream = LayoutStream::new(std::io::Cursor::new(data)).unwrap();
    assert!(stream.next_blob().unwrap().is_none());
    let err = stream.finish().unwrap_err();
    assert!(err.to_string().contains("index.json"), "{err}");
}

/// One ustar header for `name` declaring `size` data bytes (octal when it
/// fits, base-256 beyond), followed by only `data`: what a hostile writer
/// can send down a pipe.
fn header_declaring(name: &str, size: u64, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_ustar();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out
}

/// Sizes at the edges of what a header field can say: the largest octal
/// value, and base-256 values whose padded end passes 2^64.
const HUGE_SIZES: [u64; 5] = [
    0o777_7777_7777,
    u64::MAX - 1024,
    u64::MAX - 511,
    u64::MAX - 1,
    u64::MAX,
];

/// Whether `err` says the archive is cut short (a blob's read ends early)
/// or refuses the entry.
fn cut_or_refused(err: &Error) -> bool {
    match err {
        Error::Truncated { .. } | Error::Layout { .. } => true,
        Error::Io { source, .. } => source.kind() == std::io::ErrorKind::UnexpectedEof,
        _ => false,
    }
}

#[test]
fn a_size_that_overflows_when_padded_is_refused_not_wrapped() {
    // Regression for #14: `padded(size)` and `data_offset + padded(size)`
    // wrapped (release) or panicked (debug) on the stdin path.
    let (blob, _) = blob_name(b"x", "");
    for name in [blob.as_str(), "some/other/file", "oci-layout"] {
        for size in HUGE_SIZES {
            let mut data = tar(&[("index.json", INDEX)]);
            data.truncate(data.len() - 1024);
            data.extend(header_declaring(name, size, &[7u8; 3000]));
            let mut stream = LayoutStream::new(std::io::Cursor::new(data)).unwrap();
            let err = blobs(&mut stream).unwrap_err();
            assert!(cut_or_refused(&err), "{name} of {size}: {err:?}");
        }
    }
}

#[test]
fn a_pax_size_that_overflows_is_refused() {
    let (blob, _) = blob_name(b"x", "");
    for size in [u64::MAX, u64::MAX - 100] {
        let body = format!(" size={size}\n");
        assert!((8..98).contains(&body.len()));
        let record = format!("{}{body}", body.len() + 2);
        let mut pax = tar::Header::new_ustar();
        pax.as_old_mut().name[..3].copy_from_slice(b"pax");
        pax.set_entry_type(tar::EntryType::XHeader);
        pax.set_size(record.len() as u64);
        pax.set_mode(0o644);
        pax.set_cksum();
        let mut data = tar(&[("oci-layout", LAYOUT), ("index.json", INDEX)]);
        data.truncate(data.len() - 1024);
        data.extend_from_slice(pax.as_bytes());
        data.extend_from_slice(record.as_bytes());
        data.resize(
            data.len() + (padded(record.len() as u64) as usize - record.len()),
            0,
        );
        data.extend(header_declaring(&blob, 1, b"x"));
        data.resize(data.len() + 511 + 1024, 0);
        let mut stream = LayoutStream::new(std::io::Cursor::new(data)).unwrap();
        let err = blobs(&mut stream).unwrap_err();
        assert!(cut_or_refused(&err), "pax size {size}: {err:?}");
    }
}
