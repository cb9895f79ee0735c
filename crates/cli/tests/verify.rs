//! `ferry verify` and `ferry inspect` run as the real binary against bundles
//! packed from a real registry (issue 4).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

use ferry_oci::LayoutArchive;
use ferry_testkit::{fixture_path, require_tool, FixtureOptions, FixtureSet, RegistryProcess};
use serde_json::Value;

fn ferry(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running ferry")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "ferry failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn failed(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit 1:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// Pack `refs` (repo:tag) from `fixtures` into `dir/name`.
fn pack(dir: &Path, fixtures: &FixtureSet, refs: &[&str], extra: &[&str], name: &str) {
    let mut args: Vec<String> = vec!["pack".into()];
    args.extend(refs.iter().map(|r| format!("{}/{r}", fixtures.host)));
    args.extend([
        "--plain-http".into(),
        fixtures.host.clone(),
        "-o".into(),
        name.into(),
        "-q".into(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&ferry(dir, &args));
}

fn skopeo(args: &[&str]) {
    let out = Command::new(require_tool("skopeo", "apt-get install skopeo"))
        .args(args)
        .output()
        .expect("running skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn all_refs(fixtures: &FixtureSet) -> Vec<String> {
    fixtures.images.iter().map(|i| i.repo_tag()).collect()
}

#[test]
fn packed_bundle_verifies_lists_image_ids_and_matches_its_sha256_file() {
    let registry = RegistryProcess::start();
    let fixtures = registry.push_fixtures();
    let dir = tempfile::tempdir().unwrap();
    let refs = all_refs(&fixtures);
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    pack(dir.path(), &fixtures, &refs, &[], "x.tar");

    let text = ok(&ferry(dir.path(), &["verify", "x.tar"]));
    assert!(text.contains("verify x.tar: OK"), "{text}");

    let report = json(&ferry(dir.path(), &["verify", "x.tar", "--json"]));
    assert_eq!(report["ok"], true);
    assert_eq!(report["archive"]["errors"], 0);
    let references = report["archive"]["bundle"]["references"]
        .as_array()
        .unwrap();
    for image in &fixtures.images {
        let r = references
            .iter()
            .find(|r| r["reference"] == image.reference.as_str())
            .unwrap_or_else(|| panic!("{} not in the report", image.reference));
        assert_eq!(r["digest"], image.digest.as_str());
        let ids: BTreeSet<&str> = r["images"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["config_digest"].as_str())
            .collect();
        let want: BTreeSet<&str> = image.config_digests.iter().map(String::as_str).collect();
        assert_eq!(ids, want, "config digests of {}", image.reference);
    }

    let check = Command::new(require_tool("sha256sum", "apt-get install coreutils"))
        .args(["-c", "x.tar.sha256"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    // Flip one byte of a layer in place: verify names the blob, sha256sum fails.
    let archive = LayoutArchive::open(&dir.path().join("x.tar")).unwrap();
    let layer = archive.blobs().last().unwrap().clone();
    drop(archive);
    let path = dir.path().join("x.tar");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[layer.data_offset as usize] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    let text = failed(&ferry(dir.path(), &["verify", "x.tar"]));
    assert!(
        text.contains(&format!(
            "{}: content does not match its name",
            layer.digest.blob_path()
        )),
        "{text}"
    );
    assert!(text.contains("verify x.tar: FAILED: 1 error(s)"), "{text}");
    let check = Command::new(require_tool("sha256sum", "apt-get install coreutils"))
        .args(["-c", "x.tar.sha256"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!check.status.success());
}

/// The committed skopeo layout (fixtures/skopeo-base.tar, names `./`-
/// prefixed as `tar -C layout -cf x.tar .` writes them) and podman's
/// `save --format oci-archive`: both verify, and inspect shows the fixture
/// image's manifest digest (skopeo keeps it; podman stores its own) and
/// image ID (the config, the same in both).
#[test]
fn skopeo_and_podman_archives_pass_verify_and_inspect() {
    let base = FixtureSet::generate("h", &FixtureOptions::default())
        .image("fixtures/base:1")
        .clone();
    let dir = tempfile::tempdir().unwrap();
    for (file, reference, digest) in [
        ("skopeo-base.tar", "fixtures/base:1", Some(&base.digest)),
        (
            "podman-base.oci.tar",
            "registry.example/fixtures/base:1",
            None,
        ),
    ] {
        let path = fixture_path(file);
        let path = path.to_str().unwrap();
        let text = ok(&ferry(dir.path(), &["verify", path]));
        assert!(text.contains(": OK"), "{file}: {text}");
        let report = json(&ferry(dir.path(), &["inspect", path, "--json"]));
        let r = &report["references"][0];
        assert_eq!(r["reference"], reference, "{file}");
        if let Some(digest) = digest {
            assert_eq!(r["digest"], digest.as_str(), "{file}");
        }
        assert_eq!(
            r["images"][0]["config_digest"],
            base.config_digests[0].as_str(),
            "{file}"
        );
        let table = ok(&ferry(dir.path(), &["inspect", path]));
        assert!(table.contains(reference), "{file}: {table}");
    }
}

#[test]
fn inspect_sparse_bundle_lists_carried_and_not_carried_platforms() {
    let registry = RegistryProcess::start();
    let fixtures = registry.push_fixtures();
    let dir = tempfile::tempdir().unwrap();
    pack(
        dir.path(),
        &fixtures,
        &["fixtures/multi:1"],
        &["--platform", "linux/amd64"],
        "sparse.tar",
    );
    let multi = fixtures.image("fixtures/multi:1");
    let report = json(&ferry(dir.path(), &["inspect", "sparse.tar", "--json"]));
    let r = &report["references"][0];
    assert_eq!(r["digest"], multi.digest.as_str());
    assert_eq!(r["platforms_carried"], serde_json::json!(["linux/amd64"]));
    let not_carried: BTreeSet<&str> = r["platforms_not_carried"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let want: BTreeSet<&str> = multi
        .platforms
        .iter()
        .map(String::as_str)
        .filter(|p| *p != "linux/amd64")
        .collect();
    assert_eq!(not_carried, want);
    let table = ok(&ferry(dir.path(), &["inspect", "sparse.tar"]));
    assert!(table.contains("not carried:"), "{table}");
    ok(&ferry(dir.path(), &["verify", "sparse.tar"]));
}

#[test]
fn verify_mapping_holds_after_a_copy_and_fails_when_a_tag_moves() {
    let source = RegistryProcess::start();
    let fixtures = source.push_fixtures();
    let target = RegistryProcess::start();
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "fixtures/base:1",
        "fixtures/multi:1",
        "fixtures/dockerlist:1",
    ];
    let mut mapping = BTreeMap::new();
    for name in names {
        let image = fixtures.image(name);
        let relocated = format!(
            "{}/reloc/{}",
            target.host(),
            name.trim_start_matches("fixtures/")
        );
        skopeo(&[
            "copy",
            "-q",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{}", image.reference),
            &format!("docker://{relocated}"),
        ]);
        mapping.insert(
            image.reference.clone(),
            format!("{relocated}@{}", image.digest),
        );
    }
    std::fs::write(
        dir.path().join("mapping.json"),
        serde_json::to_vec_pretty(&mapping).unwrap(),
    )
    .unwrap();
    pack(dir.path(), &fixtures, &names, &["--no-referrers"], "b.tar");
    let host = target.host();
    let text = ok(&ferry(
        dir.path(),
        &["verify", "--mapping", "mapping.json", "--plain-http", &host],
    ));
    assert!(text.contains("OK: 3 reference(s) hold"), "{text}");
    ok(&ferry(
        dir.path(),
        &[
            "verify",
            "b.tar",
            "--mapping",
            "mapping.json",
            "--plain-http",
            &host,
        ],
    ));

    // A bundle reference the mapping leaves out.
    let mut partial = mapping.clone();
    let base = fixtures.image("fixtures/base:1").reference.clone();
    partial.remove(&base);
    std::fs::write(
        dir.path().join("partial.json"),
        serde_json::to_vec(&partial).unwrap(),
    )
    .unwrap();
    let text = failed(&ferry(
        dir.path(),
        &[
            "verify",
            "b.tar",
            "--mapping",
            "partial.json",
            "--plain-http",
            &host,
        ],
    ));
    assert!(
        text.contains(&format!("{base}: is in the bundle but not in the mapping")),
        "{text}"
    );

    // Move reloc/base:1 to another image.
    let app = fixtures.image("fixtures/app:1");
    skopeo(&[
        "copy",
        "-q",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{}", app.reference),
        &format!("docker://{host}/reloc/base:1"),
    ]);
    let out = ferry(
        dir.path(),
        &[
            "verify",
            "--mapping",
            "mapping.json",
            "--plain-http",
            &host,
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["ok"], false);
    let problems = report["mapping"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0]["entry"], base.as_str());
    assert_eq!(problems[0]["found"], app.digest.as_str());
    let text = failed(&ferry(
        dir.path(),
        &["verify", "--mapping", "mapping.json", "--plain-http", &host],
    ));
    assert!(
        text.contains(&format!(
            "error: {base}: tag {host}/reloc/base:1 resolves to another manifest"
        )),
        "{text}"
    );
}

#[test]
fn verify_without_anything_to_verify_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = ferry(dir.path(), &["verify"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to verify"));
}

#[test]
fn verify_mapping_after_a_real_unpack_and_after_a_tag_moves() {
    let mut source = RegistryProcess::start();
    let fixtures = source.push_fixtures();
    let dir = tempfile::tempdir().unwrap();
    let refs = all_refs(&fixtures);
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    pack(dir.path(), &fixtures, &refs, &[], "bundle.tar");
    source.stop();

    let target = RegistryProcess::start();
    let host = target.host();
    ok(&ferry(
        dir.path(),
        &[
            "unpack",
            "bundle.tar",
            "--to",
            &format!("{host}/mirror"),
            "--plain-http",
            &host,
            "--mapping",
            "mapping.json",
            "-q",
        ],
    ));
    let check = |extra: &[&str]| {
        let mut args = vec![
            "verify",
            "--mapping",
            "mapping.json",
            "--plain-http",
            &host,
            "--json",
        ];
        args.extend_from_slice(extra);
        ferry(dir.path(), &args)
    };
    // The relocation holds, and covers every reference in the bundle.
    let report = json(&check(&["bundle.tar"]));
    assert_eq!(report["ok"], true, "{report:#}");

    // Move the relocated base:1 tag to the app image: verify names base:1.
    let mapping: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(dir.path().join("mapping.json")).unwrap()).unwrap();
    let base = fixtures.image("fixtures/base:1");
    let app = fixtures.image("fixtures/app:1");
    let relocated_base = mapping[&base.reference]
        .split('@')
        .next()
        .unwrap()
        .to_string();
    // skopeo 1.9 takes name@digest, not name:tag@digest.
    let (app_tagged, app_digest) = mapping[&app.reference].split_once('@').unwrap();
    let app_name = &app_tagged[..app_tagged.rfind(':').unwrap()];
    let relocated_app = format!("{app_name}@{app_digest}");
    skopeo(&[
        "copy",
        "-q",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{relocated_app}"),
        &format!("docker://{relocated_base}"),
    ]);
    let out = check(&[]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let problems = report["mapping"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0]["entry"], base.reference.as_str());
    assert_eq!(problems[0]["found"], app.digest.as_str());
}
