//! `cosmocast listen`: receives CosmoBots webhook posts until SIGINT or SIGTERM.

use std::path::Path;

use tokio_util::sync::CancellationToken;

use crate::cli::ListenArgs;
use crate::error::{Exit, Fatal};
use crate::ledger::locate::{self, Located, Source};
use crate::printer::Printer;
use crate::webhook::parse::OPT_OUT_WORDS;
use crate::webhook::{self, SECRET_VAR};

/// How many campaign names the start line lists before it only counts them.
const CAMPAIGNS_SHOWN: usize = 10;

pub(crate) async fn run(args: ListenArgs, printer: Printer) -> anyhow::Result<Exit> {
    let secret = secret()?;
    let located = locate::in_working_folder(args.ledger.path.as_deref())?;
    check_ledger(&located, args.ledger.create)?;
    let words = args
        .opt_out_words
        .unwrap_or_else(|| OPT_OUT_WORDS.iter().map(|w| w.to_string()).collect());
    let stop = CancellationToken::new();
    // A delivery may carry the channel id (or worse) back: the credentials in this process's
    // environment, and the path's secret, never reach the ledger.
    let env = |var: &str| std::env::var(var).unwrap_or_default();
    let (token, channel_id) = (env("COSMOBOTS_TOKEN"), env("COSMOBOTS_CHANNEL_ID"));
    let redactor = crate::redact::Redactor::new(&[&token, &channel_id, &secret]);
    let cfg = webhook::Config {
        redactor,
        secret,
        opt_out_words: words,
        horizon: args.horizon,
        country: args.country.region()?,
        printer,
        read_timeout: args.addr.read_timeout.unwrap_or(webhook::READ_TIMEOUT),
        max_connections: args.addr.max_connections as usize,
        max_pending_per_addr: args.addr.max_pending_per_addr as usize,
    };
    let ledger = &located.place;
    let stopped = super::stop_signals()?;
    let server = webhook::start(cfg, args.addr.addr, ledger, stop.clone()).await?;
    printer.info(format_args!(
        "cosmocast listening on http://{}/webhook/<${SECRET_VAR}>, storing replies in {located} ({}); Ctrl-C to stop",
        server.addr,
        campaigns_note(&server.campaigns)
    ));
    stopped.await;
    stop.cancel();
    let unstored = server.wait().await;
    if unstored == 0 {
        printer.info("cosmocast listen: stopped; every reply received was stored");
    } else {
        printer.important(format_args!(
            "cosmocast listen: stopped; {} answered 500 and not stored (the lines `listen: 500` above say why); every other reply received was stored",
            crate::text::count(unstored, "delivery")
        ));
    }
    Ok(Exit::Ok)
}

/// The webhook path's secret, long enough to keep strangers out.
fn secret() -> Result<String, Fatal> {
    let raw = std::env::var(SECRET_VAR).unwrap_or_default();
    if let Some(secret) = webhook::usable_secret(&raw) {
        return Ok(secret.to_string());
    }
    let secret = raw.trim();
    Err(Fatal::new(
        Exit::CannotRun,
        format!(
            "{SECRET_VAR} must hold at least {} characters (it is {}): it is the only thing that keeps strangers from posting fake replies — e.g. export {SECRET_VAR}=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')",
            webhook::MIN_SECRET,
            if secret.is_empty() {
                "not set".to_string()
            } else {
                format!("{} long", secret.len())
            }
        ),
    ))
}

/// A missing ledger named with `--ledger` or `COSMOCAST_LEDGER` is refused unless `--create`
/// asks for one: a mistyped path would otherwise keep opt-outs where no campaign reads them. The
/// default ledger is the one every command meets, and is created when missing.
fn check_ledger(l: &Located, create: bool) -> anyhow::Result<()> {
    // A database is made a ledger by its first command; an error other than "not found" (a
    // folder we may not read) is left for the open to report.
    let Some(path) = l.place.file() else {
        return Ok(());
    };
    if path.try_exists().unwrap_or(true) {
        return Ok(());
    }
    if l.source == Source::Default {
        return l.prepare_folder();
    }
    if !create {
        let looked = if path.is_relative() {
            std::env::current_dir()
                .map(|d| format!(" (looked in {})", d.display()))
                .unwrap_or_default()
        } else {
            String::new()
        };
        return Err(Fatal::new(
            Exit::CannotRun,
            format!(
                "{l}: no ledger here{looked} — point it at the campaigns' ledger (the one `cosmocast status` names), or pass `--create` to start a new one"
            ),
        )
        .into());
    }
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !folder.is_dir() {
        return Err(Fatal::new(
            Exit::CannotRun,
            format!(
                "{}: the folder {} does not exist — create it, or give `--ledger` a path in an existing folder",
                path.display(),
                folder.display()
            ),
        )
        .into());
    }
    Ok(())
}

fn campaigns_note(names: &[String]) -> String {
    if names.is_empty() {
        return "no campaigns yet".into();
    }
    let shown = names[..names.len().min(CAMPAIGNS_SHOWN)].join(", ");
    match names.len().saturating_sub(CAMPAIGNS_SHOWN) {
        0 => format!("campaigns: {shown}"),
        more => format!("campaigns: {shown} and {more} more"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_campaigns_are_named_then_counted() {
        assert_eq!(campaigns_note(&[]), "no campaigns yet");
        let two = ["welcome-2026-12".to_string(), "renewal-2026-12".to_string()];
        assert_eq!(
            campaigns_note(&two),
            "campaigns: welcome-2026-12, renewal-2026-12"
        );
        let many: Vec<String> = (1..=12).map(|i| format!("c{i}")).collect();
        assert_eq!(
            campaigns_note(&many),
            "campaigns: c1, c2, c3, c4, c5, c6, c7, c8, c9, c10 and 2 more"
        );
    }
}
