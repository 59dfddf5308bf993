//! Authentication: customer keys (`Authorization: Bearer`, or `x-api-key`) looked up in
//! memory, and the admin token.

use axum::http::HeaderMap;

use super::error::ApiError;
use super::AppState;
use crate::ledger::KeyInfo;

/// The bearer token of a request, or its `x-api-key`.
fn presented_key(h: &HeaderMap) -> Option<&str> {
    if let Some(v) = h.get("authorization").and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        return v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .map(str::trim);
    }
    h.get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The customer key's account, or 401 `invalid_api_key`.
pub fn customer(st: &AppState, h: &HeaderMap) -> Result<KeyInfo, ApiError> {
    let Some(key) = presented_key(h) else {
        return Err(ApiError::invalid_api_key(
            "You didn't provide an API key. Send it as `Authorization: Bearer <key>`.",
        ));
    };
    let info = st.ledger.authenticate(key).ok_or_else(|| {
        ApiError::invalid_api_key("Incorrect API key provided, or the key has been revoked.")
    })?;
    if st.ledger.account_disabled(&info.account_id) {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "permission_error",
            "account_disabled",
            "This account is disabled; contact the gateway's operator.",
        ));
    }
    Ok(info)
}

/// Checks the admin token. Without a configured token the admin API is disabled.
pub fn admin(st: &AppState, h: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &st.config.admin_token else {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "invalid_request_error",
            "admin_disabled",
            "The admin API is disabled: set GAMMAINFRA_ADMIN_TOKEN to enable it.",
        ));
    };
    let given = presented_key(h).unwrap_or_default();
    if constant_time_eq(given.as_bytes(), expected.expose().as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::invalid_api_key("Invalid admin token."))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
