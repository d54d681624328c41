//! Which failures are sent again, which are recorded, and which stop the run: one function,
//! `classify`, so the policy of docs/cosmobots-api.md §6 lives in one place. Every failure
//! is a typed kind from where it arose; nothing here reads an error's text to decide.

use std::time::Duration;

use bytes::Bytes;

use crate::api::{self, Answer};
use crate::redact::Redactor;

/// Why a connection could not be made: the request surely did not reach the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("cannot resolve {host}: {detail}")]
    Dns { host: String, detail: String },
    #[error("{addr} refused the connection")]
    Refused { addr: String },
    #[error("{what} did not answer in time")]
    Timeout { what: String },
    #[error("the TLS handshake with {host} failed: {detail}")]
    Tls { host: String, detail: String },
    #[error("the proxy {proxy}: {detail}")]
    Proxy { proxy: String, detail: String },
    #[error("cannot connect to {addr}: {detail}")]
    Other { addr: String, detail: String },
}

impl ConnectError {
    /// A short name for the kind, for summaries (`refused`, `dns`, ...).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            ConnectError::Dns { .. } => "dns",
            ConnectError::Refused { .. } => "refused",
            ConnectError::Timeout { .. } => "connect timeout",
            ConnectError::Tls { .. } => "tls",
            ConnectError::Proxy { .. } => "proxy",
            ConnectError::Other { .. } => "connect",
        }
    }
}

/// Why the API may or may not have acted on a request it may have received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ambiguity {
    /// No whole answer within the timeout.
    TimedOut,
    /// The connection broke after the request was (maybe) written.
    Broken(String),
    /// A 2xx answer whose body broke off.
    BodyBroke(String),
}

/// The most of an answer's body that is read (1 MiB). An answer to one send is a few hundred
/// bytes; a larger one is cut there and the rest never read, so that no answer, however long
/// or endless, holds more memory or time than this.
pub(crate) const MAX_ANSWER: usize = 1024 * 1024;

/// What one HTTP attempt produced.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// The API answered with this status and body.
    Response {
        status: u16,
        /// At most `MAX_ANSWER` bytes of it.
        body: Bytes,
        retry_after: Option<Duration>,
        /// The body went on past `MAX_ANSWER`, and the rest was not read.
        cut: bool,
    },
    /// The connection was never made: the request surely did not reach the API.
    NotConnected(ConnectError),
    /// The request may have reached the API.
    Ambiguous(Ambiguity),
}

/// The reason recorded with a failed or unknown contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    Connect,
    Timeout,
    Connection,
    Http(u16),
    ApiError,
    UnrecognisedAnswer,
    /// A 2xx answer longer than `MAX_ANSWER`: cut, so what it said is not known.
    AnswerTooLarge,
}

impl Reason {
    /// As stored in the ledger's `reason` column.
    pub(crate) fn code(self) -> String {
        match self {
            Reason::Connect => "connect".into(),
            Reason::Timeout => "timeout".into(),
            Reason::Connection => "connection".into(),
            Reason::Http(s) => format!("http_{s}"),
            Reason::ApiError => "api_error".into(),
            Reason::UnrecognisedAnswer => "unrecognised_answer".into(),
            Reason::AnswerTooLarge => "answer_too_large".into(),
        }
    }
}

/// What to do about an attempt.
#[derive(Debug, PartialEq)]
pub(crate) enum Verdict {
    Sent {
        contact_id: Option<String>,
        session_id: Option<String>,
        /// The first [`MAX_MESSAGE_IDS`] of the answer's ids.
        message_ids: Vec<String>,
        /// How many ids the answer held.
        message_count: usize,
    },
    Queued {
        queue_id: String,
    },
    /// Safe to send again: the API surely did not act.
    Retry {
        reason: Reason,
        error: String,
        retry_after: Option<Duration>,
        /// The API asked everyone to slow down (429): every sender pauses.
        throttled: bool,
    },
    /// A definite failure for this contact.
    Failed {
        reason: Reason,
        error: String,
    },
    /// The API may or may not have acted; never retried automatically.
    Unknown {
        reason: Reason,
        error: String,
    },
    /// The credentials were refused: stop the whole run.
    Unauthorized {
        error: String,
    },
}

