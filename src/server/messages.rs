//! `POST /v1/messages`: Anthropic's Messages API, served by the chat pipeline (see
//! [`crate::messages`]). Auth by `x-api-key` or `Authorization: Bearer`;
//! `anthropic-version` and `anthropic-beta` are accepted and passed on to Anthropic;
//! `?beta=true` (what Anthropic's SDKs add for beta features) is accepted. Errors take
//! Anthropic's shape, `{"type":"error","error":{"type","message"},"request_id"}`, with
//! the gateway's status codes (402 `billing_error` for credit).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::chat::{serve, Surface};
use super::error::ApiError;
use super::AppState;

pub async fn create(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    serve(st, headers, body, Surface::Messages).await
}

/// An error in Anthropic's shape, with the same status and headers.
pub(super) fn error_response(e: ApiError, request_id: &str) -> Response {
    let body = crate::messages::encode::error_body(e.status, &e.message, Some(request_id));
    let mut r = (e.status, body.to_string()).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    for (k, v) in &e.headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            r.headers_mut().insert(*k, v);
        }
    }
    r.extensions_mut().insert(e);
    r
}
