//! The end of a run: the campaign's counts from the ledger, this run's figures, why it stopped,
//! the exit code of the contract, and what to do next.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde_json::json;

use super::{Held, Ran};
use crate::cli::RunArgs;
use crate::error::Exit;
use crate::ledger::Status;
use crate::plan::Plan;
use crate::send::Stop;
use crate::text::count;

/// The campaign's counts as the ledger holds them after the run.
struct Counts {
    by_state: std::collections::HashMap<Status, u64>,
    skipped: Vec<(String, u64)>,
}

impl Counts {
    fn get(&self, s: Status) -> u64 {
        self.by_state.get(&s).copied().unwrap_or(0)
    }
}

/// The exit code of the contract: about this run. Failures it left (or the interrupted sends
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
    let c = &plan.campaign;
    let by_state = held.ledger.counts(&c.name)?;
    let skipped = if by_state.contains_key(&Status::Skipped) {
        held.ledger.skipped_by_reason(&c.name)?
    } else {
        Vec::new()
    };
    let counts = Counts { by_state, skipped };
    let exit = exit_code(held, ran);
    if args.json {
        print_json(plan, ran, &counts, exit);
    } else if !quiet {
        print_text(plan, ran, &counts);
    }
    advise(plan, held, ran, &counts, exit, quiet);
    Ok(exit)
}

fn print_json(plan: &Plan, ran: &Ran, counts: &Counts, exit: Exit) {
    let stats = &ran.stats;
    let secs = ran.elapsed.as_secs_f64().max(0.001);
    println!(
        "{}",
        json!({
            "campaign": plan.campaign.name,
            "rows": ran.rows,
            "sent": counts.get(Status::Sent),
            "queued": counts.get(Status::Queued),
            "failed": counts.get(Status::Failed),
            "unknown": counts.get(Status::Unknown),
            "skipped": counts.get(Status::Skipped),
            "skipped_by_reason": counts.skipped.iter().cloned().collect::<BTreeMap<_, _>>(),
            "filtered": stats.filtered.load(Ordering::Relaxed),
            "deferred": stats.deferred.load(Ordering::Relaxed),
            "landlines": ran.landlines,
            "this_run": {
                "requests": ran.requests,
                "retries": stats.retries.load(Ordering::Relaxed),
                "seconds": secs,
            },
            "stopped": ran.stop,
            "work_remains": ran.work_remains,
            "exit_code": exit.code(),
            "ledger": ran.ledger.path.display().to_string(),
        })
    );
}

fn print_text(plan: &Plan, ran: &Ran, counts: &Counts) {
    let stats = &ran.stats;
    let detail = if counts.skipped.is_empty() {
        String::new()
    } else {
        format!(
            " ({})",
            counts
                .skipped
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let filtered = stats.filtered.load(Ordering::Relaxed);
    let deferred = match stats.deferred.load(Ordering::Relaxed) {
        0 => String::new(),
        n => format!(", deferred {n}"),
    };
    let rows = ran.rows;
    println!(
        "{}: {} — sent {}, queued {}, failed {}, unknown {}, skipped {}{detail}, filtered {filtered}{deferred}",
        plan.campaign.name,
        count(rows, "row"),
        counts.get(Status::Sent),
        counts.get(Status::Queued),
        counts.get(Status::Failed),
        counts.get(Status::Unknown),
        counts.get(Status::Skipped),
    );
    let secs = ran.elapsed.as_secs_f64().max(0.001);
    println!(
        "this run: {} in {secs:.1}s ({:.1}/s), {}; ledger {}",
        count(ran.requests, "contact"),
        ran.requests as f64 / secs,
        count(stats.retries.load(Ordering::Relaxed), "retry"),
        ran.ledger.path.display()
    );
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
        .map(|t| {
            format!(
                "; the next slot opens at {}",
                t.get(..16).unwrap_or(&t).replace('T', " ") + " UTC"
            )
        })
        .unwrap_or_default();
    eprintln!(
        "the channel's daily limit{limit} is reached: {} sent this run, {} waiting{next} — run `{again}` then",
        count(ran.requests, "contact"),
        ran.stats.deferred.load(Ordering::Relaxed)
    );
}

/// Why the run stopped, and the command that goes on.
fn advise(plan: &Plan, held: &Held, ran: &Ran, counts: &Counts, exit: Exit, quiet: bool) {
    let c = &plan.campaign;
    // The exact command line, so that copying it resumes with the same flags.
    let again = std::env::args().collect::<Vec<_>>().join(" ");
    let status_cmd = match (ran.ledger.sandbox, ran.ledger.source) {
        (true, _) => format!("cosmocast status {} --sandbox", c.file.display()),
        (false, crate::ledger::locate::Source::Flag) => format!(
            "cosmocast status {} --ledger {}",
            c.file.display(),
            ran.ledger.path.display()
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
        Some(Stop::FailureStreak(n)) => eprintln!(
            "error: stopped after {n} contacts failed in a row (send.max_consecutive_failures); see `{status_cmd}` for the errors"
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
        if counts.get(Status::Failed) > 0 {
            next.push("`run --retry-failed` sends the failed ones again");
        }
        if counts.get(Status::Unknown) > 0 {
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
