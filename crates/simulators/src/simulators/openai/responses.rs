//! Simulated OpenAI Responses API: `POST /v1/responses`, stateless.
//!
//! * **Request**: `model` and `input` (a string, or an array of `message`,
//!   `function_call`, `function_call_output` and `reasoning` items) are required; every
//!   other member is checked against the API reference, and an unknown one is a 400
//!   `unknown_parameter`. Nothing is stored: `previous_response_id`, `conversation` and
//!   `prompt` name objects the simulator does not have (400, not found), and
//!   `background: true` is refused. A `function_call_output` must answer a
//!   `function_call` of the input and every `function_call` must be answered.
//! * **Answer**: the parent module's reply as a `message` item with one `output_text`
//!   part, or a `function_call` item when the chat simulator would call a tool. A
//!   reasoning model (`o1`, `o3`, `o4`, `gpt-5` names, not `-chat` ones) puts a
//!   `reasoning` item first, with an empty summary, whose words (`Simulated
//!   thinking.`) are `output_tokens_details.reasoning_tokens`; its `encrypted_content`
//!   is sent when `include` asks for `reasoning.encrypted_content`.
//!   `max_output_tokens` (at least 16) counts reasoning and text: a longer reply is cut
//!   and the response is `incomplete` with `incomplete_details.reason`
//!   `max_output_tokens`.
//! * **Stream**: `event: <type>` SSE events numbered by `sequence_number` from 0:
//!   `response.created`, `response.in_progress`, then per output item
//!   `response.output_item.added`, its content (`response.content_part.added`, one
//!   `response.output_text.delta` per word, `response.output_text.done`,
//!   `response.content_part.done`; or `response.function_call_arguments.delta` and
//!   `.done`), `response.output_item.done`, and last `response.completed` or
//!   `response.incomplete` with the whole response and its usage. Deltas carry an
//!   `obfuscation` string unless `stream_options.include_obfuscation` is false.
//!   `[[sim:midstream-error]]` ends the stream with an `error` event and a
//!   `response.failed` event; the other fault triggers work as for chat completions,
//!   a keep-alive being an SSE comment.

use std::collections::HashSet;

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::super::{
    count_words, fragments, frames_before_fault, json_response, json_type_name, plan_reply,
    random_id, reset_response, sse_response, tool_call, unix_now, Finish, RecordedRequest, Reply,
    SseFrame, Thinking, Triggers, IMAGE_TOKENS, MESSAGE_TOKENS,
};
use super::validate::{
    article, bool_field, content_text, field, image_url, integer_field, invalid_type,
    invalid_value, is_known_model, missing, number_in_range, required_string, string_field,
};
use super::ApiError;

/// Top-level request members of `POST /v1/responses`.
const KNOWN_FIELDS: &[&str] = &[
    "background",
    "context_management",
    "conversation",
    "include",
    "input",
    "instructions",
    "max_output_tokens",
    "max_tool_calls",
    "metadata",
    "model",
    "moderation",
    "parallel_tool_calls",
    "previous_response_id",
    "prompt",
    "prompt_cache_key",
    "prompt_cache_options",
    "prompt_cache_retention",
    "reasoning",
    "safety_identifier",
    "service_tier",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "truncation",
    "user",
];

/// The values `include` accepts.
const INCLUDABLE: &[&str] = &[
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
];

const REASONING_EFFORTS: &[&str] = &["none", "minimal", "low", "medium", "high", "xhigh"];

/// Built-in tools the simulator accepts (the simulated model never calls them).
const HOSTED_TOOLS: &[&str] = &["web_search", "web_search_preview"];

/// Output tokens when `max_output_tokens` is not set.
const DEFAULT_MAX_OUTPUT_TOKENS: u64 = 32_768;

const INVALID_JSON: &str = "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)";

/// Whether the simulator treats `model` as a reasoning model.
fn is_reasoning_model(model: &str) -> bool {
    ["o1", "o3", "o4", "gpt-5"]
        .iter()
        .any(|prefix| model.starts_with(prefix))
        && !model.contains("-chat")
}

/// A validated request, reduced to what the simulator needs.
struct ResponsesRequest {
    model: String,
    stream: bool,
    obfuscation: bool,
    max_output_tokens: Option<u64>,
    input_tokens: u64,
    last_user_text: String,
    tool_to_call: Option<String>,
    reasoning_model: bool,
    encrypted_reasoning: bool,
    /// The request settings the response object repeats.
    settings: Map<String, Value>,
}

