//! Property tests: the layout readers and the manifest parser never panic,
//! whatever bytes they are given. `LayoutArchive::open` returns `Ok` or
//! `Err`; once open, reading any blob (verified or not) and parsing any
//! manifest also return `Ok` or `Err`. The stream reader (`LayoutStream`,
//! `ferry unpack -`) gets the same bytes and must also return `Ok` or `Err`
//! for every blob it hands out and at `finish`.
//!
//! The same checks replay every input kept in `fuzz/corpus/` (the fuzz
//! targets' corpus), so a crash found by fuzzing stays fixed. `make fuzz`
//! runs these with many more cases when cargo-fuzz is not available.

use std::io::{Read, Write};
use std::path::Path;

use ferry_oci::layout::{BlobClass, LayoutPlan};
use ferry_oci::{Digest, LayoutArchive, LayoutStream, Manifest, VerifyingReader};
use proptest::prelude::*;

/// Everything a reader of an untrusted archive does; must never panic.
fn exercise_archive(dir: &Path, bytes: &[u8]) {
    let path = dir.join("input.tar");
    std::fs::write(&path, bytes).unwrap();
    // A small inflate limit keeps compressed inputs cheap.
    let Ok(archive) = LayoutArchive::open_with_limit(&path, 1 << 20) else {
        return;
    };
    let _ = archive.problems();
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
        if let Ok(m) = archive.manifest(&digest, None) {
            exercise_manifest_view(&m);
        }
    }
}

/// Everything `ferry unpack -` does with a piped archive; must never panic.
/// Every other blob is read (verified), the rest skipped by the stream.
/// Returns the blobs read in full and verified, in order.
fn exercise_stream(bytes: &[u8]) -> Vec<Digest> {
    let mut verified = Vec::new();
    let Ok(mut stream) = LayoutStream::new(std::io::Cursor::new(bytes.to_vec())) else {
        return verified;
    };
    let mut n = 0usize;
    loop {
        let blob = match stream.next_blob() {
            Ok(Some(blob)) => blob,
            Ok(None) => break,
            Err(_) => return verified,
        };
        let (digest, size) = (blob.digest().clone(), blob.size());
        if n.is_multiple_of(2) {
            let mut sink = Vec::new();
            let read = VerifyingReader::new(blob, &digest, size)
                .take(1 << 20)
                .read_to_end(&mut sink);
            if read.is_ok() && sink.len() as u64 == size {
                verified.push(digest);
            }
        }
        n += 1;
    }
    let _ = (stream.index(), stream.index_json(), stream.problems().len());
    let _ = stream.finish();
    verified
}

/// Both readers over the same bytes.
fn exercise_both(dir: &Path, bytes: &[u8]) {
    exercise_archive(dir, bytes);
    exercise_stream(bytes);
}

fn exercise_manifest(bytes: &[u8], media_type: Option<&str>) {
    if let Ok(m) = Manifest::parse(bytes.to_vec(), media_type) {
        exercise_manifest_view(&m);
    }
}

fn exercise_manifest_view(m: &Manifest) {
    let _ = (m.descriptor(), m.subject(), m.config(), m.artifact_type());
    let _ = (m.children().len(), m.layers().len(), m.blobs().count());
    let _ = m.is_index();
}

/// A valid archive written by ferry's own planner: a manifest, a config,
/// a layer.
fn valid_archive(layer: &[u8]) -> Vec<u8> {
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let config_d = Digest::sha256_of(&config);
    let layer_d = Digest::sha256_of(layer);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_d.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_d.to_string(), "size": layer.len()}],
    }))
    .unwrap();
    let manifest_d = Digest::sha256_of(&manifest);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest_d.to_string(), "size": manifest.len(),
                       "annotations": {"org.opencontainers.image.ref.name": "x.example/a:1"}}],
    }))
    .unwrap();
    let blobs = [
        (manifest_d, manifest, BlobClass::Manifest),
        (config_d, config, BlobClass::Config),
        (layer_d, layer.to_vec(), BlobClass::Layer),
    ];
    let plan = LayoutPlan::new(
        index,
        blobs
            .iter()
            .map(|(d, b, c)| (d.clone(), b.len() as u64, *c)),
    )
    .unwrap();
    let file = tempfile::tempfile().unwrap();
    plan.write_skeleton(&file).unwrap();
    for (d, b, _) in &blobs {
        let offset = plan.blob(d).unwrap().data_offset;
        std::os::unix::fs::FileExt::write_all_at(&file, b, offset).unwrap();
    }
    let mut out = Vec::new();
    let mut file = file;
    std::io::Seek::rewind(&mut file).unwrap();
    file.read_to_end(&mut out).unwrap();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// One damage to an archive.
