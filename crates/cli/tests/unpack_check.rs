//! `ferry unpack --check` (issue 13): a preflight of a real target that
//! pushes nothing — a pull-only account and a read-only registry block, a
//! tag that would move is named with both digests, and the upload estimate
//! counts what the target lacks.

mod util;

use base64::Engine as _;
use ferry_testkit::{
    FixtureSet, RegistryOptions, RegistryProcess, TokenServer, TokenServerOptions,
};
use serde_json::Value;
use util::{Run, Scratch};

const WRITER: &str = "writer";
const READER: &str = "reader";
const PASSWORD: &str = "pa55-Check-9x";

fn login(scratch: &Scratch, host: &str, user: &str) {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{PASSWORD}"));
    let config = serde_json::json!({"auths": {host: {"auth": auth}}});
    std::fs::create_dir_all(scratch.path(".docker")).unwrap();
    std::fs::write(
        scratch.path(".docker/config.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
}

/// `ferry unpack bundle.tar --to HOST/mirror --naming preserve` into
/// `target`, with `extra`.
fn unpack(scratch: &Scratch, target: &RegistryProcess, extra: &[&str]) -> Run {
    let (host, to) = (target.host(), format!("{}/mirror", target.host()));
    let args = ["unpack", "bundle.tar", "--to", &to, "--naming", "preserve"];
    scratch.ferry(
        args.into_iter()
            .chain(["--plain-http", &host])
            .chain(extra.iter().copied()),
    )
}

fn check(scratch: &Scratch, target: &RegistryProcess) -> Run {
    unpack(scratch, target, &["--check", "--json"])
}

/// A fresh source registry with the fixtures (kept running: tests copy
/// from it), and a scratch directory holding `bundle.tar`, fixtures/base:1
/// packed from it.
fn base_bundle() -> (RegistryProcess, Scratch, FixtureSet) {
    let source = RegistryProcess::start();
    let fixtures = source.push_fixtures();
    let scratch = Scratch::new();
    let base = fixtures.image("fixtures/base:1");
    let host = source.host();
    let pack = ["pack", "-q", &base.reference, "--plain-http", &host];
    scratch
        .ferry(pack.into_iter().chain(["-o", "bundle.tar"]))
        .ok();
    (source, scratch, fixtures)
}

fn row<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["check"] == name)
        .unwrap_or_else(|| panic!("no {name} row: {report}"))
}

#[test]
fn issue_13_check_finds_pull_only_accounts_moved_tags_and_what_to_upload() {
    let (_source, scratch, fixtures) = base_bundle();
    let base = fixtures.image("fixtures/base:1");
    let app = fixtures.image("fixtures/app:1");

    let tokens = TokenServer::start(TokenServerOptions {
        users: vec![
            (WRITER.into(), PASSWORD.into()),
            (READER.into(), PASSWORD.into()),
        ],
        pull_only: vec![READER.into()],
        ..TokenServerOptions::default()
    });
    let target = RegistryProcess::start_with(RegistryOptions {
        token: Some(tokens.auth()),
        ..RegistryOptions::default()
    });

    // A pull-only account: reachable, but push blocks.
    login(&scratch, &target.host(), READER);
    let run = check(&scratch, &target).failed();
    let report = run.json();
    assert_eq!(row(&report, "registry")["status"], "ok", "{report}");
    assert_eq!(row(&report, "push")["status"], "block", "{report}");
    assert!(report["blockers"].as_u64().unwrap() >= 1);
    assert!(run.stderr.contains("block"), "{}", run.stderr);
    assert!(!run.stderr.contains(PASSWORD) && !run.stdout.contains(PASSWORD));

    // An account that may push: nothing blocks, every blob is to upload,
    // and nothing was pushed.
    login(&scratch, &target.host(), WRITER);
    let report = check(&scratch, &target).ok().json();
    assert_eq!(report["blockers"], 0, "{report}");
    assert_eq!(row(&report, "push")["status"], "ok");
    let to_upload = report["blobs_to_upload"].as_u64().unwrap();
    assert!(to_upload >= base.blobs.len() as u64, "{report}");
    assert!(report["tag_moves"].as_array().unwrap().is_empty());
    let relocated_repo = format!("mirror/{}", base.repository);
    assert_eq!(target.manifest_digest(&relocated_repo, &base.tag), None);

    // The estimate is what a real unpack uploads; checked again, nothing is
    // left and no tag moves (re-setting a tag to its digest is no move).
    let summary = unpack(&scratch, &target, &["--json"]).ok().json();
    assert_eq!(
        summary["blobs_uploaded"].as_u64().unwrap(),
        to_upload,
        "{summary}"
    );
    let report = check(&scratch, &target).ok().json();
    assert_eq!(report["blobs_to_upload"], 0, "{report}");
    assert!(report["tag_moves"].as_array().unwrap().is_empty());

    // Someone puts another image under the tag the unpack would set.
    let status = std::process::Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--dest-creds",
            &format!("{WRITER}:{PASSWORD}"),
            &format!("docker://{}", app.reference),
            &format!("docker://{}/{relocated_repo}:{}", target.host(), base.tag),
        ])
        .status()
        .expect("run skopeo");
    assert!(status.success());
    let report = check(&scratch, &target).ok().json();
    let moves = report["tag_moves"].as_array().unwrap();
    assert_eq!(moves.len(), 1, "{report}");
    assert_eq!(moves[0]["from"], app.digest.as_str());
    assert_eq!(moves[0]["to"], base.digest.as_str());
    assert_eq!(row(&report, "tags")["status"], "warn");

    // The text table says the same.
    let run = unpack(&scratch, &target, &["--check"]).ok();
    assert!(run.stdout.contains(&app.digest), "{}", run.stdout);
    assert!(run.stdout.contains("would move"), "{}", run.stdout);
}

