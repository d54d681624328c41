//! The HTTP client. Each sender owns one HTTP/1.1 connection for the whole run (hyper's
//! connection API over tokio; TLS by rustls with the webpki roots, as reqwest would), so a
//! request costs its exchange and little else: no pool to check out from, no redirect or retry
//! layers, no URL parsed per request. (A bare reqwest loop spends about 17.6 µs of CPU per
//! request against the benchmark server, this path about 11; see `bench/run.sh`.)
//!
//! Through a proxy (`HTTPS_PROXY`, `HTTP_PROXY` or `ALL_PROXY` set, the API not on loopback) the
//! requests go through reqwest, which speaks CONNECT and honours `NO_PROXY`. Either way the two
//! auth headers are marked sensitive, the certificates in `SSL_CERT_FILE` (a TLS-inspecting
//! proxy's, say) are trusted besides the built-in roots, and each exchange becomes an `Attempt`
//! for the retry policy.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::retry::{Attempt, parse_retry_after};
use crate::error::{Exit, Fatal};

/// The client shared by every sender; each takes its own [`Connection`].
#[derive(Clone)]
pub struct Client {
    route: Arc<Route>,
}

enum Route {
    Direct(Direct),
    Proxied {
        http: reqwest::Client,
        url: reqwest::Url,
    },
}

/// Everything a direct request needs, prepared once.
struct Direct {
    /// Host name or address to resolve, and the port.
    host: String,
    port: u16,
    /// For `https`: the TLS connector and the name the certificate must carry.
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    /// The request target: the URL's path and query.
    target: Uri,
    /// Host, the auth headers, content type, user agent.
    headers: HeaderMap,
    /// For the whole exchange, and for the connection when one is needed.
    timeout: Duration,
    connect_timeout: Duration,
}

/// The environment variables through which reqwest (and curl) take a proxy.
const PROXY_VARS: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

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
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("cosmocast/", env!("CARGO_PKG_VERSION"))),
        );
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        // Below the whole exchange's timeout, so that a connect that stalls is reported as one
        // (nothing sent, retried) rather than as a timeout of a request that may have arrived.
        let connect_timeout = (timeout * 9 / 10).min(Duration::from_secs(10));
        // Only TLS needs them (the file, often the system's whole bundle, takes a few ms to read).
        let extra_roots = if url.scheme() == "https" {
            extra_roots()?
        } else {
            Vec::new()
        };
        let loopback = crate::campaign::is_loopback(&url);
        let proxy_set = PROXY_VARS
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
        let route = if proxy_set && !loopback {
            let mut builder = reqwest::Client::builder();
            for der in &extra_roots {
                let cert = reqwest::Certificate::from_der(der).map_err(cannot_build)?;
                builder = builder.add_root_certificate(cert);
            }
            let http = builder
                .default_headers(headers)
                .timeout(timeout)
                .connect_timeout(connect_timeout)
                .pool_max_idle_per_host(pool)
                .pool_idle_timeout(IDLE)
                .tcp_nodelay(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(cannot_build)?;
            Route::Proxied { http, url }
        } else {
            Route::Direct(Direct::new(
                &url,
                headers,
                extra_roots,
                timeout,
                connect_timeout,
            )?)
        };
        Ok(Client {
            route: Arc::new(route),
        })
    }

    /// A sender's own connection, opened on its first request and kept while the server keeps it.
    pub fn connection(&self) -> Connection {
        Connection {
            route: self.route.clone(),
            conn: None,
        }
    }
}

