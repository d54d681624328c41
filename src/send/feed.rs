//! The feed: reads the CSV, renders each row and decides, against the ledger, what the row needs:
//! nothing (already done), a record (duplicate, invalid), or a send. Runs on a blocking thread and
//! hands work to the dispatcher through a bounded channel, so memory stays flat.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::audience::{Audience, Verdict};
use crate::contacts::ContactReader;
use crate::ledger::writer::Skip;
use crate::ledger::{Known, Status};

/// Which recorded states a run sends again.
#[derive(Debug, Clone, Copy, Default)]
pub struct Resend {
    pub failed: bool,
    pub unknown: bool,
}

/// One contact to send, with its serialized body.
#[derive(Debug)]
pub struct Job {
    pub key: String,
    pub row_number: u64,
    pub phone: Option<String>,
    pub prior: Option<Status>,
    pub body: bytes::Bytes,
}

#[derive(Debug)]
pub enum Work {
    Send(Job),
    Record(Skip),
    /// A row the ledger already settles (counted for progress only).
    Done(Status),
    /// A row `contacts.where` leaves out of the campaign.
    Filtered,
    /// The file could not be read further; the run must stop.
    Broken(String),
}

/// Decides one rendered key against the ledger and the keys seen earlier in this file.
pub fn decide(known: Option<&Known>, resend: Resend) -> Option<Option<Status>> {
    match known.map(|k| k.status) {
        None => Some(None),
        Some(Status::Failed) if resend.failed => Some(Some(Status::Failed)),
        Some(Status::Unknown) if resend.unknown => Some(Some(Status::Unknown)),
        Some(_) => None,
    }
}

/// Reads and renders every row, sending `Work` until the file ends or the receiver is gone.
pub fn feed(
    mut reader: ContactReader,
    audience: Arc<Audience>,
    known: HashMap<String, Known>,
    resend: Resend,
    skip_invalid: bool,
    out: mpsc::Sender<Work>,
) {
    let csv = reader.path().to_path_buf();
    // First row of each key seen in this file, to tell duplicates.
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut buf = Vec::with_capacity(1024);
    let skipped = |key: String,
                   row_number: u64,
                   phone: Option<String>,
                   reason: &str,
                   error: Option<String>| {
        if known.contains_key(&key) {
            Work::Done(Status::Skipped)
        } else {
            Work::Record(Skip::Contact {
                key,
                row_number,
                phone,
                reason: reason.into(),
                error,
            })
        }
    };
    while let Some(row) = reader.next() {
        let work = match row {
            Err(p) if !skip_invalid || p.message.starts_with("cannot read") => {
                Work::Broken(p.to_string())
            }
            Err(p) => {
                // A row the CSV parser rejects has no fields to render: key it by its row number.
                skipped(
                    format!("row:{}", reader.rows_read()),
                    reader.rows_read(),
                    None,
                    "invalid",
                    Some(p.to_string()),
                )
            }
            Ok(row) => match audience.classify(&row, &csv) {
                Verdict::Filtered => Work::Filtered,
                Verdict::Invalid(e) if !skip_invalid => Work::Broken(
                    e.problems
                        .first()
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                ),
                Verdict::Invalid(e) => skipped(
                    format!("row:{}", row.number),
                    row.number,
                    None,
                    "invalid",
                    Some(e.summary()),
                ),
                Verdict::Excluded(r) | Verdict::OptedOut(r) | Verdict::Ready(r)
                    if seen.contains_key(&r.key) =>
                {
                    let first_row = seen[&r.key];
                    Work::Record(Skip::Duplicate {
                        key: r.key,
                        row_number: row.number,
                        first_row,
                    })
                }
                Verdict::OptedOut(r) => {
                    seen.insert(r.key.clone(), row.number);
                    skipped(r.key, row.number, r.phone, "opted_out", None)
                }
                Verdict::Excluded(r) => {
                    seen.insert(r.key.clone(), row.number);
                    skipped(r.key, row.number, r.phone, "excluded", None)
                }
                Verdict::Ready(r) => {
                    seen.insert(r.key.clone(), row.number);
                    let k = known.get(&r.key);
                    match decide(k, resend) {
                        None => Work::Done(k.map(|k| k.status).unwrap_or(Status::Skipped)),
                        Some(prior) => {
                            buf.clear();
                            match serde_json::to_writer(&mut buf, &r.request) {
                                Ok(()) => Work::Send(Job {
                                    key: r.key,
                                    row_number: row.number,
                                    phone: r.phone,
                                    prior,
                                    body: bytes::Bytes::copy_from_slice(&buf),
                                }),
                                Err(e) => {
                                    Work::Broken(format!("cannot encode row {}: {e}", row.number))
                                }
                            }
                        }
                    }
                }
            },
        };
        let stop = matches!(work, Work::Broken(_));
        if out.blocking_send(work).is_err() || stop {
            return;
        }
    }
}
