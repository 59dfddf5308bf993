//! Request validation for the simulated Messages API, with the real API's error
//! messages (`<field path>: <problem>`), plus the token and cache-prefix accounting.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use serde_json::{Map, Value};

use super::super::{count_words, is_valid_base64, IMAGE_MEDIA_TYPES, IMAGE_TOKENS, MESSAGE_TOKENS};
use super::ApiError;

const KNOWN_FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "container",
    "mcp_servers",
    // Context editing (beta `context-management-2025-06-27`) and effort (beta
    // `effort-2025-11-24`), as Claude Code sends them.
    "context_management",
    "output_config",
];

/// The beta that lets `system` messages stand inside `messages` (Claude Code sends it).
const MID_CONVERSATION_SYSTEM_BETA: &str = "mid-conversation-system-";

/// Most `cache_control` breakpoints a request may carry.
const MAX_CACHE_BREAKPOINTS: usize = 4;

/// A validated Messages request, reduced to what the simulator needs.
#[derive(Debug)]
pub(super) struct MessagesRequest {
    pub model: String,
    pub max_tokens: u64,
    pub stream: bool,
    pub stop_sequences: Vec<String>,
    /// Text of the last user message (text blocks and `tool_result` contents).
    pub last_user_text: String,
    pub tool_to_call: Option<String>,
    pub prompt_tokens: u64,
    /// One entry per `cache_control` breakpoint in prompt order: the prompt tokens up to
    /// and including the marked block and a hash identifying that exact prefix.
    pub cache_breakpoints: Vec<(u64, u64)>,
}

fn invalid(message: String) -> ApiError {
    ApiError::invalid(message)
}

fn field_required(path: &str) -> ApiError {
    invalid(format!("{path}: Field required"))
}

fn expected(path: &str, what: &str) -> ApiError {
    invalid(format!("{path}: Input should be {what}"))
}

fn join(path: &str, key: impl std::fmt::Display) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A field that is present and not `null`.
fn field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ApiError> {
    value
        .as_object()
        .ok_or_else(|| expected(path, "a valid dictionary"))
}

fn reject_extra(object: &Map<String, Value>, allowed: &[&str], path: &str) -> Result<(), ApiError> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(extra) => Err(invalid(format!(
            "{}: Extra inputs are not permitted",
            join(path, extra)
        ))),
        None => Ok(()),
    }
}

fn string<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, ApiError> {
    match field(object, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(expected(&join(path, key), "a valid string")),
    }
}

fn required_string<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a str, ApiError> {
    string(object, key, path)?.ok_or_else(|| field_required(&join(path, key)))
}

fn number_in(object: &Map<String, Value>, key: &str, min: f64, max: f64) -> Result<(), ApiError> {
    let Some(value) = field(object, key) else {
        return Ok(());
    };
    let number = value
        .as_f64()
        .ok_or_else(|| expected(key, "a valid number"))?;
    if number < min {
        return Err(expected(key, &format!("greater than or equal to {min}")));
    }
    if number > max {
        return Err(expected(key, &format!("less than or equal to {max}")));
    }
    Ok(())
}

fn integer(
    object: &Map<String, Value>,
    key: &str,
    path: &str,
    min: i64,
) -> Result<Option<i64>, ApiError> {
    let Some(value) = field(object, key) else {
        return Ok(None);
    };
    let path = join(path, key);
    let number = value
        .as_i64()
        .or_else(|| value.as_u64().map(|_| i64::MAX))
        .ok_or_else(|| expected(&path, "a valid integer"))?;
    if number < min {
        return Err(expected(&path, &format!("greater than or equal to {min}")));
    }
    Ok(Some(number))
}

