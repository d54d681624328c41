//! cosmocast: personalised messaging campaigns through the CosmoBots Send Message API.
//!
//! Data flows campaign → contacts → render → send → ledger → report; each stage is a module.

// An item is `pub` only where the library exposes it (to `main.rs` and the fuzz targets), so
// that the compiler finds the dead code a `pub` would hide.
#![warn(unreachable_pub)]

mod api;
mod audience;
mod campaign;
mod cli;
mod commands;
mod contacts;
pub mod error;
mod flags;
#[doc(hidden)]
pub mod fuzzing;
mod ledger;
mod lookalike;
mod phone;
mod plan;
mod progress;
mod redact;
mod render;
mod report;
mod sandbox;
mod send;
mod stderr;
mod text;
mod view;
mod webhook;

pub use cli::Cli;
use cli::Command;
use error::Exit;

/// Runs one command line to its exit code.
pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Check(args) => commands::check::run(&args, quiet),
        Command::Preview(args) => commands::preview::run(&args, quiet),
        Command::Run(args) => commands::run::run(args, quiet).await,
        Command::Status(args) => commands::status::run(&args),
        Command::Report(args) => commands::report::run(&args, quiet),
        Command::Export(args) => commands::export::run(&args, quiet),
        Command::Test(args) => commands::test::run(&args, quiet).await,
        Command::Listen(args) => commands::listen::run(args, quiet).await,
        Command::Replies(args) => commands::replies::run(&args),
        Command::Optouts(args) => commands::optouts::run(args, quiet),
        Command::Sandbox(args) => commands::sandbox::run(args, quiet).await,
        Command::Schema => commands::schema::run(),
    }
}
