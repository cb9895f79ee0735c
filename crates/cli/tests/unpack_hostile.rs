//! Damaged and hostile bundles at `ferry unpack` (issue 5): each is refused
//! with a message naming the entry, nothing it cannot prove reaches the
//! registry, and nothing is written outside where the user asked.

mod util;

use std::path::Path;

use ferry_oci::Digest;
use ferry_testkit::{FixtureSet, RegistryProcess};
use util::Scratch;

/// One entry of a tar being rebuilt.
struct Entry {
    name: String,
    data: Vec<u8>,
    kind: tar::EntryType,
    link: Option<String>,
}

fn read_entries(path: &Path) -> Vec<Entry> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let kind = e.header().entry_type();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            Entry {
                name,
                data,
                kind,
                link: None,
            }
        })
        .collect()
}

/// Write `entries` as a tar with raw names (no path sanitizing).
fn write_entries(path: &Path, entries: &[Entry]) {
    let mut out = Vec::new();
    for e in entries {
        let mut header = tar::Header::new_gnu();
        let name = e.name.as_bytes();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_size(e.data.len() as u64);
        header.set_entry_type(e.kind);
        header.set_mode(0o644);
        if let Some(link) = &e.link {
            let l = link.as_bytes();
            header.as_old_mut().linkname[..l.len()].copy_from_slice(l);
        }
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&e.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    std::fs::write(path, out).unwrap();
}

struct Setup {
    scratch: Scratch,
    fixtures: FixtureSet,
    target: RegistryProcess,
    entries: Vec<Entry>,
}

/// A bundle of base:1 and app:1 packed from a registry that is then stopped.
fn setup() -> Setup {
    setup_with(&["--no-referrers"])
}

/// [`setup`], with more `pack` arguments.
fn setup_with(extra: &[&str]) -> Setup {
    let mut source = RegistryProcess::start();
    let fixtures = source.push_fixtures();
    let scratch = Scratch::new();
    let base = &fixtures.image("fixtures/base:1").reference;
    let app = &fixtures.image("fixtures/app:1").reference;
    let host = source.host();
    let mut args = vec!["pack", base, app, "--plain-http", &host, "-o", "good.tar"];
    args.extend(extra);
    scratch.ferry(args).ok();
    source.stop();
    let entries = read_entries(&scratch.path("good.tar"));
    Setup {
        scratch,
        fixtures,
        target: RegistryProcess::start(),
        entries,
    }
}

impl Setup {
    fn unpack(&self, bundle: &str) -> util::Run {
        let host = self.target.host();
        self.scratch.ferry([
            "unpack",
            bundle,
            "--to",
            &format!("{host}/mirror"),
            "--plain-http",
            &host,
            "--mapping",
            "mapping.json",
            "--retries",
            "1",
        ])
    }

    /// Write a damaged copy, unpack it, and check it was refused before
    /// anything was pushed; returns stderr.
    fn refused_before_push(&self, name: &str, damage: impl FnOnce(&mut Vec<Entry>)) -> String {
        let mut entries: Vec<Entry> = self
            .entries
            .iter()
            .map(|e| Entry {
                name: e.name.clone(),
                data: e.data.clone(),
                kind: e.kind,
                link: None,
            })
            .collect();
        damage(&mut entries);
        write_entries(&self.scratch.path(name), &entries);
        let run = self.unpack(name).failed();
        assert!(
            self.target.catalog().is_empty(),
            "{name}: pushed {:?}",
            self.target.catalog()
        );
        assert!(
            !self.scratch.path("mapping.json").exists(),
            "{name}: mapping written"
        );
        run.stderr
    }

    fn blob_entry(&self, digest: &str) -> String {
        digest.parse::<Digest>().unwrap().blob_path()
    }
}

fn position(entries: &[Entry], name: &str) -> usize {
    entries
        .iter()
        .position(|e| e.name == name)
        .unwrap_or_else(|| panic!("{name} not in bundle"))
}

#[test]
fn damaged_bundles_are_refused_before_anything_is_pushed() {
    let s = setup();
    let base = s.fixtures.image("fixtures/base:1").clone();
    let layer = s.blob_entry(base.blobs.last().unwrap());
    let manifest = s.blob_entry(&base.digest);

    let err = s.refused_before_push("missing-blob.tar", |e| {
        let i = position(e, &layer);
        e.remove(i);
    });
    assert!(err.contains(base.blobs.last().unwrap()), "{err}");

    let err = s.refused_before_push("missing-manifest.tar", |e| {
        let i = position(e, &manifest);
        e.remove(i);
    });
    assert!(err.contains(&base.digest), "{err}");

    let err = s.refused_before_push("broken-index.tar", |e| {
        let i = position(e, "index.json");
        e[i].data = b"{\"manifests\": [".to_vec();
    });
    assert!(err.contains("index.json"), "{err}");

    let err = s.refused_before_push("broken-manifest.tar", |e| {
        let i = position(e, &manifest);
        e[i].data[0] = b'[';
    });
    assert!(err.contains(&base.digest), "{err}");

    let err = s.refused_before_push("wrong-size.tar", |e| {
        let i = position(e, &layer);
        e[i].data.push(0);
    });
    assert!(err.contains(base.blobs.last().unwrap()), "{err}");

    let err = s.refused_before_push("climbing.tar", |e| {
        e.push(Entry {
            name: "../../evil".into(),
            data: b"x".to_vec(),
            kind: tar::EntryType::Regular,
            link: None,
        });
    });
    assert!(err.contains("../../evil"), "{err}");
    assert!(!s.scratch.dir().parent().unwrap().join("evil").exists());

    let err = s.refused_before_push("symlink-blob.tar", |e| {
        let i = position(e, &layer);
        e[i].data.clear();
        e[i].kind = tar::EntryType::Symlink;
        e[i].link = Some("/etc/passwd".into());
    });
    assert!(err.contains(base.blobs.last().unwrap()), "{err}");

    let err = s.refused_before_push("duplicate.tar", |e| {
        let i = position(e, &layer);
        let mut twin = Entry {
            name: e[i].name.clone(),
            data: e[i].data.clone(),
            kind: e[i].kind,
            link: None,
        };
        twin.data.push(1);
        e.push(twin);
    });
    assert!(err.contains(&layer), "{err}");

    // Truncated in the middle of the last entry.
    let good = std::fs::read(s.scratch.path("good.tar")).unwrap();
    std::fs::write(s.scratch.path("truncated.tar"), &good[..good.len() - 2048]).unwrap();
    let err = s.unpack("truncated.tar").failed().stderr;
    assert!(err.contains("truncated"), "{err}");
    assert!(s.target.catalog().is_empty());

    // A header that declares terabytes.
    let mut huge = good.clone();
    let at = good.len() - 1024;
    let mut header = tar::Header::new_gnu();
    header.set_path("blobs/sha256/huge").unwrap();
    header.set_size(40 << 40);
    header.set_cksum();
    huge.splice(at..at, header.as_bytes().iter().copied());
    std::fs::write(s.scratch.path("huge.tar"), &huge).unwrap();
    let err = s.unpack("huge.tar").failed().stderr;
    assert!(err.contains("blobs/sha256/huge"), "{err}");
    assert!(s.target.catalog().is_empty());
}

#[test]
fn content_found_bad_while_pushing_gets_no_tag() {
    let s = setup();
    let base = s.fixtures.image("fixtures/base:1").clone();
    let app = s.fixtures.image("fixtures/app:1").clone();
    // The layer only app has, replaced by other bytes of the same size:
    // the plan holds, the damage shows only when the bytes are hashed.
    let own_layer = app.blobs.iter().find(|b| !base.blobs.contains(b)).unwrap();
    let entries = s.entries.iter().map(|e| {
        let mut data = e.data.clone();
        if e.name == s.blob_entry(own_layer) {
            data.iter_mut().for_each(|b| *b = b.wrapping_add(1));
        }
        Entry {
            name: e.name.clone(),
            data,
            kind: e.kind,
            link: None,
        }
    });
    write_entries(
        &s.scratch.path("bad-layer.tar"),
        &entries.collect::<Vec<_>>(),
    );
    let err = s.unpack("bad-layer.tar").failed().stderr;
    assert!(err.contains(own_layer), "{err}");
    assert!(err.contains("fixtures/app:1"), "{err}");
    // base arrived whole and is tagged; app has no tag and no bad layer.
    let catalog = s.target.catalog();
    let app_repo = catalog
        .iter()
        .find(|r| r.contains("fixtures-app-"))
        .cloned();
    if let Some(repo) = app_repo {
        assert!(
            s.target.tags(&repo).is_empty(),
            "app was tagged: {:?}",
            s.target.tags(&repo)
        );
        assert!(!s.target.blob_exists(&repo, own_layer));
    }
    let base_repo = catalog
        .iter()
        .find(|r| r.contains("fixtures-base-"))
        .unwrap();
    assert_eq!(
        s.target.manifest_digest(base_repo, "1").as_deref(),
        Some(base.digest.as_str())
    );
}

/// A bundle naming `deep.example/deep:1`, an index nested `levels` deep
/// above one small image, written as a tar with `ferry pack`'s order
/// (layout, index.json, manifests, blobs).
fn nested_bundle(path: &Path, levels: usize) {
    let blob = |data: Vec<u8>| (Digest::sha256_of(&data), data);
    let (config, config_bytes) = blob(br#"{"architecture":"amd64","os":"linux"}"#.to_vec());
    let (layer, layer_bytes) = blob(b"layer".to_vec());
    let image = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{}}}]}}"#,
        config_bytes.len(),
        layer_bytes.len()
    );
    let mut manifests = vec![blob(image.into_bytes())];
    for _ in 0..levels {
        let (below, bytes) = manifests.last().unwrap();
        let media_type = if manifests.len() == 1 {
            "application/vnd.oci.image.manifest.v1+json"
        } else {
            "application/vnd.oci.image.index.v1+json"
        };
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"{media_type}","digest":"{below}","size":{}}}]}}"#,
            bytes.len()
        );
        manifests.push(blob(index.into_bytes()));
    }
    let (top, top_bytes) = manifests.last().unwrap();
    let index_json = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{top}","size":{},"annotations":{{"io.containerd.image.name":"deep.example/deep:1","org.opencontainers.image.ref.name":"deep.example/deep:1"}}}}]}}"#,
        top_bytes.len()
    );
    let entry = |name: String, data: Vec<u8>| Entry {
        name,
        data,
        kind: tar::EntryType::Regular,
        link: None,
    };
    let mut entries = vec![
        entry(
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        entry("index.json".into(), index_json.into_bytes()),
    ];
    for (digest, data) in manifests.into_iter().rev() {
        entries.push(entry(digest.blob_path(), data));
    }
    entries.push(entry(config.blob_path(), config_bytes));
    entries.push(entry(layer.blob_path(), layer_bytes));
    write_entries(path, &entries);
}

