//! `POST /v1/messages`: Anthropic's Messages API, served by the chat pipeline (see
//! [`crate::messages`]). Auth by `x-api-key` or `Authorization: Bearer`;
//! `anthropic-version` and `anthropic-beta` are accepted and passed on to Anthropic;
//! `?beta=true` (what Anthropic's SDKs add for beta features) is accepted. Errors take
//! Anthropic's shape, `{"type":"error","error":{"type","message"},"request_id"}`, with
//! the gateway's status codes (402 `billing_error` for credit). Every answer also carries
//! the request's ID as `request-id`, where Anthropic's SDKs read it.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::chat::{serve, Surface};
use super::error::ApiError;
use super::AppState;
use crate::catalog::ProviderKind;

#[utoipa::path(
    post,
    path = "/v1/messages",
    tag = "messages",
    operation_id = "messages_create",
    summary = "Create a message (Anthropic Messages)",
    description = "Anthropic's Messages API on the chat pipeline: the same resolution, region constraints, routing, fail-over and billing. Anthropic endpoints get the client's body (with its `anthropic-version` and `anthropic-beta`) and answer as Anthropic does; Bedrock and OpenAI answers are converted. Features only Anthropic serves restrict the request to Anthropic endpoints (400 `anthropic_only_feature` when none is eligible). `stream: true` answers Anthropic's event sequence. Errors take Anthropic's shape (the error codes named below are the gateway's, told in the message; the body's `type` follows the status); every answer carries `request-id`.",
    params(
        ("X-GammaInfra-Region" = Option<String>, Header, description = "A region constraint: a geography (`eu`, `us`, ...) or region list, held within the key's residency policy"),
        ("X-GammaInfra-Provider" = Option<String>, Header, description = "The providers that may serve the request, comma-separated (as `provider.only`; not both)"),
        ("anthropic-version" = Option<String>, Header, description = "Passed on to Anthropic"),
        ("anthropic-beta" = Option<String>, Header, description = "Passed on to Anthropic"),
        ("beta" = Option<bool>, Query, description = "Accepted (Anthropic's SDKs add it for beta features)"),
    ),
    request_body(content = crate::server::openapi::MessagesRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The message, or its events", content(
            (crate::server::openapi::AnthropicMessage = "application/json"),
            (String = "text/event-stream"),
        ), headers(
            ("request-id" = String, description = "The gateway's request ID"),
            ("X-GammaInfra-Request-Id" = String, description = "The gateway's request ID"),
            ("X-GammaInfra-Provider" = String, description = "The provider that answered"),
            ("X-GammaInfra-Upstream-Model" = String, description = "The provider's model ID"),
            ("X-GammaInfra-Upstream-Region" = String, description = "Where the provider processed the request"),
            ("X-GammaInfra-Route" = String, description = "How the request was routed: `sort=<price|latency|throughput>; <model>@<endpoint>=<outcome>, ...`"),
            ("X-GammaInfra-Resolved-Model" = String, description = "The catalog model that answered, when it is not the one named (an alias, or a fallback of `models`)"),
            ("X-GammaInfra-Cost-USD" = String, description = "What the request was billed, USD (not on a stream: see `usage.cost_usd`)"),
            ("X-GammaInfra-Output-Capped" = String, description = "The output cap the gateway set, in tokens, because the request set none and the credit available (or the key's spending limit) could not cover the model's whole output cap"),
        )),
        (status = 400, description = "`invalid_request`, `invalid_body`, `invalid_region`, `invalid_provider_header`, `no_endpoint_in_region`, `no_endpoint_for_preferences`, `request_exceeds_spend_limit`, `request_exceeds_rate_limit`, `upstream_rejected` (the provider refused the input), ...", body = crate::server::openapi::AnthropicError),
        (status = 401, description = "`invalid_api_key`: no key, or an unknown or revoked one", body = crate::server::openapi::AnthropicError),
        (status = 402, description = "`insufficient_credits` (`billing_error`): the credit available cannot hold the worst-case cost of `max_tokens` (the message names the largest `max_tokens` it affords)", body = crate::server::openapi::AnthropicError),
        (status = 403, description = "`account_disabled`: the key's account is disabled; `region_not_allowed`: the region constraint is outside the key's or account's residency policy", body = crate::server::openapi::AnthropicError),
        (status = 404, description = "`model_not_found`: an unknown model in `model` or `models`", body = crate::server::openapi::AnthropicError),
        (status = 408, description = "`request_timeout`: the body did not arrive in time", body = crate::server::openapi::AnthropicError),
        (status = 413, description = "`request_too_large`: the body exceeds the configured limit", body = crate::server::openapi::AnthropicError),
        (status = 429, description = "`rate_limit_exceeded` (with `Retry-After` and `x-ratelimit-*`), `key_spend_limit_reached`, `too_many_concurrent_requests`, `too_many_detached_requests`, `upstream_rate_limited`", body = crate::server::openapi::AnthropicError, headers(("Retry-After" = String, description = "Seconds to wait")), ),
        (status = 500, description = "`internal_error`", body = crate::server::openapi::AnthropicError),
        (status = 502, description = "`upstream_error`, `upstream_auth_failed`, `catalog_fault`, `upstream_model_not_found`: the provider failed (the error names it, its status and the request ID)", body = crate::server::openapi::AnthropicError),
        (status = 503, description = "`provider_not_available`, `ledger_unavailable`", body = crate::server::openapi::AnthropicError),
        (status = 504, description = "`upstream_timeout`", body = crate::server::openapi::AnthropicError),
    ),
    security(("customer_key" = []), ("x_api_key" = [])),
)]
pub async fn create(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    with_request_id(serve(st, headers, body, Surface::Messages).await)
}

