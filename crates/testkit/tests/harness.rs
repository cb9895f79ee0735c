//! The harness itself, against the real `docker-registry`.

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use ferry_testkit::fixtures::EMPTY_JSON_DIGEST;
use ferry_testkit::{
    require_tool, FixtureKind, FixtureOptions, RegistryOptions, RegistryProcess, TokenServer,
    TokenServerOptions,
};

fn refuses_connections(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_err()
}

#[test]
fn every_fixture_resolves_to_its_recorded_digest_and_bytes() {
    let registry = RegistryProcess::start();
    let set = registry.push_fixtures();

    let expected_kinds = [
        ("fixtures/base:1", FixtureKind::OciImage),
        ("fixtures/app:1", FixtureKind::OciImage),
        ("fixtures/multi:1", FixtureKind::OciIndex),
        ("fixtures/dockerlist:1", FixtureKind::DockerList),
        ("fixtures/docker:1", FixtureKind::DockerSchema2),
        ("fixtures/chart:0.1.0", FixtureKind::Artifact),
    ];
    assert_eq!(set.images.len(), expected_kinds.len());
    for (repo_tag, kind) in expected_kinds {
        assert_eq!(set.image(repo_tag).kind, kind, "{repo_tag}");
    }

    for image in &set.images {
        assert_eq!(
            image.reference,
            format!("{}/{}", registry.host(), image.repo_tag())
        );
        assert_eq!(
            registry.manifest_digest(&image.repository, &image.tag),
            Some(image.digest.clone()),
            "{}",
            image.reference
        );
        assert_eq!(
            registry.get_manifest(&image.repository, &image.tag),
            Some((image.media_type.clone(), image.manifest.clone())),
            "{}",
            image.reference
        );
        for child in &image.children {
            let (_, bytes) = registry
                .get_manifest(&image.repository, child)
                .unwrap_or_else(|| panic!("child {child} of {}", image.reference));
            assert_eq!(ferry_oci::Digest::sha256_of(&bytes).to_string(), *child);
        }
        for blob in &image.blobs {
            assert!(
                registry.blob_exists(&image.repository, blob),
                "{blob} in {}",
                image.reference
            );
            assert_eq!(
                registry.get_blob(&image.repository, blob).as_deref(),
                set.blob(blob)
            );
        }
    }

    let multi = set.image("fixtures/multi:1");
    assert_eq!(
        multi.platforms,
        ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"]
    );
    assert_eq!(multi.children.len(), 3);
    assert_eq!(multi.config_digests.len(), 3);
    let dockerlist = set.image("fixtures/dockerlist:1");
    assert_eq!(dockerlist.platforms, ["linux/amd64", "linux/arm64/v8"]);
    for child in &dockerlist.children {
        let (media_type, _) = registry.get_manifest("fixtures/dockerlist", child).unwrap();
        assert_eq!(media_type, ferry_oci::media_type::DOCKER_MANIFEST);
    }

    // Shared layers exist in both repositories.
    let base = set.image("fixtures/base:1");
    let app = set.image("fixtures/app:1");
    let shared: Vec<_> = base
        .blobs
        .iter()
        .filter(|b| app.blobs.contains(b))
        .collect();
    assert_eq!(shared.len(), 2);
    for blob in shared {
        assert!(registry.blob_exists("fixtures/base", blob));
        assert!(registry.blob_exists("fixtures/app", blob));
    }

    // The cosign-style signature of app:1.
    let signature = &set.signatures[0];
    assert_eq!(signature.subject_digest, app.digest);
    assert_eq!(
        signature.tag,
        format!("{}.sig", app.digest.replace(':', "-"))
    );
    assert!(registry.tags("fixtures/app").contains(&signature.tag));
    assert_eq!(
        registry.get_manifest("fixtures/app", &signature.tag),
        Some((signature.media_type.clone(), signature.manifest.clone()))
    );

    // The SBOM referrer of base:1, by digest and through the tag schema.
    let referrer = &set.referrers[0];
    assert_eq!(referrer.subject_digest, base.digest);
    assert_eq!(referrer.blobs[0], EMPTY_JSON_DIGEST);
    assert_eq!(
        registry.manifest_digest("fixtures/base", &referrer.digest),
        Some(referrer.digest.clone())
    );
    let tag = referrer.tag.clone().unwrap();
    assert_eq!(tag, base.digest.replace(':', "-"));
    assert_eq!(
        registry.tags("fixtures/base"),
        vec!["1".to_string(), tag.clone()]
    );
    let (media_type, index) = registry.get_manifest("fixtures/base", &tag).unwrap();
    assert_eq!(media_type, ferry_oci::media_type::OCI_INDEX);
    assert_eq!(Some(&index), referrer.tag_index.as_ref());
    let index = ferry_oci::Manifest::parse(index, Some(&media_type)).unwrap();
    assert_eq!(index.children()[0].digest.to_string(), referrer.digest);
    assert_eq!(
        index.children()[0].artifact_type.as_deref(),
        Some(referrer.artifact_type.as_str())
    );

    // Everything the set promises is there, and nothing else.
    let catalog: std::collections::BTreeSet<String> = registry.catalog().into_iter().collect();
    assert_eq!(catalog, set.repositories());
    assert!(set.all_manifest_digests().len() >= 6 + 3 + 2 + 3);
    assert!(set.all_blob_digests().contains(EMPTY_JSON_DIGEST));

    // Pushing again is harmless and changes nothing.
    let again = registry.push_fixtures();
    assert_eq!(again.all_manifest_digests(), set.all_manifest_digests());
}

