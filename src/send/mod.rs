//! Sending: the feed reads and renders rows, the dispatcher claims contacts in the ledger and
//! hands them to `concurrency` senders, each delivering over its own connection with the retry
//! policy, and every outcome goes to the ledger writer. A run stops cleanly on a signal, on
//! `--limit`, at the end of the send window, on refused credentials, on an API that cannot be
//! reached, on a failure streak, on a broken feed or a ledger that is gone.

pub(crate) mod client;
pub(crate) mod deliver;
pub(crate) mod dispatch;
pub(crate) mod feed;
pub(crate) mod lead;
pub(crate) mod rate;
pub(crate) mod retry;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::ledger::Status;

/// Live counters, read by the progress display and the summary.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) sent: AtomicU64,
    pub(crate) queued: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) unknown: AtomicU64,
    pub(crate) skipped: AtomicU64,
    /// Rows `contacts.where` leaves out.
    pub(crate) filtered: AtomicU64,
    /// Contacts whose phone is in its cool-down, or past the channel's daily limit.
    pub(crate) deferred: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    /// Failures by reason since the progress display last looked: (count, one error text).
    errors: Mutex<HashMap<String, (u64, String)>>,
    /// Until when the API asked (`Retry-After`) a sender to wait.
    asked_until: Mutex<Option<Instant>>,
}

impl Stats {
    /// Contacts this run sent a request for and settled.
    pub(crate) fn requests(&self) -> u64 {
        [&self.sent, &self.queued, &self.failed, &self.unknown]
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .sum()
    }

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

    pub(crate) fn get(&self, s: Status) -> u64 {
        self.counter(s).load(Ordering::Relaxed)
    }

    /// Counts a settled outcome (`sending` is not one, and is left to the in-flight count).
    pub(crate) fn bump(&self, s: Status) {
        if s != Status::Sending {
            self.counter(s).fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Notes a contact that failed or ended unknown, for the progress lines' "most frequent
    /// error" (once per contact, however many attempts it took).
    pub(crate) fn note_error(&self, reason: &str, error: &str) {
        let mut e = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        let entry = e.entry(reason.to_string()).or_insert((0, String::new()));
        entry.0 += 1;
        entry.1 = error.to_string();
    }

    /// The API asked a sender to wait `wait` from now.
    pub(crate) fn asked(&self, wait: Duration) {
        let mut until = self.asked_until.lock().unwrap_or_else(|e| e.into_inner());
        let t = Instant::now() + wait;
        if until.is_none_or(|u| u < t) {
            *until = Some(t);
        }
    }

    /// How much of the longest wait the API asked for is left, if any.
    pub(crate) fn asked_left(&self) -> Option<Duration> {
        let until = *self.asked_until.lock().unwrap_or_else(|e| e.into_inner());
        until
            .map(|u| u.saturating_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }

    /// The most frequent failure since the last call: (reason, count, an error text).
    pub(crate) fn take_top_error(&self) -> Option<(String, u64, String)> {
        let mut e = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        let top = e
            .iter()
            .max_by_key(|(r, (n, _))| (*n, std::cmp::Reverse((*r).clone())))
            .map(|(r, (n, text))| (r.clone(), *n, text.clone()));
        e.clear();
        top
    }
}

/// Why a run ended before the end of the file. Serialised for `run --json` as
/// `{"reason": "unauthorized", "message": "..."}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stop {
    Interrupted,
    Limit,
    /// The send window closed.
    Window,
    Unauthorized(String),
    /// No connection to the API was ever made, and the first contacts all failed to connect.
    Unreachable(String),
    /// So many contacts failed in a row; the most frequent reason among them: (code, how many,
    /// one error text).
    FailureStreak(u32, Option<(String, u32, String)>),
    /// The ledger file was deleted, moved or replaced, or could not be written.
    Ledger(String),
    /// The contact feed failed: an unreadable file, a row that cannot be sent, a changed file.
    Feed(String),
    /// The channel's daily limit (`api.daily_limit`) is spent: the rest wait for a later run.
    DailyLimit,
    /// The API asked (`Retry-After`) to wait longer than `send.max_wait`.
    AskedToWait {
        asked: Duration,
        max: Duration,
    },
}

impl Stop {
    /// The stable name of the reason, as `run --json` and the ledger's `runs` table give it.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Stop::Interrupted => "interrupted",
            Stop::Limit => "limit",
            Stop::Window => "window",
            Stop::Unauthorized(_) => "unauthorized",
            Stop::Unreachable(_) => "unreachable",
            Stop::FailureStreak(..) => "failure_streak",
            Stop::Ledger(_) => "ledger",
            Stop::Feed(_) => "feed",
            Stop::DailyLimit => "daily_limit",
            Stop::AskedToWait { .. } => "retry_after",
        }
    }

