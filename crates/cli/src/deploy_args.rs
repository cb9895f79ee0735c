//! Arguments of the commands that work on deployment files: `ferry
//! images`, `ferry mapping` and `ferry rewrite` (kept apart from `args.rs`
//! so they change on their own).

use std::path::PathBuf;

use clap::Args;
use ferry_deploy::Form;

/// `ferry images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Files and directories to search (directories are walked for .yaml, .yml and .json);
    /// `-` reads standard input.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Print one JSON document: each image with where it was found (file:line), and every problem.
    #[arg(long)]
    pub json: bool,
    /// Exit non-zero when a file is skipped (does not parse, too large, binary) or an image
    /// value is not a reference.
    #[arg(long)]
    pub strict: bool,
}

/// `ferry mapping`.
#[derive(Debug, Args)]
pub struct MappingArgs {
    /// The relocation mapping `ferry unpack --mapping` wrote.
    #[arg(value_name = "MAPPING.json")]
    pub mapping: PathBuf,
    /// text, idms, itms, containerd, registries-yaml or kustomize.
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = form)]
    pub format: Form,
    /// Write the files into DIR (containerd: DIR/<registry>/hosts.toml) instead of printing them.
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// The target registry speaks plain HTTP (http:// endpoints in containerd and registries-yaml).
    #[arg(long = "plain-http")]
    pub plain_http: bool,
    /// metadata.name of the ImageDigestMirrorSet / ImageTagMirrorSet.
    #[arg(long, value_name = "NAME", default_value = "ferry")]
    pub name: String,
}

/// `ferry rewrite`.
#[derive(Debug, Args)]
pub struct RewriteArgs {
    /// The relocation mapping `ferry unpack --mapping` wrote.
    #[arg(long, value_name = "MAPPING.json")]
    pub mapping: PathBuf,
    /// Files and directories to rewrite (directories are walked for .yaml, .yml and .json);
    /// `-` reads standard input and writes the result to standard output.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Write the rewritten files under DIR (same relative paths) and leave the originals.
    #[arg(long = "out", value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Change nothing; print a unified diff of what would change.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Exit non-zero when a reference is not in the mapping or a file is skipped.
    #[arg(long)]
    pub strict: bool,
    /// Print one JSON document: per file, what changed and what was left.
    #[arg(long)]
    pub json: bool,
}

/// `--format`: one of the forms `ferry mapping` writes.
fn form(input: &str) -> Result<Form, String> {
    input
        .parse()
        .map_err(|e: ferry_deploy::Error| e.to_string())
}
