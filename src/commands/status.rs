//! `cosmocast status`: counts by state, errors by kind, replies, and what the next `run` would
//! do. Reads the ledger without writing to it, and says so when there is none yet.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::json;

use crate::audience::Resend;
use crate::campaign;
use crate::cli::StatusArgs;
use crate::error::Exit;
use crate::ledger::locate::Located;
use crate::ledger::{Ledger, Place, Status};
use crate::plan::{Accounting, Pass, Plan, Scan, ledger_for};
use crate::text::{count, printable, printable_lines};

/// What the next run would find, row by row (every state that could be sent counted apart).
/// `report` builds its funnel from this and [`Figures`], so the two cannot disagree.
pub(crate) fn next_run(plan: &Plan, ledger: Option<&Ledger>) -> Result<Scan, String> {
    let all = Resend {
        failed: true,
        unknown: true,
    };
    let decider = plan
        .decider(ledger, all, Pass::Scan)
        .map_err(|e| e.to_string())?;
    plan.scan(decider).map_err(|p| p.to_string())
}

/// What status notes of the campaign beside the ledger's own notes (`View::notes`): its
/// identity moved (`moved`, run refuses to start), runs sent other messages than it holds now,
/// or its file sent under another name.
fn notes(c: &campaign::Campaign, ledger: Option<&Ledger>, moved: Option<String>) -> Vec<String> {
    let Some(l) = ledger else {
        return Vec::new();
    };
    [
        moved,
        crate::plan::edited_note(c, l),
        crate::plan::renamed_note(c, l),
    ]
    .into_iter()
    .flatten()
    .collect()
}

pub(crate) fn run(args: &StatusArgs) -> anyhow::Result<Exit> {
    let c = campaign::load(&args.campaign)?;
    let located = ledger_for(&c, &args.ledger.ledger, args.ledger.sandbox)?;
    let ledger = Ledger::open_read(&located.place)?;
    // One snapshot for every figure below, though a run may be writing as they are read.
    let _snapshot = ledger
        .as_ref()
        .map(|l| l.db.transaction(crate::ledger::db::Mode::Snapshot))
        .transpose()?;
    let plan = Plan::new(c.clone()).map_err(|p| p.listing());
    let next = plan
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|plan| next_run(plan, ledger.as_ref()));
    let rows = plan.as_ref().map_err(Clone::clone).and_then(|plan| {
        plan.account(ledger.as_ref(), args.ledger.sandbox)
            .map_err(|e| e.to_string())
    });
    let mut figures = ledger
        .as_ref()
        .map(|l| Figures::read(l, &c.name, ERROR_KINDS))
        .transpose()?;
    // The rows above are the file's: so are the errors, when the file can be read.
    if let (Some(f), Some(l), Ok(plan), Ok(_)) = (&mut figures, &ledger, &plan, &rows)
        && !f.errors.is_empty()
    {
        f.errors = errors_in_file(plan, l, &c.name)?;
    }
    let at_work = ledger
        .as_ref()
        .and_then(|l| run_at_work(&located.place, l, &c.name));
    // Joined workers at work beside one that died: its claims are not theirs. With no run at
    // work, every `sending` contact was left by one that stopped.
    let orphaned = match (&ledger, at_work, &figures) {
        (Some(l), Some(true), _) => l.orphaned_sending(&c.name).unwrap_or(0),
        (_, Some(false), Some(f)) => f.counts.get(&Status::Sending).copied().unwrap_or(0),
        _ => 0,
    };
    let budget = crate::plan::budget_note(&c, ledger.as_ref(), args.ledger.sandbox);
    let moved = match (&plan, &next) {
        (Ok(plan), Ok(scan)) => {
            super::run::identity::refusal_note(plan, args.ledger.sandbox, ledger.as_ref(), scan)
        }
        _ => None,
    };
    let refused = moved.is_some();
    let notes = notes(&c, ledger.as_ref(), moved);
    let out = &mut super::output::stdout();
    let view = View {
        name: &c.name,
        file: &located,
        ledger: ledger.as_ref(),
        f: figures.as_ref(),
        next: &next,
        rows: &rows,
        at_work,
        orphaned,
        notes: &notes,
    };
    if args.json {
        print_json(out, &view, &budget)?;
    } else {
        print_text(out, &view)?;
        // A run at work sends what is left; another started now would exit 5.
        let who = match at_work {
            Some(true) => {
                "the run at work (another started now exits 5; on PostgreSQL `run --join` joins it)"
            }
            // What it would send once the way forward `check` gives is taken.
            _ if refused => {
                "next run (it refuses to start until the change noted above is settled)"
            }
            _ => "next run",
        };
        print_next(out, &next, over_budget(&rows), who)?;
        let window = c.send.window.as_ref();
        if let Some(closed) = window.and_then(|w| w.closed_note(jiff::Timestamp::now())) {
            writeln!(out, "  {closed}: a run sends nothing until then")?;
        }
        if let Some(b) = &budget {
            writeln!(out, "{}", b.spent)?;
            if let Some(w) = &b.warning {
                writeln!(out, "warning: {w}")?;
            }
        }
    }
    Ok(Exit::Ok)
}