/// `POST /v1/responses`.
pub(super) async fn create(
    request: &RecordedRequest,
    request_id: &str,
) -> Result<Response, ApiError> {
    let body: Value = serde_json::from_slice(&request.body)
        .map_err(|_| ApiError::invalid(INVALID_JSON.to_owned(), None, None))?;
    let parsed = parse_request(&body)?;
    let triggers = Triggers::parse(&parsed.last_user_text, &parsed.model);
    triggers.apply_delay().await;
    if triggers.transport.reset {
        return Ok(reset_response());
    }
    if let Some(status) = triggers.error_status {
        return Err(ApiError::simulated(status, &parsed.model));
    }
    let answer = Answer::new(parsed);
    let headers = [("x-request-id", request_id.to_owned())];
    if !answer.request.stream {
        let response = json_response(StatusCode::OK, &answer.response_json(), &headers);
        return Ok(triggers.transport.non_streamed(response));
    }
    let events = answer.events();
    let deltas: Vec<bool> = events.iter().map(|(_, delta)| *delta).collect();
    let failed_at = frames_before_fault(&deltas, triggers.transport.after.unwrap_or(2));
    let plan = triggers.stream_plan(
        || answer.failure_frames(failed_at, request_id),
        || {
            Bytes::from_static(
                b"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"\n\n",
            )
        },
        || Bytes::from_static(b": keep-alive\n\n"),
    );
    let frames = events
        .into_iter()
        .map(|(event, delta)| {
            let name = event["type"].as_str().unwrap_or_default().to_owned();
            SseFrame::event(&name, &event, delta)
        })
        .collect();
    Ok(sse_response(frames, plan, &headers))
}

fn unknown_parameter(param: &str) -> ApiError {
    ApiError::invalid(
        format!("Unknown parameter: '{param}'."),
        Some(param),
        Some("unknown_parameter"),
    )
}

/// Refuses members of `object` outside `known`, naming them `{param}.{member}`.
fn check_members(object: &Map<String, Value>, known: &[&str], param: &str) -> Result<(), ApiError> {
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(unknown_parameter(&format!("{param}.{unknown}"))),
        None => Ok(()),
    }
}

fn object_field<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    param: &str,
) -> Result<Option<&'a Map<String, Value>>, ApiError> {
    match field(object, key) {
        None => Ok(None),
        Some(Value::Object(inner)) => Ok(Some(inner)),
        Some(other) => Err(invalid_type(param, "an object", other)),
    }
}

/// A string member that must be one of `allowed`.
fn enum_field<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    param: &str,
    allowed: &[&str],
) -> Result<Option<&'a str>, ApiError> {
    match string_field(object, key, param)? {
        Some(value) if !allowed.contains(&value) => Err(invalid_value(param, value, allowed)),
        other => Ok(other),
    }
}

fn not_found(message: String, param: &str, code: Option<&'static str>) -> ApiError {
    ApiError::invalid(message, Some(param), code)
}

