//! The HTTP surface (axum).
//!
//! # Layout
//! * this file: [`AppState`], [`app`] (paths → handlers, nothing else), [`serve`].
//! * [`error`]: [`error::ApiError`] and its OpenAI-shaped response.
//! * [`auth`]: customer keys and the admin token.
//! * [`chat`]: `POST /v1/chat/completions`, the attempt/fail-over loop and billing.
//! * [`embeddings`]: `POST /v1/embeddings`, held, tried and billed like chat.
//! * [`stream`]: the SSE body of a streamed completion, settled when it ends or drops.
//! * [`usage`]: `GET /v1/usage[/daily]` and the admin view of an account's usage.
//! * `console`: the customers' web console under `/console` (HTML pages).
//! * [`models`], [`credits`], [`admin`]: the rest of the API (`/metrics` is in
//!   [`admin`], its series in [`crate::metrics`]).
//! * [`openapi`]: `GET /openapi.json`, the API reference generated from the handlers'
//!   annotations (docs/api.md renders it).

pub mod admin;
pub mod auth;
pub mod chat;
mod console;
pub mod credits;
pub mod embeddings;
pub mod error;
pub mod messages;
pub mod models;
pub mod openapi;
pub mod payments;
pub mod responses;
pub mod route;
pub mod stream;
pub mod usage;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use bytes::Bytes;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::ledger::Ledger;
use crate::providers::Providers;

/// Everything a handler needs; cloned per request (all `Arc`s). The catalog, the
/// router and `models_json` are those in force when the request arrived (a reload
/// replaces them for later requests: see [`crate::reload`]).
#[derive(Clone)]
pub struct AppState {
    /// The configuration the gateway started with. Settings a reload changes are read
    /// from [`crate::reload::Snapshot::config`] instead.
    pub config: Arc<Config>,
    pub catalog: Arc<Catalog>,
    pub router: Arc<crate::router::Router>,
    pub providers: Arc<Providers>,
    pub ledger: Arc<Ledger>,
    /// Rate limits (requests and tokens per minute), local or shared through Redis.
    pub limiter: Arc<crate::ratelimit::RateLimiter>,
    /// `GET /v1/models`, rendered once per catalog.
    pub models_json: Bytes,
    /// Client connections open now (see [`serve`]).
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    /// The snapshot in force, replaced by a reload.
    pub live: Arc<crate::reload::Live>,
    /// The Prometheus series of `GET /metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Card top-ups through Stripe Checkout, when configured.
    pub payments: Option<Arc<crate::payments::Stripe>>,
    /// The console's emails: SMTP, or the log and the outbox.
    pub mailer: Arc<crate::mail::Mailer>,
}

impl AppState {
    pub fn new(
        config: Config,
        catalog: Arc<Catalog>,
        providers: Providers,
        ledger: Arc<Ledger>,
        limiter: crate::ratelimit::RateLimiter,
    ) -> Self {
        let config = Arc::new(config);
        let payments = config
            .payments
            .as_ref()
            .and_then(|p| match crate::payments::Stripe::new(p) {
                Ok(s) => Some(Arc::new(s)),
                Err(e) => {
                    tracing::error!(error = %e, "card top-ups disabled: the Stripe client could not be built");
                    None
                }
            });
        let mailer = crate::mail::Mailer::new(config.mail.as_ref()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "console mail goes to the outbox: the SMTP settings could not be used");
            crate::mail::Mailer::Outbox
        });
        console::check_public_url(config.public_url.as_deref());
        let snapshot = crate::reload::Snapshot::new(config.clone(), catalog, &providers, None);
        let metrics = Arc::new(crate::metrics::Metrics::new(
            ledger.commit_latency().clone(),
        ));
        Self {
            config,
            catalog: snapshot.catalog.clone(),
            router: snapshot.router.clone(),
            providers: Arc::new(providers),
            ledger,
            limiter: Arc::new(limiter),
            models_json: snapshot.models_json.clone(),
            connections: Arc::default(),
            live: Arc::new(crate::reload::Live::new(snapshot, None)),
            metrics,
            payments,
            mailer: Arc::new(mailer),
        }
    }

    /// This state, reloading its configuration from `source` (see [`crate::reload`]).
    /// Call it before serving.
    pub fn reloading_from(mut self, source: crate::reload::ConfigSource) -> Self {
        let snapshot = crate::reload::Snapshot {
            config: self.live.config(),
            catalog: self.catalog.clone(),
            router: self.router.clone(),
            models_json: self.models_json.clone(),
        };
        self.live = Arc::new(crate::reload::Live::new(snapshot, Some(source)));
        self
    }

    /// This state with the snapshot in force now.
    pub fn current(&self) -> AppState {
        let now = self.live.load();
        AppState {
            config: self.config.clone(),
            catalog: now.catalog.clone(),
            router: now.router.clone(),
            providers: self.providers.clone(),
            ledger: self.ledger.clone(),
            limiter: self.limiter.clone(),
            models_json: now.models_json.clone(),
            connections: self.connections.clone(),
            live: self.live.clone(),
            metrics: self.metrics.clone(),
            payments: self.payments.clone(),
            mailer: self.mailer.clone(),
        }
    }
}

