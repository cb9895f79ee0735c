//! ferry against a registry that misbehaves: a [`FaultProxy`] sits between
//! `ferry` and a real `docker-registry` and answers errors, cuts bodies
//! short or stalls, on command.

mod util;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ferry_testkit::{
    Fault, FaultProxy, FixtureOptions, FixtureSet, Match, RegistryProcess, FOREVER,
};
use util::Scratch;

/// The big layer's size: large enough that a body cut in half is a real cut.
const BIG: u64 = 1024 * 1024 + 5;

/// A registry with the fixtures, and a proxy in front of it. References
/// name the proxy, so every request of ferry goes through it.
struct Source {
    proxy: FaultProxy,
    fixtures: FixtureSet,
    // Dropped after the proxy.
    _registry: RegistryProcess,
}

impl Source {
    fn start() -> Source {
        let registry = RegistryProcess::start();
        let proxy = FaultProxy::start(&registry);
        let fixtures = FixtureSet::generate(
            &proxy.host(),
            &FixtureOptions {
                big_layer_bytes: Some(BIG),
            },
        );
        fixtures.push(&registry.pusher());
        Source {
            proxy,
            fixtures,
            _registry: registry,
        }
    }

    /// The big layer's digest.
    fn big_layer(&self) -> String {
        self.fixtures.image("fixtures/big:1").blobs[1].clone()
    }

    fn pack(&self, scratch: &Scratch, out: &str, extra: &[&str]) -> util::Run {
        let mut args: Vec<String> = vec!["pack".into()];
        args.extend(self.fixtures.references());
        args.extend(["--plain-http".into(), self.proxy.host(), "-o".into()]);
        args.push(out.into());
        args.extend(extra.iter().map(|s| s.to_string()));
        scratch.ferry(args)
    }
}

/// Every name in the scratch dir, hidden ones too (but not `.docker`).
fn all_files(scratch: &Scratch) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(scratch.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".docker")
        .collect();
    names.sort();
    names
}

fn status(code: u16, retry_after: Option<u64>) -> Fault {
    Fault::Status { code, retry_after }
}

#[test]
fn transient_faults_are_retried_and_the_bundle_is_byte_identical() {
    let source = Source::start();
    let scratch = Scratch::new();
    source.pack(&scratch, "clean.tar", &["-q"]).ok();
    let clean = std::fs::read(scratch.path("clean.tar")).unwrap();

    let proxy = &source.proxy;
    proxy.reset_log();
    let big = format!("/blobs/{}", source.big_layer());
    proxy.inject(
        Fault::ResetMidBody,
        Match::path_contains(&big).method("GET"),
        2,
    );
    proxy.inject(
        status(503, Some(1)),
        Match::path_contains("/blobs/").method("GET"),
        2,
    );
    proxy.inject(status(503, None), Match::path_contains("/manifests/"), 1);
    proxy.inject(status(429, None), Match::path_contains("/manifests/"), 1);
    proxy.inject(status(500, None), Match::path_contains("/referrers/"), 1);
    proxy.inject(
        Fault::ResetMidBody,
        Match::path_contains("/manifests/").method("GET"),
        1,
    );
    let run = source.pack(&scratch, "faulty.tar", &["-q"]).ok();
    assert_eq!(proxy.faults_applied(), 8, "{:?}", proxy.log());
    assert!(
        proxy.count(&Match::path_contains(&big).method("GET")) >= 3,
        "the big layer was fetched again after each cut"
    );
    let faulty = std::fs::read(scratch.path("faulty.tar")).unwrap();
    assert!(faulty == clean, "a bundle packed through faults differs");
    assert!(run.stdout.is_empty());
}

#[test]
fn a_persistent_error_gives_up_after_bounded_tries_and_writes_nothing() {
    let source = Source::start();
    let scratch = Scratch::new();
    std::fs::write(scratch.path("bundle.tar"), b"a good bundle from before").unwrap();
    let big = format!("/blobs/{}", source.big_layer());
    source.proxy.inject(
        status(500, None),
        Match::path_contains(&big).method("GET"),
        FOREVER,
    );
    let run = source
        .pack(&scratch, "bundle.tar", &["--retries", "3"])
        .failed();
    assert!(
        run.stderr.contains("answered 500"),
        "the message names the status: {}",
        run.stderr
    );
    assert!(run.stderr.contains(&source.big_layer()), "{}", run.stderr);
    assert!(
        run.stderr.contains("nothing was written at bundle.tar")
            && run.stderr.contains("kept in bundle.tar.partial"),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("wrote"), "{}", run.stdout);
    // Exactly the tries asked for, not tries times tries.
    assert_eq!(
        source
            .proxy
            .count(&Match::path_contains(&big).method("GET")),
        3
    );
    assert_eq!(
        std::fs::read(scratch.path("bundle.tar")).unwrap(),
        b"a good bundle from before"
    );
    // The work so far is kept beside it, for the next run to resume.
    assert_eq!(
        all_files(&scratch),
        ["bundle.tar", "bundle.tar.partial", "bundle.tar.resume.json"]
    );
}