/// Validates a request body. Errors are 400s except an unknown model (404).
fn parse_request(body: &Value) -> Result<ResponsesRequest, ApiError> {
    let Value::Object(body) = body else {
        return Err(ApiError::invalid(
            format!(
                "Invalid type for body: expected an object, but got {} instead.",
                article(json_type_name(body))
            ),
            None,
            Some("invalid_type"),
        ));
    };
    if let Some(unknown) = body.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
        return Err(unknown_parameter(unknown));
    }
    let model = required_string(body, "model", "model")?.to_owned();
    if !is_known_model(&model) {
        return Err(ApiError::model_not_found(&model));
    }
    let reasoning_model = is_reasoning_model(&model);

    if let Some(id) = string_field(body, "previous_response_id", "previous_response_id")? {
        return Err(not_found(
            format!("Previous response with id '{id}' not found."),
            "previous_response_id",
            Some("previous_response_not_found"),
        ));
    }
    if let Some(conversation) = field(body, "conversation") {
        let id = match conversation {
            Value::String(id) => id.as_str(),
            Value::Object(c) => required_string(c, "id", "conversation.id")?,
            other => {
                return Err(invalid_type(
                    "conversation",
                    "one of a string or object",
                    other,
                ))
            }
        };
        return Err(not_found(
            format!("Conversation with id '{id}' not found."),
            "conversation",
            None,
        ));
    }
    if let Some(prompt) = object_field(body, "prompt", "prompt")? {
        let id = required_string(prompt, "id", "prompt.id")?;
        return Err(not_found(
            format!("Prompt with id '{id}' not found."),
            "prompt.id",
            None,
        ));
    }
    if bool_field(body, "background")? == Some(true) {
        return Err(ApiError::invalid(
            "Background mode is not supported by the simulated server.".to_owned(),
            Some("background"),
            None,
        ));
    }

    let instructions = string_field(body, "instructions", "instructions")?;
    let summary = match field(body, "input") {
        None => return Err(missing("input")),
        Some(Value::String(text)) => InputSummary {
            tokens: MESSAGE_TOKENS + count_words(text),
            last_user_text: text.clone(),
            ends_with_tool_output: false,
        },
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(ApiError::invalid(
                "Invalid 'input': empty array. Expected an array with minimum length 1, but got an empty array instead.".to_owned(),
                Some("input"),
                Some("empty_array"),
            ))
        }
        Some(Value::Array(items)) => validate_input(items)?,
        Some(other) => {
            return Err(invalid_type(
                "input",
                "one of a string or array of input items",
                other,
            ))
        }
    };
    let input_tokens =
        summary.tokens + instructions.map_or(0, |text| MESSAGE_TOKENS + count_words(text));

    number_in_range(body, "temperature", 0.0, 2.0)?;
    number_in_range(body, "top_p", 0.0, 1.0)?;
    let max_output_tokens = integer_field(body, "max_output_tokens", 16)?.map(i64::unsigned_abs);
    integer_field(body, "max_tool_calls", 1)?;
    integer_field(body, "top_logprobs", 0)?;
    let parallel_tool_calls = bool_field(body, "parallel_tool_calls")?.unwrap_or(true);
    let store = bool_field(body, "store")?.unwrap_or(true);
    let stream = bool_field(body, "stream")?.unwrap_or(false);
    let obfuscation = match object_field(body, "stream_options", "stream_options")? {
        None => true,
        Some(_) if !stream => {
            return Err(ApiError::invalid(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled."
                    .to_owned(),
                Some("stream_options"),
                None,
            ))
        }
        Some(options) => {
            check_members(options, &["include_obfuscation"], "stream_options")?;
            match field(options, "include_obfuscation") {
                None => true,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(invalid_type(
                        "stream_options.include_obfuscation",
                        "a boolean",
                        other,
                    ))
                }
            }
        }
    };
    for key in ["prompt_cache_key", "safety_identifier", "user"] {
        string_field(body, key, key)?;
    }
    let service_tier = enum_field(
        body,
        "service_tier",
        "service_tier",
        &["auto", "default", "flex", "scale", "priority"],
    )?;
    let truncation = enum_field(body, "truncation", "truncation", &["auto", "disabled"])?;
    enum_field(
        body,
        "prompt_cache_retention",
        "prompt_cache_retention",
        &["in_memory", "24h"],
    )?;
    let encrypted_reasoning = parse_include(body)? && reasoning_model;
    let reasoning = parse_reasoning(body, reasoning_model)?;
    let text = parse_text(body)?;
    let metadata = parse_metadata(body)?;
    let (tools, tool_choice, tool_to_call) = parse_tools(body)?;
    let tool_to_call = tool_to_call.filter(|_| !summary.ends_with_tool_output);

    let mut settings = Map::new();
    let mut set = |key: &str, value: Value| {
        settings.insert(key.to_owned(), value);
    };
    set("background", json!(false));
    set("instructions", json!(instructions));
    set("max_output_tokens", json!(max_output_tokens));
    set(
        "max_tool_calls",
        field(body, "max_tool_calls")
            .cloned()
            .unwrap_or(Value::Null),
    );
    set("metadata", metadata);
    set("parallel_tool_calls", json!(parallel_tool_calls));
    set("previous_response_id", Value::Null);
    set(
        "prompt_cache_key",
        field(body, "prompt_cache_key")
            .cloned()
            .unwrap_or(Value::Null),
    );
    set("reasoning", reasoning);
    set(
        "safety_identifier",
        field(body, "safety_identifier")
            .cloned()
            .unwrap_or(Value::Null),
    );
    set(
        "service_tier",
        json!(service_tier.filter(|t| *t != "auto").unwrap_or("default")),
    );
    set("store", json!(store));
    set(
        "temperature",
        field(body, "temperature").cloned().unwrap_or(json!(1.0)),
    );
    set("text", text);
    set("tool_choice", tool_choice);
    set("tools", tools);
    set(
        "top_logprobs",
        field(body, "top_logprobs").cloned().unwrap_or(json!(0)),
    );
    set("top_p", field(body, "top_p").cloned().unwrap_or(json!(1.0)));
    set("truncation", json!(truncation.unwrap_or("disabled")));
    set("user", field(body, "user").cloned().unwrap_or(Value::Null));

    Ok(ResponsesRequest {
        model,
        stream,
        obfuscation,
        max_output_tokens,
        input_tokens,
        last_user_text: summary.last_user_text,
        tool_to_call,
        reasoning_model,
        encrypted_reasoning,
        settings,
    })
}

