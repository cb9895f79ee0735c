//! The fault proxy in front of a real `docker-registry`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ferry_testkit::{
    Fault, FaultProxy, FixtureOptions, FixtureSet, Match, Pusher, RegistryProcess, FOREVER,
};

const USER: &str = "ferry";
const PASSWORD: &str = "s3cret";

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

#[test]
fn uploads_and_downloads_stream_through_unchanged() {
    let registry = RegistryProcess::start();
    let proxy = FaultProxy::start(&registry);
    // Pushed through the proxy: blob uploads (one streamed with chunked
    // encoding) and manifests go through it, keep-alive included.
    let set = FixtureSet::generate(
        &proxy.host(),
        &FixtureOptions {
            big_layer_bytes: Some(2 * 1024 * 1024 + 3),
        },
    );
    set.push(&Pusher::new(&format!("http://{}", proxy.host())));
    assert!(proxy.count(&Match::path_contains("/blobs/uploads/").method("PUT")) > 0);

    let base = set.image("fixtures/base:1");
    // The registry itself has what went through the proxy.
    assert_eq!(
        registry.manifest_digest("fixtures/base", "1"),
        Some(base.digest.clone())
    );
    let big = set.image("fixtures/big:1");
    let layer = &big.blobs[1];
    let url = format!("http://{}/v2/fixtures/big/blobs/{layer}", proxy.host());
    let bytes = client().get(&url).send().unwrap().bytes().unwrap();
    assert_eq!(ferry_oci::Digest::sha256_of(&bytes).to_string(), *layer);
    assert_eq!(
        proxy.count(&Match::path_contains(&format!("/blobs/{layer}")).method("GET")),
        1
    );
}

#[test]
fn faults_are_applied_as_many_times_as_asked() {
    let registry = RegistryProcess::start();
    let proxy = FaultProxy::start(&registry);
    let set = registry.push_fixtures();
    let base = set.image("fixtures/base:1");
    let blob = &base.blobs[0];
    let url = format!("http://{}/v2/fixtures/base/blobs/{blob}", proxy.host());
    let http = client();

    proxy.inject(
        Fault::Status {
            code: 503,
            retry_after: Some(7),
        },
        Match::path_contains("/blobs/").method("GET"),
        2,
    );
    for _ in 0..2 {
        let r = http.get(&url).send().unwrap();
        assert_eq!(r.status().as_u16(), 503);
        assert_eq!(r.headers()["retry-after"], "7");
    }
    let r = http.get(&url).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(Some(&r.bytes().unwrap()[..]), set.blob(blob));
    assert_eq!(proxy.faults_applied(), 2);
    assert_eq!(proxy.count(&Match::path_contains("/blobs/")), 3);

    // A reset mid-body: the client sees a short body and an error.
    proxy.inject(Fault::ResetMidBody, Match::path_contains("/blobs/"), 1);
    assert!(http.get(&url).send().and_then(|r| r.bytes()).is_err());
    assert_eq!(
        http.get(&url).send().unwrap().bytes().unwrap().len(),
        set.blob(blob).unwrap().len()
    );

    // A byte flipped in the middle: the same length, one byte different.
    proxy.inject(Fault::FlipByte, Match::path_contains("/blobs/"), 1);
    let flipped = http.get(&url).send().unwrap().bytes().unwrap();
    let right = set.blob(blob).unwrap();
    assert_eq!(flipped.len(), right.len());
    let differ: Vec<usize> = (0..right.len())
        .filter(|&i| flipped[i] != right[i])
        .collect();
    assert_eq!(differ, [right.len() / 2]);
    assert_eq!(flipped[right.len() / 2], !right[right.len() / 2]);

    // A stall longer than the client waits.
    proxy.inject(
        Fault::Stall(Duration::from_secs(30)),
        Match::path_contains("/tags/list"),
        FOREVER,
    );
    let short = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let manifest = format!("http://{}/v2/fixtures/base/tags/list", proxy.host());
    assert!(short.get(&manifest).send().is_err());
    proxy.clear();
    assert!(http.get(&manifest).send().unwrap().status().is_success());
}

#[test]
fn an_expired_token_gets_the_registry_challenge() {
    let registry = RegistryProcess::start_with_basic_auth(USER, PASSWORD);
    let proxy = FaultProxy::start(&registry);
    let url = format!("http://{}/v2/", proxy.host());
    let http = client();
    let ok = http.get(&url).basic_auth(USER, Some(PASSWORD)).send();
    assert_eq!(ok.unwrap().status().as_u16(), 200);
    proxy.inject(Fault::ExpireToken, Match::any(), 1);
    let r = http
        .get(&url)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let again = http.get(&url).basic_auth(USER, Some(PASSWORD)).send();
    assert_eq!(again.unwrap().status().as_u16(), 200);
}

#[test]
fn raw_keep_alive_and_drop_closes_everything() {
    let registry = RegistryProcess::start();
    let proxy = FaultProxy::start(&registry);
    let mut conn = TcpStream::connect(proxy.host()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Two requests on one connection, the second answered after the first.
    let request = format!("GET /v2/ HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.host());
    conn.write_all(request.repeat(2).as_bytes()).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&seen)
        .matches("HTTP/1.1 200")
        .count()
        < 2
    {
        let n = conn.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "proxy closed early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    let host = proxy.host();
    drop(proxy);
    // The idle connection is closed (after whatever of the second answer
    // was still in flight), and nothing listens any more.
    let closed = loop {
        match conn.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(_) => break false,
        }
    };
    assert!(closed, "the proxy left the connection open");
    assert!(TcpStream::connect(host).is_err());
}

#[test]
fn a_single_request_upload_is_taken_on_the_clients_behalf() {
    let registry = RegistryProcess::start_with_basic_auth(USER, PASSWORD);
    let proxy = FaultProxy::start(&registry);
    proxy.inject(
        Fault::TakeSingleRequestUpload,
        Match::path_contains("/blobs/uploads/").method("POST"),
        FOREVER,
    );
    let http = client();
    let base = format!("http://{}/v2", proxy.host());
    let post = |repo: &str, query: &str, body: &'static [u8]| {
        http.post(format!("{base}/{repo}/blobs/uploads/{query}"))
            .basic_auth(USER, Some(PASSWORD))
            .header("Content-Type", "application/octet-stream")
            .body(body)
            .send()
            .unwrap()
    };
    let bytes: &[u8] = b"one request is enough";
    let digest = ferry_oci::Digest::sha256_of(bytes).to_string();

    // Stored in one request, as a registry that honours them answers.
    let r = post("one", &format!("?digest={digest}"), bytes);
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.ends_with(&format!("/v2/one/blobs/{digest}")),
        "{location}"
    );
    let got = http
        .get(format!("{base}/one/blobs/{digest}"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(got.bytes().unwrap(), bytes);

    // A body that does not match its digest: the registry's own error.
    let r = post("one", &format!("?digest={digest}"), b"something else");
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap().contains("DIGEST_INVALID"));
    // No credentials: the registry's challenge, from the first step.
    let r = http
        .post(format!("{base}/one/blobs/uploads/?digest={digest}"))
        .body(bytes)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // Without a body or a digest (a session, a mount): untouched.
    assert_eq!(post("one", "", b"").status().as_u16(), 202);
    let mount = format!("?mount={digest}&from=one");
    assert_eq!(post("two", &mount, b"").status().as_u16(), 201);
    // The client's five POSTs and one GET; the proxy's own are not logged.
    assert_eq!(proxy.count(&Match::any()), 6, "{:#?}", proxy.log());
}
