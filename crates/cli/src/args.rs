//! The command line as typed: raw values, parsed by clap. They are checked
//! and turned into settled settings in the command modules before any work
//! starts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// ferry carries container images across an air gap as one file.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pull images from registries into one OCI image layout tarball.
    Pack(PackArgs),
    /// Load a bundle into a private registry, offline, and write the relocation mapping.
    Unpack(UnpackArgs),
    /// List what a bundle holds: references, digests, platforms, image IDs.
    Inspect(InspectArgs),
    /// Check a bundle offline: every blob hashed, every reference resolvable.
    Verify(VerifyArgs),
}

/// How to reach registries; shared by every command that talks to one.
#[derive(Debug, Args, Clone, Default)]
pub struct RegistryArgs {
    /// Reach this host (HOST or HOST:PORT) over plain HTTP. Repeatable.
    #[arg(long = "plain-http", value_name = "HOST[:PORT]")]
    pub plain_http: Vec<String>,
    /// Reach this host over TLS without verifying its certificate. Repeatable.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure: Vec<String>,
    /// Trust this CA certificate (PEM) in addition to the system's. Repeatable.
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,
    /// Directory of docker's config.json for credentials [default: $DOCKER_CONFIG or ~/.docker].
    #[arg(long = "docker-config", value_name = "DIR")]
    pub docker_config: Option<PathBuf>,
    /// How many tries for a transient registry failure (5xx, 429, reset).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub retries: u32,
    /// Seconds a registry may stay silent mid-request before the try fails (then retried).
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub timeout: u64,
}

/// Signatures that must hold; shared by unpack and verify.
#[derive(Debug, Args, Clone, Default)]
pub struct SignatureArgs {
    /// Require every image to carry a cosign signature that verifies with this PEM public key
    /// (ECDSA P-256). Repeatable: any of the keys suffices.
    #[arg(long = "require-signature", value_name = "PUB.pem")]
    pub require_signature: Vec<PathBuf>,
    /// Require BUNDLE.sig (written by `ferry pack --sign`) to verify with this PEM public key,
    /// checked before anything else. Repeatable: any of the keys suffices.
    #[arg(long = "bundle-key", value_name = "PUB.pem")]
    pub bundle_key: Vec<PathBuf>,
}

/// Output shared by every command.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct OutputArgs {
    /// Print one JSON document on stdout instead of text; no progress bars.
    #[arg(long)]
    pub json: bool,
    /// No progress bars and no summary on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `ferry pack`.
#[derive(Debug, Args)]
pub struct PackArgs {
    /// Images to pack: name[:tag][@digest], e.g. nginx:1.25 or registry.example/app@sha256:...
    #[arg(value_name = "IMAGE")]
    pub images: Vec<String>,
    /// Read more images from FILE: one per line, blank lines and # comments ignored.
    #[arg(long = "images-file", value_name = "FILE")]
    pub images_file: Vec<PathBuf>,
    /// Where to write the bundle (a .tar file).
    #[arg(short, long, value_name = "OUT.tar")]
    pub output: PathBuf,
    /// Carry only this platform of multi-platform images (os/arch[/variant]). Repeatable.
    /// The index itself is carried unchanged, so its digest holds.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Vec<String>,
    /// Leave signatures, SBOMs and other referrers behind.
    #[arg(long = "no-referrers")]
    pub no_referrers: bool,
    /// How many blobs to fetch at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 8)]
    pub jobs: usize,
    /// Refuse, before writing anything, an image without a cosign signature that verifies with
    /// this PEM public key (ECDSA P-256). Repeatable: any of the keys suffices.
    #[arg(long = "require-signature", value_name = "PUB.pem")]
    pub require_signature: Vec<PathBuf>,
    /// Sign the bundle with this PEM private key (ECDSA P-256): writes OUT.sig beside OUT.sha256.
    #[arg(long, value_name = "KEY.pem")]
    pub sign: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub output_format: OutputArgs,
}

/// `ferry unpack`.
#[derive(Debug, Args)]
pub struct UnpackArgs {
    /// The bundle (an OCI image layout tarball, plain, gzip or zstd); `-` reads it from
    /// standard input when manifests come before layers, as `ferry pack` writes them.
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
    /// Target registry and optional prefix: HOST[:PORT][/PREFIX].
    #[arg(long, value_name = "HOST[:PORT][/PREFIX]")]
    pub to: String,
    /// Write the relocation mapping (original -> relocated reference) to FILE as JSON.
    #[arg(long, value_name = "FILE")]
    pub mapping: Option<PathBuf>,
    /// How repository names are formed under the prefix: hash, preserve or flatten.
    #[arg(long, value_name = "RULE", default_value = "hash")]
    pub naming: String,
    /// Print the plan and write the mapping without contacting any registry.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// What to do with an index whose platforms were not all carried: keep (push unchanged) or rewrite.
    #[arg(long, value_name = "MODE", default_value = "keep")]
    pub sparse: String,
    /// How many blobs to push at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 8)]
    pub jobs: usize,
    #[command(flatten)]
    pub signatures: SignatureArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub output_format: OutputArgs,
}

/// `ferry inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The bundle.
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
    #[command(flatten)]
    pub output_format: OutputArgs,
}

/// `ferry verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The bundle to check offline.
    #[arg(value_name = "BUNDLE")]
    pub bundle: Option<PathBuf>,
    /// Check a relocation: every reference in this mapping resolves in its registry.
    #[arg(long, value_name = "FILE")]
    pub mapping: Option<PathBuf>,
    #[command(flatten)]
    pub signatures: SignatureArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub output_format: OutputArgs,
}
