//! Issue 16: cosign-format image signatures checked offline at pack, verify
//! and unpack; a signed bundle. Real signatures made with the openssl CLI
//! over images in a real docker-registry, with a second key as impostor.

mod util;

use ferry_testkit::cosign::{
    push_signature, push_signature_referrer, simple_signing_payload, KeyPair, SignedPayload,
};
use ferry_testkit::{FixtureSet, RegistryProcess};
use serde_json::Value;
use util::Scratch;

struct Setup {
    registry: RegistryProcess,
    fixtures: FixtureSet,
    scratch: Scratch,
    maker: KeyPair,
    impostor: KeyPair,
}

fn setup() -> Setup {
    let registry = RegistryProcess::start();
    let fixtures = registry.push_fixtures();
    let scratch = Scratch::new();
    let maker = KeyPair::generate(scratch.dir(), "maker");
    let impostor = KeyPair::generate(scratch.dir(), "impostor");
    Setup {
        registry,
        fixtures,
        scratch,
        maker,
        impostor,
    }
}

impl Setup {
    fn reference(&self, repo_tag: &str) -> String {
        self.fixtures.image(repo_tag).reference.clone()
    }

    fn digest(&self, repo_tag: &str) -> String {
        self.fixtures.image(repo_tag).digest.clone()
    }

    /// Sign `repo_tag` (its digest) with the given layers.
    fn sign(&self, repo_tag: &str, layers: &[SignedPayload]) {
        let image = self.fixtures.image(repo_tag);
        push_signature(
            &self.registry.pusher(),
            &image.repository,
            &image.digest,
            layers,
        );
    }

    fn signed_by(&self, key: &KeyPair, repo_tag: &str) -> SignedPayload {
        let image = self.fixtures.image(repo_tag);
        SignedPayload::for_digest(key, &image.repository, &image.digest)
    }

    fn pack(&self, repo_tags: &[&str], out: &str, extra: &[&str]) -> util::Run {
        let mut args: Vec<String> = vec!["pack".into()];
        args.extend(repo_tags.iter().map(|r| self.reference(r)));
        args.extend([
            "--plain-http".into(),
            self.registry.host(),
            "-o".into(),
            out.into(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        self.scratch.ferry(args)
    }

    fn key(&self, key: &KeyPair) -> String {
        key.public.display().to_string()
    }
}

fn fingerprint(public: &std::path::Path) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl pkey -pubin -in {} -outform DER | sha256sum",
            public.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    let hex = String::from_utf8(out.stdout).unwrap();
    format!("sha256:{}", hex.split_whitespace().next().unwrap())
}

fn image<'a>(report: &'a Value, reference: &str) -> &'a Value {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reference"] == reference)
        .unwrap_or_else(|| panic!("{reference} not in {report:#}"))
}

