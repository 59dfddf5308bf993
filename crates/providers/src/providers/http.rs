//! The pooled upstream HTTP client and the SSE reader.
//!
//! One hyper client is shared by all providers: keep-alive pools per host, rustls (ring,
//! webpki roots) for `https://`, plain HTTP for loopback simulators and private
//! OpenAI-compatible servers, and TCP_NODELAY on every upstream socket (without it a
//! small request waits for the peer's delayed ACK, ~40 ms).

use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{UpstreamError, UpstreamErrorKind};

/// Upstream timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// From sending the request to the response head.
    pub first_byte: Duration,
    /// Longest silence allowed between two pieces of a body or stream.
    pub idle: Duration,
    /// Longest a body or stream may take, from its head to its end: a stream that
    /// keeps sending (pings, empty deltas) but never ends is cut here.
    pub total: Duration,
    /// How long an idle pooled upstream connection is kept for reuse.
    pub pool_idle: Duration,
}

impl Timeouts {
    /// Waits for the next piece of a body whose head arrived at `started`: within the
    /// idle timeout and the total one. The error names the one that ran out.
    pub async fn next<T>(
        &self,
        started: tokio::time::Instant,
        piece: impl std::future::Future<Output = T>,
    ) -> Result<T, String> {
        let deadline = started + self.total;
        let idle_end = tokio::time::Instant::now() + self.idle;
        match tokio::time::timeout_at(deadline.min(idle_end), piece).await {
            Ok(v) => Ok(v),
            Err(_) if idle_end <= deadline => Err(format!("idle for {:?}", self.idle)),
            Err(_) => Err(format!("still not ended after {:?}", self.total)),
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            // A non-streamed answer arrives only when the whole generation is done:
            // long outputs of large models take minutes.
            first_byte: Duration::from_secs(600),
            idle: Duration::from_secs(300),
            total: Duration::from_secs(3600),
            pool_idle: Duration::from_secs(90),
        }
    }
}

type Connector = crate::providers::pool::Counted<hyper_rustls::HttpsConnector<HttpConnector>>;

/// A cheap-to-clone handle on the shared connection pool.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<Connector, Full<Bytes>>,
    pub timeouts: Timeouts,
    /// The pool's connections, counted by the connector (for `/metrics`).
    pub connections: std::sync::Arc<crate::providers::pool::UpstreamConnections>,
}

/// Largest non-streamed upstream body we accept.
const MAX_BODY: usize = 64 * 1024 * 1024;

