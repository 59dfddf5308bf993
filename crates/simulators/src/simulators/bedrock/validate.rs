//! Validation of Converse / ConverseStream request bodies with the real service's
//! messages where they are known (Coral's `1 validation error detected: ...` style for
//! constraint violations, Bedrock's own texts for conversation rules), plus the token
//! and cache-prefix accounting.
//!
//! Wrong JSON types are `SerializationException`s (the service fails to deserialize),
//! everything else is a `ValidationException`.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use serde_json::{Map, Value};

use super::super::{count_words, IMAGE_TOKENS, MESSAGE_TOKENS};
use super::AwsError;

/// Members of ConverseRequest that may appear in the body (`modelId` is in the URI).
const KNOWN_FIELDS: &[&str] = &[
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "guardrailConfig",
    "projectIdentifier",
    "additionalModelRequestFields",
    "promptVariables",
    "additionalModelResponseFieldPaths",
    "requestMetadata",
    "performanceConfig",
    "serviceTier",
    "outputConfig",
];

/// ContentBlock union members; the simulator understands the first five.
const CONTENT_MEMBERS: &[&str] = &[
    "text",
    "image",
    "toolUse",
    "toolResult",
    "cachePoint",
    "document",
    "video",
    "audio",
    "guardContent",
    "reasoningContent",
    "citationsContent",
    "searchResult",
    "toolAddition",
    "toolRemoval",
];

const IMAGE_FORMATS: &[&str] = &["png", "jpeg", "gif", "webp"];

/// The largest number of `stopSequences` accepted.
const MAX_STOP_SEQUENCES: usize = 4;

/// Most cache points a request may carry.
const MAX_CACHE_POINTS: usize = 4;

/// `maxTokens` when `inferenceConfig.maxTokens` is absent.
const DEFAULT_MAX_TOKENS: u64 = 4096;

/// A validated Converse request, reduced to what the simulator needs.
#[derive(Debug)]
pub(super) struct ConverseRequest {
    pub max_tokens: u64,
    pub stop_sequences: Vec<String>,
    /// Text of the last user message (text blocks and `toolResult` contents).
    pub last_user_text: String,
    pub tool_to_call: Option<String>,
    pub prompt_tokens: u64,
    /// One entry per `cachePoint` in the system prompt or messages, in prompt order:
    /// the prompt tokens before it and a hash identifying that exact prefix.
    pub cache_breakpoints: Vec<(u64, u64)>,
}

fn validation(message: String) -> AwsError {
    AwsError::validation(message)
}

/// Coral's constraint-violation message.
fn constraint(value: &str, path: &str, constraint: &str) -> AwsError {
    validation(format!(
        "1 validation error detected: Value {value} at '{path}' failed to satisfy constraint: {constraint}"
    ))
}

fn not_null(path: &str) -> AwsError {
    constraint("null", path, "Member must not be null")
}

fn extraneous(key: &str) -> AwsError {
    validation(format!(
        "Malformed input request: #: extraneous key [{key}] is not permitted, please reformat your input and try again."
    ))
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "structure",
    }
}

fn wrong_type(path: &str, expected: &str, found: &Value) -> AwsError {
    AwsError::serialization(format!(
        "Expected {expected} at '{path}', found {}",
        type_name(found)
    ))
}

fn field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, AwsError> {
    value
        .as_object()
        .ok_or_else(|| wrong_type(path, "structure", value))
}

fn array<'a>(value: &'a Value, path: &str) -> Result<&'a Vec<Value>, AwsError> {
    value
        .as_array()
        .ok_or_else(|| wrong_type(path, "list", value))
}

fn string<'a>(value: &'a Value, path: &str) -> Result<&'a str, AwsError> {
    value
        .as_str()
        .ok_or_else(|| wrong_type(path, "string", value))
}

fn reject_extra(object: &Map<String, Value>, allowed: &[&str]) -> Result<(), AwsError> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(extraneous(key)),
        None => Ok(()),
    }
}

/// The single member of a union value, which must have exactly one non-null member.
fn union_member<'a>(
    value: &'a Value,
    path: &str,
    members: &[&str],
) -> Result<(&'a str, &'a Value), AwsError> {
    let map = object(value, path)?;
    let set: Vec<(&String, &Value)> = map.iter().filter(|(_, v)| !v.is_null()).collect();
    if let Some((key, _)) = set.iter().find(|(k, _)| !members.contains(&k.as_str())) {
        return Err(extraneous(key));
    }
    match set[..] {
        [(key, value)] => Ok((key.as_str(), value)),
        _ => Err(validation(format!(
            "1 validation error detected: Value at '{path}' failed to satisfy constraint: Member must have exactly one member of the union set"
        ))),
    }
}

