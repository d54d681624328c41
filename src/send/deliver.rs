//! One contact's delivery: attempts, the retry policy, and what the retries wait for. `run`'s
//! senders and `test --to` both go through `deliver`, so they share the encoder, the policy and
//! its messages; what differs (the ledger claim given back during a wait, the run-wide pause
//! after a 429) is the `Around` they pass.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use super::client::Client;
use super::retry::{Attempt, ConnectError, Verdict, backoff, classify};

/// The retry policy's numbers (`send.retries`, `send.backoff`, `send.max_wait`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub(crate) retries: u32,
    pub(crate) backoff: Duration,
    pub(crate) max_wait: Duration,
}

/// What a delivery does between attempts.
pub(crate) trait Around {
    /// Attempt `next` is due after `wait`; false when nothing more may be sent (the run is
    /// stopping): the delivery then ends without an outcome.
    fn before_retry(&self, next: u32, wait: Duration) -> impl Future<Output = bool> + Send;
    /// The API asked to slow down for this long.
    fn throttled(&self, pause: Duration);
    /// The connection could not be made; false when retrying is pointless (the API has never
    /// been reached in this run).
    fn not_connected(&self, e: &ConnectError) -> bool;
    /// The API answered something, so it can be reached.
    fn reached(&self);
    /// The API asked to wait this long (`Retry-After`) before the next attempt.
    fn asked(&self, _wait: Duration) {}
    /// The API asked for a wait longer than `send.max_wait`: the request surely did not act,
    /// and the delivery ends without an outcome (the contact is owed nothing).
    fn wait_refused(&self, asked: Duration);
}

/// How a delivery ended.
#[derive(Debug)]
pub(crate) enum Delivery {
    Done {
        verdict: Verdict,
        http_status: Option<u16>,
    },
    /// Stopped between attempts: the contact was not sent by the last attempt, and is owed
    /// nothing (its claim is already given back).
    Abandoned,
    /// The API asked to wait this long, beyond `send.max_wait`; not sent, owed nothing.
    WaitRefused(Duration),
}

/// Sends `body` until it settles or the policy gives up.
pub(crate) async fn deliver(
    client: &Client,
    body: &Bytes,
    policy: Policy,
    around: &impl Around,
) -> Delivery {
    let mut attempts = 1u32;
    loop {
        let attempt = client.send(body.clone()).await;
        let http_status = match &attempt {
            Attempt::Response { status, .. } => Some(*status),
            _ => None,
        };
        match &attempt {
            Attempt::NotConnected(e) => {
                if !around.not_connected(e) {
                    return Delivery::Abandoned;
                }
            }
            _ => around.reached(),
        }
        let verdict = classify(&attempt, client.redactor());
        let Verdict::Retry {
            reason,
            error,
            retry_after,
            throttled,
        } = verdict
        else {
            return Delivery::Done {
                verdict,
                http_status,
            };
        };
        if let Some(asked) = retry_after {
            if asked > policy.max_wait {
                around.wait_refused(asked);
                return Delivery::WaitRefused(asked);
            }
            around.asked(asked);
        }
        if throttled {
            around.throttled(retry_after.unwrap_or(policy.backoff));
        }
        if attempts > policy.retries {
            return Delivery::Done {
                verdict: Verdict::Failed {
                    reason,
                    error: format!(
                        "{error} (after {})",
                        crate::text::count(u64::from(attempts), "attempt")
                    ),
                },
                http_status,
            };
        }
        let wait = backoff(policy.backoff, attempts, retry_after);
        if !around.before_retry(attempts + 1, wait).await {
            return Delivery::Abandoned;
        }
        attempts += 1;
    }
}
