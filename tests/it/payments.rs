//! Card top-ups through Stripe: the signed webhook credits a paid checkout exactly once,
//! whatever the delivery (duplicates, retries, other events of the same session, any
//! order); forged, tampered and stale deliveries change nothing; refunds and disputes
//! take credit back, never more than was credited; operators grant credit with a reason.

use crate::harness::*;
use gammainfra::ledger::CheckoutRecord;
use gammainfra::money::Nanos;
use gammainfra::simulators;

const WEBHOOK_SECRET: &str = "whsec_gammainfra_test_secret";

fn with_payments(c: &mut gammainfra::config::Config) {
    c.payments = Some(gammainfra::config::PaymentsConfig {
        secret_key: gammainfra::config::Secret::new("sk_test_gammainfra"),
        webhook_secret: gammainfra::config::Secret::new(WEBHOOK_SECRET),
        // Not called by these tests: checkouts are recorded directly.
        api_base: "http://127.0.0.1:9".to_owned(),
    });
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `Stripe-Signature` for `body` at `t`, computed as Stripe documents it.
fn signature(secret: &str, t: i64, body: &str) -> String {
    use hmac::Mac;
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    m.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(m.finalize().into_bytes()))
}

fn completed(event: &str, session: &str, intent: &str, total_cents: i64, paid: bool) -> String {
    let status = if paid { "paid" } else { "unpaid" };
    format!(
        r#"{{"id":"{event}","object":"event","api_version":"2026-10-28.acacia","created":{},"livemode":false,"pending_webhooks":1,"request":{{"id":null,"idempotency_key":null}},"type":"checkout.session.completed","data":{{"object":{{"id":"{session}","object":"checkout.session","amount_subtotal":{total_cents},"amount_total":{total_cents},"currency":"usd","mode":"payment","payment_intent":"{intent}","payment_status":"{status}","status":"complete"}}}}}}"#,
        now()
    )
}

fn refunded(event: &str, intent: &str, amount: i64, refunded: i64) -> String {
    format!(
        r#"{{"id":"{event}","object":"event","api_version":"2026-10-28.acacia","created":{},"livemode":false,"pending_webhooks":1,"request":{{"id":"req_1","idempotency_key":null}},"type":"charge.refunded","data":{{"object":{{"id":"ch_{intent}","object":"charge","amount":{amount},"amount_refunded":{refunded},"refunded":{},"payment_intent":"{intent}","currency":"usd","status":"succeeded"}}}}}}"#,
        now(),
        refunded == amount
    )
}

fn disputed(event: &str, intent: &str, amount: i64) -> String {
    format!(
        r#"{{"id":"{event}","object":"event","api_version":"2026-10-28.acacia","created":{},"livemode":false,"pending_webhooks":1,"request":{{"id":null,"idempotency_key":null}},"type":"charge.dispute.created","data":{{"object":{{"id":"dp_{intent}","object":"dispute","amount":{amount},"charge":"ch_{intent}","payment_intent":"{intent}","currency":"usd","status":"needs_response","reason":"fraudulent"}}}}}}"#,
        now()
    )
}

async fn deliver(gw: &Gw, body: &str) -> Resp {
    let sig = signature(WEBHOOK_SECRET, now(), body);
    gw.send(
        "POST",
        "/webhooks/stripe",
        None,
        Some(body),
        &[("stripe-signature", &sig)],
    )
    .await
}

/// An account with a recorded $10.00 checkout `session` (fee $0.50: $10.50 to pay).
async fn checkout(gw: &Gw, email: &str, session: &str) -> (String, String) {
    let (id, key) = gw.account(email).await;
    gw.state
        .ledger
        .record_checkout(&CheckoutRecord {
            session_id: session.to_owned(),
            account_id: id.clone(),
            credited: Nanos::from_cents(1000),
            fee: Nanos::from_cents(50),
            fee_basis_points: 500,
            created_at: "2026-11-30T00:00:00Z".to_owned(),
        })
        .await
        .expect("checkout");
    (id, key)
}

