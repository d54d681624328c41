//! Replies in the ledger: the listener's writer (one thread, batched transactions, an ack after
//! the commit), attribution to the campaign that last messaged the contact, the opt-out list,
//! and the per-campaign figures `status`, `export` and `replies` show.

use std::collections::HashSet;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::{Ledger, connect_write, format_utc, now};
use crate::replies::Reply;

/// What storing a reply did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stored {
    /// False for a repeat of a delivery already stored.
    pub(crate) new: bool,
    pub(crate) campaign: Option<String>,
    pub(crate) opted_out: bool,
}

struct Job {
    reply: Reply,
    opt_out: bool,
    ack: oneshot::Sender<Result<Stored, String>>,
}

/// The listener's handle on the reply writer.
#[derive(Clone)]
pub(crate) struct ReplyWriter {
    tx: mpsc::Sender<Job>,
}

pub(crate) struct ReplyWriterThread {
    pub(crate) handle: ReplyWriter,
    thread: JoinHandle<()>,
}

impl ReplyWriterThread {
    pub(crate) fn start(path: &Path, horizon: Duration) -> anyhow::Result<ReplyWriterThread> {
        let conn = connect_write(path)?;
        let (tx, rx) = mpsc::channel(4096);
        let thread = std::thread::Builder::new()
            .name("reply-writer".into())
            .spawn(move || run(conn, rx, horizon))?;
        Ok(ReplyWriterThread {
            handle: ReplyWriter { tx },
            thread,
        })
    }

    /// Waits until everything sent so far is committed.
    pub(crate) fn finish(self) {
        drop(self.handle);
        let _ = self.thread.join();
    }
}

impl ReplyWriter {
    /// Stores a reply; returns once it is committed.
    pub(crate) async fn store(&self, reply: Reply, opt_out: bool) -> Result<Stored, String> {
        let (ack, wait) = oneshot::channel();
        let gone = || "the reply writer has stopped".to_string();
        self.tx
            .send(Job {
                reply,
                opt_out,
                ack,
            })
            .await
            .map_err(|_| gone())?;
        wait.await.map_err(|_| gone())?
    }
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Job>, horizon: Duration) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < 512 {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let result = (|| -> rusqlite::Result<Vec<Stored>> {
            // IMMEDIATE takes the write lock up front: a read that later writes could otherwise
            // fail at once with SQLITE_BUSY when another process wrote in between.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let since = horizon_start(horizon);
            let stored = jobs
                .iter()
                .map(|j| store(&tx, &j.reply, j.opt_out, &since))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            tx.commit()?;
            Ok(stored)
        })();
        match result {
            Ok(stored) => {
                for (job, s) in jobs.into_iter().zip(stored) {
                    let _ = job.ack.send(Ok(s));
                }
            }
            Err(e) => {
                for job in jobs {
                    let _ = job.ack.send(Err(format!("cannot write the ledger: {e}")));
                }
            }
        }
    }
}

fn horizon_start(horizon: Duration) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_utc(now.saturating_sub(horizon).as_secs() as i64, 0)
}

