//! The one error type of the HTTP surface and its OpenAI-shaped response:
//! `{"error": {"message", "type", "code", "param"}}`. Converting never logs; the chat
//! handler logs a failed request once, where its response leaves.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::catalog::{OutsidePolicy, RegionError, ResolveError};
use crate::chat::RequestError;
use crate::ledger::limits::SpendLimitReached;
use crate::ledger::{AdmitError, FlushTimeout, InsufficientCredits, StoreError};
use crate::providers::{UpstreamError, UpstreamErrorKind};
use crate::ratelimit::RateLimited;
use crate::router::RouteError;

/// Who caused an error; picks the status class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Client,
    Upstream,
    Internal,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: String,
    pub message: String,
    pub param: Option<String>,
    pub origin: Origin,
    /// Extra response headers (`Retry-After`, `x-ratelimit-*`).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &str,
        message: impl Into<String>,
    ) -> Self {
        let origin = if status.is_server_error() {
            Origin::Internal
        } else {
            Origin::Client
        };
        Self {
            status,
            kind,
            code: code.to_owned(),
            message: message.into(),
            param: None,
            origin,
            headers: Vec::new(),
        }
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message,
        )
    }

    pub fn invalid_api_key(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            message,
        )
    }

    pub fn not_found(code: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            code,
            message,
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal_error",
            message,
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!("The request body exceeds the limit of {limit} bytes."),
        )
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::json!({"error": {
            "message": self.message, "type": self.kind, "code": self.code, "param": self.param,
        }})
        .to_string()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, self.body()).into_response();
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        for (k, v) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(v) {
                r.headers_mut().insert(*k, v);
            }
        }
        r.extensions_mut().insert(self);
        r
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        let mut a = ApiError::bad_request("invalid_request", e.message);
        a.param = e.param;
        a
    }
}

impl From<ResolveError> for ApiError {
    fn from(e: ResolveError) -> Self {
        let mut a = ApiError::not_found("model_not_found", e.to_string());
        a.param = Some("model".into());
        a
    }
}

impl From<RegionError> for ApiError {
    fn from(e: RegionError) -> Self {
        ApiError::bad_request("invalid_region", e.to_string())
    }
}

impl From<OutsidePolicy> for ApiError {
    /// 403, not 400: the request is well formed and its constraint valid, but this key
    /// is not permitted to have it processed there (DESIGN §4). Retrying the same
    /// request cannot succeed until an administrator changes the policy.
    fn from(e: OutsidePolicy) -> Self {
        let mut a = ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            "region_not_allowed",
            e.to_string(),
        );
        a.param = e.param().map(str::to_owned);
        a
    }
}

impl From<RouteError> for ApiError {
    fn from(e: RouteError) -> Self {
        match e {
            RouteError::NoEndpointInRegion(m) => ApiError::bad_request("no_endpoint_in_region", m),
            RouteError::ExcludedByPreferences(m) => {
                let mut a = ApiError::bad_request("no_endpoint_for_preferences", m);
                a.param = Some("provider".into());
                a
            }
            RouteError::ProviderUnavailable(m) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "provider_not_available",
                m,
            ),
        }
    }
}

impl From<InsufficientCredits> for ApiError {
    fn from(e: InsufficientCredits) -> Self {
        ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "insufficient_quota",
            "insufficient_credits",
            e.to_string(),
        )
    }
}

impl From<AdmitError> for ApiError {
    fn from(e: AdmitError) -> Self {
        match e {
            AdmitError::Insufficient(i) => i.into(),
            AdmitError::LedgerUnavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "ledger_unavailable",
                e.to_string(),
            ),
            AdmitError::ClientGone => ApiError::new(
                // nginx's "client closed request": nobody reads it, but logs do.
                StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
                "invalid_request_error",
                "client_closed_request",
                e.to_string(),
            ),
            AdmitError::SpendLimit(l) => l.into(),
            AdmitError::TooManyDetached(_) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "too_many_detached_requests",
                e.to_string(),
            ),
            AdmitError::TooManyConcurrent { .. } => {
                let mut a = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    "too_many_concurrent_requests",
                    e.to_string(),
                );
                a.headers.push(("retry-after", "1".to_owned()));
                a
            }
        }
    }
}

