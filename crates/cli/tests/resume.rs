//! A pack that stops — the network gone, the process killed — resumes
//! (issue 11, item 4): the same command again keeps every blob already
//! written whole and fetches only the rest, and the bundle is byte for byte
//! the one an uninterrupted pack writes. The real binary against a real
//! `docker-registry`, behind a fault proxy that stalls it partway.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use ferry_testkit::RegistryProcess;
use ferry_testkit::{
    push_bench_release, push_bench_workload, BenchWorkload, Fault, FaultProxy, Match, FOREVER,
};
use util::Scratch;

/// About 3.7 MB of configs and layers, two dozen of them, one of 2 MiB.
const SCALE: f64 = 0.004;

/// The source registry, a proxy in front of it, and the workload pushed
/// through the proxy (so references name the proxy and every request of
/// ferry goes through it).
struct Source {
    proxy: FaultProxy,
    workload: BenchWorkload,
    _registry: RegistryProcess,
}

fn blob_gets() -> Match {
    Match::path_contains("/blobs/sha256:").method("GET")
}

impl Source {
    fn start() -> Source {
        Source::start_at(SCALE)
    }

    /// The bench workload at `scale` (1.0: about 1 GB, one layer of
    /// 512 MiB).
    fn start_at(scale: f64) -> Source {
        let registry = RegistryProcess::start();
        let proxy = FaultProxy::start(&registry);
        let workload = push_bench_workload(&proxy.host(), scale);
        proxy.reset_log();
        Source {
            proxy,
            workload,
            _registry: registry,
        }
    }

    fn args(&self, out: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = ["pack", "--plain-http", &self.proxy.host(), "-o", out]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(["--jobs".into(), "2".into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(self.workload.references.iter().cloned());
        args
    }

    fn pack(&self, scratch: &Scratch, out: &str, extra: &[&str]) -> util::Run {
        scratch.ferry(self.args(out, extra))
    }

    /// Hold the source's blob bytes after three quarters of them: with
    /// two blobs at a time, biggest first, the two biggest (about two
    /// thirds of the bytes) are whole by then, whatever the interleaving,
    /// and some others are not.
    fn stall_partway(&self) {
        self.proxy
            .stall_after(blob_gets(), self.workload.blob_bytes() * 3 / 4);
    }

    /// A pack that loses its source partway (see
    /// [`Source::stall_partway`]) and gives up (one try, one second of silence), keeping its work.
    fn pack_stopped_partway(&self, scratch: &Scratch, out: &str, extra: &[&str]) -> util::Run {
        self.stall_partway();
        let mut extra = extra.to_vec();
        extra.extend(["--timeout", "1", "--retries", "1"]);
        let run = self.pack(scratch, out, &extra).failed();
        assert!(self.proxy.stalled() > 0, "the source never stalled");
        self.proxy.clear();
        self.proxy.reset_log();
        run
    }

    /// Start a pack, wait until the source stalls it partway, and stop it
    /// with `signal` (`-KILL`, `-INT` as Ctrl-C sends); its output.
    fn pack_signalled(
        &self,
        scratch: &Scratch,
        args: Vec<String>,
        signal: &str,
        meanwhile: impl FnOnce(),
    ) -> std::process::Output {
        self.stall_partway();
        let child = scratch
            .ferry_command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(60);
        while self.proxy.stalled() == 0 {
            assert!(Instant::now() < until, "the pack never reached the stall");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200));
        meanwhile();
        let killed = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let output = child.wait_with_output().unwrap();
        self.proxy.clear();
        self.proxy.reset_log();
        output
    }

    /// Blob GETs since the log was last reset, by digest.
    fn blob_gets(&self) -> BTreeMap<String, usize> {
        let mut gets = BTreeMap::new();
        for seen in self.proxy.log() {
            if seen.method == "GET" {
                if let Some((_, digest)) = seen.path.split_once("/blobs/") {
                    *gets.entry(digest.to_string()).or_insert(0) += 1;
                }
            }
        }
        gets
    }

    /// Every config and layer, by digest.
    fn blobs(&self) -> BTreeSet<String> {
        self.workload
            .blobs
            .iter()
            .map(|b| b.digest.clone())
            .collect()
    }
}

/// Each blob entry of the bundle `tar` (`blobs/sha256/HEX`): its digest,
/// data offset and size.
fn blob_regions(tar: &Path) -> Vec<(String, u64, u64)> {
    let mut archive = tar::Archive::new(std::fs::File::open(tar).unwrap());
    archive
        .entries()
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let hex = path.strip_prefix("blobs/sha256/")?.to_string();
            Some((format!("sha256:{hex}"), e.raw_file_position(), e.size()))
        })
        .collect()
}

