use proptest::prelude::*;

use super::*;
use crate::Digest;

const D: &str = "sha256:1e725169f37aec55908694840bc808fb13ebf02cb1765df225437c56a796f870";

fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

fn target(s: &str) -> RelocationTarget {
    RelocationTarget::parse(s).unwrap()
}

/// The full relocated name with hash naming, as the Go library prints it
/// when the original has no tag or digest.
fn hashed(target: &str, original: &str) -> String {
    let r = reference(original);
    let t = self::target(target);
    format!(
        "{}/{}",
        t.registry(),
        t.relocate_repository(&r, Naming::Hash).unwrap()
    )
}

#[test]
fn hash_naming_matches_the_go_library_example() {
    assert_eq!(
        hashed(
            "test.host/testuser",
            "some.registry.com/some-user/some/path"
        ),
        "test.host/testuser/some-user-some-path-3236c106420c1d0898246e1d2b6ba8b6"
    );
}

#[test]
fn hash_ignores_tag_and_digest() {
    let t = target("test.host/testuser");
    for original in [
        "some.registry.com/some-user/some/path:v1".to_string(),
        format!("some.registry.com/some-user/some/path@{D}"),
        format!("some.registry.com/some-user/some/path:v1@{D}"),
    ] {
        assert_eq!(
            t.relocate_repository(&reference(&original), Naming::Hash)
                .unwrap(),
            "testuser/some-user-some-path-3236c106420c1d0898246e1d2b6ba8b6"
        );
    }
}

/// Expectations of the Go library's own test suite
/// (`pkg/pathmapping/path_mapping_test.go`), under `test.host/testuser`.
#[test]
fn hash_naming_matches_the_go_library_tests() {
    let cases = [
        (
            "some.registry.com/some-user".to_string(),
            "test.host/testuser/some-user-9482d6a53a1789fb7304a4fe88362903",
        ),
        (
            "some.registry.com/some-user/axxxxxxxxx/bxxxxxxxxx/cxxxxxxxxx/dxxxxxxxxx/\
             exxxxxxxxx/fxxxxxxxxx/gxxxxxxxxx/hxxxxxxxxx/ixxxxxxxxx/jxxxxxxxxx/kxxxxxxxxx/\
             lxxxxxxxxx/mxxxxxxxxx/nxxxxxxxxx/oxxxxxxxxx/pxxxxxxxxx/qxxxxxxxxx/rxxxxxxxxx/\
             sxxxxxxxxx/txxxxxxxxx"
                .to_string(),
            "test.host/testuser/some-user-axxxxxxxxx-bxxxxxxxxx-cxxxxxxxxx-dxxxxxxxxx-\
             exxxxxxxxx-fxxxxxxxxx-gxxxxxxxxx-hxxxxxxxxx-ixxxxxxxxx-jxxxxxxxxx-kxxxxxxxxx-\
             lxxxxxxxxx-mxxxxxxxxx-nxxxxxxxxx-oxxxxxxxxx-pxxxxxxxxx---txxxxxxxxx-\
             b0d16e8b4d43f2ec842cfcc61989a966",
        ),
        (
            "some.registry.com/some-user/axxxxxxxxxabxxxxxxxxxbcxxxxxxxxxcdxxxxxxxxxd\
             exxxxxxxxxefxxxxxxxxx/gxxxxxxxxxghxxxxxxxxxhixxxxxxxxxijxxxxxxxxxjkxxxxxxxxxklxxxxxxxxxl\
             mxxxxxxxxxmnxxxxxxxxxnoxxxxxxxxxopxxxxxxxxxpqxxxxxxxxxqrxxxxxxxxxrsxxxxxxxxx/txxxxxxxxx"
                .to_string(),
            "test.host/testuser/some-user-axxxxxxxxxabxxxxxxxxxbcxxxxxxxxxcdxxxxxxxxxd\
             exxxxxxxxxefxxxxxxxxx---txxxxxxxxx-4817a2fce97ff7aae687d14e66328781",
        ),
        (
            "some.registry.com/some-user/axxxxxxxxxabxxxxxxxxxbcxxxxxxxxxcdxxxxxxxxxd\
             exxxxxxxxxefxxxxxxxxxfgxxxxxxxxxghxxxxxxxxxhixxxxxxxxxijxxxxxxxxxjkxxxxxxxxxklxxxxxxxxxl\
             mxxxxxxxxxmnxxxxxxxxxnoxxxxxxxxxopxxxxxxxxxpqxxxxxxxxxqrxxxxxxxxxrsxxxxxxxxxstxxxxxxxxx"
                .to_string(),
            "test.host/testuser/some-user-a363dc80420c33618202ba2828aec456",
        ),
        (
            "some.registry.com/some-user/axxxxxxxxxabxxxxxxxxxbcxxxxxxxxxcdxxxxxxxxxd\
             exxxxxxxxxefxxxxxxxxxfgxxxxxxxxxghxxxxxxxxxhixxxxxxxxxijxxxxxxxxxjkxxxxxxxxxklxxxxxxxxxl\
             mxxxxxxxxxmnxxxxxxxxxnoxxxxxxxxxopxxxxxxxxxpqxxxxxxxxxqrxxxxxxxxxrsxxxxxxxxx/txxxxxxxxx"
                .to_string(),
            "test.host/testuser/some-user---txxxxxxxxx-5134b4594954926468fe0bdc23f640ef",
        ),
        (
            "some.registry.com/axxxxxxxxxabxxxxxxxxxbcxxxxxxxxxcdxxxxxxxxxd\
             exxxxxxxxxefxxxxxxxxxfgxxxxxxxxxghxxxxxxxxxhixxxxxxxxxijxxxxxxxxxjkxxxxxxxxxklxxxxxxxxxl\
             mxxxxxxxxxmnxxxxxxxxxnoxxxxxxxxxopxxxxxxxxxpqxxxxxxxxxqrxxxxxxxxxrsxxxxxxxxxstxxxxxxxxx/suffix"
                .to_string(),
            "test.host/testuser/suffix-3fa7b8289050d7d4fe5d56f3098397a0",
        ),
    ];
    for (original, expected) in cases {
        assert_eq!(hashed("test.host/testuser", &original), expected);
    }
}

