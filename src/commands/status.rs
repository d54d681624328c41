//! `cosmocast status`: counts by state, errors by kind, and what the next `run` would do.

use std::path::Path;

use serde_json::json;

use super::{ledger_path, load};
use crate::campaign;
use crate::cli::LedgerChoice;
use crate::error::Exit;
use crate::ledger::{Ledger, Status};

/// What the next run would do, from the CSV and the ledger.
#[derive(Debug, Default)]
struct Next {
    new: u64,
    failed: u64,
    unknown: u64,
}

fn next_run(path: &Path, ledger: &Ledger, name: &str) -> Result<Next, String> {
    let loaded = load(path).map_err(|p| p.to_string())?;
    let mut known = ledger
        .known(name, loaded.estimated_rows())
        .map_err(|e| e.to_string())?;
    let opt_outs = ledger.opt_outs().map_err(|e| e.to_string())?;
    let audience = loaded.audience.with_opt_outs(opt_outs);
    let mut reader = loaded.reader().map_err(|p| p.to_string())?;
    let csv = reader.path().to_path_buf();
    let mut next = Next::default();
    for row in reader.by_ref().flatten() {
        let crate::audience::Verdict::Ready(r) = audience.classify(&row, &csv) else {
            continue;
        };
        // The first row of a key decides it; later ones are duplicates.
        let Ok(status) = known.first_sighting(&r.key, row.number) else {
            continue;
        };
        match status {
            None => next.new += 1,
            Some(Status::Failed) => next.failed += 1,
            Some(Status::Unknown | Status::Sending) => next.unknown += 1,
            Some(_) => {}
        }
    }
    Ok(next)
}

pub fn run(path: &Path, choice: &LedgerChoice, json_out: bool) -> anyhow::Result<Exit> {
    let c = campaign::load(path)?;
    let file = ledger_path(&c, &choice.ledger, choice.sandbox);
    let ledger = Ledger::open(&file)?;
    // One snapshot for every figure below, though a run may be writing as they are read.
    let _snapshot = ledger.conn.unchecked_transaction()?;
    let counts = ledger.counts(&c.name)?;
    let get = |s: Status| counts.get(&s).copied().unwrap_or(0);
    let errors = ledger.errors_by_kind(&c.name, 10)?;
    let skipped = ledger.skipped_by_reason(&c.name)?;
    let next = next_run(path, &ledger, &c.name);
    let replies = ledger.reply_stats(&c.name)?;
    if json_out {
        let next_json = match &next {
            Ok(n) => json!({ "new": n.new, "failed": n.failed, "unknown": n.unknown }),
            Err(e) => json!({ "error": e }),
        };
        println!(
            "{}",
            json!({
                "campaign": c.name,
                "ledger": file.display().to_string(),
                "counts": Status::ALL.iter().map(|s| (s.as_str(), get(*s))).collect::<std::collections::BTreeMap<_, _>>(),
                "skipped_by_reason": skipped.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                "errors": errors.iter().map(|(s, r, n, e)| json!({"status": s, "reason": r, "count": n, "example": e})).collect::<Vec<_>>(),
                "next_run": next_json,
                "replies": replies,
            })
        );
        return Ok(Exit::Ok);
    }
    println!("campaign {} (ledger {})", c.name, file.display());
    for s in Status::ALL {
        let n = get(s);
        if n > 0 || s != Status::Sending {
            println!("  {:<8} {n}", s.as_str());
        }
    }
    for (reason, n) in &skipped {
        println!("    skipped {reason}: {n}");
    }
    if !errors.is_empty() {
        println!("errors by kind:");
        for (status, reason, n, example) in &errors {
            println!("  {status} {reason} ×{n}: {example}");
        }
    }
    if replies.replies > 0 || replies.opt_outs > 0 {
        println!(
            "replies: {} from {} contacts (reply rate {:.1}%), {} opt-outs",
            replies.replies,
            replies.contacts_replied,
            replies.reply_rate * 100.0,
            replies.opt_outs
        );
        for (payload, n) in &replies.clicks {
            println!("  clicked {payload}: {n}");
        }
    } else {
        println!("replies: none received (run `cosmocast listen` to receive them)");
    }
    match next {
        Ok(n) => {
            println!("next run: sends {} new contacts", n.new);
            if n.failed > 0 {
                println!(
                    "  {} failed contacts are sent again only with --retry-failed",
                    n.failed
                );
            }
            if n.unknown > 0 {
                println!(
                    "  {} unknown contacts are sent again only with --resend-unknown (they may get it twice)",
                    n.unknown
                );
            }
        }
        Err(e) => println!("next run: cannot tell, the campaign does not load:\n{e}"),
    }
    Ok(Exit::Ok)
}
