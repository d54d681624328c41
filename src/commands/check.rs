//! `cosmocast check`: reads everything, renders every row, validates every request; touches no
//! network and writes nothing. It reads the workspace's ledger, when there is one, read-only: what
//! is settled, the suppression list and the channel's daily budget. Every problem is printed as
//! `file:line[:col]: message — hint`.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::{environment_problems, output};
use crate::audience::Resend;
use crate::campaign::Campaign;
use crate::cli::{CheckArgs, LedgerChoice};
use crate::error::{Exit, Problems};
use crate::ledger::Ledger;
use crate::ledger::locate::Located;
use crate::plan::{BudgetNote, Pass, Plan, Scan, ledger_for};
use crate::printer::Printer;
use crate::text::{count, printable_lines};

/// When the send window next opens, and a warning when it has no time zone of its own.
fn window_lines(out: &mut impl Write, printer: Printer, c: &Campaign) -> std::io::Result<()> {
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
        printer.info(format_args!("warning: {p}"));
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

pub(crate) fn run(args: &CheckArgs, printer: Printer) -> anyhow::Result<Exit> {
    let plan = match Plan::load(&args.campaign) {
        Ok(plan) => plan,
        // The campaign file or a template is wrong: the object says so too, with no counts.
        Err(problems) if args.json => {
            let object = json!({
                "file": args.campaign.display().to_string(),
                "ok": false,
                "problems": problems.list.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                "problem_count": problems.list.len(),
            });
            writeln!(output::stdout(), "{object}")?;
            return Ok(Exit::CannotRun);
        }
        Err(problems) => return Err(problems.into()),
    };
    let found = Found::inspect(&plan, &args.ledger)?;
    let exit = if found.scan.problem_count > 0 {
        Exit::CannotRun
    } else {
        Exit::Ok
    };
    if args.json {
        print_json(&mut output::stdout(), &plan.campaign, &found)?;
        return Ok(exit);
    }
    if let Some(note) = &found.note {
        printer.info(format_args!("note: {note}"));
    }
    if exit == Exit::CannotRun {
        print_problems(printer, found.scan);
        return Ok(exit);
    }
    for w in &found.scan.warnings {
        printer.info(format_args!("warning: {}", printable_lines(&w.to_string())));
    }
    if found.scan.landlines > found.scan.warnings.len() as u64 {
        printer.info(format_args!(
            "warning: … {} in all",
            count(found.scan.landlines, "landline")
        ));
    }
    print_text(printer, &args.campaign, &plan.campaign, &found)?;
    Ok(exit)
}

/// What `check` found: every row decided (the environment's problems first among the
/// problems), and what the ledger, if there is one, says of the campaign.
struct Found {
    located: Located,
    scan: Scan,
    note: Option<String>,
    budget: Option<BudgetNote>,
    /// Contacts to send past what the channel's daily limit still allows: a later run sends
    /// them.
    over_budget: u64,
}

impl Found {
    /// The contacts a run would send now.
    fn to_send(&self) -> u64 {
        self.scan.to_send - self.over_budget.min(self.scan.to_send)
    }
}

impl Found {
    fn inspect(plan: &Plan, choice: &LedgerChoice) -> anyhow::Result<Found> {
        let c = &plan.campaign;
        let located = ledger_for(c, &choice.ledger, choice.sandbox)?;
        let ledger = Ledger::open_read(&located.place)?;
        let mut scan =
            plan.scan(plan.decider(ledger.as_ref(), Resend::default(), Pass::Scan)?)?;
        let note = ledger.as_ref().and_then(|l| {
            crate::plan::finished_note(c, l, &scan)
                .or_else(|| crate::plan::other_file_note(c, l))
                .or_else(|| crate::plan::renamed_note(c, l))
                .or_else(|| crate::plan::edited_note(c, l))
        });
        // A changed identity refuses the run: so it is a problem here.
        if let Err(refused) =
            super::run::identity::compare(plan, (choice.sandbox, false), ledger.as_ref(), &scan)
        {
            scan.problem_count += 1;
            scan.problems.insert(
                0,
                crate::error::Problem::new(&c.file, None, refused.message),
            );
        }
        let budget = crate::plan::budget_note(c, ledger.as_ref(), choice.sandbox);
        let left = plan.budget_left(ledger.as_ref(), choice.sandbox)?;
        let over_budget = scan.over_budget(left);
        let env = environment_problems(c);
        scan.problem_count += env.len() as u64;
        scan.problems.splice(0..0, env);
        Ok(Found {
            located,
            scan,
            note,
            budget,
            over_budget,
        })
    }
}

fn print_json(out: &mut impl Write, c: &Campaign, found: &Found) -> std::io::Result<()> {
    let s = &found.scan;
    writeln!(
        out,
        "{}",
        json!({
            "campaign": c.name,
            "ledger": found.located.place.to_string(),
            "note": found.note,
            "daily_limit": found.budget,
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
            // What the ledger records for them, so that the figure reads against `status`.
            "settled_by_state": s.recorded.by_state().into_iter().filter(|(_, n)| *n > 0)
                .map(|(state, n)| (state.replace(' ', "_"), n))
                .collect::<std::collections::BTreeMap<_, _>>(),
            // The bucket (cool-down and daily limit), and its two causes.
            "deferred": s.deferred + found.over_budget,
            "deferred_cooldown": s.deferred,
            "deferred_daily_limit": found.over_budget,
            "to_send": found.to_send(),
            "problems": s.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            "problem_count": s.problem_count,
        })
    )
}

/// The problems kept, and how many there are in all.
fn print_problems(printer: Printer, scan: Scan) {
    let shown = scan.problems.len() as u64;
    let problems = Problems {
        list: scan.problems,
    };
    printer.important(printable_lines(&problems.to_string()));
    if scan.problem_count > shown {
        printer.important(format_args!(
            "({} in all; fix these and check again to see the rest)",
            count(scan.problem_count, "problem")
        ));
    }
}

/// The summary of a campaign that may run: what it would send, where, when, and every row's
/// fate. `-q` leaves it out.
fn print_text(printer: Printer, path: &Path, c: &Campaign, found: &Found) -> std::io::Result<()> {
    let out = &mut printer.stdout();
    writeln!(
        out,
        "{}: ok — {} to message, {} each; nothing was sent",
        path.display(),
        count(found.to_send(), "contact"),
        count(c.messages.len() as u64, "message item"),
    )?;
    writeln!(out, "  ledger: {}", found.located)?;
    window_lines(out, printer, c)?;
    if let Some(b) = &found.budget {
        writeln!(out, "  {}", b.spent)?;
        if let Some(w) = &b.warning {
            printer.info(format_args!("warning: {w}"));
        }
    }
    print_rows(out, found, c)
}

/// Every row's fate, one count a line.
fn print_rows(out: &mut impl Write, found: &Found, c: &Campaign) -> std::io::Result<()> {
    let s = &found.scan;
    let settled = match s.settled {
        0 => "  already recorded in the ledger".to_string(),
        _ => format!(
            "  already recorded in the ledger: {}",
            s.recorded.describe()
        ),
    };
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
        ("settled", s.settled, &settled),
        ("deferred", s.deferred, "  in their `contacts.cooldown`"),
        (
            "limited",
            found.over_budget,
            "  past the channel's daily limit (a later run sends them)",
        ),
        ("to send", found.to_send(), ""),
    ] {
        // Only a channel at its daily limit holds contacts back for it.
        if label != "limited" || n > 0 {
            writeln!(out, "  {label:<10} {n:>9}{note}")?;
        }
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
    if s.no_longer_excluded > 0 {
        writeln!(out, "  note: {}", s.no_longer_excluded_note())?;
    }
    if s.rows == 0 {
        writeln!(out, "  warning: {}", crate::plan::no_rows_warning(c))?;
    }
    Ok(())
}
