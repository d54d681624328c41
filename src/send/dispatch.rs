//! The dispatcher: takes contacts from the feed as the rate ceiling allows, claims them in the
//! ledger in batches (each claim one commit, durable before any of its requests leave), and
//! hands them to `concurrency` long-lived senders. A run goes through four steps: `pump` (take,
//! pace, claim, hand over) until the feed ends or the run stops, `remaining` (is anything left
//! to send?), `drain` (let requests in flight finish), and `report`.
//!
//! Alone, a run paces contacts before it claims them, so that no claim waits for the rate.
//! Joined workers (`run --join`) read the same file in the same order, and each would pace
//! every contact, half of them lost to the other's claim: they pace each request as it leaves
//! instead, and their claims run ahead by no more than the unsettled bound (`lead`).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::client::Client;
use super::deliver::{self, Around, Delivery, Policy};
use super::feed::{FeedError, Inbox, Job, Work};
use super::retry::{ConnectError, Verdict};
use super::{Report, Settings, Stats, Stop, lead, rate};
use crate::ledger::Status;
use crate::ledger::writer::{Barred, Claim, Intent, Outcome, WriteError, WriterHandle};

/// How many contacts must fail to connect, with no connection ever made in this run, before
/// the API is deemed unreachable and the run stops.
const UNREACHABLE_AFTER: u32 = 3;

/// What every sender shares.
struct Shared {
    client: Client,
    writer: WriterHandle,
    stats: Arc<Stats>,
    cancel: CancellationToken,
    stop: Mutex<Option<Stop>>,
    streak: AtomicU32,
    /// The failures of the current streak by reason: (count, one error text).
    streak_reasons: Mutex<std::collections::HashMap<String, (u32, String)>>,
    /// While set, no sender starts a request before this instant (a 429 slows everyone).
    pause_until: Mutex<Option<Instant>>,
    policy: Policy,
    max_streak: u32,
    limiter: Option<governor::DefaultDirectRateLimiter>,
    /// The workers sharing the rate: a request takes this many permits.
    workers: Arc<AtomicU32>,
    /// One of several workers: the rate is taken as each request leaves.
    joined: bool,
    /// A joined worker's lease on its claims.
    lease: Option<Arc<crate::ledger::workers::Lease>>,
    /// Whether the API has answered anything in this run.
    reached: AtomicBool,
    /// Contacts that failed to connect before the API was ever reached.
    unreached: AtomicU32,
    /// The channel's daily limit refused a claim: nothing more is claimed.
    spent: AtomicBool,
    url: String,
}

impl Shared {
    /// Records why the run ends: the first reason wins, but one that says the campaign cannot
    /// go on as it is (credentials refused, say) wins over work merely left (`--limit`, the
    /// window), which in-flight answers may follow.
    fn record_stop(&self, stop: Stop) {
        let mut s = self.stop.lock().unwrap_or_else(|e| e.into_inner());
        if s.as_ref()
            .is_none_or(|old| stop.is_fatal() && !old.is_fatal())
        {
            *s = Some(stop);
        }
    }

    /// Records why, and stops claiming: claimed contacts not yet sent are given back.
    fn halt(&self, stop: Stop) {
        self.record_stop(stop);
        self.cancel.cancel();
    }

    /// The channel's daily limit refused `refused` contacts: they wait, and nothing more is
    /// claimed; the contacts already claimed still go out.
    fn budget_spent(&self, refused: u64) {
        self.stats.deferred.fetch_add(refused, Ordering::Relaxed);
        self.spent.store(true, Ordering::Relaxed);
        self.record_stop(Stop::DailyLimit);
    }

