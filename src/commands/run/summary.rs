//! The end of a run: the campaign's counts from the ledger, this run's figures, why it stopped,
//! the exit code (README: Exit codes), and what to do next.

use std::io::Write;
use std::sync::atomic::Ordering;

use serde_json::json;

use super::{Held, Ran, RunSettings};
use crate::error::Exit;
use crate::ledger::Status;
use crate::plan::{Accounting, Plan};
use crate::printer::Printer;
use crate::send::Stop;
use crate::text::count;

/// The exit code (README: Exit codes): about this run. Failures it left (or the interrupted sends
/// it found and recorded `unknown`) win over work that remains, so a campaign paced by its
/// daily limit still reports a failure the day it happens; older failures are only named.
/// Contacts a killed run left, found at the start and recorded `unknown`, count as failures
/// unless this run sent them again (`--resend-unknown`); so do those of a joined worker that
/// died, taken over while this one sent, as far as they are still unknown now: a worker
/// only stalled past its lease may yet have recorded their answers.
fn exit_code(s: &RunSettings, held: &Held, ran: &Ran, rows: &Accounting) -> Exit {
    let stats = &ran.stats;
    let taken_over = ran
        .taken_over
        .min(usize::try_from(rows.unknown).unwrap_or(usize::MAX));
    let recovered = if s.resend.unknown { 0 } else { held.recovered } + taken_over;
    let left_failures = stats.failed.load(Ordering::Relaxed)
        + stats.unknown.load(Ordering::Relaxed)
        + recovered as u64
        > 0;
    match &ran.stop {
        Some(s) if s.is_fatal() => Exit::CannotRun,
        _ if left_failures => Exit::Incomplete,
        _ if ran.work_remains || stats.deferred.load(Ordering::Relaxed) > 0 => Exit::WorkRemains,
        _ => Exit::Ok,
    }
}

