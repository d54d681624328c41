//! The feed: reads the CSV, decides each row against the ledger (`audience::Decider`), and hands
//! the dispatcher what each needs: nothing (already done), a record (duplicate, skipped,
//! invalid), or a send with its serialised body. Runs on a blocking thread and hands work over
//! through a bounded channel in chunks, so memory stays flat. It ends with `Work::End`: a channel
//! that closes without it means the feed failed.

use tokio::sync::mpsc;

use crate::audience::{Decider, Decision};
use crate::contacts::{ContactReader, Snapshot};
use crate::ledger::Status;
use crate::ledger::writer::Skip;

/// One contact to send, with its serialised body.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) key: String,
    pub(crate) row_number: u64,
    pub(crate) phone: Option<String>,
    pub(crate) prior: Option<Status>,
    pub(crate) body: bytes::Bytes,
}

/// Why the feed cannot go on.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum FeedError {
    /// The file cannot be read any further.
    #[error("{0}")]
    Unreadable(String),
    /// A row that cannot be sent, found only now (without `--skip-invalid`).
    #[error("{0}")]
    Row(String),
    #[error("cannot encode the request of row {row}: {detail}")]
    Encode { row: u64, detail: String },
    #[error(
        "the contact file {path} changed during the run ({what}); nothing more was sent — run again: the rows already sent are recorded and will not be sent twice"
    )]
    Changed { path: String, what: String },
    #[error("the contact feed stopped unexpectedly; nothing more was sent")]
    Vanished,
}

#[derive(Debug)]
pub(crate) enum Work {
    Send(Job),
    Record(Skip),
    /// Rows that need nothing from this run: settled by the ledger, blank, or invalid and
    /// skipped under `--skip-invalid` (sent in bunches so that a resumed run does not wake the
    /// dispatcher once per row).
    Done(u64),
    /// Rows `contacts.where` leaves out of the campaign.
    Filtered(u64),
    /// Contacts whose phone is in its cool-down: not sent now, not recorded.
    Deferred(u64),
    /// The feed cannot go on; the run must stop.
    Broken(FeedError),
    /// Every row was read.
    End,
}

/// How many pieces of work travel in one channel message: the dispatcher wakes once per chunk.
const CHUNK: usize = 64;

/// How many chunks may wait in the channel (the feed's lead on the senders, in memory).
const CHUNKS_AHEAD: usize = 16;

/// How many settled or filtered rows one `Work::Done`/`Work::Filtered` counts at most.
const BUNCH: u64 = 4096;

/// How often (in rows) the feed checks that the contact file has not changed: well within the
/// rows it reads ahead of the senders, so a change stops the run before they reach it.
const CHECK_EVERY: u64 = 256;

/// The feed's side of the channel: gathers work into chunks, and counted rows into bunches.
struct Sink {
    out: mpsc::Sender<Vec<Work>>,
    chunk: Vec<Work>,
    done: u64,
    filtered: u64,
    deferred: u64,
}

impl Sink {
    fn counts(&mut self) {
        if self.done > 0 {
            self.chunk.push(Work::Done(std::mem::take(&mut self.done)));
        }
        if self.filtered > 0 {
            self.chunk
                .push(Work::Filtered(std::mem::take(&mut self.filtered)));
        }
        if self.deferred > 0 {
            self.chunk
                .push(Work::Deferred(std::mem::take(&mut self.deferred)));
        }
    }

    /// Queues one piece of work; false once the run needs no more (the receiver is gone, or
    /// the feed broke).
    fn push(&mut self, work: Work) -> bool {
        match work {
            Work::Done(n) => self.done += n,
            Work::Filtered(n) => self.filtered += n,
            Work::Deferred(n) => self.deferred += n,
            work => {
                self.counts();
                let last = matches!(work, Work::Broken(_) | Work::End);
                self.chunk.push(work);
                if last {
                    let _ = self.send();
                    return false;
                }
            }
        }
        if self.done >= BUNCH || self.filtered >= BUNCH || self.deferred >= BUNCH {
            self.counts();
        }
        self.chunk.len() < CHUNK || self.send()
    }

    fn send(&mut self) -> bool {
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        chunk.is_empty() || self.out.blocking_send(chunk).is_ok()
    }
}

/// The receiving side: hands out the chunks' work one piece at a time.
pub(crate) struct Inbox {
    rx: mpsc::Receiver<Vec<Work>>,
    buf: std::vec::IntoIter<Work>,
}

