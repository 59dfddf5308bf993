//! Simulated AWS Bedrock: the runtime (`POST /model/{modelId}/converse`,
//! `POST /model/{modelId}/converse-stream`, and `POST /model/{modelId}/invoke` for the
//! embedding models, see [`invoke`]) and the control-plane calls the gateway uses
//! (`GET /inference-profiles`, `GET /inference-profiles/{id}`, `GET /foundation-models`,
//! `GET /foundation-models/{id}`), on one server.
//!
//! # Authentication
//! * SigV4 (`Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/bedrock/aws4_request,
//!   SignedHeaders=..., Signature=...` with `X-Amz-Date`, and `X-Amz-Security-Token` when
//!   the configuration has a session token), checked by the simulator's own verifier
//!   ([`sigv4`]). The signing name must be `bedrock`; the source region is the
//!   credential-scope region (the host is irrelevant). The path is canonicalized the way
//!   the SDKs encode it (`:` → `%3A`, `/` in an ARN → `%2F`) and encoded a second time
//!   in the canonical URI, so a model ID sent with a raw `:` fails the signature check.
//!   The body hash is always computed from the body (`x-amz-content-sha256` is not
//!   trusted). Failures: unknown access key or session token → 403
//!   `UnrecognizedClientException`; wrong signature, scope or service → 403
//!   `InvalidSignatureException`; `X-Amz-Date` more than 5 minutes off → 403
//!   `InvalidSignatureException` `Signature expired: ...` / `Signature not yet current: ...`;
//!   a malformed header → 403 `IncompleteSignatureException`.
//! * `Authorization: Bearer <bearer_token>` (a Bedrock API key). The source region is
//!   the one a short-term key (`bedrock-api-key-...`) was minted for, else the first of
//!   `accessible_regions`. A wrong key → 403 `AccessDeniedException`
//!   `{"Message":"Authentication failed: Please make sure your API Key is valid."}`.
//! * No `Authorization` header → 403 `AccessDeniedException`
//!   `{"Message":"Authorization header is missing"}` (what Bedrock answers).
//!
//! Errors carry `x-amzn-ErrorType: <Name>:http://internal.amazon.com/coral/com.amazon.bedrock/`
//! (the authentication layer's: `.../com.amazon.coral.service/`), `x-amzn-RequestId` and
//! a JSON body `{"message":"..."}`.
//!
//! # Model identifiers
//! Checked after authentication (see [`models`]): a bare ID is invocable only for
//! on-demand models (in us-east-1 and us-west-2); the bare ID of a profile-only model is a
//! 400 `ValidationException` `Invocation of model ID {id} with on-demand throughput isn’t
//! supported. Retry your request with the ID or ARN of an inference profile that contains
//! this model.`; an unknown ID, a profile prefix the model does not have, or a profile
//! called from a source region outside its geography is a 400 `ValidationException` `The
//! provided model identifier is invalid.`; a source region without model access is a 403
//! `AccessDeniedException` `You don't have access to the model with the specified model ID.`
//!
//! # Conversation
//! The parent module's deterministic rules apply (reply, tokens, tools, stop sequences,
//! `maxTokens` → `max_tokens`); a `cachePoint` block works like Anthropic's
//! `cache_control` (the tokens before it are `cacheWriteInputTokens` the first time that
//! prefix is seen, `cacheReadInputTokens` afterwards; `inputTokens` is the rest and
//! `totalTokens` the sum of all four counts). Fault triggers in the last user text:
//! * `[[sim:error 429]]` → 429 `ThrottlingException`, `503` → `ServiceUnavailableException`,
//!   `500` → `InternalServerException`, `424` → `ModelErrorException`, `408` →
//!   `ModelTimeoutException`, `400`/`403`/`404` → `ValidationException` /
//!   `AccessDeniedException` / `ResourceNotFoundException`; `[[sim:error modelNotReady]]`
//!   (or any exception name) → that exception with its status.
//! * Streaming only: `[[sim:exception throttlingException]]` (any lowerCamel name) → two
//!   content deltas, then an exception frame, then the body ends; `[[sim:midstream-error]]`
//!   is `[[sim:exception serviceUnavailableException]]`; `[[sim:cut]]` → two deltas, then
//!   the connection closes abruptly.
//! * `[[sim:iam-denied]]` → 403 `AccessDeniedException` in AWS's IAM denial format, which
//!   names the account ID and role: `User: arn:aws:sts::123456789012:assumed-role/GammaInfra/i-0abc
//!   is not authorized to perform: bedrock:InvokeModel on resource: arn:aws:bedrock:...
//!   because no identity-based policy allows the bedrock:InvokeModel action`.
//! * `[[sim:slow 200]]` waits 200 ms first.
//! * The transport faults every simulator shares (`reset`, `hang`, `corrupt`, `drip`,
//!   positions, `@MODEL` targets; see the parent module): a corrupt frame here is a
//!   `contentBlockDelta` frame whose message CRC does not match.

