//! The one internal chat format. It is the OpenAI Chat Completions request (the inbound
//! dialect every client speaks), typed and validated; each provider converts from it to
//! its native API and back into [`Completion`]s and [`StreamItem`]s.
//!
//! # Layout
//! * [`request`]: the typed request, its validation, and the input-size bound that
//!   sizes a credit reservation.
//! * [`estimate`]: the input tokens a request is estimated to cost, for a stream cut
//!   before the provider reported usage.
//! * [`limits`]: the caps on what one request may ask (model length, messages, tools,
//!   images, per provider where they differ).
//! * [`raw`]: [`raw::RawObject`], a JSON object split into top-level fields whose values
//!   stay unparsed, so a body that passes through is never re-serialised.
//! * this file: usage and the reply types providers return.

pub mod disclosure;
pub mod estimate;
pub mod limits;
pub mod raw;
pub mod request;
pub mod upstream;

use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use serde_json::value::RawValue;

use crate::catalog::Pricing;
use crate::money::{CostAccumulator, Nanos};

pub use request::{ChatRequest, RequestError};

/// Tokens of one request, split by how they are priced. `input_tokens` excludes cached
/// and cache-write tokens (OpenAI's `prompt_tokens` includes them; see [`Usage::prompt_tokens`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_5m_tokens: u64,
    pub cache_write_1h_tokens: u64,
}

impl Usage {
    /// All input tokens. Saturating: the counts are the provider's, and a wrapped (or, in a
    /// debug build, panicking) sum must not decide the price tier or the charge.
    pub fn prompt_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_5m_tokens)
            .saturating_add(self.cache_write_1h_tokens)
    }

    /// The exact cost of this usage at an endpoint's prices (tier chosen by total input).
    pub fn cost(&self, pricing: &Pricing) -> Nanos {
        let p = pricing.for_input_tokens(self.prompt_tokens());
        let mut acc = CostAccumulator::default();
        acc.add(self.input_tokens, p.input)
            .add(self.output_tokens, p.output)
            .add(self.cache_read_tokens, p.cache_read)
            .add(self.cache_write_5m_tokens, p.cache_write_5m)
            .add(self.cache_write_1h_tokens, p.cache_write_1h);
        acc.total()
    }

    /// The OpenAI `usage` object, with `cost_usd` as a decimal string.
    pub fn to_openai_json(&self, cost: Nanos) -> String {
        let prompt = self.prompt_tokens();
        format!(
            concat!(
                r#"{{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{},"#,
                r#""prompt_tokens_details":{{"cached_tokens":{},"cache_write_tokens":{}}},"#,
                r#""cost_usd":"{}"}}"#
            ),
            prompt,
            self.output_tokens,
            prompt.saturating_add(self.output_tokens),
            self.cache_read_tokens,
            self.cache_write_5m_tokens
                .saturating_add(self.cache_write_1h_tokens),
            cost
        )
    }
}

/// A complete (non-streamed) chat completion in OpenAI shape, minus `usage`, which the
/// server adds with the cost once it has been billed.
#[derive(Debug)]
pub struct Completion {
    /// Top-level fields of the `chat.completion` object except `usage`, values unparsed.
    pub fields: Vec<(String, Box<RawValue>)>,
    pub usage: Usage,
    /// The provider's own answer, when the client asked in the provider's own dialect
    /// (`/v1/messages` served by Anthropic): passed on as it came.
    pub native: Option<Bytes>,
}

impl Completion {
    /// The completion's `id` (the provider's response ID, e.g. `chatcmpl-...` or
    /// `msg_...`), recorded with the charge so that a customer can match a usage record
    /// with the provider's own logs. `None` if the reply carried no string `id`.
    pub fn id(&self) -> Option<String> {
        self.fields
            .iter()
            .find(|(k, _)| k == "id")
            .and_then(|(_, v)| serde_json::from_str::<String>(v.get()).ok())
    }
}

