//! Request validation for the simulated Chat Completions API, with the real API's
//! error messages, `param` paths and codes.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::super::{count_words, json_type_name, IMAGE_MEDIA_TYPES, IMAGE_TOKENS, MESSAGE_TOKENS};
use super::ApiError;

/// Top-level request fields the real API accepts.
const KNOWN_FIELDS: &[&str] = &[
    "model",
    "messages",
    "audio",
    "frequency_penalty",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "max_completion_tokens",
    "max_tokens",
    "metadata",
    "modalities",
    "n",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "prompt_cache_key",
    "reasoning_effort",
    "response_format",
    "safety_identifier",
    "seed",
    "service_tier",
    "stop",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "user",
    "verbosity",
    "web_search_options",
];

const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Whether `model` names a model the simulator serves.
pub(super) fn is_known_model(model: &str) -> bool {
    ["gpt-", "o1", "o3", "o4", "mock-", "sim-"]
        .iter()
        .any(|prefix| model.starts_with(prefix))
}

/// A validated chat completion request, reduced to what the simulator needs.
#[derive(Debug)]
pub(super) struct ChatRequest {
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
    pub max_tokens: u64,
    pub stop: Vec<String>,
    pub prompt_tokens: u64,
    /// Text of the last `user` or `tool` message.
    pub last_user_text: String,
    /// The tool the model calls, if it calls one.
    pub tool_to_call: Option<String>,
}

/// `"an integer"`, `"a string"`, ...
pub(super) fn article(type_name: &str) -> String {
    match type_name.as_bytes().first() {
        Some(b'a' | b'e' | b'i' | b'o' | b'u') => format!("an {type_name}"),
        _ => format!("a {type_name}"),
    }
}

pub(super) fn invalid_type(param: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::invalid(
        format!(
            "Invalid type for '{param}': expected {expected}, but got {} instead.",
            article(json_type_name(got))
        ),
        Some(param),
        Some("invalid_type"),
    )
}

pub(super) fn missing(param: &str) -> ApiError {
    ApiError::invalid(
        format!("Missing required parameter: '{param}'."),
        Some(param),
        Some("missing_required_parameter"),
    )
}

pub(super) fn invalid_value(param: &str, got: &str, supported: &[&str]) -> ApiError {
    let quoted: Vec<String> = supported.iter().map(|s| format!("'{s}'")).collect();
    let list = match quoted.split_last() {
        Some((last, [only])) => format!("{only} and {last}"),
        Some((last, rest)) if !rest.is_empty() => format!("{}, and {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    };
    ApiError::invalid(
        format!("Invalid value: '{got}'. Supported values are: {list}."),
        Some(param),
        Some("invalid_value"),
    )
}

/// A field that is present and not `null` (the API treats `null` as absent).
pub(super) fn field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

pub(super) fn string_field<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    param: &str,
) -> Result<Option<&'a str>, ApiError> {
    match field(object, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(invalid_type(param, "a string", other)),
    }
}

pub(super) fn required_string<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    param: &str,
) -> Result<&'a str, ApiError> {
    string_field(object, key, param)?.ok_or_else(|| missing(param))
}

pub(super) fn bool_field(object: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match field(object, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(invalid_type(key, "a boolean", other)),
    }
}

pub(super) fn number_in_range(
    object: &Map<String, Value>,
    key: &str,
    min: f64,
    max: f64,
) -> Result<(), ApiError> {
    let Some(value) = field(object, key) else {
        return Ok(());
    };
    let Some(number) = value.as_f64() else {
        return Err(invalid_type(key, "a decimal", value));
    };
    if number < min {
        return Err(ApiError::invalid(
            format!("Invalid '{key}': decimal below minimum value. Expected a value >= {min}, but got {value} instead."),
            Some(key),
            Some("decimal_below_min_value"),
        ));
    }
    if number > max {
        return Err(ApiError::invalid(
            format!("Invalid '{key}': decimal above maximum value. Expected a value <= {max}, but got {value} instead."),
            Some(key),
            Some("decimal_above_max_value"),
        ));
    }
    Ok(())
}