impl Direct {
    fn new(
        url: &reqwest::Url,
        mut headers: HeaderMap,
        extra_roots: Vec<CertificateDer<'static>>,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Direct, Fatal> {
        let (host, name) = match url.host() {
            Some(url::Host::Domain(d)) => (
                d.to_string(),
                rustls::pki_types::ServerName::try_from(d.to_string()).ok(),
            ),
            Some(url::Host::Ipv4(ip)) => (ip.to_string(), Some(std::net::IpAddr::V4(ip).into())),
            Some(url::Host::Ipv6(ip)) => (ip.to_string(), Some(std::net::IpAddr::V6(ip).into())),
            None => return Err(cannot_build(format!("{url} names no host"))),
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| cannot_build(format!("{url} names no port")))?;
        let authority = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => unreachable!("a URL with a host has a host string"),
        };
        headers.insert(
            HOST,
            HeaderValue::from_str(&authority).map_err(cannot_build)?,
        );
        let tls = match url.scheme() {
            "http" => None,
            "https" => {
                let name =
                    name.ok_or_else(|| cannot_build(format!("{host} is not a valid TLS name")))?;
                Some((tls_connector(extra_roots)?, name))
            }
            other => {
                return Err(cannot_build(format!(
                    "the URL scheme {other} is neither http nor https"
                )));
            }
        };
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let target = target.parse::<Uri>().map_err(cannot_build)?;
        Ok(Direct {
            host,
            port,
            tls,
            target,
            headers,
            timeout,
            connect_timeout,
        })
    }

    fn request(&self, body: Bytes) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.target.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }

    /// Resolves, connects, shakes hands (TLS, then HTTP/1.1) by `until`; the error says which
    /// step failed.
    async fn connect(&self, until: Instant) -> Result<SendRequest<Full<Bytes>>, String> {
        let addrs: Vec<_> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot connect: cannot resolve {}: {e}", self.host))?
            .collect();
        let mut stream = None;
        let mut last = None;
        for (n, addr) in addrs.iter().enumerate() {
            // Each address gets its share of the time left, so that one that drops packets (a
            // broken IPv6 route, say) leaves time for the next.
            let left = until.saturating_duration_since(Instant::now());
            let share = left / u32::try_from(addrs.len() - n).unwrap_or(u32::MAX);
            match tokio::time::timeout(share, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    stream = Some(s);
                    break;
                }
                Ok(Err(e)) => last = Some(format!("cannot connect: {addr}: {e}")),
                Err(_) => {
                    last = Some(format!(
                        "cannot connect: {addr} did not answer within {} ms",
                        share.as_millis()
                    ))
                }
            }
        }
        let stream = stream.ok_or_else(|| {
            last.unwrap_or_else(|| format!("cannot connect: {} has no address", self.host))
        })?;
        // Small requests leave at once rather than waiting for the previous one's ACK.
        let _ = stream.set_nodelay(true);
        match &self.tls {
            None => handshake(TokioIo::new(stream)).await,
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), stream)
                    .await
                    .map_err(|e| format!("cannot connect: TLS with {}: {e}", self.host))?;
                handshake(TokioIo::new(tls)).await
            }
        }
    }
}

async fn handshake<T>(io: T) -> Result<SendRequest<Full<Bytes>>, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("cannot connect: {}", chain(&e)))?;
    // The connection's own task: it ends when the sender drops its half or the server closes.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// The certificates of `SSL_CERT_FILE` (PEM), to trust besides the built-in roots. The file is
/// often the system's whole bundle: a certificate that is no usable CA is passed over, as curl
/// does, unless none is usable (checked here once, for both routes).
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
    let usable: Vec<CertificateDer<'static>> = certs
        .into_iter()
        .filter(|c| rustls::RootCertStore::empty().add(c.clone()).is_ok())
        .collect();
    if usable.is_empty() {
        return Err(bad("no certificate in it is a usable CA".into()));
    }
    Ok(usable)
}