    /// A contact the ledger barred when it was claimed: skipped (opted out), or deferred (its
    /// phone cooling down).
    fn barred(&self, bar: Barred) {
        let counter = match bar {
            Barred::OptedOut => &self.stats.skipped,
            Barred::Cooling => &self.stats.deferred,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether this worker still holds its claims; if not, the run stops and sends nothing
    /// more.
    fn holds_claims(&self) -> bool {
        if self.lease.as_ref().is_none_or(|l| l.holds()) {
            return true;
        }
        self.halt(Stop::Ledger(
            "this worker's lease on its claims ran out (was the process paused?): the other workers take its claims over, so it sent nothing more".into(),
        ));
        false
    }

    fn is_spent(&self) -> bool {
        self.spent.load(Ordering::Relaxed)
    }

    fn write_failed(&self, e: WriteError) {
        self.halt(Stop::Ledger(e.to_string()));
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
            for _ in 0..self.share() {
                tokio::select! {
                    _ = l.until_ready() => {}
                    _ = self.cancel.cancelled() => break,
                }
            }
        }
        !self.cancel.is_cancelled()
    }

    /// How many permits of the rate one request takes: one per worker sharing it.
    fn share(&self) -> u32 {
        self.workers.load(Ordering::Relaxed).max(1)
    }

    /// Whether a request may leave right now (takes a rate permit when it may).
    fn ready_now(&self) -> bool {
        if self.joined {
            return true;
        }
        let paused = self
            .pause_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t > Instant::now());
        let permits = std::num::NonZeroU32::new(self.share()).unwrap_or(std::num::NonZeroU32::MIN);
        // More workers than the burst holds: wait for the permits one by one (`ready`).
        !paused
            && self
                .limiter
                .as_ref()
                .is_none_or(|l| matches!(l.check_n(permits), Ok(Ok(()))))
    }

    fn pause(&self, d: Duration) {
        let mut p = self.pause_until.lock().unwrap_or_else(|e| e.into_inner());
        let t = Instant::now() + d;
        if p.is_none_or(|cur| cur < t) {
            *p = Some(t);
        }
    }

    /// Counts a settled contact towards the failure streak; `why` is a failure's reason code
    /// and error text.
    fn settled(&self, status: Status, why: Option<(&str, &str)>) {
        self.stats.bump(status);
        let mut reasons = self
            .streak_reasons
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if status == Status::Failed || status == Status::Unknown {
            if let Some((code, error)) = why {
                let e = reasons.entry(code.to_string()).or_default();
                e.0 += 1;
                e.1 = error.to_string();
            }
            let n = self.streak.fetch_add(1, Ordering::Relaxed) + 1;
            if self.max_streak > 0 && n >= self.max_streak {
                // The API's most frequent reason in the streak, so the log line says why.
                let top = reasons
                    .iter()
                    .max_by_key(|(r, (n, _))| (*n, std::cmp::Reverse((*r).clone())))
                    .map(|(r, (k, e))| (r.clone(), *k, e.clone()));
                drop(reasons);
                self.halt(Stop::FailureStreak(n, top));
            }
        } else {
            self.streak.store(0, Ordering::Relaxed);
            reasons.clear();
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
        prior: job.prior,
    }
}

/// A run's sender around one delivery: gives the claim back while a retry waits, claims it
/// again before the retry leaves, and stops when the API has never been reached.
struct RunAround<'a> {
    shared: &'a Shared,
    job: &'a Job,
}

impl Around for RunAround<'_> {
    async fn before_retry(&self, next: u32, wait: Duration) -> bool {
        let shared = self.shared;
        // The API surely did not act: while waiting, the contact is given back, so that a crash
        // during the wait leaves it unsent rather than `unknown`. It keeps its slot of the
        // channel's budget: it is still being sent.
        let waiting = Outcome {
            keep_slot: true,
            ..released(self.job)
        };
        if let Err(e) = shared.writer.outcome(waiting) {
            shared.write_failed(e);
            return false;
        }
        shared.stats.retries.fetch_add(1, Ordering::Relaxed);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.cancel.cancelled() => return false,
        }
        if !shared.ready().await || !shared.holds_claims() {
            return false;
        }
        match shared.writer.claim(vec![intent(self.job, next)]).await {
            Ok(c) if c.holds_one() => true,
            // Another worker of the campaign took it while it waited: it is theirs now.
            Ok(c) if !c.elsewhere.is_empty() => false,
            // It opted out, or another campaign messaged it, while it waited.
            Ok(c) if !c.barred.is_empty() => {
                for &(_, bar) in &c.barred {
                    shared.barred(bar);
                }
                false
            }
            Ok(_) => {
                shared.budget_spent(1);
                false
            }
            Err(e) => {
                shared.write_failed(e);
                false
            }
        }
    }

    fn throttled(&self, pause: Duration) {
        self.shared.pause(pause);
    }

    fn not_connected(&self, e: &ConnectError) -> bool {
        let shared = self.shared;
        if shared.reached.load(Ordering::Relaxed) {
            return true;
        }
        let n = shared.unreached.fetch_add(1, Ordering::Relaxed) + 1;
        if n < UNREACHABLE_AFTER {
            return true;
        }
        shared.halt(Stop::Unreachable(format!(
            "cannot reach the API at {} ({}: {e}); nothing was sent",
            shared.url,
            e.kind()
        )));
        if let Err(e) = shared.writer.outcome(released(self.job)) {
            shared.write_failed(e);
        }
        false
    }

    fn reached(&self) {
        self.shared.reached.store(true, Ordering::Relaxed);
    }

    fn asked(&self, wait: Duration) {
        self.shared.stats.asked(wait);
    }

    fn wait_refused(&self, asked: Duration) {
        let shared = self.shared;
        shared.halt(Stop::AskedToWait {
            asked,
            max: shared.policy.max_wait,
        });
        // Not sent, not failed: the contact goes back, and a later run sends it.
        if let Err(e) = shared.writer.outcome(released(self.job)) {
            shared.write_failed(e);
        }
    }
}

