//! The webhook listener: `POST /webhook/<secret>` stores each CosmoBots delivery (replies,
//! button clicks) in the ledger, tied to the campaign that last messaged the contact, and puts
//! opt-outs on the ledger's list. It faces strangers, so the secret is checked before the body
//! is read, reads have timeouts, and connections are capped: those still sending their request
//! head per source and in all (`gate.rs`), the requests served at once by `--max-connections`.
//! Anything else gets 404; a body that is not a JSON object gets 400.
//!
//! Everything between a post and its row in the ledger is in this folder, so that `listen` has
//! one place to read: `gate.rs` admits connections, `parse.rs` reads bodies and opt-out words,
//! `store.rs` writes them.

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use tower_http::timeout::{RequestBodyTimeout, TimeoutError, TimeoutLayer};

use crate::printer::{Printer, log};
use gate::{Caps, Full, Gate, PROBATION, Pending};
use store::{OptOut, ReplyWriter, ReplyWriterThread};

pub(crate) mod gate;
pub(crate) mod parse;
pub(crate) mod store;

/// The variable holding the webhook path's secret (read by `listen` and `sandbox --webhook`).
pub(crate) const SECRET_VAR: &str = "COSMOCAST_WEBHOOK_SECRET";

/// The largest body accepted; a webhook delivery is a few KB.
pub(crate) const MAX_BODY: usize = 256 * 1024;

/// The shortest webhook secret accepted: the path is the only thing that keeps strangers out.
pub(crate) const MIN_SECRET: usize = 16;

/// The secret as the webhook path holds it (trimmed), when it is long enough to use: the
/// listener that checks the path and the sandbox that posts to it must agree.
pub(crate) fn usable_secret(raw: &str) -> Option<&str> {
    Some(raw.trim()).filter(|s| s.len() >= MIN_SECRET)
}

/// How long a client may take to send a request's head, and may leave its body waiting for the
/// next bytes. A webhook sender writes its request at once; only a stalled or hostile client
/// needs longer, and until its head is complete it holds a pending place (`gate.rs`).
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Requests served at once, from a complete head to the answer. A delivery takes milliseconds,
/// so this is far above any real sender's concurrency; more wait for a slot, and memory stays
/// bounded: at most this many bodies of `MAX_BODY` are in memory.
pub(crate) const MAX_CONNECTIONS: u32 = 256;

/// Connections still sending their head, in all, for each request served at once: a burst of
/// real requests is accepted faster than its heads arrive (the thousand posts at once of
/// `a_thousand_concurrent_posts_are_all_answered_and_stored_once` in tests/it/replies.rs had up to
/// 440 heads on the way at a time, on 2 cores).
const PENDING_PER_SERVED: usize = 4;

/// The longest a whole request may take, body and commit included: a body that keeps trickling
/// one byte before each read timeout cannot hold its slot longer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest request line and headers accepted (hyper's buffer; it answers 431 beyond).
const MAX_HEAD: usize = 64 * 1024;

/// The pause after a failed accept (out of file descriptors, say), so the loop does not spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// How often each kind of full house is logged while it lasts.
const FULL_NOTE_EVERY: Duration = Duration::from_secs(60);

pub(crate) struct Config {
    pub(crate) secret: String,
    /// Applied to what a delivery carries before it is stored.
    pub(crate) redactor: crate::redact::Redactor,
    pub(crate) opt_out_words: Vec<String>,
    pub(crate) horizon: Duration,
    /// The region of phones that come without their country code (`--country`).
    pub(crate) country: Option<crate::phone::Region>,
    /// What `-q` silences: every log line but the warnings someone must act on.
    pub(crate) printer: Printer,
    pub(crate) read_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) max_pending_per_addr: usize,
}

struct AppState {
    cfg: Config,
    writer: ReplyWriter,
    /// Deliveries answered 500: the ledger could not store them.
    unstored: Arc<std::sync::atomic::AtomicU64>,
}

