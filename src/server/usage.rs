//! `GET /v1/usage` and `GET /v1/usage/daily`: a customer's own usage records, one per
//! billed request, and their sums per UTC day and model, in JSON or CSV; and the same
//! for any account under `/admin/v1/accounts/{id}/usage[/daily]`.
//!
//! The records are the ledger's usage entries, so that a customer can check every charge
//! against what the balance moved by. The list follows OpenAI's list objects
//! (`{"object": "list", "data", "first_id", "last_id", "has_more"}`, next page with
//! `after=<last_id>`), so that generic cursor-paging helpers work. Query parameters are
//! strict: an unknown, repeated or malformed parameter is a 400 naming it, because a
//! filter silently ignored would make an audit report the wrong numbers.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime, UtcOffset};

use super::error::ApiError;
use super::{auth, AppState};
use crate::ledger::{DailyUsage, StoreError, UsageFilter, UsageOrder, UsageRecord};

/// Records per page unless `limit` says otherwise, and the most `limit` may ask for.
pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

/// The CSV columns of `GET /v1/usage`, in order.
pub const RECORD_COLUMNS: [&str; 15] = [
    "created_at",
    "request_id",
    "key_id",
    "model",
    "provider",
    "upstream_model",
    "upstream_request_id",
    "region",
    "status",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "note",
];

/// The CSV columns of `GET /v1/usage/daily`, in order.
pub const DAILY_COLUMNS: [&str; 8] = [
    "date",
    "model",
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
];

const LIST_PARAMS: &[&str] = &["start", "end", "model", "limit", "after", "order", "format"];
const DAILY_PARAMS: &[&str] = &["start", "end", "model", "format"];

#[utoipa::path(
    get,
    path = "/v1/usage",
    tag = "usage",
    operation_id = "usage_list",
    summary = "The caller's usage records",
    description = "One record per billed request, in OpenAI's list shape (next page with `after=<last_id>`).",
    params(crate::server::openapi::UsageQuery),
    responses(
        (status = 200, description = "JSON, or CSV with `format=csv` or `Accept: text/csv`", content(
            (crate::server::openapi::UsageList = "application/json"),
            (String = "text/csv"),
        ), headers(("X-GammaInfra-Has-More" = String, description = "`true` or `false`"), ("X-GammaInfra-Last-Id" = String, description = "The last record ID of the page"))),
        (status = 400, description = "`invalid_request`: an unknown, repeated or malformed query parameter (named in `param`)"),
        (status = 401, description = "`invalid_api_key`: no key, or an unknown or revoked one", body = crate::server::openapi::Error),
        (status = 403, description = "`account_disabled`: the key's account is disabled", body = crate::server::openapi::Error),
        (status = 503, description = "`database_unavailable` or `ledger_unavailable`: the database refused or the ledger is behind; retry", body = crate::server::openapi::Error),
    ),
    security(("customer_key" = []), ("x_api_key" = [])),
)]
pub async fn list(
    State(st): State<AppState>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let key = auth::customer(&st, &h)?;
    records(&st, &key.account_id, q.as_deref(), &h).await
}

#[utoipa::path(
    get,
    path = "/v1/usage/daily",
    tag = "usage",
    operation_id = "usage_daily",
    summary = "The caller's usage per UTC day and model",
    description = "Sums of requests, tokens and cost per UTC day and model.",
    params(crate::server::openapi::DailyQuery),
    responses(
        (status = 200, description = "JSON, or CSV with `format=csv` or `Accept: text/csv`", content(
            (crate::server::openapi::DailyList = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "`invalid_request`: an unknown, repeated or malformed query parameter (named in `param`)"),
        (status = 401, description = "`invalid_api_key`: no key, or an unknown or revoked one", body = crate::server::openapi::Error),
        (status = 403, description = "`account_disabled`: the key's account is disabled", body = crate::server::openapi::Error),
        (status = 503, description = "`database_unavailable` or `ledger_unavailable`: the database refused or the ledger is behind; retry", body = crate::server::openapi::Error),
    ),
    security(("customer_key" = []), ("x_api_key" = [])),
)]
pub async fn daily(
    State(st): State<AppState>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let key = auth::customer(&st, &h)?;
    daily_sums(&st, &key.account_id, q.as_deref(), &h).await
}

