//! A Messages request converted to the internal (OpenAI-shaped) chat format.
//!
//! | Messages | chat format |
//! |---|---|
//! | `system` (string or text blocks, `cache_control` kept) | a `system` message |
//! | a `system` message inside `messages` | a `system` message |
//! | user `text` / `image` (base64 or URL) blocks | `text` / `image_url` parts |
//! | user `tool_result` blocks | `tool` messages, in order, before the user's other blocks |
//! | assistant `text` / `tool_use` blocks | `content` / `tool_calls` |
//! | assistant `thinking` / `redacted_thinking` blocks | kept aside, per assistant turn ([`Converted::thinking_history`]): Bedrock gets them back as `reasoningContent` when `thinking` is on |
//! | `tools` (custom tools, `input_schema`) | function tools (`parameters`) |
//! | `tool_choice` `auto` / `any` / `tool` / `none`, `disable_parallel_tool_use` | `auto` / `required` / the function / `none`, `parallel_tool_calls: false` |
//! | `max_tokens`, `stop_sequences`, `temperature`, `top_p`, `stream` | `max_tokens`, `stop`, `temperature`, `top_p`, `stream` (with usage) |
//! | `metadata.user_id` | `user` |
//! | `provider`, `models` (the gateway's routing members) | the same; removed from what Anthropic gets |
//! | `thinking` | not converted: Anthropic gets it as sent, Bedrock in `additionalModelRequestFields` |
//! | `top_k`, `output_config`, `context_management` | not converted: Anthropic gets them as sent, Bedrock in `additionalModelRequestFields` |
//! | `service_tier`, `container`, `mcp_servers` and unknown members | not converted (passed through to Anthropic only) |
//!
//! `top_k` is not converted: Anthropic gets it as sent, Bedrock in
//! `additionalModelRequestFields`, and OpenAI, which has no equivalent, refuses it (400).
//!
//! What has no equivalent outside Anthropic's API (server tools such as web
//! search, `document` and `search_result` blocks, images inside tool results) is listed
//! in [`Converted::anthropic_only`]: such a request is served by Anthropic endpoints
//! only.

use serde_json::{json, Map, Value};

use crate::chat::RequestError;

/// A converted request.
#[derive(Debug)]
pub struct Converted {
    /// The request in the internal chat format (a JSON body for [`crate::chat::ChatRequest::parse`]).
    pub chat: Vec<u8>,
    /// The client's members.
    pub body: Map<String, Value>,
    /// What only Anthropic's API serves, one phrase each.
    pub anthropic_only: Vec<String>,
    /// `model` as the client sent it.
    pub model: String,
    /// The thinking blocks of each assistant message, in order.
    pub thinking_history: Vec<Vec<Value>>,
}

fn bad(param: &str, message: impl Into<String>) -> RequestError {
    RequestError {
        message: message.into(),
        param: Some(param.to_owned()),
    }
}

/// Converts a Messages request body. Refuses what Anthropic's API itself refuses for
/// its shape (missing `model`, `max_tokens` or `messages`, unknown roles or block
/// types where a type is required), naming the member.
pub fn to_chat(body: &[u8]) -> Result<Converted, RequestError> {
    convert(body, false)
}

/// [`to_chat`] for `count_tokens`, whose requests have no `max_tokens`.
pub fn to_chat_for_count(body: &[u8]) -> Result<Converted, RequestError> {
    convert(body, true)
}

