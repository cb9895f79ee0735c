//! `ferry unpack -` (issue 3): the bundle read from standard input, never
//! written to disk; the real binary against real `docker-registry`s.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use ferry_oci::{Naming, Reference, RelocationTarget};
use ferry_testkit::{require_tool, FixtureOptions, FixtureSet, RegistryProcess};
use serde_json::Value;

/// A layer bigger than the 4 MiB a streamed head may buffer.
const BIG: u64 = 6 << 20;

/// Run `ferry ARGS` with `input` on standard input.
fn run_with_stdin(args: &[&str], input: Vec<u8>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ferry");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        // ferry may stop reading early (a refused archive): not an error here.
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .output()
        .expect("run ferry")
}

/// Fixtures (with a big layer) pushed to a source, packed, source stopped.
fn packed_bundle(dir: &Path) -> (FixtureSet, Vec<u8>) {
    let mut source = RegistryProcess::start();
    let set = source.push_fixtures_with(FixtureOptions {
        big_layer_bytes: Some(BIG),
    });
    let bundle = dir.join("bundle.tar");
    let host = source.host();
    let mut args = vec!["pack", "--plain-http", &host, "--quiet", "-o"];
    args.push(bundle.to_str().unwrap());
    let refs: Vec<String> = set.images.iter().map(|i| i.reference.clone()).collect();
    args.extend(refs.iter().map(String::as_str));
    assert_ok(&ferry(&args), "pack");
    source.stop();
    (set, std::fs::read(&bundle).unwrap())
}

fn unpack_args<'a>(bundle: &'a str, to: &'a str, host: &'a str, mapping: &'a str) -> Vec<&'a str> {
    vec![
        "unpack",
        bundle,
        "--to",
        to,
        "--plain-http",
        host,
        "--mapping",
        mapping,
        "--json",
    ]
}

fn read_mapping(path: &Path) -> BTreeMap<String, String> {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A mapping with each value's host taken off: original -> path:tag@digest.
fn without_host(mapping: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    mapping
        .iter()
        .map(|(k, v)| {
            let r = Reference::parse(v).unwrap();
            let rest = format!(
                "{}:{}@{}",
                r.repository(),
                r.tag().unwrap(),
                r.digest().unwrap()
            );
            (k.clone(), rest)
        })
        .collect()
}

fn relocated(to: &str, original: &str) -> (String, String) {
    let target = RelocationTarget::parse(to).unwrap();
    let r = target
        .relocate(&Reference::parse(original).unwrap(), Naming::Hash)
        .unwrap();
    (r.repository().to_string(), r.tag().unwrap().to_string())
}

/// Every image, signature and referrer of `set` is served under `to`.
fn assert_all_served(target: &RegistryProcess, to: &str, set: &FixtureSet) {
    for image in &set.images {
        let (repo, tag) = relocated(to, &image.reference);
        assert_eq!(
            target.manifest_digest(&repo, &tag),
            Some(image.digest.clone()),
            "{}",
            image.reference
        );
    }
    for sig in &set.signatures {
        let (repo, tag) = relocated(to, &sig.reference);
        assert_eq!(tag, sig.tag);
        assert_eq!(
            target.manifest_digest(&repo, &tag),
            Some(sig.digest.clone())
        );
    }
    for referrer in &set.referrers {
        let (repo, _) = relocated(to, &referrer.subject_reference);
        let tag = referrer.tag.clone().unwrap();
        assert_eq!(
            target.manifest_digest(&repo, &tag),
            referrer.tag_index_digest,
            "referrers tag schema index {tag}"
        );
    }
}

#[test]
fn issue_3_unpack_from_standard_input_matches_a_file_unpack() {
    let work = tempfile::tempdir().unwrap();
    let (set, bundle) = packed_bundle(work.path());

    // From standard input into B.
    let b = RegistryProcess::start();
    let to_b = format!("{}/mirror", b.host());
    let map_b = work.path().join("b.json");
    let hostb = b.host();
    let args = unpack_args("-", &to_b, &hostb, map_b.to_str().unwrap());
    let out = run_with_stdin(&args, bundle.clone());
    assert_ok(&out, "unpack -");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["failed"], 0);
    assert!(summary["blobs_uploaded"].as_u64().unwrap() > 0);
    assert!(summary["bytes_uploaded"].as_u64().unwrap() > BIG);
    assert_all_served(&b, &to_b, &set);

    // The same bundle from a file into C: the same mapping, host aside.
    let c = RegistryProcess::start();
    let to_c = format!("{}/mirror", c.host());
    let map_c = work.path().join("c.json");
    let file = work.path().join("bundle.tar");
    let hostc = c.host();
    let args = unpack_args(
        file.to_str().unwrap(),
        &to_c,
        &hostc,
        map_c.to_str().unwrap(),
    );
    assert_ok(&ferry(&args), "unpack FILE");
    let (mb, mc) = (read_mapping(&map_b), read_mapping(&map_c));
    assert_eq!(mb.len(), set.images.len() + set.signatures.len());
    assert_eq!(without_host(&mb), without_host(&mc));

    // Again from standard input: nothing uploaded twice, same mapping.
    let again = work.path().join("again.json");
    let args = unpack_args("-", &to_b, &hostb, again.to_str().unwrap());
    let out = run_with_stdin(&args, bundle.clone());
    assert_ok(&out, "unpack - again");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["blobs_uploaded"], 0);
    assert_eq!(summary["tags_set"], 0);
    assert_eq!(
        std::fs::read(&map_b).unwrap(),
        std::fs::read(&again).unwrap()
    );

    // gzip on the pipe, into D; and a dry run, which pushes nothing.
    let d = RegistryProcess::start();
    let to_d = format!("{}/mirror", d.host());
    let map_d = work.path().join("d.json");
    let script = format!(
        "gzip -c {} | {} unpack - --to {to_d} --plain-http {} --mapping {} --quiet",
        file.display(),
        env!("CARGO_BIN_EXE_ferry"),
        d.host(),
        map_d.display()
    );
    let out = Command::new("bash")
        .args(["-o", "pipefail", "-c", &script])
        .output()
        .unwrap();
    assert_ok(&out, "gzip -c | unpack -");
    assert_all_served(&d, &to_d, &set);
    assert_eq!(without_host(&read_mapping(&map_d)), without_host(&mc));

    let e = RegistryProcess::start();
    let to_e = format!("{}/mirror", e.host());
    let map_e = work.path().join("e.json");
    let out = run_with_stdin(
        &[
            "unpack",
            "-",
            "--to",
            &to_e,
            "--dry-run",
            "--mapping",
            map_e.to_str().unwrap(),
        ],
        bundle,
    );
    assert_ok(&out, "unpack - --dry-run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("dry run: nothing pushed"));
    assert_eq!(without_host(&read_mapping(&map_e)), without_host(&mc));
    assert!(e.catalog().is_empty());
}

