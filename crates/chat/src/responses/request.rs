//! A Responses request converted to the internal (OpenAI-shaped) chat format.
//!
//! | Responses | chat format |
//! |---|---|
//! | `instructions` | a `system` message, first |
//! | `input` as a string | one `user` message |
//! | `message` items (`user`, `system`, `developer`; `input_text`, `input_image` parts) | messages of that role with `text` / `image_url` parts |
//! | `message` items of the `assistant` (`output_text`, `refusal` parts) | `assistant` messages |
//! | `function_call` items | `tool_calls` of an `assistant` message (consecutive calls in one message) |
//! | `function_call_output` items | `tool` messages |
//! | `reasoning` items | dropped: no provider takes them back through the chat format |
//! | function `tools` (`name`, `description`, `parameters`, `strict`) | function tools |
//! | `tool_choice` `auto` / `none` / `required` / `{"type":"function","name"}` | the same |
//! | `max_output_tokens` | `max_completion_tokens` |
//! | `reasoning.effort` | `reasoning_effort` |
//! | `text.format` `json_schema` / `json_object`, `text.verbosity` | `response_format`, `verbosity` |
//! | `temperature`, `top_p`, `parallel_tool_calls`, `user`, `safety_identifier`, `prompt_cache_key`, `service_tier`, `stream` | the same (a stream with usage) |
//! | `provider`, `models` (the gateway's routing members) | the same |
//!
//! Accepted and not converted: `namespace` tools (Codex CLI's groups of sub-agent tools,
//! not offered to the model), `metadata` (echoed in the answer), `include`,
//! `client_metadata`, `truncation` (`disabled` or `auto`), `stream_options`,
//! `max_tool_calls`, `reasoning.summary`. Refused with a 400 naming the member: what needs
//! state the gateway does not keep (`store: true`, `previous_response_id`, `conversation`,
//! `background: true`, `prompt`, `item_reference` items), built-in tools and their
//! items, file inputs, and members the API does not have.

use serde_json::{json, Map, Value};

use super::{Echo, NativeResponses};
use crate::chat::RequestError;

/// A converted request.
#[derive(Debug)]
pub struct Converted {
    /// The request in the internal chat format (a JSON body for [`crate::chat::ChatRequest::parse`]).
    pub chat: Vec<u8>,
    /// What the answer repeats of the request.
    pub echo: Echo,
    /// The client's request, for OpenAI endpoints.
    pub native: NativeResponses,
}

fn bad(param: &str, message: impl Into<String>) -> RequestError {
    RequestError {
        message: message.into(),
        param: Some(param.to_owned()),
    }
}

/// The members a Responses request may have: OpenAI's documented ones, what OpenAI's
/// clients send (`client_metadata`), and the gateway's routing members.
const KNOWN: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_output_tokens",
    "max_tool_calls",
    "temperature",
    "top_p",
    "top_logprobs",
    "stream",
    "stream_options",
    "reasoning",
    "text",
    "metadata",
    "store",
    "include",
    "prompt_cache_key",
    "prompt_cache_retention",
    "client_metadata",
    "user",
    "safety_identifier",
    "service_tier",
    "truncation",
    "previous_response_id",
    "conversation",
    "background",
    "prompt",
    "provider",
    "models",
];

/// The members the `response` object repeats.
const ECHOED: &[&str] = &[
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "temperature",
    "top_p",
    "max_output_tokens",
    "metadata",
    "reasoning",
    "text",
    "truncation",
    "user",
    "prompt_cache_key",
    "safety_identifier",
    "service_tier",
];

/// Built-in tools of OpenAI's Responses API: none runs through the chat format.
const BUILT_IN_TOOLS: &[&str] = &[
    "web_search",
    "web_search_preview",
    "web_search_preview_2025_03_11",
    "file_search",
    "code_interpreter",
    "computer_use_preview",
    "computer_use",
    "image_generation",
    "mcp",
    "local_shell",
    "shell",
    "apply_patch",
    "custom",
];

