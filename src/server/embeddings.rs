//! `POST /v1/embeddings` (OpenAI's Embeddings API): authenticate, parse, resolve the
//! model (an embedding model), plan its endpoints as chat plans a model's (the region
//! constraint within the key's residency policy, the provider preferences of `provider`
//! or `X-GammaInfra-Provider`: [`plan_for`]), hold credit for every input token the
//! request can have, try the endpoints in order (failing over on retryable errors) and
//! bill the input tokens the provider that answered reported.
//!
//! The hold: each input counts at most its size (bytes of text, or the number of token
//! IDs: no tokenizer makes more tokens than bytes), capped at the model's per-input
//! limit (`context_window`; providers refuse or cut longer inputs), plus
//! [`FRAMING_TOKENS`] for tokens a provider adds around an input, all at the dearest
//! input price of the planned endpoints. As with chat, the request runs in its own task:
//! a client that hangs up does not cancel it, and it is billed from the provider's usage.
//! Its log line and spans are chat's ([`RequestTrace`]), the operation `embeddings`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::chat::{
    answered_failure, header_region, linger, note_failure, plan_for, provider_header, read_body,
    Surface,
};
use super::error::ApiError;
use super::route::RouteTrace;
use super::{auth, AppState};
use crate::catalog::{EmbeddingSpec, Endpoint, ProviderKind};
use crate::chat::request::{ProviderPrefs, SortBy};
use crate::chat::Usage;
use crate::ledger::{Charge, ClientHandle, UsageStatus};
use crate::metrics::Tally;
use crate::money::{CostAccumulator, Nanos};
use crate::providers::embeddings::{to_base64, EmbedCall, EmbedInput};
use crate::telemetry::RequestTrace;

/// OpenAI's limit on the inputs of one request.
pub const MAX_INPUTS: usize = 2048;

/// Tokens a provider may add to each input beyond its text (begin/end markers, Cohere's
/// input-type prefix), counted in the hold.
pub const FRAMING_TOKENS: u64 = 8;

/// An embeddings request, OpenAI's shape. Any other member is refused.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingsRequest {
    /// A catalog embedding model (or one of its names).
    #[schema(example = "openai/text-embedding-3-small")]
    pub model: String,
    /// A string, an array of strings, an array of token IDs, or an array of token-ID
    /// arrays: 1 to 2048 inputs, none empty. Token IDs are taken by OpenAI only.
    #[schema(value_type = Object)]
    pub input: Value,
    /// The vector size, where the model can shorten its vectors (OpenAI's v3 models: 1 to
    /// their size; Titan Text Embeddings V2: 256, 512 or 1024).
    pub dimensions: Option<u32>,
    /// `float` (the default) or `base64` (each vector's little-endian `f32` bytes).
    #[schema(value_type = Option<String>, example = "float")]
    pub encoding_format: Option<String>,
    /// An end-user identifier, passed on to OpenAI.
    pub user: Option<String>,
    /// The gateway's provider preferences (`order`, `only`, `ignore`,
    /// `allow_fallbacks`, `sort`), as in a chat completion; never forwarded upstream.
    #[schema(value_type = Option<crate::chat::request::ProviderPrefs>)]
    pub provider: Option<ProviderPrefs>,
}

fn invalid(param: &str, message: impl Into<String>) -> ApiError {
    let mut e = ApiError::bad_request("invalid_request", message);
    e.param = Some(param.to_owned());
    e
}

