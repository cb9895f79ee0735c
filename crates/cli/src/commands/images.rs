//! `ferry images`: the image references deployment files name.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use ferry_deploy::{Problem, Scan};
use ferry_oci::Reference;
use serde::Serialize;

use super::common;
use crate::deploy_args::ImagesArgs;

pub fn run(args: ImagesArgs) -> anyhow::Result<ExitCode> {
    let scan = scan(&args.paths)?;
    if args.json {
        common::print_json(&Report::new(&scan))?;
    } else {
        let mut out = std::io::stdout().lock();
        for r in scan.references() {
            writeln!(out, "{r}")?;
        }
        out.flush()?;
    }
    warn(&scan.problems);
    if !args.json {
        let skipped = scan.problems.iter().filter(|p| p.skips_file()).count();
        eprintln!(
            "{} image(s) in {} file(s){}",
            scan.references().len(),
            scan.files,
            if skipped > 0 {
                format!("; {skipped} file(s) skipped")
            } else {
                String::new()
            }
        );
    }
    Ok(if args.strict && !scan.problems.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Scan `paths`, refusing paths that do not exist (a typo must not look
/// like a file without images).
fn scan(paths: &[PathBuf]) -> anyhow::Result<Scan> {
    for p in paths {
        if p.as_os_str() != "-" && std::fs::symlink_metadata(p).is_err() {
            bail!("{}: no such file or directory", p.display());
        }
    }
    Ok(ferry_deploy::scan(paths, &mut std::io::stdin().lock()))
}

/// The references `ferry pack --images-from` packs: every problem is a
/// warning, except a file skipped whole, which stops the run (its images
/// would be silently missing from the bundle).
pub fn from_paths(paths: &[PathBuf]) -> anyhow::Result<Vec<Reference>> {
    let scan = scan(paths)?;
    warn(&scan.problems);
    let skipped: Vec<&Problem> = scan.problems.iter().filter(|p| p.skips_file()).collect();
    if !skipped.is_empty() {
        bail!(
            "--images-from: {} file(s) could not be read (first: {}); fix or leave them out, \
             nothing was packed",
            skipped.len(),
            skipped[0]
        );
    }
    Ok(scan.references())
}

fn warn(problems: &[Problem]) {
    for p in problems {
        eprintln!("ferry: warning: {p}");
    }
}

#[derive(Serialize)]
struct Report<'a> {
    files: usize,
    images: Vec<Image>,
    problems: &'a [Problem],
}

#[derive(Serialize)]
struct Image {
    reference: String,
    found: Vec<String>,
}

impl<'a> Report<'a> {
    fn new(scan: &'a Scan) -> Report<'a> {
        let mut images: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in &scan.found {
            images
                .entry(f.reference.to_string())
                .or_default()
                .push(format!("{}:{}", f.file, f.line));
        }
        Report {
            files: scan.files,
            images: images
                .into_iter()
                .map(|(reference, found)| Image { reference, found })
                .collect(),
            problems: &scan.problems,
        }
    }
}
