//! `verify_archive` on good archives and on each damage issue 4 lists: every
//! damage is refused with a problem naming the entry.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use ferry_audit::{verify_archive, Problem, VerifyOptions, VerifyReport};
use ferry_oci::Digest;

fn verify(dir: &Path, entries: &[Entry]) -> VerifyReport {
    let path = write(dir, "bundle.tar", &tar(entries));
    verify_archive(&path, &VerifyOptions::default())
}

/// The one error problem, asserting it names `entry` and says `words`.
fn assert_refused(report: &VerifyReport, entry: &str, words: &str) -> Problem {
    assert!(!report.ok, "expected a failed verify: {report:#?}");
    let p = report
        .problems
        .iter()
        .find(|p| p.is_error() && p.entry == entry)
        .unwrap_or_else(|| panic!("no error naming {entry}: {:#?}", report.problems));
    assert!(p.to_string().contains(words), "{p}");
    p.clone()
}

#[test]
fn good_archive_passes_and_lists_config_digests() {
    let dir = tempfile::tempdir().unwrap();
    let image = Image::new("a", "amd64");
    let report = verify(dir.path(), &good(&image));
    assert!(report.ok, "{:#?}", report.problems);
    assert_eq!(report.errors, 0);
    assert_eq!(report.warnings, 0);
    assert_eq!(report.blobs_hashed, 4);
    let bundle = report.bundle.unwrap();
    assert_eq!(bundle.references.len(), 1);
    let r = &bundle.references[0];
    assert_eq!(r.reference.as_deref(), Some("example.com/app:1"));
    assert_eq!(r.digest, image.digest());
    assert_eq!(r.images[0].config_digest, Some(image.config_digest()));
    assert_eq!(r.images[0].platform.as_deref(), Some("linux/amd64"));
    assert_eq!(r.images[0].layer_count, 2);
    assert_eq!(bundle.totals.blobs, 4);
}

#[test]
fn flipped_byte_in_a_layer() {
    let dir = tempfile::tempdir().unwrap();
    let image = Image::new("a", "amd64");
    let mut entries = good(&image);
    let layer = entries
        .iter_mut()
        .find(|e| e.name == image.layer_path(1))
        .unwrap();
    layer.data[7] ^= 0x01;
    let report = verify(dir.path(), &entries);
    let p = assert_refused(
        &report,
        &image.layer_path(1),
        "content does not match its name",
    );
    assert_eq!(
        p.expected.as_deref(),
        Some(Digest::sha256_of(&image.layers[1]).to_string().as_str())
    );
    assert_eq!(report.errors, 1);
}

#[test]
fn missing_blob() {
    let dir = tempfile::tempdir().unwrap();
    let image = Image::new("a", "amd64");
    let mut entries = good(&image);
    entries.retain(|e| e.name != image.layer_path(0));
    let report = verify(dir.path(), &entries);
    let layer = Digest::sha256_of(&image.layers[0]).to_string();
    let p = assert_refused(&report, &image.manifest_path(), "is not in the archive");
    assert!(p.message.contains(&layer), "{p}");
}

#[test]
fn truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let image = Image::new("a", "amd64");
    let mut bytes = tar(&good(&image));
    // Cut inside the last layer's data.
    let cut = bytes.len() - 1024 - 512 - 100;
    bytes.truncate(cut);
    let path = write(dir.path(), "cut.tar", &bytes);
    let report = verify_archive(&path, &VerifyOptions::default());
    assert_refused(&report, &image.layer_path(1), "truncated");
    assert!(report.bundle.is_none());
}

#[test]
fn dot_dot_entry() {
    let dir = tempfile::tempdir().unwrap();
    let image = Image::new("a", "amd64");
    let mut entries = good(&image);
    entries.push(Entry::file("blobs/../../evil", b"boo"));
    let report = verify(dir.path(), &entries);
    assert_refused(&report, "blobs/../../evil", "..");
}

#[test]
fn symlink_entry() {
    let dir = tempfile::tempdir().unwrap();
    let image = Image::new("a", "amd64");
    let mut entries = good(&image);
    let layer = image.layer_path(0);
    entries.retain(|e| e.name != layer);
    entries.push(Entry::symlink(&layer, "/etc/passwd"));
    let report = verify(dir.path(), &entries);
    assert_refused(&report, &layer, "symbolic link");
    // And the layer it stands in for is missing.
    assert_refused(&report, &image.manifest_path(), "is not in the archive");
}

