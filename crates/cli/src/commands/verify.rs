//! `ferry verify`: a bundle checked offline, a relocation checked against
//! the target registry, or both.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use ferry_audit::{MappingOptions, MappingReport, Problem, VerifyOptions, VerifyReport};
use serde::Serialize;

use super::common::{self, human_bytes};
use super::inspect::print_table;
use crate::args::VerifyArgs;
use crate::progress;

/// The JSON document `ferry verify --json` prints.
#[derive(Serialize)]
struct Output<'a> {
    ok: bool,
    archive: Option<&'a VerifyReport>,
    mapping: Option<&'a MappingReport>,
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    if args.bundle.is_empty() && args.mapping.is_none() {
        anyhow::bail!("nothing to verify: give a BUNDLE, --mapping FILE, or both");
    }
    let bundle = match args.bundle.is_empty() {
        true => None,
        false => Some(common::bundle_path(&args.bundle)?),
    };
    let sigs = &args.signatures;
    if bundle.is_none() && !(sigs.bundle_key.is_empty() && sigs.require_signature.is_empty()) {
        anyhow::bail!("--bundle-key and --require-signature check a BUNDLE; give one");
    }
    let mapping = match &args.mapping {
        Some(path) => Some(ferry_audit::Mapping::load(path)?),
        None => None,
    };
    let client = match mapping {
        Some(_) => Some(common::client(&args.registry)?),
        None => None,
    };
    let archive = match &bundle {
        Some(path) => {
            let options = VerifyOptions {
                jobs: std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
                progress: progress::for_output(&args.output_format),
                bundle_keys: common::keyring(&args.signatures.bundle_key)?,
                image_keys: common::keyring(&args.signatures.require_signature)?,
            };
            let path = path.clone();
            let report =
                tokio::task::spawn_blocking(move || ferry_audit::verify_archive(&path, &options))
                    .await
                    .context("the verify thread failed")?;
            Some(report)
        }
        None => None,
    };
    let relocation = match (&mapping, &client) {
        (Some(mapping), Some(client)) => {
            let bundle = archive.as_ref().and_then(|a| a.bundle.as_ref());
            Some(
                ferry_audit::verify_mapping(client, mapping, bundle, MappingOptions::default())
                    .await,
            )
        }
        _ => None,
    };
    let ok = archive.iter().all(|a| a.ok) && relocation.iter().all(|m| m.ok);
    if args.output_format.json {
        common::print_json(&Output {
            ok,
            archive: archive.as_ref(),
            mapping: relocation.as_ref(),
        })?;
    } else {
        let mut out = std::io::stdout().lock();
        if let (Some(a), Some(path)) = (&archive, &bundle) {
            print_archive(
                &mut out,
                a,
                &path.display().to_string(),
                args.output_format.quiet,
            )?;
        }
        if let (Some(m), Some(path)) = (&relocation, &args.mapping) {
            print_mapping(&mut out, m, &path.display().to_string())?;
        }
        out.flush()?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_problems(out: &mut impl Write, problems: &[Problem]) -> std::io::Result<()> {
    for p in problems {
        writeln!(out, "{p}")?;
    }
    Ok(())
}

fn print_archive(
    out: &mut impl Write,
    a: &VerifyReport,
    path: &str,
    quiet: bool,
) -> anyhow::Result<()> {
    if let (Some(bundle), false) = (&a.bundle, quiet) {
        print_table(out, bundle)?;
        writeln!(out)?;
    }
    if let Some(s) = &a.bundle_signature {
        writeln!(
            out,
            "bundle signature {}: holds, sha256 {} signed by key {} ({})",
            s.file, s.sha256, s.key, s.key_file
        )?;
    }
    if let Some(report) = &a.signatures {
        print_signatures(out, report)?;
    }
    print_problems(out, &a.problems)?;
    if let Some(parts) = &a.parts {
        let bad = parts.bad().count();
        writeln!(
            out,
            "parts: {} data and {} parity part(s) checked against {}: {}",
            parts.parts.len(),
            parts.parity.len(),
            parts.checksums.display(),
            match (bad, parts.repairable) {
                (0, _) => "all match".to_string(),
                (_, true) => format!("{bad} bad, repairable with `ferry repair`"),
                (_, false) => format!("{bad} bad, not repairable"),
            }
        )?;
    }
    if a.problems_omitted > 0 {
        writeln!(out, "... and {} more problem(s)", a.problems_omitted)?;
    }
    let mut hashed = format!(
        "{} blob(s), {} hashed",
        a.blobs_hashed,
        human_bytes(a.bytes_hashed)
    );
    if let Some(delta) = a.bundle.as_ref().and_then(|b| b.delta.as_ref()) {
        let bases: Vec<String> = delta.bases.iter().map(|b| b.describe()).collect();
        writeln!(
            out,
            "{path} is a delta: the target must already hold {} blob(s) ({}) from {}",
            delta.blobs_expected,
            human_bytes(delta.bytes_expected),
            bases.join(", ")
        )?;
        hashed.push_str("; delta");
    }
    if a.ok {
        writeln!(
            out,
            "verify {path}: OK: {hashed}; {} warning(s)",
            a.warnings
        )?;
    } else {
        writeln!(
            out,
            "verify {path}: FAILED: {} error(s), {} warning(s); {hashed}",
            a.errors, a.warnings
        )?;
    }
    Ok(())
}

/// Who signed what: one line per signature of each image and of each
/// platform child that has its own.
pub fn print_signatures(
    out: &mut impl Write,
    report: &ferry_sign::SignatureReport,
) -> std::io::Result<()> {
    for image in &report.images {
        let status = if image.ok { "signed  " } else { "UNSIGNED" };
        writeln!(out, "{status} {} {}", image.reference, image.digest)?;
        for s in &image.signatures {
            writeln!(out, "    {} {}", s.signature, s.outcome)?;
        }
        for child in &image.children {
            writeln!(
                out,
                "    platform {} {}:",
                child.platform.as_deref().unwrap_or("?"),
                child.digest
            )?;
            for s in &child.signatures {
                writeln!(out, "      {} {}", s.signature, s.outcome)?;
            }
        }
    }
    Ok(())
}

fn print_mapping(out: &mut impl Write, m: &MappingReport, path: &str) -> anyhow::Result<()> {
    for c in &m.references {
        let mut line = format!(
            "{} {} -> {} ({} manifest(s), {} blob(s))",
            if c.ok { "ok    " } else { "FAILED" },
            c.original,
            c.relocated,
            c.manifests,
            c.blobs
        );
        if !c.platforms_not_carried.is_empty() {
            line.push_str(&format!(
                " (not carried: {})",
                c.platforms_not_carried.join(",")
            ));
        }
        writeln!(out, "{line}")?;
    }
    print_problems(out, &m.problems)?;
    if m.ok {
        writeln!(
            out,
            "verify --mapping {path}: OK: {} reference(s) hold",
            m.references.len()
        )?;
    } else {
        writeln!(
            out,
            "verify --mapping {path}: FAILED: {} error(s)",
            m.errors
        )?;
    }
    Ok(())
}
