//! The HTTP client: one path for every request, through reqwest. The senders share one reqwest
//! client whose pool keeps a connection for each of them (HTTP/1.1, TLS by rustls with the webpki
//! roots and those of `SSL_CERT_FILE`); it follows no redirect and retries nothing, since which
//! failures are sent again is `retry.rs`'s decision. The proxy the environment names
//! (`HTTPS_PROXY`, `ALL_PROXY`, honouring `NO_PROXY`) is read once here, with hyper-util's
//! matcher (the one reqwest itself reads the environment with), and handed to reqwest, so that a
//! failure can name the proxy; a loopback API is never proxied. Every failure becomes a typed
//! `Attempt`.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper_util::client::proxy::matcher::Matcher;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::retry::{Ambiguity, Attempt, ConnectError, MAX_ANSWER, parse_retry_after};
use crate::error::{Exit, Fatal};
use crate::redact::Redactor;

/// The client shared by every sender (a clone is a handle on the same pool).
#[derive(Clone)]
pub(crate) struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    url: url::Url,
    /// The API's host and port, as failures name them.
    addr: String,
    /// The proxy's host and port, when requests go through one.
    proxy: Option<String>,
    redactor: Redactor,
}

/// The credentials and where they come from, for the two auth headers.
pub(crate) struct Credentials<'a> {
    pub(crate) token: &'a str,
    pub(crate) token_origin: &'a str,
    pub(crate) channel_id: &'a str,
    pub(crate) channel_id_origin: &'a str,
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

fn cannot_build(what: impl std::fmt::Display) -> Fatal {
    Fatal::new(
        Exit::CannotRun,
        format!("cannot build the HTTP client: {what}"),
    )
}

/// A connection idle this long is replaced rather than reused: servers and load balancers close
/// idle connections after 60 s or so, and a request written just as the server closes may have
/// arrived or not.
const IDLE: Duration = Duration::from_secs(30);

impl Client {
    /// A client for `url` with room in its pool for `senders` kept connections.
    pub(crate) fn new(
        url: &url::Url,
        creds: &Credentials<'_>,
        timeout: Duration,
        senders: usize,
    ) -> Result<Client, Fatal> {
        let mut headers = HeaderMap::new();
        headers.insert("token", header("token", creds.token, creds.token_origin)?);
        headers.insert(
            "channel_id",
            header("channel id", creds.channel_id, creds.channel_id_origin)?,
        );
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        let host = url
            .host_str()
            .ok_or_else(|| cannot_build("the API URL names no host"))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| cannot_build("the API URL names no port"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(cannot_build(format!(
                "the scheme {} is not http(s)",
                url.scheme()
            )));
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("cosmocast/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .referer(false)
            .http1_only()
            // Small requests leave at once rather than waiting for the previous one's ACK.
            .tcp_nodelay(true)
            .pool_max_idle_per_host(senders)
            .pool_idle_timeout(IDLE)
            .timeout(timeout)
            // Below the whole exchange's timeout, so that a connect that stalls is reported as
            // one (nothing sent, retried) rather than as a timeout of a request that may have
            // arrived.
            .connect_timeout((timeout * 9 / 10).min(Duration::from_secs(10)))
            .dns_resolver(Arc::new(Resolver))
            .no_proxy();
        for cert in extra_roots()? {
            builder = builder
                .add_root_certificate(reqwest::Certificate::from_der(&cert).map_err(cannot_build)?);
        }
        let proxy = if crate::campaign::is_loopback(url) {
            None
        } else {
            proxy_for(url)?
        };
        let (builder, shown) = match proxy {
            Some((p, shown)) => (builder.proxy(p), Some(shown)),
            None => (builder, None),
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http: builder.build().map_err(|e| cannot_build(chain(&e)))?,
                url: url.clone(),
                addr: format!("{host}:{port}"),
                proxy: shown,
                redactor: Redactor::new(&[creds.token, creds.channel_id]),
            }),
        })
    }

    /// Replaces the credentials' values in text that came from outside (an error body).
    pub(crate) fn redactor(&self) -> &Redactor {
        &self.inner.redactor
    }
}