#[test]
fn hash_naming_of_an_official_image() {
    let t = target("registry.internal:5000/team/mirror");
    let r = t.relocate(&reference("nginx:1.25"), Naming::Hash).unwrap();
    assert_eq!(
        r.to_string(),
        "registry.internal:5000/team/mirror/library-nginx-dba37485fee3d4d76d5d82609cc9bccb:1.25"
    );
    // Without a prefix the repository sits at the root.
    let t = target("localhost:5000");
    assert_eq!(
        t.relocate_repository(&reference("nginx"), Naming::Hash)
            .unwrap(),
        "library-nginx-dba37485fee3d4d76d5d82609cc9bccb"
    );
}

/// A target whose `P` is 201 characters, so that 255 - len(P + "/-" + md5)
/// leaves exactly 20 characters for the flattened path.
fn narrow_target() -> (RelocationTarget, String) {
    let p = format!("t.io/{}", "p".repeat(196));
    assert_eq!(p.len(), 201);
    (target(&p), p)
}

#[test]
fn hash_naming_crunches_long_paths() {
    let (t, p) = narrow_target();
    let cases = [
        // Joined: 19 characters, fits whole.
        (
            "r.io/aaaa/bbbb/cccc/ddddd".to_string(),
            "aaaa-bbbb-cccc-ddddd-dea001f09929f1a00382d4f6a11889ec".to_string(),
        ),
        // Whole: 24; first 3 + "-" + last: 21; first 2 + "-" + last: 16.
        (
            "r.io/aaaa/bbbb/cccc/dddd/eeee".to_string(),
            "aaaa-bbbb---eeee-0b3bf606d9d1c1eda289bb4e34615da2".to_string(),
        ),
        // Whole: 23; first + "-" + last: 23; the last alone: 2.
        (
            format!("r.io/{}/b/cc", "a".repeat(18)),
            "cc-86ef05e4648e873d976339d5db9dd4ae".to_string(),
        ),
        // Whole: 30; the last alone: 25; the first alone: 4.
        (
            format!("r.io/aaaa/{}", "c".repeat(25)),
            "aaaa-bd55fd1e1649be309adf85fc685e97c0".to_string(),
        ),
        // Nothing fits: the hash alone.
        (
            format!("r.io/{}/{}", "a".repeat(21), "c".repeat(25)),
            "5bc06a2899287c367cccd17d615c6236".to_string(),
        ),
        (
            format!("r.io/{}", "c".repeat(25)),
            "3a73b606d1fc6dd7512a31920422d557".to_string(),
        ),
    ];
    for (original, leaf) in cases {
        let relocated = t.relocate(&reference(&original), Naming::Hash).unwrap();
        assert_eq!(relocated.name(), format!("{p}/{leaf}"), "{original}");
        assert!(relocated.name().len() <= 255);
    }
}

