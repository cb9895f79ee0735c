//! Keys and signatures made by the openssl CLI, checked by ferry-sign, and
//! the other way round: the documented openssl recipe for `OUT.sig`.

use std::path::{Path, PathBuf};
use std::process::Command;

use ferry_sign::{
    sha256_file, signature_path, BundleSignature, Error, KeyProblem, Keyring, PrivateKey, PublicKey,
};

fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A P-256 key pair made by openssl: (private PKCS#8, public).
fn p256_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = format!("{name}.key");
    let public = format!("{name}.pub");
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &key,
        ],
    );
    openssl(dir, &["pkey", "-in", &key, "-pubout", "-out", &public]);
    (dir.join(key), dir.join(public))
}

fn key_problem(err: Error) -> KeyProblem {
    match err {
        Error::Key { problem, .. } => problem,
        other => panic!("expected a key problem, got {other:?}"),
    }
}

#[test]
fn unsupported_key_types_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "rsa.key",
        ],
    );
    openssl(d, &["pkey", "-in", "rsa.key", "-pubout", "-out", "rsa.pub"]);
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            "p384.key",
        ],
    );
    openssl(
        d,
        &["pkey", "-in", "p384.key", "-pubout", "-out", "p384.pub"],
    );
    openssl(d, &["genpkey", "-algorithm", "ED25519", "-out", "ed.key"]);
    openssl(d, &["pkey", "-in", "ed.key", "-pubout", "-out", "ed.pub"]);
    for (file, kind) in [
        ("rsa.pub", "RSA"),
        ("p384.pub", "ECDSA P-384"),
        ("ed.pub", "Ed25519"),
    ] {
        let err = PublicKey::load(&d.join(file)).unwrap_err();
        let message = err.to_string();
        assert!(message.contains(file), "{message}");
        assert_eq!(
            key_problem(err),
            KeyProblem::Unsupported { kind: kind.into() },
            "{file}"
        );
    }
    for (file, kind) in [
        ("rsa.key", "RSA"),
        ("p384.key", "ECDSA P-384"),
        ("ed.key", "Ed25519"),
    ] {
        let err = PrivateKey::load(&d.join(file)).unwrap_err();
        assert_eq!(
            key_problem(err),
            KeyProblem::Unsupported { kind: kind.into() },
            "{file}"
        );
    }
    // A private key given as the public one, and the other way round.
    let (key, public) = p256_pair(d, "ok");
    assert_eq!(
        key_problem(PublicKey::load(&key).unwrap_err()),
        KeyProblem::PrivateGiven
    );
    assert_eq!(
        key_problem(PrivateKey::load(&public).unwrap_err()),
        KeyProblem::PublicGiven
    );
}

#[test]
fn malformed_pem_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_, public) = p256_pair(dir.path(), "k");
    let text = std::fs::read_to_string(&public).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.pem", Vec::new()),
        ("binary.pem", vec![0xff, 0x00, 0x13]),
        ("truncated.pem", text.as_bytes()[..text.len() / 2].to_vec()),
        ("garbled.pem", text.replace(['A', 'M'], "*").into_bytes()),
        (
            "short-body.pem",
            b"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZI\n-----END PUBLIC KEY-----\n".to_vec(),
        ),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = PublicKey::load(&path).unwrap_err();
        assert!(err.to_string().contains(name), "{name}: {err}");
        assert!(matches!(err, Error::Key { .. }), "{name}: {err:?}");
    }
    let err = PublicKey::load(&dir.path().join("absent.pem")).unwrap_err();
    assert!(matches!(err, Error::ReadKey { .. }), "{err:?}");
}

#[test]
fn openssl_keys_load_and_sec1_keys_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, public) = p256_pair(d, "a");
    let private = PrivateKey::load(&key).unwrap();
    let public = PublicKey::load(&public).unwrap();
    assert_eq!(private.public().fingerprint(), public.fingerprint());
    // The fingerprint is the documented openssl pipeline's.
    let der = openssl(d, &["pkey", "-pubin", "-in", "a.pub", "-outform", "DER"]).stdout;
    let want = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&der))
    );
    assert_eq!(public.fingerprint(), want);
    // SEC1 with the EC PARAMETERS block `openssl ecparam -genkey` writes first.
    openssl(
        d,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-out",
            "sec1.key",
        ],
    );
    let text = std::fs::read_to_string(d.join("sec1.key")).unwrap();
    assert!(
        text.contains("EC PARAMETERS") && text.contains("EC PRIVATE KEY"),
        "{text}"
    );
    PrivateKey::load(&d.join("sec1.key")).unwrap();
}

