//! Prometheus metrics, served at `GET /metrics` behind the admin token (see
//! docs/operations.md for every series).
//!
//! Each request is recorded once, when it is settled: a [`Tally`] starts with the
//! request, notes the upstream calls and the first token, and is recorded by whichever
//! path ends the request (a non-streamed answer, the end of a stream, a refusal). The
//! request path takes no lock but a read lock on a small map (one lookup per request:
//! the series of the endpoint that answered, [`Hot`]), and its histograms are atomics
//! ([`Histogram`]). Gauges of state (connections, reservations, the ledger's queue,
//! circuits, upstream connections) are read when scraped, not kept up to date.
//!
//! One [`Metrics`] per gateway ([`crate::server::AppState`]), so that gateways in one
//! process (tests) count apart. The exact record of money is the ledger; the cost
//! counter is in integer nanodollars, for monitoring.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::{Registry, Unit};

pub use crate::histogram::{Histogram, COMMIT_BUCKETS, OVERHEAD_BUCKETS, REQUEST_BUCKETS};
pub use crate::providers::pool::{self, UpstreamConnections};

use crate::catalog::Endpoint;
use crate::chat::Usage;
use crate::money::Nanos;

/// Every series' name starts with `gammainfra_`.
const PREFIX: &str = "gammainfra";

/// The route a request came in on (`route` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    ChatCompletions,
    Messages,
    Responses,
    Embeddings,
}

impl Route {
    /// How many routes there are: the size of [`Metrics`]' per-route maps.
    const COUNT: usize = 4;

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/v1/chat/completions",
            Self::Messages => "/v1/messages",
            Self::Responses => "/v1/responses",
            Self::Embeddings => "/v1/embeddings",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::ChatCompletions => 0,
            Self::Messages => 1,
            Self::Responses => 2,
            Self::Embeddings => 3,
        }
    }
}

fn label(e: &mut LabelSetEncoder, key: &str, value: &str) -> fmt::Result {
    (key, value).encode(e.encode_label())
}

/// The endpoint that answered a request, as labels: empty for a request refused
/// before any provider was called.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Served {
    model: Arc<str>,
    provider: Arc<str>,
    region: Arc<str>,
}

impl Served {
    fn of(ep: &Endpoint) -> Self {
        Self {
            model: ep.model_id.as_str().into(),
            provider: ep.provider.to_string().into(),
            region: ep.served_region().into(),
        }
    }

    fn is(&self, ep: &Endpoint) -> bool {
        *self.model == *ep.model_id && *self.region == *ep.served_region()
    }
}

