//! The `cosmocast` binary: parse, build the runtime, run, map to the documented exit code.

use clap::Parser;
use cosmocast::error::{Exit, report};

fn main() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    return_large_blocks();
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

/// A run builds tables of tens of megabytes (the keys, the phones) phase after phase: pre-flight,
/// sending, summary. They come from the system allocator (`ledger/table.rs`), and a fixed mmap
/// threshold (glibc's default of 128 KiB; glibc raises it once a block that large is freed)
/// gives each a mapping of its own, returned to the system when it is dropped.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_blocks() {
    // SAFETY: mallopt only sets one of the allocator's parameters, before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Everything else comes from mimalloc: a message's ~100 small allocations happen inside hyper,
/// reqwest and tokio, and mimalloc serves them for less than glibc, whose malloc and free took
/// 12% of a run's CPU samples. A run of 200,000 rows takes 0.905 of the wall time and 0.882 of
/// the CPU it took on glibc alone (`farm-bench -n 10`, a fresh ledger each run), and one of a
/// million rows peaks at 55 MB against 53 MB (README, Speed and memory).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
