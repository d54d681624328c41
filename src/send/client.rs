//! The HTTP client: one path for every request. Each sender owns one HTTP/1.1 connection for the
//! whole run (hyper's connection API over tokio; TLS by rustls with the webpki roots and those of
//! `SSL_CERT_FILE`), so a request costs its exchange and little else. When the environment names
//! a proxy (`HTTPS_PROXY`, `ALL_PROXY`, honouring `NO_PROXY`, read by hyper-util's matcher), the
//! connection is a CONNECT tunnel through it (hyper-util's `Tunnel`); a loopback API is never
//! proxied. Requests, timeouts and error kinds are the same either way: one place builds the
//! request, one timeout policy applies, and every failure becomes a typed `Attempt`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tower::Service;

use super::retry::{Ambiguity, Attempt, ConnectError, parse_retry_after};
use crate::error::{Exit, Fatal};
use crate::redact::Redactor;

/// A byte stream to the API: plain TCP or TLS, direct or through a tunnel.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// The client shared by every sender; each takes its own [`Connection`].
#[derive(Clone)]
pub(crate) struct Client {
    inner: Arc<Inner>,
}

/// Everything a request needs, prepared once.
struct Inner {
    /// Host name or address of the API, and its port.
    host: String,
    port: u16,
    /// For `https`: the TLS connector and the name the certificate must carry.
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    /// When set, connections are tunnelled through this proxy.
    proxy: Option<Proxy>,
    /// The request target: the URL's path and query.
    target: Uri,
    /// Host, the auth headers, content type, user agent.
    headers: HeaderMap,
    /// For the whole exchange, and for the connection when one is needed.
    timeout: Duration,
    connect_timeout: Duration,
    redactor: Redactor,
}

struct Proxy {
    /// `http://host:port`, without credentials.
    uri: Uri,
    auth: Option<HeaderValue>,
    /// How the proxy is named in messages (host:port).
    shown: String,
    /// What the tunnel is asked for: the API's host (an IPv6 address in brackets) and port.
    to: Uri,
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

impl Client {
    pub(crate) fn new(
        url: &reqwest::Url,
        creds: &Credentials<'_>,
        timeout: Duration,
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
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("cosmocast/", env!("CARGO_PKG_VERSION"))),
        );
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        let (host, name) = match url.host() {
            Some(url::Host::Domain(d)) => (d.to_string(), ServerName::try_from(d.to_string()).ok()),
            Some(url::Host::Ipv4(ip)) => (ip.to_string(), Some(std::net::IpAddr::V4(ip).into())),
            Some(url::Host::Ipv6(ip)) => (ip.to_string(), Some(std::net::IpAddr::V6(ip).into())),
            None => return Err(cannot_build("the API URL names no host")),
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| cannot_build("the API URL names no port"))?;
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or(&host)),
            None => url.host_str().unwrap_or(&host).to_string(),
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
                Some((tls_connector(extra_roots()?)?, name))
            }
            other => return Err(cannot_build(format!("the scheme {other} is not http(s)"))),
        };
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let target = target.parse::<Uri>().map_err(cannot_build)?;
        let proxy = if crate::campaign::is_loopback(url) {
            None
        } else {
            proxy_for(url)?
        };
        Ok(Client {
            inner: Arc::new(Inner {
                host,
                port,
                tls,
                proxy,
                target,
                headers,
                timeout,
                // Below the whole exchange's timeout, so that a connect that stalls is reported
                // as one (nothing sent, retried) rather than as a timeout of a request that may
                // have arrived.
                connect_timeout: (timeout * 9 / 10).min(Duration::from_secs(10)),
                redactor: Redactor::new(&[creds.token, creds.channel_id]),
            }),
        })
    }

    /// A sender's own connection, opened on its first request and kept while the server keeps it.
    pub(crate) fn connection(&self) -> Connection {
        Connection {
            client: self.clone(),
            conn: None,
        }
    }

    /// Replaces the credentials' values in text that came from outside (an error body).
    pub(crate) fn redactor(&self) -> &Redactor {
        &self.inner.redactor
    }
}

/// The proxy the environment names for this URL, if any (`NO_PROXY` honoured).
fn proxy_for(url: &reqwest::Url) -> Result<Option<Proxy>, Fatal> {
    let dst: Uri = url.as_str().parse().map_err(cannot_build)?;
    let Some(intercept) = Matcher::from_env().intercept(&dst) else {
        return Ok(None);
    };
    let uri = intercept.uri();
    let host = uri.host().unwrap_or_default();
    let shown = match uri.port_u16() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    if uri.scheme_str() != Some("http") {
        return Err(Fatal::new(
            Exit::CannotRun,
            format!(
                "the proxy {shown} from the environment (HTTPS_PROXY/ALL_PROXY) is not an http:// proxy; cosmocast tunnels through a proxy with CONNECT over plain http (the API's TLS runs inside the tunnel) — write it as http://{shown}"
            ),
        ));
    }
    let port = uri.port_u16().unwrap_or(80);
    let plain: Uri = format!("http://{host}:{port}")
        .parse()
        .map_err(cannot_build)?;
    Ok(Some(Proxy {
        uri: plain,
        auth: intercept.basic_auth().cloned(),
        shown: format!("{host}:{port}"),
        to: tunnel_target(url)?,
    }))
}

