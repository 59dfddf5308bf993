//! `/admin/v1/...`: accounts, keys and top-ups, authenticated by `GAMMAINFRA_ADMIN_TOKEN`.

use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::{auth, AppState};
use crate::catalog::RegionConstraint;
use crate::ledger::KeyLimits;
use crate::money::{MoneyError, Nanos};
use crate::ratelimit::Rates;

type Created = (StatusCode, Json<Value>);

pub(super) fn parse<T: serde::de::DeserializeOwned>(
    st: &AppState,
    body: Result<Bytes, BytesRejection>,
    optional: bool,
) -> Result<Option<T>, ApiError> {
    let body = body.map_err(|r| super::chat::body_error(r, st.config.max_body_bytes))?;
    if optional && body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| ApiError::bad_request("invalid_request", format!("Invalid request body: {e}")))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    email: String,
    /// The account's residency policy (an `X-GammaInfra-Region` value), if any.
    #[serde(default)]
    residency: Option<String>,
}

/// Parses a residency policy given in the body field `field`: `400 invalid_region`
/// naming the field when the catalog does not accept it.
fn policy(st: &AppState, field: &'static str, value: &str) -> Result<RegionConstraint, ApiError> {
    RegionConstraint::parse_policy(field, value, &st.catalog).map_err(|e| {
        let mut a = ApiError::from(e);
        a.param = Some(field.into());
        a
    })
}

/// For a PATCH field: absent is `None` (leave it), `null` is `Some(None)` (clear it).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

#[utoipa::path(
    post,
    path = "/admin/v1/accounts",
    tag = "admin",
    operation_id = "admin_create_account",
    summary = "Create an account and its first key",
    description = "The account gets the configured trial credit; its key is shown this once.",
    request_body(content = NewAccount, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = crate::server::openapi::AccountCreated),
        (status = 400, description = "`invalid_request`, `invalid_email`, `invalid_region` (the residency policy)"),
        (status = 401, description = "`invalid_api_key`: a wrong admin token", body = crate::server::openapi::Error),
        (status = 403, description = "`admin_disabled`: no admin token is configured", body = crate::server::openapi::Error),
        (status = 409, description = "`account_exists`: the email is taken"),
        (status = 413, description = "`request_too_large`"),
        (status = 503, description = "`database_unavailable` or `ledger_unavailable`: the database refused or the ledger is behind; retry", body = crate::server::openapi::Error),
    ),
    security(("admin_token" = [])),
)]
pub async fn create_account(
    State(st): State<AppState>,
    h: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Created, ApiError> {
    auth::admin(&st, &h)?;
    let Some(NewAccount { email, residency }) = parse(&st, body, false)? else {
        return Err(ApiError::bad_request(
            "invalid_request",
            "a JSON body with `email` is required",
        ));
    };
    let e = crate::ledger::normalize_email(&email);
    let valid = e.len() <= 254
        && e.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
        })
        && !e.chars().any(char::is_whitespace);
    if !valid {
        let mut a = ApiError::bad_request(
            "invalid_email",
            format!("`{email}` is not an email address"),
        );
        a.param = Some("email".into());
        return Err(a);
    }
    let residency = residency
        .map(|r| policy(&st, "residency", &r))
        .transpose()?;
    let shown = residency.as_ref().map(|r| r.as_str().to_owned());
    let ledger = st.ledger.clone();
    let email = e.clone();
    let (id, key, bal) = to_completion(async move {
        ledger
            .create_account_with_residency(&email, residency)
            .await
    })
    .await??;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": id, "object": "account", "email": e, "residency": shown,
            "key_id": key.id, "api_key": key.plain,
            "balance_usd": bal.balance, "trial_usd": bal.trial,
        })),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    /// A new residency policy, or `null` to clear it; absent leaves it as it is.
    #[serde(default, deserialize_with = "present")]
    residency: Option<Option<String>>,
    /// Rate-limit overrides to change (see [`apply_limits`]); `null` clears them all.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<crate::server::openapi::AccountLimits>)]
    limits: Option<Value>,
    /// `true` disables the account (its keys are refused), `false` enables it again.
    #[serde(default)]
    disabled: Option<bool>,
}

/// The spending-limit fields of a `limits` object, and the rate-limit fields.
const MONEY_LIMITS: [&str; 3] = ["total_usd", "daily_usd", "monthly_usd"];
const RATE_LIMITS: [&str; 2] = ["requests_per_minute", "tokens_per_minute"];

