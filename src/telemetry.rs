//! Logs and traces.
//!
//! * Logs: [`init_logs`] sets up `tracing-subscriber` on standard error, as text (ANSI
//!   colours only on a terminal) or, with `GAMMAINFRA_LOG_FORMAT=json`, one JSON object
//!   per line. Every chat, Messages, Responses and embeddings request logs one `request
//!   finished` line at `info` (target `gammainfra::requests`) with its request ID,
//!   account, key ID, model, provider, region, status, tokens, cost and duration:
//!   [`RequestTrace::finish`], the one place it is written. No secret, prompt or answer
//!   is ever logged.
//! * Traces: [`Traces::start`] installs an OpenTelemetry tracer exporting over OTLP/HTTP
//!   when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set
//!   (cargo feature `otlp`). Each request is one server span named `chat {model}`
//!   (`embeddings {model}` on `/v1/embeddings`) with the GenAI semantic-convention
//!   attributes, and each upstream attempt a client span under it. Without an endpoint no span is built: a request carries only an
//!   [`Instant`] and a few IDs for its log line.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::http::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};

use crate::catalog::{Endpoint, ProviderKind};
use crate::chat::Usage;
use crate::money::Nanos;
use crate::providers::UpstreamError;

pub use crate::providers::http::host_of;

/// Sets up logging from `GAMMAINFRA_LOG` (the filter, default `info`) and
/// `GAMMAINFRA_LOG_FORMAT` (`text`, the default, or `json`).
pub fn init_logs() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("GAMMAINFRA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let format = std::env::var("GAMMAINFRA_LOG_FORMAT").unwrap_or_default();
    match format.trim().to_ascii_lowercase().as_str() {
        "json" => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        f => {
            // Colours only for a person at a terminal: never in a file or a pipe.
            let colour = std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            builder.with_ansi(colour).init();
            if !f.is_empty() && f != "text" {
                tracing::warn!(
                    value = %format,
                    "GAMMAINFRA_LOG_FORMAT is neither `text` nor `json`; logging as text"
                );
            }
        }
    }
}

/// The tracer, once [`Traces::start`] found an endpoint; never set otherwise.
static OTEL: OnceLock<Otel> = OnceLock::new();

struct Otel {
    tracer: opentelemetry::global::BoxedTracer,
    propagator: Box<dyn TextMapPropagator + Send + Sync>,
}

fn otel() -> Option<&'static Otel> {
    OTEL.get()
}

/// Whether spans are being exported.
pub fn tracing_enabled() -> bool {
    otel().is_some()
}

/// The process's trace pipeline; [`Traces::shutdown`] exports what is left.
pub struct Traces {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

/// The endpoint traces go to, if the standard variables name one.
fn configured_endpoint() -> Option<String> {
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"))
    {
        return None;
    }
    var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
}

impl Traces {
    /// Starts exporting spans when an OTLP endpoint is configured (see
    /// docs/operations.md, "Traces"). Runs inside the Tokio runtime: the batch exporter
    /// is a task on it. A configuration the exporter refuses is logged and leaves
    /// tracing off; it never stops the gateway.
    pub fn start() -> Self {
        let Some(endpoint) = configured_endpoint() else {
            return Self {
                #[cfg(feature = "otlp")]
                provider: None,
            };
        };
        #[cfg(feature = "otlp")]
        {
            match otlp::provider() {
                Ok((provider, protocol)) => {
                    let scope = opentelemetry::InstrumentationScope::builder("gammainfra")
                        .with_version(env!("CARGO_PKG_VERSION"))
                        .build();
                    opentelemetry::global::set_tracer_provider(provider.clone());
                    let tracer = opentelemetry::global::tracer_with_scope(scope);
                    let propagator =
                        Box::new(opentelemetry_sdk::propagation::TraceContextPropagator::new());
                    // The URL without any credentials in it (`user:pass@`).
                    let endpoint = match endpoint.split_once('@') {
                        Some((scheme_user, host)) => match scheme_user.split_once("://") {
                            Some((scheme, _)) => format!("{scheme}://{host}"),
                            None => host.to_owned(),
                        },
                        None => endpoint,
                    };
                    if OTEL.set(Otel { tracer, propagator }).is_ok() {
                        tracing::info!(%endpoint, protocol, "exporting traces over OTLP");
                    }
                    Self {
                        provider: Some(provider),
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot export traces; tracing is off");
                    Self { provider: None }
                }
            }
        }
        #[cfg(not(feature = "otlp"))]
        {
            let _ = endpoint;
            tracing::warn!("an OTLP endpoint is set but this build has no OTLP exporter (cargo feature `otlp`); tracing is off");
            Self {}
        }
    }

    /// Exports the spans still queued and stops the exporter (bounded by the exporter's
    /// timeout, `OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub async fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(p) = self.provider {
            // The SDK's shutdown blocks until the batch task has exported: off the
            // async workers, so that the task can run.
            match tokio::task::spawn_blocking(move || p.shutdown()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "exporting the last spans failed"),
                Err(e) => tracing::warn!(error = %e, "exporting the last spans failed"),
            }
        }
    }
}