impl EncodeLabelSet for Served {
    fn encode(&self, e: &mut LabelSetEncoder) -> fmt::Result {
        label(e, "model", &self.model)?;
        label(e, "provider", &self.provider)?;
        label(e, "region", &self.region)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RouteLabels {
    route: &'static str,
    served: Served,
}

impl EncodeLabelSet for RouteLabels {
    fn encode(&self, e: &mut LabelSetEncoder) -> fmt::Result {
        label(e, "route", self.route)?;
        self.served.encode(e)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RequestLabels {
    route: &'static str,
    served: Served,
    status: u16,
}

impl EncodeLabelSet for RequestLabels {
    fn encode(&self, e: &mut LabelSetEncoder) -> fmt::Result {
        label(e, "route", self.route)?;
        self.served.encode(e)?;
        ("status", self.status).encode(e.encode_label())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ErrorLabels {
    route: &'static str,
    status: u16,
    code: &'static str,
}

impl EncodeLabelSet for ErrorLabels {
    fn encode(&self, e: &mut LabelSetEncoder) -> fmt::Result {
        label(e, "route", self.route)?;
        ("status", self.status).encode(e.encode_label())?;
        label(e, "code", self.code)
    }
}

/// `direction` of `gammainfra_tokens_total`, `kind` of `gammainfra_upstream_errors_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ServedAnd {
    served: Served,
    key: &'static str,
    value: &'static str,
}

impl EncodeLabelSet for ServedAnd {
    fn encode(&self, e: &mut LabelSetEncoder) -> fmt::Result {
        self.served.encode(e)?;
        label(e, self.key, self.value)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CircuitLabels {
    endpoint: String,
    served: Served,
}

impl EncodeLabelSet for CircuitLabels {
    fn encode(&self, e: &mut LabelSetEncoder) -> fmt::Result {
        label(e, "endpoint", &self.endpoint)?;
        self.served.encode(e)
    }
}

/// The token kinds of [`Usage`], as `direction` values.
const DIRECTIONS: [&str; 4] = ["input", "output", "cache_read", "cache_write"];

type Histograms = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The series one request at one endpoint on one route touches, looked up once.
struct Hot {
    served: Served,
    /// `gammainfra_requests_total{status="200"}`.
    ok: Counter,
    total: Histogram,
    upstream: Histogram,
    overhead: Histogram,
    ttft: Histogram,
    /// In the order of [`DIRECTIONS`].
    tokens: [Counter; 4],
    cost: Counter,
}

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    upstream_errors: Family<ServedAnd, Counter>,
    total: Histograms,
    upstream: Histograms,
    overhead: Histograms,
    ttft: Histograms,
    tokens: Family<ServedAnd, Counter>,
    cost: Family<Served, Counter>,
    /// Per route, by endpoint key.
    hot: [RwLock<HashMap<String, Arc<Hot>>>; Route::COUNT],
    /// The labels of a request no provider answered.
    nobody: Served,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn histograms(buckets: fn() -> Histogram) -> Histograms {
    Family::new_with_constructor(buckets)
}

impl Metrics {
    /// The registry, with the ledger's commit-latency histogram (kept by the ledger).
    pub fn new(ledger_commits: Histogram) -> Self {
        let m = Self {
            registry: Registry::with_prefix(PREFIX),
            requests: Family::default(),
            errors: Family::default(),
            upstream_errors: Family::default(),
            total: histograms(|| Histogram::new(REQUEST_BUCKETS)),
            upstream: histograms(|| Histogram::new(REQUEST_BUCKETS)),
            overhead: histograms(|| Histogram::new(OVERHEAD_BUCKETS)),
            ttft: histograms(|| Histogram::new(REQUEST_BUCKETS)),
            tokens: Family::default(),
            cost: Family::default(),
            hot: Default::default(),
            nobody: Served {
                model: "".into(),
                provider: "".into(),
                region: "".into(),
            },
        };
        let mut r = Registry::with_prefix(PREFIX);
        r.register(
            "requests",
            "Requests answered, by route, the model, provider and region that served them (empty when none did) and HTTP status",
            m.requests.clone(),
        );
        r.register(
            "errors",
            "Requests that failed, by route, HTTP status and error code; a stream that broke after its 200 has status 200 and code upstream_error or cut_short",
            m.errors.clone(),
        );
        r.register(
            "upstream_errors",
            "Failed provider calls, by endpoint and kind, including those that failed over to another endpoint",
            m.upstream_errors.clone(),
        );
        r.register_with_unit(
            "request_duration",
            "Time from a request's arrival to its end (a stream's last byte)",
            Unit::Seconds,
            m.total.clone(),
        );
        r.register_with_unit(
            "upstream_duration",
            "Time spent waiting on providers: every call of the request, from sending it to the end of its answer",
            Unit::Seconds,
            m.upstream.clone(),
        );
        r.register_with_unit(
            "gateway_overhead",
            "Request duration minus upstream duration, for requests that called a provider",
            Unit::Seconds,
            m.overhead.clone(),
        );
        r.register_with_unit(
            "time_to_first_token",
            "Streams: from calling the provider to its first output chunk",
            Unit::Seconds,
            m.ttft.clone(),
        );
        r.register(
            "tokens",
            "Tokens billed, by model, provider, region and direction (input excludes cache reads and writes)",
            m.tokens.clone(),
        );
        r.register(
            "cost_nanodollars",
            "Amount charged in nanodollars (1e-9 USD), by model, provider and region; the ledger is the exact record",
            m.cost.clone(),
        );
        r.register_with_unit(
            "ledger_commit_duration",
            "Time of a successful group commit of usage entries to the database",
            Unit::Seconds,
            ledger_commits,
        );
        Self { registry: r, ..m }
    }

    /// Starts timing a request.
    pub fn tally(self: &Arc<Self>, route: Route) -> Tally {
        Tally {
            metrics: self.clone(),
            route,
            started: Instant::now(),
            upstream: Duration::ZERO,
            calling: None,
            endpoint: None,
            ttft: None,
            recorded: false,
        }
    }

    /// A failed provider call (whether it failed over or not).
    fn upstream_error(
        &self,
        route: Route,
        ep: &Endpoint,
        kind: crate::providers::UpstreamErrorKind,
    ) {
        use crate::providers::UpstreamErrorKind as K;
        let kind = match kind {
            K::Connect => "connect",
            K::Timeout => "timeout",
            K::RateLimited => "rate_limited",
            K::Unavailable => "unavailable",
            K::Rejected => "rejected",
            K::Auth => "auth",
            K::ModelMissing => "model_missing",
            K::CatalogFault => "catalog_fault",
            K::Protocol => "protocol",
            K::Interrupted => "interrupted",
        };
        // The labels of the endpoint's series if it has answered before; not its series
        // themselves, which an endpoint that only fails would show as zeros.
        let known = self.hot[route.index()]
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(ep.key.as_str())
            .filter(|h| h.served.is(ep))
            .map(|h| h.served.clone());
        let served = known.unwrap_or_else(|| Served::of(ep));
        self.upstream_errors
            .get_or_create(&ServedAnd {
                served,
                key: "kind",
                value: kind,
            })
            .inc();
    }

    /// Runs `f` on the series of `ep` on `route`, creating them the first time.
    fn with_hot<R>(&self, route: Route, ep: &Endpoint, f: impl FnOnce(&Hot) -> R) -> R {
        let map = &self.hot[route.index()];
        {
            let hot = map.read().unwrap_or_else(PoisonError::into_inner);
            // The check keeps a reloaded catalog that moved an endpoint key to another
            // model or region from counting under the old labels.
            if let Some(h) = hot.get(ep.key.as_str()).filter(|h| h.served.is(ep)) {
                return f(h);
            }
        }
        let served = Served::of(ep);
        let series = RouteLabels {
            route: route.as_str(),
            served: served.clone(),
        };
        let tokens = DIRECTIONS.map(|d| {
            self.tokens.get_or_create_owned(&ServedAnd {
                served: served.clone(),
                key: "direction",
                value: d,
            })
        });
        let h = Arc::new(Hot {
            ok: self.requests.get_or_create_owned(&RequestLabels {
                route: route.as_str(),
                served: served.clone(),
                status: 200,
            }),
            total: self.total.get_or_create_owned(&series),
            upstream: self.upstream.get_or_create_owned(&series),
            overhead: self.overhead.get_or_create_owned(&series),
            ttft: self.ttft.get_or_create_owned(&series),
            tokens,
            cost: self.cost.get_or_create_owned(&served),
            served,
        });
        map.write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ep.key.clone(), h.clone());
        f(&h)
    }

    /// The exposition (OpenMetrics text): the request series, then the state read now.
    pub fn render(&self, live: &Live<'_>) -> Result<String, fmt::Error> {
        let mut now = Registry::with_prefix(PREFIX);
        now.register(
            "connections",
            "Client connections open",
            ConstGauge::new(live.connections as i64),
        );
        now.register(
            "reservations_in_flight",
            "Requests admitted and not yet settled (credit held)",
            ConstGauge::new(live.ledger.open_reservations() as i64),
        );
        now.register(
            "ledger_queue_depth",
            "Usage entries settled and not yet committed to the database",
            ConstGauge::new(live.ledger.pending_writes() as i64),
        );
        let circuits = Family::<CircuitLabels, Gauge>::default();
        for (ep, open) in live.router.circuits() {
            circuits
                .get_or_create(&CircuitLabels {
                    endpoint: ep.key.clone(),
                    served: Served::of(ep),
                })
                .set(i64::from(open));
        }
        now.register(
            "circuit_open",
            "Per routable endpoint: 1 while its circuit is open (it is tried last), else 0",
            circuits,
        );
        if let Some(u) = live.upstream {
            now.register(
                "upstream_connections_open",
                "Upstream connections open, idle in the pool or in use",
                ConstGauge::new(i64::try_from(u.open()).unwrap_or(i64::MAX)),
            );
            now.register(
                "upstream_connections_opened",
                "Upstream connections opened since start",
                ConstCounter::new(u.opened()),
            );
        }
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode_registry(&mut out, &self.registry)?;
        prometheus_client::encoding::text::encode_registry(&mut out, &now)?;
        prometheus_client::encoding::text::encode_eof(&mut out)?;
        Ok(out)
    }
}

/// What a scrape reads of the gateway's state.
pub struct Live<'a> {
    pub connections: usize,
    pub ledger: &'a crate::ledger::Ledger,
    pub router: &'a crate::router::Router,
    pub upstream: Option<&'a UpstreamConnections>,
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One request's measurements, recorded once by whichever path ends it.
pub struct Tally {
    metrics: Arc<Metrics>,
    route: Route,
    started: Instant,
    /// Provider calls that have ended.
    upstream: Duration,
    /// The provider call under way, if any.
    calling: Option<Instant>,
    /// The endpoint of the last provider call.
    endpoint: Option<Arc<Endpoint>>,
    ttft: Option<Duration>,
    recorded: bool,
}

impl Tally {
    /// A provider call to `ep` starts at `at` (ending the previous one, if any).
    pub fn calling(&mut self, ep: &Arc<Endpoint>, at: Instant) {
        if let Some(c) = self.calling.replace(at) {
            self.upstream += at.saturating_duration_since(c);
        }
        self.endpoint = Some(ep.clone());
    }

    /// The current provider call failed (whether the request fails over or not).
    pub fn upstream_error(&self, kind: crate::providers::UpstreamErrorKind) {
        if let Some(ep) = &self.endpoint {
            self.metrics.upstream_error(self.route, ep, kind);
        }
    }

    /// A stream's first output chunk came `ttft` after its call.
    pub fn first_token(&mut self, ttft: Duration) {
        self.ttft = Some(ttft);
    }

    /// Hands the tally over to what ends the request (a stream's body); this one is
    /// left recorded.
    pub fn take(&mut self) -> Tally {
        self.recorded = true;
        Tally {
            metrics: self.metrics.clone(),
            route: self.route,
            started: self.started,
            upstream: self.upstream,
            calling: self.calling,
            endpoint: self.endpoint.take(),
            ttft: self.ttft,
            recorded: false,
        }
    }

    /// The request was answered (200) and billed `cost` for `usage`; `failure` names
    /// how a stream broke after its 200, if it did.
    pub fn answered(&mut self, usage: &Usage, cost: Nanos, failure: Option<&'static str>) {
        self.record(200, failure, Some((usage, cost)));
    }

    /// The request failed with `status` and error `code`.
    pub fn failed(&mut self, status: u16, code: &'static str) {
        self.record(status, Some(code), None);
    }

    fn record(&mut self, status: u16, code: Option<&'static str>, billed: Option<(&Usage, Nanos)>) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
        let now = Instant::now();
        let total = now.saturating_duration_since(self.started);
        let upstream = self
            .calling
            .map(|c| self.upstream + now.saturating_duration_since(c));
        let m = &*self.metrics;
        let route = self.route.as_str();
        match &self.endpoint {
            Some(ep) => m.with_hot(self.route, ep, |h| {
                if status == 200 {
                    h.ok.inc();
                } else {
                    m.requests
                        .get_or_create(&RequestLabels {
                            route,
                            served: h.served.clone(),
                            status,
                        })
                        .inc();
                }
                h.total.observe(total);
                if let Some(u) = upstream {
                    h.upstream.observe(u);
                    h.overhead.observe(total.saturating_sub(u));
                }
                if let Some(t) = self.ttft {
                    h.ttft.observe(t);
                }
                if let Some((u, cost)) = billed {
                    let cache_write = u.cache_write_5m_tokens + u.cache_write_1h_tokens;
                    let n = [
                        u.input_tokens,
                        u.output_tokens,
                        u.cache_read_tokens,
                        cache_write,
                    ];
                    for (c, n) in h.tokens.iter().zip(n) {
                        if n > 0 {
                            c.inc_by(n);
                        }
                    }
                    h.cost.inc_by(u64::try_from(cost.nanos()).unwrap_or(0));
                }
            }),
            None => {
                let served = m.nobody.clone();
                m.requests
                    .get_or_create(&RequestLabels {
                        route,
                        served: served.clone(),
                        status,
                    })
                    .inc();
                m.total
                    .get_or_create(&RouteLabels { route, served })
                    .observe(total);
            }
        }
        if let Some(code) = code {
            m.errors
                .get_or_create(&ErrorLabels {
                    route,
                    status,
                    code,
                })
                .inc();
        }
    }
}