impl From<SpendLimitReached> for ApiError {
    /// 429 `insufficient_quota`, as OpenAI answers a spent quota: the request is fine
    /// but the key may not spend more in this window. `Retry-After` is the time to the
    /// next UTC day or month; a total limit never resets, so it has none.
    /// A request that costs more than the limit on its own is a 400 instead: retrying it
    /// cannot help, and a 429 would make SDKs retry it forever.
    fn from(e: SpendLimitReached) -> Self {
        if e.never_fits {
            let mut a = ApiError::bad_request("request_exceeds_spend_limit", e.to_string());
            a.param = Some("max_tokens".into());
            return a;
        }
        let mut a = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            "key_spend_limit_reached",
            e.to_string(),
        );
        if let Some(s) = e.resets_in {
            a.headers.push(("retry-after", s.to_string()));
        }
        a
    }
}

impl From<RateLimited> for ApiError {
    /// 429 `rate_limit_exceeded` (type `rate_limit_error`), with `Retry-After` and
    /// OpenAI's `x-ratelimit-*` headers.
    /// A request that needs more than the limit on its own is a 400 instead: no window
    /// can admit it, and a 429 would make SDKs retry it forever.
    fn from(e: RateLimited) -> Self {
        if e.needed > e.limit {
            let mut a = ApiError::bad_request(
                "request_exceeds_rate_limit",
                format!(
                    "This request counts {} {} (tokens: its input bound plus its output cap), more than the limit of {} {} per minute for {} can ever admit. Lower max_tokens or send a smaller request; retrying it unchanged cannot succeed.",
                    e.needed, e.what, e.limit, e.what, e.scope
                ),
            );
            a.param = Some("max_tokens".into());
            a.headers.extend(e.status.headers());
            return a;
        }
        let mut a = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "rate_limit_exceeded",
            e.to_string(),
        );
        a.headers.push(("retry-after", e.retry_after.to_string()));
        a.headers.extend(e.status.headers());
        a
    }
}

impl From<FlushTimeout> for ApiError {
    fn from(e: FlushTimeout) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "ledger_unavailable",
            format!("The ledger is not up to date: {e}. Retry later."),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::EmailTaken => ApiError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                "account_exists",
                "An account with this email already exists.",
            ),
            StoreError::NoAccount => ApiError::not_found("account_not_found", "No such account."),
            StoreError::NoKey => ApiError::not_found("key_not_found", "No such key."),
            StoreError::IdempotencyConflict => ApiError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                "idempotency_key_reused",
                "This Idempotency-Key was already used with a different request; nothing was changed. Use a new key for a new request.",
            ),
            StoreError::Db(_)
            | StoreError::Migrate(_)
            | StoreError::Locked(_)
            | StoreError::LockedPostgres(_)
            | StoreError::Lock(..) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "database_unavailable",
                "The gateway's database refused the change; nothing was changed. Retry later.",
            ),
        }
    }
}

impl From<UpstreamError> for ApiError {
    /// An upstream failure that reaches the client, with the provider's message kept.
    fn from(e: UpstreamError) -> Self {
        let (status, kind, code) = match e.kind {
            UpstreamErrorKind::Rejected => (
                StatusCode::from_u16(e.status.unwrap_or(400)).unwrap_or(StatusCode::BAD_REQUEST),
                "invalid_request_error",
                "upstream_rejected",
            ),
            UpstreamErrorKind::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "upstream_rate_limited",
            ),
            UpstreamErrorKind::Timeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "server_error",
                "upstream_timeout",
            ),
            UpstreamErrorKind::Connect
            | UpstreamErrorKind::Unavailable
            | UpstreamErrorKind::Interrupted
            | UpstreamErrorKind::Protocol => {
                (StatusCode::BAD_GATEWAY, "server_error", "upstream_error")
            }
            UpstreamErrorKind::Auth => (
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_auth_failed",
            ),
            UpstreamErrorKind::CatalogFault => {
                (StatusCode::BAD_GATEWAY, "server_error", "catalog_fault")
            }
            UpstreamErrorKind::ModelMissing => (
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_model_not_found",
            ),
        };
        let message = match e.kind {
            UpstreamErrorKind::CatalogFault => format!(
                "{}: {} This is the gateway's fault, not yours; it has been logged.",
                e.provider, e.message
            ),
            UpstreamErrorKind::ModelMissing => format!(
                "{} does not know the model ID the catalog sends ({}); this is a catalog fault, not yours.",
                e.provider, e.message
            ),
            UpstreamErrorKind::Auth => format!(
                "{} refused the gateway's credentials ({}); this is a deployment fault, not yours.",
                e.provider, e.message
            ),
            _ => format!("{} error: {}", e.provider, e.message),
        };
        let mut a = ApiError::new(status, kind, code, message);
        a.origin = if e.kind == UpstreamErrorKind::Rejected {
            Origin::Client
        } else {
            Origin::Upstream
        };
        a
    }
}
