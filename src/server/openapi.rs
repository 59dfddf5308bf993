//! `GET /openapi.json`: the API reference, an OpenAPI 3.1 document generated once from
//! the handlers' `#[utoipa::path]` annotations and the request and answer types
//! (docs/api.md renders it for reading; `tests/it/openapi.rs` checks that it describes
//! every route served and nothing else, and that docs/api.md is its rendering).
//!
//! Where a handler writes its JSON with `serde_json::json!` or passes a provider's body
//! through, the types below mirror the wire shape (member names as the code emits them)
//! for the document only; nothing serialises them. Money is a decimal string of USD.
//! The console's HTML routes are described from the table [`CONSOLE`].

use std::sync::LazyLock;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, ResponseBuilder, Type};
use utoipa::{Modify, OpenApi, ToSchema};

use super::error::ApiError;

/// The error answer of the OpenAI-compatible routes and the admin API (OpenAI's shape).
#[derive(ToSchema)]
pub struct Error {
    pub error: ErrorBody,
}

/// The members of `error`.
#[derive(ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub message: String,
    /// The class: `invalid_request_error`, `insufficient_quota`, `rate_limit_error`,
    /// `permission_error` or `server_error`.
    #[schema(example = "invalid_request_error")]
    pub r#type: String,
    /// A stable code clients can match on, e.g. `insufficient_credits`,
    /// `region_not_allowed`, `rate_limit_exceeded`, `model_not_found`.
    #[schema(example = "invalid_request")]
    pub code: String,
    /// The request member or header the error is about, if any.
    #[schema(required = true)]
    pub param: Option<String>,
    /// A provider failure only: the gateway's request ID (also `X-GammaInfra-Request-Id`).
    pub request_id: Option<String>,
    /// A provider failure only: the provider that failed.
    pub provider: Option<String>,
    /// A provider failure only: its HTTP status (`null` when it never answered).
    pub provider_status: Option<u16>,
    /// A provider failure only: its error code, when it is a plain identifier.
    pub provider_code: Option<String>,
    /// `POST /admin/v1/reload`'s 422 only: every problem found.
    pub errors: Option<Vec<String>>,
}

/// The error answer of `/v1/messages` and `/v1/messages/count_tokens` (Anthropic's shape).
#[derive(ToSchema)]
pub struct AnthropicError {
    #[schema(example = "error")]
    pub r#type: String,
    pub error: AnthropicErrorBody,
    /// The gateway's request ID.
    pub request_id: String,
}

/// Anthropic's `error` object.
#[derive(ToSchema)]
pub struct AnthropicErrorBody {
    /// From the status: `invalid_request_error` (400), `authentication_error` (401),
    /// `billing_error` (402), `permission_error` (403), `not_found_error` (404),
    /// `timeout_error` (408, 504), `request_too_large` (413), `rate_limit_error` (429),
    /// `api_error` (other 5xx).
    #[schema(example = "billing_error")]
    pub r#type: String,
    pub message: String,
}

/// A `chat.completion`: the provider's members as it sent them (in OpenAI's shape),
/// with the gateway's `usage`.
#[derive(ToSchema)]
pub struct ChatCompletion {
    #[schema(example = "chatcmpl-abc123")]
    pub id: String,
    #[schema(example = "chat.completion")]
    pub object: String,
    pub created: u64,
    pub model: String,
    /// OpenAI's `choices`, as the provider's answer had them.
    #[schema(value_type = Vec<Object>)]
    pub choices: Vec<()>,
    pub usage: ChatUsage,
}