/// How many kinds of error `status` lists.
const ERROR_KINDS: usize = 10;

/// The failed and unknown contacts the contact file holds now (`Plan::failures_in_file`), each
/// kind with the error of its first row.
fn errors_in_file(
    plan: &Plan,
    l: &Ledger,
    name: &str,
) -> anyhow::Result<Vec<crate::ledger::ErrorKind>> {
    let kinds = plan.failures_in_file(l, name, (ERROR_KINDS, 1))?;
    Ok(kinds
        .into_iter()
        .map(|k| crate::ledger::ErrorKind {
            status: k.status,
            reason: k.reason,
            count: k.count,
            example: k
                .first
                .into_iter()
                .next()
                .map(|(_, _, e)| e)
                .unwrap_or_default(),
        })
        .collect())
}

/// What the ledger says of a campaign.
pub(crate) struct Figures {
    pub(crate) counts: std::collections::HashMap<Status, u64>,
    pub(crate) skipped: Vec<(String, u64)>,
    /// The most frequent `error_kinds` kinds of failure.
    pub(crate) errors: Vec<crate::ledger::ErrorKind>,
    pub(crate) replies: crate::ledger::replies::ReplyStats,
}

impl Figures {
    pub(crate) fn read(l: &Ledger, name: &str, error_kinds: usize) -> anyhow::Result<Figures> {
        Ok(Figures {
            counts: l.counts(name)?,
            skipped: l.skipped_by_reason(name)?,
            errors: l.errors_by_kind(name, error_kinds)?,
            replies: l.reply_stats(name)?,
        })
    }

    pub(crate) fn get(&self, s: Status) -> u64 {
        self.counts.get(&s).copied().unwrap_or(0)
    }
}

/// Everything `status` shows of a campaign.
struct View<'a> {
    name: &'a str,
    file: &'a Located,
    ledger: Option<&'a Ledger>,
    f: Option<&'a Figures>,
    next: &'a Result<Scan, String>,
    rows: &'a Result<Accounting, String>,
    /// Whether a run of the campaign is at work now (`None`: no ledger, or it cannot be told).
    at_work: Option<bool>,
    /// While runs are at work, the `sending` contacts of runs no longer alive.
    orphaned: u64,
    /// Notes beside the ledger's own (`notes`).
    notes: &'a [String],
}

/// Whether a run of the campaign is at work now: its lock, else the leases runs renew (a run
/// that died stops counting within 15 s of its last renewal).
pub(super) fn run_at_work(place: &Place, ledger: &Ledger, campaign: &str) -> Option<bool> {
    crate::ledger::lock::held(place, ledger, campaign)
        .or_else(|| ledger.live_workers(campaign).ok().map(|n| n > 0))
}

