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
mod plan;
mod printer;
mod progress;
mod redact;
mod render;
mod report;
mod sandbox;
mod send;
#[cfg(test)]
mod testing;
mod text;
mod view;
mod webhook;

pub use cli::Cli;
use cli::Command;
// Phone numbers are read by the workspace's leaf crate (crates/phone); the modules name it
// `crate::phone`.
use cosmocast_phone as phone;
use error::Exit;
use printer::Printer;

/// Runs one command line to its exit code.
pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    let printer = Printer::new(cli.quiet);
    match cli.command {
        Command::Check(args) => commands::check::run(&args, printer),
        Command::Preview(args) => commands::preview::run(&args, printer),
        Command::Run(args) => commands::run::run(args, printer).await,
        Command::Status(args) => commands::status::run(&args),
        Command::Report(args) => commands::report::run(&args, printer),
        Command::Export(args) => commands::export::run(&args, printer),
        Command::Test(args) => commands::test::run(&args, printer).await,
        Command::Listen(args) => commands::listen::run(args, printer).await,
        Command::Replies(args) => commands::replies::run(&args),
        Command::Optouts(args) => commands::optouts::run(args, printer),
        Command::Sandbox(args) => commands::sandbox::run(args, printer).await,
        Command::Schema => commands::schema::run(),
    }
}