fn convert(body: &[u8], counting: bool) -> Result<Converted, RequestError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| bad("body", format!("The request body is not valid JSON: {e}")))?;
    let Value::Object(mut body) = value else {
        return Err(bad("body", "The request body must be a JSON object."));
    };
    // The gateway's own members (routing preferences, fallback models) are read here
    // and not passed on: Anthropic's API refuses members it does not know.
    let gateway: Vec<(String, Value)> = ["provider", "models"]
        .into_iter()
        .filter_map(|k| body.remove(k).map(|v| (k.to_owned(), v)))
        .collect();
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => return Err(bad("model", "model: Field required (a non-empty string)")),
    };
    let max_tokens = match body.get("max_tokens") {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => n.clone(),
        Some(_) => {
            return Err(bad(
                "max_tokens",
                "max_tokens: must be an integer of at least 1",
            ))
        }
        None if counting => serde_json::Number::from(1),
        None => return Err(bad("max_tokens", "max_tokens: Field required")),
    };
    let mut only = Vec::new();
    let mut messages = Vec::new();
    let mut thinking_history = Vec::new();
    if let Some(system) = body.get("system") {
        messages.push(json!({"role": "system", "content": system_content(system, "system")?}));
    }
    let Some(Value::Array(input)) = body.get("messages") else {
        return Err(bad("messages", "messages: Field required (an array)"));
    };
    for (i, m) in input.iter().enumerate() {
        let at = format!("messages.{i}");
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        let content = m
            .get("content")
            .ok_or_else(|| bad(&at, format!("{at}.content: Field required")))?;
        match role {
            "system" => {
                messages.push(json!({"role": "system", "content": system_content(content, &at)?}))
            }
            "user" => user_turn(content, &at, &mut messages, &mut only)?,
            "assistant" => {
                let (message, thinking) = assistant_turn(content, &at, &mut only)?;
                messages.push(message);
                thinking_history.push(thinking);
            }
            other => {
                return Err(bad(
                    &format!("{at}.role"),
                    format!("{at}.role: Input should be 'user' or 'assistant', not `{other}`"),
                ))
            }
        }
    }
    let mut chat = Map::new();
    chat.extend(gateway);
    chat.insert("model".into(), Value::String(model.clone()));
    chat.insert("messages".into(), Value::Array(messages));
    chat.insert("max_tokens".into(), Value::Number(max_tokens));
    for (from, to) in [("temperature", "temperature"), ("top_p", "top_p")] {
        if let Some(v) = body.get(from) {
            chat.insert(to.into(), v.clone());
        }
    }
    if let Some(stop) = body.get("stop_sequences") {
        chat.insert("stop".into(), stop.clone());
    }
    if let Some(user) = body
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        chat.insert("user".into(), Value::String(user.to_owned()));
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        chat.insert("stream".into(), Value::Bool(true));
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(Value::Array(tools)) = body.get("tools") {
        let mut functions = Vec::new();
        for (i, t) in tools.iter().enumerate() {
            match t.get("type").and_then(Value::as_str) {
                None | Some("custom") => {
                    let name = t.get("name").and_then(Value::as_str).ok_or_else(|| {
                        bad(
                            &format!("tools.{i}.name"),
                            format!("tools.{i}.name: Field required"),
                        )
                    })?;
                    let mut f = json!({"name": name});
                    if let Some(d) = t.get("description") {
                        f["description"] = d.clone();
                    }
                    if let Some(s) = t.get("input_schema") {
                        f["parameters"] = s.clone();
                    }
                    functions.push(json!({"type": "function", "function": f}));
                }
                Some(kind) => only.push(format!("the server tool `{kind}`")),
            }
        }
        if !functions.is_empty() {
            chat.insert("tools".into(), Value::Array(functions));
        }
    }
    if let Some(choice) = body.get("tool_choice") {
        let kind = choice
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let converted = match kind {
            "auto" => json!("auto"),
            "any" => json!("required"),
            "none" => json!("none"),
            "tool" => {
                let name = choice.get("name").and_then(Value::as_str).ok_or_else(|| {
                    bad("tool_choice.name", "tool_choice.name: Field required")
                })?;
                json!({"type": "function", "function": {"name": name}})
            }
            other => {
                return Err(bad(
                    "tool_choice.type",
                    format!("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none', not `{other}`"),
                ))
            }
        };
        if chat.contains_key("tools") || kind == "none" {
            chat.insert("tool_choice".into(), converted);
        }
        if choice
            .get("disable_parallel_tool_use")
            .and_then(Value::as_bool)
            == Some(true)
            && chat.contains_key("tools")
        {
            chat.insert("parallel_tool_calls".into(), Value::Bool(false));
        }
    }
    let chat = serde_json::to_vec(&Value::Object(chat))
        .map_err(|e| bad("body", format!("The request could not be converted: {e}")))?;
    let mut seen = std::collections::HashSet::new();
    only.retain(|o| seen.insert(o.clone()));
    Ok(Converted {
        chat,
        body,
        anthropic_only: only,
        model,
        thinking_history,
    })
}

