//! The bearer-token flow for real (issue 5, "Authentication and TLS"): a
//! `docker-registry` with `auth: token` trusting the testkit's
//! [`TokenServer`], the real `ferry` binary, credentials from a scratch
//! docker config.

mod util;

use std::collections::BTreeMap;

use base64::Engine as _;
use ferry_oci::layout::LayoutArchive;
use ferry_oci::{Naming, Reference, RelocationTarget};
use ferry_testkit::{
    require_tool, Fault, FaultProxy, FixtureOptions, FixtureSet, Match, RegistryOptions,
    RegistryProcess, TokenServer, TokenServerOptions,
};
use util::{Run, Scratch};

const USER: &str = "carrier";
const PASSWORD: &str = "pa55-Ferry-7q1z";

/// A token server with `options` and a registry that trusts it.
fn token_registry(options: TokenServerOptions) -> (TokenServer, RegistryProcess) {
    let tokens = TokenServer::start(options);
    let registry = RegistryProcess::start_with(RegistryOptions {
        token: Some(tokens.auth()),
        ..RegistryOptions::default()
    });
    (tokens, registry)
}

/// Write `user:password` for `host` into the scratch docker config.
fn login(scratch: &Scratch, host: &str, user: &str, password: &str) {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = serde_json::json!({"auths": {host: {"auth": auth}}});
    std::fs::create_dir_all(scratch.path(".docker")).unwrap();
    std::fs::write(
        scratch.path(".docker/config.json"),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();
}

fn pack<S: AsRef<str>>(scratch: &Scratch, host: &str, refs: &[S]) -> Run {
    let mut args = vec!["pack".to_string(), "--quiet".to_string()];
    args.extend(refs.iter().map(|r| r.as_ref().to_string()));
    args.extend(["--plain-http".into(), host.into(), "-o".into()]);
    args.push("bundle.tar".into());
    scratch.ferry(args)
}

/// `ferry unpack bundle.tar --to HOST/mirror --plain-http HOST`, and `extra`.
fn unpack(scratch: &Scratch, host: &str, extra: &[&str]) -> Run {
    let to = format!("{host}/mirror");
    let mut args = vec!["unpack", "bundle.tar", "--to", &to, "--plain-http", host];
    args.extend(extra);
    scratch.ferry(args)
}

/// Every image of the bundle by reference name, with its digest.
fn packed(scratch: &Scratch) -> BTreeMap<String, String> {
    let archive = LayoutArchive::open(&scratch.path("bundle.tar")).unwrap();
    assert!(archive.problems().is_empty(), "{:?}", archive.problems());
    archive
        .index()
        .iter()
        .filter_map(|d| {
            let name = d.annotation(ferry_oci::manifest::ANNOTATION_REF_NAME)?;
            Some((name.to_string(), d.digest.to_string()))
        })
        .collect()
}

fn assert_fixtures_packed(scratch: &Scratch, fixtures: &FixtureSet) {
    let packed = packed(scratch);
    for image in &fixtures.images {
        assert_eq!(
            packed.get(&image.reference),
            Some(&image.digest),
            "{}",
            image.reference
        );
    }
}

/// The token server signs with a key made by openssl.
fn require_openssl() {
    require_tool("openssl", "apt-get install openssl");
}

#[test]
fn pack_through_the_token_flow_with_credentials() {
    require_openssl();
    let (tokens, registry) = token_registry(TokenServerOptions::user(USER, PASSWORD));
    let fixtures = registry.push_fixtures();
    tokens.reset_log();

    let scratch = Scratch::new();
    login(&scratch, &registry.host(), USER, PASSWORD);
    pack(&scratch, &registry.host(), &fixtures.references()).ok();
    assert_fixtures_packed(&scratch, &fixtures);

    let requests = tokens.requests();
    assert!(!requests.is_empty(), "ferry never asked for a token");
    for r in &requests {
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.account.as_deref(), Some(USER), "{r:?}");
        assert!(
            r.scopes.iter().all(|s| s.ends_with(":pull")),
            "pack asks for pull only: {r:?}"
        );
    }
}