/// What a proxy's tunnel is asked for: the API's host (an IPv6 address in brackets, as CONNECT
/// must write it) and port.
fn tunnel_target(url: &reqwest::Url) -> Result<Uri, Fatal> {
    format!(
        "https://{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(443)
    )
    .parse()
    .map_err(cannot_build)
}

/// Resolves and connects by `until`, giving each address its share of the time left, so that
/// one that drops packets (a broken IPv6 route, say) leaves time for the next.
async fn tcp(host: &str, port: u16, until: Instant) -> Result<TcpStream, ConnectError> {
    let addrs: Vec<_> = match timeout_at(until, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(a)) => a.collect(),
        Ok(Err(e)) => {
            return Err(ConnectError::Dns {
                host: host.to_string(),
                detail: e.to_string(),
            });
        }
        Err(_) => {
            return Err(ConnectError::Timeout {
                what: format!("resolving {host}"),
            });
        }
    };
    let mut last = ConnectError::Dns {
        host: host.to_string(),
        detail: "no address".into(),
    };
    for (n, addr) in addrs.iter().enumerate() {
        let left = until.saturating_duration_since(Instant::now());
        let share = left / u32::try_from(addrs.len() - n).unwrap_or(u32::MAX);
        match tokio::time::timeout(share, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                // Small requests leave at once rather than waiting for the previous one's ACK.
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = ConnectError::Refused {
                    addr: addr.to_string(),
                }
            }
            Ok(Err(e)) => {
                last = ConnectError::Other {
                    addr: addr.to_string(),
                    detail: e.to_string(),
                }
            }
            Err(_) => {
                last = ConnectError::Timeout {
                    what: addr.to_string(),
                }
            }
        }
    }
    Err(last)
}

impl Inner {
    fn request(&self, body: Bytes) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.target.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }

    /// The byte stream to the API's host: straight, or through the proxy's tunnel.
    async fn stream(&self, until: Instant) -> Result<TcpStream, ConnectError> {
        let Some(proxy) = &self.proxy else {
            return tcp(&self.host, self.port, until).await;
        };
        let (phost, pport) = (
            proxy.uri.host().unwrap_or_default().to_string(),
            proxy.uri.port_u16().unwrap_or(80),
        );
        let connector = tower::service_fn(move |_: Uri| {
            let phost = phost.clone();
            async move { tcp(&phost, pport, until).await.map(TokioIo::new) }
        });
        let mut tunnel = Tunnel::new(proxy.uri.clone(), connector);
        if let Some(auth) = &proxy.auth {
            tunnel = tunnel.with_auth(auth.clone());
        }
        let io = tunnel
            .call(proxy.to.clone())
            .await
            .map_err(|e| tunnel_error(&e, &proxy.shown, &self.host))?;
        Ok(io.into_inner())
    }

    /// Connects, shakes hands (TLS, then HTTP/1.1) by `until`.
    async fn connect(&self, until: Instant) -> Result<SendRequest<Full<Bytes>>, ConnectError> {
        let tcp = self.stream(until).await?;
        let io: Box<dyn Stream> = match &self.tls {
            None => Box::new(tcp),
            Some((connector, name)) => {
                let tls = timeout_at(until, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| ConnectError::Timeout {
                        what: format!("the TLS handshake with {}", self.host),
                    })?
                    .map_err(|e| ConnectError::Tls {
                        host: self.host.clone(),
                        detail: e.to_string(),
                    })?;
                Box::new(tls)
            }
        };
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| ConnectError::Other {
                addr: format!("{}:{}", self.host, self.port),
                detail: chain(&e),
            })?;
        // The connection's own task: it ends when the sender drops its half or the server closes.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }
}