#[utoipa::path(
    get,
    path = "/admin/v1/accounts/{id}/usage",
    tag = "admin",
    operation_id = "admin_usage_list",
    summary = "An account's usage records",
    description = "As `GET /v1/usage`, for any account.",
    params(("id" = String, Path, description = "The account's ID"), crate::server::openapi::UsageQuery),
    responses(
        (status = 200, description = "JSON, or CSV with `format=csv` or `Accept: text/csv`", content(
            (crate::server::openapi::UsageList = "application/json"),
            (String = "text/csv"),
        ), headers(("X-GammaInfra-Has-More" = String, description = "`true` or `false`"), ("X-GammaInfra-Last-Id" = String, description = "The last record ID of the page"))),
        (status = 400, description = "`invalid_request`: an unknown, repeated or malformed query parameter (named in `param`)"),
        (status = 401, description = "`invalid_api_key`: a wrong admin token", body = crate::server::openapi::Error),
        (status = 403, description = "`admin_disabled`: no admin token is configured", body = crate::server::openapi::Error),
        (status = 404, description = "`account_not_found`", body = crate::server::openapi::Error),
        (status = 503, description = "`database_unavailable` or `ledger_unavailable`: the database refused or the ledger is behind; retry", body = crate::server::openapi::Error),
    ),
    security(("admin_token" = [])),
)]
pub async fn admin_list(
    State(st): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    auth::admin(&st, &h)?;
    known_account(&st, &id).await?;
    records(&st, &id, q.as_deref(), &h).await
}

#[utoipa::path(
    get,
    path = "/admin/v1/accounts/{id}/usage/daily",
    tag = "admin",
    operation_id = "admin_usage_daily",
    summary = "An account's usage per UTC day and model",
    description = "As `GET /v1/usage/daily`, for any account.",
    params(("id" = String, Path, description = "The account's ID"), crate::server::openapi::DailyQuery),
    responses(
        (status = 200, description = "JSON, or CSV with `format=csv` or `Accept: text/csv`", content(
            (crate::server::openapi::DailyList = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "`invalid_request`: an unknown, repeated or malformed query parameter (named in `param`)"),
        (status = 401, description = "`invalid_api_key`: a wrong admin token", body = crate::server::openapi::Error),
        (status = 403, description = "`admin_disabled`: no admin token is configured", body = crate::server::openapi::Error),
        (status = 404, description = "`account_not_found`", body = crate::server::openapi::Error),
        (status = 503, description = "`database_unavailable` or `ledger_unavailable`: the database refused or the ledger is behind; retry", body = crate::server::openapi::Error),
    ),
    security(("admin_token" = [])),
)]
pub async fn admin_daily(
    State(st): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    auth::admin(&st, &h)?;
    known_account(&st, &id).await?;
    daily_sums(&st, &id, q.as_deref(), &h).await
}

async fn known_account(st: &AppState, id: &str) -> Result<(), ApiError> {
    if st.ledger.store().account_exists(id).await? {
        Ok(())
    } else {
        Err(StoreError::NoAccount.into())
    }
}

