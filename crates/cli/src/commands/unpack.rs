//! `ferry unpack`.

use std::process::ExitCode;

use crate::args::UnpackArgs;

pub async fn run(_args: UnpackArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("unpack is not available yet in this build")
}