#[cfg(feature = "otlp")]
mod otlp {
    //! The OTLP/HTTP exporter, over hyper and rustls (ring) like the providers' calls.

    use std::time::Duration;

    use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
    use opentelemetry_sdk::runtime::Tokio;
    use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use opentelemetry_sdk::Resource;

    fn var(name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }

    /// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` or `OTEL_EXPORTER_OTLP_PROTOCOL`:
    /// `http/protobuf` (the default) or `http/json`. gRPC is not built in.
    fn protocol() -> (Protocol, &'static str) {
        let asked = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .map(|p| p.trim().to_ascii_lowercase());
        match asked.as_deref() {
            None | Some("http/protobuf") => (Protocol::HttpBinary, "http/protobuf"),
            Some("http/json") => (Protocol::HttpJson, "http/json"),
            Some(other) => {
                tracing::warn!(
                    protocol = other,
                    "OTLP protocol not supported (gRPC is not built in); exporting with http/protobuf, which collectors take on port 4318"
                );
                (Protocol::HttpBinary, "http/protobuf")
            }
        }
    }

    /// `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` or `OTEL_EXPORTER_OTLP_TIMEOUT`, in
    /// milliseconds; 10 s by default.
    fn timeout() -> Duration {
        var("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_TIMEOUT"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(Duration::from_secs(10), Duration::from_millis)
    }

    /// The resource: the SDK reads `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`;
    /// without a service name it is `gammainfra`.
    fn resource() -> Resource {
        let detected = Resource::builder().build();
        let named = detected
            .get(&opentelemetry::Key::from_static_str("service.name"))
            .is_some_and(|v| !v.as_str().starts_with("unknown_service"));
        let mut b = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ));
        if !named {
            b = b.with_service_name("gammainfra");
        }
        b.build()
    }

    pub(super) fn provider() -> Result<(SdkTracerProvider, &'static str), String> {
        let (protocol, protocol_name) = protocol();
        let timeout = timeout();
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| e.to_string())?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = opentelemetry_http::hyper::HyperClient::new(https, timeout, None);
        // Endpoint (`/v1/traces` appended to OTEL_EXPORTER_OTLP_ENDPOINT, or
        // OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is) and headers
        // (OTEL_EXPORTER_OTLP_[TRACES_]HEADERS) are read by the exporter itself.
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(protocol)
            .with_timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        // Batching (OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_MAX_QUEUE_SIZE, ...) as the SDK
        // reads it, on a task of this runtime.
        let batch = BatchSpanProcessor::builder(exporter, Tokio).build();
        // The sampler (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG) and span limits are
        // read by the SDK; the default samples every trace unless its parent was not.
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batch)
            .with_resource(resource())
            .build();
        Ok((provider, protocol_name))
    }
}

/// Reads the W3C `traceparent` and `tracestate` of an incoming request.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// `gen_ai.provider.name` of a provider, per the GenAI semantic conventions.
pub fn genai_provider(p: &ProviderKind) -> &'static str {
    match p {
        ProviderKind::Bedrock => "aws.bedrock",
        ProviderKind::Anthropic => "anthropic",
        // OpenAI-compatible servers speak OpenAI's API.
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible(_) => "openai",
    }
}