/// Converts a Responses request body, refusing what cannot be served (see the module
/// documentation), naming the member.
pub fn to_chat(body: &[u8], now: u64) -> Result<Converted, RequestError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| bad("body", format!("The request body is not valid JSON: {e}")))?;
    let Value::Object(mut body) = value else {
        return Err(bad("body", "The request body must be a JSON object."));
    };
    if let Some(k) = body.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(bad(k, format!("Unknown parameter: '{k}'.")));
    }
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => return Err(bad("model", "Missing required parameter: 'model'.")),
    };
    refuse_state(&body)?;
    let mut messages = Vec::new();
    match body.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(_) => return Err(bad("instructions", "instructions: expected a string.")),
    }
    match body.get("input") {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                input_item(item, &format!("input[{i}]"), &mut messages)?;
            }
        }
        None => return Err(bad("input", "Missing required parameter: 'input'.")),
        Some(_) => {
            return Err(bad(
                "input",
                "input: expected a string or an array of input items.",
            ))
        }
    }
    let mut chat = Map::new();
    // The gateway's own members (routing preferences, fallback models) are read here
    // and not passed on to OpenAI.
    for k in ["provider", "models"] {
        if let Some(v) = body.remove(k) {
            chat.insert(k.into(), v);
        }
    }
    chat.insert("model".into(), Value::String(model.clone()));
    chat.insert("messages".into(), Value::Array(messages));
    if let Some(tools) = body.get("tools").filter(|t| !t.is_null()) {
        let converted = convert_tools(tools)?;
        if !converted.is_empty() {
            chat.insert("tools".into(), Value::Array(converted));
        }
    }
    if let Some(choice) = body.get("tool_choice").filter(|t| !t.is_null()) {
        chat.insert("tool_choice".into(), convert_tool_choice(choice)?);
    }
    if let Some(n) = body.get("max_output_tokens").filter(|t| !t.is_null()) {
        match n.as_u64() {
            Some(n) if n >= 1 => {
                chat.insert("max_completion_tokens".into(), json!(n));
            }
            _ => {
                return Err(bad(
                    "max_output_tokens",
                    "max_output_tokens: expected an integer of at least 1.",
                ))
            }
        }
    }
    for k in [
        "temperature",
        "top_p",
        "parallel_tool_calls",
        "user",
        "safety_identifier",
        "prompt_cache_key",
        "service_tier",
    ] {
        if let Some(v) = body.get(k).filter(|v| !v.is_null()) {
            chat.insert(k.into(), v.clone());
        }
    }
    if let Some(r) = body.get("reasoning").filter(|v| !v.is_null()) {
        if !r.is_object() {
            return Err(bad("reasoning", "reasoning: expected an object."));
        }
        if let Some(e) = r.get("effort").filter(|v| !v.is_null()) {
            chat.insert("reasoning_effort".into(), e.clone());
        }
    }
    if let Some(t) = body.get("text").filter(|v| !v.is_null()) {
        text_settings(t, &mut chat)?;
    }
    match body.get("truncation") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "disabled" || s == "auto" => {}
        Some(_) => {
            return Err(bad(
                "truncation",
                "truncation: expected 'disabled' or 'auto'.",
            ))
        }
    }
    match body.get("top_logprobs") {
        None | Some(Value::Null) => {}
        Some(_) => {
            return Err(bad(
                "top_logprobs",
                "top_logprobs is not supported by this gateway's Responses API.",
            ))
        }
    }
    match body.get("include") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
        Some(_) => return Err(bad("include", "include: expected an array of strings.")),
    }
    match body.get("stream") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            chat.insert("stream".into(), Value::Bool(true));
            chat.insert("stream_options".into(), json!({"include_usage": true}));
        }
        Some(_) => return Err(bad("stream", "stream: expected a boolean.")),
    }
    let mut members = Map::new();
    for k in ECHOED {
        if let Some(v) = body.get(*k) {
            members.insert((*k).to_owned(), v.clone());
        }
    }
    let chat = serde_json::to_vec(&Value::Object(chat))
        .map_err(|e| bad("body", format!("The request could not be converted: {e}")))?;
    Ok(Converted {
        chat,
        echo: Echo {
            model,
            members,
            created_at: now,
        },
        native: NativeResponses { body },
    })
}