#[test]
fn a_body_cut_on_every_try_is_never_reported_as_success() {
    let source = Source::start();
    let scratch = Scratch::new();
    let big = format!("/blobs/{}", source.big_layer());
    source.proxy.inject(
        Fault::ResetMidBody,
        Match::path_contains(&big).method("GET"),
        FOREVER,
    );
    let run = source
        .pack(&scratch, "bundle.tar", &["--retries", "2"])
        .failed();
    assert!(run.stderr.contains(&source.big_layer()), "{}", run.stderr);
    assert_eq!(
        all_files(&scratch),
        ["bundle.tar.partial", "bundle.tar.resume.json"]
    );
}

#[test]
fn a_blob_served_damaged_is_fetched_again_and_one_always_damaged_is_refused() {
    let source = Source::start();
    let scratch = Scratch::new();
    let clean = clean_bundle(&source, &scratch);
    let big = format!("/blobs/{}", source.big_layer());
    let gets = || {
        source
            .proxy
            .count(&Match::path_contains(&big).method("GET"))
    };

    // Damaged once (one byte flipped, the length right): found out,
    // fetched again, and the bundle is the clean one.
    source.proxy.reset_log();
    source
        .proxy
        .inject(Fault::FlipByte, Match::path_contains(&big).method("GET"), 1);
    let run = source.pack(&scratch, "again.tar", &[]).ok();
    assert!(
        run.stderr.contains(&source.big_layer())
            && run
                .stderr
                .contains("does not match its digest: fetching it again"),
        "{}",
        run.stderr
    );
    assert_eq!(gets(), 2);
    assert!(std::fs::read(scratch.path("again.tar")).unwrap() == std::fs::read(&clean).unwrap());

    // Damaged every time: refused, naming the blob, after one more try;
    // nothing at the name asked for.
    source.proxy.reset_log();
    source.proxy.inject(
        Fault::FlipByte,
        Match::path_contains(&big).method("GET"),
        FOREVER,
    );
    let run = source.pack(&scratch, "bad.tar", &[]).failed();
    assert!(
        run.stderr
            .contains(&format!("blob {} arrived with digest", source.big_layer()))
            && run.stderr.contains("the registry served corrupt content"),
        "{}",
        run.stderr
    );
    assert_eq!(gets(), 2);
    assert!(!scratch.path("bad.tar").exists());
    assert!(!scratch.path("bad.tar.sha256").exists());
}

#[test]
fn a_stalled_registry_times_out_instead_of_hanging() {
    let source = Source::start();
    let scratch = Scratch::new();
    let big = format!("/blobs/{}", source.big_layer());
    // Silent before answering, then silent in the middle of the body. The
    // stalls end on their own, so a ferry that ignored --timeout would
    // still finish, with another message.
    source.proxy.inject(
        Fault::Stall(Duration::from_secs(60)),
        Match::path_contains(&big).method("GET"),
        1,
    );
    source.proxy.inject(
        Fault::StallMidBody(Duration::from_secs(60)),
        Match::path_contains(&big).method("GET"),
        FOREVER,
    );
    let run = source
        .pack(
            &scratch,
            "bundle.tar",
            &["--retries", "2", "--timeout", "1"],
        )
        .failed();
    assert!(run.stderr.contains("timed out"), "{}", run.stderr);
    assert!(run.stderr.contains("--timeout"), "{}", run.stderr);
    assert_eq!(
        all_files(&scratch),
        ["bundle.tar.partial", "bundle.tar.resume.json"]
    );
}

/// A bundle of every fixture, packed straight from the source (no faults).
fn clean_bundle(source: &Source, scratch: &Scratch) -> String {
    source.pack(scratch, "bundle.tar", &["-q"]).ok();
    scratch.path("bundle.tar").to_string_lossy().into_owned()
}

/// The fixtures packed into `bundle.tar` in a fresh scratch directory,
/// and a target registry behind its own proxy: how most unpack tests start.
fn packed_and_target() -> (Source, Scratch, String, RegistryProcess, FaultProxy) {
    let source = Source::start();
    let scratch = Scratch::new();
    let bundle = clean_bundle(&source, &scratch);
    let (registry, proxy) = target();
    (source, scratch, bundle, registry, proxy)
}

/// A target registry behind its own proxy.
fn target() -> (RegistryProcess, FaultProxy) {
    let registry = RegistryProcess::start();
    let proxy = FaultProxy::start(&registry);
    (registry, proxy)
}

fn unpack(scratch: &Scratch, bundle: &str, proxy: &FaultProxy) -> util::Run {
    scratch.ferry(unpack_args(bundle, proxy))
}

/// `ferry unpack BUNDLE` into `mirror/` behind `proxy`, with `--json`.
fn unpack_args(bundle: &str, proxy: &FaultProxy) -> Vec<String> {
    let to = format!("{}/mirror", proxy.host());
    let args = ["unpack", bundle, "--to", &to, "--plain-http", &proxy.host()];
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.extend(["--json", "--retries", "3"].map(String::from));
    args
}