/// A Responses request (stateless): see the operation's description for what is
/// converted, accepted and refused.
#[derive(ToSchema)]
pub struct ResponsesRequest {
    /// A catalog model ID, alias or provider model ID.
    pub model: String,
    /// A string (one user message) or an array of input items: `message`
    /// (`input_text`, `input_image`, `output_text` parts), `function_call`,
    /// `function_call_output`, `reasoning` (dropped).
    #[schema(value_type = Object)]
    pub input: (),
    pub instructions: Option<String>,
    /// Function tools: `{"type":"function","name","description","parameters","strict"}`.
    #[schema(value_type = Option<Vec<Object>>)]
    pub tools: Option<()>,
    /// `auto`, `none`, `required` or `{"type":"function","name"}`.
    #[schema(value_type = Option<Object>)]
    pub tool_choice: Option<()>,
    pub parallel_tool_calls: Option<bool>,
    pub max_output_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stream: Option<bool>,
    /// `{"effort", "summary"}`: `effort` is passed on as `reasoning_effort`.
    #[schema(value_type = Option<Object>)]
    pub reasoning: Option<()>,
    /// `{"format": {"type": "text" | "json_object" | "json_schema", ...}, "verbosity"}`.
    #[schema(value_type = Option<Object>)]
    pub text: Option<()>,
    /// Echoed in the answer.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<()>,
    /// Only `false` (or absent): nothing is stored.
    pub store: Option<bool>,
    /// Accepted, nothing to include.
    pub include: Option<Vec<String>>,
    pub prompt_cache_key: Option<String>,
    pub user: Option<String>,
    /// OpenRouter-style routing preferences, as in chat completions.
    #[schema(value_type = Option<Object>)]
    pub provider: Option<()>,
    /// Fallback models, as in chat completions.
    pub models: Option<Vec<String>>,
}

/// A `response` object.
#[derive(ToSchema)]
pub struct ResponseObject {
    #[schema(example = "resp_01a2…")]
    pub id: String,
    #[schema(example = "response")]
    pub object: String,
    pub created_at: u64,
    /// `completed`, `incomplete` (`incomplete_details.reason`: `max_output_tokens` or
    /// `content_filter`), or in a stream `in_progress` and `failed`.
    pub status: String,
    pub background: bool,
    /// `{"code", "message"}` when `failed`.
    #[schema(value_type = Option<Object>)]
    pub error: Option<()>,
    #[schema(value_type = Option<Object>)]
    pub incomplete_details: Option<()>,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u64>,
    #[schema(value_type = Object)]
    pub metadata: (),
    /// The model as the request named it.
    pub model: String,
    /// `message` items (`output_text` or `refusal` content) and `function_call` items
    /// (`id`, `call_id`, `name`, `arguments`, `status`).
    #[schema(value_type = Vec<Object>)]
    pub output: Vec<()>,
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<String>,
    pub prompt_cache_key: Option<String>,
    #[schema(value_type = Object)]
    pub reasoning: (),
    pub safety_identifier: Option<String>,
    pub service_tier: Option<String>,
    /// Always `false`.
    pub store: bool,
    pub temperature: Option<f64>,
    #[schema(value_type = Object)]
    pub text: (),
    #[schema(value_type = Object)]
    pub tool_choice: (),
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<()>,
    pub top_p: Option<f64>,
    pub truncation: String,
    pub usage: Option<ResponseUsage>,
    pub user: Option<String>,
}

/// `usage` of a response.
#[derive(ToSchema)]
pub struct ResponseUsage {
    /// Every input token, cached ones included.
    pub input_tokens: u64,
    pub input_tokens_details: CachedTokens,
    pub output_tokens: u64,
    pub output_tokens_details: ReasoningTokens,
    pub total_tokens: u64,
    /// What the request was billed, USD, a decimal string.
    #[schema(example = "0.000123")]
    pub cost_usd: String,
}

#[derive(ToSchema)]
pub struct CachedTokens {
    /// Input tokens read from a prompt cache.
    pub cached_tokens: u64,
    /// Input tokens written to a prompt cache (the gateway's member; Codex CLI reads it).
    pub cache_write_tokens: u64,
}

#[derive(ToSchema)]
pub struct ReasoningTokens {
    pub reasoning_tokens: u64,
}

/// The answer of `POST /v1/embeddings`: one vector per input, in input order.
#[derive(ToSchema)]
pub struct EmbeddingList {
    #[schema(example = "list")]
    pub object: String,
    pub data: Vec<Embedding>,
    /// The catalog model that answered.
    #[schema(example = "openai/text-embedding-3-small")]
    pub model: String,
    pub usage: EmbeddingUsage,
}

#[derive(ToSchema)]
pub struct Embedding {
    #[schema(example = "embedding")]
    pub object: String,
    pub index: u64,
    /// Numbers, or (with `encoding_format: "base64"`) the base64 of the little-endian
    /// `f32`s.
    #[schema(value_type = Object)]
    pub embedding: (),
}

