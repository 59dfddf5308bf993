//! Answers of Bedrock and OpenAI endpoints (in the internal, OpenAI-shaped format)
//! encoded as Anthropic's: a `message` object, and a stream in Anthropic's event order
//! (`message_start`; per block `content_block_start`, `content_block_delta`s,
//! `content_block_stop`, with one `ping` after the first block starts; `message_delta`
//! with the stop reason and the usage; `message_stop`). Errors in Anthropic's shape.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use http::StatusCode;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::chat::Usage;

/// Anthropic's usage object for internal usage.
pub fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "cache_creation_input_tokens": u.cache_write_5m_tokens.saturating_add(u.cache_write_1h_tokens),
        "cache_read_input_tokens": u.cache_read_tokens,
        "output_tokens": u.output_tokens,
    })
}

/// Anthropic's stop reason for an OpenAI finish reason.
fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// A message ID for an answer whose provider's ID is not Anthropic's.
fn message_id(provider_id: &str, request_id: &str) -> String {
    if provider_id.starts_with("msg_") {
        provider_id.to_owned()
    } else {
        format!("msg_{}", request_id.trim_start_matches("req_"))
    }
}

/// A `chat.completion`'s fields (without `usage`) as an Anthropic message.
pub fn message(
    fields: &[(String, Box<RawValue>)],
    usage: &Usage,
    model: &str,
    request_id: &str,
) -> Vec<u8> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| serde_json::from_str::<Value>(v.get()).ok())
    };
    let id = field("id")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let choice = field("choices")
        .and_then(|c| c.get(0).cloned())
        .unwrap_or(Value::Null);
    let msg = &choice["message"];
    let mut content = Vec::new();
    // The model's thinking first, as Anthropic's API puts it.
    if let Some(t) = msg["reasoning_content"].as_str() {
        content.push(
            json!({"type": "thinking", "thinking": t, "signature": msg["reasoning_signature"]}),
        );
    } else if !msg["reasoning_redacted"].is_null() {
        content.push(json!({"type": "redacted_thinking", "data": msg["reasoning_redacted"]}));
    }
    if let Some(t) = msg["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": t}));
    }
    if let Some(calls) = msg["tool_calls"].as_array() {
        for c in calls {
            let args = c["function"]["arguments"].as_str().unwrap_or("{}");
            let input: Value = serde_json::from_str(args).unwrap_or(json!({}));
            content.push(json!({
                "type": "tool_use",
                "id": c["id"],
                "name": c["function"]["name"],
                "input": input,
            }));
        }
    }
    let body = json!({
        "id": message_id(&id, request_id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice["finish_reason"].as_str().unwrap_or("stop")),
        "stop_sequence": null,
        "usage": usage_json(usage),
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// One server-sent event in Anthropic's framing.
pub fn event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// Anthropic's error `type` for a status.
pub fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        408 | 504 => "timeout_error",
        529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

/// Anthropic's error object: `{"type":"error","error":{"type","message"},"request_id"}`.
pub fn error_body(status: StatusCode, message: &str, request_id: Option<&str>) -> Value {
    let mut v = json!({
        "type": "error",
        "error": {"type": error_type(status), "message": message},
    });
    if let Some(id) = request_id {
        v["request_id"] = json!(id);
    }
    v
}

/// The kind of the block open in an encoded stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Thinking,
    Redacted,
    Text,
    Tool,
}

/// Encodes an internal (OpenAI chunk) stream as Anthropic's event sequence.
#[derive(Debug)]
pub struct Events {
    id: String,
    model: String,
    request_id: String,
    started: bool,
    pinged: bool,
    /// The open block: its index and kind.
    open: Option<(usize, Block)>,
    next_index: usize,
    /// OpenAI tool-call index → Anthropic block index.
    tools: HashMap<u64, usize>,
    stop_reason: &'static str,
}

impl Events {
    pub fn new(model: &str, request_id: &str) -> Self {
        Self {
            id: String::new(),
            model: model.to_owned(),
            request_id: request_id.to_owned(),
            started: false,
            pinged: false,
            open: None,
            next_index: 0,
            tools: HashMap::new(),
            stop_reason: "end_turn",
        }
    }

    fn start(&mut self, provider_id: &str, out: &mut VecDeque<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        self.id = message_id(provider_id, &self.request_id);
        let message = json!({
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        });
        out.push_back(event(
            "message_start",
            &json!({"type": "message_start", "message": message}),
        ));
    }

    fn close(&mut self, out: &mut VecDeque<Bytes>) {
        if let Some((index, _)) = self.open.take() {
            out.push_back(event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    fn open_block(&mut self, kind: Block, block: Value, out: &mut VecDeque<Bytes>) -> usize {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, kind));
        out.push_back(event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        if !self.pinged {
            self.pinged = true;
            out.push_back(event("ping", &json!({"type": "ping"})));
        }
        index
    }

    /// The events for one `chat.completion.chunk`.
    pub fn chunk(&mut self, json: &[u8], out: &mut VecDeque<Bytes>) {
        let Ok(c) = serde_json::from_slice::<Value>(json) else {
            return;
        };
        self.start(c["id"].as_str().unwrap_or_default(), out);
        let choice = &c["choices"][0];
        let delta = &choice["delta"];
        if let Some(t) = delta["reasoning_content"]
            .as_str()
            .filter(|t| !t.is_empty())
        {
            let index = match self.open {
                Some((i, Block::Thinking)) => i,
                _ => self.open_block(
                    Block::Thinking,
                    json!({"type": "thinking", "thinking": ""}),
                    out,
                ),
            };
            out.push_back(event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "thinking_delta", "thinking": t}}),
            ));
        }
        if let (Some(s), Some((index, Block::Thinking))) =
            (delta["reasoning_signature"].as_str(), self.open)
        {
            out.push_back(event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "signature_delta", "signature": s}}),
            ));
        }
        if !delta["reasoning_redacted"].is_null() {
            let block = json!({"type": "redacted_thinking", "data": delta["reasoning_redacted"]});
            self.open_block(Block::Redacted, block, out);
        }
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            let index = match self.open {
                Some((i, Block::Text)) => i,
                _ => self.open_block(Block::Text, json!({"type": "text", "text": ""}), out),
            };
            out.push_back(event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "text_delta", "text": text}}),
            ));
        }
        if let Some(calls) = delta["tool_calls"].as_array() {
            for call in calls {
                let k = call["index"].as_u64().unwrap_or(0);
                if call["id"].is_string() || call["function"]["name"].is_string() {
                    let block = json!({
                        "type": "tool_use", "id": call["id"], "name": call["function"]["name"],
                        "input": {},
                    });
                    let index = self.open_block(Block::Tool, block, out);
                    self.tools.insert(k, index);
                }
                let Some(args) = call["function"]["arguments"]
                    .as_str()
                    .filter(|a| !a.is_empty())
                else {
                    continue;
                };
                let Some(&index) = self.tools.get(&k) else {
                    continue;
                };
                out.push_back(event(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": args}}),
                ));
            }
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.stop_reason = stop_reason(f);
        }
    }

    /// The closing events: the open block's stop, `message_delta` with the stop reason
    /// and the final usage, `message_stop`.
    pub fn finish(&mut self, usage: &Usage, out: &mut VecDeque<Bytes>) {
        self.start("", out);
        self.close(out);
        out.push_back(event(
            "message_delta",
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": self.stop_reason, "stop_sequence": null},
                    "usage": usage_json(usage)}),
        ));
        out.push_back(event("message_stop", &json!({"type": "message_stop"})));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(out: &VecDeque<Bytes>) -> Vec<String> {
        out.iter()
            .map(|b| {
                let s = String::from_utf8_lossy(b);
                s.lines()
                    .next()
                    .and_then(|l| l.strip_prefix("event: "))
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn text_then_tool_call_in_anthropic_order() {
        let mut e = Events::new("claude-sonnet-4-6", "req_1");
        let mut out = VecDeque::new();
        for c in [
            r#"{"id":"x","choices":[{"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"id":"x","choices":[{"delta":{"content":"Hi"}}]}"#,
            r#"{"id":"x","choices":[{"delta":{"content":" there"}}]}"#,
            r#"{"id":"x","choices":[{"delta":{"tool_calls":[{"index":0,"id":"t1","type":"function","function":{"name":"f","arguments":""}}]}}]}"#,
            r#"{"id":"x","choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":1}"}}]}}]}"#,
            r#"{"id":"x","choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
        ] {
            e.chunk(c.as_bytes(), &mut out);
        }
        e.finish(
            &Usage {
                input_tokens: 5,
                output_tokens: 7,
                ..Usage::default()
            },
            &mut out,
        );
        assert_eq!(
            names(&out),
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let last_delta = String::from_utf8_lossy(&out[9]).into_owned();
        assert!(
            last_delta.contains(r#""stop_reason":"tool_use""#),
            "{last_delta}"
        );
        assert!(last_delta.contains(r#""output_tokens":7"#), "{last_delta}");
        let tool_start = String::from_utf8_lossy(&out[6]).into_owned();
        assert!(tool_start.contains(r#""index":1"#), "{tool_start}");
    }

    #[test]
    fn error_types_follow_the_status() {
        assert_eq!(error_type(StatusCode::PAYMENT_REQUIRED), "billing_error");
        assert_eq!(error_type(StatusCode::NOT_FOUND), "not_found_error");
        assert_eq!(error_type(StatusCode::BAD_GATEWAY), "api_error");
        assert_eq!(error_type(StatusCode::GATEWAY_TIMEOUT), "timeout_error");
        assert_eq!(error_type(StatusCode::BAD_REQUEST), "invalid_request_error");
    }
}