/// Constant-time comparison, so the secret cannot be guessed byte by byte from timings.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// An answer after which the connection closes: the body was not read (or not all of it), so
/// the connection cannot carry another request.
fn closing(status: StatusCode, error: Option<String>) -> Response {
    let mut r = match error {
        Some(e) => (status, axum::Json(json!({ "error": e }))).into_response(),
        None => status.into_response(),
    };
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

async fn not_found() -> Response {
    closing(StatusCode::NOT_FOUND, None)
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Why a body could not be read, from the error's chain.
fn unread(err: axum::Error) -> (StatusCode, &'static str) {
    let err = err.into_inner();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&*err);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return (StatusCode::PAYLOAD_TOO_LARGE, "the body is over 256 KiB");
        }
        if c.is::<TimeoutError>() {
            return (StatusCode::REQUEST_TIMEOUT, "the body stopped arriving");
        }
        cause = c.source();
    }
    (StatusCode::BAD_REQUEST, "the body could not be read")
}

async fn webhook(
    State(st): State<Arc<AppState>>,
    Path(secret): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Nothing of the body is read for a stranger.
    if !same(&secret, &st.cfg.secret) {
        return closing(StatusCode::NOT_FOUND, None);
    }
    let log = |line: String| st.cfg.printer.info(format_args!("listen: {line}"));
    if declared_length(&headers).is_some_and(|n| n > MAX_BODY as u64) {
        log("413 a body over 256 KiB was announced; not read".into());
        return closing(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("the body is over 256 KiB".into()),
        );
    }
    let body: Bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            let (status, why) = unread(e);
            log(format!("{} {why}", status.as_u16()));
            return closing(status, Some(why.into()));
        }
    };
    let reply = match parse::parse_in(&body, st.cfg.country.as_ref()) {
        Ok(r) => r,
        Err(e) => {
            log(format!(
                "400 not a webhook delivery ({} bytes): {e}",
                body.len()
            ));
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": e.to_string() })),
            )
                .into_response();
        }
    };
    // Only a typed reply opts out: a click on the campaign's own button titled "Cancelar" or
    // worth "STOP" answers the campaign (it is stored as a click).
    let opt_out = reply.payload.is_none()
        && reply
            .text
            .as_deref()
            .is_some_and(|t| parse::is_opt_out(t, &st.cfg.opt_out_words));
    let reply = reply.redacted(&st.cfg.redactor);
    let without_country = reply.phone_without_country;
    match st.writer.store(reply, opt_out).await {
        Ok(stored) => {
            if stored.new {
                log_stored(&stored, without_country, st.cfg.printer);
            }
            (StatusCode::OK, axum::Json(json!({"stored": stored.new}))).into_response()
        }
        Err(e) => {
            st.unstored
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            log!("listen: 500 {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"error": e})),
            )
                .into_response()
        }
    }
}

