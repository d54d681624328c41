//! Storing replies: the listener's writer (one thread, batched transactions, an ack after the
//! commit), attribution to the campaign that last messaged the contact, and the opt-out list.
//! It lives with the listener because it is the webhook's only way into the ledger; what the
//! other commands read of replies is the ledger's (`ledger/replies.rs`).

use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use super::parse::Reply;
use crate::ledger::db::{Mode, Tx};
use crate::ledger::optouts::Source;
use crate::ledger::{Db, DbResult, Place, Sql, args, connect_by_index, format_utc};

/// How long an identical body that names no message of its own counts as a retried delivery
/// of the one stored; after that it is the contact writing the same thing again.
pub(crate) const RETRY_WINDOW: Duration = Duration::from_secs(10 * 60);

/// What storing a reply did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stored {
    /// False for a repeat of a delivery already stored.
    pub(crate) new: bool,
    /// Its `replies.id` (none for a repeat), and the contact key it was attributed to: what a
    /// log line names, so that it can be found in `cosmocast replies` and `export`.
    pub(crate) id: Option<i64>,
    pub(crate) key: Option<String>,
    pub(crate) campaign: Option<String>,
    pub(crate) opt_out: OptOut,
}

/// What a reply did to the suppression list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum OptOut {
    /// The reply is no opt-out, or a repeat of a delivery already stored.
    NotAsked,
    /// The phone is now on the list.
    Added,
    /// The phone was on the list already.
    Listed,
    /// The reply is an opt-out, but neither it nor its contact id names a phone, so nobody was
    /// added: the reply keeps `opt_out = 1` for someone to find its phone.
    NoPhone,
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
    /// The campaigns the ledger held when the writer started, oldest first.
    pub(crate) campaigns: Vec<String>,
    thread: JoinHandle<()>,
}

