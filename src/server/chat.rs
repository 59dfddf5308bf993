//! `POST /v1/chat/completions`: authenticate, parse, resolve the model (and the request's
//! fallback `models`), plan each under the region constraint within the key's residency
//! policy, reserve credit for the dearest, try the planned endpoints in order, model
//! after model (failing over on retryable errors while nothing has been sent), and bill
//! the endpoint that answered. Every answer that reached a provider names the route it
//! took in `X-GammaInfra-Route` (see [`super::route`]).
//!
//! Settlement belongs to the gateway, not to the client's connection: the request runs
//! in its own task, so a client that hangs up does not cancel it. A non-streamed answer
//! is read to the end and billed; a stream whose body is dropped unfinished is read to
//! its end by a task of its own (see [`super::stream`]) and billed from the provider's
//! final usage.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::value::RawValue;

use super::error::ApiError;
use super::route::{RouteTrace, ROUTE};
use super::stream::{BilledStream, Throughput};
use super::{auth, AppState};
use crate::catalog::{Asked, Endpoint, RegionConstraint, Residency, Resolution};
use crate::chat::limits;
use crate::chat::raw::RawObject;
use crate::chat::request::{input_token_bound, ProviderPrefs, SortBy};
use crate::chat::{ChatRequest, Completion, Reply, StreamItem};
use crate::ledger::{keys, AdmitError, Charge, ClientHandle, Presence, Reservation, UsageStatus};
use crate::metrics::{Route, Tally};
use crate::money::{CostAccumulator, Nanos};
use crate::providers::Call;
use crate::telemetry::RequestTrace;

pub const REQUEST_ID: &str = "x-gammainfra-request-id";

#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "chat",
    operation_id = "chat_completions",
    summary = "Create a chat completion (OpenAI Chat Completions)",
    description = "Resolves `model` (then the fallback `models`) in the catalog, plans the endpoints allowed by the region constraint, the key's residency policy and `provider`, holds credit for the worst case, tries the endpoints in order (failing over while nothing has been sent) and bills the one that answered, exactly. `stream: true` answers server-sent events (`chat.completion.chunk` objects, then `data: [DONE]`; with `stream_options.include_usage` the last chunk carries `usage` with `cost_usd`).",
    params(
        ("X-GammaInfra-Region" = Option<String>, Header, description = "A region constraint: a geography (`eu`, `us`, ...) or region list, held within the key's residency policy"),
        ("X-GammaInfra-Provider" = Option<String>, Header, description = "The providers that may serve the request, comma-separated (as `provider.only`; not both)"),
    ),
    request_body(content = crate::chat::ChatRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The completion, or its stream", content(
            (crate::server::openapi::ChatCompletion = "application/json"),
            (String = "text/event-stream"),
        ), headers(
            ("X-GammaInfra-Request-Id" = String, description = "The gateway's request ID (also `x-request-id`)"),
            ("X-GammaInfra-Provider" = String, description = "The provider that answered"),
            ("X-GammaInfra-Upstream-Model" = String, description = "The provider's model ID"),
            ("X-GammaInfra-Upstream-Region" = String, description = "Where the provider processed the request"),
            ("X-GammaInfra-Route" = String, description = "How the request was routed: `sort=<price|latency|throughput>; <model>@<endpoint>=<outcome>, ...`"),
            ("X-GammaInfra-Resolved-Model" = String, description = "The catalog model that answered, when it is not the one named (an alias, or a fallback of `models`)"),
            ("X-GammaInfra-Cost-USD" = String, description = "What the request was billed, USD (not on a stream: see `usage.cost_usd`)"),
            ("X-GammaInfra-Output-Capped" = String, description = "The output cap the gateway set, in tokens, because the request set none and the credit available (or the key's spending limit) could not cover the model's whole output cap"),
            ("x-ratelimit-limit-requests" = String, description = "OpenAI's rate-limit headers, when a rate limit applies (also `-tokens`, `x-ratelimit-remaining-*`, `x-ratelimit-reset-*`)"),
        )),
        (status = 400, description = "`invalid_request`, `invalid_body`, `invalid_region`, `invalid_provider_header`, `no_endpoint_in_region`, `no_endpoint_for_preferences`, `request_exceeds_spend_limit`, `request_exceeds_rate_limit`, `upstream_rejected` (the provider refused the input), ...", body = crate::server::openapi::Error),
        (status = 401, description = "`invalid_api_key`: no key, or an unknown or revoked one", body = crate::server::openapi::Error),
        (status = 402, description = "`insufficient_credits` (type `insufficient_quota`): the credit available cannot hold the worst-case cost of the output cap the request set (the message names the largest cap it affords; a request without a cap is capped instead, see `X-GammaInfra-Output-Capped`), or not even of its input", body = crate::server::openapi::Error),
        (status = 403, description = "`account_disabled`: the key's account is disabled; `region_not_allowed`: the region constraint is outside the key's or account's residency policy", body = crate::server::openapi::Error),
        (status = 404, description = "`model_not_found`: an unknown model in `model` or `models`", body = crate::server::openapi::Error),
        (status = 408, description = "`request_timeout`: the body did not arrive in time", body = crate::server::openapi::Error),
        (status = 413, description = "`request_too_large`: the body exceeds the configured limit", body = crate::server::openapi::Error),
        (status = 429, description = "`rate_limit_exceeded` (with `Retry-After` and `x-ratelimit-*`), `key_spend_limit_reached`, `too_many_concurrent_requests`, `too_many_detached_requests`, `upstream_rate_limited`", body = crate::server::openapi::Error, headers(("Retry-After" = String, description = "Seconds to wait")), ),
        (status = 500, description = "`internal_error`", body = crate::server::openapi::Error),
        (status = 502, description = "`upstream_error`, `upstream_auth_failed`, `catalog_fault`, `upstream_model_not_found`: the provider failed (the error names it, its status and the request ID)", body = crate::server::openapi::Error),
        (status = 503, description = "`provider_not_available`, `ledger_unavailable`", body = crate::server::openapi::Error),
        (status = 504, description = "`upstream_timeout`", body = crate::server::openapi::Error),
    ),
    security(("customer_key" = []), ("x_api_key" = [])),
)]
pub async fn completions(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    serve(st, headers, body, Surface::Chat).await
}

