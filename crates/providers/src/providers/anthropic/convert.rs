//! The internal (OpenAI-shaped) request to an Anthropic Messages request, and an
//! Anthropic message back to an OpenAI `chat.completion`.

use serde_json::value::to_raw_value;
use serde_json::{json, Map, Value};

use super::wire::{self, ContentBlock};
use crate::chat::request::{parse_data_url, Content, Message, Part, ToolChoice};
use crate::chat::{ChatRequest, Completion, Turns, Usage};
use crate::providers::{UpstreamError, UpstreamErrorKind};

/// Builds the Messages request body. Errors are the client's (a 400).
pub fn request(
    req: &ChatRequest,
    upstream_id: &str,
    model_max_output: u64,
) -> Result<Vec<u8>, String> {
    let mut system: Vec<Value> = Vec::new();
    // Anthropic wants alternating roles: consecutive turns of one role are merged.
    let mut messages = Turns::default();
    for m in &req.messages {
        match m {
            Message::System { content } | Message::Developer { content } => match content {
                Content::Parts(parts) => system.extend(parts.iter().filter_map(|p| match p {
                    Part::Text {
                        text,
                        cache_control,
                    } => Some(text_block(text, cache_control)),
                    Part::ImageUrl { .. } => None,
                })),
                Content::Text(text) if !text.is_empty() => {
                    system.push(json!({"type": "text", "text": text}));
                }
                Content::Text(_) => {}
            },
            Message::User { content } => messages.push("user", user_blocks(content)?),
            Message::Assistant {
                content,
                tool_calls,
                ..
            } => {
                let mut blocks = Vec::new();
                if let Some(c) = content {
                    let t = c.text();
                    if !t.is_empty() {
                        blocks.push(json!({"type": "text", "text": t}));
                    }
                }
                for call in tool_calls.iter().flatten() {
                    let input = call.function.input(&call.id)?;
                    blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.function.name, "input": input}));
                }
                messages.push("assistant", blocks);
            }
            Message::Tool {
                content,
                tool_call_id,
            } => messages.push(
                "user",
                vec![
                    json!({"type": "tool_result", "tool_use_id": tool_call_id, "content": content.text()}),
                ],
            ),
        }
    }
    if !messages.starts_with_user() {
        return Err(
            "Anthropic models need the first non-system message to be from the user".into(),
        );
    }
    let max_tokens = req.output_tokens(model_max_output);
    let mut body = Map::new();
    body.insert("model".into(), json!(upstream_id));
    body.insert("max_tokens".into(), json!(max_tokens));
    body.insert("messages".into(), messages.into_json());
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if let Some(s) = &req.stop {
        body.insert("stop_sequences".into(), json!(s.sequences()));
    }
    if req.is_stream() {
        body.insert("stream".into(), json!(true));
    }
    if let Some(u) = &req.user {
        body.insert("metadata".into(), json!({"user_id": u}));
    }
    let none = matches!(&req.tool_choice, Some(ToolChoice::Mode(m)) if m == "none");
    if let Some(tools) = req.tools.as_ref().filter(|t| !t.is_empty()) {
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                let schema = t.function.schema();
                let mut o = json!({"name": t.function.name, "input_schema": schema});
                if let Some(d) = &t.function.description {
                    o["description"] = json!(d);
                }
                o
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        let choice = match &req.tool_choice {
            None => None,
            Some(ToolChoice::Mode(m)) => match m.as_str() {
                "required" => Some(json!({"type": "any"})),
                "none" => Some(json!({"type": "none"})),
                _ => Some(json!({"type": "auto"})),
            },
            Some(ToolChoice::Named(n)) => Some(json!({"type": "tool", "name": n.function.name})),
        };
        if let Some(c) = choice {
            body.insert("tool_choice".into(), c);
        }
    } else if none {
        // No tools and tool_choice none: nothing to send.
    }
    serde_json::to_vec(&Value::Object(body)).map_err(|e| e.to_string())
}

fn user_blocks(content: &Content) -> Result<Vec<Value>, String> {
    match content {
        Content::Text(t) => Ok(vec![json!({"type": "text", "text": t})]),
        Content::Parts(parts) => parts
            .iter()
            .map(|p| match p {
                Part::Text {
                    text,
                    cache_control,
                } => Ok(text_block(text, cache_control)),
                Part::ImageUrl { image_url } => image_block(&image_url.url),
            })
            .collect(),
    }
}

