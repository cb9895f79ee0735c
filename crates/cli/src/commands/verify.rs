//! `ferry verify`.

use std::process::ExitCode;

use crate::args::VerifyArgs;

pub async fn run(_args: VerifyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("verify is not available yet in this build")
}
