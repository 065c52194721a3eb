//! A small HTTP/1.1 client on hyper, for the two places rekindle calls out
//! over HTTP: the `rekindle runs` commands talking to a daemon (`http://`
//! or `unix:/path/to.sock`) and the daemon's webhooks (`http://` or
//! `https://`, verified against the system's roots). One connection per
//! request and a deadline on each; it never retries on its own. URLs are
//! parsed by the `url` crate and shown only as scheme, host and port
//! ([`Url::shown`]): a webhook's path or query may be its secret.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL does not parse.
    #[error("{url}: {reason}")]
    BadUrl {
        /// The URL as shown ([`Url::shown`]: no path, query or credentials).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The connection (or its TLS handshake) failed.
    #[error("{url}: cannot connect: {reason}")]
    Connect {
        /// The URL called, as shown ([`Url::shown`]).
        url: String,
        /// What the connection said.
        reason: String,
    },
    /// The request or the response failed mid-way.
    #[error("{url}: {reason}")]
    Exchange {
        /// The URL called, as shown ([`Url::shown`]).
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// No complete response before the deadline.
    #[error("{url}: no answer within {after:?}")]
    Timeout {
        /// The URL called, as shown ([`Url::shown`]).
        url: String,
        /// The deadline.
        after: Duration,
    },
}

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A TCP address, with TLS for `https://`.
    Tcp {
        /// Host name or IP address.
        host: String,
        /// TCP port (default 80, or 443 with TLS).
        port: u16,
        /// Whether to speak TLS.
        tls: bool,
    },
    /// A Unix socket's path.
    Unix(PathBuf),
}

/// A parsed base URL: the server, a path prefix and a query. Parsed by the
/// `url` crate (WHATWG rules: IPv6 literals, percent-encoding, default
/// ports). A webhook's URL often holds its secret in the path or query, so
/// the URL is never shown whole: errors and logs use [`Url::shown`].
#[derive(Clone)]
pub struct Url {
    /// The server.
    pub target: Target,
    /// The path prefix, without a trailing `/` (empty for none).
    pub path: String,
    /// The query, without its `?`, sent with every request.
    pub query: Option<String>,
    shown: String,
    /// For `https://`: the roots to verify the server against, when not
    /// the system's ([`Url::trusting`]).
    roots: Option<Arc<rustls::ClientConfig>>,
}

impl PartialEq for Url {
    fn eq(&self, other: &Url) -> bool {
        (&self.target, &self.path, &self.query) == (&other.target, &other.path, &other.query)
    }
}

impl Eq for Url {}

