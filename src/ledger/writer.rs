//! The ledger's single writer: a thread that owns the write connection and applies changes from
//! a channel in batched transactions, each written straight into `contacts`. A claim (the
//! `sending` rows) is committed, and therefore durable, before its acknowledgement lets the
//! requests leave; outcomes share the next claim's commit, or are committed on their own within
//! `OUTCOME_DELAY`, so a busy run pays one fsync per claim and a quiet one still records every
//! answer promptly. Before every commit the writer checks that the ledger file is still the one
//! it opened: a ledger deleted or replaced mid-run stops the run instead of writing into a file
//! nobody will read.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};

use super::budget::{Claimed, Slots};
use super::db::{DbError, Mode, Sql, Tx, args};
use super::lock::{LedgerFile, RunLock};
use super::{Db, DbResult, Status, now};

/// A contact about to be sent: written as `sending` before the request leaves.
#[derive(Debug, Clone)]
pub(crate) struct Intent {
    pub(crate) key: String,
    pub(crate) row_number: u64,
    pub(crate) phone: Option<String>,
    /// This run's attempt number for the contact (a retry is claimed again).
    pub(crate) attempt: u32,
    /// The state the run found the contact in (none: not in the ledger). The claim holds only
    /// while the contact is still in it: another worker of the campaign may have claimed it.
    pub(crate) prior: Option<Status>,
}

/// What became of one claim of several contacts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Claim {
    /// How many of the contacts, from the first, were within the channel's daily limit: the
    /// rest must not be sent.
    pub(crate) admitted: usize,
    /// Those of the admitted (by their index) that another worker claimed first: not this
    /// run's to send.
    pub(crate) elsewhere: Vec<usize>,
}

impl Claim {
    /// Whether the one contact of a claim is this run's to send.
    pub(crate) fn holds_one(&self) -> bool {
        self.admitted == 1 && self.elsewhere.is_empty()
    }
}

/// What became of one request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    pub(crate) key: String,
    /// `None` releases the claim: the request surely never reached the API, so the contact
    /// returns to the state it had before (`prior`).
    pub(crate) status: Option<Status>,
    pub(crate) prior: Option<Status>,
    pub(crate) reason: Option<String>,
    pub(crate) contact_id: Option<String>,
    pub(crate) session_id: Option<String>,
    /// At most `retry::MAX_MESSAGE_IDS` of the answer's ids ...
    pub(crate) message_ids: Vec<String>,
    /// ... and how many it held.
    pub(crate) message_count: Option<u64>,
    pub(crate) queue_id: Option<String>,
    pub(crate) http_status: Option<u16>,
    pub(crate) error: Option<String>,
    /// A released claim keeps its slot of the channel's daily budget: the request is only
    /// waiting to be retried.
    pub(crate) keep_slot: bool,
}

/// A row recorded without sending.
#[derive(Debug, Clone)]
pub(crate) enum Skip {
    /// The key was seen before, at `first_row` (the `duplicates` table: the key is taken).
    Duplicate {
        key: String,
        row_number: u64,
        first_row: u64,
    },
    /// `skipped` with a reason (`excluded`, `opted_out`, `invalid`, `duplicate` by phone).
    Contact {
        key: String,
        row_number: u64,
        phone: Option<String>,
        reason: String,
        error: Option<String>,
    },
}

/// Why the writer could not commit.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum WriteError {
    /// The ledger file was deleted, moved or replaced while the run held it.
    #[error("{0}")]
    Gone(String),
    #[error("cannot write the ledger: {0}")]
    Sql(String),
    /// The database at `place` went away (its server stopped, the connection broke).
    #[error(
        "lost the ledger's database {place} ({why}); nothing more was sent — contacts whose answer could not be recorded are `unknown` to the next run, which resumes once the database is back"
    )]
    Lost { place: String, why: String },
    #[error("the ledger writer has stopped")]
    Stopped,
}

