//! `ferry images`, `ferry mapping` and `ferry rewrite` (issue 12): the real
//! binary on the corpus in fixtures/deploy, hostile inputs, and the whole
//! path `images -> pack -> unpack -> rewrite` against real docker-registry.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_oci::Reference;
use ferry_testkit::RegistryProcess;
use util::Scratch;

/// The placeholder the corpus uses for the source registry.
const PLACEHOLDER: &str = "registry.example:5000";

fn corpus(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/deploy")
        .join(sub)
}

/// Copy `from` (a directory) to `to`, replacing the placeholder host.
fn copy_tree(from: &Path, to: &Path, host: &str) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_tree(&entry.path(), &dest, host);
        } else {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            std::fs::write(dest, text.replace(PLACEHOLDER, host)).unwrap();
        }
    }
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                todo.push(e.path());
            } else if t.is_file() {
                out.insert(
                    e.path().strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(e.path()).unwrap(),
                );
            }
        }
    }
    out
}

const SITE_IMAGES: [&str; 5] = [
    "registry.example:5000/fixtures/app:1",
    "registry.example:5000/fixtures/base:1",
    "registry.example:5000/fixtures/docker:1",
    "registry.example:5000/fixtures/dockerlist:1",
    "registry.example:5000/fixtures/multi:1",
];

#[test]
fn images_finds_every_pod_template_values_shape_kustomization_and_compose() {
    let s = Scratch::new();
    let run = s
        .ferry(["images".as_ref(), corpus("site").as_os_str()])
        .ok();
    assert_eq!(run.stdout.lines().collect::<Vec<_>>(), SITE_IMAGES);
    let run = s
        .ferry([
            "images".as_ref(),
            "--json".as_ref(),
            corpus("site").as_os_str(),
        ])
        .ok();
    let doc = run.json();
    assert_eq!(doc["files"], 7);
    let found: BTreeSet<String> = doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| {
            let r = i["reference"].as_str().unwrap().to_string();
            i["found"].as_array().unwrap().iter().map(move |f| {
                let f = f.as_str().unwrap();
                format!("{}|{r}", &f[f.find("site/").unwrap() + 5..])
            })
        })
        .collect();
    for want in [
        // initContainers, containers (double, plain, single quotes)
        "deployment.yaml:19|registry.example:5000/fixtures/base:1",
        "deployment.yaml:23|registry.example:5000/fixtures/app:1",
        "deployment.yaml:27|registry.example:5000/fixtures/multi:1",
        // CronJob's job template
        "cronjob.yaml:14|registry.example:5000/fixtures/docker:1",
        // StatefulSet (flow style), DaemonSet, ReplicaSet, Job, List > Pod, ephemeralContainers
        "workloads.yaml:10|registry.example:5000/fixtures/base:1",
        "workloads.yaml:25|registry.example:5000/fixtures/dockerlist:1",
        "workloads.yaml:40|registry.example:5000/fixtures/app:1",
        "workloads.yaml:52|registry.example:5000/fixtures/docker:1",
        "workloads.yaml:64|registry.example:5000/fixtures/base:1",
        "workloads.yaml:67|registry.example:5000/fixtures/multi:1",
        // rendered chart
        "chart-rendered.yaml:31|registry.example:5000/fixtures/app:1",
        "chart-rendered.yaml:34|registry.example:5000/fixtures/dockerlist:1",
        // values: whole string, split with registry, split without, anchor
        "values.yaml:7|registry.example:5000/fixtures/base:1",
        "values.yaml:13|registry.example:5000/fixtures/app:1",
        "values.yaml:21|registry.example:5000/fixtures/docker:1",
        "values.yaml:27|registry.example:5000/fixtures/multi:1",
        // kustomize newName + newTag
        "kustomize/kustomization.yaml:8|registry.example:5000/fixtures/dockerlist:1",
        // compose
        "compose.yaml:3|registry.example:5000/fixtures/app:1",
        "compose.yaml:6|registry.example:5000/fixtures/base:1",
    ] {
        assert!(found.contains(want), "{want} not in {found:#?}");
    }
    assert_eq!(found.len(), 19, "{found:#?}");
}