async fn records(
    st: &AppState,
    account_id: &str,
    query: Option<&str>,
    h: &HeaderMap,
) -> Result<Response, ApiError> {
    let p = Params::parse(query, LIST_PARAMS)?;
    let filter = p.filter(st)?;
    let format = p.format(h)?;
    let limit = match p.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                bad(
                    "limit",
                    format!("`limit` must be an integer from 1 to {MAX_LIMIT}; got `{v}`"),
                )
            })?,
    };
    let order = match p.get("order") {
        None | Some("asc") => UsageOrder::Ascending,
        Some("desc") => UsageOrder::Descending,
        Some(v) => {
            return Err(bad(
                "order",
                format!("`order` must be `asc` or `desc`; got `{v}`"),
            ))
        }
    };
    // Every settlement so far is committed first: a request whose response has
    // completed is always listed.
    st.ledger.flush_timeout().await?;
    let store = st.ledger.store();
    let after = match p.get("after") {
        None => None,
        Some(id) => Some(store.usage_seq(account_id, id).await?.ok_or_else(|| {
            bad(
                "after",
                format!("`after` must be the `id` of one of this account's usage records (the previous page's `last_id`); `{id}` is not"),
            )
        })?),
    };
    // One more than asked for tells whether there is a next page.
    let mut rows = store
        .usage_records(account_id, &filter, after, order, limit + 1)
        .await?;
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let first_id = rows.first().map(|r| r.request_id.clone());
    let last_id = rows.last().map(|r| r.request_id.clone());
    let mut resp = match format {
        Format::Json => {
            let data: Vec<Value> = rows.iter().map(record_json).collect();
            axum::Json(json!({
                "object": "list",
                "data": data,
                "first_id": first_id,
                "last_id": last_id,
                "has_more": has_more,
            }))
            .into_response()
        }
        Format::Csv => csv_response(&RECORD_COLUMNS, rows.iter().map(record_csv)),
    };
    // Also in headers, so that a CSV download can be paged too.
    header(
        &mut resp,
        "x-gammainfra-has-more",
        if has_more { "true" } else { "false" },
    );
    if let Some(id) = &last_id {
        header(&mut resp, "x-gammainfra-last-id", id);
    }
    Ok(resp)
}

async fn daily_sums(
    st: &AppState,
    account_id: &str,
    query: Option<&str>,
    h: &HeaderMap,
) -> Result<Response, ApiError> {
    let p = Params::parse(query, DAILY_PARAMS)?;
    let filter = p.filter(st)?;
    let format = p.format(h)?;
    st.ledger.flush_timeout().await?;
    let days = st.ledger.store().usage_daily(account_id, &filter).await?;
    Ok(match format {
        Format::Json => {
            let data: Vec<Value> = days.iter().map(daily_json).collect();
            axum::Json(json!({"object": "list", "data": data, "has_more": false})).into_response()
        }
        Format::Csv => csv_response(&DAILY_COLUMNS, days.iter().map(daily_csv)),
    })
}

fn record_json(r: &UsageRecord) -> Value {
    json!({
        "object": "usage.record",
        // `id` is the list cursor (as in OpenAI's lists); it is the request ID.
        "id": r.request_id,
        "request_id": r.request_id,
        "created_at": r.created_at,
        "key_id": r.key_id,
        "model": r.model,
        "provider": r.provider,
        "upstream_model": r.upstream_model,
        "upstream_request_id": r.upstream_request_id,
        "region": r.region,
        "status": r.status,
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "cache_read_tokens": r.cache_read_tokens,
        "cache_write_tokens": r.cache_write_tokens,
        "cost_usd": r.cost,
        "note": r.note,
    })
}

/// A record as CSV fields, in [`RECORD_COLUMNS`] order; NULL is an empty field.
fn record_csv(r: &UsageRecord) -> Vec<String> {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    vec![
        r.created_at.clone(),
        r.request_id.clone(),
        s(&r.key_id),
        s(&r.model),
        s(&r.provider),
        s(&r.upstream_model),
        s(&r.upstream_request_id),
        s(&r.region),
        s(&r.status),
        r.input_tokens.to_string(),
        r.output_tokens.to_string(),
        r.cache_read_tokens.to_string(),
        r.cache_write_tokens.to_string(),
        r.cost.to_string(),
        s(&r.note),
    ]
}

fn daily_json(d: &DailyUsage) -> Value {
    json!({
        "object": "usage.daily",
        "date": d.day,
        "model": d.model,
        "requests": d.requests,
        "input_tokens": d.input_tokens,
        "output_tokens": d.output_tokens,
        "cache_read_tokens": d.cache_read_tokens,
        "cache_write_tokens": d.cache_write_tokens,
        "cost_usd": d.cost,
    })
}

/// A day's sums as CSV fields, in [`DAILY_COLUMNS`] order.
fn daily_csv(d: &DailyUsage) -> Vec<String> {
    vec![
        d.day.clone(),
        d.model.clone(),
        d.requests.to_string(),
        d.input_tokens.to_string(),
        d.output_tokens.to_string(),
        d.cache_read_tokens.to_string(),
        d.cache_write_tokens.to_string(),
        d.cost.to_string(),
    ]
}