/// Its attempts all failed to connect, and the API has not answered this run yet: nothing was
/// sent, and the API (or its certificate, or the proxy) is what is wrong, not the contact. It
/// stays unsent and the run stops as unreachable, however few retries spent the attempts;
/// once the API has answered, such a contact is a failure. The error, when so.
fn unsent_while_unreached<'v>(shared: &Shared, verdict: &'v Verdict) -> Option<&'v str> {
    verdict
        .unconnected()
        .filter(|_| !shared.reached.load(Ordering::Relaxed))
}

/// Sends one claimed contact to completion and records what became of it.
async fn send_one(shared: &Shared, job: Job) {
    if shared.cancel.is_cancelled() || !shared.holds_claims() {
        // Stopped between the claim and the send: nothing left, so nothing is owed.
        if let Err(e) = shared.writer.outcome(released(&job)) {
            shared.write_failed(e);
        }
        return;
    }
    let around = RunAround { shared, job: &job };
    let Delivery::Done {
        verdict,
        http_status,
        ..
    } = deliver::deliver(&shared.client, &job.body, shared.policy, &around).await
    else {
        return;
    };
    if let Some(error) = unsent_while_unreached(shared, &verdict) {
        shared.halt(Stop::Unreachable(format!(
            "cannot reach the API at {} ({error}); nothing was sent",
            shared.url
        )));
        if let Err(e) = shared.writer.outcome(released(&job)) {
            shared.write_failed(e);
        }
        return;
    }
    let mut o = Outcome {
        key: job.key,
        prior: job.prior,
        http_status,
        ..Default::default()
    };
    let failure = match verdict {
        Verdict::Sent {
            contact_id,
            session_id,
            message_ids,
            message_count,
        } => {
            o.status = Some(Status::Sent);
            o.contact_id = contact_id;
            o.session_id = session_id;
            o.message_ids = message_ids;
            o.message_count = Some(message_count as u64);
            None
        }
        Verdict::Queued { queue_id } => {
            o.status = Some(Status::Queued);
            o.queue_id = Some(queue_id);
            None
        }
        Verdict::Failed { reason, error } | Verdict::Retry { reason, error, .. } => {
            Some((Status::Failed, reason, error))
        }
        Verdict::Unknown { reason, error } => Some((Status::Unknown, reason, error)),
        Verdict::Unauthorized { error } => {
            // The API refused the request outright: nothing was sent.
            shared.halt(Stop::Unauthorized(error));
            o.status = None;
            None
        }
    };
    if let Some((status, reason, error)) = failure {
        let code = reason.code();
        shared.stats.note_error(&code, &error);
        o.status = Some(status);
        o.reason = Some(code);
        o.error = Some(error);
    }
    if let Some(status) = o.status {
        let why = o.reason.as_deref().zip(o.error.as_deref());
        shared.settled(status, why);
    }
    if let Err(e) = shared.writer.outcome(o) {
        shared.write_failed(e);
    }
}

type ClaimFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Claim, WriteError>> + Send>>;