impl Verdict {
    /// Why no connection was made, when every attempt failed to connect (nothing was sent).
    pub(crate) fn unconnected(&self) -> Option<&str> {
        match self {
            Verdict::Failed {
                reason: Reason::Connect,
                error,
            }
            | Verdict::Retry {
                reason: Reason::Connect,
                error,
                ..
            } => Some(error),
            _ => None,
        }
    }
}

/// The most message ids kept for one contact: one per message item is what the API answers,
/// and a campaign has a handful; the count of the rest is kept instead of the ids.
pub(crate) const MAX_MESSAGE_IDS: usize = 100;

/// Text from the API as it is stored and shown: secrets redacted, then cut to `max` bytes. The
/// redaction reads past the cut, so that a secret across it goes whole, but not much further:
/// a body may be megabytes.
fn from_api(text: &str, max: usize, redactor: &Redactor) -> String {
    api::truncate(&redactor.apply(&api::truncate(text.trim(), max * 4)), max)
}

fn body_text(body: &[u8], redactor: &Redactor) -> String {
    from_api(&decoded(body), 300, redactor)
}

/// An error body as text: UTF-16 when its byte-order mark or its NUL bytes say so (a Windows
/// server's `charset=utf-16`), else UTF-8. Read as UTF-8, UTF-16 puts a NUL between the
/// characters of an echoed secret, and the redaction would not see it.
fn decoded(body: &[u8]) -> std::borrow::Cow<'_, str> {
    use encoding_rs::{UTF_16BE, UTF_16LE};
    if let Some(text) = utf32(body) {
        return std::borrow::Cow::Owned(text);
    }
    let nuls_at = |parity: usize| {
        let pairs = body.len() / 2;
        pairs > 0
            && body
                .iter()
                .skip(parity)
                .step_by(2)
                .filter(|&&b| b == 0)
                .count()
                * 2
                > pairs
    };
    let encoding = match encoding_rs::Encoding::for_bom(body) {
        Some((enc, _)) => enc,
        None if nuls_at(1) => UTF_16LE,
        None if nuls_at(0) => UTF_16BE,
        None => return String::from_utf8_lossy(body),
    };
    encoding.decode_with_bom_removal(body).0
}

/// A body in UTF-32, by its byte-order mark or, without one, by three NUL bytes in most of its
/// four-byte groups (encoding_rs reads no UTF-32, and read as UTF-16 an echoed secret would
/// keep a NUL between its characters).
fn utf32(body: &[u8]) -> Option<String> {
    let (little, start) = match body {
        [0xFF, 0xFE, 0, 0, ..] => (true, 4),
        [0, 0, 0xFE, 0xFF, ..] => (false, 4),
        _ if body.len() >= 4 && body.len().is_multiple_of(4) => {
            let groups = body.len() / 4;
            let narrow = |nul: [usize; 3]| {
                body.chunks_exact(4)
                    .filter(|q| nul.iter().all(|&i| q[i] == 0))
                    .count()
                    * 2
                    > groups
            };
            if narrow([1, 2, 3]) {
                (true, 0)
            } else if narrow([0, 1, 2]) {
                (false, 0)
            } else {
                return None;
            }
        }
        _ => return None,
    };
    Some(
        body[start..]
            .chunks_exact(4)
            .map(|q| {
                let q = [q[0], q[1], q[2], q[3]];
                let unit = if little {
                    u32::from_le_bytes(q)
                } else {
                    u32::from_be_bytes(q)
                };
                char::from_u32(unit).unwrap_or('\u{FFFD}')
            })
            .collect(),
    )
}

