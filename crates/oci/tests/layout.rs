//! The layout tarball writer and reader, against each other, the `tar`
//! crate, GNU tar and hostile archives.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use ferry_oci::layout::{Compression, INDEX_JSON, OCI_LAYOUT};
use ferry_oci::{BlobClass, Digest, Error, LayoutArchive, LayoutPlan, LayoutProblemKind};

/// Deterministic pseudo-random bytes.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A small image: index.json, one manifest, one config, layers of awkward sizes.
struct Image {
    index_json: Vec<u8>,
    manifest: Digest,
    blobs: Vec<(Digest, Vec<u8>, BlobClass)>,
}

fn image() -> Image {
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layers = [bytes(1, 1000), bytes(2, 512), Vec::new(), bytes(3, 70_000)];
    let desc = |mt: &str, b: &[u8]| {
        format!(
            r#"{{"mediaType":"{mt}","digest":"{}","size":{}}}"#,
            Digest::sha256_of(b),
            b.len()
        )
    };
    let layer_descs: Vec<String> = layers
        .iter()
        .map(|l| desc("application/vnd.oci.image.layer.v1.tar+gzip", l))
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[{}]}}"#,
        desc("application/vnd.oci.image.config.v1+json", &config),
        layer_descs.join(",")
    )
    .into_bytes();
    let index_json = format!(
        r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
        desc("application/vnd.oci.image.manifest.v1+json", &manifest)
    )
    .into_bytes();
    let mut blobs = vec![
        (Digest::sha256_of(&manifest), manifest, BlobClass::Manifest),
        (Digest::sha256_of(&config), config, BlobClass::Config),
    ];
    for l in layers {
        blobs.push((Digest::sha256_of(&l), l, BlobClass::Layer));
    }
    Image {
        index_json,
        manifest: blobs[0].0.clone(),
        blobs,
    }
}

fn plan(img: &Image, order: &[usize]) -> LayoutPlan {
    let input = order.iter().map(|&i| {
        let (d, b, c) = &img.blobs[i];
        (d.clone(), b.len() as u64, *c)
    });
    LayoutPlan::new(img.index_json.clone(), input).unwrap()
}

fn write_planned(path: &Path, plan: &LayoutPlan, img: &Image) {
    let file = File::create(path).unwrap();
    plan.write_skeleton(&file).unwrap();
    for (d, b, _) in &img.blobs {
        file.write_all_at(b, plan.blob(d).unwrap().data_offset)
            .unwrap();
    }
}

#[test]
fn planned_archive_reads_back_with_the_tar_crate() {
    let dir = tempfile::tempdir().unwrap();
    let img = image();
    let plan = plan(&img, &[5, 4, 3, 2, 1, 0]);
    let path = dir.path().join("bundle.tar");
    write_planned(&path, &plan, &img);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), plan.total_size());

    let mut archive = tar::Archive::new(File::open(&path).unwrap());
    let mut names = Vec::new();
    let content: HashMap<&Digest, &Vec<u8>> = img.blobs.iter().map(|(d, b, _)| (d, b)).collect();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let h = entry.header();
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        assert_eq!(h.mtime().unwrap(), tar::DETERMINISTIC_TIMESTAMP);
        assert_eq!(h.username().unwrap().unwrap_or(""), "");
        assert_eq!(h.groupname().unwrap().unwrap_or(""), "");
        let dir = h.entry_type().is_dir();
        assert_eq!(h.mode().unwrap(), if dir { 0o755 } else { 0o644 }, "{name}");
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        match name.as_str() {
            OCI_LAYOUT => assert_eq!(data, br#"{"imageLayoutVersion":"1.0.0"}"#),
            INDEX_JSON => assert_eq!(data, img.index_json),
            n if n.starts_with("blobs/sha256/") && !dir => {
                let d: Digest = n.replace("blobs/sha256/", "sha256:").parse().unwrap();
                assert_eq!(&data, content[&d]);
            }
            _ => assert!(dir, "{name}"),
        }
        names.push(name);
    }
    let mut expected = vec![OCI_LAYOUT, INDEX_JSON, "blobs/", "blobs/sha256/"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    let mut layers: Vec<&Digest> = img.blobs[2..].iter().map(|b| &b.0).collect();
    layers.sort();
    for d in [&img.blobs[0].0, &img.blobs[1].0].into_iter().chain(layers) {
        expected.push(d.blob_path());
    }
    assert_eq!(names, expected);
}

