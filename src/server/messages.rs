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
    super::chat::provider_header(headers, &mut req)?;
    let mut res = st.catalog.resolve(&req.model)?;
    unpin_anthropic(&mut res);
    let region = super::chat::header_region(st, headers)?;
    let mut plan = super::chat::plan_for(
        st,
        &req,
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
