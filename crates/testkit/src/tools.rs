//! External tools the tests drive (skopeo, podman, openssl, …): a test
//! that needs one asks for it with [`require_tool`] and fails, saying what
//! to install, when it is missing. A test never passes by skipping: a
//! machine without the tool would otherwise test nothing and report green.
//! `scripts/install-deps.sh` installs every tool the tests name.
//!
//! What other tools made once is committed under `fixtures/` instead
//! ([`fixture_path`]), so most tests need no tool at all.

use std::path::{Path, PathBuf};

/// Where `tool` is on `PATH`, if it is there as an executable file.
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Panic, failing the test, unless `tool` is on `PATH`; `install` says how
/// to get it (`"apt-get install skopeo"`). Returns the tool's path.
pub fn require_tool(tool: &str, install: &str) -> PathBuf {
    find_tool(tool).unwrap_or_else(|| {
        panic!(
            "this test needs `{tool}`, which is not installed: run scripts/install-deps.sh \
             (as root), or {install}"
        )
    })
}

/// A committed file under the workspace's `fixtures/` (see
/// `fixtures/README.md`; `fixtures/make.sh` regenerates them), checked to
/// exist.
pub fn fixture_path(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name);
    assert!(
        path.is_file(),
        "fixture {} is missing: run fixtures/make.sh",
        path.display()
    );
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_fixtures_are_found() {
        assert!(fixture_path("skopeo-base.tar").ends_with("fixtures/skopeo-base.tar"));
    }

    #[test]
    fn finds_a_tool_every_machine_has() {
        assert!(find_tool("sh").is_some());
        assert_eq!(require_tool("sh", "-"), find_tool("sh").unwrap());
    }

    #[test]
    #[should_panic(expected = "apt-get install no-such-package")]
    fn a_missing_tool_fails_saying_what_to_install() {
        require_tool("ferry-no-such-tool", "apt-get install no-such-package");
    }
}
