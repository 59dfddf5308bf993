//! `GET /v1/credits`: the caller's balance, held reservations and totals.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::{auth, AppState};

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
