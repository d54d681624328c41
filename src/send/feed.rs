//! The feed: reads the CSV, renders each row and decides, against the ledger, what the row needs:
//! nothing (already done), a record (duplicate, invalid), or a send. Runs on a blocking thread and
//! hands work to the dispatcher through a bounded channel, so memory stays flat.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::audience::{Audience, Verdict};
use crate::contacts::ContactReader;
use crate::ledger::writer::Skip;
use crate::ledger::{KnownMap, Status, key_id};

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
    /// Rows the ledger already settles (counted for progress only; sent in bunches so that a
    /// resumed run does not wake the dispatcher once per row).
    Done(u64),
    /// A row `contacts.where` leaves out of the campaign.
    Filtered,
    /// The file could not be read further; the run must stop.
    Broken(String),
}

/// Decides a contact's recorded state: `None` when it needs no send, else the state it leaves.
pub fn decide(status: Option<Status>, resend: Resend) -> Option<Option<Status>> {
    match status {
        None => Some(None),
        Some(Status::Failed) if resend.failed => Some(Some(Status::Failed)),
        Some(Status::Unknown) if resend.unknown => Some(Some(Status::Unknown)),
        Some(_) => None,
    }
}

/// A row recorded as skipped, unless the ledger already holds it.
fn skip(
    known: &KnownMap,
    key: String,
    row_number: u64,
    phone: Option<String>,
    reason: &str,
    error: Option<String>,
) -> Work {
    if known.get(&key_id(&key)).is_some_and(|k| k.status.is_some()) {
        Work::Done(1)
    } else {
        Work::Record(Skip::Contact {
            key,
            row_number,
            phone,
            reason: reason.into(),
            error,
        })
    }
}

/// How many pieces of work travel in one channel message: the dispatcher wakes once per chunk.
const CHUNK: usize = 64;

/// How many chunks may wait in the channel (the feed's lead on the senders, in memory).
pub const CHUNKS_AHEAD: usize = 16;

/// The feed's side of the channel: gathers work into chunks, and settled rows into counts.
struct Sink {
    out: mpsc::Sender<Vec<Work>>,
    chunk: Vec<Work>,
    /// Settled rows not yet counted in a `Work::Done`.
    done: u64,
}

impl Sink {
    /// Queues one piece of work; false once the run needs no more (the receiver is gone, or the
    /// file broke).
    fn push(&mut self, work: Work) -> bool {
        if let Work::Done(n) = work {
            self.done += n;
            if self.done >= DONE_BUNCH {
                self.chunk.push(Work::Done(std::mem::take(&mut self.done)));
            }
        } else {
            if self.done > 0 {
                self.chunk.push(Work::Done(std::mem::take(&mut self.done)));
            }
            let broken = matches!(work, Work::Broken(_));
            self.chunk.push(work);
            if broken {
                let _ = self.send();
                return false;
            }
        }
        self.chunk.len() < CHUNK || self.send()
    }

    fn send(&mut self) -> bool {
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        chunk.is_empty() || self.out.blocking_send(chunk).is_ok()
    }

    /// Sends what is left at the end of the file.
    fn finish(mut self) {
        if self.done > 0 {
            self.chunk.push(Work::Done(self.done));
        }
        let _ = self.send();
    }
}

/// The receiving side: hands out the chunks' work one piece at a time.
pub struct Inbox {
    rx: mpsc::Receiver<Vec<Work>>,
    buf: std::vec::IntoIter<Work>,
}

impl Inbox {
    pub fn new(rx: mpsc::Receiver<Vec<Work>>) -> Inbox {
        Inbox {
            rx,
            buf: Vec::new().into_iter(),
        }
    }

    /// The next piece of work if one is ready.
    pub fn try_next(&mut self) -> Result<Work, mpsc::error::TryRecvError> {
        loop {
            if let Some(w) = self.buf.next() {
                return Ok(w);
            }
            self.buf = self.rx.try_recv()?.into_iter();
        }
    }