/// The request's inputs, checked: 1 to [`MAX_INPUTS`], none empty.
fn parse_input(v: &Value) -> Result<EmbedInput, ApiError> {
    let shape = "`input` must be a string, an array of strings, an array of token IDs or an array of token-ID arrays";
    let tokens = |a: &[Value]| -> Option<Vec<u32>> {
        a.iter()
            .map(|t| t.as_u64().and_then(|n| u32::try_from(n).ok()))
            .collect()
    };
    let input = match v {
        Value::String(s) => EmbedInput::Texts(vec![s.clone()]),
        Value::Array(items) if items.is_empty() => {
            return Err(invalid(
                "input",
                "`input` is empty: send at least one input",
            ))
        }
        Value::Array(items) if items.iter().all(Value::is_string) => EmbedInput::Texts(
            items
                .iter()
                .map(|s| s.as_str().unwrap_or_default().to_owned())
                .collect(),
        ),
        Value::Array(items) if items.iter().all(Value::is_number) => {
            EmbedInput::Tokens(vec![tokens(items).ok_or_else(|| {
                invalid("input", "token IDs must be integers from 0 to 4294967295")
            })?])
        }
        Value::Array(items) if items.iter().all(Value::is_array) => EmbedInput::Tokens(
            items
                .iter()
                .map(|a| {
                    a.as_array().and_then(|a| tokens(a)).ok_or_else(|| {
                        invalid("input", "token IDs must be integers from 0 to 4294967295")
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => return Err(invalid("input", shape)),
    };
    if input.len() > MAX_INPUTS {
        return Err(invalid(
            "input",
            format!(
                "`input` has {} inputs; at most {MAX_INPUTS} are allowed in one request",
                input.len()
            ),
        ));
    }
    let empty = match &input {
        EmbedInput::Texts(t) => t.iter().position(String::is_empty),
        EmbedInput::Tokens(t) => t.iter().position(Vec::is_empty),
    };
    if let Some(i) = empty {
        return Err(invalid(
            "input",
            format!("input {i} is empty: every input needs at least one character or token"),
        ));
    }
    Ok(input)
}

/// The most input tokens `input` can be billed for at a model whose inputs have at most
/// `per_input` tokens.
pub fn input_token_bound(input: &EmbedInput, per_input: u64) -> u64 {
    let size = |n: usize| (n as u64).min(per_input).saturating_add(FRAMING_TOKENS);
    match input {
        EmbedInput::Texts(t) => t.iter().map(|s| size(s.len())).sum(),
        EmbedInput::Tokens(t) => t.iter().map(|a| size(a.len())).sum(),
    }
}

#[utoipa::path(
    post,
    path = "/v1/embeddings",
    tag = "embeddings",
    operation_id = "embeddings_create",
    summary = "Create embeddings (OpenAI Embeddings)",
    description = "Resolves `model` (an embedding model) in the catalog, plans the endpoints allowed by the region constraint, the key's residency policy and `provider` (as in a chat completion), holds credit for every input token the request can have (each input's bytes or token count, at most the model's per-input limit, at the dearest input price), tries the endpoints in order (failing over on retryable errors) and bills the input tokens the provider reported, exactly. Bedrock's Titan and Cohere models take text only; a batch is split into the calls the model allows.",
    params(
        ("X-GammaInfra-Region" = Option<String>, Header, description = "A region constraint: a geography (`eu`, `us`, ...) or region list, held within the key's residency policy"),
        ("X-GammaInfra-Provider" = Option<String>, Header, description = "The providers that may serve the request, comma-separated (as `provider.only`; not both)"),
    ),
    request_body(content = EmbeddingsRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The embeddings", body = crate::server::openapi::EmbeddingList, headers(
            ("X-GammaInfra-Request-Id" = String, description = "The gateway's request ID (also `x-request-id`)"),
            ("X-GammaInfra-Provider" = String, description = "The provider that answered"),
            ("X-GammaInfra-Upstream-Model" = String, description = "The provider's model ID"),
            ("X-GammaInfra-Upstream-Region" = String, description = "Where the provider processed the request"),
            ("X-GammaInfra-Route" = String, description = "How the request was routed: `sort=<price|latency|throughput>; <model>@<endpoint>=<outcome>, ...`"),
            ("X-GammaInfra-Cost-USD" = String, description = "What the request was billed, USD"),
            ("x-ratelimit-limit-requests" = String, description = "OpenAI's rate-limit headers, when a rate limit applies (also `-tokens`, `x-ratelimit-remaining-*`, `x-ratelimit-reset-*`)"),
        )),
        (status = 400, description = "`invalid_request` (empty or too many inputs, a `dimensions` the model does not support, token IDs for a model that takes text only), `invalid_body`, `not_an_embedding_model`, `invalid_region`, `invalid_provider_header`, `no_endpoint_in_region`, `no_endpoint_for_preferences`, `request_exceeds_spend_limit`, `request_exceeds_rate_limit`, `upstream_rejected`", body = crate::server::openapi::Error),
        (status = 401, description = "`invalid_api_key`: no key, or an unknown or revoked one", body = crate::server::openapi::Error),
        (status = 402, description = "`insufficient_credits` (type `insufficient_quota`): the credit available cannot hold the request's worst-case cost", body = crate::server::openapi::Error),
        (status = 403, description = "`account_disabled`: the key's account is disabled; `region_not_allowed`: the region constraint is outside the key's or account's residency policy", body = crate::server::openapi::Error),
        (status = 404, description = "`model_not_found`: an unknown model", body = crate::server::openapi::Error),
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
pub async fn create(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    super::chat::serve(st, headers, body, Surface::Embeddings).await
}

/// One embeddings request, on the task [`super::chat::serve`] runs it on.
pub(super) async fn handle(
    st: &AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
    request_id: &str,
    client: ClientHandle,
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
    let mut req: EmbeddingsRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_request", format!("Invalid request body: {e}"))
    })?;
    // Provider preferences as on chat: the body's `provider`, or the header's list.
    if let Some(p) = &req.provider {
        p.validate()?;
    }
    provider_header(headers, &mut req.provider)?;
    trace.request(&req.model, None, false);
    let input = parse_input(&req.input)?;
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(invalid(
                "encoding_format",
                format!("encoding_format `{other}` must be `float` or `base64`"),
            ))
        }
    };
    let res = st.catalog.resolve(&req.model).map_err(|e| {
        let mut a = ApiError::from(e);
        a.param = Some("model".to_owned());
        a
    })?;
    let model = res.model.clone();
    let Some(spec) = model.embedding() else {
        let mut e = ApiError::bad_request(
            "not_an_embedding_model",
            format!(
                "{} is a chat model: send it to /v1/chat/completions; /v1/embeddings takes an embedding model (GET /v1/models lists them with \"kind\": \"embedding\")",
                model.id
            ),
        );
        e.param = Some("model".to_owned());
        return Err(e);
    };
    check_dimensions(spec, req.dimensions, &model.id)?;
    // Planned as chat's models are: the request's region constraint (the header, else a
    // Bedrock profile prefix) within the key's residency policy, and its provider
    // preferences; refused here, before anything is held or sent.
    let header = header_region(st, headers)?;
    let mut plan = plan_for(
        st,
        req.provider.as_ref(),
        &res,
        header.as_ref(),
        key.residency.as_deref(),
        0,
    )?;
    // Bedrock's embedding models take text only.
    if matches!(input, EmbedInput::Tokens(_)) {
        plan.retain(|e| e.provider != ProviderKind::Bedrock);
        if plan.is_empty() {
            return Err(invalid(
                "input",
                format!(
                    "{} takes text only: send `input` as strings, not token IDs",
                    model.id
                ),
            ));
        }
    }
    let bound = input_token_bound(&input, model.context_window);
    let amount = plan
        .iter()
        .map(|e| worst_case_cost(bound, e))
        .max()
        .unwrap_or(Nanos::ZERO);
    let reservation = st.ledger.admit(&key, request_id, amount, &client).await?;
    // Rate limits after the hold, as for chat: a request refused for credit counts
    // toward no rate limit (one refused here drops its hold).
    let rate = st
        .limiter
        .admit(
            &key.key_id,
            key.rates,
            &key.account_id,
            key.account_rates,
            bound,
        )
        .await?;
    let rate_headers = rate.map(|r| r.headers()).unwrap_or_default();

    let mut route = RouteTrace::new(
        req.provider
            .as_ref()
            .map_or(SortBy::Price, ProviderPrefs::sort_by),
    );
    let mut last_err = None;
    let mut answer = None;
    for (i, ep) in plan.iter().enumerate() {
        let more = i + 1 < plan.len();
        let Some(provider) = st.providers.get(&ep.provider) else {
            continue;
        };
        let call = EmbedCall {
            input: &input,
            dimensions: req.dimensions,
            user: req.user.as_deref(),
            endpoint: ep,
            model: &model,
        };
        let started = Instant::now();
        tally.calling(ep, started);
        let span = trace.attempt(ep, || provider.server_address(ep));
        match provider.embed(call).await {
            Ok(out) => {
                span.answered(&Usage {
                    input_tokens: out.input_tokens,
                    ..Usage::default()
                });
                st.router.record_success(&ep.key);
                // An embeddings answer comes whole: the call's time is the endpoint's
                // latency, what `provider.sort` = `latency` orders its endpoints by.
                st.router.record_ttft(&ep.key, started.elapsed());
                route.ok(&model.id, ep);
                answer = Some((ep, out));
                break;
            }
            Err(e) => {
                span.failed(&e, e.retryable() && more);
                note_failure(st, ep, &e, request_id, tally);
                route.failed(&model.id, ep, &e);
                if e.retryable() && more {
                    tracing::warn!(request_id, endpoint = %ep.key, error = %e, "failing over");
                    last_err = Some((ep, e));
                    continue;
                }
                last_err = Some((ep, e));
                break;
            }
        }
    }
    let Some((ep, out)) = answer else {
        // Nothing answered: the hold goes back untouched (dropping the reservation
        // releases it without a charge).
        drop(reservation);
        let mut e = match last_err {
            Some((ep, e)) => answered_failure(ep, &e, request_id, route),
            None => ApiError::internal("no endpoint could be called"),
        };
        e.headers.extend(rate_headers);
        return Err(e);
    };
    let usage = Usage {
        input_tokens: out.input_tokens,
        ..Usage::default()
    };
    let (status, note) = if reservation.client_left() {
        (
            UsageStatus::ClientDisconnected,
            Some("client disconnected before the answer; read to its end and billed from the provider's usage".to_owned()),
        )
    } else {
        (UsageStatus::Completed, None)
    };
    let ledger = reservation.ledger().clone();
    let charged = reservation.settle(Charge::for_endpoint(
        ep, &model.id, usage, out.id, status, note,
    ));
    trace.billed(&model.id, ep, &usage, charged, status.as_str());
    tally.answered(&usage, charged, None);
    let data: Vec<Value> = out
        .vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                json!(to_base64(v))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let body = json!({
        "object": "list",
        "data": data,
        "model": model.id,
        "usage": {
            "prompt_tokens": out.input_tokens,
            "total_tokens": out.input_tokens,
            "cost_usd": charged.to_string(),
        },
    });
    ledger.commit_before_answer().await;
    let mut resp = (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            resp.headers_mut().insert(name, v);
        }
    };
    set("x-gammainfra-provider", &ep.provider.to_string());
    set("x-gammainfra-upstream-model", &ep.upstream_id);
    set("x-gammainfra-upstream-region", ep.served_region());
    set("x-gammainfra-cost-usd", &charged.to_string());
    if res.renamed {
        set("x-gammainfra-resolved-model", &model.id);
    }
    for (k, v) in rate_headers {
        set(k, &v);
    }
    route.set_on(&mut resp);
    Ok(resp)
}

