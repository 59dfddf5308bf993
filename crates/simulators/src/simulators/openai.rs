//! Simulated OpenAI Chat Completions API: `POST /v1/chat/completions`,
//! `POST /v1/embeddings` (see [`embeddings`]), `GET /v1/models` and `GET /v1/models/{id}`,
//! behind `Authorization: Bearer <key>`.
//!
//! Errors use the real body `{"error":{"message","type","param","code"}}`; every
//! response carries an `x-request-id` header. See the parent module for the
//! deterministic reply, token and fault-trigger rules.

mod embeddings;
mod responses;
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
    tool_call, unix_now, Finish, RecordedRequest, Reply, RequestLog, SseFrame, Triggers,
};
use validate::{is_known_model, parse_request, ChatRequest};

/// Models listed by `GET /v1/models` (any `gpt-`, `o1`, `o3`, `o4`, `mock-` or `sim-`
/// model is accepted by the completions endpoint).
const LISTED_MODELS: &[&str] = &[
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o3",
    "o3-mini",
    "o4-mini",
    "sim-echo",
];

struct SimState {
    api_key: String,
    log: RequestLog,
}

pub(super) fn router(api_key: &str, log: RequestLog) -> Router {
    let state = Arc::new(SimState {
        api_key: api_key.to_owned(),
        log,
    });
    Router::new().fallback(handle).with_state(state)
}

/// An OpenAI API error.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    param: Option<String>,
    code: Option<&'static str>,
}

impl ApiError {
    /// A 400 `invalid_request_error`.
    fn invalid(message: String, param: Option<&str>, code: Option<&'static str>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message,
            kind: "invalid_request_error",
            param: param.map(str::to_owned),
            code,
        }
    }

    fn model_not_found(model: &str) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("The model `{model}` does not exist or you do not have access to it."),
            kind: "invalid_request_error",
            param: None,
            code: Some("model_not_found"),
        }
    }

    fn invalid_url(method: &str, path: &str) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("Invalid URL ({method} {path})"),
            kind: "invalid_request_error",
            param: None,
            code: None,
        }
    }

    /// The error a `[[sim:error STATUS]]` trigger produces.
    fn simulated(status: u16, model: &str) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (message, kind, code) = match status.as_u16() {
            429 => (
                format!("Rate limit reached for {model} in organization org-simulated on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 1s. Visit https://platform.openai.com/account/rate-limits to learn more."),
                "requests",
                Some("rate_limit_exceeded"),
            ),
            401 => (
                "Incorrect API key provided.".to_owned(),
                "invalid_request_error",
                Some("invalid_api_key"),
            ),
            400..=499 => (
                "Simulated invalid request.".to_owned(),
                "invalid_request_error",
                None,
            ),
            503 | 529 => (
                "The server is overloaded or not ready yet.".to_owned(),
                "server_error",
                None,
            ),
            _ => (
                "The server had an error while processing your request. Sorry about that!"
                    .to_owned(),
                "server_error",
                None,
            ),
        };
        ApiError {
            status,
            message,
            kind,
            param: None,
            code,
        }
    }

    fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }

    fn into_response(self, request_id: &str) -> Response {
        let mut headers = vec![("x-request-id", request_id.to_owned())];
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            headers.push(("retry-after", "1".to_owned()));
        }
        json_response(self.status, &self.body(), &headers)
    }
}

async fn handle(State(state): State<Arc<SimState>>, request: Request) -> Response {
    let request_id = random_id("req_", 32);
    let Some(recorded) = state.log.record(request).await else {
        let error = ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: "Request body too large or unreadable.".to_owned(),
            kind: "invalid_request_error",
            param: None,
            code: None,
        };
        return error.into_response(&request_id);
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
    let (method, path) = (request.method.as_str(), request.path.as_str());
    check_auth(state, request)?;
    let headers = [("x-request-id", request_id.to_owned())];
    match (method, path) {
        ("POST", "/v1/chat/completions") => chat(request, request_id).await,
        ("POST", "/v1/responses") => responses::create(request, request_id).await,
        ("POST", "/v1/embeddings") => embeddings::create(request, request_id),
        ("GET", "/v1/models") => {
            let data: Vec<Value> = LISTED_MODELS.iter().map(|id| model_object(id)).collect();
            Ok(json_response(
                StatusCode::OK,
                &json!({"object": "list", "data": data}),
                &headers,
            ))
        }
        ("GET", _) if path.starts_with("/v1/models/") => {
            let id = &path["/v1/models/".len()..];
            if is_known_model(id) {
                Ok(json_response(StatusCode::OK, &model_object(id), &headers))
            } else {
                Err(ApiError {
                    param: Some("model".to_owned()),
                    message: format!("The model '{id}' does not exist"),
                    ..ApiError::model_not_found(id)
                })
            }
        }
        _ => Err(ApiError::invalid_url(method, path)),
    }
}

fn model_object(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 1_700_000_000u64, "owned_by": "system"})
}

fn check_auth(state: &SimState, request: &RecordedRequest) -> Result<(), ApiError> {
    let key = request
        .header("authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let unauthorized = |message: String, code| ApiError {
        status: StatusCode::UNAUTHORIZED,
        message,
        kind: "invalid_request_error",
        param: None,
        code,
    };
    match key {
        None => Err(unauthorized(
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.".to_owned(),
            None,
        )),
        Some(key) if key == state.api_key => Ok(()),
        Some(key) => Err(unauthorized(
            format!(
                "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
                redact(key)
            ),
            Some("invalid_api_key"),
        )),
    }
}