/// The GenAI semantic conventions' operation of a route: `embeddings` for
/// `/v1/embeddings`, `chat` for every route that generates.
fn operation(route: &str) -> &'static str {
    if route == "/v1/embeddings" {
        "embeddings"
    } else {
        "chat"
    }
}

/// One request's trace and log line, from its arrival to its end: the answer for a
/// non-streamed request or a failure, the settlement for a stream (the stream takes
/// it, see [`RequestTrace::take`]). Finished once; an empty one does nothing.
#[derive(Default)]
pub struct RequestTrace {
    inner: Option<Inner>,
}

struct Inner {
    started: Instant,
    request_id: String,
    /// `POST` path, for the log line.
    route: &'static str,
    /// `gen_ai.operation.name`: `chat`, or `embeddings` on `/v1/embeddings`.
    operation: &'static str,
    account_id: Option<Arc<str>>,
    key_id: Option<Arc<str>>,
    /// The model the client asked for.
    requested: Option<String>,
    /// What answered: the gateway's model ID and the endpoint.
    answered: Option<(String, Arc<Endpoint>)>,
    usage: Option<Usage>,
    cost: Nanos,
    /// The usage entry's status; empty when nothing was billed.
    billing: &'static str,
    stream: bool,
    /// The request span in its context (with the client's parent), when tracing.
    cx: Option<Context>,
    /// The attempt that answered a stream, ended with the request.
    upstream: Option<Attempt>,
    /// Upstream attempts so far.
    attempts: u32,
}

impl RequestTrace {
    /// A request that arrived on `route`, with the client's `traceparent` as its parent.
    pub fn start(headers: &HeaderMap, request_id: &str, route: &'static str) -> Self {
        let operation = operation(route);
        let cx = otel().map(|o| {
            let parent = o.propagator.extract(&Headers(headers));
            // Named after the operation until the model is known (`chat {model}` then).
            let span = o
                .tracer
                .span_builder(operation)
                .with_kind(SpanKind::Server)
                .with_attributes([
                    KeyValue::new("gen_ai.operation.name", operation),
                    KeyValue::new("gammainfra.request_id", request_id.to_owned()),
                    KeyValue::new("http.request.method", "POST"),
                    KeyValue::new("http.route", route),
                ])
                .start_with_context(&o.tracer, &parent);
            parent.with_span(span)
        });
        Self {
            inner: Some(Inner {
                started: Instant::now(),
                request_id: request_id.to_owned(),
                route,
                operation,
                account_id: None,
                key_id: None,
                requested: None,
                answered: None,
                usage: None,
                cost: Nanos::ZERO,
                billing: "",
                stream: false,
                cx,
                upstream: None,
                attempts: 0,
            }),
        }
    }

    /// Moves this trace out (to the stream that will finish it), leaving an empty one.
    pub fn take(&mut self) -> Self {
        Self {
            inner: self.inner.take(),
        }
    }

    /// The key that authenticated the request (its public ID and its account, never
    /// the key itself).
    pub fn key(&mut self, account_id: &Arc<str>, key_id: &Arc<str>) {
        if let Some(i) = &mut self.inner {
            if let Some(cx) = &i.cx {
                cx.span()
                    .set_attribute(KeyValue::new("gammainfra.account", account_id.to_string()));
                cx.span()
                    .set_attribute(KeyValue::new("gammainfra.key_id", key_id.to_string()));
            }
            i.account_id = Some(account_id.clone());
            i.key_id = Some(key_id.clone());
        }
    }

    /// The parsed request: the model asked for, the output cap, streamed or not.
    pub fn request(&mut self, model: &str, max_tokens: Option<u64>, stream: bool) {
        if let Some(i) = &mut self.inner {
            if let Some(cx) = &i.cx {
                let span = cx.span();
                span.update_name(format!("{} {model}", i.operation));
                span.set_attribute(KeyValue::new("gen_ai.request.model", model.to_owned()));
                span.set_attribute(KeyValue::new("gen_ai.request.stream", stream));
                if let Some(n) = max_tokens {
                    span.set_attribute(KeyValue::new(
                        "gen_ai.request.max_tokens",
                        i64::try_from(n).unwrap_or(i64::MAX),
                    ));
                }
            }
            i.requested = Some(model.to_owned());
            i.stream = stream;
        }
    }

