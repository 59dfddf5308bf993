//! Card top-ups through Stripe Checkout (docs/payments.md):
//!
//! * `POST /v1/credits/checkout`: a customer (API key) asks for a Checkout Session for
//!   an amount; the answer has the URL to pay at, the amount credited and the fee.
//! * `POST /webhooks/stripe`: Stripe's signed events. A top-up is credited only from a
//!   verified `checkout.session.completed` (or `…async_payment_succeeded`) event, each
//!   event at most once; refunds and disputes take the credit back.
//! * `GET /payments/done` and `/payments/cancelled`: where Stripe sends the customer back.
//! * `GET /admin/v1/stripe/events`: every event received and what it did.
//! * `POST /admin/v1/accounts/{id}/grants`: credit an operator grants, with a reason.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::{admin, auth, AppState};
use crate::ledger::CheckoutRecord;
use crate::money::Nanos;

/// A required JSON body (the admin API's parsing).
fn parse<T: serde::de::DeserializeOwned>(
    st: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    admin::parse(st, body, false)?
        .ok_or_else(|| ApiError::bad_request("invalid_request", "a JSON body is required"))
}

pub(super) fn not_configured() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "invalid_request_error",
        "payments_not_configured",
        "Card top-ups are not configured on this gateway (STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET); ask its operator for credit.",
    )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCheckout {
    /// The credit to buy: a decimal string in whole cents (the fee comes on top).
    #[schema(value_type = String, example = "10.00")]
    amount_usd: Value,
}

#[utoipa::path(
    post,
    path = "/v1/credits/checkout",
    tag = "credits",
    operation_id = "credits_checkout",
    summary = "Start a card top-up (Stripe Checkout)",
    description = "Creates a Checkout Session for `amount_usd` of credit plus the fee; pay at `url`. The credit is added from Stripe's signed webhook, once.",
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 200 printable ASCII characters: a retry with the same key gets the first result"),
    ),
    request_body(content = NewCheckout, content_type = "application/json"),
    responses(
        (status = 201, description = "The session", body = crate::server::openapi::Checkout),
        (status = 400, description = "`invalid_request`, `invalid_amount` (a decimal string in whole cents within the minimum and maximum), `invalid_idempotency_key`"),
        (status = 401, description = "`invalid_api_key`: no key, or an unknown or revoked one", body = crate::server::openapi::Error),
        (status = 403, description = "`account_disabled`: the key's account is disabled", body = crate::server::openapi::Error),
        (status = 413, description = "`request_too_large`"),
        (status = 501, description = "`payments_not_configured`"),
        (status = 502, description = "`payments_unavailable` or `payments_refused`: Stripe could not be reached or refused; nothing was charged"),
        (status = 503, description = "`database_unavailable` or `ledger_unavailable`: the database refused or the ledger is behind; retry", body = crate::server::openapi::Error),
    ),
    security(("customer_key" = []), ("x_api_key" = [])),
)]
pub async fn checkout(
    State(st): State<AppState>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let key = auth::customer(&st, &h)?;
    if st.payments.is_none() {
        return Err(not_configured());
    }
    let NewCheckout { amount_usd } = parse(&st, body)?;
    let credited = admin::topup_amount(&st, amount_usd)?;
    // A client's retry with the same Idempotency-Key gets the same session from Stripe.
    let idem = match h.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) if !k.trim().is_empty() && k.len() <= 200 => Some(k.trim()),
        Some(_) => {
            let mut a = ApiError::bad_request(
                "invalid_idempotency_key",
                "The Idempotency-Key header must be 1 to 200 printable ASCII characters.",
            );
            a.param = Some("Idempotency-Key".into());
            return Err(a);
        }
    };
    let base = public_base(&st, &h);
    let c = start_checkout(
        &st,
        &key.account_id,
        credited,
        idem,
        &format!("{base}/payments/done?session_id={{CHECKOUT_SESSION_ID}}"),
        &format!("{base}/payments/cancelled"),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "object": "checkout",
            "id": c.session_id,
            "url": c.url,
            "account_id": &*key.account_id,
            "credit_usd": c.credited,
            "fee_usd": c.fee,
            "total_usd": c.credited + c.fee,
            "fee_percent": fee_percent(c.fee_basis_points),
        })),
    ))
}