/// Every mapping entry of `run` (there is at least one) is served by the
/// registry itself: its relocated tag points at its digest.
fn assert_tags_served(registry: &RegistryProcess, run: &util::Run) {
    let summary = run.json();
    let mapping = summary["mapping"].as_object().expect("a mapping");
    assert!(!mapping.is_empty(), "{summary:#}");
    for relocated in mapping.values() {
        let r = ferry_oci::Reference::parse(relocated.as_str().unwrap()).unwrap();
        let found = registry.manifest_digest(r.repository(), r.tag().unwrap());
        let pinned = r.digest().expect("a mapping value is pinned by digest");
        assert_eq!(found, Some(pinned.to_string()), "{r}");
    }
}

#[test]
fn unpack_survives_transient_faults() {
    let (_source, scratch, bundle, registry, proxy) = packed_and_target();
    let uploads = Match::path_contains("/blobs/uploads/");
    proxy.inject(Fault::ResetMidBody, uploads.clone().method("PUT"), 2);
    proxy.inject(status(503, Some(1)), uploads.clone().method("PUT"), 1);
    proxy.inject(status(500, None), uploads.method("POST"), 2);
    proxy.inject(
        status(429, None),
        Match::path_contains("/blobs/").method("HEAD"),
        2,
    );
    proxy.inject(
        status(502, None),
        Match::path_contains("/manifests/").method("PUT"),
        2,
    );
    let run = unpack(&scratch, &bundle, &proxy).ok();
    assert_eq!(proxy.faults_applied(), 9, "{:?}", proxy.log());
    assert_eq!(run.json()["failed"], 0);
    assert_tags_served(&registry, &run);
}

#[test]
fn an_unpack_stopped_by_a_persistent_fault_completes_when_run_again() {
    let (source, scratch, bundle, registry, proxy) = packed_and_target();
    // Every upload into the big image's repository fails, for good.
    proxy.inject(
        status(500, None),
        Match::path_contains("fixtures-big").method("POST"),
        FOREVER,
    );
    let run = unpack(&scratch, &bundle, &proxy).failed();
    assert!(proxy.faults_applied() > 0);
    assert!(run.stderr.contains("answered 500"), "{}", run.stderr);
    let big = source.fixtures.image("fixtures/big:1");
    // Exactly the tries asked for (--retries 3) per blob, not tries times tries.
    let posts = proxy.count(&Match::path_contains("fixtures-big").method("POST"));
    assert_eq!(posts, 3 * big.blobs.len(), "{:?}", proxy.log());
    let summary = run.json();
    let images = summary["images"].as_array().unwrap();
    // Only the big image failed, and it has no tag: no tag points at
    // content that is not all there.
    let failed: Vec<&str> = images
        .iter()
        .filter(|i| !i["error"].is_null())
        .map(|i| i["original"].as_str().unwrap())
        .collect();
    assert_eq!(failed, [big.reference.as_str()]);
    for repo in registry.catalog() {
        for tag in registry.tags(&repo) {
            assert!(
                !repo.contains("fixtures-big"),
                "{repo}:{tag} was tagged although its content failed"
            );
        }
    }

    // The registry recovers; the same command finishes the job.
    proxy.clear();
    let run = unpack(&scratch, &bundle, &proxy).ok();
    assert_eq!(run.json()["failed"], 0);
    assert_tags_served(&registry, &run);
}

/// Issue 15: a repository the target has no tag in is taken to be empty,
/// so a run stopped after its blobs but before its first tag sends the
/// small ones again. A blob over 1 MiB is still asked for first, so the
/// run that finishes the job does not send it twice.
#[test]
fn a_run_stopped_before_its_first_tag_does_not_send_a_big_blob_again() {
    let (source, scratch, bundle, registry, proxy) = packed_and_target();
    let mut dry_run = unpack_args(&bundle, &proxy);
    dry_run.push("--dry-run".into());
    let plan = scratch.ferry(dry_run).ok().json();
    let original = &source.fixtures.image("fixtures/big:1").reference;
    let images = plan["images"].as_array().unwrap();
    let big = images.iter().find(|i| i["original"] == original.as_str());
    let big = ferry_oci::Reference::parse(big.unwrap()["relocated"].as_str().unwrap()).unwrap();
    let big_repo = big.repository().to_string();
    let big_manifests = Match::path_contains(&format!("{big_repo}/manifests/")).method("PUT");
    proxy.inject(status(500, None), big_manifests, FOREVER);
    unpack(&scratch, &bundle, &proxy).failed();
    let layer = source.big_layer();
    let hex = layer.split_once(':').unwrap().1;
    let big_put = || {
        Match::path_contains(&format!("{big_repo}/blobs/uploads/"))
            .method("PUT")
            .query_contains(hex)
    };
    assert_eq!(proxy.count(&big_put()), 1, "{:#?}", proxy.log());
    assert!(registry.catalog().contains(&big_repo), "the blobs went in");
    assert!(registry.tags(&big_repo).is_empty());

    proxy.clear();
    proxy.reset_log();
    let run = unpack(&scratch, &bundle, &proxy).ok();
    assert_eq!(run.json()["failed"], 0);
    assert_eq!(proxy.count(&big_put()), 0, "{:#?}", proxy.log());
    let asked = Match::path_contains(&format!("{big_repo}/blobs/{layer}")).method("HEAD");
    assert_eq!(proxy.count(&asked), 1, "{:#?}", proxy.log());
    assert_tags_served(&registry, &run);
}

