//! The dispatcher: claims contacts in batches no larger than the free sender slots, sends them
//! with bounded concurrency, applies the retry policy, and reports every outcome to the ledger
//! writer. Stops cleanly on a signal, on `--limit`, on refused credentials or on a failure streak.

pub mod client;
pub mod feed;
pub mod rate;
pub mod retry;
pub mod window;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::ledger::Status;
use crate::ledger::writer::{Intent, Outcome, WriterHandle};
use client::Client;
use feed::{Job, Work};
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
    pub fn get(&self, s: Status) -> u64 {
        match s {
            Status::Sent => &self.sent,
            Status::Queued => &self.queued,
            Status::Failed => &self.failed,
            Status::Unknown => &self.unknown,
            Status::Skipped => &self.skipped,
            Status::Sending => &self.in_flight,
        }
        .load(Ordering::Relaxed)
    }
    fn bump(&self, s: Status) {
        let c = match s {
            Status::Sent => &self.sent,
            Status::Queued => &self.queued,
            Status::Failed => &self.failed,
            Status::Unknown => &self.unknown,
            Status::Skipped => &self.skipped,
            Status::Sending => return,
        };
        c.fetch_add(1, Ordering::Relaxed);
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
    fn halt(&self, stop: Stop) {
        let mut s = self.stop.lock().unwrap_or_else(|e| e.into_inner());
        if s.is_none() {
            *s = Some(stop);
        }
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

    fn pause(&self, d: Duration) {
        let mut p = self.pause_until.lock().unwrap_or_else(|e| e.into_inner());
        let t = Instant::now() + d;
        if p.is_none_or(|cur| cur < t) {
            *p = Some(t);
        }
    }
}

/// Sends one contact to completion: attempts, retries, outcome.
async fn deliver(shared: Arc<Shared>, job: Job) {
    let mut attempts = 0u32;
    let outcome = loop {
        shared.wait_pause().await;
        if let Some(l) = &shared.limiter {
            tokio::select! {
                _ = l.until_ready() => {}
                _ = shared.cancel.cancelled() => {}
            }
        }
        attempts += 1;
        let attempt = if shared.cancel.is_cancelled() && attempts > 1 {
            Attempt::NotConnected("the run was stopped before this retry".into())
        } else {
            shared.client.send(job.body.clone()).await
        };
        match classify(&attempt) {
            Verdict::Sent {
                contact_id,
                session_id,
                message_ids,
            } => {
                break outcome(&job, Status::Sent, attempts, &attempt, None, None, |o| {
                    o.contact_id = contact_id;
                    o.session_id = session_id;
                    o.message_ids = message_ids;
                });
            }
            Verdict::Queued { queue_id } => {
                break outcome(&job, Status::Queued, attempts, &attempt, None, None, |o| {
                    o.queue_id = Some(queue_id);
                });
            }
            Verdict::Failed { reason, error } => {
                break outcome(
                    &job,
                    Status::Failed,
                    attempts,
                    &attempt,
                    Some(reason),
                    Some(error),
                    |_| {},
                );
            }
            Verdict::Unknown { reason, error } => {
                break outcome(
                    &job,
                    Status::Unknown,
                    attempts,
                    &attempt,
                    Some(reason),
                    Some(error),
                    |_| {},
                );
            }
            Verdict::Unauthorized { error } => {
                shared.halt(Stop::Unauthorized(error));
                // The API refused the request outright: nothing was sent, release the claim.
                break Outcome {
                    key: job.key.clone(),
                    status: None,
                    prior: job.prior,
                    ..Default::default()
                };
            }
            Verdict::Retry {
                reason,
                error,
                retry_after,
            } => {
                if reason == "http_429" {
                    shared.pause(retry_after.unwrap_or(shared.backoff));
                }
                if shared.cancel.is_cancelled() {
                    // Stopping: this contact surely was not sent, so it goes back to the queue.
                    break Outcome {
                        key: job.key.clone(),
                        status: None,
                        prior: job.prior,
                        ..Default::default()
                    };
                }
                if attempts > shared.retries {
                    break outcome(
                        &job,
                        Status::Failed,
                        attempts,
                        &attempt,
                        Some(reason),
                        Some(format!("{error} (after {attempts} attempts)")),
                        |_| {},
                    );
                }
                shared.stats.retries.fetch_add(1, Ordering::Relaxed);
                let wait = backoff(shared.backoff, attempts, retry_after);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shared.cancel.cancelled() => {}
                }
            }
        }
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
    if shared.writer.outcome(outcome).await.is_err() {
        shared.halt(Stop::Broken("the ledger writer stopped".into()));
    }
}

fn outcome(
    job: &Job,
    status: Status,
    attempts: u32,
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
        extra_attempts: attempts - 1,
        http_status: match attempt {
            Attempt::Response { status, .. } => Some(*status),
            _ => None,
        },
        ..Default::default()
    };
    fill(&mut o);
    o
}