/// What went wrong with the proxy, as a typed connect failure. (hyper-util does not export its
/// tunnel error's type: the proxy's own connect failure is found as its source.)
fn tunnel_error(e: &(dyn std::error::Error + 'static), proxy: &str, host: &str) -> ConnectError {
    let detail = match e.source().and_then(|s| s.downcast_ref::<ConnectError>()) {
        Some(c) => format!("cannot reach it: {c}"),
        None => format!(
            "{} while opening a tunnel to {host} — check the proxy's address and credentials (http://user:password@host:port), its rules, and NO_PROXY",
            chain(e)
        ),
    };
    ConnectError::Proxy {
        proxy: proxy.to_string(),
        detail,
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
    let usable: Vec<CertificateDer<'static>> = certs
        .into_iter()
        .filter(|c| rustls::RootCertStore::empty().add(c.clone()).is_ok())
        .collect();
    if usable.is_empty() {
        return Err(bad("no certificate in it is a usable CA".into()));
    }
    Ok(usable)
}

/// rustls with the webpki roots and those of `SSL_CERT_FILE`, and HTTP/1.1 by ALPN.
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
pub(crate) struct Connection {
    client: Client,
    conn: Option<(SendRequest<Full<Bytes>>, Instant)>,
}

/// A connection idle this long is replaced rather than reused: servers and load balancers close
/// idle connections after 60 s or so, and a request written just as the server closes may have
/// arrived or not.
const IDLE: Duration = Duration::from_secs(30);

impl Connection {
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Sends one request body and reports what happened. The connection is taken out for each
    /// exchange and put back only after a whole answer: whatever broke, the next request starts
    /// on a fresh one.
    pub(crate) async fn send(&mut self, body: Bytes) -> Attempt {
        let inner = &self.client.inner;
        let deadline = Instant::now() + inner.timeout;
        let mut req = inner.request(body);
        loop {
            // A kept connection the server closed meanwhile is dropped here, before any write.
            let kept = match self.conn.take() {
                Some((mut c, used)) if used.elapsed() < IDLE => {
                    match timeout_at(deadline, c.ready()).await {
                        Ok(Ok(())) => Some(c),
                        _ => None,
                    }
                }
                _ => None,
            };
            let fresh = kept.is_none();
            let mut conn = match kept {
                Some(c) => c,
                None => {
                    let until = deadline.min(Instant::now() + inner.connect_timeout);
                    match timeout_at(until, inner.connect(until)).await {
                        Ok(Ok(c)) => c,
                        Ok(Err(e)) => return Attempt::NotConnected(e),
                        Err(_) => {
                            return Attempt::NotConnected(ConnectError::Timeout {
                                what: format!("{}:{}", inner.host, inner.port),
                            });
                        }
                    }
                }
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
                        return Attempt::NotConnected(ConnectError::Other {
                            addr: format!("{}:{}", inner.host, inner.port),
                            detail: chain(e.error()),
                        });
                    }
                    None => return Attempt::Ambiguous(Ambiguity::Broken(chain(e.error()))),
                },
                Err(_) => return Attempt::Ambiguous(Ambiguity::TimedOut),
            };
            let status = resp.status().as_u16();
            let retry_after = retry_after(resp.headers());
            let why = match timeout_at(deadline, read_body(resp.into_body())).await {
                Ok(Ok((body, cut))) => {
                    // The rest of a cut answer is never read: its connection is dropped.
                    if !cut {
                        self.conn = Some((conn, Instant::now()));
                    }
                    return Attempt::Response {
                        status,
                        body,
                        retry_after,
                        cut,
                    };
                }
                Ok(Err(e)) => Ambiguity::BodyBroke(chain(&e)),
                Err(_) => Ambiguity::TimedOut,
            };
            return broken_body(status, retry_after, why);
        }
    }
}

/// The most of an answer's body that is read (1 MiB). An answer to one send is a few hundred
/// bytes; a larger one is cut there and the rest never read, so that no answer, however long
/// or endless, holds more memory or time than this.
pub(crate) const MAX_ANSWER: usize = 1024 * 1024;

/// Reads a body up to [`MAX_ANSWER`] bytes: the bytes, and whether more followed (cut).
async fn read_body(mut body: hyper::body::Incoming) -> Result<(Bytes, bool), hyper::Error> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        let room = MAX_ANSWER - buf.len();
        if data.len() > room {
            buf.extend_from_slice(&data[..room]);
            return Ok((buf.freeze(), true));
        }
        buf.extend_from_slice(&data);
    }
    Ok((buf.freeze(), false))
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

    #[test]
    fn a_tunnel_asks_for_the_api_host_and_port() {
        let to = |url: &str| {
            let to = tunnel_target(&url.parse().unwrap()).unwrap();
            (to.host().map(String::from), to.port_u16())
        };
        assert_eq!(
            to("https://[2001:db8::1]/v1/send"),
            (Some("[2001:db8::1]".into()), Some(443))
        );
        assert_eq!(
            to("http://api.example.com/v1/send"),
            (Some("api.example.com".into()), Some(80))
        );
        assert_eq!(
            to("https://api.example.com:8443/v1/send?x=1"),
            (Some("api.example.com".into()), Some(8443))
        );
    }
}
