//! Converse and ConverseStream: model-ID and access checks, body validation, fault
//! triggers, the deterministic answer and its JSON / event-stream rendering.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use rand::Rng;
use serde_json::{json, Value};

use super::super::{
    count_words, fragments, json_response, plan_reply, random_id, reset_response, sim_directives,
    slow_delay, thinking_on, tool_call, CacheSplit, Finish, RecordedRequest, Reply, StreamFault,
    Thinking, Transport,
};
use super::eventstream::{event_frame, eventstream_response, exception_frame, StreamFrame};
use super::models::{resolve, ModelIdError, ACCOUNT_ID};
use super::validate::parse_request;
use super::{percent_decode, AwsError, SimState};

const INVALID_MODEL_ID: &str = "The provided model identifier is invalid.";
const NO_MODEL_ACCESS: &str = "You don't have access to the model with the specified model ID.";

/// Modeled exceptions: name, HTTP status, message.
const EXCEPTIONS: &[(&str, u16, &str)] = &[
    (
        "ThrottlingException",
        429,
        "Too many tokens, please wait before trying again.",
    ),
    (
        "ServiceUnavailableException",
        503,
        "Bedrock is unable to process your request.",
    ),
    (
        "InternalServerException",
        500,
        "The system encountered an unexpected error during processing. Try your request again.",
    ),
    (
        "ModelErrorException",
        424,
        "The system encountered an unexpected error during processing. Try your request again.",
    ),
    (
        "ModelNotReadyException",
        429,
        "Model is not ready to serve inference requests.",
    ),
    (
        "ModelTimeoutException",
        408,
        "The request took too long to process. Processing time exceeded the model timeout length.",
    ),
    (
        "ModelStreamErrorException",
        424,
        "The model produced an invalid sequence as part of ToolUse. Please refer to the model tool use troubleshooting guide.",
    ),
    ("ValidationException", 400, "Input is too long for requested model."),
    ("AccessDeniedException", 403, NO_MODEL_ACCESS),
    ("ResourceNotFoundException", 404, "Model not found."),
];

/// The exception `name` names (any case, with or without the `Exception` suffix).
fn exception_by_name(name: &str) -> Option<(&'static str, u16, &'static str)> {
    let wanted = name.to_ascii_lowercase();
    let wanted = wanted.strip_suffix("exception").unwrap_or(&wanted);
    EXCEPTIONS
        .iter()
        .copied()
        .find(|(n, _, _)| n.to_ascii_lowercase().strip_suffix("exception") == Some(wanted))
}

fn exception_by_status(status: u16) -> (&'static str, u16, &'static str) {
    let by_status = EXCEPTIONS
        .iter()
        .copied()
        .find(|(name, s, _)| *s == status && *name != "ModelNotReadyException");
    match by_status {
        Some(found) => found,
        None if status < 500 => ("ValidationException", status, "Simulated client error."),
        None => (
            "InternalServerException",
            status,
            "The system encountered an unexpected error during processing. Try your request again.",
        ),
    }
}

/// `[[sim:...]]` directives of the Bedrock simulator.
#[derive(Debug, Default, PartialEq, Eq)]
struct Faults {
    error: Option<(&'static str, u16, &'static str)>,
    /// lowerCamel exception name for a mid-stream exception frame.
    exception: Option<String>,
    cut: bool,
    slow: Option<Duration>,
    /// `[[sim:iam-denied]]`: the IAM policy denial, which names the account and role.
    iam_denied: bool,
    transport: Transport,
}

/// The `AccessDeniedException` text of a caller whose IAM policy does not allow
/// `bedrock:InvokeModel`: AWS's authorization-failure format, naming the caller's
/// assumed-role ARN (with the account ID) and the resource's ARN.
fn iam_denial(region: &str, model_id: &str, stream: bool) -> String {
    let action = if stream {
        "bedrock:InvokeModelWithResponseStream"
    } else {
        "bedrock:InvokeModel"
    };
    let resource = match model_id.split_once('.') {
        Some((geo, _)) if ["us", "eu", "apac", "global"].contains(&geo) => {
            format!("arn:aws:bedrock:{region}:{ACCOUNT_ID}:inference-profile/{model_id}")
        }
        _ => format!("arn:aws:bedrock:{region}::foundation-model/{model_id}"),
    };
    format!(
        "User: arn:aws:sts::{ACCOUNT_ID}:assumed-role/GammaInfra/i-0abc is not authorized to perform: {action} on resource: {resource} because no identity-based policy allows the {action} action"
    )
}