fn assert_books(view: &serde_json::Value, balance: &str) {
    assert_eq!(view["balance_usd"], balance, "{view}");
    assert_eq!(view["ledger_sum_usd"], view["balance_usd"], "{view}");
}

async fn a_paid_checkout_is_credited_once_however_often_it_is_delivered(backend: Backend) {
    let gw = Gw::start_on(backend, with_payments).await;
    let (id, key) = checkout(&gw, "pay@example.com", "cs_test_once").await;
    let body = completed("evt_once_1", "cs_test_once", "pi_once", 1050, true);
    let first = deliver(&gw, &body).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json()["replayed"], false);
    assert!(first.json()["outcome"]
        .as_str()
        .expect("outcome")
        .starts_with("credited 10.00"));
    // Stripe retries the same event (a new signature each time), twice at once too.
    let (a, b) = tokio::join!(deliver(&gw, &body), deliver(&gw, &body));
    for r in [a, b] {
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["replayed"], true);
    }
    // Another event of the same session (Stripe may send two Event objects).
    let other = deliver(
        &gw,
        &completed("evt_once_2", "cs_test_once", "pi_once", 1050, true),
    )
    .await;
    assert_eq!(other.status, 200);
    assert_eq!(
        other.json()["outcome"],
        "ignored: this checkout was already credited"
    );
    let view = gw.account_view(&id).await;
    assert_books(&view, "13.00");
    assert_eq!(view["topups_usd"], "10.00");
    assert_eq!(gw.credits(&key).await["balance_usd"], "13.00");
    // Every event is listed to operators with what it did.
    let events = gw.admin("GET", "/admin/v1/stripe/events", None).await;
    assert_eq!(events.status, 200, "{}", events.text());
    let data = events.json()["data"].as_array().expect("data").clone();
    assert_eq!(data.len(), 2, "{data:?}");
    let once = data
        .iter()
        .find(|e| e["event_id"] == "evt_once_1")
        .expect("evt_once_1");
    assert_eq!(once["amount_usd"], "10.00");
    assert_eq!(once["account_id"], id.as_str());
}

async fn forged_tampered_stale_or_unsigned_deliveries_change_nothing(backend: Backend) {
    let gw = Gw::start_on(backend, with_payments).await;
    let (id, _) = checkout(&gw, "forged@example.com", "cs_test_forged").await;
    let body = completed("evt_forged", "cs_test_forged", "pi_forged", 1050, true);
    let t = now();
    let cases = [
        // Signed with another secret.
        (signature("whsec_someone_else", t, &body), body.clone()),
        // Signed, then the body changed (a larger amount).
        (
            signature(WEBHOOK_SECRET, t, &body),
            body.replace("1050", "99999"),
        ),
        // A genuine signature replayed after the tolerance.
        (signature(WEBHOOK_SECRET, t - 600, &body), body.clone()),
        // The timestamp changed without the signature.
        (
            signature(WEBHOOK_SECRET, t, &body).replace(&format!("t={t}"), &format!("t={}", t + 1)),
            body.clone(),
        ),
        // No v1 signature at all.
        (format!("t={t}"), body.clone()),
    ];
    for (sig, b) in cases {
        let r = gw
            .send(
                "POST",
                "/webhooks/stripe",
                None,
                Some(&b),
                &[("stripe-signature", &sig)],
            )
            .await;
        assert_eq!(r.status, 400, "{sig}: {}", r.text());
        assert_eq!(r.error_code(), "invalid_signature");
    }
    let r = gw
        .send("POST", "/webhooks/stripe", None, Some(&body), &[])
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("Stripe-Signature header is missing"),
        "{}",
        r.text()
    );
    assert_books(&gw.account_view(&id).await, "3.00");
    let events = gw.admin("GET", "/admin/v1/stripe/events", None).await;
    assert_eq!(events.json()["data"].as_array().expect("data").len(), 0);
    // The genuine delivery still works afterwards.
    assert_eq!(deliver(&gw, &body).await.status, 200);
    assert_books(&gw.account_view(&id).await, "13.00");
}

