//! Simulated Anthropic Messages API: `POST /v1/messages` behind `x-api-key` and
//! `anthropic-version` (`2023-06-01` or `2023-01-01`).
//!
//! Errors use the real body
//! `{"type":"error","error":{"type","message"},"request_id":"req_..."}` and every
//! response carries a `request-id` header. See the parent module for the deterministic
//! reply, token, prompt-caching and fault-trigger rules.

mod validate;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Value};

use super::{
    count_words, fragments, json_response, plan_reply, random_id, reset_response, sse_response,
    thinking_on, tool_call, CacheSplit, Finish, PromptCache, RecordedRequest, Reply, RequestLog,
    SseFrame, Thinking, Triggers,
};
use validate::{parse_request, MessagesRequest};

/// The `anthropic-version`s accepted: the API's long-standing one, its first, and the one
/// the official SDKs send from their 2.x releases (`ANTHROPIC_API_VERSION` in the Python
/// SDK 2.14.0's `_constants.py`).
const API_VERSIONS: [&str; 3] = ["2023-06-01", "2023-01-01", "2026-10-21"];

struct SimState {
    api_key: String,
    log: RequestLog,
    /// Hashes of the prompt prefixes already written to the simulated cache. A std
    /// `Mutex`: it is only held for a few set operations, never across an `.await`.
    cached_prefixes: PromptCache,
}

pub(super) fn router(api_key: &str, log: RequestLog) -> Router {
    let state = Arc::new(SimState {
        api_key: api_key.to_owned(),
        log,
        cached_prefixes: PromptCache::default(),
    });
    Router::new().fallback(handle).with_state(state)
}

/// An Anthropic API error.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    /// A 400 `invalid_request_error`.
    fn invalid(message: String) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message,
        }
    }

    fn not_found(message: String) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "not_found_error",
            message,
        }
    }

    fn unauthorized(message: &str) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            kind: "authentication_error",
            message: message.to_owned(),
        }
    }

    /// The error a `[[sim:error STATUS]]` trigger produces.
    fn simulated(status: u16) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (kind, message) = match status.as_u16() {
            401 => ("authentication_error", "invalid x-api-key"),
            403 => (
                "permission_error",
                "Your API key does not have permission to use the specified resource.",
            ),
            404 => ("not_found_error", "Not found"),
            413 => (
                "request_too_large",
                "Request exceeds the maximum allowed number of bytes.",
            ),
            429 => (
                "rate_limit_error",
                "This request would exceed the rate limit for your organization of 50 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase.",
            ),
            504 => ("timeout_error", "Request timed out"),
            529 => ("overloaded_error", "Overloaded"),
            400..=499 => ("invalid_request_error", "Simulated invalid request"),
            _ => ("api_error", "Internal server error"),
        };
        ApiError {
            status,
            kind,
            message: message.to_owned(),
        }
    }

    fn error_object(&self) -> Value {
        json!({"type": self.kind, "message": self.message})
    }

    fn into_response(self, request_id: &str) -> Response {
        let body = json!({
            "type": "error",
            "error": self.error_object(),
            "request_id": request_id,
        });
        let mut headers = vec![("request-id", request_id.to_owned())];
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            headers.push(("retry-after", "1".to_owned()));
        }
        json_response(self.status, &body, &headers)
    }
}

async fn handle(State(state): State<Arc<SimState>>, request: Request) -> Response {
    let request_id = random_id("req_011C", 20);
    let Some(recorded) = state.log.record(request).await else {
        return ApiError::simulated(413).into_response(&request_id);
    };
    match route(&state, &recorded, &request_id).await {
        Ok(response) => response,
        Err(error) => error.into_response(&request_id),
    }
}

async fn route(
    state: &SimState,
    request: &RecordedRequest,
    request_id: &str,
) -> Result<Response, ApiError> {
    match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/v1/messages") => messages(state, request, request_id).await,
        ("POST", "/v1/messages/count_tokens") => count_tokens(state, request, request_id),
        (_, "/v1/messages") => Err(ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            kind: "invalid_request_error",
            message: "Method Not Allowed".to_owned(),
        }),
        _ => Err(ApiError::not_found("Not Found".to_owned())),
    }
}