fn matches_pattern(value: &str, extra: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

fn check_tool_name(name: &str, path: &str) -> Result<(), AwsError> {
    if matches_pattern(name, b"_-") {
        Ok(())
    } else {
        Err(constraint(
            &format!("'{name}'"),
            path,
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+",
        ))
    }
}

fn check_tool_use_id(id: &str, path: &str) -> Result<(), AwsError> {
    if matches_pattern(id, b"_.:-") {
        Ok(())
    } else {
        Err(constraint(
            &format!("'{id}'"),
            path,
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.:-]+",
        ))
    }
}

/// Accumulates prompt tokens in prompt order and hashes the prefix at each cache point.
struct PromptAccount {
    tokens: u64,
    hasher: DefaultHasher,
    breakpoints: Vec<(u64, u64)>,
    cache_points: usize,
}

impl PromptAccount {
    fn new(model_id: &str, tools: Option<&Value>) -> Self {
        let mut hasher = DefaultHasher::new();
        model_id.hash(&mut hasher);
        tools.map(without_cache_points).hash(&mut hasher);
        PromptAccount {
            tokens: 0,
            hasher,
            breakpoints: Vec::new(),
            cache_points: 0,
        }
    }

    fn add(&mut self, role: &str, segment: &Value, tokens: u64) {
        self.tokens += tokens;
        role.hash(&mut self.hasher);
        segment.to_string().hash(&mut self.hasher);
    }

    fn cache_point(&mut self) {
        self.cache_points += 1;
        self.breakpoints.push((self.tokens, self.hasher.finish()));
    }
}

/// Tools with their `cachePoint` entries removed, serialized (keys are sorted).
fn without_cache_points(tools: &Value) -> String {
    match tools {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter(|t| t.get("cachePoint").is_none())
                .cloned()
                .collect(),
        )
        .to_string(),
        other => other.to_string(),
    }
}

fn cache_point(value: &Value, path: &str) -> Result<(), AwsError> {
    let block = object(value, path)?;
    reject_extra(block, &["type", "ttl"])?;
    match field(block, "type") {
        None => return Err(not_null(&format!("{path}.type"))),
        Some(kind) if string(kind, &format!("{path}.type"))? != "default" => {
            return Err(constraint(
                &format!("'{}'", kind.as_str().unwrap_or_default()),
                &format!("{path}.type"),
                "Member must satisfy enum value set: [default]",
            ))
        }
        Some(_) => {}
    }
    if let Some(ttl) = field(block, "ttl") {
        let ttl = string(ttl, &format!("{path}.ttl"))?;
        if ttl != "5m" && ttl != "1h" {
            return Err(constraint(
                &format!("'{ttl}'"),
                &format!("{path}.ttl"),
                "Member must satisfy enum value set: [5m, 1h]",
            ));
        }
    }
    Ok(())
}

/// Validates a request body for the (decoded) model ID it was sent to.
pub(super) fn parse_request(body: &Value, model_id: &str) -> Result<ConverseRequest, AwsError> {
    let body = object(body, "body")?;
    reject_extra(body, KNOWN_FIELDS)?;
    for key in ["additionalModelRequestFields", "requestMetadata"] {
        if let Some(value) = field(body, key) {
            object(value, key)?;
        }
    }
    let (max_tokens, stop_sequences) = inference_config(body)?;
    let tools = tool_config(body)?;
    let mut account = PromptAccount::new(
        model_id,
        field(body, "toolConfig").and_then(|c| c.get("tools")),
    );
    account.cache_points = tools.cache_points;
    system(body, &mut account)?;
    let messages = match field(body, "messages") {
        None => return Err(not_null("messages")),
        Some(messages) => array(messages, "messages")?,
    };
    let conversation = validate_messages(messages, &mut account, tools.declared)?;
    if account.cache_points > MAX_CACHE_POINTS {
        return Err(validation(format!(
            "The model returned the following errors: A maximum of {MAX_CACHE_POINTS} blocks with cache_control may be provided. Found {}.",
            account.cache_points
        )));
    }
    Ok(ConverseRequest {
        max_tokens,
        stop_sequences,
        last_user_text: conversation.last_user_text,
        tool_to_call: tools
            .to_call
            .filter(|_| !conversation.ends_with_tool_result),
        prompt_tokens: account.tokens,
        cache_breakpoints: account.breakpoints,
    })
}