enum Command {
    /// Answered with how many of the intents were claimed: those past the channel's daily
    /// limit are not (and must not be sent).
    Claim(Vec<Intent>, oneshot::Sender<Result<Claim, WriteError>>),
    Skip(Skip),
    Flush(oneshot::Sender<Result<(), WriteError>>),
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
pub(crate) struct WriterHandle {
    tx: mpsc::Sender<Command>,
    outcomes: Arc<Outcomes>,
    /// Why the writer stopped, once it has: a sender that finds it stopped reports the cause
    /// (the ledger deleted, say) rather than only that it stopped.
    failure: Arc<Mutex<Option<WriteError>>>,
}

/// How many commands one transaction takes at most.
const BATCH: usize = 4096;

/// How long outcomes may wait for a claim to share its commit. Every commit costs an fsync, so
/// while a run claims contacts the outcomes ride along with the claims; when claims pause (a
/// rate ceiling, a retry's backoff, the end of the file) they are committed on their own.
const OUTCOME_DELAY: Duration = Duration::from_millis(50);

pub(crate) struct Writer {
    handle: WriterHandle,
    thread: JoinHandle<Result<(), WriteError>>,
}

impl Writer {
    /// Starts the writer thread on its own connection to the ledger `lock` holds, for the run
    /// `run_id` of `campaign`; claims take slots of `channel`'s daily budget (its fingerprint),
    /// when it is known.
    pub(crate) fn start(
        lock: &RunLock,
        campaign: &str,
        run_id: i64,
        channel: Option<String>,
    ) -> anyhow::Result<Writer> {
        let place = lock.place();
        let conn = super::connect_write(&place)?;
        if let Db::Sqlite(c) = &conn {
            // A page the run rewrites many times is copied into the database file once per
            // checkpoint: a larger log (40 MB) copies it less often. Every commit is still synced.
            c.pragma_update(None, "wal_autocheckpoint", 10_000)?;
        }
        let watch = lock.watch();
        let joined = lock.joined();
        let (tx, rx) = mpsc::channel(8192);
        let outcomes = Arc::new(Outcomes::default());
        let campaign = campaign.to_string();
        let runtime = tokio::runtime::Handle::current();
        let waiting = outcomes.clone();
        let failure = Arc::new(Mutex::new(None));
        let cause = failure.clone();
        let thread = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || {
                let mut state = State {
                    campaign,
                    run_id,
                    slots: channel.map(Slots::new),
                    place: place.to_string(),
                    joined,
                    failure: cause,
                };
                run(&conn, watch.as_ref(), &mut state, rx, &waiting, runtime)
            })?;
        Ok(Writer {
            handle: WriterHandle {
                tx,
                outcomes,
                failure,
            },
            thread,
        })
    }

    pub(crate) fn handle(&self) -> WriterHandle {
        self.handle.clone()
    }

    /// Waits for every command sent so far to be committed, then stops the thread.
    pub(crate) fn finish(self) -> Result<(), WriteError> {
        drop(self.handle);
        match self.thread.join() {
            Ok(r) => r,
            Err(_) => Err(WriteError::Sql("the ledger writer thread panicked".into())),
        }
    }
}

impl WriterHandle {
    /// Why the writer is gone: the error it stopped with, else that it stopped.
    fn stopped(&self) -> WriteError {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or(WriteError::Stopped)
    }

    /// Commits the intents; returns once they are durable, with which were claimed.
    pub(crate) async fn claim(&self, intents: Vec<Intent>) -> Result<Claim, WriteError> {
        let (ack, wait) = oneshot::channel();
        self.tx
            .send(Command::Claim(intents, ack))
            .await
            .map_err(|_| self.stopped())?;
        wait.await.map_err(|_| self.stopped())?
    }

