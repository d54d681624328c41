//! cosmocast: personalised messaging campaigns through the CosmoBots Send Message API.
//!
//! Data flows campaign → contacts → render → send → ledger → report; each stage is a module.

mod api;
mod audience;
mod campaign;
pub mod cli;
mod commands;
mod contacts;
pub mod error;
mod flags;
#[doc(hidden)]
pub mod fuzzing;
mod ledger;
mod lookalike;
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

use cli::{Cli, Command};
// Phone numbers are read by the workspace's leaf crate (crates/phone); the modules name it
// `crate::phone`.
use cosmocast_phone as phone;
use error::Exit;

/// Runs one command line to its exit code.
pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Check {
            campaign,
            ledger,
            json,
        } => commands::check::run(&campaign, &ledger, json, quiet),
        Command::Preview {
            campaign,
            rows,
            json,
            html,
        } => {
            let shown = match (json, html) {
                (true, _) => commands::preview::Shown::Json,
                (false, Some(file)) => commands::preview::Shown::Html(file),
                (false, None) => commands::preview::Shown::Terminal,
            };
            commands::preview::run(&campaign, &rows, &shown, quiet)
        }
        Command::Run(args) => commands::run::run(args, quiet).await,
        Command::Status {
            campaign,
            ledger,
            json,
        } => commands::status::run(&campaign, &ledger, json),
        Command::Report {
            campaign,
            ledger,
            output,
        } => commands::report::run(&campaign, &ledger, &output, quiet),
        Command::Export {
            campaign,
            ledger,
            out,
        } => commands::export::run(&campaign, &ledger, &out, quiet),
        Command::Test {
            campaign,
            to,
            row,
            ledger,
            sandbox,
        } => {
            let args = commands::test::TestArgs {
                campaign: &campaign,
                to: &to,
                row,
                ledger: &ledger.ledger,
                sandbox,
            };
            commands::test::run(args, quiet).await
        }
        Command::Listen {
            addr,
            ledger,
            opt_out_words,
            horizon,
        } => {
            let args = commands::listen::ListenArgs {
                addr,
                ledger,
                opt_out_words,
                horizon,
            };
            commands::listen::run(args, quiet).await
        }
        Command::Replies {
            campaign,
            ledger,
            out,
        } => commands::replies::run(&campaign, &ledger, &out),
        Command::Optouts(args) => commands::optouts::run(args, quiet),
        Command::Sandbox(args) => commands::sandbox::run(args, quiet).await,
        Command::Schema => commands::schema::run(),
    }
}