fn inference_config(body: &Map<String, Value>) -> Result<(u64, Vec<String>), AwsError> {
    let Some(config) = field(body, "inferenceConfig") else {
        return Ok((DEFAULT_MAX_TOKENS, Vec::new()));
    };
    let config = object(config, "inferenceConfig")?;
    reject_extra(
        config,
        &["maxTokens", "temperature", "topP", "stopSequences"],
    )?;
    let max_tokens = match field(config, "maxTokens") {
        None => DEFAULT_MAX_TOKENS,
        Some(value) => {
            let path = "inferenceConfig.maxTokens";
            let number = value
                .as_i64()
                .ok_or_else(|| wrong_type(path, "integer", value))?;
            if number < 1 {
                return Err(constraint(
                    &format!("'{number}'"),
                    path,
                    "Member must have value greater than or equal to 1",
                ));
            }
            number.unsigned_abs()
        }
    };
    for key in ["temperature", "topP"] {
        let Some(value) = field(config, key) else {
            continue;
        };
        let path = format!("inferenceConfig.{key}");
        let number = value
            .as_f64()
            .ok_or_else(|| wrong_type(&path, "number", value))?;
        if number < 0.0 {
            return Err(constraint(
                &format!("'{value}'"),
                &path,
                "Member must have value greater than or equal to 0",
            ));
        }
        if number > 1.0 {
            return Err(constraint(
                &format!("'{value}'"),
                &path,
                "Member must have value less than or equal to 1",
            ));
        }
    }
    let mut stop_sequences = Vec::new();
    if let Some(value) = field(config, "stopSequences") {
        let path = "inferenceConfig.stopSequences";
        for (i, item) in array(value, path)?.iter().enumerate() {
            let item_path = format!("{path}.{}.member", i + 1);
            let stop = string(item, &item_path)?;
            if stop.is_empty() {
                return Err(constraint(
                    "''",
                    &item_path,
                    "Member must have length greater than or equal to 1",
                ));
            }
            stop_sequences.push(stop.to_owned());
        }
        if stop_sequences.len() > MAX_STOP_SEQUENCES {
            return Err(constraint(
                &format!("'[{}]'", stop_sequences.join(", ")),
                path,
                &format!("Member must have length less than or equal to {MAX_STOP_SEQUENCES}"),
            ));
        }
    }
    Ok((max_tokens, stop_sequences))
}

/// What `toolConfig` declares.
struct Tools {
    /// Whether `toolConfig` is present.
    declared: bool,
    /// The tool the model calls unless the conversation ends with a tool result.
    to_call: Option<String>,
    cache_points: usize,
}

fn tool_config(body: &Map<String, Value>) -> Result<Tools, AwsError> {
    let Some(config) = field(body, "toolConfig") else {
        return Ok(Tools {
            declared: false,
            to_call: None,
            cache_points: 0,
        });
    };
    let config = object(config, "toolConfig")?;
    reject_extra(config, &["tools", "toolChoice"])?;
    let tools = match field(config, "tools") {
        None => return Err(not_null("toolConfig.tools")),
        Some(tools) => array(tools, "toolConfig.tools")?,
    };
    if tools.is_empty() {
        return Err(constraint(
            "'[]'",
            "toolConfig.tools",
            "Member must have length greater than or equal to 1",
        ));
    }
    let mut names: Vec<String> = Vec::new();
    let mut cache_points = 0;
    for (i, tool) in tools.iter().enumerate() {
        let path = format!("toolConfig.tools.{}.member", i + 1);
        match union_member(tool, &path, &["toolSpec", "systemTool", "cachePoint"])? {
            ("cachePoint", value) => {
                cache_point(value, &format!("{path}.cachePoint"))?;
                cache_points += 1;
            }
            ("toolSpec", spec) => names.push(tool_spec(spec, &format!("{path}.toolSpec"))?),
            (other, _) => {
                return Err(validation(format!(
                "The model returned the following errors: {other} is not supported by this model."
            )))
            }
        }
    }
    let unique: HashSet<&String> = names.iter().collect();
    if unique.len() != names.len() {
        return Err(validation(
            "The model returned the following errors: tools: Tool names must be unique.".to_owned(),
        ));
    }
    let to_call = match field(config, "toolChoice") {
        None => names.first().cloned(),
        Some(choice) => {
            let path = "toolConfig.toolChoice";
            match union_member(choice, path, &["auto", "any", "tool"])? {
                ("tool", forced) => {
                    let forced = object(forced, &format!("{path}.tool"))?;
                    reject_extra(forced, &["name"])?;
                    let name = match field(forced, "name") {
                        None => return Err(not_null(&format!("{path}.tool.name"))),
                        Some(name) => string(name, &format!("{path}.tool.name"))?,
                    };
                    check_tool_name(name, &format!("{path}.tool.name"))?;
                    if !names.iter().any(|n| n == name) {
                        return Err(validation(format!(
                            "The model returned the following errors: Tool '{name}' not found in provided tools"
                        )));
                    }
                    Some(name.to_owned())
                }
                (kind, value) => {
                    let value = object(value, &format!("{path}.{kind}"))?;
                    reject_extra(value, &[])?;
                    names.first().cloned()
                }
            }
        }
    };
    Ok(Tools {
        declared: true,
        to_call,
        cache_points,
    })
}