impl std::fmt::Debug for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Url {
    /// `http://host[:port][/path][?query]`, `https://…`, or
    /// `unix:/path/to.sock`.
    pub fn parse(text: &str) -> Result<Url, HttpError> {
        let bad = |reason: &str| HttpError::BadUrl {
            url: shown_of_text(text),
            reason: reason.to_string(),
        };
        if let Some(p) = text.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(bad("expected unix:/path/to.sock"));
            }
            return Ok(Url {
                target: Target::Unix(PathBuf::from(p)),
                path: String::new(),
                query: None,
                shown: text.to_string(),
                roots: None,
            });
        }
        let u = url::Url::parse(text).map_err(|e| match e {
            url::ParseError::InvalidPort => bad("the port is not a number"),
            e => bad(&e.to_string()),
        })?;
        let tls = match u.scheme() {
            "http" => false,
            "https" => true,
            _ => return Err(bad("expected http://, https:// or unix:")),
        };
        if !u.username().is_empty() || u.password().is_some() {
            return Err(bad(
                "credentials in the URL are not supported: put a token in the path or query",
            ));
        }
        let host = match u.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err(bad("no host")),
        };
        let port = u
            .port_or_known_default()
            .expect("http and https have default ports");
        let path = u.path().trim_end_matches('/').to_string();
        let query = u.query().map(str::to_string);
        let mut shown = format!("{}://{}", u.scheme(), u.host_str().unwrap_or(""));
        if let Some(p) = u.port() {
            shown += &format!(":{p}");
        }
        if !path.is_empty() || query.is_some() {
            shown += "/…";
        }
        Ok(Url {
            target: Target::Tcp { host, port, tls },
            path,
            query,
            shown,
            roots: None,
        })
    }

    /// An `https://` server verified against the CA certificates (PEM) in
    /// `ca` instead of the system's roots.
    pub fn trusting(mut self, ca: &std::path::Path) -> Result<Url, String> {
        use rustls::pki_types::pem::PemObject;
        let at = |e: &dyn std::fmt::Display| format!("{}: {e}", ca.display());
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).map_err(|e| at(&e))? {
            roots.add(c.map_err(|e| at(&e))?).map_err(|e| at(&e))?;
        }
        if roots.is_empty() {
            return Err(at(&"no certificate in it"));
        }
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| at(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        self.roots = Some(Arc::new(cfg));
        Ok(self)
    }

    /// Whether a secret sent to this server crosses a network in clear:
    /// plain `http://` to an address that is not loopback.
    pub fn in_clear(&self) -> bool {
        match &self.target {
            Target::Unix(_) => false,
            Target::Tcp { tls: true, .. } => false,
            Target::Tcp { host, .. } => {
                host != "localhost"
                    && !host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
        }
    }

    /// The URL as errors and logs show it: scheme, host and port, with
    /// any path or query (where a webhook keeps its secret) as `/…`.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn host_header(&self) -> String {
        match &self.target {
            Target::Tcp { host, port, .. } if host.contains(':') => format!("[{host}]:{port}"),
            Target::Tcp { host, port, .. } => format!("{host}:{port}"),
            Target::Unix(_) => "localhost".into(),
        }
    }
}

/// What an unparsed URL shows in an error: its scheme and host, nothing
/// after them, no credentials.
fn shown_of_text(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return "the URL".into();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let more = if rest.len() > authority.len() {
        "/…"
    } else {
        ""
    };
    format!("{scheme}://{host}{more}")
}

/// A response whose body has been read whole.
#[derive(Debug)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The whole body.
    pub body: Bytes,
}

