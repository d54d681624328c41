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
pub(crate) use super::changes::{Barred, Claim, Intent, Outcome, Skip};
use super::db::{Arg, DbError, Engine, Mode, Sql, Tx};
use super::keys::Skipped;
use super::lock::{LedgerFile, RunLock};
use super::{Db, DbResult, Status, now};

/// Why the writer could not commit.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum WriteError {
    /// The ledger file was deleted, moved or replaced while the run held it.
    #[error("{0}")]
    Gone(String),
    #[error("cannot write the ledger: {0}")]
    Sql(String),
    /// The database went away (its server stopped, the connection broke).
    /// The whole message (`workers::lost`).
    #[error("{0}")]
    Lost(String),
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
    /// when it is known, and wait out the campaign's `cooldown`.
    pub(crate) fn start(
        lock: &RunLock,
        campaign: &str,
        run_id: i64,
        channel: Option<String>,
        cooldown: Option<Duration>,
    ) -> anyhow::Result<Writer> {
        let conn = super::connect_by_index(&lock.place())?;
        if let Db::Sqlite(c) = &conn {
            // A page the run rewrites many times is copied into the database file once per
            // checkpoint: a larger log (40 MB) copies it less often. Every commit is still synced.
            c.pragma_update(None, "wal_autocheckpoint", 10_000)?;
        }
        let watch = lock.watch();
        let place = lock.place().to_string();
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
                    place,
                    joined,
                    slots: channel.map(Slots::new),
                    cooldown,
                    failure: cause,
                };
                let inbox = Inbox {
                    rx,
                    outcomes: &waiting,
                    runtime,
                };
                run(&conn, watch.as_ref(), &mut state, inbox)
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
    /// Where the ledger is, for messages.
    place: String,
    /// One of several workers on the campaign (`run --join`).
    joined: bool,
    slots: Option<Slots>,
    /// The campaign's cool-down (`contacts.cooldown`).
    cooldown: Option<Duration>,
    /// Set before the channel closes, so that no sender sees it closed without the cause.
    failure: Arc<Mutex<Option<WriteError>>>,
}

/// What the writer thread waits on: commands, and outcomes pushed beside them.
struct Inbox<'a> {
    rx: mpsc::Receiver<Command>,
    outcomes: &'a Outcomes,
    runtime: tokio::runtime::Handle,
}

fn run(
    conn: &Db,
    file: Option<&LedgerFile>,
    state: &mut State,
    inbox: Inbox<'_>,
) -> Result<(), WriteError> {
    let Inbox {
        mut rx,
        outcomes,
        runtime,
    } = inbox;
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
        WriteError::Lost(super::workers::lost(&place, &e.to_string()))
    } else if e.is_disk_full() {
        WriteError::Sql(format!(
            "{e} — free some space on the disk that holds {place}, then run again: every claim and outcome before this one is recorded"
        ))
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
    let campaign = state.campaign.clone();
    let run = (campaign.as_str(), state.run_id);
    let tx = conn.transaction(Mode::Write)?;
    let ts = now();
    // The message ids as the ledger keeps them (a JSON array), made before the statements that
    // borrow them.
    let ids: Vec<Option<String>> = batch
        .outcomes
        .iter()
        .map(|o| {
            (!o.message_ids.is_empty())
                .then(|| serde_json::to_string(&o.message_ids).unwrap_or_default())
        })
        .collect();
    let bulk = tx.engine() == Engine::Postgres;
    if bulk {
        let settled: Vec<(&Outcome, Option<&str>)> = batch
            .outcomes
            .iter()
            .zip(&ids)
            .filter(|(o, _)| o.status.is_some())
            .map(|(o, ids)| (o, ids.as_deref()))
            .collect();
        super::bulk::settle(&tx, run, &ts, &settled)?;
    }
    let mut pipe = Pipe::new(&tx);
    for (o, ids) in batch.outcomes.iter().zip(&ids) {
        if !(bulk && o.status.is_some()) {
            let (sql, args) = outcome_statement(run, &ts, o, ids.as_deref());
            pipe.push(sql, args)?;
        }
        let frees = o.status == Some(Status::Failed) || (o.status.is_none() && !o.keep_slot);
        if let Some(slots) = state.slots.as_mut().filter(|_| frees) {
            pipe.flush()?;
            slots.free(&tx, run.0, &o.key)?;
        }
    }
    let mut claims = Vec::new();
    for cmd in &batch.commands {
        match cmd {
            Command::Claim(intents, _) => {
                pipe.flush()?;
                claims.push(claim(&tx, state, &ts, intents)?);
            }
            Command::Skip(s) => {
                let (sql, args) = skip_statement(run.0, &ts, s);
                pipe.push(sql, args)?;
            }
            Command::Flush(_) => {}
        }
    }
    pipe.flush()?;
    tx.commit()?;
    Ok(claims)
}