/// Validates a `toolSpec`; returns its name.
fn tool_spec(spec: &Value, path: &str) -> Result<String, AwsError> {
    let spec = object(spec, path)?;
    reject_extra(spec, &["name", "description", "inputSchema", "strict"])?;
    let name = match field(spec, "name") {
        None => return Err(not_null(&format!("{path}.name"))),
        Some(name) => string(name, &format!("{path}.name"))?,
    };
    check_tool_name(name, &format!("{path}.name"))?;
    if let Some(description) = field(spec, "description") {
        if string(description, &format!("{path}.description"))?.is_empty() {
            return Err(constraint(
                "''",
                &format!("{path}.description"),
                "Member must have length greater than or equal to 1",
            ));
        }
    }
    let schema_path = format!("{path}.inputSchema");
    let Some(schema) = field(spec, "inputSchema") else {
        return Err(not_null(&schema_path));
    };
    let (_, json) = union_member(schema, &schema_path, &["json"])?;
    object(json, &format!("{schema_path}.json"))?;
    Ok(name.to_owned())
}

fn system(body: &Map<String, Value>, account: &mut PromptAccount) -> Result<(), AwsError> {
    let Some(system) = field(body, "system") else {
        return Ok(());
    };
    for (i, block) in array(system, "system")?.iter().enumerate() {
        let path = format!("system.{}.member", i + 1);
        match union_member(block, &path, &["text", "guardContent", "cachePoint"])? {
            ("text", text) => {
                let text = string(text, &format!("{path}.text"))?;
                if text.is_empty() {
                    return Err(constraint(
                        "''",
                        &format!("{path}.text"),
                        "Member must have length greater than or equal to 1",
                    ));
                }
                account.add("system", block, count_words(text));
            }
            ("cachePoint", value) => {
                cache_point(value, &format!("{path}.cachePoint"))?;
                account.cache_point();
            }
            _ => {
                return Err(validation(
                    "The simulator does not support guardContent blocks.".to_owned(),
                ))
            }
        }
    }
    Ok(())
}

/// What the conversation tells the simulator.
struct Conversation {
    last_user_text: String,
    ends_with_tool_result: bool,
}

