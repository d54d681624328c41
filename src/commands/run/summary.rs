//! The end of a run: the campaign's counts from the ledger, this run's figures, why it stopped,
//! the exit code (README: Exit codes), and what to do next.

use std::io::Write;
use std::sync::atomic::Ordering;

use serde_json::json;

use super::{Held, Ran};
use crate::cli::RunArgs;
use crate::error::Exit;
use crate::plan::{Accounting, Plan};
use crate::send::Stop;
use crate::text::count;

/// The exit code (README: Exit codes): about this run. Failures it left (or the interrupted sends
/// it found and recorded `unknown`) win over work that remains, so a campaign paced by its
/// daily limit still reports a failure the day it happens; older failures are only named.
fn exit_code(held: &Held, ran: &Ran) -> Exit {
    let stats = &ran.stats;
    let left_failures = stats.failed.load(Ordering::Relaxed)
        + stats.unknown.load(Ordering::Relaxed)
        + held.recovered as u64
        > 0;
    match &ran.stop {
        Some(s) if s.is_fatal() => Exit::CannotRun,
        _ if left_failures => Exit::Incomplete,
        _ if ran.work_remains || stats.deferred.load(Ordering::Relaxed) > 0 => Exit::WorkRemains,
        _ => Exit::Ok,
    }
}

pub(super) fn print(
    plan: &Plan,
    held: &Held,
    ran: &Ran,
    args: &RunArgs,
    quiet: bool,
) -> anyhow::Result<Exit> {
    // The same accounting as `status`, `report` and `export`: every row in one bucket.
    let rows = plan.account(Some(&held.ledger), held.located.sandbox)?;
    let exit = exit_code(held, ran);
    let out = &mut crate::commands::output::stdout();
    let printed = if args.json {
        print_json(out, plan, ran, &rows, exit)
    } else if !quiet || exit != Exit::Ok {
        // With -q a run that did not end well still says where the campaign stands: cron mails
        // what a job prints.
        print_text(out, plan, ran, &rows)
    } else {
        Ok(())
    };
    // A full or closed stdout loses the summary, not the run: every send is done and recorded.
    if let Err(e) = printed {
        eprintln!("warning: {e}: the summary was not printed (`cosmocast status` shows it)");
    }
    advise(plan, held, ran, &rows, exit, quiet);
    Ok(exit)
}

fn print_json(
    out: &mut impl Write,
    plan: &Plan,
    ran: &Ran,
    rows: &Accounting,
    exit: Exit,
) -> std::io::Result<()> {
    let stats = &ran.stats;
    let secs = ran.elapsed.as_secs_f64().max(0.001);
    writeln!(
        out,
        "{}",
        json!({
            "campaign": plan.campaign.name,
            "rows": rows.rows,
            "sent": rows.sent,
            "queued": rows.queued,
            "failed": rows.failed,
            "unknown": rows.unknown,
            "skipped": rows.skipped,
            "skipped_by_reason": rows.skipped_by_reason,
            "filtered": rows.filtered,
            "invalid": rows.invalid,
            "blank": rows.blank,
            "deferred": rows.deferred,
            "pending": rows.pending,
            "not_in_file": rows.not_in_file,
            "landlines": ran.landlines,
            "this_run": {
                "requests": ran.requests,
                "retries": stats.retries.load(Ordering::Relaxed),
                "deferred": stats.deferred.load(Ordering::Relaxed),
                "seconds": secs,
            },
            "stopped": ran.stop,
            "work_remains": ran.work_remains,
            "exit_code": exit.code(),
            "ledger": ran.ledger.place.to_string(),
        })
    )
}

fn print_text(
    out: &mut impl Write,
    plan: &Plan,
    ran: &Ran,
    rows: &Accounting,
) -> std::io::Result<()> {
    let stats = &ran.stats;
    writeln!(
        out,
        "{}: {} — {}",
        plan.campaign.name,
        count(rows.rows, "row"),
        rows.line()
    )?;
    if rows.not_in_file > 0 {
        writeln!(
            out,
            "  and {} in the ledger no longer in the contact file",
            count(rows.not_in_file, "contact")
        )?;
    }
    let secs = ran.elapsed.as_secs_f64().max(0.001);
    writeln!(
        out,
        "this run: {} in {secs:.1}s ({:.1}/s), {}; ledger {}",
        count(ran.requests, "contact"),
        ran.requests as f64 / secs,
        count(stats.retries.load(Ordering::Relaxed), "retry"),
        ran.ledger.place
    )
}

