//! Bundles for media that fail in transit (issue 11): split volumes with
//! per-part checksums, read as one archive by every command. The real
//! binary against real `docker-registry`s.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

use ferry_oci::layout::part_path;
use ferry_oci::{Naming, Reference, RelocationTarget};
use ferry_testkit::{FixtureSet, RegistryProcess};
use util::Scratch;

fn pack(scratch: &Scratch, host: &str, set: &FixtureSet, out: &str, extra: &[&str]) -> util::Run {
    let mut args: Vec<String> = vec!["pack".into(), "--plain-http".into(), host.into()];
    args.extend(["-o".to_string(), out.to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(set.references());
    scratch.ferry(args)
}

fn sha256_hex(bytes: &[u8]) -> String {
    ferry_oci::Digest::sha256_of(bytes).hex().to_string()
}

/// The data parts of `base` in `dir`, in order.
fn parts(dir: &Path, base: &str) -> Vec<PathBuf> {
    (0..)
        .map(|i| part_path(&dir.join(base), i))
        .take_while(|p| p.exists())
        .collect()
}

fn sh(dir: &Path, script: &str) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("FERRY", env!("CARGO_BIN_EXE_ferry"))
        .output()
        .unwrap()
}

/// Every image of `set` is served by `target` under `to`, with its digest.
fn assert_served(target: &RegistryProcess, to: &str, set: &FixtureSet) {
    let to = RelocationTarget::parse(to).unwrap();
    for image in &set.images {
        let r = to
            .relocate(&Reference::parse(&image.reference).unwrap(), Naming::Hash)
            .unwrap();
        assert_eq!(
            target.manifest_digest(r.repository(), r.tag().unwrap()),
            Some(image.digest.clone()),
            "{}",
            image.reference
        );
    }
}

/// Fixtures pushed to a fresh source, packed from it into `b.tar` in a
/// scratch directory with `extra` (`--split …`): the source (kept running),
/// the set, the scratch, the pack's run and the data parts written.
fn packed_b_tar(
    extra: &[&str],
) -> (
    RegistryProcess,
    FixtureSet,
    Scratch,
    util::Run,
    Vec<PathBuf>,
) {
    let source = RegistryProcess::start();
    let set = source.push_fixtures();
    let scratch = Scratch::new();
    let run = pack(&scratch, &source.host(), &set, "b.tar", extra).ok();
    let files = parts(scratch.dir(), "b.tar");
    (source, set, scratch, run, files)
}

#[test]
fn issue_11_split_parts_are_the_bundle_and_every_command_reads_them() {
    let source = RegistryProcess::start();
    let set = source.push_fixtures();
    let host = source.host();
    let scratch = Scratch::new();
    pack(&scratch, &host, &set, "whole.tar", &["--quiet"]).ok();
    let whole = std::fs::read(scratch.path("whole.tar")).unwrap();
    // Five parts or so, of an odd size: headers and blobs straddle parts.
    let size = whole.len() as u64 / 5 + 333;
    let size_arg = size.to_string();
    let run = pack(&scratch, &host, &set, "bundle.tar", &["--split", &size_arg]).ok();
    assert!(run.stdout.contains("bundle.tar.000"), "{}", run.stdout);

    let files = parts(scratch.dir(), "bundle.tar");
    assert_eq!(files.len(), 5, "{:?}", scratch.files());
    let mut joined = Vec::new();
    for (i, p) in files.iter().enumerate() {
        let bytes = std::fs::read(p).unwrap();
        if i + 1 < files.len() {
            assert_eq!(bytes.len() as u64, size, "{}", p.display());
        }
        joined.extend(bytes);
    }
    assert_eq!(sha256_hex(&joined), sha256_hex(&whole));
    assert!(
        joined == whole,
        "concatenated parts differ from the unsplit bundle"
    );
    assert!(!scratch.path("bundle.tar").exists());

    // OUT.sha256: every part, then the whole under its unsplit name, the
    // same line an unsplit pack writes.
    let sums = std::fs::read_to_string(scratch.path("bundle.tar.sha256")).unwrap();
    let lines: Vec<&str> = sums.lines().collect();
    assert_eq!(lines.len(), files.len() + 1, "{sums}");
    for (line, p) in lines.iter().zip(&files) {
        let name = p.file_name().unwrap().to_str().unwrap();
        let bytes = std::fs::read(p).unwrap();
        assert_eq!(*line, format!("{}  {name}", sha256_hex(&bytes)));
    }
    let whole_sum = std::fs::read_to_string(scratch.path("whole.tar.sha256")).unwrap();
    assert_eq!(
        lines.last().unwrap().replace("bundle.tar", "whole.tar"),
        whole_sum.trim_end()
    );
    let check = sh(
        scratch.dir(),
        "sha256sum -c --ignore-missing bundle.tar.sha256 && cat bundle.tar.[0-9]* | sha256sum",
    );
    assert!(check.status.success(), "{check:?}");
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        stdout.contains(&format!("{}  -", sha256_hex(&whole))),
        "{stdout}"
    );

    // inspect and verify, from the first part or the list of parts.
    let inspect = scratch.ferry(["inspect", "bundle.tar.000", "--json"]).ok();
    let from_whole = scratch.ferry(["inspect", "whole.tar", "--json"]).ok();
    let (mut a, mut b) = (inspect.json(), from_whole.json());
    assert_eq!(a["archive"], "bundle.tar.000");
    a["archive"] = serde_json::Value::Null;
    b["archive"] = serde_json::Value::Null;
    assert!(a["references"].as_array().unwrap().len() >= set.images.len());
    assert!(a == b, "inspect of the parts and of the whole differ");
    scratch.ferry(["verify", "bundle.tar.000"]).ok();
    let mut all: Vec<String> = vec!["verify".into()];
    all.extend(
        scratch
            .files()
            .into_iter()
            .filter(|f| f.starts_with("bundle.tar.")),
    );
    scratch.ferry(&all).ok();

    // unpack from the parts, and from `cat parts |`.
    let target = RegistryProcess::start();
    let to_a = format!("{}/parts", target.host());
    scratch
        .ferry([
            "unpack",
            "bundle.tar.000",
            "--to",
            &to_a,
            "--plain-http",
            &target.host(),
        ])
        .ok();
    assert_served(&target, &to_a, &set);
    let to_b = format!("{}/piped", target.host());
    let piped = sh(
        scratch.dir(),
        &format!(
            "cat bundle.tar.[0-9]* | \"$FERRY\" unpack - --to {to_b} --plain-http {}",
            target.host()
        ),
    );
    assert!(piped.status.success(), "{piped:?}");
    assert_served(&target, &to_b, &set);

    // Packing again to the same name leaves only what that pack wrote:
    // fewer parts, then one file.
    let bigger = (size * 2).to_string();
    pack(
        &scratch,
        &host,
        &set,
        "bundle.tar",
        &["--split", &bigger, "--quiet"],
    )
    .ok();
    assert_eq!(parts(scratch.dir(), "bundle.tar").len(), 3);
    scratch.ferry(["verify", "bundle.tar.000"]).ok();
    // A part size above the bundle's: one part, the whole bundle.
    pack(&scratch, &host, &set, "bundle.tar", &["--split", "4.7G"]).ok();
    assert_eq!(parts(scratch.dir(), "bundle.tar").len(), 1);
    assert_eq!(
        std::fs::read(scratch.path("bundle.tar.000")).unwrap(),
        whole
    );
    let sums = std::fs::read_to_string(scratch.path("bundle.tar.sha256")).unwrap();
    assert!(
        sums.contains(&format!("{}  bundle.tar.000", sha256_hex(&whole))),
        "{sums}"
    );
    pack(&scratch, &host, &set, "bundle.tar", &["--quiet"]).ok();
    assert!(parts(scratch.dir(), "bundle.tar").is_empty());
    assert_eq!(std::fs::read(scratch.path("bundle.tar")).unwrap(), whole);
}