/// `usage` of embeddings: the input tokens the provider counted, and what they cost.
#[derive(ToSchema)]
pub struct EmbeddingUsage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
    /// What the request was billed, USD, a decimal string.
    #[schema(example = "0.00000012")]
    pub cost_usd: String,
}

/// `usage` of a chat completion (also the last event of a stream that asked for it with
/// `stream_options.include_usage`).
#[derive(ToSchema)]
pub struct ChatUsage {
    /// Every input token, cached and cache-write tokens included.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: PromptTokensDetails,
    /// What the request was billed, USD, a decimal string.
    #[schema(example = "0.000123")]
    pub cost_usd: String,
}

#[derive(ToSchema)]
pub struct PromptTokensDetails {
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
}

/// An Anthropic Messages request. Members not listed are passed to Anthropic endpoints
/// as sent (and refused where no other provider has them).
#[derive(ToSchema)]
pub struct MessagesRequest {
    #[schema(example = "claude-sonnet-4-5")]
    pub model: String,
    /// At least 1.
    pub max_tokens: u64,
    /// `user` and `assistant` turns: a string or content blocks (`text`, `image`,
    /// `tool_use`, `tool_result`, `thinking`, ...).
    #[schema(value_type = Vec<Object>)]
    pub messages: Vec<()>,
    /// A string or text blocks.
    #[schema(value_type = Option<Object>)]
    pub system: Option<()>,
    pub stream: Option<bool>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    /// Anthropic and Bedrock endpoints only.
    pub top_k: Option<u64>,
    pub stop_sequences: Option<Vec<String>>,
    /// `user_id` is passed on as the user.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<()>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub tools: Option<()>,
    /// `auto`, `any`, `tool` or `none`.
    #[schema(value_type = Option<Object>)]
    pub tool_choice: Option<()>,
    #[schema(value_type = Option<Object>)]
    pub thinking: Option<()>,
    /// The gateway's fallback models, as in a chat completion.
    pub models: Option<Vec<String>>,
    /// The gateway's provider preferences, as in a chat completion.
    #[schema(value_type = Option<gammainfra_chat::chat::request::ProviderPrefs>)]
    pub provider: Option<()>,
}

/// A `count_tokens` request: a Messages request without `max_tokens`.
#[derive(ToSchema)]
pub struct CountTokensRequest {
    pub model: String,
    #[schema(value_type = Vec<Object>)]
    pub messages: Vec<()>,
    #[schema(value_type = Option<Object>)]
    pub system: Option<()>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub tools: Option<()>,
    pub models: Option<Vec<String>>,
    #[schema(value_type = Option<gammainfra_chat::chat::request::ProviderPrefs>)]
    pub provider: Option<()>,
}

#[derive(ToSchema)]
pub struct CountTokens {
    pub input_tokens: u64,
}

/// An Anthropic message: Anthropic's own answer as it came, or another provider's
/// converted.
#[derive(ToSchema)]
pub struct AnthropicMessage {
    #[schema(example = "msg_01abc")]
    pub id: String,
    #[schema(example = "message")]
    pub r#type: String,
    #[schema(example = "assistant")]
    pub role: String,
    /// The model as the client named it.
    pub model: String,
    /// `thinking`, `redacted_thinking`, `text` and `tool_use` blocks.
    #[schema(value_type = Vec<Object>)]
    pub content: Vec<()>,
    /// `end_turn`, `max_tokens`, `tool_use`, `refusal`, ...
    pub stop_reason: String,
    pub stop_sequence: Option<String>,
    pub usage: AnthropicUsage,
}

#[derive(ToSchema)]
pub struct AnthropicUsage {
    pub input_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub output_tokens: u64,
}

#[derive(ToSchema)]
pub struct ModelList {
    #[schema(example = "list")]
    pub object: String,
    pub data: Vec<Model>,
}

/// A catalog model in OpenAI's shape, with its endpoints.
#[derive(ToSchema)]
pub struct Model {
    #[schema(example = "claude-sonnet-4-5")]
    pub id: String,
    #[schema(example = "model")]
    pub object: String,
    /// Always 0.
    pub created: u64,
    pub owned_by: String,
    pub name: String,
    /// `chat` or `embedding`.
    #[schema(example = "chat")]
    pub kind: String,
    /// For an embedding model: the most tokens one input may have.
    pub context_window: u64,
    /// 0 for an embedding model.
    pub max_output_tokens: u64,
    /// An embedding model's vector size (absent for a chat model).
    pub dimensions: Option<u32>,
    /// An embedding model's only sizes `dimensions` may ask for (absent: any size from
    /// 1 to `dimensions`, or a chat model).
    pub dimension_choices: Option<Vec<u32>>,
    pub capabilities: Vec<String>,
    pub endpoints: Vec<ModelEndpoint>,
}

