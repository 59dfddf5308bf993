//! The one error type of the HTTP surface and its OpenAI-shaped response:
//! `{"error": {"message", "type", "code", "param"}}`, plus `request_id`, `provider` and
//! `provider_status` when a provider failed. Converting never logs; the chat handler
//! logs a failed request once, where its response leaves.
//!
//! # What a client learns of a provider failure
//! A fixed message per category (the gateway's credentials refused, rate-limited,
//! failed or overloaded, input refused, model unknown or refused in this form, no
//! answer in time, no connection, broken off, unreadable), naming the provider, its
//! HTTP status and the gateway's request ID. Never the provider's own text: it is
//! written for the gateway's account and can carry its AWS account ID, role ARN,
//! organisation and quotas; it is logged with the request ID instead. The one
//! exception is a refusal of the client's own input, whose text the adapter may pass
//! on redacted ([`UpstreamError::client_message`], see [`crate::chat::disclosure`]).

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
    /// One of a fixed set of codes clients and tests match on.
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
    pub origin: Origin,
    /// Extra response headers (`Retry-After`, `x-ratelimit-*`).
    pub headers: Vec<(&'static str, String)>,
    /// Which provider failed, for the error's extra members (boxed: most errors have
    /// none, and an `ApiError` travels in every handler's `Result`).
    pub upstream: Option<Box<UpstreamFacts>>,
}

/// The facts of a provider failure a client may see, as members of `error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamFacts {
    /// The gateway's request ID (also the `X-GammaInfra-Request-Id` header).
    pub request_id: String,
    pub provider: String,
    /// The provider's HTTP status; none when it never answered or failed mid-stream.
    pub provider_status: Option<u16>,
    /// The provider's error code or type, when it is a plain identifier.
    pub provider_code: Option<String>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
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
            code,
            message: message.into(),
            param: None,
            origin,
            headers: Vec::new(),
            upstream: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
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

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
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
        let mut error = serde_json::json!({
            "message": self.message, "type": self.kind, "code": self.code, "param": self.param,
        });
        if let (Some(u), Some(e)) = (&self.upstream, error.as_object_mut()) {
            e.insert("request_id".into(), u.request_id.clone().into());
            e.insert("provider".into(), u.provider.clone().into());
            e.insert("provider_status".into(), u.provider_status.into());
            e.insert("provider_code".into(), u.provider_code.clone().into());
        }
        serde_json::json!({ "error": error }).to_string()
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