/// The retry policy of docs/cosmobots-api.md §6.
pub(crate) fn classify(attempt: &Attempt, redactor: &Redactor) -> Verdict {
    match attempt {
        Attempt::NotConnected(e) => Verdict::Retry {
            reason: Reason::Connect,
            error: redactor.apply(&e.to_string()),
            retry_after: None,
            throttled: false,
        },
        Attempt::Ambiguous(Ambiguity::TimedOut) => Verdict::Unknown {
            reason: Reason::Timeout,
            error: "no answer within the timeout (api.timeout); the request may have arrived"
                .into(),
        },
        Attempt::Ambiguous(Ambiguity::Broken(e) | Ambiguity::BodyBroke(e)) => Verdict::Unknown {
            reason: Reason::Connection,
            error: format!(
                "the connection broke after the request was sent: {}",
                redactor.apply(e)
            ),
        },
        Attempt::Response {
            status,
            body,
            cut: true,
            ..
        } if (200..300).contains(status) => Verdict::Unknown {
            reason: Reason::AnswerTooLarge,
            error: format!(
                "HTTP {status} with an answer too large (over {} KiB; the rest was not read), so whether the API sent the message is not known: {}",
                MAX_ANSWER / 1024,
                body_text(body, redactor)
            ),
        },
        Attempt::Response {
            status,
            body,
            retry_after,
            ..
        } => response(*status, body, *retry_after, redactor),
    }
}

fn response(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    redactor: &Redactor,
) -> Verdict {
    let text = || format!("HTTP {status}: {}", body_text(body, redactor));
    match status {
        200..=299 => match api::parse_answer(body) {
            Answer::Sent {
                contact_id,
                session_id,
                message_ids,
            } => Verdict::Sent {
                // Ids are stored and shown like any text from the API (a short secret inside
                // one is left: see `apply_to_id`).
                contact_id: contact_id.map(|id| redactor.apply_to_id(&id)),
                session_id: session_id.map(|id| redactor.apply_to_id(&id)),
                message_ids: message_ids
                    .iter()
                    .take(MAX_MESSAGE_IDS)
                    .map(|id| redactor.apply_to_id(id))
                    .collect(),
                message_count: message_ids.len(),
            },
            Answer::Queued { queue_id } => Verdict::Queued {
                queue_id: redactor.apply_to_id(&queue_id),
            },
            Answer::Error { reason } => Verdict::Failed {
                reason: Reason::ApiError,
                error: from_api(&reason, 1000, redactor),
            },
            Answer::Unrecognised { raw } => Verdict::Unknown {
                reason: Reason::UnrecognisedAnswer,
                error: format!(
                    "HTTP {status} with a body that is neither sent nor queued: {}",
                    from_api(&raw, 500, redactor)
                ),
            },
        },
        401 | 403 => Verdict::Unauthorized { error: text() },
        429 | 502 | 503 => Verdict::Retry {
            reason: Reason::Http(status),
            error: text(),
            retry_after,
            throttled: status == 429,
        },
        400..=499 => Verdict::Failed {
            reason: Reason::Http(status),
            error: text(),
        },
        _ => Verdict::Unknown {
            reason: Reason::Http(status),
            error: format!(
                "HTTP {status} after the request was sent: {}",
                body_text(body, redactor)
            ),
        },
    }
}

/// The wait before attempt `n` (1 = the first retry): `base * 2^(n-1)`, capped at 60 s, with
/// jitter between half and all of it so that senders do not retry in step. A `Retry-After`
/// (already within `send.max_wait`) is waited out in full.
pub(crate) fn backoff(base: Duration, n: u32, retry_after: Option<Duration>) -> Duration {
    let cap = Duration::from_secs(60);
    let exp = base
        .saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(cap);
    let jittered = exp.mul_f64(0.5 + fastrand::f64() * 0.5);
    match retry_after {
        Some(r) => r.max(jittered),
        None => jittered,
    }
}

/// Longer than any wait a run honours: a `Retry-After` is held to this, so that the time it
/// names stays a time a clock can reach (it is compared with `send.max_wait`, at most a year).
const FOREVER: Duration = Duration::from_secs(400 * 365 * 86_400);

