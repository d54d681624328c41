//! The dispatcher: claims contacts in batches no larger than the free sender slots, sends them
//! with bounded concurrency, applies the retry policy, and reports every outcome to the ledger
//! writer. Stops cleanly on a signal, on `--limit`, on refused credentials or on a failure streak.

pub mod client;
pub mod feed;
pub mod lead;
pub mod rate;
pub mod retry;
pub mod window;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::ledger::Status;
use crate::ledger::writer::{Intent, Outcome, WriterHandle};
use client::{Client, Connection};
use feed::{Inbox, Job, Work};
use retry::{Attempt, Verdict, backoff, classify};

/// Live counters, read by the progress display and the summary.
#[derive(Debug, Default)]
pub struct Stats {
    pub sent: AtomicU64,
    pub queued: AtomicU64,
    pub failed: AtomicU64,
    pub unknown: AtomicU64,
    pub skipped: AtomicU64,
    /// Rows the ledger already settled before this run.
    pub already: AtomicU64,
    /// Rows `contacts.where` leaves out.
    pub filtered: AtomicU64,
    pub retries: AtomicU64,
    pub in_flight: AtomicU64,
}

impl Stats {
    /// Rows accounted for so far, for the progress bar.
    pub fn done(&self) -> u64 {
        [
            &self.sent,
            &self.queued,
            &self.failed,
            &self.unknown,
            &self.skipped,
            &self.already,
            &self.filtered,
        ]
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .sum()
    }
    /// Contacts this run sent a request for and settled.
    pub fn requests(&self) -> u64 {
        [&self.sent, &self.queued, &self.failed, &self.unknown]
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .sum()
    }
    /// The counter of a state (`sending` counts the requests in flight).
    fn counter(&self, s: Status) -> &AtomicU64 {
        match s {
            Status::Sent => &self.sent,
            Status::Queued => &self.queued,
            Status::Failed => &self.failed,
            Status::Unknown => &self.unknown,
            Status::Skipped => &self.skipped,
            Status::Sending => &self.in_flight,
        }
    }
    pub fn get(&self, s: Status) -> u64 {
        self.counter(s).load(Ordering::Relaxed)
    }
    /// Counts a settled outcome (`sending` is not one, and is left to the in-flight count).
    fn bump(&self, s: Status) {
        if s != Status::Sending {
            self.counter(s).fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Why a run ended before the end of the file.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    Interrupted,
    Limit,
    /// The send window closed.
    Window,
    Unauthorized(String),
    FailureStreak(u32),
    Broken(String),
}

pub struct Settings {
    pub concurrency: usize,
    pub retries: u32,
    pub backoff: Duration,
    pub max_consecutive_failures: u32,
    pub limit: Option<u64>,
    pub rate: Option<crate::campaign::Rate>,
    /// When the send window closes: stop claiming then.
    pub deadline: Option<Instant>,
    /// How long in-flight requests may take to finish after a stop.
    pub drain: Duration,
}

/// What the dispatcher reports at the end.
#[derive(Debug)]
pub struct Report {
    pub stop: Option<Stop>,
    /// Some contact still needs sending (false when the file was finished).
    pub work_remains: bool,
    /// Requests still in flight when the drain time ran out (left `sending`).
    pub abandoned: u64,
    pub elapsed: Duration,
}

struct Shared {
    client: Client,
    writer: WriterHandle,
    stats: Arc<Stats>,
    cancel: CancellationToken,
    stop: Mutex<Option<Stop>>,
    streak: AtomicU32,
    /// While set, no sender starts a request before this instant (a 429 slows everyone).
    pause_until: Mutex<Option<Instant>>,
    retries: u32,
    backoff: Duration,
    max_streak: u32,
    limiter: Option<governor::DefaultDirectRateLimiter>,
}

impl Shared {
    /// Records why the run ends (the first reason wins).
    fn record_stop(&self, stop: Stop) {
        let mut s = self.stop.lock().unwrap_or_else(|e| e.into_inner());
        if s.is_none() {
            *s = Some(stop);
        }
    }

    /// Records why, and stops claiming: claimed contacts not yet sent are given back.
    fn halt(&self, stop: Stop) {
        self.record_stop(stop);
        self.cancel.cancel();
    }

    async fn wait_pause(&self) {
        loop {
            let until = *self.pause_until.lock().unwrap_or_else(|e| e.into_inner());
            match until {
                Some(t) if t > Instant::now() => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(t.into()) => {}
                        _ = self.cancel.cancelled() => return,
                    }
                }
                _ => return,
            }
        }
    }

