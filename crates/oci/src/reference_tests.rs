use proptest::prelude::*;

use super::*;

const D: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

/// (input, registry, repository, tag); digests are in `tags_and_digests`.
#[rustfmt::skip]
const VALID: &[(&str, &str, &str, &str)] = &[
    ("nginx", "docker.io", "library/nginx", "latest"),
    ("nginx:1.25", "docker.io", "library/nginx", "1.25"),
    ("test_com", "docker.io", "library/test_com", "latest"),
    ("test.com:tag", "docker.io", "library/test.com", "tag"),
    ("test.com:5000", "docker.io", "library/test.com", "5000"),
    ("localhost:5000", "docker.io", "library/localhost", "5000"),
    ("localhost", "docker.io", "library/localhost", "latest"),
    ("lowercase:Uppercase", "docker.io", "library/lowercase", "Uppercase"),
    ("foo/bar", "docker.io", "foo/bar", "latest"),
    ("docker.io/nginx", "docker.io", "library/nginx", "latest"),
    ("docker.io/library/nginx:1", "docker.io", "library/nginx", "1"),
    ("index.docker.io/nginx", "docker.io", "library/nginx", "latest"),
    ("index.docker.io/foo/bar", "docker.io", "foo/bar", "latest"),
    ("test.com/repo:tag", "test.com", "repo", "tag"),
    ("test:5000/repo", "test:5000", "repo", "latest"),
    ("test:5000/repo:tag", "test:5000", "repo", "tag"),
    ("localhost/foo", "localhost", "foo", "latest"),
    ("localhost:5000/a/b/c:t", "localhost:5000", "a/b/c", "t"),
    ("10.0.0.1:5000/team/app:v1", "10.0.0.1:5000", "team/app", "v1"),
    ("[::1]:5000/app", "[::1]:5000", "app", "latest"),
    ("[2001:db8::1]/app:x", "[2001:db8::1]", "app", "x"),
    ("FOO/bar", "FOO", "bar", "latest"),
    ("Docker.io/foo", "Docker.io", "foo", "latest"),
    ("my-host.example.com/a.b/c_d/e__f/g---h:_t.-x", "my-host.example.com", "a.b/c_d/e__f/g---h", "_t.-x"),
    ("ghcr.io/a/b:1.0-rc.1", "ghcr.io", "a/b", "1.0-rc.1"),
];

#[test]
fn parses_valid_references() {
    for &(input, registry, repository, tag) in VALID {
        let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(r.registry(), registry, "{input}");
        assert_eq!(r.repository(), repository, "{input}");
        assert_eq!(r.tag(), Some(tag), "{input}");
        assert_eq!(r.digest(), None, "{input}");
        assert_eq!(Reference::parse(&r.to_string()).unwrap(), r, "{input}");
    }
}

#[test]
fn tags_and_digests() {
    let cases = [
        (format!("test:5000/repo@{D}"), None, true),
        (format!("test:5000/repo:tag@{D}"), Some("tag"), true),
        (format!("nginx@{D}"), None, true),
        (format!("nginx:1.25@{D}"), Some("1.25"), true),
    ];
    for (input, tag, has_digest) in cases {
        let r = Reference::parse(&input).unwrap();
        assert_eq!(r.tag(), tag, "{input}");
        assert_eq!(r.digest().is_some(), has_digest, "{input}");
        assert_eq!(r.tag_or_digest(), D);
    }
    let r = Reference::parse(&format!("test:5000/repo:tag@{D}")).unwrap();
    assert_eq!(r.to_string(), format!("test:5000/repo:tag@{D}"));
    let r = Reference::parse(&format!("nginx@{D}")).unwrap();
    assert_eq!(r.to_string(), format!("docker.io/library/nginx@{D}"));
}

#[test]
fn display_is_fully_qualified() {
    for (input, shown) in [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.25", "docker.io/library/nginx:1.25"),
        (
            "index.docker.io/bitnami/redis:7",
            "docker.io/bitnami/redis:7",
        ),
        ("host:5000/a/b:t", "host:5000/a/b:t"),
    ] {
        assert_eq!(Reference::parse(input).unwrap().to_string(), shown);
    }
}