/// Reads a `Retry-After` header: seconds, or an HTTP date (waits until then).
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if let Ok(s) = v.parse::<f64>() {
        return (s.is_finite() && s >= 0.0)
            .then(|| Duration::from_secs_f64(s.min(FOREVER.as_secs_f64())));
    }
    // An HTTP date (RFC 9110 IMF-fixdate, which RFC 2822 parsing accepts).
    let when = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let wait = jiff::Timestamp::now().duration_until(when);
    Some(Duration::try_from(wait).unwrap_or_default().min(FOREVER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> Attempt {
        Attempt::Response {
            status,
            body: Bytes::copy_from_slice(body.as_bytes()),
            retry_after: None,
            cut: false,
        }
    }

    fn verdict(status: u16, body: &str) -> Verdict {
        classify(&resp(status, body), &Redactor::default())
    }

    fn unknown(reason: Reason) -> impl Fn(&Verdict) -> bool {
        move |v| matches!(v, Verdict::Unknown { reason: r, .. } if *r == reason)
    }

    #[test]
    fn answers_that_settle_the_contact() {
        assert!(matches!(
            verdict(200, r#"{"status":"sent","message_ids":["a"]}"#),
            Verdict::Sent { .. }
        ));
        assert!(matches!(
            verdict(202, r#"{"id":"q"}"#),
            Verdict::Queued { .. }
        ));
        assert!(matches!(
            verdict(200, r#"{"status":"error"}"#),
            Verdict::Failed {
                reason: Reason::ApiError,
                ..
            }
        ));
        assert!(unknown(Reason::UnrecognisedAnswer)(&verdict(200, "ok")));
    }

    #[test]
    fn a_cut_answer_is_unknown_after_a_2xx_and_keeps_its_status_otherwise() {
        let cut = |status: u16| Attempt::Response {
            status,
            body: Bytes::from_static(b"{\"status\":\"sent\",\"message_ids\":[\"a\""),
            retry_after: None,
            cut: true,
        };
        let v = classify(&cut(200), &Redactor::default());
        assert!(unknown(Reason::AnswerTooLarge)(&v), "{v:?}");
        let v = classify(&cut(400), &Redactor::default());
        assert!(
            matches!(&v, Verdict::Failed { reason: Reason::Http(400), error } if error.contains("message_ids")),
            "{v:?}"
        );
    }

    #[test]
    fn at_most_a_hundred_message_ids_are_kept_with_their_count() {
        let ids: Vec<String> = (0..250).map(|i| format!("m{i}")).collect();
        let body = serde_json::json!({"status": "sent", "message_ids": ids}).to_string();
        let Verdict::Sent {
            message_ids,
            message_count,
            ..
        } = verdict(200, &body)
        else {
            panic!()
        };
        assert_eq!(message_ids.len(), MAX_MESSAGE_IDS);
        assert_eq!(message_ids[99], "m99");
        assert_eq!(message_count, 250);
    }

    #[test]
    fn refused_credentials_stop_the_run() {
        for s in [401, 403] {
            assert!(
                matches!(verdict(s, ""), Verdict::Unauthorized { .. }),
                "{s}"
            );
        }
    }

    #[test]
    fn only_what_surely_did_not_act_is_retried() {
        for s in [429, 502, 503] {
            match verdict(s, "") {
                Verdict::Retry {
                    reason, throttled, ..
                } => {
                    assert_eq!(reason, Reason::Http(s));
                    assert_eq!(throttled, s == 429);
                }
                v => panic!("{s}: {v:?}"),
            }
        }
        let refused = Attempt::NotConnected(ConnectError::Refused {
            addr: "127.0.0.1:1".into(),
        });
        assert!(matches!(
            classify(&refused, &Redactor::default()),
            Verdict::Retry {
                reason: Reason::Connect,
                ..
            }
        ));
    }

    #[test]
    fn client_errors_fail_the_contact() {
        for s in [400, 404, 408, 422] {
            assert!(
                matches!(verdict(s, ""), Verdict::Failed { reason: Reason::Http(r), .. } if r == s),
                "{s}"
            );
        }
    }

    #[test]
    fn server_errors_after_sending_are_unknown() {
        for s in [500, 504] {
            assert!(unknown(Reason::Http(s))(&verdict(s, "")), "{s}");
        }
        let timed_out = classify(
            &Attempt::Ambiguous(Ambiguity::TimedOut),
            &Redactor::default(),
        );
        assert!(unknown(Reason::Timeout)(&timed_out));
        let broken = classify(
            &Attempt::Ambiguous(Ambiguity::Broken("reset".into())),
            &Redactor::default(),
        );
        assert!(unknown(Reason::Connection)(&broken));
    }

    #[test]
    fn echoed_secrets_are_redacted() {
        let r = Redactor::new(&["tok-SECRET-1", "chan-42x"]);
        let v = classify(
            &resp(400, r#"{"error":"bad token=tok-SECRET-1 for chan-42x"}"#),
            &r,
        );
        let Verdict::Failed { error, .. } = v else {
            panic!("{v:?}")
        };
        assert!(
            !error.contains("SECRET") && !error.contains("chan-42x"),
            "{error}"
        );
        assert!(error.contains("<redacted>"), "{error}");
        let v = classify(
            &resp(
                200,
                r#"{"status":"error","message":"token tok-SECRET-1 expired"}"#,
            ),
            &r,
        );
        assert!(matches!(v, Verdict::Failed { error, .. } if !error.contains("SECRET")));
        // A body in UTF-16 (a Windows server's), with its mark or without: read as text first.
        let text = "bad token=tok-SECRET-1";
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let marked: Vec<u8> = [0xFF, 0xFE].into_iter().chain(le.clone()).collect();
        // And in UTF-32, with its mark (Python's "utf-32") or without.
        let le32: Vec<u8> = text
            .chars()
            .flat_map(|c| (c as u32).to_le_bytes())
            .collect();
        let be32: Vec<u8> = text
            .chars()
            .flat_map(|c| (c as u32).to_be_bytes())
            .collect();
        let marked32: Vec<u8> = [0xFF, 0xFE, 0, 0].into_iter().chain(le32.clone()).collect();
        for body in [le, be, marked, le32, be32, marked32] {
            let attempt = Attempt::Response {
                status: 400,
                body: Bytes::from(body),
                retry_after: None,
                cut: false,
            };
            let Verdict::Failed { error, .. } = classify(&attempt, &r) else {
                panic!("a failure")
            };
            assert_eq!(error, "HTTP 400: bad token=<redacted>");
        }
    }

    #[test]
    fn a_secret_across_the_cut_or_in_an_id_is_redacted_whole() {
        let r = Redactor::new(&["tok-SECRET-123456"]);
        let body = format!("{}tok-SECRET-123456 and more", "x".repeat(290));
        let v = classify(&resp(400, &body), &r);
        let Verdict::Failed { error, .. } = v else {
            panic!("{v:?}")
        };
        assert!(!error.contains("tok-SECRET"), "{error}");
        let v = classify(
            &resp(
                200,
                r#"{"status":"sent","message_ids":["tok-SECRET-123456"]}"#,
            ),
            &r,
        );
        let Verdict::Sent { message_ids, .. } = v else {
            panic!("{v:?}")
        };
        assert_eq!(message_ids, ["<redacted>"]);
        // A 2xx answer neither sent nor queued, and an error without a reason, are redacted
        // before they are cut: a secret's base64 across the cut leaves nothing of it behind.
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode("tok-SECRET-123456");
        for at in 480..500 {
            for answer in [
                format!(r#"{{"debug":"{}{encoded}"}}"#, "a".repeat(at)),
                format!(
                    r#"{{"status":"error","debug":"{}{encoded}"}}"#,
                    "a".repeat(at)
                ),
            ] {
                let (Verdict::Unknown { error, .. } | Verdict::Failed { error, .. }) =
                    classify(&resp(200, &answer), &r)
                else {
                    panic!("{answer}")
                };
                assert!(!error.contains(&encoded[..8]), "{at}: {error}");
            }
        }
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