fn check_headers(state: &SimState, request: &RecordedRequest) -> Result<(), ApiError> {
    match request.header("x-api-key") {
        None => return Err(ApiError::unauthorized("x-api-key header is required")),
        Some(key) if key != state.api_key => {
            return Err(ApiError::unauthorized("invalid x-api-key"))
        }
        Some(_) => {}
    }
    match request.header("anthropic-version") {
        None => Err(ApiError::invalid(
            "anthropic-version: header is required".to_owned(),
        )),
        Some(version) if !API_VERSIONS.contains(&version) => Err(ApiError::invalid(format!(
            "anthropic-version: invalid version '{version}'"
        ))),
        Some(_) => Ok(()),
    }
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

    fn stop_sequence(&self) -> Option<&str> {
        match self {
            Outcome::Text(Reply {
                finish: Finish::StopSequence(stop),
                ..
            }) => Some(stop),
            _ => None,
        }
    }
}

/// `POST /v1/messages/count_tokens`: the prompt tokens a Messages request would be
/// charged for (it takes the request without `max_tokens`).
fn count_tokens(
    state: &SimState,
    request: &RecordedRequest,
    request_id: &str,
) -> Result<Response, ApiError> {
    check_headers(state, request)?;
    let mut body: Value = serde_json::from_slice(&request.body).map_err(|err| {
        ApiError::invalid(format!(
            "There was an error parsing the body of your request: {err}"
        ))
    })?;
    if let Some(o) = body.as_object_mut() {
        o.entry("max_tokens").or_insert(json!(1));
    }
    let parsed = parse_request(&body, request.header("anthropic-beta").unwrap_or(""))?;
    let headers = [("request-id", request_id.to_owned())];
    Ok(json_response(
        StatusCode::OK,
        &json!({"input_tokens": parsed.prompt_tokens}),
        &headers,
    ))
}