/// Applies a `limits` object to `base`: each field present is set (`null` clears it),
/// absent fields are left as they are; `null` for the whole object clears every one.
/// Amounts are decimal strings in whole cents, parsed exactly and checked like top-ups
/// (`400 invalid_amount`); rates are whole numbers of at least 1 (`400
/// invalid_request`); `param` names the field, e.g. `limits.daily_usd`. Accounts
/// (`money: false`) have rate limits only.
fn apply_limits(v: &Value, base: KeyLimits, money: bool) -> Result<KeyLimits, ApiError> {
    let bad = |code: &'static str, field: &str, m: String| {
        let mut a = ApiError::bad_request(code, m);
        a.param = Some(format!("limits.{field}"));
        a
    };
    let obj = match v {
        Value::Null => {
            return Ok(KeyLimits {
                spend: if money {
                    Default::default()
                } else {
                    base.spend
                },
                rates: Rates::default(),
            })
        }
        Value::Object(o) => o,
        _ => {
            let mut a = ApiError::bad_request(
                "invalid_request",
                "`limits` must be an object such as {\"daily_usd\":\"5.00\",\"requests_per_minute\":60}",
            );
            a.param = Some("limits".into());
            return Err(a);
        }
    };
    let mut out = base;
    for (field, value) in obj {
        let field = field.as_str();
        if money && MONEY_LIMITS.contains(&field) {
            let amount = match value {
                Value::Null => None,
                Value::String(s) => Some(Nanos::parse_cents(s).map_err(|e| {
                    let m = match e {
                        MoneyError::TooLarge(_) => format!(
                            "`limits.{field}`: `{s}` is beyond the largest amount the ledger holds"
                        ),
                        e => format!("`limits.{field}`: {e}"),
                    };
                    bad("invalid_amount", field, m)
                })?),
                _ => {
                    return Err(bad(
                        "invalid_amount",
                        field,
                        format!("`limits.{field}` must be a decimal string in whole cents, e.g. \"5.00\", or null"),
                    ))
                }
            };
            match field {
                "total_usd" => out.spend.total = amount,
                "daily_usd" => out.spend.daily = amount,
                _ => out.spend.monthly = amount,
            }
        } else if RATE_LIMITS.contains(&field) {
            let n = match value {
                Value::Null => None,
                v => match v.as_u64().filter(|&n| n >= 1) {
                    Some(n) => Some(n),
                    None => {
                        return Err(bad(
                            "invalid_request",
                            field,
                            format!("`limits.{field}` must be a whole number of at least 1, or null (no limit of its own: the configured default applies)"),
                        ))
                    }
                },
            };
            if field == "requests_per_minute" {
                out.rates.rpm = n;
            } else {
                out.rates.tpm = n;
            }
        } else {
            let known: Vec<&str> = if money {
                MONEY_LIMITS.iter().chain(&RATE_LIMITS).copied().collect()
            } else {
                RATE_LIMITS.to_vec()
            };
            return Err(bad(
                "invalid_request",
                field,
                format!(
                    "unknown field `limits.{field}`; accepted: {}",
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(out)
}

/// A `limits` object as answers show it (amounts as decimal strings, `null`: none).
fn limits_json(l: &KeyLimits, money: bool) -> Value {
    let mut v = json!({
        "requests_per_minute": l.rates.rpm, "tokens_per_minute": l.rates.tpm,
    });
    if money {
        v["total_usd"] = json!(l.spend.total);
        v["daily_usd"] = json!(l.spend.daily);
        v["monthly_usd"] = json!(l.spend.monthly);
    }
    v
}

/// `PATCH /admin/v1/accounts/{id}`: changes an account's residency policy. Committed
/// before it answers; the next request of any of the account's keys is held to it.
#[utoipa::path(
    patch,
    path = "/admin/v1/accounts/{id}",
    tag = "admin",
    operation_id = "admin_update_account",
    summary = "Change an account's residency policy, rate limits or disabled state",
    description = "Fields given are changed (`null` clears), absent ones kept. Committed before it answers; the account's keys are held to it from their next request (a disabled account's keys get 403 `account_disabled`).",
    params(("id" = String, Path, description = "The account's ID")),
    request_body(content = AccountPatch, content_type = "application/json"),
    responses(
        (status = 200, description = "The account", body = crate::server::openapi::Account),
        (status = 400, description = "`invalid_request` (a field or limit, named in `param`), `invalid_region`"),
        (status = 401, description = "`invalid_api_key`: a wrong admin token", body = crate::server::openapi::Error),
        (status = 403, description = "`admin_disabled`: no admin token is configured", body = crate::server::openapi::Error),
        (status = 404, description = "`account_not_found`"),
        (status = 413, description = "`request_too_large`"),
        (status = 503, description = "`database_unavailable` or `ledger_unavailable`: the database refused or the ledger is behind; retry", body = crate::server::openapi::Error),
    ),
    security(("admin_token" = [])),
)]
pub async fn update_account(
    State(st): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    auth::admin(&st, &h)?;
    let Some(AccountPatch {
        residency,
        limits,
        disabled,
    }) = parse(&st, body, false)?
    else {
        return Err(ApiError::bad_request(
            "invalid_request",
            "a JSON body with the fields to change (`residency`, `limits`, `disabled`) is required",
        ));
    };
    // Validated before anything is changed.
    let rates = match &limits {
        Some(v) => {
            let current = st
                .ledger
                .store()
                .account(&id)
                .await?
                .ok_or(crate::ledger::StoreError::NoAccount)?
                .rates;
            let base = KeyLimits {
                rates: current,
                ..KeyLimits::default()
            };
            Some(apply_limits(v, base, false)?.rates)
        }
        None => None,
    };
    let residency = residency
        .map(|r| r.map(|r| policy(&st, "residency", &r)).transpose())
        .transpose()?;
    if let Some(rates) = rates {
        let (ledger, account) = (st.ledger.clone(), id.clone());
        to_completion(async move { ledger.set_account_rates(&account, rates).await }).await??;
    }
    if let Some(residency) = residency {
        let (ledger, account) = (st.ledger.clone(), id.clone());
        to_completion(async move { ledger.set_account_residency(&account, residency).await })
            .await??;
    }
    if let Some(disabled) = disabled {
        let (ledger, account) = (st.ledger.clone(), id.clone());
        to_completion(async move { ledger.set_account_disabled(&account, disabled).await })
            .await??;
    }
    account_view(&st, id).await.map(Json)
}

/// `GET /admin/v1/runtime`: what this process holds now, to watch for leaks: tasks
/// alive on the runtime, client connections open, and reservations not yet settled
/// (requests in flight, attached or not).
#[utoipa::path(
    get,
    path = "/admin/v1/runtime",
    tag = "admin",
    operation_id = "admin_runtime",
    summary = "What this process holds now",
    description = "Tasks alive, client connections open and reservations not yet settled, to watch for leaks.",
    responses(
        (status = 200, description = "The counts", body = crate::server::openapi::Runtime),
        (status = 401, description = "`invalid_api_key`: a wrong admin token", body = crate::server::openapi::Error),
        (status = 403, description = "`admin_disabled`: no admin token is configured", body = crate::server::openapi::Error),
    ),
    security(("admin_token" = [])),
)]
pub async fn runtime(State(st): State<AppState>, h: HeaderMap) -> Result<Json<Value>, ApiError> {
    auth::admin(&st, &h)?;
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    Ok(Json(serde_json::json!({
        "object": "runtime",
        "tasks": tasks,
        "connections": st.connections.load(std::sync::atomic::Ordering::Relaxed),
        "open_reservations": st.ledger.open_reservations(),
    })))
}