    /// Waits out a 429 pause and the rate ceiling; false when the run is stopping.
    async fn ready(&self) -> bool {
        self.wait_pause().await;
        if let Some(l) = &self.limiter {
            tokio::select! {
                _ = l.until_ready() => {}
                _ = self.cancel.cancelled() => {}
            }
        }
        !self.cancel.is_cancelled()
    }

    /// Whether a request may leave right now (takes a rate permit when it may).
    fn ready_now(&self) -> bool {
        let paused = self
            .pause_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t > Instant::now());
        !paused && self.limiter.as_ref().is_none_or(|l| l.check().is_ok())
    }

    fn pause(&self, d: Duration) {
        let mut p = self.pause_until.lock().unwrap_or_else(|e| e.into_inner());
        let t = Instant::now() + d;
        if p.is_none_or(|cur| cur < t) {
            *p = Some(t);
        }
    }
}

/// The claim released: the contact goes back to the state it had before this run took it.
fn released(job: &Job) -> Outcome {
    Outcome {
        key: job.key.clone(),
        status: None,
        prior: job.prior,
        ..Default::default()
    }
}

fn intent(job: &Job, attempt: u32) -> Intent {
    Intent {
        key: job.key.clone(),
        row_number: job.row_number,
        phone: job.phone.clone(),
        attempt,
    }
}

/// Sends one claimed contact to completion: attempts, retries, outcome.
async fn deliver(shared: &Shared, conn: &mut Connection, job: Job) {
    let mut attempts = 1u32;
    let outcome = loop {
        if shared.cancel.is_cancelled() && attempts == 1 {
            // Stopped between the claim and the send: nothing left, so nothing is owed.
            break released(&job);
        }
        let attempt = conn.send(job.body.clone()).await;
        let (status, reason, error) = match classify(&attempt) {
            Verdict::Sent {
                contact_id,
                session_id,
                message_ids,
            } => {
                break outcome(&job, Status::Sent, &attempt, None, None, |o| {
                    o.contact_id = contact_id;
                    o.session_id = session_id;
                    o.message_ids = message_ids;
                });
            }
            Verdict::Queued { queue_id } => {
                break outcome(&job, Status::Queued, &attempt, None, None, |o| {
                    o.queue_id = Some(queue_id);
                });
            }
            Verdict::Failed { reason, error } => (Status::Failed, reason, error),
            Verdict::Unknown { reason, error } => (Status::Unknown, reason, error),
            Verdict::Unauthorized { error } => {
                shared.halt(Stop::Unauthorized(error));
                // The API refused the request outright: nothing was sent.
                break released(&job);
            }
            Verdict::Retry {
                reason,
                error,
                retry_after,
            } => {
                if reason == "http_429" {
                    shared.pause(retry_after.unwrap_or(shared.backoff));
                }
                if attempts > shared.retries {
                    let plural = if attempts == 1 { "" } else { "s" };
                    let error = format!("{error} (after {attempts} attempt{plural})");
                    (Status::Failed, reason, error)
                } else {
                    // The API surely did not act. Give the contact back while waiting, so that
                    // a crash during the wait leaves it unsent rather than `unknown`.
                    if shared.writer.outcome(released(&job)).is_err() {
                        return shared.halt(Stop::Broken("the ledger writer stopped".into()));
                    }
                    shared.stats.retries.fetch_add(1, Ordering::Relaxed);
                    let wait = backoff(shared.backoff, attempts, retry_after);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shared.cancel.cancelled() => return,
                    }
                    if !shared.ready().await {
                        return;
                    }
                    attempts += 1;
                    if let Err(e) = shared.writer.claim(vec![intent(&job, attempts)]).await {
                        return shared.halt(Stop::Broken(e));
                    }
                    continue;
                }
            }
        };
        break outcome(&job, status, &attempt, Some(reason), Some(error), |_| {});
    };
    if let Some(status) = outcome.status {
        shared.stats.bump(status);
        if status == Status::Failed || status == Status::Unknown {
            let n = shared.streak.fetch_add(1, Ordering::Relaxed) + 1;
            if shared.max_streak > 0 && n >= shared.max_streak {
                shared.halt(Stop::FailureStreak(n));
            }
        } else {
            shared.streak.store(0, Ordering::Relaxed);
        }
    }
    if shared.writer.outcome(outcome).is_err() {
        shared.halt(Stop::Broken("the ledger writer stopped".into()));
    }
}