/// `300` → `3.00`.
pub fn fee_percent(basis_points: i64) -> String {
    format!("{}.{:02}", basis_points / 100, basis_points % 100)
}

/// A Checkout Session created for a top-up.
pub struct StartedCheckout {
    pub session_id: String,
    /// Where to send the customer to pay.
    pub url: String,
    pub credited: Nanos,
    pub fee: Nanos,
    pub fee_basis_points: i64,
}

/// Creates a Checkout Session for `credited` of credit plus today's fee and records
/// it. `idem`: the client's idempotency key (a retry with it gets the same session).
pub(super) async fn start_checkout(
    st: &AppState,
    account_id: &str,
    credited: Nanos,
    idem: Option<&str>,
    success_url: &str,
    cancel_url: &str,
) -> Result<StartedCheckout, ApiError> {
    let Some(stripe) = st.payments.clone() else {
        return Err(not_configured());
    };
    let now = time::OffsetDateTime::now_utc();
    let (fee, bp) = {
        let billing = st.ledger.billing();
        (
            billing.topup_fee(credited, now),
            billing.fee_basis_points(now),
        )
    };
    let idem = match idem {
        None => crate::ids::random_id("checkout-"),
        Some(k) => format!("{account_id}-{}-{k}", credited.nanos()),
    };
    let email = st.ledger.store().account_email(account_id).await?;
    let lines = crate::payments::TopupLines {
        account_id,
        email: email.as_deref(),
        credited,
        fee,
        success_url,
        cancel_url,
        idempotency_key: &idem,
    };
    let session = stripe.create_checkout(&lines).await.map_err(|e| {
        tracing::warn!(error = %e, "Stripe Checkout Session not created");
        match e {
            crate::payments::CheckoutError::Unreachable(_) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "server_error",
                "payments_unavailable",
                format!("{e}. Nothing was charged; retry later."),
            ),
            crate::payments::CheckoutError::Refused(_) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "server_error",
                "payments_refused",
                format!("{e}. Nothing was charged."),
            ),
        }
    })?;
    st.ledger
        .record_checkout(&CheckoutRecord {
            session_id: session.id.clone(),
            account_id: account_id.to_owned(),
            credited,
            fee,
            fee_basis_points: bp,
            created_at: crate::clock::now_rfc3339(),
        })
        .await?;
    Ok(StartedCheckout {
        session_id: session.id,
        url: session.url,
        credited,
        fee,
        fee_basis_points: bp,
    })
}

/// Where the customer's browser reaches the gateway: `GAMMAINFRA_PUBLIC_URL`, or else
/// `http://` and the `Host` the checkout request was sent to (the listen address
/// without one).
pub(super) fn public_base(st: &AppState, h: &HeaderMap) -> String {
    if let Some(u) = &st.config.public_url {
        return u.clone();
    }
    let host = h
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.parse::<axum::http::uri::Authority>().is_ok())
        .map_or_else(|| st.config.listen.to_string(), str::to_owned);
    format!("http://{host}")
}