/// A system prompt: a string, or text blocks (with their `cache_control`).
fn system_content(v: &Value, at: &str) -> Result<Value, RequestError> {
    match v {
        Value::String(s) => Ok(Value::String(s.clone())),
        Value::Array(blocks) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (i, b) in blocks.iter().enumerate() {
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => parts.push(text_part(b)),
                    _ => {
                        return Err(bad(
                            &format!("{at}.{i}.type"),
                            format!("{at}.{i}: a system prompt takes text blocks only"),
                        ))
                    }
                }
            }
            Ok(Value::Array(parts))
        }
        _ => Err(bad(
            at,
            format!("{at}: must be a string or an array of text blocks"),
        )),
    }
}

fn text_part(b: &Value) -> Value {
    let mut p = json!({"type": "text", "text": b.get("text").cloned().unwrap_or(json!(""))});
    if let Some(c) = b.get("cache_control") {
        p["cache_control"] = c.clone();
    }
    p
}

/// A user turn: its tool results become `tool` messages (first, in order, as Anthropic
/// requires them to lead the turn), its other blocks one user message.
fn user_turn(
    content: &Value,
    at: &str,
    out: &mut Vec<Value>,
    only: &mut Vec<String>,
) -> Result<(), RequestError> {
    let blocks = match content {
        Value::String(s) => {
            out.push(json!({"role": "user", "content": s}));
            return Ok(());
        }
        Value::Array(b) => b,
        _ => {
            return Err(bad(
                at,
                format!("{at}.content: must be a string or an array of blocks"),
            ))
        }
    };
    let mut parts = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let here = format!("{at}.content.{i}");
        match b.get("type").and_then(Value::as_str) {
            Some("text") => parts.push(text_part(b)),
            Some("image") => match image_url(b, &here)? {
                Some(url) => parts.push(json!({"type": "image_url", "image_url": {"url": url}})),
                None => only.push("an image given by file ID".to_owned()),
            },
            Some("tool_result") => {
                let id = b
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        bad(
                            &format!("{here}.tool_use_id"),
                            format!("{here}.tool_use_id: Field required"),
                        )
                    })?;
                let text = match b.get("content") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(inner)) => {
                        let mut text = Vec::new();
                        for c in inner {
                            match c.get("type").and_then(Value::as_str) {
                                Some("text") => text.push(
                                    c.get("text")
                                        .and_then(Value::as_str)
                                        .unwrap_or_default()
                                        .to_owned(),
                                ),
                                _ => only.push("a tool result with other than text".to_owned()),
                            }
                        }
                        text.join("\n")
                    }
                    Some(_) => {
                        return Err(bad(
                            &format!("{here}.content"),
                            format!("{here}.content: must be a string or an array of blocks"),
                        ))
                    }
                };
                out.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
            }
            Some(kind @ ("document" | "search_result" | "container_upload")) => {
                only.push(format!("`{kind}` blocks"));
            }
            Some(other) => only.push(format!("`{other}` blocks")),
            None => {
                return Err(bad(
                    &format!("{here}.type"),
                    format!("{here}.type: Field required"),
                ))
            }
        }
    }
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

/// An image block's URL: a data URL for base64 data, the URL itself for a URL source,
/// `None` for a file reference (Anthropic's Files API).
fn image_url(b: &Value, at: &str) -> Result<Option<String>, RequestError> {
    let source = b.get("source").ok_or_else(|| {
        bad(
            &format!("{at}.source"),
            format!("{at}.source: Field required"),
        )
    })?;
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media = source
                .get("media_type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let data = source
                .get("data")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Ok(Some(format!("data:{media};base64,{data}")))
        }
        Some("url") => Ok(source.get("url").and_then(Value::as_str).map(str::to_owned)),
        Some("file") => Ok(None),
        _ => Err(bad(
            &format!("{at}.source.type"),
            format!("{at}.source.type: Input should be 'base64', 'url' or 'file'"),
        )),
    }
}