/// One way to serve a model: a provider, its model ID and where it processes.
#[derive(ToSchema)]
pub struct ModelEndpoint {
    /// `bedrock`, `anthropic`, `openai`, ...
    pub provider: String,
    pub upstream_id: String,
    /// The regions it may process in (empty: unknown).
    pub regions: Vec<String>,
    pub region: String,
    /// Whether this deployment routes to it.
    pub enabled: bool,
    pub pricing: Pricing,
    pub verified: Verified,
    /// Bedrock only.
    pub source_region: Option<String>,
    /// Bedrock only: `profile` or `on_demand`.
    pub invocation: Option<String>,
}

/// USD per million tokens, decimal strings.
#[derive(ToSchema)]
pub struct Pricing {
    pub input: String,
    pub output: String,
    pub cache_read: Option<String>,
    pub cache_write_5m: Option<String>,
    pub cache_write_1h: Option<String>,
    /// Prices for requests whose input exceeds `above_input_tokens` (absent: none).
    pub tiers: Option<Vec<PriceTier>>,
}

#[derive(ToSchema)]
pub struct PriceTier {
    pub above_input_tokens: u64,
    pub input: String,
    pub output: String,
    pub cache_read: Option<String>,
    pub cache_write_5m: Option<String>,
    pub cache_write_1h: Option<String>,
}

#[derive(ToSchema)]
pub struct Verified {
    pub date: String,
    pub method: String,
}

/// The caller's balance and totals, USD.
#[derive(ToSchema)]
pub struct Credits {
    #[schema(example = "credits")]
    pub object: String,
    pub account_id: String,
    #[schema(example = "12.50")]
    pub balance_usd: String,
    /// Held for requests in flight.
    pub reserved_usd: String,
    /// Balance less reservations.
    pub available_usd: String,
    pub trial_usd: String,
    pub topups_usd: String,
    pub spent_usd: String,
    pub adjustments_usd: String,
}

/// A Stripe Checkout Session for a top-up.
#[derive(ToSchema)]
pub struct Checkout {
    #[schema(example = "checkout")]
    pub object: String,
    /// The Checkout Session's ID.
    pub id: String,
    /// Where to pay.
    pub url: String,
    pub account_id: String,
    pub credit_usd: String,
    pub fee_usd: String,
    pub total_usd: String,
    /// The fee in percent, e.g. `3.00`.
    pub fee_percent: String,
}

/// What a Stripe event did.
#[derive(ToSchema)]
pub struct WebhookAck {
    pub received: bool,
    /// The event's ID.
    pub event: String,
    /// The event had been received before.
    pub replayed: bool,
    pub outcome: String,
}

#[derive(ToSchema)]
pub struct StripeEventList {
    #[schema(example = "list")]
    pub object: String,
    pub has_more: bool,
    pub data: Vec<StripeEvent>,
}

/// A Stripe event received and what it did.
#[derive(ToSchema)]
pub struct StripeEvent {
    pub event_id: String,
    pub r#type: String,
    pub kind: String,
    pub session_id: Option<String>,
    pub payment_intent: Option<String>,
    pub account_id: Option<String>,
    /// The amount Stripe reported, in cents.
    pub reported_cents: i64,
    pub amount_usd: String,
    pub outcome: String,
    /// Stripe's `created`, unix seconds.
    pub created: i64,
    pub received_at: String,
}

/// Credit granted by an operator.
#[derive(ToSchema)]
pub struct Grant {
    pub id: String,
    #[schema(example = "grant")]
    pub object: String,
    pub account_id: String,
    pub amount_usd: String,
    pub reason: String,
    pub created_at: String,
}

/// Ready.
#[derive(ToSchema)]
pub struct Ready {
    #[schema(example = "ready")]
    pub status: String,
    pub catalog_version: String,
    pub details: ReadyDetails,
}

