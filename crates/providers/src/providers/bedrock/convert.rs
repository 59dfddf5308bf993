//! The internal (OpenAI-shaped) request to a Converse request, and a Converse answer
//! back to an OpenAI `chat.completion`.

use crate::messages::NativeMessages;
use serde::Deserialize;
use serde_json::value::to_raw_value;
use serde_json::{json, Map, Value};

use super::images::{Image, ImageFetcher};
use crate::chat::limits::{off_workers, BEDROCK_MAX_IMAGES};
use crate::chat::request::{Content, Message, Part, ToolChoice};
use crate::chat::{ChatRequest, Completion, Turns, Usage};
use crate::providers::{UpstreamError, UpstreamErrorKind};

/// Builds the Converse body. Errors are the client's (a 400).
///
/// The images are counted first and refused over Bedrock's cap before any is fetched
/// (the server's plan already skips Bedrock for such a request; this guards every other
/// caller), then fetched together within one byte and time budget
/// ([`ImageFetcher::load_all`]). Building the body grows with the request, so a large
/// one (`body_len` bytes) is built off the async workers.
pub async fn request(
    req: &ChatRequest,
    model_max_output: u64,
    images: &ImageFetcher,
    body_len: usize,
    native: Option<&NativeMessages>,
) -> Result<Vec<u8>, String> {
    let urls: Vec<&str> = image_urls(req).collect();
    if urls.len() > BEDROCK_MAX_IMAGES {
        return Err(format!(
            "This request has {} image parts; Bedrock accepts at most {BEDROCK_MAX_IMAGES} \
             images per request. Send fewer images.",
            urls.len()
        ));
    }
    let loaded = images.load_all(&urls).await?;
    off_workers(body_len, || build(req, model_max_output, loaded, native)).await
}

/// The beta that context editing (`context_management`) needs on Bedrock.
const CONTEXT_MANAGEMENT_BETA: &str = "context-management-2025-06-27";

/// The `thinking` member of a Messages request that turns extended thinking on.
fn thinking(native: Option<&NativeMessages>) -> Option<&Value> {
    native.and_then(|n| n.body.get("thinking")).filter(|t| {
        t.get("type")
            .and_then(Value::as_str)
            .is_some_and(|k| k != "disabled")
    })
}

/// An Anthropic `thinking` / `redacted_thinking` block as a Converse `reasoningContent`
/// block (text and signature unmodified, as the model requires them back).
fn reasoning_block(b: &Value) -> Option<Value> {
    match b.get("type").and_then(Value::as_str) {
        Some("thinking") => {
            let mut text = json!({"text": b.get("thinking").cloned().unwrap_or(json!(""))});
            if let Some(s) = b.get("signature") {
                text["signature"] = s.clone();
            }
            Some(json!({"reasoningContent": {"reasoningText": text}}))
        }
        Some("redacted_thinking") => {
            Some(json!({"reasoningContent": {"redactedContent": b.get("data")?}}))
        }
        _ => None,
    }
}

/// The URL of every image part, in the order [`build`] meets them.
fn image_urls(req: &ChatRequest) -> impl Iterator<Item = &str> {
    req.messages.iter().flat_map(|m| {
        let parts = match m {
            Message::User {
                content: Content::Parts(parts),
            } => parts.as_slice(),
            _ => &[],
        };
        parts.iter().filter_map(|p| match p {
            Part::ImageUrl { image_url } => Some(image_url.url.as_str()),
            Part::Text { .. } => None,
        })
    })
}