fn boolean(object: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>, ApiError> {
    match field(object, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(expected(&join(path, key), "a valid boolean")),
    }
}

/// Whether `model` names a model the simulator serves.
pub(super) fn is_known_model(model: &str) -> bool {
    model.starts_with("claude-")
}

/// Accumulates prompt tokens in prompt order and hashes the prefix at each
/// `cache_control` breakpoint.
struct PromptAccount {
    tokens: u64,
    hasher: DefaultHasher,
    breakpoints: Vec<(u64, u64)>,
    markers: usize,
}

impl PromptAccount {
    fn new(model: &str, tools: Option<&Value>) -> Self {
        let mut hasher = DefaultHasher::new();
        model.hash(&mut hasher);
        tools.map(without_cache_control).hash(&mut hasher);
        PromptAccount {
            tokens: 0,
            hasher,
            breakpoints: Vec::new(),
            markers: 0,
        }
    }

    /// Adds one prompt segment (a block, or a string content/system prompt).
    fn add(&mut self, role: &str, segment: &Value, tokens: u64, cached: bool) {
        self.tokens += tokens;
        role.hash(&mut self.hasher);
        without_cache_control(segment).hash(&mut self.hasher);
        if cached {
            self.breakpoints.push((self.tokens, self.hasher.finish()));
        }
    }
}

/// The canonical text of a prompt piece with its `cache_control` markers removed
/// (serde_json sorts object keys, so equal values serialize equally).
fn without_cache_control(value: &Value) -> String {
    fn strip(value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(k, _)| k.as_str() != "cache_control")
                    .map(|(k, v)| (k.clone(), strip(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    strip(value).to_string()
}

/// Validates an optional `cache_control`; returns whether it is present.
fn cache_control(block: &Map<String, Value>, path: &str) -> Result<bool, ApiError> {
    let Some(value) = field(block, "cache_control") else {
        return Ok(false);
    };
    let path = join(path, "cache_control");
    let control = object(value, &path)?;
    reject_extra(control, &["type", "ttl"], &path)?;
    if required_string(control, "type", &path)? != "ephemeral" {
        return Err(expected(&join(&path, "type"), "'ephemeral'"));
    }
    if let Some(ttl) = string(control, "ttl", &path)? {
        if ttl != "5m" && ttl != "1h" {
            return Err(expected(&join(&path, "ttl"), "'5m' or '1h'"));
        }
    }
    Ok(true)
}

/// Validates a request body. Errors are 400s except an unknown model (404).
/// `betas` is the request's `anthropic-beta` header (comma-separated), if any.
pub(super) fn parse_request(body: &Value, betas: &str) -> Result<MessagesRequest, ApiError> {
    let body = object(body, "body")?;
    reject_extra(body, KNOWN_FIELDS, "")?;
    let model = required_string(body, "model", "")?.to_owned();
    let max_tokens =
        integer(body, "max_tokens", "", 1)?.ok_or_else(|| field_required("max_tokens"))?;
    let messages = match field(body, "messages") {
        None => return Err(field_required("messages")),
        Some(Value::Array(messages)) => messages,
        Some(_) => return Err(expected("messages", "a valid list")),
    };
    number_in(body, "temperature", 0.0, 1.0)?;
    number_in(body, "top_p", 0.0, 1.0)?;
    integer(body, "top_k", "", 0)?;
    let stream = boolean(body, "stream", "")?.unwrap_or(false);
    let stop_sequences = match field(body, "stop_sequences") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| expected(&format!("stop_sequences.{i}"), "a valid string"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(expected("stop_sequences", "a valid list")),
    };
    if let Some(metadata) = field(body, "metadata") {
        let metadata = object(metadata, "metadata")?;
        reject_extra(metadata, &["user_id"], "metadata")?;
        if let Some(user) = string(metadata, "user_id", "metadata")? {
            if user.chars().count() > 256 {
                return Err(invalid(
                    "metadata.user_id: String should have at most 256 characters".to_owned(),
                ));
            }
        }
    }
    if let Some(tier) = string(body, "service_tier", "")? {
        if tier != "auto" && tier != "standard_only" {
            return Err(expected("service_tier", "'auto' or 'standard_only'"));
        }
    }
    validate_thinking(body, max_tokens)?;
    for key in ["context_management", "output_config"] {
        if let Some(v) = field(body, key) {
            object(v, key)?;
        }
    }
    let (tools, tool_markers) = validate_tools(body)?;
    let tool_to_call = validate_tool_choice(body, &tools)?;

    let mut account = PromptAccount::new(&model, field(body, "tools"));
    account.markers = tool_markers;
    validate_system(body, &mut account)?;
    if messages.is_empty() {
        return Err(invalid(
            "messages: at least one message is required".to_owned(),
        ));
    }
    let mid_conversation_system = betas
        .split(',')
        .any(|b| b.trim().starts_with(MID_CONVERSATION_SYSTEM_BETA));
    let conversation = validate_messages(messages, &mut account, mid_conversation_system)?;
    if account.markers > MAX_CACHE_BREAKPOINTS {
        return Err(invalid(format!(
            "A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {}.",
            account.markers
        )));
    }
    // Only after the shape is valid: an unknown model is a 404.
    if !is_known_model(&model) {
        return Err(ApiError::not_found(format!("model: {model}")));
    }
    Ok(MessagesRequest {
        model,
        max_tokens: max_tokens.unsigned_abs(),
        stream,
        stop_sequences,
        last_user_text: conversation.last_user_text,
        tool_to_call: tool_to_call.filter(|_| !conversation.ends_with_tool_result),
        prompt_tokens: account.tokens,
        cache_breakpoints: account.breakpoints,
    })
}

fn validate_thinking(body: &Map<String, Value>, max_tokens: i64) -> Result<(), ApiError> {
    let Some(thinking) = field(body, "thinking") else {
        return Ok(());
    };
    let thinking = object(thinking, "thinking")?;
    match required_string(thinking, "type", "thinking")? {
        "disabled" | "adaptive" => Ok(()),
        "enabled" => {
            let budget = integer(thinking, "budget_tokens", "thinking.enabled", 1024)?
                .ok_or_else(|| field_required("thinking.enabled.budget_tokens"))?;
            if max_tokens <= budget {
                return Err(invalid(
                    "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size".to_owned(),
                ));
            }
            Ok(())
        }
        other => Err(invalid(format!(
            "thinking: Input tag '{other}' found using 'type' does not match any of the expected tags: 'adaptive', 'disabled', 'enabled'"
        ))),
    }
}

/// Validates `tools`; returns the names of the custom (callable) tools, in order, and
/// the number of `cache_control` markers on tools.
fn validate_tools(body: &Map<String, Value>) -> Result<(Vec<String>, usize), ApiError> {
    let tools = match field(body, "tools") {
        None => return Ok((Vec::new(), 0)),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(expected("tools", "a valid list")),
    };
    let mut custom = Vec::new();
    let mut seen = HashSet::new();
    let mut markers = 0;
    for (i, tool) in tools.iter().enumerate() {
        let path = format!("tools.{i}");
        let tool = object(tool, &path)?;
        let kind = string(tool, "type", &path)?.unwrap_or("custom");
        let name = required_string(tool, "name", &path)?;
        markers += usize::from(cache_control(tool, &path)?);
        if kind == "custom" {
            let path = format!("{path}.custom");
            let valid = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                return Err(invalid(format!(
                    "{path}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
                )));
            }
            match field(tool, "input_schema") {
                None => return Err(field_required(&join(&path, "input_schema"))),
                Some(schema) => {
                    object(schema, &join(&path, "input_schema"))?;
                }
            }
            string(tool, "description", &path)?;
            custom.push(name.to_owned());
        }
        if !seen.insert(name.to_owned()) {
            return Err(invalid("tools: Tool names must be unique.".to_owned()));
        }
    }
    Ok((custom, markers))
}

/// Validates `tool_choice`; returns the tool the model calls (if it calls one).
fn validate_tool_choice(
    body: &Map<String, Value>,
    tools: &[String],
) -> Result<Option<String>, ApiError> {
    let Some(choice) = field(body, "tool_choice") else {
        return Ok(tools.first().cloned());
    };
    let choice = object(choice, "tool_choice")?;
    let kind = required_string(choice, "type", "tool_choice")?;
    let path = format!("tool_choice.{kind}");
    boolean(choice, "disable_parallel_tool_use", &path)?;
    match kind {
        "none" => return Ok(None),
        "auto" | "any" | "tool" => {}
        other => {
            return Err(invalid(format!(
                "tool_choice: Input tag '{other}' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"
            )))
        }
    }
    let declared = field(body, "tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    if !declared {
        return Err(invalid(
            "tool_choice may only be specified while providing tools.".to_owned(),
        ));
    }
    if kind != "tool" {
        return Ok(tools.first().cloned());
    }
    let name = required_string(choice, "name", &path)?;
    if !tools.iter().any(|t| t == name) {
        return Err(invalid(format!(
            "tool_choice.tool.name: Tool '{name}' not found in provided tools"
        )));
    }
    Ok(Some(name.to_owned()))
}

fn validate_system(body: &Map<String, Value>, account: &mut PromptAccount) -> Result<(), ApiError> {
    match field(body, "system") {
        None => Ok(()),
        Some(system @ Value::String(text)) => {
            account.add("system", system, count_words(text), false);
            Ok(())
        }
        Some(Value::Array(blocks)) => {
            for (i, block) in blocks.iter().enumerate() {
                let path = format!("system.{i}");
                let map = object(block, &path)?;
                reject_extra(map, &["type", "text", "cache_control", "citations"], &path)?;
                if required_string(map, "type", &path)? != "text" {
                    return Err(expected(&join(&path, "type"), "'text'"));
                }
                let text = required_string(map, "text", &path)?;
                if text.is_empty() {
                    return Err(invalid(
                        "system: text content blocks must be non-empty".to_owned(),
                    ));
                }
                let cached = cache_control(map, &path)?;
                account.markers += usize::from(cached);
                account.add("system", block, count_words(text), cached);
            }
            Ok(())
        }
        Some(_) => Err(expected("system", "a valid string")),
    }
}

struct Conversation {
    last_user_text: String,
    ends_with_tool_result: bool,
}

/// What one message contributes to the conversation checks.
#[derive(Default)]
struct MessageFacts {
    text: Vec<String>,
    tool_use_ids: Vec<String>,
    tool_result_ids: Vec<(usize, String)>,
}

fn validate_messages(
    messages: &[Value],
    account: &mut PromptAccount,
    mid_conversation_system: bool,
) -> Result<Conversation, ApiError> {
    let mut last_user_text = String::new();
    let mut previous_tool_uses: Vec<String> = Vec::new();
    let mut previous_index = 0;
    let mut ends_with_tool_result = false;
    let last_index = messages.len() - 1;
    for (i, message) in messages.iter().enumerate() {
        let path = format!("messages.{i}");
        let map = object(message, &path)?;
        reject_extra(map, &["role", "content"], &path)?;
        let role = required_string(map, "role", &path)?;
        match role {
            "user" | "assistant" => {}
            "system" if i > 0 && mid_conversation_system => {
                // Validated and counted as system text; it takes no part in the turns'
                // alternation or in pairing tool uses with their results.
                let content = field(map, "content")
                    .ok_or_else(|| field_required(&join(&path, "content")))?;
                validate_content(role, content, &path, account)?;
                continue;
            }
            "system" => {
                return Err(invalid(
                    "messages: Unexpected role \"system\". The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role.".to_owned(),
                ))
            }
            _ => return Err(expected(&join(&path, "role"), "'user' or 'assistant'")),
        }
        if i == 0 && role != "user" {
            return Err(invalid(
                "messages: first message must use the \"user\" role".to_owned(),
            ));
        }
        let content =
            field(map, "content").ok_or_else(|| field_required(&join(&path, "content")))?;
        let empty = match content {
            Value::String(text) => text.is_empty(),
            Value::Array(blocks) => blocks.is_empty(),
            _ => return Err(expected(&join(&path, "content"), "a valid list")),
        };
        if empty && !(i == last_index && role == "assistant") {
            return Err(invalid(format!(
                "{path}: all messages must have non-empty content except for the optional final assistant message"
            )));
        }
        let facts = validate_content(role, content, &path, account)?;

        // Tool results must answer the tool uses of the message right before.
        for (j, id) in &facts.tool_result_ids {
            if !previous_tool_uses.contains(id) {
                return Err(invalid(format!(
                    "{path}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                )));
            }
        }
        let unanswered: Vec<&str> = previous_tool_uses
            .iter()
            .filter(|id| !facts.tool_result_ids.iter().any(|(_, r)| r == *id))
            .map(String::as_str)
            .collect();
        if !unanswered.is_empty() {
            return Err(invalid(format!(
                "messages.{previous_index}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                unanswered.join(", ")
            )));
        }
        if role == "user" {
            last_user_text = facts.text.join(" ");
        }
        ends_with_tool_result = !facts.tool_result_ids.is_empty();
        previous_tool_uses = facts.tool_use_ids;
        previous_index = i;
    }
    Ok(Conversation {
        last_user_text,
        ends_with_tool_result,
    })
}

const USER_BLOCKS: &[&str] = &["text", "image", "tool_result"];
const ASSISTANT_BLOCKS: &[&str] = &["text", "tool_use", "thinking", "redacted_thinking"];

fn validate_content(
    role: &str,
    content: &Value,
    path: &str,
    account: &mut PromptAccount,
) -> Result<MessageFacts, ApiError> {
    let mut facts = MessageFacts::default();
    let blocks = match content {
        Value::String(text) => {
            account.add(role, content, MESSAGE_TOKENS + count_words(text), false);
            facts.text.push(text.clone());
            return Ok(facts);
        }
        Value::Array(blocks) => blocks,
        _ => return Err(expected(&join(path, "content"), "a valid list")),
    };
    let allowed = match role {
        "user" => USER_BLOCKS,
        "system" => &["text"][..],
        _ => ASSISTANT_BLOCKS,
    };
    for (j, block) in blocks.iter().enumerate() {
        let path = format!("{path}.content.{j}");
        let map = object(block, &path)?;
        let kind = required_string(map, "type", &path)?;
        if !allowed.contains(&kind) {
            let tags: Vec<String> = allowed.iter().map(|t| format!("'{t}'")).collect();
            return Err(invalid(format!(
                "{path}: Input tag '{kind}' found using 'type' does not match any of the expected tags: {}",
                tags.join(", ")
            )));
        }
        let cached = cache_control(map, &path)?;
        account.markers += usize::from(cached);
        let tokens = match kind {
            "text" => {
                reject_extra(map, &["type", "text", "cache_control", "citations"], &path)?;
                let text = required_string(map, "text", &path)?;
                if text.is_empty() {
                    return Err(invalid(
                        "messages: text content blocks must be non-empty".to_owned(),
                    ));
                }
                facts.text.push(text.to_owned());
                count_words(text)
            }
            "image" => {
                validate_image(map, &path)?;
                IMAGE_TOKENS
            }
            "tool_use" => {
                reject_extra(
                    map,
                    &["type", "id", "name", "input", "cache_control"],
                    &path,
                )?;
                facts
                    .tool_use_ids
                    .push(required_string(map, "id", &path)?.to_owned());
                required_string(map, "name", &path)?;
                let input =
                    field(map, "input").ok_or_else(|| field_required(&join(&path, "input")))?;
                object(input, &join(&path, "input"))?;
                count_words(&input.to_string())
            }
            // An earlier turn's thinking, handed back: checked, and (as Claude drops
            // it from the context) not counted.
            "thinking" => {
                reject_extra(map, &["type", "thinking", "signature"], &path)?;
                required_string(map, "thinking", &path)?;
                required_string(map, "signature", &path)?;
                0
            }
            "redacted_thinking" => {
                reject_extra(map, &["type", "data"], &path)?;
                required_string(map, "data", &path)?;
                0
            }
            _ => {
                reject_extra(
                    map,
                    &[
                        "type",
                        "tool_use_id",
                        "content",
                        "is_error",
                        "cache_control",
                    ],
                    &path,
                )?;
                let id = required_string(map, "tool_use_id", &path)?;
                facts.tool_result_ids.push((j, id.to_owned()));
                boolean(map, "is_error", &path)?;
                let (text, images) = tool_result_content(map, &path)?;
                let tokens = count_words(&text) + images * IMAGE_TOKENS;
                facts.text.push(text);
                tokens
            }
        };
        let overhead = if j == 0 { MESSAGE_TOKENS } else { 0 };
        account.add(role, block, overhead + tokens, cached);
    }
    Ok(facts)
}

/// The text (blocks joined with a space) and image count of a `tool_result`.
fn tool_result_content(block: &Map<String, Value>, path: &str) -> Result<(String, u64), ApiError> {
    let path = join(path, "content");
    match block.get("content") {
        None | Some(Value::Null) => Ok((String::new(), 0)),
        Some(Value::String(text)) => Ok((text.clone(), 0)),
        Some(Value::Array(items)) => {
            let mut texts = Vec::new();
            let mut images = 0;
            for (k, item) in items.iter().enumerate() {
                let path = format!("{path}.{k}");
                let map = object(item, &path)?;
                match required_string(map, "type", &path)? {
                    "text" => texts.push(required_string(map, "text", &path)?),
                    "image" => {
                        validate_image(map, &path)?;
                        images += 1;
                    }
                    other => {
                        return Err(invalid(format!(
                            "{path}: Input tag '{other}' found using 'type' does not match any of the expected tags: 'text', 'image'"
                        )))
                    }
                }
            }
            Ok((texts.join(" "), images))
        }
        Some(_) => Err(expected(&path, "a valid list")),
    }
}

fn validate_image(block: &Map<String, Value>, path: &str) -> Result<(), ApiError> {
    reject_extra(block, &["type", "source", "cache_control"], path)?;
    let source_path = format!("{path}.image.source");
    let source = field(block, "source").ok_or_else(|| field_required(&join(path, "source")))?;
    let source = object(source, &source_path)?;
    match required_string(source, "type", &source_path)? {
        "base64" => {
            let path = format!("{source_path}.base64");
            reject_extra(source, &["type", "media_type", "data"], &path)?;
            let media_type = required_string(source, "media_type", &path)?;
            if !IMAGE_MEDIA_TYPES.contains(&media_type) {
                return Err(expected(
                    &join(&path, "media_type"),
                    "'image/jpeg', 'image/png', 'image/gif' or 'image/webp'",
                ));
            }
            let data = required_string(source, "data", &path)?;
            if !is_valid_base64(data) {
                return Err(invalid(format!("{path}.data: Invalid base64 data")));
            }
            Ok(())
        }
        "url" => {
            let path = format!("{source_path}.url");
            reject_extra(source, &["type", "url"], &path)?;
            let url = required_string(source, "url", &path)?;
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(invalid(format!(
                    "{path}.url: Input should be a valid URL, relative URL without a base"
                )));
            }
            Ok(())
        }
        other => Err(invalid(format!(
            "{source_path}: Input tag '{other}' found using 'type' does not match any of the expected tags: 'base64', 'url'"
        ))),
    }
}