/// Runs of one statement with different arguments, sent together (`Sql::each`: on PostgreSQL
/// one round trip for the run rather than one per row), in the order they were pushed.
struct Pipe<'t, 'a> {
    tx: &'t Tx<'t>,
    sql: &'static str,
    sets: Vec<Vec<Arg<'a>>>,
}

impl<'t, 'a> Pipe<'t, 'a> {
    fn new(tx: &'t Tx<'t>) -> Self {
        Pipe {
            tx,
            sql: "",
            sets: Vec::new(),
        }
    }

    fn push(&mut self, sql: &'static str, args: Vec<Arg<'a>>) -> DbResult<()> {
        if sql != self.sql {
            self.flush()?;
            self.sql = sql;
        }
        self.sets.push(args);
        Ok(())
    }

    fn flush(&mut self) -> DbResult<()> {
        if !self.sets.is_empty() {
            self.tx.each(self.sql, &self.sets)?;
            self.sets.clear();
        }
        Ok(())
    }
}

/// Claims one batch of intents, within the channel's daily limit. A joined worker first reads,
/// without waiting for any lock, which contacts another worker moved on since it looked: claiming
/// those would wait for that worker's transaction, and under a daily limit deadlock with it.
fn claim(tx: &Tx<'_>, state: &mut State, ts: &str, intents: &[Intent]) -> DbResult<Claim> {
    let campaign = state.campaign.as_str();
    let taken = if state.joined {
        super::bulk::moved_on(tx, campaign, intents)?
    } else {
        vec![false; intents.len()]
    };
    let free: Vec<usize> = (0..intents.len()).filter(|&at| !taken[at]).collect();
    let (mut barred, open) = bar(tx, state, intents, &free)?;
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
    barred.retain(|&(at, _)| at < admitted);
    let tried: Vec<&Intent> = open[..n].iter().map(|&at| &intents[at]).collect();
    // On PostgreSQL, contacts new to the ledger are claimed in one statement (`bulk.rs`).
    let pg = tx.engine() == Engine::Postgres;
    let (new, known): (Vec<usize>, Vec<usize>) =
        (0..tried.len()).partition(|&at| pg && tried[at].prior.is_none());
    let mut held = vec![false; tried.len()];
    if !new.is_empty() {
        let intents: Vec<&Intent> = new.iter().map(|&at| tried[at]).collect();
        let got = super::bulk::claim_new(tx, (campaign, state.run_id), ts, &intents)?;
        for (&at, h) in new.iter().zip(got) {
            held[at] = h;
        }
    }
    if !known.is_empty() {
        let sets: Vec<Vec<Arg<'_>>> = known
            .iter()
            .map(|&at| {
                let i = tried[at];
                vec![
                    Arg::Text(campaign),
                    Arg::Text(&i.key),
                    int(i.row_number),
                    text(i.phone.as_deref()),
                    Arg::Text(ts),
                    int(i.attempt),
                    Arg::Int(state.run_id),
                    text(i.prior.map(Status::as_str)),
                ]
            })
            .collect();
        for (&at, h) in known.iter().zip(tx.each(CLAIM, &sets)?) {
            held[at] = h;
        }
    }
    let mut elsewhere: Vec<usize> = (0..admitted).filter(|&at| taken[at]).collect();
    elsewhere.extend(
        open[..n]
            .iter()
            .zip(&held)
            .filter(|(_, h)| !**h)
            .map(|(&at, _)| at),
    );
    elsewhere.sort_unstable();
    record_barred(tx, state, ts, intents, &barred)?;
    Ok(Claim {
        admitted,
        elsewhere,
        barred,
    })
}

/// Intents barred, by index, and why.
type Bars = Vec<(usize, Barred)>;