#[test]
fn index_json_names_a_missing_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let image = Image::new("a", "amd64");
    let other = Image::new("b", "arm64");
    let index = index_json(&[
        (OCI_MANIFEST, &image.manifest, Some("example.com/app:1")),
        (OCI_MANIFEST, &other.manifest, Some("example.com/other:1")),
    ]);
    let report = verify(dir.path(), &layout_with(&index, image.blobs()));
    let p = assert_refused(&report, "index.json", "example.com/other:1");
    assert_eq!(p.expected.as_deref(), Some(other.manifest_path().as_str()));
}

#[test]
fn broken_index_json() {
    let dir = tempfile::tempdir().unwrap();
    let image = Image::new("a", "amd64");
    let entries = layout_with(b"{\"manifests\": [", image.blobs());
    let report = verify(dir.path(), &entries);
    assert_refused(&report, "index.json", "not valid JSON");
}

#[test]
fn broken_manifest_json() {
    let dir = tempfile::tempdir().unwrap();
    let broken = b"{\"schemaVersion\":2,\"layers\":[".to_vec();
    let index = index_json(&[(OCI_MANIFEST, &broken, Some("example.com/app:1"))]);
    let report = verify(dir.path(), &layout_with(&index, vec![Entry::blob(&broken)]));
    let entry = Digest::sha256_of(&broken).blob_path();
    assert_refused(&report, &entry, "not a valid manifest");
}

#[test]
fn blob_stored_under_another_blobs_name() {
    let dir = tempfile::tempdir().unwrap();
    let image = Image::new("a", "amd64");
    let mut entries = good(&image);
    let (one, two) = (image.layer_path(0), image.layer_path(1));
    let first = image.layers[0].clone();
    entries.iter_mut().find(|e| e.name == two).unwrap().data = first;
    let report = verify(dir.path(), &entries);
    let p = assert_refused(&report, &two, "content does not match its name");
    assert!(p.message.contains(&one), "{p}");
    // The descriptor's size no longer matches what is stored either.
    assert_refused(&report, &image.manifest_path(), "size");
}

#[test]
fn wrong_size_in_a_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let image = Image::new("a", "amd64");
    let wrong_size = image.layers[1].len() + 1;
    let manifest = Image::manifest_for(&image.config, &image.layers, |d| {
        d.replace(
            &format!("\"size\":{}", image.layers[1].len()),
            &format!("\"size\":{wrong_size}"),
        )
    });
    let index = index_json(&[(OCI_MANIFEST, &manifest, Some("example.com/app:1"))]);
    let mut blobs = image.blobs();
    blobs[0] = Entry::blob(&manifest);
    let report = verify(dir.path(), &layout_with(&index, blobs));
    let p = assert_refused(&report, &Digest::sha256_of(&manifest).blob_path(), "size");
    assert!(p.message.contains(&image.layer_path(1)), "{p}");
    assert_eq!(
        p.expected.as_deref(),
        Some(format!("{wrong_size} bytes (descriptor)").as_str())
    );
    assert_eq!(report.errors, 1, "{:#?}", report.problems);
}

#[test]
fn problems_are_all_listed_not_only_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let image = Image::new("a", "amd64");
    let mut entries = good(&image);
    for e in entries.iter_mut().filter(|e| e.name.starts_with("blobs/")) {
        if e.name != image.manifest_path() {
            e.data[0] ^= 0xff;
        }
    }
    let report = verify(dir.path(), &entries);
    assert_eq!(report.errors, 3, "{:#?}", report.problems);
}

