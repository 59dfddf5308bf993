//! Tests of the simulated Stripe over HTTP: the API, the payment page and the
//! controls, with a small webhook receiver on port 0 (shared with `webhook_tests`).
//! Signatures are checked here with `hmac` and `sha2` directly, following Stripe's
//! documented scheme, not with the simulator's own signing code.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;
use sha2::Sha256;

use crate::simulators::test_client::{send, TestResponse};
use crate::simulators::{start_stripe, ControlError, DeliveryOutcome, StripeSim, StripeSimConfig};

pub(super) const KEY: &str = "sk_test_51SimulatedAccount0123456789";
pub(super) const WHSEC: &str = "whsec_simulated0123456789abcdef";
pub(super) const WAIT: Duration = Duration::from_secs(10);

// --- a webhook endpoint ------------------------------------------------------------

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(super) struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub(super) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub(super) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("event JSON")
    }

    pub(super) fn event_id(&self) -> String {
        self.json()["id"].as_str().expect("event id").to_owned()
    }
}

/// A webhook endpoint on port 0 that records every request and answers the scripted
/// statuses in turn, then 200.
#[derive(Clone, Default)]
pub(super) struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    async fn start(script: &[u16]) -> (Receiver, String) {
        let receiver = Receiver::default();
        receiver
            .script
            .lock()
            .expect("lock")
            .extend(script.iter().copied());
        let router = axum::Router::new()
            .fallback(receive)
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let url = format!(
            "http://{}/webhooks/stripe",
            listener.local_addr().expect("addr")
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        (receiver, url)
    }

    pub(super) fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    receiver
        .received
        .lock()
        .expect("lock")
        .push(Received { headers, body });
    let status = receiver
        .script
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or(200);
    StatusCode::from_u16(status).expect("status")
}

/// Stripe's manual verification: split on `,` then `=`, take `t` and every `v1`, HMAC
/// `"{t}.{body}"` with the endpoint secret as it is, compare, check the age.
pub(super) fn verifies(header: &str, body: &[u8], secret: &str) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", t)) if timestamp.is_none() => timestamp = Some(t),
            Some(("v1", v1)) => signatures.push(v1),
            _ => {}
        }
    }
    let t = timestamp.expect("t= in the header");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC key");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = hex::encode(mac.finalize().into_bytes());
    let age = crate::clock::unix_now() as i64 - t.parse::<i64>().expect("numeric t");
    signatures.contains(&expected.as_str()) && age.abs() <= 300
}

/// Form parameters, in order.
type Pairs = Vec<(String, String)>;

// --- the API ---------------------------------------------------------------------------