/// `GET /metrics`: the Prometheus series (see [`crate::metrics`]), with the admin token.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    operation_id = "metrics",
    summary = "Prometheus metrics (admin token)",
    description = "The Prometheus series in the OpenMetrics text format.",
    responses(
        (status = 200, description = "The series", body = String, content_type = "application/openmetrics-text"),
        (status = 401, description = "`invalid_api_key`: a wrong admin token", body = crate::server::openapi::Error),
        (status = 403, description = "`admin_disabled`: no admin token is configured", body = crate::server::openapi::Error),
        (status = 500, description = "`internal_error`: the metrics could not be encoded"),
    ),
    security(("admin_token" = [])),
)]
pub async fn metrics(
    State(st): State<AppState>,
    h: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    auth::admin(&st, &h)?;
    let live = crate::metrics::Live {
        connections: st.connections.load(std::sync::atomic::Ordering::Relaxed),
        ledger: &st.ledger,
        router: &st.router,
        upstream: st.providers.upstream_connections.as_deref(),
    };
    let body = st
        .metrics
        .render(&live)
        .map_err(|_| ApiError::internal("The metrics could not be encoded."))?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
        )],
        body,
    )
        .into_response())
}

/// `POST /admin/v1/reload`: reads the configuration and the catalog again and applies
/// them (see [`crate::reload`]): what changed, or `422 invalid_configuration` listing
/// every problem in `error.errors` (the catalog and configuration in force keep
/// serving). Runs to completion even if the admin client hangs up.
#[utoipa::path(
    post,
    path = "/admin/v1/reload",
    tag = "admin",
    operation_id = "admin_reload",
    summary = "Reload the configuration and the catalog",
    description = "Reads both again and applies them, or refuses both (the ones in force keep serving). No body.",
    responses(
        (status = 200, description = "What changed", body = crate::server::openapi::ReloadReport),
        (status = 401, description = "`invalid_api_key`: a wrong admin token", body = crate::server::openapi::Error),
        (status = 403, description = "`admin_disabled`: no admin token is configured", body = crate::server::openapi::Error),
        (status = 422, description = "`invalid_configuration`: every problem in `error.errors`"),
        (status = 500, description = "`internal_error`"),
    ),
    security(("admin_token" = [])),
)]
pub async fn reload(
    State(st): State<AppState>,
    h: HeaderMap,
) -> Result<Json<Value>, axum::response::Response> {
    use axum::response::IntoResponse;
    auth::admin(&st, &h).map_err(IntoResponse::into_response)?;
    let result = to_completion(async move { crate::reload::reload(&st).await })
        .await
        .map_err(IntoResponse::into_response)?;
    match result {
        Ok(report) => Ok(Json(serde_json::to_value(report).unwrap_or_default())),
        Err(e) => {
            let message = format!(
                "The reload was refused; the catalog and configuration in force keep serving. {} problem(s): {}",
                e.0.len(),
                e.0.join("; ")
            );
            let body = json!({"error": {
                "message": message, "type": "invalid_request_error",
                "code": "invalid_configuration", "param": null, "errors": e.0,
            }});
            Err((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response())
        }
    }
}

#[utoipa::path(
    get,
    path = "/admin/v1/accounts/{id}",
    tag = "admin",
    operation_id = "admin_get_account",
    summary = "An account, its balance and its ledger",
    params(("id" = String, Path, description = "The account's ID")),
    responses(
        (status = 200, description = "The account", body = crate::server::openapi::Account),
        (status = 401, description = "`invalid_api_key`: a wrong admin token", body = crate::server::openapi::Error),
        (status = 403, description = "`admin_disabled`: no admin token is configured", body = crate::server::openapi::Error),
        (status = 404, description = "`account_not_found`"),
        (status = 503, description = "`database_unavailable` or `ledger_unavailable`: the database refused or the ledger is behind; retry", body = crate::server::openapi::Error),
    ),
    security(("admin_token" = [])),
)]
pub async fn show_account(
    State(st): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth::admin(&st, &h)?;
    account_view(&st, id).await.map(Json)
}

