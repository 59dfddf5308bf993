//! Settlement belongs to the gateway: clients that leave early are billed from the
//! provider's usage, detached requests are bounded per account, the ledger fails closed
//! when the database refuses charges, top-ups are idempotent, one process per file.

use std::time::Duration;

use rand::Rng;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

/// Where a raw client hangs up.
#[derive(Debug, Clone, Copy)]
enum Leave {
    /// After this long, whatever has arrived (the upstream is slower).
    After(Duration),
    /// Once this many bytes of the response have arrived.
    AfterBytes(usize),
    /// Never: reads the whole answer.
    Never,
}

/// Sends a chat request over a raw socket and hangs up as `leave` says. Returns what
/// was read.
async fn raw_chat(gw: &Gw, key: &str, body: &str, leave: Leave) -> Vec<u8> {
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    match leave {
        Leave::After(d) => {
            let _ = tokio::time::timeout(d, async {
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
            })
            .await;
        }
        Leave::AfterBytes(n) => {
            while got.len() < n {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => got.extend_from_slice(&buf[..k]),
                }
            }
        }
        Leave::Never => {
            let _ = s.read_to_end(&mut got).await;
        }
    }
    drop(s);
    got
}

/// Waits until every admitted request is settled and its charge committed.
async fn settled(gw: &Gw) {
    let open = gw.state.ledger.wait_settled(Duration::from_secs(30)).await;
    assert_eq!(open, 0, "requests still open");
    gw.state.ledger.flush().await;
}

/// The usage entries of an account, straight from the database (either backend):
/// (request ID, cost, input tokens, output tokens, note, status).
type Row = (String, i64, i64, i64, Option<String>, Option<String>);
async fn usage_rows(gw: &Gw, account: &str) -> Vec<Row> {
    use gammainfra::ledger::{UsageFilter, UsageOrder};
    gw.state
        .ledger
        .store()
        .usage_records(
            account,
            &UsageFilter::default(),
            None,
            UsageOrder::Ascending,
            1000,
        )
        .await
        .expect("usage rows")
        .into_iter()
        .map(|r| {
            (
                r.request_id,
                r.cost.nanos(),
                r.input_tokens as i64,
                r.output_tokens as i64,
                r.note,
                r.status,
            )
        })
        .collect()
}

/// A second connection to the gateway's SQLite file (as an operator's sqlite3 would be).
async fn db(gw: &Gw) -> sqlx::SqlitePool {
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&gw.state.config.database_url)
        .await
        .expect("open the database")
}

/// A write transaction held open on the gateway's SQLite file by another connection
/// (as a long-running operator query would): the gateway's writers wait on it.
struct WriteLock {
    pool: sqlx::SqlitePool,
    conn: sqlx::pool::PoolConnection<sqlx::Sqlite>,
}

impl WriteLock {
    async fn take(gw: &Gw) -> Self {
        let pool = db(gw).await;
        let mut conn = pool.acquire().await.expect("conn");
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .expect("lock");
        Self { pool, conn }
    }

    async fn release(mut self) {
        sqlx::query("ROLLBACK")
            .execute(&mut *self.conn)
            .await
            .expect("unlock");
        drop(self.conn);
        self.pool.close().await;
    }
}

