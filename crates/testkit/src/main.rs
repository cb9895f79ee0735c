//! `ferry-fixtures`: push ferry's fixture images into a registry, or serve a
//! registry holding them (for `make demo` and manual testing).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use ferry_testkit::{FixtureOptions, RegistryOptions, RegistryProcess};

const USAGE: &str = "usage:
  ferry-fixtures push HOST[:PORT] [--big-layer-bytes N]
      push the fixtures into a running plain-HTTP registry; print their references
  ferry-fixtures serve DIR [--big-layer-bytes N]
      start docker-registry on 127.0.0.1:<free port> with storage in DIR, push the
      fixtures, print the registry's host, then become the registry until killed";

enum Command {
    Push(String),
    Serve(PathBuf),
}

fn parse(args: &[String]) -> Result<(Command, FixtureOptions), String> {
    let mut options = FixtureOptions::default();
    let mut positional = Vec::new();
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
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            _ => positional.push(arg.clone()),
        }
    }
    let command = match positional.as_slice() {
        [cmd, host] if cmd == "push" => Command::Push(host.clone()),
        [cmd, dir] if cmd == "serve" => Command::Serve(PathBuf::from(dir)),
        _ => return Err("expected `push HOST[:PORT]` or `serve DIR`".to_string()),
    };
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