/// The blobs of `wanted` that `partial` (the bytes of a partial bundle)
/// holds whole where `clean` (the finished bundle) has them.
fn whole_in(partial: &[u8], clean: &Path, wanted: &BTreeSet<String>) -> BTreeSet<String> {
    let bundle = std::fs::read(clean).unwrap();
    assert_eq!(
        partial.len(),
        bundle.len(),
        "the partial has its planned size"
    );
    blob_regions(clean)
        .into_iter()
        .filter(|(d, offset, size)| {
            let r = *offset as usize..(*offset + *size) as usize;
            wanted.contains(d) && partial[r.clone()] == bundle[r]
        })
        .map(|(d, _, _)| d)
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    ferry_oci::Digest::sha256_of(bytes).hex().to_string()
}

/// Nothing of a pack in progress is left: no partial file, no record.
fn assert_no_partials(scratch: &Scratch) {
    let left: Vec<String> = scratch
        .files()
        .into_iter()
        .filter(|f| f.ends_with(".partial") || f.ends_with(".resume.json"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A resumed pack whose biggest blob was cut short fetches its rest as
/// ranged pieces side by side (two here: 16 MiB at most each), and the
/// bundle is still byte for byte the uninterrupted one. A registry that
/// ignores ranges, or a beginning damaged by hand, gets the blob fetched
/// whole.
#[test]
fn issue_11_a_big_blob_cut_short_is_continued_in_pieces_side_by_side() {
    // About 49 MB; the biggest layer 25.6 MiB.
    let source = Source::start_at(0.05);
    let scratch = Scratch::new();
    source.pack(&scratch, "clean.tar", &["--quiet"]).ok();
    let clean_bytes = std::fs::read(scratch.path("clean.tar")).unwrap();
    let big = source
        .workload
        .blobs
        .iter()
        .max_by_key(|b| b.size)
        .unwrap()
        .clone();
    assert!(big.size > 25 << 20);
    let stop = |out: &str| {
        // One blob at a time, biggest first: 4 MiB of it, then silence.
        source.proxy.stall_after(blob_gets(), 4 << 20);
        let mut args = source.args(out, &["--timeout", "1", "--retries", "1"]);
        let jobs = args.iter().position(|a| a == "--jobs").unwrap();
        args[jobs + 1] = "1".into();
        scratch.ferry(args).failed();
        assert!(source.proxy.stalled() > 0, "the source never stalled");
        source.proxy.clear();
        source.proxy.reset_log();
    };

    stop("b.tar");
    let run = source.pack(&scratch, "b.tar", &["--json"]).ok();
    let gets = source.blob_gets();
    assert_eq!(gets.get(&big.digest), Some(&2), "{gets:?}");
    let transfer = &run.json()["transfer"];
    assert_eq!(transfer["blobs_continued"], 1, "{transfer}");
    assert!(std::fs::read(scratch.path("b.tar")).unwrap() == clean_bytes);
    assert_eq!(run.json()["sha256"], sha256_hex(&clean_bytes));

    stop("d.tar");
    let drop_range = Fault::DropHeader {
        name: "Range".into(),
    };
    source.proxy.inject(drop_range, blob_gets(), FOREVER);
    let run = source.pack(&scratch, "d.tar", &["--json"]).ok();
    let transfer = &run.json()["transfer"];
    assert_eq!(transfer["blobs_continued"], 0, "{transfer}");
    assert!(std::fs::read(scratch.path("d.tar")).unwrap() == clean_bytes);
    assert_eq!(run.json()["sha256"], sha256_hex(&clean_bytes));
    source.proxy.clear();

    // Its beginning damaged by hand: the pieces of the rest land, the whole
    // fails its digest as the archive's sha256 passes it, and it is fetched
    // again whole; the bundle is still the same.
    stop("e.tar");
    let offset = blob_regions(&scratch.path("clean.tar"))
        .into_iter()
        .find(|(digest, _, _)| *digest == big.digest)
        .map(|(_, offset, _)| offset)
        .unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(scratch.path("e.tar.partial"))
        .unwrap();
    let mut byte = [0u8];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut byte, offset + 100).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[byte[0] ^ 0x20], offset + 100).unwrap();
    let run = source.pack(&scratch, "e.tar", &["--json"]).ok();
    let gets = source.blob_gets();
    assert_eq!(
        gets.get(&big.digest),
        Some(&3),
        "two pieces, then the whole: {gets:?}"
    );
    assert_eq!(run.json()["transfer"]["blobs_continued"], 0);
    assert!(std::fs::read(scratch.path("e.tar")).unwrap() == clean_bytes);
    assert_eq!(run.json()["sha256"], sha256_hex(&clean_bytes));
    assert_no_partials(&scratch);
}

#[test]
fn issue_11_a_pack_stopped_partway_resumes_fetching_only_the_missing_blobs() {
    let source = Source::start();
    let scratch = Scratch::new();
    source.pack(&scratch, "clean.tar", &["--quiet"]).ok();
    let clean = scratch.path("clean.tar");

    let run = source.pack_stopped_partway(&scratch, "b.tar", &[]);
    assert!(
        run.stderr.contains("nothing was written at b.tar")
            && run.stderr.contains("kept in b.tar.partial")
            && run.stderr.contains("run the same command again to resume")
            && run.stderr.contains("--fresh"),
        "{}",
        run.stderr
    );
    assert!(!scratch.path("b.tar").exists());
    assert!(scratch.path("b.tar.resume.json").is_file());
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(scratch.path("b.tar.resume.json")).unwrap()).unwrap();
    assert_eq!(record["version"], 1);
    assert_eq!(record["partials"], serde_json::json!(["b.tar.partial"]));

    let partial = std::fs::read(scratch.path("b.tar.partial")).unwrap();
    let all = source.blobs();
    let whole = whole_in(&partial, &clean, &all);
    let missing: BTreeSet<String> = all.difference(&whole).cloned().collect();
    assert!(
        !whole.is_empty() && !missing.is_empty(),
        "stopped partway: {} whole, {} missing",
        whole.len(),
        missing.len()
    );

    // The same command again: only the missing blobs are fetched, once each.
    let run = source.pack(&scratch, "b.tar", &["--json"]).ok();
    let gets = source.blob_gets();
    assert_eq!(gets.keys().cloned().collect::<BTreeSet<_>>(), missing);
    assert!(gets.values().all(|&n| n == 1), "{gets:?}");
    let transfer = &run.json()["transfer"];
    assert_eq!(transfer["resumed"], true);
    assert_eq!(transfer["blobs_reused"], whole.len());
    assert_eq!(transfer["blobs_fetched"], missing.len());
    let sizes: BTreeMap<&str, u64> = source
        .workload
        .blobs
        .iter()
        .map(|b| (b.digest.as_str(), b.size))
        .collect();
    let whole_bytes: u64 = whole.iter().map(|d| sizes[d.as_str()]).sum();
    let missing_bytes: u64 = missing.iter().map(|d| sizes[d.as_str()]).sum();
    let (reused, fetched) = (
        transfer["bytes_reused"].as_u64().unwrap(),
        transfer["bytes_fetched"].as_u64().unwrap(),
    );
    assert_eq!(reused + fetched, whole_bytes + missing_bytes);
    // Blobs the stopped run had begun are fetched from where it stopped.
    let continued = transfer["blobs_continued"].as_u64().unwrap();
    assert!(continued > 0, "{transfer}");
    assert!(
        reused > whole_bytes && fetched < missing_bytes,
        "{transfer}"
    );

    // Byte for byte the uninterrupted pack, with the same checksum line.
    let bytes = std::fs::read(scratch.path("b.tar")).unwrap();
    let clean_bytes = std::fs::read(&clean).unwrap();
    assert!(bytes == clean_bytes, "the resumed bundle differs");
    let sums = std::fs::read_to_string(scratch.path("b.tar.sha256")).unwrap();
    assert_eq!(sums, format!("{}  b.tar\n", sha256_hex(&clean_bytes)));
    assert_eq!(run.json()["sha256"], sha256_hex(&clean_bytes));
    assert_no_partials(&scratch);

    // A registry that ignores ranges (200, the whole blob): the beginnings
    // are overwritten, the bundle is still the same bytes.
    source.pack_stopped_partway(&scratch, "d.tar", &[]);
    source.proxy.inject(
        Fault::DropHeader {
            name: "Range".into(),
        },
        blob_gets(),
        FOREVER,
    );
    let run = source.pack(&scratch, "d.tar", &["--json"]).ok();
    let transfer = &run.json()["transfer"];
    assert_eq!(transfer["resumed"], true);
    assert_eq!(transfer["blobs_continued"], 0, "{transfer}");
    assert!(std::fs::read(scratch.path("d.tar")).unwrap() == clean_bytes);
    assert_eq!(run.json()["sha256"], sha256_hex(&clean_bytes));
    source.proxy.clear();

    // A beginning damaged by hand: its rest is fetched (a ranged GET), the
    // whole fails its digest as the archive's sha256 passes it, and it is
    // fetched again whole (a second GET); the bundle is still the same.
    source.pack_stopped_partway(&scratch, "e.tar", &[]);
    let path = scratch.path("e.tar.partial");
    let partial = std::fs::read(&path).unwrap();
    let (damaged, at) = blob_regions(&clean)
        .into_iter()
        .map(|(d, offset, size)| (d, offset as usize, size as usize))
        .find(|(_, o, s)| {
            let head = *o..o + 4096.min(*s);
            partial[head.clone()] == clean_bytes[head.clone()]
                && partial[head].iter().any(|&b| b != 0)
                && partial[*o..o + s] != clean_bytes[*o..o + s]
        })
        .map(|(d, o, _)| (d, o + 100))
        .expect("a blob cut short");
    // In place: the holes of the partial file stay holes.
    let byte = if partial[at] == 1 { 2 } else { 1 };
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[byte], at as u64).unwrap();
    source.pack(&scratch, "e.tar", &[]).ok();
    let gets = source.blob_gets();
    assert_eq!(gets[&damaged], 2, "a ranged GET, then the whole: {gets:?}");
    assert!(std::fs::read(scratch.path("e.tar")).unwrap() == clean_bytes);
    let sums = std::fs::read_to_string(scratch.path("e.tar.sha256")).unwrap();
    assert_eq!(sums, format!("{}  e.tar\n", sha256_hex(&clean_bytes)));
    assert_no_partials(&scratch);
}

