//! Trial, top-ups, fees, and the ledger under concurrency.

use crate::harness::*;

async fn trial_is_granted_once_per_email(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let r = gw
        .admin(
            "POST",
            "/admin/v1/accounts",
            Some(r#"{"email":"Trial@Example.com "}"#),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    assert_eq!(v["balance_usd"], "3.00");
    assert_eq!(v["email"], "trial@example.com");
    assert!(v["api_key"].as_str().is_some_and(|k| k.len() >= 40));
    let id = v["id"].as_str().expect("id").to_owned();
    // Same email, other case and spacing: 409 and no second credit.
    let again = gw
        .admin(
            "POST",
            "/admin/v1/accounts",
            Some(r#"{"email":"  TRIAL@example.COM"}"#),
        )
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(again.error_code(), "account_exists");
    let view = gw.account_view(&id).await;
    assert_eq!(view["balance_usd"], "3.00");
    assert_eq!(view["ledger_sum_usd"], "3.00");
    assert_eq!(view["ledger_entries"], 1);
}

async fn topup_fee_and_minimum_are_exact(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let (id, key) = gw.account("topup@example.com").await;
    let path = format!("/admin/v1/accounts/{id}/topups");
    let r = gw
        .admin("POST", &path, Some(r#"{"amount_usd":"10.00"}"#))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    assert_eq!(v["credited_usd"], "10.00");
    assert_eq!(v["fee_usd"], "0.50");
    assert_eq!(v["charged_usd"], "10.50");
    assert_eq!(v["balance_usd"], "13.00");
    // Half-up to the cent: 5% of $10.10 is 50.5 cents.
    let r = gw
        .admin("POST", &path, Some(r#"{"amount_usd":"10.10"}"#))
        .await;
    assert_eq!(r.json()["fee_usd"], "0.51");
    for bad in [
        r#"{"amount_usd":"9.99"}"#,
        r#"{"amount_usd":"10.001"}"#,
        r#"{"amount_usd":10}"#,
        r#"{"amount_usd":"-10.00"}"#,
        r#"{"amount_usd":"ten"}"#,
    ] {
        let r = gw.admin("POST", &path, Some(bad)).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert_eq!(r.error_code(), "invalid_amount", "{bad}");
    }
    let c = gw.credits(&key).await;
    assert_eq!(c["balance_usd"], "23.10");
    assert_eq!(c["topups_usd"], "20.10");
    assert_eq!(c["trial_usd"], "3.00");
    let missing = gw
        .admin(
            "POST",
            "/admin/v1/accounts/acct_nope/topups",
            Some(r#"{"amount_usd":"10.00"}"#),
        )
        .await;
    assert_eq!(missing.status, 404);
}

async fn topup_amounts_beyond_the_ledger_are_400_and_change_nothing(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let (id, _key) = gw.account("huge@example.com").await;
    let path = format!("/admin/v1/accounts/{id}/topups");
    // The first wrapped to a small positive amount in a release build (its cents fit an
    // i64, its nano-dollars do not) and passed the $1,000,000 check.
    for bad in [
        "306068378232941.38",
        "9223372036.86",
        "99999999999999999999999",
        "9223372036.85",
        "1000000.01",
    ] {
        let r = gw
            .admin("POST", &path, Some(&format!(r#"{{"amount_usd":"{bad}"}}"#)))
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert_eq!(r.error_code(), "invalid_amount", "{bad}");
        let v = r.json();
        assert_eq!(v["error"]["param"], "amount_usd", "{bad}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{bad}");
        let m = v["error"]["message"].as_str().unwrap_or_default();
        assert!(m.contains("maximum single top-up"), "{bad}: {m}");
    }
    let view = gw.account_view(&id).await;
    assert_eq!(view["balance_usd"], "3.00");
    assert_eq!(view["ledger_sum_usd"], "3.00");
    assert_eq!(view["ledger_entries"], 1);
}

async fn a_topup_that_would_take_the_balance_out_of_range_is_400(backend: Backend) {
    // A trial credit at the very top of the ledger's range: any top-up would overflow it.
    let gw = Gw::start_on(backend, |c| {
        c.billing.trial = gammainfra::money::Nanos::parse_cents("9223372036.85").expect("in range");
    })
    .await;
    let (id, _key) = gw.account("rich@example.com").await;
    let r = gw
        .admin(
            "POST",
            &format!("/admin/v1/accounts/{id}/topups"),
            Some(r#"{"amount_usd":"10.00"}"#),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "invalid_amount");
    assert_eq!(r.json()["error"]["param"], "amount_usd");
    let view = gw.account_view(&id).await;
    assert_eq!(view["balance_usd"], "9223372036.85");
    assert_eq!(view["ledger_sum_usd"], "9223372036.85");
    assert_eq!(view["ledger_entries"], 1);
}

async fn two_hundred_concurrent_requests_keep_balance_equal_to_ledger_and_never_negative(
    backend: Backend,
) {
    let gw = std::sync::Arc::new(Gw::start_on(backend, |_| {}).await);
    let (id, key) = gw.account("concurrent@example.com").await;
    // Each request reserves its worst case (~$0.05 at Opus output prices for 2,000
    // tokens), so the $3.00 trial cannot hold all 200 at once: some must get 402. Each
    // is held upstream long enough for the 200 to overlap on either backend (on
    // PostgreSQL, a request that finds the lease short waits for a grant).
    let body = chat_body(
        "claude-opus-4-5",
        "hello [[sim:slow 500]]",
        r#""max_tokens":2000"#,
    );
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let gw = gw.clone();
        let key = key.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let r = gw.chat(&key, &body, &[]).await;
            let cost = if r.status == 200 {
                usd_to_nanos(r.header("x-gammainfra-cost-usd").expect("cost"))
            } else {
                0
            };
            (r.status, cost)
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    let mut total_cost = 0i128;
    for t in tasks {
        let (status, cost) = t.await.expect("task");
        match status {
            200 => ok += 1,
            402 => refused += 1,
            s => panic!("unexpected status {s}"),
        }
        total_cost += cost;
    }
    assert_eq!(ok + refused, 200);
    assert!(ok > 0, "some requests were served");
    assert!(refused > 0, "the reservation limit was reached");
    let view = gw.account_view(&id).await;
    let balance = usd_to_nanos(view["balance_usd"].as_str().expect("b"));
    assert!(balance >= 0);
    assert_eq!(view["ledger_sum_usd"], view["balance_usd"]);
    assert_eq!(view["reserved_usd"], "0.00");
    assert_eq!(balance, 3_000_000_000 - total_cost);
    assert_eq!(view["ledger_entries"].as_i64(), Some(1 + ok));
}

async fn insufficient_credits_is_402_and_changes_nothing(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let (id, key) = gw.account("poor@example.com").await;
    // Opus at its full output cap costs more than the $3.00 trial.
    let r = gw
        .chat(
            &key,
            &chat_body("anthropic/claude-opus-4-7", "hi", r#""max_tokens":128000"#),
            &[],
        )
        .await;
    assert_eq!(r.status, 402, "{}", r.text());
    assert_eq!(r.error_code(), "insufficient_credits");
    let view = gw.account_view(&id).await;
    assert_eq!(view["balance_usd"], "3.00");
    assert_eq!(view["ledger_entries"], 1);
    assert!(
        gw.anthropic.requests().is_empty(),
        "nothing was sent upstream"
    );
}

on_both_backends!(
    trial_is_granted_once_per_email,
    topup_fee_and_minimum_are_exact,
    topup_amounts_beyond_the_ledger_are_400_and_change_nothing,
    a_topup_that_would_take_the_balance_out_of_range_is_400,
    two_hundred_concurrent_requests_keep_balance_equal_to_ledger_and_never_negative,
    insufficient_credits_is_402_and_changes_nothing,
);
