//! The typed OpenAI Chat Completions request and its validation.

use std::collections::HashSet;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::limits::{
    MAX_FALLBACK_MODELS, MAX_IMAGE_PARTS, MAX_MESSAGES, MAX_MODEL_BYTES, MAX_PROVIDER_LIST,
    MAX_TOOLS,
};

/// A request that failed to parse or validate: a 400 `invalid_request_error`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    pub message: String,
    pub param: Option<String>,
}

impl RequestError {
    pub fn new(param: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            param: param.map(str::to_owned),
        }
    }
}

/// An OpenAI Chat Completions request, with the gateway's `models` and `provider`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChatRequest {
    /// The model to try first: `model`, or when it is absent the first of `models` (set
    /// by [`ChatRequest::parse`]).
    #[serde(skip)]
    pub model: String,
    /// The catalog model (an ID or alias) to try first; required unless `models` is given.
    #[serde(rename = "model", default)]
    #[schema(example = "claude-sonnet-4-5")]
    model_field: Option<String>,
    /// OpenRouter-style fallback models, tried in order after `model` (see
    /// `ChatRequest::model_chain`); never forwarded upstream.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// `model` was absent and is the first of `models`.
    #[serde(skip)]
    model_from_models: bool,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<u64>,
    pub max_completion_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Option<Stop>,
    pub tools: Option<Vec<Tool>>,
    pub tool_choice: Option<ToolChoice>,
    pub user: Option<String>,
    pub n: Option<u64>,
    /// OpenRouter-style routing preferences; never forwarded upstream.
    pub provider: Option<ProviderPrefs>,
    /// OpenAI's processing tier. Only the standard tier (`auto` or `default`) is
    /// accepted: the catalog prices the standard tier alone (see
    /// `ChatRequest::check_priced`).
    pub service_tier: Option<String>,
    // The fields below change what a provider charges in ways the catalog has no price
    // for; they are read only to be refused (a `null` is the same as absent).
    /// Refused: the catalog has no price for it.
    #[schema(value_type = Option<Object>)]
    pub web_search_options: Option<IgnoredAny>,
    /// Refused: the catalog has no price for it.
    #[schema(value_type = Option<Object>)]
    pub audio: Option<IgnoredAny>,
    /// `["text"]` only.
    pub modalities: Option<Vec<String>>,
    /// Refused: the catalog has no price for it.
    #[schema(value_type = Option<Object>)]
    pub prediction: Option<IgnoredAny>,
    /// The output cap the gateway set because the request set none and the credit
    /// available affords less than the model's maximum (see [`ChatRequest::output_tokens`]);
    /// sent upstream as the request's cap.
    #[serde(skip)]
    pub budget_cap: Option<u64>,
}

/// The `service_tier` values accepted: both mean OpenAI's standard tier, the one the
/// catalog prices. The OpenAI adapter sends `"default"` for either (and when the field is
/// absent), because `"auto"` may draw on a project's Scale Tier instead.
pub const STANDARD_SERVICE_TIERS: &[&str] = &["auto", "default"];

