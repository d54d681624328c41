//! The sandbox: a local stand-in for `POST /messages/v1/send` that checks headers and body as
//! docs/cosmobots-api.md states, answers like the real API (one message id per item), and can be
//! slowed down for rehearsals. `run --sandbox` starts it in-process.

use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::api::{self, SendRequest};
use crate::printer::log;
use crate::webhook;
pub(crate) use options::Config;

pub(crate) mod options;

/// The path the real API serves.
pub(crate) const SEND_PATH: &str = "/messages/v1/send";

struct AppState {
    cfg: Config,
    next: AtomicU64,
    log: Option<Mutex<std::fs::File>>,
    /// Contacts that have had a first attempt (for `first_attempt_503`).
    seen: Mutex<HashSet<String>>,
    started: std::time::Instant,
    replies: reqwest::Client,
    /// Where replies are posted: the webhook base with the secret's path.
    webhook: Option<url::Url>,
}

fn roll(p: f64) -> bool {
    p > 0.0 && fastrand::f64() < p
}

/// A running sandbox; dropping the handle does not stop it, `shutdown` does.
pub(crate) struct Sandbox {
    pub(crate) addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Sandbox {
    /// The URL a campaign should send to.
    pub(crate) fn url(&self) -> String {
        format!("http://{}{SEND_PATH}", self.addr)
    }

    pub(crate) async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }

    /// Serves until the stop token is cancelled.
    pub(crate) async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Binds on a loopback address and serves in the background.
pub(crate) async fn start(
    cfg: Config,
    addr: SocketAddr,
    stop: CancellationToken,
) -> anyhow::Result<Sandbox> {
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "the sandbox listens on loopback only; use 127.0.0.1:PORT"
    );
    // The log holds each request's contact (phone, name): owner-only, as every file of phones.
    let log = match &cfg.log {
        Some(p) => Some(Mutex::new({
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let cannot = |e| anyhow::anyhow!("cannot open the sandbox log {}: {e}", p.display());
            // A link planted at the log's name is refused, not written through (and its
            // target's mode changed): the log is a file of its own.
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(p)
                .map_err(|e| match e.raw_os_error() {
                    Some(libc::ELOOP) => anyhow::anyhow!(
                        "cannot open the sandbox log {}: it is a symbolic link; give the log a path of its own",
                        p.display()
                    ),
                    _ => cannot(e),
                })?;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(cannot)?;
            f
        })),
        None => None,
    };
    let webhook = cfg
        .webhook
        .as_deref()
        .map(|base| webhook_url(base, std::env::var(webhook::SECRET_VAR).ok().as_deref()))
        .transpose()?;
    let state = Arc::new(AppState {
        cfg,
        next: AtomicU64::new(1),
        log,
        seen: Mutex::new(HashSet::new()),
        started: std::time::Instant::now(),
        replies: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()?,
        webhook,
    });
    let app = Router::new()
        .route(SEND_PATH, post(send))
        .route(
            "/",
            get(|| async { "cosmocast sandbox: POST /messages/v1/send\n" }),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let addr = listener.local_addr()?;
    let token = stop.clone();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await;
    });
    Ok(Sandbox { addr, stop, task })
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    refuse_with(status, message, vec![])
}