#[utoipa::path(
    post,
    path = "/webhooks/stripe",
    tag = "payments",
    operation_id = "stripe_webhook",
    summary = "Stripe's signed events",
    description = "Verified with `Stripe-Signature` (300 s tolerance). Each event is applied at most once: a paid Checkout Session credits its top-up once; refunds and disputes take credit back.",
    params(("Stripe-Signature" = String, Header, description = "Stripe's `t=...,v1=...` signature")),
    request_body(content = Object, description = "A Stripe Event object", content_type = "application/json"),
    responses(
        (status = 200, description = "Received", body = crate::server::openapi::WebhookAck),
        (status = 400, description = "`invalid_signature` or `invalid_event`; nothing was done"),
        (status = 404, description = "`not_found`: card top-ups are not configured"),
        (status = 413, description = "`request_too_large`"),
        (status = 500, description = "`internal_error`: Stripe retries"),
        (status = 503, description = "`database_unavailable` or `ledger_unavailable`: the database refused or the ledger is behind; retry", body = crate::server::openapi::Error),
    ),
    security(()),
)]
pub async fn webhook(
    State(st): State<AppState>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let Some(stripe) = st.payments.clone() else {
        return Err(ApiError::not_found(
            "not_found",
            "Card top-ups are not configured on this gateway.",
        ));
    };
    let body = body.map_err(|r| super::chat::body_error(r, st.config.max_body_bytes))?;
    let signature = h.get("stripe-signature").and_then(|v| v.to_str().ok());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if let Err(e) =
        crate::payments::verify_signature(signature, &body, stripe.webhook_secret.expose(), now)
    {
        tracing::warn!(error = %e, "Stripe webhook refused: signature");
        let mut a = ApiError::bad_request("invalid_signature", format!("{e}; nothing was done."));
        a.param = Some("Stripe-Signature".into());
        return Err(a);
    }
    let event = crate::payments::parse_event(&body)
        .map_err(|e| ApiError::bad_request("invalid_event", format!("{e}; nothing was done.")))?;
    let ledger = st.ledger.clone();
    let e = event.clone();
    // Applied on its own task: a delivery Stripe gives up on midway still completes, so
    // that the database and the in-memory balance agree.
    let outcome = tokio::spawn(async move { ledger.apply_stripe_event(&e).await })
        .await
        .map_err(|_| {
            ApiError::internal("The event failed inside the gateway; Stripe will retry it.")
        })??;
    if outcome.outcome.starts_with("refused") {
        tracing::warn!(event = %event.id, r#type = %event.event_type, outcome = %outcome.outcome, "Stripe event not applied");
    } else {
        tracing::info!(event = %event.id, r#type = %event.event_type, replayed = outcome.replayed, outcome = %outcome.outcome, "Stripe event");
    }
    Ok(Json(json!({
        "received": true,
        "event": event.id,
        "replayed": outcome.replayed,
        "outcome": outcome.outcome,
    })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DoneQuery {
    /// The Checkout Session's ID.
    session_id: Option<String>,
}

/// Where Stripe sends the customer after paying. The credit itself comes from the
/// webhook, usually within seconds.
#[utoipa::path(
    get,
    path = "/payments/done",
    tag = "payments",
    operation_id = "payments_done",
    summary = "Where Stripe sends the customer after paying (HTML)",
    description = "A page saying the credit is added when Stripe confirms the payment.",
    params(DoneQuery),
    responses((status = 200, description = "An HTML page", body = String, content_type = "text/html")),
    security(()),
)]
pub async fn done(Query(q): Query<DoneQuery>) -> Html<String> {
    let session = q
        .session_id
        .filter(|s| s.len() <= 200 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or_default();
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Payment received — GammaInfra</title></head><body><main><h1>Payment received</h1><p>Thank you. Your credit is added as soon as Stripe confirms the payment, usually within seconds; <code>GET /v1/credits</code> shows it.</p><p>Checkout session: <code>{session}</code></p></main></body></html>"
    ))
}

#[utoipa::path(
    get,
    path = "/payments/cancelled",
    tag = "payments",
    operation_id = "payments_cancelled",
    summary = "Where Stripe sends the customer after cancelling (HTML)",
    description = "A page saying nothing was charged.",
    responses((status = 200, description = "An HTML page", body = String, content_type = "text/html")),
    security(()),
)]
pub async fn cancelled() -> Html<&'static str> {
    Html("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Payment cancelled — GammaInfra</title></head><body><main><h1>Payment cancelled</h1><p>Nothing was charged and no credit was added.</p></main></body></html>")
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// 1 to 1000, default 100.
    limit: Option<i64>,
    /// Events received before this one (an event ID).
    before: Option<String>,
}