/// Top-level fields the OpenAI adapter forwards as the client sent them (once
/// [`ChatRequest::parse`] has accepted the request). Each leaves the price per token
/// unchanged, or changes only token counts that the provider reports in `usage` and that
/// the output cap bounds (`reasoning_effort`, `verbosity`). `model`, `max_tokens`,
/// `max_completion_tokens`, `stream_options` and `service_tier` are rewritten by the
/// adapter; every other field, known or not, is not forwarded, as the Anthropic and
/// Bedrock adapters (which build their bodies from the typed request) do not forward it
/// either. docs/billing.md, "Fields that change the price", lists the decisions.
pub const FORWARDED_FIELDS: &[&str] = &[
    "messages",
    "stream",
    "temperature",
    "top_p",
    "stop",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "functions",
    "function_call",
    "user",
    "safety_identifier",
    "n",
    "modalities",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "seed",
    "response_format",
    "reasoning_effort",
    "verbosity",
    "metadata",
    "store",
    "prompt_cache_key",
];

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Message {
    System {
        content: Content,
    },
    Developer {
        content: Content,
    },
    User {
        content: Content,
    },
    Assistant {
        #[serde(default)]
        content: Option<Content>,
        #[serde(default)]
        tool_calls: Option<Vec<ToolCall>>,
        /// A reference to an earlier audio reply (audio input tokens): read to be refused.
        #[serde(default)]
        #[schema(value_type = Option<Object>)]
        audio: Option<IgnoredAny>,
    },
    Tool {
        content: Content,
        tool_call_id: String,
    },
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    Text {
        text: String,
        /// Anthropic prompt-caching marker (`{"type":"ephemeral"}`), as OpenRouter and
        /// LiteLLM accept it on text parts; passed to providers that cache.
        #[serde(default)]
        cache_control: Option<serde_json::Value>,
    },
    ImageUrl {
        image_url: ImageUrl,
    },
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ImageUrl {
    pub url: String,
    pub detail: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionCall,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct FunctionCall {
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Tool {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionDef,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct FunctionDef {
    pub name: String,
    pub description: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Box<RawValue>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn sequences(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `none`, `auto` or `required`.
    Mode(String),
    Named(NamedToolChoice),
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NamedToolChoice {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: NamedFunction,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NamedFunction {
    pub name: String,
}

/// OpenRouter-style provider preferences (`provider` object of the request).
#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderPrefs {
    /// Providers to try first, in this order.
    #[serde(default)]
    pub order: Vec<String>,
    /// Only these providers may serve the request.
    #[serde(default)]
    pub only: Vec<String>,
    /// These providers must not serve the request.
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Whether to fall back to other endpoints after the first fails (default true).
    pub allow_fallbacks: Option<bool>,
    /// How to order the endpoints: `price` (default), `latency` or `throughput` (see
    /// `SortBy`); any other value is refused.
    pub sort: Option<String>,
}

impl ProviderPrefs {
    /// Checks the lists' sizes and `sort`, for every route that takes `provider`.
    pub fn validate(&self) -> Result<(), RequestError> {
        for (name, list) in [
            ("order", &self.order),
            ("only", &self.only),
            ("ignore", &self.ignore),
        ] {
            if list.len() > MAX_PROVIDER_LIST {
                return Err(RequestError::new(
                    Some(&format!("provider.{name}")),
                    format!(
                        "`provider.{name}` has {} entries; the limit is {MAX_PROVIDER_LIST}",
                        list.len()
                    ),
                ));
            }
        }
        // The value is not echoed: it may be megabytes long.
        if self
            .sort
            .as_deref()
            .is_some_and(|s| SortBy::parse(s).is_none())
        {
            return Err(RequestError::new(
                Some("provider.sort"),
                "`provider.sort` must be \"price\", \"latency\" or \"throughput\"",
            ));
        }
        Ok(())
    }

    /// The order asked for (price when absent; a value [`ChatRequest::parse`] refuses
    /// cannot reach here).
    pub fn sort_by(&self) -> SortBy {
        self.sort
            .as_deref()
            .and_then(SortBy::parse)
            .unwrap_or_default()
    }
}

/// `provider.sort`: what orders a model's eligible endpoints (after `provider.order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    /// Input + output list price, cheapest first.
    #[default]
    Price,
    /// Observed time to first token, lowest first.
    Latency,
    /// Observed output tokens per second, highest first.
    Throughput,
}

impl SortBy {
    pub const ALL: [Self; 3] = [Self::Price, Self::Latency, Self::Throughput];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Price => "price",
            Self::Latency => "latency",
            Self::Throughput => "throughput",
        }
    }
}

/// A `data:` URL's media type and base64 data (`data:image/png;base64,AAAA` →
/// `("image/png", "AAAA")`), or `None` if the URL is not a data URL.
pub fn parse_data_url(url: &str) -> Option<Result<(&str, &str), String>> {
    let rest = url.strip_prefix("data:")?;
    Some((|| {
        let (meta, data) = rest
            .split_once(',')
            .ok_or("an image data URL needs a `,` before its data")?;
        let media = meta
            .strip_suffix(";base64")
            .ok_or("an image data URL must be base64 encoded (`;base64,`)")?;
        Ok((media, data))
    })())
}

impl FunctionCall {
    /// The arguments as a JSON value (`{}` when empty); an error names the call.
    pub fn input(&self, call_id: &str) -> Result<serde_json::Value, String> {
        if self.arguments.trim().is_empty() {
            return Ok(serde_json::json!({}));
        }
        serde_json::from_str(&self.arguments)
            .map_err(|e| format!("tool call {call_id} has arguments that are not JSON: {e}"))
    }
}

impl FunctionDef {
    /// The parameters' JSON schema (an empty object schema when none was given).
    pub fn schema(&self) -> serde_json::Value {
        self.parameters
            .as_ref()
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}))
    }
}

