//! Updates across the gap (issue 10): receipts, delta bundles, checking and
//! loading deltas, merge — the real binary against real `docker-registry`
//! instances.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ferry_oci::{Naming, Reference, RelocationTarget};
use ferry_testkit::{FixtureSet, RegistryProcess};
use serde_json::Value;

fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .output()
        .expect("run ferry")
}

fn ferry_stdin(args: &[&str], input: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .stdin(Stdio::from(File::open(input).unwrap()))
        .output()
        .expect("run ferry")
}

fn show(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(args: &[&str]) -> Output {
    let out = ferry(args);
    assert!(
        out.status.success(),
        "ferry {args:?} failed\n{}",
        show(&out)
    );
    out
}

fn refused(out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "should have failed\n{}",
        show(&out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `ferry pack` of `tags` (repo:tag) from `source` into `out`, plus `extra`.
fn pack(source: &RegistryProcess, set: &FixtureSet, tags: &[&str], out: &Path, extra: &[&str]) {
    let host = source.host();
    let mut args: Vec<String> = vec!["pack".into(), "--plain-http".into(), host, "--quiet".into()];
    args.extend(["-o".into(), s(out).to_string()]);
    args.extend(tags.iter().map(|t| set.image(t).reference.clone()));
    args.extend(extra.iter().map(|e| e.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&args);
}

fn unpack_args<'a>(bundle: &'a str, to: &'a str, host: &'a str) -> Vec<&'a str> {
    vec![
        "unpack",
        bundle,
        "--to",
        to,
        "--plain-http",
        host,
        "--quiet",
    ]
}

fn relocated(to: &str, original: &str) -> (String, String) {
    let target = RelocationTarget::parse(to).unwrap();
    let r = target
        .relocate(&Reference::parse(original).unwrap(), Naming::Hash)
        .unwrap();
    (r.repository().to_string(), r.tag().unwrap().to_string())
}

fn sha256_file(path: &Path) -> String {
    let text = std::fs::read_to_string(format!("{}.sha256", path.display())).unwrap();
    text.split_whitespace().next().unwrap().to_string()
}

fn blob_entries(path: &Path) -> Vec<String> {
    let archive = ferry_oci::LayoutArchive::open(path).unwrap();
    archive.blobs().map(|b| b.digest.to_string()).collect()
}

const V1: &[&str] = &["fixtures/base:1", "fixtures/docker:1"];
const V2: &[&str] = &["fixtures/base:1", "fixtures/docker:1", "fixtures/app:1"];

#[test]
fn issue_10_receipt_delta_unpack_and_merge() {
    let source = RegistryProcess::start();
    let set = source.push_fixtures();
    let work = tempfile::tempdir().unwrap();
    let path = |name: &str| -> PathBuf { work.path().join(name) };
    let (v1, v2) = (path("v1.tar"), path("v2.tar"));
    pack(&source, &set, V1, &v1, &[]);
    pack(&source, &set, V2, &v2, &[]);

    // The site loads v1 and sends back a receipt.
    let site = RegistryProcess::start();
    let site_host = site.host();
    let to = format!("{site_host}/site");
    let receipt = path("site-receipt.json");
    let mut args = unpack_args(s(&v1), &to, &site_host);
    args.extend(["--receipt", s(&receipt)]);
    ok(&args);
    let r: Value = serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    assert_eq!(r["ferryReceipt"], 1);
    assert_eq!(r["registry"], site_host.as_str());
    assert_eq!(r["prefix"], "site");
    assert_eq!(r["bundles"], serde_json::json!([sha256_file(&v1)]));
    let held: Vec<&str> = r["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap())
        .collect();
    for image in V1 {
        for blob in &set.image(image).blobs {
            assert!(
                held.contains(&blob.as_str()),
                "{image} {blob} not in the receipt"
            );
        }
    }
    // `ferry receipt` asks the registry (HEAD only) and says the same.
    let asked = path("asked.json");
    ok(&[
        "receipt",
        s(&v1),
        "--to",
        &to,
        "--plain-http",
        &site_host,
        "-o",
        s(&asked),
        "--quiet",
    ]);
    assert_eq!(
        std::fs::read(&asked).unwrap(),
        std::fs::read(&receipt).unwrap()
    );

    // Deltas against the bundle and against the receipt.
    let (by_bundle, by_receipt) = (path("v2-since-v1.tar"), path("v2-since-receipt.tar"));
    pack(&source, &set, V2, &by_bundle, &["--since", s(&v1)]);
    pack(&source, &set, V2, &by_receipt, &["--since", s(&receipt)]);
    let again = path("again.tar");
    pack(
        &source,
        &set,
        &[V2[2], V2[0], V2[1]],
        &again,
        &["--since", s(&v1)],
    );
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(&by_bundle).unwrap(),
        "same images and bases give the same delta"
    );
    // Only layers the base lacks are carried: app's own, no base layer.
    let carried = blob_entries(&by_bundle);
    let app = set.image("fixtures/app:1");
    let base = set.image("fixtures/base:1");
    for layer in base.blobs.iter().skip(1) {
        assert!(!carried.contains(layer), "base layer {layer} carried");
    }
    assert!(carried.contains(&app.config_digests[0]));
    let app_own: Vec<&String> = app
        .blobs
        .iter()
        .filter(|b| !base.blobs.contains(b))
        .collect();
    assert!(!app_own.is_empty());
    for blob in app_own {
        assert!(carried.contains(blob), "{blob} missing from the delta");
    }
    assert!(std::fs::metadata(&by_bundle).unwrap().len() < std::fs::metadata(&v2).unwrap().len());
    // index.json names the images exactly as the full bundle does.
    let index = |p: &Path| -> Value {
        let a = ferry_oci::LayoutArchive::open(p).unwrap();
        serde_json::from_slice(a.index_json()).unwrap()
    };
    assert_eq!(index(&by_bundle)["manifests"], index(&v2)["manifests"]);
    assert!(index(&by_bundle)["annotations"]["dev.ferry.delta"].is_string());

    // verify says it is a delta, checks what it carries, and passes.
    let out = ok(&["verify", s(&by_bundle)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("is a delta"), "{text}");
    assert!(text.contains("v1.tar (bundle"), "{text}");
    let out = ok(&["verify", s(&by_bundle), "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let delta = &report["archive"]["bundle"]["delta"];
    assert!(delta["blobs_expected"].as_u64().unwrap() > 0, "{report:#}");

    // The same delta into an empty registry: refused, nothing pushed.
    let empty = RegistryProcess::start();
    let empty_host = empty.host();
    let empty_to = format!("{empty_host}/site");
    let err = refused(ferry(&unpack_args(s(&by_bundle), &empty_to, &empty_host)));
    assert!(err.contains("v1.tar (bundle, sha256"), "{err}");
    assert!(err.contains("nothing was pushed"), "{err}");
    assert!(empty.catalog().is_empty(), "{:?}", empty.catalog());
    // From stdin too.
    let err = refused(ferry_stdin(
        &unpack_args("-", &empty_to, &empty_host),
        &by_bundle,
    ));
    assert!(err.contains("nothing was pushed"), "{err}");
    assert!(empty.catalog().is_empty(), "{:?}", empty.catalog());

    // Into the site loaded from v1: every v2 image at its source digest.
    ok(&unpack_args(s(&by_bundle), &to, &site_host));
    for tag in V2 {
        let image = set.image(tag);
        let (repo, t) = relocated(&to, &image.reference);
        assert_eq!(
            site.manifest_digest(&repo, &t),
            Some(image.digest.clone()),
            "{tag}"
        );
        for blob in &image.blobs {
            assert!(site.blob_exists(&repo, blob), "{tag}: {blob} in {repo}");
        }
    }
    // The receipt-based delta loads from stdin (a no-op now, but checked).
    let out = ferry_stdin(&unpack_args("-", &to, &site_host), &by_receipt);
    assert!(out.status.success(), "{}", show(&out));

    // A receipt for another registry is refused before anything happens.
    let err = refused(ferry(&unpack_args(s(&by_receipt), &empty_to, &empty_host)));
    assert!(err.contains("site-receipt.json (receipt"), "{err}");
    assert!(err.contains(&to), "{err}");
    assert!(empty.catalog().is_empty());

    // merge(v1, delta) is the full v2 bundle, byte for byte.
    let merged = path("merged.tar");
    ok(&["merge", s(&v1), s(&by_bundle), "-o", s(&merged), "--quiet"]);
    assert_eq!(std::fs::read(&merged).unwrap(), std::fs::read(&v2).unwrap());
    assert_eq!(sha256_file(&merged), sha256_file(&v2));
    // Against the receipt's bundle too.
    let merged2 = path("merged2.tar");
    ok(&[
        "merge",
        s(&v1),
        s(&by_receipt),
        "-o",
        s(&merged2),
        "--quiet",
    ]);
    assert_eq!(
        std::fs::read(&merged2).unwrap(),
        std::fs::read(&v2).unwrap()
    );
    // Merged straight onto media: parts (and a parity part) that are the
    // full bundle when joined, listed in OUT.sha256 for `sha256sum -c`.
    let on_media = path("media.tar");
    ok(&[
        "merge",
        s(&v1),
        s(&by_bundle),
        "-o",
        s(&on_media),
        "--split",
        "10k",
        "--parity",
        "1",
        "--quiet",
    ]);
    assert!(!on_media.exists());
    let mut joined = Vec::new();
    for i in 0.. {
        let part = path(&format!("media.tar.{i:03}"));
        let Ok(bytes) = std::fs::read(&part) else {
            break;
        };
        assert!(bytes.len() <= 10_000, "{}", part.display());
        joined.extend(bytes);
    }
    assert_eq!(joined, std::fs::read(&v2).unwrap());
    assert!(path("media.tar.001").exists());
    assert!(path("media.tar.p00").exists());
    let check = std::process::Command::new("sha256sum")
        .args(["-c", "--ignore-missing", "media.tar.sha256"])
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    ok(&["verify", s(&path("media.tar.000")), "--quiet"]);
}

#[test]
fn issue_10_bad_input_is_refused_and_nothing_is_written_or_pushed() {
    let source = RegistryProcess::start();
    let set = source.push_fixtures();
    let work = tempfile::tempdir().unwrap();
    let path = |name: &str| -> PathBuf { work.path().join(name) };
    let (v1, other) = (path("v1.tar"), path("other.tar"));
    pack(&source, &set, V1, &v1, &[]);
    pack(&source, &set, &["fixtures/multi:1"], &other, &[]);
    let delta = path("delta.tar");
    pack(&source, &set, V2, &delta, &["--since", s(&v1)]);

    // A base that is not a bundle: refused naming the file; no output.
    let junk = path("notes.txt");
    std::fs::write(&junk, "not a bundle\n").unwrap();
    let out_path = path("out.tar");
    let host = source.host();
    let base_refs = set.image(V2[0]).reference.clone();
    let err = refused(ferry(&[
        "pack",
        "--plain-http",
        &host,
        "-o",
        s(&out_path),
        &base_refs,
        "--since",
        s(&junk),
    ]));
    assert!(err.contains("notes.txt"), "{err}");
    assert!(!out_path.exists());
    // A receipt of another version of the format.
    let future = path("future.json");
    std::fs::write(&future, r#"{"ferryReceipt": 9}"#).unwrap();
    let err = refused(ferry(&[
        "pack",
        "--plain-http",
        &host,
        "-o",
        s(&out_path),
        &base_refs,
        "--since",
        s(&future),
    ]));
    assert!(
        err.contains("future.json") && err.contains("version 9"),
        "{err}"
    );
    assert!(!out_path.exists());

    // merge with a base that is not the delta's: refused naming both.
    let merged = path("merged.tar");
    let err = refused(ferry(&["merge", s(&other), s(&delta), "-o", s(&merged)]));
    assert!(
        err.contains("delta.tar") && err.contains("v1.tar (bundle"),
        "{err}"
    );
    assert!(err.contains("other.tar"), "{err}");
    assert!(!merged.exists());
    // merge without a delta.
    let err = refused(ferry(&["merge", s(&v1), s(&other), "-o", s(&merged)]));
    assert!(err.contains("not a delta"), "{err}");
    assert!(!merged.exists());

    // A receipt edited by hand to claim blobs the target lacks: the delta
    // made against it is refused by the empty registry, nothing pushed.
    let site = RegistryProcess::start();
    let site_host = site.host();
    let to = format!("{site_host}/site");
    let bundle_sha = sha256_file(&v1);
    let archive = ferry_oci::LayoutArchive::open(&v1).unwrap();
    let sorted: std::collections::BTreeMap<_, _> = archive
        .blobs()
        .map(|b| (b.digest.clone(), b.size))
        .collect();
    let blobs: Vec<Value> = sorted
        .iter()
        .map(|(d, size)| serde_json::json!({"digest": d.to_string(), "size": size}))
        .collect();
    let forged = serde_json::json!({
        "ferryReceipt": 1, "registry": site_host, "prefix": "site",
        "bundles": [bundle_sha], "manifests": [], "blobs": blobs,
    });
    let forged_path = path("forged.json");
    std::fs::write(&forged_path, serde_json::to_vec_pretty(&forged).unwrap()).unwrap();
    let forged_delta = path("forged-delta.tar");
    pack(
        &source,
        &set,
        V2,
        &forged_delta,
        &["--since", s(&forged_path)],
    );
    let err = refused(ferry(&unpack_args(s(&forged_delta), &to, &site_host)));
    assert!(err.contains("forged.json (receipt"), "{err}");
    assert!(err.contains("lacks"), "{err}");
    assert!(site.catalog().is_empty(), "{:?}", site.catalog());
    // A delta whose record was altered: verify fails, unpack refuses it
    // before contacting the registry.
    let mut bytes = std::fs::read(&forged_delta).unwrap();
    let at = bytes
        .windows(14)
        .position(|w| w == br#""ferryDelta":1"#)
        .expect("the record is in the archive");
    bytes[at + 13] = b'2';
    let tampered = path("tampered.tar");
    std::fs::write(&tampered, &bytes).unwrap();
    let out = ferry(&["verify", s(&tampered)]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = refused(ferry(&unpack_args(s(&tampered), &to, &site_host)));
    assert!(err.contains("delta record"), "{err}");
    assert!(site.catalog().is_empty(), "{:?}", site.catalog());

    // A delta given where a bundle was expected by merge: the delta's own
    // base missing from the files given.
    let err = refused(ferry(&[
        "merge",
        s(&forged_delta),
        s(&delta),
        "-o",
        s(&merged),
    ]));
    assert!(err.contains("v1.tar"), "{err}");
    assert!(!merged.exists());
}
