//! Which failures are sent again, which are recorded, and which stop the run: one function,
//! `classify`, so the policy of contract §3 lives in one place.

use std::time::Duration;

use crate::api::{self, Answer};

/// What one HTTP attempt produced.
#[derive(Debug)]
pub enum Attempt {
    /// The API answered with this status and body.
    Response {
        status: u16,
        body: Vec<u8>,
        retry_after: Option<Duration>,
    },
    /// The connection was never made: the request surely did not reach the API.
    NotConnected(String),
    /// The request may have reached the API: timeout, reset mid-request, broken body.
    Ambiguous(String),
}

/// What to do about an attempt.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Sent {
        contact_id: Option<String>,
        session_id: Option<String>,
        message_ids: Vec<String>,
    },
    Queued {
        queue_id: String,
    },
    /// Safe to send again: the API surely did not act.
    Retry {
        reason: String,
        error: String,
        retry_after: Option<Duration>,
    },
    /// A definite failure for this contact.
    Failed {
        reason: String,
        error: String,
    },
    /// The API may or may not have acted; never retried automatically.
    Unknown {
        reason: String,
        error: String,
    },
    /// The credentials were refused: stop the whole run.
    Unauthorized {
        error: String,
    },
}

fn body_text(body: &[u8]) -> String {
    api::truncate(String::from_utf8_lossy(body).trim(), 300)
}

/// The retry policy of contract §3 and cosmobots-api.md §7.
pub fn classify(attempt: &Attempt) -> Verdict {
    match attempt {
        Attempt::NotConnected(e) => Verdict::Retry {
            reason: "connect".into(),
            error: e.clone(),
            retry_after: None,
        },
        Attempt::Ambiguous(e) => Verdict::Unknown {
            reason: if e.contains("timed out") {
                "timeout".into()
            } else {
                "connection".into()
            },
            error: e.clone(),
        },
        Attempt::Response {
            status,
            body,
            retry_after,
        } => match *status {
            200..=299 => match api::parse_answer(body) {
                Answer::Sent {
                    contact_id,
                    session_id,
                    message_ids,
                } => Verdict::Sent {
                    contact_id,
                    session_id,
                    message_ids,
                },
                Answer::Queued { queue_id } => Verdict::Queued { queue_id },
                Answer::Error { reason } => Verdict::Failed {
                    reason: "api_error".into(),
                    error: reason,
                },
                Answer::Unrecognised { raw } => Verdict::Unknown {
                    reason: "unrecognised_answer".into(),
                    error: format!(
                        "HTTP {status} with a body that is neither sent nor queued: {raw}"
                    ),
                },
            },
            401 | 403 => Verdict::Unauthorized {
                error: format!("HTTP {status}: {}", body_text(body)),
            },
            429 | 502 | 503 => Verdict::Retry {
                reason: format!("http_{status}"),
                error: format!("HTTP {status}: {}", body_text(body)),
                retry_after: *retry_after,
            },
            400..=499 => Verdict::Failed {
                reason: format!("http_{status}"),
                error: format!("HTTP {status}: {}", body_text(body)),
            },
            _ => Verdict::Unknown {
                reason: format!("http_{status}"),
                error: format!(
                    "HTTP {status} after the request was sent: {}",
                    body_text(body)
                ),
            },
        },
    }
}

/// The wait before attempt `n` (1 = the first retry): `base * 2^(n-1)`, capped at 60 s, with
/// jitter between half and all of it so that senders do not retry in step.
pub fn backoff(base: Duration, n: u32, retry_after: Option<Duration>) -> Duration {
    let cap = Duration::from_secs(60);
    let exp = base
        .saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(cap);
    let jittered = exp.mul_f64(0.5 + fastrand::f64() * 0.5);
    match retry_after {
        Some(r) => r.min(cap * 5).max(jittered),
        None => jittered,
    }
}

/// Reads a `Retry-After` header: seconds (an HTTP date is treated as one second).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if let Ok(s) = v.parse::<f64>() {
        return (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(3600.0)));
    }
    // An HTTP date (RFC 9110 IMF-fixdate, which RFC 2822 parsing accepts): wait until then.
    let when = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let wait = jiff::Timestamp::now().duration_until(when);
    Some(
        Duration::try_from(wait)
            .unwrap_or_default()
            .min(Duration::from_secs(3600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> Attempt {
        Attempt::Response {
            status,
            body: body.as_bytes().to_vec(),
            retry_after: None,
        }
    }

    #[test]
    fn policy() {
        assert!(matches!(
            classify(&resp(200, r#"{"status":"sent","message_ids":["a"]}"#)),
            Verdict::Sent { .. }
        ));
        assert!(matches!(
            classify(&resp(202, r#"{"id":"q"}"#)),
            Verdict::Queued { .. }
        ));
        assert!(matches!(
            classify(&resp(200, r#"{"status":"error"}"#)),
            Verdict::Failed { .. }
        ));
        assert!(matches!(
            classify(&resp(200, "ok")),
            Verdict::Unknown { .. }
        ));
        assert!(matches!(
            classify(&resp(401, "")),
            Verdict::Unauthorized { .. }
        ));
        assert!(matches!(
            classify(&resp(403, "")),
            Verdict::Unauthorized { .. }
        ));
        for s in [429, 502, 503] {
            assert!(
                matches!(classify(&resp(s, "")), Verdict::Retry { .. }),
                "{s}"
            );
        }
        for s in [400, 404, 422] {
            assert!(
                matches!(classify(&resp(s, "")), Verdict::Failed { .. }),
                "{s}"
            );
        }
        for s in [500, 504, 408] {
            let v = classify(&resp(s, ""));
            assert!(
                matches!(v, Verdict::Unknown { .. } | Verdict::Failed { .. }),
                "{s}"
            );
        }
        assert!(matches!(classify(&resp(500, "")), Verdict::Unknown { .. }));
        assert!(matches!(
            classify(&Attempt::NotConnected("refused".into())),
            Verdict::Retry { .. }
        ));
        assert!(matches!(
            classify(&Attempt::Ambiguous("timed out".into())),
            Verdict::Unknown { .. }
        ));
    }

    #[test]
    fn backoff_grows_and_caps() {
        let b = Duration::from_secs(1);
        for n in 1..10 {
            let d = backoff(b, n, None);
            let exp = Duration::from_secs(1 << (n - 1)).min(Duration::from_secs(60));
            assert!(d <= exp && d >= exp / 2, "{n}: {d:?}");
        }
        assert!(backoff(b, 1, Some(Duration::from_secs(5))) >= Duration::from_secs(5));
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(30);
        let header =
            jiff::fmt::rfc2822::to_string(&later.to_zoned_datetime(jiff::tz::TimeZone::UTC))
                .unwrap();
        let d = parse_retry_after(&header).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
