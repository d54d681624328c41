//! `cosmocast export`: one line per CSV row, as CSV or JSON lines, to stdout or a file: every
//! contact the ledger holds (duplicates included), and the rows `contacts.where` left out
//! (reason `filtered`, read from the contact file: they are not a ledger state). CSV cells that
//! came from outside and begin like a spreadsheet formula are neutralised.

use std::io::Write;
use std::path::Path;

use super::output::Output;
use crate::campaign::{self, Campaign};
use crate::cli::{Format, LedgerChoice, OutputArgs};
use crate::error::{Exit, Fatal};
use crate::ledger::{ExportRow, Ledger};
use crate::plan::{Plan, ledger_for};

/// The columns of contract §2, in order, then the reply columns `listen` fills.
pub(crate) const COLUMNS: [&str; 15] = [
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
    "opted_out_at",
];

/// A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, carriage return)
/// gets a leading `'`, as OWASP recommends for CSV injection.
pub(crate) fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// The rows `contacts.where` leaves out, as export lines (key as the key template renders it).
fn filtered_rows(c: &Campaign) -> Vec<ExportRow> {
    if c.contacts.filter.is_none() {
        return Vec::new();
    }
    let Ok(plan) = Plan::new(c.clone()) else {
        return Vec::new();
    };
    let Ok(reader) = plan.reader() else {
        return Vec::new();
    };
    let csv = reader.path().to_path_buf();
    let renderer = &plan.audience.renderer;
    reader
        .flatten()
        .filter(|row| matches!(renderer.included(row, &csv), Ok(false)))
        .map(|row| ExportRow {
            key: renderer
                .key(&row, &csv)
                .ok()
                .flatten()
                .unwrap_or_else(|| format!("row:{}", row.number)),
            row_number: row.number,
            status: "filtered".into(),
            reason: Some("filtered".into()),
            contact_id: None,
            session_id: None,
            message_ids: Vec::new(),
            attempts: 0,
            http_status: None,
            error: Some("`contacts.where` is false for this row".into()),
            updated_at: String::new(),
            replied_at: None,
            last_reply: None,
            clicked: None,
            opted_out_at: None,
        })
        .collect()
}

/// Gives every line to `emit` in row order: the ledger's contacts, with the `filtered` rows
/// (in row order) between them. How many lines there were.
fn in_row_order(
    ledger: &Ledger,
    campaign: &str,
    filtered: Vec<ExportRow>,
    mut emit: impl FnMut(ExportRow) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut filtered = filtered.into_iter().peekable();
    let mut lines = 0u64;
    ledger.export(campaign, |r| {
        while let Some(f) = filtered.next_if(|f| f.row_number < r.row_number) {
            lines += 1;
            emit(f)?;
        }
        lines += 1;
        emit(r)
    })?;
    for f in filtered {
        lines += 1;
        emit(f)?;
    }
    Ok(lines)
}

pub(crate) fn run(
    path: &Path,
    ledger: &LedgerChoice,
    out: &OutputArgs,
    quiet: bool,
) -> anyhow::Result<Exit> {
    let c = campaign::load(path)?;
    let ledger_file = ledger_for(&c, &ledger.ledger, ledger.sandbox)?;
    let Some(ledger) = Ledger::open_read(&ledger_file.path)? else {
        return Err(Fatal::new(
            Exit::CannotRun,
            format!(
                "no ledger at {ledger_file}: campaign {:?} has not run yet (nothing was created)",
                c.name
            ),
        )
        .into());
    };
    for note in &ledger.notes {
        eprintln!("note: {note}");
    }
    let filtered = filtered_rows(&c);
    let mut sink = Output::open(out.output.as_deref())?;
    let lines = match out.format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut sink);
            w.write_record(COLUMNS)?;
            let lines = in_row_order(&ledger, &c.name, filtered, |r| {
                let o = |v: &Option<String>| neutralise(v.as_deref().unwrap_or("")).into_owned();
                w.write_record([
                    neutralise(&r.key).into_owned(),
                    r.row_number.to_string(),
                    r.status.clone(),
                    o(&r.reason),
                    o(&r.contact_id),
                    o(&r.session_id),
                    neutralise(&r.message_ids.join(" ")).into_owned(),
                    r.attempts.to_string(),
                    r.http_status.map(|s| s.to_string()).unwrap_or_default(),
                    o(&r.error),
                    r.updated_at.clone(),
                    o(&r.replied_at),
                    o(&r.last_reply),
                    o(&r.clicked),
                    o(&r.opted_out_at),
                ])?;
                Ok(())
            })?;
            w.flush()?;
            lines
        }
        Format::Jsonl => in_row_order(&ledger, &c.name, filtered, |r| {
            serde_json::to_writer(&mut sink, &r)?;
            sink.write_all(b"\n")?;
            Ok(())
        })?,
    };
    sink.finish()?;
    if let Some(p) = &out.output
        && !quiet
    {
        eprintln!(
            "exported {} of {} to {}",
            crate::text::count(lines, "line"),
            c.name,
            p.display()
        );
    }
    Ok(Exit::Ok)
}