/// Not ready, and why.
#[derive(ToSchema)]
pub struct NotReady {
    #[schema(example = "not ready")]
    pub status: String,
    /// `ledger: ...`, `database: ...` or `catalog: ...`.
    pub reason: String,
    pub details: ReadyDetails,
}

#[derive(ToSchema)]
pub struct ReadyDetails {
    /// Where rate-limit counters are kept: `local`, `redis`, or local with Redis failing.
    pub rate_limits: String,
}

/// A page of usage records, oldest first unless `order=desc`.
#[derive(ToSchema)]
pub struct UsageList {
    #[schema(example = "list")]
    pub object: String,
    pub data: Vec<UsageRecord>,
    pub first_id: Option<String>,
    /// The next page: `after=<last_id>`.
    pub last_id: Option<String>,
    pub has_more: bool,
}

/// One billed request.
#[derive(ToSchema)]
pub struct UsageRecord {
    #[schema(example = "usage.record")]
    pub object: String,
    /// The request's ID (the cursor for `after`).
    pub id: String,
    pub request_id: String,
    pub created_at: String,
    pub key_id: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub upstream_model: Option<String>,
    pub upstream_request_id: Option<String>,
    pub region: Option<String>,
    pub status: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost_usd: String,
    pub note: Option<String>,
}

#[derive(ToSchema)]
pub struct DailyList {
    #[schema(example = "list")]
    pub object: String,
    pub data: Vec<DailyUsage>,
    /// Always false: every day of the range is in `data`.
    pub has_more: bool,
}

/// The sums of one UTC day and model.
#[derive(ToSchema)]
pub struct DailyUsage {
    #[schema(example = "usage.daily")]
    pub object: String,
    #[schema(example = "2026-11-25")]
    pub date: String,
    pub model: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost_usd: String,
}

/// Query parameters of `GET /v1/usage` (strict: an unknown, repeated or malformed one is
/// a 400 naming it).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// From this time on: RFC 3339, a date (midnight UTC) or unix seconds.
    pub start: Option<String>,
    /// Before this time (same forms).
    pub end: Option<String>,
    /// Only this model.
    pub model: Option<String>,
    /// 1 to 1000, default 100.
    pub limit: Option<u32>,
    /// The previous page's `last_id`.
    pub after: Option<String>,
    /// `asc` (default) or `desc`.
    pub order: Option<String>,
    /// `json` or `csv` (default: JSON, or CSV when `Accept` asks for `text/csv`).
    pub format: Option<String>,
}

/// Query parameters of `GET /v1/usage/daily` (strict, as for the records).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DailyQuery {
    /// From this time on: RFC 3339, a date (midnight UTC) or unix seconds.
    pub start: Option<String>,
    /// Before this time (same forms).
    pub end: Option<String>,
    /// Only this model.
    pub model: Option<String>,
    /// `json` or `csv`.
    pub format: Option<String>,
}

/// An account's rate limits (`null`: the configured default applies).
#[derive(ToSchema)]
pub struct AccountLimits {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
}

/// A key's spending limits (decimal strings in whole cents) and rate limits; `null`:
/// none of its own.
#[derive(ToSchema)]
pub struct KeyLimits {
    #[schema(example = "100.00")]
    pub total_usd: Option<String>,
    #[schema(example = "5.00")]
    pub daily_usd: Option<String>,
    pub monthly_usd: Option<String>,
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
}

/// A new account, with its first key (shown this once).
#[derive(ToSchema)]
pub struct AccountCreated {
    pub id: String,
    #[schema(example = "account")]
    pub object: String,
    pub email: String,
    pub residency: Option<String>,
    pub key_id: String,
    /// The key in plain text, `gi-...`: shown this once.
    #[schema(example = "gi-...")]
    pub api_key: String,
    pub balance_usd: String,
    pub trial_usd: String,
}

/// An account, its balance and its ledger.
#[derive(ToSchema)]
pub struct Account {
    pub id: String,
    #[schema(example = "account")]
    pub object: String,
    pub email: String,
    pub residency: Option<String>,
    pub disabled: bool,
    pub disabled_at: Option<String>,
    pub limits: AccountLimits,
    pub balance_usd: String,
    pub reserved_usd: String,
    pub trial_usd: String,
    pub topups_usd: String,
    pub spent_usd: String,
    pub adjustments_usd: String,
    /// The sum of the ledger's entries (equal to the balance).
    pub ledger_sum_usd: String,
    pub ledger_entries: u64,
}