/// A claim being committed: its jobs, the commit's acknowledgement, and since when.
struct Claiming {
    jobs: Vec<Job>,
    ack: ClaimFuture,
    since: Instant,
}

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
    loop {
        let job = ready.rx.lock().await.recv().await;
        let Some(job) = job else { return };
        // In flight before it leaves the queue's count, so that no moment counts it nowhere.
        shared.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        ready.len.fetch_sub(1, Ordering::Relaxed);
        // A stop while it waits: `send_one` gives the claim back.
        if shared.joined {
            shared.ready().await;
        }
        send_one(&shared, job).await;
        shared.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        ready.finished.fetch_add(1, Ordering::Relaxed);
        ready.done.notify_one();
    }
}

/// The dispatcher's state between steps.
struct Dispatcher {
    shared: Arc<Shared>,
    queue: Arc<Ready>,
    ready_tx: Option<mpsc::UnboundedSender<Job>>,
    senders: tokio::task::JoinSet<()>,
    lead: lead::Lead,
    limit: Option<u64>,
    /// Contacts taken from the feed to send (for --limit).
    taken: u64,
    feed_done: bool,
    /// Taken and paced, waiting for the next claim.
    paced: Vec<Job>,
    /// Taken from the feed, not claimed yet (waiting for the pace, or for room).
    held: Option<Job>,
    /// The claim being committed.
    claiming: Option<Claiming>,
    started: Instant,
}

/// What the dispatcher is wired to: the client, the ledger's writer, the live counters, and the
/// token that stops the run.
pub(crate) struct Wiring {
    pub(crate) client: Client,
    pub(crate) writer: WriterHandle,
    pub(crate) stats: Arc<Stats>,
    pub(crate) cancel: CancellationToken,
}

