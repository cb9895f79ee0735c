//! `ferry unpack`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use ferry_oci::{Naming, RelocationTarget};
use ferry_unpack::{Plan, SignaturePolicy, SparseMode, UnpackOptions, UnpackSummary};

use super::common::{self, human_bytes};
use crate::args::UnpackArgs;
use crate::progress;

pub async fn run(args: UnpackArgs) -> anyhow::Result<ExitCode> {
    let target = match args.max_depth {
        Some(depth) => args.to.clone().with_max_depth(depth),
        None => args.to.clone(),
    };
    let naming = Naming::from(args.naming);
    let sparse = SparseMode::from(args.sparse);
    let bundle = common::bundle_path(&args.bundle)?;
    let signatures = SignaturePolicy {
        bundle_keys: common::keyring(&args.signatures.bundle_key)?,
        image_keys: common::keyring(&args.signatures.require_signature)?,
    };
    if args.dry_run {
        ferry_unpack::check_signatures(&bundle, &signatures)
            .with_context(|| format!("checking the signatures of {}", bundle.display()))?;
        return dry_run(&args, &bundle, &target, naming, sparse);
    }
    let client = common::client(&args.registry)?;
    if args.check {
        return check(&args, &bundle, &client, &target, naming, sparse).await;
    }
    let options = UnpackOptions {
        bundle: bundle.clone(),
        target,
        naming,
        sparse,
        jobs: args.jobs,
        mapping: args.mapping.clone(),
        existing_tag: args.existing_tag.into(),
        receipt: args.receipt.clone(),
        signatures,
    };
    let progress = progress::for_output(&args.output_format);
    let summary = ferry_unpack::unpack(&client, &options, progress)
        .await
        .with_context(|| {
            format!(
                "unpacking {} into {} failed",
                bundle.display(),
                options.target
            )
        })?;
    if args.output_format.json {
        common::print_json(&summary)?;
    } else if !args.output_format.quiet {
        print_summary(&summary)?;
    }
    if summary.failed > 0 {
        let _ = std::io::stdout().flush();
        eprintln!(
            "ferry: error: {} of {} image(s) and referrer(s) failed; they were not tagged:",
            summary.failed,
            summary.images.len() + summary.referrers.len()
        );
        for image in &summary.images {
            if let Some(error) = &image.error {
                eprintln!("  {}: {error}", image.original);
            }
        }
        for referrer in &summary.referrers {
            if let Some(error) = &referrer.error {
                eprintln!(
                    "  referrer {} of {}: {error}",
                    referrer.digest, referrer.subject
                );
            }
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Plan offline, then ask the target everything the unpack would need;
/// push nothing. Exit 1 when a check blocks.
async fn check(
    args: &UnpackArgs,
    bundle: &std::path::Path,
    client: &ferry_registry::Client,
    target: &RelocationTarget,
    naming: Naming,
    sparse: SparseMode,
) -> anyhow::Result<ExitCode> {
    let plan = {
        let (path, target) = (bundle.to_path_buf(), target.clone());
        tokio::task::spawn_blocking(move || {
            ferry_unpack::plan_bundle(&path, &target, naming, sparse)
        })
        .await?
        .with_context(|| format!("planning the unpack of {}", bundle.display()))?
    };
    let report = ferry_unpack::check(client, &plan, args.jobs).await;
    if args.output_format.json {
        common::print_json(&report)?;
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "check of {} for {} image(s):",
            report.target,
            plan.images.len()
        )?;
        let width = report
            .checks
            .iter()
            .map(|r| r.check.len())
            .max()
            .unwrap_or(5);
        writeln!(out, "  {:width$}  {:6} DETAIL", "CHECK", "STATUS")?;
        for row in &report.checks {
            writeln!(
                out,
                "  {:width$}  {:6} {}",
                row.check,
                row.status.to_string(),
                row.detail
            )?;
        }
        writeln!(
            out,
            "to upload: {} blob(s), {}",
            report.blobs_to_upload,
            human_bytes(report.bytes_to_upload)
        )?;
    }
    if report.blockers > 0 {
        let _ = std::io::stdout().flush();
        eprintln!(
            "ferry: error: {} check(s) block the unpack into {}",
            report.blockers, report.target
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Plan offline, print the plan, write the mapping; no registry client is
/// even made.
fn dry_run(
    args: &UnpackArgs,
    bundle: &std::path::Path,
    target: &RelocationTarget,
    naming: Naming,
    sparse: SparseMode,
) -> anyhow::Result<ExitCode> {
    let plan = ferry_unpack::plan_bundle(bundle, target, naming, sparse)
        .with_context(|| format!("planning the unpack of {}", bundle.display()))?;
    if let Some(path) = &args.mapping {
        ferry_unpack::write_mapping(path, &plan.mapping())?;
    }
    if args.output_format.json {
        common::print_json(&plan)?;
    } else if !args.output_format.quiet {
        print_plan(&plan)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_plan(plan: &Plan) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "plan: {} image(s) into {} (naming {}, sparse {})",
        plan.images.len(),
        plan.target,
        plan.naming,
        plan.sparse
    )?;
    for image in &plan.images {
        write!(out, "  {} -> {}", image.original, image.relocated)?;
        if let Some(old) = &image.bundle_digest {
            write!(out, " (rewritten from {old})")?;
        }
        end_image_line(&mut out, &image.platforms_missing)?;
    }
    for referrer in &plan.referrers {
        writeln!(
            out,
            "  referrer {} of {}{} -> {}",
            referrer.digest,
            referrer.subject,
            referrer
                .artifact_type
                .as_deref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default(),
            referrer.repositories.join(", ")
        )?;
    }
    if let Some(delta) = &plan.delta {
        let bases: Vec<String> = delta.bases.iter().map(|b| b.describe()).collect();
        writeln!(
            out,
            "delta: {} blob(s) ({}) must already be in the target, from {}",
            delta.blobs_expected,
            human_bytes(delta.bytes_expected),
            bases.join(", ")
        )?;
    }
    writeln!(
        out,
        "{} manifest(s), {} blob(s), {} to push; dry run: nothing pushed",
        plan.manifest_count,
        plan.blob_count,
        human_bytes(plan.blob_bytes)
    )?;
    Ok(())
}

/// The platforms a sparse image did not carry, and the end of its line.
fn end_image_line(out: &mut impl Write, platforms_missing: &[String]) -> std::io::Result<()> {
    if !platforms_missing.is_empty() {
        write!(out, " (not carried: {})", platforms_missing.join(", "))?;
    }
    writeln!(out)
}

fn print_summary(s: &UnpackSummary) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for image in &s.images {
        let status = if image.error.is_some() {
            "FAILED"
        } else {
            "pushed"
        };
        write!(out, "{status} {} -> {}", image.original, image.relocated)?;
        if let Some(old) = &image.bundle_digest {
            write!(out, " (index rewritten: was {old}, now {})", image.digest)?;
        }
        end_image_line(&mut out, &image.platforms_missing)?;
    }
    for r in &s.referrers {
        let status = if r.error.is_some() {
            "FAILED"
        } else {
            "pushed"
        };
        writeln!(
            out,
            "{status} referrer {} -> {}",
            r.digest,
            r.repositories.join(", ")
        )?;
    }
    for m in &s.tags_moved {
        writeln!(out, "moved tag {}: {} -> {}", m.reference, m.from, m.to)?;
    }
    for m in &s.tags_left {
        writeln!(
            out,
            "left tag {} at {} (--existing-tag skip); {} is pushed by digest only",
            m.reference, m.from, m.to
        )?;
    }
    writeln!(
        out,
        "{} image(s), {} referrer(s); blobs: {} uploaded ({}), {} mounted, {} already present; \
         manifests: {} pushed, {} already present; tags: {} set, {} unchanged; {:.1}s",
        s.images.len(),
        s.referrers.len(),
        s.blobs_uploaded,
        human_bytes(s.bytes_uploaded),
        s.blobs_mounted,
        s.blobs_present,
        s.manifests_pushed,
        s.manifests_present,
        s.tags_set,
        s.tags_unchanged,
        s.elapsed.as_secs_f64()
    )?;
    if let Some(path) = &s.receipt_file {
        writeln!(out, "wrote receipt {}", path.display())?;
    }
    if let Some(path) = &s.mapping_file {
        writeln!(
            out,
            "wrote mapping {} ({} reference(s))",
            path.display(),
            s.mapping.len()
        )?;
    }
    Ok(())
}