/// The routes' state: each request's [`AppState`] is taken from it with the snapshot in
/// force when the request arrives.
#[derive(Clone)]
struct Serving(AppState);

impl FromRef<Serving> for AppState {
    fn from_ref(s: &Serving) -> AppState {
        s.0.current()
    }
}

/// Builds a router from a table of `path => method(handler).method(handler)` and,
/// from the same table, a const list of every path with the methods served on it (lower
/// case), which the API reference is checked against (`tests/it/openapi.rs`).
macro_rules! route_table {
    (
        $(#[$doc:meta])*
        $vis:vis fn $router:ident() and const $list:ident {
            $( $path:literal => $( $method:ident($handler:path) ).+ ),+ $(,)?
        }
    ) => {
        /// Every path of the table and the methods served on it.
        $vis const $list: &[(&str, &[&str])] = &[ $( ($path, &[ $( stringify!($method) ),+ ]) ),+ ];

        $(#[$doc])*
        $vis fn $router() -> axum::Router<$crate::server::Serving> {
            axum::Router::new()
                $( .route($path, axum::routing::MethodRouter::new() $( .$method($handler) )+ ) )+
        }
    };
}
pub(crate) use route_table;

route_table! {
    /// The API's routes (the console's are in `console::routes`).
    fn api_routes() and const API_ROUTES {
        "/v1/chat/completions" => post(chat::completions),
        "/v1/embeddings" => post(embeddings::create),
        "/v1/messages" => post(messages::create),
        "/v1/messages/count_tokens" => post(messages::count_tokens),
        "/v1/responses" => post(responses::create),
        "/v1/models" => get(models::list),
        "/v1/models/{*id}" => get(models::one),
        "/v1/credits" => get(credits::show),
        "/v1/credits/checkout" => post(payments::checkout),
        "/webhooks/stripe" => post(payments::webhook),
        "/payments/done" => get(payments::done),
        "/payments/cancelled" => get(payments::cancelled),
        "/admin/v1/stripe/events" => get(payments::events),
        "/admin/v1/outbox" => get(admin::outbox),
        "/v1/usage" => get(usage::list),
        "/v1/usage/daily" => get(usage::daily),
        "/healthz" => get(healthz),
        "/readyz" => get(readyz),
        "/metrics" => get(admin::metrics),
        "/openapi.json" => get(openapi::serve),
        "/admin/v1/runtime" => get(admin::runtime),
        "/admin/v1/reload" => post(admin::reload),
        "/admin/v1/accounts" => post(admin::create_account),
        "/admin/v1/accounts/{id}" => get(admin::show_account).patch(admin::update_account),
        "/admin/v1/accounts/{id}/keys" => post(admin::create_key),
        "/admin/v1/accounts/{id}/topups" => post(admin::topup),
        "/admin/v1/accounts/{id}/grants" => post(payments::grant),
        "/admin/v1/accounts/{id}/usage" => get(usage::admin_list),
        "/admin/v1/accounts/{id}/usage/daily" => get(usage::admin_daily),
        "/admin/v1/keys/{key_id}" => delete(admin::revoke_key).get(admin::show_key).patch(admin::update_key),
    }
}

/// Every route the gateway serves, API and console: its path (axum's syntax) and the
/// methods served on it (lower case).
pub fn routes_served() -> impl Iterator<Item = (&'static str, &'static [&'static str])> {
    API_ROUTES.iter().chain(console::ROUTES).copied()
}

/// The gateway's routes.
pub fn app(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    api_routes()
        .merge(console::routes())
        .fallback(not_found)
        // The limit is enforced by the handlers' body extraction (a 413 in our shape);
        // axum's own default of 2 MiB is replaced by the configured one.
        .layer(DefaultBodyLimit::max(limit))
        .with_state(Serving(state))
}

/// Any other route: a 404 naming it and the API reference.
async fn not_found(method: Method, uri: Uri) -> error::ApiError {
    let path: String = uri.path().chars().take(200).collect();
    error::ApiError::not_found(
        "not_found",
        format!(
            "No such route: {method} {path}. The API reference is at /openapi.json (docs/api.md)."
        ),
    )
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "healthz",
    summary = "Liveness",
    description = "`ok` while the process serves.",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")),
    security(()),
)]
async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the ledger can record charges, the database answers and the catalog has
/// models; otherwise a 503 whose `reason` names the cause. `details.rate_limits` says
/// where rate-limit counters are kept; a failing Redis does not fail readiness (the
/// limits are then counted per replica, see docs/operations.md), it shows there.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "readyz",
    summary = "Readiness",
    description = "Ready when the ledger can record charges, the database answers and the catalog has models. A failing Redis does not fail readiness (limits are then counted per replica); `details.rate_limits` shows it.",
    responses(
        (status = 200, description = "Ready", body = crate::server::openapi::Ready),
        (status = 503, description = "Not ready; `reason` names the cause", body = crate::server::openapi::NotReady),
    ),
    security(()),
)]
async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    let rate_limits = match st.limiter.backing() {
        crate::ratelimit::Backing::Local => "local".to_owned(),
        crate::ratelimit::Backing::Redis => "redis".to_owned(),
        crate::ratelimit::Backing::Degraded(e) => {
            format!("local (Redis unavailable: {e}; limits are counted per replica)")
        }
    };
    let reason = if let Some(why) = st.ledger.unavailable() {
        Some(format!("ledger: {why}"))
    } else if !st.ledger.store().ping().await {
        Some("database: it does not answer".to_owned())
    } else if st.catalog.models.is_empty() {
        Some("catalog: it has no models".to_owned())
    } else {
        None
    };
    match reason {
        None => (
            StatusCode::OK,
            axum::Json(
                serde_json::json!({"status": "ready", "catalog_version": st.catalog.version,
                    "details": {"rate_limits": rate_limits}}),
            ),
        ),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "not ready", "reason": reason,
                "details": {"rate_limits": rate_limits}})),
        ),
    }
}