/// A new key (shown this once).
#[derive(ToSchema)]
pub struct KeyCreated {
    pub key_id: String,
    #[schema(example = "api_key")]
    pub object: String,
    pub account_id: String,
    /// The key in plain text, `gi-...`: shown this once.
    pub api_key: String,
    pub name: Option<String>,
    pub residency: Option<String>,
    pub limits: KeyLimits,
    /// Deprecated: the same as `residency`.
    pub default_region: Option<String>,
}

/// A key, its limits and what it has spent.
#[derive(ToSchema)]
pub struct Key {
    pub key_id: String,
    #[schema(example = "api_key")]
    pub object: String,
    pub account_id: String,
    pub name: Option<String>,
    pub residency: Option<String>,
    /// Deprecated: the same as `residency`.
    pub default_region: Option<String>,
    pub created_at: String,
    pub revoked: bool,
    pub limits: KeyLimits,
    pub spend: KeySpend,
}

/// A key's spend, USD.
#[derive(ToSchema)]
pub struct KeySpend {
    pub total_usd: String,
    pub today_usd: String,
    pub this_month_usd: String,
    /// Held for its requests in flight.
    pub in_flight_usd: String,
}

#[derive(ToSchema)]
pub struct KeyRevoked {
    pub key_id: String,
    #[schema(example = "api_key")]
    pub object: String,
    pub revoked: bool,
}

/// A top-up credited by an operator.
#[derive(ToSchema)]
pub struct Topup {
    pub id: String,
    #[schema(example = "topup")]
    pub object: String,
    pub account_id: String,
    pub credited_usd: String,
    pub fee_usd: String,
    pub charged_usd: String,
    /// The balance after it.
    pub balance_usd: String,
    pub created_at: String,
}

/// What this process holds now.
#[derive(ToSchema)]
pub struct Runtime {
    #[schema(example = "runtime")]
    pub object: String,
    /// Tasks alive on the runtime.
    pub tasks: u64,
    /// Client connections open.
    pub connections: u64,
    /// Reservations not yet settled (requests in flight).
    pub open_reservations: u64,
}

/// What a reload changed.
#[derive(ToSchema)]
pub struct ReloadReport {
    #[schema(example = "reload")]
    pub object: String,
    pub catalog: CatalogChange,
    /// Reloadable settings whose values changed, now in force.
    pub applied: Vec<String>,
    /// Settings that changed but apply only after a restart.
    pub not_applied: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(ToSchema)]
pub struct CatalogChange {
    pub version_before: String,
    pub version_after: String,
    pub models_added: Vec<String>,
    pub models_removed: Vec<String>,
    pub endpoints_added: u64,
    pub endpoints_removed: u64,
}

/// The console's emails written to the outbox, newest first.
#[derive(ToSchema)]
pub struct OutboxList {
    #[schema(example = "list")]
    pub object: String,
    /// Whether mail goes over SMTP (then the outbox stays empty).
    pub smtp: bool,
    pub data: Vec<OutboxMail>,
}

#[derive(ToSchema)]
pub struct OutboxMail {
    pub id: i64,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub created_at: String,
}

/// Adds the security schemes.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "customer_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A customer API key, `Authorization: Bearer gi-...` (from the admin API or the console).",
                    ))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "x_api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-api-key",
                "The same customer key in `x-api-key`, as Anthropic's clients send it.",
            ))),
        );
        c.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The operator's token, `Authorization: Bearer $GAMMAINFRA_ADMIN_TOKEN` (without one configured the admin API answers 403 `admin_disabled`).",
                    ))
                    .build(),
            ),
        );
    }
}

/// Gives every error response of the JSON API that names no body the shared [`Error`]
/// schema: the annotations list the codes, the shape is always the same.
struct ErrorBodies;

impl Modify for ErrorBodies {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for (path, item) in doc.paths.paths.iter_mut() {
            if path.starts_with("/console") {
                continue;
            }
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                for (status, response) in op.responses.responses.iter_mut() {
                    let is_error = status.parse::<u16>().is_ok_and(|s| s >= 400);
                    if let (true, utoipa::openapi::RefOr::T(r)) = (is_error, response) {
                        if r.content.is_empty() {
                            r.content.insert(
                                "application/json".to_owned(),
                                ContentBuilder::new()
                                    .schema(Some(utoipa::openapi::Ref::from_schema_name("Error")))
                                    .build(),
                            );
                        }
                    }
                }
            }
        }
    }
}