/// What `GET /admin/v1/accounts/{id}` answers (and a `PATCH` of it).
async fn account_view(st: &AppState, id: String) -> Result<Value, ApiError> {
    let account = st
        .ledger
        .store()
        .account(&id)
        .await?
        .ok_or(crate::ledger::StoreError::NoAccount)?;
    // Commit queued settlements first, so the ledger sum is comparable with the balance;
    // a database that refuses them gets a 503, not a hang.
    st.ledger.flush_timeout().await?;
    let sum = st.ledger.store().ledger_sum(&id).await?;
    let entries = st.ledger.store().ledger_count(&id).await?;
    let b = st.ledger.account_balance(&id).await?.unwrap_or_default();
    Ok(json!({
        "id": id, "object": "account", "email": account.email,
        "residency": account.residency,
        "disabled": account.disabled_at.is_some(), "disabled_at": account.disabled_at,
        "limits": limits_json(&KeyLimits { rates: account.rates, ..KeyLimits::default() }, false),
        "balance_usd": b.balance, "reserved_usd": b.reserved,
        "trial_usd": b.trial, "topups_usd": b.topups, "spent_usd": b.spent,
        "adjustments_usd": b.adjustments,
        "ledger_sum_usd": sum, "ledger_entries": entries,
    }))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: Option<String>,
    /// The key's residency policy (an `X-GammaInfra-Region` value), if any.
    pub residency: Option<String>,
    /// Deprecated alias of `residency`, from when it was (mis)named a default.
    pub default_region: Option<String>,
    /// Spending and rate limits (see [`apply_limits`]).
    #[schema(value_type = Option<crate::server::openapi::KeyLimits>)]
    pub limits: Option<Value>,
}

