//! The ledger's single writer: a thread that owns the write connection and applies commands from
//! a channel in batched transactions. A claim (the `sending` intents) is committed, and therefore
//! durable, before its acknowledgement lets the requests leave; outcomes share the next claim's
//! commit, or are committed on their own within `OUTCOME_DELAY`, so a busy run pays one fsync per
//! claim and a quiet one still records every answer promptly.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{Notify, mpsc, oneshot};

use super::journal::{self, Op, Open};
use super::{Status, connect, now};

/// A contact about to be sent: written as `sending` before the request leaves.
#[derive(Debug, Clone)]
pub struct Intent {
    pub key: String,
    pub row_number: u64,
    pub phone: Option<String>,
    /// This run's attempt number for the contact (a retry is claimed again).
    pub attempt: u32,
}

/// What became of one request.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub key: String,
    /// `None` releases the claim: the request surely never reached the API (the run stopped on
    /// bad credentials), so the contact returns to the state it had before.
    pub status: Option<Status>,
    pub prior: Option<Status>,
    pub reason: Option<String>,
    pub contact_id: Option<String>,
    pub session_id: Option<String>,
    pub message_ids: Vec<String>,
    pub queue_id: Option<String>,
    pub http_status: Option<u16>,
    pub error: Option<String>,
}

/// A row recorded without sending.
#[derive(Debug, Clone)]
pub enum Skip {
    /// The key was seen before, at `first_row`.
    Duplicate {
        key: String,
        row_number: u64,
        first_row: u64,
    },
    /// `skipped` with a reason (`excluded`, `opted_out`, `invalid`).
    Contact {
        key: String,
        row_number: u64,
        phone: Option<String>,
        reason: String,
        error: Option<String>,
    },
}

pub enum Command {
    Claim(Vec<Intent>, oneshot::Sender<Result<(), String>>),
    Skip(Skip),
    Flush(oneshot::Sender<Result<(), String>>),
}

impl Command {
    /// Someone waits for this command's commit.
    fn is_urgent(&self) -> bool {
        matches!(self, Command::Claim(..) | Command::Flush(_))
    }
}

/// Outcomes waiting for the next commit. Senders only push here (no channel message, no thread
/// woken per outcome); the writer takes them all at its next commit.
#[derive(Default)]
struct Outcomes {
    list: Mutex<Vec<Outcome>>,
    /// Rung when the list stops being empty, so that a writer with nothing else to do wakes.
    arrived: Notify,
}

impl Outcomes {
    fn take(&self) -> Vec<Outcome> {
        std::mem::take(&mut *self.list.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The async side's handle on the writer thread.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Command>,
    outcomes: Arc<Outcomes>,
}

/// How many commands one transaction takes at most.
const BATCH: usize = 4096;

/// How many changes the journal gathers before they are folded into `contacts`. A fold writes
/// about 1,000 contacts in a few milliseconds, less than the claims queued ahead of the senders
/// last, so the senders never wait for it; larger folds share more pages per write but make
/// the claim that waits for their commit wait longer. (A claim still unanswered at a fold stays
/// in the journal, so the size does not change how many claims meet their answer.)
const FOLD: usize = 2048;

pub struct Writer {
    handle: WriterHandle,
    thread: JoinHandle<Result<(), String>>,
}

impl Writer {
    /// Starts the writer thread on its own connection.
    pub fn start(path: &Path, campaign: &str) -> anyhow::Result<Writer> {
        let conn = connect(path)?;
        // Checkpoint every 40 MB of log rather than every 4 MB: a page the run rewrites many
        // times is copied into the database file once per checkpoint, not once per 1,000 pages.
        // (The log is still synced on every commit; this changes nothing about durability.)
        conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
        // A fold's many-row statements keep a statement journal (the pages they change, to undo a
        // failed statement alone). Past 64 KiB SQLite spills it to a temporary file: half the
        // writes a run made were to that file. In memory it is a copy; a fold changes a few
        // hundred pages at most.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        let (tx, rx) = mpsc::channel(8192);
        let outcomes = Arc::new(Outcomes::default());
        let campaign = campaign.to_string();
        let runtime = tokio::runtime::Handle::current();
        let waiting = outcomes.clone();
        let thread = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || run(conn, &campaign, rx, &waiting, runtime))?;
        Ok(Writer {
            handle: WriterHandle { tx, outcomes },
            thread,
        })
    }

    pub fn handle(&self) -> WriterHandle {
        self.handle.clone()
    }

    /// Waits for every command sent so far to be committed, then stops the thread.
    pub fn finish(self) -> anyhow::Result<()> {
        drop(self.handle);
        match self.thread.join() {
            Ok(r) => r.map_err(|e| anyhow::anyhow!("ledger write failed: {e}")),
            Err(_) => Err(anyhow::anyhow!("the ledger writer thread panicked")),
        }
    }
}

fn closed() -> String {
    "the ledger writer has stopped".to_string()
}

impl WriterHandle {
    /// Commits the intents; returns once they are durable.
    pub async fn claim(&self, intents: Vec<Intent>) -> Result<(), String> {
        let (ack, wait) = oneshot::channel();
        self.tx
            .send(Command::Claim(intents, ack))
            .await
            .map_err(|_| closed())?;
        wait.await.map_err(|_| closed())?
    }