/// rustls with the webpki roots (reqwest's `rustls-tls` set-up) and those of `SSL_CERT_FILE`,
/// and HTTP/1.1 by ALPN.
fn tls_connector(extra: Vec<CertificateDer<'static>>) -> Result<tokio_rustls::TlsConnector, Fatal> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    roots.add_parsable_certificates(extra);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(cannot_build)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// One sender's connection to the API, and when it last finished an exchange.
pub struct Connection {
    route: Arc<Route>,
    conn: Option<(SendRequest<Full<Bytes>>, Instant)>,
}

/// A connection idle this long is replaced rather than reused: servers and load balancers close
/// idle connections after 60 s or so, and a request written just as the server closes may have
/// arrived or not (reqwest's pool keeps them 90 s; pauses for 429s and the rate ceiling idle a
/// sender's connection for that long).
const IDLE: Duration = Duration::from_secs(30);

impl Connection {
    /// Sends one request body and reports what happened.
    pub async fn send(&mut self, body: Bytes) -> Attempt {
        let route = self.route.clone();
        match &*route {
            Route::Direct(d) => self.direct(d, body).await,
            Route::Proxied { http, url } => proxied(http, url, body).await,
        }
    }

    /// The connection is taken out for each exchange and put back only after a whole answer:
    /// whatever broke, the next request starts on a fresh one.
    async fn direct(&mut self, d: &Direct, body: Bytes) -> Attempt {
        let deadline = Instant::now() + d.timeout;
        let mut req = d.request(body);
        loop {
            // A kept connection the server closed meanwhile is dropped here, before any write.
            let mut kept = match self.conn.take() {
                Some((mut c, used)) if used.elapsed() < IDLE => {
                    match timeout_at(deadline, c.ready()).await {
                        Ok(Ok(())) => Some(c),
                        _ => None,
                    }
                }
                _ => None,
            };
            let fresh = kept.is_none();
            if fresh {
                let until = deadline.min(Instant::now() + d.connect_timeout);
                let budget = until.saturating_duration_since(Instant::now());
                if budget.is_zero() {
                    // A kept connection's `ready` took the whole time: nothing was written.
                    return Attempt::NotConnected(format!(
                        "cannot connect: the timeout passed before a connection to {}:{} was made",
                        d.host, d.port
                    ));
                }
                kept = match timeout_at(until, d.connect(until)).await {
                    Ok(Ok(c)) => Some(c),
                    Ok(Err(e)) => return Attempt::NotConnected(e),
                    Err(_) => {
                        return Attempt::NotConnected(format!(
                            "cannot connect: {}:{} did not complete a connection within {} ms",
                            d.host,
                            d.port,
                            budget.as_millis()
                        ));
                    }
                };
            }
            let Some(mut conn) = kept else {
                unreachable!("connected above")
            };
            let resp = match timeout_at(deadline, conn.try_send_request(req)).await {
                Ok(Ok(resp)) => resp,
                Ok(Err(mut e)) => match e.take_message() {
                    // The connection closed before the request was written: nothing reached
                    // the API, so a kept connection is replaced and the request goes again.
                    Some(r) if !fresh => {
                        req = r;
                        continue;
                    }
                    Some(_) => {
                        return Attempt::NotConnected(format!(
                            "cannot connect: {}",
                            chain(e.error())
                        ));
                    }
                    None => {
                        return Attempt::Ambiguous(format!(
                            "the request failed: {}",
                            chain(e.error())
                        ));
                    }
                },
                Err(_) => return Attempt::Ambiguous("the request timed out".into()),
            };
            let status = resp.status().as_u16();
            let retry_after = retry_after(resp.headers());
            let broke = match timeout_at(deadline, resp.into_body().collect()).await {
                Ok(Ok(body)) => {
                    self.conn = Some((conn, Instant::now()));
                    return Attempt::Response {
                        status,
                        body: body.to_bytes().to_vec(),
                        retry_after,
                    };
                }
                Ok(Err(e)) => format!("the body broke off: {}", chain(&e)),
                Err(_) => "the request timed out".to_string(),
            };
            return broken_body(status, retry_after, broke);
        }
    }
}

/// An error with its causes, as one sentence.
fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
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

/// One exchange through reqwest, for the proxied route.
async fn proxied(http: &reqwest::Client, url: &reqwest::Url, body: Bytes) -> Attempt {
    let resp = match http.post(url.clone()).body(body).send().await {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Attempt::NotConnected(describe(&e)),
        Err(e) => return Attempt::Ambiguous(describe(&e)),
    };
    let status = resp.status().as_u16();
    let retry_after = retry_after(resp.headers());
    match resp.bytes().await {
        Ok(body) => Attempt::Response {
            status,
            body: body.to_vec(),
            retry_after,
        },
        Err(e) => broken_body(status, retry_after, describe(&e)),
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

/// The status line arrived but the body broke off. After a 2xx the API saw and took the
/// request, so whether it acted is unknown; any other status stands on its own.
fn broken_body(status: u16, retry_after: Option<Duration>, why: String) -> Attempt {
    if (200..300).contains(&status) {
        Attempt::Ambiguous(why)
    } else {
        Attempt::Response {
            status,
            body: Vec::new(),
            retry_after,
        }
    }
}

/// A reqwest error as a sentence with its causes; the URL is left out (it is the same for all).
fn describe(e: &reqwest::Error) -> String {
    let head = if e.is_timeout() {
        "the request timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() {
        "the body broke off"
    } else if e.is_decode() {
        "cannot decode the answer"
    } else {
        "the request failed"
    };
    match std::error::Error::source(e) {
        Some(s) => format!("{head}: {}", chain(s)),
        None => head.to_string(),
    }
}
