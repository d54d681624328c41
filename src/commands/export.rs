//! `cosmocast export`: one line per contact, as CSV or JSON lines, to stdout or a file.

use std::io::Write;
use std::path::Path;

use crate::campaign;
use crate::cli::{Format, LedgerChoice, OutputArgs};
use crate::error::{Exit, Fatal};
use crate::ledger::Ledger;

/// The columns of contract §2, in order, then the reply columns `listen` fills.
pub const COLUMNS: [&str; 14] = [
    "key",
    "row_number",
    "status",
    "reason",
    "contact_id",
    "session_id",
    "message_ids",
    "attempts",
    "http_status",
    "error",
    "updated_at",
    "replied_at",
    "last_reply",
    "clicked",
];

pub fn run(
    path: &Path,
    ledger: &LedgerChoice,
    out: &OutputArgs,
    quiet: bool,
) -> anyhow::Result<Exit> {
    let (format, output) = (out.format, &out.output);
    let c = campaign::load(path)?;
    let ledger_file = super::ledger_path(&c, &ledger.ledger, ledger.sandbox);
    if !ledger_file.exists() {
        return Err(Fatal::new(
            Exit::CannotRun,
            format!(
                "no ledger at {}: campaign {:?} has not run yet",
                ledger_file.display(),
                c.name
            ),
        )
        .into());
    }
    let ledger = Ledger::open(&ledger_file)?;
    let mut sink = super::output(output)?;
    let mut lines = 0u64;
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut sink);
            w.write_record(COLUMNS)?;
            ledger.export(&c.name, |r| {
                lines += 1;
                w.write_record([
                    r.key.as_str(),
                    &r.row_number.to_string(),
                    &r.status,
                    r.reason.as_deref().unwrap_or(""),
                    r.contact_id.as_deref().unwrap_or(""),
                    r.session_id.as_deref().unwrap_or(""),
                    &r.message_ids.join(" "),
                    &r.attempts.to_string(),
                    &r.http_status.map(|s| s.to_string()).unwrap_or_default(),
                    r.error.as_deref().unwrap_or(""),
                    &r.updated_at,
                    r.replied_at.as_deref().unwrap_or(""),
                    r.last_reply.as_deref().unwrap_or(""),
                    r.clicked.as_deref().unwrap_or(""),
                ])?;
                Ok(())
            })?;
            w.flush()?;
        }
        Format::Jsonl => {
            ledger.export(&c.name, |r| {
                lines += 1;
                serde_json::to_writer(&mut sink, &r)?;
                sink.write_all(b"\n")?;
                Ok(())
            })?;
        }
    }
    sink.flush()?;
    if let Some(p) = output
        && !quiet
    {
        eprintln!("exported {lines} contacts of {} to {}", c.name, p.display());
    }
    Ok(Exit::Ok)
}