/// Serves `app` on `listener` until `shutdown` resolves: HTTP/1.1, TCP_NODELAY on every
/// accepted socket (without it, keep-alive responses wait for the client's delayed ACK),
/// at most `max_connections` connections at once (beyond it new ones wait in the
/// kernel's accept queue), and `header_read_timeout` for a request's headers, counted
/// from the connection's opening or its previous answer (so also the idle keep-alive
/// timeout).
///
/// On shutdown, accepting stops and open connections finish the requests they carry
/// (idle ones close) for at most `shutdown_grace_ms`; connections still open then are
/// cut, and their requests settled for what was delivered, as when a client leaves
/// (streams read for billing after their clients left stop then too). Then requests
/// still running upstream are waited for (`billing.shutdown_drain_ms`) and the ledger
/// is flushed and closed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let ledger = state.ledger.clone();
    let live = state.live.clone();
    let connections = state.connections.clone();
    let slots = Arc::new(tokio::sync::Semaphore::new(state.config.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(state.config.header_read_timeout);
    let router = app(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // Set when the grace period is over: every connection still open is dropped.
    let (cut, _) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let tcp = tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors, mostly: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let conn =
            graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service));
        let open = connections.clone();
        open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut cut = cut.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                },
                _ = cut.wait_for(|c| *c) => {}
            }
            open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            drop(slot);
        });
    }
    drop(listener);
    let grace = live.config().shutdown_grace;
    let open = connections.load(std::sync::atomic::Ordering::Relaxed);
    if open > 0 {
        tracing::info!(
            connections = open,
            "shutting down: waiting up to {grace:?} for requests in flight"
        );
    }
    let deadline = tokio::time::Instant::now() + grace;
    if tokio::time::timeout_at(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        let open = connections.load(std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(
            connections = open,
            "requests still in flight after the shutdown grace period of {grace:?}; cutting them (each is billed for what was delivered)"
        );
    }
    // Streams still read for billing after their clients left have the same grace
    // period. Then they stop, and so do the connections still open; every stream cut
    // is settled from what was seen (see `stream.rs`).
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    if ledger.wait_settled(left).await > 0 {
        ledger.cut();
    }
    cut.send_replace(true);
    // Requests whose clients left are still running: let them finish and settle, then
    // commit every settlement before the process exits, each for a bounded time.
    let drain = ledger.billing().shutdown_drain;
    let open = ledger.wait_settled(drain).await;
    if open > 0 {
        tracing::error!(
            open,
            "requests still running at shutdown after {drain:?}; they are not billed"
        );
    }
    // Commits every settlement, hands back the credit leases (PostgreSQL) and releases
    // the database's lock at once (PostgreSQL would otherwise keep it until it notices
    // the session is gone).
    ledger.close().await;
    Ok(())
}

/// Raises this process's soft limit on open files to its hard limit: every client
/// connection and every upstream connection is a file descriptor, and the usual soft
/// limit (1,024) is reached by a few hundred concurrent streams. Returns the limit now
/// in force.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}
