//! OpenAI Chat Completions, and any OpenAI-compatible server by base URL.
//!
//! The request body passes through, field by field and byte for byte, but only the
//! fields in [`FORWARDED_FIELDS`] (those whose effect on the price is billed from the
//! reported usage); everything else, the gateway's own `provider` field included, is
//! dropped. `model` is rewritten to the endpoint's upstream ID, the output cap is lowered
//! to the catalog's, streams always ask for `stream_options.include_usage` so that every
//! stream can be billed (the usage chunk is withheld from clients that did not ask for
//! it), and OpenAI itself is always asked for `service_tier: "default"`, the tier the
//! catalog prices. Response bodies are not re-serialised: the top-level fields are
//! copied as they came, `usage` gets the cost.

mod embeddings;

use std::borrow::Cow;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::Request;
use serde::Deserialize;

use super::http::{BaseUrl, HttpClient};
use super::{Call, Provider, UpstreamError, UpstreamErrorKind};
use crate::catalog::ProviderKind;
use crate::chat::limits::off_workers;
use crate::chat::raw::RawObject;
use crate::chat::request::FORWARDED_FIELDS;
use crate::chat::{Completion, Reply, StreamItem, Usage};
use crate::secret::Secret;

pub struct OpenAi {
    /// `openai` or `openai_compatible:<name>`: names this provider in errors.
    name: String,
    url: String,
    /// `{base}/responses`, for the Responses API passed through (OpenAI only).
    responses_url: String,
    host: String,
    auth: Option<String>,
    client: HttpClient,
}

mod responses;

impl OpenAi {
    /// `base_url` ends in `/v1` like `OPENAI_BASE_URL`; requests go to `{base}/chat/completions`.
    pub fn new(
        name: &str,
        base_url: &str,
        api_key: Option<&Secret>,
        client: HttpClient,
    ) -> Result<Self, String> {
        let base = BaseUrl::parse(base_url)?;
        Ok(Self {
            name: name.to_owned(),
            url: base.url("/chat/completions"),
            responses_url: base.url("/responses"),
            host: base.host_header,
            auth: api_key.map(|k| format!("Bearer {}", k.expose())),
            client,
        })
    }

    fn body(call: &Call<'_>) -> Vec<u8> {
        const INCLUDE_USAGE: &str = r#"{"include_usage":true}"#;
        const STANDARD_TIER: &str = r#""default""#;
        let mut out = Vec::with_capacity(256);
        let stream = call.req.is_stream();
        let model = serde_json::to_string(&call.endpoint.upstream_id).unwrap_or_default();
        // OpenAI is asked for its standard tier whatever the client sent (validation let
        // only "auto" and "default" through, and "auto" may draw on a project's Scale
        // Tier). OpenAI-compatible servers name their tiers differently, so they get no
        // `service_tier` at all: their default is the price the catalog lists.
        let openai = call.endpoint.provider == ProviderKind::OpenAi;
        let mut extra: Vec<(&str, &str)> = Vec::new();
        if stream && call.raw.get("stream_options").is_none() {
            extra.push(("stream_options", INCLUDE_USAGE));
        }
        if openai && call.raw.get("service_tier").is_none() {
            extra.push(("service_tier", STANDARD_TIER));
        }
        // The output cap never exceeds the catalog's, which is what the credit
        // reservation assumed.
        let cap = call.model.max_output_tokens;
        let capped = |v: Option<u64>| v.filter(|&n| n > cap).map(|_| Some(cap.to_string()));
        // A request without a cap that the credit available could not cover in full gets
        // the gateway's cap: OpenAI's current field, or the older one that
        // OpenAI-compatible servers read.
        let budget = match call.req.output_cap() {
            None => call
                .req
                .budget_cap
                .map(|_| call.req.output_tokens(cap).to_string()),
            Some(_) => None,
        };
        if let Some(b) = &budget {
            let field = if openai {
                "max_completion_tokens"
            } else {
                "max_tokens"
            };
            extra.push((field, b.as_str()));
        }
        call.raw.write_with(
            &mut out,
            |k| match k {
                "model" => Some(Some(model.clone())),
                // Both are absent or null when the gateway sets its cap.
                "max_tokens" | "max_completion_tokens" if budget.is_some() => Some(None),
                "max_tokens" => capped(call.req.max_tokens),
                "max_completion_tokens" => capped(call.req.max_completion_tokens),
                "stream_options" if stream => Some(Some(INCLUDE_USAGE.to_owned())),
                "service_tier" if openai => Some(Some(STANDARD_TIER.to_owned())),
                k if FORWARDED_FIELDS.contains(&k) => None,
                // `provider`, fields validation refused unless null, and anything unknown.
                _ => Some(None),
            },
            &extra,
        );
        out
    }
}

