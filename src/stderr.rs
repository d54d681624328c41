//! Lines on stderr from the servers (`listen`, `sandbox`), which run long after whoever started
//! them may have gone: a closed pipe or terminal loses the line instead of stopping the server
//! (`eprintln!` would panic).

/// Writes one line to stderr, dropping it if stderr is gone.
macro_rules! log {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use log;
