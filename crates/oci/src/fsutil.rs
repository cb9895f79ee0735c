//! Files that appear whole or not at all: the one atomic-write helper every
//! crate uses for what ferry leaves on disk (bundle, `OUT.sha256`, mapping).
//!
//! A file is written under a temporary name in its target's directory,
//! flushed to disk (`fsync`), made readable (0644: bundles and mappings are
//! meant to be shared), renamed over the target, and the directory is
//! flushed too, so after a crash the name holds either the old file or the
//! complete new one — never a torn or empty one.
//!
//! A file worth keeping when a run fails (a resumable pack's partial
//! bundle) is written under a fixed name beside its target instead
//! ([`open_partial`]), locked so that two runs never write it at once, and
//! moved into place the same way ([`persist_file`]).

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tempfile::NamedTempFile;

/// How much to read at once from a file whose bytes are hashed: small
/// enough that the buffer stays in the core's L2 cache (512 KiB a core on
/// the bench machine, a Zen 3 EPYC) from the copy out of the page cache to
/// the hash. Reading a cached 1 GB file there took 0.39 s with 1 MiB reads
/// and 256 KiB ones, 0.09 s with 128 KiB ones; reading it and hashing it
/// twice over, 1.12 s and 0.84 s.
pub const HASH_READ: usize = 128 << 10;

/// The directory `path` is in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A temporary file in `path`'s directory, named `.<file name>.<random>`
/// plus `suffix`, removed on drop unless [`persist`]ed.
pub fn temp_beside(path: &Path, suffix: &str) -> io::Result<NamedTempFile> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(suffix)
        .tempfile_in(parent_dir(path))
}

/// Make `temp` the file at `path`, durably: fsync it, give it the mode of
/// the file it replaces (0644 for a new file: a file rewritten in place
/// keeps who may read it), rename it over `path`, fsync the directory.
pub fn persist(temp: NamedTempFile, path: &Path) -> io::Result<()> {
    make_ready(temp.as_file(), temp.path(), path)?;
    temp.persist(path).map_err(|e| e.error)?;
    sync_dir(parent_dir(path))
}

/// [`persist`] for a file under a fixed name (from [`open_partial`]):
/// fsync `file` (open at `from`), give it the mode of the file it replaces,
/// rename it over `to`, fsync the directory.
pub fn persist_file(file: &File, from: &Path, to: &Path) -> io::Result<()> {
    make_ready(file, from, to)?;
    std::fs::rename(from, to)?;
    sync_dir(parent_dir(to))
}

/// fsync, and the mode of the file at `target` (0644 for a new one).
fn make_ready(file: &File, path: &Path, target: &Path) -> io::Result<()> {
    file.sync_all()?;
    let permissions = match std::fs::metadata(target) {
        Ok(meta) if meta.is_file() => meta.permissions(),
        _ => std::fs::Permissions::from_mode(0o644),
    };
    std::fs::set_permissions(path, permissions)
}

/// Open (or create) the file at `path` for reading and writing, keeping
/// what it holds, and lock it for this process alone (an advisory `flock`,
/// released when the file is closed, the process killed included). A file
/// another process holds fails with [`io::ErrorKind::WouldBlock`] and is
/// left untouched. Not a symlink, a directory or a device: a partial file
/// is a plain file ferry made.
pub fn open_partial(path: &Path) -> io::Result<File> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file (remove it)",
            ));
        }
    }
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |e| match io::Error::from(e) {
            e if e.kind() == io::ErrorKind::WouldBlock => io::Error::new(
                io::ErrorKind::WouldBlock,
                "another process is writing it (is another ferry running with the same output?)",
            ),
            e => e,
        },
    )?;
    Ok(file)
}

/// Remove the file at `path`; one already gone is not an error.
pub fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Write `bytes` to `path` atomically and durably (see the module docs).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut temp = temp_beside(path, ".partial")?;
    temp.write_all(bytes)?;
    persist(temp, path)
}

/// Flush a directory's entries (a rename in it) to disk.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewriting_keeps_the_replaced_files_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.yaml");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn missing_directory_fails_without_writing() {
        assert!(write_atomic(Path::new("/nonexistent/dir/x"), b"x").is_err());
    }

    #[test]
    fn replaces_whole_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        std::fs::write(&path, "old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_directory_fails_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/out.json");
        assert!(write_atomic(&path, b"x").is_err());
        assert!(!path.exists());
    }

    #[test]
    fn a_temp_file_dropped_unpersisted_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bundle.tar");
        let temp = temp_beside(&path, ".partial").unwrap();
        let name = temp
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            name.starts_with(".bundle.tar.") && name.ends_with(".partial"),
            "{name}"
        );
        drop(temp);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_partial_file_keeps_its_bytes_is_locked_and_moves_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join("b.tar.partial");
        let target = dir.path().join("b.tar");
        std::fs::write(&partial, b"kept").unwrap();
        let file = open_partial(&partial).unwrap();
        let mut bytes = String::new();
        std::io::Read::read_to_string(&mut &file, &mut bytes).unwrap();
        assert_eq!(bytes, "kept");
        let again = open_partial(&partial).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::WouldBlock, "{again}");
        persist_file(&file, &partial, &target).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"kept");
        assert!(!partial.exists());
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        drop(file);
        // Closed: the lock is gone with it.
        drop(open_partial(&target).unwrap());
        std::os::unix::fs::symlink(&target, &partial).unwrap();
        assert!(open_partial(&partial).is_err());
        remove_if_there(&partial).unwrap();
        remove_if_there(&partial).unwrap();
    }

    #[test]
    fn a_bare_file_name_is_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("m.json")), Path::new("."));
        assert_eq!(parent_dir(Path::new("a/m.json")), Path::new("a"));
    }
}
