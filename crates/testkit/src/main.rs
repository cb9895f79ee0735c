//! `ferry-fixtures`: push ferry's fixture images into a registry, or serve a
//! registry holding them (for `make demo` and manual testing), or push the
//! benchmark workload (for `make bench`).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use ferry_testkit::{FixtureOptions, RegistryOptions, RegistryProcess};

const USAGE: &str = "usage:
  ferry-fixtures push HOST[:PORT] [--big-layer-bytes N]
      push the fixtures into a running plain-HTTP registry; print their references
  ferry-fixtures serve DIR [--big-layer-bytes N]
      start docker-registry on 127.0.0.1:<free port> with storage in DIR, push the
      fixtures, print the registry's host, then become the registry until killed
  ferry-fixtures bench-workload HOST[:PORT] [--scale F] [--release N] [--blobs FILE]
      push the benchmark workload (about F GB, default 1) into a running plain-HTTP
      registry, streaming; print its references; with --blobs, write every unique
      config and layer to FILE as `repository digest size` lines; --release 2 pushes
      the next release (about a tenth of the bytes new) under the same tags
  ferry-fixtures sign HOST[:PORT] KEY.pem < REFERENCES
      sign each reference read from standard input (HOST[:PORT]/REPO:TAG, one a line)
      with the PEM private key, cosign format, pushing the sha256-<hex>.sig tag
  ferry-fixtures small-workload HOST[:PORT] REPOS TAGS
      push the many-small-images workload (REPOS repositories x TAGS tags, one shared
      base layer, every fourth repository of indexes); print its references
  ferry-fixtures proxy HOST:PORT LOG
      start a FaultProxy (no faults) in front of the plain-HTTP registry at HOST:PORT,
      print its host, and append `METHOD PATH` of every request it forwards to LOG
      (within 20 ms) until killed: how `make bench` counts requests.
      --stall-after BYTES: let BYTES of blob bodies through, then hold every further
      byte (a link gone dead mid-transfer); --lift-when FILE: lift that once FILE
      exists (the link is back): how `make demo` shows a resumed pack;
      --take-single-requests: take single-request blob uploads (201), which
      docker-registry 2.8 does not (Fault::TakeSingleRequestUpload);
      --rate BYTES: pass response bodies at BYTES a second, all connections together
      (a link of that speed): how `make bench` times packs over a 1 Gbit/s link";

enum Command {
    Push(String),
    Serve(PathBuf),
    BenchWorkload {
        host: String,
        scale: f64,
        release: u32,
        blobs: Option<PathBuf>,
    },
    SmallWorkload {
        host: String,
        repos: usize,
        tags: usize,
    },
    Sign {
        host: String,
        key: PathBuf,
    },
    Proxy {
        upstream: String,
        log: PathBuf,
        stall_after: Option<u64>,
        lift_when: Option<PathBuf>,
        take_single_requests: bool,
        rate: Option<u64>,
    },
}