impl Content {
    /// All text parts joined with newlines (images dropped).
    pub fn text(&self) -> String {
        match self {
            Content::Text(s) => s.clone(),
            Content::Parts(p) => p
                .iter()
                .filter_map(|p| match p {
                    Part::Text { text, .. } => Some(text.as_str()),
                    Part::ImageUrl { .. } => None,
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

impl ChatRequest {
    /// Parses and validates a request body.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        let mut req: ChatRequest = serde_json::from_slice(body).map_err(|e| {
            let message = if e.is_syntax() || e.is_eof() {
                format!("We could not parse the JSON body of your request: {e}")
            } else {
                format!("Invalid request body: {e}")
            };
            RequestError::new(None, message)
        })?;
        match (req.model_field.take(), req.models.as_deref()) {
            (Some(m), _) => req.model = m,
            (None, Some([first, ..])) => {
                req.model = first.clone();
                req.model_from_models = true;
            }
            (None, _) => {
                return Err(RequestError::new(
                    Some("model"),
                    "`model` is required (or a non-empty `models` list)",
                ))
            }
        }
        req.validate()?;
        Ok(req)
    }

    /// The models to try, in order, each with where the request named it (`None`:
    /// `model`; `Some(i)`: `models[i]`): `model` first, then each entry of `models` not
    /// equal to it or to an earlier entry. When `model` is absent, the first of `models`
    /// comes first.
    pub fn model_chain(&self) -> Vec<(Option<usize>, &str)> {
        let models = self.models.as_deref().unwrap_or_default();
        let mut chain = Vec::with_capacity(models.len() + 1);
        if !self.model_from_models {
            chain.push((None, self.model.as_str()));
        }
        for (i, m) in models.iter().enumerate() {
            if !chain.iter().any(|(_, c)| *c == m.as_str()) {
                chain.push((Some(i), m.as_str()));
            }
        }
        chain
    }

    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }

    /// The client's output cap: `max_completion_tokens`, else `max_tokens`.
    pub fn output_cap(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// The output cap sent upstream: the client's (else the one the gateway set for the
    /// credit available, [`ChatRequest::budget_cap`]), never above the model's.
    pub fn output_tokens(&self, model_max_output: u64) -> u64 {
        self.output_cap()
            .or(self.budget_cap)
            .unwrap_or(model_max_output)
            .min(model_max_output)
    }

    fn validate(&self) -> Result<(), RequestError> {
        let e = |p: &str, m: &str| Err(RequestError::new(Some(p), m));
        // `models` first: when `model` is absent, it is the first of them.
        let models = self.models.as_deref().unwrap_or_default();
        if models.len() > MAX_FALLBACK_MODELS {
            return e(
                "models",
                &format!(
                    "`models` has {} entries; the limit is {MAX_FALLBACK_MODELS} models",
                    models.len()
                ),
            );
        }
        for (i, m) in models.iter().enumerate() {
            if m.trim().is_empty() {
                return e(
                    &format!("models[{i}]"),
                    "every entry of `models` must be a non-empty string",
                );
            }
            if m.len() > MAX_MODEL_BYTES {
                return e(
                    &format!("models[{i}]"),
                    &format!(
                        "`models[{i}]` is {} bytes long; the limit is {MAX_MODEL_BYTES} bytes",
                        m.len()
                    ),
                );
            }
        }
        if self.model.trim().is_empty() {
            return e("model", "`model` must be a non-empty string");
        }
        // The caps first, before any loop over what they bound (docs/architecture.md,
        // "Limits per request").
        if self.model.len() > MAX_MODEL_BYTES {
            return e(
                "model",
                &format!(
                    "`model` is {} bytes long; the limit is {MAX_MODEL_BYTES} bytes",
                    self.model.len()
                ),
            );
        }
        if self.messages.is_empty() {
            return e("messages", "`messages` must contain at least one message");
        }
        if self.messages.len() > MAX_MESSAGES {
            return e(
                "messages",
                &format!(
                    "`messages` has {} messages; the limit is {MAX_MESSAGES} messages per request",
                    self.messages.len()
                ),
            );
        }
        let tools = self.tools.as_ref().map_or(0, Vec::len);
        if tools > MAX_TOOLS {
            return e(
                "tools",
                &format!("`tools` has {tools} tools; the limit is {MAX_TOOLS} tools per request"),
            );
        }
        let images = self.image_count();
        if images > MAX_IMAGE_PARTS {
            return e(
                "messages",
                &format!(
                    "the messages have {images} image parts; the limit is {MAX_IMAGE_PARTS} \
                     images per request"
                ),
            );
        }
        if let Some(p) = &self.provider {
            p.validate()?;
        }
        if let Some(t) = self.temperature {
            if !(0.0..=2.0).contains(&t) {
                return e("temperature", "`temperature` must be between 0 and 2");
            }
        }
        if let Some(t) = self.top_p {
            if !(0.0..=1.0).contains(&t) {
                return e("top_p", "`top_p` must be between 0 and 1");
            }
        }
        for (name, v) in [
            ("max_tokens", self.max_tokens),
            ("max_completion_tokens", self.max_completion_tokens),
        ] {
            if v == Some(0) {
                return e(name, &format!("`{name}` must be at least 1"));
            }
        }
        if self.n.is_some_and(|n| n != 1) {
            return e(
                "n",
                "`n` must be 1: GammaInfra holds credit for and bills one choice per request \
                 (Anthropic and Bedrock models generate only one); send separate requests for \
                 more choices",
            );
        }
        self.check_priced()?;
        if self.stream_options.is_some() && !self.is_stream() {
            return e(
                "stream_options",
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            );
        }
        if let Some(Stop::Many(v)) = &self.stop {
            if v.len() > 4 {
                return e("stop", "`stop` takes at most 4 sequences");
            }
        }
        for t in self.tools.iter().flatten() {
            if t.kind != "function" {
                return e("tools", "only tools of type `function` are supported");
            }
            if t.function.name.is_empty() {
                return e("tools", "every tool needs a function name");
            }
        }
        if let Some(ToolChoice::Mode(m)) = &self.tool_choice {
            if !["none", "auto", "required"].contains(&m.as_str()) {
                return e(
                    "tool_choice",
                    "`tool_choice` must be none, auto, required or a named function",
                );
            }
        }
        // A set, not a list: a 32 MiB body holds about 10^5 tool calls, and a list
        // searched once per `tool` message would make this check quadratic.
        let mut call_ids: HashSet<&str> = HashSet::new();
        for (i, m) in self.messages.iter().enumerate() {
            match m {
                Message::Assistant {
                    content,
                    tool_calls,
                    audio,
                } => {
                    if audio.is_some() {
                        return e(
                            &format!("messages[{i}].audio"),
                            "`audio` is not supported: audio is billed at audio-token prices \
                             that GammaInfra's catalog does not have; send the reply's transcript \
                             as `content` instead",
                        );
                    }
                    if content.is_none() && tool_calls.as_ref().is_none_or(|t| t.is_empty()) {
                        return e(
                            &format!("messages[{i}]"),
                            "an assistant message needs `content` or `tool_calls`",
                        );
                    }
                    for c in tool_calls.iter().flatten() {
                        if c.kind != "function" {
                            return e(
                                &format!("messages[{i}].tool_calls"),
                                "tool calls must be of type `function`",
                            );
                        }
                        call_ids.insert(&c.id);
                    }
                }
                Message::Tool { tool_call_id, .. } => {
                    if !call_ids.contains(&tool_call_id.as_str()) {
                        return e(
                            &format!("messages[{i}].tool_call_id"),
                            "a `tool` message must answer a tool call of an earlier assistant message",
                        );
                    }
                }
                Message::System { content } | Message::Developer { content } => {
                    if let Content::Parts(p) = content {
                        if p.iter().any(|p| matches!(p, Part::ImageUrl { .. })) {
                            return e(
                                &format!("messages[{i}].content"),
                                "images are only allowed in user messages",
                            );
                        }
                    }
                }
                Message::User { content } => {
                    if let Content::Parts(parts) = content {
                        for p in parts {
                            if let Part::ImageUrl { image_url } = p {
                                let u = &image_url.url;
                                if !(u.starts_with("data:image/")
                                    || u.starts_with("https://")
                                    || u.starts_with("http://"))
                                {
                                    return e(
                                        &format!("messages[{i}].content"),
                                        "image_url.url must be a data:image/... URL or an http(s) URL",
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl ChatRequest {
    /// Refuses every field that would make a provider charge something the catalog has no
    /// price for (docs/billing.md, "Fields that change the price"). Called by
    /// [`ChatRequest::parse`], so a refusal happens before any credit is held or any
    /// provider is called.
    fn check_priced(&self) -> Result<(), RequestError> {
        let refuse = |param: &str, why: String| Err(RequestError::new(Some(param), why));
        if let Some(t) = &self.service_tier {
            if !STANDARD_SERVICE_TIERS.contains(&t.as_str()) {
                return refuse(
                    "service_tier",
                    format!(
                        "service_tier {t:?} is not supported: GammaInfra bills every request at \
                         the provider's standard-tier price and has no price for other tiers; \
                         omit the field or send \"default\""
                    ),
                );
            }
        }
        if self.web_search_options.is_some() {
            return refuse(
                "web_search_options",
                "web_search_options is not supported: web search is billed per call and per \
                 search result, and GammaInfra's catalog has no price for it; omit the field"
                    .into(),
            );
        }
        if self.audio.is_some() {
            return refuse(
                "audio",
                "audio is not supported: audio output is billed at audio-token prices that \
                 GammaInfra's catalog does not have; omit the field"
                    .into(),
            );
        }
        if let Some(m) = &self.modalities {
            if m.iter().any(|m| m != "text") {
                return refuse(
                    "modalities",
                    format!(
                        "modalities {m:?} is not supported: only text output is priced in \
                         GammaInfra's catalog (audio tokens are billed at other prices); omit \
                         the field or send [\"text\"]"
                    ),
                );
            }
        }
        if self.prediction.is_some() {
            return refuse(
                "prediction",
                "prediction is not supported: predicted tokens the model does not use are \
                 still billed as output, and GammaInfra cannot rely on the output cap to bound \
                 them, so it cannot hold enough credit for the request in advance; omit the \
                 field"
                    .into(),
            );
        }
        Ok(())
    }
}

/// An upper bound on a request's input tokens, from its size: no tokenizer produces more
/// tokens than the bytes of text it reads, and no provider we serve counts one image as
/// more than [`MAX_IMAGE_TOKENS`]. Used to size a reservation, and to cap the estimate
/// of a cut stream ([`crate::chat::estimate`]) so that it never exceeds what was held.
pub fn input_token_bound(body_len: usize, images: usize) -> u64 {
    (body_len as u64).saturating_add((images as u64).saturating_mul(MAX_IMAGE_TOKENS))
}

/// The most input tokens one image can cost at any model the gateway serves: GPT-4o mini
/// at high detail, 2,833 + 8 tiles × 5,667 = 48,169 (an image is scaled to fit 2,048 ×
/// 2,048 and then to a shortest side of 768 px, so it spans at most 2 × 4 tiles of 512
/// px); Claude Opus 4.7 about 4,800, Nova about 2,600, other Claude models about 1,600.
pub const MAX_IMAGE_TOKENS: u64 = 50_000;

impl ChatRequest {
    pub fn image_count(&self) -> usize {
        self.messages
            .iter()
            .map(|m| match m {
                Message::User {
                    content: Content::Parts(p),
                } => p
                    .iter()
                    .filter(|p| matches!(p, Part::ImageUrl { .. }))
                    .count(),
                _ => 0,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> RequestError {
        ChatRequest::parse(body.as_bytes()).expect_err(body)
    }

    #[test]
    fn accepts_the_full_shape() {
        let r = ChatRequest::parse(
            br#"{"model":"m","messages":[
              {"role":"system","content":"be brief"},
              {"role":"user","content":[{"type":"text","text":"what is this"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]},
              {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
              {"role":"tool","tool_call_id":"c1","content":"42"}],
              "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
              "tool_choice":"auto","stop":["x"],"temperature":0.5,"top_p":1,"max_completion_tokens":10,
              "stream":true,"stream_options":{"include_usage":true},"user":"u"}"#,
        )
        .expect("valid");
        assert_eq!(r.image_count(), 1);
        assert!(r.include_usage());
        assert_eq!(r.output_cap(), Some(10));
    }

    fn with(extra: &str) -> String {
        format!(r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],{extra}}}"#)
    }

    #[test]
    fn refuses_what_the_catalog_cannot_price_naming_the_field_and_why() {
        for (extra, param, says) in [
            (
                r#""service_tier":"priority""#,
                "service_tier",
                r#"service_tier "priority""#,
            ),
            (
                r#""service_tier":"flex""#,
                "service_tier",
                r#"service_tier "flex""#,
            ),
            (
                r#""service_tier":"scale""#,
                "service_tier",
                r#"service_tier "scale""#,
            ),
            (
                r#""service_tier":"turbo""#,
                "service_tier",
                "standard-tier price",
            ),
            (
                r#""web_search_options":{}"#,
                "web_search_options",
                "billed per call",
            ),
            (
                r#""web_search_options":{"search_context_size":"low"}"#,
                "web_search_options",
                "web_search_options",
            ),
            (
                r#""audio":{"voice":"alloy","format":"wav"}"#,
                "audio",
                "audio-token prices",
            ),
            (
                r#""modalities":["text","audio"]"#,
                "modalities",
                "only text output",
            ),
            (r#""modalities":["audio"]"#, "modalities", "modalities"),
            (
                r#""prediction":{"type":"content","content":"x"}"#,
                "prediction",
                "billed as output",
            ),
            (r#""n":2"#, "n", "one choice per request"),
            (r#""n":0"#, "n", "`n` must be 1"),
        ] {
            let e = err(&with(extra));
            assert_eq!(e.param.as_deref(), Some(param), "{extra}");
            assert!(e.message.contains(says), "{extra}: {}", e.message);
            assert!(
                e.message.contains("omit") || param == "n",
                "{extra}: {}",
                e.message
            );
        }
        let e = err(r#"{"model":"m","messages":[{"role":"user","content":"x"},
               {"role":"assistant","content":"hi","audio":{"id":"audio_1"}}]}"#);
        assert_eq!(e.param.as_deref(), Some("messages[1].audio"));
        // Wrong types are refused as such, not passed through.
        assert!(err(&with(r#""service_tier":5"#))
            .message
            .contains("invalid type"));
        assert!(err(&with(r#""modalities":"text""#))
            .message
            .contains("invalid type"));
    }

    #[test]
    fn accepts_the_standard_tier_text_output_and_nulls() {
        for extra in [
            r#""service_tier":"auto""#,
            r#""service_tier":"default""#,
            r#""service_tier":null"#,
            r#""modalities":["text"]"#,
            r#""audio":null,"web_search_options":null,"prediction":null"#,
            r#""n":1"#,
            r#""reasoning_effort":"high","verbosity":"low","store":true,"seed":1"#,
        ] {
            ChatRequest::parse(with(extra).as_bytes()).unwrap_or_else(|e| panic!("{extra}: {e}"));
        }
    }

    #[test]
    fn every_accepted_tier_is_openais_standard_one() {
        assert_eq!(STANDARD_SERVICE_TIERS, ["auto", "default"]);
        for f in [
            "audio",
            "web_search_options",
            "prediction",
            "service_tier",
            "provider",
            "models",
        ] {
            assert!(!FORWARDED_FIELDS.contains(&f), "{f}");
        }
    }

    #[test]
    fn rejects_bad_values_with_the_param() {
        assert!(err("{").message.contains("could not parse"));
        assert!(err(r#"{"model":"m","messages":"hi"}"#)
            .message
            .contains("invalid type"));
        assert_eq!(
            err(r#"{"model":"m","messages":[]}"#).param.as_deref(),
            Some("messages")
        );
        assert_eq!(
            err(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3}"#)
                .param
                .as_deref(),
            Some("temperature")
        );
        assert_eq!(
            err(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}"#)
                .param
                .as_deref(),
            Some("stream_options")
        );
        assert!(err(
            r#"{"model":"m","messages":[{"role":"tool","tool_call_id":"nope","content":"x"}]}"#
        )
        .param
        .is_some());
        assert!(err(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":"ten"}"#
        )
        .message
        .contains("invalid type"));
    }

    fn chain(body: &str) -> Vec<(Option<usize>, String)> {
        ChatRequest::parse(body.as_bytes())
            .expect(body)
            .model_chain()
            .into_iter()
            .map(|(at, m)| (at, m.to_owned()))
            .collect()
    }

    #[test]
    fn models_follow_model_without_repeats_and_stand_in_for_it_when_absent() {
        let msgs = r#""messages":[{"role":"user","content":"x"}]"#;
        assert_eq!(
            chain(&format!(
                r#"{{"model":"a","models":["b","a","c","b"],{msgs}}}"#
            )),
            [
                (None, "a".into()),
                (Some(0), "b".into()),
                (Some(2), "c".into())
            ]
        );
        let r = ChatRequest::parse(format!(r#"{{"models":["b","c"],{msgs}}}"#).as_bytes())
            .expect("models only");
        assert_eq!(r.model, "b");
        assert_eq!(
            r.model_chain(),
            [(Some(0), "b"), (Some(1), "c")],
            "the first of `models` is primary"
        );
        assert_eq!(chain(&with(r#""models":[]"#)), [(None, "m".into())]);
        // Refusals name the field.
        let e = err(&format!(r#"{{{msgs}}}"#));
        assert_eq!(e.param.as_deref(), Some("model"));
        let e = err(&format!(r#"{{"models":[],{msgs}}}"#));
        assert_eq!(e.param.as_deref(), Some("model"));
        let e = err(&with(r#""models":["a",""]"#));
        assert_eq!(e.param.as_deref(), Some("models[1]"));
        let nine = [r#""a""#; MAX_FALLBACK_MODELS + 1].join(",");
        let e = err(&with(&format!(r#""models":[{nine}]"#)));
        assert_eq!(e.param.as_deref(), Some("models"));
        assert!(e.message.contains("the limit is 8 models"), "{}", e.message);
        let e = err(&format!(
            r#"{{"models":["{}"],{msgs}}}"#,
            "m".repeat(MAX_MODEL_BYTES + 1)
        ));
        assert_eq!(e.param.as_deref(), Some("models[0]"));
        let eight = [r#""a""#; MAX_FALLBACK_MODELS].join(",");
        ChatRequest::parse(with(&format!(r#""models":[{eight}]"#)).as_bytes()).expect("at the cap");
    }

    #[test]
    fn provider_sort_takes_three_values() {
        for (sort, want) in [
            ("price", SortBy::Price),
            ("latency", SortBy::Latency),
            ("throughput", SortBy::Throughput),
        ] {
            let r =
                ChatRequest::parse(with(&format!(r#""provider":{{"sort":"{sort}"}}"#)).as_bytes())
                    .expect(sort);
            assert_eq!(r.provider.expect("prefs").sort_by(), want);
        }
        let r = ChatRequest::parse(with(r#""provider":{"sort":null}"#).as_bytes()).expect("null");
        assert_eq!(r.provider.expect("prefs").sort_by(), SortBy::Price);
        for bad in ["Latency", "speed", ""] {
            let e = err(&with(&format!(r#""provider":{{"sort":"{bad}"}}"#)));
            assert_eq!(e.param.as_deref(), Some("provider.sort"), "{bad}");
            assert!(
                e.message.contains(r#""price", "latency" or "throughput""#),
                "{}",
                e.message
            );
        }
    }

    fn tool_calls_body(n: usize) -> String {
        let calls: Vec<String> = (0..n)
            .map(|i| format!(r#"{{"id":"call_{i:08}","type":"function","function":{{"name":"f","arguments":"{{}}"}}}}"#))
            .collect();
        let results: Vec<String> = (0..n)
            .map(|i| format!(r#"{{"role":"tool","tool_call_id":"call_{i:08}","content":"x"}}"#))
            .collect();
        format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"go"}},{{"role":"assistant","content":null,"tool_calls":[{}]}},{}]}}"#,
            calls.join(","),
            results.join(",")
        )
    }

    #[test]
    fn tool_call_ids_are_checked_in_linear_time() {
        // 49,999 calls and results: 10^5 messages minus the first two. A list searched
        // per result took about 1.25 × 10^9 comparisons here.
        let body = tool_calls_body(MAX_MESSAGES / 2 - 1);
        let t = std::time::Instant::now();
        ChatRequest::parse(body.as_bytes()).expect("valid");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn the_caps_are_refused_naming_the_field_and_the_limit() {
        let e = err(&format!(
            r#"{{"model":"{}","messages":[{{"role":"user","content":"x"}}]}}"#,
            "m".repeat(257)
        ));
        assert_eq!(e.param.as_deref(), Some("model"));
        assert!(
            e.message.contains("257 bytes") && e.message.contains("256"),
            "{}",
            e.message
        );
        assert!(e.message.len() < 200);
        let msgs = vec![r#"{"role":"user","content":"x"}"#; MAX_MESSAGES + 1].join(",");
        let e = err(&format!(r#"{{"model":"m","messages":[{msgs}]}}"#));
        assert_eq!(e.param.as_deref(), Some("messages"));
        assert!(e.message.contains("100000 messages"), "{}", e.message);
        let tools = vec![r#"{"type":"function","function":{"name":"f"}}"#; MAX_TOOLS + 1].join(",");
        let e = err(&with(&format!(r#""tools":[{tools}]"#)));
        assert_eq!(e.param.as_deref(), Some("tools"));
        assert!(e.message.contains("128 tools"), "{}", e.message);
        let img = r#"{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}"#;
        let imgs = vec![img; MAX_IMAGE_PARTS + 1].join(",");
        let e = err(&format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":[{imgs}]}}]}}"#
        ));
        assert_eq!(e.param.as_deref(), Some("messages"));
        assert!(e.message.contains("500 images"), "{}", e.message);
        let only = vec![r#""bedrock""#; MAX_PROVIDER_LIST + 1].join(",");
        let e = err(&with(&format!(r#""provider":{{"only":[{only}]}}"#)));
        assert_eq!(e.param.as_deref(), Some("provider.only"));
        // At the caps, accepted.
        let imgs = vec![img; MAX_IMAGE_PARTS].join(",");
        ChatRequest::parse(
            format!(r#"{{"model":"m","messages":[{{"role":"user","content":[{imgs}]}}]}}"#)
                .as_bytes(),
        )
        .expect("at the image cap");
        let tools = vec![r#"{"type":"function","function":{"name":"f"}}"#; MAX_TOOLS].join(",");
        ChatRequest::parse(with(&format!(r#""tools":[{tools}]"#)).as_bytes())
            .expect("at the tool cap");
    }

    /// Measures parsing of 32 MiB bodies (run with `--ignored --nocapture`); the figures
    /// are in docs/architecture.md, "Limits per request".
    #[test]
    #[ignore]
    fn measure_parsing_large_bodies() {
        let text = "a".repeat(32 << 20);
        let bodies = [
            (
                "one 32 MiB message",
                format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{text}"}}]}}"#),
            ),
            (
                "a 30 MB model",
                format!(
                    r#"{{"model":"{}","messages":[{{"role":"user","content":"x"}}]}}"#,
                    &text[..30_000_000]
                ),
            ),
            (
                "100,000 messages of 300 bytes",
                format!(
                    r#"{{"model":"m","messages":[{}]}}"#,
                    vec![format!(r#"{{"role":"user","content":"{}"}}"#, &text[..300]); 100_000]
                        .join(",")
                ),
            ),
            ("49,999 tool calls and results", tool_calls_body(49_999)),
        ];
        for (name, body) in bodies {
            let t = std::time::Instant::now();
            let r = ChatRequest::parse(body.as_bytes());
            let parse = t.elapsed();
            let t = std::time::Instant::now();
            let raw = crate::chat::raw::RawObject::parse(body.as_bytes()).map(|r| r.0.len());
            eprintln!(
                "{name} ({} bytes): parse {parse:?} ({}), raw object {:?}",
                body.len(),
                r.is_ok(),
                t.elapsed()
            );
            assert!(raw.is_ok());
        }
    }
}