/// Validates `include`; whether it asks for `reasoning.encrypted_content`.
fn parse_include(body: &Map<String, Value>) -> Result<bool, ApiError> {
    let items = match field(body, "include") {
        None => return Ok(false),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(invalid_type("include", "an array", other)),
    };
    let mut encrypted = false;
    for (i, item) in items.iter().enumerate() {
        let param = format!("include[{i}]");
        let Value::String(value) = item else {
            return Err(invalid_type(&param, "a string", item));
        };
        if !INCLUDABLE.contains(&value.as_str()) {
            return Err(invalid_value(&param, value, INCLUDABLE));
        }
        encrypted |= value == "reasoning.encrypted_content";
    }
    Ok(encrypted)
}

/// Validates `reasoning`; returns the `reasoning` member of the response object.
fn parse_reasoning(body: &Map<String, Value>, reasoning_model: bool) -> Result<Value, ApiError> {
    let Some(reasoning) = object_field(body, "reasoning", "reasoning")? else {
        return Ok(if reasoning_model {
            json!({"effort": "medium", "summary": null})
        } else {
            json!({"effort": null, "summary": null})
        });
    };
    check_members(
        reasoning,
        &["effort", "summary", "generate_summary"],
        "reasoning",
    )?;
    let effort = enum_field(reasoning, "effort", "reasoning.effort", REASONING_EFFORTS)?;
    let summaries = ["auto", "concise", "detailed"];
    let summary = enum_field(reasoning, "summary", "reasoning.summary", &summaries)?;
    enum_field(
        reasoning,
        "generate_summary",
        "reasoning.generate_summary",
        &summaries,
    )?;
    if effort.is_some() && !reasoning_model {
        return Err(ApiError::invalid(
            "Unsupported parameter: 'reasoning.effort' is not supported with this model."
                .to_owned(),
            Some("reasoning.effort"),
            Some("unsupported_parameter"),
        ));
    }
    let effort = effort.or(reasoning_model.then_some("medium"));
    Ok(json!({"effort": effort, "summary": summary}))
}

/// Validates `text`; returns the `text` member of the response object.
fn parse_text(body: &Map<String, Value>) -> Result<Value, ApiError> {
    let Some(text) = object_field(body, "text", "text")? else {
        return Ok(json!({"format": {"type": "text"}, "verbosity": "medium"}));
    };
    check_members(text, &["format", "verbosity"], "text")?;
    let verbosity = enum_field(
        text,
        "verbosity",
        "text.verbosity",
        &["low", "medium", "high"],
    )?
    .unwrap_or("medium");
    let format = match object_field(text, "format", "text.format")? {
        None => json!({"type": "text"}),
        Some(format) => {
            let kinds = ["text", "json_schema", "json_object"];
            let kind = required_string(format, "type", "text.format.type")?;
            if !kinds.contains(&kind) {
                return Err(invalid_value("text.format.type", kind, &kinds));
            }
            if kind == "json_schema" {
                required_string(format, "name", "text.format.name")?;
                match field(format, "schema") {
                    None => return Err(missing("text.format.schema")),
                    Some(Value::Object(_)) => {}
                    Some(other) => {
                        return Err(invalid_type("text.format.schema", "an object", other))
                    }
                }
            }
            Value::Object(format.clone())
        }
    };
    Ok(json!({"format": format, "verbosity": verbosity}))
}

/// Validates `metadata` (at most 16 string values); returns it.
fn parse_metadata(body: &Map<String, Value>) -> Result<Value, ApiError> {
    let Some(metadata) = object_field(body, "metadata", "metadata")? else {
        return Ok(json!({}));
    };
    if metadata.len() > 16 {
        return Err(ApiError::invalid(
            format!("Invalid 'metadata': too many properties. Expected an object with at most 16 properties, but got an object with {} properties instead.", metadata.len()),
            Some("metadata"),
            Some("object_above_max_properties"),
        ));
    }
    for (key, value) in metadata {
        if !value.is_string() {
            return Err(invalid_type(&format!("metadata.{key}"), "a string", value));
        }
    }
    Ok(Value::Object(metadata.clone()))
}