#[test]
fn planned_archive_reads_back_with_layout_archive() {
    let dir = tempfile::tempdir().unwrap();
    let img = image();
    let plan = plan(&img, &[0, 1, 2, 3, 4, 5]);
    let path = dir.path().join("bundle.tar");
    write_planned(&path, &plan, &img);

    let archive = LayoutArchive::open(&path).unwrap();
    assert_eq!(archive.compression(), Compression::None);
    assert_eq!(archive.oci_layout_version(), "1.0.0");
    assert_eq!(archive.index_json(), &img.index_json[..]);
    assert_eq!(archive.index()[0].digest, img.manifest);
    assert!(archive.problems().is_empty(), "{:?}", archive.problems());
    let order: Vec<&Digest> = archive.blobs().map(|b| &b.digest).collect();
    let planned: Vec<&Digest> = plan.blobs().iter().map(|b| &b.digest).collect();
    assert_eq!(order, planned);
    for (d, b, _) in &img.blobs {
        let entry = archive.blob(d).unwrap();
        assert_eq!(entry.data_offset, plan.blob(d).unwrap().data_offset);
        assert_eq!(&archive.read_blob(d, 1 << 20).unwrap(), b);
        let mut read = Vec::new();
        archive
            .verifying_blob_reader(d)
            .unwrap()
            .read_to_end(&mut read)
            .unwrap();
        assert_eq!(&read, b);
    }
    let manifest = archive.manifest(&img.manifest, None).unwrap();
    assert_eq!(manifest.layers().len(), 4);
    assert!(matches!(
        archive.read_blob(&img.blobs[5].0, 10),
        Err(Error::BlobTooLarge {
            size: 70_000,
            max: 10,
            ..
        })
    ));
    let absent = Digest::sha256_of(b"absent");
    assert!(matches!(
        archive.blob_reader(&absent),
        Err(Error::BlobNotFound { .. })
    ));
}

#[test]
fn same_inputs_in_any_order_give_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let img = image();
    let a = dir.path().join("a.tar");
    write_planned(&a, &plan(&img, &[0, 1, 2, 3, 4, 5]), &img);
    // Shuffled, with duplicates in a higher class, skeleton written last over junk.
    let shuffled = plan(&img, &[3, 5, 1, 0, 4, 2, 0, 1]);
    let dup = LayoutPlan::new(
        img.index_json.clone(),
        img.blobs
            .iter()
            .map(|(d, b, c)| (d.clone(), b.len() as u64, *c))
            .chain([(
                img.blobs[0].0.clone(),
                img.blobs[0].1.len() as u64,
                BlobClass::Layer,
            )]),
    )
    .unwrap();
    assert_eq!(dup.blobs(), shuffled.blobs());
    let b = dir.path().join("b.tar");
    std::fs::write(&b, vec![0xa5; shuffled.total_size() as usize + 4096]).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&b).unwrap();
    for (d, bytes, _) in &img.blobs {
        file.write_all_at(bytes, shuffled.blob(d).unwrap().data_offset)
            .unwrap();
    }
    shuffled.write_skeleton(&file).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn plan_refuses_one_digest_with_two_sizes() {
    let d = Digest::sha256_of(b"x");
    let err = LayoutPlan::new(
        b"{}".to_vec(),
        [(d.clone(), 1, BlobClass::Layer), (d, 2, BlobClass::Config)],
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::PlanConflict {
                first: 1,
                second: 2,
                ..
            }
        ),
        "{err}"
    );
    let huge = LayoutPlan::new(
        b"{}".to_vec(),
        [(Digest::sha256_of(b"y"), u64::MAX - 10, BlobClass::Layer)],
    );
    assert!(matches!(huge, Err(Error::PlanTooLarge)));
}