/// An assistant turn: text and tool calls (thinking blocks are Anthropic's own and are
/// dropped; a model without extended thinking ignores them anyway).
fn assistant_turn(
    content: &Value,
    at: &str,
    only: &mut Vec<String>,
) -> Result<(Value, Vec<Value>), RequestError> {
    let blocks = match content {
        Value::String(s) => return Ok((json!({"role": "assistant", "content": s}), Vec::new())),
        Value::Array(b) => b,
        _ => {
            return Err(bad(
                at,
                format!("{at}.content: must be a string or an array of blocks"),
            ))
        }
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    let mut thinking = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let here = format!("{at}.content.{i}");
        match b.get("type").and_then(Value::as_str) {
            Some("text") => {
                text.push_str(b.get("text").and_then(Value::as_str).unwrap_or_default())
            }
            Some("tool_use") => {
                let id = b.get("id").and_then(Value::as_str).unwrap_or_default();
                let name = b.get("name").and_then(Value::as_str).unwrap_or_default();
                let input = b.get("input").cloned().unwrap_or(json!({}));
                calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": input.to_string()}}));
            }
            Some("thinking" | "redacted_thinking") => thinking.push(b.clone()),
            Some(other) => only.push(format!("`{other}` blocks")),
            None => {
                return Err(bad(
                    &format!("{here}.type"),
                    format!("{here}.type: Field required"),
                ))
            }
        }
    }
    let mut m = json!({"role": "assistant", "content": text});
    if !calls.is_empty() {
        m["tool_calls"] = Value::Array(calls);
    }
    Ok((m, thinking))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: Value) -> (Value, Vec<String>) {
        let c = to_chat(body.to_string().as_bytes()).expect("converts");
        (
            serde_json::from_slice(&c.chat).expect("JSON"),
            c.anthropic_only,
        )
    }

    #[test]
    fn a_claude_code_request_converts() {
        let (c, only) = chat(json!({
            "model": "claude-opus-4-8",
            "max_tokens": 64000,
            "stream": true,
            "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "system", "content": "Extra context."},
                {"role": "user", "content": [{"type": "text", "text": "list files", "cache_control": {"type": "ephemeral"}}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "a.txt"}]},
                    {"type": "text", "text": "and now?"}
                ]}
            ],
            "tools": [{"name": "Bash", "description": "run", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "auto"},
            "thinking": {"type": "adaptive"},
            "context_management": {"edits": []},
            "output_config": {"effort": "high"},
            "metadata": {"user_id": "user_abc"},
        }));
        assert!(only.is_empty(), "{only:?}");
        assert_eq!(c["model"], "claude-opus-4-8");
        assert_eq!(c["max_tokens"], 64000);
        assert_eq!(c["stream_options"]["include_usage"], true);
        assert_eq!(c["user"], "user_abc");
        let m = c["messages"].as_array().expect("messages");
        assert_eq!(m[0]["role"], "system");
        assert_eq!(m[0]["content"][0]["cache_control"]["type"], "ephemeral");
        assert_eq!(m[1], json!({"role": "system", "content": "Extra context."}));
        assert_eq!(m[2]["content"][0]["cache_control"]["type"], "ephemeral");
        assert_eq!(
            m[3]["tool_calls"][0]["function"]["arguments"],
            r#"{"command":"ls"}"#
        );
        assert_eq!(
            m[4],
            json!({"role": "tool", "tool_call_id": "toolu_1", "content": "a.txt"})
        );
        assert_eq!(m[5]["content"][0]["text"], "and now?");
        assert_eq!(c["tools"][0]["function"]["parameters"]["type"], "object");
        assert_eq!(c["tool_choice"], "auto");
        crate::chat::ChatRequest::parse(&serde_json::to_vec(&c).expect("bytes")).expect("parses");
    }

    #[test]
    fn anthropic_only_features_are_named() {
        let (_, only) = chat(json!({
            "model": "m", "max_tokens": 10,
            "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            "messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}],
        }));
        assert_eq!(
            only,
            ["`document` blocks", "the server tool `web_search_20250305`"]
        );
    }

    #[test]
    fn the_shape_is_checked_naming_the_member() {
        for (body, param) in [
            (json!({"max_tokens": 1, "messages": []}), "model"),
            (json!({"model": "m", "messages": []}), "max_tokens"),
            (json!({"model": "m", "max_tokens": 1}), "messages"),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "bot", "content": "x"}]}),
                "messages.0.role",
            ),
        ] {
            let e = to_chat(body.to_string().as_bytes()).expect_err("refused");
            assert_eq!(e.param.as_deref(), Some(param), "{}", e.message);
        }
    }

    #[test]
    fn images_become_image_url_parts() {
        let (c, _) = chat(
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            ]}]}),
        );
        let parts = &c["messages"][0]["content"];
        assert_eq!(parts[0]["image_url"]["url"], "data:image/png;base64,AAAA");
        assert_eq!(parts[1]["image_url"]["url"], "https://example.com/a.png");
    }
}
