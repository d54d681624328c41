//! One file per subcommand, plus what several share: the environment a real send needs, where
//! output goes (`output.rs`), and waiting for a stop signal.

pub(crate) mod check;
mod endpoint;
pub(crate) mod export;
pub(crate) mod listen;
pub(crate) mod optouts;
pub(crate) mod output;
pub(crate) mod preview;
pub(crate) mod replies;
pub(crate) mod report;
pub(crate) mod run;
pub(crate) mod sandbox;
pub(crate) mod schema;
pub(crate) mod status;
pub(crate) mod test;

use crate::campaign::Campaign;
use crate::error::Problem;

/// Problems about the environment a real send needs (token, channel id).
pub(crate) fn environment_problems(c: &Campaign) -> Vec<Problem> {
    let mut out = Vec::new();
    for (key, v) in [
        ("api.token", &c.api.token),
        ("api.channel_id", &c.api.channel_id),
    ] {
        if v.value.is_none()
            && let Some(var) = &v.var
        {
            out.push(c.problem_at(key, format!("the environment variable {var} is not set")).hint(format!(
                "export {var}=... before running (the value is in the CosmoBots console: Integrations → API)"
            )));
        }
    }
    out
}

/// Resolves on SIGINT or SIGTERM. The handlers are in place when this returns, so a signal
/// sent as soon as a server's start line is printed stops it cleanly instead of killing it.
pub(crate) fn stop_signals() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