/// `sk-abc***********wxyz`, like the real error message.
fn redact(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

/// What the simulated model produces.
enum Outcome {
    Text(Reply),
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
}

impl Outcome {
    fn completion_tokens(&self) -> u64 {
        match self {
            Outcome::Text(reply) => reply.output_tokens(),
            Outcome::ToolCall { arguments, .. } => count_words(arguments),
        }
    }

    fn finish_reason(&self) -> &'static str {
        match self {
            Outcome::Text(Reply {
                finish: Finish::Length,
                ..
            }) => "length",
            Outcome::Text(_) => "stop",
            Outcome::ToolCall { .. } => "tool_calls",
        }
    }
}

async fn chat(request: &RecordedRequest, request_id: &str) -> Result<Response, ApiError> {
    let body: Value = serde_json::from_slice(&request.body).map_err(|_| {
        ApiError::invalid(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)".to_owned(),
            None,
            None,
        )
    })?;
    let chat = parse_request(&body)?;
    let triggers = Triggers::parse(&chat.last_user_text, &chat.model);
    triggers.apply_delay().await;
    if triggers.transport.reset {
        return Ok(reset_response());
    }
    if let Some(status) = triggers.error_status {
        return Err(ApiError::simulated(status, &chat.model));
    }
    let outcome = match &chat.tool_to_call {
        Some(name) => {
            let (name, input) = tool_call(name, &chat.last_user_text);
            Outcome::ToolCall {
                id: random_id("call_", 24),
                name,
                arguments: input.to_string(),
            }
        }
        None => Outcome::Text(plan_reply(
            &chat.last_user_text,
            chat.max_tokens,
            &chat.stop,
        )),
    };
    let completion = Completion {
        id: random_id("chatcmpl-", 29),
        created: unix_now(),
        request: chat,
        outcome,
    };
    let headers = [("x-request-id", request_id.to_owned())];
    if completion.request.stream {
        let plan = triggers.stream_plan(
            || {
                let error = ApiError::simulated(500, &completion.request.model);
                Bytes::from(format!("data: {}\n\n", error.body()))
            },
            || {
                Bytes::from(format!(
                    "data: {{\"id\":\"{}\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"\n\n",
                    completion.id
                ))
            },
            || {
                Bytes::from(format!(
                    "data: {{\"id\":\"{}\",\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":\"{}\",\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":null}}]}}\n\n",
                    completion.id, completion.created, completion.request.model
                ))
            },
        );
        Ok(sse_response(completion.chunks(), plan, &headers))
    } else {
        let response = json_response(StatusCode::OK, &completion.json(), &headers);
        Ok(triggers.transport.non_streamed(response))
    }
}

struct Completion {
    id: String,
    created: u64,
    request: ChatRequest,
    outcome: Outcome,
}

impl Completion {
    fn usage(&self) -> Value {
        let prompt = self.request.prompt_tokens;
        let completion = self.outcome.completion_tokens();
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        })
    }

    /// The non-streaming `chat.completion` object.
    fn json(&self) -> Value {
        let message = match &self.outcome {
            Outcome::Text(reply) => json!({
                "role": "assistant",
                "content": reply.text,
                "refusal": null,
                "annotations": [],
            }),
            Outcome::ToolCall {
                id,
                name,
                arguments,
            } => json!({
                "role": "assistant",
                "content": null,
                "tool_calls": [{
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }],
                "refusal": null,
                "annotations": [],
            }),
        };
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.request.model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": self.outcome.finish_reason(),
            }],
            "usage": self.usage(),
            "service_tier": "default",
            "system_fingerprint": "fp_simulated",
        })
    }

    fn chunk(&self, choices: Value, usage: Option<Value>) -> Value {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.request.model,
            "service_tier": "default",
            "system_fingerprint": "fp_simulated",
            "choices": choices,
        });
        if self.request.include_usage {
            chunk["usage"] = usage.unwrap_or(Value::Null);
        }
        chunk
    }

    fn delta_chunk(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        self.chunk(
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}]),
            None,
        )
    }

    /// The `chat.completion.chunk` stream, ending with `data: [DONE]`.
    fn chunks(&self) -> Vec<SseFrame> {
        let mut frames = Vec::new();
        match &self.outcome {
            Outcome::Text(reply) => {
                let role = json!({"role": "assistant", "content": "", "refusal": null});
                frames.push(SseFrame::data(&self.delta_chunk(role, None), false));
                for piece in &reply.pieces {
                    let delta = self.delta_chunk(json!({"content": piece}), None);
                    frames.push(SseFrame::data(&delta, true));
                }
            }
            Outcome::ToolCall {
                id,
                name,
                arguments,
            } => {
                let role = json!({"role": "assistant", "content": null, "refusal": null});
                frames.push(SseFrame::data(&self.delta_chunk(role, None), false));
                let header = json!({"tool_calls": [{
                    "index": 0,
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }]});
                frames.push(SseFrame::data(&self.delta_chunk(header, None), false));
                for fragment in fragments(arguments, 3) {
                    let delta = json!({"tool_calls": [{
                        "index": 0,
                        "function": {"arguments": fragment},
                    }]});
                    frames.push(SseFrame::data(&self.delta_chunk(delta, None), true));
                }
            }
        }
        let last = self.delta_chunk(json!({}), Some(self.outcome.finish_reason()));
        frames.push(SseFrame::data(&last, false));
        if self.request.include_usage {
            let usage = self.chunk(json!([]), Some(self.usage()));
            frames.push(SseFrame::data(&usage, false));
        }
        frames.push(SseFrame {
            data: Bytes::from_static(b"data: [DONE]\n\n"),
            delta: false,
        });
        frames
    }
}

#[cfg(test)]
mod tests;