/// Issue 15: a repeat unpack finds each image by its tag (the catalog once,
/// one HEAD per tag, which already points at the image's digest) and each
/// referrer by
/// its digest: nothing below them is looked at — no blob request at all,
/// no second HEAD for a tagged image.
#[test]
fn a_repeat_unpack_checks_top_manifests_only() {
    let (_source, scratch, bundle, registry, proxy) = packed_and_target();
    let first = unpack(&scratch, &bundle, &proxy).ok();
    assert!(proxy.count(&Match::path_contains("/blobs/")) > 0);
    proxy.reset_log();
    let again = unpack(&scratch, &bundle, &proxy).ok();
    let log = proxy.log();
    let summary = again.json();
    let images = summary["images"].as_array().unwrap().len();
    let referrers = summary["referrers"].as_array().unwrap().len();
    assert_eq!(summary["blobs_uploaded"], 0);
    assert_eq!(proxy.count(&Match::path_contains("/blobs/")), 0, "{log:#?}");
    let heads = proxy.count(&Match::path_contains("/manifests/").method("HEAD"));
    let tags = images; // every fixture reference has a tag
    assert_eq!(heads, tags + referrers, "{log:#?}");
    // Besides: the catalog, once, and the referrers tag schema index of
    // each subject with unnamed referrers (referrers API, then its tag);
    // nothing else.
    let gets = |log: &[ferry_testkit::proxy::Seen], needle: &str| {
        let on = |s: &&ferry_testkit::proxy::Seen| s.method == "GET" && s.path.contains(needle);
        log.iter().filter(on).count()
    };
    assert_eq!(gets(&log, "/_catalog"), 1, "{log:#?}");
    assert_eq!(gets(&log, "/tags/list"), 0, "{log:#?}");
    let others: Vec<_> = log
        .iter()
        .filter(|s| s.method != "HEAD" && !s.path.contains("/_catalog"))
        .collect();
    assert!(
        others.iter().all(|s| s.method == "GET"
            && (s.path.contains("/referrers/") || s.path.contains("/manifests/sha256-"))),
        "{others:#?}"
    );
    assert!(others.len() <= 2 * referrers, "{others:#?}");

    // A registry that will not give its catalog: each repository's tags
    // are listed instead, and still only the top manifests are asked for.
    proxy.inject(
        status(404, None),
        Match::path_contains("/_catalog"),
        FOREVER,
    );
    proxy.reset_log();
    unpack(&scratch, &bundle, &proxy).ok();
    let log = proxy.log();
    let repositories: HashSet<&str> = summary["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let relocated = i["relocated"].as_str().unwrap();
            let named = relocated.split_once('@').map_or(relocated, |(n, _)| n);
            named.rsplit_once(':').unwrap().0
        })
        .collect();
    assert_eq!(gets(&log, "/tags/list"), repositories.len(), "{log:#?}");
    let heads = proxy.count(&Match::path_contains("/manifests/").method("HEAD"));
    assert_eq!(heads, tags + referrers, "{log:#?}");
    assert_eq!(proxy.count(&Match::path_contains("/blobs/")), 0, "{log:#?}");
    assert_eq!(first.json()["mapping"], summary["mapping"]);
    drop(registry);
}

/// One retry policy (issue 14): a manifest whose body is cut, then whose
/// request fails, counts both against the same `--retries`, rather than
/// retrying the request again inside each retry of the body.
#[test]
fn a_manifest_cut_then_refused_is_tried_exactly_the_tries_asked_for() {
    let source = Source::start();
    let scratch = Scratch::new();
    let manifest = Match::path_contains("/fixtures/base/manifests/1").method("GET");
    source
        .proxy
        .inject(Fault::ResetMidBody, manifest.clone(), 1);
    source
        .proxy
        .inject(status(503, None), manifest.clone(), FOREVER);
    let run = source
        .pack(&scratch, "bundle.tar", &["--retries", "3"])
        .failed();
    assert!(run.stderr.contains("answered 503"), "{}", run.stderr);
    assert_eq!(source.proxy.count(&manifest), 3);
    assert!(!scratch.path("bundle.tar").exists());
}