#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        xor: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    Truncate {
        at: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Remove {
        at: usize,
        len: usize,
    },
    /// A header block's size field rewritten (base-256 beyond octal) with
    /// a valid checksum, so the readers believe it.
    Size {
        at: usize,
        size: u64,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<prop::sample::Index>();
    prop_oneof![
        (at.clone(), 1u8..).prop_map(|(i, xor)| Mutation::Flip {
            at: i.index(usize::MAX),
            xor
        }),
        // Bytes that matter in tar headers: digits, NUL, space, '/', '.'.
        (
            at.clone(),
            prop::sample::select(vec![0u8, b'0', b'7', b' ', b'/', b'.', 0xff])
        )
            .prop_map(|(i, byte)| Mutation::Set {
                at: i.index(usize::MAX),
                byte
            }),
        at.clone().prop_map(|i| Mutation::Truncate {
            at: i.index(usize::MAX)
        }),
        (at.clone(), prop::collection::vec(any::<u8>(), 1..600)).prop_map(|(i, bytes)| {
            Mutation::Insert {
                at: i.index(usize::MAX),
                bytes,
            }
        }),
        (at.clone(), 1usize..1100).prop_map(|(i, len)| Mutation::Remove {
            at: i.index(usize::MAX),
            len
        }),
        (at, huge_size()).prop_map(|(i, size)| Mutation::Size {
            at: i.index(usize::MAX),
            size
        }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let n = bytes.len();
    match m {
        Mutation::Flip { at, xor } => bytes[at % n] ^= xor,
        Mutation::Set { at, byte } => bytes[at % n] = *byte,
        Mutation::Truncate { at } => bytes.truncate(at % n),
        Mutation::Insert { at, bytes: new } => {
            let at = at % n;
            bytes.splice(at..at, new.iter().copied());
        }
        Mutation::Remove { at, len } => {
            let at = at % n;
            let end = (at + len).min(n);
            bytes.drain(at..end);
        }
        Mutation::Size { at, size } => {
            // The block holding `at`, if whole: set its size and checksum.
            let start = at % n / 512 * 512;
            if let Some(block) = bytes.get_mut(start..start + 512) {
                let mut header = tar::Header::new_old();
                header.as_mut_bytes().copy_from_slice(block);
                header.set_size(*size);
                header.set_cksum();
                block.copy_from_slice(header.as_bytes());
            }
        }
    }
}

/// Sizes where arithmetic on tar offsets breaks: around the octal limit,
/// near 2^64, and small ones.
fn huge_size() -> impl Strategy<Value = u64> {
    prop_oneof![
        (0u64..1024).prop_map(|d| u64::MAX - d),
        (0u64..1024).prop_map(|d| 0o777_7777_7777 - 512 + d),
        any::<u64>(),
        0u64..4096,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96)
    ))]

    #[test]
    fn arbitrary_bytes_never_panic_the_reader(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let dir = tempfile::tempdir().unwrap();
        exercise_both(dir.path(), &bytes);
    }

    #[test]
    fn damaged_valid_archives_never_panic_the_reader(
        layer in prop::collection::vec(any::<u8>(), 0..2000),
        mutations in prop::collection::vec(mutation(), 1..6),
        compress in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = valid_archive(&layer);
        for m in &mutations {
            apply(&mut bytes, m);
        }
        if compress {
            bytes = gzip(&bytes);
        }
        exercise_both(dir.path(), &bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_manifest_parser(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        media_type in prop::option::of("[a-z./+;= -]{0,60}"),
    ) {
        exercise_manifest(&bytes, media_type.as_deref());
    }

    #[test]
    fn manifest_shaped_json_never_panics_the_parser(doc in manifest_json()) {
        let bytes = serde_json::to_vec(&doc).unwrap();
        exercise_manifest(&bytes, None);
        exercise_manifest(&bytes, Some("application/vnd.oci.image.index.v1+json"));
        exercise_manifest(&bytes, Some("application/vnd.docker.distribution.manifest.v2+json"));
    }
}

#[test]
fn an_undamaged_archive_opens_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.tar");
    std::fs::write(&path, valid_archive(b"layer bytes")).unwrap();
    let archive = LayoutArchive::open(&path).unwrap();
    assert!(archive.problems().is_empty());
    assert_eq!(archive.index().len(), 1);
    for digest in archive
        .blobs()
        .map(|b| b.digest.clone())
        .collect::<Vec<_>>()
    {
        let mut sink = Vec::new();
        archive
            .verifying_blob_reader(&digest)
            .unwrap()
            .read_to_end(&mut sink)
            .unwrap();
    }
}