/// Validates `tools` and `tool_choice`; returns both as the response object repeats
/// them and the function the model calls, if it calls one.
fn parse_tools(body: &Map<String, Value>) -> Result<(Value, Value, Option<String>), ApiError> {
    let tools = match field(body, "tools") {
        None => Vec::new(),
        Some(Value::Array(tools)) => tools.clone(),
        Some(other) => return Err(invalid_type("tools", "an array", other)),
    };
    let mut functions = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        if let Some(name) = tool_name(i, tool)? {
            functions.push(name);
        }
    }
    let choice = field(body, "tool_choice")
        .cloned()
        .unwrap_or_else(|| json!("auto"));
    let forced = match &choice {
        Value::String(mode) => match mode.as_str() {
            "none" => return Ok((Value::Array(tools), choice, None)),
            "auto" | "required" => None,
            other => {
                return Err(invalid_value(
                    "tool_choice",
                    other,
                    &["none", "auto", "required"],
                ))
            }
        },
        Value::Object(object) => {
            let kind = required_string(object, "type", "tool_choice.type")?;
            if HOSTED_TOOLS.contains(&kind) {
                return Ok((Value::Array(tools), choice, None));
            }
            if kind != "function" {
                let supported = ["function", "web_search", "web_search_preview"];
                return Err(invalid_value("tool_choice.type", kind, &supported));
            }
            let name = required_string(object, "name", "tool_choice.name")?;
            if !functions.iter().any(|f| f == name) {
                return Err(ApiError::invalid(
                    "Tool choice 'function' not found in 'tools' parameter.".to_owned(),
                    Some("tool_choice"),
                    None,
                ));
            }
            Some(name.to_owned())
        }
        other => {
            return Err(invalid_type(
                "tool_choice",
                "one of a string or object",
                other,
            ))
        }
    };
    let call = forced.or_else(|| functions.into_iter().next());
    Ok((Value::Array(tools), choice, call))
}

/// Validates one tool; the name of a function tool.
fn tool_name(index: usize, tool: &Value) -> Result<Option<String>, ApiError> {
    let param = format!("tools[{index}]");
    let Value::Object(tool) = tool else {
        return Err(invalid_type(&param, "an object", tool));
    };
    let kind = required_string(tool, "type", &format!("{param}.type"))?;
    if HOSTED_TOOLS.contains(&kind) {
        return Ok(None);
    }
    if kind != "function" {
        let supported = ["function", "web_search", "web_search_preview"];
        return Err(invalid_value(&format!("{param}.type"), kind, &supported));
    }
    check_members(
        tool,
        &["type", "name", "description", "parameters", "strict"],
        &param,
    )?;
    let name_param = format!("{param}.name");
    let name = required_string(tool, "name", &name_param)?;
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(ApiError::invalid(
            format!("Invalid '{name_param}': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'."),
            Some(&name_param),
            Some("invalid_value"),
        ));
    }
    string_field(tool, "description", &format!("{param}.description"))?;
    object_field(tool, "parameters", &format!("{param}.parameters"))?;
    if let Some(strict) = field(tool, "strict") {
        if !strict.is_boolean() {
            return Err(invalid_type(
                &format!("{param}.strict"),
                "a boolean",
                strict,
            ));
        }
    }
    Ok(Some(name.to_owned()))
}

/// What the simulator needs to know about the input items.
struct InputSummary {
    tokens: u64,
    last_user_text: String,
    ends_with_tool_output: bool,
}