#[test]
fn anonymous_pull_where_the_token_server_allows_it() {
    require_openssl();
    let (tokens, registry) = token_registry(TokenServerOptions {
        anonymous_pull: true,
        // The OAuth2-style answer, `access_token` only.
        access_token_only: true,
        ..TokenServerOptions::user(USER, PASSWORD)
    });
    let fixtures = registry.push_fixtures();
    tokens.reset_log();

    let scratch = Scratch::new();
    let app = fixtures.image("fixtures/app:1");
    pack(&scratch, &registry.host(), &[app.reference.as_str()]).ok();
    assert_eq!(packed(&scratch).get(&app.reference), Some(&app.digest));
    assert!(tokens.requests().iter().all(|r| r.account.is_none()));
}

#[test]
fn anonymous_pull_refused_says_authentication_failed_and_docker_login() {
    require_openssl();
    let (_tokens, registry) = token_registry(TokenServerOptions::user(USER, PASSWORD));
    let fixtures = registry.push_fixtures();

    let scratch = Scratch::new();
    let app = fixtures.image("fixtures/app:1");
    let run = pack(&scratch, &registry.host(), &[app.reference.as_str()]).failed();
    let host = registry.host();
    assert!(
        run.stderr
            .contains(&format!("authentication failed for {host}")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("docker login {host}")),
        "{}",
        run.stderr
    );
    assert!(!scratch.path("bundle.tar").exists());
}