fn parse(args: &[String]) -> Result<(Command, FixtureOptions), String> {
    let mut options = FixtureOptions::default();
    let mut positional = Vec::new();
    let mut scale = None;
    let mut release = 1;
    let mut blobs = None;
    let mut stall_after = None;
    let mut lift_when = None;
    let mut take_single_requests = false;
    let mut rate = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--big-layer-bytes" => {
                let value = rest.next().ok_or("--big-layer-bytes needs a value")?;
                let bytes = value
                    .parse()
                    .map_err(|e| format!("--big-layer-bytes {value:?}: {e}"))?;
                options.big_layer_bytes = Some(bytes);
            }
            "--scale" => {
                let value = rest.next().ok_or("--scale needs a value")?;
                let f: f64 = value
                    .parse()
                    .map_err(|e| format!("--scale {value:?}: {e}"))?;
                if !(f > 0.0 && f.is_finite()) {
                    return Err(format!("--scale {value:?}: must be a positive number"));
                }
                scale = Some(f);
            }
            "--release" => {
                let value = rest.next().ok_or("--release needs a number")?;
                release = value
                    .parse()
                    .ok()
                    .filter(|r| *r >= 1)
                    .ok_or(format!("--release {value:?}: expected 1, 2, ..."))?;
            }
            "--stall-after" => {
                let value = rest.next().ok_or("--stall-after needs a number of bytes")?;
                let bytes = value
                    .parse()
                    .map_err(|e| format!("--stall-after {value:?}: {e}"))?;
                stall_after = Some(bytes);
            }
            "--lift-when" => {
                let value = rest.next().ok_or("--lift-when needs a file")?;
                lift_when = Some(PathBuf::from(value));
            }
            "--take-single-requests" => take_single_requests = true,
            "--rate" => {
                let value = rest.next().ok_or("--rate needs bytes per second")?;
                let bytes: u64 = value
                    .parse()
                    .ok()
                    .filter(|b| *b > 0)
                    .ok_or(format!("--rate {value:?}: expected bytes per second"))?;
                rate = Some(bytes);
            }
            "--blobs" => {
                let value = rest.next().ok_or("--blobs needs a file")?;
                blobs = Some(PathBuf::from(value));
            }
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            _ => positional.push(arg.clone()),
        }
    }
    let command =
        match positional.as_slice() {
            [cmd, host] if cmd == "push" => Command::Push(host.clone()),
            [cmd, dir] if cmd == "serve" => Command::Serve(PathBuf::from(dir)),
            [cmd, host, key] if cmd == "sign" => Command::Sign {
                host: host.to_string(),
                key: PathBuf::from(key),
            },
            [cmd, upstream, log] if cmd == "proxy" => Command::Proxy {
                upstream: upstream.clone(),
                log: PathBuf::from(log),
                stall_after: stall_after.take(),
                lift_when: lift_when.take(),
                take_single_requests: std::mem::take(&mut take_single_requests),
                rate: rate.take(),
            },
            [cmd, host] if cmd == "bench-workload" => Command::BenchWorkload {
                host: host.clone(),
                scale: scale.unwrap_or(1.0),
                release,
                blobs: blobs.take(),
            },
            [cmd, host, repos, tags] if cmd == "small-workload" => Command::SmallWorkload {
                host: host.clone(),
                repos: repos.parse().map_err(|e| format!("REPOS {repos:?}: {e}"))?,
                tags: tags.parse().map_err(|e| format!("TAGS {tags:?}: {e}"))?,
            },
            _ => return Err(
                "expected `push`, `serve`, `bench-workload`, `sign`, `small-workload` or `proxy`"
                    .to_string(),
            ),
        };
    if (stall_after.is_some() || lift_when.is_some() || take_single_requests || rate.is_some())
        && !matches!(command, Command::Proxy { .. })
    {
        return Err(
            "--stall-after, --lift-when, --take-single-requests and --rate are for proxy"
                .to_string(),
        );
    }
    if scale.is_some() && !matches!(command, Command::BenchWorkload { .. }) {
        return Err("--scale is for bench-workload".to_string());
    }
    Ok((command, options))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, options) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("ferry-fixtures: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Push(host) => {
            let set = ferry_testkit::push_fixtures_with(&host, options);
            let mut out = std::io::stdout().lock();
            for reference in set.references() {
                if writeln!(out, "{reference}").is_err() {
                    break;
                }
            }
            ExitCode::SUCCESS
        }
        Command::SmallWorkload { host, repos, tags } => {
            let workload = ferry_testkit::push_many_small_workload(&host, repos, tags);
            let mut out = std::io::stdout().lock();
            for reference in &workload.references {
                if writeln!(out, "{reference}").is_err() {
                    break;
                }
            }
            ExitCode::SUCCESS
        }
        Command::BenchWorkload {
            host,
            scale,
            release,
            blobs,
        } => bench_workload(&host, scale, release, blobs),
        Command::Sign { host, key } => sign(&host, key),
        Command::Proxy {
            upstream,
            log,
            stall_after,
            lift_when,
            take_single_requests,
            rate,
        } => proxy(
            &upstream,
            &log,
            stall_after,
            lift_when.as_deref(),
            take_single_requests,
            rate,
        ),
        Command::Serve(dir) => {
            let registry = RegistryProcess::start_with(RegistryOptions {
                storage_dir: Some(dir),
                ..RegistryOptions::default()
            });
            registry.push_fixtures_with(options);
            println!("{}", registry.host());
            let _ = std::io::stdout().flush();
            let error = registry.exec();
            eprintln!("ferry-fixtures: running docker-registry: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Forward to `upstream` through a [`FaultProxy`](ferry_testkit::FaultProxy), logging every request
/// to `log`, until killed.
fn proxy(
    upstream: &str,
    log: &std::path::Path,
    stall_after: Option<u64>,
    lift_when: Option<&std::path::Path>,
    take_single_requests: bool,
    rate: Option<u64>,
) -> ExitCode {
    let Ok(upstream) = upstream.parse::<std::net::SocketAddr>() else {
        eprintln!("ferry-fixtures: proxy {upstream}: expected IP:PORT");
        return ExitCode::from(2);
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log);
    let mut file = match file {
        Ok(file) => file,
        Err(e) => {
            eprintln!("ferry-fixtures: opening {}: {e}", log.display());
            return ExitCode::FAILURE;
        }
    };
    let proxy = ferry_testkit::FaultProxy::start_to(upstream);
    proxy.limit_rate(rate);
    if let Some(bytes) = stall_after {
        proxy.stall_after(ferry_testkit::Match::path_contains("/blobs/"), bytes);
    }
    let take = || {
        if take_single_requests {
            proxy.inject(
                ferry_testkit::Fault::TakeSingleRequestUpload,
                ferry_testkit::Match::any(),
                ferry_testkit::FOREVER,
            );
        }
    };
    take();
    let mut stalled = stall_after.is_some();
    println!("{}", proxy.host());
    let _ = std::io::stdout().flush();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(20));
        if stalled && lift_when.is_some_and(std::path::Path::exists) {
            proxy.clear();
            take();
            stalled = false;
        }
        let lines: String = proxy
            .take_log()
            .iter()
            .map(|seen| format!("{} {}\n", seen.method, seen.path))
            .collect();
        if let Err(e) = file.write_all(lines.as_bytes()) {
            eprintln!("ferry-fixtures: writing {}: {e}", log.display());
            return ExitCode::FAILURE;
        }
    }
}