impl Inbox {
    /// The next piece of work if one is ready.
    pub(crate) fn try_next(&mut self) -> Result<Work, mpsc::error::TryRecvError> {
        loop {
            if let Some(w) = self.buf.next() {
                return Ok(w);
            }
            self.buf = self.rx.try_recv()?.into_iter();
        }
    }

    /// The next piece of work; `None` once the channel is closed. Cancel-safe.
    pub(crate) async fn next(&mut self) -> Option<Work> {
        loop {
            if let Some(w) = self.buf.next() {
                return Some(w);
            }
            self.buf = self.rx.recv().await?.into_iter();
        }
    }
}

/// Starts a feed's channel: the feed's sender and the dispatcher's inbox.
pub(crate) fn channel() -> (mpsc::Sender<Vec<Work>>, Inbox) {
    let (tx, rx) = mpsc::channel(CHUNKS_AHEAD);
    (
        tx,
        Inbox {
            rx,
            buf: Vec::new().into_iter(),
        },
    )
}

/// What the feed needs besides the file.
pub(crate) struct FeedOptions {
    pub(crate) skip_invalid: bool,
    /// The contact file as the pre-flight read it: any change stops the run.
    pub(crate) snapshot: Snapshot,
}

/// Reads and decides every row, sending `Work` until the file ends or the receiver is gone.
pub(crate) fn feed(
    mut reader: ContactReader,
    mut decider: Decider,
    opts: FeedOptions,
    out: mpsc::Sender<Vec<Work>>,
) {
    let csv = reader.path().to_path_buf();
    let mut buf = Vec::with_capacity(1024);
    let mut sink = Sink {
        out,
        chunk: Vec::with_capacity(CHUNK),
        done: 0,
        filtered: 0,
        deferred: 0,
    };
    let changed = |snapshot: &Snapshot| {
        snapshot.changed().map(|what| {
            Work::Broken(FeedError::Changed {
                path: csv.display().to_string(),
                what,
            })
        })
    };
    if let Some(w) = changed(&opts.snapshot) {
        sink.push(w);
        return;
    }
    while let Some(row) = reader.next() {
        if reader.rows_read().is_multiple_of(CHECK_EVERY)
            && let Some(w) = changed(&opts.snapshot)
        {
            sink.push(w);
            return;
        }
        let work = match row {
            Err(p) if reader.failed() => Work::Broken(FeedError::Unreadable(p.to_string())),
            Err(p) if !opts.skip_invalid => Work::Broken(FeedError::Row(p.to_string())),
            // A row the CSV parser rejects: skipped, judged again by the next run.
            Err(_) => Work::Done(1),
            Ok(row) => match decider.decide(&row, &csv) {
                Decision::Invalid { problems, .. }
                    if !opts.skip_invalid || decider.renderer().ran_away() =>
                {
                    Work::Broken(FeedError::Row(
                        problems.first().map(|p| p.to_string()).unwrap_or_default(),
                    ))
                }
                d => d.into_work(row.number, &mut buf),
            },
        };
        if !sink.push(work) {
            return;
        }
    }
    let end = changed(&opts.snapshot).unwrap_or(Work::End);
    sink.push(end);
}

impl Decision {
    /// The work a decision needs; a send's body is written with `buf`'s room.
    fn into_work(self, row_number: u64, buf: &mut Vec<u8>) -> Work {
        match self {
            Decision::Send { rendered, prior } => {
                buf.clear();
                match serde_json::to_writer(&mut *buf, &rendered.request) {
                    Ok(()) => Work::Send(Job {
                        key: rendered.key,
                        row_number,
                        phone: rendered.phone,
                        prior,
                        body: bytes::Bytes::copy_from_slice(buf),
                    }),
                    Err(e) => Work::Broken(FeedError::Encode {
                        row: row_number,
                        detail: e.to_string(),
                    }),
                }
            }
            Decision::Blank => Work::Done(1),
            Decision::Filtered => Work::Filtered(1),
            Decision::Deferred { .. } => Work::Deferred(1),
            // Never recorded: the row is judged again by every run, and sent once fixed.
            Decision::Invalid { .. } => Work::Done(1),
            Decision::Settled { .. } => Work::Done(1),
            Decision::Duplicate { key, first_row } => Work::Record(Skip::Duplicate {
                key,
                row_number,
                first_row,
            }),
            Decision::Skip {
                key,
                phone,
                reason,
                note,
            } => Work::Record(Skip::Contact {
                key,
                row_number,
                phone,
                reason: reason.as_str().to_string(),
                error: note,
            }),
        }
    }
}
