//! `ferry inspect`: what a bundle holds, as a table or as JSON
//! (docs/inspect-json.md).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use ferry_audit::{BundleReport, ReferenceReport};
use ferry_oci::Digest;

use super::common::{self, human_bytes};
use crate::args::InspectArgs;

pub fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let bundle = common::bundle_path(&args.bundle)?;
    let inspection = ferry_audit::inspect(&bundle)
        .with_context(|| format!("inspecting {}", bundle.display()))?;
    if args.output_format.json {
        common::print_json(&inspection)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    print_table(&mut out, &inspection.report)?;
    out.flush()?;
    let errors = inspection.problems.iter().filter(|p| p.is_error()).count();
    if !args.output_format.quiet && !inspection.problems.is_empty() {
        eprintln!(
            "{} finding(s) ({errors} error(s)) without hashing layers; `ferry verify {}` checks everything:",
            inspection.problems.len(),
            bundle.display()
        );
        for p in &inspection.problems {
            eprintln!("  {p}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `sha256:` and the first 12 hex digits.
fn short(d: &Digest) -> String {
    format!("{}:{}", d.algorithm().as_str(), d.short())
}

/// The table of references, their referrers, and the totals.
pub fn print_table(out: &mut impl Write, report: &BundleReport) -> anyhow::Result<()> {
    let header = [
        "REFERENCE",
        "DIGEST",
        "TYPE",
        "PLATFORMS",
        "IMAGE ID",
        "SIZE",
    ];
    let mut rows: Vec<[String; 6]> = Vec::new();
    for r in &report.references {
        rows.extend(reference_rows(r));
    }
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &[&str]| -> std::io::Result<()> {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(out, &header)?;
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(out, &cells)?;
    }
    let t = &report.totals;
    writeln!(
        out,
        "\n{} reference(s), {} manifest(s), {} blob(s), {}",
        t.references,
        t.manifests,
        t.blobs,
        human_bytes(t.bytes)
    )?;
    if !report.unreferenced_blobs.is_empty() {
        let bytes: u64 = report.unreferenced_blobs.iter().map(|b| b.size).sum();
        writeln!(
            out,
            "warning: {} blob(s) ({}) not referenced by anything in index.json",
            report.unreferenced_blobs.len(),
            human_bytes(bytes)
        )?;
    }
    Ok(())
}

/// One row per reference, one more per further image of an index, and one
/// per referrer.
fn reference_rows(r: &ReferenceReport) -> Vec<[String; 6]> {
    let name = r.reference.clone().unwrap_or_else(|| "(unnamed)".into());
    let kind = format!("{:?}", r.kind).to_lowercase();
    let mut platforms = r.platforms_carried.join(",");
    if platforms.is_empty() {
        platforms = r
            .images
            .first()
            .and_then(|i| i.platform.clone())
            .unwrap_or_else(|| "-".into());
    }
    if !r.platforms_not_carried.is_empty() {
        platforms.push_str(&format!(
            " (not carried: {})",
            r.platforms_not_carried.join(",")
        ));
    }
    let image_id = |i: usize| {
        r.images
            .get(i)
            .and_then(|img| img.config_digest.as_ref())
            .map(short)
            .unwrap_or_else(|| "-".into())
    };
    let mut rows = vec![[
        name,
        short(&r.digest),
        kind,
        platforms,
        image_id(0),
        human_bytes(r.total_size),
    ]];
    if r.images.len() > 1 {
        for (i, img) in r.images.iter().enumerate() {
            rows.push([
                format!("  {}", img.platform.as_deref().unwrap_or("-")),
                short(&img.manifest_digest),
                "image".into(),
                img.platform.clone().unwrap_or_else(|| "-".into()),
                image_id(i),
                human_bytes(img.size),
            ]);
        }
        rows[0][4] = "-".into();
    }
    for x in &r.referrers {
        let what = match (&x.reference, &x.artifact_type) {
            (Some(tag), _) => {
                let suffix = tag.rsplit('.').next().unwrap_or("sig");
                format!("cosign .{suffix} tag")
            }
            (None, Some(t)) => t.clone(),
            (None, None) => x.media_type.clone(),
        };
        rows.push([
            format!("  referrer: {what}"),
            short(&x.digest),
            "referrer".into(),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    rows
}