fn validate_messages(
    messages: &[Value],
    account: &mut PromptAccount,
    tools_declared: bool,
) -> Result<Conversation, AwsError> {
    let start_with_user = || {
        validation("A conversation must start with a user message. Try again with a conversation that starts with a user message.".to_owned())
    };
    if messages.is_empty() {
        return Err(start_with_user());
    }
    let mut previous_role = "";
    let mut pending_tool_uses: Vec<String> = Vec::new();
    let mut uses_tool_blocks = false;
    let mut conversation = Conversation {
        last_user_text: String::new(),
        ends_with_tool_result: false,
    };
    for (i, message) in messages.iter().enumerate() {
        let path = format!("messages.{}.member", i + 1);
        let message = object(message, &path)?;
        reject_extra(message, &["role", "content"])?;
        let role = match field(message, "role") {
            None => return Err(not_null(&format!("{path}.role"))),
            Some(role) => string(role, &format!("{path}.role"))?,
        };
        if !["user", "assistant", "system"].contains(&role) {
            return Err(constraint(
                &format!("'{role}'"),
                &format!("{path}.role"),
                "Member must satisfy enum value set: [user, assistant, system]",
            ));
        }
        if i == 0 && role != "user" {
            return Err(start_with_user());
        }
        if role == previous_role || role == "system" {
            return Err(validation("A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.".to_owned()));
        }
        previous_role = role;
        let content = match field(message, "content") {
            None => return Err(not_null(&format!("{path}.content"))),
            Some(content) => array(content, &format!("{path}.content"))?,
        };
        if content.is_empty() {
            return Err(validation(format!(
                "The content field in the Message object at messages.{i} is empty. Add a ContentBlock object to the content field and try again."
            )));
        }
        account.tokens += MESSAGE_TOKENS;
        ("message", i).hash(&mut account.hasher);
        let blocks = validate_blocks(content, i, role, account)?;
        uses_tool_blocks |= !blocks.tool_uses.is_empty() || !blocks.tool_results.is_empty();
        if role == "assistant" {
            pending_tool_uses = blocks.tool_uses;
            continue;
        }
        let missing: Vec<&str> = pending_tool_uses
            .iter()
            .filter(|id| !blocks.tool_results.contains(id))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(validation(format!(
                "Expected toolResult blocks at messages.{i}.content for the following Ids: {}",
                missing.join(", ")
            )));
        }
        if blocks
            .tool_results
            .iter()
            .any(|id| !pending_tool_uses.contains(id))
        {
            return Err(validation(format!(
                "The number of toolResult blocks at messages.{i}.content exceeds the number of toolUse blocks of previous turn."
            )));
        }
        pending_tool_uses.clear();
        conversation.last_user_text = blocks.texts.join(" ");
        conversation.ends_with_tool_result = !blocks.tool_results.is_empty();
    }
    if previous_role == "assistant" {
        // A trailing assistant message (prefill) is continued, never a tool result.
        conversation.ends_with_tool_result = false;
    }
    if uses_tool_blocks && !tools_declared {
        return Err(validation(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
                .to_owned(),
        ));
    }
    Ok(conversation)
}

/// What one message's content blocks hold.
struct Blocks {
    texts: Vec<String>,
    tool_uses: Vec<String>,
    tool_results: Vec<String>,
}

fn validate_blocks(
    content: &[Value],
    message: usize,
    role: &str,
    account: &mut PromptAccount,
) -> Result<Blocks, AwsError> {
    let mut blocks = Blocks {
        texts: Vec::new(),
        tool_uses: Vec::new(),
        tool_results: Vec::new(),
    };
    for (j, block) in content.iter().enumerate() {
        let path = format!("messages.{}.member.content.{}.member", message + 1, j + 1);
        let (kind, value) = union_member(block, &path, CONTENT_MEMBERS)?;
        let member_path = format!("{path}.{kind}");
        match kind {
            "text" => {
                let text = string(value, &member_path)?;
                if text.trim().is_empty() {
                    return Err(validation(format!(
                        "The text field in the ContentBlock object at messages.{message}.content.{j} is blank. Add text to the text field, and try again."
                    )));
                }
                account.add(role, block, count_words(text));
                blocks.texts.push(text.to_owned());
            }
            "image" => {
                image(value, &member_path)?;
                account.add(role, block, IMAGE_TOKENS);
            }
            "cachePoint" => {
                cache_point(value, &member_path)?;
                account.cache_point();
            }
            "toolUse" if role == "assistant" => {
                let tool_use = object(value, &member_path)?;
                reject_extra(tool_use, &["toolUseId", "name", "input", "type"])?;
                let id = required_string(tool_use, "toolUseId", &member_path)?;
                check_tool_use_id(id, &format!("{member_path}.toolUseId"))?;
                let name = required_string(tool_use, "name", &member_path)?;
                check_tool_name(name, &format!("{member_path}.name"))?;
                let Some(input) = field(tool_use, "input") else {
                    return Err(not_null(&format!("{member_path}.input")));
                };
                object(input, &format!("{member_path}.input"))?;
                account.add(role, block, count_words(&input.to_string()));
                blocks.tool_uses.push(id.to_owned());
            }
            "toolResult" if role == "user" => {
                let texts = tool_result(value, &member_path, &mut blocks.tool_results)?;
                let tokens = texts.iter().map(|t| count_words(t)).sum::<u64>();
                account.add(role, block, tokens + tool_result_images(value) * IMAGE_TOKENS);
                blocks.texts.extend(texts);
            }
            // An earlier turn's reasoning, handed back (ReasoningContentBlock: a
            // `reasoningText` with its text and signature, or `redactedContent`): checked,
            // and (as Claude drops it from the context) not counted.
            "reasoningContent" if role == "assistant" => {
                match union_member(value, &member_path, &["reasoningText", "redactedContent"])? {
                    ("reasoningText", text) => {
                        let text = object(text, &format!("{member_path}.reasoningText"))?;
                        required_string(text, "text", &member_path)?;
                    }
                    (_, data) => {
                        string(data, &format!("{member_path}.redactedContent"))?;
                    }
                }
            }
            "toolUse" | "toolResult" | "reasoningContent" => {
                return Err(validation(format!(
                    "The model returned the following errors: messages.{message}.content.{j}: {kind} blocks are not allowed in {role} messages"
                )))
            }
            other => {
                return Err(validation(format!(
                    "The simulator does not support {other} content blocks (messages.{message}.content.{j})."
                )))
            }
        }
    }
    Ok(blocks)
}