#[derive(Deserialize)]
struct UsageWire {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl UsageWire {
    fn usage(&self) -> Usage {
        let cached = self
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
            .min(self.prompt_tokens);
        Usage {
            input_tokens: self.prompt_tokens - cached,
            output_tokens: self.completion_tokens,
            cache_read_tokens: cached,
            ..Usage::default()
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorWire,
}

#[derive(Deserialize)]
struct ErrorWire {
    #[serde(default)]
    message: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<serde_json::Value>,
}

impl ErrorWire {
    fn code(&self) -> Option<String> {
        match &self.code {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => self.kind.clone(),
        }
    }
}

/// Just enough of a `chat.completion.chunk` to bill it.
#[derive(Deserialize)]
struct ChunkLite<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    created: Option<u64>,
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<UsageWire>,
    #[serde(borrow, default)]
    choices: Option<Vec<ChoiceLite<'a>>>,
    #[serde(default)]
    error: Option<ErrorWire>,
}

#[derive(Deserialize)]
struct ChoiceLite<'a> {
    #[serde(borrow, default)]
    delta: Option<DeltaLite<'a>>,
}

#[derive(Deserialize)]
struct DeltaLite<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<serde::de::IgnoredAny>,
}

impl ChunkLite<'_> {
    /// Whether the chunk carries generated output (text or tool-call arguments).
    fn generates(&self) -> bool {
        self.choices.iter().flatten().any(|c| {
            c.delta.as_ref().is_some_and(|d| {
                d.tool_calls.is_some() || d.content.as_deref().is_some_and(|t| !t.is_empty())
            })
        })
    }
}

impl Provider for OpenAi {
    fn server_address(&self, _ep: &crate::catalog::Endpoint) -> Option<String> {
        Some(crate::providers::http::host_of(&self.host))
    }

    fn embed<'a>(
        &'a self,
        call: super::embeddings::EmbedCall<'a>,
    ) -> BoxFuture<'a, Result<super::embeddings::Embeddings, UpstreamError>> {
        Box::pin(self.embeddings(call))
    }

    fn call<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Reply, UpstreamError>> {
        Box::pin(async move {
            // A Messages request's `top_k` has no equivalent in Chat Completions.
            if call
                .native
                .is_some_and(|n| n.body.get("top_k").is_some_and(|k| !k.is_null()))
            {
                return Err(UpstreamError::invalid_input(
                    &self.name,
                    "`top_k` has no equivalent in OpenAI's Chat Completions; remove it to use this model.",
                ));
            }
            // A Responses request goes to OpenAI's own `/v1/responses` as the client
            // sent it; OpenAI-compatible servers get it converted, as chat completions.
            let native = call
                .responses
                .filter(|_| call.endpoint.provider == ProviderKind::OpenAi);
            let url = if native.is_some() {
                &self.responses_url
            } else {
                &self.url
            };
            let mut req = Request::post(url)
                .header(HOST, &self.host)
                .header(CONTENT_TYPE, "application/json");
            if let Some(a) = &self.auth {
                req = req.header(AUTHORIZATION, a);
            }
            let body = off_workers(call.body_len, || match native {
                Some(n) => responses::body(&call, n),
                None => Self::body(&call),
            })
            .await;
            let req = req.body(Full::new(Bytes::from(body))).map_err(|e| {
                UpstreamError::new(UpstreamErrorKind::Protocol, &self.name, e.to_string())
            })?;
            let resp = self.client.send(req, &self.name).await?;
            let status = resp.status();
            if !status.is_success() {
                let body = self.client.read_body(resp.into_body(), &self.name).await?;
                return Err(self.error_from(status.as_u16(), &body));
            }
            if native.is_some() {
                if call.req.is_stream() {
                    let events = self.client.sse(resp.into_body(), &self.name);
                    return Ok(Reply::Stream(responses::stream(self.name.clone(), events)));
                }
                let body = self.client.read_body(resp.into_body(), &self.name).await?;
                return responses::complete(&self.name, body);
            }
            if call.req.is_stream() {
                let name = self.name.clone();
                let events = self.client.sse(resp.into_body(), &self.name);
                let stream = events
                    .take_while(|ev| {
                        let done = matches!(ev, Ok(e) if e.data.trim() == "[DONE]");
                        std::future::ready(!done)
                    })
                    .flat_map(move |ev| {
                        futures_util::stream::iter(chunk_items(&name, ev).into_iter().flatten())
                    });
                return Ok(Reply::Stream(Box::pin(stream)));
            }
            let body = self.client.read_body(resp.into_body(), &self.name).await?;
            self.completion(&body)
        })
    }
}

