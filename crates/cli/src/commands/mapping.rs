//! `ferry mapping`: a relocation mapping in the forms clusters read.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use ferry_deploy::{FormOptions, Mapping};

use crate::deploy_args::MappingArgs;

pub fn run(args: MappingArgs) -> anyhow::Result<ExitCode> {
    let form = args.format;
    let mapping = Mapping::load(&args.mapping)?;
    let options = FormOptions {
        plain_http: args.plain_http,
        name: Some(args.name.clone()),
    };
    let files = ferry_deploy::render(&mapping, form, &options)?;
    match &args.output {
        Some(dir) => {
            for f in &files {
                let path = dir.join(&f.path);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("cannot create {}", parent.display()))?;
                }
                ferry_oci::fsutil::write_atomic(&path, f.text.as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
        None => {
            let mut out = std::io::stdout().lock();
            let several = files.len() > 1;
            for (i, f) in files.iter().enumerate() {
                if several {
                    if i > 0 {
                        writeln!(out)?;
                    }
                    writeln!(out, "# file: {}", f.path.display())?;
                }
                out.write_all(f.text.as_bytes())?;
            }
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