fn validate_input(items: &[Value]) -> Result<InputSummary, ApiError> {
    let mut tokens = 0;
    let mut last_user_text = String::new();
    let mut ends_with_tool_output = false;
    let mut calls: Vec<String> = Vec::new();
    let mut answered: HashSet<String> = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let param = format!("input[{i}]");
        let Value::Object(item) = item else {
            return Err(invalid_type(&param, "an object", item));
        };
        let kind = match field(item, "type") {
            None if item.contains_key("role") => "message",
            None => return Err(missing(&format!("{param}.type"))),
            Some(Value::String(kind)) => kind.as_str(),
            Some(other) => return Err(invalid_type(&format!("{param}.type"), "a string", other)),
        };
        ends_with_tool_output = kind == "function_call_output";
        match kind {
            "message" => {
                check_members(
                    item,
                    &["type", "role", "content", "id", "status", "phase"],
                    &param,
                )?;
                let role_param = format!("{param}.role");
                let role = required_string(item, "role", &role_param)?;
                let allowed: &[&str] = match role {
                    "user" | "system" | "developer" => &["input_text", "input_image"],
                    "assistant" => &["output_text", "refusal"],
                    other => {
                        return Err(invalid_value(
                            &role_param,
                            other,
                            &["user", "assistant", "system", "developer"],
                        ))
                    }
                };
                let content_param = format!("{param}.content");
                let content = field(item, "content").ok_or_else(|| missing(&content_param))?;
                let (text, images) =
                    content_text(content, &content_param, allowed, validate_image)?;
                tokens += MESSAGE_TOKENS + count_words(&text) + images * IMAGE_TOKENS;
                if role == "user" {
                    last_user_text = text;
                }
            }
            "function_call" => {
                check_members(
                    item,
                    &[
                        "type",
                        "id",
                        "call_id",
                        "name",
                        "arguments",
                        "status",
                        "namespace",
                    ],
                    &param,
                )?;
                let call_id = required_string(item, "call_id", &format!("{param}.call_id"))?;
                required_string(item, "name", &format!("{param}.name"))?;
                let arguments = required_string(item, "arguments", &format!("{param}.arguments"))?;
                tokens += MESSAGE_TOKENS + count_words(arguments);
                calls.push(call_id.to_owned());
            }
            "function_call_output" => {
                check_members(item, &["type", "id", "call_id", "output", "status"], &param)?;
                let call_id = required_string(item, "call_id", &format!("{param}.call_id"))?;
                let output_param = format!("{param}.output");
                let output = field(item, "output").ok_or_else(|| missing(&output_param))?;
                let (text, images) = content_text(
                    output,
                    &output_param,
                    &["input_text", "input_image"],
                    validate_image,
                )?;
                if !calls.iter().any(|c| c == call_id) {
                    return Err(ApiError::invalid(
                        format!(
                            "No tool call found for function call output with call_id {call_id}."
                        ),
                        Some("input"),
                        None,
                    ));
                }
                answered.insert(call_id.to_owned());
                tokens += MESSAGE_TOKENS + count_words(&text) + images * IMAGE_TOKENS;
                last_user_text = text;
            }
            "reasoning" => {
                check_members(
                    item,
                    &[
                        "type",
                        "id",
                        "summary",
                        "encrypted_content",
                        "content",
                        "status",
                    ],
                    &param,
                )?;
                string_field(item, "id", &format!("{param}.id"))?;
                string_field(
                    item,
                    "encrypted_content",
                    &format!("{param}.encrypted_content"),
                )?;
                let summary_param = format!("{param}.summary");
                let summary = match field(item, "summary") {
                    None => return Err(missing(&summary_param)),
                    Some(Value::Array(parts)) => parts,
                    Some(other) => return Err(invalid_type(&summary_param, "an array", other)),
                };
                for (j, part) in summary.iter().enumerate() {
                    let part_param = format!("{summary_param}[{j}]");
                    let Value::Object(part) = part else {
                        return Err(invalid_type(&part_param, "an object", part));
                    };
                    let kind = required_string(part, "type", &format!("{part_param}.type"))?;
                    if kind != "summary_text" {
                        return Err(invalid_value(
                            &format!("{part_param}.type"),
                            kind,
                            &["summary_text"],
                        ));
                    }
                    let text = required_string(part, "text", &format!("{part_param}.text"))?;
                    tokens += count_words(text);
                }
            }
            other => {
                return Err(invalid_value(
                    &format!("{param}.type"),
                    other,
                    &[
                        "message",
                        "function_call",
                        "function_call_output",
                        "reasoning",
                    ],
                ))
            }
        }
    }
    if let Some(unanswered) = calls.iter().find(|c| !answered.contains(*c)) {
        return Err(ApiError::invalid(
            format!("No tool output found for function call {unanswered}."),
            Some("input"),
            None,
        ));
    }
    Ok(InputSummary {
        tokens,
        last_user_text,
        ends_with_tool_output,
    })
}

/// An `input_image` part: an `image_url` (an http(s) URL or a base64 data URL) or a
/// `file_id`, and an optional `detail`.
fn validate_image(part: &Map<String, Value>, param: &str) -> Result<(), ApiError> {
    check_members(part, &["type", "image_url", "file_id", "detail"], param)?;
    let detail_param = format!("{param}.detail");
    enum_field(part, "detail", &detail_param, &["low", "high", "auto"])?;
    let url_param = format!("{param}.image_url");
    let file_id = string_field(part, "file_id", &format!("{param}.file_id"))?;
    let Some(url) = string_field(part, "image_url", &url_param)? else {
        return match file_id {
            Some(_) => Ok(()),
            None => Err(missing(&url_param)),
        };
    };
    image_url(url, &url_param)
}

/// What the simulated model produces after its reasoning.
enum Outcome {
    Text(Reply),
    Call {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
    },
}

/// The reasoning item of a reasoning model.
struct Reasoning {
    id: String,
    tokens: u64,
    encrypted_content: Option<String>,
}

/// A planned answer: the reasoning item, the outcome and the response's identity.
struct Answer {
    id: String,
    created_at: u64,
    message_id: String,
    reasoning: Option<Reasoning>,
    outcome: Outcome,
    request: ResponsesRequest,
}