/// Issue 14: indexes nested 10,000 deep are refused at the depth limit by
/// unpack (file and stdin), verify, inspect and serve — no stack overflow, nothing
/// pushed.
#[test]
fn indexes_nested_thousands_deep_stop_at_the_depth_limit() {
    let scratch = Scratch::new();
    let target = RegistryProcess::start();
    let host = target.host();
    nested_bundle(&scratch.path("deep.tar"), 10_000);
    let limit = format!("deeper than {}", ferry_oci::MAX_DEPTH);

    let unpack = |bundle: &str| {
        scratch.ferry([
            "unpack",
            bundle,
            "--to",
            &format!("{host}/mirror"),
            "--plain-http",
            &host,
        ])
    };
    let err = unpack("deep.tar").failed().stderr;
    assert!(err.contains(&limit), "{err}");
    let run = scratch.ferry_stdin(
        [
            "unpack",
            "-",
            "--to",
            &format!("{host}/mirror"),
            "--plain-http",
            &host,
        ],
        &std::fs::read(scratch.path("deep.tar")).unwrap(),
    );
    let err = run.failed().stderr;
    assert!(err.contains(&limit), "{err}");
    assert!(target.catalog().is_empty(), "{:?}", target.catalog());

    let run = scratch.ferry(["verify", "deep.tar"]).failed();
    assert!(
        run.stdout.contains(&limit) || run.stderr.contains(&limit),
        "{}{}",
        run.stdout,
        run.stderr
    );
    let run = scratch.ferry(["inspect", "deep.tar"]);
    assert!(
        run.stdout.contains(&limit) || run.stderr.contains(&limit),
        "{}{}",
        run.stdout,
        run.stderr
    );

    // `ferry serve` walks with the same walk: it refuses to start (a
    // server that starts would run on, so it is given a minute).
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["serve", "deep.tar", "--listen", "127.0.0.1:0"])
        .current_dir(scratch.dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = serve.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            serve.kill().unwrap();
            panic!("ferry serve started on indexes nested 10,000 deep");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut serve.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains(&limit), "{err}");

    // Just inside the limit is a bundle like any other.
    nested_bundle(&scratch.path("ok.tar"), ferry_oci::MAX_DEPTH);
    unpack("ok.tar").ok();
    scratch.ferry(["verify", "ok.tar"]).ok();
}

