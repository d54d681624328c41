//! The `cosmocast` binary: parse, build the runtime, run, map to the contract's exit code.

use clap::Parser;
use cosmocast::error::{Exit, report};

fn main() {
    let cli = cosmocast::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(Exit::CannotRun.code());
        }
    };
    let exit = match runtime.block_on(cosmocast::run(cli)) {
        Ok(exit) => exit,
        Err(e) => report(&e),
    };
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    std::process::exit(exit.code());
}