/// The API a request arrived on: it decides how the request is read and how its
/// answer, its stream and its errors are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// OpenAI Chat Completions (`/v1/chat/completions`).
    Chat,
    /// Anthropic Messages (`/v1/messages`), see [`crate::messages`].
    Messages,
    /// OpenAI Responses (`/v1/responses`), see [`crate::responses`].
    Responses,
    /// OpenAI Embeddings (`/v1/embeddings`), see [`super::embeddings`]: its own
    /// handling on the same task, trace, metrics and error shape.
    Embeddings,
}

/// Runs one request on its own task and answers it (errors in the surface's shape).
pub(super) async fn serve(
    st: AppState,
    headers: HeaderMap,
    body: axum::body::Body,
    surface: Surface,
) -> Response {
    let request_id = keys::random_request_id();
    let route = match surface {
        Surface::Chat => "/v1/chat/completions",
        Surface::Messages => "/v1/messages",
        Surface::Responses => "/v1/responses",
        Surface::Embeddings => "/v1/embeddings",
    };
    let mut trace = RequestTrace::start(&headers, &request_id, route);
    // The handler holds the presence; the request's task holds the other end. If the
    // client hangs up, hyper drops this future, the presence with it, and the task goes
    // on: it is billed from the provider's usage and counted as detached meanwhile.
    let (presence, client) = Presence::new();
    let mut tally = st.metrics.tally(match surface {
        Surface::Chat => Route::ChatCompletions,
        Surface::Messages => Route::Messages,
        Surface::Responses => Route::Responses,
        Surface::Embeddings => Route::Embeddings,
    });
    let task = {
        let request_id = request_id.clone();
        tokio::spawn(async move {
            let out = match surface {
                Surface::Embeddings => {
                    super::embeddings::handle(
                        &st,
                        &headers,
                        body,
                        &request_id,
                        client,
                        &mut trace,
                        &mut tally,
                    )
                    .await
                }
                _ => {
                    handle(
                        &st,
                        &headers,
                        body,
                        &request_id,
                        client,
                        surface,
                        &mut trace,
                        &mut tally,
                    )
                    .await
                }
            };
            match out {
                Ok(r) => {
                    // A stream took the trace: it finishes when the stream is settled.
                    trace.finish(r.status().as_u16(), None);
                    r
                }
                Err(e) => {
                    tally.failed(e.status.as_u16(), e.code);
                    trace.finish(e.status.as_u16(), Some(e.code));
                    // The one place a failed request is logged (conversion never logs).
                    if e.status.is_server_error() {
                        tracing::warn!(request_id, status = e.status.as_u16(), code = %e.code, message = %e.message, "request failed");
                    } else {
                        tracing::debug!(request_id, status = e.status.as_u16(), code = %e.code, "request refused");
                    }
                    match surface {
                        Surface::Chat | Surface::Responses | Surface::Embeddings => {
                            e.into_response()
                        }
                        Surface::Messages => super::messages::error_response(e, &request_id),
                    }
                }
            }
        })
    };
    let mut resp = match task.await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(request_id, error = %e, "request task failed");
            ApiError::internal("The request failed inside the gateway.").into_response()
        }
    };
    // A streamed body watches its own client from here on (dropped unfinished, it marks
    // the client gone).
    presence.delivered();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        // Also where OpenAI's SDKs read a request's ID (`_request_id`).
        if surface != Surface::Messages {
            resp.headers_mut().insert("x-request-id", v.clone());
        }
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