pub(super) fn print(s: &RunSettings, held: &Held, ran: &mut Ran) -> anyhow::Result<Exit> {
    let plan = &s.plan;
    // The same accounting as `status`, `report` and `export`: every row in one bucket.
    let rows = plan.recount(&held.ledger, held.located.sandbox)?;
    // Rows the ledger still has to send are work that remains, whatever the run saw: contacts
    // a stop gave back after the file's end was read are in no queue the run looked at.
    ran.report.work_remains |= rows.pending > 0;
    let ran = &*ran;
    let exit = exit_code(s, held, ran, &rows);
    // With -q a run that did not end well still says where the campaign stands: cron mails
    // what a job prints.
    let out = &mut if s.json || exit != Exit::Ok {
        s.printer.stdout_important()
    } else {
        s.printer.stdout()
    };
    let printed = if s.json {
        print_json(out, plan, ran, &rows, exit)
    } else {
        print_text(out, plan, ran, &rows)
    };
    // A full or closed stdout loses the summary, not the run: every send is done and recorded.
    if let Err(e) = printed {
        s.printer.important(format_args!(
            "warning: {e}: the summary was not printed (`cosmocast status` shows it)"
        ));
    }
    let next = Next::of(s, ran);
    next.why_it_stopped(s, held, ran, &rows);
    next.what_is_left(s, ran, &rows, exit);
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
            "deferred_by_reason": rows.deferred_by_reason,
            "sending": rows.sending,
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
            // Deferred contacts (a cool-down, the daily limit) are work for a later run too.
            "work_remains": ran.work_remains || stats.deferred.load(Ordering::Relaxed) > 0,
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
    if rows.sending > 0 {
        writeln!(
            out,
            "  {} still `sending`: held by another worker of the campaign, or left by one that stopped (`cosmocast status` tells which); the run that finds them left records them `unknown`",
            count(rows.sending, "contact")
        )?;
    }
    if rows.invalid > 0 {
        writeln!(
            out,
            "  {} left out: `cosmocast check {}{}` says why each cannot be sent; fixed, a later run sends them",
            count(rows.invalid, "invalid row"),
            plan.campaign.file.display(),
            ran.ledger.flags()
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

/// The channel's daily limit stopped the run: how far it got, how many of the file's contacts
/// wait for it, and when it may go on. Printed even with `-q`: the exit (4) alone does not say
/// why.
fn daily_limit_spent(printer: Printer, held: &Held, ran: &Ran, rows: &Accounting, again: &str) {
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
    // Sent means accepted: a request that failed is no message sent.
    let accepted = ran.stats.get(Status::Sent) + ran.stats.get(Status::Queued);
    let others = ran.requests.saturating_sub(accepted);
    let others = match others {
        0 => String::new(),
        n => format!(" ({n} more failed or unknown)"),
    };
    printer.important(format_args!(
        "the channel's daily limit{limit} is reached: {} sent this run{others}, {} waiting{next} — run `{again}` then",
        count(accepted, "contact"),
        rows.deferred_for(crate::plan::DAILY_LIMIT)
    ));
}

/// This command line again, for the user to copy: without `--accept-change` (a change accepted
/// is not accepted again), and with the ledger's URL without the database's password (its
/// other parts, `sslmode` and the like, kept).
fn again(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        if a == "--accept-change" {
            continue;
        }
        let value = if a == "--ledger" {
            args.next()
        } else if let Some(v) = a.strip_prefix("--ledger=") {
            Some(v.to_string())
        } else {
            out.push(a);
            continue;
        };
        out.push("--ledger".into());
        out.push(value.map(|v| without_password(&v)).unwrap_or_default());
    }
    out
}

/// A command line without its `--limit` (as `--limit N` or `--limit=N`).
fn without_limit(words: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut words = words.iter();
    while let Some(w) = words.next() {
        if w == "--limit" {
            words.next();
        } else if !w.starts_with("--limit=") {
            out.push(w.clone());
        }
    }
    out
}

/// A word as a shell reads it back: as it is when it holds nothing a shell treats apart, else
/// in single quotes (a URL's `&` and `?`, a path's spaces).
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A ledger URL without its password (in the authority or as a `password` parameter); a path
/// as it is.
fn without_password(ledger: &str) -> String {
    let Ok(mut url) = url::Url::parse(ledger) else {
        return ledger.to_string();
    };
    if !url.scheme().starts_with("postgres") {
        return ledger.to_string();
    }
    let _ = url.set_password(None);
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "password")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    url.to_string()
}

/// The commands a user runs next: this one again, and `status`.
struct Next {
    /// The command line, so that copying it resumes with the same flags; a change already
    /// accepted is not accepted again.
    again: String,
    /// The same without `--limit`: the command that sends the rest.
    rest: String,
    status: String,
}

impl Next {
    fn of(s: &RunSettings, ran: &Ran) -> Next {
        let file = s.plan.campaign.file.display();
        let words = again(std::env::args());
        let line = |words: &[String]| {
            words
                .iter()
                .map(|a| shell_word(a))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let status = format!("cosmocast status {file}{}", ran.ledger.flags());
        Next {
            again: line(&words),
            rest: line(&without_limit(&words)),
            status,
        }
    }

    /// Why the run stopped, and the command that goes on.
    fn why_it_stopped(&self, s: &RunSettings, held: &Held, ran: &Ran, rows: &Accounting) {
        let (c, printer, again) = (&s.plan.campaign, s.printer, &self.again);
        match &ran.stop {
            Some(Stop::Unauthorized(e)) => printer.important(format_args!(
                "error: the API refused the credentials ({}); check {} and {} — nothing more was sent",
                crate::text::printable(e),
                c.api.token.origin(),
                c.api.channel_id.origin()
            )),
            Some(stop @ Stop::FailureStreak(..)) => printer.important(format_args!(
                "error: stopped: {} (send.max_consecutive_failures); see `{}` for the errors",
                stop.message(),
                self.status
            )),
            Some(Stop::Unreachable(m)) => printer.important(format_args!(
                "error: {} — check `api.url`, the network and any proxy settings, then run `{again}` again",
                crate::text::printable(m)
            )),
            Some(Stop::Ledger(m)) => {
                printer.important(format_args!("error: {}", crate::text::printable(m)))
            }
            Some(Stop::Feed(m)) => printer.important(format_args!(
                "error: the run stopped: {}",
                crate::text::printable(m)
            )),
            Some(Stop::Interrupted) => printer.info(format_args!(
                "interrupted: run `{again}` to continue where this run stopped"
            )),
            Some(Stop::Limit) if s.limit == Some(0) => {
                printer.info("--limit 0 sends nothing: run the same command without --limit to send")
            }
            Some(Stop::Limit) => printer.info(format_args!(
                "--limit reached: run `{}` to send the rest, or `{again}` to send the next {}",
                self.rest,
                count(s.limit.unwrap_or_default(), "contact")
            )),
            Some(Stop::DailyLimit) => {
                daily_limit_spent(printer, held, ran, rows, again);
                // Another campaign's smaller limit may be the one that applies: say whose.
                let budget = crate::plan::budget_note(c, Some(&held.ledger), s.sandbox);
                if let Some(w) = budget.and_then(|b| b.warning) {
                    printer.important(format_args!("note: {w}"));
                }
            }
            Some(s @ Stop::AskedToWait { .. }) => printer.important(format_args!(
                "{}: the run stopped, nothing was marked failed; run `{again}` later to continue",
                s.message()
            )),
            Some(Stop::Window) if ran.work_remains => self.window_closed(s),
            Some(Stop::Window) | None => {}
        }
    }

    /// The send window closed with work left: when it opens again.
    fn window_closed(&self, s: &RunSettings) {
        let window = s.plan.campaign.send.window.as_ref();
        let next = window.and_then(|w| match w.state(jiff::Timestamp::now()) {
            crate::campaign::window::State::Closed { opens: Some(t) } => Some(w.describe(t)),
            _ => None,
        });
        s.printer.info(format_args!(
            "the send window closed: run `{}` when it opens again{}",
            self.again,
            next.map(|n| format!(" ({n})")).unwrap_or_default()
        ));
    }

    /// What the run left for later: deferred contacts, landlines, requests in flight, and
    /// failures to send again.
    fn what_is_left(&self, s: &RunSettings, ran: &Ran, rows: &Accounting, exit: Exit) {
        let (c, printer) = (&s.plan.campaign, s.printer);
        // Those past the channel's daily limit are told of with the limit (`daily_limit_spent`).
        let deferred = rows.deferred_for(crate::plan::COOLDOWN);
        if deferred > 0 {
            let when = ran
                .deferred_until
                .and_then(|t| jiff::Timestamp::from_second(t).ok())
                .map(|t| format!(" (the first after {})", t.strftime("%Y-%m-%d %H:%M UTC")))
                .unwrap_or_default();
            printer.info(format_args!(
                "{} deferred: messaged by a campaign of this ledger within `contacts.cooldown`; run `{}` later to send them{when}",
                count(deferred, "contact"),
                self.again
            ));
        }
        if ran.landlines > 0 {
            let what = match ran.landlines {
                1 => "1 phone is a landline".to_string(),
                n => format!("{n} phones are landlines"),
            };
            let lines: Vec<String> = ran.landline_lines.iter().map(ToString::to_string).collect();
            let more = if ran.landlines > lines.len() as u64 {
                ", …"
            } else {
                ""
            };
            printer.info(format_args!(
                "warning: {what} on {}, which reaches mobiles only ({} {} {}{more}); they were sent all the same",
                c.api.channel.name(),
                c.contacts.file.display(),
                crate::text::plural(lines.len() as u64, "line"),
                lines.join(", ")
            ));
        }
        if ran.abandoned > 0 {
            let was = if ran.abandoned == 1 { "was" } else { "were" };
            printer.important(format_args!(
                "warning: {} {was} still in flight; they will show as `unknown`",
                count(ran.abandoned, "request")
            ));
        }
        if exit == Exit::Incomplete {
            self.failures(printer, rows);
        }
    }

    /// Some contacts failed or are unknown: where to see why, and how to send them again.
    fn failures(&self, printer: Printer, rows: &Accounting) {
        if rows.failed + rows.unknown == 0 {
            // What this run left failed or unknown has no row in the file now (a `sending`
            // contact of a stopped run, its row since removed): `status` counts rows.
            printer.info(format_args!(
                "some contacts this run recorded failed or unknown are no longer in the contact file, so `{}` does not count them: put their rows back to see them there (and to send them again with `run --retry-failed` or `run --resend-unknown`)",
                self.status,
            ));
            return;
        }
        let mut next = Vec::new();
        if rows.failed > 0 {
            next.push("`run --retry-failed` sends the failed ones again");
        }
        if rows.unknown > 0 {
            next.push(
                "`run --resend-unknown` sends the unknown ones again (they may get the message twice)",
            );
        }
        let next = next.iter().map(|n| format!("; {n}")).collect::<String>();
        printer.info(format_args!(
            "some contacts failed or are unknown: `{}` shows why{next}",
            self.status,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::{again, shell_word, without_limit};

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn the_command_again_names_the_ledger_without_its_password() {
        for line in [
            "cosmocast run c.yaml --ledger postgres://app:pw-SECRET@db:5432/cc?sslmode=require --progress none",
            "cosmocast run c.yaml --ledger=postgres://app:pw-SECRET@db:5432/cc?sslmode=require --progress none",
            "cosmocast run c.yaml --ledger postgres://app@db:5432/cc?password=pw-SECRET&sslmode=require --progress none",
        ] {
            assert_eq!(
                again(words(line).into_iter()).join(" "),
                "cosmocast run c.yaml --ledger postgres://app@db:5432/cc?sslmode=require --progress none",
                "{line}"
            );
        }
        assert_eq!(
            again(words("cosmocast run c.yaml --accept-change --ledger l.sqlite").into_iter()),
            words("cosmocast run c.yaml --ledger l.sqlite")
        );
        // Pasted into a shell, each word comes back whole.
        assert_eq!(shell_word("c.yaml"), "c.yaml");
        assert_eq!(
            shell_word("postgres://app@db/cc?sslmode=require&connect_timeout=5"),
            "'postgres://app@db/cc?sslmode=require&connect_timeout=5'"
        );
        assert_eq!(shell_word("my camp's.yaml"), r"'my camp'\''s.yaml'");
    }

    #[test]
    fn the_command_for_the_rest_has_no_limit() {
        for line in [
            "cosmocast run c.yaml --limit 50 --progress none",
            "cosmocast run c.yaml --limit=50 --progress none",
        ] {
            assert_eq!(
                without_limit(&words(line)),
                words("cosmocast run c.yaml --progress none")
            );
        }
    }
}
