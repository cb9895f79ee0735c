//! Credentials stay with their origin (issue 14, item 1): a registry that
//! sends blob GETs to another origin with a redirect (as registries on
//! object storage do) and uploads to another origin with its `Location`
//! (as registries with a separate upload service do). ferry must follow
//! both, and never show that other origin the registry's `Authorization`
//! header, basic or bearer, as docker and containerd do not.
//!
//! The registry is a real `docker-registry` behind a [`FaultProxy`]; the
//! other origin is a second proxy on another port in front of the same
//! registry ([`FaultProxy::start_foreign`]), which authorizes itself and
//! notes whether a client brought credentials.

mod util;

use base64::Engine as _;
use ferry_oci::layout::LayoutArchive;
use ferry_oci::{Naming, Reference, RelocationTarget};
use ferry_testkit::{
    Fault, FaultProxy, FixtureOptions, FixtureSet, Match, RegistryOptions, RegistryProcess,
    TokenServer, TokenServerOptions, FOREVER,
};
use util::Scratch;

const USER: &str = "origin-user";
const PASSWORD: &str = "Or1gin-Pa55-ferry-0931";

fn login(scratch: &Scratch, host: &str) {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let config = serde_json::json!({"auths": {host: {"auth": auth}}});
    std::fs::create_dir_all(scratch.path(".docker")).unwrap();
    std::fs::write(
        scratch.path(".docker/config.json"),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();
}

/// Pack the fixtures through `proxy` with its blob GETs redirected to
/// `foreign`, then unpack them back through `proxy` with its uploads moved
/// to `foreign`; check what landed, and that `foreign` never saw
/// credentials while `proxy` did.
fn round_trip(registry: &RegistryProcess) {
    let proxy = FaultProxy::start(registry);
    let foreign = FaultProxy::start_foreign(registry);
    let fixtures = FixtureSet::generate(&proxy.host(), &FixtureOptions::default());
    fixtures.push(&registry.pusher());
    let scratch = Scratch::new();
    login(&scratch, &proxy.host());

    proxy.inject(
        Fault::Redirect { to: foreign.host() },
        Match::path_contains("/blobs/sha256:").method("GET"),
        FOREVER,
    );
    let mut args = vec!["pack".to_string(), "--quiet".to_string()];
    args.extend(fixtures.references());
    args.extend(["--plain-http".into(), proxy.host(), "-o".into()]);
    args.push("bundle.tar".into());
    scratch.ferry(args).ok();
    let archive = LayoutArchive::open(&scratch.path("bundle.tar")).unwrap();
    assert!(archive.problems().is_empty(), "{:?}", archive.problems());
    let redirected = foreign.count(&Match::path_contains("/blobs/sha256:").method("GET"));
    assert!(redirected > 0, "no blob was fetched from the other origin");

    proxy.clear();
    proxy.inject(
        Fault::MoveLocation { to: foreign.host() },
        Match::path_contains("/blobs/uploads/").method("POST"),
        FOREVER,
    );
    let to = format!("{}/mirror", proxy.host());
    let run = scratch
        .ferry([
            "unpack",
            "bundle.tar",
            "--to",
            &to,
            "--plain-http",
            &proxy.host(),
            "--json",
        ])
        .ok();
    assert_eq!(run.json()["failed"], 0);
    let uploads = foreign.count(&Match::path_contains("/blobs/uploads/").method("PUT"));
    assert!(uploads > 0, "no upload went to the other origin");
    let target = RelocationTarget::parse(&to).unwrap();
    for image in &fixtures.images {
        let relocated = target
            .relocate(&Reference::parse(&image.reference).unwrap(), Naming::Hash)
            .unwrap();
        assert_eq!(
            registry.manifest_digest(relocated.repository(), relocated.tag().unwrap()),
            Some(image.digest.clone()),
            "{}",
            image.reference
        );
    }

    let leaked: Vec<_> = foreign
        .log()
        .into_iter()
        .filter(|s| s.authorization)
        .collect();
    assert!(
        leaked.is_empty(),
        "the other origin was sent the registry's credentials: {leaked:#?}"
    );
    assert!(
        proxy.log().iter().any(|s| s.authorization),
        "the registry itself never got credentials"
    );
}

#[test]
fn basic_credentials_stay_with_their_registry() {
    let registry = RegistryProcess::start_with_basic_auth(USER, PASSWORD);
    round_trip(&registry);
}

#[test]
fn bearer_tokens_stay_with_their_registry() {
    let tokens = TokenServer::start(TokenServerOptions::user(USER, PASSWORD));
    let registry = RegistryProcess::start_with(RegistryOptions {
        token: Some(tokens.auth()),
        ..RegistryOptions::default()
    });
    round_trip(&registry);
}

#[test]
fn another_origin_that_asks_for_credentials_gets_none() {
    let registry = RegistryProcess::start_with_basic_auth(USER, PASSWORD);
    let proxy = FaultProxy::start(&registry);
    // A second origin with no access of its own: it passes requests on as
    // they come, so the registry behind it asks for credentials.
    let bare = FaultProxy::start_to(([127, 0, 0, 1], registry.port()).into());
    let fixtures = FixtureSet::generate(&proxy.host(), &FixtureOptions::default());
    fixtures.push(&registry.pusher());
    let scratch = Scratch::new();
    login(&scratch, &proxy.host());
    proxy.inject(
        Fault::Redirect { to: bare.host() },
        Match::path_contains("/blobs/sha256:").method("GET"),
        FOREVER,
    );
    let run = scratch
        .ferry([
            "pack",
            &fixtures.image("fixtures/base:1").reference,
            "--plain-http",
            &proxy.host(),
            "-o",
            "bundle.tar",
        ])
        .failed();
    assert!(
        run.stderr.contains(&format!(
            "the registry sent ferry to http://{}, which asked for credentials",
            bare.host()
        )),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(PASSWORD));
    assert!(!scratch.path("bundle.tar").exists());
    let seen = bare.log();
    assert!(!seen.is_empty(), "the redirect was not followed");
    assert!(
        seen.iter().all(|s| !s.authorization),
        "the other origin was sent credentials: {seen:#?}"
    );
}

/// Issue 14: a tag-list `Link` with `>` before `<` crashed pack. This one
/// also points the next page at another origin, which must get no
/// credentials; the signature found through the tag list still lands.
#[test]
fn a_hostile_tag_list_link_neither_crashes_pack_nor_gets_credentials() {
    let registry = RegistryProcess::start_with_basic_auth(USER, PASSWORD);
    let proxy = FaultProxy::start(&registry);
    let foreign = FaultProxy::start_foreign(&registry);
    let fixtures = FixtureSet::generate(&proxy.host(), &FixtureOptions::default());
    fixtures.push(&registry.pusher());
    let signature = &fixtures.signatures[0];
    let scratch = Scratch::new();
    login(&scratch, &proxy.host());
    let next = format!(
        "http://{}/v2/{}/tags/list?n=1000&last=~",
        foreign.host(),
        signature.repository
    );
    proxy.inject(
        Fault::SetHeader {
            name: "Link".into(),
            value: format!(r#">; rel="next" <{next}>; rel="next""#),
        },
        Match::path_contains("/tags/list").method("GET"),
        FOREVER,
    );
    scratch
        .ferry([
            "pack",
            &signature.subject_reference,
            "--plain-http",
            &proxy.host(),
            "-o",
            "bundle.tar",
        ])
        .ok();
    let archive = LayoutArchive::open(&scratch.path("bundle.tar")).unwrap();
    assert!(
        archive.blob(&signature.digest.parse().unwrap()).is_some(),
        "the signature found through the tag list is missing"
    );
    let pages = foreign.log();
    assert!(
        pages.iter().any(|s| s.path.contains("/tags/list")),
        "the next page was not fetched: {pages:#?}"
    );
    assert!(pages.iter().all(|s| !s.authorization), "{pages:#?}");
}