fn outcome(
    job: &Job,
    status: Status,
    attempt: &Attempt,
    reason: Option<String>,
    error: Option<String>,
    fill: impl FnOnce(&mut Outcome),
) -> Outcome {
    let mut o = Outcome {
        key: job.key.clone(),
        status: Some(status),
        prior: job.prior,
        reason,
        error,
        http_status: match attempt {
            Attempt::Response { status, .. } => Some(*status),
            _ => None,
        },
        ..Default::default()
    };
    fill(&mut o);
    o
}

type ClaimFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

/// Claimed contacts waiting for a sender, shared by the dispatcher (which fills it) and the
/// senders (which take from it).
struct Ready {
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Job>>,
    /// Jobs in the queue.
    len: AtomicUsize,
    /// Requests finished so far.
    finished: AtomicU64,
    /// Rung after every finished request: the dispatcher may have room to claim more.
    done: Notify,
}

/// One of `concurrency` long-lived senders: takes the next claimed contact, delivers it, and
/// goes on, without waiting for the dispatcher in between.
async fn sender(shared: Arc<Shared>, ready: Arc<Ready>) {
    let mut conn = shared.client.connection();
    loop {
        let job = ready.rx.lock().await.recv().await;
        let Some(job) = job else { return };
        // In flight before it leaves the queue's count, so that no moment counts it nowhere.
        shared.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        ready.len.fetch_sub(1, Ordering::Relaxed);
        deliver(&shared, &mut conn, job).await;
        shared.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        ready.finished.fetch_add(1, Ordering::Relaxed);
        ready.done.notify_one();
    }
}