impl Faults {
    fn parse(text: &str, model_id: &str) -> Self {
        let mut faults = Faults {
            transport: Transport::parse(text, model_id),
            ..Faults::default()
        };
        for (name, arg) in sim_directives(text, model_id) {
            match name {
                "error" => {
                    faults.error = match arg.parse::<u16>() {
                        Ok(status) if (400..=599).contains(&status) => {
                            Some(exception_by_status(status))
                        }
                        Ok(_) => None,
                        Err(_) => exception_by_name(arg),
                    };
                }
                "exception" if !arg.is_empty() => faults.exception = Some(lower_camel(arg)),
                "midstream-error" => {
                    faults.exception = Some("serviceUnavailableException".to_owned());
                }
                "cut" => faults.cut = true,
                "slow" => faults.slow = slow_delay(arg),
                "iam-denied" => faults.iam_denied = true,
                _ => {}
            }
        }
        faults
    }
}

fn lower_camel(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_ascii_lowercase().to_string() + chars.as_str()
    })
}

/// The message of an exception frame named `name` (lowerCamel).
fn exception_message(name: &str) -> String {
    exception_by_name(name).map_or_else(
        || format!("Simulated {name}."),
        |(_, _, message)| message.to_owned(),
    )
}

/// A `contentBlockDelta` frame with one payload byte flipped: its prelude is sound, its
/// message CRC does not match.
fn corrupt_frame() -> Bytes {
    let frame = event_frame(
        "contentBlockDelta",
        &json!({"contentBlockIndex": 0, "delta": {"text": " corrupt"}, "p": "abcd"}),
    );
    let mut bytes = frame.to_vec();
    let at = bytes.len() - 8;
    bytes[at] ^= 0x20;
    Bytes::from(bytes)
}

/// What the simulated model produces.
enum Outcome {
    Text(Reply),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

impl Outcome {
    fn output_tokens(&self) -> u64 {
        match self {
            Outcome::Text(reply) => reply.output_tokens(),
            Outcome::ToolUse { input, .. } => count_words(&input.to_string()),
        }
    }

    fn stop_reason(&self) -> &'static str {
        match self {
            Outcome::Text(reply) => match reply.finish {
                Finish::Stop => "end_turn",
                Finish::Length => "max_tokens",
                Finish::StopSequence(_) => "stop_sequence",
            },
            Outcome::ToolUse { .. } => "tool_use",
        }
    }
}

/// With extended thinking on, Claude requires the last assistant turn that used a tool
/// to start with its reasoning (passed back unmodified).
fn check_reasoning_kept(body: &Value) -> Result<(), AwsError> {
    let Some(last) = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "assistant"))
    else {
        return Ok(());
    };
    let content = last["content"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let uses_tool = content.iter().any(|b| b.get("toolUse").is_some());
    let starts_with_reasoning = content
        .first()
        .is_some_and(|b| b.get("reasoningContent").is_some());
    if uses_tool && !starts_with_reasoning {
        let kind = content
            .first()
            .and_then(|b| b.as_object())
            .and_then(|o| o.keys().next())
            .map_or(
                "nothing",
                |k| if k == "toolUse" { "tool_use" } else { "text" },
            );
        return Err(AwsError::validation(format!(
            "messages.{}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{kind}`. When `thinking` is enabled, a final `assistant` message must start with a thinking block.",
            body["messages"].as_array().map_or(0, |m| m.iter().rposition(|m| m["role"] == "assistant").unwrap_or(0))
        )));
    }
    Ok(())
}

/// CountTokens with a Converse input (`{"input":{"converse":{"messages","system"}}}`):
/// the input tokens Converse would charge for them.
pub(super) fn count_tokens(
    state: &SimState,
    request: &RecordedRequest,
    region: &str,
    raw_model_id: &str,
    request_id: &str,
) -> Result<Response, AwsError> {
    let model_id = String::from_utf8_lossy(&percent_decode(raw_model_id)).into_owned();
    // A foundation model's own ID, also of a model served only through profiles.
    match resolve(&state.config, &model_id, region) {
        Ok(_) | Err(ModelIdError::OnDemandUnsupported(_)) => {}
        Err(ModelIdError::Invalid) => return Err(AwsError::validation(INVALID_MODEL_ID)),
    }
    if !state.config.has_access(region) {
        return Err(AwsError::access_denied(NO_MODEL_ACCESS));
    }
    let body: Value = serde_json::from_slice(&request.body).map_err(|err| {
        AwsError::serialization(format!("Unable to parse the request body as JSON: {err}"))
    })?;
    let Some(converse) = body.get("input").and_then(|i| i.get("converse")) else {
        return Err(AwsError::validation(
            "1 validation error detected: Value at 'input' failed to satisfy constraint: Member must not be null",
        ));
    };
    let parsed = parse_request(converse, &model_id)?;
    let headers = [("x-amzn-requestid", request_id.to_owned())];
    Ok(json_response(
        StatusCode::OK,
        &json!({"inputTokens": parsed.prompt_tokens}),
        &headers,
    ))
}