/// Turns a body-extraction failure into our error shape (413 over the limit).
pub fn body_error(r: BytesRejection, limit: usize) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large(limit)
    } else {
        ApiError::bad_request("invalid_body", r.body_text())
    }
}

/// Reads a request's body, after its key was checked: at most `max_body_bytes` (a
/// declared `Content-Length` over it is refused before anything is read) within
/// `body_timeout`. An early answer leaves the rest of the body to [`linger`].
pub(super) async fn read_body(
    st: &AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    let limit = st.config.max_body_bytes;
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        linger(st, body);
        return Err(ApiError::payload_too_large(limit));
    }
    let mut body = body;
    let mut buf = bytes::BytesMut::with_capacity(declared.map_or(8 * 1024, |n| n as usize));
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                ApiError::bad_request(
                    "invalid_body",
                    format!("Could not read the request body: {e}"),
                )
            })?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Err(ApiError::payload_too_large(limit));
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(())
    };
    match tokio::time::timeout(st.config.body_timeout, read).await {
        Ok(Ok(())) => Ok(buf.freeze()),
        Ok(Err(e)) => {
            linger(st, body);
            Err(e)
        }
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            "request_timeout",
            format!(
                "The request body did not arrive within {} s.",
                st.config.body_timeout.as_secs()
            ),
        )),
    }
}