#[utoipa::path(
    post,
    path = "/admin/v1/accounts/{id}/keys",
    tag = "admin",
    operation_id = "admin_create_key",
    summary = "Create a key for an account",
    description = "With an optional name, residency policy (inside the account's) and limits; the body may be empty. The key is shown this once.",
    params(("id" = String, Path, description = "The account's ID")),
    request_body(content = Option<NewKey>, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = crate::server::openapi::KeyCreated),
        (status = 400, description = "`invalid_request`, `invalid_region`, `invalid_amount` (a limit, named in `param`)"),
        (status = 401, description = "`invalid_api_key`: a wrong admin token", body = crate::server::openapi::Error),
        (status = 403, description = "`admin_disabled`: no admin token is configured", body = crate::server::openapi::Error),
        (status = 404, description = "`account_not_found`"),
        (status = 413, description = "`request_too_large`"),
        (status = 503, description = "`database_unavailable` or `ledger_unavailable`: the database refused or the ledger is behind; retry", body = crate::server::openapi::Error),
    ),
    security(("admin_token" = [])),
)]
pub async fn create_key(
    State(st): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Created, ApiError> {
    auth::admin(&st, &h)?;
    let nk: NewKey = parse(&st, body, true)?.unwrap_or_default();
    Ok((StatusCode::CREATED, Json(new_key(&st, &id, nk).await?)))
}

/// Creates a key for the account (the admin API's and the console's): its answer, with
/// the key in plain text (shown this once).
pub(super) async fn new_key(st: &AppState, id: &str, nk: NewKey) -> Result<Value, ApiError> {
    let limits = match &nk.limits {
        Some(v) => apply_limits(v, KeyLimits::default(), true)?,
        None => KeyLimits::default(),
    };
    let given = match (&nk.residency, &nk.default_region) {
        (Some(_), Some(_)) => {
            let mut a = ApiError::bad_request(
                "invalid_request",
                "Give `residency` only: `default_region` is its deprecated alias.",
            );
            a.param = Some("default_region".into());
            return Err(a);
        }
        (Some(r), None) => Some(("residency", r)),
        (None, Some(r)) => Some(("default_region", r)),
        (None, None) => None,
    };
    let residency = match given {
        Some((field, value)) => {
            let key_policy = policy(st, field, value)?;
            // A key whose policy has no region inside its account's could serve
            // nothing: refused rather than created unusable. (A key policy partly
            // outside is allowed; requests are held to the intersection.)
            if let Some(account) = st.ledger.account_residency(id) {
                if key_policy.intersect(&account).is_empty() {
                    let mut a = ApiError::bad_request(
                        "invalid_region",
                        format!(
                            "{field} `{}` has no region inside the account's residency policy `{}`: a key restricted to it could not be served anywhere.",
                            key_policy.as_str(),
                            account.as_str()
                        ),
                    );
                    a.param = Some(field.into());
                    return Err(a);
                }
            }
            Some(key_policy)
        }
        None => None,
    };
    let shown = residency.as_ref().map(|r| r.as_str().to_owned());
    let (ledger, account) = (st.ledger.clone(), id.to_owned());
    let name = nk.name.clone();
    let key = to_completion(async move {
        ledger
            .create_key_with_limits(&account, name.as_deref(), residency, limits)
            .await
    })
    .await??;
    Ok(json!({
        "key_id": key.id, "object": "api_key", "account_id": id, "api_key": key.plain,
        "name": nk.name, "residency": shown, "limits": limits_json(&limits, true),
        // Deprecated: the same value, for clients written against the old name.
        "default_region": shown,
    }))
}

/// What `GET /admin/v1/keys/{key_id}` answers (and a `PATCH` of it): the key's
/// details, its limits, and what it has spent in each window.
async fn key_view(st: &AppState, key_id: &str) -> Result<Value, ApiError> {
    let k = st
        .ledger
        .store()
        .key(key_id)
        .await?
        .ok_or(crate::ledger::StoreError::NoKey)?;
    let spend = st.ledger.key_spend(key_id).await?;
    Ok(json!({
        "key_id": k.id, "object": "api_key", "account_id": k.account_id, "name": k.name,
        "residency": k.residency, "default_region": k.residency,
        "created_at": k.created_at, "revoked": k.revoked_at.is_some(),
        "limits": limits_json(&k.limits, true),
        "spend": spend,
    }))
}

#[utoipa::path(
    get,
    path = "/admin/v1/keys/{key_id}",
    tag = "admin",
    operation_id = "admin_get_key",
    summary = "A key, its limits and its spend",
    params(("key_id" = String, Path, description = "The key's ID")),
    responses(
        (status = 200, description = "The key", body = crate::server::openapi::Key),
        (status = 401, description = "`invalid_api_key`: a wrong admin token", body = crate::server::openapi::Error),
        (status = 403, description = "`admin_disabled`: no admin token is configured", body = crate::server::openapi::Error),
        (status = 404, description = "`key_not_found`"),
        (status = 503, description = "`database_unavailable` or `ledger_unavailable`: the database refused or the ledger is behind; retry", body = crate::server::openapi::Error),
    ),
    security(("admin_token" = [])),
)]
pub async fn show_key(
    State(st): State<AppState>,
    h: HeaderMap,
    Path(key_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth::admin(&st, &h)?;
    key_view(&st, &key_id).await.map(Json)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyPatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<crate::server::openapi::KeyLimits>)]
    limits: Option<Value>,
}