/// The campaign and contact a reply belongs to: the most recent send to that contact id, else
/// to that phone, within the horizon. A request still `sending` counts (a quick reply can beat
/// the ledger's record of the answer), and so does `unknown` (it may have arrived).
fn attribute(
    tx: &Transaction<'_>,
    reply: &Reply,
    since: &str,
) -> rusqlite::Result<Option<(String, String, Option<String>)>> {
    let by = |column: &str, value: &str| {
        tx.query_row(
            &format!(
                "SELECT campaign, key, phone FROM contacts WHERE {column} = ?1 AND status IN ('sent', 'queued', 'sending', 'unknown')
                 AND updated_at >= ?2 ORDER BY updated_at DESC LIMIT 1"
            ),
            params![value, since],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
    };
    if let Some(id) = &reply.contact_id
        && let Some(hit) = by("contact_id", id)?
    {
        return Ok(Some(hit));
    }
    match &reply.phone {
        Some(p) => by("phone", p),
        None => Ok(None),
    }
}

fn store(
    tx: &Transaction<'_>,
    reply: &Reply,
    opt_out: bool,
    since: &str,
) -> rusqlite::Result<Stored> {
    let owner = attribute(tx, reply, since)?;
    let (campaign, key, known_phone) = match owner {
        Some((c, k, p)) => (Some(c), Some(k), p),
        None => (None, None, None),
    };
    let ts = now();
    let inserted = tx.prepare_cached(
        "INSERT OR IGNORE INTO replies (received_at, campaign, contact_key, contact_id, phone, type, text, payload, raw, fingerprint)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![ts, campaign, key, reply.contact_id, reply.phone, reply.kind, reply.text, reply.payload, reply.raw, reply.fingerprint])?;
    let mut opted_out = false;
    if inserted == 1 && opt_out {
        let phone = reply.phone.clone().or(known_phone);
        if let Some(phone) = phone {
            tx.prepare_cached("INSERT OR IGNORE INTO opt_outs (phone, added_at, reply_id, text) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![phone, ts, tx.last_insert_rowid(), reply.text])?;
            opted_out = true;
        }
    }
    Ok(Stored {
        new: inserted == 1,
        campaign,
        opted_out,
    })
}

/// Reply figures for one campaign.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct ReplyStats {
    pub(crate) replies: u64,
    pub(crate) contacts_replied: u64,
    /// Contacts that replied, over contacts sent or queued.
    pub(crate) reply_rate: f64,
    pub(crate) clicks: std::collections::BTreeMap<String, u64>,
    pub(crate) opt_outs: u64,
}

/// One stored reply, for `cosmocast replies`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ReplyRow {
    pub(crate) received_at: String,
    pub(crate) contact_key: Option<String>,
    pub(crate) contact_id: Option<String>,
    pub(crate) phone: Option<String>,
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) text: Option<String>,
    pub(crate) payload: Option<String>,
    pub(crate) raw: String,
}

impl Ledger {
    /// Every phone on the opt-out list.
    pub(crate) fn opt_outs(&self) -> anyhow::Result<HashSet<String>> {
        let mut stmt = self.conn.prepare("SELECT phone FROM opt_outs")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub(crate) fn reply_stats(&self, campaign: &str) -> anyhow::Result<ReplyStats> {
        let (replies, contacts_replied): (u64, u64) = self.conn.query_row(
            "SELECT COUNT(*), COUNT(DISTINCT contact_key) FROM replies WHERE campaign = ?1",
            [campaign],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let reached: u64 = self.conn.query_row(
            "SELECT COUNT(*) FROM contacts WHERE campaign = ?1 AND status IN ('sent', 'queued')",
            [campaign],
            |r| r.get(0),
        )?;
        let mut stmt = self.conn.prepare(
            "SELECT payload, COUNT(*) FROM replies WHERE campaign = ?1 AND payload IS NOT NULL GROUP BY payload",
        )?;
        let clicks = stmt
            .query_map([campaign], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let opt_outs: u64 = self.conn.query_row(
            "SELECT COUNT(*) FROM opt_outs o JOIN replies r ON r.id = o.reply_id WHERE r.campaign = ?1",
            [campaign],
            |r| r.get(0),
        )?;
        Ok(ReplyStats {
            replies,
            contacts_replied,
            reply_rate: if reached > 0 {
                contacts_replied as f64 / reached as f64
            } else {
                0.0
            },
            clicks,
            opt_outs,
        })
    }

    /// Streams a campaign's replies, oldest first.
    pub(crate) fn replies(
        &self,
        campaign: &str,
        mut each: impl FnMut(ReplyRow) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut stmt = self.conn.prepare(
            "SELECT received_at, contact_key, contact_id, phone, type, text, payload, raw FROM replies
             WHERE campaign = ?1 ORDER BY received_at, id",
        )?;
        let mut rows = stmt.query([campaign])?;
        while let Some(r) = rows.next()? {
            each(ReplyRow {
                received_at: r.get(0)?,
                contact_key: r.get(1)?,
                contact_id: r.get(2)?,
                phone: r.get(3)?,
                kind: r.get(4)?,
                text: r.get(5)?,
                payload: r.get(6)?,
                raw: r.get(7)?,
            })?;
        }
        Ok(())
    }
}