fn print_json(
    out: &mut impl Write,
    view: &View<'_>,
    budget: &Option<crate::plan::BudgetNote>,
) -> std::io::Result<()> {
    let View {
        name,
        file,
        ledger,
        f,
        next,
        rows,
        at_work,
        orphaned,
        notes,
    } = *view;
    let over = over_budget(rows);
    let next_json = match next {
        Ok(n) => json!({
            // `deferred` is the bucket's (cool-down and daily limit), its causes beside it.
            "new": n.to_send - over.min(n.to_send), "deferred_daily_limit": over,
            "deferred_cooldown": n.deferred,
            "failed": n.failed_again, "unknown": n.unknown_again,
            "rows": n.rows, "filtered": n.filtered, "excluded": n.excluded,
            "opted_out": n.opted_out, "duplicates": n.duplicates, "same_phone": n.same_phone,
            "invalid": n.invalid, "settled": n.settled,
            "deferred": n.deferred + over, "blank": n.blank,
        }),
        Err(e) => json!({ "error": e }),
    };
    let counts: BTreeMap<&str, u64> = Status::ALL
        .iter()
        .map(|s| (s.as_str(), f.map_or(0, |f| f.get(*s))))
        .collect();
    writeln!(
        out,
        "{}",
        json!({
            "campaign": name,
            "ledger": file.place.to_string(),
            "daily_limit": budget,
            "ledger_exists": ledger.is_some(),
            "run_at_work": at_work,
            "sending_orphaned": orphaned,
            "notes": ledger
                .map(|l| l.notes.iter().chain(notes).collect::<Vec<_>>())
                .unwrap_or_default(),
            "counts": counts,
            "rows": rows.as_ref().ok(),
            "filtered": next.as_ref().map(|n| n.filtered).ok(),
            "skipped_by_reason": f.map(|f| f.skipped.iter().cloned().collect::<BTreeMap<_, _>>()).unwrap_or_default(),
            "errors": f.map(|f| f.errors.clone()).unwrap_or_default(),
            "next_run": next_json,
            "replies": f.map(|f| f.replies.clone()).unwrap_or_default(),
        })
    )
}

fn print_text(out: &mut impl Write, view: &View<'_>) -> std::io::Result<()> {
    let View {
        name,
        file,
        ledger,
        f,
        rows,
        ..
    } = *view;
    match (ledger, f) {
        (Some(l), Some(f)) => {
            writeln!(out, "campaign {name}")?;
            writeln!(out, "  ledger: {file}")?;
            if !l.has_campaign(name).unwrap_or(true) {
                writeln!(
                    out,
                    "  note: the ledger has no record of this campaign yet: it has not run with this ledger"
                )?;
            }
            for note in l.notes.iter().chain(view.notes) {
                writeln!(out, "  note: {note}")?;
            }
            print_rows(out, rows, (view.at_work, view.orphaned))?;
            if rows.is_err() {
                print_recorded(out, f)?;
            }
            if !f.errors.is_empty() {
                writeln!(out, "errors by kind:")?;
                for e in &f.errors {
                    writeln!(
                        out,
                        "  {} {} ×{}: {}",
                        e.status,
                        e.reason,
                        e.count,
                        printable(&e.example)
                    )?;
                }
            }
            print_replies(out, &f.replies)?;
        }
        _ => {
            writeln!(
                out,
                "campaign {name}: no ledger at {file} — the campaign has not run yet (nothing was created)"
            )?;
            print_rows(out, rows, (None, 0))?;
        }
    }
    Ok(())
}

/// What the ledger holds of the campaign, by state, when the contact file's rows cannot be
/// counted (the campaign does not load now).
fn print_recorded(out: &mut impl Write, f: &Figures) -> std::io::Result<()> {
    writeln!(
        out,
        "  the contact file's rows cannot be counted now (see below); the ledger records:"
    )?;
    for status in Status::ALL {
        let n = f.counts.get(&status).copied().unwrap_or(0);
        if n > 0 || status != Status::Sending {
            writeln!(out, "  {:<8} {n}", status.as_str())?;
        }
    }
    for (reason, n) in &f.skipped {
        writeln!(out, "    skipped {reason}: {n}")?;
    }
    Ok(())
}