#[test]
fn images_are_fully_qualified_deduplicated_and_sorted() {
    let s = Scratch::new();
    let run = s
        .ferry(["images".as_ref(), corpus("names").as_os_str()])
        .ok();
    assert_eq!(
        run.stdout,
        "docker.io/bitnami/redis:7.2\n\
         docker.io/library/nginx:1.25\n\
         docker.io/library/nginx:latest\n\
         localhost:5000/team/app:2\n\
         quay.io/jetstack/cert-manager-controller:v1.14.0@sha256:4444444444444444444444444444444444444444444444444444444444444444\n"
    );
}

#[test]
fn images_reads_standard_input() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["images", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"services:\n  a:\n    image: redis:7\n---\nimage: {repository: bitnami/nginx, tag: '1.25'}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "docker.io/bitnami/nginx:1.25\ndocker.io/library/redis:7\n"
    );
}

#[test]
fn images_names_broken_files_skips_them_and_strict_fails() {
    let s = Scratch::new();
    let (site, broken) = (corpus("site"), corpus("broken"));
    let args = ["images".as_ref(), site.as_os_str(), broken.as_os_str()];
    let run = s.ferry(args).ok();
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        SITE_IMAGES,
        "the rest still counts"
    );
    assert!(
        run.stderr.contains("broken/syntax.yaml:7: "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("broken/alias-bomb.yaml: aliases expand past"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("broken/templated-values.yaml:3: "),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("2 file(s) skipped"), "{}", run.stderr);
    let mut strict = args.to_vec();
    strict.push("--strict".as_ref());
    let run = s.ferry(strict).failed();
    assert_eq!(run.stdout.lines().count(), 5);
    let run = s.ferry(["images", "no-such-dir"]).failed();
    assert!(
        run.stderr
            .contains("no-such-dir: no such file or directory"),
        "{}",
        run.stderr
    );
}

/// Each hostile input: named, skipped, in bounded time; rewrite leaves it
/// byte for byte as it was.
#[test]
fn hostile_inputs_cost_bounded_time_and_are_never_written() {
    let s = Scratch::new();
    let dir = s.path("hostile");
    std::fs::create_dir_all(dir.join("loop")).unwrap();
    std::os::unix::fs::symlink("..", dir.join("loop/up")).unwrap();
    std::fs::write(
        dir.join("deep-flow.yaml"),
        format!("image: nginx:1\nx: {}\n", "[".repeat(100_000)),
    )
    .unwrap();
    let block: String = (0..1_000)
        .map(|i| format!("{}k:\n", "  ".repeat(i)))
        .collect();
    std::fs::write(dir.join("deep-block.yaml"), block).unwrap();
    std::fs::copy(
        corpus("broken/alias-bomb.yaml"),
        dir.join("alias-bomb.yaml"),
    )
    .unwrap();
    let mut binary = b"image: nginx:1\n".to_vec();
    binary.extend([0u8, 159, 146, 150, 255, 0, 1, 2]);
    std::fs::write(dir.join("binary.yaml"), binary).unwrap();
    let mut huge = std::fs::File::create(dir.join("huge.yaml")).unwrap();
    let line = "- image: nginx:1.25\n";
    for _ in 0..(17 * 1024 * 1024 / line.len() + 1) {
        huge.write_all(line.as_bytes()).unwrap();
    }
    drop(huge);
    std::fs::write(dir.join("fine.yaml"), "image: redis:7\n").unwrap();
    std::fs::write(
        s.path("m.json"),
        r#"{"docker.io/library/nginx:1": "reg.local/x:1@sha256:6666666666666666666666666666666666666666666666666666666666666666",
            "docker.io/library/nginx:1.25": "reg.local/x:1.25@sha256:6666666666666666666666666666666666666666666666666666666666666666"}"#,
    )
    .unwrap();
    let before = snapshot(&dir);

    let started = Instant::now();
    let run = s.ferry(["images".as_ref(), dir.as_os_str()]).ok();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(run.stdout, "docker.io/library/redis:7\n");
    for want in [
        "deep-flow.yaml:2: ",
        "deep-block.yaml:",
        "nested deeper than 128 levels",
        "alias-bomb.yaml: aliases expand past",
        "binary.yaml: a binary file",
        "huge.yaml: larger than 16 MiB",
        "symbolic link loop",
    ] {
        assert!(run.stderr.contains(want), "{want} missing:\n{}", run.stderr);
    }

    let started = Instant::now();
    let run = s
        .ferry([
            "rewrite".as_ref(),
            "--mapping".as_ref(),
            "m.json".as_ref(),
            dir.as_os_str(),
        ])
        .ok();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        run.stderr.contains("(file left untouched)"),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot(&dir), before, "nothing written");
}