/// Reads and discards what is left of a body answered early, for at most
/// `lingering_close_bytes` and `lingering_close`, so that a client still sending gets the
/// answer rather than a connection reset (which SDKs retry, sending the body again).
pub fn linger(st: &AppState, body: axum::body::Body) {
    use http_body_util::BodyExt;
    let (max, time) = (st.config.lingering_close_bytes, st.config.lingering_close);
    tokio::spawn(async move {
        let mut body = body;
        let mut n = 0usize;
        let _ = tokio::time::timeout(time, async {
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(d) = frame.into_data() {
                    n += d.len();
                    if n > max {
                        break;
                    }
                }
            }
        })
        .await;
    });
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    st: &AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
    request_id: &str,
    client: ClientHandle,
    surface: Surface,
    trace: &mut RequestTrace,
    tally: &mut Tally,
) -> Result<Response, ApiError> {
    // The key first: a request without a valid one is answered without its body read.
    let key = match auth::customer(st, headers) {
        Ok(k) => k,
        Err(e) => {
            linger(st, body);
            return Err(e);
        }
    };
    trace.key(&key.account_id, &key.key_id);
    let body = read_body(st, headers, body).await?;
    // A Messages request is converted to the chat format; the client's own request is
    // kept for Anthropic endpoints (see `crate::messages`).
    let mut responses = None;
    let (body, native) = match surface {
        // Embeddings are handled apart (see `serve`).
        Surface::Chat | Surface::Embeddings => (body, None),
        Surface::Responses => {
            let converted = limits::off_workers(body.len(), || {
                crate::responses::request::to_chat(&body, crate::clock::unix_now())
            })
            .await?;
            responses = Some((converted.echo, converted.native));
            (Bytes::from(converted.chat), None)
        }
        Surface::Messages => {
            let converted =
                limits::off_workers(body.len(), || crate::messages::request::to_chat(&body))
                    .await?;
            let (chat, native) = super::messages::native(converted, headers);
            (Bytes::from(chat), Some(native))
        }
    };
    // Parsing grows with the body (0.18–0.4 s for 32 MiB in a debug build; several times
    // less in release, still far over a millisecond): a large body is parsed off the
    // async workers, so that other clients' requests and streams are not held up.
    let (mut req, raw) = limits::off_workers(body.len(), || {
        let req = ChatRequest::parse(&body)?;
        let mut raw = RawObject::parse(&body).map_err(|e| {
            ApiError::bad_request("invalid_request", format!("Invalid request body: {e}"))
        })?;
        // A request that names its models only in `models` still sends `model`
        // upstream: the OpenAI adapter rewrites the field, so it must be there.
        if raw.get("model").is_none() {
            if let Ok(null) = serde_json::from_str::<&'static RawValue>("null") {
                raw.0.push((Cow::Borrowed("model"), null));
            }
        }
        Ok::<_, ApiError>((req, raw))
    })
    .await?;
    provider_header(headers, &mut req.provider)?;
    // Every model the request names is resolved first: an unknown one is refused
    // naming it, before anything else.
    let chain = req.model_chain();
    trace.request(
        chain.first().map_or("", |&(_, name)| name),
        req.output_cap(),
        req.is_stream(),
    );
    let mut resolved = Vec::with_capacity(chain.len());
    for &(at, name) in &chain {
        let mut res = st.catalog.resolve(name).map_err(|e| {
            let mut a = ApiError::from(e);
            a.param = Some(at.map_or_else(|| "model".to_owned(), |i| format!("models[{i}]")));
            a
        })?;
        if res.model.embedding().is_some() {
            let mut e = ApiError::bad_request(
                "not_a_chat_model",
                format!(
                    "{} is an embedding model: send it to /v1/embeddings; this route takes a chat model",
                    res.model.id
                ),
            );
            e.param = Some(at.map_or_else(|| "model".to_owned(), |i| format!("models[{i}]")));
            return Err(e);
        }
        if surface == Surface::Messages {
            super::messages::unpin_anthropic(&mut res);
        }
        resolved.push(res);
    }
    let header_region = header_region(st, headers)?;
    // Each model gets its own plan, under the same constraint, residency policy,
    // provider preferences and image count. A fallback with no eligible endpoint is
    // skipped; when no model has one, the first model's refusal is the answer.
    let images = req.image_count();
    let mut candidates: Vec<Candidate> = Vec::with_capacity(resolved.len());
    let mut refusal = None;
    for (i, res) in resolved.into_iter().enumerate() {
        match plan_for(
            st,
            req.provider.as_ref(),
            &res,
            header_region.as_ref(),
            key.residency.as_deref(),
            images,
        ) {
            Ok(plan) => candidates.push(Candidate {
                res,
                plan,
                fallback: i > 0,
            }),
            Err(e) if i == 0 => refusal = Some(e),
            Err(e) => tracing::debug!(
                request_id,
                model = %res.model.id,
                code = e.code,
                "fallback model skipped: no eligible endpoint"
            ),
        }
    }
    if candidates.is_empty() {
        return Err(refusal.unwrap_or_else(|| ApiError::internal("no model could be planned")));
    }
    // What only Anthropic's API serves keeps a Messages request to Anthropic endpoints.
    if let Some(n) = native.as_ref().filter(|n| !n.anthropic_only.is_empty()) {
        let first = candidates[0].res.model.id.clone();
        for c in &mut candidates {
            c.plan
                .retain(|e| e.provider == crate::catalog::ProviderKind::Anthropic);
        }
        candidates.retain(|c| !c.plan.is_empty());
        if candidates.is_empty() {
            return Err(super::messages::anthropic_only_refusal(n, &first));
        }
    }
    let input_bound = input_token_bound(body.len(), images);
    let (reservation, tokens) = admit(
        st,
        &key,
        request_id,
        &mut req,
        &candidates,
        input_bound,
        &client,
    )
    .await?;
    // Rate limits, after the credit hold so that a request refused for credit or a
    // spending limit counts toward no rate limit (a refused one here drops its hold).
    // Tokens count as the input bound plus the output cap: the most it may use.
    let rate = st
        .limiter
        .admit(
            &key.key_id,
            key.rates,
            &key.account_id,
            key.account_rates,
            tokens,
        )
        .await?;
    let rate_headers = rate.map(|r| r.headers()).unwrap_or_default();
    let out = attempt(
        st,
        &req,
        &raw,
        &candidates,
        reservation,
        body.len(),
        native.as_ref(),
        responses.as_ref().map(|(echo, _)| echo),
        responses.as_ref().map(|(_, native)| native),
        request_id,
        client,
        trace,
        tally,
    )
    .await;
    match out {
        Ok(mut r) => {
            for (k, v) in rate_headers {
                header(&mut r, k, &v);
            }
            if let Some(cap) = req.budget_cap {
                header(&mut r, "x-gammainfra-output-capped", &cap.to_string());
            }
            Ok(r)
        }
        Err(mut e) => {
            e.headers.extend(rate_headers);
            Err(e)
        }
    }
}

