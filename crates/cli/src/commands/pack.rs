//! `ferry pack`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use ferry_pack::{PackOptions, PackSummary};

use super::common::{self, human_bytes};
use crate::args::PackArgs;
use crate::progress;

pub async fn run(args: PackArgs) -> anyhow::Result<ExitCode> {
    let mut references = common::references(&args.images, &args.images_file)?;
    if !args.images_from.is_empty() {
        references.extend(super::images::from_paths(&args.images_from)?);
    }
    let require_signature = common::keyring(&args.require_signature)?;
    if require_signature.is_some() && args.no_referrers {
        anyhow::bail!(
            "--require-signature checks the signatures carried with each image; \
             it cannot be used with --no-referrers"
        );
    }
    let sign = match &args.sign {
        Some(path) => Some(std::sync::Arc::new(ferry_sign::PrivateKey::load(path)?)),
        None => None,
    };
    let client = common::client(&args.registry)?;
    let options = PackOptions {
        references,
        platforms: args.platform.clone(),
        referrers: !args.no_referrers,
        jobs: args.jobs,
        output: args.output.clone(),
        since: args.since.clone(),
        require_signature,
        sign,
        split: args.media.split,
        parity: args.media.parity as usize,
        fresh: args.fresh,
    };
    let progress = progress::for_output(&args.output_format);
    let out = args.output.display();
    let summary = tokio::select! {
        result = ferry_pack::pack(&client, &options, progress) => match result {
            Ok(summary) => summary,
            Err(ferry_pack::Error::Interrupted { partial, source }) => {
                // The cause first, then what to do about it.
                let cause = anyhow::Error::new(*source);
                anyhow::bail!(
                    "packing {out} failed; nothing was written at {out}: {cause:#}\n\
                     the work so far is kept in {}: run the same command again to resume it, \
                     or add --fresh to start over",
                    partial.display()
                );
            }
            Err(e) => {
                return Err(e).with_context(|| format!("packing {out} failed; no bundle was written"))
            }
        },
        _ = tokio::signal::ctrl_c() => {
            // The pack's files close as it is dropped here; what it wrote
            // stays for the next run.
            let record = ferry_pack::record_path(&args.output);
            if record.exists() {
                eprintln!(
                    "ferry: interrupted; nothing was written at {out}. The work so far is kept \
                     ({} and its partial files): run the same command again to resume it, \
                     or add --fresh to start over",
                    record.display()
                );
            } else {
                eprintln!("ferry: interrupted; nothing was written at {out}");
            }
            return Ok(ExitCode::from(130));
        }
    };
    if args.output_format.json {
        common::print_json(&summary)?;
    } else if !args.output_format.quiet {
        print_summary(&summary)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(s: &PackSummary) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if let Some(report) = &s.signatures {
        super::verify::print_signatures(&mut out, report)?;
    }
    for image in &s.images {
        write!(out, "packed {} {}", image.reference, image.digest)?;
        if !image.platforms_carried.is_empty() {
            write!(out, " [{}]", image.platforms_carried.join(", "))?;
        }
        if !image.platforms_left_out.is_empty() {
            write!(out, " (left out: {})", image.platforms_left_out.join(", "))?;
        }
        if image.referrers > 0 {
            write!(out, " +{} referrer(s)", image.referrers)?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "{} image(s), {} manifest(s), {} blob(s), {} of blobs ({} saved by sharing) in {:.1}s",
        s.images.len(),
        s.manifests,
        s.blobs,
        human_bytes(s.blob_bytes),
        human_bytes(s.bytes_saved_by_sharing),
        s.elapsed.as_secs_f64()
    )?;
    if let Some(d) = &s.delta {
        let bases: Vec<String> = d.bases.iter().map(|b| b.describe()).collect();
        writeln!(
            out,
            "delta: {} blob(s), {} left to {}",
            d.blobs_left_out,
            human_bytes(d.bytes_left_out),
            bases.join(", ")
        )?;
    }
    let t = &s.transfer;
    if t.resumed {
        write!(
            out,
            "resumed: {} blob(s) ({}) already here, fetched {} ({})",
            t.blobs_reused,
            human_bytes(t.bytes_reused),
            t.blobs_fetched,
            human_bytes(t.bytes_fetched)
        )?;
        match t.blobs_continued {
            0 => writeln!(out)?,
            n => writeln!(out, ", {n} of them from where they stopped")?,
        }
    }
    common::print_written(
        &mut out,
        &s.output,
        &s.parts,
        &s.removed,
        s.archive_bytes,
        &s.sha256,
    )?;
    if let Some(path) = &s.signature_file {
        writeln!(out, "signed: wrote {}", path.display())?;
    }
    Ok(())
}
