//! The `cosmocast` binary: parse, build the runtime, run, map to the documented exit code.

use clap::Parser;
use cosmocast::error::{Exit, report};

fn main() {
    let cli = cosmocast::Cli::parse();
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
        // A closed pipe (`cosmocast export ... | head`) is the reader's choice, not a failure.
        Err(e) if is_broken_pipe(&e) => Exit::Ok,
        Err(e) => report(&e),
    };
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    std::process::exit(exit.code());
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<csv::Error>()
                .is_some_and(|e| matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe))
    })
}

// Most of a message's ~100 allocations happen inside the HTTP stack; mimalloc serves them for
// a fraction of glibc's cost and returns memory to the system as it goes.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