/// RFC 4180 CSV: a header line, then one line per row, CRLF line ends; a field that
/// holds a comma, a double quote or a line break is quoted, its quotes doubled.
pub fn write_csv(columns: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    fn line<S: AsRef<str>>(out: &mut String, fields: &[S]) {
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let raw = f.as_ref();
            // A cell a spreadsheet would run as a formula (OWASP's CSV injection rule) is
            // prefixed with `'`: provider-supplied IDs and notes land in these files.
            let formula = raw.starts_with(['=', '+', '@', '\t', '\r'])
                || (raw.starts_with('-') && raw.parse::<f64>().is_err());
            let quoted;
            let f = if formula {
                quoted = format!("'{raw}");
                quoted.as_str()
            } else {
                raw
            };
            if f.contains([',', '"', '\n', '\r']) {
                out.push('"');
                out.push_str(&f.replace('"', "\"\""));
                out.push('"');
            } else {
                out.push_str(f);
            }
        }
        out.push_str("\r\n");
    }
    let mut out = String::new();
    line(&mut out, columns);
    for r in rows {
        line(&mut out, &r);
    }
    out
}

fn csv_response(columns: &[&str], rows: impl Iterator<Item = Vec<String>>) -> Response {
    let mut resp = (StatusCode::OK, write_csv(columns, rows)).into_response();
    header(
        &mut resp,
        "content-type",
        "text/csv; charset=utf-8; header=present",
    );
    resp
}