/// `PATCH /admin/v1/keys/{key_id}`: changes a key's limits (fields given are set,
/// `null` clears one, absent ones are kept). Committed before it answers; the key's
/// next request is held to them.
#[utoipa::path(
    patch,
    path = "/admin/v1/keys/{key_id}",
    tag = "admin",
    operation_id = "admin_update_key",
    summary = "Change a key's limits",
    description = "Fields of `limits` given are set (`null` clears one), absent ones kept; committed before it answers.",
    params(("key_id" = String, Path, description = "The key's ID")),
    request_body(content = KeyPatch, content_type = "application/json"),
    responses(
        (status = 200, description = "The key", body = crate::server::openapi::Key),
        (status = 400, description = "`invalid_request`, `invalid_amount` (named in `param`, e.g. `limits.daily_usd`)"),
        (status = 401, description = "`invalid_api_key`: a wrong admin token", body = crate::server::openapi::Error),
        (status = 403, description = "`admin_disabled`: no admin token is configured", body = crate::server::openapi::Error),
        (status = 404, description = "`key_not_found`"),
        (status = 413, description = "`request_too_large`"),
        (status = 503, description = "`database_unavailable` or `ledger_unavailable`: the database refused or the ledger is behind; retry", body = crate::server::openapi::Error),
    ),
    security(("admin_token" = [])),
)]
pub async fn update_key(
    State(st): State<AppState>,
    h: HeaderMap,
    Path(key_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    auth::admin(&st, &h)?;
    let Some(KeyPatch { limits }) = parse(&st, body, false)? else {
        return Err(ApiError::bad_request(
            "invalid_request",
            "a JSON body with the fields to change (`limits`) is required",
        ));
    };
    if let Some(v) = limits {
        let (ledger, id) = (st.ledger.clone(), key_id.clone());
        to_completion(async move {
            ledger
                .update_key_limits(&id, |current| apply_limits(&v, current, true))
                .await
        })
        .await??;
    }
    key_view(&st, &key_id).await.map(Json)
}

#[utoipa::path(
    delete,
    path = "/admin/v1/keys/{key_id}",
    tag = "admin",
    operation_id = "admin_revoke_key",
    summary = "Revoke a key",
    description = "Its next request is refused with 401.",
    params(("key_id" = String, Path, description = "The key's ID")),
    responses(
        (status = 200, description = "Revoked", body = crate::server::openapi::KeyRevoked),
        (status = 401, description = "`invalid_api_key`: a wrong admin token", body = crate::server::openapi::Error),
        (status = 403, description = "`admin_disabled`: no admin token is configured", body = crate::server::openapi::Error),
        (status = 404, description = "`key_not_found`"),
        (status = 503, description = "`database_unavailable` or `ledger_unavailable`: the database refused or the ledger is behind; retry", body = crate::server::openapi::Error),
    ),
    security(("admin_token" = [])),
)]
pub async fn revoke_key(
    State(st): State<AppState>,
    h: HeaderMap,
    Path(key_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth::admin(&st, &h)?;
    let (ledger, id) = (st.ledger.clone(), key_id.clone());
    to_completion(async move { ledger.revoke_key(&id).await }).await??;
    Ok(Json(
        json!({"key_id": key_id, "object": "api_key", "revoked": true}),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTopup {
    /// A decimal string in whole cents.
    #[schema(value_type = String, example = "10.00")]
    amount_usd: Value,
}

#[utoipa::path(
    post,
    path = "/admin/v1/accounts/{id}/topups",
    tag = "admin",
    operation_id = "admin_topup",
    summary = "Credit a top-up to an account",
    description = "`amount_usd` is credited; today's fee is recorded with it.",
    params(
        ("id" = String, Path, description = "The account's ID"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 printable ASCII characters: a retry with the same key gets the first result"),
    ),
    request_body(content = NewTopup, content_type = "application/json"),
    responses(
        (status = 201, description = "Credited", body = crate::server::openapi::Topup),
        (status = 400, description = "`invalid_request`, `invalid_amount` (a decimal string in whole cents within the minimum and maximum), `invalid_idempotency_key`"),
        (status = 401, description = "`invalid_api_key`: a wrong admin token", body = crate::server::openapi::Error),
        (status = 403, description = "`admin_disabled`: no admin token is configured", body = crate::server::openapi::Error),
        (status = 404, description = "`account_not_found`"),
        (status = 409, description = "`idempotency_key_reused` with another account or amount"),
        (status = 413, description = "`request_too_large`"),
        (status = 503, description = "`database_unavailable` or `ledger_unavailable`: the database refused or the ledger is behind; retry", body = crate::server::openapi::Error),
    ),
    security(("admin_token" = [])),
)]
pub async fn topup(
    State(st): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Created, ApiError> {
    auth::admin(&st, &h)?;
    let Some(NewTopup { amount_usd }) = parse(&st, body, false)? else {
        return Err(ApiError::bad_request(
            "invalid_request",
            "a JSON body with `amount_usd` is required",
        ));
    };
    let amount = topup_amount(&st, amount_usd)?;
    let bad = |m: String| {
        let mut a = ApiError::bad_request("invalid_amount", m);
        a.param = Some("amount_usd".into());
        a
    };
    if let Some(b) = st.ledger.account_balance(&id).await? {
        if !fits_the_ledger(&b, amount) {
            return Err(bad(format!(
                "A top-up of ${amount} would take the account's balance beyond the largest amount the ledger holds (${}).",
                Nanos::MAX
            )));
        }
    }
    let idem = idempotency(&h, &id, amount)?;
    let (ledger, account) = (st.ledger.clone(), id.clone());
    let r =
        to_completion(async move { ledger.topup(&account, amount, idem.as_ref()).await }).await??;
    let (credited, fee) = (
        Nanos::from_nanos(r.credited_nanos),
        Nanos::from_nanos(r.fee_nanos),
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": r.topup_id, "object": "topup", "account_id": r.account_id,
            "credited_usd": credited, "fee_usd": fee, "charged_usd": credited + fee,
            "balance_usd": Nanos::from_nanos(r.balance_nanos), "created_at": r.created_at,
        })),
    ))
}

