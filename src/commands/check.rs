//! `cosmocast check`: reads everything, renders every row, validates every request; touches no
//! network and writes nothing. It reads the workspace's ledger, when there is one, read-only: what
//! is settled, the suppression list and the channel's daily budget. Every problem is printed as
//! `file:line[:col]: message — hint`.

use std::io::Write;

use serde_json::json;

use super::environment_problems;
use crate::audience::Resend;
use crate::cli::CheckArgs;
use crate::error::{Exit, Problems};
use crate::ledger::Ledger;
use crate::plan::{Pass, Plan, ledger_for};
use crate::text::{count, printable_lines};

/// When the send window next opens, and a warning when it has no time zone of its own.
fn window_lines(out: &mut impl Write, c: &crate::campaign::Campaign) -> std::io::Result<()> {
    let Some(w) = &c.send.window else {
        return Ok(());
    };
    if w.tz_implied {
        let p = c
            .problem_at(
                "send.window",
                format!(
                    "`send.window` has no `timezone:`, so this machine's zone ({}) is used",
                    w.tz_name
                ),
            )
            .hint("name the customers' zone, e.g. `timezone: America/Sao_Paulo` under `window:`");
        eprintln!("warning: {p}");
    }
    match w.state(jiff::Timestamp::now()) {
        crate::campaign::window::State::Open { .. } => writeln!(out, "  window: {w}, open now"),
        crate::campaign::window::State::Closed { opens: Some(t) } => {
            writeln!(out, "  window: {w}, next opens {}", w.describe(t))
        }
        crate::campaign::window::State::Closed { opens: None } => {
            writeln!(out, "  window: {w}, never opens (no day is allowed)")
        }
    }
}

pub(crate) fn run(args: &CheckArgs, quiet: bool) -> anyhow::Result<Exit> {
    let (path, choice, json_out) = (&args.campaign, &args.ledger, args.json);
    let plan = Plan::load(path)?;
    let located = ledger_for(&plan.campaign, &choice.ledger, choice.sandbox)?;
    let ledger = Ledger::open_read(&located.path)?;
    let mut s = plan.scan(plan.decider(ledger.as_ref(), Resend::default(), Pass::Scan)?)?;
    let note = ledger.as_ref().and_then(|l| {
        crate::plan::finished_note(&plan.campaign, l, &s)
            .or_else(|| crate::plan::other_file_note(&plan.campaign, l))
    });
    let budget = crate::plan::budget_note(&plan.campaign, ledger.as_ref(), choice.sandbox);
    drop(ledger);
    if let Some(note) = &note
        && !quiet
        && !json_out
    {
        eprintln!("note: {note}");
    }
    let env = environment_problems(&plan.campaign);
    s.problem_count += env.len() as u64;
    s.problems.splice(0..0, env);
    let c = &plan.campaign;
    let out = &mut super::output::stdout();
    if json_out {
        writeln!(
            out,
            "{}",
            json!({
                "campaign": c.name,
                "ledger": located.path.display().to_string(),
                "note": note,
                "daily_limit": budget,
                "ok": s.problem_count == 0,
                "rows": s.rows,
                "blank": s.blank,
                "filtered": s.filtered,
                "excluded": s.excluded,
                "duplicates": s.duplicates,
                "same_phone": s.same_phone,
                "opted_out": s.opted_out,
                "landlines": s.landlines,
                "warnings": s.warnings.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                "invalid": s.invalid,
                "settled": s.settled,
                "deferred": s.deferred,
                "to_send": s.to_send,
                "problems": s.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                "problem_count": s.problem_count,
            })
        )?;
    }
    if s.problem_count > 0 {
        let shown = s.problems.len() as u64;
        if !json_out {
            let problems = Problems { list: s.problems }.to_string();
            eprintln!("{}", printable_lines(&problems));
            if s.problem_count > shown {
                eprintln!(
                    "({} in all; fix these and check again to see the rest)",
                    count(s.problem_count, "problem")
                );
            }
        }
        return Ok(Exit::CannotRun);
    }
    if !quiet && !json_out {
        for w in &s.warnings {
            eprintln!("warning: {}", printable_lines(&w.to_string()));
        }
        if s.landlines > s.warnings.len() as u64 {
            eprintln!("warning: … {} in all", count(s.landlines, "landline"));
        }
        let items = c.messages.len() as u64;
        writeln!(
            out,
            "{}: ok — {} to message, {} each; nothing was sent",
            path.display(),
            count(s.to_send, "contact"),
            count(items, "message item"),
        )?;
        writeln!(out, "  ledger: {located}")?;
        window_lines(out, c)?;
        if let Some(b) = &budget {
            writeln!(out, "  {}", b.spent)?;
            if let Some(w) = &b.warning {
                eprintln!("warning: {w}");
            }
        }
        for (label, n, note) in [
            ("rows", s.rows, ""),
            ("blank", s.blank, "  every cell empty, never sent"),
            ("filtered", s.filtered, "  left out by `contacts.where`"),
            ("excluded", s.excluded, "  on a `contacts.exclude` list"),
            ("duplicates", s.duplicates, "  same key as an earlier row"),
            (
                "same phone",
                s.same_phone,
                "  a phone another key already messages",
            ),
            ("opted out", s.opted_out, "  on the suppression list"),
            ("invalid", s.invalid, ""),
            ("settled", s.settled, "  already recorded in the ledger"),
            ("deferred", s.deferred, "  in their `contacts.cooldown`"),
            ("to send", s.to_send, ""),
        ] {
            writeln!(out, "  {label:<10} {n:>9}{note}")?;
        }
        if s.landlines > 0 {
            writeln!(
                out,
                "  {:<10} {:>9}  warning: {} reaches mobiles only (they are sent all the same)",
                "landlines",
                s.landlines,
                c.api.channel.name()
            )?;
        }
    }
    Ok(Exit::Ok)
}