/// (input, part of the reason)
const INVALID: &[(&str, &str)] = &[
    ("", "empty reference"),
    (":tag", "empty repository name"),
    (
        "@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "empty repository name",
    ),
    ("Uppercase", "repository name must be lowercase"),
    ("Uppercase:tag", "repository name must be lowercase"),
    ("foo/Bar", "repository name must be lowercase"),
    (
        "localhost:5000/Foo:tag",
        "repository name must be lowercase",
    ),
    ("nginx:", "invalid tag \"\""),
    ("nginx:-x", "invalid tag \"-x\""),
    ("nginx:.x", "invalid tag \".x\""),
    ("nginx:a+b", "invalid tag \"a+b\""),
    ("nginx:a:b", "invalid path component"),
    ("nginx@", "invalid digest"),
    ("nginx@sha256:abc", "invalid digest"),
    (
        "nginx@md5:d41d8cd98f00b204e9800998ecf8427e",
        "invalid digest",
    ),
    (
        "nginx@sha256:FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
        "invalid digest",
    ),
    ("a@b@c", "invalid digest"),
    ("aa/asdf$$^/aa", "invalid path component \"asdf$$^\""),
    ("a//b", "empty path component"),
    ("a/b/", "empty path component"),
    ("/a", "empty path component"),
    ("docker.io/", "empty path component"),
    ("a___b", "invalid path component"),
    ("a..b", "invalid path component"),
    ("a._b", "invalid path component"),
    ("-a", "invalid path component"),
    ("a-", "invalid path component"),
    ("_a", "invalid path component"),
    ("a b", "invalid path component"),
    ("ngïnx", "invalid path component"),
    ("-foo.com/bar", "invalid registry host \"-foo.com\""),
    ("foo..com/bar", "invalid registry host"),
    ("foo.com:/bar", "port \"\" is not a number"),
    ("foo.com:abc/bar", "port \"abc\" is not a number"),
    ("foo_bar.com/x", "invalid registry host"),
    ("[::1/x", "invalid registry host"),
    ("[]:5000/x", "invalid registry host"),
    ("[zz::1]/x", "invalid registry host"),
    ("[::1]5000/x", "invalid registry host"),
    ("[fe80::1%eth0]:5000/app", "invalid registry host"),
    (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "image ID",
    ),
];

#[test]
fn rejects_invalid_references() {
    for &(input, reason) in INVALID {
        match Reference::parse(input) {
            Ok(r) => panic!("{input:?} parsed as {r}"),
            Err(err @ Error::InvalidReference { .. }) => {
                let msg = err.to_string();
                assert!(msg.contains(&format!("{input:?}")), "{msg}");
                assert!(msg.contains(reason), "{input:?}: {msg}");
            }
            Err(other) => panic!("{input:?}: unexpected error {other}"),
        }
    }
}

#[test]
fn tag_length_limit() {
    let ok = format!("nginx:{}", "t".repeat(128));
    assert!(Reference::parse(&ok).is_ok());
    let long = format!("nginx:{}", "t".repeat(129));
    assert!(Reference::parse(&long)
        .unwrap_err()
        .to_string()
        .contains("invalid tag"));
}

#[test]
fn name_length_limit() {
    // "registry.example.com/" is 21 characters.
    let fits = format!("registry.example.com/{}", "a".repeat(255 - 21));
    let r = Reference::parse(&fits).unwrap();
    assert_eq!(r.name().len(), 255);
    let over = format!("registry.example.com/{}", "a".repeat(256 - 21));
    let err = Reference::parse(&over).unwrap_err().to_string();
    assert!(err.contains("name longer than 255 characters"), "{err}");
    // The limit applies to the normalized name: "docker.io/library/" is 18.
    let official = "a".repeat(255 - 17);
    let err = Reference::parse(&official).unwrap_err().to_string();
    assert!(err.contains("name longer than 255"), "{err}");
    assert!(Reference::parse(&"a".repeat(255 - 18)).is_ok());
}