/// Converse (`stream == false`) and ConverseStream.
pub(super) async fn converse(
    state: &SimState,
    request: &RecordedRequest,
    region: &str,
    raw_model_id: &str,
    stream: bool,
    request_id: &str,
) -> Result<Response, AwsError> {
    let started = Instant::now();
    let model_id = String::from_utf8_lossy(&percent_decode(raw_model_id)).into_owned();
    match resolve(&state.config, &model_id, region) {
        Ok((m, _)) if m.is_embedding() => {
            return Err(AwsError::validation(
                "This action doesn't support the model that you provided. Try again with a supported text or chat model.",
            ))
        }
        Ok(_) => {}
        Err(ModelIdError::Invalid) => return Err(AwsError::validation(INVALID_MODEL_ID)),
        Err(ModelIdError::OnDemandUnsupported(id)) => {
            return Err(AwsError::validation(format!(
                "Invocation of model ID {id} with on-demand throughput isn\u{2019}t supported. Retry your request with the ID or ARN of an inference profile that contains this model."
            )))
        }
    }
    if !state.config.has_access(region) {
        return Err(AwsError::access_denied(NO_MODEL_ACCESS));
    }
    let body: Value = serde_json::from_slice(&request.body).map_err(|err| {
        AwsError::serialization(format!("Unable to parse the request body as JSON: {err}"))
    })?;
    let parsed = parse_request(&body, &model_id)?;
    let thinking = thinking_on(
        body.get("additionalModelRequestFields")
            .and_then(|f| f.get("thinking")),
    );
    if thinking {
        check_reasoning_kept(&body)?;
    }
    let faults = Faults::parse(&parsed.last_user_text, &model_id);
    if let Some(delay) = faults.slow {
        tokio::time::sleep(delay).await;
    }
    if faults.transport.reset {
        return Ok(reset_response());
    }
    if faults.iam_denied {
        return Err(AwsError::access_denied(iam_denial(
            region, &model_id, stream,
        )));
    }
    if let Some((name, status, message)) = faults.error {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Err(AwsError::new(status, name, message));
    }
    let outcome = match &parsed.tool_to_call {
        Some(name) => {
            let (name, input) = tool_call(name, &parsed.last_user_text);
            Outcome::ToolUse {
                id: random_id("tooluse_", 22),
                name,
                input,
            }
        }
        None => Outcome::Text(plan_reply(
            &parsed.last_user_text,
            parsed.max_tokens,
            &parsed.stop_sequences,
        )),
    };
    let answer = Answer {
        usage: state
            .cached_prefixes
            .split(parsed.prompt_tokens, &parsed.cache_breakpoints),
        outcome,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        thinking: thinking.then(Thinking::new),
    };
    let headers = [("x-amzn-requestid", request_id.to_owned())];
    if !stream {
        let response = json_response(StatusCode::OK, &answer.json(), &headers);
        return Ok(faults.transport.non_streamed(response));
    }
    let fault = if faults.cut {
        StreamFault::Cut
    } else if let Some(name) = &faults.exception {
        StreamFault::Error(exception_frame(name, &exception_message(name)))
    } else {
        StreamFault::None
    };
    let plan = faults.transport.stream_plan(fault, corrupt_frame, || {
        event_frame(
            "contentBlockDelta",
            &json!({"contentBlockIndex": 0, "delta": {"text": ""}, "p": padding()}),
        )
    });
    Ok(eventstream_response(answer.frames(), plan, &headers))
}

struct Answer {
    usage: CacheSplit,
    outcome: Outcome,
    latency_ms: u64,
    thinking: Option<Thinking>,
}

/// Random-length padding like the `"p"` member of real event payloads.
fn padding() -> String {
    const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let len = rand::thread_rng().gen_range(1..=ALPHABET.len());
    ALPHABET[..len].to_owned()
}

impl Answer {
    fn usage(&self) -> Value {
        let output = self.outcome.output_tokens()
            + self.thinking.as_ref().map_or(0, Thinking::output_tokens);
        let usage = &self.usage;
        json!({
            "inputTokens": usage.input,
            "outputTokens": output,
            "totalTokens": usage.input + output + usage.read + usage.write,
            "cacheReadInputTokens": usage.read,
            "cacheWriteInputTokens": usage.write,
        })
    }