/// A top-up's `amount_usd`: a decimal string in whole cents, between the configured
/// minimum and [`MAX_TOPUP_CENTS`]; otherwise `400 invalid_amount` naming the field.
pub(super) fn topup_amount(st: &AppState, amount_usd: Value) -> Result<Nanos, ApiError> {
    let bad = |m: String| {
        let mut a = ApiError::bad_request("invalid_amount", m);
        a.param = Some("amount_usd".into());
        a
    };
    let Value::String(s) = amount_usd else {
        return Err(bad(
            "`amount_usd` must be a decimal string in whole cents, e.g. \"10.00\"".into(),
        ));
    };
    let max = Nanos::from_cents(MAX_TOPUP_CENTS);
    // Parsing is checked: an amount beyond the ledger's range is refused here, never
    // wrapped into one that passes the range check below.
    let amount = Nanos::parse_cents(&s).map_err(|e| match e {
        MoneyError::TooLarge(_) => bad(format!("The maximum single top-up is ${max}; got ${s}.")),
        e => bad(format!("`amount_usd`: {e}")),
    })?;
    let min = st.ledger.billing().min_topup;
    if amount < min {
        return Err(bad(format!("The minimum top-up is ${min}; got ${amount}.")));
    }
    if amount > max {
        return Err(bad(format!(
            "The maximum single top-up is ${max}; got ${amount}."
        )));
    }
    Ok(amount)
}

/// Runs a change of the database and the in-memory ledger in its own task, so that it
/// completes even if the admin client hangs up meanwhile (hyper then drops the handler):
/// a commit whose in-memory half never ran would leave the balance short of the ledger.
pub(super) async fn to_completion<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::spawn(f).await.map_err(|e| {
        tracing::error!(error = %e, "admin change failed inside the gateway");
        ApiError::internal("The change failed inside the gateway.")
    })
}