/// A `dimensions` the model cannot give is refused naming the sizes it can.
fn check_dimensions(spec: &EmbeddingSpec, asked: Option<u32>, model: &str) -> Result<(), ApiError> {
    match asked {
        Some(n) if !spec.allows(n) => {
            let can = match &spec.dimension_choices {
                Some(c) if c.len() == 1 => format!("only {} (its full size)", c[0]),
                Some(c) => format!(
                    "one of {}",
                    c.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
                ),
                None => format!("from 1 to {}", spec.dimensions),
            };
            Err(invalid(
                "dimensions",
                format!("{model} does not return {n} dimensions: `dimensions` must be {can}"),
            ))
        }
        _ => Ok(()),
    }
}

/// Every input token at the endpoint's dearest input price.
fn worst_case_cost(tokens: u64, e: &Arc<Endpoint>) -> Nanos {
    let mut acc = CostAccumulator::default();
    acc.add(tokens, e.pricing.worst_case().input);
    acc.total()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_of_every_shape_and_their_bound() {
        let p = |s: &str| parse_input(&serde_json::from_str(s).expect("json"));
        assert_eq!(
            p(r#""hi""#).ok(),
            Some(EmbedInput::Texts(vec!["hi".into()]))
        );
        assert_eq!(
            p("[1,2,3]").ok(),
            Some(EmbedInput::Tokens(vec![vec![1, 2, 3]]))
        );
        assert_eq!(
            p("[[1],[2,3]]").ok(),
            Some(EmbedInput::Tokens(vec![vec![1], vec![2, 3]]))
        );
        for bad in [
            "[]",
            r#""""#,
            r#"["a",""]"#,
            "[[]]",
            r#"["a",1]"#,
            "{}",
            "[-1]",
            "null",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        let many = serde_json::to_string(&vec!["x"; MAX_INPUTS + 1]).expect("json");
        assert!(p(&many).is_err());
        let input = EmbedInput::Texts(vec!["héllo".into(), "x".repeat(100)]);
        // 6 bytes + 8, and 100 bytes capped at 50 + 8.
        assert_eq!(input_token_bound(&input, 50), 6 + 8 + 50 + 8);
    }
}