/// A text block, with its prompt-caching marker if the client set one.
fn text_block(text: &str, cache_control: &Option<Value>) -> Value {
    let mut b = json!({"type": "text", "text": text});
    if let Some(c) = cache_control {
        b["cache_control"] = c.clone();
    }
    b
}

/// `data:image/png;base64,...` → a base64 source; `https://...` → a URL source.
fn image_block(url: &str) -> Result<Value, String> {
    if let Some(parsed) = parse_data_url(url) {
        let (media_type, data) = parsed?;
        if !["image/jpeg", "image/png", "image/gif", "image/webp"].contains(&media_type) {
            return Err(format!(
                "image type {media_type} is not supported (image/jpeg, image/png, image/gif, image/webp)"
            ));
        }
        Ok(
            json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}),
        )
    } else {
        Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
    }
}

/// An Anthropic message as an OpenAI `chat.completion` (without `usage`).
pub fn completion(body: &[u8]) -> Result<Completion, UpstreamError> {
    let m: wire::Message = serde_json::from_slice(body).map_err(|e| {
        UpstreamError::new(
            UpstreamErrorKind::Protocol,
            "anthropic",
            format!("response is not a message: {e}"),
        )
    })?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in &m.content {
        match b {
            ContentBlock::Text { text: t } => text.push_str(t),
            ContentBlock::ToolUse { id, name, input } => calls.push(json!({
                "id": id, "type": "function",
                "function": {"name": name, "arguments": input.to_string()}
            })),
            ContentBlock::Other => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) }});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let choices = json!([{
        "index": 0,
        "message": message,
        "logprobs": null,
        "finish_reason": wire::finish_reason(m.stop_reason.as_deref()),
    }]);
    let mut usage = Usage::default();
    m.usage.apply(&mut usage);
    let raw = |v: Value| {
        to_raw_value(&v).map_err(|e| {
            UpstreamError::new(UpstreamErrorKind::Protocol, "anthropic", e.to_string())
        })
    };
    Ok(Completion {
        fields: vec![
            ("id".into(), raw(json!(m.id))?),
            ("object".into(), raw(json!("chat.completion"))?),
            ("created".into(), raw(json!(crate::clock::unix_now()))?),
            ("model".into(), raw(json!(m.model))?),
            ("choices".into(), raw(choices)?),
        ],
        usage,
        native: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_system_tools_images_and_tool_results() {
        let req = ChatRequest::parse(
            br#"{"model":"m","max_tokens":50,"stop":"END","messages":[
              {"role":"system","content":"be brief"},
              {"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]},
              {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
              {"role":"tool","tool_call_id":"c1","content":"42"}],
              "tools":[{"type":"function","function":{"name":"f","description":"d","parameters":{"type":"object"}}}],
              "tool_choice":"required"}"#,
        )
        .expect("request");
        let body: Value =
            serde_json::from_slice(&request(&req, "claude-x", 64000).expect("convert"))
                .expect("json");
        assert_eq!(body["model"], "claude-x");
        assert_eq!(body["max_tokens"], 50);
        assert_eq!(body["system"][0]["text"], "be brief");
        assert_eq!(body["stop_sequences"][0], "END");
        assert_eq!(
            body["messages"][0]["content"][1]["source"]["media_type"],
            "image/png"
        );
        assert_eq!(body["messages"][1]["content"][0]["type"], "tool_use");
        assert_eq!(body["messages"][1]["content"][0]["input"]["a"], 1);
        assert_eq!(body["messages"][2]["content"][0]["tool_use_id"], "c1");
        assert_eq!(body["tool_choice"]["type"], "any");
        assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
    }

    #[test]
    fn caps_max_tokens_at_the_model_limit() {
        let req =
            ChatRequest::parse(br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#)
                .expect("r");
        let body: Value =
            serde_json::from_slice(&request(&req, "c", 8192).expect("convert")).expect("json");
        assert_eq!(body["max_tokens"], 8192);
    }
}