/// Anthropic's SDKs take a request's ID from the `request-id` header
/// (`Message._request_id`, `APIStatusError.request_id`): the gateway's own, as in
/// `X-GammaInfra-Request-Id` and in error bodies.
fn with_request_id(mut r: Response) -> Response {
    if let Some(v) = r.headers().get(super::chat::REQUEST_ID).cloned() {
        r.headers_mut().insert("request-id", v);
    }
    r
}

/// A Messages request split into its chat-format body and the client's own request,
/// with the client's `anthropic-version` and `anthropic-beta`.
pub(super) fn native(
    converted: crate::messages::request::Converted,
    headers: &HeaderMap,
) -> (Vec<u8>, crate::messages::NativeMessages) {
    crate::messages::NativeMessages::split(
        converted,
        super::chat::header_str(headers, "anthropic-version"),
        super::chat::header_str(headers, "anthropic-beta"),
    )
}

/// On /v1/messages an Anthropic model ID is the model's name in the client's dialect
/// (Anthropic clients have no other), not a choice of provider: every endpoint of the
/// model stays eligible (`provider.only` or `X-GammaInfra-Provider` still pin one).
pub(super) fn unpin_anthropic(res: &mut crate::catalog::Resolution) {
    if res.pinned_provider == Some(ProviderKind::Anthropic) {
        res.pinned_provider = None;
    }
}

/// The 400 for a request using what only Anthropic's API serves, when no Anthropic
/// endpoint of `model` is eligible.
pub(super) fn anthropic_only_refusal(
    native: &crate::messages::NativeMessages,
    model: &str,
) -> ApiError {
    ApiError::bad_request(
        "anthropic_only_feature",
        format!(
            "This request uses {}, which only Anthropic's API serves, and no Anthropic endpoint of {model} is eligible for it (check the region constraint and the provider preferences).",
            native.anthropic_only.join(", ")
        ),
    )
}

/// An error in Anthropic's shape, with the same status and headers.
pub(super) fn error_response(e: ApiError, request_id: &str) -> Response {
    let body = crate::messages::encode::error_body(e.status, &e.message, Some(request_id));
    let mut r = (e.status, body.to_string()).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    for (k, v) in &e.headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            r.headers_mut().insert(*k, v);
        }
    }
    r.extensions_mut().insert(e);
    r
}

