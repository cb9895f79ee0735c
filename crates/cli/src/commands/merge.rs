//! `ferry merge`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use super::common::{self, human_bytes};
use crate::args::MergeArgs;
use crate::progress;

pub async fn run(args: MergeArgs) -> anyhow::Result<ExitCode> {
    let progress = progress::for_output(&args.output_format);
    let media = ferry_pack::Media {
        split: args.media.split,
        parity: args.media.parity.into(),
    };
    let summary = ferry_pack::merge(&args.inputs, &args.output, media, progress)
        .await
        .with_context(|| {
            format!(
                "merging into {} failed; nothing was written",
                args.output.display()
            )
        })?;
    if args.output_format.json {
        common::print_json(&summary)?;
    } else if !args.output_format.quiet {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{} blob(s) ({}) taken from the base(s) in {:.1}s",
            summary.blobs_from_bases,
            human_bytes(summary.bytes_from_bases),
            summary.elapsed.as_secs_f64(),
        )?;
        common::print_written(
            &mut out,
            &summary.output,
            &summary.parts,
            &summary.removed,
            summary.archive_bytes,
            &summary.sha256,
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