pub(super) fn integer_field(
    object: &Map<String, Value>,
    key: &str,
    min: i64,
) -> Result<Option<i64>, ApiError> {
    let Some(value) = field(object, key) else {
        return Ok(None);
    };
    let Some(number) = value.as_i64().or_else(|| value.as_u64().map(|_| i64::MAX)) else {
        return Err(invalid_type(key, "an integer", value));
    };
    if number < min {
        return Err(ApiError::invalid(
            format!("Invalid '{key}': integer below minimum value. Expected a value >= {min}, but got {number} instead."),
            Some(key),
            Some("integer_below_min_value"),
        ));
    }
    Ok(Some(number))
}

/// Validates a request body. Errors are 400s except an unknown model (404).
pub(super) fn parse_request(body: &Value) -> Result<ChatRequest, ApiError> {
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
        return Err(ApiError::invalid(
            format!("Unrecognized request argument supplied: {unknown}"),
            None,
            None,
        ));
    }
    let model = match body.get("model") {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                "you must provide a model parameter".to_owned(),
                None,
                None,
            ))
        }
        Some(Value::String(model)) => model.clone(),
        Some(other) => return Err(invalid_type("model", "a string", other)),
    };
    if !is_known_model(&model) {
        return Err(ApiError::model_not_found(&model));
    }

    let messages = match field(body, "messages") {
        None => return Err(missing("messages")),
        Some(Value::Array(messages)) => messages,
        Some(other) => return Err(invalid_type("messages", "an array", other)),
    };
    if messages.is_empty() {
        return Err(ApiError::invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.".to_owned(),
            Some("messages"),
            Some("empty_array"),
        ));
    }
    let summary = validate_messages(messages)?;

    number_in_range(body, "temperature", 0.0, 2.0)?;
    number_in_range(body, "top_p", 0.0, 1.0)?;
    number_in_range(body, "presence_penalty", -2.0, 2.0)?;
    number_in_range(body, "frequency_penalty", -2.0, 2.0)?;
    let max_tokens = integer_field(body, "max_tokens", 1)?;
    let max_completion_tokens = integer_field(body, "max_completion_tokens", 1)?;
    let max_tokens = max_completion_tokens
        .or(max_tokens)
        .map_or(DEFAULT_MAX_TOKENS, |n| n.unsigned_abs());
    if let Some(n) = integer_field(body, "n", 1)? {
        if n != 1 {
            return Err(ApiError::invalid(
                format!("Invalid 'n': the simulator only supports n=1, but got {n}."),
                Some("n"),
                Some("invalid_value"),
            ));
        }
    }
    integer_field(body, "seed", i64::MIN)?;
    integer_field(body, "top_logprobs", 0)?;
    bool_field(body, "logprobs")?;
    bool_field(body, "store")?;
    bool_field(body, "parallel_tool_calls")?;
    string_field(body, "user", "user")?;

    let stream = bool_field(body, "stream")?.unwrap_or(false);
    let include_usage = match field(body, "stream_options") {
        None => false,
        Some(_) if !stream => {
            return Err(ApiError::invalid(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled."
                    .to_owned(),
                Some("stream_options"),
                None,
            ))
        }
        Some(Value::Object(options)) => match field(options, "include_usage") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(invalid_type(
                    "stream_options.include_usage",
                    "a boolean",
                    other,
                ))
            }
        },
        Some(other) => return Err(invalid_type("stream_options", "an object", other)),
    };

    let stop = parse_stop(body)?;
    if let Some(format) = field(body, "response_format") {
        let Value::Object(format) = format else {
            return Err(invalid_type("response_format", "an object", format));
        };
        let kind = required_string(format, "type", "response_format.type")?;
        if !["text", "json_object", "json_schema"].contains(&kind) {
            return Err(invalid_value(
                "response_format.type",
                kind,
                &["text", "json_object", "json_schema"],
            ));
        }
    }
    let tool_to_call = parse_tools(body)?.filter(|_| !summary.ends_with_tool_result);

    Ok(ChatRequest {
        model,
        stream,
        include_usage,
        max_tokens,
        stop,
        prompt_tokens: summary.prompt_tokens,
        last_user_text: summary.last_user_text,
        tool_to_call,
    })
}