    /// What happened, in a sentence.
    pub(crate) fn message(&self) -> String {
        match self {
            Stop::Interrupted => "the run was interrupted by a signal".into(),
            Stop::Limit => "--limit was reached".into(),
            Stop::Window => "the send window closed".into(),
            Stop::DailyLimit => "the channel's daily limit was reached".into(),
            Stop::FailureStreak(n, None) => format!("{n} contacts failed in a row"),
            Stop::FailureStreak(n, Some((code, k, error))) => format!(
                "{n} contacts failed in a row; most often {code} ({k} of them): {}",
                crate::text::printable(error)
            ),
            Stop::AskedToWait { asked, max } => format!(
                "the API asked (Retry-After) to wait {}s ({}), longer than send.max_wait ({})",
                asked.as_secs(),
                crate::text::span(*asked),
                crate::text::span(*max)
            ),
            Stop::Unauthorized(m) | Stop::Unreachable(m) | Stop::Ledger(m) | Stop::Feed(m) => {
                m.clone()
            }
        }
    }

    /// Whether the campaign cannot go on as it is (exit 1), rather than having work left.
    pub(crate) fn is_fatal(&self) -> bool {
        !matches!(
            self,
            Stop::Interrupted
                | Stop::Limit
                | Stop::Window
                | Stop::DailyLimit
                | Stop::AskedToWait { .. }
        )
    }
}

impl Serialize for Stop {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            reason: &'a str,
            message: String,
        }
        Shown {
            reason: self.reason(),
            message: self.message(),
        }
        .serialize(s)
    }
}

/// How the dispatcher sends.
pub(crate) struct Settings {
    pub(crate) concurrency: usize,
    pub(crate) policy: deliver::Policy,
    pub(crate) max_consecutive_failures: u32,
    pub(crate) limit: Option<u64>,
    pub(crate) rate: Option<crate::campaign::Rate>,
    /// When the send window closes: stop claiming then.
    pub(crate) deadline: Option<Instant>,
    /// How long in-flight requests may take to finish after a stop.
    pub(crate) drain: Duration,
    /// The API's URL, for messages.
    pub(crate) url: String,
    /// How many workers share the campaign's rate now (`run --join`): each takes that many
    /// permits of it for one request, so that together they keep to it.
    pub(crate) workers: Arc<AtomicU32>,
    /// One of several workers (`run --join`): a request takes its permits as it leaves, not
    /// before its claim (see `dispatch`).
    pub(crate) joined: bool,
    /// A joined worker's lease, which its keeper renews: no request leaves once it has run out.
    pub(crate) lease: Option<Arc<crate::ledger::workers::Lease>>,
}

/// What the dispatcher reports at the end.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) stop: Option<Stop>,
    /// Some contact still needs sending (false when the file was finished).
    pub(crate) work_remains: bool,
    /// Requests still in flight when the drain time ran out (left `sending`).
    pub(crate) abandoned: u64,
    pub(crate) elapsed: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_is_a_stable_reason_and_a_message() {
        let v = serde_json::to_value(Stop::Unauthorized("HTTP 401: no".into())).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"reason": "unauthorized", "message": "HTTP 401: no"})
        );
        assert!(Stop::Feed("x".into()).is_fatal());
        assert!(!Stop::Window.is_fatal());
    }
}