/// `POST /v1/messages/count_tokens`: the input tokens of a Messages request, free of
/// charge. Counted by the provider where it offers counting (Anthropic's
/// `count_tokens`, Bedrock's CountTokens) at the first eligible endpoint of the
/// request's plan (the same model resolution, region constraint and preferences as
/// `/v1/messages`), failing over like a request; elsewhere (OpenAI) the gateway's own
/// estimate, the one its credit holds use. `X-GammaInfra-Token-Count` says which:
/// `exact` or `estimate`.
#[utoipa::path(
    post,
    path = "/v1/messages/count_tokens",
    tag = "messages",
    operation_id = "messages_count_tokens",
    summary = "Count a Messages request's input tokens (free)",
    description = "Counted by the provider where it offers counting (Anthropic, Bedrock) at the first eligible endpoint of the request's plan, failing over like a request; elsewhere the gateway's own estimate. Not billed.",
    params(
        ("X-GammaInfra-Region" = Option<String>, Header, description = "A region constraint: a geography (`eu`, `us`, ...) or region list, held within the key's residency policy"),
        ("X-GammaInfra-Provider" = Option<String>, Header, description = "The providers that may serve the request, comma-separated (as `provider.only`; not both)"),
    ),
    request_body(content = crate::server::openapi::CountTokensRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The count", body = crate::server::openapi::CountTokens, headers(
            ("X-GammaInfra-Token-Count" = String, description = "`exact` (the provider counted) or `estimate`"),
            ("X-GammaInfra-Provider" = String, description = "The provider that counted, or whose endpoint was estimated"),
            ("X-GammaInfra-Upstream-Model" = String, description = "The provider's model ID"),
            ("request-id" = String, description = "The gateway's request ID (also `X-GammaInfra-Request-Id`)"),
        )),
        (status = 400, description = "An invalid request, region or provider header; no eligible endpoint; `anthropic_only_feature`", body = crate::server::openapi::AnthropicError),
        (status = 401, description = "`invalid_api_key`: no key, or an unknown or revoked one", body = crate::server::openapi::AnthropicError),
        (status = 403, description = "`account_disabled`: the key's account is disabled; `region_not_allowed`", body = crate::server::openapi::AnthropicError),
        (status = 404, description = "`model_not_found`", body = crate::server::openapi::AnthropicError),
        (status = 413, description = "`request_too_large`", body = crate::server::openapi::AnthropicError),
        (status = 502, description = "The provider failed", body = crate::server::openapi::AnthropicError),
        (status = 503, description = "`provider_not_available`", body = crate::server::openapi::AnthropicError),
    ),
    security(("customer_key" = []), ("x_api_key" = [])),
)]
pub async fn count_tokens(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let request_id = crate::ledger::keys::random_request_id();
    let mut resp = match count(&st, &headers, body, &request_id).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(request_id, status = e.status.as_u16(), code = %e.code, "count refused");
            error_response(e, &request_id)
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(super::chat::REQUEST_ID, v);
    }
    with_request_id(resp)
}

async fn count(
    st: &AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
    request_id: &str,
) -> Result<Response, ApiError> {
    let key = match super::auth::customer(st, headers) {
        Ok(k) => k,
        Err(e) => {
            super::chat::linger(st, body);
            return Err(e);
        }
    };
    let body = super::chat::read_body(st, headers, body).await?;
    let converted = crate::chat::limits::off_workers(body.len(), || {
        crate::messages::request::to_chat_for_count(&body)
    })
    .await?;
    let (chat, native) = native(converted, headers);
    let mut req = crate::chat::ChatRequest::parse(&chat)?;
    super::chat::provider_header(headers, &mut req.provider)?;
    let mut res = st.catalog.resolve(&req.model)?;
    unpin_anthropic(&mut res);
    let region = super::chat::header_region(st, headers)?;
    let mut plan = super::chat::plan_for(
        st,
        req.provider.as_ref(),
        &res,
        region.as_ref(),
        key.residency.as_deref(),
        req.image_count(),
    )?;
    if !native.anthropic_only.is_empty() {
        plan.retain(|e| e.provider == ProviderKind::Anthropic);
        if plan.is_empty() {
            return Err(anthropic_only_refusal(&native, &res.model.id));
        }
    }
    let mut last = None;
    for (i, ep) in plan.iter().enumerate() {
        let Some(provider) = st.providers.get(&ep.provider) else {
            continue;
        };
        let call = crate::providers::Call {
            req: &req,
            raw: &crate::chat::raw::RawObject(Vec::new()),
            endpoint: ep,
            model: &res.model,
            body_len: body.len(),
            native: Some(&native),
            responses: None,
        };
        let (tokens, how) = match provider.count_tokens(call).await {
            Ok(Some(n)) => (n, "exact"),
            Ok(None) => (req.estimated_input_tokens_at(body.len(), ep), "estimate"),
            Err(e) if e.retryable() && i + 1 < plan.len() => {
                tracing::warn!(request_id, endpoint = %ep.key, error = %e, "count failing over");
                last = Some(e);
                continue;
            }
            Err(e) => {
                super::chat::log_upstream_failure(ep, &e, request_id, "count failed");
                return Err(ApiError::upstream(&e, request_id));
            }
        };
        let mut r = (
            axum::http::StatusCode::OK,
            serde_json::json!({ "input_tokens": tokens }).to_string(),
        )
            .into_response();
        let h = r.headers_mut();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("x-gammainfra-token-count", HeaderValue::from_static(how));
        for (name, value) in [
            ("x-gammainfra-provider", ep.provider.to_string()),
            ("x-gammainfra-upstream-model", ep.upstream_id.clone()),
        ] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        return Ok(r);
    }
    Err(match last {
        Some(e) => ApiError::upstream(&e, request_id),
        None => ApiError::internal("no endpoint could count the request"),
    })
}
