//! The webhook listener: `POST /webhook/<secret>` stores each CosmoBots delivery (replies,
//! button clicks) in the ledger, tied to the campaign that last messaged the contact, and puts
//! opt-outs on the ledger's list. Anything else gets 404; malformed JSON gets 400.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::ledger::replies::{ReplyWriter, ReplyWriterThread};
use crate::replies;

/// The largest body accepted; a webhook delivery is a few KB.
pub const MAX_BODY: usize = 256 * 1024;

/// The shortest webhook secret accepted: the path is the only thing that keeps strangers out.
pub const MIN_SECRET: usize = 16;

pub struct Config {
    pub secret: String,
    pub opt_out_words: Vec<String>,
    pub horizon: Duration,
    pub quiet: bool,
}

struct AppState {
    cfg: Config,
    writer: ReplyWriter,
}

/// Constant-time comparison, so the secret cannot be guessed byte by byte from timings.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn webhook(
    State(st): State<Arc<AppState>>,
    Path(secret): Path<String>,
    body: Bytes,
) -> Response {
    if !same(&secret, &st.cfg.secret) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let reply = match replies::parse(&body) {
        Ok(r) => r,
        Err(e) => {
            if !st.cfg.quiet {
                eprintln!("listen: 400 malformed JSON ({} bytes): {e}", body.len());
            }
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": format!("malformed JSON: {e}")})),
            )
                .into_response();
        }
    };
    let opt_out = reply
        .text
        .as_deref()
        .is_some_and(|t| replies::is_opt_out(t, &st.cfg.opt_out_words));
    match st.writer.store(reply, opt_out).await {
        Ok(stored) => {
            if !st.cfg.quiet && stored.new {
                eprintln!(
                    "listen: stored a reply{}{}",
                    stored
                        .campaign
                        .as_deref()
                        .map(|c| format!(" for campaign {c}"))
                        .unwrap_or_else(|| " (no campaign matched)".into()),
                    if stored.opted_out {
                        "; the phone is now opted out"
                    } else {
                        ""
                    }
                );
            }
            (StatusCode::OK, axum::Json(json!({"stored": stored.new}))).into_response()
        }
        Err(e) => {
            eprintln!("listen: 500 {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"error": e})),
            )
                .into_response()
        }
    }
}

/// A running listener.
pub struct Listener {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    writer: ReplyWriterThread,
}

impl Listener {
    /// Waits for the server to drain (after the stop token fires) and the writer to commit.
    pub async fn wait(self) {
        let _ = self.task.await;
        let writer = self.writer;
        let _ = tokio::task::spawn_blocking(move || writer.finish()).await;
    }
}

pub async fn start(
    cfg: Config,
    addr: SocketAddr,
    ledger: &std::path::Path,
    stop: CancellationToken,
) -> anyhow::Result<Listener> {
    let writer = ReplyWriterThread::start(ledger, cfg.horizon)?;
    let state = Arc::new(AppState {
        cfg,
        writer: writer.handle.clone(),
    });
    let app = Router::new()
        .route("/webhook/{secret}", post(webhook))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
    Ok(Listener { addr, task, writer })
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