/// ferry signs, the documented openssl recipe verifies; openssl signs,
/// ferry verifies; one byte changed and both refuse.
#[test]
fn bundle_signature_and_the_openssl_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, public) = p256_pair(d, "maker");
    let (_, impostor) = p256_pair(d, "impostor");
    let bundle = d.join("bundle.tar");
    std::fs::write(&bundle, b"pretend this is a bundle\n".repeat(1000)).unwrap();
    let private = PrivateKey::load(&key).unwrap();
    let sig = BundleSignature::sign(sha256_file(&bundle).unwrap(), &private);
    std::fs::write(signature_path(&bundle), sig.to_text()).unwrap();

    let recipe = |bundle: &str| {
        Command::new("sh")
            .current_dir(d)
            .arg("-c")
            .arg(format!(
                "sed -n 's/^signature //p' {bundle}.sig | base64 -d > sig.der && \
                 openssl dgst -sha256 -verify maker.pub -signature sig.der {bundle}"
            ))
            .output()
            .unwrap()
    };
    let out = recipe("bundle.tar");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Verified OK");

    let keyring = Keyring::load(&[&public]).unwrap();
    let (hex, by) = BundleSignature::check_file(&bundle, &keyring).unwrap();
    assert_eq!(hex, hex::encode(sig.sha256));
    assert_eq!(by.fingerprint(), private.public().fingerprint());
    let wrong = Keyring::load(&[&impostor]).unwrap();
    let err = BundleSignature::check_file(&bundle, &wrong).unwrap_err();
    assert!(matches!(err, Error::BundleSignatureRefused { .. }), "{err}");

    // openssl's own signatures (high or low S) verify with ferry.
    for i in 0..8 {
        let name = format!("other{i}.tar");
        std::fs::write(d.join(&name), format!("bundle {i}")).unwrap();
        openssl(
            d,
            &[
                "dgst",
                "-sha256",
                "-sign",
                "maker.key",
                "-out",
                "o.der",
                &name,
            ],
        );
        let der = std::fs::read(d.join("o.der")).unwrap();
        let sig = BundleSignature {
            sha256: sha256_file(&d.join(&name)).unwrap(),
            key: String::new(),
            signature: der,
        };
        std::fs::write(d.join(format!("{name}.sig")), sig.to_text()).unwrap();
        BundleSignature::check_file(&d.join(&name), &keyring).unwrap();
    }

    // One byte changed: ferry says the bundle changed; openssl refuses.
    let mut bytes = std::fs::read(&bundle).unwrap();
    bytes[1234] ^= 1;
    std::fs::write(&bundle, bytes).unwrap();
    let err = BundleSignature::check_file(&bundle, &keyring).unwrap_err();
    assert!(matches!(err, Error::BundleChanged { .. }), "{err}");
    assert!(
        err.to_string().contains("changed after it was signed"),
        "{err}"
    );
    assert!(!recipe("bundle.tar").status.success());
}

#[test]
fn bad_signature_files_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, public) = p256_pair(d, "k");
    let keyring = Keyring::load(&[&public]).unwrap();
    let bundle = d.join("b.tar");
    std::fs::write(&bundle, b"bundle").unwrap();
    let err = BundleSignature::check_file(&bundle, &keyring).unwrap_err();
    assert!(matches!(err, Error::SignatureMissing { .. }), "{err}");
    assert!(err.to_string().contains("b.tar.sig"), "{err}");

    let good = BundleSignature::sign(
        sha256_file(&bundle).unwrap(),
        &PrivateKey::load(&key).unwrap(),
    )
    .to_text();
    for cut in [0, 10, 30, good.len() - 40, good.len() - 3] {
        std::fs::write(signature_path(&bundle), &good[..cut]).unwrap();
        let err = BundleSignature::check_file(&bundle, &keyring).unwrap_err();
        assert!(
            matches!(err, Error::SignatureFormat { .. }),
            "cut {cut}: {err:?}"
        );
        assert!(err.to_string().contains("b.tar.sig"), "{err}");
    }
    std::fs::write(signature_path(&bundle), &good).unwrap();
    BundleSignature::check_file(&bundle, &keyring).unwrap();
}

