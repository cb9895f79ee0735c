//! Settling arguments shared by several commands.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use ferry_oci::Reference;
use ferry_registry::{Client, ClientConfig, RetryPolicy};
use serde::Serialize;

use crate::args::RegistryArgs;

/// A registry client configured from the flags.
pub fn client(args: &RegistryArgs) -> anyhow::Result<Client> {
    for host in args.plain_http.iter().chain(&args.insecure) {
        if host.is_empty() || host.contains('/') || host.contains("://") {
            bail!("--plain-http and --insecure take a host or host:port, not {host:?}");
        }
    }
    if args.retries == 0 {
        bail!("--retries must be at least 1 (1 means no retry)");
    }
    if args.timeout == 0 || args.timeout > 3600 {
        bail!("--timeout must be between 1 and 3600 seconds");
    }
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
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let r =
                Reference::parse(line).with_context(|| format!("{}:{}", file.display(), n + 1))?;
            out.push(r);
        }
    }
    Ok(out)
}

/// The bundle named on the command line: one file, or the first part of a
/// split bundle given as its first part or as all its parts (checked: one
/// set, in order, none missing or twice).
pub fn bundle_path(paths: &[PathBuf]) -> anyhow::Result<PathBuf> {
    Ok(ferry_oci::layout::PartSet::check_list(paths)?)
}

/// The smallest `--split` part size.
pub const MIN_PART_SIZE: u64 = 512;

/// A size as `--split` takes it: bytes, or a number (fractions allowed)
/// with a unit; K, M, G, T are powers of 1000 (media are sold so: a 4.7G
/// DVD, a 25G Blu-ray), Ki, Mi, Gi, Ti powers of 1024; a trailing `B` is
/// allowed; `fat32` is the largest file FAT32 holds (4 GiB - 1).
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("fat32") {
        return Ok((4 << 30) - 1);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim();
    let unit = unit
        .strip_suffix('B')
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" => 1,
        "k" => 1_000,
        "m" => 1_000_000,
        "g" => 1_000_000_000,
        "t" => 1_000_000_000_000,
        "ki" => 1 << 10,
        "mi" => 1 << 20,
        "gi" => 1 << 30,
        "ti" => 1 << 40,
        _ => bail!(
            "--split {text:?}: unknown unit {unit:?}; use bytes or K, M, G, T (powers of 1000), \
             Ki, Mi, Gi, Ti (powers of 1024), e.g. 4.7G or 4Gi"
        ),
    };
    let value: f64 = number
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .with_context(|| format!("--split {text:?}: expected a size such as 4G, 4.7G or 650M"))?;
    let bytes = value * factor as f64;
    if bytes >= u64::MAX as f64 {
        bail!("--split {text:?} is too large");
    }
    let bytes = bytes.floor() as u64;
    if bytes < MIN_PART_SIZE {
        bail!("--split {text:?}: parts must be at least {MIN_PART_SIZE} bytes");
    }
    Ok(bytes)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_decimal_or_binary_by_their_unit() {
        for (text, bytes) in [
            ("4G", 4_000_000_000),
            ("4.7G", 4_700_000_000),
            ("25GB", 25_000_000_000),
            ("650M", 650_000_000),
            ("4Gi", 4 << 30),
            ("1.5KiB", 1536),
            ("fat32", (4 << 30) - 1),
            ("4096", 4096),
        ] {
            assert_eq!(parse_size(text).unwrap(), bytes, "{text}");
        }
        for bad in ["", "G", "4X", "-1G", "1.2.3M", "100", "1e30T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
