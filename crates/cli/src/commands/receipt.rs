//! `ferry receipt`: what a registry loaded earlier holds of a bundle, by
//! HEAD requests only.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use ferry_oci::{Naming, RelocationTarget};
use ferry_unpack::SparseMode;

use super::common;
use crate::args::ReceiptArgs;

pub async fn run(args: ReceiptArgs) -> anyhow::Result<ExitCode> {
    let target = RelocationTarget::parse(&args.to)?;
    let naming = Naming::from(args.naming);
    if args.bundle.as_os_str() == "-" {
        anyhow::bail!("ferry receipt needs the bundle as a file (its sha256 goes in the receipt)");
    }
    let client = common::client(&args.registry)?;
    let bundle = args.bundle.clone();
    let (plan, sha256) = tokio::task::spawn_blocking(move || {
        let plan = ferry_unpack::plan_bundle(&bundle, &target, naming, SparseMode::Keep)?;
        let sha256 = ferry_oci::bases::file_sha256(&bundle, false)?;
        Ok::<_, anyhow::Error>((plan, sha256))
    })
    .await?
    .with_context(|| format!("reading {}", args.bundle.display()))?;
    let receipt = ferry_unpack::collect_receipt(&client, &plan, vec![sha256], 8)
        .await
        .with_context(|| format!("asking {} what it holds", plan.target))?;
    ferry_unpack::write_receipt(&args.output, &receipt)?;
    if args.output_format.json {
        common::print_json(&receipt)?;
    } else if !args.output_format.quiet {
        writeln!(
            std::io::stdout().lock(),
            "{} holds {} of {} manifest(s) and {} of {} blob(s) of {}\nwrote receipt {}",
            plan.target,
            receipt.manifests.len(),
            plan.manifest_count,
            receipt.blobs.len(),
            plan.blob_count,
            args.bundle.display(),
            args.output.display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