/// One item of a streamed reply, already in OpenAI's dialect.
#[derive(Debug)]
pub enum StreamItem {
    /// A `chat.completion.chunk` JSON object (without the `data: ` framing), to forward.
    /// `generated` counts the output tokens it carries, for billing a stream that is cut
    /// before the provider reports usage.
    Chunk { json: Bytes, generated: u64 },
    /// An event in the client's own dialect, when the provider speaks it (Anthropic's
    /// events for `/v1/messages`): forwarded as it came by that surface, ignored by the
    /// others. The chunks and usage derived from it follow it, for billing.
    Native(Bytes),
    /// Usage as known so far; `last` marks the provider's final figures.
    Usage {
        usage: Usage,
        id: String,
        created: u64,
        model: String,
        last: bool,
    },
}

impl StreamItem {
    /// A one-choice `chat.completion.chunk` carrying `delta`, as adapters that translate
    /// a foreign stream build them.
    pub fn chunk(
        id: &str,
        created: u64,
        model: &str,
        delta: serde_json::Value,
        finish: Option<&str>,
        generated: u64,
    ) -> StreamItem {
        let v = serde_json::json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        StreamItem::Chunk {
            json: Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
            generated,
        }
    }
}

/// Conversation turns for the providers that want strictly alternating roles (Anthropic
/// Messages, Bedrock Converse): a turn of the same role as the last one is merged into it.
#[derive(Debug, Default)]
pub struct Turns(Vec<(&'static str, Vec<serde_json::Value>)>);

impl Turns {
    pub fn push(&mut self, role: &'static str, blocks: Vec<serde_json::Value>) {
        if blocks.is_empty() {
            return;
        }
        match self.0.last_mut() {
            Some((r, b)) if *r == role => b.extend(blocks),
            _ => self.0.push((role, blocks)),
        }
    }

    /// Whether the first turn is the user's (both providers require it).
    pub fn starts_with_user(&self) -> bool {
        self.0.first().is_none_or(|(r, _)| *r == "user")
    }

    /// `[{"role", "content": [blocks]}, ...]`.
    pub fn into_json(self) -> serde_json::Value {
        serde_json::Value::Array(
            self.0
                .into_iter()
                .map(|(role, content)| serde_json::json!({"role": role, "content": content}))
                .collect(),
        )
    }
}

pub type ChunkStream =
    Pin<Box<dyn Stream<Item = Result<StreamItem, upstream::UpstreamError>> + Send>>;

/// What a provider returns for one call.
pub enum Reply {
    Complete(Completion),
    Stream(ChunkStream),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{PriceTier, Pricing};
    use crate::money::Price;

    #[test]
    fn cost_is_tokens_times_prices_with_cache_and_tiers() {
        let p = |s: &str| Price::parse(s).expect("price");
        let pricing = Pricing {
            input: p("3"),
            output: p("15"),
            cache_read: Some(p("0.30")),
            cache_write_5m: Some(p("3.75")),
            cache_write_1h: Some(p("6")),
            tiers: vec![PriceTier {
                above_input_tokens: 200_000,
                input: p("6"),
                output: p("22.50"),
                cache_read: Some(p("0.60")),
                cache_write_5m: Some(p("7.50")),
                cache_write_1h: Some(p("12")),
            }],
        };
        let u = Usage {
            input_tokens: 1000,
            output_tokens: 500,
            cache_read_tokens: 2000,
            cache_write_5m_tokens: 100,
            cache_write_1h_tokens: 10,
        };
        // 1000*3000 + 500*15000 + 2000*300 + 100*3750 + 10*6000 nano-dollars / 1000
        assert_eq!(
            u.cost(&pricing).nanos(),
            3_000_000 + 7_500_000 + 600_000 + 375_000 + 60_000
        );
        let big = Usage {
            input_tokens: 200_001,
            ..Usage::default()
        };
        assert_eq!(big.cost(&pricing).nanos(), 200_001 * 6000);
    }
}