fn refuse_with(status: StatusCode, message: impl Into<String>, details: Vec<String>) -> Response {
    let mut body = json!({ "status": "error", "message": message.into() });
    if !details.is_empty() {
        body["details"] = json!(details);
    }
    (status, axum::Json(body)).into_response()
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

async fn send(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let cfg = &st.cfg;
    if !cfg.latency.is_zero() || !cfg.jitter.is_zero() {
        let extra = cfg.jitter.mul_f64(fastrand::f64());
        tokio::time::sleep(cfg.latency + extra).await;
    }
    let n = st.next.fetch_add(1, Ordering::Relaxed);
    if cfg.no_validate {
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            format!(r#"{{"status":"sent","contact_id":"c-{n}","session_id":"s-{n}","message_ids":["m-{n}-1"]}}"#),
        )
            .into_response();
    }
    let req = match check(&st, &headers, &body) {
        Ok(req) => req,
        Err(refused) => return *refused,
    };
    let who = req
        .contact
        .external_id
        .clone()
        .or_else(|| req.contact.mobile_phone.clone())
        .unwrap_or_default();
    if let Some(refused) = refuse_before_acting(&st, &who) {
        return refused;
    }
    // From here on the request counts as accepted: the log is what the tests count.
    record(&st, n, &who, &req);
    if let Some(fault) = fail_after_acting(&st).await {
        return fault;
    }
    answer(&st, n, req)
}

/// The checks the real API makes: credentials, content type, and every rule of the body.
fn check(st: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<SendRequest, Box<Response>> {
    let cfg = &st.cfg;
    let Some(token) = header(headers, "token") else {
        return Err(Box::new(refuse(
            StatusCode::UNAUTHORIZED,
            "missing header `token`",
        )));
    };
    if cfg.token.as_deref().is_some_and(|t| t != token) {
        return Err(Box::new(refuse(StatusCode::UNAUTHORIZED, "invalid token")));
    }
    if header(headers, "channel_id").is_none() {
        return Err(Box::new(refuse(
            StatusCode::UNAUTHORIZED,
            "missing header `channel_id`",
        )));
    }
    let ctype = header(headers, "content-type").unwrap_or("");
    if !ctype.to_ascii_lowercase().starts_with("application/json") {
        return Err(Box::new(refuse(
            StatusCode::BAD_REQUEST,
            format!("Content-Type must be application/json, got {ctype:?}"),
        )));
    }
    let req: SendRequest = serde_json::from_slice(body).map_err(|e| {
        Box::new(refuse(
            StatusCode::BAD_REQUEST,
            format!("invalid body: {e}"),
        ))
    })?;
    let mut violations = api::validate(&req, cfg.channel);
    // The real API wants the international number in digits; cosmocast sends nothing else.
    if cfg.channel.requires_phone()
        && let Some(v) = api::phone_violation(&req)
    {
        violations.push(v);
    }
    if !violations.is_empty() {
        let details = violations
            .iter()
            .map(|v| format!("{}: {}", v.field, v.message))
            .collect();
        return Err(Box::new(refuse_with(
            StatusCode::BAD_REQUEST,
            "the request breaks the API's rules",
            details,
        )));
    }
    Ok(req)
}

/// Injected refusals that leave the request unprocessed (safe to retry).
fn refuse_before_acting(st: &AppState, who: &str) -> Option<Response> {
    let f = &st.cfg.faults;
    let first = f.first_attempt_503
        && st
            .seen
            .lock()
            .map(|mut s| s.insert(who.to_string()))
            .unwrap_or(false);
    if first {
        return Some(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "first attempt refused (injected)",
        ));
    }
    if roll(f.fail_429) {
        let mut r = refuse(StatusCode::TOO_MANY_REQUESTS, "slow down (injected)");
        if let Ok(v) = f.retry_after.to_string().parse() {
            r.headers_mut().insert("retry-after", v);
        }
        return Some(r);
    }
    roll(f.fail_503).then(|| refuse(StatusCode::SERVICE_UNAVAILABLE, "unavailable (injected)"))
}

/// One line of the request log for an accepted request.
fn record(st: &AppState, n: u64, who: &str, req: &SendRequest) {
    let Some(log) = &st.log else { return };
    let t = st.started.elapsed().as_secs_f64();
    let line =
        json!({ "n": n, "t": t, "who": who, "contact": req.contact, "items": req.message.len() });
    // One write per line, so a reader never sees half a line from two requests.
    let line = format!("{line}\n");
    if let Ok(mut f) = log.lock() {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Injected faults after the request was acted on: the client cannot know whether it was.
async fn fail_after_acting(st: &AppState) -> Option<Response> {
    let f = &st.cfg.faults;
    if roll(f.fail_500_after) {
        return Some(refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed after acting (injected)",
        ));
    }
    if roll(f.hang_after) {
        tokio::time::sleep(f.hang_for).await;
    }
    if roll(f.reset_after) {
        // Unwinding ends this connection's task, so the client sees the connection drop.
        std::panic::resume_unwind(Box::new("injected connection reset"));
    }
    None
}

/// The answer to an accepted request: queued, or sent with one message id per item (and,
/// now and then, a simulated reply to the webhook).
fn answer(st: &AppState, n: u64, req: SendRequest) -> Response {
    let cfg = &st.cfg;
    if cfg.queue_rate > 0.0 && fastrand::f64() < cfg.queue_rate {
        return (
            StatusCode::OK,
            axum::Json(json!({ "id": format!("q-{n}") })),
        )
            .into_response();
    }
    let contact_id = if req.contact.id == "new_contact" {
        format!(
            "c-{}",
            req.contact
                .mobile_phone
                .as_deref()
                .or(req.contact.external_id.as_deref())
                .unwrap_or("anon")
        )
    } else {
        req.contact.id.clone()
    };
    let ids: Vec<String> = (1..=req.message.len())
        .map(|i| format!("m-{n}-{i}"))
        .collect();
    if let Some(url) = &st.webhook
        && roll(cfg.reply_rate)
    {
        tokio::spawn(post_reply(
            st.replies.clone(),
            url.clone(),
            n,
            contact_id.clone(),
            req,
        ));
    }
    let mut answer = (
        StatusCode::OK,
        axum::Json(json!({
            "status": "sent",
            "contact_id": contact_id,
            "session_id": format!("s-{n}"),
            "message_ids": ids,
        })),
    )
        .into_response();
    if roll(cfg.faults.close_after) {
        // hyper closes the connection once this answer is written.
        answer.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    answer
}

/// Why `--webhook` cannot be used. No message holds the URL: it may carry the secret.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WebhookError {
    #[error(
        "--webhook is not a URL ({0}) — give the listener's base URL, e.g. http://127.0.0.1:8788"
    )]
    NotAUrl(url::ParseError),
    #[error("--webhook must be an http:// or https:// URL, e.g. http://127.0.0.1:8788")]
    NotHttp,
    #[error(
        "--webhook holds the webhook secret in its path, where `ps` shows it to anyone on this machine — give the listener's base URL (e.g. http://127.0.0.1:8788) and put the secret in {}",
        webhook::SECRET_VAR
    )]
    SecretInUrl,
    #[error(
        "--webhook needs the listener's secret in {} (at least {} characters, the value `cosmocast listen` reads)",
        webhook::SECRET_VAR,
        webhook::MIN_SECRET
    )]
    NoSecret,
}