/// The check itself, on hand-built graphs: every way a signature fails is
/// named, and any one key of the keyring suffices.
#[test]
fn signature_checks_name_each_failure() {
    use base64::Engine as _;
    use ferry_oci::{Digest, Manifest};
    use ferry_sign::{Outcome, SignedGraph};

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, maker_pub) = p256_pair(d, "maker");
    let (_, other_pub) = p256_pair(d, "other");
    let image = Manifest::parse(
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#.to_vec(),
        None,
    )
    .unwrap();
    let subject = image.digest().clone();
    let sign = |payload: &[u8]| {
        std::fs::write(d.join("p"), payload).unwrap();
        openssl(
            d,
            &["dgst", "-sha256", "-sign", "maker.key", "-out", "s", "p"],
        );
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(d.join("s")).unwrap())
    };
    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"r/x"}},"image":{{"docker-manifest-digest":"{subject}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
    .into_bytes();
    let signature_manifest = |layers: &[(&[u8], &str)]| {
        let layers: Vec<String> = layers
            .iter()
            .map(|(bytes, sig)| {
                format!(
                    r#"{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"{}","size":{},"annotations":{{"dev.cosignproject.cosign/signature":"{sig}"}}}}"#,
                    Digest::sha256_of(bytes),
                    bytes.len()
                )
            })
            .collect();
        Manifest::parse(
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}},"layers":[{}]}}"#,
                layers.join(",")
            )
            .into_bytes(),
            None,
        )
        .unwrap()
    };
    let tag = format!("r/x:{}.sig", subject.tag_form());
    let check = |graph: &SignedGraph, keys: &[&Path]| {
        graph.check(&Keyring::load(keys).unwrap()).images[0].clone()
    };

    // Holds; with the other key it is the wrong key; with both, it holds.
    let good_sig = sign(&payload);
    let mut graph = SignedGraph::new();
    graph.add_named("r/x:1", &image, |_| true);
    graph.add_named(&tag, &signature_manifest(&[(&payload, &good_sig)]), |_| {
        true
    });
    for digest in graph.payloads_needed() {
        graph.add_payload(digest, Ok(payload.clone()));
    }
    assert!(check(&graph, &[&maker_pub]).ok);
    let wrong = check(&graph, &[&other_pub]);
    assert!(!wrong.ok);
    assert!(matches!(
        wrong.signatures[0].outcome,
        Outcome::WrongKey { .. }
    ));
    assert!(check(&graph, &[&other_pub, &maker_pub]).ok);

    // Each broken case, alone.
    let cases: Vec<(&str, SignedGraph)> = {
        let mut out = Vec::new();
        let with = |m: Manifest, payload: Option<Result<Vec<u8>, String>>| {
            let mut g = SignedGraph::new();
            g.add_named("r/x:1", &image, |_| true);
            g.add_named(&tag, &m, |_| true);
            if let Some(p) = payload {
                for digest in g.payloads_needed() {
                    g.add_payload(digest, p.clone());
                }
            }
            g
        };
        let ok = signature_manifest(&[(&payload, &good_sig)]);
        out.push(("was not read", with(ok.clone(), None)));
        out.push((
            "not in the bundle",
            with(ok.clone(), Some(Err("not in the bundle".into()))),
        ));
        out.push((
            "does not match its layer digest",
            with(ok, Some(Ok(b"other bytes".to_vec()))),
        ));
        out.push((
            "not base64",
            with(
                signature_manifest(&[(&payload, "***")]),
                Some(Ok(payload.clone())),
            ),
        ));
        out.push((
            "not an ASN.1 DER",
            with(
                signature_manifest(&[(&payload, "AAAA")]),
                Some(Ok(payload.clone())),
            ),
        ));
        let other = String::from_utf8(payload.clone())
            .unwrap()
            .replace(&subject.to_string(), &Digest::sha256_of(b"x").to_string());
        let other_sig = sign(other.as_bytes());
        out.push((
            "payload for another digest",
            with(
                signature_manifest(&[(other.as_bytes(), &other_sig)]),
                Some(Ok(other.clone().into_bytes())),
            ),
        ));
        let junk_sig = sign(b"[1,2,3]");
        out.push((
            "not simple-signing JSON",
            with(
                signature_manifest(&[(b"[1,2,3]", &junk_sig)]),
                Some(Ok(b"[1,2,3]".to_vec())),
            ),
        ));
        out.push((
            "no simple-signing payload layer",
            with(signature_manifest(&[]), None),
        ));
        out
    };
    for (why, graph) in cases {
        let report = check(&graph, &[&maker_pub]);
        assert!(!report.ok, "{why}");
        let text = report.reason.unwrap();
        assert!(text.contains(why), "{why}: {text}");
    }

    // No signature at all, and signatures, attestations and referrers need none.
    let mut graph = SignedGraph::new();
    graph.add_named("r/x:1", &image, |_| true);
    graph.add_named(&format!("r/x:{}.att", subject.tag_form()), &image, |_| true);
    let report = graph.check(&Keyring::load(&[&maker_pub]).unwrap());
    assert_eq!(report.images.len(), 1);
    assert!(report.images[0]
        .reason
        .as_deref()
        .unwrap()
        .starts_with("no signature"));
}