#[test]
fn the_registry_is_gone_after_drop_and_after_stop() {
    let registry = RegistryProcess::start();
    let port = registry.port();
    assert!(!refuses_connections(port));
    drop(registry);
    assert!(
        refuses_connections(port),
        "port {port} still answers after drop"
    );

    let mut registry = RegistryProcess::start();
    let port = registry.port();
    let storage = registry.storage_dir().to_path_buf();
    registry.stop();
    assert!(refuses_connections(port));
    assert!(storage.is_dir(), "storage kept until drop");
    registry.stop(); // idempotent
    drop(registry);
    assert!(!storage.exists(), "temporary storage removed on drop");
}

#[test]
fn skopeo_reads_the_exact_recorded_bytes() {
    require_tool("skopeo", "apt-get install skopeo");
    let registry = RegistryProcess::start();
    let set = registry.push_fixtures();
    for repo_tag in ["fixtures/base:1", "fixtures/multi:1", "fixtures/docker:1"] {
        let image = set.image(repo_tag);
        let output = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{}", image.reference))
            .output()
            .expect("running skopeo");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.stdout, image.manifest, "{repo_tag}");
    }
}

#[test]
fn storage_survives_a_restart_in_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let options = RegistryOptions {
        storage_dir: Some(dir.path().to_path_buf()),
        ..RegistryOptions::default()
    };
    let first = RegistryProcess::start_with(options.clone());
    let set = first.push_fixtures();
    assert_eq!(first.storage_dir(), dir.path());
    drop(first);
    assert!(dir.path().join("docker").is_dir(), "storage left in place");

    let second = RegistryProcess::start_with(options);
    let base = set.image("fixtures/base:1");
    assert_eq!(
        second.manifest_digest("fixtures/base", "1"),
        Some(base.digest.clone())
    );
}

#[test]
fn basic_auth_is_required_and_the_pusher_uses_it() {
    let registry = RegistryProcess::start_with_basic_auth("ferry", "s3cret");
    let anonymous = reqwest::blocking::get(format!("{}/v2/", registry.url())).unwrap();
    assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers()["WWW-Authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));

    let set = registry.push_fixtures();
    let app = set.image("fixtures/app:1");
    assert_eq!(
        registry.manifest_digest("fixtures/app", "1"),
        Some(app.digest.clone())
    );
}

#[test]
fn token_auth_is_required_and_the_pusher_goes_through_it() {
    require_tool("openssl", "apt-get install openssl");
    let tokens = TokenServer::start(TokenServerOptions::user("ferry", "s3cret"));
    let registry = RegistryProcess::start_with(RegistryOptions {
        token: Some(tokens.auth()),
        ..RegistryOptions::default()
    });
    let anonymous = reqwest::blocking::get(format!("{}/v2/", registry.url())).unwrap();
    assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);
    let challenge = anonymous.headers()["WWW-Authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with(&format!("Bearer realm=\"{}\"", tokens.realm())),
        "{challenge}"
    );

    let set = registry.push_fixtures();
    let app = set.image("fixtures/app:1");
    assert_eq!(
        registry.manifest_digest("fixtures/app", "1"),
        Some(app.digest.clone())
    );
    assert!(registry.catalog().contains(&"fixtures/app".to_string()));
    let requests = tokens.requests();
    assert!(!requests.is_empty());
    assert!(requests
        .iter()
        .all(|r| r.status == 200 && r.account.as_deref() == Some("ferry") && !r.expired));

    // A token issued dead is refused by the registry itself.
    tokens.expire_next(1);
    let dead = registry.pusher().with_token_auth(tokens.auth());
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        dead.blob_exists("fixtures/app", &app.digest)
    }));
    assert!(refused.is_err(), "an expired token must not be accepted");
    assert!(tokens.requests().last().unwrap().expired);
}

#[test]
fn tls_with_a_self_signed_certificate() {
    require_tool("openssl", "apt-get install openssl");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    self_signed(&cert, &key);
    let registry = RegistryProcess::start_with(RegistryOptions {
        tls: Some((cert, key)),
        ..RegistryOptions::default()
    });
    assert!(registry.url().starts_with("https://"));
    let set = registry.push_fixtures();
    let chart = set.image("fixtures/chart:0.1.0");
    assert_eq!(
        registry.get_manifest("fixtures/chart", "0.1.0"),
        Some((chart.media_type.clone(), chart.manifest.clone()))
    );
}

fn self_signed(cert: &Path, key: &Path) {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .output()
        .expect("running openssl");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
}

#[test]
fn the_big_layer_is_pushed_streaming() {
    const SIZE: u64 = 3 * 1024 * 1024 + 17;
    let registry = RegistryProcess::start();
    let set = registry.push_fixtures_with(FixtureOptions {
        big_layer_bytes: Some(SIZE),
    });
    let big = set.image("fixtures/big:1");
    assert_eq!(
        registry.manifest_digest("fixtures/big", "1"),
        Some(big.digest.clone())
    );
    let layer = &big.blobs[1];
    let bytes = registry.get_blob("fixtures/big", layer).unwrap();
    assert_eq!(
        bytes.len() as u64,
        ferry_testkit::BigLayerReader::tar_len(SIZE)
    );
    assert_eq!(ferry_oci::Digest::sha256_of(&bytes).to_string(), *layer);
    assert!(
        set.blob(layer).is_none(),
        "the big layer is never held in memory"
    );
}

#[test]
fn the_binary_pushes_and_prints_references() {
    let registry = RegistryProcess::start();
    let output = Command::new(env!("CARGO_BIN_EXE_ferry-fixtures"))
        .args(["push", &registry.host()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let expected =
        ferry_testkit::FixtureSet::generate(&registry.host(), &FixtureOptions::default());
    assert_eq!(printed, expected.references());
    for image in &expected.images {
        assert_eq!(
            registry.manifest_digest(&image.repository, &image.tag),
            Some(image.digest.clone())
        );
    }
}