#[test]
fn crunch_boundaries() {
    assert_eq!(crunch(&["ab", "cd"], 5), ["ab", "cd"]);
    assert_eq!(crunch(&["ab", "cd"], 4), ["cd"]);
    assert_eq!(crunch(&["abc", "defgh"], 4), ["abc"]);
    assert!(crunch(&["abcde", "fghij"], 4).is_empty());
    assert!(crunch(&["a"], -3).is_empty());
    assert_eq!(crunch(&["a", "b", "c", "d"], 5), ["a", "-", "d"]);
    assert_eq!(crunch(&["a", "b", "c", "d"], 7), ["a", "b", "c", "d"]);
    assert_eq!(crunch(&["a", "b", "c", "d"], 6), ["a", "-", "d"]);
    assert_eq!(reduce(&["a", "b", "c", "d"], 3), ["a", "b", "-", "d"]);
}

#[test]
fn hash_naming_fails_when_the_prefix_leaves_no_room() {
    // P/md5 is len(P) + 33 characters.
    let fits = target(&format!("t.io/{}", "p".repeat(222 - 5)));
    let r = fits
        .relocate(&reference("r.io/some/thing:1"), Naming::Hash)
        .unwrap();
    assert_eq!(r.name().len(), 255);
    assert_eq!(r.repository().rsplit('/').next().unwrap().len(), 32);

    let over = target(&format!("t.io/{}", "p".repeat(223 - 5)));
    let err = over
        .relocate(&reference("r.io/some/thing:1"), Naming::Hash)
        .unwrap_err();
    assert!(matches!(err, Error::Relocation { .. }), "{err}");
    assert!(err.to_string().contains("longer than 255"), "{err}");
}

#[test]
fn preserve_and_flatten() {
    let t = target("registry.internal:5000/team/mirror");
    let d: Digest = D.parse().unwrap();
    let original = reference("nginx:1.25").pinned(d.clone());
    let r = t.relocate(&original, Naming::Preserve).unwrap();
    assert_eq!(
        r.to_string(),
        format!("registry.internal:5000/team/mirror/library/nginx:1.25@{D}")
    );
    let r = t.relocate(&original, Naming::Flatten).unwrap();
    assert_eq!(
        r.to_string(),
        format!("registry.internal:5000/team/mirror/library-nginx:1.25@{D}")
    );
    assert_eq!(
        t.relocate_repository(&reference("quay.io/a/b/c"), Naming::Flatten)
            .unwrap(),
        "team/mirror/a-b-c"
    );

    let bare = target("localhost:5000");
    assert_eq!(
        bare.relocate_repository(&reference("quay.io/a/b"), Naming::Preserve)
            .unwrap(),
        "a/b"
    );
}

#[test]
fn preserve_and_flatten_fail_over_255() {
    let (t, _) = narrow_target();
    let original = reference(&format!("r.io/{}/b", "a".repeat(60)));
    for naming in [Naming::Preserve, Naming::Flatten] {
        let err = t.relocate(&original, naming).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Relocation { .. }), "{msg}");
        assert!(msg.contains("longer than 255"), "{msg}");
        assert!(msg.contains(&format!("{naming} naming")), "{msg}");
    }
    assert!(t.relocate(&original, Naming::Hash).is_ok());
}

#[test]
fn naming_parses_and_prints() {
    for naming in Naming::ALL {
        assert_eq!(naming.to_string().parse::<Naming>().unwrap(), naming);
    }
    assert_eq!(Naming::default(), Naming::Hash);
    let err = "Hash".parse::<Naming>().unwrap_err();
    assert!(matches!(err, Error::InvalidNaming { .. }));
    assert!(err.to_string().contains("\"Hash\""));
}