    /// Records an outcome with the next commit (within `OUTCOME_DELAY`, sooner while claims flow).
    pub(crate) fn outcome(&self, o: Outcome) -> Result<(), WriteError> {
        if self.tx.is_closed() {
            return Err(self.stopped());
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

    pub(crate) async fn skip(&self, s: Skip) -> Result<(), WriteError> {
        self.tx
            .send(Command::Skip(s))
            .await
            .map_err(|_| self.stopped())
    }

    /// Returns once everything sent before it is committed.
    pub(crate) async fn flush(&self) -> Result<(), WriteError> {
        let (ack, wait) = oneshot::channel();
        self.tx
            .send(Command::Flush(ack))
            .await
            .map_err(|_| self.stopped())?;
        wait.await.map_err(|_| self.stopped())?
    }
}

/// One batch of changes, in the order they are applied.
#[derive(Default)]
struct Batch {
    outcomes: Vec<Outcome>,
    commands: Vec<Command>,
}

/// What the writer thread keeps between commits.
struct State {
    campaign: String,
    /// The run whose claims these are (`contacts.run_id`).
    run_id: i64,
    slots: Option<Slots>,
    /// Where the ledger is, to name it when it goes away.
    place: String,
    /// One of several workers on the campaign (`run --join`).
    joined: bool,
    /// Set before the channel closes, so that no sender sees it closed without the cause.
    failure: Arc<Mutex<Option<WriteError>>>,
}

fn run(
    conn: &Db,
    file: Option<&LedgerFile>,
    state: &mut State,
    mut rx: mpsc::Receiver<Command>,
    outcomes: &Outcomes,
    runtime: tokio::runtime::Handle,
) -> Result<(), WriteError> {
    let mut open = true;
    while open {
        let mut batch = Batch::default();
        open = gather(&mut rx, outcomes, &runtime, &mut batch.commands);
        // Taken after the commands: an outcome always reaches the list before the claim that
        // follows it (a retry releases, then claims again), so it is applied first.
        batch.outcomes = outcomes.take();
        if batch.outcomes.is_empty() && batch.commands.is_empty() {
            continue;
        }
        let result = file
            .map_or(Ok(()), LedgerFile::check)
            .map_err(WriteError::Gone)
            .and_then(|()| {
                commit_retrying(conn, state, &batch).map_err(|e| sql_error(e, &state.place))
            });
        let mut claims = match &result {
            Ok(claims) => claims.clone().into_iter(),
            Err(_) => Vec::new().into_iter(),
        };
        for cmd in batch.commands {
            match cmd {
                Command::Claim(_, ack) => {
                    let claim = claims.next().unwrap_or_default();
                    let _ = ack.send(result.as_ref().map(|_| claim).map_err(Clone::clone));
                }
                Command::Flush(ack) => {
                    let _ = ack.send(result.as_ref().map(|_| ()).map_err(Clone::clone));
                }
                Command::Skip(_) => {}
            }
        }
        if let Err(e) = &result {
            *state.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.clone());
        }
        result?;
    }
    Ok(())
}

fn sql_error(e: DbError, place: &str) -> WriteError {
    if e.is_lost() {
        WriteError::Lost {
            place: place.to_string(),
            why: e.to_string(),
        }
    } else {
        WriteError::Sql(e.to_string())
    }
}

/// Waits for work, then gathers what is queued and, while nobody waits for the commit, what
/// arrives within OUTCOME_DELAY. Returns false once the channel is closed.
fn gather(
    rx: &mut mpsc::Receiver<Command>,
    outcomes: &Outcomes,
    runtime: &tokio::runtime::Handle,
    pending: &mut Vec<Command>,
) -> bool {
    // Timers and waits are made inside the runtime's context: `block_on` enters it.
    let first = runtime.block_on(async {
        tokio::select! {
            cmd = rx.recv() => cmd.map(Some),
            _ = outcomes.arrived.notified() => Some(None),
        }
    });
    let mut urgent = match first {
        None => return false,
        Some(None) => false,
        Some(Some(cmd)) => {
            let urgent = cmd.is_urgent();
            pending.push(cmd);
            urgent
        }
    };
    let deadline = tokio::time::Instant::now() + OUTCOME_DELAY;
    while pending.len() < BATCH {
        let next = match rx.try_recv() {
            Ok(cmd) => Some(cmd),
            Err(mpsc::error::TryRecvError::Disconnected) => return false,
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
    true
}

/// How often a batch that lost to another worker's transaction is tried again.
const CONFLICT_RETRIES: u32 = 20;

/// `commit`, again while it loses to another worker's transaction (workers claiming the same
/// contacts at once may deadlock; the database rolls one back, which then goes again and finds
/// the contacts taken).
fn commit_retrying(conn: &Db, state: &mut State, batch: &Batch) -> DbResult<Vec<Claim>> {
    let mut tries = 0;
    loop {
        match commit(conn, state, batch) {
            Err(e) if e.is_conflict() && tries < CONFLICT_RETRIES => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(u64::from(tries) * 2));
            }
            other => return other,
        }
    }
}

/// Applies one batch in one transaction; returns how many intents of each claim were claimed.
fn commit(conn: &Db, state: &mut State, batch: &Batch) -> DbResult<Vec<Claim>> {
    let campaign = state.campaign.as_str();
    let mut admitted = Vec::new();
    let tx = conn.transaction(Mode::Write)?;
    let ts = now();
    {
        for o in &batch.outcomes {
            match o.status {
                Some(status) => settle_one(&tx, (campaign, state.run_id), &ts, status, o)?,
                None => release(&tx, (campaign, state.run_id), &ts, o)?,
            }
            let frees = o.status == Some(Status::Failed) || (o.status.is_none() && !o.keep_slot);
            if let Some(slots) = state.slots.as_mut().filter(|_| frees) {
                slots.free(&tx, campaign, &o.key)?;
            }
        }
        for cmd in &batch.commands {
            match cmd {
                Command::Claim(intents, _) => admitted.push(claim(&tx, state, &ts, intents)?),
                Command::Skip(s) => write_skip(&tx, state.campaign.as_str(), &ts, s)?,
                Command::Flush(_) => {}
            }
        }
    }
    tx.commit()?;
    Ok(admitted)
}

/// Claims the intents in order, within the channel's daily budget. A joined worker first
/// leaves to the others, without waiting for their locks, the contacts they have already moved
/// on from the state this run found them in: waiting for a row another worker's transaction
/// holds, while this one holds the channel's lock or rows of its own, deadlocks the two, and
/// the database takes a second to notice.
fn claim(tx: &Tx<'_>, state: &mut State, ts: &str, intents: &[Intent]) -> DbResult<Claim> {
    let campaign = state.campaign.as_str();
    let mut taken = vec![false; intents.len()];
    if state.joined {
        for (at, i) in intents.iter().enumerate() {
            taken[at] = moved_on(tx, campaign, i)?;
        }
    }
    let open: Vec<usize> = (0..intents.len()).filter(|&at| !taken[at]).collect();
    let n = match state.slots.as_mut() {
        Some(slots) => {
            let who: Vec<Claimed<'_>> = open
                .iter()
                .map(|&at| Claimed {
                    key: &intents[at].key,
                    phone: intents[at].phone.as_deref(),
                })
                .collect();
            slots.admit(tx, campaign, ts, &who)?
        }
        None => open.len(),
    };
    // Every intent before the first one the budget refused.
    let admitted = open.get(n).copied().unwrap_or(intents.len());
    let mut elsewhere = Vec::new();
    for (at, i) in intents[..admitted].iter().enumerate() {
        if taken[at] || !claim_one(tx, (campaign, state.run_id), ts, i)? {
            elsewhere.push(at);
        }
    }
    Ok(Claim {
        admitted,
        elsewhere,
    })
}

/// Whether the contact's committed state is no longer the one the run found it in (read
/// without waiting for any lock).
fn moved_on(tx: &Tx<'_>, campaign: &str, i: &Intent) -> DbResult<bool> {
    let now: Option<String> = tx.row(
        "SELECT status FROM contacts WHERE campaign = ?1 AND key = ?2",
        args![campaign, i.key],
        |r| r.get(0),
    )?;
    Ok(now.as_deref() != i.prior.map(Status::as_str))
}

/// A claim holds only while the contact is in the state the run found it in (`?8`; a new
/// contact has none, so a row another worker wrote meanwhile refuses it): it returns a row
/// when it holds.
const CLAIM: &str =
    "INSERT INTO contacts (campaign, key, row_number, phone, status, attempts, updated_at, run_id)
    VALUES (?1, ?2, ?3, ?4, 'sending', ?6, ?5, ?7)
    ON CONFLICT (campaign, key) DO UPDATE SET status = 'sending',
       attempts = contacts.attempts + 1, row_number = excluded.row_number,
       phone = excluded.phone, updated_at = excluded.updated_at, run_id = excluded.run_id
    WHERE contacts.status = ?8
    RETURNING 1";

/// Outcomes change only the contacts this run holds (`run_id` `?1`).
const SETTLE: &str =
    "UPDATE contacts SET status = ?3, reason = ?4, contact_id = COALESCE(?5, contact_id),
       session_id = COALESCE(?6, session_id), message_ids = COALESCE(?7, message_ids),
       queue_id = COALESCE(?8, queue_id), http_status = ?9, error = ?10, updated_at = ?11
    WHERE campaign = ?12 AND key = ?2 AND run_id = ?1";

/// `SETTLE` with the count of the answer's message ids (`message_ids` keeps the first of them).
const SETTLE_COUNTED: &str =
    "UPDATE contacts SET status = ?3, reason = ?4, contact_id = COALESCE(?5, contact_id),
       session_id = COALESCE(?6, session_id), message_ids = COALESCE(?7, message_ids),
       queue_id = COALESCE(?8, queue_id), http_status = ?9, error = ?10, updated_at = ?11,
       message_count = ?13
    WHERE campaign = ?12 AND key = ?2 AND run_id = ?1";

fn settle_one(
    tx: &Tx<'_>,
    run: (&str, i64),
    ts: &str,
    status: Status,
    o: &Outcome,
) -> DbResult<()> {
    let (campaign, run_id) = run;
    let ids = (!o.message_ids.is_empty())
        .then(|| serde_json::to_string(&o.message_ids).unwrap_or_default());
    let status = status.as_str();
    let common = args![
        run_id,
        o.key,
        status,
        o.reason,
        o.contact_id,
        o.session_id,
        ids,
        o.queue_id,
        o.http_status,
        o.error,
        ts,
        campaign,
    ];
    match o.message_count {
        Some(n) => {
            let mut all = common.to_vec();
            all.push(super::db::ToArg::to_arg(&n));
            tx.execute(SETTLE_COUNTED, &all)?
        }
        None => tx.execute(SETTLE, common)?,
    };
    Ok(())
}

/// Claims one contact; false when another worker holds it.
fn claim_one(tx: &Tx<'_>, run: (&str, i64), ts: &str, i: &Intent) -> DbResult<bool> {
    let (campaign, run_id) = run;
    let prior = i.prior.map(Status::as_str);
    Ok(tx
        .row(
            CLAIM,
            args![
                campaign,
                i.key,
                i.row_number,
                i.phone,
                ts,
                i.attempt,
                run_id,
                prior
            ],
            |_| Ok(()),
        )?
        .is_some())
}

/// A claim given back: the request surely never left, the contact goes back to where it was.
fn release(tx: &Tx<'_>, run: (&str, i64), ts: &str, o: &Outcome) -> DbResult<()> {
    let (campaign, run_id) = run;
    match o.prior {
        None => tx.execute(
            "DELETE FROM contacts WHERE campaign = ?1 AND key = ?2 AND run_id = ?3",
            args![campaign, o.key, run_id],
        )?,
        Some(prior) => tx.execute(
            "UPDATE contacts SET status = ?3, updated_at = ?4
             WHERE campaign = ?1 AND key = ?2 AND run_id = ?5",
            args![campaign, o.key, prior.as_str(), ts, run_id],
        )?,
    };
    Ok(())
}

fn write_skip(tx: &Tx<'_>, campaign: &str, ts: &str, s: &Skip) -> DbResult<()> {
    match s {
        Skip::Duplicate {
            key,
            row_number,
            first_row,
        } => tx.execute(
            "INSERT INTO duplicates (campaign, row_number, key, first_row, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            args![campaign, row_number, key, first_row, ts],
        )?,
        Skip::Contact {
            key,
            row_number,
            phone,
            reason,
            error,
        } => tx.execute(
            "INSERT INTO contacts (campaign, key, row_number, phone, status, reason, error, updated_at)
             VALUES (?1, ?2, ?3, ?4, 'skipped', ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            args![campaign, key, row_number, phone, reason, error, ts],
        )?,
    };
    Ok(())
}