impl ReplyWriterThread {
    pub(crate) fn start(place: &Place, horizon: Duration) -> anyhow::Result<ReplyWriterThread> {
        let db = connect_by_index(place)?;
        probe(&db).map_err(|e| {
            anyhow::anyhow!(
                "the ledger {place} cannot store a reply: {e}; nothing is listened to (every delivery would be answered 500)"
            )
        })?;
        let campaigns = campaign_names(&db)?;
        let (tx, rx) = mpsc::channel(4096);
        let place = place.clone();
        let thread = std::thread::Builder::new()
            .name("reply-writer".into())
            .spawn(move || run(&place, db, rx, horizon))?;
        Ok(ReplyWriterThread {
            handle: ReplyWriter { tx },
            campaigns,
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

/// Writes what storing a reply writes (a reply, an opt-out) in a transaction rolled back: a
/// ledger the listener may read but not write (a read-only role, a file it cannot write) is
/// refused at start, rather than answering every delivery 500.
fn probe(db: &Db) -> DbResult<()> {
    let tx = db.transaction(Mode::Write)?;
    tx.execute(
        "INSERT INTO replies (received_at, raw, fingerprint) VALUES ('probe', '{}', 'probe')",
        &[],
    )?;
    tx.execute(
        "INSERT INTO opt_outs (phone, added_at) VALUES ('probe', 'probe') ON CONFLICT DO NOTHING",
        &[],
    )?;
    // Dropped uncommitted: rolled back.
    Ok(())
}

fn campaign_names(db: &Db) -> DbResult<Vec<String>> {
    db.rows(
        "SELECT name FROM campaigns ORDER BY created_at, name",
        &[],
        |r| r.get(0),
    )
}

/// Stores batches of replies as they come. A database that went away (a PostgreSQL restart)
/// is connected to again, and the batch tried once more, so that a listener outlives the
/// restart; storing a delivery twice stores it once (`Stored::new`).
fn run(place: &Place, mut db: Db, mut rx: mpsc::Receiver<Job>, horizon: Duration) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < 512 {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let mut result = write(&db, &jobs, horizon);
        // Why connecting again failed (a password changed with the restart, say), which says
        // more than the connection that closed.
        let mut reconnect = None;
        if let Err(e) = &result
            && e.is_lost()
        {
            match connect_by_index(place) {
                Ok(again) => {
                    db = again;
                    result = write(&db, &jobs, horizon);
                }
                Err(e) => reconnect = Some(e),
            }
        }
        match result {
            Ok(stored) => {
                for (job, s) in jobs.into_iter().zip(stored) {
                    let _ = job.ack.send(Ok(s));
                }
            }
            Err(e) => {
                let why = if e.is_lost() {
                    let cause = reconnect.map_or_else(|| e.to_string(), |r| format!("{r:#}"));
                    format!(
                        "cannot reach the ledger's database {place} ({cause}); the reply is not stored"
                    )
                } else {
                    format!("cannot write the ledger {place}: {e}")
                };
                for job in jobs {
                    let _ = job.ack.send(Err(why.clone()));
                }
            }
        }
    }
}

/// Stores one batch in one transaction.
fn write(db: &Db, jobs: &[Job], horizon: Duration) -> DbResult<Vec<Stored>> {
    let tx = db.transaction(Mode::Write)?;
    let clock = Clock::now(horizon);
    let stored = jobs
        .iter()
        .map(|j| store(&tx, &j.reply, j.opt_out, &clock))
        .collect::<DbResult<Vec<_>>>()?;
    tx.commit()?;
    Ok(stored)
}

/// The times one batch of replies is stored against.
struct Clock {
    now: String,
    /// Sends from before this are past the horizon.
    since: String,
    /// An identical body stored before this is not a retry.
    retries_since: String,
}

impl Clock {
    fn at(now: Duration, horizon: Duration) -> Clock {
        let utc = |d: Duration| format_utc(d.as_secs() as i64, d.subsec_millis());
        Clock {
            now: utc(now),
            since: utc(now.saturating_sub(horizon)),
            retries_since: utc(now.saturating_sub(RETRY_WINDOW)),
        }
    }

    fn now(horizon: Duration) -> Clock {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock::at(now, horizon)
    }
}

/// One send a reply may answer.
struct Send {
    campaign: String,
    key: String,
    phone: Option<String>,
    contact_id: Option<String>,
    updated_at: String,
}

/// The campaign and contact a reply belongs to: the most recent send to that contact id, else
/// to that phone, within the horizon. A request still `sending` counts (a quick reply can beat
/// the ledger's record of the answer), and so does `unknown` (it may have arrived). Such a send
/// has no contact id yet, so a more recent send to the phone whose contact id is unknown (or
/// the same) wins over an older send found by contact id.
fn attribute(tx: &Tx<'_>, reply: &Reply, since: &str) -> DbResult<Option<Send>> {
    let by = |column: &str, value: &str| {
        tx.row(
            &format!(
                "SELECT campaign, key, phone, contact_id, updated_at FROM contacts WHERE {column} = ?1
                 AND status IN ('sent', 'queued', 'sending', 'unknown') AND updated_at >= ?2
                 ORDER BY updated_at DESC LIMIT 1"
            ),
            args![value, since],
            |r| {
                Ok(Send {
                    campaign: r.get(0)?,
                    key: r.get(1)?,
                    phone: r.get(2)?,
                    contact_id: r.get(3)?,
                    updated_at: r.get(4)?,
                })
            },
        )
    };
    let by_id = match &reply.contact_id {
        Some(id) => by("contact_id", id)?,
        None => None,
    };
    let by_phone = match &reply.phone {
        Some(p) => by("phone", p)?,
        None => None,
    };
    Ok(match (by_id, by_phone) {
        (Some(id), Some(phone))
            if phone.updated_at > id.updated_at
                && (phone.contact_id.is_none() || phone.contact_id == reply.contact_id) =>
        {
            Some(phone)
        }
        (Some(id), _) => Some(id),
        (None, phone) => phone,
    })
}

/// Whether this delivery is already stored. A body that names its message (an id or a time) is
/// the same message whenever it comes again; any other body is a retried delivery only within
/// `RETRY_WINDOW` of the one stored, and only for the same campaign.
fn is_repeat(tx: &Tx<'_>, reply: &Reply, campaign: Option<&str>, clock: &Clock) -> DbResult<bool> {
    let found = if reply.names_its_message() {
        tx.row(
            "SELECT 1 FROM replies WHERE fingerprint = ?1 LIMIT 1",
            args![reply.fingerprint],
            |_| Ok(()),
        )?
    } else {
        tx.row(
            "SELECT 1 FROM replies WHERE fingerprint = ?1 AND campaign IS NOT DISTINCT FROM ?2
             AND received_at >= ?3 LIMIT 1",
            args![reply.fingerprint, campaign, clock.retries_since],
            |_| Ok(()),
        )?
    };
    Ok(found.is_some())
}

fn store(tx: &Tx<'_>, reply: &Reply, opt_out: bool, clock: &Clock) -> DbResult<Stored> {
    let (campaign, key, known_phone) = match attribute(tx, reply, &clock.since)? {
        Some(send) => (Some(send.campaign), Some(send.key), send.phone),
        None => (None, None, None),
    };
    if is_repeat(tx, reply, campaign.as_deref(), clock)? {
        return Ok(Stored {
            new: false,
            id: None,
            key,
            campaign,
            opt_out: OptOut::NotAsked,
        });
    }
    let reply_id: i64 = tx.value(
        "INSERT INTO replies (received_at, campaign, contact_key, contact_id, phone, type, text, payload, raw, fingerprint, message_id, provider_time, opt_out)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) RETURNING id",
        args![clock.now, campaign, key, reply.contact_id, reply.phone, reply.kind, reply.text, reply.payload, reply.raw, reply.fingerprint, reply.message_id, reply.provider_time, opt_out],
    )?;
    let ts = &clock.now;
    let mut outcome = OptOut::NotAsked;
    if opt_out {
        outcome = OptOut::NoPhone;
        // Kept in the normalised form every campaign compares (a webhook writes the number
        // without `+`); one that does not read as a phone is kept as given.
        let phone = reply
            .phone
            .as_deref()
            .map(|p| crate::phone::match_key(p, None).unwrap_or_else(|| p.to_string()))
            .or(known_phone);
        // An opt-out is kept however long ago the contact was messaged: past the horizon, the
        // contact id still names its phone.
        let phone = match (phone, &reply.contact_id) {
            (None, Some(id)) => tx.row(
                "SELECT phone FROM contacts WHERE contact_id = ?1 AND phone IS NOT NULL
                 ORDER BY updated_at DESC LIMIT 1",
                args![id],
                |r| r.get::<String>(0),
            )?,
            (phone, _) => phone,
        };
        if let Some(phone) = phone {
            let added = tx.execute(
                "INSERT INTO opt_outs (phone, added_at, reply_id, text, source, campaign)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                args![
                    phone,
                    ts,
                    reply_id,
                    reply.text,
                    Source::Reply.as_str(),
                    campaign
                ],
            )?;
            outcome = if added > 0 {
                OptOut::Added
            } else {
                OptOut::Listed
            };
        }
    }
    Ok(Stored {
        new: true,
        id: Some(reply_id),
        key,
        campaign,
        opt_out: outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::parse::parse;

    const T0: u64 = 1_800_000_000;
    const HORIZON: Duration = Duration::from_secs(7 * 86_400);

    /// A ledger where campaign `first` messaged contact c1 an hour before T0.
    fn ledger() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let conn = connect_by_index(&Place::File(dir.path().join("l.sqlite"))).unwrap();
        sent(&conn, "first", T0 - 3600);
        (dir, conn)
    }

    fn sent(conn: &Db, campaign: &str, at: u64) {
        conn.execute(
            "INSERT INTO contacts (campaign, key, row_number, phone, status, contact_id, attempts, updated_at)
             VALUES (?1, 'C1', 2, '5511', 'sent', 'c1', 1, ?2)",
            args![campaign, format_utc(at as i64, 0)],
        )
        .unwrap();
    }

    fn put(conn: &mut Db, body: &str, at: u64) -> Stored {
        let tx = conn.transaction(Mode::Write).unwrap();
        let clock = Clock::at(Duration::from_secs(at), HORIZON);
        let stored = store(&tx, &parse(body.as_bytes()).unwrap(), false, &clock).unwrap();
        tx.commit().unwrap();
        stored
    }

    fn count(conn: &Db) -> usize {
        conn.value("SELECT COUNT(*) FROM replies", &[]).unwrap()
    }

    const OK: &str = r#"{"contact":{"id":"c1"},"message":{"type":"text","data":{"text":"ok"}}}"#;

    #[test]
    fn a_body_with_no_id_is_a_retry_within_the_window_only() {
        let (_dir, mut conn) = ledger();
        assert!(put(&mut conn, OK, T0).new);
        let again = put(&mut conn, OK, T0 + 5);
        assert!(!again.new, "a retried delivery");
        assert_eq!(again.campaign.as_deref(), Some("first"));
        assert!(!put(&mut conn, OK, T0 + RETRY_WINDOW.as_secs() - 1).new);
        assert!(
            put(&mut conn, OK, T0 + RETRY_WINDOW.as_secs() + 1).new,
            "the contact wrote the same again later"
        );
        assert_eq!(count(&conn), 2);
    }

    #[test]
    fn the_same_text_to_a_later_campaign_is_stored_and_tied_to_it() {
        let (_dir, mut conn) = ledger();
        assert_eq!(put(&mut conn, OK, T0).campaign.as_deref(), Some("first"));
        sent(&conn, "second", T0 + 10);
        let later = put(&mut conn, OK, T0 + 20);
        assert!(later.new);
        assert_eq!(later.campaign.as_deref(), Some("second"));
        let campaigns: Vec<String> = conn
            .rows("SELECT campaign FROM replies ORDER BY id", &[], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(campaigns, ["first", "second"]);
    }

    #[test]
    fn a_provider_id_or_time_decides_whatever_the_delay() {
        let (_dir, mut conn) = ledger();
        let with_id = |id: &str, attempt: u32| {
            format!(
                r#"{{"contact":{{"id":"c1"}},"message":{{"id":"{id}","type":"text","data":{{"text":"ok"}}}},"attempt":{attempt}}}"#
            )
        };
        assert!(put(&mut conn, &with_id("m1", 1), T0).new);
        assert!(
            put(&mut conn, &with_id("m2", 1), T0 + 1).new,
            "another message, same text"
        );
        assert!(
            !put(&mut conn, &with_id("m1", 2), T0 + 86_400).new,
            "m1 again, a day later"
        );
        let timed = r#"{"contact":{"id":"c1"},"timestamp":1800000000,"message":{"type":"text","data":{"text":"ok"}}}"#;
        assert!(put(&mut conn, timed, T0).new);
        assert!(!put(&mut conn, timed, T0 + 86_400).new);
        let later = timed.replace("1800000000", "1800000500");
        assert!(put(&mut conn, &later, T0 + 500).new);
        assert_eq!(count(&conn), 4);
        let ids: Vec<(Option<String>, Option<String>)> = conn
            .rows(
                "SELECT message_id, provider_time FROM replies ORDER BY id",
                &[],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(ids[0], (Some("m1".into()), None));
        assert_eq!(ids[2], (None, Some("1800000000".into())));
    }

    #[test]
    fn a_quick_reply_belongs_to_the_send_whose_answer_is_not_recorded_yet() {
        let (_dir, mut conn) = ledger();
        // The later campaign's request is out; its answer (with the contact id) is not in yet.
        conn.execute(
            "INSERT INTO contacts (campaign, key, row_number, phone, status, attempts, updated_at)
             VALUES ('second', 'C1', 2, '5511', 'sending', 1, ?1)",
            args![format_utc(T0 as i64 - 1, 0)],
        )
        .unwrap();
        let body = r#"{"contact":{"id":"c1","phone":"5511"},"message":{"type":"text","data":{"text":"hi"}}}"#;
        assert_eq!(put(&mut conn, body, T0).campaign.as_deref(), Some("second"));
        // A more recent send to the phone with another contact id is someone else's.
        conn.execute(
            "UPDATE contacts SET contact_id = 'c9', updated_at = ?1 WHERE campaign = 'second'",
            args![format_utc(T0 as i64 + 1, 0)],
        )
        .unwrap();
        let body = body.replace("hi", "hello");
        assert_eq!(
            put(&mut conn, &body, T0 + 2).campaign.as_deref(),
            Some("first")
        );
    }

    #[test]
    fn a_stop_past_the_horizon_still_opts_the_phone_out() {
        let (_dir, conn) = ledger();
        // A month after the send: no campaign to credit, but the contact id names the phone.
        let stop = r#"{"contact":{"id":"c1"},"message":{"type":"text","data":{"text":"PARAR"}}}"#;
        let tx = conn.transaction(Mode::Write).unwrap();
        let clock = Clock::at(Duration::from_secs(T0 + 30 * 86_400), HORIZON);
        let stored = store(&tx, &parse(stop.as_bytes()).unwrap(), true, &clock).unwrap();
        tx.commit().unwrap();
        assert_eq!((stored.campaign, stored.opt_out), (None, OptOut::Added));
        let phones: Vec<String> = conn
            .rows("SELECT phone FROM opt_outs", &[], |r| r.get(0))
            .unwrap();
        assert_eq!(phones, ["5511"]);
    }

    #[test]
    fn a_repeated_stop_opts_out_once() {
        let (_dir, conn) = ledger();
        let stop = r#"{"contact":{"id":"c1"},"message":{"type":"text","data":{"text":"Stop"}}}"#;
        let tx = conn.transaction(Mode::Write).unwrap();
        let clock = Clock::at(Duration::from_secs(T0), HORIZON);
        let first = store(&tx, &parse(stop.as_bytes()).unwrap(), true, &clock).unwrap();
        let again = store(&tx, &parse(stop.as_bytes()).unwrap(), true, &clock).unwrap();
        assert_eq!(
            (first.opt_out, again.opt_out),
            (OptOut::Added, OptOut::NotAsked)
        );
        assert!(!again.new);
        // The same phone writing STOP again later is stored, and was on the list already.
        let later = r#"{"contact":{"id":"c1"},"message":{"type":"text","data":{"text":"STOP!"}}}"#;
        let later = store(&tx, &parse(later.as_bytes()).unwrap(), true, &clock).unwrap();
        assert_eq!((later.new, later.opt_out), (true, OptOut::Listed));
        tx.commit().unwrap();
        let phones: usize = conn
            .value("SELECT COUNT(*) FROM opt_outs WHERE phone = '5511'", &[])
            .unwrap();
        assert_eq!(phones, 1);
    }

    #[test]
    fn a_stop_that_names_no_phone_is_kept_and_says_nobody_was_added() {
        let (_dir, conn) = ledger();
        let tx = conn.transaction(Mode::Write).unwrap();
        let clock = Clock::at(Duration::from_secs(T0), HORIZON);
        // The phone outside `contact`, and a contact id the ledger has never seen.
        for body in [
            r#"{"phone":"5511988880009","message":[{"type":"text","data":{"text":"STOP"}}]}"#,
            r#"{"contact":{"id":"c404"},"message":[{"type":"text","data":{"text":"STOP"}}]}"#,
        ] {
            let stored = store(&tx, &parse(body.as_bytes()).unwrap(), true, &clock).unwrap();
            assert_eq!(
                (stored.new, stored.opt_out),
                (true, OptOut::NoPhone),
                "{body}"
            );
        }
        tx.commit().unwrap();
        let kept: usize = conn
            .value(
                "SELECT COUNT(*) FROM replies WHERE opt_out AND phone IS NULL",
                &[],
            )
            .unwrap();
        let listed: usize = conn.value("SELECT COUNT(*) FROM opt_outs", &[]).unwrap();
        assert_eq!((kept, listed), (2, 0));
    }
}
