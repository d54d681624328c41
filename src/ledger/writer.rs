//! The ledger's single writer: a thread that owns the write connection and applies commands from
//! a channel in batched transactions. A claim (the `sending` intents) is committed, and therefore
//! durable, before its acknowledgement lets the requests leave; outcomes are committed as soon as
//! the channel runs dry, so a busy run writes large batches and a quiet one commits at once.

use std::path::Path;
use std::thread::JoinHandle;

use rusqlite::{Connection, Transaction, params};
use tokio::sync::{mpsc, oneshot};

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
    Outcome(Outcome),
    Skip(Skip),
    Flush(oneshot::Sender<Result<(), String>>),
}

/// The async side's handle on the writer thread.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Command>,
}

/// How many commands one transaction takes at most.
const BATCH: usize = 4096;

pub struct Writer {
    handle: WriterHandle,
    thread: JoinHandle<Result<(), String>>,
}

impl Writer {
    /// Starts the writer thread on its own connection.
    pub fn start(path: &Path, campaign: &str) -> anyhow::Result<Writer> {
        let conn = connect(path)?;
        let (tx, rx) = mpsc::channel(8192);
        let campaign = campaign.to_string();
        let thread = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || run(conn, &campaign, rx))?;
        Ok(Writer {
            handle: WriterHandle { tx },
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

    pub async fn outcome(&self, o: Outcome) -> Result<(), String> {
        self.tx
            .send(Command::Outcome(o))
            .await
            .map_err(|_| closed())
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

fn run(
    mut conn: Connection,
    campaign: &str,
    mut rx: mpsc::Receiver<Command>,
) -> Result<(), String> {
    let mut acks: Vec<oneshot::Sender<Result<(), String>>> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let result = (|| -> rusqlite::Result<()> {
            // IMMEDIATE takes the write lock up front: a read that later writes could otherwise
            // fail at once with SQLITE_BUSY when another process wrote in between.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            apply(&tx, campaign, first, &mut acks)?;
            let mut n = 1;
            while n < BATCH {
                match rx.try_recv() {
                    Ok(cmd) => apply(&tx, campaign, cmd, &mut acks)?,
                    Err(_) => break,
                }
                n += 1;
            }
            tx.commit()
        })();
        let reply = result.map_err(|e| format!("cannot write the ledger: {e}"));
        for ack in acks.drain(..) {
            let _ = ack.send(reply.clone());
        }
        reply?;
    }
    Ok(())
}

fn apply(
    tx: &Transaction<'_>,
    campaign: &str,
    cmd: Command,
    acks: &mut Vec<oneshot::Sender<Result<(), String>>>,
) -> rusqlite::Result<()> {
    let ts = now();
    match cmd {
        Command::Claim(intents, ack) => {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO contacts (campaign, key, row_number, phone, status, attempts, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 'sending', ?6, ?5)
                 ON CONFLICT (campaign, key) DO UPDATE SET status = 'sending',
                    attempts = attempts + 1, row_number = excluded.row_number,
                    phone = excluded.phone, updated_at = excluded.updated_at",
            )?;
            for i in &intents {
                stmt.execute(params![
                    campaign,
                    i.key,
                    i.row_number,
                    i.phone,
                    ts,
                    i.attempt
                ])?;
            }
            acks.push(ack);
        }
        Command::Outcome(o) => match o.status {
            Some(status) => {
                let ids = (!o.message_ids.is_empty())
                    .then(|| serde_json::to_string(&o.message_ids).unwrap_or_default());
                tx.prepare_cached(
                    "UPDATE contacts SET status = ?3, reason = ?4, contact_id = COALESCE(?5, contact_id),
                        session_id = COALESCE(?6, session_id), message_ids = COALESCE(?7, message_ids),
                        queue_id = COALESCE(?8, queue_id),
                        http_status = ?9, error = ?10, updated_at = ?11
                     WHERE campaign = ?1 AND key = ?2",
                )?
                .execute(params![
                    campaign,
                    o.key,
                    status.as_str(),
                    o.reason,
                    o.contact_id,
                    o.session_id,
                    ids,
                    o.queue_id,
                    o.http_status,
                    o.error,
                    ts
                ])?;
            }
            None => match o.prior {
                None => {
                    tx.prepare_cached("DELETE FROM contacts WHERE campaign = ?1 AND key = ?2")?
                        .execute(params![campaign, o.key])?;
                }
                Some(prior) => {
                    tx.prepare_cached(
                        "UPDATE contacts SET status = ?3, updated_at = ?4
                         WHERE campaign = ?1 AND key = ?2",
                    )?
                    .execute(params![campaign, o.key, prior.as_str(), ts])?;
                }
            },
        },
        Command::Skip(Skip::Duplicate {
            key,
            row_number,
            first_row,
        }) => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO duplicates (campaign, row_number, key, first_row, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![campaign, row_number, key, first_row, ts])?;
        }
        Command::Skip(Skip::Contact {
            key,
            row_number,
            phone,
            reason,
            error,
        }) => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO contacts (campaign, key, row_number, phone, status, reason, error, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 'skipped', ?5, ?6, ?7)",
            )?
            .execute(params![campaign, key, row_number, phone, reason, error, ts])?;
        }
        Command::Flush(ack) => acks.push(ack),
    }
    Ok(())
}