#[test]
fn gzip_archive_passes_and_hashing_reports_progress() {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    #[derive(Default)]
    struct Count {
        total: AtomicU64,
        bytes: AtomicU64,
        items: AtomicU64,
    }
    impl ferry_oci::Progress for Count {
        fn start(&self, _phase: &str, _items: u64, total_bytes: u64) {
            self.total.store(total_bytes, Ordering::SeqCst);
        }
        fn bytes(&self, n: u64) {
            self.bytes.fetch_add(n, Ordering::SeqCst);
        }
        fn item_done(&self) {
            self.items.fetch_add(1, Ordering::SeqCst);
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let image = Image::new("a", "amd64");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar(&good(&image))).unwrap();
    let path = write(dir.path(), "bundle.tar.gz", &gz.finish().unwrap());
    let count = Arc::new(Count::default());
    let options = VerifyOptions {
        jobs: 2,
        progress: count.clone(),
        ..VerifyOptions::default()
    };
    let report = verify_archive(&path, &options);
    assert!(report.ok, "{:#?}", report.problems);
    assert_eq!(report.bundle.unwrap().compression, "gzip");
    // The walk hashes the manifest and config; the threads hash the layers.
    let layers: u64 = image.layers.iter().map(|l| l.len() as u64).sum();
    assert_eq!(count.total.load(Ordering::SeqCst), layers);
    assert_eq!(count.bytes.load(Ordering::SeqCst), layers);
    assert_eq!(count.items.load(Ordering::SeqCst), 2);
    assert_eq!(
        report.bytes_hashed,
        layers + (image.manifest.len() + image.config.len()) as u64
    );
}

/// Progress that counts the bytes read.
#[derive(Default)]
struct BytesRead(std::sync::atomic::AtomicU64);

impl ferry_oci::Progress for BytesRead {
    fn bytes(&self, n: u64) {
        self.0.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `bytes` cut into parts of `part_size` beside `bundle.tar.sha256`, as
/// `ferry pack --split` writes them; returns the parts.
fn split(dir: &Path, bytes: &[u8], part_size: usize) -> Vec<std::path::PathBuf> {
    let mut sums = String::new();
    let parts: Vec<_> = bytes
        .chunks(part_size)
        .enumerate()
        .map(|(i, chunk)| {
            let name = format!("bundle.tar.{i:03}");
            sums.push_str(&format!("{}  {name}\n", Digest::sha256_of(chunk).hex()));
            write(dir, &name, chunk)
        })
        .collect();
    sums.push_str(&format!("{}  bundle.tar\n", Digest::sha256_of(bytes).hex()));
    write(dir, "bundle.tar.sha256", sums.as_bytes());
    parts
}

#[test]
fn a_split_set_is_read_once_and_its_blobs_checked_from_that_read() {
    let dir = tempfile::tempdir().unwrap();
    let image = Image::new("a", "amd64");
    let bytes = tar(&good(&image));
    // Where each layer lies, from the archive whole.
    let whole = write(dir.path(), "whole.tar", &bytes);
    let archive = ferry_oci::LayoutArchive::open(&whole).unwrap();
    let place = |i: usize| {
        let b = archive.blob(&Digest::sha256_of(&image.layers[i])).unwrap();
        (b.data_offset, b.size)
    };
    // Parts of 1 KiB: the first layer (600 bytes) lies inside one, the
    // second (900 bytes) spans two; the test says so before relying on it.
    let part_size = 1024u64;
    let spans = |(at, size): (u64, u64)| at / part_size != (at + size - 1) / part_size;
    assert!(
        !spans(place(0)) && spans(place(1)),
        "{:?} {:?}",
        place(0),
        place(1)
    );
    let parts = split(dir.path(), &bytes, part_size as usize);

    // Every byte read once, every blob checked from that read, whether one
    // thread reads the parts or one thread a part: the two parts the second
    // layer spans are read by one thread, in order.
    let verify_with = |jobs: usize| {
        let read = Arc::new(BytesRead::default());
        let options = VerifyOptions {
            jobs,
            progress: read.clone(),
            ..VerifyOptions::default()
        };
        let report = verify_archive(&parts[0], &options);
        assert!(report.ok, "{:#?}", report.problems);
        assert_eq!(report.parts.as_ref().unwrap().parts.len(), parts.len());
        assert_eq!(report.blobs_hashed, 4);
        read.0.load(std::sync::atomic::Ordering::SeqCst)
    };
    assert_eq!(verify_with(1), bytes.len() as u64);
    assert_eq!(verify_with(parts.len()), bytes.len() as u64);

    // A byte flipped in the layer inside one part: the part is damaged,
    // and the layer named as in an unsplit archive.
    let (at, _) = place(0);
    let victim = &parts[(at / part_size) as usize];
    let mut damaged = std::fs::read(victim).unwrap();
    damaged[(at % part_size) as usize + 7] ^= 0x01;
    std::fs::write(victim, &damaged).unwrap();
    let report = verify_archive(&parts[0], &VerifyOptions::default());
    let p = assert_refused(
        &report,
        &image.layer_path(0),
        "content does not match its name",
    );
    assert_eq!(
        p.expected.as_deref(),
        Some(Digest::sha256_of(&image.layers[0]).to_string().as_str())
    );
    assert_refused(&report, &victim.display().to_string(), "is damaged");
    assert_eq!(report.errors, 2, "{:#?}", report.problems);
}