/// Issue 15: a platform release names many tags of each repository. Pack
/// lists a repository's tags once for the run, not once per reference, and
/// asks the referrers API once per repository when the registry answers
/// that it has none (docker-registry 2.8: `404`), not once per manifest.
#[test]
fn pack_lists_each_repositorys_tags_once_per_run() {
    let registry = RegistryProcess::start();
    let proxy = FaultProxy::start(&registry);
    // Five repositories of four tags; the fourth is made of indexes.
    let workload = ferry_testkit::push_many_small_workload(&proxy.host(), 5, 4);
    assert_eq!(workload.references.len(), 20);
    let r4_t1 = format!("{}/small/r-4:t1", proxy.host());
    let digest = registry
        .manifest_digest("small/r-4", "t1")
        .expect("the index is tagged");
    proxy.reset_log();

    let scratch = Scratch::new();
    let mut args: Vec<String> = vec!["pack".into()];
    args.extend(workload.references.iter().cloned());
    assert!(workload.references.contains(&r4_t1));
    args.push(format!("{}/small/r-4@{digest}", proxy.host()));
    args.extend(["--plain-http".into(), proxy.host(), "-o".into()]);
    args.extend(["small.tar".into(), "--json".into()]);
    let run = scratch.ferry(args).ok();
    assert_eq!(run.json()["images"].as_array().unwrap().len(), 21);
    let log = proxy.log();
    for r in 1..=5 {
        let lists = proxy.count(&Match::path_contains(&format!("/v2/small/r-{r}/tags/list")));
        assert_eq!(lists, 1, "small/r-{r}: {log:#?}");
    }
    // 5 × 4 tags, 4 of them indexes of two: 28 subjects, in 5 repositories
    // of a registry without the API.
    let asked = proxy.count(&Match::path_contains("/referrers/"));
    assert_eq!(asked, 5, "{log:#?}");
}

/// Requests of one unpack, by kind, as the proxy saw them.
struct Sent {
    blob_heads: usize,
    posts: usize,
    puts: usize,
    /// `POST`s offering the whole blob (`?digest=`).
    whole: usize,
    /// Manifest requests: (method, by digest).
    manifests: HashMap<(String, bool), usize>,
    tag_lists: usize,
    catalogs: usize,
    log: Vec<ferry_testkit::proxy::Seen>,
}

impl Sent {
    fn of(proxy: &FaultProxy) -> Sent {
        let log = proxy.log();
        let count = |m: Match| proxy.count(&m);
        let mut manifests = HashMap::new();
        for s in log.iter().filter(|s| s.path.contains("/manifests/")) {
            let by_digest = s.path.contains("/manifests/sha256:");
            *manifests.entry((s.method.clone(), by_digest)).or_default() += 1;
        }
        let uploads = || Match::path_contains("/blobs/uploads/");
        Sent {
            blob_heads: count(Match::path_contains("/blobs/").method("HEAD")),
            posts: count(uploads().method("POST")),
            puts: count(uploads().method("PUT")),
            whole: count(uploads().method("POST").query_contains("digest=")),
            manifests,
            tag_lists: count(Match::path_contains("/tags/list").method("GET")),
            catalogs: count(Match::path_contains("/_catalog").method("GET")),
            log,
        }
    }

    /// The digest each blob upload by `method` names (`?digest=`): the
    /// `POST`s offering a whole blob, the `PUT`s that complete a session.
    fn digests(&self, method: &str) -> Vec<String> {
        let uploads = Match::path_contains("/blobs/uploads/").method(method);
        let named = |s: &&ferry_testkit::proxy::Seen| uploads.matches(&s.method, &s.path);
        let digest = |s: &ferry_testkit::proxy::Seen| {
            let (_, query) = s.path.split_once('?')?;
            let digest = query.split('&').find_map(|kv| kv.strip_prefix("digest="));
            digest.map(String::from)
        };
        self.log.iter().filter(named).filter_map(digest).collect()
    }

    fn manifests(&self, method: &str, by_digest: bool) -> usize {
        let key = (method.to_string(), by_digest);
        self.manifests.get(&key).copied().unwrap_or(0)
    }

    /// Check that every mount's `from` names a repository this run put the
    /// blob in (by `PUT`, or a single request the registry took), or
    /// mounted it into, before; the number of mounts.
    fn mounts_from_this_run(&self) -> usize {
        let mut holders: HashMap<String, HashSet<String>> = HashMap::new();
        let mut mounts = 0;
        for seen in &self.log {
            let path = seen.path.trim_start_matches("/v2/");
            let Some((repo, rest)) = path.split_once("/blobs/") else {
                continue;
            };
            let query: HashMap<&str, &str> = rest
                .split_once('?')
                .map(|(_, q)| q.split('&').filter_map(|kv| kv.split_once('=')).collect())
                .unwrap_or_default();
            let (method, digest, mount) = (
                seen.method.as_str(),
                query.get("digest"),
                query.get("mount"),
            );
            // A single-request upload the registry took stores it as well.
            let stores = method == "PUT"
                || (method == "POST" && seen.fault == Some(Fault::TakeSingleRequestUpload));
            match (method, digest, mount) {
                (_, Some(digest), None) if stores => {
                    holders
                        .entry(digest.to_string())
                        .or_default()
                        .insert(repo.into());
                }
                ("POST", _, Some(digest)) => {
                    let from = query["from"];
                    let held = holders.get(*digest).is_some_and(|h| h.contains(from));
                    assert!(held, "mount of {digest} from {from}, not put there");
                    holders
                        .entry(digest.to_string())
                        .or_default()
                        .insert(repo.into());
                    mounts += 1;
                }
                _ => {}
            }
        }
        mounts
    }
}