/// The proxy the environment names for this URL, if any (`NO_PROXY` honoured), as reqwest's
/// proxy and as messages name it (host:port, never its credentials).
fn proxy_for(url: &url::Url) -> Result<Option<(reqwest::Proxy, String)>, Fatal> {
    let dst: hyper::Uri = url.as_str().parse().map_err(cannot_build)?;
    let Some(intercept) = Matcher::from_env().intercept(&dst) else {
        return Ok(None);
    };
    let uri = intercept.uri();
    let host = uri.host().unwrap_or_default();
    let shown = match uri.port_u16() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    // Through an https:// proxy, a TLS failure could be the proxy's or the API's: only the
    // API's is reported as TLS.
    if uri.scheme_str() != Some("http") {
        return Err(Fatal::new(
            Exit::CannotRun,
            format!(
                "the proxy {shown} from the environment (HTTPS_PROXY/ALL_PROXY) is not an http:// proxy; cosmocast tunnels through a proxy with CONNECT over plain http (the API's TLS runs inside the tunnel) — write it as http://{shown}"
            ),
        ));
    }
    let shown = format!("{host}:{}", uri.port_u16().unwrap_or(80));
    let mut proxy = reqwest::Proxy::all(format!("http://{shown}")).map_err(cannot_build)?;
    if let Some(auth) = intercept.basic_auth() {
        proxy = proxy.custom_http_auth(auth.clone());
    }
    Ok(Some((proxy, shown)))
}

