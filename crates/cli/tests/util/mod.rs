//! Running the real `ferry` binary in a scratch directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch directory and the `ferry` binary built for these tests.
pub struct Scratch {
    dir: tempfile::TempDir,
}

/// What one run printed and how it ended.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panic with everything printed unless the run succeeded.
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code,
            Some(0),
            "ferry failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panic unless the run failed with exit code 1.
    pub fn failed(self) -> Run {
        assert_eq!(
            self.code,
            Some(1),
            "ferry should have failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// The stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `ferry ARGS...` with the scratch dir as working directory and an
    /// empty docker config (no credentials from the machine).
    pub fn ferry<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let output = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .current_dir(self.dir.path())
            .env("DOCKER_CONFIG", self.dir.path().join(".docker"))
            .env_remove("RUST_LOG")
            .output()
            .expect("run ferry");
        Run::from(output)
    }

    /// The `ferry ARGS...` command [`Scratch::ferry`] runs, not started:
    /// for a test that must stop it midway.
    pub fn ferry_command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("DOCKER_CONFIG", self.dir.path().join(".docker"))
            .env_remove("RUST_LOG");
        command
    }

    /// [`Scratch::ferry`] with `input` on standard input.
    pub fn ferry_stdin<I, S>(&self, args: I, input: &[u8]) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .current_dir(self.dir.path())
            .env("DOCKER_CONFIG", self.dir.path().join(".docker"))
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run ferry");
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        // ferry may stop reading early (a refused archive): not an error here.
        let writer = std::thread::spawn(move || drop(stdin.write_all(&input)));
        let output = child.wait_with_output().expect("run ferry");
        writer.join().unwrap();
        Run::from(output)
    }

    /// Names of the files in the scratch dir (not hidden ones).
    pub fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// Every entry name of a tar file, in order.
pub fn tar_entries(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(file);
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// podman with all its state under `root` (vfs storage, no cgroups or
/// events), so tests leave nothing behind; its trimmed stdout, or a panic
/// naming the command and podman's stderr.
pub fn podman(root: &Path, args: &[&str]) -> String {
    let out = Command::new("podman")
        .arg("--root")
        .arg(root.join("storage"))
        .arg("--runroot")
        .arg(root.join("run"))
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
        ])
        .args(args)
        .env("HOME", root)
        .output()
        .expect("run podman");
    assert!(
        out.status.success(),
        "podman {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
