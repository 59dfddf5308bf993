//! `GET /v1/credits`: the caller's balance, held reservations and totals.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::{auth, AppState};

#[utoipa::path(
    get,
    path = "/v1/credits",
    tag = "credits",
    operation_id = "credits_get",
    summary = "The caller's balance",
    description = "The balance, the credit held for requests in flight, and the totals of trial credit, top-ups, spend and adjustments.",
    responses(
        (status = 200, description = "The balance", body = crate::server::openapi::Credits),
        (status = 401, description = "`invalid_api_key`: no key, or an unknown or revoked one", body = crate::server::openapi::Error),
        (status = 403, description = "`account_disabled`: the key's account is disabled", body = crate::server::openapi::Error),
        (status = 503, description = "`database_unavailable` or `ledger_unavailable`: the database refused or the ledger is behind; retry", body = crate::server::openapi::Error),
    ),
    security(("customer_key" = []), ("x_api_key" = [])),
)]
pub async fn show(State(st): State<AppState>, h: HeaderMap) -> Result<Json<Value>, ApiError> {
    let key = auth::customer(&st, &h)?;
    let b = st
        .ledger
        .account_balance(&key.account_id)
        .await?
        .unwrap_or_default();
    Ok(Json(json!({
        "object": "credits",
        "account_id": &*key.account_id,
        "balance_usd": b.balance,
        "reserved_usd": b.reserved,
        "available_usd": b.available(),
        "trial_usd": b.trial,
        "topups_usd": b.topups,
        "spent_usd": b.spent,
        "adjustments_usd": b.adjustments,
    })))
}