/// The listener's webhook URL: `base` (a listener's address, maybe behind a path prefix) with
/// `/webhook/<secret>` added. A `base` that already names a secret is refused, so the secret
/// is never on a command line.
pub(crate) fn webhook_url(base: &str, secret: Option<&str>) -> Result<url::Url, WebhookError> {
    let mut url = url::Url::parse(base).map_err(WebhookError::NotAUrl)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(WebhookError::NotHttp);
    }
    let segments: Vec<String> = url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    if let Some(at) = segments.iter().position(|s| s == "webhook")
        && at + 1 < segments.len()
    {
        return Err(WebhookError::SecretInUrl);
    }
    let secret = secret
        .and_then(webhook::usable_secret)
        .ok_or(WebhookError::NoSecret)?;
    {
        let mut path = url.path_segments_mut().map_err(|_| WebhookError::NotHttp)?;
        path.pop_if_empty();
        if segments.last().is_none_or(|s| s != "webhook") {
            path.push("webhook");
        }
        path.push(secret);
    }
    Ok(url)
}

/// Plays the contact's side: a text reply, a click on the first payload button, or an opt-out,
/// posted to the webhook like CosmoBots would (the send request's fields).
async fn post_reply(
    client: reqwest::Client,
    url: url::Url,
    n: u64,
    contact_id: String,
    req: SendRequest,
) {
    tokio::time::sleep(Duration::from_millis(fastrand::u64(5..50))).await;
    let click = req.message.iter().find_map(|m| match m {
        api::MessageItem::Buttons(b) => b
            .buttons
            .iter()
            .find(|b| b.kind == api::ButtonType::Payload)
            .map(|b| b.value.clone()),
        _ => None,
    });
    let item = match (n % 3, click) {
        (0, _) => json!({"type": "text", "data": {"text": "Stop"}}),
        (1, Some(value)) => json!({"type": "payload", "data": {"value": value}}),
        _ => json!({"type": "text", "data": {"text": format!("Thanks! ({n})")}}),
    };
    let body = json!({
        "destination": "contact",
        "contact": {"id": contact_id, "mobile_phone": req.contact.mobile_phone},
        "message": [item],
    });
    if let Err(e) = client
        .post(url)
        .json(&body)
        .send()
        .await
        .and_then(|r| r.error_for_status())
    {
        // The webhook URL holds the listener's secret: keep it out of the message.
        log!(
            "sandbox: could not post a reply to the webhook: {}",
            e.without_url()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cret-webhook-path-0123456789";

    #[test]
    fn the_webhook_url_takes_its_secret_from_the_environment() {
        let url = |base: &str| webhook_url(base, Some(SECRET)).map(|u| u.to_string());
        let want = format!("http://127.0.0.1:8788/webhook/{SECRET}");
        assert_eq!(url("http://127.0.0.1:8788").unwrap(), want);
        assert_eq!(url("http://127.0.0.1:8788/").unwrap(), want);
        assert_eq!(url("http://127.0.0.1:8788/webhook").unwrap(), want);
        assert_eq!(
            url("https://hooks.example/cosmo/").unwrap(),
            format!("https://hooks.example/cosmo/webhook/{SECRET}")
        );
    }

    #[test]
    fn a_secret_on_the_command_line_or_none_at_all_is_refused() {
        for base in [
            format!("http://127.0.0.1:8788/webhook/{SECRET}"),
            format!("http://127.0.0.1:8788/webhook/{SECRET}/"),
            "http://127.0.0.1:8788/prefix/webhook/x".to_string(),
        ] {
            let e = webhook_url(&base, Some(SECRET)).unwrap_err();
            assert!(matches!(e, WebhookError::SecretInUrl), "{base}: {e}");
            assert!(!e.to_string().contains("/webhook/x") && !e.to_string().contains(SECRET));
        }
        for secret in [None, Some(""), Some("short")] {
            assert!(matches!(
                webhook_url("http://127.0.0.1:8788", secret),
                Err(WebhookError::NoSecret)
            ));
        }
        let e = webhook_url(&format!("http//{SECRET}"), Some(SECRET)).unwrap_err();
        assert!(!e.to_string().contains(SECRET), "{e}");
        assert!(matches!(
            webhook_url("ftp://127.0.0.1/", Some(SECRET)),
            Err(WebhookError::NotHttp)
        ));
    }
}