#[test]
fn issue_13_check_blocks_on_a_read_only_registry() {
    let (_source, scratch, _) = base_bundle();
    let target = RegistryProcess::start_with(RegistryOptions {
        read_only: true,
        ..RegistryOptions::default()
    });
    let report = check(&scratch, &target).failed().json();
    let push = row(&report, "push");
    assert_eq!(push["status"], "block", "{report}");
    assert!(
        push["detail"].as_str().unwrap().contains("UNSUPPORTED")
            || push["detail"].as_str().unwrap().contains("405"),
        "{report}"
    );

    // An unreachable registry blocks at the first row.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = closed.local_addr().unwrap().to_string();
    drop(closed);
    let run = scratch.ferry([
        "unpack",
        "bundle.tar",
        "--to",
        &format!("{host}/mirror"),
        "--plain-http",
        &host,
        "--check",
        "--json",
        "--retries",
        "1",
    ]);
    let report = run.failed().json();
    assert_eq!(row(&report, "registry")["status"], "block", "{report}");
}

#[test]
fn issue_13_existing_tag_fail_skip_and_overwrite() {
    let (_source, scratch, fixtures) = base_bundle();
    let base = fixtures.image("fixtures/base:1");
    let app = fixtures.image("fixtures/app:1");
    let target = RegistryProcess::start();
    let repo = format!("mirror/{}", base.repository);
    // The target's tag already names another image.
    let status = std::process::Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{}", app.reference),
            &format!("docker://{}/{repo}:{}", target.host(), base.tag),
        ])
        .status()
        .expect("run skopeo");
    assert!(status.success());
    let unpack = |policy: &str| {
        let policy = [
            "--existing-tag",
            policy,
            "--mapping",
            "mapping.json",
            "--json",
        ];
        unpack(&scratch, &target, &policy)
    };

    // fail: refused before anything is pushed.
    let run = unpack("fail").failed();
    assert!(run.stderr.contains("would move"), "{}", run.stderr);
    assert!(run.stderr.contains(&app.digest), "{}", run.stderr);
    assert_eq!(
        target.manifest_digest(&repo, &base.tag),
        Some(app.digest.clone())
    );
    assert_eq!(target.manifest_digest(&repo, &base.digest), None);
    let base_only = base.blobs.iter().find(|b| !app.blobs.contains(b)).unwrap();
    assert!(!target.blob_exists(&repo, base_only));
    assert!(!scratch.path("mapping.json").exists());

    // skip: the image goes in by digest, the tag stays, and both the
    // summary and the mapping say so.
    let summary = unpack("skip").ok().json();
    assert_eq!(
        target.manifest_digest(&repo, &base.tag),
        Some(app.digest.clone())
    );
    assert_eq!(
        target.manifest_digest(&repo, &base.digest),
        Some(base.digest.clone())
    );
    let left = summary["tags_left"].as_array().unwrap();
    assert_eq!(left.len(), 1, "{summary}");
    assert_eq!(left[0]["from"], app.digest.as_str());
    assert_eq!(left[0]["to"], base.digest.as_str());
    assert!(summary["tags_moved"].as_array().unwrap().is_empty());
    let mapping: Value =
        serde_json::from_slice(&std::fs::read(scratch.path("mapping.json")).unwrap()).unwrap();
    assert_eq!(
        mapping[&base.reference],
        format!("{}/{repo}@{}", target.host(), base.digest).as_str(),
        "{mapping}"
    );

    // overwrite (the default): the tag moves and the summary says from what.
    let summary = unpack("overwrite").ok().json();
    assert_eq!(
        target.manifest_digest(&repo, &base.tag),
        Some(base.digest.clone())
    );
    let moved = summary["tags_moved"].as_array().unwrap();
    assert_eq!(moved.len(), 1, "{summary}");
    assert_eq!(moved[0]["from"], app.digest.as_str());
    assert_eq!(moved[0]["to"], base.digest.as_str());

    // Setting a tag to the digest it has is no move: fail passes now.
    let summary = unpack("fail").ok().json();
    assert!(summary["tags_moved"].as_array().unwrap().is_empty());
    assert!(summary["tags_left"].as_array().unwrap().is_empty());
}

#[test]
fn issue_13_max_depth_adapts_names_or_refuses_them() {
    let (_source, scratch, fixtures) = base_bundle();
    let base = fixtures.image("fixtures/base:1");
    let target = RegistryProcess::start();
    let unpack = |to: &str, extra: &[&str]| {
        let mut args = vec![
            "unpack",
            "bundle.tar",
            "--to",
            to,
            "--naming",
            "preserve",
            "--max-depth",
            "2",
            "--plain-http",
        ];
        let host = target.host();
        args.push(&host);
        args.extend_from_slice(extra);
        scratch.ferry(args)
    };
    // A prefix as deep as the limit leaves no room: refused before anything.
    let run = unpack(&format!("{}/a/b", target.host()), &["--check"]).failed();
    assert!(run.stderr.contains("--max-depth 2"), "{}", run.stderr);

    // Under one prefix component, fixtures/base becomes a/fixtures-base, and
    // the check says so.
    let to = format!("{}/a", target.host());
    let report = unpack(&to, &["--check", "--json"]).ok().json();
    let names = row(&report, "names")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(names.contains("at most 2 path components"), "{names}");
    unpack(&to, &[]).ok();
    assert_eq!(
        target.manifest_digest("a/fixtures-base", &base.tag),
        Some(base.digest.clone())
    );
}