/// The cost the gateway charges for `body` when the client reads the whole answer, on a
/// fresh account (the simulators are deterministic).
async fn full_cost(gw: &Gw, email: &str, body: &str) -> i128 {
    let (_, key) = gw.account(email).await;
    let r = gw.chat(&key, body, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    if let Some(c) = r.header("x-gammainfra-cost-usd") {
        return usd_to_nanos(c);
    }
    let last: Value = r
        .sse_data()
        .iter()
        .rev()
        .find_map(|d| {
            serde_json::from_str::<Value>(d)
                .ok()
                .filter(|v| v["usage"].is_object())
        })
        .expect("usage chunk");
    usd_to_nanos(last["usage"]["cost_usd"].as_str().expect("cost"))
}

async fn a_client_that_leaves_before_the_answer_is_billed_from_the_provider_usage(
    backend: Backend,
) {
    let gw = Gw::start_on(backend, |_| {}).await;
    for (i, model) in [
        "openai/gpt-4o-mini",
        "anthropic/claude-haiku-4-5",
        "amazon/nova-micro-v1",
    ]
    .iter()
    .enumerate()
    {
        for stream in [false, true] {
            let extra = if stream {
                r#""stream":true,"stream_options":{"include_usage":true}"#
            } else {
                ""
            };
            let body = chat_body(model, "one two three four five [[sim:slow 400]]", extra);
            let expected = full_cost(&gw, &format!("full{i}{stream}@example.com"), &body).await;
            assert!(expected > 0);
            let (id, key) = gw.account(&format!("left{i}{stream}@example.com")).await;
            // Hang up while the provider is still working (before any byte of the answer).
            let got = raw_chat(&gw, &key, &body, Leave::After(Duration::from_millis(100))).await;
            assert!(
                got.is_empty(),
                "no answer yet: {}",
                String::from_utf8_lossy(&got)
            );
            settled(&gw).await;
            let rows = usage_rows(&gw, &id).await;
            assert_eq!(
                rows.len(),
                1,
                "{model} stream={stream}: one charge: {rows:?}"
            );
            assert_eq!(
                rows[0].1 as i128, expected,
                "{model} stream={stream}: the departed client pays what a present one does"
            );
            let note = rows[0].4.clone().unwrap_or_default();
            assert!(note.contains("client disconnected"), "{note}");
            let view = gw.account_view(&id).await;
            assert_eq!(view["reserved_usd"], "0.00");
            assert_eq!(view["ledger_sum_usd"], view["balance_usd"]);
            assert_eq!(
                usd_to_nanos(view["spent_usd"].as_str().expect("spent")),
                expected
            );
        }
    }
}

async fn a_stream_whose_client_leaves_after_the_first_chunk_is_read_to_its_end_and_billed(
    backend: Backend,
) {
    let gw = Gw::start_on(backend, |_| {}).await;
    // A long answer: the simulated model echoes the prompt, so the output is many chunks.
    let words: Vec<String> = (0..3000).map(|i| format!("w{i}")).collect();
    let body = chat_body(
        "openai/gpt-4o-mini",
        &words.join(" "),
        r#""stream":true,"stream_options":{"include_usage":true},"max_tokens":3000"#,
    );
    let expected = full_cost(&gw, "fullstream@example.com", &body).await;
    let (id, key) = gw.account("firstchunk@example.com").await;
    let got = raw_chat(&gw, &key, &body, Leave::AfterBytes(1)).await;
    assert!(!got.is_empty());
    settled(&gw).await;
    let rows = usage_rows(&gw, &id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].1 as i128, expected, "billed from the final usage");
    let view = gw.account_view(&id).await;
    assert_eq!(view["ledger_sum_usd"], view["balance_usd"]);
    assert_eq!(view["reserved_usd"], "0.00");
}

async fn detached_requests_are_bounded_per_account(backend: Backend) {
    let gw = Gw::start_on(backend, |c| c.billing.max_detached_per_account = 2).await;
    let (id, key) = gw.account("detached@example.com").await;
    let (_, other) = gw.account("other@example.com").await;
    let slow = chat_body("openai/gpt-4o-mini", "hi [[sim:slow 8000]]", "");
    for _ in 0..2 {
        raw_chat(&gw, &key, &slow, Leave::After(Duration::from_millis(50))).await;
    }
    // Give the gateway time to admit both and see the hang-ups: on PostgreSQL under a
    // loaded test run the first admission waits for a lease from the database, which
    // has taken over a second. The upstream holds both for 8 s, so neither is settled
    // before the checks below.
    let seen = std::time::Instant::now() + Duration::from_millis(6_000);
    while gw.state.ledger.balance(&id).expect("balance").detached < 2
        && std::time::Instant::now() < seen
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gw.state.ledger.balance(&id).expect("balance").detached, 2);
    let quick = chat_body("openai/gpt-4o-mini", "hi", "");
    let r = gw.chat(&key, &quick, &[]).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.error_code(), "too_many_detached_requests");
    // Other accounts are not affected.
    assert_eq!(gw.chat(&other, &quick, &[]).await.status, 200);
    settled(&gw).await;
    assert_eq!(gw.state.ledger.balance(&id).expect("balance").detached, 0);
    assert_eq!(gw.chat(&key, &quick, &[]).await.status, 200);
    settled(&gw).await;
    assert_eq!(
        usage_rows(&gw, &id).await.len(),
        3,
        "both departed requests billed"
    );
}