/// Issue 14: when an image fails at unpack (a layer found corrupt while
/// pushing), its cosign signature tag is not pushed either, and the summary
/// says why; the healthy image and its OCI referrer land.
#[test]
fn referrers_follow_their_subject_when_it_fails() {
    let s = setup_with(&[]);
    let base = s.fixtures.image("fixtures/base:1").clone();
    let app = s.fixtures.image("fixtures/app:1").clone();
    let sig = s.fixtures.signatures[0].clone();
    let referrer = s.fixtures.referrers[0].clone();
    assert_eq!(sig.subject_digest, app.digest);
    assert_eq!(referrer.subject_digest, base.digest);
    let own_layer = app.blobs.iter().find(|b| !base.blobs.contains(b)).unwrap();
    let entries: Vec<Entry> = s
        .entries
        .iter()
        .map(|e| {
            let mut data = e.data.clone();
            if e.name == s.blob_entry(own_layer) {
                data.iter_mut().for_each(|b| *b = b.wrapping_add(1));
            }
            Entry {
                name: e.name.clone(),
                data,
                kind: e.kind,
                link: None,
            }
        })
        .collect();
    write_entries(&s.scratch.path("bad-layer.tar"), &entries);
    let run = s.unpack("bad-layer.tar").failed();
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(
        said.contains(&format!("skipped: its subject {}", app.digest)),
        "{said}"
    );

    let catalog = s.target.catalog();
    let repo_of = |name: &str| catalog.iter().find(|r| r.contains(name)).cloned();
    if let Some(app_repo) = repo_of("fixtures-app-") {
        let tags = s.target.tags(&app_repo);
        assert!(
            !tags.contains(&sig.tag),
            "signature of a failed image tagged: {tags:?}"
        );
        assert!(tags.is_empty(), "{tags:?}");
        assert!(s.target.manifest_digest(&app_repo, &sig.digest).is_none());
    }
    let base_repo = repo_of("fixtures-base-").unwrap();
    assert_eq!(
        s.target.manifest_digest(&base_repo, "1").as_deref(),
        Some(base.digest.as_str())
    );
    assert_eq!(
        s.target
            .manifest_digest(&base_repo, &referrer.digest)
            .as_deref(),
        Some(referrer.digest.as_str())
    );

    // The same bundle undamaged: app and its signature land.
    let host = s.target.host();
    s.scratch
        .ferry([
            "unpack",
            "good.tar",
            "--to",
            &format!("{host}/good"),
            "--plain-http",
            &host,
        ])
        .ok();
    let good_app = s
        .target
        .catalog()
        .into_iter()
        .find(|r| r.starts_with("good/") && r.contains("fixtures-app-"))
        .unwrap();
    let tags = s.target.tags(&good_app);
    assert!(tags.contains(&sig.tag), "{tags:?}");
    assert_eq!(
        s.target.manifest_digest(&good_app, &sig.tag).as_deref(),
        Some(sig.digest.as_str())
    );
}

