//! `cosmocast sandbox`: serves the stand-in API until SIGINT or SIGTERM.

use tokio_util::sync::CancellationToken;

use crate::cli::SandboxArgs;
use crate::error::Exit;
use crate::sandbox;

pub async fn run(args: SandboxArgs, quiet: bool) -> anyhow::Result<Exit> {
    let stop = CancellationToken::new();
    let server = sandbox::start(sandbox::Config::from(&args), args.addr, stop.clone()).await?;
    if !quiet {
        eprintln!(
            "cosmocast sandbox listening on {} (Ctrl-C to stop)",
            server.url()
        );
    }
    super::shutdown_signal().await?;
    stop.cancel();
    server.wait().await;
    Ok(Exit::Ok)
}