#[test]
fn issue_11_a_bad_part_set_is_refused_naming_the_part() {
    let (_source, _set, scratch, _, files) = packed_b_tar(&["--split", "10k", "--quiet"]);
    assert!(files.len() >= 4, "{:?}", scratch.files());
    let name = |i: usize| format!("b.tar.{i:03}");
    let expect = |args: &[&str], needle: &str| {
        let run = scratch.ferry(args).failed();
        let said = format!("{}{}", run.stdout, run.stderr);
        assert!(said.contains(needle), "{args:?}: {needle}\n{said}");
    };
    // Parts listed out of order, twice, or one left out.
    expect(
        &["inspect", &name(0), &name(2), &name(1)],
        "b.tar.002 is listed before b.tar.001",
    );
    expect(
        &["verify", &name(0), &name(1), &name(1)],
        "b.tar.001 is listed twice",
    );
    expect(
        &["inspect", &name(0), &name(1)],
        "b.tar.002 exists but was not listed",
    );
    expect(&["inspect", &name(1)], "open its first part, b.tar.000");
    // A middle part missing or short; the last part missing; a stale part.
    let hold = scratch.path("held");
    std::fs::rename(&files[1], &hold).unwrap();
    expect(&["inspect", &name(0)], "b.tar.001 is missing");
    std::fs::write(&files[1], &std::fs::read(&hold).unwrap()[..100]).unwrap();
    expect(
        &["unpack", &name(0), "--to", "localhost:1/x", "--dry-run"],
        "b.tar.001 is 100 bytes",
    );
    std::fs::rename(&hold, &files[1]).unwrap();
    let last = files.last().unwrap();
    std::fs::rename(last, &hold).unwrap();
    expect(
        &["verify", &name(0)],
        &format!("{} is missing", name(files.len() - 1)),
    );
    std::fs::rename(&hold, last).unwrap();
    std::fs::write(part_path(&scratch.path("b.tar"), files.len()), b"old").unwrap();
    expect(&["inspect", &name(0)], "is not listed in");
}