    /// Records an outcome with the next commit (within `OUTCOME_DELAY`, sooner while claims flow).
    pub fn outcome(&self, o: Outcome) -> Result<(), String> {
        if self.tx.is_closed() {
            return Err(closed());
        }
        let mut list = self.outcomes.list.lock().unwrap_or_else(|e| e.into_inner());
        let first = list.is_empty();
        list.push(o);
        drop(list);
        if first {
            self.outcomes.arrived.notify_one();
        }
        Ok(())
    }

    pub async fn skip(&self, s: Skip) -> Result<(), String> {
        self.tx.send(Command::Skip(s)).await.map_err(|_| closed())
    }

    /// Returns once everything sent before it is committed.
    pub async fn flush(&self) -> Result<(), String> {
        let (ack, wait) = oneshot::channel();
        self.tx
            .send(Command::Flush(ack))
            .await
            .map_err(|_| closed())?;
        wait.await.map_err(|_| closed())?
    }
}

/// How long outcomes may wait for a claim to share its commit. Every commit costs an fsync, so
/// while a run claims contacts, the outcomes ride along with the claims; when claims pause (a rate
/// ceiling, a retry's backoff, the end of the file) they are committed on their own after this long.
const OUTCOME_DELAY: Duration = Duration::from_millis(50);

fn run(
    mut conn: Connection,
    campaign: &str,
    mut rx: mpsc::Receiver<Command>,
    outcomes: &Outcomes,
    runtime: tokio::runtime::Handle,
) -> Result<(), String> {
    let mut acks: Vec<oneshot::Sender<Result<(), String>>> = Vec::new();
    let mut pending: Vec<Command> = Vec::with_capacity(BATCH);
    let mut open = true;
    // Changes this writer put in the journal and has not folded (a reader may have folded them
    // since: then the next fold finds fewer).
    let mut journaled = 0;
    while open {
        // Wait for a command, or for outcomes to arrive. (Timers and waits are made inside the
        // runtime's context: `block_on` enters it.)
        let first = runtime.block_on(async {
            tokio::select! {
                cmd = rx.recv() => cmd.map(Some),
                _ = outcomes.arrived.notified() => Some(None),
            }
        });
        let mut urgent = match first {
            None => {
                open = false;
                true
            }
            Some(None) => false,
            Some(Some(cmd)) => {
                let urgent = cmd.is_urgent();
                pending.push(cmd);
                urgent
            }
        };
        // Gather a batch: everything queued and, while nobody waits for the commit, what arrives
        // within OUTCOME_DELAY, until a claim or a flush asks for it.
        let deadline = tokio::time::Instant::now() + OUTCOME_DELAY;
        while open && pending.len() < BATCH {
            let next = match rx.try_recv() {
                Ok(cmd) => Some(cmd),
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    None
                }
                Err(mpsc::error::TryRecvError::Empty) if urgent => None,
                Err(mpsc::error::TryRecvError::Empty) => runtime
                    .block_on(async { tokio::time::timeout_at(deadline, rx.recv()).await })
                    .ok()
                    .flatten(),
            };
            let Some(cmd) = next else { break };
            urgent |= cmd.is_urgent();
            pending.push(cmd);
        }
        // Taken after the commands: an outcome always reaches the list before the claim that
        // follows it (a retry releases, then claims again), so it is applied first.
        let settled = outcomes.take();
        if settled.is_empty() && pending.is_empty() && (open || journaled == 0) {
            continue;
        }
        let mut ops: Vec<Op> = settled.into_iter().map(Op::Outcome).collect();
        for cmd in pending.drain(..) {
            match cmd {
                Command::Claim(intents, ack) => {
                    ops.extend(intents.into_iter().map(Op::Claim));
                    acks.push(ack);
                }
                Command::Skip(s) => ops.push(Op::Skip(s)),
                Command::Flush(ack) => acks.push(ack),
            }
        }
        let result = (|| -> rusqlite::Result<()> {
            // IMMEDIATE takes the write lock up front: a read that later writes could otherwise
            // fail at once with SQLITE_BUSY when another process wrote in between.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            journal::append(&tx, campaign, &now(), &ops)?;
            journaled += ops.len();
            if !open {
                // The last commit folds everything: a finished run leaves the journal empty.
                journaled = journal::fold(&tx, Open::Write)?;
            }
            tx.commit()
        })();
        let reply = result.map_err(|e| format!("cannot write the ledger: {e}"));
        for ack in acks.drain(..) {
            let _ = ack.send(reply.clone());
        }
        reply?;
        // The fold is a commit of its own, after the acknowledgements: the claim that filled the
        // journal does not wait for it, so the senders hold that claim's batch and the one before
        // while the fold runs, instead of one. (Unanswered claims stay in the journal.)
        if open && journaled >= FOLD {
            journaled = (|| -> rusqlite::Result<usize> {
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let carried = journal::fold(&tx, Open::Carry)?;
                tx.commit()?;
                Ok(carried)
            })()
            .map_err(|e| format!("cannot write the ledger: {e}"))?;
        }
    }
    Ok(())
}
