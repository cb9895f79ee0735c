//! One module per subcommand; each settles its arguments, runs, and prints.

mod common;
mod diff;
mod inspect;
mod pack;
mod unpack;
mod verify;

use std::process::ExitCode;

use crate::args::Command;

/// Run one subcommand.
pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Pack(args) => pack::run(args).await,
        Command::Unpack(args) => unpack::run(args).await,
        Command::Inspect(args) => inspect::run(args),
        Command::Verify(args) => verify::run(args).await,
        Command::Diff(args) => diff::run(args),
    }
}
