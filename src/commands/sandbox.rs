//! `cosmocast sandbox`: serves the stand-in API until SIGINT or SIGTERM.

use tokio_util::sync::CancellationToken;

use crate::error::Exit;
use crate::printer::Printer;
use crate::sandbox;
use crate::sandbox::options::Options;

pub(crate) async fn run(args: Options, printer: Printer) -> anyhow::Result<Exit> {
    let stop = CancellationToken::new();
    let stopped = super::stop_signals()?;
    let server = sandbox::start(args.config, args.addr, stop.clone()).await?;
    printer.info(format_args!(
        "cosmocast sandbox listening on {} (Ctrl-C to stop)",
        server.url()
    ));
    stopped.await;
    stop.cancel();
    server.wait().await;
    Ok(Exit::Ok)
}