const D: &str = "sha256:7777777777777777777777777777777777777777777777777777777777777777";

fn write_mapping(s: &Scratch) {
    let mut m = BTreeMap::new();
    for r in SITE_IMAGES {
        let o = Reference::parse(r).unwrap();
        m.insert(
            r.to_string(),
            format!("reg.local/team/{}:1@{D}", o.repository().replace('/', "-")),
        );
    }
    std::fs::write(s.path("m.json"), serde_json::to_string(&m).unwrap()).unwrap();
}

#[test]
fn rewrite_dry_run_prints_a_diff_and_changes_nothing() {
    let s = Scratch::new();
    write_mapping(&s);
    let site = s.path("site");
    std::fs::create_dir(&site).unwrap();
    copy_tree(&corpus("site"), &site, PLACEHOLDER);
    let before = snapshot(&site);
    let run = s
        .ferry([
            "rewrite",
            "--mapping",
            "m.json",
            "--dry-run",
            "site/cronjob.yaml",
        ])
        .ok();
    assert_eq!(
        run.stdout,
        format!(
            "--- a/site/cronjob.yaml\n+++ b/site/cronjob.yaml\n@@ -11,5 +11,5 @@\n           \
             restartPolicy: OnFailure\n           containers:\n           - name: report\n\
             -            image: registry.example:5000/fixtures/docker:1\n\
             +            image: reg.local/team/fixtures-docker:1@{D}\n             \
             command: [/bin/report]\n"
        )
    );
    assert_eq!(snapshot(&site), before);
}