/// Whether another contact of any campaign messaged a phone since `?2` (the states that count
/// as messaging it are those of `Ledger::messaged_since`).
const COOLING: &str = "SELECT 1 FROM contacts WHERE phone = ?1 AND updated_at >= ?2
    AND (status = 'sending' OR status = 'sent' OR status = 'queued' OR status = 'unknown')
    AND NOT (campaign = ?3 AND key = ?4) LIMIT 1";

/// Which of the `free` intents (indices into `all`) the ledger bars now though the run's
/// pre-flight did not, and which stay open: a phone put on the suppression list since (`listen`,
/// `optouts add`), or messaged by another campaign's run within this campaign's cool-down.
/// SQLite serialises write transactions, so a check and the claim after it are one step; on
/// PostgreSQL a campaign with a cool-down takes the ledger's phone lock for the transaction. An
/// unknown contact sent again is not held to its cool-down (its own earlier attempt keeps its
/// phone cooling).
fn bar(tx: &Tx<'_>, state: &State, all: &[Intent], free: &[usize]) -> DbResult<(Bars, Vec<usize>)> {
    let intents: Vec<&Intent> = free.iter().map(|&at| &all[at]).collect();
    let bars = barred(tx, state, &intents)?;
    let (mut barred, mut open) = (Vec::new(), Vec::new());
    for (&at, bar) in free.iter().zip(bars) {
        match bar {
            Some(b) => barred.push((at, b)),
            None => open.push(at),
        }
    }
    Ok((barred, open))
}

/// [`bar`]'s verdict on each of `intents`.
fn barred(tx: &Tx<'_>, state: &State, intents: &[&Intent]) -> DbResult<Vec<Option<Barred>>> {
    let mut out = vec![None; intents.len()];
    let phoned: Vec<usize> = (0..intents.len())
        .filter(|&i| intents[i].phone.is_some())
        .collect();
    if phoned.is_empty() {
        return Ok(out);
    }
    let sets: Vec<Vec<Arg<'_>>> = phoned
        .iter()
        .map(|&i| vec![text(intents[i].phone.as_deref())])
        .collect();
    for (&i, hit) in phoned
        .iter()
        .zip(tx.each(super::optouts::OPTED_OUT, &sets)?)
    {
        if hit {
            out[i] = Some(Barred::OptedOut);
        }
    }
    let Some(cooldown) = state.cooldown else {
        return Ok(out);
    };
    if tx.engine() == Engine::Postgres {
        let key = super::postgres::Target::lock_key("phones");
        tx.execute("SELECT pg_advisory_xact_lock(?1)", &[Arg::Int(key)])?;
    }
    let since = super::ago(cooldown);
    let due: Vec<usize> = phoned
        .into_iter()
        .filter(|&i| out[i].is_none())
        .filter(|&i| !matches!(intents[i].prior, Some(Status::Unknown | Status::Sending)))
        .collect();
    let sets: Vec<Vec<Arg<'_>>> = due
        .iter()
        .map(|&i| {
            vec![
                text(intents[i].phone.as_deref()),
                Arg::Text(&since),
                Arg::Text(&state.campaign),
                Arg::Text(&intents[i].key),
            ]
        })
        .collect();
    for (&i, hit) in due.iter().zip(tx.each(COOLING, &sets)?) {
        if hit {
            out[i] = Some(Barred::Cooling);
        }
    }
    Ok(out)
}

/// Records the barred contacts: one that opted out is `skipped: opted_out`, as the pre-flight
/// would have recorded it (a contact the ledger holds keeps its state); one still cooling is
/// recorded nowhere (deferred). A retry claimed again kept its budget slot while it waited:
/// it is freed. A first attempt took none, and the slot an earlier run's attempt holds (an
/// `unknown` one's) stays.
fn record_barred(
    tx: &Tx<'_>,
    state: &mut State,
    ts: &str,
    intents: &[Intent],
    barred: &[(usize, Barred)],
) -> DbResult<()> {
    for &(at, bar) in barred {
        let i = &intents[at];
        if bar == Barred::OptedOut {
            let skip = Skip::Contact {
                key: i.key.clone(),
                row_number: i.row_number,
                phone: i.phone.clone(),
                reason: Skipped::OptedOut.as_str().to_string(),
                error: None,
            };
            let (sql, args) = skip_statement(&state.campaign, ts, &skip);
            tx.execute(sql, &args)?;
        }
        if i.attempt > 1
            && let Some(slots) = state.slots.as_mut()
        {
            slots.free(tx, &state.campaign, &i.key)?;
        }
    }
    Ok(())
}