impl OpenAi {
    /// An error response, classified. The message of an `invalid_request_error` that
    /// refuses the client's input (a 4xx other than auth, rate limits and unknown
    /// models) may reach the client, redacted; every other message is for the log only.
    fn error_from(&self, status: u16, body: &[u8]) -> UpstreamError {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(e) => {
                let validation = e.error.kind.as_deref() == Some("invalid_request_error");
                let e =
                    UpstreamError::from_status(&self.name, status, e.error.code(), e.error.message);
                if validation {
                    e.disclosing_validation()
                } else {
                    e
                }
            }
            Err(_) => UpstreamError::from_status(
                &self.name,
                status,
                None,
                String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned(),
            ),
        }
    }

    fn completion(&self, body: &[u8]) -> Result<Reply, UpstreamError> {
        let bad = |m: String| UpstreamError::new(UpstreamErrorKind::Protocol, &self.name, m);
        let obj = RawObject::parse(body)
            .map_err(|e| bad(format!("response is not a JSON object: {e}")))?;
        let usage = match obj.get("usage") {
            Some(u) => serde_json::from_str::<UsageWire>(u.get())
                .map_err(|e| bad(format!("response usage is malformed: {e}")))?
                .usage(),
            None => return Err(bad("response carries no usage; it cannot be billed".into())),
        };
        let fields = obj
            .0
            .iter()
            .filter(|(k, _)| k != "usage")
            .map(|(k, v)| (k.to_string(), (*v).to_owned()))
            .collect();
        Ok(Reply::Complete(Completion {
            fields,
            usage,
            native: None,
        }))
    }
}