/// Runs the dispatcher until the feed is exhausted or the run stops.
pub async fn dispatch(
    client: Client,
    writer: WriterHandle,
    mut work: mpsc::Receiver<Work>,
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
    if let Some(deadline) = settings.deadline {
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.into()) => shared.halt(Stop::Window),
                _ = shared.cancel.cancelled() => {}
            }
        });
    }
    let slots = Arc::new(Semaphore::new(settings.concurrency));
    let mut claimed: u64 = 0;
    let mut work_remains = false;
    let mut tasks = tokio::task::JoinSet::new();

    'outer: loop {
        // Wait for a free slot (or a stop).
        let first = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let mut permits = vec![first];
        let mut batch: Vec<Job> = Vec::new();
        loop {
            if let Some(limit) = settings.limit
                && claimed + batch.len() as u64 >= limit
            {
                break;
            }
            if batch.len() == permits.len() {
                match slots.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            let next = match batch.is_empty() {
                true => tokio::select! {
                    biased;
                    _ = cancel.cancelled() => { work_remains = true; break 'outer; }
                    w = work.recv() => w,
                },
                false => match work.try_recv() {
                    Ok(w) => Some(w),
                    Err(_) => break,
                },
            };
            let Some(next) = next else {
                if batch.is_empty() {
                    break 'outer;
                }
                break;
            };
            match settle(&stats, &writer, next).await {
                Ok(Some(job)) => batch.push(job),
                Ok(None) => {}
                Err(msg) => {
                    shared.halt(Stop::Broken(msg));
                    break;
                }
            }
        }
        if batch.is_empty() {
            if settings.limit.is_some_and(|l| claimed >= l) {
                // The limit is reached: record what needs no send, and learn whether work remains.
                while let Some(w) = work.recv().await {
                    match settle(&stats, &writer, w).await {
                        Ok(Some(_)) => {
                            work_remains = true;
                            break;
                        }
                        Ok(None) => {}
                        Err(msg) => {
                            shared.halt(Stop::Broken(msg));
                            break;
                        }
                    }
                }
                if work_remains {
                    shared.halt(Stop::Limit);
                }
                break;
            }
            if cancel.is_cancelled() {
                break;
            }
            continue;
        }
        let intents = batch
            .iter()
            .map(|j| Intent {
                key: j.key.clone(),
                row_number: j.row_number,
                phone: j.phone.clone(),
            })
            .collect();
        if let Err(e) = writer.claim(intents).await {
            shared.halt(Stop::Broken(e));
            work_remains = true;
            break;
        }
        claimed += batch.len() as u64;
        for (job, permit) in batch.into_iter().zip(permits) {
            let shared = shared.clone();
            stats.in_flight.fetch_add(1, Ordering::Relaxed);
            tasks.spawn(async move {
                deliver(shared.clone(), job).await;
                shared.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                drop(permit);
            });
        }
        if cancel.is_cancelled() {
            work_remains = true;
            break;
        }
    }
    if cancel.is_cancelled() && !work_remains {
        // Anything left in the feed means the file was not finished.
        work_remains = work.recv().await.is_some();
    }
    drop(work);

    // Let in-flight requests finish, bounded.
    let deadline = tokio::time::sleep(settings.drain);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            r = tasks.join_next() => if r.is_none() { break },
            _ = &mut deadline => break,
        }
    }
    let abandoned = tasks.len() as u64;
    tasks.abort_all();
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
        work_remains: work_remains || abandoned > 0 || matches!(stop, Some(Stop::Limit)),
        stop,
        abandoned,
        elapsed: started.elapsed(),
    }
}

/// Handles work that needs no request: returns the job to send, or why the run must stop.
async fn settle(stats: &Stats, writer: &WriterHandle, work: Work) -> Result<Option<Job>, String> {
    match work {
        Work::Send(job) => return Ok(Some(job)),
        Work::Done(_) => stats.already.fetch_add(1, Ordering::Relaxed),
        Work::Filtered => stats.filtered.fetch_add(1, Ordering::Relaxed),
        Work::Record(skip) => {
            writer.skip(skip).await?;
            stats.skipped.fetch_add(1, Ordering::Relaxed)
        }
        Work::Broken(msg) => return Err(msg),
    };
    Ok(None)
}