async fn unknown_unpaid_and_mismatched_events_are_acknowledged_without_effect(backend: Backend) {
    let gw = Gw::start_on(backend, with_payments).await;
    let (id, _) = checkout(&gw, "odd@example.com", "cs_test_odd").await;
    let cases = [
        (
            completed("evt_odd_1", "cs_test_someone_elses", "pi_x", 1050, true),
            "ignored: not a checkout of this gateway",
        ),
        (
            completed("evt_odd_2", "cs_test_odd", "pi_odd", 1050, false),
            "ignored: not paid yet",
        ),
        (
            completed("evt_odd_3", "cs_test_odd", "pi_odd", 1000, true),
            "refused: paid 1000 usd cents, the checkout asked for 1050 usd cents",
        ),
        (
            r#"{"id":"evt_odd_4","object":"event","type":"customer.created","created":1,"data":{"object":{"id":"cus_1","object":"customer"}}}"#.to_owned(),
            "ignored: event type not used",
        ),
    ];
    for (body, outcome) in cases {
        let r = deliver(&gw, &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["outcome"], outcome);
    }
    assert_books(&gw.account_view(&id).await, "3.00");
    // A body that is not an event is a 400 (signed, but unreadable).
    let r = deliver(&gw, r#"{"object":"list"}"#).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "invalid_event");
    // The paid delivery credits once, after all of that.
    let r = deliver(
        &gw,
        &completed("evt_odd_5", "cs_test_odd", "pi_odd", 1050, true),
    )
    .await;
    assert!(r.json()["outcome"]
        .as_str()
        .expect("outcome")
        .starts_with("credited"));
    assert_books(&gw.account_view(&id).await, "13.00");
}

async fn refunds_and_disputes_take_credit_back_in_any_order_never_more_than_credited(
    backend: Backend,
) {
    let gw = Gw::start_on(backend, with_payments).await;
    // A partial refund of $4.00, then the refund of the rest ($10.50 in all), delivered
    // in reverse order, the first before the payment itself.
    let (id, _) = checkout(&gw, "refund@example.com", "cs_test_refund").await;
    let full = deliver(&gw, &refunded("evt_r_full", "pi_refund", 1050, 1050)).await;
    assert_eq!(full.status, 200);
    assert_eq!(
        full.json()["outcome"],
        "recorded: no payment with this payment intent yet"
    );
    assert_books(&gw.account_view(&id).await, "3.00");
    let paid = deliver(
        &gw,
        &completed("evt_r_paid", "cs_test_refund", "pi_refund", 1050, true),
    )
    .await;
    assert_eq!(
        paid.json()["outcome"],
        format!(
            "credited 10.00 ({}); took back 10.00",
            paid.json()["outcome"]
                .as_str()
                .expect("outcome")
                .split(['(', ')'])
                .nth(1)
                .expect("topup id")
        )
    );
    let partial = deliver(&gw, &refunded("evt_r_part", "pi_refund", 1050, 400)).await;
    assert_eq!(partial.json()["outcome"], "no change: already taken back");
    let view = gw.account_view(&id).await;
    assert_books(&view, "3.00");
    assert_eq!(view["topups_usd"], "10.00");
    assert_eq!(view["adjustments_usd"], "-10.00");

    // In order this time: $4.00 refunded, then a dispute of the remaining $6.50.
    let (id, _) = checkout(&gw, "dispute@example.com", "cs_test_dispute").await;
    deliver(
        &gw,
        &completed("evt_d_paid", "cs_test_dispute", "pi_dispute", 1050, true),
    )
    .await;
    let r = deliver(&gw, &refunded("evt_d_part", "pi_dispute", 1050, 400)).await;
    assert_eq!(r.json()["outcome"], "took back 4.00");
    assert_books(&gw.account_view(&id).await, "9.00");
    let r = deliver(&gw, &disputed("evt_d_disp", "pi_dispute", 650)).await;
    assert_eq!(r.json()["outcome"], "took back 6.00");
    assert_books(&gw.account_view(&id).await, "3.00");
    // The same dispute event again changes nothing.
    let r = deliver(&gw, &disputed("evt_d_disp", "pi_dispute", 650)).await;
    assert_eq!(r.json()["replayed"], true);
    assert_books(&gw.account_view(&id).await, "3.00");

    // A dispute Stripe sends in two Event objects is taken back once.
    let (id, _) = checkout(&gw, "twice@example.com", "cs_test_twice").await;
    deliver(
        &gw,
        &completed("evt_t_paid", "cs_test_twice", "pi_twice", 1050, true),
    )
    .await;
    let r = deliver(&gw, &disputed("evt_t_disp_1", "pi_twice", 300)).await;
    assert_eq!(r.json()["outcome"], "took back 3.00");
    let r = deliver(&gw, &disputed("evt_t_disp_2", "pi_twice", 300)).await;
    assert_eq!(r.json()["outcome"], "no change: already taken back");
    assert_books(&gw.account_view(&id).await, "10.00");
}

async fn a_refund_after_spending_leaves_the_balance_negative_and_blocks_requests(backend: Backend) {
    // No trial: the account's only credit is the card payment.
    let gw = Gw::start_on(backend, |c| {
        with_payments(c);
        c.billing.trial = Nanos::ZERO;
    })
    .await;
    let (id, key) = checkout(&gw, "spender@example.com", "cs_test_spend").await;
    deliver(
        &gw,
        &completed("evt_s_paid", "cs_test_spend", "pi_spend", 1050, true),
    )
    .await;
    let body = chat_body("openai/gpt-4o-mini", "spend a little", "");
    assert_eq!(gw.chat(&key, &body, &[]).await.status, 200);
    gw.state.ledger.flush().await;
    let spent = usd_to_nanos(
        gw.account_view(&id).await["spent_usd"]
            .as_str()
            .expect("spent"),
    );
    assert!(spent > 0);
    let r = deliver(&gw, &refunded("evt_s_refund", "pi_spend", 1050, 1050)).await;
    assert_eq!(r.json()["outcome"], "took back 10.00");
    let view = gw.account_view(&id).await;
    assert_eq!(view["ledger_sum_usd"], view["balance_usd"]);
    let balance = usd_to_nanos(view["balance_usd"].as_str().expect("balance"));
    // Below zero by what was spent, which is less than the refunded amount.
    assert_eq!(balance, -spent);
    assert!(-balance < 10 * 1_000_000_000);
    let r = gw.chat(&key, &body, &[]).await;
    assert_eq!(r.status, 402, "{}", r.text());
    // Settled by an operator's grant, with its reason.
    let g = gw
        .admin(
            "POST",
            &format!("/admin/v1/accounts/{id}/grants"),
            Some(r#"{"amount_usd":"5.00","reason":"goodwill after the refund"}"#),
        )
        .await;
    assert_eq!(g.status, 201, "{}", g.text());
    assert_eq!(g.json()["reason"], "goodwill after the refund");
    assert_eq!(gw.chat(&key, &body, &[]).await.status, 200);
}

async fn operators_grant_credit_with_a_reason_once_per_idempotency_key(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let (id, key) = gw.account("grant@example.com").await;
    let path = format!("/admin/v1/accounts/{id}/grants");
    let body = r#"{"amount_usd":"2.50","reason":"support ticket 42"}"#;
    let send = || async {
        gw.send(
            "POST",
            &path,
            Some(ADMIN),
            Some(body),
            &[("idempotency-key", "grant-42")],
        )
        .await
    };
    let a = send().await;
    assert_eq!(a.status, 201, "{}", a.text());
    let b = send().await;
    assert_eq!(b.status, 201);
    assert_eq!(a.json()["id"], b.json()["id"]);
    let view = gw.account_view(&id).await;
    assert_books(&view, "5.50");
    assert_eq!(view["adjustments_usd"], "2.50");
    assert_eq!(gw.credits(&key).await["adjustments_usd"], "2.50");
    // The same key with another reason is a conflict; nothing is granted.
    let c = gw
        .send(
            "POST",
            &path,
            Some(ADMIN),
            Some(r#"{"amount_usd":"2.50","reason":"another"}"#),
            &[("idempotency-key", "grant-42")],
        )
        .await;
    assert_eq!(c.status, 409, "{}", c.text());
    for (bad, param) in [
        (r#"{"amount_usd":"0.00","reason":"x"}"#, "amount_usd"),
        (r#"{"amount_usd":"-1.00","reason":"x"}"#, "amount_usd"),
        (r#"{"amount_usd":"1.001","reason":"x"}"#, "amount_usd"),
        (r#"{"amount_usd":"1.00","reason":"  "}"#, "reason"),
    ] {
        let r = gw.admin("POST", &path, Some(bad)).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert_eq!(r.json()["error"]["param"], param, "{bad}");
    }
    let r = gw
        .admin("POST", "/admin/v1/accounts/acct_nobody/grants", Some(body))
        .await;
    assert_eq!(r.status, 404);
    // Customers cannot grant themselves credit.
    let r = gw.send("POST", &path, Some(&key), Some(body), &[]).await;
    assert_eq!(r.status, 401);
    assert_books(&gw.account_view(&id).await, "5.50");
}

#[tokio::test]
async fn without_stripe_configured_checkout_is_501_and_the_webhook_404() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("nostripe@example.com").await;
    let r = gw
        .send(
            "POST",
            "/v1/credits/checkout",
            Some(&key),
            Some(r#"{"amount_usd":"10.00"}"#),
            &[],
        )
        .await;
    assert_eq!(r.status, 501, "{}", r.text());
    assert_eq!(r.error_code(), "payments_not_configured");
    let body = completed("evt_n", "cs_n", "pi_n", 1050, true);
    assert_eq!(deliver(&gw, &body).await.status, 404);
}

/// A gateway with card top-ups against the simulated Stripe, which delivers its events
/// to the gateway's webhook.
pub(crate) async fn with_stripe(backend: Backend) -> (Gw, simulators::StripeSim) {
    let sim = simulators::start_stripe(simulators::StripeSimConfig::new(
        "sk_test_gammainfra_sim",
        WEBHOOK_SECRET,
    ))
    .await
    .expect("stripe sim");
    let api_base = sim.base_url();
    let gw = Gw::start_on(backend, |c| {
        with_payments(c);
        if let Some(p) = c.payments.as_mut() {
            p.secret_key = gammainfra::config::Secret::new("sk_test_gammainfra_sim");
            p.api_base = api_base;
        }
        c.public_url = Some("https://gateway.example.com".to_owned());
    })
    .await;
    sim.set_webhook_url(format!("{}/webhooks/stripe", gw.url));
    (gw, sim)
}

async fn start_checkout(gw: &Gw, key: &str, amount: &str, idem: Option<&str>) -> Resp {
    let body = format!(r#"{{"amount_usd":"{amount}"}}"#);
    let headers: Vec<(&str, &str)> = idem.map(|k| ("idempotency-key", k)).into_iter().collect();
    gw.send(
        "POST",
        "/v1/credits/checkout",
        Some(key),
        Some(&body),
        &headers,
    )
    .await
}

/// Waits until every event of the simulated Stripe was delivered successfully `times`
/// times in all.
pub(crate) async fn delivered(sim: &simulators::StripeSim, times: usize) {
    let ok = sim
        .wait_deliveries(std::time::Duration::from_secs(20), |log| {
            log.iter().filter(|d| d.outcome.is_success()).count() >= times
        })
        .await;
    assert!(ok, "{:?}", sim.deliveries());
}

async fn a_card_top_up_through_checkout_is_credited_exactly_once(backend: Backend) {
    let (gw, sim) = with_stripe(backend).await;
    let (id, key) = gw.account("card@example.com").await;
    let r = start_checkout(&gw, &key, "10.00", Some("order-1")).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    // 5% from 2026-06-24 (3% before): the fee is shown before paying.
    assert_eq!(v["credit_usd"], "10.00");
    assert_eq!(v["fee_usd"], "0.50");
    assert_eq!(v["total_usd"], "10.50");
    let session = v["id"].as_str().expect("id").to_owned();
    assert!(v["url"]
        .as_str()
        .expect("url")
        .ends_with(&format!("/pay/{session}")));
    // Stripe was asked for the credit and the fee as two line items, in cents, and
    // will send the customer back to the gateway's public URL.
    let sent = sim
        .requests()
        .into_iter()
        .find(|q| q.path == "/v1/checkout/sessions" && q.method == "POST")
        .expect("session created");
    let form = String::from_utf8_lossy(&sent.body).into_owned();
    for part in [
        "line_items%5B0%5D%5Bprice_data%5D%5Bunit_amount%5D=1000",
        "line_items%5B1%5D%5Bprice_data%5D%5Bunit_amount%5D=50",
        "mode=payment",
        "success_url=https%3A%2F%2Fgateway.example.com%2Fpayments%2Fdone%3Fsession_id%3D%7BCHECKOUT_SESSION_ID%7D",
    ] {
        assert!(form.contains(part), "{part} in {form}");
    }
    assert_eq!(
        sim.session(&session).expect("session")["amount_total"],
        1050
    );
    // A retry with the same Idempotency-Key is the same session.
    let again = start_checkout(&gw, &key, "10.00", Some("order-1")).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.json()["id"], session.as_str());
    // Nothing is credited before the payment.
    assert_books(&gw.account_view(&id).await, "3.00");
    // Paid; Stripe delivers the event twice.
    sim.set_delivery(simulators::DeliveryMode::Duplicate);
    sim.pay(&session).expect("paid");
    delivered(&sim, 2).await;
    let view = gw.account_view(&id).await;
    assert_books(&view, "13.00");
    assert_eq!(view["topups_usd"], "10.00");
    // And once more by hand, as from the Dashboard.
    let event = sim.events()[0]["id"].as_str().expect("event id").to_owned();
    sim.set_delivery(simulators::DeliveryMode::Immediate);
    sim.redeliver(&event).expect("redeliver");
    delivered(&sim, 3).await;
    assert_books(&gw.account_view(&id).await, "13.00");
    // Refused before Stripe is called: below the minimum, not whole cents, no key.
    for amount in ["5.00", "10.001"] {
        let r = start_checkout(&gw, &key, amount, None).await;
        assert_eq!(r.status, 400, "{amount}: {}", r.text());
        assert_eq!(r.error_code(), "invalid_amount");
    }
    let r = gw
        .send(
            "POST",
            "/v1/credits/checkout",
            None,
            Some(r#"{"amount_usd":"10.00"}"#),
            &[],
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        sim.requests()
            .iter()
            .filter(|q| q.path == "/v1/checkout/sessions")
            .count(),
        2
    );
}

async fn a_payment_and_its_refunds_delivered_in_reverse_leave_exact_books(backend: Backend) {
    let (gw, sim) = with_stripe(backend).await;
    let (id, key) = gw.account("reverse@example.com").await;
    let r = start_checkout(&gw, &key, "10.00", None).await;
    let session = r.json()["id"].as_str().expect("id").to_owned();
    sim.set_delivery(simulators::DeliveryMode::Held);
    sim.pay(&session).expect("paid");
    sim.refund(&session, Some(400)).expect("partial refund");
    sim.refund(&session, None).expect("the rest");
    // Delivered last event first: the full refund, the partial one, then the payment.
    assert_eq!(sim.release_held_in_reverse(), 3);
    delivered(&sim, 3).await;
    let view = gw.account_view(&id).await;
    assert_books(&view, "3.00");
    assert_eq!(view["topups_usd"], "10.00");
    assert_eq!(view["adjustments_usd"], "-10.00");
    let events = gw
        .admin("GET", "/admin/v1/stripe/events", None)
        .await
        .json();
    let outcomes: Vec<String> = events["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["outcome"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .any(|o| o.starts_with("credited 10.00") && o.ends_with("took back 10.00")),
        "{outcomes:?}"
    );
}

on_both_backends!(
    a_card_top_up_through_checkout_is_credited_exactly_once,
    a_payment_and_its_refunds_delivered_in_reverse_leave_exact_books,
    a_paid_checkout_is_credited_once_however_often_it_is_delivered,
    forged_tampered_stale_or_unsigned_deliveries_change_nothing,
    unknown_unpaid_and_mismatched_events_are_acknowledged_without_effect,
    refunds_and_disputes_take_credit_back_in_any_order_never_more_than_credited,
    a_refund_after_spending_leaves_the_balance_negative_and_blocks_requests,
    operators_grant_credit_with_a_reason_once_per_idempotency_key,
);

/// `gammainfra grants create` and `gammainfra stripe events` through the admin API.
#[tokio::test]
async fn the_cli_grants_credit_and_lists_stripe_events() {
    let gw = Gw::start_with(with_payments).await;
    let (id, _) = checkout(&gw, "cli-grant@example.com", "cs_test_cli").await;
    deliver(
        &gw,
        &completed("evt_cli_paid", "cs_test_cli", "pi_cli", 1050, true),
    )
    .await;
    let run = |args: Vec<String>| {
        let url = gw.url.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_gammainfra"))
                .args(&args)
                .env("GAMMAINFRA_URL", url)
                .env("GAMMAINFRA_ADMIN_TOKEN", ADMIN)
                .kill_on_drop(true)
                .output()
                .await
                .expect("run")
        }
    };
    let grant = |key: &str| {
        [
            "grants",
            "create",
            "--account",
            &id,
            "--amount",
            "1.25",
            "--reason",
            "credit for an outage",
            "--idempotency-key",
            key,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let a = run(grant("cli-grant-1")).await;
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let b = run(grant("cli-grant-1")).await;
    assert_eq!(a.stdout, b.stdout, "the same key answers the first grant");
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).expect("json");
    assert_eq!(v["reason"], "credit for an outage");
    assert_books(&gw.account_view(&id).await, "14.25");
    let e = run(["stripe", "events", "--limit", "10"]
        .map(str::to_owned)
        .to_vec())
    .await;
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    let v: serde_json::Value = serde_json::from_slice(&e.stdout).expect("json");
    assert_eq!(v["data"][0]["event_id"], "evt_cli_paid");
}

/// Without `GAMMAINFRA_PUBLIC_URL`, Stripe sends the customer back to the host the
/// checkout request was sent to.
#[tokio::test]
async fn without_a_public_url_the_return_pages_are_on_the_requests_host() {
    let sim = simulators::start_stripe(simulators::StripeSimConfig::new(
        "sk_test_gammainfra_sim",
        WEBHOOK_SECRET,
    ))
    .await
    .expect("stripe sim");
    let api_base = sim.base_url();
    let gw = Gw::start_with(|c| {
        with_payments(c);
        if let Some(p) = c.payments.as_mut() {
            p.secret_key = gammainfra::config::Secret::new("sk_test_gammainfra_sim");
            p.api_base = api_base;
        }
    })
    .await;
    let (_, key) = gw.account("host@example.com").await;
    let r = start_checkout(&gw, &key, "10.00", None).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let session = sim
        .session(r.json()["id"].as_str().expect("id"))
        .expect("session");
    let host = gw.url.trim_start_matches("http://");
    assert_eq!(
        session["success_url"],
        format!("http://{host}/payments/done?session_id={{CHECKOUT_SESSION_ID}}")
    );
    assert_eq!(
        session["cancel_url"],
        format!("http://{host}/payments/cancelled")
    );
}