/// Encodes pairs as the Python SDK does: urlencode, then literal brackets again.
fn encode(pairs: &[(String, String)]) -> String {
    let part = |s: &str| {
        utf8_percent_encode(s, NON_ALPHANUMERIC)
            .to_string()
            .replace("%5B", "[")
            .replace("%5D", "]")
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", part(k), part(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The body of the notes' example: $20.00 of credits and an $0.89 fee.
fn topup() -> Pairs {
    [
        ("mode", "payment"),
        ("line_items[0][price_data][currency]", "usd"),
        (
            "line_items[0][price_data][product_data][name]",
            "LLM credits",
        ),
        ("line_items[0][price_data][unit_amount]", "2000"),
        ("line_items[0][quantity]", "1"),
        ("line_items[1][price_data][currency]", "usd"),
        (
            "line_items[1][price_data][product_data][name]",
            "Processing fee",
        ),
        ("line_items[1][price_data][unit_amount]", "89"),
        ("line_items[1][quantity]", "1"),
        (
            "success_url",
            "https://gw.example.com/billing/done?session_id={CHECKOUT_SESSION_ID}",
        ),
        ("cancel_url", "https://gw.example.com/billing/cancelled"),
        ("client_reference_id", "topup_01J9Z6"),
        ("customer_email", "alice@example.com"),
        ("metadata[user_id]", "u_42"),
        ("metadata[credits_cents]", "2000"),
        ("payment_intent_data[metadata][topup_id]", "topup_01J9Z6"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

fn with(mut pairs: Pairs, key: &str, value: &str) -> Pairs {
    pairs.retain(|(k, _)| k != key);
    pairs.push((key.to_owned(), value.to_owned()));
    pairs
}

fn without(mut pairs: Pairs, key: &str) -> Pairs {
    pairs.retain(|(k, _)| k != key);
    pairs
}

async fn post_form(
    sim: &StripeSim,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> TestResponse {
    let auth = format!("Bearer {KEY}");
    let mut all = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    all.extend_from_slice(headers);
    send(
        "POST",
        &format!("{}{path}", sim.base_url()),
        &all,
        body.to_owned(),
    )
    .await
}

async fn create(
    sim: &StripeSim,
    pairs: &[(String, String)],
    headers: &[(&str, &str)],
) -> TestResponse {
    post_form(sim, "/v1/checkout/sessions", &encode(pairs), headers).await
}

async fn get(sim: &StripeSim, path: &str) -> TestResponse {
    let auth = format!("Bearer {KEY}");
    send(
        "GET",
        &format!("{}{path}", sim.base_url()),
        &[("authorization", &auth)],
        "",
    )
    .await
}

/// A new open session for the top-up; its ID.
pub(super) async fn open_session(sim: &StripeSim) -> String {
    let response = create(sim, &topup(), &[]).await;
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()["id"].as_str().expect("id").to_owned()
}

pub(super) async fn sim_with_receiver(script: &[u16]) -> (StripeSim, Receiver) {
    let (receiver, url) = Receiver::start(script).await;
    let config = StripeSimConfig {
        webhook_url: Some(url),
        ..StripeSimConfig::new(KEY, WHSEC)
    };
    (start_stripe(config).await.expect("start"), receiver)
}

fn assert_error(
    response: &TestResponse,
    status: u16,
    param: Option<&str>,
    code: Option<&str>,
) -> Value {
    assert_eq!(response.status, status, "{}", response.text());
    let body = response.json();
    let error = &body["error"];
    assert!(error["message"].is_string(), "{body}");
    assert_eq!(error["param"].as_str(), param, "{body}");
    assert_eq!(error["code"].as_str(), code, "{body}");
    body
}

#[tokio::test]
async fn api_calls_need_the_secret_key() {
    let sim = start_stripe(StripeSimConfig::new(KEY, WHSEC))
        .await
        .expect("start");
    let url = format!("{}/v1/checkout/sessions", sim.base_url());
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let body = encode(&topup());

    let response = send("POST", &url, &form, body.clone()).await;
    let error = assert_error(&response, 401, None, None);
    assert_eq!(error["error"]["type"], "invalid_request_error");
    let message = error["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("You did not provide an API key."),
        "{message}"
    );

    let wrong = "sk_test_wrongwrongwrong9876";
    let auth = format!("Bearer {wrong}");
    let response = send(
        "POST",
        &url,
        &[form[0], ("authorization", auth.as_str())],
        body,
    )
    .await;
    let error = assert_error(&response, 401, None, None);
    let message = error["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("Invalid API Key provided: sk_test_*"),
        "{message}"
    );
    assert!(message.ends_with("9876"), "{message}");
    assert!(!message.contains("wrongwrong"), "{message}");

    // HTTP Basic with the key as user name is Stripe's documented form.
    let basic = format!(
        "Basic {}",
        aws_smithy_types::base64::encode(format!("{KEY}:"))
    );
    let missing = format!("{}/v1/checkout/sessions/cs_test_nothing", sim.base_url());
    let response = send("GET", &missing, &[("authorization", &basic)], "").await;
    let error = assert_error(&response, 404, Some("session"), Some("resource_missing"));
    assert_eq!(
        error["error"]["message"],
        "No such checkout.session: 'cs_test_nothing'"
    );
    assert!(response
        .header("request-id")
        .is_some_and(|id| id.starts_with("req_")));

    assert_eq!(sim.requests().len(), 3);
    assert!(sim.events().is_empty());
}

#[tokio::test]
async fn create_validates_like_stripe() {
    let sim = start_stripe(StripeSimConfig::new(KEY, WHSEC))
        .await
        .expect("start");
    let price = "line_items[0][price_data]";
    let cases: Vec<(&str, Pairs, &str, Option<&str>)> = vec![
        (
            "no mode",
            without(topup(), "mode"),
            "mode",
            Some("parameter_missing"),
        ),
        ("setup mode", with(topup(), "mode", "setup"), "mode", None),
        ("unknown mode", with(topup(), "mode", "pay"), "mode", None),
        (
            "no line items",
            topup()
                .into_iter()
                .filter(|(k, _)| !k.starts_with("line_items"))
                .collect(),
            "line_items",
            Some("parameter_missing"),
        ),
        (
            "no currency",
            without(topup(), &format!("{price}[currency]")),
            "line_items[0][price_data][currency]",
            Some("parameter_missing"),
        ),
        (
            "euros",
            with(topup(), &format!("{price}[currency]"), "eur"),
            "line_items[0][price_data][currency]",
            None,
        ),
        (
            "no product name",
            with(
                without(topup(), "line_items[1][price_data][product_data][name]"),
                "line_items[1][price_data][product_data][description]",
                "A fee",
            ),
            "line_items[1][price_data][product_data][name]",
            Some("parameter_missing"),
        ),
        (
            "fractional unit amount",
            with(topup(), &format!("{price}[unit_amount]"), "2000.5"),
            "line_items[0][price_data][unit_amount]",
            Some("parameter_invalid_integer"),
        ),
        (
            "negative unit amount",
            with(topup(), &format!("{price}[unit_amount]"), "-1"),
            "line_items[0][price_data][unit_amount]",
            None,
        ),
        (
            "no unit amount",
            without(topup(), &format!("{price}[unit_amount]")),
            "line_items[0][price_data][unit_amount]",
            Some("parameter_missing"),
        ),
        (
            "zero quantity",
            with(topup(), "line_items[0][quantity]", "0"),
            "line_items[0][quantity]",
            None,
        ),
        (
            "word quantity",
            with(topup(), "line_items[0][quantity]", "one"),
            "line_items[0][quantity]",
            Some("parameter_invalid_integer"),
        ),
        (
            "no quantity",
            without(topup(), "line_items[1][quantity]"),
            "line_items[1][quantity]",
            Some("parameter_missing"),
        ),
        (
            "no success URL",
            without(topup(), "success_url"),
            "success_url",
            Some("parameter_missing"),
        ),
        (
            "empty success URL",
            with(topup(), "success_url", ""),
            "success_url",
            Some("parameter_invalid_empty"),
        ),
        (
            "relative success URL",
            with(topup(), "success_url", "/done"),
            "success_url",
            Some("url_invalid"),
        ),
        (
            "unknown parameter",
            with(topup(), "metdata[user_id]", "u_42"),
            "metdata",
            Some("parameter_unknown"),
        ),
        (
            "saved price",
            with(topup(), "line_items[2][price]", "price_123"),
            "line_items[2][price]",
            Some("resource_missing"),
        ),
    ];
    for (name, pairs, param, code) in cases {
        let response = create(&sim, &pairs, &[]).await;
        let body = response.json();
        assert_eq!(response.status, 400, "{name}: {body}");
        assert_eq!(
            body["error"]["type"], "invalid_request_error",
            "{name}: {body}"
        );
        assert_eq!(body["error"]["param"], param, "{name}: {body}");
        assert_eq!(body["error"]["code"].as_str(), code, "{name}: {body}");
    }

    // A total under $0.50: 2 × 24 cents.
    let small = vec![
        ("mode".to_owned(), "payment".to_owned()),
        (format!("{price}[currency]"), "usd".to_owned()),
        (format!("{price}[product_data][name]"), "Tiny".to_owned()),
        (format!("{price}[unit_amount]"), "24".to_owned()),
        ("line_items[0][quantity]".to_owned(), "2".to_owned()),
        (
            "success_url".to_owned(),
            "https://example.com/ok".to_owned(),
        ),
    ];
    let response = create(&sim, &small, &[]).await;
    let body = assert_error(&response, 400, None, Some("amount_too_small"));
    assert!(body["error"]["message"]
        .as_str()
        .expect("message")
        .contains("$0.50"));

    // cancel_url is optional; 2 × 25 cents is exactly the minimum.
    let response = create(
        &sim,
        &with(small, &format!("{price}[unit_amount]"), "25"),
        &[],
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["cancel_url"], Value::Null);
    assert_eq!(response.json()["amount_total"], 50);

    // JSON is not a form body.
    let auth = format!("Bearer {KEY}");
    let response = send(
        "POST",
        &format!("{}/v1/checkout/sessions", sim.base_url()),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        r#"{"mode":"payment"}"#,
    )
    .await;
    assert_error(&response, 400, None, None);
}

#[tokio::test]
async fn create_answers_the_checkout_session() {
    let sim = start_stripe(StripeSimConfig::new(KEY, WHSEC))
        .await
        .expect("start");
    // Keys with %5B / %5D, as strict form encoding sends them, read the same.
    let body = encode(&topup()).replace('[', "%5B").replace(']', "%5D");
    let response = post_form(&sim, "/v1/checkout/sessions", &body, &[]).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert!(response
        .header("request-id")
        .is_some_and(|id| id.starts_with("req_")));
    assert!(response.header("stripe-version").is_some());
    let session = response.json();
    let id = session["id"].as_str().expect("id");
    assert!(id.starts_with("cs_test_"), "{id}");
    assert_eq!(session["object"], "checkout.session");
    assert_eq!(session["url"], format!("{}/pay/{id}", sim.base_url()));
    assert_eq!(session["amount_subtotal"], 2089);
    assert_eq!(session["amount_total"], 2089);
    assert_eq!(session["currency"], "usd");
    assert_eq!(session["mode"], "payment");
    assert_eq!(session["payment_status"], "unpaid");
    assert_eq!(session["status"], "open");
    assert_eq!(session["payment_intent"], Value::Null);
    assert_eq!(session["client_reference_id"], "topup_01J9Z6");
    assert_eq!(session["customer_email"], "alice@example.com");
    assert_eq!(
        session["metadata"],
        serde_json::json!({"user_id": "u_42", "credits_cents": "2000"})
    );
    assert_eq!(
        session["success_url"],
        "https://gw.example.com/billing/done?session_id={CHECKOUT_SESSION_ID}"
    );
    assert_eq!(
        session["cancel_url"],
        "https://gw.example.com/billing/cancelled"
    );
    assert_eq!(session["livemode"], false);
    let created = session["created"].as_u64().expect("created");
    assert!(created.abs_diff(crate::clock::unix_now()) < 5);
    assert_eq!(session["expires_at"].as_u64(), Some(created + 24 * 3600));

    let again = get(&sim, &format!("/v1/checkout/sessions/{id}")).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json(), session);
    assert_eq!(sim.session(id), Some(session.clone()));
    // Creating a session emits no event.
    assert!(sim.events().is_empty());
}

#[tokio::test]
async fn idempotency_keys_replay_and_conflict() {
    let sim = start_stripe(StripeSimConfig::new(KEY, WHSEC))
        .await
        .expect("start");
    let key = [("idempotency-key", "7f1c2c0e-1b55-4a63-9a0e-3f0d2a9b6c11")];
    let first = create(&sim, &topup(), &key).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("idempotent-replayed"), None);

    // The same parameters in another order are the same request.
    let mut shuffled = topup();
    shuffled.reverse();
    let second = create(&sim, &shuffled, &key).await;
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(second.text(), first.text());

    let different = create(&sim, &with(topup(), "line_items[0][quantity]", "2"), &key).await;
    let error = assert_error(&different, 400, None, None);
    assert_eq!(error["error"]["type"], "idempotency_error");

    // Another key is another session.
    let other = create(&sim, &topup(), &[("idempotency-key", "other-key")]).await;
    assert_ne!(other.json()["id"], first.json()["id"]);

    // A request refused by validation saves nothing under its key.
    let fresh = [("idempotency-key", "retry-after-fix")];
    let refused = create(&sim, &without(topup(), "mode"), &fresh).await;
    assert_eq!(refused.status, 400);
    let fixed = create(&sim, &topup(), &fresh).await;
    assert_eq!(fixed.status, 200, "{}", fixed.text());

    // The saved answer is replayed as it was, even after the session changed.
    let id = first.json()["id"].as_str().expect("id").to_owned();
    sim.pay(&id).expect("pay");
    let replay = create(&sim, &topup(), &key).await;
    assert_eq!(replay.json()["status"], "open");
    assert_eq!(sim.session(&id).expect("session")["status"], "complete");
}

#[tokio::test]
async fn paying_completes_the_session_and_sends_a_signed_event() {
    let (sim, receiver) = sim_with_receiver(&[]).await;
    let id = open_session(&sim).await;

    let page = send("GET", &format!("{}/pay/{id}", sim.base_url()), &[], "").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    let form_tag = format!("<form method=\"post\" action=\"/pay/{id}\">");
    for needle in [
        "<html lang=\"en\">",
        "LLM credits",
        "Processing fee",
        "$20.00",
        "$0.89",
        "$20.89",
        form_tag.as_str(),
        "<button type=\"submit\" id=\"pay\">Pay</button>",
        "<a id=\"cancel\" href=\"https://gw.example.com/billing/cancelled\">",
    ] {
        assert!(html.contains(needle), "{needle} missing from {html}");
    }

    let paid = send("POST", &format!("{}/pay/{id}", sim.base_url()), &[], "").await;
    assert_eq!(paid.status, 303);
    let location = format!("https://gw.example.com/billing/done?session_id={id}");
    assert_eq!(paid.header("location"), Some(location.as_str()));

    let session = get(&sim, &format!("/v1/checkout/sessions/{id}"))
        .await
        .json();
    assert_eq!(session["status"], "complete");
    assert_eq!(session["payment_status"], "paid");
    assert_eq!(session["url"], Value::Null);
    let payment_intent = session["payment_intent"].as_str().expect("payment_intent");
    assert!(payment_intent.starts_with("pi_"), "{payment_intent}");

    let events = sim.events();
    assert_eq!(events.len(), 1);
    let event_id = events[0]["id"].as_str().expect("id").to_owned();
    let delivery = sim
        .wait_delivered(&event_id, WAIT)
        .await
        .expect("delivered");
    assert_eq!(delivery.attempt, 1);
    assert_eq!(delivery.outcome, DeliveryOutcome::Status(200));
    assert_eq!(delivery.event_type, "checkout.session.completed");

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert!(verifies(
        request.header("stripe-signature"),
        &request.body,
        WHSEC
    ));
    // The prefix is part of the key: without it, nothing verifies.
    assert!(!verifies(
        request.header("stripe-signature"),
        &request.body,
        WHSEC.trim_start_matches("whsec_")
    ));
    assert!(request.header("stripe-signature").contains(",v0="));
    assert!(request.header("user-agent").starts_with("Stripe/1.0"));
    assert!(request
        .header("content-type")
        .starts_with("application/json"));

    let event = request.json();
    assert_eq!(event, events[0]);
    assert!(event_id.starts_with("evt_"), "{event_id}");
    assert_eq!(event["object"], "event");
    assert_eq!(event["type"], "checkout.session.completed");
    assert_eq!(event["livemode"], false);
    assert_eq!(event["pending_webhooks"], 1);
    assert!(event["api_version"].is_string());
    assert!(event["created"].is_u64());
    assert_eq!(
        event["request"],
        serde_json::json!({"id": null, "idempotency_key": null})
    );
    assert_eq!(event["data"]["object"], session);

    // Paying again changes nothing.
    let again = send("POST", &format!("{}/pay/{id}", sim.base_url()), &[], "").await;
    assert_eq!(again.status, 303);
    assert_eq!(again.header("location"), Some(location.as_str()));
    assert_eq!(sim.events().len(), 1);

    // The session can be found from its PaymentIntent.
    let list = get(
        &sim,
        &format!("/v1/checkout/sessions?payment_intent={payment_intent}"),
    )
    .await;
    assert_eq!(list.status, 200, "{}", list.text());
    assert_eq!(list.json()["data"][0]["id"], id.as_str());
    assert_eq!(list.json()["has_more"], false);

    // The event is there through the API too.
    let fetched = get(&sim, &format!("/v1/events/{event_id}")).await;
    assert_eq!(fetched.json(), event);
}

#[tokio::test]
async fn refunds_accumulate_on_the_charge() {
    let (sim, receiver) = sim_with_receiver(&[]).await;
    let id = open_session(&sim).await;
    assert_eq!(
        sim.refund(&id, None),
        Err(ControlError::NotPaid(id.clone()))
    );
    let session = sim.pay(&id).expect("pay");

    let charge = sim.refund(&id, Some(500)).expect("partial refund");
    assert!(charge["id"].as_str().expect("id").starts_with("ch_"));
    assert_eq!(charge["object"], "charge");
    assert_eq!(charge["amount"], 2089);
    assert_eq!(charge["amount_refunded"], 500);
    assert_eq!(charge["refunded"], false);
    assert_eq!(charge["payment_intent"], session["payment_intent"]);
    assert_eq!(charge["metadata"]["topup_id"], "topup_01J9Z6");
    assert!(charge.get("refunds").is_none());

    assert_eq!(
        sim.refund(&id, Some(2000)),
        Err(ControlError::RefundTooLarge {
            requested: 2000,
            available: 1589
        })
    );

    // Over HTTP, the rest by default.
    let url = format!("{}/_sim/sessions/{id}/refund", sim.base_url());
    let response = send("POST", &url, &[], "").await;
    assert_eq!(response.status, 200, "{}", response.text());
    let charge = response.json();
    assert_eq!(charge["amount_refunded"], 2089);
    assert_eq!(charge["refunded"], true);

    let response = send("POST", &format!("{url}?amount=1"), &[], "").await;
    assert_error(&response, 400, None, Some("charge_already_refunded"));

    let events = sim.events();
    let refunds: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "charge.refunded")
        .collect();
    assert_eq!(refunds.len(), 2);
    assert_eq!(refunds[0]["data"]["object"]["amount_refunded"], 500);
    assert_eq!(refunds[1]["data"]["object"]["amount_refunded"], 2089);
    assert_eq!(refunds[1]["data"]["object"]["refunded"], true);
    assert!(refunds[1]["request"]["id"]
        .as_str()
        .expect("request id")
        .starts_with("req_"));

    let last = refunds[1]["id"].as_str().expect("id");
    sim.wait_delivered(last, WAIT).await.expect("delivered");
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test]
async fn a_dispute_covers_the_whole_charge() {
    let (sim, _receiver) = sim_with_receiver(&[]).await;
    let id = open_session(&sim).await;
    let session = sim.pay(&id).expect("pay");

    let url = format!("{}/_sim/sessions/{id}/dispute", sim.base_url());
    let response = send("POST", &url, &[], "").await;
    assert_eq!(response.status, 200, "{}", response.text());
    let dispute = response.json();
    assert!(dispute["id"].as_str().expect("id").starts_with("dp_"));
    assert_eq!(dispute["object"], "dispute");
    assert_eq!(dispute["amount"], 2089);
    assert_eq!(dispute["currency"], "usd");
    assert_eq!(dispute["payment_intent"], session["payment_intent"]);
    assert!(dispute["charge"]
        .as_str()
        .expect("charge")
        .starts_with("ch_"));
    assert_eq!(dispute["status"], "needs_response");
    assert_eq!(dispute["reason"], "fraudulent");

    let events = sim.events();
    let event = events.last().expect("event");
    assert_eq!(event["type"], "charge.dispute.created");
    assert_eq!(event["data"]["object"], dispute);

    let again = send("POST", &url, &[], "").await;
    assert_error(&again, 400, None, Some("charge_disputed"));
    let charge = sim.refund(&id, Some(100)).expect("refund");
    assert_eq!(charge["disputed"], true);
    assert_eq!(charge["id"], dispute["charge"]);

    let unknown = send(
        "POST",
        &format!("{}/_sim/sessions/cs_test_x/dispute", sim.base_url()),
        &[],
        "",
    )
    .await;
    assert_error(&unknown, 404, Some("session"), Some("resource_missing"));
}

#[tokio::test]
async fn an_expired_session_cannot_be_paid() {
    let sim = start_stripe(StripeSimConfig::new(KEY, WHSEC))
        .await
        .expect("start");
    let id = open_session(&sim).await;
    let response = post_form(&sim, &format!("/v1/checkout/sessions/{id}/expire"), "", &[]).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let session = response.json();
    assert_eq!(session["status"], "expired");
    assert_eq!(session["payment_status"], "unpaid");
    assert_eq!(session["url"], Value::Null);
    let events = sim.events();
    assert_eq!(events[0]["type"], "checkout.session.expired");
    // No webhook URL: the event is kept, nothing is sent.
    assert_eq!(events[0]["pending_webhooks"], 0);
    assert!(sim.deliveries().is_empty());

    let paid = send("POST", &format!("{}/pay/{id}", sim.base_url()), &[], "").await;
    assert_eq!(paid.status, 410);
    assert_eq!(sim.pay(&id), Err(ControlError::Expired(id.clone())));

    let other = open_session(&sim).await;
    sim.pay(&other).expect("pay");
    let response = post_form(
        &sim,
        &format!("/v1/checkout/sessions/{other}/expire"),
        "",
        &[],
    )
    .await;
    assert_error(&response, 400, None, None);
}

#[tokio::test]
async fn every_event_is_listed_in_order() {
    let sim = start_stripe(StripeSimConfig::new(KEY, WHSEC))
        .await
        .expect("start");
    let id = open_session(&sim).await;
    sim.pay(&id).expect("pay");
    sim.refund(&id, Some(89)).expect("refund");
    sim.dispute(&id).expect("dispute");
    let response = send("GET", &format!("{}/_sim/events", sim.base_url()), &[], "").await;
    assert_eq!(response.status, 200, "{}", response.text());
    let listed = response.json();
    let types: Vec<&str> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            "checkout.session.completed",
            "charge.refunded",
            "charge.dispute.created"
        ]
    );
    assert_eq!(listed["data"], Value::Array(sim.events()));

    let unknown = get(&sim, "/v1/events/evt_unknown").await;
    assert_error(&unknown, 404, Some("id"), Some("resource_missing"));
    let unrecognized = get(&sim, "/v1/charges").await;
    assert_error(&unrecognized, 404, None, None);
}
