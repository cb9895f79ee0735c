//! `ferry serve` (issue 13): real clients — skopeo, podman, containerd —
//! pull from a bundle served straight from its tar and see the originals'
//! digests and image IDs; hostile requests get distribution-spec errors.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ferry_testkit::{require_tool, FixtureSet, RegistryProcess};
use util::podman;

/// One bundle of every fixture, packed once for all tests of this file.
struct Packed {
    _dir: tempfile::TempDir,
    bundle: PathBuf,
    set: FixtureSet,
}

fn packed() -> &'static Packed {
    static PACKED: OnceLock<Packed> = OnceLock::new();
    PACKED.get_or_init(|| {
        let mut source = RegistryProcess::start();
        let set = source.push_fixtures();
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("bundle.tar");
        pack_to(&bundle, &source.host(), &set.references(), &[]);
        source.stop();
        Packed {
            _dir: dir,
            bundle,
            set,
        }
    })
}

/// `ferry pack REFS --plain-http HOST EXTRA -o BUNDLE`, which must succeed.
fn pack_to(bundle: &Path, host: &str, refs: &[String], extra: &[&str]) {
    let scratch = bundle.parent().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("pack")
        .args(refs)
        .args(["--plain-http", host, "-q"])
        .args(extra)
        .arg("-o")
        .arg(bundle)
        .env("DOCKER_CONFIG", scratch.join(".docker"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running `ferry serve` on a free loopback port, killed on drop.
struct Serve {
    child: Child,
    addr: String,
    stderr: Arc<Mutex<String>>,
}

impl Serve {
    fn start(bundles: &[&Path], extra: &[&str]) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .arg("serve")
            .args(bundles)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut addr = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            stderr.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(rest) = line.split("://").nth(1) {
                if line.starts_with("serving") {
                    addr = Some(rest.split(' ').next().unwrap().to_string());
                    break;
                }
            }
        }
        let Some(addr) = addr else {
            let _ = child.wait();
            panic!("ferry serve did not start:\n{}", stderr.lock().unwrap());
        };
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Serve {
            child,
            addr,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Whether the server's log shows `needle` within 10 s: lines reach
    /// the log through a reader thread, a moment after they are written.
    fn logged(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.stderr().contains(needle) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// SIGTERM, and the exit code once it has stopped (within 15 s).
    fn terminate(&mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "ferry serve ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One raw HTTP/1.1 exchange (the path is sent exactly as given).
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn error_code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn get(addr: &str, path: &str) -> Reply {
    request(addr, "GET", path, &[])
}

fn sha256(bytes: &[u8]) -> String {
    ferry_oci::Digest::sha256_of(bytes).to_string()
}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn issue_13_skopeo_inspects_and_copies_every_image_out_of_ferry_serve() {
    require_tool("skopeo", "apt-get install skopeo");
    let p = packed();
    let mut serve = Serve::start(&[&p.bundle], &[]);
    let target = RegistryProcess::start();
    for image in &p.set.images {
        let from = format!("docker://{}/{}", serve.addr, image.repo_tag());
        let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &from]);
        assert_eq!(
            raw.as_bytes(),
            image.manifest.as_slice(),
            "{}",
            image.reference
        );
        let to = format!("docker://{}/{}", target.host(), image.repo_tag());
        skopeo(&[
            "copy",
            "-q",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &from,
            &to,
        ]);
        assert_eq!(
            target.manifest_digest(&image.repository, &image.tag),
            Some(image.digest.clone()),
            "{}",
            image.reference
        );
    }
    let base = p.set.image("fixtures/base:1");
    let tags = skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}/fixtures/base", serve.addr),
    ]);
    let tags: serde_json::Value = serde_json::from_str(&tags).unwrap();
    let tags: Vec<&str> = tags["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tags.contains(&base.tag.as_str()), "{tags:?}");

    // The catalog lists every repository, without the original host, a page
    // at a time.
    let catalog = get(&serve.addr, "/v2/_catalog").json();
    let repos: Vec<&str> = catalog["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let expected: Vec<&str> = p
        .set
        .images
        .iter()
        .map(|i| i.repository.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(repos, expected);
    let page = get(&serve.addr, "/v2/_catalog?n=2");
    assert_eq!(page.json()["repositories"].as_array().unwrap().len(), 2);
    let link = page.header("Link").expect("a Link to the next page");
    assert!(link.contains(&format!("last={}", expected[1])), "{link}");
    let rest = get(&serve.addr, &format!("/v2/_catalog?last={}", expected[1])).json();
    assert_eq!(
        rest["repositories"].as_array().unwrap().len(),
        expected.len() - 2
    );

    // Graceful shutdown on SIGTERM.
    assert_eq!(serve.terminate(), Some(0), "{}", serve.stderr());
    assert!(serve.logged("stopped"), "{}", serve.stderr());
}

#[test]
fn issue_13_podman_pulls_from_ferry_serve_with_the_originals_digests() {
    require_tool("podman", "apt-get install podman");
    let p = packed();
    let serve = Serve::start(&[&p.bundle], &["--prefix", "mirror"]);
    let engine = tempfile::tempdir().unwrap();
    for image in [
        p.set.image("fixtures/base:1"),
        p.set.image("fixtures/multi:1"),
    ] {
        let reference = format!("{}/mirror/{}", serve.addr, image.repo_tag());
        podman(
            engine.path(),
            &[
                "pull",
                "-q",
                "--tls-verify=false",
                "--arch",
                "amd64",
                "--os",
                "linux",
                &reference,
            ],
        );
        let seen = podman(
            engine.path(),
            &[
                "image",
                "inspect",
                "--format",
                "{{.Id}} {{.Digest}}",
                &reference,
            ],
        );
        let amd64 = image
            .platforms
            .iter()
            .position(|p| p == "linux/amd64")
            .unwrap_or(0);
        let config_hex = image.config_digests[amd64].trim_start_matches("sha256:");
        assert_eq!(
            seen,
            format!("{config_hex} {}", image.digest),
            "{reference}"
        );
    }
    // Without the prefix there is nothing.
    let r = get(&serve.addr, "/v2/fixtures/base/manifests/1");
    assert_eq!((r.status, r.error_code().as_str()), (404, "NAME_UNKNOWN"));
}

/// containerd as the test's own process, with its root, state and socket
/// in a temporary directory; killed on drop.
struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Containerd {
    fn start() -> Containerd {
        let dir = tempfile::Builder::new().prefix("ctrd").tempdir().unwrap();
        let d = dir.path();
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{sock}\"\n\
             [ttrpc]\n  address = \"{sock}.ttrpc\"\n\
             [debug]\n  address = \"{sock}.debug\"\n\
             [metrics]\n  address = \"\"\n",
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("c.sock").display(),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("run containerd");
        let c = Containerd { child, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !c.ctr_ok(&["version"]) {
            assert!(
                Instant::now() < deadline,
                "containerd did not start: {}",
                std::fs::read_to_string(c.dir.path().join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        c
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("c.sock")
    }

    fn ctr_ok(&self, args: &[&str]) -> bool {
        Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .args(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    fn ctr(&self, args: &[&str]) -> String {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .args(args)
            .output()
            .expect("run ctr");
        assert!(
            out.status.success(),
            "ctr {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The digest `ctr images ls` shows for `name`.
fn ctr_digest(listing: &str, name: &str) -> Option<String> {
    listing
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("sha256:")))
        .map(str::to_string)
}

#[test]
fn issue_13_containerd_pulls_directly_and_through_a_hosts_toml_mirror() {
    require_tool("containerd", "apt-get install containerd");
    require_tool("ctr", "apt-get install containerd");
    let p = packed();
    let serve = Serve::start(&[&p.bundle], &[]);
    let containerd = Containerd::start();
    let base = p.set.image("fixtures/base:1");
    let multi = p.set.image("fixtures/multi:1");

    // Straight from ferry serve.
    let direct = format!("{}/{}", serve.addr, base.repo_tag());
    containerd.ctr(&["images", "pull", "--plain-http", &direct]);
    let listing = containerd.ctr(&["images", "ls"]);
    assert_eq!(
        ctr_digest(&listing, &direct),
        Some(base.digest.clone()),
        "{listing}"
    );

    // Through a mirror: the original name resolves at ferry serve, which
    // is told the original registry by ns=.
    let hosts = containerd.dir.path().join("certs.d");
    let original_host = multi.reference.split('/').next().unwrap();
    std::fs::create_dir_all(hosts.join(original_host)).unwrap();
    std::fs::write(
        hosts.join(original_host).join("hosts.toml"),
        format!(
            "server = \"http://{original_host}\"\n\n[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            serve.addr
        ),
    )
    .unwrap();
    containerd.ctr(&[
        "images",
        "pull",
        "--hosts-dir",
        hosts.to_str().unwrap(),
        "--platform",
        "linux/amd64",
        &multi.reference,
    ]);
    let listing = containerd.ctr(&["images", "ls"]);
    assert_eq!(
        ctr_digest(&listing, &multi.reference),
        Some(multi.digest.clone()),
        "{listing}"
    );
    // Nothing listens at the original registry: everything came from
    // ferry serve.
    assert!(TcpStream::connect(original_host).is_err());
}

#[test]
fn issue_13_manifests_blobs_ranges_and_referrers_as_the_spec_says() {
    let p = packed();
    let serve = Serve::start(&[&p.bundle], &[]);
    let a = serve.addr.as_str();
    let base = p.set.image("fixtures/base:1");

    let r = get(a, "/v2/");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );

    for path in [
        "/v2/fixtures/base/manifests/1".to_string(),
        format!("/v2/fixtures/base/manifests/{}", base.digest),
    ] {
        let r = get(a, &path);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, base.manifest);
        assert_eq!(
            r.header("Docker-Content-Digest"),
            Some(base.digest.as_str())
        );
        assert_eq!(r.header("Content-Type"), Some(base.media_type.as_str()));
        let h = request(a, "HEAD", &path, &[]);
        assert_eq!(h.status, 200);
        assert!(h.body.is_empty());
        assert_eq!(
            h.header("Content-Length"),
            Some(base.manifest.len().to_string().as_str())
        );
    }

    // A blob whole, in part, and past its end.
    let layer = base.blobs.last().unwrap();
    let bytes = p.set.blob(layer).unwrap();
    let path = format!("/v2/fixtures/base/blobs/{layer}");
    let r = get(a, &path);
    assert_eq!(r.status, 200);
    assert_eq!(sha256(&r.body), *layer);
    let r = request(a, "GET", &path, &[("Range", "bytes=10-19")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, bytes[10..20]);
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes 10-19/{}", bytes.len()).as_str())
    );
    let r = request(a, "GET", &path, &[("Range", "bytes=-5")]);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (206, &bytes[bytes.len() - 5..])
    );
    let past = format!("bytes={}-", bytes.len());
    let r = request(a, "GET", &path, &[("Range", &past)]);
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes */{}", bytes.len()).as_str())
    );
    let many = format!("bytes={}0-1", "0-0,".repeat(2000));
    let r = request(a, "GET", &path, &[("Range", &many)]);
    assert!(matches!(r.status, 416 | 431), "{}", r.status);
    let h = request(a, "HEAD", &path, &[]);
    assert_eq!(
        (h.status, h.header("Content-Length")),
        (200, Some(bytes.len().to_string().as_str()))
    );

    // A blob of another repository is not served here.
    let chart = p.set.image("fixtures/chart:0.1.0");
    let only_chart = chart
        .blobs
        .iter()
        .find(|b| !base.blobs.contains(b))
        .unwrap();
    let r = get(a, &format!("/v2/fixtures/base/blobs/{only_chart}"));
    assert_eq!((r.status, r.error_code().as_str()), (404, "BLOB_UNKNOWN"));

    // tags/list, paginated.
    let r = get(a, "/v2/fixtures/base/tags/list?n=1");
    assert_eq!(r.json()["name"], "fixtures/base");
    assert_eq!(r.json()["tags"].as_array().unwrap().len(), 1);

    // The referrers API, with artifactType filtering.
    for referrer in &p.set.referrers {
        let repo = &referrer.repository;
        let path = format!("/v2/{repo}/referrers/{}", referrer.subject_digest);
        let r = get(a, &path);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("Content-Type"),
            Some("application/vnd.oci.image.index.v1+json")
        );
        let listed: Vec<String> = r.json()["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap().to_string())
            .collect();
        assert!(listed.contains(&referrer.digest), "{listed:?}");
        let filtered = get(
            a,
            &format!("{path}?artifactType={}", referrer.artifact_type),
        );
        assert_eq!(filtered.header("OCI-Filters-Applied"), Some("artifactType"));
        let m = filtered.json()["manifests"].clone();
        assert!(m
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["artifactType"] == referrer.artifact_type.as_str()));
        assert!(!m.as_array().unwrap().is_empty());
        let none = get(a, &format!("{path}?artifactType=application/x-none"));
        assert!(none.json()["manifests"].as_array().unwrap().is_empty());
    }
}

#[test]
fn issue_13_hostile_requests_get_spec_errors_and_slow_clients_are_cut() {
    let p = packed();
    let serve = Serve::start(
        &[&p.bundle],
        &["--max-connections", "4", "--idle-timeout", "2"],
    );
    let a = serve.addr.as_str();
    let base = p.set.image("fixtures/base:1");
    let unknown = sha256(b"nothing like this is in the bundle");
    for (path, status, code) in [
        ("/v2/../../etc/passwd/manifests/1", 400, "NAME_INVALID"),
        (
            "/v2/fixtures/../fixtures/base/manifests/1",
            400,
            "NAME_INVALID",
        ),
        ("/v2/fixtures%2fbase/manifests/1", 400, "NAME_INVALID"),
        ("/v2/%2e%2e/fixtures/base/manifests/1", 400, "NAME_INVALID"),
        ("/v2/fixtures/base/manifests/..%2f..%2f", 400, "TAG_INVALID"),
        (
            "/v2/fixtures/base/blobs/sha256:..%2f",
            400,
            "DIGEST_INVALID",
        ),
        ("/v2/fixtures/base/manifests/nope", 404, "MANIFEST_UNKNOWN"),
        ("/v2/no/such/repo/tags/list", 404, "NAME_UNKNOWN"),
        (
            "/v2/fixtures/base/tags/list?n=-1",
            400,
            "PAGINATION_NUMBER_INVALID",
        ),
        ("/etc/passwd", 404, "NAME_UNKNOWN"),
    ] {
        let r = get(a, path);
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (status, code),
            "{path}"
        );
    }
    let r = get(a, &format!("/v2/fixtures/base/blobs/{unknown}"));
    assert_eq!((r.status, r.error_code().as_str()), (404, "BLOB_UNKNOWN"));
    let r = get(a, &format!("/v2/fixtures/base/manifests/{unknown}"));
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "MANIFEST_UNKNOWN")
    );

    // Writes are refused.
    for (method, path) in [
        ("POST", "/v2/fixtures/base/blobs/uploads/".to_string()),
        ("PUT", "/v2/fixtures/base/manifests/2".to_string()),
        (
            "DELETE",
            format!("/v2/fixtures/base/manifests/{}", base.digest),
        ),
        ("PATCH", "/v2/fixtures/base/blobs/uploads/x".to_string()),
    ] {
        let r = request(a, method, &path, &[("Content-Length", "0")]);
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (405, "UNSUPPORTED"),
            "{method} {path}"
        );
    }

    // A client that never finishes its headers is cut off.
    let mut slow = TcpStream::connect(a).unwrap();
    slow.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    let n = slow.read(&mut buf).unwrap_or(0);
    assert!(
        n == 0 || String::from_utf8_lossy(&buf[..n]).contains(" 408 "),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert!(started.elapsed() < Duration::from_secs(8));

    // Connections beyond the limit are closed; the server answers again
    // once the idle ones time out.
    let idle: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(a).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = TcpStream::connect(a).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = extra.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        extra.read(&mut buf).unwrap_or(0),
        0,
        "over the limit, yet answered"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(get(a, "/v2/").status, 200);
    drop(idle);
    assert!(!serve.stderr().contains("panicked"), "{}", serve.stderr());
}

#[test]
fn issue_13_a_corrupt_blob_is_cut_off_and_never_served() {
    use std::os::unix::fs::FileExt;

    let p = packed();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("corrupt.tar");
    std::fs::copy(&p.bundle, &bundle).unwrap();
    let base = p.set.image("fixtures/base:1");
    let layer: ferry_oci::Digest = base.blobs.last().unwrap().parse().unwrap();
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
    file.read_exact_at(&mut byte, offset + 3).unwrap();
    file.write_all_at(&[byte[0] ^ 0xff], offset + 3).unwrap();

    let serve = Serve::start(&[&bundle], &[]);
    let path = format!("/v2/fixtures/base/blobs/{layer}");
    // A range of an unread blob: the whole blob is checked first.
    let r = request(&serve.addr, "GET", &path, &[("Range", "bytes=0-1")]);
    assert_eq!((r.status, r.error_code().as_str()), (500, "UNKNOWN"));
    let r = get(&serve.addr, &path);
    assert_eq!(r.status, 500);
    assert!(
        serve.logged("does not match its digest"),
        "{}",
        serve.stderr()
    );

    // The first whole read is cut short: the connection closes before the
    // last bytes (here, a small blob, before anything at all).
    let serve = Serve::start(&[&bundle], &[]);
    let mut s = TcpStream::connect(&serve.addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let size = p.set.blob(&layer.to_string()).unwrap().len();
    assert!(raw.len() < size, "the corrupt blob was served whole");
    let r = get(&serve.addr, &path);
    assert_eq!(r.status, 500);
    // Its image's other content is still served.
    assert_eq!(
        get(&serve.addr, "/v2/fixtures/base/manifests/1").status,
        200
    );
}

#[test]
fn issue_13_htpasswd_and_a_broken_bundle() {
    let p = packed();
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let hash = bcrypt_hash("s3cret");
    std::fs::write(&htpasswd, format!("reader:{hash}\n")).unwrap();
    let serve = Serve::start(&[&p.bundle], &["--htpasswd", htpasswd.to_str().unwrap()]);
    let r = get(&serve.addr, "/v2/");
    assert_eq!((r.status, r.error_code().as_str()), (401, "UNAUTHORIZED"));
    assert!(r.header("WWW-Authenticate").unwrap().starts_with("Basic"));
    let from = format!("docker://{}/fixtures/base:1", serve.addr);
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "reader:s3cret",
        &from,
    ]);
    assert_eq!(
        raw.as_bytes(),
        p.set.image("fixtures/base:1").manifest.as_slice()
    );
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            "reader:wrong",
            &from,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());

    // Not a bundle: a clear error, no server.
    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, b"not a tar at all").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["serve", junk.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("junk.tar"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn bcrypt_hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

/// `--tls-cert/--tls-key`: served over TLS, a client that trusts the
/// certificate gets the exact manifest (digest header included), and one
/// that does not is refused by its own verification — no plain HTTP answer.
#[test]
fn issue_13_serves_over_tls_with_the_given_certificate() {
    require_tool("openssl", "apt-get install openssl");
    require_tool("curl", "apt-get install curl");
    let p = packed();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let serve = Serve::start(
        &[&p.bundle],
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(serve.stderr().contains("https://"), "{}", serve.stderr());
    let base = p.set.image("fixtures/base:1");
    let url = format!("https://{}/v2/fixtures/base/manifests/1", serve.addr);
    let trusted = Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null", "--cacert"])
        .arg(&cert)
        .args(["-H", &format!("Accept: {}", base.media_type), &url])
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&trusted.stdout).to_lowercase();
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    assert!(headers.starts_with("http/"), "{headers}");
    assert!(
        headers.contains(&format!("docker-content-digest: {}", base.digest)),
        "{headers}"
    );
    let untrusted = Command::new("curl").args(["-sS", &url]).output().unwrap();
    assert!(
        !untrusted.status.success(),
        "a client that does not trust the certificate got an answer"
    );
    let plain = Command::new("curl")
        .args(["-sS", &format!("http://{}/v2/", serve.addr)])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains("{}"),
        "plain HTTP answered on the TLS port"
    );
}

/// A bundle packed with `--platform` holds a sparse index: ferry serve
/// starts, serves the index and the platform carried, and answers
/// MANIFEST_UNKNOWN for the platform left out (the one walk's rule for
/// entries a bundle may lack).
#[test]
fn a_bundle_packed_for_one_platform_serves_that_platform_only() {
    let mut source = RegistryProcess::start();
    let set = source.push_fixtures();
    let multi = set
        .images
        .iter()
        .find(|i| i.children.len() > 1)
        .expect("a multi-platform fixture")
        .clone();
    let amd64 = multi
        .platforms
        .iter()
        .position(|p| p == "linux/amd64")
        .expect("an amd64 entry");
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("amd64.tar");
    let refs = [multi.reference.clone()];
    pack_to(
        &bundle,
        &source.host(),
        &refs,
        &["--platform", "linux/amd64"],
    );
    source.stop();

    let serve = Serve::start(&[&bundle], &[]);
    let manifests = format!("/v2/{}/manifests", multi.repository);
    let r = get(&serve.addr, &format!("{manifests}/{}", multi.tag));
    assert_eq!(r.status, 200);
    assert_eq!(sha256(&r.body), multi.digest);
    for (i, child) in multi.children.iter().enumerate() {
        let r = get(&serve.addr, &format!("{manifests}/{child}"));
        if i == amd64 {
            assert_eq!(r.status, 200, "{child}");
            assert_eq!(&sha256(&r.body), child);
        } else {
            assert_eq!(
                (r.status, r.error_code().as_str()),
                (404, "MANIFEST_UNKNOWN")
            );
        }
    }
}