#[test]
fn issue_11_verify_names_a_bad_part_and_the_images_it_holds() {
    let (_source, _set, scratch, _, files) = packed_b_tar(&["--split", "10k", "--quiet"]);
    let run = scratch.ferry(["verify", "b.tar.000"]).ok();
    assert!(
        run.stdout.contains(&format!(
            "parts: {} data and 0 parity part(s) checked against b.tar.sha256: all match",
            files.len()
        )),
        "{}",
        run.stdout
    );
    // One byte flipped inside the biggest blob (a header flipped would
    // stop the archive from opening: then only the part is named).
    let archive = ferry_oci::LayoutArchive::open(&files[0]).unwrap();
    let blob = archive.blobs().max_by_key(|b| b.size).unwrap();
    let offset = blob.data_offset + blob.size / 2;
    let victim = &files[(offset / 10_000) as usize];
    let original = std::fs::read(victim).unwrap();
    let mut bytes = original.clone();
    bytes[(offset % 10_000) as usize] ^= 0x55;
    std::fs::write(victim, &bytes).unwrap();
    let run = scratch.ferry(["verify", "b.tar.000", "--json"]).failed();
    let report = run.json();
    let bad: Vec<&serde_json::Value> = report["archive"]["parts"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] != "ok")
        .collect();
    assert_eq!(bad.len(), 1, "{report:#}");
    assert_eq!(bad[0]["status"], "damaged");
    assert!(bad[0]["path"]
        .as_str()
        .unwrap()
        .ends_with(victim.file_name().unwrap().to_str().unwrap()));
    let problems = report["archive"]["problems"].as_array().unwrap();
    let named = problems
        .iter()
        .find(|p| {
            p["entry"]
                .as_str()
                .unwrap()
                .ends_with(victim.file_name().unwrap().to_str().unwrap())
        })
        .unwrap_or_else(|| panic!("no problem names the part: {report:#}"));
    let message = named["message"].as_str().unwrap();
    assert!(
        message.contains("is damaged")
            && message.contains("affects")
            && message.contains("fixtures/"),
        "{message}"
    );
    std::fs::write(victim, &original).unwrap();
    // Two parts swapped: each holds the other's content.
    let (a, b) = (
        std::fs::read(&files[1]).unwrap(),
        std::fs::read(&files[2]).unwrap(),
    );
    std::fs::write(&files[1], &b).unwrap();
    std::fs::write(&files[2], &a).unwrap();
    let run = scratch.ferry(["verify", "b.tar.000"]).failed();
    assert!(
        run.stdout.contains("b.tar.001: holds the content of")
            && run.stdout.contains("b.tar.002: holds the content of"),
        "{}",
        run.stdout
    );
    std::fs::write(&files[1], &a).unwrap();
    std::fs::write(&files[2], &b).unwrap();
    // The last part lost.
    let last = files.last().unwrap();
    std::fs::remove_file(last).unwrap();
    let run = scratch.ferry(["verify", "b.tar.000"]).failed();
    let name = last.file_name().unwrap().to_str().unwrap();
    assert!(
        run.stdout.contains(&format!("{name}: is missing")),
        "{}",
        run.stdout
    );
}