/// Names resolved by tokio, failing with a typed [`ConnectError::Dns`] that names the host, so
/// that a failure tells the API's name from the proxy's.
struct Resolver;

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let dns = |detail: String| ConnectError::Dns {
                host: host.clone(),
                detail,
            };
            let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| dns(e.to_string()))?
                .collect();
            if addrs.is_empty() {
                return Err(dns("no address".into()).into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The certificates of `SSL_CERT_FILE` (PEM), to trust besides the built-in roots. The file is
/// often the system's whole bundle: a certificate that is no usable CA is passed over, as curl
/// does, unless none is usable.
fn extra_roots() -> Result<Vec<CertificateDer<'static>>, Fatal> {
    let Some(path) = std::env::var_os("SSL_CERT_FILE").filter(|p| !p.is_empty()) else {
        return Ok(Vec::new());
    };
    let path = std::path::PathBuf::from(path);
    let bad = |what: String| {
        Fatal::new(
            Exit::CannotRun,
            format!(
                "SSL_CERT_FILE={}: {what}; point it at a PEM file of CA certificates, or unset it",
                path.display()
            ),
        )
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
        .map_err(|e| bad(format!("cannot read it: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("cannot read a certificate in it: {e}")))?;
    if certs.is_empty() {
        return Err(bad("it holds no certificate".into()));
    }
    // reqwest refuses to build with a certificate rustls cannot take as a root.
    let usable: Vec<CertificateDer<'static>> = certs
        .into_iter()
        .filter(|c| rustls::RootCertStore::empty().add(c.clone()).is_ok())
        .collect();
    if usable.is_empty() {
        return Err(bad("no certificate in it is a usable CA".into()));
    }
    Ok(usable)
}

impl Client {
    /// Sends one request body and reports what happened. A kept connection the server closed
    /// before the request was written is replaced by the pool, and the request goes on the new
    /// one; a connection whose answer was not read whole is dropped.
    pub(crate) async fn send(&self, body: Bytes) -> Attempt {
        let inner = &self.inner;
        let sent = inner.http.post(inner.url.clone()).body(body).send().await;
        let mut resp = match sent {
            Ok(resp) => resp,
            Err(e) => return inner.failed(&e),
        };
        let status = resp.status().as_u16();
        let retry_after = retry_after(resp.headers());
        match read_body(&mut resp).await {
            Ok((body, cut)) => Attempt::Response {
                status,
                body,
                retry_after,
                cut,
            },
            Err(e) if e.is_timeout() => broken_body(status, retry_after, Ambiguity::TimedOut),
            Err(e) => broken_body(status, retry_after, Ambiguity::BodyBroke(chain(&e))),
        }
    }
}

impl Inner {
    /// What a request that brought no answer means.
    fn failed(&self, e: &reqwest::Error) -> Attempt {
        if e.is_connect() {
            return Attempt::NotConnected(self.connect_error(e));
        }
        if e.is_timeout() {
            return Attempt::Ambiguous(Ambiguity::TimedOut);
        }
        // The connection closed before the request was written: nothing reached the API.
        if find::<hyper::Error>(e).is_some_and(hyper::Error::is_canceled) {
            return Attempt::NotConnected(ConnectError::Other {
                addr: self.addr.clone(),
                detail: chain(e),
            });
        }
        Attempt::Ambiguous(Ambiguity::Broken(chain(e)))
    }

    /// A failure to connect, by kind: the resolver's, the API's TLS, a timeout, a refusal.
    /// Through a proxy, anything but the API's TLS is the proxy's.
    fn connect_error(&self, e: &reqwest::Error) -> ConnectError {
        if let Some(tls) = find::<rustls::Error>(e) {
            return ConnectError::Tls {
                host: self.url.host_str().unwrap_or_default().to_string(),
                detail: tls.to_string(),
            };
        }
        let addr = self.proxy.as_ref().unwrap_or(&self.addr);
        let reached = if let Some(dns) = find::<ConnectError>(e) {
            Some(dns.clone())
        } else if e.is_timeout() {
            Some(ConnectError::Timeout { what: addr.clone() })
        } else if find::<std::io::Error>(e)
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            Some(ConnectError::Refused { addr: addr.clone() })
        } else {
            None
        };
        match (&self.proxy, reached) {
            (None, Some(c)) => c,
            (None, None) => ConnectError::Other {
                addr: addr.clone(),
                detail: chain(e),
            },
            (Some(proxy), reached) => ConnectError::Proxy {
                proxy: proxy.clone(),
                detail: match reached {
                    Some(c) => format!("cannot reach it: {c}"),
                    None => format!(
                        "{} while opening a tunnel to {} — check the proxy's address and credentials (http://user:password@host:port), its rules, and NO_PROXY",
                        chain(e),
                        self.addr
                    ),
                },
            },
        }
    }
}

/// The first error of type `T` among `e`'s causes, including one an `io::Error` wraps (whose
/// `source` skips the error it wraps).
fn find<T: std::error::Error + 'static>(e: &reqwest::Error) -> Option<&T> {
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(t) = s.downcast_ref::<T>() {
            return Some(t);
        }
        let wrapped = s
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref);
        if let Some(t) = wrapped.and_then(|w| w.downcast_ref::<T>()) {
            return Some(t);
        }
        src = s.source();
    }
    None
}

/// Reads a body up to [`MAX_ANSWER`] bytes: the bytes, and whether more followed (cut). The
/// response is dropped with the rest unread, and its connection with it.
async fn read_body(resp: &mut reqwest::Response) -> Result<(Bytes, bool), reqwest::Error> {
    let mut buf = BytesMut::new();
    while let Some(data) = resp.chunk().await? {
        let room = MAX_ANSWER - buf.len();
        if data.len() > room {
            buf.extend_from_slice(&data[..room]);
            return Ok((buf.freeze(), true));
        }
        buf.extend_from_slice(&data);
    }
    Ok((buf.freeze(), false))
}

/// An error with its causes, as one sentence, below reqwest's and hyper-util's own layers
/// (which say only "error sending request for url" and "client error").
fn chain(e: &reqwest::Error) -> String {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if !(s.is::<reqwest::Error>() || s.is::<hyper_util::client::legacy::Error>()) {
            break;
        }
        src = s.source();
    }
    let Some(first) = src else {
        return e.to_string();
    };
    let mut msg = first.to_string();
    let mut src = first.source();
    while let Some(s) = src {
        let s_text = s.to_string();
        if !msg.ends_with(&s_text) {
            msg.push_str(": ");
            msg.push_str(&s_text);
        }
        src = s.source();
    }
    msg
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

/// The status line arrived but the body broke off. After a 2xx the API saw and took the
/// request, so whether it acted is unknown; any other status stands on its own.
fn broken_body(status: u16, retry_after: Option<Duration>, why: Ambiguity) -> Attempt {
    if (200..300).contains(&status) {
        Attempt::Ambiguous(why)
    } else {
        Attempt::Response {
            status,
            body: Bytes::new(),
            retry_after,
            cut: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(len: usize) -> (usize, bool) {
        let mut resp = reqwest::Response::from(hyper::Response::new(vec![b'x'; len]));
        let (body, cut) = read_body(&mut resp).await.unwrap();
        (body.len(), cut)
    }

    #[tokio::test]
    async fn an_answer_is_read_up_to_max_answer_and_cut_past_it() {
        assert_eq!(read(300).await, (300, false));
        assert_eq!(read(MAX_ANSWER).await, (MAX_ANSWER, false));
        assert_eq!(read(MAX_ANSWER + 1).await, (MAX_ANSWER, true));
    }
}