/// The items of one SSE event: a chunk to forward and/or the usage it reports (some
/// OpenAI-compatible servers put usage on the last content chunk instead of a separate
/// one with empty `choices`).
fn chunk_items(
    provider: &str,
    ev: Result<super::http::Event, UpstreamError>,
) -> [Option<Result<StreamItem, UpstreamError>>; 2] {
    let ev = match ev {
        Ok(ev) => ev,
        Err(e) => return [Some(Err(e)), None],
    };
    if ev.data.is_empty() {
        return [None, None];
    }
    let lite: ChunkLite<'_> = match serde_json::from_str(&ev.data) {
        Ok(l) => l,
        Err(e) => {
            return [
                Some(Err(UpstreamError::new(
                    UpstreamErrorKind::Protocol,
                    provider,
                    format!("stream chunk is not JSON: {e}"),
                ))),
                None,
            ]
        }
    };
    if let Some(err) = lite.error {
        let mut e = UpstreamError::new(
            UpstreamErrorKind::Interrupted,
            provider,
            err.message.clone(),
        );
        e.code = err.code();
        return [Some(Err(e)), None];
    }
    let usage = lite.usage.as_ref().map(|u| {
        Ok(StreamItem::Usage {
            usage: u.usage(),
            id: lite.id.as_deref().unwrap_or_default().to_owned(),
            created: lite.created.unwrap_or_default(),
            model: lite.model.as_deref().unwrap_or_default().to_owned(),
            last: true,
        })
    });
    if lite.choices.as_ref().is_none_or(Vec::is_empty) {
        // The usage chunk: the gateway sends its own, with the cost, at the end.
        return [usage, None];
    }
    let generated = u64::from(lite.generates());
    [
        Some(Ok(StreamItem::Chunk {
            json: Bytes::from(ev.data),
            generated,
        })),
        usage,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(data: &str) -> Vec<StreamItem> {
        let ev = crate::providers::http::Event {
            data: data.to_owned(),
            ..Default::default()
        };
        chunk_items("t", Ok(ev))
            .into_iter()
            .flatten()
            .map(|r| r.expect("item"))
            .collect()
    }

    /// The body sent upstream for `body` through the first endpoint of `provider` (the
    /// built-in catalog's OpenAI models, or a test OpenAI-compatible one).
    fn sent(body: &str, provider: ProviderKind) -> serde_json::Value {
        let extra = r#"
[[models]]
id = "test/gpt-4o"
name = "GPT-4o elsewhere"
owned_by = "test"
context_window = 128000
max_output_tokens = 16384

[[models.endpoints]]
provider = "openai_compatible:x"
upstream_id = "gpt-4o-elsewhere"
verified = { date = "2026-11-25", method = "test" }
pricing = { input = "2.50", output = "10", source = { kind = "provider", url = "https://example.com/test-prices", read = "2026-11-25" } }
"#;
        let text = format!("{}\n{extra}", crate::catalog::DEFAULT_CATALOG);
        let catalog = crate::catalog::Catalog::from_toml(&text).expect("catalog");
        let model = catalog
            .models
            .iter()
            .find(|m| m.endpoints.iter().any(|e| e.provider == provider))
            .expect("model");
        let endpoint = model
            .endpoints
            .iter()
            .find(|e| e.provider == provider)
            .expect("endpoint");
        let req = crate::chat::ChatRequest::parse(body.as_bytes()).expect("valid");
        let raw = RawObject::parse(body.as_bytes()).expect("object");
        let call = Call {
            req: &req,
            raw: &raw,
            endpoint,
            model,
            body_len: body.len(),
            native: None,
            responses: None,
        };
        serde_json::from_slice(&OpenAi::body(&call)).expect("json")
    }

    #[test]
    fn openai_is_always_asked_for_its_standard_tier() {
        for tier in [
            "",
            r#","service_tier":"auto""#,
            r#","service_tier":"default""#,
        ] {
            let body = format!(
                r#"{{"model":"openai/gpt-4o","messages":[{{"role":"user","content":"hi"}}]{tier}}}"#
            );
            let v = sent(&body, ProviderKind::OpenAi);
            assert_eq!(v["service_tier"], "default", "{body}");
            let v = sent(&body, ProviderKind::OpenAiCompatible("x".into()));
            assert!(v.get("service_tier").is_none(), "{body}: {v}");
        }
    }

    #[test]
    fn only_fields_billed_from_usage_are_forwarded() {
        let body = r#"{"model":"openai/gpt-4o","messages":[{"role":"user","content":"hi"}],
            "provider":{"sort":"price"},"web_search_options":null,"audio":null,"prediction":null,
            "modalities":["text"],"n":1,"seed":7,"logprobs":true,"top_logprobs":2,"store":false,
            "reasoning_effort":"low","response_format":{"type":"text"},"some_vendor_knob":3,
            "prompt_cache_retention":"24h","temperature":0.5,"max_tokens":10}"#;
        let v = sent(body, ProviderKind::OpenAi);
        let keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        for gone in [
            "provider",
            "web_search_options",
            "audio",
            "prediction",
            "some_vendor_knob",
            "prompt_cache_retention",
        ] {
            assert!(!keys.contains(&gone), "{gone} was forwarded: {v}");
        }
        for kept in [
            "messages",
            "modalities",
            "n",
            "seed",
            "logprobs",
            "top_logprobs",
            "store",
            "reasoning_effort",
            "response_format",
            "temperature",
            "max_tokens",
        ] {
            assert!(keys.contains(&kept), "{kept} was dropped: {v}");
        }
        for k in &keys {
            assert!(
                FORWARDED_FIELDS.contains(k)
                    || [
                        "model",
                        "service_tier",
                        "max_tokens",
                        "max_completion_tokens",
                        "stream_options"
                    ]
                    .contains(k),
                "{k} is not a reviewed field"
            );
        }
    }

    #[test]
    fn usage_on_a_content_chunk_is_forwarded_and_billed() {
        let v = items(
            r#"{"id":"x","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
        );
        assert!(matches!(v[0], StreamItem::Chunk { generated: 1, .. }));
        assert!(matches!(
            v[1],
            StreamItem::Usage {
                last: true,
                usage: Usage {
                    input_tokens: 3,
                    output_tokens: 2,
                    ..
                },
                ..
            }
        ));
    }

    #[test]
    fn role_and_finish_chunks_generate_nothing() {
        let v = items(r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#);
        assert!(matches!(v[0], StreamItem::Chunk { generated: 0, .. }));
        let v = items(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#);
        assert!(matches!(v[0], StreamItem::Chunk { generated: 0, .. }));
        let v = items(
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}"#,
        );
        assert!(matches!(v[0], StreamItem::Chunk { generated: 1, .. }));
    }

    #[test]
    fn the_usage_chunk_is_withheld_and_reported() {
        let v = items(
            r#"{"id":"x","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":2}}}"#,
        );
        assert_eq!(v.len(), 1);
        assert!(matches!(
            v[0],
            StreamItem::Usage {
                usage: Usage {
                    input_tokens: 3,
                    cache_read_tokens: 2,
                    ..
                },
                ..
            }
        ));
    }
}