/// Issue 15: requests per new blob, manifest and tag.
///
/// Into repositories the target does not hold (a first unpack), nothing is
/// asked before it is sent: the catalog once, two requests per
/// new small blob (POST + PUT, or one mount), one `PUT` per manifest, and
/// a top manifest is put under its tag (one request for both).
///
/// Into repositories that have tags (the next release), each blob is asked
/// for first: HEAD, POST, PUT at most; each new manifest is asked for once
/// (a top manifest by the repository's top-down check); each tag is looked
/// up once.
///
/// Both times ferry offers one small blob whole in its POST (`?digest=`)
/// to learn whether the registry takes single-request uploads;
/// docker-registry 2.8 opens a session instead (202), that blob is PUT
/// into it, and every other blob goes by POST + PUT. A mount always names
/// a repository this run put the blob in (never a guess).
#[test]
fn unpack_sends_two_requests_per_new_small_blob_and_three_at_most() {
    requests_per_new_blob(false);
}

/// Issue 15: as [`unpack_sends_two_requests_per_new_small_blob_and_three_at_most`],
/// into a registry that takes single-request uploads (the fault proxy's
/// [`Fault::TakeSingleRequestUpload`]), one upload at a time: every new
/// small blob is its one POST, asked for first (HEAD) only into
/// repositories that have tags; no session, no PUT.
#[test]
fn unpack_sends_one_request_per_new_small_blob_and_two_at_most_where_single_requests_are_taken() {
    requests_per_new_blob(true);
}

/// The requests of two unpacks, a first release then the next, counted by
/// kind; `taken`: through a proxy that takes single-request uploads.
fn requests_per_new_blob(taken: bool) {
    let source = RegistryProcess::start();
    let repositories = 8;
    let workload = ferry_testkit::push_many_small_workload(&source.host(), repositories, 2);
    let scratch = Scratch::new();
    let pack = |out: &str, references: &[&String]| {
        let mut args: Vec<String> = vec!["pack".into()];
        args.extend(references.iter().map(|r| r.to_string()));
        args.extend(["--plain-http".into(), source.host(), "-o".into()]);
        args.extend([out.into(), "-q".into()]);
        scratch.ferry(args).ok();
        scratch.path(out).to_string_lossy().into_owned()
    };
    let first_tags: Vec<&String> = workload
        .references
        .iter()
        .filter(|r| r.ends_with(":t1"))
        .collect();
    assert_eq!(first_tags.len(), repositories);
    let release_1 = pack("release-1.tar", &first_tags);
    let release_2 = pack(
        "release-2.tar",
        &workload.references.iter().collect::<Vec<_>>(),
    );
    let (registry, proxy) = target();
    if taken {
        proxy.inject(Fault::TakeSingleRequestUpload, single_requests(), FOREVER);
    }
    let unpack_release = |bundle: &str| match taken {
        true => unpack_one_at_a_time(&scratch, bundle, &proxy).ok(),
        false => unpack(&scratch, bundle, &proxy).ok(),
    };
    // Small blobs offered whole, and PUT into sessions, by `uploaded`.
    let whole_and_put = |uploaded| if taken { (uploaded, 0) } else { (1, uploaded) };

    let run = unpack_release(&release_1);
    let sent = Sent::of(&proxy);
    let s = run.json();
    let n = |key: &str| usize::try_from(s[key].as_u64().unwrap()).unwrap();
    let (uploaded, mounted) = (n("blobs_uploaded"), n("blobs_mounted"));
    assert!(uploaded > 1 && mounted > 0, "{s:#}");
    assert_eq!((n("failed"), n("blobs_present")), (0, 0), "{s:#}");
    let log = &sent.log;
    assert_eq!(sent.blob_heads, 0, "{log:#?}");
    assert_eq!(sent.posts, uploaded + mounted, "{log:#?}");
    assert_eq!((sent.whole, sent.puts), whole_and_put(uploaded), "{log:#?}");
    assert_eq!(sent.mounts_from_this_run(), mounted);
    assert_eq!((sent.catalogs, sent.tag_lists), (1, 0), "{log:#?}");
    let (pushed, tagged) = (n("manifests_pushed"), n("tags_set"));
    assert_eq!(tagged, repositories);
    assert_eq!(sent.manifests("HEAD", true), 0, "{log:#?}");
    assert_eq!(sent.manifests("HEAD", false), 0, "{log:#?}");
    assert_eq!(sent.manifests("PUT", true), pushed - tagged, "{log:#?}");
    assert_eq!(sent.manifests("PUT", false), tagged, "{log:#?}");
    assert_eq!(
        sent.log.len(),
        sent.catalogs + sent.posts + sent.puts + pushed
    );
    assert_tags_served(&registry, &run);

    proxy.reset_log();
    let run = unpack_release(&release_2);
    let sent = Sent::of(&proxy);
    let s = run.json();
    let n = |key: &str| usize::try_from(s[key].as_u64().unwrap()).unwrap();
    let (uploaded, mounted) = (n("blobs_uploaded"), n("blobs_mounted"));
    assert!(uploaded > 1 && n("blobs_present") > 0, "{s:#}");
    assert_eq!(n("failed"), 0);
    let log = &sent.log;
    assert_eq!(
        sent.blob_heads,
        uploaded + mounted + n("blobs_present"),
        "{log:#?}"
    );
    assert_eq!(sent.posts, uploaded + mounted, "{log:#?}");
    assert_eq!((sent.whole, sent.puts), whole_and_put(uploaded), "{log:#?}");
    assert_eq!(sent.mounts_from_this_run(), mounted);
    assert_eq!((sent.catalogs, sent.tag_lists), (1, 0), "{log:#?}");
    let (pushed, tagged) = (n("manifests_pushed"), n("tags_set"));
    // The second tag of each repository is new; the first is unchanged.
    assert_eq!((tagged, n("tags_unchanged")), (repositories, repositories));
    assert_eq!(sent.manifests("HEAD", true), pushed, "{log:#?}");
    assert_eq!(sent.manifests("PUT", true), pushed - tagged, "{log:#?}");
    // Each tag is asked for once: the catalog lists every repository now.
    assert_eq!(sent.manifests("HEAD", false), 2 * repositories, "{log:#?}");
    assert_eq!(sent.manifests("PUT", false), tagged, "{log:#?}");
    assert_tags_served(&registry, &run);
}