/// Every row of the contact file in its bucket; they add up to the rows. `at_work`: whether the
/// `sending` ones belong to a run at work now, or to one that stopped without their answers;
/// `orphaned`: how many of them, while runs are at work, a run that died left.
fn print_rows(
    out: &mut impl Write,
    rows: &Result<Accounting, String>,
    (at_work, orphaned): (Option<bool>, u64),
) -> std::io::Result<()> {
    let Ok(a) = rows else { return Ok(()) };
    writeln!(out, "  {:<8} {}", "rows", a.rows)?;
    for (name, n) in a.buckets() {
        if name == "sending" && n == 0 {
            continue;
        }
        writeln!(out, "  {name:<8} {n}")?;
        match (name, at_work) {
            ("sending", Some(true)) if orphaned > 0 => {
                let left = orphaned.min(n);
                writeln!(
                    out,
                    "    {} being sent now by the runs at work; {left} left by a worker that died before their answers came: they may have reached the API, and a worker at work records them `unknown` within a minute",
                    n - left
                )?;
            }
            ("sending", Some(true)) => writeln!(out, "    being sent now by the run at work")?,
            ("sending", Some(false)) => writeln!(
                out,
                "    left by a run that stopped before their answers came: they may have reached the API, and the next run records them `unknown`"
            )?,
            _ => {}
        }
        for (reason, n) in a.reasons(name).into_iter().flatten() {
            writeln!(out, "    {name} {reason}: {n}")?;
        }
    }
    if a.not_in_file > 0 {
        writeln!(
            out,
            "  ({} in the ledger {} no longer in the contact file; not among the rows)",
            count(a.not_in_file, "contact"),
            if a.not_in_file == 1 { "is" } else { "are" }
        )?;
    }
    Ok(())
}

/// The rows the channel's daily limit holds back today.
fn over_budget(rows: &Result<Accounting, String>) -> u64 {
    rows.as_ref()
        .map_or(0, |a| a.deferred_for(crate::plan::DAILY_LIMIT))
}

/// What the next run would do; `over`: new contacts the channel's daily limit holds back.
fn print_next(
    out: &mut impl Write,
    next: &Result<Scan, String>,
    over: u64,
    who: &str,
) -> std::io::Result<()> {
    match next {
        Ok(n) => {
            writeln!(
                out,
                "{who}: sends {} ({}; {} blank, {} filtered out, {} excluded, {} opted out, {} duplicate, {} same phone, {} invalid, {} already settled)",
                count(n.to_send - over.min(n.to_send), "new contact"),
                count(n.rows, "row"),
                n.blank,
                n.filtered,
                n.excluded,
                n.opted_out,
                n.duplicates,
                n.same_phone,
                n.invalid,
                n.settled,
            )?;
            if n.no_longer_excluded > 0 {
                writeln!(out, "  note: {}", n.no_longer_excluded_note())?;
            }
            if n.deferred > 0 {
                writeln!(
                    out,
                    "  {} deferred by `contacts.cooldown` (a later run sends them)",
                    count(n.deferred, "contact")
                )?;
            }
            if over > 0 {
                writeln!(
                    out,
                    "  {} deferred by the channel's daily limit (a later run sends them)",
                    count(over, "contact")
                )?;
            }
            if n.failed_again > 0 {
                writeln!(
                    out,
                    "  {} sent again only with --retry-failed",
                    count(n.failed_again, "failed contact")
                )?;
            }
            if n.unknown_again > 0 {
                writeln!(
                    out,
                    "  {} sent again only with --resend-unknown (they may get it twice)",
                    count(n.unknown_again, "unknown contact")
                )?;
            }
            // Why the figures above fall short of the failed and unknown the rows show.
            if n.held_back > 0 {
                writeln!(
                    out,
                    "  {} failed or unknown not sent again by either flag: filtered out, excluded or on the suppression list now",
                    count(n.held_back, "contact")
                )?;
            }
        }
        Err(e) => writeln!(
            out,
            "{who}: cannot tell, the campaign does not load:\n{}",
            printable_lines(e)
        )?,
    }
    Ok(())
}

fn print_replies(
    out: &mut impl Write,
    r: &crate::ledger::replies::ReplyStats,
) -> std::io::Result<()> {
    if r.replies > 0 || r.opt_outs > 0 {
        writeln!(
            out,
            "replies: {} from {} (reply rate {:.1}%: {} of {} reached), {}",
            r.replies,
            count(r.contacts_replied, "contact"),
            r.reply_rate * 100.0,
            r.replied_reached,
            count(r.reached, "contact"),
            count(r.opt_outs, "opt-out")
        )?;
        for (payload, n) in &r.clicks {
            writeln!(out, "  clicked {}: {n}", printable(payload))?;
        }
    } else {
        writeln!(
            out,
            "replies: none received (run `cosmocast listen` to receive them)"
        )?;
    }
    Ok(())
}