/// Holds credit for the request: the most it can use, at whichever model serves it
/// (every input-side token, at most the model's context window, and its full output
/// cap; the largest over every planned endpoint of every model, so that a fallback is
/// billed as exactly as the first choice). Returns the hold and the largest token count,
/// which counts toward rate limits.
///
/// A request that sets no output cap, when the credit available (or the room left under
/// the key's spending limit) cannot cover the model's whole maximum output, is capped at
/// the output it affords instead of refused ([`ChatRequest::budget_cap`], answered in
/// `X-GammaInfra-Output-Capped`). A request that sets a cap it cannot afford is refused
/// with the largest cap it could afford in the message.
async fn admit(
    st: &AppState,
    key: &crate::ledger::KeyInfo,
    request_id: &str,
    req: &mut ChatRequest,
    candidates: &[Candidate],
    input_bound: u64,
    client: &ClientHandle,
) -> Result<(Reservation, u64), ApiError> {
    // Three rounds: a cap set for the credit may then meet a spending limit, or credit
    // taken meanwhile by the account's other requests.
    for round in 0..3 {
        let (amount, tokens) = worst_case(req, candidates, input_bound);
        let refused = match st.ledger.admit(key, request_id, amount, client).await {
            Ok(r) => return Ok((r, tokens)),
            Err(e) => e,
        };
        let room = match &refused {
            AdmitError::Insufficient(i) => i.available,
            AdmitError::SpendLimit(l) => l.limit - l.spent - l.in_flight,
            _ => return Err(refused.into()),
        };
        let affordable = affordable_output(candidates, input_bound, room);
        let capped = req.output_cap().is_none()
            && round < 2
            && affordable > 0
            && req.budget_cap.is_none_or(|c| affordable < c);
        if !capped {
            let mut e = ApiError::from(refused);
            if let (Some(asked), Some(n)) = (req.output_cap(), Some(affordable).filter(|&n| n > 0))
            {
                e.message.push_str(&format!(
                    " It asks for up to {asked} output tokens; the credit it may use affords at most {n}."
                ));
            }
            return Err(e);
        }
        req.budget_cap = Some(affordable);
    }
    Err(ApiError::internal("the request could not be admitted"))
}

/// The most `req` can cost at any planned endpoint, and its largest token count.
fn worst_case(req: &ChatRequest, candidates: &[Candidate], input_bound: u64) -> (Nanos, u64) {
    let mut amount = Nanos::ZERO;
    let mut tokens = 0u64;
    for c in candidates {
        let input = input_bound.min(c.res.model.context_window);
        let output = req.output_tokens(c.res.model.max_output_tokens);
        for e in &c.plan {
            amount = amount.max(worst_case_cost(input, output, e));
        }
        tokens = tokens.max(input.saturating_add(output));
    }
    (amount, tokens)
}

