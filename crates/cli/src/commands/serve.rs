//! `ferry serve`: bundles as a read-only registry until SIGTERM or Ctrl-C.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ferry_serve::{Limits, ServeOptions, Server};

use super::common::human_bytes;
use crate::args::ServeArgs;

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let idle = Duration::from_secs(args.idle_timeout);
    let options = ServeOptions {
        bundles: args.bundles.clone(),
        listen: args.listen,
        tls: args.tls_cert.clone().zip(args.tls_key.clone()),
        htpasswd: args.htpasswd.clone(),
        prefix: args.prefix.clone(),
        limits: Limits {
            max_connections: args.max_connections,
            idle_timeout: idle,
            header_timeout: idle.min(Limits::default().header_timeout),
            ..Limits::default()
        },
    };
    let server = Server::bind(&options).await.context("ferry serve")?;
    let report = server.report();
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if options.htpasswd.is_some() && !server.is_tls() {
        eprintln!("warning: --htpasswd without --tls-cert sends passwords in clear text");
    }
    let scheme = if server.is_tls() { "https" } else { "http" };
    let addr = server.local_addr().unwrap_or(args.listen);
    eprintln!(
        "serving {} repositories, {} tags, {} blobs ({}) on {scheme}://{addr} (read-only; Ctrl-C stops)",
        report.repositories,
        report.tags,
        report.blobs,
        human_bytes(report.blob_bytes),
    );
    server.run(stop_signal()).await;
    eprintln!("ferry serve: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