/// `tar -tvf` of GNU tar (a dependency of every Debian system; the test
/// fails, rather than skips, without it).
fn gnu_tar_list(path: &Path) -> Vec<String> {
    let out = std::process::Command::new("tar")
        .arg("-tvf")
        .arg(path)
        .output()
        .expect("GNU tar is needed by this test: apt-get install tar");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn gnu_tar_lists_planned_archive_including_sha512_and_huge_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let sha512: Digest = format!("sha512:{}", "ab".repeat(64)).parse().unwrap();
    let huge = Digest::sha256_of(b"huge");
    let size = 9 << 30; // beyond the 8 GiB ustar octal limit
    let plan = LayoutPlan::new(
        br#"{"schemaVersion":2,"manifests":[]}"#.to_vec(),
        [
            (sha512.clone(), 3, BlobClass::Config),
            (huge.clone(), size, BlobClass::Layer),
        ],
    )
    .unwrap();
    let path = dir.path().join("big.tar");
    let file = File::create(&path).unwrap();
    plan.write_skeleton(&file).unwrap(); // sparse: blob data stays zero
    file.write_all_at(b"abc", plan.blob(&sha512).unwrap().data_offset)
        .unwrap();

    let archive = LayoutArchive::open(&path).unwrap();
    assert!(archive.problems().is_empty(), "{:?}", archive.problems());
    assert_eq!(archive.blob(&huge).unwrap().size, size);
    assert_eq!(
        archive.blob(&sha512).unwrap().data_offset,
        plan.blob(&sha512).unwrap().data_offset
    );
    // The content does not match the made-up digest: caught on read.
    assert!(matches!(
        archive.read_blob(&sha512, 10),
        Err(Error::DigestMismatch { .. })
    ));

    let lines = gnu_tar_list(&path);
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            OCI_LAYOUT.to_string(),
            INDEX_JSON.into(),
            "blobs/".into(),
            "blobs/sha256/".into(),
            "blobs/sha512/".into(),
            sha512.blob_path(),
            huge.blob_path()
        ]
    );
    assert!(lines[6].contains(&size.to_string()), "{}", lines[6]);
    assert!(lines[0].starts_with("-rw-r--r-- 0/0"), "{}", lines[0]);
}

/// An archive as other tools write them: `./` prefixes, directories, blobs
/// before the metadata, a long GNU name, a symlink and a stray file.
fn foreign_tar(img: &Image) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, data).unwrap();
    };
    add("./stray/notes.txt", b"hello");
    for (d, bytes, _) in img.blobs.iter().rev() {
        add(&format!("./blobs/sha256/{}", d.hex()), bytes);
    }
    add(&format!("./blobs/sha256/{}", "x".repeat(150)), b"long name");
    add("./index.json", &img.index_json);
    add(".//oci-layout", br#"{"imageLayoutVersion": "1.0.0"}"#);
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    b.append_link(&mut link, "./blobs/sha256/link", "/etc/shadow")
        .unwrap();
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_size(0);
    b.append_data(&mut dir, "./blobs/", &[][..]).unwrap();
    b.into_inner().unwrap()
}

fn check_foreign(archive: &LayoutArchive, img: &Image) {
    assert_eq!(archive.index_json(), &img.index_json[..]);
    assert_eq!(archive.blobs().count(), img.blobs.len());
    for (d, b, _) in &img.blobs {
        assert_eq!(&archive.read_blob(d, 1 << 20).unwrap(), b);
    }
    let kinds: Vec<&LayoutProblemKind> = archive.problems().iter().map(|p| &p.kind).collect();
    assert!(matches!(kinds[0], LayoutProblemKind::Stray), "{kinds:?}");
    assert!(
        matches!(kinds[1], LayoutProblemKind::BadBlobName { .. }),
        "{kinds:?}"
    );
    assert!(
        matches!(kinds[2], LayoutProblemKind::Link { hard: false, target } if target == "/etc/shadow"),
        "{kinds:?}"
    );
    assert_eq!(kinds.len(), 3);
    assert!(archive.problems()[1].entry.len() > 150);
}