#[utoipa::path(
    get,
    path = "/admin/v1/stripe/events",
    tag = "admin",
    operation_id = "admin_stripe_events",
    summary = "Stripe events received and what each did",
    description = "Newest first.",
    params(EventsQuery),
    responses(
        (status = 200, description = "The events", body = crate::server::openapi::StripeEventList),
        (status = 400, description = "`invalid_request`: `limit` out of range, or an unknown query parameter (axum's plain-text 400)"),
        (status = 401, description = "`invalid_api_key`: a wrong admin token", body = crate::server::openapi::Error),
        (status = 403, description = "`admin_disabled`: no admin token is configured", body = crate::server::openapi::Error),
        (status = 503, description = "`database_unavailable` or `ledger_unavailable`: the database refused or the ledger is behind; retry", body = crate::server::openapi::Error),
    ),
    security(("admin_token" = [])),
)]
pub async fn events(
    State(st): State<AppState>,
    h: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    auth::admin(&st, &h)?;
    let limit = admin::list_limit(q.limit)?;
    let rows = st
        .ledger
        .store()
        .stripe_events(limit, q.before.as_deref())
        .await?;
    Ok(Json(json!({
        "object": "list",
        "has_more": rows.len() as i64 == limit,
        "data": rows,
    })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    /// A decimal string in whole cents.
    #[schema(value_type = String, example = "5.00")]
    amount_usd: Value,
    /// 1 to 500 characters.
    reason: String,
}

#[utoipa::path(
    post,
    path = "/admin/v1/accounts/{id}/grants",
    tag = "admin",
    operation_id = "admin_grant",
    summary = "Grant credit to an account, with a reason",
    params(
        ("id" = String, Path, description = "The account's ID"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 printable ASCII characters: a retry with the same key gets the first result"),
    ),
    request_body(content = NewGrant, content_type = "application/json"),
    responses(
        (status = 201, description = "Granted", body = crate::server::openapi::Grant),
        (status = 400, description = "`invalid_request` (amount or reason), `invalid_idempotency_key`"),
        (status = 401, description = "`invalid_api_key`: a wrong admin token", body = crate::server::openapi::Error),
        (status = 403, description = "`admin_disabled`: no admin token is configured", body = crate::server::openapi::Error),
        (status = 404, description = "`account_not_found`"),
        (status = 409, description = "`idempotency_key_reused` with another request"),
        (status = 413, description = "`request_too_large`"),
        (status = 503, description = "`database_unavailable` or `ledger_unavailable`: the database refused or the ledger is behind; retry", body = crate::server::openapi::Error),
    ),
    security(("admin_token" = [])),
)]
pub async fn grant(
    State(st): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    auth::admin(&st, &h)?;
    let NewGrant { amount_usd, reason } = parse(&st, body)?;
    let bad = |param: &str, m: String| {
        let mut a = ApiError::bad_request("invalid_request", m);
        a.param = Some(param.into());
        a
    };
    let Value::String(s) = amount_usd else {
        return Err(bad(
            "amount_usd",
            "`amount_usd` must be a decimal string in whole cents, e.g. \"5.00\"".into(),
        ));
    };
    let amount =
        Nanos::parse_cents(&s).map_err(|e| bad("amount_usd", format!("`amount_usd`: {e}")))?;
    let max = Nanos::from_cents(admin::MAX_TOPUP_CENTS);
    if amount <= Nanos::ZERO || amount > max {
        return Err(bad(
            "amount_usd",
            format!("A grant is more than $0.00 and at most ${max}; got ${amount}."),
        ));
    }
    let reason = reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(bad(
            "reason",
            "`reason` must be 1 to 500 characters.".into(),
        ));
    }
    let idem = admin::idempotency_for(&h, "grant", &id, amount, &reason)?;
    let ledger = st.ledger.clone();
    let (account, why) = (id.clone(), reason.clone());
    let r = admin::to_completion(async move {
        ledger
            .grant_credit(&account, amount, &why, idem.as_ref())
            .await
    })
    .await??;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": r.adjustment_id, "object": "grant", "account_id": r.account_id,
            "amount_usd": Nanos::from_nanos(r.amount_nanos), "reason": r.reason,
            "created_at": r.created_at,
        })),
    ))
}
