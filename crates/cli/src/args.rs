//! The command line, settled at parse time: clap checks every value (enum
//! flags, the target, platforms, counts) and a bad one is a usage error
//! (exit code 2) before any work starts. Each command's struct here is its
//! one options struct; the command modules only hand the values on.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ferry_oci::{Naming, Platform, RelocationTarget};
use ferry_unpack::{ExistingTag, SparseMode};

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
    /// Rebuild a full bundle, offline, from a base bundle and deltas made with `pack --since`.
    Merge(MergeArgs),
    /// Write what a registry holds of a bundle under a prefix (a receipt), by HEAD requests only.
    Receipt(ReceiptArgs),
    /// What changed between two bundles, offline: references, platforms, blobs, signatures.
    Diff(DiffArgs),
    /// Rebuild lost or damaged parts of a split bundle from its parity parts, offline.
    Repair(RepairArgs),
    /// Serve bundles as a read-only registry, straight from the tar (no registry needed yet).
    Serve(ServeArgs),
    /// List the images that Kubernetes YAML, Helm output and values, kustomizations and compose
    /// files name, ready for `ferry pack --images-file`.
    Images(crate::deploy_args::ImagesArgs),
    /// Print a relocation mapping in the forms clusters read (IDMS/ITMS, containerd, k3s, kustomize).
    Mapping(crate::deploy_args::MappingArgs),
    /// Replace the image references in deployment files with their relocated, pinned references.
    Rewrite(crate::deploy_args::RewriteArgs),
}

/// How to reach registries; shared by every command that talks to one.
#[derive(Debug, Args, Clone, Default)]
pub struct RegistryArgs {
    /// Reach this host (HOST or HOST:PORT) over plain HTTP. Repeatable.
    #[arg(long = "plain-http", value_name = "HOST[:PORT]", value_parser = host)]
    pub plain_http: Vec<String>,
    /// Reach this host over TLS without verifying its certificate. Repeatable.
    #[arg(long, value_name = "HOST[:PORT]", value_parser = host)]
    pub insecure: Vec<String>,
    /// Trust this CA certificate (PEM) in addition to the system's. Repeatable.
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,
    /// Directory of docker's config.json for credentials [default: $DOCKER_CONFIG or ~/.docker].
    #[arg(long = "docker-config", value_name = "DIR")]
    pub docker_config: Option<PathBuf>,
    /// How many tries for a transient registry failure (5xx, 429, reset).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub retries: u32,
    /// Seconds a registry may stay silent mid-request before the try fails (then retried).
    #[arg(long, value_name = "SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3600))]
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
    /// Read more images from FILE: one per line (blank lines and # comments ignored), or
    /// mindthegap's YAML (registry: images: name: [tags]).
    #[arg(long = "images-file", value_name = "FILE")]
    pub images_file: Vec<PathBuf>,
    /// Also pack the images that deployment files name, as `ferry images PATH` lists them: a file
    /// or a directory of Kubernetes YAML, Helm output or values, kustomizations, compose files.
    /// Repeatable. A file that cannot be read or parsed stops the run.
    #[arg(long = "images-from", value_name = "PATH")]
    pub images_from: Vec<PathBuf>,
    /// Where to write the bundle (a .tar file).
    #[arg(short, long, value_name = "OUT.tar")]
    pub output: PathBuf,
    /// Carry only this platform of multi-platform images (os/arch[/variant]). Repeatable.
    /// The index itself is carried unchanged, so its digest holds.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = Platform::parse)]
    pub platform: Vec<Platform>,
    /// Leave signatures, SBOMs and other referrers behind.
    #[arg(long = "no-referrers")]
    pub no_referrers: bool,
    /// How many blobs to fetch at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 8, value_parser = jobs)]
    pub jobs: usize,
    /// Refuse, before writing anything, an image without a cosign signature that verifies with
    /// this PEM public key (ECDSA P-256). Repeatable: any of the keys suffices.
    #[arg(long = "require-signature", value_name = "PUB.pem")]
    pub require_signature: Vec<PathBuf>,
    /// Sign the bundle with this PEM private key (ECDSA P-256): writes OUT.sig beside OUT.sha256.
    #[arg(long, value_name = "KEY.pem")]
    pub sign: Option<PathBuf>,
    #[command(flatten)]
    pub media: MediaArgs,
    /// Start over: discard what an interrupted pack to the same OUT left (OUT.partial and
    /// OUT.resume.json) instead of resuming it. Without it, running the same command again
    /// keeps every blob already written whole and fetches only the rest.
    #[arg(long)]
    pub fresh: bool,
    /// Write a delta: leave out the layers BASE holds (a bundle, a delta, or a receipt from
    /// `unpack --receipt`). Repeatable. Only BASE's headers and manifests are read.
    #[arg(long, value_name = "BASE")]
    pub since: Vec<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub output_format: OutputArgs,
}