fn parse_stop(body: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    match field(body, "stop") {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => {
            if items.len() > 4 {
                return Err(ApiError::invalid(
                    format!("Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with length {} instead.", items.len()),
                    Some("stop"),
                    Some("array_above_max_length"),
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(invalid_type(&format!("stop[{i}]"), "a string", other)),
                })
                .collect()
        }
        Some(other) => Err(invalid_type(
            "stop",
            "one of a string or array of strings",
            other,
        )),
    }
}

/// Validates `tools` / `tool_choice`; returns the tool the model would call.
fn parse_tools(body: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    let names = match field(body, "tools") {
        None => Vec::new(),
        Some(Value::Array(tools)) if tools.is_empty() => {
            return Err(ApiError::invalid(
                "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty array instead.".to_owned(),
                Some("tools"),
                Some("empty_array"),
            ))
        }
        Some(Value::Array(tools)) => tools
            .iter()
            .enumerate()
            .map(|(i, tool)| tool_name(i, tool))
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => return Err(invalid_type("tools", "an array", other)),
    };
    let choice = field(body, "tool_choice");
    if choice.is_some() && names.is_empty() {
        return Err(ApiError::invalid(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.".to_owned(),
            Some("tool_choice"),
            None,
        ));
    }
    let forced = match choice {
        None => None,
        Some(Value::String(mode)) => match mode.as_str() {
            "none" => return Ok(None),
            "auto" | "required" => None,
            other => {
                return Err(invalid_value(
                    "tool_choice",
                    other,
                    &["none", "auto", "required"],
                ))
            }
        },
        Some(Value::Object(choice)) => {
            let kind = required_string(choice, "type", "tool_choice.type")?;
            if kind != "function" {
                return Err(invalid_value("tool_choice.type", kind, &["function"]));
            }
            let function = match field(choice, "function") {
                Some(Value::Object(function)) => function,
                Some(other) => {
                    return Err(invalid_type("tool_choice.function", "an object", other))
                }
                None => return Err(missing("tool_choice.function")),
            };
            let name = required_string(function, "name", "tool_choice.function.name")?;
            if !names.iter().any(|n| n == name) {
                return Err(ApiError::invalid(
                    format!("Invalid value for 'tool_choice': function '{name}' is not among the provided 'tools'."),
                    Some("tool_choice"),
                    Some("invalid_value"),
                ));
            }
            Some(name.to_owned())
        }
        Some(other) => {
            return Err(invalid_type(
                "tool_choice",
                "one of a string or object",
                other,
            ))
        }
    };
    Ok(forced.or_else(|| names.into_iter().next()))
}

fn tool_name(index: usize, tool: &Value) -> Result<String, ApiError> {
    let param = format!("tools[{index}]");
    let Value::Object(tool) = tool else {
        return Err(invalid_type(&param, "an object", tool));
    };
    let kind = required_string(tool, "type", &format!("{param}.type"))?;
    if kind != "function" {
        return Err(invalid_value(&format!("{param}.type"), kind, &["function"]));
    }
    let function = match field(tool, "function") {
        Some(Value::Object(function)) => function,
        Some(other) => {
            return Err(invalid_type(
                &format!("{param}.function"),
                "an object",
                other,
            ))
        }
        None => return Err(missing(&format!("{param}.function"))),
    };
    let name_param = format!("{param}.function.name");
    let name = required_string(function, "name", &name_param)?;
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(ApiError::invalid(
            format!("Invalid '{name_param}': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{{1,64}}$'."),
            Some(&name_param),
            Some("invalid_value"),
        ));
    }
    if let Some(parameters) = field(function, "parameters") {
        if !parameters.is_object() {
            return Err(invalid_type(
                &format!("{param}.function.parameters"),
                "an object",
                parameters,
            ));
        }
    }
    Ok(name.to_owned())
}

/// What the simulator needs to know about the conversation.
struct MessageSummary {
    prompt_tokens: u64,
    last_user_text: String,
    ends_with_tool_result: bool,
}

/// An assistant message's tool calls that still wait for tool messages.
struct PendingToolCalls {
    message_index: usize,
    ids: Vec<String>,
    answered: HashSet<String>,
}

impl PendingToolCalls {
    fn check_complete(&self) -> Result<(), ApiError> {
        let missing: Vec<&str> = self
            .ids
            .iter()
            .filter(|id| !self.answered.contains(*id))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let param = format!("messages.[{}].role", self.message_index);
        Err(ApiError::invalid(
            format!("An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}", missing.join(", ")),
            Some(&param),
            None,
        ))
    }
}