/// 100 clients hang up at random points against a slow upstream: every account ends
/// with balance = trial + top-ups − Σ usage, and every request the upstream served has
/// exactly one usage record.
async fn a_hundred_clients_leaving_at_random_points_leave_exact_books(backend: Backend) {
    let gw = std::sync::Arc::new(
        Gw::start_on(backend, |c| c.billing.max_detached_per_account = 1000).await,
    );
    let models = [
        "openai/gpt-4o-mini",
        "anthropic/claude-haiku-4-5",
        "amazon/nova-micro-v1",
    ];
    let mut accounts = Vec::new();
    for i in 0..100 {
        accounts.push(gw.account(&format!("c{i}@example.com")).await);
    }
    let mut tasks = Vec::new();
    for (i, (_, key)) in accounts.iter().enumerate() {
        let gw = gw.clone();
        let key = key.clone();
        let (leave, stream, delay) = {
            let mut rng = rand::thread_rng();
            let delay = rng.gen_range(50..400u64);
            let leave = match rng.gen_range(0..4) {
                0 => Leave::After(Duration::from_millis(rng.gen_range(0..delay))),
                1 => Leave::AfterBytes(1),
                2 => Leave::AfterBytes(rng.gen_range(200..2000)),
                _ => Leave::Never,
            };
            (leave, rng.gen_bool(0.6), delay)
        };
        let model = models[i % models.len()];
        tasks.push(tokio::spawn(async move {
            let extra = if stream { r#""stream":true"# } else { "" };
            let words: Vec<String> = (0..200).map(|w| format!("w{w}")).collect();
            let text = format!("client-{i}-marker {} [[sim:slow {delay}]]", words.join(" "));
            let body = chat_body(model, &text, extra);
            raw_chat(&gw, &key, &body, leave).await;
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    settled(&gw).await;
    assert_eq!(
        gw.state.ledger.store().backend(),
        match gw.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    );
    // What each simulated provider served, by the client's marker.
    let mut served = std::collections::HashMap::<String, usize>::new();
    for sim in [&gw.openai, &gw.anthropic, &gw.bedrock] {
        for r in sim.requests() {
            let body = String::from_utf8_lossy(&r.body).into_owned();
            if let Some(p) = body.find("client-") {
                let marker: String = body[p..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                *served.entry(marker).or_default() += 1;
            }
        }
    }
    for (i, (id, _)) in accounts.iter().enumerate() {
        let rows = usage_rows(&gw, id).await;
        let n = served
            .get(&format!("client-{i}-marker"))
            .copied()
            .unwrap_or(0);
        // A client that hung up before the gateway read its request was never served.
        assert!(n <= 1, "client {i}: served {n} times");
        assert_eq!(
            rows.len(),
            n,
            "client {i}: one usage record per served request: {rows:?}"
        );
        assert!(rows.iter().all(|r| r.1 > 0), "client {i}: {rows:?}");
        let view = gw.account_view(id).await;
        let spent: i64 = rows.iter().map(|r| r.1).sum();
        assert_eq!(view["reserved_usd"], "0.00", "client {i}");
        assert_eq!(view["ledger_sum_usd"], view["balance_usd"], "client {i}");
        assert_eq!(
            usd_to_nanos(view["balance_usd"].as_str().expect("balance")),
            3_000_000_000 - spent as i128,
            "client {i}: balance = trial − Σ usage"
        );
    }
}

#[tokio::test]
async fn the_ledger_fails_closed_while_the_database_refuses_charges_and_recovers_losing_nothing() {
    let gw = Gw::start_with(|c| c.billing.flush_timeout = Duration::from_millis(300)).await;
    let (id, key) = gw.account("closed@example.com").await;
    let body = chat_body("openai/gpt-4o-mini", "hello there", "");
    assert_eq!(gw.chat(&key, &body, &[]).await.status, 200);
    // The disk "fills up": usage inserts fail.
    let pool = db(&gw).await;
    sqlx::query("CREATE TRIGGER inject_full BEFORE INSERT ON ledger_entries WHEN NEW.kind = 'usage' BEGIN SELECT RAISE(ABORT, 'injected: database or disk is full'); END")
        .execute(&pool)
        .await
        .expect("inject");
    // This request is admitted before the writer notices; its charge is queued.
    let r = gw.chat(&key, &body, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let charged = usd_to_nanos(r.header("x-gammainfra-cost-usd").expect("cost"));
    // Once the writer has failed, new requests are refused with a clear 503.
    let mut refused = None;
    let mut admitted = 2;
    for _ in 0..50 {
        let r = gw.chat(&key, &body, &[]).await;
        if r.status == 503 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        admitted += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = refused.expect("a 503 once the database refuses writes");
    assert_eq!(r.error_code(), "ledger_unavailable");
    assert!(
        r.text().contains("injected: database or disk is full"),
        "{}",
        r.text()
    );
    let ready = gw.send("GET", "/readyz", None, None, &[]).await;
    assert_eq!(ready.status, 503);
    assert!(
        ready.json()["reason"]
            .as_str()
            .is_some_and(|s| s.contains("disk is full")),
        "{}",
        ready.text()
    );
    // Admin reads that need the ledger flushed answer 503 in bounded time, not hang.
    let t = std::time::Instant::now();
    let v = gw
        .admin("GET", &format!("/admin/v1/accounts/{id}"), None)
        .await;
    assert_eq!(v.status, 503, "{}", v.text());
    assert!(t.elapsed() < Duration::from_secs(3));
    // The customer's balance already reflects both charges (exact in memory).
    let bal = gw.state.ledger.balance(&id).expect("balance");
    // The store recovers: the backlog is written, nothing lost.
    sqlx::query("DROP TRIGGER inject_full")
        .execute(&pool)
        .await
        .expect("recover");
    pool.close().await;
    let mut ok = false;
    for _ in 0..100 {
        if gw.send("GET", "/readyz", None, None, &[]).await.status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "ready again after the database recovers");
    assert_eq!(gw.chat(&key, &body, &[]).await.status, 200);
    settled(&gw).await;
    let rows = usage_rows(&gw, &id).await;
    assert_eq!(
        rows.len(),
        admitted + 1,
        "every charge written once: {rows:?}"
    );
    assert_eq!(rows[1].1 as i128, charged);
    let view = gw.account_view(&id).await;
    assert_eq!(view["ledger_sum_usd"], view["balance_usd"]);
    assert!(gw.state.ledger.balance(&id).expect("balance").balance < bal.balance);
}

#[tokio::test]
async fn a_backlog_at_its_bound_refuses_new_requests() {
    let gw = Gw::start_with(|c| c.billing.max_unwritten_usage = 2).await;
    let (_, key) = gw.account("backlog@example.com").await;
    let body = chat_body("openai/gpt-4o-mini", "hello", "");
    // A long write transaction elsewhere holds the database: the writer waits on it.
    let lock = WriteLock::take(&gw).await;
    assert_eq!(gw.chat(&key, &body, &[]).await.status, 200);
    assert_eq!(gw.chat(&key, &body, &[]).await.status, 200);
    let r = gw.chat(&key, &body, &[]).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.error_code(), "ledger_unavailable");
    assert!(r.text().contains("at the limit of 2"), "{}", r.text());
    lock.release().await;
    settled(&gw).await;
    assert_eq!(gw.chat(&key, &body, &[]).await.status, 200);
}

async fn topups_honour_idempotency_keys(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let (id, _) = gw.account("idem@example.com").await;
    let path = format!("/admin/v1/accounts/{id}/topups");
    let send = |key: &'static str, body: &'static str| {
        let gw = &gw;
        let path = path.clone();
        async move {
            gw.send(
                "POST",
                &path,
                Some(ADMIN),
                Some(body),
                &[("idempotency-key", key)],
            )
            .await
        }
    };
    let first = send("k-1", r#"{"amount_usd":"10.00"}"#).await;
    assert_eq!(first.status, 201, "{}", first.text());
    // A retry (other spelling of the same amount) answers the first result.
    let again = send("k-1", r#"{ "amount_usd" : "10.0" }"#).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.json(), first.json());
    // The same key for another request is a conflict, and changes nothing.
    let other = send("k-1", r#"{"amount_usd":"20.00"}"#).await;
    assert_eq!(other.status, 409, "{}", other.text());
    assert_eq!(other.error_code(), "idempotency_key_reused");
    // Racing retries of one key credit once.
    let racing: Vec<_> = (0..8)
        .map(|_| send("k-2", r#"{"amount_usd":"15.00"}"#))
        .collect();
    let results = futures_util::future::join_all(racing).await;
    assert!(results.iter().all(|r| r.status == 201), "all answered");
    let ids: std::collections::HashSet<String> = results
        .iter()
        .map(|r| r.json()["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "one top-up");
    // Without a key, each request is a new top-up (the old behaviour).
    assert_eq!(
        gw.admin("POST", &path, Some(r#"{"amount_usd":"10.00"}"#))
            .await
            .status,
        201
    );
    let view = gw.account_view(&id).await;
    assert_eq!(view["balance_usd"], "38.00", "3 + 10 + 15 + 10");
    assert_eq!(view["ledger_sum_usd"], "38.00");
    assert_eq!(view["ledger_entries"], 4);
    let bad = gw
        .send(
            "POST",
            &path,
            Some(ADMIN),
            Some(r#"{"amount_usd":"10.00"}"#),
            &[("idempotency-key", "")],
        )
        .await;
    assert_eq!(bad.status, 400);
}

async fn the_cli_sends_an_idempotency_key_so_a_repeated_command_credits_once(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let (id, _) = gw.account("cli@example.com").await;
    let run = || {
        let gw_url = gw.url.clone();
        let id = id.clone();
        tokio::process::Command::new(env!("CARGO_BIN_EXE_gammainfra"))
            .args(["topups", "create", "--account", &id, "--amount", "10.00"])
            .args(["--idempotency-key", "cli-retry-1"])
            .env("GAMMAINFRA_URL", gw_url)
            .env("GAMMAINFRA_ADMIN_TOKEN", ADMIN)
            .output()
    };
    let a = run().await.expect("cli");
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let b = run().await.expect("cli");
    assert!(b.status.success());
    assert_eq!(
        a.stdout, b.stdout,
        "the second run answers the first result"
    );
    assert!(String::from_utf8_lossy(&a.stderr).contains("Idempotency-Key: cli-retry-1"));
    let view = gw.account_view(&id).await;
    assert_eq!(view["balance_usd"], "13.00");
    // Without --idempotency-key the CLI makes one up, so each run is a new top-up.
    let c = tokio::process::Command::new(env!("CARGO_BIN_EXE_gammainfra"))
        .args(["topups", "create", "--account", &id, "--amount", "10.00"])
        .env("GAMMAINFRA_URL", gw.url.clone())
        .env("GAMMAINFRA_ADMIN_TOKEN", ADMIN)
        .output()
        .await
        .expect("cli");
    assert!(c.status.success());
    assert!(String::from_utf8_lossy(&c.stderr).contains("Idempotency-Key: topup-cli-"));
    assert_eq!(gw.account_view(&id).await["balance_usd"], "23.00");
}

#[tokio::test]
async fn a_second_process_on_the_same_database_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("one.db");
    let url = format!("sqlite://{}", path.display());
    let first = gammainfra::ledger::Store::open(&url).await.expect("first");
    let err = match gammainfra::ledger::Store::open(&url).await {
        Ok(_) => panic!("a second store on the same file must be refused"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(
        err.contains("in use by another GammaInfra process"),
        "{err}"
    );
    // Another process, too: the real binary refuses to start on it.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gammainfra"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("GAMMAINFRA_DATABASE_URL", &url)
        .env("GAMMAINFRA_ADMIN_TOKEN", ADMIN)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), out)
        .await
        .expect("the second process exits at once")
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use by another GammaInfra process"),
        "{stderr}"
    );
    // Once the first is gone, the file can be opened again.
    drop(first);
    let again = gammainfra::ledger::Store::open(&url).await;
    assert!(again.is_ok(), "reopened after the first closed");
}

/// Admin changes wait for the usage writer instead of failing, and complete even when
/// the admin client hangs up before the database took them.
#[tokio::test]
async fn admin_changes_wait_for_a_busy_database_and_complete_without_their_client() {
    let gw = Gw::start().await;
    let (id, _) = gw.account("busy@example.com").await;
    let lock = WriteLock::take(&gw).await;
    // A top-up whose client gives up while the database is locked.
    let path = format!("/admin/v1/accounts/{id}/topups");
    let gone = tokio::time::timeout(
        Duration::from_millis(200),
        gw.admin("POST", &path, Some(r#"{"amount_usd":"10.00"}"#)),
    )
    .await;
    assert!(gone.is_err(), "still waiting for the lock");
    // A key creation that waits for the lock (no immediate SQLITE_BUSY).
    let key = {
        let url = gw.url.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<http_body_util::Full<bytes::Bytes>>();
            let req = hyper::Request::post(format!("{url}/admin/v1/accounts/{id}/keys"))
                .header("authorization", format!("Bearer {ADMIN}"))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("req");
            client.request(req).await.expect("answer").status().as_u16()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    lock.release().await;
    assert_eq!(key.await.expect("key task"), 201);
    // The abandoned top-up was applied in full: in the database and in memory alike.
    let mut credited = false;
    for _ in 0..50 {
        let v = gw.account_view(&id).await;
        if v["balance_usd"] == "13.00" {
            assert_eq!(v["ledger_sum_usd"], "13.00");
            credited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(credited, "the top-up completed without its client");
}

on_both_backends!(
    a_client_that_leaves_before_the_answer_is_billed_from_the_provider_usage,
    a_stream_whose_client_leaves_after_the_first_chunk_is_read_to_its_end_and_billed,
    detached_requests_are_bounded_per_account,
    a_hundred_clients_leaving_at_random_points_leave_exact_books,
    topups_honour_idempotency_keys,
    the_cli_sends_an_idempotency_key_so_a_repeated_command_credits_once,
);
