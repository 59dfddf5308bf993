//! The HTTP surface, one function per route (see the parent module for the list):
//! the Stripe API behind the secret key, the payment page, and the `/_sim/` controls.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::checkout::{self, Session};
use super::webhook::{EventRequest, API_VERSION};
use super::{
    form, page, random_id, ApiError, ControlError, DeliveryOutcome, RecordedRequest, Shared,
};

/// The longest `Idempotency-Key` Stripe takes.
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;
/// The default and largest `limit` of a list.
const DEFAULT_LIST_LIMIT: usize = 10;
const MAX_LIST_LIMIT: usize = 100;

/// A JSON answer as the Stripe API sends it: pretty-printed, with `Request-Id` and
/// `Stripe-Version`.
pub(super) fn stripe_json(
    status: StatusCode,
    body: &Value,
    request_id: &str,
    extra: &[(&'static str, String)],
) -> Response {
    let text = serde_json::to_string_pretty(body).unwrap_or_else(|_| body.to_string());
    stripe_text(status, text, request_id, extra)
}

fn stripe_text(
    status: StatusCode,
    body: String,
    request_id: &str,
    extra: &[(&'static str, String)],
) -> Response {
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    let headers = [
        ("request-id", request_id.to_owned()),
        ("stripe-version", API_VERSION.to_owned()),
    ];
    for (name, value) in headers.iter().chain(extra) {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(*name, value);
        }
    }
    response
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Every request: recorded, then routed; API and control refusals answer Stripe's
/// error body, the payment page answers HTML.
pub(super) async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let request_id = random_id("req_", 14);
    let query = request.uri().query().unwrap_or_default().to_owned();
    let Some(recorded) = shared.log.record(request).await else {
        let error = ApiError::invalid(
            "The request body is too large or could not be read.".to_owned(),
            None,
            None,
        );
        return error.into_response(&request_id);
    };
    let segments: Vec<&str> = recorded.path.split('/').collect();
    let result = match (recorded.method.as_str(), &segments[..]) {
        (_, ["", "v1", ..]) => api(&shared, &recorded, &query, &request_id),
        (_, ["", "_sim", ..]) => control(&shared, &recorded, &query, &request_id),
        ("GET", ["", "pay", id]) => return payment_page(&shared, id),
        ("POST", ["", "pay", id]) => return submit_payment(&shared, id),
        _ => {
            let page = page::message_page("Not found", "There is no page at this address.");
            return html(StatusCode::NOT_FOUND, page);
        }
    };
    result.unwrap_or_else(|error| error.into_response(&request_id))
}

/// The Stripe API routes.
fn api(
    shared: &Shared,
    request: &RecordedRequest,
    query: &str,
    request_id: &str,
) -> Result<Response, ApiError> {
    check_auth(&shared.secret_key, request)?;
    let (method, path) = (request.method.as_str(), request.path.as_str());
    let segments: Vec<&str> = path.split('/').collect();
    match (method, &segments[..]) {
        ("POST", ["", "v1", "checkout", "sessions"]) => create(shared, request, request_id),
        ("GET", ["", "v1", "checkout", "sessions"]) => list(shared, query, request_id),
        ("GET", ["", "v1", "checkout", "sessions", id]) => {
            let session = shared.with_session(id, |s, base| Ok(s.json(base)))?;
            Ok(stripe_json(StatusCode::OK, &session, request_id, &[]))
        }
        ("POST", ["", "v1", "checkout", "sessions", id, "expire"]) => {
            check_form(request)?;
            let cause = EventRequest {
                id: Some(request_id.to_owned()),
                idempotency_key: request.header("idempotency-key").map(str::to_owned),
            };
            let session = shared.expire(id, cause)?;
            Ok(stripe_json(StatusCode::OK, &session, request_id, &[]))
        }
        ("GET", ["", "v1", "events", id]) => {
            let event = shared
                .webhooks
                .event(id)
                .ok_or_else(|| ControlError::NoSuchEvent((*id).to_owned()))?;
            Ok(stripe_json(StatusCode::OK, &event, request_id, &[]))
        }
        _ => Err(ApiError::unrecognized(method, path)),
    }
}

/// `Authorization: Bearer <key>` or HTTP Basic with the key as user name.
fn check_auth(secret_key: &str, request: &RecordedRequest) -> Result<(), ApiError> {
    let authorization = request.header("authorization").unwrap_or_default().trim();
    let key = if let Some(token) = authorization.strip_prefix("Bearer ") {
        token.trim().to_owned()
    } else if let Some(basic) = authorization.strip_prefix("Basic ") {
        aws_smithy_types::base64::decode(basic.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(|user_pass| user_pass.split(':').next().unwrap_or_default().to_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    if key.is_empty() {
        return Err(ApiError::unauthorized(
            "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.".to_owned(),
        ));
    }
    if key == secret_key {
        Ok(())
    } else {
        Err(ApiError::unauthorized(format!(
            "Invalid API Key provided: {}",
            redact(&key)
        )))
    }
}

/// `sk_test_********************1234`, as Stripe prints a wrong key.
fn redact(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let tail = chars.len() - 4;
    let head = key
        .rfind('_')
        .map(|i| key[..=i].chars().count())
        .filter(|&n| n <= 8)
        .unwrap_or(0);
    let shown: String = chars[..head].iter().collect();
    let last: String = chars[tail..].iter().collect();
    format!("{shown}{}{last}", "*".repeat(tail - head))
}

/// Stripe takes form bodies only (an empty body needs no content type).
fn check_form(request: &RecordedRequest) -> Result<(), ApiError> {
    let content_type = request.header("content-type").unwrap_or_default();
    let is_form = content_type.split(';').next().is_some_and(|t| {
        t.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    });
    if is_form || request.body.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            format!("Invalid request: unsupported Content-Type {content_type}. If error persists and you need assistance, please contact support@stripe.com."),
            None,
            None,
        ))
    }
}

/// `POST /v1/checkout/sessions`.
fn create(
    shared: &Shared,
    request: &RecordedRequest,
    request_id: &str,
) -> Result<Response, ApiError> {
    check_form(request)?;
    let pairs = form::pairs(&request.body);
    let key = request.header("idempotency-key").map(str::to_owned);
    if key
        .as_deref()
        .is_some_and(|key| key.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS)
    {
        return Err(ApiError::invalid(
            format!("Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY_CHARS} characters long."),
            None,
            None,
        ));
    }
    let mut sorted = pairs.clone();
    sorted.sort();
    let echo: Vec<(&'static str, String)> =
        key.iter().map(|k| ("idempotency-key", k.clone())).collect();
    let now = crate::clock::unix_now();
    // Held from the replay check to the save, so two requests with one key cannot
    // both create a session.
    let mut store = shared.store();
    if let Some(key) = &key {
        if let Some((params, body)) = store.idempotent.get(key) {
            if *params != sorted {
                return Err(ApiError::idempotency(key));
            }
            let mut headers = echo;
            headers.push(("idempotent-replayed", "true".to_owned()));
            return Ok(stripe_text(
                StatusCode::OK,
                body.clone(),
                request_id,
                &headers,
            ));
        }
    }
    let params = form::tree(&pairs)?;
    let details = checkout::parse_create(&params, now)?;
    let session = Session::new(random_id("cs_test_", 58), details, now);
    let json = session.json(&shared.base_url);
    let body = serde_json::to_string_pretty(&json).unwrap_or_else(|_| json.to_string());
    store.sessions.push(session);
    if let Some(key) = key {
        store.idempotent.insert(key, (sorted, body.clone()));
    }
    Ok(stripe_text(StatusCode::OK, body, request_id, &echo))
}

/// `GET /v1/checkout/sessions`: newest first, `payment_intent` and `limit` understood.
fn list(shared: &Shared, query: &str, request_id: &str) -> Result<Response, ApiError> {
    let pairs = form::pairs(query.as_bytes());
    let params = form::tree(&pairs)?;
    let fields = form::Fields::root(&params);
    fields.reject_unknown(&["payment_intent", "limit"])?;
    let payment_intent = fields.string("payment_intent")?;
    let limit = match fields.string("limit")? {
        Some(_) => usize::try_from(fields.required_integer("limit", 1)?)
            .unwrap_or(MAX_LIST_LIMIT)
            .min(MAX_LIST_LIMIT),
        None => DEFAULT_LIST_LIMIT,
    };
    let store = shared.store();
    let matching: Vec<Value> = store
        .sessions
        .iter()
        .rev()
        .filter(|s| {
            payment_intent
                .is_none_or(|pi| s.payment.as_ref().is_some_and(|p| p.payment_intent == pi))
        })
        .map(|s| s.json(&shared.base_url))
        .collect();
    let has_more = matching.len() > limit;
    let data: Vec<Value> = matching.into_iter().take(limit).collect();
    let body = json!({
        "object": "list",
        "data": data,
        "has_more": has_more,
        "url": "/v1/checkout/sessions",
    });
    Ok(stripe_json(StatusCode::OK, &body, request_id, &[]))
}

/// `GET /pay/{id}`.
fn payment_page(shared: &Shared, id: &str) -> Response {
    match shared.with_session(id, |session, _| Ok(page::payment_page(session))) {
        Ok(page) => html(StatusCode::OK, page),
        Err(error) => error_page(&error),
    }
}

/// `POST /pay/{id}`: pays, then 303 to the success URL.
fn submit_payment(shared: &Shared, id: &str) -> Response {
    let redirect = match shared.pay(id) {
        Ok((_, redirect)) => redirect,
        Err(error) => return error_page(&error),
    };
    match HeaderValue::from_str(&redirect) {
        Ok(location) => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            response.headers_mut().insert(header::LOCATION, location);
            response
        }
        // A success URL no header can carry: offer it as a link instead.
        Err(_) => {
            let link = format!("<a href=\"{}\">Continue</a>", page::escape(&redirect));
            html(
                StatusCode::OK,
                page::message_page("Payment complete", &link),
            )
        }
    }
}

fn error_page(error: &ControlError) -> Response {
    let status = match error {
        ControlError::NoSuchSession(_) | ControlError::NoSuchEvent(_) => StatusCode::NOT_FOUND,
        ControlError::Expired(_) => StatusCode::GONE,
        ControlError::NotPaid(_)
        | ControlError::NotOpen(_)
        | ControlError::ZeroRefund
        | ControlError::RefundTooLarge { .. }
        | ControlError::AlreadyRefunded(_)
        | ControlError::AlreadyDisputed(_) => StatusCode::BAD_REQUEST,
    };
    let message = page::escape(&error.to_string());
    html(status, page::message_page("Checkout unavailable", &message))
}

/// The `/_sim/` controls.
fn control(
    shared: &Shared,
    request: &RecordedRequest,
    query: &str,
    request_id: &str,
) -> Result<Response, ApiError> {
    let segments: Vec<&str> = request.path.split('/').collect();
    let ok = |body: &Value| stripe_json(StatusCode::OK, body, request_id, &[]);
    match (request.method.as_str(), &segments[..]) {
        ("POST", ["", "_sim", "sessions", id, "refund"]) => {
            check_form(request)?;
            let mut pairs = form::pairs(query.as_bytes());
            pairs.extend(form::pairs(&request.body));
            let params = form::tree(&pairs)?;
            let fields = form::Fields::root(&params);
            fields.reject_unknown(&["amount"])?;
            let amount = match fields.string("amount")? {
                Some(_) => Some(fields.required_integer("amount", 0)?),
                None => None,
            };
            let cause = EventRequest {
                id: Some(request_id.to_owned()),
                idempotency_key: request.header("idempotency-key").map(str::to_owned),
            };
            Ok(ok(&shared.refund(id, amount, cause)?))
        }
        ("POST", ["", "_sim", "sessions", id, "dispute"]) => Ok(ok(&shared.dispute(id)?)),
        ("POST", ["", "_sim", "events", id, "redeliver"]) => {
            let event = shared
                .webhooks
                .event(id)
                .ok_or_else(|| ControlError::NoSuchEvent((*id).to_owned()))?;
            shared.webhooks.redeliver(id);
            Ok(ok(&event))
        }
        ("GET", ["", "_sim", "events"]) => {
            let events = shared.webhooks.events();
            Ok(ok(
                &json!({"object": "list", "data": events, "has_more": false}),
            ))
        }
        ("GET", ["", "_sim", "deliveries"]) => {
            let deliveries: Vec<Value> = shared
                .webhooks
                .deliveries()
                .iter()
                .map(|d| {
                    let (status, error) = match &d.outcome {
                        DeliveryOutcome::Status(status) => (Some(*status), None),
                        DeliveryOutcome::Error(error) => (None, Some(error.as_str())),
                    };
                    json!({
                        "event": d.event_id,
                        "type": d.event_type,
                        "attempt": d.attempt,
                        "status": status,
                        "error": error,
                    })
                })
                .collect();
            Ok(ok(
                &json!({"object": "list", "data": deliveries, "has_more": false}),
            ))
        }
        _ => Err(ApiError::unrecognized(&request.method, &request.path)),
    }
}
