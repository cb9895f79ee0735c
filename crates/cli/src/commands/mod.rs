//! One module per subcommand; each settles its arguments, runs, and prints.

mod common;
mod diff;
mod images;
mod inspect;
mod mapping;
mod merge;
mod pack;
mod receipt;
mod repair;
mod rewrite;
mod serve;
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
        Command::Merge(args) => merge::run(args).await,
        Command::Receipt(args) => receipt::run(args).await,
        Command::Diff(args) => diff::run(args),
        Command::Repair(args) => repair::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Images(args) => images::run(args),
        Command::Mapping(args) => mapping::run(args),
        Command::Rewrite(args) => rewrite::run(args),
    }
}
