//! `cosmocast listen`: receives CosmoBots webhook posts until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::{Exit, Fatal};
use crate::replies::OPT_OUT_WORDS;
use crate::sandbox::listen;

/// The variable holding the webhook path's secret.
pub const SECRET_VAR: &str = "COSMOCAST_WEBHOOK_SECRET";

pub struct ListenArgs {
    pub addr: SocketAddr,
    pub ledger: PathBuf,
    pub opt_out_words: Option<Vec<String>>,
    pub horizon: Duration,
}

pub async fn run(args: ListenArgs, quiet: bool) -> anyhow::Result<Exit> {
    let secret = std::env::var(SECRET_VAR).unwrap_or_default();
    if secret.trim().len() < listen::MIN_SECRET {
        return Err(Fatal::new(
            Exit::CannotRun,
            format!(
                "{SECRET_VAR} must hold at least {} characters (it is {}): it is the only thing that keeps strangers from posting fake replies — e.g. export {SECRET_VAR}=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')",
                listen::MIN_SECRET,
                if secret.is_empty() { "not set".to_string() } else { format!("{} long", secret.trim().len()) }
            ),
        )
        .into());
    }
    let words = args
        .opt_out_words
        .unwrap_or_else(|| OPT_OUT_WORDS.iter().map(|w| w.to_string()).collect());
    let stop = CancellationToken::new();
    let cfg = listen::Config {
        secret: secret.trim().to_string(),
        opt_out_words: words,
        horizon: args.horizon,
        quiet,
    };
    let server = listen::start(cfg, args.addr, &args.ledger, stop.clone()).await?;
    if !quiet {
        eprintln!(
            "cosmocast listening on http://{}/webhook/<${SECRET_VAR}>, storing replies in {} (Ctrl-C to stop)",
            server.addr,
            args.ledger.display()
        );
    }
    super::shutdown_signal().await?;
    stop.cancel();
    server.wait().await;
    if !quiet {
        eprintln!("cosmocast listen: stopped; every reply received was stored");
    }
    Ok(Exit::Ok)
}
