//! `ferry unpack` end to end (issue 3): the real binary, real
//! `docker-registry` instances, bundles made by `ferry pack` and by skopeo.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ferry_oci::{Naming, Reference, RelocationTarget};
use ferry_testkit::{fixture_path, FixtureOptions, FixtureSet, RegistryProcess};
use md5::{Digest as _, Md5};
use serde_json::Value;

fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .output()
        .expect("run ferry")
}

fn ok(args: &[&str]) -> Output {
    let out = ferry(args);
    assert!(
        out.status.success(),
        "ferry {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).expect("--json prints one JSON document")
}

/// Pack `refs` (repo:tag under the fixtures' host) from `source` into `out`.
fn pack(source: &RegistryProcess, refs: &[String], out: &Path, extra: &[&str]) {
    let host = source.host();
    let mut args: Vec<&str> = vec!["pack", "--plain-http", &host, "-o"];
    let out = out.to_str().unwrap();
    args.push(out);
    args.push("--quiet");
    args.extend(refs.iter().map(String::as_str));
    args.extend(extra);
    ok(&args);
}

/// Where `original` lands under `target` with `naming`: (repository path, tag).
fn relocated(target: &str, original: &str, naming: Naming) -> (String, String) {
    let target = RelocationTarget::parse(target).unwrap();
    let r = target
        .relocate(&Reference::parse(original).unwrap(), naming)
        .unwrap();
    (r.repository().to_string(), r.tag().unwrap().to_string())
}

/// Every fixture reference (and the cosign signature tag) `pack` records.
fn all_refs(set: &FixtureSet) -> Vec<String> {
    set.images.iter().map(|i| i.reference.clone()).collect()
}

fn read_mapping(path: &Path) -> BTreeMap<String, String> {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every value of the mapping resolves in `registry`, by tag and by digest,
/// to the digest it names.
fn assert_mapping_resolves(registry: &RegistryProcess, mapping: &BTreeMap<String, String>) {
    for (original, value) in mapping {
        let r = Reference::parse(value).unwrap();
        assert_eq!(r.registry(), registry.host(), "{original} -> {value}");
        let digest = r.digest().expect("mapping values are pinned").to_string();
        let tag = r.tag().expect("tag kept");
        assert_eq!(
            registry.manifest_digest(r.repository(), tag),
            Some(digest.clone()),
            "{original} -> {value} by tag"
        );
        assert_eq!(
            registry.manifest_digest(r.repository(), &digest),
            Some(digest.clone()),
            "{original} -> {value} by digest"
        );
    }
}

#[test]
fn issue_3_round_trip_offline_into_another_registry() {
    let mut source = RegistryProcess::start();
    let set = source.push_fixtures();
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("bundle.tar");
    pack(&source, &all_refs(&set), &bundle, &[]);
    source.stop();

    let target = RegistryProcess::start();
    let to = format!("{}/mirror", target.host());
    let mapping = work.path().join("mapping.json");
    let out = ok(&[
        "unpack",
        bundle.to_str().unwrap(),
        "--to",
        &to,
        "--plain-http",
        &target.host(),
        "--mapping",
        mapping.to_str().unwrap(),
        "--json",
    ]);
    let summary = json(&out);
    assert_eq!(summary["failed"], 0);
    // Repositories fill side by side, yet a blob several of them need is
    // uploaded once and mounted into the others.
    let unique = ferry_oci::LayoutArchive::open(&bundle)
        .unwrap()
        .blobs()
        .filter(|b| !set.all_manifest_digests().contains(&b.digest.to_string()))
        .count() as u64;
    assert_eq!(
        summary["blobs_uploaded"].as_u64(),
        Some(unique),
        "{summary:#}"
    );
    assert!(
        summary["blobs_mounted"].as_u64().unwrap() > 0,
        "{summary:#}"
    );

    // Every original tag, Docker list and schema2 included, is served under
    // its relocated name with the same digest.
    for image in &set.images {
        let (repo, tag) = relocated(&to, &image.reference, Naming::Hash);
        assert_eq!(
            target.manifest_digest(&repo, &tag),
            Some(image.digest.clone()),
            "{}",
            image.reference
        );
        let (media_type, bytes) = target.get_manifest(&repo, &tag).unwrap();
        assert_eq!(bytes, image.manifest, "{} bytes", image.reference);
        assert_eq!(media_type, image.media_type, "{}", image.reference);
    }

    // The hash naming rule, checked independently of ferry-oci.
    let base = set.image("fixtures/base:1");
    let md5 = hex::encode(Md5::digest(format!("{}/fixtures/base", set.host)));
    assert_eq!(
        relocated(&to, &base.reference, Naming::Hash).0,
        format!("mirror/fixtures-base-{md5}")
    );
    assert_eq!(
        target.manifest_digest(&format!("mirror/fixtures-base-{md5}"), "1"),
        Some(base.digest.clone())
    );

    // The cosign signature keeps its tag beside its image.
    for sig in &set.signatures {
        let (repo, tag) = relocated(&to, &sig.reference, Naming::Hash);
        assert_eq!(tag, sig.tag);
        assert_eq!(
            target.manifest_digest(&repo, &tag),
            Some(sig.digest.clone())
        );
    }

    // The OCI referrer is in its subject's relocated repository, listed in
    // the referrers tag schema index, which comes out byte for byte as the
    // source's.
    for referrer in &set.referrers {
        let (repo, _) = relocated(&to, &referrer.subject_reference, Naming::Hash);
        assert_eq!(
            target.manifest_digest(&repo, &referrer.digest),
            Some(referrer.digest.clone())
        );
        let tag = referrer.tag.clone().unwrap();
        let (_, index) = target.get_manifest(&repo, &tag).expect("tag schema index");
        let index: Value = serde_json::from_slice(&index).unwrap();
        let listed: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["digest"].as_str().unwrap())
            .collect();
        assert_eq!(listed, vec![referrer.digest.as_str()]);
        assert_eq!(
            target.manifest_digest(&repo, &tag),
            referrer.tag_index_digest
        );
    }

    // The mapping holds every packed reference, and every value resolves.
    let map = read_mapping(&mapping);
    let mut expected: Vec<String> = all_refs(&set);
    expected.extend(set.signatures.iter().map(|s| s.reference.clone()));
    expected.sort();
    assert_eq!(map.keys().cloned().collect::<Vec<_>>(), expected);
    assert_mapping_resolves(&target, &map);
    for image in &set.images {
        assert!(map[&image.reference].ends_with(&format!("@{}", image.digest)));
    }

    // A second run is a no-op and writes the same mapping.
    let again = work.path().join("again.json");
    let out = ok(&[
        "unpack",
        bundle.to_str().unwrap(),
        "--to",
        &to,
        "--plain-http",
        &target.host(),
        "--mapping",
        again.to_str().unwrap(),
        "--json",
    ]);
    let summary = json(&out);
    for field in [
        "blobs_uploaded",
        "blobs_mounted",
        "bytes_uploaded",
        "manifests_pushed",
        "tags_set",
    ] {
        assert_eq!(summary[field], 0, "{field} on the second run");
    }
    // Every image's top manifest is found by digest, so nothing below it
    // is looked at (issue 15): no blob is even asked about.
    assert_eq!(summary["blobs_present"], 0);
    let images = summary["images"].as_array().unwrap().len() as u64;
    assert!(summary["manifests_present"].as_u64().unwrap() >= images);
    assert_eq!(
        std::fs::read(&mapping).unwrap(),
        std::fs::read(&again).unwrap()
    );
}

fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn issue_3_dry_run_touches_no_registry() {
    let mut source = RegistryProcess::start();
    let set = source.push_fixtures();
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("bundle.tar");
    pack(&source, &all_refs(&set), &bundle, &[]);
    source.stop();

    let to = format!("127.0.0.1:{}/team/mirror", closed_port());
    let mapping = work.path().join("mapping.json");
    let out = ok(&[
        "unpack",
        bundle.to_str().unwrap(),
        "--to",
        &to,
        "--mapping",
        mapping.to_str().unwrap(),
        "--dry-run",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("dry run: nothing pushed"), "{text}");
    let base = set.image("fixtures/base:1");
    let (repo, _) = relocated(&to, &base.reference, Naming::Hash);
    assert!(text.contains(&repo), "{text}");
    let map = read_mapping(&mapping);
    assert_eq!(
        map[&base.reference],
        format!("{}/{repo}:1@{}", to.split('/').next().unwrap(), base.digest)
    );

    // The same with --json: the plan as a document.
    let out = ok(&[
        "unpack",
        bundle.to_str().unwrap(),
        "--to",
        &to,
        "--naming",
        "preserve",
        "--dry-run",
        "--json",
    ]);
    let plan = json(&out);
    let images = plan["images"].as_array().unwrap();
    assert_eq!(images.len(), set.images.len() + set.signatures.len());
    assert!(images
        .iter()
        .any(|i| i["repository"] == format!("{}/fixtures/base", to)));
}

#[test]
fn issue_3_skopeo_layout_tarball_unpacks() {
    // skopeo's layout of fixtures/base:1, tarred by hand (fixtures/make.sh).
    let set = FixtureSet::generate("h", &FixtureOptions::default());
    let base = set.image("fixtures/base:1");
    let work = tempfile::tempdir().unwrap();
    let tarball = fixture_path("skopeo-base.tar");

    let target = RegistryProcess::start();
    let to = format!("{}/mirror", target.host());
    let mapping = work.path().join("mapping.json");
    ok(&[
        "unpack",
        tarball.to_str().unwrap(),
        "--to",
        &to,
        "--plain-http",
        &target.host(),
        "--mapping",
        mapping.to_str().unwrap(),
    ]);
    // skopeo records the name as given; docker normalizes it to docker.io.
    let (repo, tag) = relocated(&to, "docker.io/fixtures/base:1", Naming::Hash);
    let md5 = hex::encode(Md5::digest("docker.io/fixtures/base"));
    assert_eq!(repo, format!("mirror/fixtures-base-{md5}"));
    assert_eq!(
        target.manifest_digest(&repo, &tag),
        Some(base.digest.clone())
    );
    let map = read_mapping(&mapping);
    assert_eq!(map.keys().collect::<Vec<_>>(), ["fixtures/base:1"]);
    assert_mapping_resolves(&target, &map);
}

#[test]
fn issue_3_sparse_index_refused_then_rewritten() {
    let mut source = RegistryProcess::start();
    let set = source.push_fixtures();
    let multi = set.image("fixtures/multi:1");
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("sparse.tar");
    pack(
        &source,
        std::slice::from_ref(&multi.reference),
        &bundle,
        &["--platform", "linux/amd64"],
    );
    source.stop();

    let target = RegistryProcess::start();
    let to = format!("{}/mirror", target.host());
    let (repo, tag) = relocated(&to, &multi.reference, Naming::Hash);
    let base_args = [
        "unpack",
        bundle.to_str().unwrap(),
        "--to",
        &to,
        "--plain-http",
        &target.host(),
    ];

    // Distribution refuses the index with children missing: the image fails
    // with a message naming it, the missing platforms and the way out.
    let out = ferry(&base_args);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&multi.digest), "{stderr}");
    assert!(stderr.contains("linux/arm64"), "{stderr}");
    assert!(stderr.contains("--sparse rewrite"), "{stderr}");
    assert_eq!(target.manifest_digest(&repo, &tag), None, "no tag");

    // --sparse rewrite: a new index of the carried platform only.
    let mut args = base_args.to_vec();
    args.extend(["--sparse", "rewrite", "--json"]);
    let summary = json(&ok(&args));
    let image = &summary["images"][0];
    assert_eq!(image["bundle_digest"], multi.digest.as_str());
    let new = image["digest"].as_str().unwrap().to_string();
    assert_ne!(new, multi.digest);
    assert_eq!(target.manifest_digest(&repo, &tag), Some(new.clone()));
    let (_, bytes) = target.get_manifest(&repo, &tag).unwrap();
    let index: Value = serde_json::from_slice(&bytes).unwrap();
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{}/{}", m["platform"]["os"], m["platform"]["architecture"]))
        .collect();
    assert_eq!(platforms, [r#""linux"/"amd64""#]);
    assert!(summary["mapping"][&multi.reference]
        .as_str()
        .unwrap()
        .ends_with(&new));
}

/// The first directory under `root` whose path contains `needle` and that
/// has an `_uploads` entry with something in it.
fn upload_in_progress(root: &Path, needle: &str) -> bool {
    fn walk(dir: &Path, needle: &str) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        for entry in entries.flatten() {
            let path: PathBuf = entry.path();
            if !path.is_dir() {
                continue;
            }
            if path.ends_with("_uploads") && path.to_string_lossy().contains(needle) {
                if std::fs::read_dir(&path).is_ok_and(|mut d| d.next().is_some()) {
                    return true;
                }
            } else if walk(&path, needle) {
                return true;
            }
        }
        false
    }
    walk(root, needle)
}

#[test]
fn issue_3_killed_run_completes_on_the_next_run() {
    let mut source = RegistryProcess::start();
    let set = source.push_fixtures_with(FixtureOptions {
        big_layer_bytes: Some(192 << 20),
    });
    let refs: Vec<String> = ["fixtures/base:1", "fixtures/big:1"]
        .iter()
        .map(|r| set.image(r).reference.clone())
        .collect();
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("bundle.tar");
    pack(&source, &refs, &bundle, &[]);
    source.stop();

    let target = RegistryProcess::start();
    let to = format!("{}/mirror", target.host());
    let args = [
        "unpack",
        bundle.to_str().unwrap(),
        "--to",
        &to,
        "--plain-http",
        &target.host(),
        "--jobs",
        "1",
        "--quiet",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the big layer's upload has started.
    while !upload_in_progress(target.storage_dir(), "fixtures-big-") {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let was_running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(was_running, "the unpack ended before it could be killed");

    let big = set.image("fixtures/big:1");
    let (big_repo, big_tag) = relocated(&to, &big.reference, Naming::Hash);
    assert_eq!(target.manifest_digest(&big_repo, &big_tag), None);

    let mapping = work.path().join("mapping.json");
    let mut args = args.to_vec();
    args.extend(["--mapping", mapping.to_str().unwrap()]);
    ok(&args);
    for r in &refs {
        let image = set.images.iter().find(|i| &i.reference == r).unwrap();
        let (repo, tag) = relocated(&to, r, Naming::Hash);
        assert_eq!(
            target.manifest_digest(&repo, &tag),
            Some(image.digest.clone())
        );
    }
    assert_mapping_resolves(&target, &read_mapping(&mapping));
}

#[test]
fn issue_3_a_corrupt_blob_fails_its_image_only_and_it_gets_no_tag() {
    use std::os::unix::fs::FileExt;

    let mut source = RegistryProcess::start();
    let set = source.push_fixtures();
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("bundle.tar");
    let base = set.image("fixtures/base:1");
    let chart = set.image("fixtures/chart:0.1.0");
    pack(
        &source,
        &[base.reference.clone(), chart.reference.clone()],
        &bundle,
        &[],
    );
    source.stop();

    // Flip one byte of the chart's content layer inside the tarball.
    let layer: ferry_oci::Digest = chart.blobs.last().unwrap().parse().unwrap();
    let offset = ferry_oci::LayoutArchive::open(&bundle)
        .unwrap()
        .blob(&layer)
        .unwrap()
        .data_offset;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&bundle)
        .unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, offset).unwrap();
    file.write_all_at(&[byte[0] ^ 0xff], offset).unwrap();

    let target = RegistryProcess::start();
    let to = format!("{}/mirror", target.host());
    let out = ferry(&[
        "unpack",
        bundle.to_str().unwrap(),
        "--to",
        &to,
        "--plain-http",
        &target.host(),
        "--json",
    ]);
    assert!(!out.status.success());
    let summary = json(&out);
    assert_eq!(summary["failed"], 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&layer.to_string()), "{stderr}");
    assert!(stderr.contains("does not match its digest"), "{stderr}");

    let (chart_repo, chart_tag) = relocated(&to, &chart.reference, Naming::Hash);
    assert_eq!(target.manifest_digest(&chart_repo, &chart_tag), None);
    assert!(!target.blob_exists(&chart_repo, &layer.to_string()));
    let (base_repo, base_tag) = relocated(&to, &base.reference, Naming::Hash);
    assert_eq!(
        target.manifest_digest(&base_repo, &base_tag),
        Some(base.digest.clone())
    );
}