/// `ferry merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The base bundle, then the deltas in the order they were made; the result holds the
    /// images of the last delta.
    #[arg(value_name = "BASE DELTA", num_args = 2.., required = true)]
    pub inputs: Vec<PathBuf>,
    /// Where to write the full bundle.
    #[arg(short, long, value_name = "FULL.tar")]
    pub output: PathBuf,
    #[command(flatten)]
    pub media: MediaArgs,
    #[command(flatten)]
    pub output_format: OutputArgs,
}

/// How a bundle is cut for media: `ferry pack` and `ferry merge`.
#[derive(Debug, Args)]
pub struct MediaArgs {
    /// Cut the bundle into parts of SIZE bytes (OUT.tar.000, .001, ...; the last may be
    /// shorter), for media with size limits. SIZE is bytes or a number with a unit:
    /// K, M, G, T are powers of 1000 (4.7G, 25G, 650M, as media are sold), Ki, Mi, Gi, Ti
    /// powers of 1024; `fat32` is 4GiB - 64 bytes (FAT32 holds up to 4GiB - 1).
    #[arg(long, value_name = "SIZE", value_parser = split_size)]
    pub split: Option<u64>,
    /// With --split: add N Reed-Solomon parity parts (OUT.tar.p00, ...); any N lost or
    /// damaged parts can then be rebuilt with `ferry repair`.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "split",
          value_parser = clap::value_parser!(u16).range(0..=99))]
    pub parity: u16,
}

/// `ferry receipt`.
#[derive(Debug, Args)]
pub struct ReceiptArgs {
    /// The bundle (or delta) that was loaded.
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
    /// The registry and prefix it was loaded into: HOST[:PORT][/PREFIX].
    #[arg(long, value_name = "HOST[:PORT][/PREFIX]")]
    pub to: String,
    /// How repository names were formed under the prefix.
    #[arg(long, value_name = "RULE", value_enum, default_value_t = NamingArg::Hash)]
    pub naming: NamingArg,
    /// Where to write the receipt (JSON).
    #[arg(short, long, value_name = "RECEIPT.json")]
    pub output: PathBuf,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub output_format: OutputArgs,
}

/// `ferry unpack`.
#[derive(Debug, Args)]
pub struct UnpackArgs {
    /// The bundle (an OCI image layout tarball, plain, gzip or zstd), or a split bundle's
    /// first part (OUT.tar.000) or all its parts; `-` reads it from standard input when
    /// manifests come before layers, as `ferry pack` writes them (`cat OUT.tar.[0-9]* |`).
    #[arg(value_name = "BUNDLE", required = true, num_args = 1..)]
    pub bundle: Vec<PathBuf>,
    /// Target registry and optional prefix: HOST[:PORT][/PREFIX].
    #[arg(long, value_name = "HOST[:PORT][/PREFIX]", value_parser = RelocationTarget::parse)]
    pub to: RelocationTarget,
    /// Write the relocation mapping (original -> relocated reference) to FILE as JSON.
    #[arg(long, value_name = "FILE")]
    pub mapping: Option<PathBuf>,
    /// After the run, write a receipt to FILE: every manifest and blob of the bundle the target
    /// now holds, for `pack --since` on the connected side.
    #[arg(long, value_name = "FILE")]
    pub receipt: Option<PathBuf>,
    /// How repository names are formed under the prefix.
    #[arg(long, value_name = "RULE", value_enum, default_value_t = NamingArg::Hash)]
    pub naming: NamingArg,
    /// Print the plan and write the mapping without contacting any registry.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Check the target and push nothing: reachability, TLS, push permission, referrers API,
    /// names, tags that would move, what is left to upload. Exits 1 on a blocker.
    #[arg(long, conflicts_with = "dry_run")]
    pub check: bool,
    /// At most N path components in a repository name (prefix included), for registries
    /// that limit depth: deeper names join their last components with '-'.
    #[arg(long = "max-depth", value_name = "N", value_parser = jobs)]
    pub max_depth: Option<usize>,
    /// A tag of the target that would point somewhere new: overwrite (and list it), skip
    /// (leave it; the image is pushed by digest only), or fail (before anything is pushed).
    #[arg(long = "existing-tag", value_name = "POLICY", value_enum, default_value_t = ExistingTagArg::Overwrite)]
    pub existing_tag: ExistingTagArg,
    /// What to do with an index whose platforms were not all carried.
    #[arg(long, value_name = "MODE", value_enum, default_value_t = SparseArg::Keep)]
    pub sparse: SparseArg,
    /// How many blobs to push at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 8, value_parser = jobs)]
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
    /// The bundle, or a split bundle's first part (OUT.tar.000) or all its parts.
    #[arg(value_name = "BUNDLE", required = true, num_args = 1..)]
    pub bundle: Vec<PathBuf>,
    #[command(flatten)]
    pub output_format: OutputArgs,
}