mod control;
mod eventstream;
mod invoke;
mod models;
mod runtime;
mod sigv4;
mod validate;

#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vector_tests;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use rand::Rng;
use serde_json::json;

pub use models::{BedrockSimConfig, BedrockSimModel};
pub(super) use sigv4::{percent_decode, signing_region};

use super::{json_response, RecordedRequest, RequestLog};

/// Namespace of Bedrock's own errors in `x-amzn-ErrorType`.
const BEDROCK_NAMESPACE: &str = "http://internal.amazon.com/coral/com.amazon.bedrock/";
/// Namespace of the errors raised by the AWS front end (authentication, parsing).
const CORAL_NAMESPACE: &str = "http://internal.amazon.com/coral/com.amazon.coral.service/";

struct SimState {
    config: BedrockSimConfig,
    log: RequestLog,
    /// Hashes of the prompt prefixes already written to the simulated cache.
    cached_prefixes: super::PromptCache,
}

pub(super) fn router(config: BedrockSimConfig, log: RequestLog) -> Router {
    let state = Arc::new(SimState {
        config,
        log,
        cached_prefixes: super::PromptCache::default(),
    });
    Router::new().fallback(handle).with_state(state)
}

/// An AWS error response.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AwsError {
    status: StatusCode,
    code: String,
    message: String,
    namespace: &'static str,
    /// `message` for Bedrock's errors, `Message` for the front end's.
    message_key: &'static str,
}

impl AwsError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        AwsError {
            status,
            code: code.to_owned(),
            message: message.into(),
            namespace: BEDROCK_NAMESPACE,
            message_key: "message",
        }
    }

    /// An error of the authentication / parsing front end.
    fn front_end(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        AwsError {
            namespace: CORAL_NAMESPACE,
            ..AwsError::new(status, code, message)
        }
    }

    fn validation(message: impl Into<String>) -> Self {
        AwsError::new(StatusCode::BAD_REQUEST, "ValidationException", message)
    }

    fn serialization(message: impl Into<String>) -> Self {
        AwsError::front_end(StatusCode::BAD_REQUEST, "SerializationException", message)
    }

    fn access_denied(message: impl Into<String>) -> Self {
        AwsError::new(StatusCode::FORBIDDEN, "AccessDeniedException", message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        AwsError::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
    }

    fn into_response(self, request_id: &str) -> Response {
        let body = json!({ self.message_key: self.message });
        let headers = [
            (
                "x-amzn-errortype",
                format!("{}:{}", self.code, self.namespace),
            ),
            ("x-amzn-requestid", request_id.to_owned()),
        ];
        json_response(self.status, &body, &headers)
    }
}

