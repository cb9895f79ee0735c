//! `ferry pack` against a real docker-registry loaded with the fixtures.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use ferry_oci::layout::LayoutArchive;
use ferry_oci::{Digest, Manifest};
use ferry_testkit::{require_tool, FixtureSet, RegistryProcess};
use util::{tar_entries, Scratch};

fn source() -> (RegistryProcess, FixtureSet) {
    let registry = RegistryProcess::start();
    let fixtures = registry.push_fixtures();
    (registry, fixtures)
}

fn pack(scratch: &Scratch, host: &str, refs: &[String], extra: &[&str]) -> util::Run {
    let mut args: Vec<String> = vec!["pack".into()];
    args.extend(refs.iter().cloned());
    args.extend([
        "--plain-http".to_string(),
        host.to_string(),
        "-o".into(),
        "bundle.tar".into(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    scratch.ferry(args)
}

fn named(archive: &LayoutArchive) -> BTreeMap<String, ferry_oci::Descriptor> {
    archive
        .index()
        .iter()
        .filter_map(|d| {
            let name = d.annotation(ferry_oci::manifest::ANNOTATION_REF_NAME)?;
            Some((name.to_string(), d.clone()))
        })
        .collect()
}

#[test]
fn packs_every_fixture_byte_for_byte() {
    let (registry, fixtures) = source();
    let scratch = Scratch::new();
    pack(&scratch, &registry.host(), &fixtures.references(), &[]).ok();
    let archive = LayoutArchive::open(&scratch.path("bundle.tar")).unwrap();
    assert!(archive.problems().is_empty(), "{:?}", archive.problems());
    let named = named(&archive);

    for image in &fixtures.images {
        let d = named
            .get(&image.reference)
            .unwrap_or_else(|| panic!("{} not in index.json: {:?}", image.reference, named.keys()));
        assert_eq!(d.digest.to_string(), image.digest, "{}", image.reference);
        assert_eq!(d.media_type, image.media_type, "{}", image.reference);
        assert_eq!(
            d.annotation(ferry_oci::manifest::ANNOTATION_CONTAINERD_NAME),
            Some(image.reference.as_str())
        );
        // The exact bytes the registry serves under the tag.
        let (_, served) = registry
            .get_manifest(&image.repository, &image.tag)
            .unwrap();
        assert_eq!(
            archive.read_blob(&d.digest, 1 << 20).unwrap(),
            served,
            "{}",
            image.reference
        );
        assert_eq!(served, image.manifest);
        for child in &image.children {
            assert!(
                archive.blob(&child.parse().unwrap()).is_some(),
                "child {child}"
            );
        }
    }

    // Every config and layer once; every manifest once.
    let entries = tar_entries(&scratch.path("bundle.tar"));
    let unique: BTreeSet<&String> = entries.iter().collect();
    assert_eq!(unique.len(), entries.len(), "an entry is stored twice");
    for digest in fixtures
        .all_blob_digests()
        .iter()
        .chain(&fixtures.all_manifest_digests())
    {
        // The referrers tag-schema index is registry bookkeeping, not
        // content: its entries are carried, the index itself is not.
        if fixtures
            .referrers
            .iter()
            .any(|r| r.tag_index_digest.as_ref() == Some(digest))
        {
            continue;
        }
        let d: Digest = digest.parse().unwrap();
        assert!(
            entries.contains(&d.blob_path()),
            "{digest} missing from the bundle"
        );
    }
    assert_eq!(
        &entries[..4],
        &["oci-layout", "index.json", "blobs/", "blobs/sha256/"]
    );

    // Signatures and referrers came along.
    let sig = &fixtures.signatures[0];
    assert_eq!(
        named.get(&sig.reference).map(|d| d.digest.to_string()),
        Some(sig.digest.clone())
    );
    let referrer = &fixtures.referrers[0];
    let unnamed: Vec<String> = archive
        .index()
        .iter()
        .filter(|d| d.annotations.is_none())
        .map(|d| d.digest.to_string())
        .collect();
    assert_eq!(unnamed, vec![referrer.digest.clone()]);
    let m = archive
        .manifest(&referrer.digest.parse().unwrap(), None)
        .unwrap();
    assert_eq!(
        m.subject().unwrap().digest.to_string(),
        referrer.subject_digest
    );
}

#[test]
fn same_images_in_any_order_give_identical_bundles() {
    let (registry, fixtures) = source();
    let scratch = Scratch::new();
    let mut refs = fixtures.references();
    pack(&scratch, &registry.host(), &refs, &[]).ok();
    let first = std::fs::read(scratch.path("bundle.tar")).unwrap();
    refs.reverse();
    refs.push(refs[0].clone());
    pack(&scratch, &registry.host(), &refs, &["--jobs", "1"]).ok();
    let second = std::fs::read(scratch.path("bundle.tar")).unwrap();
    assert!(first == second, "bundles differ");

    let sum = std::fs::read_to_string(scratch.path("bundle.tar.sha256")).unwrap();
    let hex = Digest::sha256_of(&second).hex().to_string();
    assert_eq!(sum, format!("{hex}  bundle.tar\n"));
    let status = Command::new(require_tool("sha256sum", "apt-get install coreutils"))
        .args(["-c", "bundle.tar.sha256"])
        .current_dir(scratch.dir())
        .output()
        .unwrap();
    assert!(status.status.success());
}

#[test]
fn platform_filter_keeps_the_index_and_carries_only_matching_children() {
    let (registry, fixtures) = source();
    let scratch = Scratch::new();
    let multi = fixtures.image("fixtures/multi:1");
    let run = pack(
        &scratch,
        &registry.host(),
        std::slice::from_ref(&multi.reference),
        &["--platform", "linux/arm64", "--json"],
    )
    .ok();
    let summary = run.json();
    assert_eq!(
        summary["images"][0]["platforms_carried"],
        serde_json::json!(["linux/arm64/v8"])
    );
    assert_eq!(
        summary["images"][0]["platforms_left_out"],
        serde_json::json!(["linux/amd64", "linux/arm/v7"])
    );

    let archive = LayoutArchive::open(&scratch.path("bundle.tar")).unwrap();
    let d = &named(&archive)[&multi.reference];
    assert_eq!(d.digest.to_string(), multi.digest, "the index digest holds");
    let index = archive.manifest(&d.digest, None).unwrap();
    assert_eq!(
        index.bytes(),
        &multi.manifest[..],
        "the index is carried unchanged"
    );
    let mut carried_blobs = BTreeSet::new();
    for child in index.children() {
        let is_arm64 = child.platform.as_ref().unwrap().architecture == "arm64";
        assert_eq!(
            archive.blob(&child.digest).is_some(),
            is_arm64,
            "{:?}",
            child.platform
        );
        if is_arm64 {
            let m = archive.manifest(&child.digest, None).unwrap();
            carried_blobs.extend(m.blobs().map(|b| b.digest.clone()));
        }
    }
    let in_archive: BTreeSet<Digest> = archive
        .blobs()
        .map(|b| b.digest.clone())
        .filter(|d| fixtures.all_blob_digests().contains(&d.to_string()))
        .collect();
    assert_eq!(
        in_archive, carried_blobs,
        "only the arm64 image's blobs are carried"
    );
}

#[test]
fn docker_list_platform_filter_and_single_platform_images_carried_whole() {
    let (registry, fixtures) = source();
    let scratch = Scratch::new();
    let list = fixtures.image("fixtures/dockerlist:1");
    let base = fixtures.image("fixtures/base:1");
    pack(
        &scratch,
        &registry.host(),
        &[list.reference.clone(), base.reference.clone()],
        &["--platform", "linux/amd64", "--no-referrers"],
    )
    .ok();
    let archive = LayoutArchive::open(&scratch.path("bundle.tar")).unwrap();
    let named = named(&archive);
    assert_eq!(named[&list.reference].digest.to_string(), list.digest);
    assert_eq!(named[&base.reference].digest.to_string(), base.digest);
    for blob in &base.blobs {
        assert!(archive.blob(&blob.parse().unwrap()).is_some());
    }
    let carried: Vec<bool> = list
        .children
        .iter()
        .map(|c| archive.blob(&c.parse().unwrap()).is_some())
        .collect();
    assert_eq!(carried.iter().filter(|c| **c).count(), 1);
}

#[test]
fn no_referrers_leaves_signatures_behind() {
    let (registry, fixtures) = source();
    let scratch = Scratch::new();
    pack(
        &scratch,
        &registry.host(),
        &fixtures.references(),
        &["--no-referrers"],
    )
    .ok();
    let archive = LayoutArchive::open(&scratch.path("bundle.tar")).unwrap();
    assert_eq!(archive.index().len(), fixtures.images.len());
    assert!(archive
        .blob(&fixtures.signatures[0].digest.parse().unwrap())
        .is_none());
    assert!(archive
        .blob(&fixtures.referrers[0].digest.parse().unwrap())
        .is_none());
}

#[test]
fn digest_pinned_references_keep_their_pin() {
    let (registry, fixtures) = source();
    let scratch = Scratch::new();
    let base = fixtures.image("fixtures/base:1");
    let multi = fixtures.image("fixtures/multi:1");
    let by_digest = format!("{}/{}@{}", registry.host(), base.repository, base.digest);
    let tag_and_digest = format!("{}@{}", multi.reference, multi.digest);
    pack(
        &scratch,
        &registry.host(),
        &[by_digest.clone(), tag_and_digest.clone()],
        &["--no-referrers"],
    )
    .ok();
    let archive = LayoutArchive::open(&scratch.path("bundle.tar")).unwrap();
    let named = named(&archive);
    assert_eq!(named[&by_digest].digest.to_string(), base.digest);
    assert_eq!(named[&tag_and_digest].digest.to_string(), multi.digest);
}

#[test]
fn errors_leave_no_bundle_and_keep_an_existing_one() {
    let (registry, fixtures) = source();
    let scratch = Scratch::new();
    let host = registry.host();
    let base = fixtures.image("fixtures/base:1").reference.clone();

    // A missing tag: clear message, nothing written.
    let run = pack(
        &scratch,
        &host,
        &[base.clone(), format!("{host}/fixtures/base:nope")],
        &[],
    )
    .failed();
    assert!(
        run.stderr.contains("manifest nope not found"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("fixtures/base:nope"), "{}", run.stderr);
    assert!(scratch.files().is_empty(), "{:?}", scratch.files());

    // A good bundle stays as it was when a later pack fails.
    pack(&scratch, &host, std::slice::from_ref(&base), &[]).ok();
    let good = std::fs::read(scratch.path("bundle.tar")).unwrap();
    let run = pack(
        &scratch,
        &host,
        &[format!("{host}/fixtures/missing:1")],
        &[],
    )
    .failed();
    assert!(run.stderr.contains("not found"), "{}", run.stderr);
    assert_eq!(std::fs::read(scratch.path("bundle.tar")).unwrap(), good);
    assert_eq!(scratch.files(), vec!["bundle.tar", "bundle.tar.sha256"]);

    // A bad reference quotes the input.
    let run = scratch
        .ferry(["pack", "Fixtures/Base:1", "-o", "x.tar"])
        .failed();
    assert!(run.stderr.contains("\"Fixtures/Base:1\""), "{}", run.stderr);
    assert!(run.stderr.contains("lowercase"), "{}", run.stderr);

    // An unreachable host says so.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let run = scratch
        .ferry([
            "pack",
            &format!("127.0.0.1:{closed}/a/b:1"),
            "--plain-http",
            &format!("127.0.0.1:{closed}"),
            "--retries",
            "1",
            "-o",
            "y.tar",
        ])
        .failed();
    assert!(
        run.stderr.contains("cannot reach registry"),
        "{}",
        run.stderr
    );

    // So does a host name that does not resolve.
    let run = scratch
        .ferry(["pack", "no-such-host.invalid/a/b:1", "-o", "v.tar"])
        .failed();
    assert!(
        run.stderr
            .contains("cannot reach registry no-such-host.invalid: its name does not resolve"),
        "{}",
        run.stderr
    );

    // Plain HTTP only for hosts named with --plain-http.
    let run = scratch
        .ferry(["pack", &base, "-o", "z.tar", "--retries", "1"])
        .failed();
    assert!(
        run.stderr.contains(&format!("--plain-http {host}")),
        "{}",
        run.stderr
    );

    // No platform matches: the message lists what there is.
    let multi = fixtures.image("fixtures/multi:1").reference.clone();
    let run = scratch
        .ferry([
            "pack",
            &multi,
            "--plain-http",
            &host,
            "--platform",
            "windows/amd64",
            "-o",
            "w.tar",
        ])
        .failed();
    assert!(
        run.stderr
            .contains("linux/amd64, linux/arm64/v8, linux/arm/v7"),
        "{}",
        run.stderr
    );
    assert_eq!(scratch.files(), vec!["bundle.tar", "bundle.tar.sha256"]);
}

#[test]
fn corrupt_blob_in_the_registry_aborts_with_both_digests() {
    let (registry, fixtures) = source();
    let scratch = Scratch::new();
    let base = fixtures.image("fixtures/base:1");
    // Damage a layer inside the registry's own storage; it serves what it has.
    let layer: Digest = base.blobs.last().unwrap().parse().unwrap();
    let data = registry
        .storage_dir()
        .join("docker/registry/v2/blobs/sha256")
        .join(&layer.hex()[..2])
        .join(layer.hex())
        .join("data");
    let mut bytes = std::fs::read(&data).unwrap_or_else(|e| panic!("{}: {e}", data.display()));
    bytes[0] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();

    let run = pack(
        &scratch,
        &registry.host(),
        std::slice::from_ref(&base.reference),
        &["--no-referrers"],
    )
    .failed();
    assert!(run.stderr.contains(&layer.to_string()), "{}", run.stderr);
    assert!(
        run.stderr.contains(&Digest::sha256_of(&bytes).to_string()),
        "{}",
        run.stderr
    );
    // Nothing at the bundle's name; what arrived intact is kept to resume.
    assert_eq!(
        scratch.files(),
        vec!["bundle.tar.partial", "bundle.tar.resume.json"]
    );
}

#[test]
fn skopeo_reads_the_oci_images_with_unchanged_digests() {
    require_tool("skopeo", "apt-get install skopeo");
    let (registry, fixtures) = source();
    let scratch = Scratch::new();
    pack(&scratch, &registry.host(), &fixtures.references(), &[]).ok();
    let bundle = scratch.path("bundle.tar");
    for name in [
        "fixtures/base:1",
        "fixtures/app:1",
        "fixtures/multi:1",
        "fixtures/chart:0.1.0",
    ] {
        let image = fixtures.image(name);
        let raw = Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!(
                "oci-archive:{}:{}",
                bundle.display(),
                image.reference
            ))
            .output()
            .unwrap();
        assert!(
            raw.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&raw.stderr)
        );
        assert_eq!(
            Digest::sha256_of(&raw.stdout).to_string(),
            image.digest,
            "{name}"
        );
    }
    for name in ["fixtures/base:1", "fixtures/multi:1"] {
        let image = fixtures.image(name);
        let dest = scratch.path(&format!("dir-{}", name.replace(['/', ':'], "-")));
        let copy = Command::new("skopeo")
            .args(["copy", "--all"])
            .arg(format!(
                "oci-archive:{}:{}",
                bundle.display(),
                image.reference
            ))
            .arg(format!("dir:{}", dest.display()))
            .output()
            .unwrap();
        assert!(
            copy.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&copy.stderr)
        );
        let manifest = std::fs::read(dest.join("manifest.json")).unwrap();
        assert_eq!(
            Digest::sha256_of(&manifest).to_string(),
            image.digest,
            "{name}"
        );
        let parsed = Manifest::parse(manifest, None).unwrap();
        for blob in parsed.blobs() {
            assert!(
                dest.join(blob.digest.hex()).exists(),
                "{name}: {}",
                blob.digest
            );
        }
    }
}
