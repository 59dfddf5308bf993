//! `POST /v1/responses`: OpenAI's Responses API, stateless, served by the chat pipeline
//! (see [`crate::responses`]). Auth, errors and headers as `/v1/chat/completions`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::chat::{serve, Surface};
use super::AppState;

#[utoipa::path(
    post,
    path = "/v1/responses",
    tag = "responses",
    operation_id = "responses_create",
    summary = "Create a model response (OpenAI Responses, stateless)",
    description = "OpenAI's Responses API on the chat pipeline, on every provider: the same model resolution, region constraints, routing, fail-over and exact billing as `/v1/chat/completions` (OpenAI endpoints get the client's own request at OpenAI's `/v1/responses`, with the endpoint's model ID and `store: false`, and answer as OpenAI does with `cost_usd` added to `usage`; other endpoints get it converted, and their answer is encoded back). Input items: messages (`input_text`, `input_image` parts), `function_call`, `function_call_output`; `reasoning` items (passed to OpenAI, dropped elsewhere). Function tools, `tool_choice`, `parallel_tool_calls`, `max_output_tokens`, `temperature`, `top_p`, `reasoning.effort`, `text.format` and `metadata` (echoed). Stateless: `store: true`, `previous_response_id`, `conversation`, `background: true` and `prompt` are refused (400), and nothing is kept. Built-in tools (`web_search`, `file_search`, ...) are refused naming the tool. `stream: true` answers the Responses event sequence (`response.created`, `response.in_progress`, `response.output_item.added`, `response.content_part.added`, `response.output_text.delta`, `response.function_call_arguments.delta`, the `.done` events, then `response.completed` or `response.incomplete` with `usage` and `cost_usd`, or `response.failed`).",
    params(
        ("X-GammaInfra-Region" = Option<String>, Header, description = "A region constraint: a geography (`eu`, `us`, ...) or region list, held within the key's residency policy"),
        ("X-GammaInfra-Provider" = Option<String>, Header, description = "The providers that may serve the request, comma-separated (as `provider.only`; not both)"),
    ),
    request_body(content = crate::server::openapi::ResponsesRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The response, or its events", content(
            (crate::server::openapi::ResponseObject = "application/json"),
            (String = "text/event-stream"),
        ), headers(
            ("X-GammaInfra-Request-Id" = String, description = "The gateway's request ID (also `x-request-id`)"),
            ("X-GammaInfra-Provider" = String, description = "The provider that answered"),
            ("X-GammaInfra-Upstream-Model" = String, description = "The provider's model ID"),
            ("X-GammaInfra-Upstream-Region" = String, description = "Where the provider processed the request"),
            ("X-GammaInfra-Route" = String, description = "How the request was routed"),
            ("X-GammaInfra-Resolved-Model" = String, description = "The catalog model that answered, when it is not the one named"),
            ("X-GammaInfra-Cost-USD" = String, description = "What the request was billed, USD (not on a stream: see `usage.cost_usd`)"),
            ("X-GammaInfra-Output-Capped" = String, description = "The output cap the gateway set, in tokens, because the request set none and the credit available (or the key's spending limit) could not cover the model's whole output cap"),
        )),
        (status = 400, description = "`invalid_request` (an unknown member, a stateful or built-in feature named in the message, a malformed item), `invalid_region`, `no_endpoint_in_region`, `no_endpoint_for_preferences`, `request_exceeds_spend_limit`, `upstream_rejected`, ...", body = crate::server::openapi::Error),
        (status = 401, description = "`invalid_api_key`", body = crate::server::openapi::Error),
        (status = 402, description = "`insufficient_credits`: the credit available cannot hold the worst-case cost of `max_output_tokens` (the message names the largest cap it affords)", body = crate::server::openapi::Error),
        (status = 403, description = "`account_disabled`; `region_not_allowed`", body = crate::server::openapi::Error),
        (status = 404, description = "`model_not_found`", body = crate::server::openapi::Error),
        (status = 413, description = "`request_too_large`", body = crate::server::openapi::Error),
        (status = 429, description = "`rate_limit_exceeded`, `key_spend_limit_reached`, `too_many_concurrent_requests`, `upstream_rate_limited`", body = crate::server::openapi::Error),
        (status = 502, description = "The provider failed", body = crate::server::openapi::Error),
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
    serve(st, headers, body, Surface::Responses).await
}