impl Answer {
    fn new(request: ResponsesRequest) -> Self {
        let reasoning = request.reasoning_model.then(|| {
            let thinking = Thinking::new();
            Reasoning {
                id: random_id("rs_", 48),
                tokens: thinking.output_tokens(),
                encrypted_content: request
                    .encrypted_reasoning
                    .then(|| random_id("gAAAAAB", 120)),
            }
        });
        let reasoning_tokens = reasoning.as_ref().map_or(0, |r| r.tokens);
        let outcome = match &request.tool_to_call {
            Some(name) => {
                let (name, arguments) = tool_call(name, &request.last_user_text);
                Outcome::Call {
                    id: random_id("fc_", 48),
                    call_id: random_id("call_", 24),
                    name,
                    arguments: arguments.to_string(),
                }
            }
            None => {
                let limit = request
                    .max_output_tokens
                    .unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS)
                    .saturating_sub(reasoning_tokens);
                Outcome::Text(plan_reply(&request.last_user_text, limit, &[]))
            }
        };
        Answer {
            id: random_id("resp_", 48),
            created_at: unix_now(),
            message_id: random_id("msg_", 48),
            reasoning,
            outcome,
            request,
        }
    }

    fn incomplete(&self) -> bool {
        matches!(
            &self.outcome,
            Outcome::Text(Reply {
                finish: Finish::Length,
                ..
            })
        )
    }

    fn usage(&self) -> Value {
        let reasoning = self.reasoning.as_ref().map_or(0, |r| r.tokens);
        let output = reasoning
            + match &self.outcome {
                Outcome::Text(reply) => reply.output_tokens(),
                Outcome::Call { arguments, .. } => count_words(arguments),
            };
        let input = self.request.input_tokens;
        json!({
            "input_tokens": input,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": input + output,
        })
    }

    /// The reasoning item, if any, as `output` lists it.
    fn reasoning_item(&self) -> Option<Value> {
        self.reasoning.as_ref().map(|r| {
            let mut item = json!({"id": r.id, "type": "reasoning", "summary": []});
            if let Some(content) = &r.encrypted_content {
                item["encrypted_content"] = json!(content);
            }
            item
        })
    }

    fn text_part(text: &str) -> Value {
        json!({"type": "output_text", "annotations": [], "logprobs": [], "text": text})
    }

    /// The message or function call item; `done` gives its final state, else the state
    /// `response.output_item.added` announces.
    fn outcome_item(&self, done: bool) -> Value {
        match &self.outcome {
            Outcome::Text(reply) => {
                let (status, content) = match (done, self.incomplete()) {
                    (false, _) => ("in_progress", json!([])),
                    (true, incomplete) => (
                        if incomplete {
                            "incomplete"
                        } else {
                            "completed"
                        },
                        json!([Self::text_part(&reply.text)]),
                    ),
                };
                json!({
                    "id": self.message_id,
                    "type": "message",
                    "status": status,
                    "content": content,
                    "role": "assistant",
                })
            }
            Outcome::Call {
                id,
                call_id,
                name,
                arguments,
            } => json!({
                "id": id,
                "type": "function_call",
                "status": if done { "completed" } else { "in_progress" },
                "arguments": if done { arguments.as_str() } else { "" },
                "call_id": call_id,
                "name": name,
            }),
        }
    }

    /// The response object with a status, its output and its usage.
    fn response_object(&self, status: &str, output: Vec<Value>, usage: Value) -> Value {
        let mut response = Map::new();
        response.insert("id".to_owned(), json!(self.id));
        response.insert("object".to_owned(), json!("response"));
        response.insert("created_at".to_owned(), json!(self.created_at));
        response.insert("status".to_owned(), json!(status));
        let finished = matches!(status, "completed" | "incomplete");
        response.insert(
            "completed_at".to_owned(),
            if finished {
                json!(unix_now())
            } else {
                Value::Null
            },
        );
        response.insert("error".to_owned(), Value::Null);
        response.insert(
            "incomplete_details".to_owned(),
            if status == "incomplete" {
                json!({"reason": "max_output_tokens"})
            } else {
                Value::Null
            },
        );
        response.insert("model".to_owned(), json!(self.request.model));
        response.insert("output".to_owned(), Value::Array(output));
        for (key, value) in &self.request.settings {
            response.insert(key.clone(), value.clone());
        }
        response.insert("usage".to_owned(), usage);
        Value::Object(response)
    }

    fn final_status(&self) -> &'static str {
        if self.incomplete() {
            "incomplete"
        } else {
            "completed"
        }
    }

    /// The non-streamed response object.
    fn response_json(&self) -> Value {
        let output = self
            .reasoning_item()
            .into_iter()
            .chain([self.outcome_item(true)])
            .collect();
        self.response_object(self.final_status(), output, self.usage())
    }

    /// The stream's events, each with its `sequence_number`, and whether it is a
    /// content delta.
    fn events(&self) -> Vec<(Value, bool)> {
        let mut events = EventLog::default();
        let start = self.response_object("in_progress", Vec::new(), Value::Null);
        events.push("response.created", json!({"response": start}), false);
        events.push("response.in_progress", json!({"response": start}), false);
        let mut output_index = 0;
        if let Some(item) = self.reasoning_item() {
            let added = json!({"output_index": 0, "item": item});
            events.push("response.output_item.added", added, false);
            let done = json!({"output_index": 0, "item": item});
            events.push("response.output_item.done", done, false);
            output_index = 1;
        }
        let added = json!({"output_index": output_index, "item": self.outcome_item(false)});
        events.push("response.output_item.added", added, false);
        match &self.outcome {
            Outcome::Text(reply) => {
                let at = json!({
                    "item_id": self.message_id,
                    "output_index": output_index,
                    "content_index": 0,
                });
                let with = |extra: Value| merge(&at, extra);
                events.push(
                    "response.content_part.added",
                    with(json!({"part": Self::text_part("")})),
                    false,
                );
                for piece in &reply.pieces {
                    let mut delta = with(json!({"delta": piece, "logprobs": []}));
                    if self.request.obfuscation {
                        delta["obfuscation"] = json!(obfuscation(piece));
                    }
                    events.push("response.output_text.delta", delta, true);
                }
                events.push(
                    "response.output_text.done",
                    with(json!({"text": reply.text, "logprobs": []})),
                    false,
                );
                events.push(
                    "response.content_part.done",
                    with(json!({"part": Self::text_part(&reply.text)})),
                    false,
                );
            }
            Outcome::Call {
                id,
                name,
                arguments,
                ..
            } => {
                let at = json!({"item_id": id, "output_index": output_index});
                for fragment in fragments(arguments, 3) {
                    let mut delta = merge(&at, json!({"delta": fragment}));
                    if self.request.obfuscation {
                        delta["obfuscation"] = json!(obfuscation(&fragment));
                    }
                    events.push("response.function_call_arguments.delta", delta, true);
                }
                events.push(
                    "response.function_call_arguments.done",
                    merge(&at, json!({"arguments": arguments, "name": name})),
                    false,
                );
            }
        }
        let done = json!({"output_index": output_index, "item": self.outcome_item(true)});
        events.push("response.output_item.done", done, false);
        let last = format!("response.{}", self.final_status());
        events.push(&last, json!({"response": self.response_json()}), false);
        events.0
    }

    /// The frames a `[[sim:midstream-error]]` stream ends with after its first
    /// `sequence` events: an `error` event and `response.failed`.
    fn failure_frames(&self, sequence: usize, request_id: &str) -> Bytes {
        let message = format!("An error occurred while processing your request. You can retry your request, or contact us through our help center at help.openai.com if the error persists. Please include the request ID {request_id} in your message.");
        let error = json!({
            "type": "error",
            "code": "server_error",
            "message": message,
            "param": null,
            "sequence_number": sequence,
        });
        let mut failed = self.response_object("failed", Vec::new(), Value::Null);
        failed["error"] = json!({"code": "server_error", "message": message});
        let failed = json!({
            "type": "response.failed",
            "response": failed,
            "sequence_number": sequence + 1,
        });
        Bytes::from(format!(
            "event: error\ndata: {error}\n\nevent: response.failed\ndata: {failed}\n\n"
        ))
    }
}

/// Stream events numbered in order.
#[derive(Default)]
struct EventLog(Vec<(Value, bool)>);

impl EventLog {
    fn push(&mut self, kind: &str, body: Value, delta: bool) {
        let mut event = json!({"type": kind, "sequence_number": self.0.len()});
        if let (Value::Object(event), Value::Object(body)) = (&mut event, body) {
            event.extend(body);
        }
        self.0.push((event, delta));
    }
}

/// `base` with the members of `extra` added.
fn merge(base: &Value, extra: Value) -> Value {
    let mut merged = base.clone();
    if let (Value::Object(merged), Value::Object(extra)) = (&mut merged, extra) {
        merged.extend(extra);
    }
    merged
}

/// Random padding that evens out the length of a delta event, as the real API sends
/// in `obfuscation`.
fn obfuscation(delta: &str) -> String {
    random_id("", 16usize.saturating_sub(delta.len()).max(1))
}

#[cfg(test)]
#[path = "responses_tests.rs"]
mod tests;