#[test]
fn reads_foreign_archives_plain_gzip_and_zstd() {
    let dir = tempfile::tempdir().unwrap();
    let img = image();
    let tar = foreign_tar(&img);
    let plain = dir.path().join("plain.tar");
    std::fs::write(&plain, &tar).unwrap();
    check_foreign(&LayoutArchive::open(&plain).unwrap(), &img);

    let gz = dir.path().join("a.tar.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&tar).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let archive = LayoutArchive::open(&gz).unwrap();
    assert_eq!(archive.compression(), Compression::Gzip);
    check_foreign(&archive, &img);

    let zst = dir.path().join("a.tar.zst");
    std::fs::write(&zst, zstd::encode_all(&tar[..], 1).unwrap()).unwrap();
    let archive = LayoutArchive::open(&zst).unwrap();
    assert_eq!(archive.compression(), Compression::Zstd);
    check_foreign(&archive, &img);
}

/// Cut `path` into parts of `size` bytes, as `ferry pack --split` does.
fn split_file(path: &Path, size: usize) -> Vec<std::path::PathBuf> {
    let data = std::fs::read(path).unwrap();
    data.chunks(size)
        .enumerate()
        .map(|(i, chunk)| {
            let part = ferry_oci::layout::part_path(path, i);
            std::fs::write(&part, chunk).unwrap();
            part
        })
        .collect()
}

#[test]
fn a_split_bundle_reads_as_one_archive() {
    let dir = tempfile::tempdir().unwrap();
    let img = image();
    let plan = plan(&img, &[0, 1, 2, 3, 4, 5]);
    let path = dir.path().join("bundle.tar");
    write_planned(&path, &plan, &img);
    // 1000-byte parts: headers, index.json and every blob straddle parts.
    let parts = split_file(&path, 1000);
    std::fs::remove_file(&path).unwrap();
    assert!(parts.len() > 70);
    for open in [&parts[0], &path] {
        let archive = LayoutArchive::open(open).unwrap();
        assert!(archive.problems().is_empty(), "{:?}", archive.problems());
        assert_eq!(archive.index_json(), &img.index_json[..]);
        assert_eq!(archive.part_set().unwrap().parts().count(), parts.len());
        for (d, b, _) in &img.blobs {
            let mut read = Vec::new();
            archive
                .verifying_blob_reader(d)
                .unwrap()
                .read_to_end(&mut read)
                .unwrap();
            assert_eq!(&read, b);
        }
    }
}

#[test]
fn a_damaged_part_set_is_refused_naming_the_part() {
    let dir = tempfile::tempdir().unwrap();
    let img = image();
    let plan = plan(&img, &[0, 1, 2, 3, 4, 5]);
    let path = dir.path().join("bundle.tar");
    write_planned(&path, &plan, &img);
    let parts = split_file(&path, 1000);
    // Two parts swapped: a header lands in the wrong place.
    let (a, b) = (
        std::fs::read(&parts[2]).unwrap(),
        std::fs::read(&parts[1]).unwrap(),
    );
    std::fs::write(&parts[1], &a).unwrap();
    std::fs::write(&parts[2], &b).unwrap();
    let err = LayoutArchive::open(&parts[0]).unwrap_err().to_string();
    assert!(err.contains("bundle.tar.00"), "{err}");
    std::fs::write(&parts[1], &b).unwrap();
    std::fs::write(&parts[2], &a).unwrap();
    // The last parts lost: the archive ends inside a blob; the last part
    // there is named.
    let n = parts.len();
    std::fs::remove_file(&parts[n - 1]).unwrap();
    std::fs::remove_file(&parts[n - 2]).unwrap();
    let err = LayoutArchive::open(&parts[0]).unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "bundle.tar.{:03} ends inside blobs/sha256/",
            n - 3
        )),
        "{err}"
    );
    // A middle part cut short is named before anything is read.
    File::options()
        .write(true)
        .open(&parts[5])
        .unwrap()
        .set_len(10)
        .unwrap();
    let err = LayoutArchive::open(&parts[0]).unwrap_err().to_string();
    assert!(err.contains("bundle.tar.005 is 10 bytes"), "{err}");
}