/// `ferry repair`.
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// The split bundle: its first part (OUT.tar.000) or its name (OUT.tar).
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
    #[command(flatten)]
    pub output_format: OutputArgs,
}

/// `ferry verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The bundle to check offline, or a split bundle's first part (OUT.tar.000) or all
    /// its parts: each part is checked against OUT.tar.sha256.
    #[arg(value_name = "BUNDLE", num_args = 0..)]
    pub bundle: Vec<PathBuf>,
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

/// `ferry serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The bundles to serve (a base and its deltas, several bundles); a blob comes from the
    /// first that holds it.
    #[arg(value_name = "BUNDLE", required = true)]
    pub bundles: Vec<PathBuf>,
    /// Address to listen on.
    #[arg(long, value_name = "IP:PORT", default_value = ferry_serve::DEFAULT_LISTEN)]
    pub listen: std::net::SocketAddr,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long = "tls-cert", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long = "tls-key", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require HTTP basic auth from an account in this htpasswd file (bcrypt: `htpasswd -B`).
    #[arg(long, value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,
    /// Serve every repository under this path (src/base becomes PREFIX/src/base).
    #[arg(long, value_name = "PATH")]
    pub prefix: Option<String>,
    /// Connections served at once; more are closed at once.
    #[arg(long = "max-connections", value_name = "N", default_value_t = 256, value_parser = jobs)]
    pub max_connections: usize,
    /// Close a connection that moves no byte for this many seconds (stalled or idle clients).
    #[arg(long = "idle-timeout", value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idle_timeout: u64,
}

/// `--naming`: how repository names are formed under the target's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NamingArg {
    /// PREFIX/<path joined with '-'>-<md5 of registry/path>: never collides.
    Hash,
    /// PREFIX/<original path>: the same path on two registries collides.
    Preserve,
    /// PREFIX/<path joined with '-'>: paths differing only in '/' or '-' collide.
    Flatten,
}

impl From<NamingArg> for Naming {
    fn from(arg: NamingArg) -> Naming {
        match arg {
            NamingArg::Hash => Naming::Hash,
            NamingArg::Preserve => Naming::Preserve,
            NamingArg::Flatten => Naming::Flatten,
        }
    }
}

/// `--existing-tag`: what to do with a tag of the target that would move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExistingTagArg {
    /// Move it; the summary lists it, old digest -> new.
    Overwrite,
    /// Leave it where it is; the image is pushed by digest only.
    Skip,
    /// Refuse the unpack before anything is pushed.
    Fail,
}

impl From<ExistingTagArg> for ExistingTag {
    fn from(arg: ExistingTagArg) -> ExistingTag {
        match arg {
            ExistingTagArg::Overwrite => ExistingTag::Overwrite,
            ExistingTagArg::Skip => ExistingTag::Skip,
            ExistingTagArg::Fail => ExistingTag::Fail,
        }
    }
}

/// `--sparse`: what to do with an index whose platforms were not all carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SparseArg {
    /// Push the index unchanged, so its digest holds.
    Keep,
    /// Push a new index listing only the carried platforms (a new digest).
    Rewrite,
}

impl From<SparseArg> for SparseMode {
    fn from(arg: SparseArg) -> SparseMode {
        match arg {
            SparseArg::Keep => SparseMode::Keep,
            SparseArg::Rewrite => SparseMode::Rewrite,
        }
    }
}

/// `--jobs`: a count of at least one.
fn jobs(input: &str) -> Result<usize, String> {
    match input.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// `--split fat32`: the largest multiple of 64 bytes in a file FAT32
/// holds (4 GiB - 1). A part that starts on a 64-byte boundary, as every
/// part of this size does, is hashed in step with the whole bundle (one
/// SHA-256 message schedule for both, see `ferry-lanes`); 4 GiB - 1 bytes
/// would put all but the first part off the boundary, and a split pack
/// costs about a tenth more for it.
const FAT32_PART: u64 = (4 << 30) - 64;

/// The smallest `--split` part size.
const MIN_PART_SIZE: u64 = 512;

/// A size as `--split` takes it: bytes, or a number (fractions allowed)
/// with a unit; K, M, G, T are powers of 1000 (media are sold so: a 4.7G
/// DVD, a 25G Blu-ray), Ki, Mi, Gi, Ti powers of 1024; a trailing `B` is
/// allowed; `fat32` is [`FAT32_PART`].
fn split_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("fat32") {
        return Ok(FAT32_PART);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim();
    let unit = unit
        .strip_suffix('B')
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" => 1,
        "k" => 1_000,
        "m" => 1_000_000,
        "g" => 1_000_000_000,
        "t" => 1_000_000_000_000,
        "ki" => 1 << 10,
        "mi" => 1 << 20,
        "gi" => 1 << 30,
        "ti" => 1 << 40,
        _ => {
            return Err(format!(
                "unknown unit {unit:?}; use bytes or K, M, G, T (powers of 1000), \
                 Ki, Mi, Gi, Ti (powers of 1024), e.g. 4.7G or 4Gi"
            ))
        }
    };
    let value: f64 = number
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .ok_or_else(|| "expected a size such as 4G, 4.7G or 650M".to_string())?;
    let bytes = value * factor as f64;
    if bytes >= u64::MAX as f64 {
        return Err("too large".to_string());
    }
    let bytes = bytes.floor() as u64;
    if bytes < MIN_PART_SIZE {
        return Err(format!("parts must be at least {MIN_PART_SIZE} bytes"));
    }
    Ok(bytes)
}