/// Sign every reference on standard input with `key` (cosign format).
fn sign(host: &str, key: PathBuf) -> ExitCode {
    use ferry_testkit::cosign::{push_signature, KeyPair, SignedPayload};
    let pusher = ferry_testkit::Pusher::new(&format!("http://{host}"));
    let key = KeyPair {
        private: key,
        public: PathBuf::new(),
    };
    for line in std::io::stdin().lines() {
        let Ok(line) = line else {
            return ExitCode::FAILURE;
        };
        let reference = line.trim();
        if reference.is_empty() {
            continue;
        }
        let path = reference
            .strip_prefix(&format!("{host}/"))
            .unwrap_or(reference);
        let Some((repo, tag)) = path.rsplit_once(':') else {
            eprintln!("ferry-fixtures: {reference}: expected HOST/REPO:TAG");
            return ExitCode::FAILURE;
        };
        let digest = pusher.manifest_digest(repo, tag);
        let payload = SignedPayload::for_digest(&key, repo, &digest);
        push_signature(&pusher, repo, &digest, &[payload]);
    }
    ExitCode::SUCCESS
}

fn bench_workload(host: &str, scale: f64, release: u32, blobs: Option<PathBuf>) -> ExitCode {
    let workload = ferry_testkit::push_bench_release(host, scale, release);
    if let Some(path) = blobs {
        let lines: String = workload
            .blobs
            .iter()
            .map(|b| format!("{} {} {}\n", b.repository, b.digest, b.size))
            .collect();
        if let Err(e) = std::fs::write(&path, lines) {
            eprintln!("ferry-fixtures: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    eprintln!(
        "ferry-fixtures: pushed {} reference(s), {} manifest(s), {} unique blob(s), {} bytes of blobs",
        workload.references.len(),
        workload.manifests,
        workload.blobs.len(),
        workload.blob_bytes()
    );
    let mut out = std::io::stdout().lock();
    for reference in &workload.references {
        if writeln!(out, "{reference}").is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}