#[test]
fn required_signatures_hold_at_pack_verify_and_unpack_and_the_impostor_is_refused() {
    let s = setup();
    // The index is signed by the maker; one platform child carries an
    // impostor's signature of its own (the index's covers it).
    s.sign(
        "fixtures/multi:1",
        &[s.signed_by(&s.maker, "fixtures/multi:1")],
    );
    let multi = s.fixtures.image("fixtures/multi:1");
    let child = multi.children[0].clone();
    push_signature(
        &s.registry.pusher(),
        &multi.repository,
        &child,
        &[SignedPayload::for_digest(
            &s.impostor,
            &multi.repository,
            &child,
        )],
    );
    s.sign(
        "fixtures/docker:1",
        &[s.signed_by(&s.maker, "fixtures/docker:1")],
    );
    // app:1 keeps the fixture's broken signature layer beside a real one.
    let broken = SignedPayload {
        payload: simple_signing_payload("fixtures/app", &s.digest("fixtures/app:1")),
        signature: "MEUCIQDnot-a-signature".into(),
    };
    s.sign(
        "fixtures/app:1",
        &[broken, s.signed_by(&s.maker, "fixtures/app:1")],
    );
    let images = ["fixtures/multi:1", "fixtures/docker:1", "fixtures/app:1"];
    let maker = s.key(&s.maker);
    let impostor = s.key(&s.impostor);

    // pack: the impostor's key refuses every image, nothing is written.
    let run = s
        .pack(&images, "bundle.tar", &["--require-signature", &impostor])
        .failed();
    assert!(
        run.stderr.contains("no bundle was written"),
        "{}",
        run.stderr
    );
    for name in images {
        assert!(
            run.stderr.contains(&s.reference(name)),
            "{name}: {}",
            run.stderr
        );
    }
    assert!(run.stderr.contains("wrong key"), "{}", run.stderr);
    assert!(!s.scratch.path("bundle.tar").exists());
    assert!(!s.scratch.path("bundle.tar.sha256").exists());

    // pack with the maker's key: every image holds; the summary lists who.
    let run = s
        .pack(
            &images,
            "bundle.tar",
            &["--require-signature", &maker, "--json"],
        )
        .ok();
    let summary = run.json();
    let want = fingerprint(&s.maker.public);
    for name in images {
        let i = image(&summary["signatures"], &s.reference(name));
        assert_eq!(i["ok"], true, "{i:#}");
        assert_eq!(i["digest"], s.digest(name));
        let holds: Vec<&Value> = i["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] == "holds")
            .collect();
        assert_eq!(holds.len(), 1, "{i:#}");
        assert_eq!(holds[0]["signer"]["fingerprint"], want.as_str());
        let repo = name.split(':').next().unwrap();
        assert_eq!(holds[0]["docker_reference"], repo);
    }
    let app = image(&summary["signatures"], &s.reference("fixtures/app:1"));
    assert!(app["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["status"] == "broken"));

    // verify offline: the maker holds, the impostor fails, either suffices.
    let run = s
        .scratch
        .ferry(["verify", "bundle.tar", "--require-signature", &maker])
        .ok();
    assert!(
        run.stdout.contains(&format!("signed by key {want}")),
        "{}",
        run.stdout
    );
    let run = s
        .scratch
        .ferry([
            "verify",
            "bundle.tar",
            "--require-signature",
            &maker,
            "--json",
        ])
        .ok();
    let report = run.json();
    let multi_report = image(&report["archive"]["signatures"], &multi.reference);
    let children = multi_report["children"].as_array().unwrap();
    assert_eq!(children.len(), 1, "{multi_report:#}");
    assert_eq!(children[0]["digest"], child.as_str());
    assert_eq!(children[0]["ok"], false);
    assert_eq!(children[0]["signatures"][0]["status"], "wrong_key");
    let run = s
        .scratch
        .ferry(["verify", "bundle.tar", "--require-signature", &impostor])
        .failed();
    assert!(run.stdout.contains("wrong key"), "{}", run.stdout);
    for name in images {
        assert!(
            run.stdout
                .contains(&format!("error: {}", s.reference(name)))
                || run.stdout.contains(&s.reference(name))
        );
    }
    s.scratch
        .ferry([
            "verify",
            "bundle.tar",
            "--require-signature",
            &impostor,
            "--require-signature",
            &maker,
        ])
        .ok();

    // unpack: refused with the impostor's key before anything is pushed,
    // then pushed with the maker's.
    let target = RegistryProcess::start();
    let to = format!("{}/mirror", target.host());
    let run = s
        .scratch
        .ferry([
            "unpack",
            "bundle.tar",
            "--to",
            &to,
            "--plain-http",
            &target.host(),
            "--require-signature",
            &impostor,
        ])
        .failed();
    assert!(run.stderr.contains("nothing was pushed"), "{}", run.stderr);
    assert!(target.catalog().is_empty(), "{:?}", target.catalog());
    s.scratch
        .ferry([
            "unpack",
            "bundle.tar",
            "--to",
            &to,
            "--plain-http",
            &target.host(),
            "--require-signature",
            &maker,
            "--mapping",
            "map.json",
        ])
        .ok();
    let mapping: Value =
        serde_json::from_slice(&std::fs::read(s.scratch.path("map.json")).unwrap()).unwrap();
    for name in images {
        let relocated = mapping[s.reference(name).as_str()].as_str().unwrap();
        let (repo_tag, digest) = relocated.split_once('@').unwrap();
        assert_eq!(digest, s.digest(name));
        let repo = repo_tag
            .strip_prefix(&format!("{}/", target.host()))
            .unwrap()
            .rsplit_once(':')
            .unwrap()
            .0;
        assert_eq!(
            target.manifest_digest(repo, digest).as_deref(),
            Some(digest)
        );
    }
}

#[test]
fn pack_refuses_each_kind_of_signature_that_does_not_hold() {
    let s = setup();
    let maker = s.key(&s.maker);
    // base:1 is not signed at all; app:1 has the fixture's fake signature.
    // docker:1 carries the maker's genuine signature of multi:1's digest.
    s.sign(
        "fixtures/docker:1",
        &[s.signed_by(&s.maker, "fixtures/multi:1")],
    );
    // chart: the maker signed a payload that is not JSON.
    s.sign(
        "fixtures/chart:0.1.0",
        &[SignedPayload::new(&s.maker, b"this is not json".to_vec())],
    );
    let cases = [
        ("fixtures/base:1", "no signature"),
        ("fixtures/app:1", "broken signature"),
        ("fixtures/docker:1", "payload for another digest"),
        ("fixtures/chart:0.1.0", "payload is not simple-signing JSON"),
    ];
    for (name, why) in cases {
        let run = s
            .pack(&[name], "out.tar", &["--require-signature", &maker])
            .failed();
        assert!(
            run.stderr.contains(&s.reference(name)),
            "{name}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(why),
            "{name}: want {why:?} in {}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        assert!(
            s.scratch.files().iter().all(|f| !f.starts_with("out.tar")),
            "{:?}",
            s.scratch.files()
        );
    }
    // The replayed signature names the digest it was made for.
    let run = s
        .pack(
            &["fixtures/docker:1"],
            "out.tar",
            &["--require-signature", &maker],
        )
        .failed();
    assert!(
        run.stderr.contains(&s.digest("fixtures/multi:1")),
        "{}",
        run.stderr
    );

    // Packed without the requirement, verify finds the same, offline.
    s.pack(&cases.map(|c| c.0), "all.tar", &["-q"]).ok();
    let run = s
        .scratch
        .ferry(["verify", "all.tar", "--require-signature", &maker, "--json"])
        .failed();
    let report = run.json();
    for (name, _) in cases {
        let i = image(&report["archive"]["signatures"], &s.reference(name));
        assert_eq!(i["ok"], false, "{i:#}");
    }
    let problems = report["archive"]["problems"].as_array().unwrap();
    for (name, why) in cases {
        assert!(
            problems
                .iter()
                .any(|p| p["entry"] == s.reference(name).as_str()
                    && p["message"].as_str().unwrap().contains(why)),
            "{name}: {problems:#?}"
        );
    }

    // A signature carried as an OCI referrer (subject + tag-schema index)
    // holds too, beside the broken .sig tag.
    let chart = s.fixtures.image("fixtures/chart:0.1.0");
    let referrer = push_signature_referrer(
        &s.registry.pusher(),
        &chart.repository,
        (&chart.media_type, &chart.digest, chart.size()),
        &[s.signed_by(&s.maker, "fixtures/chart:0.1.0")],
    );
    let summary = s
        .pack(
            &["fixtures/chart:0.1.0"],
            "chart.tar",
            &["--require-signature", &maker, "--json"],
        )
        .ok()
        .json();
    let i = image(&summary["signatures"], &chart.reference);
    let holds: Vec<&Value> = i["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "holds")
        .collect();
    assert_eq!(holds.len(), 1, "{i:#}");
    assert_eq!(holds[0]["signature"], referrer.as_str());
    s.scratch
        .ferry(["verify", "chart.tar", "--require-signature", &maker])
        .ok();
}

#[test]
fn signed_bundle_is_verified_then_refused_after_one_byte_changes() {
    let s = setup();
    let maker_key = s.maker.private.display().to_string();
    let maker = s.key(&s.maker);
    let impostor = s.key(&s.impostor);
    let run = s
        .pack(
            &["fixtures/base:1", "fixtures/app:1"],
            "bundle.tar",
            &["--sign", &maker_key],
        )
        .ok();
    assert!(run.stdout.contains("bundle.tar.sig"), "{}", run.stdout);
    let sig = std::fs::read_to_string(s.scratch.path("bundle.tar.sig")).unwrap();
    let sum = std::fs::read_to_string(s.scratch.path("bundle.tar.sha256")).unwrap();
    assert!(sig.starts_with("ferry-bundle-signature v1\n"), "{sig}");
    assert!(
        sig.contains(&format!(
            "sha256 {}\n",
            sum.split_whitespace().next().unwrap()
        )),
        "{sig}"
    );
    assert!(
        sig.contains(&format!("key {}\n", fingerprint(&s.maker.public))),
        "{sig}"
    );

    // The documented openssl recipe verifies it.
    let recipe = |key: &str| {
        std::process::Command::new("sh")
            .current_dir(s.scratch.dir())
            .arg("-c")
            .arg(format!(
                "sed -n 's/^signature //p' bundle.tar.sig | base64 -d > bundle.tar.sig.der && \
                 openssl dgst -sha256 -verify {key} -signature bundle.tar.sig.der bundle.tar"
            ))
            .output()
            .unwrap()
    };
    let out = recipe(&maker);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!recipe(&impostor).status.success());

    let run = s
        .scratch
        .ferry(["verify", "bundle.tar", "--bundle-key", &maker])
        .ok();
    assert!(run.stdout.contains("bundle signature"), "{}", run.stdout);
    let run = s
        .scratch
        .ferry(["verify", "bundle.tar", "--bundle-key", &impostor])
        .failed();
    assert!(run.stdout.contains("bundle.tar.sig"), "{}", run.stdout);

    // unpack checks it first, and pushes with it.
    let target = RegistryProcess::start();
    let to = format!("{}/mirror", target.host());
    let unpack = |key: &str| {
        s.scratch.ferry([
            "unpack",
            "bundle.tar",
            "--to",
            &to,
            "--plain-http",
            &target.host(),
            "--bundle-key",
            key,
        ])
    };
    unpack(&impostor).failed();
    assert!(target.catalog().is_empty());
    // From standard input the signature cannot be checked first: refused.
    let run = s
        .scratch
        .ferry([
            "unpack",
            "-",
            "--to",
            &to,
            "--plain-http",
            &target.host(),
            "--bundle-key",
            &maker,
        ])
        .failed();
    assert!(run.stderr.contains("as a file"), "{}", run.stderr);

    // One byte of the bundle changes (inside a layer): refused everywhere.
    let path = s.scratch.path("bundle.tar");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 3000;
    bytes[at] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let run = s
        .scratch
        .ferry(["verify", "bundle.tar", "--bundle-key", &maker])
        .failed();
    assert!(
        run.stdout.contains("changed after it was signed"),
        "{}",
        run.stdout
    );
    let run = unpack(&maker).failed();
    assert!(
        run.stderr.contains("changed after it was signed"),
        "{}",
        run.stderr
    );
    assert!(target.catalog().is_empty(), "{:?}", target.catalog());
    assert!(!recipe(&maker).status.success());
    bytes[at] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    unpack(&maker).ok();
    assert!(!target.catalog().is_empty());

    // A truncated or missing signature is refused, naming the file.
    std::fs::write(s.scratch.path("bundle.tar.sig"), &sig[..sig.len() - 20]).unwrap();
    let run = s
        .scratch
        .ferry(["verify", "bundle.tar", "--bundle-key", &maker])
        .failed();
    assert!(
        run.stdout.contains("bundle.tar.sig") && run.stdout.contains("malformed"),
        "{}",
        run.stdout
    );
    std::fs::remove_file(s.scratch.path("bundle.tar.sig")).unwrap();
    let run = unpack(&maker).failed();
    assert!(
        run.stderr.contains("bundle.tar.sig is missing"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_key_files_stop_every_command_before_any_work() {
    let s = setup();
    let d = s.scratch.dir();
    std::fs::write(
        d.join("garbage.pem"),
        "-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let out = std::process::Command::new("sh")
        .current_dir(d)
        .arg("-c")
        .arg("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key && openssl pkey -in rsa.key -pubout -out rsa.pub")
        .output()
        .unwrap();
    assert!(out.status.success());
    for (file, why) in [
        ("garbage.pem", "malformed PUBLIC KEY"),
        ("rsa.pub", "RSA keys are not supported"),
    ] {
        let run = s
            .pack(
                &["fixtures/base:1"],
                "out.tar",
                &["--require-signature", file],
            )
            .failed();
        assert!(
            run.stderr.contains(file) && run.stderr.contains(why),
            "{}",
            run.stderr
        );
        let run = s
            .pack(&["fixtures/base:1"], "out.tar", &["--sign", file])
            .failed();
        assert!(run.stderr.contains(file), "{}", run.stderr);
        assert!(!s.scratch.path("out.tar").exists());
        let run = s
            .scratch
            .ferry([
                "unpack",
                "out.tar",
                "--to",
                "127.0.0.1:1/x",
                "--require-signature",
                file,
            ])
            .failed();
        assert!(
            run.stderr.contains(file) && run.stderr.contains(why),
            "{}",
            run.stderr
        );
        let run = s
            .scratch
            .ferry(["verify", "out.tar", "--bundle-key", file])
            .failed();
        assert!(
            run.stderr.contains(file) && run.stderr.contains(why),
            "{}",
            run.stderr
        );
    }
}

/// `ferry diff` between two packs of a changed image set reports exactly
/// what the test changed.
#[test]
fn diff_between_two_packs_of_a_changed_image_set() {
    let s = setup();
    let before = [
        "fixtures/base:1",
        "fixtures/app:1",
        "fixtures/docker:1",
        "fixtures/multi:1",
    ];
    s.pack(&before, "old.tar", &["-q"]).ok();

    // app:1 moves: one more layer of 5000 bytes.
    let app = s.fixtures.image("fixtures/app:1");
    let pusher = s.registry.pusher();
    let layer: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let layer_digest = pusher.push_blob(&app.repository, &layer);
    let mut manifest: Value = serde_json::from_slice(&app.manifest).unwrap();
    manifest["layers"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }));
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let new_app = pusher.push_manifest(&app.repository, "1", &app.media_type, &bytes);
    // base:1 gains a signature; docker:1 leaves the set; the chart joins.
    s.sign(
        "fixtures/base:1",
        &[s.signed_by(&s.maker, "fixtures/base:1")],
    );
    let base_sig = s
        .registry
        .manifest_digest(
            "fixtures/base",
            &format!("{}.sig", s.digest("fixtures/base:1").replace(':', "-")),
        )
        .unwrap();
    let after = [
        "fixtures/base:1",
        "fixtures/app:1",
        "fixtures/multi:1",
        "fixtures/chart:0.1.0",
    ];
    s.pack(&after, "new.tar", &["-q"]).ok();

    let d = s
        .scratch
        .ferry(["diff", "old.tar", "new.tar", "--json"])
        .ok()
        .json();
    assert_eq!(d["diff_version"], 1);
    let refs = |key: &str| -> Vec<String> {
        d[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["reference"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(refs("added"), [s.reference("fixtures/chart:0.1.0")]);
    assert_eq!(d["added"][0]["digest"], s.digest("fixtures/chart:0.1.0"));
    assert_eq!(refs("removed"), [s.reference("fixtures/docker:1")]);
    assert_eq!(refs("moved"), [s.reference("fixtures/app:1")]);
    let moved = &d["moved"][0];
    assert_eq!(moved["old_digest"], app.digest);
    assert_eq!(moved["new_digest"], new_app);
    assert_eq!(moved["blobs_added"], 1, "{moved:#}");
    assert_eq!(moved["bytes_added"], 5000);
    assert_eq!(
        moved["platforms"],
        serde_json::json!([{"platform": "linux/amd64", "change": "moved",
            "old_digest": app.digest, "new_digest": new_app}])
    );
    let unchanged: Vec<&str> = d["unchanged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        unchanged,
        [
            s.reference("fixtures/base:1"),
            s.reference("fixtures/multi:1")
        ]
    );
    // Signatures: base gained the maker's; app's fixture signature was of
    // the old digest, so it is lost.
    assert_eq!(
        d["signatures"]["gained"],
        serde_json::json!([{"reference": s.reference("fixtures/base:1"),
            "subject": s.digest("fixtures/base:1"), "signature": base_sig}])
    );
    let app_sig = &s.fixtures.signatures[0];
    assert_eq!(app_sig.subject_digest, app.digest);
    assert_eq!(
        d["signatures"]["lost"],
        serde_json::json!([{"reference": app.reference,
            "subject": app.digest, "signature": app_sig.digest}])
    );
    // Blobs: counted against the archives themselves.
    let blobs = |name: &str| -> std::collections::BTreeMap<String, u64> {
        ferry_oci::LayoutArchive::open(&s.scratch.path(name))
            .unwrap()
            .blobs()
            .map(|b| (b.digest.to_string(), b.size))
            .collect()
    };
    let (old, new) = (blobs("old.tar"), blobs("new.tar"));
    let added: Vec<u64> = new
        .iter()
        .filter(|(k, _)| !old.contains_key(*k))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(d["blobs"]["added"], added.len());
    assert_eq!(d["blobs"]["bytes_added"], added.iter().sum::<u64>());
    assert!(new.contains_key(&layer_digest) && !old.contains_key(&layer_digest));

    let text = s.scratch.ferry(["diff", "old.tar", "new.tar"]).ok().stdout;
    assert!(
        text.contains(&format!(
            "moved    {} {} -> {new_app}",
            app.reference, app.digest
        )),
        "{text}"
    );
    assert!(
        text.contains("1 added, 1 removed, 1 moved, 2 unchanged"),
        "{text}"
    );
    // Same bundle twice: nothing changed.
    let same = s
        .scratch
        .ferry(["diff", "new.tar", "new.tar", "--json"])
        .ok()
        .json();
    assert_eq!(same["moved"], serde_json::json!([]));
    assert_eq!(same["blobs"]["added"], 0);
    // A bundle that is not one: a clear error naming it.
    std::fs::write(s.scratch.path("junk.tar"), b"junk").unwrap();
    let run = s.scratch.ferry(["diff", "junk.tar", "new.tar"]).failed();
    assert!(run.stderr.contains("junk.tar"), "{}", run.stderr);
}
