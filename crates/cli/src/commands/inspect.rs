//! `ferry inspect`.

use std::process::ExitCode;

use crate::args::InspectArgs;

pub fn run(_args: InspectArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("inspect is not available yet in this build")
}
