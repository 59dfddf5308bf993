//! Several gateway replicas sharing one PostgreSQL ledger: credit leases keep every
//! account exact (docs/scaling.md). These tests need `GAMMAINFRA_TEST_POSTGRES_URL`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gammainfra::ledger::Store;
use gammainfra::money::Nanos;

use crate::harness::*;

/// Short leases and idle returns, so that the tests see them close.
fn quick_leases(c: &mut gammainfra::config::Config) {
    c.billing.lease_ttl = Duration::from_millis(1_500);
    c.billing.lease_idle = Duration::from_millis(200);
}

/// Waits until `key` authenticates on `gw` (another replica's new key arrives by
/// PostgreSQL notification).
async fn wait_for_key(gw: &Gw, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.state.ledger.authenticate(key).is_none() {
        assert!(
            Instant::now() < deadline,
            "the key never reached the replica"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until no lease is open on the database.
async fn wait_no_open_leases(store: &Store, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let open = store.open_leases().await.expect("leases");
        if open == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{open} leases still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two replicas behind one account with a $3.00 balance, hammered from both sides,
/// never serve more than $3.00 in total; the books are exact afterwards and every
/// lease is closed once the replicas are idle.
#[tokio::test]
async fn two_replicas_never_serve_more_than_the_balance() {
    let Some(_) = Backend::postgres() else { return };
    let a = Arc::new(Gw::start_on(Backend::Postgres, quick_leases).await);
    let b = Arc::new(Gw::start_replica(a.database_url(), quick_leases).await);
    let (id, key) = a.account("two-replicas@example.com").await;
    wait_for_key(&b, &key).await;
    // ~5,000 words in and out at Opus prices: about $0.15 per request, and a worst
    // case near $0.30 reserved, so $3.00 serves about twenty of the sixty.
    let words = "word ".repeat(5_000);
    let body = chat_body(
        "claude-opus-4-5",
        &format!("{words}[[sim:slow 100]]"),
        r#""max_tokens":6000"#,
    );
    let mut tasks = Vec::new();
    for i in 0..60 {
        let gw = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (key, body) = (key.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let r = gw.chat(&key, &body, &[]).await;
            match r.status {
                200 => Some((
                    r.header("x-gammainfra-request-id")
                        .expect("request id")
                        .to_owned(),
                    usd_to_nanos(r.header("x-gammainfra-cost-usd").expect("cost")),
                )),
                402 => None,
                s => panic!("unexpected {s}: {}", r.text()),
            }
        }));
    }
    let mut served = Vec::new();
    for t in tasks {
        if let Some(x) = t.await.expect("task") {
            served.push(x);
        }
    }
    let total: i128 = served.iter().map(|(_, c)| c).sum();
    assert!(served.len() >= 5, "some were served: {}", served.len());
    assert!(served.len() < 60, "the balance ran out");
    assert!(
        total <= 3_000_000_000,
        "served ${total} nano-dollars of $3.00"
    );
    let store = a.state.ledger.store().clone();
    a.state.ledger.flush().await;
    b.state.ledger.flush().await;
    let sum = store.ledger_sum(&id).await.expect("sum");
    assert_eq!(i128::from(sum.nanos()), 3_000_000_000 - total);
    assert!(sum >= Nanos::ZERO);
    assert_eq!(
        store.ledger_count(&id).await.expect("count"),
        1 + served.len() as i64,
        "one entry per served request, and the trial"
    );
    let credit = store.account_credit(&id).await.expect("credit");
    assert_eq!(
        credit.balance, sum,
        "the leased-from balance follows the ledger"
    );
    // Idle replicas hand their leases back.
    wait_no_open_leases(&store, Duration::from_secs(10)).await;
    assert_eq!(
        store.account_credit(&id).await.expect("c").leased,
        Nanos::ZERO
    );
    // Each replica answers the account's balance from the database.
    let view = b.credits(&key).await;
    assert_eq!(
        usd_to_nanos(view["balance_usd"].as_str().expect("balance")),
        3_000_000_000 - total
    );
}

/// A replica that dies holding a lease: once the lease expires another replica closes
/// it and the credit is the account's again.
#[tokio::test]
async fn a_dead_replicas_lease_expires_and_its_credit_returns() {
    let Some(_) = Backend::postgres() else { return };
    let gw = Gw::start_on(Backend::Postgres, quick_leases).await;
    let (id, key) = gw.account("dead-replica@example.com").await;
    // A replica that takes a lease on the account and is never heard of again.
    let ghost = Store::open_replica(gw.database_url(), Some("ghost"))
        .await
        .expect("ghost");
    let g = ghost
        .lease_grant(
            "lease_ghost",
            &id,
            Nanos::from_cents(250),
            Nanos::from_cents(500),
            1_500,
        )
        .await
        .expect("grant");
    assert_eq!(g.granted, Nanos::from_cents(250));
    assert_eq!(g.available, Nanos::from_cents(50));
    // Only $0.50 is left to lease: a request that may cost more is refused...
    let body = chat_body("gpt-4o-mini", "hello", r#""max_tokens":10"#);
    let big = chat_body("claude-opus-4-5", "hello", r#""max_tokens":40000"#);
    let r = gw.chat(&key, &big, &[]).await;
    assert_eq!(r.status, 402, "{}", r.text());
    assert!(gw.chat(&key, &body, &[]).await.status == 200);
    drop(ghost);
    // ...until the ghost's lease expires and the gateway's heartbeat closes it.
    let store = gw.state.ledger.store().clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = gw.chat(&key, &big, &[]).await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 402, "{}", r.text());
        assert!(
            Instant::now() < deadline,
            "the expired lease was never closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_no_open_leases(&store, Duration::from_secs(10)).await;
    gw.state.ledger.flush().await;
    let credit = store.account_credit(&id).await.expect("credit");
    assert_eq!(credit.leased, Nanos::ZERO);
    assert_eq!(credit.balance, store.ledger_sum(&id).await.expect("sum"));
}

/// A replica restarted under the same ID closes what its previous run left open at
/// once, without waiting for the leases to expire.
#[tokio::test]
async fn a_replica_restarted_under_its_id_closes_its_old_leases_at_once() {
    let Some(_) = Backend::postgres() else { return };
    let gw = Gw::start_on(Backend::Postgres, |_| {}).await;
    let (id, _) = gw.account("restart@example.com").await;
    let old = Store::open_replica(gw.database_url(), Some("r7"))
        .await
        .expect("first run");
    old.lease_grant(
        "lease_r7",
        &id,
        Nanos::from_cents(100),
        Nanos::ZERO,
        600_000,
    )
    .await
    .expect("grant");
    // The same ID cannot run twice.
    let twice = Store::open_replica(gw.database_url(), Some("r7")).await;
    assert!(twice.is_err());
    old.close().await;
    drop(old);
    let store = gw.state.ledger.store().clone();
    assert_eq!(store.open_leases().await.expect("open"), 1);
    let again = Gw::start_replica(gw.database_url(), |c| {
        c.replica_id = Some("r7".into());
    })
    .await;
    assert_eq!(
        store.open_leases().await.expect("open"),
        0,
        "closed at start"
    );
    let credit = store.account_credit(&id).await.expect("credit");
    assert_eq!(credit.leased, Nanos::ZERO);
    assert_eq!(credit.balance, Nanos::from_cents(300));
    drop(again);
}

/// A key created, limited or revoked on one replica is in force on the others.
#[tokio::test]
async fn admin_changes_on_one_replica_reach_the_others() {
    let Some(_) = Backend::postgres() else { return };
    let a = Gw::start_on(Backend::Postgres, |_| {}).await;
    let b = Gw::start_replica(a.database_url(), |_| {}).await;
    let (id, key) = a.account("changes@example.com").await;
    wait_for_key(&b, &key).await;
    let body = chat_body("gpt-4o-mini", "hello", r#""max_tokens":10"#);
    assert_eq!(b.chat(&key, &body, &[]).await.status, 200);
    // A residency policy set on A holds on B.
    let r = a
        .admin(
            "PATCH",
            &format!("/admin/v1/accounts/{id}"),
            Some(r#"{"residency":"eu"}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = b.chat(&key, &body, &[]).await;
        if r.status == 400 {
            assert_eq!(r.error_code(), "no_endpoint_in_region");
            assert!(r.text().contains("the account's residency policy `eu`"));
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            Instant::now() < deadline,
            "the policy never reached B: {} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A key revoked on A stops working on B.
    let key_id = b.state.ledger.authenticate(&key).expect("key").key_id;
    let r = a
        .admin("DELETE", &format!("/admin/v1/keys/{key_id}"), None)
        .await;
    assert!(r.status == 200 || r.status == 204, "{}", r.text());
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.state.ledger.authenticate(&key).is_some() {
        assert!(Instant::now() < deadline, "the revocation never reached B");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(b.chat(&key, &body, &[]).await.status, 401);
}