/// The `Idempotency-Key` header (Stripe's convention), with the fingerprint of what the
/// request asks for: the path's account and the amount (as parsed, so `"10.0"` and
/// `"10.00"` are the same request), so that a retry answers the first result, and the
/// same key with another account or amount is a 409.
fn idempotency(
    h: &HeaderMap,
    account_id: &str,
    amount: Nanos,
) -> Result<Option<crate::ledger::Idempotency>, ApiError> {
    idempotency_for(h, "topup", account_id, amount, "")
}

/// The `Idempotency-Key` header of a money movement of kind `scope`, fingerprinted with
/// the account, the amount and `extra` (what else the request asked for).
pub(super) fn idempotency_for(
    h: &HeaderMap,
    scope: &str,
    account_id: &str,
    amount: Nanos,
    extra: &str,
) -> Result<Option<crate::ledger::Idempotency>, ApiError> {
    let Some(v) = h.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = |m: &str| {
        let mut a = ApiError::bad_request("invalid_idempotency_key", m);
        a.param = Some("Idempotency-Key".into());
        a
    };
    let key = v
        .to_str()
        .map_err(|_| bad("The Idempotency-Key header must be printable ASCII."))?
        .trim();
    if key.is_empty() || key.len() > 255 {
        return Err(bad(
            "The Idempotency-Key header must be 1 to 255 characters long.",
        ));
    }
    use sha2::Digest;
    let mut d = sha2::Sha256::new();
    d.update(scope.as_bytes());
    d.update([0]);
    d.update(account_id.as_bytes());
    d.update([0]);
    d.update(amount.nanos().to_be_bytes());
    if !extra.is_empty() {
        d.update([0]);
        d.update(extra.as_bytes());
    }
    Ok(Some(crate::ledger::Idempotency {
        key: key.to_owned(),
        fingerprint: hex::encode(d.finalize()),
    }))
}

/// The largest single top-up, in cents ($1,000,000.00).
pub(super) const MAX_TOPUP_CENTS: i64 = 100_000_000;

/// Whether crediting `amount` keeps every running total of the account (balance, top-up
/// total) inside the ledger's `i64` range, so that nothing downstream saturates. (Two
/// top-ups racing at the very edge of a $9.2 billion balance could still meet the
/// saturating sum; that is the only way left to reach it.)
fn fits_the_ledger(b: &crate::ledger::Balance, amount: Nanos) -> bool {
    b.balance.checked_add(amount).is_some() && b.topups.checked_add(amount).is_some()
}

/// The `limit` of an admin list: 1 to 1000, default 100.
pub(super) fn list_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(100);
    if (1..=1000).contains(&limit) {
        Ok(limit)
    } else {
        let mut a = ApiError::bad_request("invalid_request", "`limit` must be 1 to 1000.");
        a.param = Some("limit".into());
        Err(a)
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OutboxQuery {
    /// Only the emails to this address.
    to: Option<String>,
    /// 1 to 1000, default 100.
    limit: Option<i64>,
}

/// `GET /admin/v1/outbox`: the console's emails written to the outbox (no SMTP server
/// configured), newest first; `to` keeps one address's.
#[utoipa::path(
    get,
    path = "/admin/v1/outbox",
    tag = "admin",
    operation_id = "admin_outbox",
    summary = "The console's emails in the outbox",
    description = "Written there when no SMTP server is configured; newest first.",
    params(OutboxQuery),
    responses(
        (status = 200, description = "The emails", body = crate::server::openapi::OutboxList),
        (status = 400, description = "`invalid_request`: `limit` out of range, or an unknown query parameter (axum's plain-text 400)"),
        (status = 401, description = "`invalid_api_key`: a wrong admin token", body = crate::server::openapi::Error),
        (status = 403, description = "`admin_disabled`: no admin token is configured", body = crate::server::openapi::Error),
        (status = 503, description = "`database_unavailable` or `ledger_unavailable`: the database refused or the ledger is behind; retry", body = crate::server::openapi::Error),
    ),
    security(("admin_token" = [])),
)]
pub async fn outbox(
    State(st): State<AppState>,
    h: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<OutboxQuery>,
) -> Result<Json<Value>, ApiError> {
    auth::admin(&st, &h)?;
    let limit = list_limit(q.limit)?;
    let to = q.to.as_deref().map(crate::ledger::normalize_email);
    let rows = st.ledger.store().outbox(to.as_deref(), limit).await?;
    Ok(Json(json!({
        "object": "list",
        "smtp": !st.mailer.is_outbox(),
        "data": rows.iter().map(|m| json!({
            "id": m.seq, "to": m.to_address, "subject": m.subject, "body": m.body,
            "created_at": m.created_at,
        })).collect::<Vec<_>>(),
    })))
}