#[test]
fn an_undamaged_archive_streams_every_other_blob_verified() {
    let bytes = valid_archive(b"layer bytes");
    let archive_order: Vec<Digest> = {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ok.tar");
        std::fs::write(&path, &bytes).unwrap();
        let archive = LayoutArchive::open(&path).unwrap();
        let mut blobs: Vec<_> = archive.blobs().cloned().collect();
        blobs.sort_by_key(|b| b.data_offset);
        blobs.into_iter().map(|b| b.digest).collect()
    };
    assert_eq!(archive_order.len(), 3);
    let want: Vec<Digest> = archive_order.into_iter().step_by(2).collect();
    assert_eq!(exercise_stream(&bytes), want);
    assert_eq!(exercise_stream(&gzip(&bytes)), want);
}

/// Replay the fuzz corpus (`fuzz/corpus/<target>/*`) and the committed
/// hostile archives (`fixtures/hostile/`).
#[test]
fn the_fuzz_corpus_never_panics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let scratch = tempfile::tempdir().unwrap();
    let mut seen = 0;
    for (dir, archive) in [
        (root.join("layout_archive"), true),
        (root.join("../../fixtures/hostile"), true),
        (root.join("manifest_parse"), false),
    ] {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("no corpus at {}: {e}", dir.display()));
        for entry in entries {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            if archive {
                exercise_both(scratch.path(), &bytes);
            } else {
                exercise_manifest(&bytes, None);
            }
            seen += 1;
        }
    }
    assert!(seen > 0, "no corpus under {}", root.display());
}

/// JSON shaped like manifests and indexes, with wrong types, odd digests
/// and sizes where they hurt.
fn manifest_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{json, Value};
    let digest = prop_oneof![
        Just(json!(
            "sha256:0000000000000000000000000000000000000000000000000000000000000000"
        )),
        Just(json!("sha512:00")),
        Just(json!("md5:abc")),
        Just(json!("")),
        Just(json!(7)),
        "[a-z0-9:+._-]{0,80}".prop_map(Value::from),
    ];
    let size = prop_oneof![
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(u64::MAX)),
        Just(json!(1.5)),
        Just(json!("12")),
        any::<u32>().prop_map(Value::from),
    ];
    let media_type = prop_oneof![
        Just(json!("application/vnd.oci.image.manifest.v1+json")),
        Just(json!("application/vnd.oci.image.index.v1+json")),
        Just(json!(
            "application/vnd.docker.distribution.manifest.list.v2+json"
        )),
        Just(json!(
            "application/vnd.docker.distribution.manifest.v1+json"
        )),
        Just(json!(null)),
        Just(json!(3)),
        "[a-z./+-]{0,40}".prop_map(Value::from),
    ];
    let descriptor = (media_type.clone(), digest, size, any::<bool>()).prop_map(
        |(media_type, digest, size, platform)| {
            let mut d = json!({"mediaType": media_type, "digest": digest, "size": size});
            if platform {
                d["platform"] = json!({"os": "linux", "architecture": 1, "variant": null});
            }
            d
        },
    );
    let list = prop_oneof![
        prop::collection::vec(descriptor.clone(), 0..4).prop_map(Value::from),
        Just(json!(null)),
        Just(json!({})),
        Just(json!("x")),
    ];
    (
        prop_oneof![
            Just(json!(2)),
            Just(json!(1)),
            Just(json!("2")),
            Just(json!(null))
        ],
        media_type,
        prop::option::of(descriptor.clone()),
        prop::option::of(list.clone()),
        prop::option::of(list),
        prop::option::of(descriptor),
    )
        .prop_map(|(schema, media_type, config, layers, manifests, subject)| {
            let mut doc = json!({"schemaVersion": schema, "mediaType": media_type});
            for (key, value) in [
                ("config", config),
                ("layers", layers.clone()),
                ("manifests", manifests),
                ("blobs", layers),
                ("subject", subject),
            ] {
                if let Some(v) = value {
                    doc[key] = v;
                }
            }
            doc
        })
}
