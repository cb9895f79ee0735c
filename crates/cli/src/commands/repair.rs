//! `ferry repair`: lost or damaged parts of a split bundle rebuilt from its
//! parity parts, offline, each checked against `OUT.sha256` before it
//! replaces anything.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use ferry_oci::layout::split_part_path;

use super::common;
use crate::args::RepairArgs;
use crate::progress;

pub async fn run(args: RepairArgs) -> anyhow::Result<ExitCode> {
    let base = match split_part_path(&args.bundle) {
        Some((base, 0)) => base,
        Some(_) => anyhow::bail!(
            "{} is not the first part; give OUT.tar.000 or OUT.tar",
            args.bundle.display()
        ),
        None => args.bundle.clone(),
    };
    let progress = progress::for_output(&args.output_format);
    let task = {
        let base = base.clone();
        tokio::task::spawn_blocking(move || ferry_parity::repair(&base, progress.as_ref()))
    };
    let repaired = task
        .await
        .context("the repair thread failed")?
        .with_context(|| format!("repairing {}", base.display()))?;
    if args.output_format.json {
        common::print_json(&repaired)?;
    } else if !args.output_format.quiet {
        let mut out = std::io::stdout().lock();
        for path in &repaired.rebuilt {
            writeln!(out, "rebuilt {} (matches its checksum)", path.display())?;
        }
        if repaired.rebuilt.is_empty() {
            writeln!(
                out,
                "repair {}: all {} parts intact, nothing to do",
                base.display(),
                repaired.checked
            )?;
        } else {
            writeln!(
                out,
                "repair {}: {} of {} parts rebuilt",
                base.display(),
                repaired.rebuilt.len(),
                repaired.checked
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
