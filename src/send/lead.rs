//! How far claims run ahead of the senders.
//!
//! Every claim is a commit, and every commit costs an fsync plus the pages it rewrites, so many
//! small claims make the ledger the bottleneck; but every claimed contact that has not been sent
//! becomes `unknown` if the run is killed, so claiming far ahead costs the marketer. The batch
//! is sized by time: what the senders get through in the lead time, measured as the run goes,
//! within half a concurrency window and `MAX_WINDOWS` windows. Against any real API (tens of
//! milliseconds per request) that is the lower bound: at most two windows unsettled. Against a
//! fast local server the batch grows until a commit carries a few hundred contacts.
//!
//! Only one claim is committed at a time, so while it is, the senders live on the batch before
//! it: the lead must outlast a commit, or they wait for work. Worse, the rate the batch is sized
//! from is then the starved rate, so a lead shorter than a commit shrinks the batches, which
//! starves the senders more, down to the floor. The lead is therefore `LEAD_TIME`, or twice the
//! time commits take when that is longer (an fsync on a busy disk, the writer waiting for a
//! core): the room to grow back, up to `MAX_LEAD`.

use std::time::{Duration, Instant};

/// The time's worth of sending one claim covers, when commits are quick.
const LEAD_TIME: Duration = Duration::from_millis(8);

/// The longest lead, however slow commits are.
pub(crate) const MAX_LEAD: Duration = Duration::from_millis(32);

/// A batch never exceeds this many concurrency windows.
const MAX_WINDOWS: usize = 64;

/// Rates are measured over at least this long.
const SAMPLE: Duration = Duration::from_millis(5);

#[derive(Debug)]
pub(crate) struct Lead {
    window: usize,
    /// Requests finished per second, smoothed.
    rate: Option<f64>,
    mark: (Instant, u64),
    /// How long commits take: the slowest of late, fading by a tenth at each commit.
    commit: Duration,
    batch: usize,
}

impl Lead {
    pub(crate) fn new(window: usize, now: Instant) -> Lead {
        let window = window.max(1);
        Lead {
            window,
            rate: None,
            mark: (now, 0),
            commit: Duration::ZERO,
            batch: window.div_ceil(2),
        }
    }

    /// Takes note of how many requests have finished by `now`, and sizes the batch to match.
    pub(crate) fn observe(&mut self, finished: u64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.mark.0);
        if elapsed < SAMPLE {
            return;
        }
        let seen = finished.saturating_sub(self.mark.1) as f64 / elapsed.as_secs_f64();
        let rate = match self.rate {
            None => seen,
            Some(r) => 0.75 * r + 0.25 * seen,
        };
        self.rate = Some(rate);
        self.mark = (now, finished);
        let want = (rate * self.lead().as_secs_f64()).round() as usize;
        self.batch = want.clamp(self.window.div_ceil(2), MAX_WINDOWS * self.window);
    }

    /// Takes note that a claim's commit took `took`.
    pub(crate) fn committed(&mut self, took: Duration) {
        self.commit = took.max(self.commit.mul_f64(0.9));
    }

    /// The time's worth of sending a claim covers now.
    fn lead(&self) -> Duration {
        (2 * self.commit).clamp(LEAD_TIME, MAX_LEAD)
    }

    /// How many contacts one claim should carry.
    pub(crate) fn batch(&self) -> usize {
        self.batch
    }

    /// How many contacts may be claimed and not yet settled: the requests in flight, one batch
    /// being committed and one waiting for a sender. A run killed at any instant leaves at most
    /// this many `sending`.
    pub(crate) fn unsettled(&self) -> usize {
        self.window + 2 * self.batch
    }

    /// The most `unsettled` can ever be for this concurrency.
    #[cfg(test)]
    fn bound(window: usize) -> usize {
        window.max(1) * (1 + 2 * MAX_WINDOWS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_api_keeps_claims_within_two_windows() {
        let t0 = Instant::now();
        let mut lead = Lead::new(16, t0);
        // 16 requests in flight at 100 ms each: 160 per second.
        for i in 1..=50u64 {
            lead.observe(16 * i, t0 + Duration::from_millis(100 * i));
        }
        assert_eq!(lead.batch(), 8);
        assert_eq!(lead.unsettled(), 32);
    }

    #[test]
    fn a_fast_server_grows_the_batch_up_to_the_cap() {
        let t0 = Instant::now();
        let lead_ms = LEAD_TIME.as_millis() as u64;
        let mut lead = Lead::new(16, t0);
        // 200,000 requests per second: more than the cap allows.
        for i in 1..=50u64 {
            lead.observe(2000 * i, t0 + Duration::from_millis(10 * i));
        }
        assert!(200 * lead_ms as usize > MAX_WINDOWS * 16);
        assert_eq!(lead.batch(), MAX_WINDOWS * 16);
        assert_eq!(lead.unsettled(), 16 + 2 * MAX_WINDOWS * 16);
        assert_eq!(lead.unsettled(), Lead::bound(16));
        // Down to 5,000 per second: 5 per millisecond of lead.
        for i in 51..=150u64 {
            lead.observe(100_000 + 50 * (i - 50), t0 + Duration::from_millis(10 * i));
        }
        assert_eq!(lead.batch(), (5 * lead_ms as usize).max(8));
        let mut lead = Lead::new(64, t0);
        for i in 1..=50u64 {
            lead.observe(200 * i, t0 + Duration::from_millis(10 * i));
        }
        assert_eq!(lead.batch(), (20 * lead_ms as usize).max(32));
    }

    #[test]
    fn slow_commits_lengthen_the_lead_up_to_its_cap_and_fade() {
        let t0 = Instant::now();
        let mut lead = Lead::new(16, t0);
        let at = |i: u64| t0 + Duration::from_millis(10 * i);
        // 10,000 requests per second, commits of 2 ms: the lead is LEAD_TIME, 80 a batch.
        let mut i = 0;
        let mut run = |lead: &mut Lead, commit_ms: u64, steps: u64| {
            for _ in 0..steps {
                i += 1;
                lead.committed(Duration::from_millis(commit_ms));
                lead.observe(100 * i, at(i));
            }
        };
        run(&mut lead, 2, 50);
        assert_eq!(lead.batch(), 80);
        // Commits of 12 ms: twice that, 24 ms, 240 a batch.
        run(&mut lead, 12, 50);
        assert_eq!(lead.batch(), 240);
        // Commits of 100 ms: the lead stops at MAX_LEAD.
        run(&mut lead, 100, 50);
        assert_eq!(lead.batch(), 10 * MAX_LEAD.as_millis() as usize);
        // Quick commits again: the slow ones fade, and the lead is LEAD_TIME once more.
        run(&mut lead, 1, 100);
        assert_eq!(lead.batch(), 80);
    }

    #[test]
    fn short_intervals_are_not_measured() {
        let t0 = Instant::now();
        let mut lead = Lead::new(8, t0);
        lead.observe(1000, t0 + Duration::from_micros(100));
        assert_eq!(lead.batch(), 4);
    }
}