#[test]
fn rewrite_in_place_out_dir_stdin_and_strict() {
    let s = Scratch::new();
    write_mapping(&s);
    let site = s.path("site");
    std::fs::create_dir(&site).unwrap();
    copy_tree(&corpus("site"), &site, PLACEHOLDER);
    std::fs::write(site.join("extra.yaml"), "image: nginx:9  # not carried\n").unwrap();
    std::fs::write(site.join("broken.yaml"), "a: [\n").unwrap();
    let before = snapshot(&site);

    // --out: originals untouched, every parsed file under out/.
    let run = s
        .ferry(["rewrite", "--mapping", "m.json", "--out", "out", "site"])
        .ok();
    assert!(
        run.stderr
            .contains("docker.io/library/nginx:9 left: not in the mapping"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("broken.yaml:2: "), "{}", run.stderr);
    assert_eq!(snapshot(&site), before);
    let out = snapshot(&s.path("out"));
    assert!(
        !out.contains_key(Path::new("broken.yaml")),
        "a file that does not parse is not written"
    );
    assert_eq!(out.len(), before.len() - 1);
    let values = String::from_utf8(out[Path::new("values.yaml")].clone()).unwrap();
    assert!(
        values.contains(
            "    registry: reg.local\n    repository: team/fixtures-app\n    tag: \"1\"\n"
        ),
        "{values}"
    );
    assert!(
        values.contains(&format!("    digest: \"{D}\"\n")),
        "{values}"
    );
    assert!(
        values.contains("    repository: reg.local/team/fixtures-docker\n    tag: 1\n"),
        "{values}"
    );
    assert!(run.stderr.contains("pinned by tag only"), "{}", run.stderr);

    // --strict: the unmapped reference and the broken file fail the run.
    s.ferry([
        "rewrite",
        "--mapping",
        "m.json",
        "--out",
        "out2",
        "--strict",
        "site",
    ])
    .failed();

    // In place: only files with changes are replaced, keeping their mode.
    use std::os::unix::fs::PermissionsExt;
    let perms = std::fs::Permissions::from_mode(0o640);
    std::fs::set_permissions(site.join("values.yaml"), perms).unwrap();
    s.ferry(["rewrite", "--mapping", "m.json", "site"]).ok();
    let mode = std::fs::metadata(site.join("values.yaml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    let after = snapshot(&site);
    assert_eq!(
        after[Path::new("extra.yaml")],
        before[Path::new("extra.yaml")]
    );
    assert_eq!(
        after[Path::new("broken.yaml")],
        before[Path::new("broken.yaml")]
    );
    assert_eq!(after[Path::new("values.yaml")], values.as_bytes());
    let run = s.ferry(["images", "site"]).ok();
    assert!(!run.stdout.contains("registry.example"), "{}", run.stdout);

    // Standard input to standard output.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["rewrite", "--mapping", "m.json", "-"])
        .current_dir(s.dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"# c\nimage: 'registry.example:5000/fixtures/base:1' # k\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("# c\nimage: 'reg.local/team/fixtures-base:1@{D}' # k\n")
    );
}

#[test]
fn mapping_command_prints_and_writes_forms() {
    let s = Scratch::new();
    write_mapping(&s);
    let run = s.ferry(["mapping", "m.json"]).ok();
    assert_eq!(run.stdout.lines().count(), 5);
    assert!(run.stdout.starts_with(&format!(
        "registry.example:5000/fixtures/app:1=reg.local/team/fixtures-app:1@{D}\n"
    )));
    let run = s
        .ferry(["mapping", "m.json", "--format", "containerd"])
        .failed();
    assert!(run.stderr.contains("--naming preserve"), "{}", run.stderr);
    s.ferry([
        "mapping",
        "m.json",
        "--format",
        "registries-yaml",
        "-o",
        "k3s",
    ])
    .ok();
    let text = std::fs::read_to_string(s.path("k3s/registries.yaml")).unwrap();
    assert!(
        text.contains("'^fixtures/app$': 'team/fixtures-app'"),
        "{text}"
    );
    let run = s.ferry(["mapping", "m.json", "--format", "nope"]);
    assert_eq!(run.code, Some(2), "a usage error");
    assert!(run.stderr.contains("expected text, idms"), "{}", run.stderr);
}

#[test]
fn images_file_reads_mindthegap_lists() {
    // Checked through pack's reading of --images-file: a registry that
    // refuses everything fails the run after the list is read, naming
    // the images the list gave.
    let s = Scratch::new();
    let run = s
        .ferry([
            "pack",
            "--images-file",
            corpus("mindthegap-images.yaml").to_str().unwrap(),
            "--images-file",
            "nope.txt",
            "-o",
            "b.tar",
        ])
        .failed();
    assert!(
        run.stderr.contains("cannot read images file nope.txt"),
        "{}",
        run.stderr
    );
    std::fs::write(
        s.path("bad.yaml"),
        "docker.io:\n  images:\n    library/nginx:\n",
    )
    .unwrap();
    let run = s
        .ferry(["pack", "--images-file", "bad.yaml", "-o", "b.tar"])
        .failed();
    assert!(
        run.stderr
            .contains("bad.yaml:3: docker.io/library/nginx lists no tags"),
        "{}",
        run.stderr
    );
}

/// The whole path on the real registry: find the images in the corpus,
/// pack them (`--images-from`), unpack into a target with a mapping,
/// rewrite the files; every reference in the rewritten files resolves in
/// the target at the source's digest, and the files differ from the
/// originals only in those references.
#[test]
fn images_pack_unpack_rewrite_end_to_end() {
    let source = RegistryProcess::start();
    let set = source.push_fixtures();
    let target = RegistryProcess::start();
    let s = Scratch::new();
    let site = s.path("site");
    std::fs::create_dir(&site).unwrap();
    copy_tree(&corpus("site"), &site, &source.host());
    let originals = snapshot(&site);

    // ferry images lists exactly the corpus' images, ready for --images-file.
    let listed = s.ferry(["images", "site"]).ok().stdout;
    let want: Vec<String> = SITE_IMAGES
        .iter()
        .map(|r| r.replace(PLACEHOLDER, &source.host()))
        .collect();
    assert_eq!(listed.lines().collect::<Vec<_>>(), want);
    std::fs::write(s.path("images.txt"), &listed).unwrap();

    let src = source.host();
    s.ferry([
        "pack",
        "--plain-http",
        &src,
        "--images-from",
        "site",
        "-o",
        "b.tar",
        "--quiet",
    ])
    .ok();
    let inspect = s.ferry(["inspect", "b.tar", "--json"]).ok().stdout;
    for r in &want {
        assert!(inspect.contains(r.as_str()), "{r} packed");
    }
    // A mindthegap list of the same images packs the same bundle.
    let mut list = format!("{src}:\n  images:\n");
    for r in &want {
        let r = Reference::parse(r).unwrap();
        list.push_str(&format!(
            "    {}: ['{}']\n",
            r.repository(),
            r.tag().unwrap()
        ));
    }
    std::fs::write(s.path("mindthegap.yaml"), list).unwrap();
    s.ferry([
        "pack",
        "--plain-http",
        &src,
        "--images-file",
        "mindthegap.yaml",
        "-o",
        "m.tar",
        "--quiet",
    ])
    .ok();
    assert_eq!(
        std::fs::read(s.path("m.tar")).unwrap(),
        std::fs::read(s.path("b.tar")).unwrap()
    );

    let tgt = target.host();
    s.ferry([
        "unpack",
        "b.tar",
        "--to",
        &format!("{tgt}/site"),
        "--plain-http",
        &tgt,
        "--mapping",
        "m.json",
        "--quiet",
    ])
    .ok();
    s.ferry([
        "rewrite",
        "--mapping",
        "m.json",
        "--strict",
        "--out",
        "out",
        "site",
    ])
    .ok();

    // Every reference now names the target and resolves at the source digest.
    let digest_of: BTreeMap<String, String> = set
        .images
        .iter()
        .map(|i| {
            (
                format!("{}/{}", source.host(), i.repository),
                i.digest.clone(),
            )
        })
        .collect();
    let rewritten = s.ferry(["images", "--json", "out"]).ok().json();
    let mut seen = 0;
    for image in rewritten["images"].as_array().unwrap() {
        let r = Reference::parse(image["reference"].as_str().unwrap()).unwrap();
        assert_eq!(r.registry(), tgt, "{r}");
        let served = match r.digest() {
            Some(d) => target.manifest_digest(r.repository(), &d.to_string()),
            // Helm values without a digest key stay pinned by tag.
            None => target.manifest_digest(r.repository(), r.tag().unwrap()),
        };
        let original_repo = digest_of
            .iter()
            .find(|(_, d)| Some(d.as_str()) == served.as_deref())
            .map(|(n, _)| n.clone());
        assert!(
            original_repo.is_some(),
            "{r} resolves to a source digest ({served:?})"
        );
        if let Some(d) = r.digest() {
            assert_eq!(served.as_deref(), Some(d.to_string().as_str()));
        }
        seen += image["found"].as_array().unwrap().len();
    }
    assert_eq!(seen, 19, "every reference found again");

    // Line by line, only reference text changed.
    let out = snapshot(&s.path("out"));
    assert_eq!(
        out.keys().collect::<Vec<_>>(),
        originals.keys().collect::<Vec<_>>()
    );
    for (path, old) in &originals {
        let (old, new) = (
            String::from_utf8(old.clone()).unwrap(),
            String::from_utf8(out[path].clone()).unwrap(),
        );
        let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
        assert_eq!(a.len(), b.len(), "{path:?}");
        for (x, y) in a.iter().zip(&b) {
            if x == y {
                continue;
            }
            let prefix = x.bytes().zip(y.bytes()).take_while(|(p, q)| p == q).count();
            let suffix = x[prefix..]
                .bytes()
                .rev()
                .zip(y[prefix..].bytes().rev())
                .take_while(|(p, q)| p == q)
                .count();
            let (gone, came) = (&x[prefix..x.len() - suffix], &y[prefix..y.len() - suffix]);
            // The token around the change, in the old and the new line.
            let token = |line: &str, from: usize, to: usize| {
                let stop =
                    |c: char| c == ' ' || c == '"' || c == '\'' || c == ',' || c == '{' || c == '}';
                let start = line[..from].rfind(stop).map_or(0, |i| i + 1);
                let end = line[to..].find(stop).map_or(line.len(), |i| to + i);
                line[start..end].to_string()
            };
            let old_token = token(x, prefix, x.len() - suffix);
            let new_token = token(y, prefix, y.len() - suffix);
            let old_is_source = old_token.contains(&src)
                || old_token.starts_with("fixtures/")
                || old_token.is_empty();
            let new_is_target = new_token.contains(&tgt)
                || new_token.starts_with("site/")
                || new_token.starts_with("sha256:");
            assert!(
                old_is_source && new_is_target,
                "{path:?}: only references may change, not {gone:?} -> {came:?}\n  {x}\n  {y}"
            );
        }
    }
}
