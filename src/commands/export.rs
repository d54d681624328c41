//! `cosmocast export`: one line per row of the contact file, in row order, as CSV or JSON lines,
//! to stdout or a file: the ledger's record for a row whose contact it holds, else the row's
//! bucket judged afresh (`filtered`, `invalid`, `skipped`, `deferred`, `pending`), as `status`
//! counts them, with the phone as sent. CSV cells that came from outside and begin like a
//! spreadsheet formula are neutralised.

use std::io::{IsTerminal, Write};

use super::output::{Output, campaign_files, refuse_to_overwrite};
use crate::audience::{Decision, Resend, SAME_PHONE_AS_ROW};
use crate::campaign;
use crate::cli::{ExportArgs, Format};
use crate::error::Exit;
use crate::ledger::keys::Skipped;
use crate::ledger::{ExportRow, Ledger};
use crate::plan::{Pass, Plan, ledger_for};
use crate::printer::Printer;
use crate::text::cell;

/// The `export` columns as the README's Commands table lists them; `listen` fills the reply ones.
pub(crate) const COLUMNS: [&str; 16] = [
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
    "phone",
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

/// A line for a row the ledger does not hold: its bucket judged afresh, with what is known.
fn fresh(row_number: u64, key: Option<String>, status: &str, reason: Option<&str>) -> ExportRow {
    ExportRow {
        key: key.unwrap_or_default(),
        row_number,
        status: status.into(),
        reason: reason.map(str::to_string),
        ..ExportRow::default()
    }
}

/// For a contact recorded skipped for sharing its phone with an earlier row, whom it shares it
/// with, by key: the row number recorded then moves when rows are added or removed.
fn sharing(l: &Ledger, campaign: &str, r: &ExportRow) -> anyhow::Result<Option<String>> {
    let shares = r.reason.as_deref() == Some(Skipped::Duplicate.as_str())
        && r.error
            .as_deref()
            .is_some_and(|e| e.starts_with(SAME_PHONE_AS_ROW));
    let Some(phone) = r.phone.as_deref().filter(|_| shares) else {
        return Ok(None);
    };
    Ok(Some(match l.phone_holder(campaign, phone, &r.key)? {
        Some(holder) => format!("same phone as contact {holder}, which this campaign messaged"),
        None => "same phone as an earlier row".into(),
    }))
}

/// The line of one row, as the accounting buckets it.
fn line(
    ledger: Option<&Ledger>,
    campaign: &str,
    row_number: u64,
    d: Decision,
    key: impl FnOnce() -> Option<String>,
) -> anyhow::Result<ExportRow> {
    let at = |key: String, status: &str, reason: Option<&str>| {
        fresh(row_number, Some(key), status, reason)
    };
    Ok(match d {
        Decision::Settled { key, .. } => match ledger
            .map(|l| l.export_row(campaign, &key))
            .transpose()?
            .flatten()
        {
            Some(mut r) => {
                r.row_number = row_number;
                if let Some(l) = ledger {
                    r.error = sharing(l, campaign, &r)?.or(r.error);
                }
                r
            }
            None => at(key, "pending", None),
        },
        Decision::Send { rendered, .. } => ExportRow {
            phone: rendered.phone,
            ..at(rendered.key, "pending", None)
        },
        Decision::Deferred { key, phone, until } => ExportRow {
            phone,
            error: jiff::Timestamp::from_second(until)
                .ok()
                .map(|t| format!("in its cool-down until {t}")),
            ..at(key, "deferred", Some(crate::plan::COOLDOWN))
        },
        Decision::Duplicate { key, first_row } => ExportRow {
            error: Some(format!("same key as row {first_row}")),
            ..at(key, "skipped", Some("duplicate"))
        },
        Decision::Skip {
            key,
            phone,
            reason,
            note,
        } => ExportRow {
            // When the phone went on the list, as the ledger's own skips show it.
            opted_out_at: None,
            phone,
            error: note,
            ..at(key, "skipped", Some(reason.as_str()))
        },
        Decision::Blank => fresh(row_number, None, "blank", Some("blank")),
        Decision::Filtered => ExportRow {
            error: Some("`contacts.where` is false for this row".into()),
            ..fresh(row_number, key(), "filtered", Some("filtered"))
        },
        Decision::Invalid { problems } => ExportRow {
            error: Some(
                problems
                    .iter()
                    .map(|p| p.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            ..fresh(row_number, key(), "invalid", Some("invalid"))
        },
    })
}

/// Gives `emit` one line per row of the contact file, in row order: the ledger's record for a
/// row whose contact it holds, else the row's bucket judged afresh (pending included), as
/// `status` counts them. How many lines there were.
fn in_row_order(
    plan: &Plan,
    ledger: Option<&Ledger>,
    sandbox: bool,
    mut emit: impl FnMut(ExportRow) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut decider = plan.decider(ledger, Resend::default(), Pass::Scan)?;
    // What the channel's daily limit still allows: pending rows past it are deferred, as
    // `status` counts them.
    let mut budget = crate::plan::Budget::new(plan.budget_left(ledger, sandbox)?);
    let reader = plan.reader()?;
    let csv = reader.path().to_path_buf();
    let name = &plan.campaign.name;
    let mut lines = 0u64;
    for (i, row) in reader.enumerate() {
        lines += 1;
        let row = match row {
            Ok(row) => row,
            Err(p) => {
                let mut r = fresh(i as u64 + 1, None, "invalid", Some("invalid"));
                r.error = Some(p.message);
                emit(r)?;
                continue;
            }
        };
        let d = decider.decide(&row, &csv);
        let renderer = decider.renderer();
        let key = || renderer.key(&row, &csv).ok().flatten();
        let mut r = line(ledger, name, row.number, d, key)?;
        // When the phone went on the list, as the audience matched it (an entry a webhook gave
        // without its country code, read with `contacts.country`).
        if r.reason.as_deref() == Some(Skipped::OptedOut.as_str())
            && r.opted_out_at.is_none()
            && let (Some(l), Some(p)) = (ledger, r.phone.as_deref())
        {
            r.opted_out_at = l.opted_out_at(p, plan.campaign.contacts.country.as_ref())?;
        }
        if r.status == "pending" && !budget.admits(decider.holds_slot(r.phone.as_deref())) {
            r.status = "deferred".into();
            r.reason = Some(crate::plan::DAILY_LIMIT.into());
            r.error = Some("past the channel's daily limit (api.daily_limit)".into());
        }
        emit(r)?;
    }
    Ok(lines)
}

pub(crate) fn run(args: &ExportArgs, printer: Printer) -> anyhow::Result<Exit> {
    let c = campaign::load(&args.campaign)?;
    let sandbox = args.ledger.sandbox;
    let ledger_file = ledger_for(&c, &args.ledger.ledger, sandbox)?;
    if let Some(out) = &args.out.output {
        refuse_to_overwrite(out, &campaign_files(&c, ledger_file.place.file()))?;
    }
    let ledger = Ledger::open_read(&ledger_file.place)?;
    match &ledger {
        Some(l) => {
            for note in &l.notes {
                printer.important(format_args!("note: {note}"));
            }
        }
        None => printer.important(format_args!(
            "note: no ledger at {ledger_file}: campaign {:?} has not run yet, so every row is as its first run would find it (nothing was created)",
            c.name
        )),
    }
    let ledger = ledger.as_ref();
    let plan = Plan::new(c.clone())?;
    let mut sink = Output::open(args.out.output.as_deref())?;
    // Read on a terminal by a person: cells from outside (the API's ids and errors, keys,
    // replies) are shown escaped there, and kept as they came in a file or a pipe.
    let on_terminal = args.out.output.is_none() && std::io::stdout().is_terminal();
    let lines = match args.out.format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut sink);
            w.write_record(COLUMNS)?;
            let lines = in_row_order(&plan, ledger, sandbox, |r| {
                let o = |v: &str| neutralise(&cell(v, on_terminal)).into_owned();
                let o = |v: &Option<String>| o(v.as_deref().unwrap_or(""));
                w.write_record([
                    neutralise(&cell(&r.key, on_terminal)).into_owned(),
                    r.row_number.to_string(),
                    r.status.clone(),
                    o(&r.reason),
                    o(&r.contact_id),
                    o(&r.session_id),
                    neutralise(&cell(&r.message_ids.join(" "), on_terminal)).into_owned(),
                    r.attempts.to_string(),
                    r.http_status.map(|s| s.to_string()).unwrap_or_default(),
                    o(&r.error),
                    r.updated_at.clone(),
                    o(&r.replied_at),
                    o(&r.last_reply),
                    o(&r.clicked),
                    o(&r.opted_out_at),
                    o(&r.phone),
                ])?;
                Ok(())
            })?;
            w.flush()?;
            lines
        }
        Format::Jsonl => in_row_order(&plan, ledger, sandbox, |r| {
            serde_json::to_writer(&mut sink, &r)?;
            sink.write_all(b"\n")?;
            Ok(())
        })?,
    };
    sink.finish()?;
    if let Some(p) = &args.out.output {
        printer.info(format_args!(
            "exported {} of {} to {}",
            crate::text::count(lines, "line"),
            c.name,
            p.display()
        ));
    }
    Ok(Exit::Ok)
}