impl ApiError {
    /// An upstream failure as the client sees it: a fixed message for its category
    /// with the provider, its status and `request_id`; never the provider's own text
    /// (see the module's doc). The codes are stable: `upstream_rejected`,
    /// `upstream_rate_limited`, `upstream_timeout`, `upstream_error`,
    /// `upstream_auth_failed`, `catalog_fault`, `upstream_model_not_found`.
    pub fn upstream(e: &UpstreamError, request_id: &str) -> Self {
        use UpstreamErrorKind as K;
        let p = &e.provider;
        let (status, kind, code, what) = match e.kind {
            K::Rejected => (
                StatusCode::from_u16(e.status.unwrap_or(400))
                    .ok()
                    .filter(StatusCode::is_client_error)
                    .unwrap_or(StatusCode::BAD_REQUEST),
                "invalid_request_error",
                "upstream_rejected",
                match &e.client_message {
                    Some(m) if e.not_sent => format!("{p} cannot take this request: {m}"),
                    Some(m) => format!("{p} refused the request: {m}"),
                    None => format!("{p} refused the request as invalid."),
                },
            ),
            K::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "upstream_rate_limited",
                format!("{p} is rate-limiting the gateway; retry later."),
            ),
            K::Timeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "server_error",
                "upstream_timeout",
                format!("{p} did not answer in time; retry later."),
            ),
            K::Connect => (
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_error",
                format!("The gateway could not connect to {p}; retry later."),
            ),
            K::Unavailable => (
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_error",
                format!("{p} failed or is overloaded; retry later."),
            ),
            K::Interrupted => (
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_error",
                format!("The connection to {p} broke off before the answer was complete."),
            ),
            K::Protocol => (
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_error",
                format!("{p} sent an answer the gateway could not read. This is not your fault; it has been logged."),
            ),
            K::Auth => (
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_auth_failed",
                format!("{p} refused the gateway's own credentials or access. This is a fault of the gateway's deployment, not yours; it has been logged."),
            ),
            K::CatalogFault => (
                StatusCode::BAD_GATEWAY,
                "server_error",
                "catalog_fault",
                format!("{p} refused the model ID the gateway's catalog sends in this form. This is a catalog fault, not yours; it has been logged."),
            ),
            K::ModelMissing => (
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_model_not_found",
                format!("{p} does not know the model ID the gateway's catalog sends. This is a catalog fault, not yours; it has been logged."),
            ),
        };
        let said = match e.status {
            Some(s) => format!("{p} answered HTTP {s}"),
            None if e.not_sent => "the request was not sent".to_owned(),
            None => format!("no HTTP status from {p}"),
        };
        let message = format!("{what} ({said}; request ID {request_id})");
        let mut a = ApiError::new(status, kind, code, message);
        a.origin = if e.kind == K::Rejected {
            Origin::Client
        } else {
            Origin::Upstream
        };
        a.upstream = Some(Box::new(UpstreamFacts {
            request_id: request_id.to_owned(),
            provider: p.clone(),
            provider_status: e.status,
            provider_code: e
                .code
                .as_deref()
                .and_then(crate::chat::disclosure::identifier)
                .map(str::to_owned),
        }));
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &str =
        "User: arn:aws:sts::123456789012:assumed-role/GammaInfra/i-0abc is not authorized";

    /// Every kind: a fixed message with the provider, its status and the request ID,
    /// and none of the provider's text.
    #[test]
    fn no_kind_passes_the_providers_text_on() {
        use UpstreamErrorKind as K;
        for kind in [
            K::Connect,
            K::Timeout,
            K::RateLimited,
            K::Unavailable,
            K::Rejected,
            K::Auth,
            K::ModelMissing,
            K::CatalogFault,
            K::Protocol,
            K::Interrupted,
        ] {
            let mut e = UpstreamError::new(kind, "bedrock", RAW);
            e.status = Some(418);
            e.code = Some("arn:aws:iam::123456789012:role/x".into());
            let a = ApiError::upstream(&e, "req_1");
            let body = a.body();
            assert!(
                !body.contains("123456789012") && !body.contains("arn:"),
                "{kind:?}: {body}"
            );
            assert!(
                a.message
                    .contains("bedrock answered HTTP 418; request ID req_1"),
                "{kind:?}: {}",
                a.message
            );
            let v: serde_json::Value = serde_json::from_str(&body).expect("json");
            assert_eq!(v["error"]["request_id"], "req_1");
            assert_eq!(v["error"]["provider_status"], 418);
            assert_eq!(v["error"]["provider_code"], serde_json::Value::Null);
        }
    }

    #[test]
    fn a_refusal_of_the_input_is_passed_on_redacted() {
        let mut e = UpstreamError::from_status(
            "anthropic",
            400,
            Some("invalid_request_error".into()),
            format!("messages: roles must alternate ({RAW})"),
        )
        .disclosing_validation();
        e.code = Some("invalid_request_error".into());
        let a = ApiError::upstream(&e, "req_2");
        assert_eq!((a.status.as_u16(), a.code), (400, "upstream_rejected"));
        assert!(a.message.starts_with("anthropic refused the request: messages: roles must alternate (User: [redacted ARN] is not authorized)"), "{}", a.message);
        assert!(a
            .message
            .ends_with("(anthropic answered HTTP 400; request ID req_2)"));
        // Not passed on: another provider 4xx, and a mid-stream failure has no status.
        let e = UpstreamError::from_status("openai", 409, None, RAW.into());
        assert!(!ApiError::upstream(&e, "r").body().contains("arn:"));
        let e = UpstreamError::new(UpstreamErrorKind::Interrupted, "openai", RAW);
        let a = ApiError::upstream(&e, "req_3");
        assert!(
            a.message
                .ends_with("(no HTTP status from openai; request ID req_3)"),
            "{}",
            a.message
        );
        // The adapter's own refusal is shown as it is.
        let e = UpstreamError::invalid_input("bedrock", "too many images");
        let a = ApiError::upstream(&e, "req_4");
        assert_eq!(
            a.message,
            "bedrock cannot take this request: too many images (the request was not sent; request ID req_4)"
        );
    }
}