/// The log line of a reply stored, and a warning when its phone could not be read whole. The
/// warnings are said even with `-q`: someone must act on them (an opt-out that put nobody on
/// the list, a listener that needs `--country`).
fn log_stored(stored: &store::Stored, without_country: bool, printer: Printer) {
    if stored.opt_out == OptOut::NoPhone {
        printer.important(format_args!(
            "listen: warning: a reply is an opt-out phrase but names no phone (nor a contact id the ledger knows), so nobody was added to the suppression list; check that the webhook body carries the phone as contact.mobile_phone, contact.phone or contact.mobilePhone (docs/cosmobots-api.md §4), and add the number with `cosmocast optouts add PHONE`; the reply is kept with opt_out = 1"
        ));
    }
    printer.info(format_args!(
        "listen: stored a reply{}{}{}",
        stored
            .id
            .map(|id| format!(" (id {id})"))
            .unwrap_or_default(),
        match (stored.campaign.as_deref(), stored.key.as_deref()) {
            (Some(c), Some(k)) =>
                format!(" for campaign {c}, contact {}", crate::text::printable(k)),
            (Some(c), None) => format!(" for campaign {c}"),
            _ => " (no campaign matched)".into(),
        },
        match stored.opt_out {
            OptOut::Added => "; the phone is now opted out",
            OptOut::Listed => "; the phone was opted out already",
            OptOut::NotAsked | OptOut::NoPhone => "",
        }
    ));
    if without_country {
        printer.important(format_args!(
            "listen: warning: that reply's phone has no country code, so it matches no campaign's phones{}; start listen with --country (e.g. --country BR) to read such numbers",
            if matches!(stored.opt_out, OptOut::Added | OptOut::Listed) {
                " and its opt-out holds only for campaigns whose contacts.country is its country"
            } else {
                ""
            }
        ));
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/webhook/{secret}", post(webhook).fallback(not_found))
        .fallback(not_found)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(state)
}

/// A running listener.
pub(crate) struct Listener {
    pub(crate) addr: SocketAddr,
    /// The campaigns the ledger held when the listener started, oldest first.
    pub(crate) campaigns: Vec<String>,
    task: tokio::task::JoinHandle<()>,
    writer: ReplyWriterThread,
    unstored: Arc<std::sync::atomic::AtomicU64>,
}

impl Listener {
    /// Waits for the server to drain (after the stop token fires) and the writer to commit;
    /// returns how many deliveries were answered 500, not stored.
    pub(crate) async fn wait(self) -> u64 {
        let _ = self.task.await;
        let writer = self.writer;
        let _ = tokio::task::spawn_blocking(move || writer.finish()).await;
        self.unstored.load(std::sync::atomic::Ordering::Relaxed)
    }
}

pub(crate) async fn start(
    cfg: Config,
    addr: SocketAddr,
    ledger: &crate::ledger::Place,
    stop: CancellationToken,
) -> anyhow::Result<Listener> {
    let writer = ReplyWriterThread::start(ledger, cfg.horizon)?;
    let limits = Limits {
        read_timeout: cfg.read_timeout,
        max_connections: cfg.max_connections.max(1),
        max_pending_per_addr: cfg.max_pending_per_addr.max(1),
        printer: cfg.printer,
    };
    let unstored = Arc::default();
    let app = router(Arc::new(AppState {
        cfg,
        writer: writer.handle.clone(),
        unstored: Arc::clone(&unstored),
    }));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(serve(listener, app, limits, stop));
    Ok(Listener {
        addr,
        campaigns: writer.campaigns.clone(),
        task,
        writer,
        unstored,
    })
}

struct Limits {
    read_timeout: Duration,
    max_connections: usize,
    max_pending_per_addr: usize,
    printer: Printer,
}

impl Limits {
    /// Connections still sending their head, from every source together.
    fn max_pending(&self) -> usize {
        self.max_connections.saturating_mul(PENDING_PER_SERVED)
    }

    fn caps(&self) -> Caps {
        Caps {
            held_per_source: self.max_pending_per_addr,
            total: self.max_pending(),
        }
    }
}

/// Accepts while a socket slot is free, closes at once a connection whose source (or the whole
/// house) already has its share of connections still sending their head, serves each other
/// connection on its own task, and on `stop` lets the requests in progress finish.
async fn serve(listener: TcpListener, app: Router, limits: Limits, stop: CancellationToken) {
    // The body's timeout wraps the router from outside: inside, axum's body type is fixed.
    let service = TowerToHyperService::new(RequestBodyTimeout::new(app, limits.read_timeout));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .max_buf_size(MAX_HEAD)
        // One request a connection: a connection is pending only until its one head is read,
        // never again while idling between requests, and is closed once answered.
        .keep_alive(false);
    let gate = Gate::new(limits.caps());
    let served = Arc::new(Semaphore::new(limits.max_connections));
    // Every socket is pending, served, or has its head read and waits to be served; the last
    // are real requests, so beyond this many sockets new ones wait in the kernel's queue.
    let sockets = Arc::new(Semaphore::new(
        limits.max_connections.saturating_add(limits.max_pending()),
    ));
    let graceful = GracefulShutdown::new();
    let mut notes = Notes::default();
    loop {
        let Some(socket) = socket_slot(&sockets, &limits, &mut notes, &stop).await else {
            break;
        };
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    limits
                        .printer
                        .info(format_args!("listen: cannot accept a connection: {e}"));
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            },
        };
        let pending = match gate.enter(peer.ip()) {
            Ok(pending) => pending,
            Err(full) => {
                notes.refused(full, &limits);
                // Dropping the stream closes it: turned away at once, never queued.
                continue;
            }
        };
        let probation = pending.on_probation();
        let (arrived, head) = oneshot::channel();
        let service = Admitted {
            inner: service.clone(),
            waiting: Cell::new(Some(Waiting {
                _place: pending,
                _arrived: arrived,
            })),
            served: Arc::clone(&served),
        };
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            if probation {
                tokio::select! {
                    _ = conn.as_mut() => {}
                    // Ok or closed: the head was read, or the connection has ended; an elapsed
                    // probation drops the connection, which closes it.
                    read = tokio::time::timeout(PROBATION, head) => if read.is_ok() {
                        let _ = conn.await;
                    },
                }
            } else {
                let _ = conn.await;
            }
            // The connection (and its socket) is gone before its slot is given back.
            drop(socket);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A socket slot, waiting for one (and saying so) when every slot is held; `None` once stopped.
async fn socket_slot(
    sockets: &Arc<Semaphore>,
    limits: &Limits,
    notes: &mut Notes,
    stop: &CancellationToken,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(slot) = Arc::clone(sockets).try_acquire_owned() {
        return Some(slot);
    }
    if !limits.printer.is_quiet() && Notes::due(&mut notes.sockets) {
        limits.printer.info(format_args!(
            "listen: {} requests are being served, the most --max-connections allows, and {} more wait; new connections wait until one closes",
            limits.max_connections,
            limits.max_pending()
        ));
    }
    tokio::select! {
        _ = stop.cancelled() => None,
        slot = Arc::clone(sockets).acquire_owned() => slot.ok(),
    }
}

/// The service hyper calls for each request of a connection.
type Inner = TowerToHyperService<RequestBodyTimeout<Router>>;
type Answer = <Inner as hyper::service::Service<Request<Incoming>>>::Response;
type Failure = <Inner as hyper::service::Service<Request<Incoming>>>::Error;

/// What a connection holds until its head is read: its pending place, and the sender whose
/// drop tells the connection's task that the head has arrived.
struct Waiting {
    _place: Pending,
    _arrived: oneshot::Sender<()>,
}

/// One connection's service. hyper calls it only once a request's head has been read, so the
/// call gives back the connection's pending place, then waits for one of the `--max-connections`
/// slots and holds it until the request is answered.
struct Admitted {
    inner: Inner,
    waiting: Cell<Option<Waiting>>,
    served: Arc<Semaphore>,
}

impl hyper::service::Service<Request<Incoming>> for Admitted {
    type Response = Answer;
    type Error = Failure;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, Failure>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        drop(self.waiting.take());
        let served = Arc::clone(&self.served);
        let inner = self.inner.clone();
        Box::pin(async move {
            // The semaphore is never closed: this waits until a slot is free.
            let _slot = served.acquire_owned().await;
            hyper::service::Service::call(&inner, req).await
        })
    }
}