fn validate_messages(messages: &[Value]) -> Result<MessageSummary, ApiError> {
    let mut prompt_tokens = 0;
    let mut last_user_text = String::new();
    let mut pending: Option<PendingToolCalls> = None;
    let mut ends_with_tool_result = false;
    for (i, message) in messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        let Value::Object(message) = message else {
            return Err(invalid_type(&param, "an object", message));
        };
        let role = required_string(message, "role", &format!("{param}.role"))?;
        let allowed_parts: &[&str] = match role {
            "system" | "developer" | "tool" => &["text"],
            "user" => &["text", "image_url"],
            "assistant" => &["text", "refusal"],
            other => {
                return Err(invalid_value(
                    &format!("{param}.role"),
                    other,
                    &["system", "assistant", "user", "tool", "developer"],
                ))
            }
        };
        if role != "tool" {
            if let Some(pending) = pending.take() {
                pending.check_complete()?;
            }
        }
        let content_param = format!("{param}.content");
        let content = match field(message, "content") {
            None if role == "assistant" => None,
            None => return Err(missing(&content_param)),
            Some(content) => Some(content_text(
                content,
                &content_param,
                allowed_parts,
                validate_image_part,
            )?),
        };
        let (text, images) = content.unwrap_or_default();
        prompt_tokens += MESSAGE_TOKENS + count_words(&text) + images * IMAGE_TOKENS;
        ends_with_tool_result = role == "tool";
        match role {
            "user" => last_user_text = text,
            "assistant" => {
                let (ids, argument_words) = assistant_tool_calls(message, &param)?;
                if ids.is_empty() && field(message, "content").is_none() {
                    return Err(ApiError::invalid(
                        "Invalid value for 'content': expected a string, got null.".to_owned(),
                        Some(&format!("messages.[{i}].content")),
                        None,
                    ));
                }
                prompt_tokens += argument_words;
                if !ids.is_empty() {
                    pending = Some(PendingToolCalls {
                        message_index: i,
                        ids,
                        answered: HashSet::new(),
                    });
                }
            }
            "tool" => {
                let id =
                    required_string(message, "tool_call_id", &format!("{param}.tool_call_id"))?;
                let Some(calls) = pending.as_mut() else {
                    return Err(ApiError::invalid(
                        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.".to_owned(),
                        Some(&format!("messages.[{i}].role")),
                        None,
                    ));
                };
                if !calls.ids.iter().any(|known| known == id) {
                    return Err(ApiError::invalid(
                        format!("Invalid parameter: 'tool_call_id' of '{id}' not found in 'tool_calls' of previous message."),
                        Some(&format!("messages.[{i}].tool_call_id")),
                        None,
                    ));
                }
                calls.answered.insert(id.to_owned());
                last_user_text = text;
            }
            _ => {}
        }
    }
    if let Some(pending) = pending {
        pending.check_complete()?;
    }
    Ok(MessageSummary {
        prompt_tokens,
        last_user_text,
        ends_with_tool_result,
    })
}

/// Validates an assistant message's `tool_calls`; returns their ids and the words of
/// their arguments.
fn assistant_tool_calls(
    message: &Map<String, Value>,
    param: &str,
) -> Result<(Vec<String>, u64), ApiError> {
    let calls = match field(message, "tool_calls") {
        None => return Ok((Vec::new(), 0)),
        Some(Value::Array(calls)) => calls,
        Some(other) => {
            return Err(invalid_type(
                &format!("{param}.tool_calls"),
                "an array",
                other,
            ))
        }
    };
    let mut ids = Vec::new();
    let mut words = 0;
    for (j, call) in calls.iter().enumerate() {
        let call_param = format!("{param}.tool_calls[{j}]");
        let Value::Object(call) = call else {
            return Err(invalid_type(&call_param, "an object", call));
        };
        ids.push(required_string(call, "id", &format!("{call_param}.id"))?.to_owned());
        let kind = required_string(call, "type", &format!("{call_param}.type"))?;
        if kind != "function" {
            return Err(invalid_value(
                &format!("{call_param}.type"),
                kind,
                &["function"],
            ));
        }
        let function = match field(call, "function") {
            Some(Value::Object(function)) => function,
            Some(other) => {
                return Err(invalid_type(
                    &format!("{call_param}.function"),
                    "an object",
                    other,
                ))
            }
            None => return Err(missing(&format!("{call_param}.function"))),
        };
        required_string(function, "name", &format!("{call_param}.function.name"))?;
        let arguments = required_string(
            function,
            "arguments",
            &format!("{call_param}.function.arguments"),
        )?;
        words += count_words(arguments);
    }
    Ok((ids, words))
}