/// Refuses what needs a response or conversation kept by the gateway, which keeps none.
fn refuse_state(body: &Map<String, Value>) -> Result<(), RequestError> {
    let stateless =
        "this gateway's Responses API is stateless: it keeps no responses or conversations";
    if body.get("store") == Some(&Value::Bool(true)) {
        return Err(bad(
            "store",
            format!("store: true is not supported: {stateless}. Send store: false (or leave it out) and pass the whole conversation in input."),
        ));
    }
    for k in ["previous_response_id", "conversation", "prompt"] {
        if body.get(k).is_some_and(|v| !v.is_null()) {
            return Err(bad(
                k,
                format!("{k} is not supported: {stateless}. Pass the whole conversation in input."),
            ));
        }
    }
    if body.get("background") == Some(&Value::Bool(true)) {
        return Err(bad(
            "background",
            format!("background: true is not supported: {stateless}."),
        ));
    }
    Ok(())
}

/// One input item appended to `messages`.
fn input_item(item: &Value, at: &str, messages: &mut Vec<Value>) -> Result<(), RequestError> {
    let Some(obj) = item.as_object() else {
        return Err(bad(at, format!("{at}: expected an object.")));
    };
    let kind = obj.get("type").and_then(Value::as_str);
    match kind {
        None | Some("message") => message_item(obj, at, messages),
        Some("function_call") => {
            let call_id = string_member(obj, "call_id", at)?;
            let name = string_member(obj, "name", at)?;
            let arguments = string_member(obj, "arguments", at)?;
            let call = json!({"id": call_id, "type": "function",
                              "function": {"name": name, "arguments": arguments}});
            // Consecutive calls are one assistant turn (parallel tool calls), as is a
            // call right after the assistant's text.
            if let Some(last) = messages.last_mut().filter(|m| m["role"] == "assistant") {
                match last.get_mut("tool_calls").and_then(Value::as_array_mut) {
                    Some(calls) => calls.push(call),
                    None => {
                        last["tool_calls"] = json!([call]);
                    }
                }
            } else {
                messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
            }
            Ok(())
        }
        Some("function_call_output") => {
            let call_id = string_member(obj, "call_id", at)?;
            let output = match obj.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => {
                    let mut text = String::new();
                    for (j, p) in parts.iter().enumerate() {
                        match (p["type"].as_str(), p["text"].as_str()) {
                            (Some("input_text" | "output_text"), Some(t)) => text.push_str(t),
                            _ => {
                                return Err(bad(
                                    &format!("{at}.output[{j}]"),
                                    format!("{at}.output[{j}]: only input_text parts are supported in a function_call_output."),
                                ))
                            }
                        }
                    }
                    text
                }
                _ => {
                    return Err(bad(
                        &format!("{at}.output"),
                        format!("{at}.output: expected a string."),
                    ))
                }
            };
            messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": output}));
            Ok(())
        }
        Some("reasoning") => Ok(()),
        Some("item_reference") => Err(bad(
            at,
            format!("{at}: item_reference is not supported: this gateway's Responses API is stateless and keeps no items. Pass the item itself."),
        )),
        Some(other) => Err(bad(
            &format!("{at}.type"),
            format!("{at}.type: `{other}` items are not supported by this gateway (only message, function_call, function_call_output and reasoning items are)."),
        )),
    }
}

fn string_member(obj: &Map<String, Value>, k: &str, at: &str) -> Result<String, RequestError> {
    match obj.get(k) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(bad(
            &format!("{at}.{k}"),
            format!("Missing required parameter: '{at}.{k}'."),
        )),
    }
}

fn message_item(
    obj: &Map<String, Value>,
    at: &str,
    messages: &mut Vec<Value>,
) -> Result<(), RequestError> {
    let role = match obj.get("role").and_then(Value::as_str) {
        Some(r @ ("user" | "assistant" | "system" | "developer")) => r,
        Some(other) => {
            return Err(bad(
                &format!("{at}.role"),
                format!(
                "{at}.role: expected 'user', 'assistant', 'system' or 'developer', not `{other}`."
            ),
            ))
        }
        None => {
            return Err(bad(
                &format!("{at}.role"),
                format!("Missing required parameter: '{at}.role'."),
            ))
        }
    };
    let content = match obj.get("content") {
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, p) in parts.iter().enumerate() {
                out.push(content_part(p, role, &format!("{at}.content[{j}]"))?);
            }
            if role == "assistant" {
                // The assistant's history is text.
                let text: String = out
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("");
                Value::String(text)
            } else {
                Value::Array(out)
            }
        }
        _ => {
            return Err(bad(
                &format!("{at}.content"),
                format!("{at}.content: expected a string or an array of content parts."),
            ))
        }
    };
    messages.push(json!({"role": role, "content": content}));
    Ok(())
}

