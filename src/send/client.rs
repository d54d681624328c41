//! The HTTP client: one shared reqwest client (rustls), the two auth headers marked sensitive,
//! and each exchange turned into an `Attempt` for the retry policy.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};

use super::retry::{Attempt, parse_retry_after};
use crate::error::{Exit, Fatal};

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    url: reqwest::Url,
}

fn header(name: &str, value: &str, origin: &str) -> Result<HeaderValue, Fatal> {
    let mut v = HeaderValue::from_str(value.trim()).map_err(|_| {
        Fatal::new(
            Exit::CannotRun,
            format!("the {name} from {origin} holds characters an HTTP header cannot carry; check the variable"),
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

impl Client {
    pub fn new(
        url: reqwest::Url,
        token: (&str, &str),
        channel_id: (&str, &str),
        timeout: Duration,
        pool: usize,
    ) -> Result<Client, Fatal> {
        let mut headers = HeaderMap::new();
        headers.insert("token", header("token", token.0, token.1)?);
        headers.insert(
            "channel_id",
            header("channel id", channel_id.0, channel_id.1)?,
        );
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        let mut builder = reqwest::Client::builder();
        if crate::campaign::is_loopback(&url) {
            // reqwest honours HTTP(S)_PROXY even for loopback URLs; the token must never go
            // through a proxy on its way to the sandbox or a local test server.
            builder = builder.no_proxy();
        }
        let http = builder
            .default_headers(headers)
            .user_agent(concat!("cosmocast/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(pool)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                Fatal::new(
                    Exit::CannotRun,
                    format!("cannot build the HTTP client: {e}"),
                )
            })?;
        Ok(Client { http, url })
    }

    /// Sends one request body and reports what happened.
    pub async fn send(&self, body: bytes::Bytes) -> Attempt {
        let result = self.http.post(self.url.clone()).body(body).send().await;
        let resp = match result {
            Ok(r) => r,
            Err(e) => return error_attempt(&e),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        match resp.bytes().await {
            Ok(body) => Attempt::Response {
                status,
                body: body.to_vec(),
                retry_after,
            },
            // The status line arrived, so the API saw the request; only the body broke.
            Err(e) if (200..300).contains(&status) => Attempt::Ambiguous(describe(&e)),
            Err(_) => Attempt::Response {
                status,
                body: Vec::new(),
                retry_after,
            },
        }
    }
}

/// A reqwest error as a sentence with its causes; the URL is left out (it is the same for all).
fn describe(e: &reqwest::Error) -> String {
    let mut msg = String::from(if e.is_timeout() {
        "the request timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() {
        "the body broke off"
    } else if e.is_decode() {
        "cannot decode the answer"
    } else {
        "the request failed"
    });
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// A connect error (refused, unreachable, handshake timeout) means nothing was sent; anything
/// later may have reached the API.
fn error_attempt(e: &reqwest::Error) -> Attempt {
    if e.is_connect() {
        Attempt::NotConnected(describe(e))
    } else {
        Attempt::Ambiguous(describe(e))
    }
}