/// The largest output cap whose worst case fits `room` at every planned endpoint: 0
/// when not even the input does, `u64::MAX` when every model's whole maximum does.
fn affordable_output(candidates: &[Candidate], input_bound: u64, room: Nanos) -> u64 {
    let mut most = u64::MAX;
    for c in candidates {
        let input = input_bound.min(c.res.model.context_window);
        let max = c.res.model.max_output_tokens;
        for e in &c.plan {
            if worst_case_cost(input, max, e) <= room {
                continue;
            }
            if worst_case_cost(input, 0, e) > room {
                return 0;
            }
            // The cost grows with the output: the largest count that fits, by bisection.
            let (mut lo, mut hi) = (0u64, max);
            while lo < hi {
                let mid = lo + (hi - lo).div_ceil(2);
                if worst_case_cost(input, mid, e) <= room {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            most = most.min(lo);
        }
    }
    most
}

/// One model of the request with the endpoints planned for it.
struct Candidate {
    res: Resolution,
    plan: Vec<Arc<Endpoint>>,
    /// A model of `models` after the first choice: an answer from it names it in
    /// `X-GammaInfra-Resolved-Model`.
    fallback: bool,
}

impl Candidate {
    /// Whether the answer names the model it came from (`X-GammaInfra-Resolved-Model`).
    fn renamed(&self) -> bool {
        self.res.renamed || self.fallback
    }
}

/// `X-GammaInfra-Provider: anthropic,bedrock`: the providers that may serve the
/// request, as `provider.only` in the body, for clients that cannot add body members
/// (Claude Code sets headers with `ANTHROPIC_CUSTOM_HEADERS`). A request may not set
/// both. `prefs` is the request's `provider` member, already validated.
pub(super) fn provider_header(
    headers: &HeaderMap,
    prefs: &mut Option<ProviderPrefs>,
) -> Result<(), ApiError> {
    let Some(v) = headers.get("x-gammainfra-provider") else {
        return Ok(());
    };
    let bad = |m: String| {
        let mut e = ApiError::bad_request("invalid_provider_header", m);
        e.param = Some("X-GammaInfra-Provider".into());
        e
    };
    let v = v
        .to_str()
        .map_err(|_| bad("X-GammaInfra-Provider must be ASCII.".into()))?;
    let only: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    if only.is_empty() || only.len() > limits::MAX_PROVIDER_LIST {
        return Err(bad(format!(
            "X-GammaInfra-Provider lists 1 to {} providers, comma-separated (e.g. `anthropic` or `bedrock,anthropic`).",
            limits::MAX_PROVIDER_LIST
        )));
    }
    let prefs = prefs.get_or_insert_with(ProviderPrefs::default);
    if !prefs.only.is_empty() {
        return Err(bad(
            "Set the providers either in `provider.only` or in X-GammaInfra-Provider, not both."
                .into(),
        ));
    }
    prefs.only = only;
    Ok(())
}

/// The request's `X-GammaInfra-Region` constraint, if it has one.
pub(super) fn header_region(
    st: &AppState,
    headers: &HeaderMap,
) -> Result<Option<RegionConstraint>, ApiError> {
    match headers.get("x-gammainfra-region") {
        Some(v) => {
            let v = v.to_str().map_err(|_| {
                ApiError::bad_request("invalid_region", "X-GammaInfra-Region must be ASCII")
            })?;
            Ok(Some(RegionConstraint::parse(v, &st.catalog)?))
        }
        None => Ok(None),
    }
}

/// The endpoints that may serve `res`, best first: its region constraint (the header,
/// else the geography its Bedrock profile prefix implies) within the key's residency
/// policy, the request's provider preferences, and the request's image count.
pub(super) fn plan_for(
    st: &AppState,
    prefs: Option<&ProviderPrefs>,
    res: &Resolution,
    header_region: Option<&RegionConstraint>,
    residency: Option<&Residency>,
    images: usize,
) -> Result<Vec<Arc<Endpoint>>, ApiError> {
    // The request's own constraint: the header, or else the geography implied by a
    // Bedrock profile prefix in the model's name (the header wins over the prefix).
    let requested = match header_region {
        Some(c) => Some((c.clone(), Asked::Header)),
        None => match res.implied_region.as_deref() {
            Some(g) => Some((RegionConstraint::parse(g, &st.catalog)?, Asked::ModelPrefix)),
            None => None,
        },
    };
    // The account's and the key's residency policy is not a default: the request's
    // constraint may narrow it, never widen it. Refused here, before anything is
    // reserved or sent upstream.
    let constraint = match residency {
        None => requested.map(|(c, _)| Cow::Owned(c)),
        Some(p) => Some(p.apply(requested).map_err(|mut e| {
            e.model = Some(res.model.id.clone());
            e
        })?),
    };
    let plan = st
        .router
        .plan_within(res, constraint.as_deref(), residency, prefs)?;
    // Endpoints whose provider takes fewer images than the request has are skipped (a
    // request over every planned endpoint's cap is refused here, before any hold or
    // fetch): see `chat::limits`.
    Ok(limits::fit_images(plan, images)?)
}

/// Tries each model's planned endpoints in order, model after model (failing over while
/// nothing has been sent), and bills the one that answered. Every answer that reached a
/// provider carries the route taken ([`RouteTrace`]).
#[allow(clippy::too_many_arguments)]
async fn attempt(
    st: &AppState,
    req: &ChatRequest,
    raw: &RawObject<'_>,
    candidates: &[Candidate],
    reservation: Reservation,
    body_len: usize,
    native: Option<&crate::messages::NativeMessages>,
    responses: Option<&crate::responses::Echo>,
    responses_native: Option<&crate::responses::NativeResponses>,
    request_id: &str,
    client: ClientHandle,
    trace: &mut RequestTrace,
    tally: &mut Tally,
) -> Result<Response, ApiError> {
    let sort = req
        .provider
        .as_ref()
        .map_or(SortBy::Price, ProviderPrefs::sort_by);
    let mut route = RouteTrace::new(sort);
    // Every (model, endpoint) in the order to try; an endpoint reached again through
    // another name of the same model is not tried twice.
    let mut tries: Vec<(&Candidate, &Arc<Endpoint>)> =
        Vec::with_capacity(candidates.iter().map(|c| c.plan.len()).sum());
    for c in candidates {
        for ep in &c.plan {
            if candidates.len() == 1 || !tries.iter().any(|(_, t)| t.key == ep.key) {
                tries.push((c, ep));
            }
        }
    }
    let mut last_err = None;
    for (i, &(cand, ep)) in tries.iter().enumerate() {
        let more = i + 1 < tries.len();
        let res = &cand.res;
        let Some(provider) = st.providers.get(&ep.provider) else {
            continue;
        };
        let call = Call {
            req,
            raw,
            endpoint: ep,
            model: &res.model,
            body_len,
            native,
            responses: responses_native,
        };
        let started = Instant::now();
        tally.calling(ep, started);
        let span = trace.attempt(ep, || provider.server_address(ep));
        match provider.call(call).await {
            Ok(Reply::Complete(c)) => {
                span.answered(&c.usage);
                st.router.record_success(&ep.key);
                // A non-streamed answer's throughput is over the whole call; it has no
                // first token to time.
                st.router
                    .record_throughput(&ep.key, c.usage.output_tokens, started.elapsed());
                route.ok(&res.model.id, ep);
                let ledger = reservation.ledger().clone();
                let mut resp = complete(
                    cand,
                    ep,
                    c,
                    reservation,
                    (native, responses),
                    request_id,
                    trace,
                    tally,
                );
                route.set_on(&mut resp);
                ledger.commit_before_answer().await;
                return Ok(resp);
            }
            Ok(Reply::Stream(mut s)) => {
                // Nothing reaches the client until the first chunk that carries output:
                // a failure before it (Anthropic's overloaded error right after
                // `message_start`, say) still fails over. Usage reports and the role
                // chunk ahead of it are held back, then sent.
                let mut prefetched = Vec::new();
                let first = loop {
                    match s.next().await {
                        Some(Ok(u @ StreamItem::Usage { .. })) => prefetched.push(u),
                        Some(Ok(n @ StreamItem::Native(_))) => prefetched.push(n),
                        Some(Ok(c @ StreamItem::Chunk { generated: 0, .. })) => prefetched.push(c),
                        other => break other,
                    }
                };
                match first {
                    Some(Err(e)) if e.retryable() && more => {
                        span.failed(&e, true);
                        note_failure(st, ep, &e, request_id, tally);
                        route.failed(&res.model.id, ep, &e);
                        tracing::warn!(request_id, endpoint = %ep.key, error = %e, "failing over");
                        last_err = Some((ep, e));
                        continue;
                    }
                    Some(Err(e)) => {
                        span.failed(&e, false);
                        note_failure(st, ep, &e, request_id, tally);
                        route.failed(&res.model.id, ep, &e);
                        return Err(answered_failure(ep, &e, request_id, route));
                    }
                    first => {
                        st.router.record_success(&ep.key);
                        // Time to first token, and the start of the stream's
                        // throughput, which it records if it ends normally.
                        let timer = matches!(first, Some(Ok(_))).then(|| {
                            let now = Instant::now();
                            st.router.record_ttft(&ep.key, now - started);
                            tally.first_token(now - started);
                            Throughput {
                                router: st.router.clone(),
                                since: now,
                            }
                        });
                        trace.streaming(span, timer.as_ref().map(|t| t.since - started));
                        route.ok(&res.model.id, ep);
                        let billed = BilledStream::new(
                            s,
                            prefetched,
                            first,
                            reservation,
                            ep.clone(),
                            res.model.id.clone(),
                            req.include_usage(),
                            req.estimated_input_tokens_at(body_len, ep),
                            client.clone(),
                            request_id.to_owned(),
                            timer,
                            native.map(|n| super::stream::MessagesOut::new(n, request_id, ep)),
                            responses
                                .map(|echo| super::stream::ResponsesOut::new(echo, request_id, ep)),
                            trace.take(),
                        )
                        .with_tally(tally.take());
                        let mut resp = streamed(cand, ep, billed);
                        route.set_on(&mut resp);
                        return Ok(resp);
                    }
                }
            }
            Err(e) => {
                span.failed(&e, e.retryable() && more);
                note_failure(st, ep, &e, request_id, tally);
                route.failed(&res.model.id, ep, &e);
                if e.retryable() && more {
                    tracing::warn!(request_id, endpoint = %ep.key, error = %e, "failing over");
                    last_err = Some((ep, e));
                    continue;
                }
                return Err(answered_failure(ep, &e, request_id, route));
            }
        }
    }
    Err(match last_err {
        Some((ep, e)) => answered_failure(ep, &e, request_id, route),
        None => ApiError::internal("no endpoint could be called"),
    })
}

/// The failure of the last endpoint tried, as the client's answer. The provider's own
/// text is logged here, with the request ID and endpoint, and never sent: the answer
/// names only the category, the provider and its status (see [`ApiError::upstream`]).
pub(super) fn answered_failure(
    ep: &Endpoint,
    e: &crate::providers::UpstreamError,
    request_id: &str,
    route: RouteTrace,
) -> ApiError {
    log_upstream_failure(ep, e, request_id, "upstream failure answered to the client");
    let mut a = ApiError::upstream(e, request_id);
    a.headers.push((ROUTE, route.into_string()));
    a
}

/// Logs a provider failure with everything the provider said: a refusal of the
/// client's input at info (it is the client's doing), every other failure at warn.
pub(super) fn log_upstream_failure(
    ep: &Endpoint,
    e: &crate::providers::UpstreamError,
    request_id: &str,
    what: &'static str,
) {
    let (status, code) = (e.status, e.code.as_deref());
    if e.kind == crate::providers::UpstreamErrorKind::Rejected {
        tracing::info!(request_id, endpoint = %ep.key, provider = %e.provider, provider_status = status, provider_code = code, kind = ?e.kind, provider_message = %e.message, "{what}");
    } else {
        tracing::warn!(request_id, endpoint = %ep.key, provider = %e.provider, provider_status = status, provider_code = code, kind = ?e.kind, provider_message = %e.message, "{what}");
    }
}

/// Circuit bookkeeping for a failed attempt. A catalog fault (the provider refused the
/// model ID's form) is logged with its endpoint and opens the circuit at once.
pub(super) fn note_failure(
    st: &AppState,
    ep: &Endpoint,
    e: &crate::providers::UpstreamError,
    request_id: &str,
    tally: &Tally,
) {
    tally.upstream_error(e.kind);
    if e.kind == crate::providers::UpstreamErrorKind::CatalogFault {
        tracing::error!(request_id, endpoint = %ep.key, error = %e, "catalog fault: the provider refused this endpoint's model ID; circuit opened");
        st.router.trip(&ep.key);
    } else if e.retryable() {
        st.router.record_failure(&ep.key);
    }
}

/// The most this request can cost at this endpoint: every input token at the dearest
/// input-side price, and the full output cap at the output price, in the dearest tier.
fn worst_case_cost(input: u64, output: u64, e: &Endpoint) -> Nanos {
    let p = e.pricing.worst_case();
    let input_price = p.input.max(p.cache_write_5m).max(p.cache_write_1h);
    let mut acc = CostAccumulator::default();
    acc.add(input, input_price).add(output, p.output);
    acc.total()
}

fn header(resp: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

fn proxied_headers(resp: &mut Response, cand: &Candidate, ep: &Endpoint) {
    header(resp, "x-gammainfra-provider", &ep.provider.to_string());
    header(resp, "x-gammainfra-upstream-model", &ep.upstream_id);
    header(resp, "x-gammainfra-upstream-region", ep.served_region());
    if cand.renamed() {
        header(resp, "x-gammainfra-resolved-model", &cand.res.model.id);
    }
}

#[allow(clippy::too_many_arguments)]
fn complete(
    cand: &Candidate,
    ep: &Arc<Endpoint>,
    c: Completion,
    reservation: Reservation,
    (native, responses): (
        Option<&crate::messages::NativeMessages>,
        Option<&crate::responses::Echo>,
    ),
    request_id: &str,
    trace: &mut RequestTrace,
    tally: &mut Tally,
) -> Response {
    let res = &cand.res;
    let (status, note) = if reservation.client_left() {
        (
            UsageStatus::ClientDisconnected,
            Some("client disconnected before the answer; read to its end and billed from the provider's usage".to_owned()),
        )
    } else {
        (UsageStatus::Completed, None)
    };
    let charged = reservation.settle(Charge::for_endpoint(
        ep,
        &res.model.id,
        c.usage,
        c.id(),
        status,
        note,
    ));
    trace.billed(&res.model.id, ep, &c.usage, charged, status.as_str());
    tally.answered(&c.usage, charged, None);
    // The answer in the client's dialect.
    let out = match (native, responses) {
        // A Messages answer: Anthropic's own as it came, or the converted one encoded.
        (Some(n), _) => match c.native {
            Some(body) => body.to_vec(),
            None => crate::messages::encode::message(&c.fields, &c.usage, &n.model, request_id),
        },
        // A Responses answer: OpenAI's own with the charge in its usage, or the converted
        // one encoded.
        (None, Some(echo)) => match c.native {
            Some(body) => crate::responses::encode::with_cost(&body, charged),
            None => crate::responses::encode::response(
                &c.fields,
                &c.usage,
                charged,
                &echo.served_by(&ep.upstream_id),
                request_id,
            ),
        },
        (None, None) => {
            let usage = c.usage.to_openai_json(charged);
            let mut out = Vec::with_capacity(512);
            out.push(b'{');
            for (k, v) in &c.fields {
                if let Ok(k) = serde_json::to_string(k) {
                    out.extend_from_slice(k.as_bytes());
                    out.push(b':');
                    out.extend_from_slice(v.get().as_bytes());
                    out.push(b',');
                }
            }
            out.extend_from_slice(b"\"usage\":");
            out.extend_from_slice(usage.as_bytes());
            out.push(b'}');
            out
        }
    };
    let mut resp = (StatusCode::OK, out).into_response();
    header(&mut resp, "content-type", "application/json");
    header(&mut resp, "x-gammainfra-cost-usd", &charged.to_string());
    proxied_headers(&mut resp, cand, ep);
    resp
}

fn streamed(cand: &Candidate, ep: &Endpoint, s: BilledStream) -> Response {
    let mut resp = axum::body::Body::from_stream(s).into_response();
    header(&mut resp, "content-type", "text/event-stream");
    header(&mut resp, "cache-control", "no-cache");
    proxied_headers(&mut resp, cand, ep);
    resp
}

/// A header's value as a string, if it is one.
pub(super) fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}