/// Runs the dispatcher until the feed is exhausted or the run stops.
pub async fn dispatch(
    client: Client,
    writer: WriterHandle,
    mut work: Inbox,
    settings: Settings,
    stats: Arc<Stats>,
    cancel: CancellationToken,
) -> Report {
    let started = Instant::now();
    let shared = Arc::new(Shared {
        client,
        writer: writer.clone(),
        stats: stats.clone(),
        cancel: cancel.clone(),
        stop: Mutex::new(None),
        streak: AtomicU32::new(0),
        pause_until: Mutex::new(None),
        retries: settings.retries,
        backoff: settings.backoff,
        max_streak: settings.max_consecutive_failures,
        limiter: settings.rate.map(rate::limiter),
    });
    let window_timer = settings.deadline.map(|deadline| {
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.into()) => shared.halt(Stop::Window),
                _ = shared.cancel.cancelled() => {}
            }
        })
    });
    let window = settings.concurrency.max(1);
    let (ready_tx, ready_rx) = mpsc::unbounded_channel();
    let queue = Arc::new(Ready {
        rx: tokio::sync::Mutex::new(ready_rx),
        len: AtomicUsize::new(0),
        finished: AtomicU64::new(0),
        done: Notify::new(),
    });
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..window {
        senders.spawn(sender(shared.clone(), queue.clone()));
    }
    // How many contacts a claim carries, and so how far claims run ahead (see `lead`).
    let mut lead = lead::Lead::new(window, started);
    let limit_reached = |claimed: u64| settings.limit.is_some_and(|l| claimed >= l);
    // Contacts taken from the feed to send (for --limit).
    let mut taken: u64 = 0;
    let mut feed_done = false;
    // Taken and paced, waiting for the next claim.
    let mut paced: Vec<Job> = Vec::new();
    // Taken from the feed, not claimed yet (waiting for the pace, or for room).
    let mut held: Option<Job> = None;
    // The claim being committed: its jobs and the commit's acknowledgement.
    let mut claiming: Option<(Vec<Job>, ClaimFuture)> = None;

    loop {
        lead.observe(queue.finished.load(Ordering::Relaxed), Instant::now());
        let stopping = cancel.is_cancelled();
        // Take the next contacts while the current ones send, each once the pace allows it:
        // taken-but-unfinished contacts stay within `lead.unsettled()`, so a crash leaves at
        // most that many `unknown`.
        let room = |paced: usize, claiming: usize, taken: u64| {
            let in_flight = stats.in_flight.load(Ordering::Relaxed) as usize;
            let queued = queue.len.load(Ordering::Relaxed);
            lead.unsettled()
                .saturating_sub(queued + in_flight + paced + claiming)
                .min(
                    settings
                        .limit
                        .map_or(usize::MAX, |l| l.saturating_sub(taken) as usize),
                )
        };
        let claiming_len = claiming.as_ref().map_or(0, |(jobs, _)| jobs.len());
        while !stopping && room(paced.len(), claiming_len, taken) > 0 {
            let job = match held.take() {
                Some(job) => job,
                None => match work.try_next() {
                    Ok(w) => match settle(&stats, &writer, w).await {
                        Ok(Some(job)) => job,
                        Ok(None) => continue,
                        Err(msg) => {
                            shared.halt(Stop::Broken(msg));
                            break;
                        }
                    },
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        feed_done = true;
                        break;
                    }
                },
            };
            if !shared.ready_now() {
                held = Some(job);
                break;
            }
            taken += 1;
            paced.push(job);
        }
        // One claim at a time; it takes every paced contact, once they make a batch or the
        // senders are about to run out (or no more are coming soon).
        let ripe = paced.len() >= lead.batch()
            || queue.len.load(Ordering::Relaxed) < lead.batch()
            || held.is_some()
            || feed_done
            || limit_reached(taken);
        if ripe && claiming.is_none() && !paced.is_empty() && !cancel.is_cancelled() {
            let batch = std::mem::take(&mut paced);
            let intents = batch.iter().map(|j| intent(j, 1)).collect();
            let w = writer.clone();
            claiming = Some((batch, Box::pin(async move { w.claim(intents).await })));
            continue;
        }
        let stopping = cancel.is_cancelled();
        let done_taking = stopping || feed_done && held.is_none() || limit_reached(taken);
        if done_taking && claiming.is_none() && (paced.is_empty() || stopping) {
            break;
        }
        let open = !stopping && room(paced.len(), claiming_len, taken) > 0;
        let want_feed = open && held.is_none() && !feed_done;
        let want_pace = open && held.is_some();
        tokio::select! {
            biased;
            _ = cancel.cancelled(), if !stopping => {}
            acked = async { match claiming.as_mut() { Some((_, f)) => f.await, None => Ok(()) } }, if claiming.is_some() => {
                let Some((jobs, _)) = claiming.take() else { continue };
                match acked {
                    Ok(()) => {
                        queue.len.fetch_add(jobs.len(), Ordering::Relaxed);
                        for job in jobs {
                            // The senders outlive the dispatcher's loop: the queue is open.
                            let _ = ready_tx.send(job);
                        }
                    }
                    Err(e) => {
                        shared.halt(Stop::Broken(e));
                        held = jobs.into_iter().next();
                    }
                }
            }
            _ = queue.done.notified() => {}
            w = work.next(), if want_feed => match w {
                None => feed_done = true,
                Some(w) => match settle(&stats, &writer, w).await {
                    Ok(job) => held = job,
                    Err(msg) => shared.halt(Stop::Broken(msg)),
                },
            },
            paced_ok = shared.ready(), if want_pace => {
                if paced_ok && let Some(job) = held.take() {
                    taken += 1;
                    paced.push(job);
                }
            }
        }
    }
    // No more claims: the senders finish what is queued, and stop.
    drop(ready_tx);
    if cancel.is_cancelled() {
        // Claimed contacts that have not left are given back at once: nothing was sent to them,
        // and the senders may still be busy with requests in flight until the drain time ends.
        // (With the queue closed, a sender waiting on it lets go of the lock at once.)
        let mut rx = queue.rx.lock().await;
        while let Ok(job) = rx.try_recv() {
            queue.len.fetch_sub(1, Ordering::Relaxed);
            let _ = writer.outcome(released(&job));
        }
    }
    // Does any contact remain to be sent? (A stop, the limit, or the file's end.)
    let mut work_remains = held.is_some() || !paced.is_empty();
    if !work_remains && !feed_done && cancel.is_cancelled() {
        work_remains = work.next().await.is_some();
    } else if !work_remains && !feed_done {
        // The limit: settle what needs no send, until a contact to send shows up.
        loop {
            let next = tokio::select! {
                biased;
                _ = cancel.cancelled() => { work_remains = true; break }
                w = work.next() => w,
            };
            let Some(next) = next else { break };
            match settle(&stats, &writer, next).await {
                Ok(Some(_)) => {
                    work_remains = true;
                    break;
                }
                Ok(None) => {}
                Err(msg) => {
                    shared.halt(Stop::Broken(msg));
                    work_remains = true;
                    break;
                }
            }
        }
    }
    if work_remains && limit_reached(taken) {
        // Not an interruption: the contacts already claimed still go out.
        shared.record_stop(Stop::Limit);
    }
    drop(work);
    // Let in-flight requests finish; once the run is stopping, only for `drain`.
    let mut drain_until: Option<Instant> = None;
    loop {
        if drain_until.is_none() && cancel.is_cancelled() {
            drain_until = Some(Instant::now() + settings.drain);
        }
        let until = drain_until.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            r = senders.join_next() => if r.is_none() { break },
            _ = cancel.cancelled(), if drain_until.is_none() => {}
            _ = tokio::time::sleep_until(until.into()), if drain_until.is_some() => break,
        }
    }
    // Each sender still running holds one request the drain time ran out on.
    let abandoned = stats.in_flight.load(Ordering::Relaxed);
    senders.abort_all();
    if let Some(t) = window_timer {
        t.abort();
    }
    let _ = writer.flush().await;

    let mut stop = shared
        .stop
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if stop.is_none() && cancel.is_cancelled() {
        stop = Some(Stop::Interrupted);
    }
    Report {
        work_remains: work_remains || abandoned > 0,
        stop,
        abandoned,
        elapsed: started.elapsed(),
    }
}

/// Handles work that needs no request: returns the job to send, or why the run must stop.
async fn settle(stats: &Stats, writer: &WriterHandle, work: Work) -> Result<Option<Job>, String> {
    match work {
        Work::Send(job) => return Ok(Some(job)),
        Work::Done(n) => stats.already.fetch_add(n, Ordering::Relaxed),
        Work::Filtered => stats.filtered.fetch_add(1, Ordering::Relaxed),
        Work::Record(skip) => {
            writer.skip(skip).await?;
            stats.skipped.fetch_add(1, Ordering::Relaxed)
        }
        Work::Broken(msg) => return Err(msg),
    };
    Ok(None)
}