/// Validates message content or a Responses function call's output (a string or an
/// array of parts of the `allowed` types); returns its text (parts joined with a space)
/// and its number of images, each checked by `image` (the chat and the Responses API
/// shape image parts differently).
pub(super) fn content_text(
    content: &Value,
    param: &str,
    allowed: &[&str],
    image: fn(&Map<String, Value>, &str) -> Result<(), ApiError>,
) -> Result<(String, u64), ApiError> {
    let parts = match content {
        Value::String(text) => return Ok((text.clone(), 0)),
        Value::Array(parts) => parts,
        other => {
            return Err(invalid_type(
                param,
                "one of a string or array of objects",
                other,
            ))
        }
    };
    let mut texts = Vec::new();
    let mut images = 0;
    for (j, part) in parts.iter().enumerate() {
        let part_param = format!("{param}[{j}]");
        let Value::Object(part) = part else {
            return Err(invalid_type(&part_param, "an object", part));
        };
        let kind = required_string(part, "type", &format!("{part_param}.type"))?;
        if !allowed.contains(&kind) {
            return Err(invalid_value(&format!("{part_param}.type"), kind, allowed));
        }
        match kind {
            "text" | "input_text" | "output_text" => texts.push(required_string(
                part,
                "text",
                &format!("{part_param}.text"),
            )?),
            "refusal" => texts.push(required_string(
                part,
                "refusal",
                &format!("{part_param}.refusal"),
            )?),
            _ => {
                image(part, &part_param)?;
                images += 1;
            }
        }
    }
    Ok((texts.join(" "), images))
}

/// A chat `image_url` part: `{"url", "detail"}`.
fn validate_image_part(part: &Map<String, Value>, param: &str) -> Result<(), ApiError> {
    let image_param = format!("{param}.image_url");
    let image = match field(part, "image_url") {
        Some(Value::Object(image)) => image,
        Some(other) => return Err(invalid_type(&image_param, "an object", other)),
        None => return Err(missing(&image_param)),
    };
    let url_param = format!("{image_param}.url");
    let url = required_string(image, "url", &url_param)?;
    if let Some(detail) = string_field(image, "detail", &format!("{image_param}.detail"))? {
        if !["auto", "low", "high"].contains(&detail) {
            return Err(invalid_value(
                &format!("{image_param}.detail"),
                detail,
                &["auto", "low", "high"],
            ));
        }
    }
    image_url(url, &url_param)
}

/// An image URL: an http(s) URL, or a base64 data URL of a supported image type.
pub(super) fn image_url(url: &str, url_param: &str) -> Result<(), ApiError> {
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(());
    }
    let expected = "Expected a base64-encoded data URL with an image MIME type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), or a publicly accessible image URL";
    let invalid = |detail: &str| {
        ApiError::invalid(
            format!("Invalid '{url_param}'. {expected}{detail}."),
            Some(url_param),
            Some("invalid_value"),
        )
    };
    let Some(rest) = url.strip_prefix("data:") else {
        return Err(invalid(""));
    };
    let Some((media_type, data)) = rest.split_once(";base64,") else {
        return Err(invalid(", but got a data URL that is not base64-encoded"));
    };
    if !IMAGE_MEDIA_TYPES.contains(&media_type) {
        return Err(ApiError::invalid(
            "You uploaded an unsupported image. Please make sure your image has of one the following formats: ['png', 'jpeg', 'gif', 'webp'].".to_owned(),
            None,
            Some("invalid_image_format"),
        ));
    }
    if !super::super::is_valid_base64(data) {
        return Err(invalid(", but got an invalid base64 string"));
    }
    Ok(())
}