#[test]
fn issue_11_parity_parts_rebuild_damaged_and_lost_parts() {
    let (_source, set, scratch, run, files) = packed_b_tar(&["--split", "10k", "--parity", "2"]);
    assert!(run.stdout.contains("b.tar.p01"), "{}", run.stdout);
    let sums = std::fs::read_to_string(scratch.path("b.tar.sha256")).unwrap();
    assert!(
        sums.contains("  b.tar.p00\n") && sums.contains("  b.tar.p01\n"),
        "{sums}"
    );
    // Parity parts are named apart: `cat b.tar.[0-9]*` is still the bundle.
    let whole = sums
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let cat = sh(
        scratch.dir(),
        "cat b.tar.[0-9]* | sha256sum && sha256sum -c --ignore-missing b.tar.sha256",
    );
    assert!(cat.status.success(), "{cat:?}");
    assert!(String::from_utf8_lossy(&cat.stdout).starts_with(&format!("{whole}  -")));
    let run = scratch.ferry(["verify", "b.tar.000"]).ok();
    assert!(
        run.stdout.contains("and 2 parity part(s) checked"),
        "{}",
        run.stdout
    );

    // One byte flipped in one part: verify names it and says it can be
    // repaired; repair fixes it; unpack then succeeds.
    let victim = &files[1];
    let original = std::fs::read(victim).unwrap();
    let mut bytes = original.clone();
    bytes[1234] ^= 0x01;
    std::fs::write(victim, &bytes).unwrap();
    let run = scratch.ferry(["verify", "b.tar.000"]).failed();
    assert!(
        run.stdout.contains("b.tar.001: is damaged")
            && run
                .stdout
                .contains("`ferry repair b.tar.000` rebuilds them")
            && run.stdout.contains("1 bad, repairable"),
        "{}",
        run.stdout
    );
    let run = scratch.ferry(["repair", "b.tar.000"]).ok();
    assert!(run.stdout.contains("rebuilt b.tar.001"), "{}", run.stdout);
    assert_eq!(std::fs::read(victim).unwrap(), original);
    scratch.ferry(["verify", "b.tar.000"]).ok();
    let target = RegistryProcess::start();
    let to = format!("{}/repaired", target.host());
    scratch
        .ferry([
            "unpack",
            "b.tar.000",
            "--to",
            &to,
            "--plain-http",
            &target.host(),
        ])
        .ok();
    assert_served(&target, &to, &set);

    // `cat b.tar.* |` also sends the parity parts and the checksum file
    // after the bundle: unpack stops at the archive's end, and the
    // receipt's sha256 is the bundle's, not the whole stream's.
    let to = format!("{}/catted", target.host());
    let piped = sh(
        scratch.dir(),
        &format!(
            "cat b.tar.* | \"$FERRY\" unpack - --to {to} --plain-http {} --receipt r.json",
            target.host()
        ),
    );
    assert!(piped.status.success(), "{piped:?}");
    assert_served(&target, &to, &set);
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(
        stderr.contains("after the end of the archive: ignored")
            && stderr.contains("cat OUT.tar.[0-9]*"),
        "{stderr}"
    );
    let receipt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(scratch.path("r.json")).unwrap()).unwrap();
    assert_eq!(receipt["bundles"], serde_json::json!([whole]));

    // Two parts lost (a data part and a parity part) and then two data
    // parts: parity 2 rebuilds both, byte for byte.
    let before: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let p1 = std::fs::read(scratch.path("b.tar.p01")).unwrap();
    std::fs::remove_file(&files[0]).unwrap();
    std::fs::remove_file(scratch.path("b.tar.p01")).unwrap();
    scratch.ferry(["repair", "b.tar"]).ok();
    assert_eq!(std::fs::read(&files[0]).unwrap(), before[0]);
    assert_eq!(std::fs::read(scratch.path("b.tar.p01")).unwrap(), p1);
    let last = files.len() - 1;
    std::fs::remove_file(&files[2]).unwrap();
    std::fs::remove_file(&files[last]).unwrap();
    let run = scratch.ferry(["verify", "b.tar.000"]).failed();
    assert!(run.stdout.contains("2 bad, repairable"), "{}", run.stdout);
    scratch.ferry(["repair", "b.tar.000"]).ok();
    for (p, b) in files.iter().zip(&before) {
        assert_eq!(&std::fs::read(p).unwrap(), b, "{}", p.display());
    }
    // Three bad parts with two parity parts: refused, nothing replaced.
    for p in &files[3..6] {
        std::fs::write(p, b"junk").unwrap();
    }
    let run = scratch.ferry(["repair", "b.tar.000"]).failed();
    assert!(run.stderr.contains("cannot repair: 3 of"), "{}", run.stderr);
    assert_eq!(std::fs::read(&files[3]).unwrap(), b"junk");
    let run = scratch.ferry(["verify", "b.tar.000"]).failed();
    assert!(
        run.stdout.contains("3 bad, not repairable"),
        "{}",
        run.stdout
    );
}