fn header(resp: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// 400 `invalid_request` naming the query parameter.
fn bad(param: &str, message: String) -> ApiError {
    let mut a = ApiError::bad_request("invalid_request", message);
    a.param = Some(param.to_owned());
    a
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
}

/// A request's query parameters, percent-decoded (a `+` stays a `+`, so that a time
/// offset such as `+01:00` may be sent unencoded).
struct Params(Vec<(&'static str, String)>);

impl Params {
    fn parse(query: Option<&str>, accepted: &[&'static str]) -> Result<Self, ApiError> {
        let mut out: Vec<(&'static str, String)> = Vec::new();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode(k, k)?;
            let Some(&name) = accepted.iter().find(|a| **a == k) else {
                return Err(bad(
                    &k,
                    format!(
                        "Unknown query parameter `{k}`; accepted: {}.",
                        accepted.join(", ")
                    ),
                ));
            };
            if out.iter().any(|(n, _)| *n == name) {
                return Err(bad(name, format!("`{name}` is given more than once")));
            }
            out.push((name, decode(name, v)?));
        }
        Ok(Self(out))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `start`, `end` and `model`.
    fn filter(&self, st: &AppState) -> Result<UsageFilter, ApiError> {
        let start = self
            .get("start")
            .map(|v| parse_time("start", v))
            .transpose()?;
        let end = self.get("end").map(|v| parse_time("end", v)).transpose()?;
        if let (Some(s), Some(e)) = (&start, &end) {
            if e <= s {
                return Err(bad(
                    "end",
                    format!("`end` ({e}) must be later than `start` ({s})"),
                ));
            }
        }
        // A provider's own ID or an alias filters by the model it names; an ID the
        // catalog no longer knows still matches records made while it did.
        let model = self.get("model").map(|m| {
            st.catalog
                .resolve(m)
                .map_or_else(|_| m.to_owned(), |r| r.model.id.clone())
        });
        Ok(UsageFilter { start, end, model })
    }

    /// `format=json|csv`; without it, CSV if the `Accept` header asks for `text/csv`.
    fn format(&self, h: &HeaderMap) -> Result<Format, ApiError> {
        match self.get("format") {
            Some("json") => Ok(Format::Json),
            Some("csv") => Ok(Format::Csv),
            Some(v) => Err(bad(
                "format",
                format!("`format` must be `json` or `csv`; got `{v}`"),
            )),
            None => {
                let csv = h
                    .get_all("accept")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(|v| v.to_ascii_lowercase().contains("text/csv"));
                Ok(if csv { Format::Csv } else { Format::Json })
            }
        }
    }
}

fn decode(param: &str, s: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| bad(param, format!("`{param}` is not valid UTF-8 once decoded")))
}

/// A time bound: RFC 3339 (`2026-11-25T14:00:00Z`, any offset), a date (`2026-11-25`,
/// midnight UTC) or unix seconds (`1795615200`). Returned in the ledger's form (RFC 3339
/// UTC to the second), rounded up to the whole second, since records are stored to the
/// second: `start` stays inclusive and `end` exclusive.
fn parse_time(param: &str, v: &str) -> Result<String, ApiError> {
    let day = time::macros::format_description!("[year]-[month]-[day]");
    let t = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        v.parse::<i64>()
            .ok()
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
    } else if let Ok(d) = Date::parse(v, day) {
        Some(d.midnight().assume_utc())
    } else {
        OffsetDateTime::parse(v, &Rfc3339).ok()
    };
    let rounded = t
        .and_then(|t| t.checked_to_offset(UtcOffset::UTC))
        .and_then(|t| {
            let whole = t.replace_nanosecond(0).ok()?;
            if t.nanosecond() > 0 {
                whole.checked_add(Duration::SECOND)
            } else {
                Some(whole)
            }
        });
    rounded
        .and_then(|t| t.format(&Rfc3339).ok())
        .ok_or_else(|| {
            bad(
                param,
                format!("`{param}` must be an RFC 3339 time (2026-11-25T14:00:00Z), a date (2026-11-25, midnight UTC) or unix seconds; got `{v}`"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_accepted_form_become_the_ledger_form() {
        let t = |v: &str| parse_time("start", v).ok();
        let want = Some("2026-11-25T14:00:00Z".to_owned());
        assert_eq!(t("2026-11-25T14:00:00Z"), want);
        assert_eq!(t("2026-11-25T15:00:00+01:00"), want);
        assert_eq!(
            t("2026-11-25T13:59:59.25Z"),
            want,
            "rounded up to the second"
        );
        assert_eq!(t("1795615200"), want);
        assert_eq!(t("2026-11-25"), Some("2026-11-25T00:00:00Z".to_owned()));
        for bad in [
            "",
            "yesterday",
            "-5",
            "2026-13-01",
            "2026-11-25T14:00:00",
            "1e9",
            "9999-12-31T23:59:59-01:00",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn csv_cells_that_look_like_formulas_are_neutralised() {
        let out = write_csv(
            &["a"],
            [
                vec!["=HYPERLINK(\"x\")".to_owned()],
                vec!["@SUM(A1)".to_owned()],
                vec!["-0.5".to_owned()],
                vec!["-cmd".to_owned()],
            ]
            .into_iter(),
        );
        assert_eq!(
            out,
            "a\r\n\"'=HYPERLINK(\"\"x\"\")\"\r\n'@SUM(A1)\r\n-0.5\r\n'-cmd\r\n"
        );
    }

    #[test]
    fn csv_quotes_only_what_needs_it() {
        let out = write_csv(
            &["a", "b"],
            [
                vec!["plain".to_owned(), "with, comma".to_owned()],
                vec!["say \"hi\"".to_owned(), "two\nlines".to_owned()],
            ]
            .into_iter(),
        );
        assert_eq!(
            out,
            "a,b\r\nplain,\"with, comma\"\r\n\"say \"\"hi\"\"\",\"two\nlines\"\r\n"
        );
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused_by_name() {
        let e = Params::parse(Some("limit=5&from=x"), LIST_PARAMS)
            .err()
            .map(|e| e.param);
        assert_eq!(e, Some(Some("from".to_owned())));
        let e = Params::parse(Some("limit=5&limit=6"), LIST_PARAMS)
            .err()
            .map(|e| e.param);
        assert_eq!(e, Some(Some("limit".to_owned())));
        let p = Params::parse(
            Some("start=2026-11-25T15:00:00+01:00&model=a%2Fb"),
            LIST_PARAMS,
        )
        .ok();
        assert_eq!(
            p.as_ref().and_then(|p| p.get("start")),
            Some("2026-11-25T15:00:00+01:00")
        );
        assert_eq!(p.as_ref().and_then(|p| p.get("model")), Some("a/b"));
    }
}