impl Response {
    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// A request: method, path under the URL, headers and body.
pub struct Request<'a> {
    /// The method (`GET`, `POST`, ...).
    pub method: &'a str,
    /// The path, appended to the URL's prefix.
    pub path: &'a str,
    /// Extra headers, as (name, value).
    pub headers: Vec<(&'a str, String)>,
    /// The body, if any.
    pub body: Option<Vec<u8>>,
}

impl<'a> Request<'a> {
    /// A request without headers or body.
    pub fn new(method: &'a str, path: &'a str) -> Request<'a> {
        Request {
            method,
            path,
            headers: Vec::new(),
            body: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'a str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Sets `v` as the body, with `content-type: application/json`.
    pub fn json(mut self, v: &serde_json::Value) -> Self {
        self.body = Some(serde_json::to_vec(v).expect("JSON serializes"));
        self.header("content-type", "application/json")
    }
}

/// Sends a request and reads the whole answer, all within `timeout`.
pub async fn send(url: &Url, req: Request<'_>, timeout: Duration) -> Result<Response, HttpError> {
    let work = async {
        let resp = open(url, req).await?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| exchange(url, e))?
            .to_bytes();
        Ok(Response { status, body })
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| HttpError::Timeout {
            url: url.shown.clone(),
            after: timeout,
        })?
}

/// Sends a request and hands back the streaming answer (Server-Sent
/// Events); connecting and the response head are bounded by `timeout`.
pub async fn stream(
    url: &Url,
    req: Request<'_>,
    timeout: Duration,
) -> Result<hyper::Response<Incoming>, HttpError> {
    tokio::time::timeout(timeout, open(url, req))
        .await
        .map_err(|_| HttpError::Timeout {
            url: url.shown.clone(),
            after: timeout,
        })?
}

fn exchange(url: &Url, e: impl std::fmt::Display) -> HttpError {
    HttpError::Exchange {
        url: url.shown.clone(),
        reason: e.to_string(),
    }
}

async fn open(url: &Url, req: Request<'_>) -> Result<hyper::Response<Incoming>, HttpError> {
    let connect = |e: std::io::Error| HttpError::Connect {
        url: url.shown.clone(),
        reason: e.to_string(),
    };
    let mut path = format!("{}{}", url.path, req.path);
    if path.is_empty() {
        path.push('/');
    }
    if let Some(q) = &url.query {
        path.push(if path.contains('?') { '&' } else { '?' });
        path.push_str(q);
    }
    let mut b = hyper::Request::builder()
        .method(req.method)
        .uri(path)
        .header("host", url.host_header());
    for (k, v) in &req.headers {
        b = b.header(*k, v.as_str());
    }
    let request = b
        .body(Full::new(Bytes::from(req.body.unwrap_or_default())))
        .map_err(|e| exchange(url, e))?;
    match &url.target {
        Target::Unix(path) => {
            let io = tokio::net::UnixStream::connect(path)
                .await
                .map_err(connect)?;
            over(url, io, request).await
        }
        Target::Tcp {
            host,
            port,
            tls: false,
        } => {
            let io = tokio::net::TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(connect)?;
            let _ = io.set_nodelay(true);
            over(url, io, request).await
        }
        Target::Tcp {
            host,
            port,
            tls: true,
        } => {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(connect)?;
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| exchange(url, e))?;
            let io = tokio_rustls::TlsConnector::from(url.roots.clone().unwrap_or_else(tls_config))
                .connect(name, tcp)
                .await
                .map_err(connect)?;
            over(url, io, request).await
        }
    }
}

async fn over<T>(
    url: &Url,
    io: T,
    request: hyper::Request<Full<Bytes>>,
) -> Result<hyper::Response<Incoming>, HttpError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| exchange(url, e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| exchange(url, e))
}

/// The system's trust roots, loaded once.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "loading the system's trust roots");
            }
            let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
            let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            Arc::new(cfg)
        })
        .clone()
}

/// Splits a Server-Sent Events byte stream into events: feed it chunks,
/// take back `(id, event, data)` for every complete event.
#[derive(Default)]
pub struct SseParser {
    /// Bytes of a line not yet whole.
    buf: Vec<u8>,
    /// The pending event's fields.
    id: Option<String>,
    event: Option<String>,
    data: Vec<String>,
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// Its `id:` field, if any.
    pub id: Option<String>,
    /// Its `event:` field (`message` when it has none).
    pub event: String,
    /// Its `data:` lines, joined by newlines.
    pub data: String,
}

impl SseParser {
    /// Takes the next chunk; returns the events it completed (events
    /// without data are skipped). Bytes are kept until their line is
    /// whole, so a character split across chunks arrives whole; lines end
    /// with LF, CRLF or CR, as the SSE format allows (a CR that ends a
    /// chunk waits for the next one, which may bring its LF).
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(rel) = self.buf[start..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
        {
            let end = start + rel;
            let terminator = match (self.buf[end], self.buf.get(end + 1)) {
                (b'\r', Some(b'\n')) => 2,
                (b'\r', None) => break,
                _ => 1,
            };
            let line = String::from_utf8_lossy(&self.buf[start..end]).into_owned();
            start = end + terminator;
            self.line(&line, &mut out);
        }
        self.buf.drain(..start);
        out
    }

