//! OpenAI's Responses API on the gateway (`POST /v1/responses`), stateless.
//!
//! A Responses request is served by the same pipeline as a chat completion: it is
//! converted to the internal chat format ([`request::to_chat`]), so that model
//! resolution, region constraints, residency policies, routing, fail-over, credit holds
//! and billing are the very same, on every provider. What differs is at the two ends:
//!
//! * **OpenAI endpoints** get the client's own body ([`NativeResponses`]), unchanged but
//!   for `model` (the endpoint's upstream ID), `store: false`, the standard
//!   `service_tier`, and a `max_output_tokens` over the catalog's cap; OpenAI's answer
//!   and its events come back as OpenAI sent them, with the charge added to `usage` as
//!   `cost_usd`. So `reasoning` items with `encrypted_content`, reasoning summaries and
//!   `text.format` work as on OpenAI.
//! * **Every other endpoint** gets the converted request; its answer is encoded back into
//!   a `response` object, and a stream into the Responses event sequence ([`encode`]).
//!
//! Nothing is stored: `store: true`, `previous_response_id`, `conversation` and
//! `background` are refused (400), and a `response` object says `"store": false`.
//! Built-in tools (`web_search`, `file_search`, ...) are refused naming the tool: no
//! provider the gateway routes to runs them through the chat format.

pub mod encode;
pub mod request;

/// The client's own Responses request, for the OpenAI adapter to pass through.
#[derive(Debug, Clone, Default)]
pub struct NativeResponses {
    /// The request's top-level members, as the client sent them, without the gateway's
    /// routing members (`provider`, `models`).
    pub body: serde_json::Map<String, serde_json::Value>,
}

/// What the answer echoes of the request (OpenAI's `response` object repeats the
/// request's settings).
#[derive(Debug, Clone, Default)]
pub struct Echo {
    /// The model the answer names: the upstream model ID of the endpoint that served
    /// it (as chat completions and OpenAI's own answers name it); at first `model` as the
    /// client sent it.
    pub model: String,
    /// The request's members that the `response` object repeats, as sent (or their
    /// defaults): `instructions`, `tools`, `tool_choice`, `parallel_tool_calls`,
    /// `temperature`, `top_p`, `max_output_tokens`, `metadata`, `reasoning`, `text`,
    /// `truncation`, `user`, `prompt_cache_key`.
    pub members: serde_json::Map<String, serde_json::Value>,
    /// When the request arrived, Unix seconds.
    pub created_at: u64,
}

impl Echo {
    /// This echo for an answer served by `model` (an endpoint's upstream ID): answers
    /// name the model that served them, as chat completions and OpenAI's own do.
    pub fn served_by(&self, model: &str) -> Echo {
        Echo {
            model: model.to_owned(),
            ..self.clone()
        }
    }
}