/// `--plain-http` and `--insecure`: a host or host:port, no scheme or path.
fn host(input: &str) -> Result<String, String> {
    if input.is_empty() || input.contains('/') {
        return Err("expected a host or host:port, without scheme or path".to_string());
    }
    Ok(input.to_string())
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("ferry").chain(args.iter().copied()))
    }

    #[test]
    fn unpack_flags_are_settled_at_parse_time() {
        let cli = parse(&[
            "unpack",
            "b.tar",
            "--to",
            "reg:5000/team",
            "--naming",
            "flatten",
            "--sparse",
            "rewrite",
            "-j",
            "3",
        ])
        .unwrap();
        let Command::Unpack(args) = cli.command else {
            panic!("not unpack");
        };
        assert_eq!(args.to.to_string(), "reg:5000/team");
        assert_eq!(Naming::from(args.naming), Naming::Flatten);
        assert_eq!(SparseMode::from(args.sparse), SparseMode::Rewrite);
        assert_eq!(args.jobs, 3);
    }

    #[test]
    fn bad_values_are_usage_errors() {
        let base = ["unpack", "b.tar", "--to", "reg:5000"];
        for extra in [
            &["--naming", "md5"][..],
            &["--sparse", "drop"],
            &["--jobs", "0"],
            &["--jobs", "many"],
            &["--retries", "0"],
            &["--timeout", "0"],
            &["--timeout", "3601"],
            &["--plain-http", "http://reg"],
            &["--insecure", ""],
        ] {
            let args: Vec<&str> = base.iter().chain(extra).copied().collect();
            let err = parse(&args).map(|_| ()).unwrap_err();
            assert!(
                matches!(
                    err.kind(),
                    ErrorKind::ValueValidation | ErrorKind::InvalidValue
                ),
                "{extra:?}: {err}"
            );
        }
        let bad_enum = parse(&["unpack", "b.tar", "--to", "reg", "--naming", "md5"]).unwrap_err();
        assert!(bad_enum.to_string().contains("hash"), "{bad_enum}");
        for target in ["", "HTTP://reg", "reg/UPPER"] {
            assert!(
                parse(&["unpack", "b.tar", "--to", target]).is_err(),
                "{target:?}"
            );
        }
        for platform in ["linux", "linux/", "a/b/c/d"] {
            assert!(
                parse(&["pack", "x", "-o", "o.tar", "--platform", platform]).is_err(),
                "{platform:?}"
            );
        }
    }

    #[test]
    fn pack_platforms_are_parsed() {
        let cli = parse(&["pack", "x", "-o", "o.tar", "--platform", "linux/arm64/v8"]).unwrap();
        let Command::Pack(args) = cli.command else {
            panic!("not pack");
        };
        assert_eq!(
            args.platform,
            vec![Platform::parse("linux/arm64/v8").unwrap()]
        );
    }

    #[test]
    fn sizes_are_decimal_or_binary_by_their_unit() {
        for (text, bytes) in [
            ("4G", 4_000_000_000),
            ("4.7G", 4_700_000_000),
            ("25GB", 25_000_000_000),
            ("650M", 650_000_000),
            ("4Gi", 4 << 30),
            ("1.5KiB", 1536),
            ("fat32", (4 << 30) - 64),
            ("4096", 4096),
        ] {
            assert_eq!(split_size(text).unwrap(), bytes, "{text}");
        }
        for bad in ["", "G", "4X", "-1G", "1.2.3M", "100", "1e30T"] {
            assert!(split_size(bad).is_err(), "{bad}");
        }
    }
}

/// `ferry diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The earlier bundle.
    #[arg(value_name = "OLD")]
    pub old: PathBuf,
    /// The later bundle.
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    #[command(flatten)]
    pub output_format: OutputArgs,
}