#[test]
fn targets_parse() {
    for (input, registry, prefix) in [
        (
            "registry.internal:5000/team/mirror",
            "registry.internal:5000",
            "team/mirror",
        ),
        ("localhost", "localhost", ""),
        ("myhost/team", "myhost", "team"),
        ("myhost:5000/", "myhost:5000", ""),
        ("10.0.0.1:5000/a", "10.0.0.1:5000", "a"),
        ("[::1]:5000/a/b", "[::1]:5000", "a/b"),
        ("index.docker.io/me", "docker.io", "me"),
        ("Upper.Host/x", "Upper.Host", "x"),
    ] {
        let t = RelocationTarget::parse(input).unwrap();
        assert_eq!((t.registry(), t.prefix()), (registry, prefix), "{input}");
        let again = RelocationTarget::parse(&t.to_string()).unwrap();
        assert_eq!(again, t);
    }
    let t = target("myhost/team");
    let json = serde_json::to_string(&t).unwrap();
    assert_eq!(json, "\"myhost/team\"");
    assert_eq!(serde_json::from_str::<RelocationTarget>(&json).unwrap(), t);
}

#[test]
fn bad_targets_are_rejected() {
    for (input, reason) in [
        ("", "empty target"),
        ("https://registry.internal/x", "without a scheme"),
        ("host/Team", "prefix: repository name must be lowercase"),
        ("host//team", "empty path component"),
        ("host/-team", "invalid path component"),
        ("host:port/team", "port \"port\" is not a number"),
        ("/team", "invalid registry host \"\""),
        ("docker.io", "needs a prefix"),
        ("docker.io/", "needs a prefix"),
    ] {
        let err = RelocationTarget::parse(input).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, Error::InvalidRelocationTarget { .. }),
            "{msg}"
        );
        assert!(msg.contains(&format!("{input:?}")), "{msg}");
        assert!(msg.contains(reason), "{input:?}: {msg}");
    }
    let long = format!("t.io/{}", "p".repeat(250));
    assert!(RelocationTarget::parse(&long)
        .unwrap_err()
        .to_string()
        .contains("no room"));
}

#[test]
fn relocated_to_a_host_docker_would_not_recognize() {
    let r = target("myhost/team")
        .relocate(&reference("nginx:1"), Naming::Preserve)
        .unwrap();
    assert_eq!(r.registry(), "myhost");
    assert_eq!(r.repository(), "team/library/nginx");
    assert!(!r.has_recognizable_registry());
}

#[test]
fn collisions_are_errors_naming_both() {
    let t = target("reg.internal/mirror");
    let a = reference("docker.io/a/b:1");
    let a2 = reference("docker.io/a/b:2");
    let b = reference("quay.io/a/b:1");
    let c = reference("quay.io/a-b:1");
    let relocate = |r: &Reference, naming| t.relocate(r, naming).unwrap();

    let hash: Vec<_> = [&a, &a2, &b, &c]
        .into_iter()
        .map(|r| (r.clone(), relocate(r, Naming::Hash)))
        .collect();
    check_collisions(hash.iter().map(|(o, r)| (o, r))).unwrap();

    // Same path on two registries.
    let preserve: Vec<_> = [&a, &a2, &b]
        .into_iter()
        .map(|r| (r.clone(), relocate(r, Naming::Preserve)))
        .collect();
    let err = check_collisions(preserve.iter().map(|(o, r)| (o, r))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "relocation collision: docker.io/a/b and quay.io/a/b would both be relocated to \
         reg.internal/mirror/a/b"
    );

    // `a/b` and `a-b` flatten alike.
    let flatten: Vec<_> = [&a, &c]
        .into_iter()
        .map(|r| (r.clone(), relocate(r, Naming::Flatten)))
        .collect();
    let err = check_collisions(flatten.iter().map(|(o, r)| (o, r))).unwrap_err();
    assert!(
        matches!(&err, Error::NameCollision { first, second, target }
            if first == "docker.io/a/b" && second == "quay.io/a-b"
                && target == "reg.internal/mirror/a-b"),
        "{err}"
    );
}