/// What a console route answers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ConsoleKind {
    /// A page for anyone (200 `text/html`).
    Public,
    /// A page for a logged-in customer (200 `text/html`; 303 to the login page otherwise).
    Page,
    /// A form post: 303 on success, the form again with the reason otherwise.
    Form,
    /// A static asset.
    Asset(&'static str),
}

/// The console's routes as the reference describes them: method, path, summary, kind.
pub const CONSOLE: &[(&str, &str, &str, ConsoleKind)] = {
    use ConsoleKind::*;
    &[
        ("get", "/console", "Overview: balance, trial, top-ups and spend", Page),
        ("get", "/console/", "Overview (the same page)", Page),
        ("get", "/console/assets/console.css", "The console's stylesheet", Asset("text/css")),
        ("get", "/console/assets/console.js", "The console's script", Asset("text/javascript")),
        ("get", "/console/signup", "Sign-up form", Public),
        ("post", "/console/signup", "Sign up: creates the account and mails a verification link", Form),
        ("get", "/console/login", "Login form", Public),
        ("post", "/console/login", "Log in: sets the session cookie (logins limited per email)", Form),
        ("post", "/console/logout", "Log out: ends the session", Form),
        ("get", "/console/verify", "Verifies the email from the mailed link (`token` query parameter); grants the trial once", Public),
        ("post", "/console/verify/resend", "Sends the verification link again", Form),
        ("get", "/console/reset", "Password reset form", Public),
        ("post", "/console/reset", "Mails a password reset link", Form),
        ("get", "/console/reset/confirm", "New password form from the mailed link", Public),
        ("post", "/console/reset/confirm", "Sets the new password and ends every session", Form),
        ("get", "/console/usage", "Usage by day and model, and recent requests", Page),
        ("get", "/console/keys", "The account's API keys", Page),
        ("post", "/console/keys", "Creates a key (name, region policy, limits), shown once", Form),
        ("post", "/console/keys/{id}/revoke", "Revokes a key", Form),
        ("get", "/console/topup", "Top-up form", Page),
        ("post", "/console/topup", "Reviews a top-up: credit, fee and total", Form),
        ("post", "/console/topup/checkout", "Starts the Stripe Checkout: 303 to Stripe's payment page", Form),
        ("get", "/console/topup/done", "Where Stripe sends the customer back after paying", Page),
        ("get", "/console/receipts", "The account's paid top-ups", Page),
        ("get", "/console/receipts/{session_id}", "A receipt (404 page for another account's or an unknown one)", Page),
    ]
};

fn html(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "text/html",
            ContentBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        )
        .build()
}

fn redirect(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .header(
            "Location",
            utoipa::openapi::HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::String))
                .description(Some("Where to go next"))
                .build(),
        )
        .build()
}

/// Adds the console's routes from [`CONSOLE`].
struct Console;