    /// A call to `ep` begins: a client span under the request's, ended by
    /// [`Attempt::failed`] or [`Attempt::answered`] (or with the request, for a stream).
    pub fn attempt(
        &mut self,
        ep: &Endpoint,
        server_address: impl FnOnce() -> Option<String>,
    ) -> Attempt {
        let Some(i) = &mut self.inner else {
            return Attempt { span: None };
        };
        i.attempts += 1;
        let (Some(o), Some(cx)) = (otel(), &i.cx) else {
            return Attempt { span: None };
        };
        let mut attrs = vec![
            KeyValue::new("gen_ai.operation.name", i.operation),
            KeyValue::new("gen_ai.provider.name", genai_provider(&ep.provider)),
            KeyValue::new("gen_ai.request.model", ep.upstream_id.clone()),
            KeyValue::new("gammainfra.provider", ep.provider.to_string()),
            KeyValue::new("gammainfra.endpoint", ep.key.clone()),
            KeyValue::new("gammainfra.model", ep.model_id.clone()),
            KeyValue::new("gammainfra.region", ep.served_region().to_owned()),
            KeyValue::new("gammainfra.attempt", i64::from(i.attempts)),
        ];
        if let Some(a) = server_address() {
            attrs.push(KeyValue::new("server.address", a));
        }
        let span = o
            .tracer
            .span_builder(format!("{} {}", i.operation, ep.upstream_id))
            .with_kind(SpanKind::Client)
            .with_attributes(attrs)
            .start_with_context(&o.tracer, cx);
        Attempt {
            span: Some(Box::new(span)),
        }
    }

    /// A stream's upstream attempt, kept open until the stream ends.
    pub fn streaming(&mut self, attempt: Attempt, first_token: Option<std::time::Duration>) {
        if let Some(i) = &mut self.inner {
            if let (Some(cx), Some(t)) = (&i.cx, first_token) {
                cx.span().set_attribute(KeyValue::new(
                    "gen_ai.response.time_to_first_chunk",
                    t.as_secs_f64(),
                ));
                cx.span().add_event("first chunk", Vec::new());
            }
            i.upstream = Some(attempt);
        }
    }

    /// What the request was billed: the endpoint that answered, its usage, cost and
    /// usage status (`completed`, `client_disconnected`, ...).
    pub fn billed(
        &mut self,
        model: &str,
        ep: &Arc<Endpoint>,
        usage: &Usage,
        cost: Nanos,
        status: &'static str,
    ) {
        if let Some(i) = &mut self.inner {
            i.answered = Some((model.to_owned(), ep.clone()));
            i.usage = Some(*usage);
            i.cost = cost;
            i.billing = status;
        }
    }

    /// Ends the request with the status its client got (`error`: the error's code, for
    /// a failure), logs its `request finished` line, and ends its spans.
    pub fn finish(&mut self, status: u16, error: Option<&str>) {
        let Some(mut i) = self.inner.take() else {
            return;
        };
        // Nothing is formatted for a line that is not written.
        if tracing::enabled!(target: "gammainfra::requests", tracing::Level::INFO) {
            let elapsed = i.started.elapsed();
            let usage = i.usage.unwrap_or_default();
            let (model, provider, region, endpoint) = match &i.answered {
                Some((m, ep)) => (
                    m.as_str(),
                    Some(ep.provider.to_string()),
                    ep.served_region(),
                    ep.key.as_str(),
                ),
                None => (i.requested.as_deref().unwrap_or(""), None, "", ""),
            };
            tracing::info!(
                target: "gammainfra::requests",
                request_id = %i.request_id,
                route = i.route,
                account_id = i.account_id.as_deref(),
                key_id = i.key_id.as_deref(),
                model,
                provider = provider.as_deref(),
                endpoint,
                region,
                stream = i.stream,
                status,
                error,
                attempts = i.attempts,
                input_tokens = usage.prompt_tokens(),
                output_tokens = usage.output_tokens,
                cost_usd = %i.cost,
                billing = i.billing,
                duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                "request finished"
            );
        }
        if let Some(mut a) = i.upstream.take() {
            a.close(i.usage.as_ref(), error);
        }
        let Some(cx) = i.cx.take() else {
            return;
        };
        let span = cx.span();
        let mut attrs = vec![
            KeyValue::new("http.response.status_code", i64::from(status)),
            KeyValue::new("gammainfra.cost_nanodollars", i.cost.nanos()),
            KeyValue::new("gammainfra.attempts", i64::from(i.attempts)),
        ];
        if let Some((m, ep)) = &i.answered {
            attrs.extend([
                KeyValue::new("gen_ai.provider.name", genai_provider(&ep.provider)),
                KeyValue::new("gen_ai.response.model", ep.upstream_id.clone()),
                KeyValue::new("gammainfra.model", m.clone()),
                KeyValue::new("gammainfra.provider", ep.provider.to_string()),
                KeyValue::new("gammainfra.endpoint", ep.key.clone()),
                KeyValue::new("gammainfra.region", ep.served_region().to_owned()),
                KeyValue::new("gammainfra.billing_status", i.billing),
            ]);
        }
        if let Some(u) = &i.usage {
            attrs.extend(usage_attributes(u));
        }
        span.set_attributes(attrs);
        if let Some(e) = error {
            span.set_attribute(KeyValue::new("error.type", e.to_owned()));
            // A server span is an error for 5xx answers (and a stream that failed
            // after its 200); a 4xx is the client's.
            if !(400..500).contains(&status) {
                span.set_status(Status::error(e.to_owned()));
            }
        }
        span.end();
    }
}