#[test]
fn wrong_password_fails_and_never_shows_the_password() {
    require_openssl();
    let (tokens, registry) = token_registry(TokenServerOptions::user(USER, PASSWORD));
    let fixtures = registry.push_fixtures();
    tokens.reset_log();

    let scratch = Scratch::new();
    let wrong = "wr0ng-Secret-Zq81";
    login(&scratch, &registry.host(), USER, wrong);
    let app = fixtures.image("fixtures/app:1");
    let run = pack(&scratch, &registry.host(), &[app.reference.as_str()]).failed();
    let host = registry.host();
    assert!(
        run.stderr
            .contains(&format!("authentication failed for {host}")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("refused the credentials"),
        "{}",
        run.stderr
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{wrong}"));
    for secret in [wrong, encoded.as_str()] {
        assert!(
            !run.stderr.contains(secret),
            "secret in stderr: {}",
            run.stderr
        );
        assert!(
            !run.stdout.contains(secret),
            "secret in stdout: {}",
            run.stdout
        );
    }
    assert!(
        tokens.requests().iter().any(|r| r.status == 401),
        "the token server refused the password"
    );
    assert!(!scratch.path("bundle.tar").exists());
}

#[test]
fn unpack_into_a_token_registry_pushes_and_mounts() {
    require_openssl();
    let mut source = RegistryProcess::start();
    let fixtures = source.push_fixtures();
    let scratch = Scratch::new();
    pack(&scratch, &source.host(), &fixtures.references()).ok();
    source.stop();

    let (tokens, target) = token_registry(TokenServerOptions::user(USER, PASSWORD));
    login(&scratch, &target.host(), USER, PASSWORD);
    let run = unpack(&scratch, &target.host(), &["--json"]).ok();
    let summary = run.json();
    assert_eq!(summary["failed"], 0);
    assert!(
        summary["blobs_mounted"].as_u64().unwrap() > 0,
        "shared layers are mounted across repositories: {summary}"
    );

    // Every image is in the target under its relocated name.
    let target_ref = RelocationTarget::parse(&format!("{}/mirror", target.host())).unwrap();
    for image in &fixtures.images {
        let relocated = target_ref
            .relocate(&Reference::parse(&image.reference).unwrap(), Naming::Hash)
            .unwrap();
        assert_eq!(
            target.manifest_digest(relocated.repository(), relocated.tag().unwrap()),
            Some(image.digest.clone()),
            "{}",
            image.reference
        );
    }

    // A mount asked for push on the target repository and pull on the
    // source repository in one token.
    let requests = tokens.requests();
    assert!(requests.iter().all(|r| r.status == 200), "{requests:?}");
    assert!(
        requests.iter().any(|r| r.scopes.len() == 2
            && r.scopes[0].ends_with(":pull,push")
            && r.scopes[1].ends_with(":pull")
            && r.granted.len() == 2),
        "no token covering a mount: {requests:?}"
    );
}

#[test]
fn a_token_dead_on_arrival_is_renewed() {
    require_openssl();
    let (tokens, registry) = token_registry(TokenServerOptions::user(USER, PASSWORD));
    let fixtures = registry.push_fixtures();
    let scratch = Scratch::new();
    login(&scratch, &registry.host(), USER, PASSWORD);

    // The first token ferry gets is already expired, though the answer says
    // it lives 300 s: the registry answers 401 and ferry must ask again.
    tokens.reset_log();
    tokens.expire_next(1);
    let app = fixtures.image("fixtures/app:1");
    pack(&scratch, &registry.host(), &[app.reference.as_str()]).ok();
    assert_eq!(packed(&scratch).get(&app.reference), Some(&app.digest));
    let requests = tokens.requests();
    assert!(requests[0].expired, "{requests:?}");
    assert!(
        requests[1..]
            .iter()
            .any(|r| !r.expired && r.scopes == requests[0].scopes),
        "the dead token was not replaced: {requests:?}"
    );
}

#[test]
fn a_cached_token_refused_mid_run_is_renewed() {
    require_openssl();
    let (tokens, registry) = token_registry(TokenServerOptions::user(USER, PASSWORD));
    let proxy = FaultProxy::start(&registry);
    let fixtures = FixtureSet::generate(&proxy.host(), &FixtureOptions::default());
    fixtures.push(&registry.pusher());
    let scratch = Scratch::new();
    login(&scratch, &proxy.host(), USER, PASSWORD);

    // Once ferry holds a token and has fetched the manifest with it, the
    // registry refuses it for three blob requests, as when it expires.
    tokens.reset_log();
    proxy.inject(
        Fault::ExpireToken,
        Match::path_contains("/blobs/").method("GET"),
        3,
    );
    let app = fixtures.image("fixtures/app:1");
    pack(&scratch, &proxy.host(), &[app.reference.as_str()]).ok();
    assert_eq!(proxy.faults_applied(), 3);
    assert_eq!(packed(&scratch).get(&app.reference), Some(&app.digest));
    let renewals = tokens
        .requests()
        .iter()
        .filter(|r| r.scopes == ["repository:fixtures/app:pull"])
        .count();
    assert!(renewals >= 2, "the refused token was not renewed");
}

#[test]
fn tokens_that_never_work_end_in_a_clear_error() {
    require_openssl();
    let (tokens, registry) = token_registry(TokenServerOptions::user(USER, PASSWORD));
    let fixtures = registry.push_fixtures();
    let scratch = Scratch::new();
    login(&scratch, &registry.host(), USER, PASSWORD);

    tokens.reset_log();
    tokens.expire_next(usize::MAX);
    let app = fixtures.image("fixtures/app:1");
    let run = pack(&scratch, &registry.host(), &[app.reference.as_str()]).failed();
    assert!(
        run.stderr
            .contains(&format!("authentication failed for {}", registry.host())),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("rejects the tokens"), "{}", run.stderr);
    let asked = tokens.requests().len();
    assert!(
        (1..=4).contains(&asked),
        "ferry gives up after a bounded number of tokens, asked {asked}"
    );
}

#[test]
fn a_pull_only_account_cannot_unpack_and_is_told_so() {
    require_openssl();
    let mut source = RegistryProcess::start();
    let fixtures = source.push_fixtures();
    let scratch = Scratch::new();
    let app = fixtures.image("fixtures/app:1");
    pack(&scratch, &source.host(), &[app.reference.as_str()]).ok();
    source.stop();

    let (_tokens, target) = token_registry(TokenServerOptions {
        pull_only: vec![USER.to_string()],
        ..TokenServerOptions::user(USER, PASSWORD)
    });
    login(&scratch, &target.host(), USER, PASSWORD);
    let run = unpack(&scratch, &target.host(), &["--naming", "preserve"]).failed();
    let host = target.host();
    assert!(
        run.stderr
            .contains(&format!("authentication failed for {host}")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("may not pull,push on mirror/fixtures/app"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(PASSWORD), "{}", run.stderr);
    assert!(target.tags("mirror/fixtures/app").is_empty());
}

/// Issue 15: a platform release into a token registry asks the token
/// service once per repository and scope, not once per blob or manifest:
/// every distinct set of scopes is asked for at most once, the catalog's
/// once, and a repository costs at most three tokens (pull for the
/// presence checks, pull and push for the uploads, and one covering a
/// mount from another repository of the run).
#[test]
fn unpack_asks_for_a_token_once_per_repository_and_scope() {
    require_openssl();
    let mut source = RegistryProcess::start();
    let repos = 6;
    let workload = ferry_testkit::push_many_small_workload(&source.host(), repos, 3);
    let scratch = Scratch::new();
    pack(&scratch, &source.host(), &workload.references).ok();
    source.stop();

    let (tokens, target) = token_registry(TokenServerOptions::user(USER, PASSWORD));
    login(&scratch, &target.host(), USER, PASSWORD);
    let run = unpack(&scratch, &target.host(), &["--json"]).ok();
    let summary = run.json();
    assert_eq!(summary["failed"], 0, "{summary:#}");
    assert!(
        summary["blobs_mounted"].as_u64().unwrap() > 0,
        "{summary:#}"
    );
    let requests = tokens.requests();
    assert!(requests.iter().all(|r| r.status == 200), "{requests:#?}");
    let mut asked: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for request in &requests {
        *asked.entry(request.scopes.clone()).or_default() += 1;
    }
    let again: Vec<_> = asked.iter().filter(|(_, n)| **n > 1).collect();
    assert!(again.is_empty(), "asked more than once: {again:#?}");
    // The catalog, once (it tells that no repository is there yet).
    let catalog = ["registry:catalog:*".to_string()];
    assert_eq!(asked.get(&catalog[..]), Some(&1), "{requests:#?}");
    // Per target repository (the first scope of each request).
    let mut per_repo: BTreeMap<&str, usize> = BTreeMap::new();
    for request in requests.iter().filter(|r| r.scopes != catalog) {
        let first = request.scopes[0].as_str();
        let repo = first.trim_start_matches("repository:");
        let repo = repo.rsplit_once(':').map_or(repo, |(name, _)| name);
        *per_repo.entry(repo).or_default() += 1;
    }
    assert_eq!(per_repo.len(), repos, "{requests:#?}");
    assert!(per_repo.values().all(|n| *n <= 3), "{per_repo:#?}");
    let mapping = summary["mapping"].as_object().expect("a mapping");
    assert_eq!(mapping.len(), workload.references.len());
    for relocated in mapping.values() {
        let r = Reference::parse(relocated.as_str().unwrap()).unwrap();
        let found = target.manifest_digest(r.repository(), r.tag().unwrap());
        assert_eq!(found, r.digest().map(|d| d.to_string()), "{r}");
    }
}

/// A token service whose answer has no end (here 8 MiB of JSON whitespace
/// around a valid token) is cut off at 1 MiB with a message naming it,
/// rather than read into memory whole.
#[test]
fn a_token_answer_without_end_is_refused() {
    require_openssl();
    let (tokens, registry) = token_registry(TokenServerOptions::user(USER, PASSWORD));
    let fixtures = registry.push_fixtures();
    tokens.pad_answers(8 << 20);

    let scratch = Scratch::new();
    login(&scratch, &registry.host(), USER, PASSWORD);
    let run = pack(&scratch, &registry.host(), &fixtures.references()[..1]).failed();
    assert!(run.stderr.contains("token service"), "{}", run.stderr);
    assert!(run.stderr.contains("larger than 1 MiB"), "{}", run.stderr);
    assert!(!run.stderr.contains(PASSWORD));
    assert!(!scratch.path("bundle.tar").exists());
}
