//! The Anthropic Messages API on the gateway (`POST /v1/messages`).
//!
//! A Messages request is served by the same pipeline as a chat completion: it is
//! converted to the internal chat format ([`request::to_chat`]), so that model
//! resolution, region constraints, residency policies, routing, fail-over, credit holds
//! and billing are the very same. What differs is at the two ends:
//!
//! * **Anthropic endpoints** get the client's own body, unchanged but for `model` (the
//!   endpoint's upstream ID) and a `max_tokens` over the catalog's cap, with the
//!   client's `anthropic-version` and `anthropic-beta` headers; its answer and its
//!   events come back as Anthropic sent them. Fields the gateway does not know are
//!   passed on untouched.
//! * **Bedrock and OpenAI endpoints** get the converted request, translated by their
//!   adapters as for a chat completion; their answer is encoded back into an Anthropic
//!   message, and a stream into Anthropic's event sequence ([`encode`]).
//!
//! Features only Anthropic's API has (server tools, documents, `top_k`, ...) restrict a
//! request to Anthropic endpoints; a request that has them and no Anthropic endpoint in
//! its plan gets a 400 naming them. Errors take Anthropic's shape.

pub mod encode;
pub mod request;

/// The client's own Messages request, for the Anthropic adapter to pass through.
#[derive(Debug, Clone)]
pub struct NativeMessages {
    /// The request's top-level members, as the client sent them.
    pub body: serde_json::Map<String, serde_json::Value>,
    /// The client's `anthropic-version` header.
    pub version: Option<String>,
    /// The client's `anthropic-beta` header.
    pub beta: Option<String>,
    /// What only Anthropic's API serves, if the request uses it (one phrase each).
    pub anthropic_only: Vec<String>,
    /// The name of the model as the client sent it (echoed in converted answers).
    pub model: String,
    /// The thinking blocks of each assistant message, in order (the converted request
    /// has one assistant message per assistant message of the client's), for providers
    /// that take them back (Bedrock's `reasoningContent`).
    pub thinking_history: Vec<Vec<serde_json::Value>>,
}

impl NativeMessages {
    /// A converted request split into its chat-format body and the client's own
    /// request, with the client's `anthropic-version` and `anthropic-beta`.
    pub fn split(
        converted: request::Converted,
        version: Option<String>,
        beta: Option<String>,
    ) -> (Vec<u8>, Self) {
        let native = NativeMessages {
            body: converted.body,
            version,
            beta,
            anthropic_only: converted.anthropic_only,
            model: converted.model,
            thinking_history: converted.thinking_history,
        };
        (converted.chat, native)
    }
}
