//! Stripe's error body, `{"error":{"code","doc_url","message","param","type"}}`, and
//! the one conversion of every refusal (validation, authentication, a control) into it.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::routes::stripe_json;
use super::ControlError;

/// A Stripe API error: `{"error":{"type","message","param","code","doc_url"}}`, absent
/// fields left out as Stripe does.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    param: Option<String>,
    code: Option<&'static str>,
}

impl ApiError {
    /// A 400 `invalid_request_error`.
    pub(super) fn invalid(
        message: String,
        param: Option<&str>,
        code: Option<&'static str>,
    ) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message,
            param: param.map(str::to_owned),
            code,
        }
    }

    /// Stripe's `parameter_missing`.
    pub(super) fn missing(name: &str) -> Self {
        ApiError::invalid(
            format!("Missing required param: {name}."),
            Some(name),
            Some("parameter_missing"),
        )
    }

    pub(super) fn unauthorized(message: String) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            ..ApiError::invalid(message, None, None)
        }
    }

    pub(super) fn not_found(message: String, param: Option<&str>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            ..ApiError::invalid(message, param, Some("resource_missing"))
        }
    }

    pub(super) fn unrecognized(method: &str, path: &str) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            ..ApiError::invalid(
                format!("Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/."),
                None,
                None,
            )
        }
    }

    pub(super) fn idempotency(key: &str) -> Self {
        ApiError {
            kind: "idempotency_error",
            ..ApiError::invalid(
                format!("Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."),
                None,
                None,
            )
        }
    }

    pub(super) fn body(&self) -> Value {
        let mut error = Map::new();
        if let Some(code) = self.code {
            error.insert("code".into(), code.into());
            let doc_url = format!(
                "https://stripe.com/docs/error-codes/{}",
                code.replace('_', "-")
            );
            error.insert("doc_url".into(), doc_url.into());
        }
        error.insert("message".into(), self.message.clone().into());
        if let Some(param) = &self.param {
            error.insert("param".into(), param.clone().into());
        }
        error.insert("type".into(), self.kind.into());
        json!({ "error": error })
    }

    pub(super) fn into_response(self, request_id: &str) -> Response {
        stripe_json(self.status, &self.body(), request_id, &[])
    }
}

impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> Self {
        let message = error.to_string();
        match error {
            ControlError::NoSuchSession(_) => ApiError::not_found(message, Some("session")),
            ControlError::NoSuchEvent(_) => ApiError::not_found(message, Some("id")),
            ControlError::NotPaid(_) | ControlError::Expired(_) | ControlError::NotOpen(_) => {
                ApiError::invalid(message, None, None)
            }
            ControlError::ZeroRefund | ControlError::RefundTooLarge { .. } => {
                ApiError::invalid(message, Some("amount"), None)
            }
            ControlError::AlreadyRefunded(_) => {
                ApiError::invalid(message, None, Some("charge_already_refunded"))
            }
            ControlError::AlreadyDisputed(_) => {
                ApiError::invalid(message, None, Some("charge_disputed"))
            }
        }
    }
}