fn required_string<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a str, AwsError> {
    let path = format!("{path}.{key}");
    match field(object, key) {
        None => Err(not_null(&path)),
        Some(value) => string(value, &path),
    }
}

fn image(value: &Value, path: &str) -> Result<(), AwsError> {
    let image = object(value, path)?;
    reject_extra(image, &["format", "source"])?;
    let format = required_string(image, "format", path)?;
    if !IMAGE_FORMATS.contains(&format) {
        return Err(constraint(
            &format!("'{format}'"),
            &format!("{path}.format"),
            "Member must satisfy enum value set: [png, jpeg, gif, webp]",
        ));
    }
    let source_path = format!("{path}.source");
    let Some(source) = field(image, "source") else {
        return Err(not_null(&source_path));
    };
    match union_member(source, &source_path, &["bytes", "s3Location"])? {
        ("bytes", data) => {
            let data = string(data, &format!("{source_path}.bytes"))?;
            match aws_smithy_types::base64::decode(data) {
                Ok(bytes) if !bytes.is_empty() => Ok(()),
                _ => Err(validation(format!(
                    "Invalid image input at {source_path}.bytes: the value is not valid non-empty base64-encoded data."
                ))),
            }
        }
        _ => Err(validation(
            "The simulator does not support s3Location image sources.".to_owned(),
        )),
    }
}

/// Validates a `toolResult`, records its ID and returns its text pieces (`text` blocks
/// and `json` blocks as JSON).
fn tool_result(value: &Value, path: &str, ids: &mut Vec<String>) -> Result<Vec<String>, AwsError> {
    let result = object(value, path)?;
    reject_extra(result, &["toolUseId", "content", "status", "type"])?;
    let id = required_string(result, "toolUseId", path)?;
    check_tool_use_id(id, &format!("{path}.toolUseId"))?;
    let content_path = format!("{path}.content");
    let Some(content) = field(result, "content") else {
        return Err(not_null(&content_path));
    };
    let mut texts = Vec::new();
    for (k, item) in array(content, &content_path)?.iter().enumerate() {
        let item_path = format!("{content_path}.{}.member", k + 1);
        match union_member(
            item,
            &item_path,
            &["json", "text", "image", "document", "video", "searchResult"],
        )? {
            ("text", text) => texts.push(string(text, &format!("{item_path}.text"))?.to_owned()),
            ("json", json) => texts.push(json.to_string()),
            ("image", img) => image(img, &format!("{item_path}.image"))?,
            (other, _) => {
                return Err(validation(format!(
                    "The simulator does not support {other} tool result content."
                )))
            }
        }
    }
    if let Some(status) = field(result, "status") {
        let status = string(status, &format!("{path}.status"))?;
        if status != "success" && status != "error" {
            return Err(constraint(
                &format!("'{status}'"),
                &format!("{path}.status"),
                "Member must satisfy enum value set: [success, error]",
            ));
        }
    }
    ids.push(id.to_owned());
    Ok(texts)
}

fn tool_result_images(value: &Value) -> u64 {
    value
        .get("content")
        .and_then(Value::as_array)
        .map_or(0, |items| {
            items
                .iter()
                .filter(|item| item.get("image").is_some())
                .count() as u64
        })
}