fn content_part(p: &Value, role: &str, at: &str) -> Result<Value, RequestError> {
    let kind = p["type"].as_str().unwrap_or_default();
    match (role, kind) {
        ("assistant", "output_text" | "input_text") => match p["text"].as_str() {
            Some(t) => Ok(json!({"type": "text", "text": t})),
            None => Err(bad(at, format!("Missing required parameter: '{at}.text'."))),
        },
        ("assistant", "refusal") => Ok(json!({"type": "text", "text": p["refusal"]})),
        (_, "input_text") => match p["text"].as_str() {
            Some(t) => Ok(json!({"type": "text", "text": t})),
            None => Err(bad(at, format!("Missing required parameter: '{at}.text'."))),
        },
        ("user", "input_image") => match p["image_url"].as_str() {
            Some(url) => {
                let mut image = json!({"url": url});
                if let Some(d) = p["detail"].as_str() {
                    image["detail"] = json!(d);
                }
                Ok(json!({"type": "image_url", "image_url": image}))
            }
            None => Err(bad(
                at,
                format!("{at}: an input_image needs an image_url (a URL or a data: URL); file_id is not supported by this gateway."),
            )),
        },
        (_, other) => Err(bad(
            &format!("{at}.type"),
            format!("{at}.type: `{other}` parts are not supported in a {role} message here (user: input_text, input_image; assistant: output_text, refusal; system and developer: input_text)."),
        )),
    }
}

fn convert_tools(tools: &Value) -> Result<Vec<Value>, RequestError> {
    let Some(tools) = tools.as_array() else {
        return Err(bad("tools", "tools: expected an array."));
    };
    let mut out = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        let at = format!("tools[{i}]");
        match t["type"].as_str() {
            Some("function") => {
                let Some(name) = t["name"].as_str() else {
                    return Err(bad(&at, format!("Missing required parameter: '{at}.name'.")));
                };
                let mut function = json!({"name": name});
                for k in ["description", "parameters", "strict"] {
                    if let Some(v) = t.get(k).filter(|v| !v.is_null()) {
                        function[k] = v.clone();
                    }
                }
                out.push(json!({"type": "function", "function": function}));
            }
            // Codex CLI groups its sub-agent tools in a `namespace` tool, a type of its
            // own that no provider defines: they are not offered to the model.
            Some("namespace") => {}
            Some(b) if BUILT_IN_TOOLS.contains(&b) => {
                return Err(bad(
                    &format!("{at}.type"),
                    format!("The built-in tool `{b}` ({at}) cannot be run: no provider this gateway routes the Responses API to runs it. Remove it, or give the model a function tool instead."),
                ))
            }
            Some(other) => {
                return Err(bad(
                    &format!("{at}.type"),
                    format!("{at}.type: unknown tool type `{other}`."),
                ))
            }
            None => {
                return Err(bad(
                    &format!("{at}.type"),
                    format!("Missing required parameter: '{at}.type'."),
                ))
            }
        }
    }
    Ok(out)
}

fn convert_tool_choice(choice: &Value) -> Result<Value, RequestError> {
    match choice {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => {
            Ok(choice.clone())
        }
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            match o.get("name").and_then(Value::as_str) {
                Some(name) => Ok(json!({"type": "function", "function": {"name": name}})),
                None => Err(bad(
                    "tool_choice",
                    "Missing required parameter: 'tool_choice.name'.",
                )),
            }
        }
        Value::Object(o) => Err(bad(
            "tool_choice",
            format!(
                "tool_choice: `{}` cannot be chosen here: only 'auto', 'none', 'required' and function tools are supported.",
                o.get("type").and_then(Value::as_str).unwrap_or("?")
            ),
        )),
        _ => Err(bad(
            "tool_choice",
            "tool_choice: expected 'auto', 'none', 'required' or {\"type\":\"function\",\"name\":...}.",
        )),
    }
}