fn original() -> impl Strategy<Value = Reference> {
    let registry = prop_oneof![
        Just("docker.io".to_string()),
        Just("quay.io".to_string()),
        "[a-z]{1,10}\\.[a-z]{2,3}(:[0-9]{1,4})?",
    ];
    let component = "[a-z0-9]{1,30}((\\.|_|__|-{1,2})[a-z0-9]{1,20}){0,2}";
    (
        registry,
        prop::collection::vec(component, 1..8),
        "[a-z0-9]{1,10}",
    )
        .prop_filter_map("name too long", |(registry, path, tag)| {
            Reference::in_repository(&registry, &path.join("/"), Some(&tag), None).ok()
        })
}

fn relocation_target() -> impl Strategy<Value = RelocationTarget> {
    (
        prop_oneof![
            Just("localhost:5000".to_string()),
            "[a-z]{1,10}\\.[a-z]{2,3}",
        ],
        prop::collection::vec("[a-z0-9]{1,60}", 0..4),
    )
        .prop_filter_map("target too long", |(host, prefix)| {
            let input = if prefix.is_empty() {
                host
            } else {
                format!("{host}/{}", prefix.join("/"))
            };
            RelocationTarget::parse(&input)
                .ok()
                .filter(|t| t.to_string().len() <= 222)
        })
}

proptest! {
    #[test]
    fn hash_relocation_is_always_a_valid_reference(
        original in original(),
        target in relocation_target(),
    ) {
        let relocated = target.relocate(&original, Naming::Hash).unwrap();
        prop_assert!(relocated.name().len() <= 255);
        prop_assert_eq!(relocated.registry(), target.registry());
        prop_assert!(relocated.repository().starts_with(target.prefix()));
        prop_assert_eq!(relocated.tag(), original.tag());
        prop_assert_eq!(Reference::parse(&relocated.to_string()).unwrap(), relocated);
    }

    #[test]
    fn hash_relocation_is_injective(
        a in original(),
        b in original(),
        target in relocation_target(),
    ) {
        let ra = target.relocate(&a, Naming::Hash).unwrap();
        let rb = target.relocate(&b, Naming::Hash).unwrap();
        prop_assert_eq!(a.name() == b.name(), ra.name() == rb.name());
    }

    #[test]
    fn other_namings_are_valid_or_errors(
        original in original(),
        target in relocation_target(),
    ) {
        for naming in [Naming::Preserve, Naming::Flatten] {
            match target.relocate(&original, naming) {
                Ok(relocated) => {
                    prop_assert!(relocated.name().len() <= 255);
                    prop_assert_eq!(Reference::parse(&relocated.to_string()).unwrap(), relocated);
                }
                Err(err) => prop_assert!(matches!(err, Error::Relocation { .. }), "{}", err),
            }
        }
    }

    #[test]
    fn target_parse_never_panics(s in "\\PC{0,60}") {
        let _ = RelocationTarget::parse(&s);
    }
}

#[test]
fn max_depth_joins_the_deepest_components_and_collisions_are_refused() {
    let target = RelocationTarget::parse("reg:5000/team")
        .unwrap()
        .with_max_depth(3);
    let r = |s: &str| Reference::parse(s).unwrap();
    let name = |s: &str, n| target.relocate_repository(&r(s), n).unwrap();
    assert_eq!(
        name("reg.example/a/b/c/d:1", Naming::Preserve),
        "team/a/b-c-d"
    );
    assert_eq!(name("reg.example/a/b:1", Naming::Preserve), "team/a/b");
    assert!(!name("reg.example/a/b/c:1", Naming::Hash).contains("/a/"));
    let shallow = RelocationTarget::parse("reg/x/y")
        .unwrap()
        .with_max_depth(2);
    let err = shallow
        .relocate_repository(&r("reg.example/a:1"), Naming::Preserve)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--max-depth 2"), "{err}");
    // Two originals that adapt to one name collide.
    let (one, two) = (r("reg.example/a/b/c-d:1"), r("reg.example/a/b-c/d:1"));
    let (r1, r2) = (
        target.relocate(&one, Naming::Preserve).unwrap(),
        target.relocate(&two, Naming::Preserve).unwrap(),
    );
    assert_eq!(r1.repository(), "team/a/b-c-d");
    assert_eq!(r2.repository(), "team/a/b-c-d");
    assert!(check_collisions([(&one, &r1), (&two, &r2)]).is_err());
}