/// The `POST`s that offer a whole blob (`?digest=`).
fn single_requests() -> Match {
    Match::path_contains("/blobs/uploads/")
        .method("POST")
        .query_contains("digest=")
}

/// `ferry unpack BUNDLE` behind `proxy` (see [`unpack_args`]) one upload at
/// a time, so the registry's answer to the first single request is known
/// before the next blob goes.
fn unpack_one_at_a_time(scratch: &Scratch, bundle: &str, proxy: &FaultProxy) -> util::Run {
    let mut args = unpack_args(bundle, proxy);
    args.extend(["--jobs", "1"].map(String::from));
    scratch.ferry(args)
}

/// Issue 15: where the registry takes single-request uploads (the proxy
/// does them on docker-registry's behalf, as a registry that honours the
/// spec's would), each new small blob costs one request, the `POST` that
/// carries it. The first `201` is kept for the run: no later small blob
/// opens a session or is `PUT`. A blob over 1 MiB is still asked for, then
/// goes by `POST` + `PUT`; blobs another repository got are still mounted.
#[test]
fn unpack_sends_one_request_per_new_small_blob_where_the_registry_takes_it() {
    let (source, scratch, bundle, registry, proxy) = packed_and_target();
    proxy.inject(Fault::TakeSingleRequestUpload, single_requests(), FOREVER);
    let run = unpack_one_at_a_time(&scratch, &bundle, &proxy).ok();
    let sent = Sent::of(&proxy);
    let log = &sent.log;
    let s = run.json();
    let n = |key: &str| usize::try_from(s[key].as_u64().unwrap()).unwrap();
    let (uploaded, mounted) = (n("blobs_uploaded"), n("blobs_mounted"));
    assert_eq!((n("failed"), n("blobs_present")), (0, 0), "{s:#}");
    assert!(uploaded > 5 && mounted > 0, "{s:#}");
    let big = source.big_layer();
    // The big blob: HEAD, POST, PUT.
    assert_eq!(sent.digests("PUT"), [big.as_str()], "{log:#?}");
    assert_eq!(sent.blob_heads, 1, "{log:#?}");
    let asked = Match::path_contains(&format!("/blobs/{big}")).method("HEAD");
    assert_eq!(proxy.count(&asked), 1, "{log:#?}");
    // Every other new blob: the one POST that carries it.
    let whole = sent.digests("POST");
    let distinct: HashSet<&String> = whole.iter().collect();
    assert_eq!(whole.len(), uploaded - 1, "{log:#?}");
    assert_eq!(distinct.len(), uploaded - 1, "{log:#?}");
    assert!(!whole.contains(&big));
    // Besides them: the big blob's session, and the mounts.
    assert_eq!(sent.posts, whole.len() + 1 + mounted, "{log:#?}");
    assert_eq!(sent.mounts_from_this_run(), mounted);
    let blob_requests = proxy.count(&Match::path_contains("/blobs/"));
    assert_eq!(blob_requests, (uploaded - 1) + 3 + mounted, "{log:#?}");
    assert_tags_served(&registry, &run);
}

