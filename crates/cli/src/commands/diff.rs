//! `ferry diff OLD NEW`: what changed between two bundles, for a review
//! board (text) or review tooling (`--json`, docs/diff-json.md).

use std::io::Write;
use std::process::ExitCode;

use ferry_audit::DiffReport;

use super::common::{self, human_bytes};
use crate::args::DiffArgs;

pub fn run(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let report = ferry_audit::diff(&args.old, &args.new)?;
    if args.output_format.json {
        common::print_json(&report)?;
    } else {
        print(&mut std::io::stdout().lock(), &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print(out: &mut impl Write, d: &DiffReport) -> std::io::Result<()> {
    writeln!(out, "diff {} -> {}", d.old.archive, d.new.archive)?;
    for r in &d.added {
        writeln!(
            out,
            "added    {} {} ({} new blob(s), {})",
            r.reference,
            r.digest,
            r.blobs_added,
            human_bytes(r.bytes_added)
        )?;
        for p in &r.platforms {
            writeln!(out, "           {} {}", p.platform, p.digest)?;
        }
    }
    for r in &d.removed {
        writeln!(out, "removed  {} {}", r.reference, r.digest)?;
    }
    for m in &d.moved {
        writeln!(
            out,
            "moved    {} {} -> {} ({} new blob(s), {})",
            m.reference,
            m.old_digest,
            m.new_digest,
            m.blobs_added,
            human_bytes(m.bytes_added)
        )?;
        for p in &m.platforms {
            let digest = |d: &Option<ferry_oci::Digest>| {
                d.as_ref().map_or("-".to_string(), ToString::to_string)
            };
            writeln!(
                out,
                "           {} {}: {} -> {}",
                p.platform,
                p.change,
                digest(&p.old_digest),
                digest(&p.new_digest)
            )?;
        }
    }
    for s in &d.signatures.gained {
        writeln!(
            out,
            "signed+  {} {} by signature {}",
            s.reference, s.subject, s.signature
        )?;
    }
    for s in &d.signatures.lost {
        writeln!(
            out,
            "signed-  {} {} lost signature {}",
            s.reference, s.subject, s.signature
        )?;
    }
    writeln!(
        out,
        "{} added, {} removed, {} moved, {} unchanged; blobs: {} added ({}), {} removed ({}); \
         signatures: {} gained, {} lost",
        d.added.len(),
        d.removed.len(),
        d.moved.len(),
        d.unchanged.len(),
        d.blobs.added,
        human_bytes(d.blobs.bytes_added),
        d.blobs.removed,
        human_bytes(d.blobs.bytes_removed),
        d.signatures.gained.len(),
        d.signatures.lost.len()
    )
}