/// The Converse body, with `images` (loaded from [`image_urls`], in that order) taken
/// one by one: each image's bytes are dropped as soon as they are encoded.
fn build(
    req: &ChatRequest,
    model_max_output: u64,
    images: Vec<Image>,
    native: Option<&NativeMessages>,
) -> Result<Vec<u8>, String> {
    // Extended thinking (a Messages request's `thinking`): Converse passes it to the
    // model in `additionalModelRequestFields`, and the thinking blocks of earlier
    // assistant turns go back as `reasoningContent`, first in their turn.
    let thinking = thinking(native);
    let mut assistant_turn = 0;
    let mut images = images.into_iter();
    let mut system: Vec<Value> = Vec::new();
    // Converse wants alternating roles: consecutive turns of one role are merged.
    let mut messages = Turns::default();
    for m in &req.messages {
        match m {
            Message::System { content } | Message::Developer { content } => match content {
                Content::Text(t) if !t.is_empty() => system.push(json!({ "text": t })),
                Content::Text(_) => {}
                Content::Parts(parts) => {
                    for p in parts {
                        if let Part::Text {
                            text,
                            cache_control,
                        } = p
                        {
                            system.push(json!({ "text": text }));
                            if cache_control.is_some() {
                                system.push(json!({"cachePoint": {"type": "default"}}));
                            }
                        }
                    }
                }
            },
            Message::User { content } => {
                let mut blocks = Vec::new();
                match content {
                    Content::Text(t) => blocks.push(json!({ "text": t })),
                    Content::Parts(parts) => {
                        for p in parts {
                            match p {
                                Part::Text {
                                    text,
                                    cache_control,
                                } => {
                                    blocks.push(json!({ "text": text }));
                                    if cache_control.is_some() {
                                        blocks.push(json!({"cachePoint": {"type": "default"}}));
                                    }
                                }
                                Part::ImageUrl { image_url } => {
                                    let img = images.next().ok_or_else(|| {
                                        format!("the image at {} was not loaded", image_url.url)
                                    })?;
                                    blocks.push(json!({"image": {"format": img.format, "source": {"bytes": aws_smithy_types::base64::encode(&img.bytes)}}}));
                                }
                            }
                        }
                    }
                }
                messages.push("user", blocks);
            }
            Message::Assistant {
                content,
                tool_calls,
                ..
            } => {
                let mut blocks = Vec::new();
                if thinking.is_some() {
                    if let Some(history) = native.and_then(|n| n.thinking_history.get(assistant_turn)) {
                        blocks.extend(history.iter().filter_map(reasoning_block));
                    }
                }
                assistant_turn += 1;
                if let Some(c) = content {
                    let t = c.text();
                    if !t.is_empty() {
                        blocks.push(json!({ "text": t }));
                    }
                }
                for call in tool_calls.iter().flatten() {
                    let input = call.function.input(&call.id)?;
                    blocks.push(json!({"toolUse": {"toolUseId": call.id, "name": call.function.name, "input": input}}));
                }
                messages.push("assistant", blocks);
            }
            Message::Tool {
                content,
                tool_call_id,
            } => messages.push(
                "user",
                vec![
                    json!({"toolResult": {"toolUseId": tool_call_id, "content": [{"text": content.text()}]}}),
                ],
            ),
        }
    }
    if !messages.starts_with_user() {
        return Err("Bedrock needs the first non-system message to be from the user".into());
    }
    let mut body = Map::new();
    body.insert("messages".into(), messages.into_json());
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    let mut inference = Map::new();
    let max_tokens = req.output_tokens(model_max_output);
    inference.insert("maxTokens".into(), json!(max_tokens));
    if let Some(t) = req.temperature {
        inference.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        inference.insert("topP".into(), json!(p));
    }
    if let Some(s) = &req.stop {
        inference.insert("stopSequences".into(), json!(s.sequences()));
    }
    body.insert("inferenceConfig".into(), Value::Object(inference));
    // Fields Converse passes to the model as they are: a Messages request's `thinking`,
    // `top_k`, `output_config` (effort) and `context_management` (context editing, a
    // beta on Bedrock, named in `anthropic_beta`).
    let mut additional = Map::new();
    if let Some(t) = thinking {
        additional.insert("thinking".into(), t.clone());
    }
    for key in ["top_k", "output_config", "context_management"] {
        if let Some(v) = native
            .and_then(|n| n.body.get(key))
            .filter(|v| !v.is_null())
        {
            additional.insert(key.into(), v.clone());
        }
    }
    if additional.contains_key("context_management") {
        additional.insert("anthropic_beta".into(), json!([CONTEXT_MANAGEMENT_BETA]));
    }
    if !additional.is_empty() {
        body.insert(
            "additionalModelRequestFields".into(),
            Value::Object(additional),
        );
    }
    let none = matches!(&req.tool_choice, Some(ToolChoice::Mode(m)) if m == "none");
    if let Some(tools) = req.tools.as_ref().filter(|t| !t.is_empty()) {
        let specs: Vec<Value> = tools
            .iter()
            .map(|t| {
                let schema = t.function.schema();
                let mut spec = json!({"name": t.function.name, "inputSchema": {"json": schema}});
                if let Some(d) = &t.function.description {
                    spec["description"] = json!(d);
                }
                json!({ "toolSpec": spec })
            })
            .collect();
        let mut config = json!({ "tools": specs });
        match &req.tool_choice {
            Some(ToolChoice::Mode(m)) if m == "required" => {
                config["toolChoice"] = json!({"any": {}})
            }
            Some(ToolChoice::Named(n)) => {
                config["toolChoice"] = json!({"tool": {"name": n.function.name}})
            }
            // `none` has no Converse equivalent: the tools stay declared (history may
            // hold tool use), with the model's own choice.
            _ if none => {}
            _ => config["toolChoice"] = json!({"auto": {}}),
        }
        body.insert("toolConfig".into(), config);
    }
    serde_json::to_vec(&Value::Object(body)).map_err(|e| e.to_string())
}