#[test]
fn issue_11_a_killed_split_pack_resumes_and_repairs_what_was_edited_or_cut() {
    let source = Source::start();
    let scratch = Scratch::new();
    source.pack(&scratch, "clean.tar", &["--quiet"]).ok();
    let clean = scratch.path("clean.tar");
    let size = (std::fs::metadata(&clean).unwrap().len() / 4 + 777).to_string();
    let split = ["--split", size.as_str(), "--parity", "1"];
    source.pack(&scratch, "ref.tar", &split).ok();

    // Stall the source partway, wait for the pack to hang there, and kill
    // it: no destructor runs, the partial parts stay as they are. A second
    // pack to the same output meanwhile is refused, touching nothing.
    source.pack_signalled(&scratch, source.args("b.tar", &split), "-KILL", || {
        let second = source.pack(&scratch, "b.tar", &split).failed();
        assert!(
            second.stderr.contains("another process is writing it"),
            "{}",
            second.stderr
        );
    });

    let parts: Vec<String> = scratch
        .files()
        .into_iter()
        .filter(|f| f.starts_with("b.tar.") && f.ends_with(".partial"))
        .collect();
    let reference: Vec<String> = scratch
        .files()
        .into_iter()
        .filter(|f| f.len() == "ref.tar.000".len() && f.starts_with("ref.tar.0"))
        .collect();
    assert_eq!(reference.len(), 4);
    let expected: Vec<String> = reference
        .iter()
        .map(|f| format!("{}.partial", f.replace("ref.tar", "b.tar")))
        .collect();
    assert_eq!(parts, expected);
    let joined: Vec<u8> = parts
        .iter()
        .flat_map(|p| std::fs::read(scratch.path(p)).unwrap())
        .collect();
    let all = source.blobs();
    let whole = whole_in(&joined, &clean, &all);
    assert!(!whole.is_empty() && whole.len() < all.len(), "{whole:?}");

    // By hand: one whole blob damaged, the first header garbled, and the
    // last part cut to half its length. The blob damaged is the biggest
    // whole one before the cut: a layer, a tar that ends in zeros (which a
    // beginning cut short would too). Written whole, it is checked as the
    // archive's sha256 passes it, fails its digest, and is fetched whole:
    // one GET, not a ranged one first.
    let part_size: u64 = size.parse().unwrap();
    let last = scratch.path(parts.last().unwrap());
    let last_len = std::fs::metadata(&last).unwrap().len();
    let cut = part_size * (parts.len() as u64 - 1) + last_len / 2;
    let (damaged, offset, blob_size) = blob_regions(&clean)
        .into_iter()
        .filter(|(d, o, s)| whole.contains(d) && o + s <= cut)
        .max_by_key(|(_, _, s)| *s)
        .expect("a whole blob before the cut");
    let clean_bytes = std::fs::read(&clean).unwrap();
    assert_eq!(clean_bytes[(offset + blob_size - 1) as usize], 0);
    let at = offset + blob_size / 2;
    let part = scratch.path(&format!("b.tar.{:03}.partial", at / part_size));
    let mut bytes = std::fs::read(&part).unwrap();
    bytes[(at % part_size) as usize] ^= 0xff;
    bytes[..100].copy_from_slice(&[b'x'; 100]);
    std::fs::write(&part, bytes).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    file.set_len(last_len / 2).unwrap();
    let beyond_cut: BTreeSet<String> = blob_regions(&clean)
        .into_iter()
        .filter(|(d, o, s)| whole.contains(d) && o + s > cut)
        .map(|(d, _, _)| d)
        .collect();

    let run = source.pack(&scratch, "b.tar", &split).ok();
    assert!(
        run.stderr.contains("b.tar.003.partial is") && run.stderr.contains("truncated or edited"),
        "{}",
        run.stderr
    );
    let missing: BTreeSet<String> = all.difference(&whole).cloned().collect();
    let mut expected = missing.clone();
    expected.insert(damaged.clone());
    expected.extend(beyond_cut);
    let gets = source.blob_gets();
    assert_eq!(gets.keys().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(gets[&damaged], 1, "one GET, of the whole: {gets:?}");
    assert!(
        run.stdout
            .contains(&format!("resumed: {} blob(s)", all.len() - expected.len()))
            && run.stdout.contains(&format!("fetched {}", expected.len())),
        "{}",
        run.stdout
    );
    // Every part, the parity part and the checksums: those of the
    // uninterrupted split pack.
    for suffix in ["000", "001", "002", "003", "p00"] {
        let a = std::fs::read(scratch.path(&format!("b.tar.{suffix}"))).unwrap();
        let b = std::fs::read(scratch.path(&format!("ref.tar.{suffix}"))).unwrap();
        assert!(a == b, "part {suffix} differs");
    }
    let sums = std::fs::read_to_string(scratch.path("b.tar.sha256")).unwrap();
    let reference = std::fs::read_to_string(scratch.path("ref.tar.sha256")).unwrap();
    assert_eq!(sums, reference.replace("ref.tar", "b.tar"));
    assert_no_partials(&scratch);
    scratch.ferry(["verify", "b.tar.000", "--quiet"]).ok();
}

#[test]
fn issue_11_a_partial_that_does_not_fit_is_not_reused_and_ferry_says_why() {
    let source = Source::start();
    let scratch = Scratch::new();
    source.pack(&scratch, "clean.tar", &["--quiet"]).ok();
    let clean = std::fs::read(scratch.path("clean.tar")).unwrap();
    let all = source.blobs();
    let fetched_all = |source: &Source| {
        let gets = source.blob_gets();
        assert_eq!(gets.keys().cloned().collect::<BTreeSet<_>>(), all);
    };

    // Other arguments: not reused, said in one line, everything fetched.
    source.pack_stopped_partway(&scratch, "b.tar", &[]);
    let run = source.pack(&scratch, "b.tar", &["--no-referrers"]).ok();
    assert!(
        run.stderr
            .contains("b.tar.partial is a partial pack made with other arguments")
            && run.stderr.contains("not reused, starting over"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(!run.stdout.contains("resumed:"), "{}", run.stdout);
    fetched_all(&source);
    assert_no_partials(&scratch);

    // Ctrl-C: said, exit 130, the work kept; then --fresh: discarded,
    // everything fetched, the same bundle.
    let out = source.pack_signalled(&scratch, source.args("b.tar", &[]), "-INT", || {});
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted; nothing was written at b.tar")
            && stderr.contains("run the same command again to resume it"),
        "{stderr}"
    );
    assert!(scratch.path("b.tar.partial").is_file());
    let run = source.pack(&scratch, "b.tar", &["--fresh", "--json"]).ok();
    assert!(run.stderr.contains("--fresh: discarding"), "{}", run.stderr);
    assert_eq!(run.json()["transfer"]["resumed"], false);
    fetched_all(&source);
    assert!(std::fs::read(scratch.path("b.tar")).unwrap() == clean);
    source.proxy.reset_log();

    // A garbage record: a clear line, no panic, started over, right bytes.
    source.pack_stopped_partway(&scratch, "b.tar", &[]);
    std::fs::write(scratch.path("b.tar.resume.json"), b"\x00{not json").unwrap();
    let run = source.pack(&scratch, "b.tar", &[]).ok();
    assert!(
        run.stderr
            .contains("b.tar.resume.json cannot be used (not JSON"),
        "{}",
        run.stderr
    );
    fetched_all(&source);
    assert!(std::fs::read(scratch.path("b.tar")).unwrap() == clean);
    source.proxy.reset_log();

    // The tags moved since (the next release): not reused, and which.
    source.pack_stopped_partway(&scratch, "c.tar", &[]);
    push_bench_release(&source.proxy.host(), SCALE, 2);
    let run = source.pack(&scratch, "c.tar", &[]).ok();
    assert!(
        run.stderr
            .contains("c.tar.partial is a partial pack of images that changed since (")
            && run.stderr.contains("/bench/app-1:1 is now sha256:")
            && run.stderr.contains("not reused, starting over"),
        "{}",
        run.stderr
    );
    scratch.ferry(["verify", "c.tar", "--quiet"]).ok();
    assert_no_partials(&scratch);
}