/// The channel's daily limit stopped the run: how far it got, and when it may go on. Printed
/// even with `-q`: the exit (4) alone does not say why.
fn daily_limit_spent(held: &Held, ran: &Ran, again: &str) {
    let spent = held.ledger.spent(&held.channel, None).ok();
    let limit = spent
        .as_ref()
        .and_then(|s| s.limit)
        .map(|l| format!(" ({l} unique people in any 24 hours)"))
        .unwrap_or_default();
    let next = spent
        .and_then(|s| s.next_slot)
        .map(|t| format!("; the next slot opens at {} UTC", crate::ledger::minute(&t)))
        .unwrap_or_default();
    eprintln!(
        "the channel's daily limit{limit} is reached: {} sent this run, {} waiting{next} — run `{again}` then",
        count(ran.requests, "contact"),
        ran.stats.deferred.load(Ordering::Relaxed)
    );
}

/// Why the run stopped, and the command that goes on.
fn advise(plan: &Plan, held: &Held, ran: &Ran, rows: &Accounting, exit: Exit, quiet: bool) {
    let c = &plan.campaign;
    // The command line, so that copying it resumes with the same flags; a change already
    // accepted is not accepted again.
    let again = std::env::args()
        .filter(|a| a != "--accept-change")
        .collect::<Vec<_>>()
        .join(" ");
    let status_cmd = match (ran.ledger.sandbox, ran.ledger.source) {
        (true, _) => format!("cosmocast status {} --sandbox", c.file.display()),
        (false, crate::ledger::locate::Source::Flag) => format!(
            "cosmocast status {} --ledger {}",
            c.file.display(),
            ran.ledger.place
        ),
        (false, _) => format!("cosmocast status {}", c.file.display()),
    };
    match &ran.stop {
        Some(Stop::Unauthorized(e)) => eprintln!(
            "error: the API refused the credentials ({}); check {} and {} — nothing more was sent",
            crate::text::printable(e),
            c.api.token.origin(),
            c.api.channel_id.origin()
        ),
        Some(stop @ Stop::FailureStreak(..)) => eprintln!(
            "error: stopped: {} (send.max_consecutive_failures); see `{status_cmd}` for the errors",
            stop.message()
        ),
        Some(Stop::Unreachable(m)) => eprintln!(
            "error: {} — check `api.url`, the network and any proxy settings, then run `{again}` again",
            crate::text::printable(m)
        ),
        Some(Stop::Ledger(m)) => eprintln!("error: {}", crate::text::printable(m)),
        Some(Stop::Feed(m)) => eprintln!("error: the run stopped: {}", crate::text::printable(m)),
        Some(Stop::Interrupted) if !quiet => {
            eprintln!("interrupted: run `{again}` to continue where this run stopped")
        }
        Some(Stop::Limit) if !quiet => eprintln!("--limit reached: run `{again}` to send the rest"),
        Some(Stop::DailyLimit) => daily_limit_spent(held, ran, &again),
        Some(s @ Stop::AskedToWait { .. }) => eprintln!(
            "{}: the run stopped, nothing was marked failed; run `{again}` later to continue",
            s.message()
        ),
        Some(Stop::Window) if !quiet && ran.work_remains => {
            let next = c
                .send
                .window
                .as_ref()
                .and_then(|w| match w.state(jiff::Timestamp::now()) {
                    crate::campaign::window::State::Closed { opens: Some(t) } => {
                        Some(w.describe(t))
                    }
                    _ => None,
                });
            eprintln!(
                "the send window closed: run `{again}` when it opens again{}",
                next.map(|n| format!(" ({n})")).unwrap_or_default()
            )
        }
        _ => {}
    }
    let deferred = ran.stats.deferred.load(Ordering::Relaxed);
    if deferred > 0 && !quiet {
        let when = ran
            .deferred_until
            .and_then(|t| jiff::Timestamp::from_second(t).ok())
            .map(|t| format!(" (the first after {})", t.strftime("%Y-%m-%d %H:%M UTC")))
            .unwrap_or_default();
        eprintln!(
            "{} deferred: messaged by a campaign of this ledger within `contacts.cooldown`; run `{again}` later to send them{when}",
            count(deferred, "contact")
        );
    }
    if ran.landlines > 0 && !quiet {
        let what = match ran.landlines {
            1 => "1 phone is a landline".to_string(),
            n => format!("{n} phones are landlines"),
        };
        eprintln!(
            "warning: {what} on {}, which reaches mobiles only; `cosmocast check {}` lists them",
            c.api.channel.name(),
            c.file.display()
        );
    }
    if ran.abandoned > 0 {
        let was = if ran.abandoned == 1 { "was" } else { "were" };
        eprintln!(
            "warning: {} {was} still in flight; they will show as `unknown`",
            count(ran.abandoned, "request")
        );
    }
    if exit == Exit::Incomplete && !quiet {
        let mut next = Vec::new();
        if rows.failed > 0 {
            next.push("`run --retry-failed` sends the failed ones again");
        }
        if rows.unknown > 0 {
            next.push(
                "`run --resend-unknown` sends the unknown ones again (they may get the message twice)",
            );
        }
        eprintln!(
            "some contacts failed or are unknown: `{status_cmd}` shows why; {}",
            next.join("; ")
        );
    }
}
