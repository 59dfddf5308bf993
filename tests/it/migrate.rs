//! `gammainfra db migrate-to`: an SQLite deployment's whole database copied into
//! PostgreSQL, every row as it was, and a gateway on PostgreSQL carrying on from it.

use std::collections::BTreeMap;
use std::time::Duration;

use gammainfra::catalog::Catalog;
use gammainfra::config::Billing;
use gammainfra::ledger::migrate::{migrate_to, MigrateError, TABLES};
use gammainfra::ledger::{Ledger, Store, UsageEntry, UsageFilter, UsageOrder, UsageStatus};
use gammainfra::money::Nanos;
use sqlx::Row;

use crate::harness::*;

async fn topup(gw: &Gw, account: &str, usd: &str, idempotency_key: &str) -> Resp {
    let r = gw
        .send(
            "POST",
            &format!("/admin/v1/accounts/{account}/topups"),
            Some(ADMIN),
            Some(&format!(r#"{{"amount_usd":"{usd}"}}"#)),
            &[("idempotency-key", idempotency_key)],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r
}

/// Every row of `table`, each value as text (`NULL`, `i:…` or `s:…`), sorted: the
/// columns are the SQLite table's, so that a column only PostgreSQL has is left out.
type Rows = Vec<Vec<String>>;

async fn sqlite_columns(db: &sqlx::SqlitePool, table: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT name FROM pragma_table_info($1) ORDER BY cid")
        .bind(table)
        .fetch_all(db)
        .await
        .expect("columns")
}

macro_rules! dump {
    ($db:expr, $table:expr, $columns:expr) => {{
        let rows = sqlx::query(&format!("SELECT {} FROM {}", $columns.join(", "), $table))
            .fetch_all($db)
            .await
            .expect("rows");
        let mut out: Rows = rows
            .iter()
            .map(|r| {
                (0..$columns.len())
                    .map(|i| match r.try_get::<Option<i64>, _>(i) {
                        Ok(Some(v)) => format!("i:{v}"),
                        Ok(None) => "NULL".to_owned(),
                        Err(_) => format!("s:{}", r.get::<String, _>(i)),
                    })
                    .collect()
            })
            .collect();
        out.sort();
        out
    }};
}

/// Every copied table of the SQLite database at `url`, and its columns.
async fn sqlite_tables(url: &str) -> BTreeMap<&'static str, (Vec<String>, Rows)> {
    let db = sqlx::SqlitePool::connect(url).await.expect("sqlite");
    let mut out = BTreeMap::new();
    for table in TABLES {
        let columns = sqlite_columns(&db, table).await;
        let rows = dump!(&db, table, columns);
        out.insert(table, (columns, rows));
    }
    db.close().await;
    out
}

async fn postgres_rows(url: &str, table: &str, columns: &[String]) -> Rows {
    let db = sqlx::PgPool::connect(url).await.expect("postgres");
    let rows = dump!(&db, table, columns);
    db.close().await;
    rows
}

/// A usage charge for the bulk of the ledger (more entries than one INSERT takes).
fn bulk_usage(account: &str, key: &str, n: usize) -> UsageEntry {
    UsageEntry {
        account_id: account.into(),
        key_id: key.into(),
        request_id: format!("req_bulk_{n}"),
        model: "openai/gpt-4o-mini".into(),
        endpoint: "openai:gpt-4o-mini".into(),
        provider: "openai".into(),
        upstream_model: "gpt-4o-mini".into(),
        upstream_request_id: (!n.is_multiple_of(3)).then(|| format!("chatcmpl-{n}")),
        region: "us".into(),
        status: if n.is_multiple_of(7) {
            UsageStatus::ClientDisconnected
        } else {
            UsageStatus::Completed
        },
        charged: Nanos::from_nanos(1_234 + n as i64),
        input_tokens: 10 + n as u64,
        output_tokens: 3,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        note: (n.is_multiple_of(5)).then(|| "bulk".to_owned()),
        at: format!("2026-11-{:02}T10:00:{:02}Z", 1 + n % 28, n % 60),
        lease_id: None,
    }
}

const BULK: usize = 4_500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqlite_ledger_moves_to_postgres_exactly() {
    if postgres_url().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = format!("sqlite://{}", dir.path().join("one.db").display());

    // An SQLite deployment with some history, made through its gateway.
    let u = sqlite.clone();
    let gw = Gw::start_with(move |c| c.database_url = u).await;
    let (alice, alice_key) = gw.account("alice@example.com").await;
    let r = gw
        .admin(
            "POST",
            "/admin/v1/accounts",
            Some(r#"{"email":"eva@example.com","residency":"eu"}"#),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let eva = r.json()["id"].as_str().expect("id").to_owned();
    let eva_key = r.json()["api_key"].as_str().expect("key").to_owned();
    let r = gw
        .admin(
            "POST",
            "/admin/v1/accounts",
            Some(r#"{"email":"carol@example.com"}"#),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let carol = r.json()["id"].as_str().expect("id").to_owned();
    let carol_key = r.json()["api_key"].as_str().expect("key").to_owned();
    let carol_key_id = r.json()["key_id"].as_str().expect("key id").to_owned();
    let (capped_id, capped) = gw.key_with(&alice,
        r#"{"name":"capped","residency":"us","limits":{"total_usd":"5.00","daily_usd":"1.00","monthly_usd":"3.00","requests_per_minute":50,"tokens_per_minute":100000}}"#,
    )
    .await;
    let (revoked_id, revoked) = gw.key_with(&alice, r#"{"name":"old"}"#).await;
    let r = gw
        .admin("DELETE", &format!("/admin/v1/keys/{revoked_id}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = gw
        .admin(
            "PATCH",
            &format!("/admin/v1/accounts/{carol}"),
            Some(r#"{"limits":{"requests_per_minute":600}}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let first_topup = topup(&gw, &alice, "10.00", "idem-alice-1").await.json();
    assert_eq!(
        topup(&gw, &alice, "10.00", "idem-alice-1").await.json(),
        first_topup,
        "a retry credits once"
    );
    topup(&gw, &eva, "25.00", "idem-eva-1").await;
    // A console customer: password, verified email and trial, a session, the outbox.
    let mut browser = crate::console::Browser::new(&gw);
    browser.sign_up("dana@example.com").await;
    let verify = crate::console::link(&gw, "dana@example.com", "verify?token=").await;
    assert_eq!(browser.get(&verify).await.status, 200);
    let r = browser
        .log_in("dana@example.com", crate::console::PASSWORD)
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let dana = gw
        .state
        .ledger
        .store()
        .login_row("dana@example.com")
        .await
        .expect("store")
        .expect("dana")
        .account_id;
    for (key, model) in [
        (&alice_key, "openai/gpt-4o-mini"),
        (&alice_key, "openai/gpt-4o-mini"),
        (&capped, "anthropic/claude-sonnet-4-6"),
    ] {
        let r = gw
            .chat(key, &chat_body(model, "hello", r#""max_tokens":20"#), &[])
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(
        gw.chat(&revoked, &chat_body("openai/gpt-4o-mini", "hi", ""), &[])
            .await
            .status,
        401
    );
    gw.state.ledger.flush().await;
    gw.stop(&sqlite).await;
    // Enough entries that the ledger takes more than one INSERT.
    let store = Store::open(&sqlite).await.expect("sqlite store");
    let bulk: Vec<_> = (0..BULK)
        .map(|n| bulk_usage(&carol, &carol_key_id, n))
        .collect();
    store.append_usage(&bulk).await.expect("bulk usage");
    let accounts = [alice.clone(), eva.clone(), carol.clone(), dana.clone()];
    let mut expected = BTreeMap::new();
    for a in &accounts {
        expected.insert(
            a.clone(),
            (
                store.ledger_sum(a).await.expect("sum"),
                store.ledger_count(a).await.expect("count"),
            ),
        );
    }
    // 2 chat charges on top of the trial and the top-up; eva's trial and top-up; 4,500
    // charges on carol's trial.
    assert_eq!(expected[&alice].1, 4 + 1);
    assert_eq!(expected[&eva].1, 2);
    assert_eq!(expected[&carol].1, 1 + BULK as i64);
    assert_eq!(
        expected[&dana],
        (Nanos::from_cents(300), 1),
        "the trial, at verification"
    );
    let source_keys = store.active_keys().await.expect("keys");
    let source_max_seq = store
        .usage_records(
            &carol,
            &UsageFilter::default(),
            None,
            UsageOrder::Descending,
            1,
        )
        .await
        .expect("last")[0]
        .seq;
    store.close().await;
    drop(store);
    let before = sqlite_tables(&sqlite).await;
    for table in ["console_sessions", "email_tokens", "mail_outbox"] {
        assert_eq!(before[table].1.len(), 1, "{table}");
    }

    // The copy.
    let pg = Backend::Postgres.fresh_database(dir.path()).await;
    let summary = migrate_to(&sqlite, &pg).await.expect("migrate");
    assert_eq!(
        (
            summary.accounts,
            summary.keys,
            summary.revoked_keys,
            summary.entries,
            summary.topups,
            summary.idempotency_keys
        ),
        (4, 5, 1, 5 + 2 + 1 + 1 + BULK as i64, 2, 2)
    );
    let total: i64 = expected.values().map(|(s, _)| s.nanos()).sum();
    assert_eq!(summary.total_balance.nanos(), total);
    assert!(
        summary.target.contains("schema `gi_test_"),
        "{}",
        summary.target
    );
    assert!(
        !summary.target.contains("postgres://"),
        "{}",
        summary.target
    );

    // Every row of every table, every column, is in PostgreSQL as it was.
    for (table, (columns, rows)) in &before {
        let copied = postgres_rows(&pg, table, columns).await;
        assert_eq!(copied.len(), rows.len(), "{table}");
        assert!(copied == *rows, "{table}: the rows differ");
    }
    assert_eq!(
        sqlite_tables(&sqlite).await,
        before,
        "the source is unchanged"
    );

    // The PostgreSQL store sees the same ledger and keys.
    let store = Store::open(&pg).await.expect("postgres store");
    for (a, (sum, count)) in &expected {
        assert_eq!(store.ledger_sum(a).await.expect("sum"), *sum, "{a}");
        assert_eq!(store.ledger_count(a).await.expect("count"), *count, "{a}");
    }
    let mut keys: Vec<_> = store
        .active_keys()
        .await
        .expect("keys")
        .into_iter()
        .map(|k| (k.id, k.account_id, k.hash, k.residency, k.limits))
        .collect();
    let mut want: Vec<_> = source_keys
        .into_iter()
        .map(|k| (k.id, k.account_id, k.hash, k.residency, k.limits))
        .collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(keys, want);
    let capped_row = store.key(&capped_id).await.expect("key").expect("capped");
    assert_eq!(capped_row.residency.as_deref(), Some("us"));
    assert_eq!(capped_row.limits.spend.total, Some(Nanos::from_cents(500)));
    assert_eq!(capped_row.limits.rates.rpm, Some(50));
    // The same key strings authenticate, the revoked one does not.
    let ledger = Ledger::open(
        store.clone(),
        Billing::default(),
        std::sync::Arc::new(Catalog::builtin().expect("catalog")),
    )
    .await
    .expect("ledger");
    for (key, account) in [(&alice_key, &alice), (&capped, &alice), (&eva_key, &eva)] {
        let info = ledger
            .authenticate(key)
            .expect("an active key authenticates");
        assert_eq!(&*info.account_id, account.as_str());
    }
    assert_eq!(
        ledger.authenticate(&capped).map(|k| k.key_id.to_string()),
        Some(capped_id.clone())
    );
    assert!(
        ledger.authenticate(&revoked).is_none(),
        "revoked stays revoked"
    );
    assert_eq!(
        ledger
            .account_balance(&alice)
            .await
            .expect("balance")
            .expect("alice")
            .balance,
        expected[&alice].0
    );
    // The balances replicas lease from follow the copied ledger (migration 0006's
    // trigger ran for every copied entry).
    for (account, (sum, _)) in &expected {
        let credit = store.account_credit(account).await.expect("credit");
        assert_eq!(credit.balance, *sum, "{account}");
        assert_eq!(credit.leased, Nanos::ZERO);
    }
    store.close().await;
    drop(ledger);
    drop(store);

    // A second copy into the same schema is refused: two ledgers are never mixed.
    match migrate_to(&sqlite, &pg).await {
        Err(e @ MigrateError::NotEmpty { .. }) => {
            let m = e.to_string();
            assert!(m.contains("4 rows in accounts"), "{m}");
            assert!(
                m.contains(&format!("{} rows in ledger_entries", 9 + BULK)),
                "{m}"
            );
        }
        other => panic!("a second copy must be refused: {other:?}"),
    }

    // A gateway on PostgreSQL carries on: idempotency keys replay, new entries follow
    // the copied ones.
    let p = pg.clone();
    let gw = Gw::start_on(Backend::Postgres, move |c| c.database_url = p).await;
    assert_eq!(
        topup(&gw, &alice, "10.00", "idem-alice-1").await.json(),
        first_topup,
        "the copied idempotency key answers the first result"
    );
    let r = gw
        .chat(
            &carol_key,
            &chat_body("openai/gpt-4o-mini", "hello", ""),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    gw.state.ledger.flush().await;
    let last = gw
        .state
        .ledger
        .store()
        .usage_records(
            &carol,
            &UsageFilter::default(),
            None,
            UsageOrder::Descending,
            1,
        )
        .await
        .expect("last")[0]
        .seq;
    assert!(last > source_max_seq, "{last} follows {source_max_seq}");
    let view = gw.account_view(&alice).await;
    assert_eq!(view["ledger_entries"], expected[&alice].1);
    assert_eq!(
        view["ledger_sum_usd"],
        expected[&alice].0.to_string(),
        "alice's balance is as it was"
    );
}

/// The command line: the source defaults to the configured database, and the summary
/// is printed; a second run is refused with status 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_copies_the_configured_database() {
    let Some(_) = postgres_url() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = format!("sqlite://{}", dir.path().join("cli.db").display());
    let store = Store::open(&sqlite).await.expect("store");
    let key = gammainfra::ledger::keys::generate();
    store
        .create_account(
            "acct_cli",
            "cli@example.com",
            None,
            &key,
            Nanos::from_cents(300),
            "2026-11-30T00:00:00Z",
        )
        .await
        .expect("account");
    store.close().await;
    drop(store);
    let pg = Backend::Postgres.fresh_database(dir.path()).await;
    let run = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_gammainfra"))
            .args(["db", "migrate-to", &pg])
            .env("GAMMAINFRA_DATABASE_URL", &sqlite)
            .env_remove("GAMMAINFRA_CONFIG")
            .kill_on_drop(true)
            .output()
    };
    let out = tokio::time::timeout(Duration::from_secs(60), run())
        .await
        .expect("in time")
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("Copied {}", dir.path().join("cli.db").display())),
        "{stdout}"
    );
    assert!(stdout.contains("accounts          1"), "{stdout}");
    assert!(stdout.contains("ledger entries    1"), "{stdout}");
    assert!(stdout.contains("total balance     3.00 USD"), "{stdout}");
    let again = tokio::time::timeout(Duration::from_secs(60), run())
        .await
        .expect("in time")
        .expect("run");
    assert_eq!(again.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("is not empty (1 rows in accounts"),
        "{stderr}"
    );
}

/// A source served by a running gateway is refused (its lock is held), and so is a
/// source file that does not exist (it is not created). Needs no PostgreSQL: the
/// source is checked first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_refuses_a_source_in_use_or_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("served.db");
    let sqlite = format!("sqlite://{}", path.display());
    let served = Store::open(&sqlite).await.expect("store");
    let run = |from: String| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_gammainfra"))
            .args([
                "db",
                "migrate-to",
                "postgres://nobody@127.0.0.1:1/none",
                "--from",
            ])
            .arg(from)
            .kill_on_drop(true)
            .output()
    };
    let out = run(sqlite.clone()).await.expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is in use by a running gateway: stop it first"),
        "{stderr}"
    );
    drop(served);
    let missing = dir.path().join("typo.db");
    let out = run(format!("sqlite://{}", missing.display()))
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("there is no SQLite database at"),
        "{stderr}"
    );
    assert!(!missing.exists(), "a missing source is not created");
}