/// When each kind of full house was last logged, so a flood logs a line a minute, not one a
/// connection.
#[derive(Default)]
struct Notes {
    sockets: Option<Instant>,
    source: Option<Instant>,
    total: Option<Instant>,
}

impl Notes {
    fn due(last: &mut Option<Instant>) -> bool {
        let due = last.is_none_or(|t| t.elapsed() >= FULL_NOTE_EVERY);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    fn refused(&mut self, full: Full, limits: &Limits) {
        if limits.printer.is_quiet() {
            return;
        }
        let cut = limits.read_timeout;
        let caps = limits.caps();
        match full {
            Full::Source(source) if Self::due(&mut self.source) => log!(
                "listen: {source} has {} connections that have not sent a request head, the most one address may have (a quarter of the {} places is kept for others); its new ones are closed at once until those send theirs or are cut off after {cut:?} (the first {}, --max-pending-per-addr) or {PROBATION:?} (the rest)",
                caps.per_source(),
                caps.total,
                caps.held_per_source
            ),
            Full::Total if Self::due(&mut self.total) => log!(
                "listen: {} connections have not sent a request head, the most allowed (four times --max-connections); new ones are closed at once until those send theirs or are cut off after {cut:?}",
                limits.max_pending()
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_compare_whole() {
        assert!(super::same("abcdefgh12345678", "abcdefgh12345678"));
        assert!(!super::same("abcdefgh12345678", "abcdefgh12345679"));
        assert!(!super::same("abc", "abcd"));
    }
}