    /// The next piece of work; `None` once the feed has ended. Cancel-safe.
    pub async fn next(&mut self) -> Option<Work> {
        loop {
            if let Some(w) = self.buf.next() {
                return Some(w);
            }
            self.buf = self.rx.recv().await?.into_iter();
        }
    }
}

/// Starts a feed's channel: the feed's sender and the dispatcher's inbox.
pub fn channel() -> (mpsc::Sender<Vec<Work>>, Inbox) {
    let (tx, rx) = mpsc::channel(CHUNKS_AHEAD);
    (tx, Inbox::new(rx))
}

/// Reads and renders every row, sending `Work` until the file ends or the receiver is gone.
/// `known` holds the ledger's keys; the feed also marks there the first row of each key.
pub fn feed(
    mut reader: ContactReader,
    audience: Arc<Audience>,
    mut known: KnownMap,
    resend: Resend,
    skip_invalid: bool,
    out: mpsc::Sender<Vec<Work>>,
) {
    let csv = reader.path().to_path_buf();
    let mut buf = Vec::with_capacity(1024);
    let mut sink = Sink {
        out,
        chunk: Vec::with_capacity(CHUNK),
        done: 0,
    };
    while let Some(row) = reader.next() {
        let work = match row {
            Err(p) if !skip_invalid || p.message.starts_with("cannot read") => {
                Work::Broken(p.to_string())
            }
            // A row the CSV parser rejects has no fields to render: key it by its row number.
            Err(p) => {
                let n = reader.rows_read();
                skip(
                    &known,
                    format!("row:{n}"),
                    n,
                    None,
                    "invalid",
                    Some(p.to_string()),
                )
            }
            // A contact the ledger already settles needs only its key, not its request.
            Ok(row) if let Some(key) = audience.settled_key(&row, &csv, &known, resend) => {
                match known.first_sighting(&key, row.number) {
                    Ok(_) => Work::Done(1),
                    Err(first_row) => Work::Record(Skip::Duplicate {
                        key,
                        row_number: row.number,
                        first_row,
                    }),
                }
            }
            Ok(row) => match audience.classify(&row, &csv) {
                Verdict::Filtered => Work::Filtered,
                Verdict::Invalid(e) if !skip_invalid => Work::Broken(
                    e.problems
                        .first()
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                ),
                Verdict::Invalid(e) => skip(
                    &known,
                    format!("row:{}", row.number),
                    row.number,
                    None,
                    "invalid",
                    Some(e.summary()),
                ),
                verdict => {
                    let (r, reason) = match verdict {
                        Verdict::OptedOut(r) => (r, Some("opted_out")),
                        Verdict::Excluded(r) => (r, Some("excluded")),
                        Verdict::Ready(r) => (r, None),
                        Verdict::Filtered | Verdict::Invalid(_) => continue,
                    };
                    match known.first_sighting(&r.key, row.number) {
                        Err(first_row) => Work::Record(Skip::Duplicate {
                            key: r.key,
                            row_number: row.number,
                            first_row,
                        }),
                        Ok(status) => match reason {
                            Some(reason) => skip(&known, r.key, row.number, r.phone, reason, None),
                            None => match decide(status, resend) {
                                None => Work::Done(1),
                                Some(prior) => {
                                    buf.clear();
                                    match r.request.write_json(&mut buf) {
                                        Ok(()) => Work::Send(Job {
                                            key: r.key,
                                            row_number: row.number,
                                            phone: r.phone,
                                            prior,
                                            body: bytes::Bytes::copy_from_slice(&buf),
                                        }),
                                        Err(e) => Work::Broken(format!(
                                            "cannot encode row {}: {e}",
                                            row.number
                                        )),
                                    }
                                }
                            },
                        },
                    }
                }
            },
        };
        if !sink.push(work) {
            return;
        }
    }
    sink.finish();
}

/// How many settled rows one `Work::Done` counts at most.
const DONE_BUNCH: u64 = 4096;