    /// One whole line: a field of the pending event, a comment, or the
    /// blank line that dispatches it.
    fn line(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            let (id, event, data) = (
                self.id.take(),
                self.event.take(),
                std::mem::take(&mut self.data),
            );
            if !data.is_empty() {
                out.push(SseEvent {
                    id,
                    event: event.unwrap_or_else(|| "message".into()),
                    data: data.join("\n"),
                });
            }
            return;
        }
        if line.starts_with(':') {
            return; // a keep-alive comment
        }
        let (field, value) = line
            .split_once(':')
            .map(|(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)))
            .unwrap_or((line, ""));
        match field {
            "id" => self.id = Some(value.to_string()),
            "event" => self.event = Some(value.to_string()),
            "data" => self.data.push(value.to_string()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_their_defaults_and_bad_ones_say_why() {
        let u = Url::parse("http://127.0.0.1:7878").unwrap();
        assert_eq!(
            u.target,
            Target::Tcp {
                host: "127.0.0.1".into(),
                port: 7878,
                tls: false
            }
        );
        let u = Url::parse("https://hooks.example.com/services/T/B/x").unwrap();
        assert_eq!(
            u.target,
            Target::Tcp {
                host: "hooks.example.com".into(),
                port: 443,
                tls: true
            }
        );
        assert_eq!(u.path, "/services/T/B/x");
        let u = Url::parse("http://[::1]:9000/").unwrap();
        assert_eq!(
            u.target,
            Target::Tcp {
                host: "::1".into(),
                port: 9000,
                tls: false
            }
        );
        assert_eq!(
            Url::parse("unix:/run/rekindle.sock").unwrap().target,
            Target::Unix("/run/rekindle.sock".into())
        );
        let e = Url::parse("ftp://x").unwrap_err().to_string();
        assert!(
            e.contains("ftp://x") && e.contains("expected http://"),
            "{e}"
        );
        assert!(Url::parse("http://h:port")
            .unwrap_err()
            .to_string()
            .contains("port is not a number"));
    }

    #[test]
    fn a_webhooks_secret_path_and_query_never_show() {
        let u = Url::parse("https://hooks.example.com/services/T0/B0/s3cr3t?token=s3cr3t").unwrap();
        assert_eq!(u.path, "/services/T0/B0/s3cr3t");
        assert_eq!(u.query.as_deref(), Some("token=s3cr3t"));
        assert_eq!(u.shown(), "https://hooks.example.com/…");
        assert!(!format!("{u:?}").contains("s3cr3t"));
        let e = Url::parse("https://user:s3cr3t@hooks.example.com/x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("credentials") && !e.contains("s3cr3t"), "{e}");
        let e = Url::parse("https://hooks.example.com:99999/s3cr3t")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cr3t"), "{e}");
        assert_eq!(
            Url::parse("http://h:8080").unwrap().shown(),
            "http://h:8080"
        );
    }

    #[test]
    fn sse_events_split_across_chunks_come_out_whole() {
        let mut p = SseParser::default();
        assert!(p
            .feed(b": keep-alive\n\nid: 1\nevent: wave_started\nda")
            .is_empty());
        let got = p.feed(b"ta: {\"a\":1}\n\nid: 2\ndata: x\n\n");
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            SseEvent {
                id: Some("1".into()),
                event: "wave_started".into(),
                data: "{\"a\":1}".into()
            }
        );
        assert_eq!(got[1].event, "message");
    }

    #[test]
    fn sse_keeps_a_character_split_across_chunks_and_reads_crlf_and_cr_lines() {
        let text = "id: 7\r\nevent: note\r\ndata: caf\u{e9} \u{2713}\r\n\r\n";
        let bytes = text.as_bytes();
        // Every split point, the multi-byte characters and the CRLFs cut too.
        for cut in 0..bytes.len() {
            let mut p = SseParser::default();
            let mut got = p.feed(&bytes[..cut]);
            got.extend(p.feed(&bytes[cut..]));
            assert_eq!(
                got,
                vec![SseEvent {
                    id: Some("7".into()),
                    event: "note".into(),
                    data: "caf\u{e9} \u{2713}".into()
                }],
                "cut at {cut}"
            );
        }
        let mut p = SseParser::default();
        let got = p.feed(b"data: a\rdata: b\r\rdata: c\n\n");
        assert_eq!(
            got.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
            ["a\nb", "c"]
        );
    }
}