#[test]
fn derived_references() {
    let d: Digest = D.parse().unwrap();
    let r = Reference::parse("nginx:1.25").unwrap();
    assert_eq!(r.name(), "docker.io/library/nginx");
    assert_eq!(r.tag_or_digest(), "1.25");

    let t = r.with_tag("1.26").unwrap();
    assert_eq!(t.to_string(), "docker.io/library/nginx:1.26");
    assert!(r.with_tag("bad tag").is_err());

    let by_digest = r.with_digest(d.clone());
    assert_eq!(
        by_digest.to_string(),
        format!("docker.io/library/nginx@{D}")
    );
    assert_eq!(by_digest.tag(), None);
    assert_eq!(by_digest.tag_or_digest(), D);
    // with_tag drops the digest.
    assert_eq!(by_digest.with_tag("x").unwrap().digest(), None);

    let pinned = r.pinned(d);
    assert_eq!(
        pinned.to_string(),
        format!("docker.io/library/nginx:1.25@{D}")
    );
}

#[test]
fn in_repository_validates_and_normalizes() {
    let r = Reference::in_repository("index.docker.io", "nginx", None, None).unwrap();
    assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
    let r = Reference::in_repository("myhost", "team/app", Some("v1"), None).unwrap();
    assert_eq!(r.registry(), "myhost");
    assert!(!r.has_recognizable_registry());
    assert!(Reference::parse("localhost/x")
        .unwrap()
        .has_recognizable_registry());
    for (registry, repository, tag) in [
        ("", "a", None),
        ("host:x", "a", None),
        ("host", "", None),
        ("host", "A", None),
        ("host", "a//b", None),
        ("host", "a", Some("")),
    ] {
        let err = Reference::in_repository(registry, repository, tag, None).unwrap_err();
        assert!(matches!(err, Error::InvalidReference { .. }), "{err}");
    }
}

#[test]
fn serde_as_string() {
    let r = Reference::parse("nginx:1.25").unwrap();
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(json, "\"docker.io/library/nginx:1.25\"");
    assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
    assert!(serde_json::from_str::<Reference>("\"Bad\"").is_err());
}

#[test]
fn equal_after_normalization() {
    assert_eq!(
        Reference::parse("nginx").unwrap(),
        Reference::parse("index.docker.io/library/nginx:latest").unwrap()
    );
}

fn path_component() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,6}((\\.|_|__|-{1,3})[a-z0-9]{1,6}){0,2}"
}

fn registry() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("docker.io".to_string()),
        Just("localhost".to_string()),
        Just("[::1]:5000".to_string()),
        "localhost:[0-9]{1,5}",
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(:[0-9]{1,5})?",
        "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?\\.[a-zA-Z]{2,4}(:[0-9]{1,5})?",
    ]
}

prop_compose! {
    fn reference()(
        registry in registry(),
        path in prop::collection::vec(path_component(), 1..5),
        tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
        digest in proptest::option::of(any::<[u8; 8]>()),
    ) -> Reference {
        let digest = digest.map(|bytes| Digest::sha256_of(&bytes));
        Reference::in_repository(&registry, &path.join("/"), tag.as_deref(), digest).unwrap()
    }
}

proptest! {
    #[test]
    fn display_round_trips(r in reference()) {
        prop_assert!(r.has_recognizable_registry());
        let shown = r.to_string();
        prop_assert_eq!(Reference::parse(&shown).unwrap(), r);
    }

    #[test]
    fn parse_never_panics(s in "\\PC{0,80}") {
        let _ = Reference::parse(&s);
    }

    #[test]
    fn parse_never_panics_on_reference_like_text(s in "[a-zA-Z0-9.:/@_\\[\\]-]{0,60}") {
        if let Ok(r) = Reference::parse(&s) {
            // Whatever parses prints back to itself.
            prop_assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
        }
    }
}
