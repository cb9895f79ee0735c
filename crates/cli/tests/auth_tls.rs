//! Authentication and TLS for real: a `docker-registry` with htpasswd basic
//! auth, and one serving TLS with a self-signed certificate made here with
//! openssl.
//!
//! The bearer-token flow is not covered here: distribution's `auth: token`
//! needs a separate token issuer signing JWTs with a certificate, which
//! Debian does not package; the flow is unit-tested in `ferry-registry`.

mod util;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use ferry_oci::layout::LayoutArchive;
use ferry_testkit::{
    require_tool, Fault, FaultProxy, FixtureOptions, FixtureSet, Match, RegistryOptions,
    RegistryProcess,
};
use util::Scratch;

const USER: &str = "ferry-user";
const PASSWORD: &str = "Pa55-ferry-S3CRET-7781";

/// Write `<scratch>/.docker/config.json` with `user:password` for `host`.
fn docker_login(scratch: &Scratch, host: &str, user: &str, password: &str) {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = serde_json::json!({ "auths": { host: { "auth": auth } } });
    std::fs::create_dir_all(scratch.path(".docker")).unwrap();
    std::fs::write(
        scratch.path(".docker/config.json"),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();
}

fn pack(scratch: &Scratch, reference: &str, flags: &[&str]) -> util::Run {
    let mut args = vec!["pack", reference, "-o", "bundle.tar"];
    args.extend_from_slice(flags);
    scratch.ferry(args)
}

fn assert_no_secret(run: &util::Run, secrets: &[&str]) {
    for secret in secrets {
        for (name, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            assert!(!text.contains(secret), "{name} shows a secret:\n{text}");
        }
    }
}

#[test]
fn credentials_from_the_docker_config_open_an_htpasswd_registry() {
    let registry = RegistryProcess::start_with_basic_auth(USER, PASSWORD);
    let fixtures = registry.push_fixtures();
    let base = fixtures.image("fixtures/base:1");
    let scratch = Scratch::new();
    docker_login(&scratch, &registry.host(), USER, PASSWORD);
    let run = pack(
        &scratch,
        &base.reference,
        &["--plain-http", &registry.host()],
    )
    .ok();
    assert_no_secret(&run, &[PASSWORD]);
    let archive = LayoutArchive::open(&scratch.path("bundle.tar")).unwrap();
    assert_eq!(archive.index()[0].digest.to_string(), base.digest);
}

#[test]
fn wrong_credentials_fail_naming_the_host_and_never_the_password() {
    let registry = RegistryProcess::start_with_basic_auth(USER, PASSWORD);
    let fixtures = registry.push_fixtures();
    let base = fixtures.image("fixtures/base:1");
    let scratch = Scratch::new();
    let wrong = "Wr0ng-Passw0rd-4412";
    docker_login(&scratch, &registry.host(), USER, wrong);
    let run = pack(
        &scratch,
        &base.reference,
        &["--plain-http", &registry.host()],
    )
    .failed();
    assert!(
        run.stderr
            .contains(&format!("authentication failed for {}", registry.host())),
        "{}",
        run.stderr
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{wrong}"));
    assert_no_secret(&run, &[wrong, PASSWORD, &encoded]);
    assert!(!scratch.path("bundle.tar").exists());
}

#[test]
fn no_credentials_suggest_docker_login() {
    let registry = RegistryProcess::start_with_basic_auth(USER, PASSWORD);
    let fixtures = registry.push_fixtures();
    let base = fixtures.image("fixtures/base:1");
    let scratch = Scratch::new();
    let run = pack(
        &scratch,
        &base.reference,
        &["--plain-http", &registry.host()],
    )
    .failed();
    assert!(
        run.stderr
            .contains(&format!("authentication failed for {}", registry.host())),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("docker login {}", registry.host())),
        "{}",
        run.stderr
    );
}

#[test]
fn credentials_refused_mid_run_are_sent_again() {
    let registry = RegistryProcess::start_with_basic_auth(USER, PASSWORD);
    let proxy = FaultProxy::start(&registry);
    let fixtures = FixtureSet::generate(&proxy.host(), &FixtureOptions::default());
    fixtures.push(&registry.pusher());
    let scratch = Scratch::new();
    docker_login(&scratch, &proxy.host(), USER, PASSWORD);
    // Once ferry holds credentials, the registry refuses them three times,
    // as it would an expired token: once for each of three blobs. (Twice
    // in a row for one request is a refusal: basic credentials are sent
    // again once. With a count over all blob GETs, a loaded machine let one
    // blob's second try come before the others' first and take two.)
    let image = fixtures.image("fixtures/app:1");
    assert!(image.blobs.len() >= 3, "{:?}", image.blobs);
    for blob in &image.blobs[..3] {
        proxy.inject(
            Fault::ExpireToken,
            Match::path_contains(&format!("/blobs/{blob}")).method("GET"),
            1,
        );
    }
    let run = pack(&scratch, &image.reference, &["--plain-http", &proxy.host()]).ok();
    assert_eq!(proxy.faults_applied(), 3);
    assert_no_secret(&run, &[PASSWORD]);
    let archive = LayoutArchive::open(&scratch.path("bundle.tar")).unwrap();
    assert!(archive.problems().is_empty());
}

/// Issue 15: a blob read from standard input (`ferry unpack -`) is sent
/// again when the registry refuses the credentials mid-upload (as an
/// expired token would be). A blob of at most 1 MiB is read once into
/// memory, so the single-request offer (refused once here) and the PUT
/// into the session docker-registry 2.8 opens instead (refused once too)
/// carry it again.
#[test]
fn credentials_refused_mid_upload_are_sent_again_with_a_streamed_blob() {
    let source = RegistryProcess::start();
    let fixtures = source.push_fixtures();
    let scratch = Scratch::new();
    let source_host = source.host();
    let mut args = vec![
        "pack",
        "--plain-http",
        &source_host,
        "-q",
        "-o",
        "bundle.tar",
    ];
    args.extend(fixtures.images.iter().map(|i| i.reference.as_str()));
    scratch.ferry(args).ok();
    let bundle = std::fs::read(scratch.path("bundle.tar")).unwrap();

    let registry = RegistryProcess::start_with_basic_auth(USER, PASSWORD);
    let proxy = FaultProxy::start(&registry);
    docker_login(&scratch, &proxy.host(), USER, PASSWORD);
    let uploads = Match::path_contains("/blobs/uploads/");
    let whole = uploads.clone().method("POST").query_contains("digest=");
    proxy.inject(Fault::ExpireToken, whole.clone(), 1);
    proxy.inject(Fault::ExpireToken, uploads.clone().method("PUT"), 1);
    let to = format!("{}/mirror", proxy.host());
    let host = proxy.host();
    let run = scratch
        .ferry_stdin(
            ["unpack", "-", "--to", &to, "--plain-http", &host, "--json"],
            &bundle,
        )
        .ok();
    assert_no_secret(&run, &[PASSWORD]);
    assert_eq!(proxy.faults_applied(), 2);
    // The refused offer went again, with its body, and no other was made.
    assert_eq!(proxy.count(&whole), 2, "{:#?}", proxy.log());
    let summary = run.json();
    assert_eq!(summary["failed"], 0, "{summary:#}");
    let mapping = summary["mapping"].as_object().expect("a mapping");
    for image in &fixtures.images {
        let relocated = mapping[&image.reference].as_str().unwrap();
        let r = ferry_oci::Reference::parse(relocated).unwrap();
        let found = registry.manifest_digest(r.repository(), r.tag().unwrap());
        assert_eq!(found.as_deref(), Some(image.digest.as_str()), "{relocated}");
    }
}

#[test]
fn plain_http_is_refused_unless_named() {
    let registry = RegistryProcess::start();
    let fixtures = registry.push_fixtures();
    let scratch = Scratch::new();
    let run = pack(&scratch, &fixtures.image("fixtures/base:1").reference, &[]).failed();
    assert!(
        run.stderr
            .contains(&format!("--plain-http {}", registry.host())),
        "{}",
        run.stderr
    );
}

fn self_signed(dir: &Path, san: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let output = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=127.0.0.1", "-addext"])
        .arg(format!("subjectAltName={san}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("running openssl");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (cert, key)
}

#[test]
fn a_self_signed_registry_needs_ca_cert_or_insecure() {
    require_tool("openssl", "apt-get install openssl");
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path(), "IP:127.0.0.1");
    let registry = RegistryProcess::start_with(RegistryOptions {
        tls: Some((cert.clone(), key)),
        ..RegistryOptions::default()
    });
    let fixtures = registry.push_fixtures();
    let base = fixtures.image("fixtures/base:1");
    let host = registry.host();

    // Refused by default, with a message that says what to do.
    let scratch = Scratch::new();
    let run = pack(&scratch, &base.reference, &[]).failed();
    assert!(run.stderr.contains("--ca-cert"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("--insecure {host}")),
        "{}",
        run.stderr
    );
    assert!(!scratch.path("bundle.tar").exists());

    // --insecure for another host does not help.
    let other_port = format!("127.0.0.1:{}", registry.port().wrapping_add(1).max(1));
    for other in ["127.0.0.2", other_port.as_str(), "localhost"] {
        let run = pack(&scratch, &base.reference, &["--insecure", other]).failed();
        assert!(run.stderr.contains("--ca-cert"), "{other}: {}", run.stderr);
    }

    // Accepted with the CA certificate.
    let cert_arg = cert.to_string_lossy().into_owned();
    pack(&scratch, &base.reference, &["--ca-cert", &cert_arg]).ok();
    let with_ca = std::fs::read(scratch.path("bundle.tar")).unwrap();

    // Accepted with --insecure for this host, with or without the port.
    for insecure in [host.as_str(), "127.0.0.1"] {
        let scratch = Scratch::new();
        pack(&scratch, &base.reference, &["--insecure", insecure]).ok();
        assert_eq!(std::fs::read(scratch.path("bundle.tar")).unwrap(), with_ca);
    }
    let archive = LayoutArchive::open(&scratch.path("bundle.tar")).unwrap();
    assert_eq!(archive.index()[0].digest.to_string(), base.digest);
}

#[test]
fn a_trusted_certificate_for_another_name_is_refused() {
    require_tool("openssl", "apt-get install openssl");
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path(), "DNS:registry.elsewhere.invalid");
    let registry = RegistryProcess::start_with(RegistryOptions {
        tls: Some((cert.clone(), key)),
        ..RegistryOptions::default()
    });
    let fixtures = registry.push_fixtures();
    let scratch = Scratch::new();
    let cert_arg = cert.to_string_lossy().into_owned();
    let base = &fixtures.image("fixtures/base:1").reference;
    let run = pack(&scratch, base, &["--ca-cert", &cert_arg]).failed();
    assert!(run.stderr.contains("--insecure"), "{}", run.stderr);
    assert!(!scratch.path("bundle.tar").exists());
}

#[test]
fn a_missing_or_bogus_ca_file_is_a_clear_error() {
    let registry = RegistryProcess::start();
    let fixtures = registry.push_fixtures();
    let scratch = Scratch::new();
    std::fs::write(scratch.path("not-a-cert.pem"), "hello").unwrap();
    let base = &fixtures.image("fixtures/base:1").reference;
    for (file, says) in [
        ("missing.pem", "cannot read CA certificate"),
        ("not-a-cert.pem", "holds no PEM certificate"),
    ] {
        let run = pack(&scratch, base, &["--ca-cert", file]).failed();
        assert!(run.stderr.contains(says), "{file}: {}", run.stderr);
        assert!(run.stderr.contains(file), "{file}: {}", run.stderr);
    }
}