/// A bundle naming `sha512.example/app:1`: an OCI index (sha256) whose one
/// entry names an image manifest by its sha512 digest
/// (`blobs/sha512/<hex>`). With `damage`, one byte of that manifest is
/// changed (same size, same name).
fn sha512_bundle(path: &Path, damage: bool) -> Digest {
    let sha256 = |data: &[u8]| Digest::sha256_of(data);
    let config_bytes = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer_bytes = b"layer".to_vec();
    let (config, layer) = (sha256(&config_bytes), sha256(&layer_bytes));
    let image = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{}}}]}}"#,
        config_bytes.len(),
        layer_bytes.len()
    )
    .into_bytes();
    let mut hasher = ferry_oci::DigestHasher::new(ferry_oci::Algorithm::Sha512);
    hasher.update(&image);
    let image_digest = hasher.finish();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{image_digest}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
        image.len()
    )
    .into_bytes();
    let index_json = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{}","size":{},"annotations":{{"io.containerd.image.name":"sha512.example/app:1","org.opencontainers.image.ref.name":"sha512.example/app:1"}}}}]}}"#,
        sha256(&index),
        index.len()
    );
    let mut stored_image = image.clone();
    if damage {
        stored_image[1] = b' ';
    }
    let entry = |name: String, data: Vec<u8>| Entry {
        name,
        data,
        kind: tar::EntryType::Regular,
        link: None,
    };
    let entries = vec![
        entry(
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        entry("index.json".into(), index_json.into_bytes()),
        entry(sha256(&index).blob_path(), index),
        entry(image_digest.blob_path(), stored_image),
        entry(config.blob_path(), config_bytes),
        entry(layer.blob_path(), layer_bytes),
    ];
    // blobs/sha512/<128 hex> needs more than the 100 bytes of a plain tar
    // name: the tar crate writes a GNU long name, as other tools do.
    let mut tar = tar::Builder::new(std::fs::File::create(path).unwrap());
    for e in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(e.data.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, &e.name, e.data.as_slice())
            .unwrap();
    }
    tar.finish().unwrap();
    image_digest
}

