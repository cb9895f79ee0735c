//! `ferry rewrite`: deployment files pointed at the relocated images.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use ferry_deploy::{Change, Input, Left, Mapping, Problem};
use serde::Serialize;

use super::common;
use crate::deploy_args::RewriteArgs;

#[derive(Serialize, Default)]
struct FileReport {
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    written: Option<PathBuf>,
    changes: Vec<Change>,
    left: Vec<Left>,
    problems: Vec<Problem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    diff: Option<String>,
}

pub fn run(args: RewriteArgs) -> anyhow::Result<ExitCode> {
    let mapping = Mapping::load(&args.mapping)?;
    for p in &args.paths {
        if p.as_os_str() != "-" && std::fs::symlink_metadata(p).is_err() {
            bail!("{}: no such file or directory", p.display());
        }
    }
    let (inputs, walk_problems) = ferry_deploy::inputs(&args.paths);
    if let Some(out) = &args.out {
        let mut seen = BTreeSet::new();
        for input in &inputs {
            if let Input::File { relative, .. } = input {
                if !seen.insert(relative.clone()) {
                    bail!(
                        "two inputs would both be written to {}; give them in separate runs",
                        out.join(relative).display()
                    );
                }
            }
        }
    }
    let mut reports = Vec::new();
    let mut stdin = std::io::stdin().lock();
    for input in &inputs {
        let mut report = FileReport {
            file: input.name(),
            ..FileReport::default()
        };
        let text = match ferry_deploy::read_input(input, &mut stdin) {
            Ok(t) => t,
            Err(p) => {
                report.problems.push(p);
                reports.push(report);
                continue;
            }
        };
        let path = match input {
            Input::File { path, .. } => Some(path.as_path()),
            Input::Stdin => None,
        };
        let rewritten = match ferry_deploy::rewrite_text(&report.file, path, &text, &mapping) {
            Ok(r) => r,
            Err(p) => {
                report.problems.push(p);
                reports.push(report);
                continue;
            }
        };
        report.changes = rewritten.changes;
        report.left = rewritten.left;
        report.problems = rewritten.odd;
        if args.dry_run {
            let name = report.file.clone();
            let diff = ferry_deploy::unified_diff(
                &format!("a/{}", name.trim_start_matches('/')),
                &format!("b/{}", name.trim_start_matches('/')),
                &text,
                &rewritten.text,
            );
            if !args.json {
                std::io::stdout().lock().write_all(diff.as_bytes())?;
            }
            report.diff = Some(diff);
        } else {
            match input {
                Input::Stdin => {
                    std::io::stdout()
                        .lock()
                        .write_all(rewritten.text.as_bytes())?;
                }
                Input::File { path, relative } => {
                    let dest = match &args.out {
                        Some(out) => Some(out.join(relative)),
                        None if rewritten.text != text => Some(path.clone()),
                        None => None,
                    };
                    if let Some(dest) = dest {
                        if let Some(parent) = dest.parent() {
                            std::fs::create_dir_all(parent)
                                .with_context(|| format!("cannot create {}", parent.display()))?;
                        }
                        ferry_oci::fsutil::write_atomic(&dest, rewritten.text.as_bytes())
                            .with_context(|| format!("cannot write {}", dest.display()))?;
                        report.written = Some(dest);
                    }
                }
            }
        }
        reports.push(report);
    }
    let changes: usize = reports.iter().map(|r| r.changes.len()).sum();
    let left: usize = reports.iter().map(|r| r.left.len()).sum();
    let problems = walk_problems.len() + reports.iter().map(|r| r.problems.len()).sum::<usize>();
    if args.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            files: &'a [FileReport],
            walk_problems: &'a [Problem],
        }
        common::print_json(&Doc {
            files: &reports,
            walk_problems: &walk_problems,
        })?;
    } else {
        for p in &walk_problems {
            eprintln!("ferry: warning: {p}");
        }
        for r in &reports {
            for p in &r.problems {
                let untouched = if p.skips_file() {
                    " (file left untouched)"
                } else {
                    ""
                };
                eprintln!("ferry: warning: {p}{untouched}");
            }
            for l in &r.left {
                eprintln!("{}:{}: {} left: {}", r.file, l.line, l.reference, l.reason);
            }
            for c in r.changes.iter().filter(|c| !c.pinned) {
                let digest = c.to.digest().map(|d| d.to_string()).unwrap_or_default();
                eprintln!(
                    "{}:{}: now {}:{}, pinned by tag only: no digest key to fill (it is {digest})",
                    r.file,
                    c.line,
                    c.to.name(),
                    c.to.tag().unwrap_or("latest")
                );
            }
            if let Some(dest) = &r.written {
                eprintln!(
                    "wrote {} ({} reference(s))",
                    dest.display(),
                    r.changes.len()
                );
            }
        }
        let verb = if args.dry_run {
            "would replace"
        } else {
            "replaced"
        };
        eprintln!(
            "{verb} {changes} reference(s) in {} file(s); {left} not in the mapping or not \
             rewritable; {problems} problem(s)",
            reports.iter().filter(|r| !r.changes.is_empty()).count()
        );
    }
    Ok(if args.strict && (left > 0 || problems > 0) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