#[test]
fn issue_3_layers_before_manifests_on_standard_input_are_refused_untouched() {
    let source = RegistryProcess::start();
    let set = source.push_fixtures_with(FixtureOptions {
        big_layer_bytes: Some(BIG),
    });
    let big = set.image("fixtures/big:1");
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("layout");
    let status = Command::new(require_tool("skopeo", "apt-get install skopeo"))
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{}", big.reference))
        .arg(format!("oci:{}:fixtures/big:1", dir.display()))
        .status()
        .expect("run skopeo");
    assert!(status.success());
    // Biggest blob first, then the rest, as an archiver may well order them.
    let mut blobs: Vec<(u64, String)> = std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = format!("blobs/sha256/{}", e.file_name().to_string_lossy());
            (e.metadata().unwrap().len(), name)
        })
        .collect();
    blobs.sort_by(|a, b| b.cmp(a));
    assert!(blobs[0].0 > 4 << 20);
    let tarball = work.path().join("layers-first.tar");
    let status = Command::new(require_tool("tar", "apt-get install tar"))
        .arg("-C")
        .arg(&dir)
        .arg("-cf")
        .arg(&tarball)
        .args(["oci-layout", "index.json"])
        .args(blobs.iter().map(|(_, n)| n))
        .status()
        .unwrap();
    assert!(status.success());

    let target = RegistryProcess::start();
    let to = format!("{}/mirror", target.host());
    let host = target.host();
    let out = run_with_stdin(
        &["unpack", "-", "--to", &to, "--plain-http", &host],
        std::fs::read(&tarball).unwrap(),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("puts layers before manifests")
            && stderr.contains("save it to a file and run `ferry unpack FILE`"),
        "{stderr}"
    );
    assert!(target.catalog().is_empty(), "{:?}", target.catalog());

    // The same archive as a file unpacks.
    let file = tarball.to_str().unwrap();
    assert_ok(
        &ferry(&[
            "unpack",
            file,
            "--to",
            &to,
            "--plain-http",
            &host,
            "--quiet",
        ]),
        "unpack FILE",
    );
}

#[test]
fn issue_3_a_stream_cut_inside_a_layer_fails_and_tags_nothing() {
    let work = tempfile::tempdir().unwrap();
    let (set, bundle) = packed_bundle(work.path());
    // Where the big layer's data is.
    let mut archive = tar::Archive::new(bundle.as_slice());
    let start = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.header().size().unwrap() >= BIG)
        .map(|e| e.raw_file_position())
        .expect("the big layer");
    let cut = bundle[..(start + BIG / 2) as usize].to_vec();

    let target = RegistryProcess::start();
    let to = format!("{}/mirror", target.host());
    let host = target.host();
    let mapping = work.path().join("m.json");
    let out = run_with_stdin(
        &[
            "unpack",
            "-",
            "--to",
            &to,
            "--plain-http",
            &host,
            "--mapping",
            mapping.to_str().unwrap(),
        ],
        cut,
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("truncated"), "{stderr}");
    for image in &set.images {
        let (repo, _) = relocated(&to, &image.reference);
        assert!(
            target.tags(&repo).is_empty(),
            "{} was tagged",
            image.reference
        );
    }
    assert!(!mapping.exists());
}