async fn messages(
    state: &SimState,
    request: &RecordedRequest,
    request_id: &str,
) -> Result<Response, ApiError> {
    check_headers(state, request)?;
    let body: Value = serde_json::from_slice(&request.body).map_err(|err| {
        ApiError::invalid(format!(
            "There was an error parsing the body of your request: {err}"
        ))
    })?;
    let parsed = parse_request(&body, request.header("anthropic-beta").unwrap_or(""))?;
    let triggers = Triggers::parse(&parsed.last_user_text, &parsed.model);
    triggers.apply_delay().await;
    if triggers.transport.reset {
        return Ok(reset_response());
    }
    if let Some(status) = triggers.error_status {
        return Err(ApiError::simulated(status));
    }
    let outcome = match &parsed.tool_to_call {
        Some(name) => {
            let (name, input) = tool_call(name, &parsed.last_user_text);
            Outcome::ToolUse {
                id: random_id("toolu_01", 22),
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
    let message = Message {
        id: random_id("msg_01", 22),
        usage: state
            .cached_prefixes
            .split(parsed.prompt_tokens, &parsed.cache_breakpoints),
        request: parsed,
        outcome,
        thinking: thinking_on(body.get("thinking")).then(Thinking::new),
    };
    let headers = [("request-id", request_id.to_owned())];
    if message.request.stream {
        let plan = triggers.stream_plan(
            || {
                let error =
                    json!({"type": "error", "error": ApiError::simulated(529).error_object()});
                Bytes::from(format!("event: error\ndata: {error}\n\n"))
            },
            || {
                Bytes::from_static(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\n\n")
            },
            || Bytes::from_static(b"event: ping\ndata: {\"type\": \"ping\"}\n\n"),
        );
        Ok(sse_response(message.events(), plan, &headers))
    } else {
        let response = json_response(StatusCode::OK, &message.json(), &headers);
        Ok(triggers.transport.non_streamed(response))
    }
}

struct Message {
    id: String,
    request: MessagesRequest,
    usage: CacheSplit,
    outcome: Outcome,
    thinking: Option<Thinking>,
}

impl Message {
    fn usage(&self, output_tokens: u64) -> Value {
        json!({
            "input_tokens": self.usage.input,
            "cache_creation_input_tokens": self.usage.write,
            "cache_read_input_tokens": self.usage.read,
            "output_tokens": output_tokens,
        })
    }

    fn envelope(
        &self,
        content: Value,
        stop_reason: Option<&str>,
        stop_sequence: Option<&str>,
        output_tokens: u64,
    ) -> Value {
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.request.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": self.usage(output_tokens),
        })
    }

    fn output_tokens(&self) -> u64 {
        self.outcome.output_tokens() + self.thinking.as_ref().map_or(0, Thinking::output_tokens)
    }

    /// The non-streaming message object.
    fn json(&self) -> Value {
        let block = match &self.outcome {
            Outcome::Text(reply) => json!({"type": "text", "text": reply.text}),
            Outcome::ToolUse { id, name, input } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
        };
        let mut content = Vec::new();
        if let Some(t) = &self.thinking {
            content.push(
                json!({"type": "thinking", "thinking": t.reply.text, "signature": t.signature}),
            );
        }
        content.push(block);
        self.envelope(
            Value::Array(content),
            Some(self.outcome.stop_reason()),
            self.outcome.stop_sequence(),
            self.output_tokens(),
        )
    }

    /// The event stream, from `message_start` to `message_stop`.
    fn events(&self) -> Vec<SseFrame> {
        let start = json!({
            "type": "message_start",
            "message": self.envelope(json!([]), None, None, 1),
        });
        let mut frames = vec![SseFrame::event("message_start", &start, false)];
        // The thinking block first (block 0), then the answer's block.
        let mut index = 0;
        if let Some(t) = &self.thinking {
            let block_start = json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "thinking", "thinking": ""}});
            frames.push(SseFrame::event("content_block_start", &block_start, false));
            frames.push(SseFrame::event("ping", &json!({"type": "ping"}), false));
            for piece in &t.reply.pieces {
                let event = json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": piece}});
                frames.push(SseFrame::event("content_block_delta", &event, true));
            }
            let event = json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "signature_delta", "signature": t.signature}});
            frames.push(SseFrame::event("content_block_delta", &event, false));
            let block_stop = json!({"type": "content_block_stop", "index": 0});
            frames.push(SseFrame::event("content_block_stop", &block_stop, false));
            index = 1;
        }
        let (block, deltas): (Value, Vec<Value>) = match &self.outcome {
            Outcome::Text(reply) => (
                json!({"type": "text", "text": ""}),
                reply
                    .pieces
                    .iter()
                    .map(|piece| json!({"type": "text_delta", "text": piece}))
                    .collect(),
            ),
            Outcome::ToolUse { id, name, input } => (
                json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                fragments(&input.to_string(), 3)
                    .into_iter()
                    .map(|part| json!({"type": "input_json_delta", "partial_json": part}))
                    .collect(),
            ),
        };
        let block_start =
            json!({"type": "content_block_start", "index": index, "content_block": block});
        frames.push(SseFrame::event("content_block_start", &block_start, false));
        if index == 0 {
            frames.push(SseFrame::event("ping", &json!({"type": "ping"}), false));
        }
        for delta in deltas {
            let event = json!({"type": "content_block_delta", "index": index, "delta": delta});
            frames.push(SseFrame::event("content_block_delta", &event, true));
        }
        let block_stop = json!({"type": "content_block_stop", "index": index});
        frames.push(SseFrame::event("content_block_stop", &block_stop, false));
        let message_delta = json!({
            "type": "message_delta",
            "delta": {
                "stop_reason": self.outcome.stop_reason(),
                "stop_sequence": self.outcome.stop_sequence(),
            },
            "usage": {"output_tokens": self.output_tokens()},
        });
        frames.push(SseFrame::event("message_delta", &message_delta, false));
        let stop = json!({"type": "message_stop"});
        frames.push(SseFrame::event("message_stop", &stop, false));
        frames
    }
}

#[cfg(test)]
mod tests;
