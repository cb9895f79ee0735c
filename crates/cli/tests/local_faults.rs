//! Local faults at `ferry pack`: an output directory that cannot be
//! written, an output path that is a directory, a full disk. Each gives a
//! clear error, leaves no partial file, and an existing good bundle is left
//! untouched.
//!
//! The tests run as root in CI, and root ignores permission bits, so "not
//! writable" is made with what really fails as root: a path under a regular
//! file, and a read-only tmpfs mount. The disk is filled with a small tmpfs.
//! Where mounting is not allowed those tests say so and skip.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

use ferry_testkit::{require_tool, FixtureOptions, FixtureSet, RegistryProcess};
use util::Scratch;

fn source() -> (RegistryProcess, FixtureSet) {
    let registry = RegistryProcess::start();
    // A 1 MiB layer makes the bundle of everything much bigger than one
    // small image's, to fill a disk with.
    let fixtures = registry.push_fixtures_with(FixtureOptions {
        big_layer_bytes: Some(1024 * 1024),
    });
    (registry, fixtures)
}

fn pack(scratch: &Scratch, registry: &RegistryProcess, refs: &[String], out: &Path) -> util::Run {
    let mut args: Vec<String> = vec!["pack".into(), "--plain-http".into(), registry.host()];
    args.extend(refs.iter().cloned());
    args.push("-o".into());
    args.push(out.to_string_lossy().into_owned());
    scratch.ferry(args)
}

/// Names in `dir`, hidden ones too.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A tmpfs mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    /// Mount one, or fail the test saying what it needs: these tests fill
    /// and freeze a real filesystem, which takes mount(8) and root.
    fn mount(options: &str) -> Tmpfs {
        let mount = require_tool("mount", "apt-get install mount");
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("mnt");
        std::fs::create_dir(&dir).unwrap();
        let out = Command::new(mount)
            .args(["-t", "tmpfs", "-o", options, "ferry-test"])
            .arg(&dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs ({}): run these tests as root (or with CAP_SYS_ADMIN)",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs {
            dir,
            _parent: parent,
        }
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(status.success(), "remount {options}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

#[test]
fn output_under_a_regular_file_is_a_clear_error() {
    let (registry, fixtures) = source();
    let scratch = Scratch::new();
    std::fs::write(scratch.path("notes.txt"), b"not a directory").unwrap();
    let refs = [fixtures.image("fixtures/base:1").reference.clone()];
    let run = pack(
        &scratch,
        &registry,
        &refs,
        &scratch.path("notes.txt/bundle.tar"),
    )
    .failed();
    assert!(run.stderr.contains("notes.txt"), "{}", run.stderr);
    assert!(run.stderr.contains("Not a directory"), "{}", run.stderr);
    assert!(
        run.stderr.contains("no bundle was written"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read(scratch.path("notes.txt")).unwrap(),
        b"not a directory"
    );
}

#[test]
fn output_that_is_a_directory_is_refused() {
    let (registry, fixtures) = source();
    let scratch = Scratch::new();
    std::fs::create_dir(scratch.path("out.tar")).unwrap();
    std::fs::write(scratch.path("out.tar/keep"), b"x").unwrap();
    let refs = [fixtures.image("fixtures/base:1").reference.clone()];
    let run = pack(&scratch, &registry, &refs, &scratch.path("out.tar")).failed();
    assert!(
        run.stderr
            .contains("cannot write the bundle over the directory"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("out.tar"), "{}", run.stderr);
    assert_eq!(names(&scratch.path("out.tar")), ["keep"]);
    assert!(!names(scratch.dir()).iter().any(|n| n.contains("partial")));
}

#[test]
fn a_read_only_output_directory_keeps_the_existing_bundle() {
    let (registry, fixtures) = source();
    let fs = Tmpfs::mount("size=16m");
    let scratch = Scratch::new();
    let refs = [fixtures.image("fixtures/base:1").reference.clone()];
    let out = fs.dir.join("bundle.tar");
    pack(&scratch, &registry, &refs, &out).ok();
    let good = std::fs::read(&out).unwrap();
    let before = names(&fs.dir);
    fs.remount("ro");
    let run = pack(&scratch, &registry, &fixtures.references(), &out).failed();
    assert!(run.stderr.contains("Read-only"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&fs.dir.display().to_string()),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&out).unwrap(), good);
    assert_eq!(names(&fs.dir), before);
}

#[test]
fn a_full_disk_leaves_no_partial_file_and_the_old_bundle_intact() {
    let (registry, fixtures) = source();
    let scratch = Scratch::new();
    // The size of the bundle of everything, to size the disk below it.
    let everything = scratch.path("everything.tar");
    pack(&scratch, &registry, &fixtures.references(), &everything).ok();
    let full_size = std::fs::metadata(&everything).unwrap().len();
    let base = [fixtures.image("fixtures/base:1").reference.clone()];
    pack(&scratch, &registry, &base, &scratch.path("base.tar")).ok();
    let small_size = std::fs::metadata(scratch.path("base.tar")).unwrap().len();
    assert!(small_size * 4 < full_size, "the fixtures changed shape");

    // Room for the small bundle and its checksum, not for the big one.
    let size_k = (small_size + full_size / 2) / 1024 + 8;
    let fs = Tmpfs::mount(&format!("size={size_k}k"));
    let out = fs.dir.join("bundle.tar");
    pack(&scratch, &registry, &base, &out).ok();
    let good = std::fs::read(&out).unwrap();
    let before = names(&fs.dir);

    let run = pack(&scratch, &registry, &fixtures.references(), &out).failed();
    assert!(
        run.stderr.contains("No space left on device"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("no bundle was written"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&out).unwrap(), good);
    assert_eq!(names(&fs.dir), before, "a partial file was left behind");
}