/// A request ID shaped like AWS's (a random UUID).
fn request_id() -> String {
    let bytes: [u8; 16] = rand::thread_rng().gen();
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

async fn handle(State(state): State<Arc<SimState>>, request: Request) -> Response {
    let request_id = request_id();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let Some(recorded) = state.log.record(request).await else {
        return AwsError::validation("The request body is too large.").into_response(&request_id);
    };
    let result = match authenticate(&state.config, &recorded, &query) {
        Ok(region) => route(&state, &recorded, &query, &region, &request_id).await,
        Err(error) => Err(error),
    };
    result.unwrap_or_else(|error| error.into_response(&request_id))
}

async fn route(
    state: &SimState,
    request: &RecordedRequest,
    query: &str,
    region: &str,
    request_id: &str,
) -> Result<Response, AwsError> {
    let segments: Vec<&str> = request.path.split('/').collect();
    match (request.method.as_str(), &segments[..]) {
        ("POST", ["", "model", model, "converse"]) => {
            runtime::converse(state, request, region, model, false, request_id).await
        }
        ("POST", ["", "model", model, "converse-stream"]) => {
            runtime::converse(state, request, region, model, true, request_id).await
        }
        ("POST", ["", "model", model, "invoke"]) => {
            invoke::invoke(state, request, region, model, request_id)
        }
        ("POST", ["", "model", model, "count-tokens"]) => {
            runtime::count_tokens(state, request, region, model, request_id)
        }
        ("GET", ["", "inference-profiles"]) => {
            control::list_inference_profiles(&state.config, region, query, request_id)
        }
        ("GET", ["", "inference-profiles", id]) => {
            control::get_inference_profile(&state.config, region, id, request_id)
        }
        ("GET", ["", "foundation-models"]) => {
            control::list_foundation_models(&state.config, region, query, request_id)
        }
        ("GET", ["", "foundation-models", id]) => {
            control::get_foundation_model(&state.config, region, id, request_id)
        }
        _ => Err(AwsError::front_end(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "Unknown operation",
        )),
    }
}

/// Checks the request's credentials; returns its source region.
fn authenticate(
    config: &BedrockSimConfig,
    request: &RecordedRequest,
    query: &str,
) -> Result<String, AwsError> {
    let forbidden =
        |code: &str, message: &str| AwsError::front_end(StatusCode::FORBIDDEN, code, message);
    let Some(authorization) = request.header("authorization") else {
        return Err(AwsError {
            message_key: "Message",
            ..forbidden("AccessDeniedException", "Authorization header is missing")
        });
    };
    if let Some(token) = authorization.strip_prefix("Bearer ") {
        if config.bearer_token.as_deref() != Some(token.trim()) {
            return Err(AwsError {
                message_key: "Message",
                ..forbidden(
                    "AccessDeniedException",
                    "Authentication failed: Please make sure your API Key is valid.",
                )
            });
        }
        return Ok(bearer_region(token).unwrap_or_else(|| {
            config
                .accessible_regions
                .first()
                .cloned()
                .unwrap_or_else(|| "us-east-1".to_owned())
        }));
    }
    let path = sigv4::reencode_path(&request.path);
    let signed = sigv4::SignedRequest {
        method: &request.method,
        path: &path,
        query,
        headers: &request.headers,
        body: &request.body,
    };
    let credentials = sigv4::Credentials {
        access_key_id: &config.access_key_id,
        secret_access_key: &config.secret_access_key,
        session_token: config.session_token.as_deref(),
    };
    let now = time::OffsetDateTime::now_utc();
    match sigv4::verify(&signed, authorization, &credentials, "bedrock", now) {
        Ok(auth) => Ok(auth.region),
        Err(sigv4::AuthFailure::Incomplete(message)) => {
            Err(forbidden("IncompleteSignatureException", &message))
        }
        Err(sigv4::AuthFailure::UnrecognizedClient) => Err(forbidden(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )),
        Err(sigv4::AuthFailure::InvalidSignature(message)) => {
            Err(forbidden("InvalidSignatureException", &message))
        }
    }
}

/// The region a short-term Bedrock API key was minted for: the token is
/// `bedrock-api-key-` + base64 of a presigned URL whose `X-Amz-Credential` holds it.
fn bearer_region(token: &str) -> Option<String> {
    let encoded = token.trim().strip_prefix("bedrock-api-key-")?;
    let url = aws_smithy_types::base64::decode(encoded).ok()?;
    let url = String::from_utf8(url).ok()?;
    let credential = url
        .split(['?', '&'])
        .find_map(|param| param.strip_prefix("X-Amz-Credential="))?;
    let credential = String::from_utf8(percent_decode(credential)).ok()?;
    credential.split('/').nth(2).map(str::to_owned)
}