/// A claim holds only while the contact is in the state the run found it in (`?8`; a new
/// contact has none, so a row another worker wrote meanwhile refuses it): it changes a row
/// when it holds.
const CLAIM: &str =
    "INSERT INTO contacts (campaign, key, row_number, phone, status, attempts, updated_at, run_id)
    VALUES (?1, ?2, ?3, ?4, 'sending', ?6, ?5, ?7)
    ON CONFLICT (campaign, key) DO UPDATE SET status = 'sending',
       attempts = contacts.attempts + 1, row_number = excluded.row_number,
       phone = excluded.phone, updated_at = excluded.updated_at, run_id = excluded.run_id
    WHERE contacts.status = ?8";

/// Outcomes change only the contacts this run holds (`run_id` `?1`). `?13` is the count of the
/// answer's message ids, when known (`message_ids` keeps the first of them).
const SETTLE: &str =
    "UPDATE contacts SET status = ?3, reason = ?4, contact_id = COALESCE(?5, contact_id),
       session_id = COALESCE(?6, session_id), message_ids = COALESCE(?7, message_ids),
       queue_id = COALESCE(?8, queue_id), http_status = ?9, error = ?10, updated_at = ?11,
       message_count = COALESCE(?13, message_count)
    WHERE campaign = ?12 AND key = ?2 AND run_id = ?1";

/// The statement that records an outcome, with its arguments: settled (`SETTLE`), or given
/// back (the claim surely never left: the contact returns to where it was).
fn outcome_statement<'a>(
    run: (&'a str, i64),
    ts: &'a str,
    o: &'a Outcome,
    ids: Option<&'a str>,
) -> (&'static str, Vec<Arg<'a>>) {
    let (campaign, run_id) = run;
    let Some(status) = o.status else {
        return match o.prior {
            None => (
                "DELETE FROM contacts WHERE campaign = ?1 AND key = ?2 AND run_id = ?3",
                vec![Arg::Text(campaign), Arg::Text(&o.key), Arg::Int(run_id)],
            ),
            Some(prior) => (
                "UPDATE contacts SET status = ?3, updated_at = ?4
                 WHERE campaign = ?1 AND key = ?2 AND run_id = ?5",
                vec![
                    Arg::Text(campaign),
                    Arg::Text(&o.key),
                    Arg::Text(prior.as_str()),
                    Arg::Text(ts),
                    Arg::Int(run_id),
                ],
            ),
        };
    };
    let settle = vec![
        Arg::Int(run_id),
        Arg::Text(&o.key),
        Arg::Text(status.as_str()),
        text(o.reason.as_deref()),
        text(o.contact_id.as_deref()),
        text(o.session_id.as_deref()),
        text(ids),
        text(o.queue_id.as_deref()),
        o.http_status.map_or(Arg::Null, int),
        text(o.error.as_deref()),
        Arg::Text(ts),
        Arg::Text(campaign),
        o.message_count.map_or(Arg::Null, int),
    ];
    (SETTLE, settle)
}

/// The statement that records a row not sent.
fn skip_statement<'a>(campaign: &'a str, ts: &'a str, s: &'a Skip) -> (&'static str, Vec<Arg<'a>>) {
    match s {
        Skip::Duplicate {
            key,
            row_number,
            first_row,
        } => (
            "INSERT INTO duplicates (campaign, row_number, key, first_row, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            vec![
                Arg::Text(campaign),
                int(*row_number),
                Arg::Text(key),
                int(*first_row),
                Arg::Text(ts),
            ],
        ),
        Skip::Contact {
            key,
            row_number,
            phone,
            reason,
            error,
        } => (
            "INSERT INTO contacts (campaign, key, row_number, phone, status, reason, error, updated_at)
             VALUES (?1, ?2, ?3, ?4, 'skipped', ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            vec![
                Arg::Text(campaign),
                Arg::Text(key),
                int(*row_number),
                text(phone.as_deref()),
                Arg::Text(reason),
                text(error.as_deref()),
                Arg::Text(ts),
            ],
        ),
    }
}

/// A text argument, NULL when absent.
fn text(v: Option<&str>) -> Arg<'_> {
    v.map_or(Arg::Null, Arg::Text)
}

/// An integer argument.
fn int(n: impl TryInto<i64>) -> Arg<'static> {
    Arg::Int(n.try_into().unwrap_or(i64::MAX))
}