impl HttpClient {
    pub fn new(timeouts: Timeouts) -> Result<Self, rustls::Error> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeouts.connect));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let connections = std::sync::Arc::default();
        let https =
            crate::providers::pool::Counted::new(https, std::sync::Arc::clone(&connections));
        // The pool needs a timer to close idle connections once `pool_idle` has passed;
        // without one it only notices on the next checkout, and the connections of a
        // burst stay open (a task and a descriptor each) until the provider closes them.
        let inner = Client::builder(TokioExecutor::new())
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .pool_idle_timeout(timeouts.pool_idle)
            .pool_max_idle_per_host(1024)
            .build(https);
        Ok(Self {
            inner,
            timeouts,
            connections,
        })
    }

    /// Sends a request and waits for the response head (first-byte timeout).
    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
        provider: &str,
    ) -> Result<Response<Incoming>, UpstreamError> {
        match tokio::time::timeout(self.timeouts.first_byte, self.inner.request(req)).await {
            Err(_) => Err(UpstreamError::new(
                UpstreamErrorKind::Timeout,
                provider,
                format!("no response within {:?}", self.timeouts.first_byte),
            )),
            Ok(Err(e)) => {
                let kind = if e.is_connect() {
                    UpstreamErrorKind::Connect
                } else {
                    UpstreamErrorKind::Interrupted
                };
                Err(UpstreamError::new(
                    kind,
                    provider,
                    format!("request failed: {}", chain(&e)),
                ))
            }
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// Reads a whole (non-streamed) body, within the idle and total timeouts.
    pub async fn read_body(&self, body: Incoming, provider: &str) -> Result<Bytes, UpstreamError> {
        let mut body = Limited::new(body, MAX_BODY);
        let mut buf = bytes::BytesMut::new();
        let started = tokio::time::Instant::now();
        loop {
            match self.timeouts.next(started, body.frame()).await {
                Err(why) => {
                    return Err(UpstreamError::new(
                        UpstreamErrorKind::Timeout,
                        provider,
                        format!("response body {why}"),
                    ))
                }
                Ok(None) => return Ok(buf.freeze()),
                Ok(Some(Err(e))) => {
                    return Err(UpstreamError::new(
                        UpstreamErrorKind::Interrupted,
                        provider,
                        format!("reading the response failed: {e}"),
                    ))
                }
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// Server-sent events of a streamed body, each within the idle timeout and all within
    /// the total one. The stream ends with an `Interrupted` error if the body breaks (or
    /// is not SSE), and a `Timeout` error if it stalls or runs past the total timeout.
    pub fn sse(
        &self,
        body: Incoming,
        provider: &str,
    ) -> impl Stream<Item = Result<Event, UpstreamError>> + Send + 'static {
        let events = sse_stream::SseStream::new(body);
        let timeouts = self.timeouts;
        let started = tokio::time::Instant::now();
        let provider: std::sync::Arc<str> = provider.into();
        futures_util::stream::unfold(Some(events), move |state| {
            let provider = provider.clone();
            async move {
                let mut events = state?;
                match timeouts.next(started, events.next()).await {
                    Err(why) => Some((
                        Err(UpstreamError::new(
                            UpstreamErrorKind::Timeout,
                            &provider,
                            format!("stream {why}"),
                        )),
                        None,
                    )),
                    Ok(None) => None,
                    Ok(Some(Ok(ev))) => Some((Ok(Event::from(ev)), Some(events))),
                    Ok(Some(Err(e))) => Some((
                        Err(UpstreamError::new(
                            UpstreamErrorKind::Interrupted,
                            &provider,
                            format!("stream broke: {e}"),
                        )),
                        None,
                    )),
                }
            }
        })
    }
}

/// One server-sent event as the adapters read it: its type (`message` when the event
/// names none, as the SSE standard dispatches it) and its data lines joined by `\n`
/// (empty for an event without data, which the adapters skip).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    pub event: String,
    pub data: String,
}

impl From<sse_stream::Sse> for Event {
    fn from(s: sse_stream::Sse) -> Self {
        Event {
            event: s.event.unwrap_or_else(|| "message".to_owned()),
            data: s.data.unwrap_or_default(),
        }
    }
}

/// An error and its causes, `a: b: c`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A parsed base URL: `scheme://authority` plus a path prefix without trailing slash.
#[derive(Debug, Clone)]
pub struct BaseUrl {
    pub origin: String,
    pub path: String,
    pub host_header: String,
}

impl BaseUrl {
    pub fn parse(s: &str) -> Result<Self, String> {
        let uri: hyper::Uri = s.parse().map_err(|e| format!("`{s}` is not a URL: {e}"))?;
        let scheme = uri
            .scheme_str()
            .ok_or_else(|| format!("`{s}` has no scheme"))?;
        if scheme != "http" && scheme != "https" {
            return Err(format!("`{s}` must be http:// or https://"));
        }
        let auth = uri
            .authority()
            .ok_or_else(|| format!("`{s}` has no host"))?
            .as_str()
            .to_owned();
        Ok(Self {
            origin: format!("{scheme}://{auth}"),
            path: uri.path().trim_end_matches('/').to_owned(),
            host_header: auth,
        })
    }

    pub fn url(&self, suffix: &str) -> String {
        format!("{}{}{}", self.origin, self.path, suffix)
    }
}

/// The host of an `authority` (`host[:port]`), for `server.address`.
pub fn host_of(authority: &str) -> String {
    authority
        .parse::<hyper::http::uri::Authority>()
        .map_or_else(|_| authority.to_owned(), |a| a.host().to_owned())
}
