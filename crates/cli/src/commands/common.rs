//! Settling arguments shared by several commands.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use ferry_oci::Reference;
use ferry_registry::{Client, ClientConfig, RetryPolicy};
use serde::Serialize;

use crate::args::RegistryArgs;

/// The keys of a repeatable key flag, loaded now so a bad key file stops the
/// command before any work; `None` when the flag was not given.
pub fn keyring(paths: &[std::path::PathBuf]) -> anyhow::Result<Option<ferry_sign::Keyring>> {
    if paths.is_empty() {
        return Ok(None);
    }
    Ok(Some(ferry_sign::Keyring::load(paths)?))
}

/// A registry client configured from the flags.
pub fn client(args: &RegistryArgs) -> anyhow::Result<Client> {
    let config = ClientConfig {
        plain_http: args.plain_http.clone(),
        insecure: args.insecure.clone(),
        ca_certs: args.ca_cert.clone(),
        docker_config_dir: args.docker_config.clone(),
        retry: RetryPolicy {
            attempts: args.retries,
            ..RetryPolicy::default()
        },
        read_timeout: Duration::from_secs(args.timeout),
        ..ClientConfig::default()
    };
    Ok(Client::new(config)?)
}

/// References from the command line and from `--images-file` files.
pub fn references(images: &[String], files: &[impl AsRef<Path>]) -> anyhow::Result<Vec<Reference>> {
    let mut out = Vec::new();
    for image in images {
        out.push(Reference::parse(image)?);
    }
    for file in files {
        let file = file.as_ref();
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read images file {}", file.display()))?;
        let list = ferry_deploy::parse_image_list(&text)
            .map_err(|(line, e)| anyhow::anyhow!("{}:{line}: {e}", file.display()))?;
        out.extend(list.into_iter().map(|(_, r)| r));
    }
    Ok(out)
}

/// The bundle named on the command line: one file, or the first part of a
/// split bundle given as its first part or as all its parts (checked: one
/// set, in order, none missing or twice).
pub fn bundle_path(paths: &[PathBuf]) -> anyhow::Result<PathBuf> {
    Ok(ferry_oci::layout::PartSet::check_list(paths)?)
}

/// Print `value` as one pretty JSON document on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Bytes in a human unit.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// What a command wrote as a bundle: files of an earlier one removed, each
/// part with its sha256, the bundle's size and sha256, and where the
/// checksums are (`pack`, `merge`).
pub fn print_written(
    out: &mut impl std::io::Write,
    output: &Path,
    parts: &[ferry_pack::WrittenPart],
    removed: &[PathBuf],
    archive_bytes: u64,
    sha256: &str,
) -> std::io::Result<()> {
    for path in removed {
        writeln!(
            out,
            "removed {} (left by an earlier bundle)",
            path.display()
        )?;
    }
    for part in parts {
        writeln!(
            out,
            "wrote {} ({}) sha256 {}",
            part.path.display(),
            human_bytes(part.size),
            part.sha256
        )?;
    }
    let what = if parts.is_empty() {
        format!("wrote {}", output.display())
    } else {
        format!("{} in {} part(s):", output.display(), parts.len())
    };
    writeln!(
        out,
        "{what} ({})\nsha256 {sha256} (checksums in {})",
        human_bytes(archive_bytes),
        ferry_oci::layout::checksum_path(output).display()
    )
}