impl Modify for Console {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for &(method, path, summary, kind) in CONSOLE {
            let mut op = OperationBuilder::new()
                .tag("console")
                .summary(Some(summary))
                .operation_id(Some(format!(
                    "console_{method}{}",
                    path.trim_start_matches("/console")
                        .replace(['/', '.', '{', '}'], "_")
                )));
            for p in ["id", "session_id"] {
                if path.contains(&format!("{{{p}}}")) {
                    op = op.parameter(
                        utoipa::openapi::path::ParameterBuilder::new()
                            .name(p)
                            .parameter_in(utoipa::openapi::path::ParameterIn::Path)
                            .required(utoipa::openapi::Required::True)
                            .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
                    );
                }
            }
            op = match kind {
                ConsoleKind::Asset(t) => op
                    .description(Some("A static file of the console."))
                    .response(
                        "200",
                        ResponseBuilder::new()
                            .description(t)
                            .content(t, ContentBuilder::new().build())
                            .build(),
                    ),
                ConsoleKind::Public => op
                    .description(Some("An HTML page; a logged-in customer may be sent on with a 303."))
                    .response("200", html("The page"))
                    .response("303", redirect("Sent elsewhere (already logged in, or done)")),
                ConsoleKind::Page => op
                    .description(Some("An HTML page of the logged-in customer (the session cookie)."))
                    .response("200", html("The page"))
                    .response("303", redirect("Not logged in: to `/console/login`"))
                    .response("404", html("Not found (an unknown or another account's item)")),
                ConsoleKind::Form => op
                    .description(Some("An HTML form post (`application/x-www-form-urlencoded`, with the CSRF token of the page it came from)."))
                    .request_body(Some(
                        utoipa::openapi::request_body::RequestBodyBuilder::new()
                            .required(Some(utoipa::openapi::Required::True))
                            .content(
                                "application/x-www-form-urlencoded",
                                ContentBuilder::new().build(),
                            )
                            .build(),
                    ))
                    .response("303", redirect("Done: to the next page"))
                    .response("200", html("A page (the next step, or the form again)"))
                    .response("400", html("The form again with the reason"))
                    .response("403", html("The CSRF token is missing or wrong, or the action is refused"))
                    .response("413", html("The form is too large"))
                    .response("429", html("Too many attempts (logins or emails per address)")),
            };
            let method = if method == "post" {
                HttpMethod::Post
            } else {
                HttpMethod::Get
            };
            doc.paths.add_path_operation(path, vec![method], op.build());
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "GammaInfra API",
        description = "An LLM API gateway: OpenAI Chat Completions and Anthropic Messages and OpenAI Responses in front of Bedrock, Anthropic and OpenAI, with verified model IDs, region-constrained routing and exact prepaid billing. Money amounts are decimal strings of USD. Errors take OpenAI's shape (`Error`), except on `/v1/messages*` (Anthropic's, `AnthropicError`) and the console (HTML)."
    ),
    modifiers(&Security, &ErrorBodies, &Console),
    tags(
        (name = "chat", description = "OpenAI Chat Completions"),
        (name = "messages", description = "Anthropic Messages"),
        (name = "responses", description = "OpenAI Responses (stateless)"),
        (name = "embeddings", description = "OpenAI Embeddings"),
        (name = "models", description = "The catalog"),
        (name = "credits", description = "Balance and card top-ups"),
        (name = "usage", description = "Usage records and daily sums"),
        (name = "payments", description = "Stripe's webhooks and return pages"),
        (name = "health", description = "Liveness, readiness, metrics and this reference"),
        (name = "admin", description = "The operator's API (`/admin/v1`), with the admin token"),
        (name = "console", description = "The customers' web console (HTML pages and form posts)"),
    ),
    paths(
        super::chat::completions,
        super::embeddings::create,
        super::messages::create,
        super::messages::count_tokens,
        super::responses::create,
        super::models::list,
        super::models::one,
        super::credits::show,
        super::payments::checkout,
        super::usage::list,
        super::usage::daily,
        super::payments::webhook,
        super::payments::done,
        super::payments::cancelled,
        super::healthz,
        super::readyz,
        super::admin::metrics,
        serve,
        super::admin::runtime,
        super::admin::reload,
        super::admin::create_account,
        super::admin::show_account,
        super::admin::update_account,
        super::admin::create_key,
        super::admin::topup,
        super::payments::grant,
        super::usage::admin_list,
        super::usage::admin_daily,
        super::admin::show_key,
        super::admin::update_key,
        super::admin::revoke_key,
        super::payments::events,
        super::admin::outbox,
    )
)]
struct ApiDoc;

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as served, rendered once.
static JSON: LazyLock<Result<Bytes, String>> = LazyLock::new(|| {
    document()
        .to_json()
        .map(Bytes::from)
        .map_err(|e| e.to_string())
});

/// The API reference.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "health",
    operation_id = "openapi",
    summary = "This API reference (OpenAPI 3.1)",
    description = "The OpenAPI 3.1 document of every route the gateway serves; docs/api.md renders it. No authentication.",
    responses(
        (status = 200, description = "The document", content_type = "application/json", body = Object),
        (status = 500, description = "The document could not be rendered", body = Error),
    ),
    security(()),
)]
pub async fn serve() -> Response {
    match &*JSON {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body.clone(),
        )
            .into_response(),
        Err(e) => ApiError::internal(format!("The API reference could not be rendered: {e}"))
            .into_response(),
    }
}