/// Issue 14: a manifest named by a sha512 descriptor is checked and pushed
/// under its own algorithm. docker-registry 2.8 refuses manifests by sha512
/// digest (`DIGEST_INVALID`), so the round trip is checked at verify and
/// unpack says clearly why that registry cannot take it.
#[test]
fn sha512_manifests_keep_their_algorithm() {
    let scratch = Scratch::new();
    let digest = sha512_bundle(&scratch.path("sha512.tar"), false);
    assert_eq!(digest.algorithm(), ferry_oci::Algorithm::Sha512);
    scratch.ferry(["verify", "sha512.tar"]).ok();
    let inspect = scratch.ferry(["inspect", "sha512.tar", "--json"]).ok();
    assert!(
        inspect.stdout.contains(&digest.to_string()),
        "{}",
        inspect.stdout
    );

    sha512_bundle(&scratch.path("damaged.tar"), true);
    let run = scratch.ferry(["verify", "damaged.tar"]).failed();
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(said.contains(&digest.to_string()), "{said}");

    let target = RegistryProcess::start();
    let host = target.host();
    let run = scratch
        .ferry([
            "unpack",
            "sha512.tar",
            "--to",
            &format!("{host}/mirror"),
            "--plain-http",
            &host,
        ])
        .failed();
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(
        said.contains(&format!("refused manifest {digest}")) && said.contains("by sha512 digest"),
        "{said}"
    );
    for repo in target.catalog() {
        assert!(target.tags(&repo).is_empty(), "{repo} tagged");
    }
}