fn text_settings(t: &Value, chat: &mut Map<String, Value>) -> Result<(), RequestError> {
    if !t.is_object() {
        return Err(bad("text", "text: expected an object."));
    }
    if let Some(v) = t.get("verbosity").filter(|v| !v.is_null()) {
        chat.insert("verbosity".into(), v.clone());
    }
    let Some(format) = t.get("format").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    match format["type"].as_str() {
        Some("text") => Ok(()),
        Some("json_object") => {
            chat.insert("response_format".into(), json!({"type": "json_object"}));
            Ok(())
        }
        Some("json_schema") => {
            let Some(name) = format["name"].as_str() else {
                return Err(bad(
                    "text.format.name",
                    "Missing required parameter: 'text.format.name'.",
                ));
            };
            let mut schema = json!({"name": name});
            for k in ["schema", "strict", "description"] {
                if let Some(v) = format.get(k).filter(|v| !v.is_null()) {
                    schema[k] = v.clone();
                }
            }
            chat.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": schema}),
            );
            Ok(())
        }
        _ => Err(bad(
            "text.format.type",
            "text.format.type: expected 'text', 'json_object' or 'json_schema'.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(v: Value) -> Result<Value, RequestError> {
        let c = to_chat(v.to_string().as_bytes(), 1)?;
        Ok(serde_json::from_slice(&c.chat).expect("json"))
    }

    #[test]
    fn a_conversation_with_tool_calls_becomes_chat_messages() {
        let c = convert(json!({
            "model": "m",
            "instructions": "Be brief.",
            "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "dev"}]},
                {"role": "user", "content": [{"type": "input_text", "text": "hi"},
                    {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"}]},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "x"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
                {"type": "function_call", "call_id": "c1", "name": "ls", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "pwd", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "a b"},
                {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "/"}]},
            ],
            "tools": [{"type": "function", "name": "ls", "description": "list", "parameters": {"type": "object"}, "strict": false},
                      {"type": "namespace", "name": "multi_agent_v1", "tools": [{"type": "function", "name": "spawn_agent"}]}],
            "tool_choice": "auto",
            "parallel_tool_calls": true,
            "max_output_tokens": 100,
            "reasoning": {"effort": "low", "summary": "auto"},
            "store": false,
            "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": "k",
            "client_metadata": {"a": "b"},
            "stream": true,
        }))
        .expect("converted");
        assert_eq!(
            c["messages"],
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "dev"}]},
                {"role": "user", "content": [{"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}}]},
                {"role": "assistant", "content": "Let me look.", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{}"}},
                    {"id": "c2", "type": "function", "function": {"name": "pwd", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "a b"},
                {"role": "tool", "tool_call_id": "c2", "content": "/"},
            ])
        );
        assert_eq!(
            c["tools"],
            json!([{"type": "function", "function": {"name": "ls", "description": "list", "parameters": {"type": "object"}, "strict": false}}])
        );
        assert_eq!(c["max_completion_tokens"], 100);
        assert_eq!(c["reasoning_effort"], "low");
        assert_eq!(c["stream_options"], json!({"include_usage": true}));
        assert_eq!(c["prompt_cache_key"], "k");
        assert!(c.get("client_metadata").is_none());
    }

    #[test]
    fn what_needs_state_or_built_in_tools_is_refused_naming_it() {
        let cases = [
            (json!({"model": "m", "input": "x", "store": true}), "store"),
            (
                json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}),
                "previous_response_id",
            ),
            (
                json!({"model": "m", "input": "x", "background": true}),
                "background",
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}),
                "tools[0].type",
            ),
            (
                json!({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}),
                "input[0]",
            ),
            (
                json!({"model": "m", "input": "x", "nonsense": 1}),
                "nonsense",
            ),
            (json!({"input": "x"}), "model"),
            (json!({"model": "m"}), "input"),
        ];
        for (body, param) in cases {
            let e = convert(body.clone()).expect_err("refused");
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
        }
        let e = convert(json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}))
            .expect_err("refused");
        assert!(e.message.contains("`web_search`"), "{}", e.message);
    }

    #[test]
    fn json_schema_output_becomes_a_response_format() {
        let c = convert(json!({"model": "m", "input": "x", "text": {"format": {
            "type": "json_schema", "name": "n", "schema": {"type": "object"}, "strict": true}}}))
        .expect("converted");
        assert_eq!(
            c["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}, "strict": true}})
        );
    }
}
