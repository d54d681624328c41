//! `cosmocast status`: counts by state, errors by kind, replies, and what the next `run` would
//! do. Reads the ledger without writing to it, and says so when there is none yet.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use crate::audience::Resend;
use crate::campaign;
use crate::cli::LedgerChoice;
use crate::error::Exit;
use crate::ledger::locate::Located;
use crate::ledger::{Ledger, Status};
use crate::plan::{Plan, Scan, ledger_for};
use crate::text::{count, printable, printable_lines};

/// What the next run would find, row by row (every state that could be sent counted apart).
/// `report` builds its funnel from this and [`Figures`], so the two cannot disagree.
pub(crate) fn next_run(plan: &Plan, ledger: Option<&Ledger>) -> Result<Scan, String> {
    let all = Resend {
        failed: true,
        unknown: true,
    };
    let decider = plan.decider(ledger, all).map_err(|e| e.to_string())?;
    plan.scan(decider).map_err(|p| p.to_string())
}

pub(crate) fn run(path: &Path, choice: &LedgerChoice, json_out: bool) -> anyhow::Result<Exit> {
    let c = campaign::load(path)?;
    let located = ledger_for(&c, &choice.ledger, choice.sandbox)?;
    let ledger = Ledger::open_read(&located.path)?;
    // One snapshot for every figure below, though a run may be writing as they are read.
    let _snapshot = match &ledger {
        Some(l) => Some(l.conn.unchecked_transaction()?),
        None => None,
    };
    let next = Plan::new(c.clone())
        .map_err(|p| p.to_string())
        .and_then(|plan| next_run(&plan, ledger.as_ref()));
    let figures = match &ledger {
        Some(l) => Some(Figures::read(l, &c.name, 10)?),
        None => None,
    };
    let budget = crate::plan::budget_lines(&c, ledger.as_ref(), choice.sandbox);
    if json_out {
        print_json(
            &c.name,
            &located,
            ledger.as_ref(),
            figures.as_ref(),
            &next,
            &budget,
        );
    } else {
        print_text(&c.name, &located, ledger.as_ref(), figures.as_ref(), &next);
        for line in &budget {
            println!("{line}");
        }
    }
    Ok(Exit::Ok)
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

fn print_json(
    name: &str,
    file: &Located,
    ledger: Option<&Ledger>,
    f: Option<&Figures>,
    next: &Result<Scan, String>,
    budget: &[String],
) {
    let next_json = match next {
        Ok(n) => json!({
            "new": n.to_send, "failed": n.failed_again, "unknown": n.unknown_again,
            "rows": n.rows, "filtered": n.filtered, "excluded": n.excluded,
            "opted_out": n.opted_out, "duplicates": n.duplicates, "invalid": n.invalid,
            "deferred": n.deferred,
        }),
        Err(e) => json!({ "error": e }),
    };
    let counts: BTreeMap<&str, u64> = Status::ALL
        .iter()
        .map(|s| (s.as_str(), f.map_or(0, |f| f.get(*s))))
        .collect();
    println!(
        "{}",
        json!({
            "campaign": name,
            "ledger": file.path.display().to_string(),
            "daily_limit": budget,
            "ledger_exists": ledger.is_some(),
            "notes": ledger.map(|l| l.notes.clone()).unwrap_or_default(),
            "counts": counts,
            "filtered": next.as_ref().map(|n| n.filtered).ok(),
            "skipped_by_reason": f.map(|f| f.skipped.iter().cloned().collect::<BTreeMap<_, _>>()).unwrap_or_default(),
            "errors": f.map(|f| f.errors.clone()).unwrap_or_default(),
            "next_run": next_json,
            "replies": f.map(|f| f.replies.clone()).unwrap_or_default(),
        })
    );
}

fn print_text(
    name: &str,
    file: &Located,
    ledger: Option<&Ledger>,
    f: Option<&Figures>,
    next: &Result<Scan, String>,
) {
    match (ledger, f) {
        (Some(l), Some(f)) => {
            println!("campaign {name}");
            println!("  ledger: {file}");
            if !l.has_campaign(name).unwrap_or(true) {
                println!(
                    "  note: the ledger has no record of this campaign yet: it has not run with this ledger"
                );
            }
            for note in &l.notes {
                println!("  note: {note}");
            }
            for s in Status::ALL {
                let n = f.get(s);
                if n > 0 || s != Status::Sending {
                    println!("  {:<8} {n}", s.as_str());
                }
            }
            for (reason, n) in &f.skipped {
                println!("    skipped {reason}: {n}");
            }
            if let Ok(n) = next {
                println!(
                    "  filtered {} (left out by `contacts.where`; not recorded)",
                    n.filtered
                );
            }
            if !f.errors.is_empty() {
                println!("errors by kind:");
                for e in &f.errors {
                    println!(
                        "  {} {} ×{}: {}",
                        e.status,
                        e.reason,
                        e.count,
                        printable(&e.example)
                    );
                }
            }
            print_replies(&f.replies);
        }
        _ => {
            println!(
                "campaign {name}: no ledger at {file} — the campaign has not run yet (nothing was created)"
            );
        }
    }
    match next {
        Ok(n) => {
            println!(
                "next run: sends {} ({}; {} filtered out, {} excluded, {} opted out, {} duplicate, {} invalid, {} already settled)",
                count(n.to_send, "new contact"),
                count(n.rows, "row"),
                n.filtered,
                n.excluded,
                n.opted_out,
                n.duplicates,
                n.invalid,
                n.settled,
            );
            if n.deferred > 0 {
                println!(
                    "  {} deferred by `contacts.cooldown` (a later run sends them)",
                    count(n.deferred, "contact")
                );
            }
            if n.failed_again > 0 {
                println!(
                    "  {} sent again only with --retry-failed",
                    count(n.failed_again, "failed contact")
                );
            }
            if n.unknown_again > 0 {
                println!(
                    "  {} sent again only with --resend-unknown (they may get it twice)",
                    count(n.unknown_again, "unknown contact")
                );
            }
        }
        Err(e) => println!(
            "next run: cannot tell, the campaign does not load:\n{}",
            printable_lines(e)
        ),
    }
}

fn print_replies(r: &crate::ledger::replies::ReplyStats) {
    if r.replies > 0 || r.opt_outs > 0 {
        println!(
            "replies: {} from {} (reply rate {:.1}%), {}",
            r.replies,
            count(r.contacts_replied, "contact"),
            r.reply_rate * 100.0,
            count(r.opt_outs, "opt-out")
        );
        for (payload, n) in &r.clicks {
            println!("  clicked {}: {n}", printable(payload));
        }
    } else {
        println!("replies: none received (run `cosmocast listen` to receive them)");
    }
}