/// Runs a campaign's sends until the feed is exhausted or the run stops.
pub(crate) async fn dispatch(wiring: Wiring, mut work: Inbox, settings: Settings) -> Report {
    let Wiring {
        client,
        writer,
        stats,
        cancel,
    } = wiring;
    let started = Instant::now();
    let shared = Arc::new(Shared {
        client,
        writer,
        stats,
        cancel: cancel.clone(),
        stop: Mutex::new(None),
        streak: AtomicU32::new(0),
        streak_reasons: Mutex::default(),
        pause_until: Mutex::new(None),
        policy: settings.policy,
        max_streak: settings.max_consecutive_failures,
        limiter: settings.rate.map(rate::limiter),
        workers: settings.workers.clone(),
        joined: settings.joined,
        lease: settings.lease.clone(),
        reached: AtomicBool::new(false),
        unreached: AtomicU32::new(0),
        spent: AtomicBool::new(false),
        url: settings.url.clone(),
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
    let mut d = Dispatcher {
        shared,
        queue,
        ready_tx: Some(ready_tx),
        senders,
        lead: lead::Lead::new(window, started),
        limit: settings.limit,
        taken: 0,
        feed_done: false,
        paced: Vec::new(),
        held: None,
        claiming: None,
        started,
    };
    d.pump(&mut work).await;
    let work_remains = d.remaining(&mut work).await;
    drop(work);
    let abandoned = d.drain(settings.drain).await;
    if let Some(t) = window_timer {
        t.abort();
    }
    d.report(work_remains, abandoned).await
}

impl Dispatcher {
    fn limit_reached(&self) -> bool {
        self.limit.is_some_and(|l| self.taken >= l)
    }

    /// Nothing more may be taken: `--limit`, or the channel's daily limit.
    fn no_more(&self) -> bool {
        self.limit_reached() || self.shared.is_spent()
    }

    /// How many more contacts may be taken now: the unsettled bound minus those already out.
    fn room(&self) -> usize {
        let in_flight = self.shared.stats.in_flight.load(Ordering::Relaxed) as usize;
        let queued = self.queue.len.load(Ordering::Relaxed);
        let claiming = self.claiming.as_ref().map_or(0, |c| c.jobs.len());
        let left = self
            .limit
            .map_or(usize::MAX, |l| l.saturating_sub(self.taken) as usize);
        self.lead
            .unsettled()
            .saturating_sub(queued + in_flight + self.paced.len() + claiming)
            .min(left)
    }

    /// Work that needs no request is recorded here; a contact to send is returned.
    async fn settle(&mut self, work: Work) -> Option<Job> {
        let stats = &self.shared.stats;
        match work {
            Work::Send(job) => return Some(job),
            Work::Done(_) => {}
            Work::Filtered(n) => {
                stats.filtered.fetch_add(n, Ordering::Relaxed);
            }
            Work::Deferred(n) => {
                stats.deferred.fetch_add(n, Ordering::Relaxed);
            }
            Work::Record(skip) => match self.shared.writer.skip(skip).await {
                Ok(()) => {
                    stats.skipped.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => self.shared.write_failed(e),
            },
            Work::Broken(e) => self.shared.halt(Stop::Feed(e.to_string())),
            Work::End => self.feed_done = true,
        }
        None
    }

    /// A feed whose channel closed without saying it ended has failed.
    fn feed_vanished(&mut self) {
        self.feed_done = true;
        self.shared
            .halt(Stop::Feed(FeedError::Vanished.to_string()));
    }

    /// Takes contacts from the feed while there is room and the pace allows; each one taken
    /// joins the next claim.
    async fn take(&mut self, work: &mut Inbox) {
        while !self.shared.cancel.is_cancelled()
            && !self.feed_done
            && !self.shared.is_spent()
            && self.room() > 0
        {
            let job = match self.held.take() {
                Some(job) => job,
                None => match work.try_next() {
                    Ok(w) => match self.settle(w).await {
                        Some(job) => job,
                        None => continue,
                    },
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        self.feed_vanished();
                        break;
                    }
                },
            };
            if !self.shared.ready_now() {
                self.held = Some(job);
                break;
            }
            self.taken += 1;
            self.paced.push(job);
        }
    }

    /// Starts a claim of every paced contact once they make a batch, or the senders are about
    /// to run out, or no more are coming soon. One claim at a time.
    fn claim(&mut self) -> bool {
        let ripe = self.paced.len() >= self.lead.batch()
            || self.queue.len.load(Ordering::Relaxed) < self.lead.batch()
            || self.held.is_some()
            || self.feed_done
            || self.no_more();
        if !ripe
            || self.claiming.is_some()
            || self.paced.is_empty()
            || self.shared.cancel.is_cancelled()
        {
            return false;
        }
        let batch = std::mem::take(&mut self.paced);
        let intents = batch.iter().map(|j| intent(j, 1)).collect();
        let w = self.shared.writer.clone();
        self.claiming = Some(Claiming {
            ack: Box::pin(async move { w.claim(intents).await }),
            jobs: batch,
            since: Instant::now(),
        });
        true
    }

    /// A claim is durable: its contacts go to the senders.
    fn claimed(&mut self, acked: Result<Claim, WriteError>) {
        let Some(Claiming {
            mut jobs, since, ..
        }) = self.claiming.take()
        else {
            return;
        };
        self.lead.committed(since.elapsed());
        match acked {
            Ok(claim) => {
                if claim.admitted < jobs.len() {
                    // Past the channel's daily limit: never claimed, so nothing is owed.
                    let refused = jobs.split_off(claim.admitted).len() as u64;
                    self.taken -= refused;
                    self.shared.budget_spent(refused);
                }
                if !claim.elsewhere.is_empty() || !claim.barred.is_empty() {
                    // Another worker of the campaign claimed these first (theirs to send), or
                    // the ledger bars their phones now.
                    let mut at = 0;
                    jobs.retain(|_| {
                        at += 1;
                        claim.holds(at - 1)
                    });
                    self.taken -= (claim.elsewhere.len() + claim.barred.len()) as u64;
                    for &(_, bar) in &claim.barred {
                        self.shared.barred(bar);
                    }
                }
                self.queue.len.fetch_add(jobs.len(), Ordering::Relaxed);
                if let Some(tx) = &self.ready_tx {
                    for job in jobs {
                        // The senders outlive the dispatcher's loop: the queue is open.
                        let _ = tx.send(job);
                    }
                }
            }
            Err(e) => {
                self.shared.write_failed(e);
                self.held = jobs.into_iter().next();
            }
        }
    }

    /// The main loop: take, pace, claim, hand over, until the feed ends or the run stops.
    async fn pump(&mut self, work: &mut Inbox) {
        let cancel = self.shared.cancel.clone();
        loop {
            self.lead
                .observe(self.queue.finished.load(Ordering::Relaxed), Instant::now());
            self.take(work).await;
            if self.claim() {
                continue;
            }
            let stopping = cancel.is_cancelled();
            let done_taking = stopping || self.feed_done && self.held.is_none() || self.no_more();
            if done_taking && self.claiming.is_none() && (self.paced.is_empty() || stopping) {
                return;
            }
            let open = !stopping && self.room() > 0;
            let want_feed = open && self.held.is_none() && !self.feed_done;
            let want_pace = open && self.held.is_some();
            let claiming = self.claiming.is_some();
            tokio::select! {
                biased;
                _ = cancel.cancelled(), if !stopping => {}
                acked = async {
                    match self.claiming.as_mut() { Some(c) => (&mut c.ack).await, None => Ok(Claim::default()) }
                }, if claiming => self.claimed(acked),
                _ = self.queue.done.notified() => {}
                w = work.next(), if want_feed => match w {
                    None => self.feed_vanished(),
                    Some(w) => self.held = self.settle(w).await,
                },
                paced = self.shared.ready(), if want_pace => {
                    if paced && let Some(job) = self.held.take() {
                        self.taken += 1;
                        self.paced.push(job);
                    }
                }
            }
        }
    }

    /// After the loop: gives back what was claimed but not sent (on a stop), and finds out
    /// whether any contact remains to be sent (a stop, the limit, or the file's end).
    async fn remaining(&mut self, work: &mut Inbox) -> bool {
        // No more claims: the senders finish what is queued, and stop.
        self.ready_tx = None;
        let cancel = self.shared.cancel.clone();
        if cancel.is_cancelled() {
            // Claimed contacts that have not left are given back at once: nothing was sent to
            // them. (With the queue closed, a sender waiting on it lets go of the lock at once.)
            let mut rx = self.queue.rx.lock().await;
            while let Ok(job) = rx.try_recv() {
                self.queue.len.fetch_sub(1, Ordering::Relaxed);
                if let Err(e) = self.shared.writer.outcome(released(&job)) {
                    self.shared.write_failed(e);
                }
            }
        }
        let mut work_remains =
            self.held.is_some() || !self.paced.is_empty() || self.shared.is_spent();
        if !work_remains && !self.feed_done && cancel.is_cancelled() {
            // Stopped: is there anything after this point? (Settling here would write.)
            work_remains = !matches!(work.next().await, None | Some(Work::End));
        } else if !work_remains && !self.feed_done {
            // The limit: settle what needs no send, until a contact to send shows up.
            loop {
                let next = tokio::select! {
                    biased;
                    _ = cancel.cancelled() => { work_remains = true; break }
                    w = work.next() => w,
                };
                let Some(next) = next else {
                    self.feed_vanished();
                    work_remains = true;
                    break;
                };
                if self.settle(next).await.is_some() || cancel.is_cancelled() {
                    work_remains = true;
                    break;
                }
                if self.feed_done {
                    break;
                }
            }
        }
        if work_remains && self.limit_reached() {
            // Not an interruption: the contacts already claimed still go out.
            self.shared.record_stop(Stop::Limit);
        }
        work_remains
    }

    /// Lets in-flight requests finish; once the run is stopping, only for `drain`. Returns how
    /// many were still in flight when that time ran out (they stay `sending`).
    async fn drain(&mut self, drain: Duration) -> u64 {
        let cancel = self.shared.cancel.clone();
        let mut drain_until: Option<Instant> = None;
        loop {
            if drain_until.is_none() && cancel.is_cancelled() {
                drain_until = Some(Instant::now() + drain);
            }
            let until = drain_until.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                r = self.senders.join_next() => if r.is_none() { break },
                _ = cancel.cancelled(), if drain_until.is_none() => {}
                _ = tokio::time::sleep_until(until.into()), if drain_until.is_some() => break,
            }
        }
        // Each sender still running holds one request the drain time ran out on.
        let abandoned = self.shared.stats.in_flight.load(Ordering::Relaxed);
        self.senders.abort_all();
        abandoned
    }

    async fn report(self, work_remains: bool, abandoned: u64) -> Report {
        if let Err(e) = self.shared.writer.flush().await {
            self.shared.record_stop(Stop::Ledger(e.to_string()));
        }
        let mut stop = self
            .shared
            .stop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if stop.is_none() && self.shared.cancel.is_cancelled() {
            stop = Some(Stop::Interrupted);
        }
        // A contact given back for a wait the run would not take is still to send.
        let waiting = matches!(stop, Some(Stop::AskedToWait { .. }));
        Report {
            work_remains: work_remains || abandoned > 0 || waiting,
            stop,
            abandoned,
            elapsed: self.started.elapsed(),
        }
    }
}