/// Issue 15: a registry that took single-request uploads, then fails one
/// (`400`, as for a digest it finds wrong) and then another (`500`). The
/// refused blob goes again by `POST` + `PUT`; the failed request is tried
/// again as it was; every later small blob still goes in one request: one
/// blob's error does not make ferry take the registry for one that
/// refuses the form. Every tag is served at its digest.
#[test]
fn a_single_request_refused_after_the_registry_took_one_costs_that_blob_only() {
    let (source, scratch, bundle, registry, proxy) = packed_and_target();
    proxy.inject(Fault::TakeSingleRequestUpload, single_requests(), 1);
    proxy.inject(status(400, None), single_requests(), 1);
    proxy.inject(status(500, None), single_requests(), 1);
    proxy.inject(Fault::TakeSingleRequestUpload, single_requests(), FOREVER);
    let run = unpack_one_at_a_time(&scratch, &bundle, &proxy).ok();
    let sent = Sent::of(&proxy);
    let log = &sent.log;
    let s = run.json();
    let n = |key: &str| usize::try_from(s[key].as_u64().unwrap()).unwrap();
    let (uploaded, mounted) = (n("blobs_uploaded"), n("blobs_mounted"));
    assert_eq!(n("failed"), 0, "{s:#}");
    let faulted = |code: u16| -> Vec<String> {
        let by = |seen: &&ferry_testkit::proxy::Seen| seen.fault == Some(status(code, None));
        let path = |seen: &ferry_testkit::proxy::Seen| seen.path.clone();
        log.iter().filter(by).map(path).collect()
    };
    let (refused, failed) = (faulted(400), faulted(500));
    assert_eq!((refused.len(), failed.len()), (1, 1), "{log:#?}");
    let digest_of = |path: &str| path.split_once("?digest=").unwrap().1.to_string();
    let (refused, failed) = (digest_of(&refused[0]), digest_of(&failed[0]));
    let big = source.big_layer();
    // The refused blob and the big one went into sessions; no other blob.
    let mut put = sent.digests("PUT");
    put.sort();
    let mut expected = vec![refused.clone(), big.clone()];
    expected.sort();
    assert_eq!(put, expected, "{log:#?}");
    // Each small blob was offered whole once; the failed one twice.
    let whole = sent.digests("POST");
    for digest in whole.iter().collect::<HashSet<_>>() {
        let times = whole.iter().filter(|d| *d == digest).count();
        let expected = if *digest == failed { 2 } else { 1 };
        assert_eq!(times, expected, "{digest}: {log:#?}");
    }
    assert_eq!(whole.len(), (uploaded - 1) + 1, "{log:#?}");
    assert_eq!(sent.posts, whole.len() + 2 + mounted, "{log:#?}");
    let blob_requests = proxy.count(&Match::path_contains("/blobs/"));
    assert_eq!(blob_requests, (uploaded - 1) + 3 + mounted + 3, "{log:#?}");
    assert_tags_served(&registry, &run);
}

/// Issue 15: a registry that takes single requests, but fails one blob's
/// for good (`500`). That request is tried exactly the tries asked for (one
/// retry policy, not tries times tries) and never goes into a session; the
/// image that needs the blob fails and gets no tag, every other image is
/// served at its digest; once the registry recovers, the same command
/// finishes the job. One upload at a time: with more, the blob may go by
/// `POST` + `PUT` while another upload asks the registry, and never meet
/// the fault.
#[test]
fn a_single_request_failing_for_good_fails_its_image_only() {
    let (source, scratch, bundle, registry, proxy) = packed_and_target();
    let chart = source.fixtures.image("fixtures/chart:0.1.0");
    let layer = chart.blobs.last().unwrap();
    let doomed = single_requests().query_contains(&format!("digest={layer}"));
    proxy.inject(status(500, None), doomed.clone(), FOREVER);
    proxy.inject(Fault::TakeSingleRequestUpload, single_requests(), FOREVER);
    let run = unpack_one_at_a_time(&scratch, &bundle, &proxy).failed();
    let log = proxy.log();
    assert!(run.stderr.contains("answered 500"), "{}", run.stderr);
    assert!(run.stderr.contains(layer.as_str()), "{}", run.stderr);
    assert_eq!(proxy.count(&doomed), 3, "{log:#?}");
    assert!(!Sent::of(&proxy).digests("PUT").contains(layer), "{log:#?}");
    let summary = run.json();
    let failed: Vec<&str> = summary["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| !i["error"].is_null())
        .map(|i| i["original"].as_str().unwrap())
        .collect();
    assert_eq!(failed, [chart.reference.as_str()]);
    for repo in registry.catalog() {
        let tags = registry.tags(&repo);
        assert!(
            !repo.contains("fixtures-chart") || tags.is_empty(),
            "{repo}: {tags:?} although its content failed"
        );
    }
    assert_tags_served(&registry, &run);

    proxy.clear();
    let run = unpack(&scratch, &bundle, &proxy).ok();
    assert_eq!(run.json()["failed"], 0);
    assert_tags_served(&registry, &run);
}