#[derive(Deserialize)]
struct ConverseResponse {
    output: Output,
    #[serde(rename = "stopReason")]
    stop_reason: Option<String>,
    usage: Option<UsageWire>,
}

#[derive(Deserialize)]
struct Output {
    message: Option<OutMessage>,
}

#[derive(Deserialize)]
struct OutMessage {
    #[serde(default)]
    content: Vec<Value>,
}

/// Converse's token usage. `inputTokens` excludes cache reads and writes.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub struct UsageWire {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    #[serde(default)]
    pub cache_write_input_tokens: u64,
}

impl UsageWire {
    pub fn usage(&self) -> Usage {
        Usage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_read_tokens: self.cache_read_input_tokens,
            cache_write_5m_tokens: self.cache_write_input_tokens,
            cache_write_1h_tokens: 0,
        }
    }
}

/// Converse's stop reason as OpenAI's finish reason.
pub fn finish_reason(stop: Option<&str>) -> &'static str {
    match stop {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("guardrail_intervened") | Some("content_filtered") => "content_filter",
        _ => "stop",
    }
}

/// A Converse answer as an OpenAI `chat.completion` (without `usage`).
pub fn completion(body: &[u8], model: &str) -> Result<Completion, UpstreamError> {
    let bad = |m: String| UpstreamError::new(UpstreamErrorKind::Protocol, "bedrock", m);
    let r: ConverseResponse = serde_json::from_slice(body)
        .map_err(|e| bad(format!("Converse answer is malformed: {e}")))?;
    let mut text = String::new();
    let mut calls = Vec::new();
    let mut reasoning: Option<Value> = None;
    for block in r.output.message.map(|m| m.content).unwrap_or_default() {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            text.push_str(t);
        } else if let Some(rc) = block.get("reasoningContent") {
            // The model's thinking: `reasoning_content` (with its signature) in the chat
            // format, a thinking block on /v1/messages.
            reasoning = Some(match rc.get("reasoningText") {
                Some(rt) => json!({"text": rt.get("text"), "signature": rt.get("signature")}),
                None => json!({"redacted": rc.get("redactedContent")}),
            });
        } else if let Some(tu) = block.get("toolUse") {
            calls.push(json!({
                "id": tu.get("toolUseId").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {"name": tu.get("name").cloned().unwrap_or(Value::Null), "arguments": tu.get("input").map(Value::to_string).unwrap_or_else(|| "{}".into())},
            }));
        }
    }
    let content = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        json!(text)
    };
    let mut message = json!({"role": "assistant", "content": content});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    if let Some(r) = reasoning {
        if let Some(t) = r.get("text").filter(|t| !t.is_null()) {
            message["reasoning_content"] = t.clone();
            message["reasoning_signature"] = r["signature"].clone();
        } else {
            message["reasoning_redacted"] = r["redacted"].clone();
        }
    }
    let choices = json!([{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason(r.stop_reason.as_deref())}]);
    let raw = |v: Value| to_raw_value(&v).map_err(|e| bad(e.to_string()));
    Ok(Completion {
        fields: vec![
            (
                "id".into(),
                raw(json!(format!("chatcmpl-{}", crate::ids::random_id(""))))?,
            ),
            ("object".into(), raw(json!("chat.completion"))?),
            ("created".into(), raw(json!(crate::clock::unix_now()))?),
            ("model".into(), raw(json!(model))?),
            ("choices".into(), raw(choices)?),
        ],
        usage: r
            .usage
            .ok_or_else(|| bad("Converse answer carries no usage; it cannot be billed".into()))?
            .usage(),
        native: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn converts_system_images_tools_and_results() {
        let req = ChatRequest::parse(
            br#"{"model":"m","max_tokens":50,"stop":"END","temperature":0.3,"messages":[
              {"role":"system","content":"be brief"},
              {"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]},
              {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
              {"role":"tool","tool_call_id":"c1","content":"42"}],
              "tools":[{"type":"function","function":{"name":"f","description":"d","parameters":{"type":"object"}}}],
              "tool_choice":{"type":"function","function":{"name":"f"}}}"#,
        )
        .expect("request");
        let f = ImageFetcher::new(false).expect("fetcher");
        let body: Value =
            serde_json::from_slice(&request(&req, 64000, &f, 0, None).await.expect("convert"))
                .expect("json");
        assert_eq!(body["system"][0]["text"], "be brief");
        assert_eq!(body["inferenceConfig"]["maxTokens"], 50);
        assert_eq!(body["inferenceConfig"]["stopSequences"][0], "END");
        assert_eq!(body["messages"][0]["content"][1]["image"]["format"], "png");
        assert_eq!(
            body["messages"][0]["content"][1]["image"]["source"]["bytes"],
            "iVBORw0KGgo="
        );
        assert_eq!(
            body["messages"][1]["content"][0]["toolUse"]["input"]["a"],
            1
        );
        assert_eq!(
            body["messages"][2]["content"][0]["toolResult"]["toolUseId"],
            "c1"
        );
        assert_eq!(body["toolConfig"]["toolChoice"]["tool"]["name"], "f");
        assert_eq!(
            body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["type"],
            "object"
        );
    }

    #[test]
    fn answer_with_tool_use_and_cache_usage() {
        let c = completion(
            br#"{"output":{"message":{"role":"assistant","content":[{"toolUse":{"toolUseId":"t1","name":"f","input":{"q":"x"}}}]}},
                "stopReason":"tool_use","usage":{"inputTokens":10,"outputTokens":5,"totalTokens":15,"cacheReadInputTokens":7,"cacheWriteInputTokens":3}}"#,
            "us.m",
        )
        .expect("completion");
        assert_eq!(
            c.usage,
            Usage {
                input_tokens: 10,
                output_tokens: 5,
                cache_read_tokens: 7,
                cache_write_5m_tokens: 3,
                cache_write_1h_tokens: 0
            }
        );
        let choices: Value = serde_json::from_str(c.fields[4].1.get()).expect("choices");
        assert_eq!(choices[0]["finish_reason"], "tool_calls");
        assert_eq!(
            choices[0]["message"]["tool_calls"][0]["function"]["arguments"],
            r#"{"q":"x"}"#
        );
    }

    #[tokio::test]
    async fn images_over_bedrocks_cap_are_refused_before_any_fetch() {
        let img = r#"{"type":"image_url","image_url":{"url":"https://127.0.0.1:9/a.png"}}"#;
        let parts = vec![img; BEDROCK_MAX_IMAGES + 1].join(",");
        let body = format!(r#"{{"model":"m","messages":[{{"role":"user","content":[{parts}]}}]}}"#);
        let req = ChatRequest::parse(body.as_bytes()).expect("request");
        let f = ImageFetcher::new(false).expect("fetcher");
        // Counted first: the count is refused, not the (private) address of a fetch.
        let e = request(&req, 100, &f, body.len(), None)
            .await
            .expect_err("over the cap");
        assert!(e.contains("at most 20 images"), "{e}");
    }
}