impl Drop for RequestTrace {
    fn drop(&mut self) {
        // A request whose task ended without an answer (it panicked): still logged.
        if self.inner.is_some() {
            self.finish(500, Some("internal_error"));
        }
    }
}

fn usage_attributes(u: &Usage) -> [KeyValue; 4] {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    [
        // Input tokens include cached ones, as the conventions count them.
        KeyValue::new("gen_ai.usage.input_tokens", n(u.prompt_tokens())),
        KeyValue::new("gen_ai.usage.output_tokens", n(u.output_tokens)),
        KeyValue::new(
            "gen_ai.usage.cache_read.input_tokens",
            n(u.cache_read_tokens),
        ),
        KeyValue::new(
            "gen_ai.usage.cache_creation.input_tokens",
            n(u.cache_write_5m_tokens
                .saturating_add(u.cache_write_1h_tokens)),
        ),
    ]
}

/// One upstream call's client span (nothing when not tracing).
pub struct Attempt {
    span: Option<Box<opentelemetry::global::BoxedSpan>>,
}

impl Attempt {
    /// The call failed; `failing_over` says whether another endpoint is tried next.
    pub fn failed(mut self, e: &UpstreamError, failing_over: bool) {
        if let Some(mut s) = self.span.take() {
            // `RateLimited` → `rate_limited`.
            let mut kind = String::new();
            for (n, c) in format!("{:?}", e.kind).chars().enumerate() {
                if c.is_ascii_uppercase() && n > 0 {
                    kind.push('_');
                }
                kind.push(c.to_ascii_lowercase());
            }
            if let Some(status) = e.status {
                s.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status),
                ));
            }
            s.set_attribute(KeyValue::new(
                "gammainfra.outcome",
                if failing_over {
                    "failed_over"
                } else {
                    "failed"
                },
            ));
            s.set_attribute(KeyValue::new("error.type", kind.clone()));
            s.set_status(Status::error(kind));
            s.end();
        }
    }

    /// The call answered; `usage` when its answer is complete (a stream's comes at its
    /// end, see [`RequestTrace::finish`]).
    pub fn answered(mut self, usage: &Usage) {
        self.close(Some(usage), None);
    }

    fn close(&mut self, usage: Option<&Usage>, error: Option<&str>) {
        if let Some(mut s) = self.span.take() {
            if let Some(u) = usage {
                s.set_attributes(usage_attributes(u));
            }
            match error {
                Some(e) => {
                    s.set_attribute(KeyValue::new("gammainfra.outcome", "failed"));
                    s.set_attribute(KeyValue::new("error.type", e.to_owned()));
                    s.set_status(Status::error(e.to_owned()));
                }
                None => s.set_attribute(KeyValue::new("gammainfra.outcome", "answered")),
            }
            s.end();
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let Some(mut s) = self.span.take() {
            s.end();
        }
    }
}
