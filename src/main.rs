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
/// sending, summary. Once glibc frees a block that large it raises its mmap threshold to match,
/// and the next such table comes from the heap, where it stays resident after it is dropped; a
/// fixed threshold (glibc's default of 128 KiB) gives every large block a mapping of its own,
/// returned to the system when it is dropped.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_blocks() {
    // SAFETY: mallopt only sets one of the allocator's parameters, before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