    /// The Converse response body.
    fn json(&self) -> Value {
        let block = match &self.outcome {
            Outcome::Text(reply) => json!({"text": reply.text}),
            Outcome::ToolUse { id, name, input } => {
                json!({"toolUse": {"toolUseId": id, "name": name, "input": input}})
            }
        };
        let mut content = Vec::new();
        if let Some(t) = &self.thinking {
            content.push(json!({"reasoningContent": {"reasoningText": {"text": t.reply.text, "signature": t.signature}}}));
        }
        content.push(block);
        json!({
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": self.outcome.stop_reason(),
            "usage": self.usage(),
            "metrics": {"latencyMs": self.latency_ms},
        })
    }

    /// The ConverseStream events, each payload padded with `"p"`.
    fn frames(&self) -> Vec<StreamFrame> {
        let frame = |event: &str, mut payload: Value, delta: bool| {
            if let Some(map) = payload.as_object_mut() {
                map.insert("p".to_owned(), Value::String(padding()));
            }
            StreamFrame {
                data: event_frame(event, &payload),
                delta,
            }
        };
        let mut frames = vec![frame("messageStart", json!({"role": "assistant"}), false)];
        // Reasoning first (block 0): its text, then its signature.
        let mut index = 0;
        if let Some(t) = &self.thinking {
            for piece in &t.reply.pieces {
                let event =
                    json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": piece}}});
                frames.push(frame("contentBlockDelta", event, true));
            }
            let event = json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": t.signature}}});
            frames.push(frame("contentBlockDelta", event, false));
            frames.push(frame(
                "contentBlockStop",
                json!({"contentBlockIndex": 0}),
                false,
            ));
            index = 1;
        }
        let deltas: Vec<Value> = match &self.outcome {
            Outcome::Text(reply) => reply
                .pieces
                .iter()
                .map(|piece| json!({"text": piece}))
                .collect(),
            Outcome::ToolUse { id, name, input } => {
                let start = json!({
                    "contentBlockIndex": index,
                    "start": {"toolUse": {"toolUseId": id, "name": name}},
                });
                frames.push(frame("contentBlockStart", start, false));
                fragments(&input.to_string(), 3)
                    .into_iter()
                    .map(|part| json!({"toolUse": {"input": part}}))
                    .collect()
            }
        };
        let has_block = !deltas.is_empty() || matches!(self.outcome, Outcome::ToolUse { .. });
        for delta in deltas {
            let event = json!({"contentBlockIndex": index, "delta": delta});
            frames.push(frame("contentBlockDelta", event, true));
        }
        if has_block {
            let stop = json!({"contentBlockIndex": index});
            frames.push(frame("contentBlockStop", stop, false));
        }
        let stop = json!({"stopReason": self.outcome.stop_reason()});
        frames.push(frame("messageStop", stop, false));
        let metadata = json!({"usage": self.usage(), "metrics": {"latencyMs": self.latency_ms}});
        frames.push(frame("metadata", metadata, false));
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_directives() {
        let faults = Faults::parse(
            "x [[sim:error 429]] [[sim:exception ThrottlingException]]",
            "m",
        );
        assert_eq!(faults.error.map(|e| e.0), Some("ThrottlingException"));
        assert_eq!(faults.exception.as_deref(), Some("throttlingException"));
        let faults = Faults::parse(
            "[[sim:error modelNotReady]] [[sim:cut]] [[sim:slow 5]]",
            "m",
        );
        assert_eq!(
            faults.error,
            Some((
                "ModelNotReadyException",
                429,
                "Model is not ready to serve inference requests."
            ))
        );
        assert!(faults.cut);
        assert_eq!(faults.slow, Some(Duration::from_millis(5)));
        assert_eq!(
            Faults::parse("[[sim:error 503]]", "m").error.map(|e| e.0),
            Some("ServiceUnavailableException")
        );
        assert_eq!(
            Faults::parse("[[sim:error 424]]", "m").error.map(|e| e.0),
            Some("ModelErrorException")
        );
        assert_eq!(
            Faults::parse("[[sim:error 408]]", "m").error.map(|e| e.0),
            Some("ModelTimeoutException")
        );
        assert_eq!(
            Faults::parse("[[sim:error 502]]", "m")
                .error
                .map(|e| (e.0, e.1)),
            Some(("InternalServerException", 502))
        );
        assert_eq!(Faults::parse("[[sim:error 200]]", "m").error, None);
        assert!(Faults::parse("[[sim:iam-denied]]", "m").iam_denied);
        assert_eq!(
            iam_denial("us-east-1", "us.amazon.nova-pro-v1:0", false),
            "User: arn:aws:sts::123456789012:assumed-role/GammaInfra/i-0abc is not authorized to perform: bedrock:InvokeModel on resource: arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0 because no identity-based policy allows the bedrock:InvokeModel action"
        );
        assert_eq!(
            exception_message("serviceUnavailableException"),
            "Bedrock is unable to process your request."
        );
        assert_eq!(
            exception_message("fancyException"),
            "Simulated fancyException."
        );
    }
}
