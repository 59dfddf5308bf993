//! Several gateway replicas sharing one PostgreSQL ledger: credit leases keep every
//! account exact (docs/scaling.md). These tests need `GAMMAINFRA_TEST_POSTGRES_URL`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gammainfra::ledger::Store;
use gammainfra::money::Nanos;

use crate::harness::*;

/// Short leases and idle returns, so that the tests see them close.
fn quick_leases(c: &mut gammainfra::config::Config) {
    c.billing.lease_ttl = Duration::from_millis(3_000);
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
    // An account disabled on A is refused on B, and enabled again.
    let path = format!("/admin/v1/accounts/{id}");
    let r = a.admin("PATCH", &path, Some(r#"{"disabled":true}"#)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !b.state.ledger.account_disabled(&id) {
        assert!(Instant::now() < deadline, "the disable never reached B");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        b.chat(&key, &body, &[]).await.error_code(),
        "account_disabled"
    );
    let r = a.admin("PATCH", &path, Some(r#"{"disabled":false}"#)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.state.ledger.account_disabled(&id) {
        assert!(Instant::now() < deadline, "the enable never reached B");
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

/// One `gammainfra serve` process of the multi-replica test.
struct Replica {
    id: &'static str,
    addr: std::net::SocketAddr,
    child: tokio::process::Child,
}

/// What the multi-replica test's replicas share.
struct Cluster {
    dir: tempfile::TempDir,
    database_url: String,
    redis_url: String,
    openai: gammainfra::simulators::Simulator,
}

impl Cluster {
    async fn spawn(&self, id: &'static str, addr: std::net::SocketAddr) -> Replica {
        let log = |what: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.path().join(format!("{id}.{what}.log")))
                .expect("log file")
        };
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gammainfra"))
            .args(["serve", "--listen", &addr.to_string(), "--config"])
            .arg(self.dir.path().join("gammainfra.toml"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GAMMAINFRA_DATABASE_URL", &self.database_url)
            .env("GAMMAINFRA_REDIS_URL", &self.redis_url)
            .env("GAMMAINFRA_REPLICA_ID", id)
            .env("GAMMAINFRA_ADMIN_TOKEN", ADMIN)
            .env("OPENAI_API_KEY", "sk-openai-test")
            .env("OPENAI_BASE_URL", self.openai.base_url())
            .env("RUST_LOG", "warn")
            .stdout(log("out"))
            .stderr(log("err"))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn gammainfra serve");
        let r = Replica { id, addr, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(resp) = http(r.addr, "GET", "/readyz", None, None).await {
                if resp.0 == 200 {
                    return r;
                }
            }
            assert!(
                Instant::now() < deadline,
                "replica {id} never became ready: {}{}",
                std::fs::read_to_string(self.dir.path().join(format!("{id}.out.log")))
                    .unwrap_or_default(),
                std::fs::read_to_string(self.dir.path().join(format!("{id}.err.log")))
                    .unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One HTTP/1.1 request on a connection of its own: (status, headers, body), or the
/// connection error (a killed replica).
async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, hyper::HeaderMap, String), String> {
    use http_body_util::{BodyExt, Full};
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(a) = auth {
        b = b.header("authorization", format!("Bearer {a}"));
    }
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    let req = b
        .body(Full::new(bytes::Bytes::from(
            body.unwrap_or_default().to_owned(),
        )))
        .expect("request");
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
}

/// How one request of the multi-replica test ended.
struct Outcome {
    /// The replica that answered, and whether it was the killed run of replica r2.
    killed_run: bool,
    status: u16,
    request_id: Option<String>,
    cost: i128,
    done: Instant,
}

/// Three `gammainfra serve` processes on loopback sharing PostgreSQL and Redis; 2,000
/// concurrent requests from 20 accounts with tight balances; one replica SIGKILLed and
/// restarted under its ID mid-run. Afterwards, for every account: balance = trial +
/// top-ups − Σ usage, never below zero, every answered request billed once and at the
/// cost its answer reported, and no lease open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_and_a_sigkill_keep_every_account_exact() {
    sigkill_run(false).await;
}

/// The same with `billing.commit_before_answer`: every answer a client received is
/// billed, even those the killed replica sent in its last moments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_commit_before_answer_a_sigkill_loses_no_answered_charge() {
    sigkill_run(true).await;
}

async fn sigkill_run(commit_before_answer: bool) {
    let Some(_) = Backend::postgres() else { return };
    let Some(redis_url) = redis_url().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let database_url = Backend::Postgres.fresh_database(dir.path()).await;
    std::fs::write(
        dir.path().join("gammainfra.toml"),
        format!("[billing]\ntrial_usd = \"0.01\"\nlease_ttl_ms = 10000\nlease_idle_ms = 300\ncommit_before_answer = {commit_before_answer}\n"),
    )
    .expect("config");
    let cluster = Cluster {
        database_url,
        redis_url,
        openai: gammainfra::simulators::start_openai("sk-openai-test")
            .await
            .expect("openai sim"),
        dir,
    };
    let mut addrs = Vec::new();
    for _ in 0..3 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        addrs.push(l.local_addr().expect("addr"));
    }
    let ids = ["r1", "r2", "r3"];
    let mut replicas = Vec::new();
    for (id, addr) in ids.iter().zip(&addrs) {
        replicas.push(cluster.spawn(id, *addr).await);
    }
    // Twenty accounts with $0.01 each, created on r1; each key is then seen by all.
    let mut accounts = Vec::new();
    for i in 0..20 {
        let body = format!(r#"{{"email":"replica-{i}@example.com"}}"#);
        let (s, _, text) = http(
            addrs[0],
            "POST",
            "/admin/v1/accounts",
            Some(ADMIN),
            Some(&body),
        )
        .await
        .expect("create account");
        assert_eq!(s, 201, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        accounts.push((
            v["id"].as_str().expect("id").to_owned(),
            v["api_key"].as_str().expect("key").to_owned(),
        ));
    }
    for (_, key) in &accounts {
        for addr in &addrs {
            let deadline = Instant::now() + Duration::from_secs(10);
            while http(*addr, "GET", "/v1/credits", Some(key), None)
                .await
                .map_or(true, |r| r.0 != 200)
            {
                assert!(Instant::now() < deadline, "a key never reached {addr}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    // 2,000 requests at once, spread over the replicas; a refused connection (the
    // killed replica) is retried on the next one, as a load balancer would.
    let killed_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let restarted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let finished = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for n in 0..2_000usize {
        let (_, key) = accounts[n % 20].clone();
        let addrs = addrs.clone();
        let (killed_at, restarted, finished) =
            (killed_at.clone(), restarted.clone(), finished.clone());
        tasks.push(tokio::spawn(async move {
            // About 800 input and 50 output tokens: ~$0.00015, so an account's $0.01
            // serves about 65 of its 100 requests.
            let body = chat_body(
                "gpt-4o-mini",
                &format!("request {n} {}[[sim:slow 20]]", "word ".repeat(800)),
                r#""max_tokens":50"#,
            );
            let mut out = None;
            for attempt in 0..6 {
                let addr = addrs[(n + attempt) % 3];
                let before_restart = !restarted.load(std::sync::atomic::Ordering::SeqCst);
                match http(
                    addr,
                    "POST",
                    "/v1/chat/completions",
                    Some(&key),
                    Some(&body),
                )
                .await
                {
                    Ok((status, h, text)) => {
                        assert!(
                            matches!(status, 200 | 402),
                            "unexpected {status} from {addr}: {text}"
                        );
                        let header =
                            |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
                        out = Some(Outcome {
                            killed_run: addr == addrs[1] && before_restart,
                            status,
                            request_id: header("x-gammainfra-request-id"),
                            cost: header("x-gammainfra-cost-usd").map_or(0, |c| usd_to_nanos(&c)),
                            done: Instant::now(),
                        });
                        break;
                    }
                    Err(_) => {
                        assert!(
                            killed_at.lock().expect("lock").is_some() && addr == addrs[1],
                            "only the killed replica may fail to answer"
                        );
                    }
                }
            }
            finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            out.expect("every request is answered by some replica")
        }));
    }
    // Mid-run: SIGKILL r2, then restart it under the same ID.
    let deadline = Instant::now() + Duration::from_secs(120);
    while finished.load(std::sync::atomic::Ordering::SeqCst) < 600 {
        assert!(Instant::now() < deadline, "the run stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    replicas[1].child.start_kill().expect("SIGKILL r2");
    *killed_at.lock().expect("lock") = Some(Instant::now());
    replicas[1].child.wait().await.expect("r2 died");
    tokio::time::sleep(Duration::from_millis(300)).await;
    restarted.store(true, std::sync::atomic::Ordering::SeqCst);
    replicas[1] = cluster.spawn("r2", addrs[1]).await;
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("client task"));
    }
    // A graceful stop of every replica hands back their leases.
    for r in &mut replicas {
        crate::harness::signal(r.child.id().expect("pid"), "-TERM").await;
        let st = tokio::time::timeout(Duration::from_secs(60), r.child.wait())
            .await
            .expect("the replica stops")
            .expect("wait");
        assert!(st.success(), "replica {} exited with {st}", r.id);
    }
    // The books.
    let store = Store::open_replica(&cluster.database_url, Some("checker"))
        .await
        .expect("store");
    assert_eq!(
        store.open_leases().await.expect("leases"),
        0,
        "no lease is open"
    );
    let sums = store.account_sums().await.expect("sums");
    assert_eq!(sums.len(), 20);
    for s in &sums {
        assert_eq!(s.balance, s.trial + s.topups - s.spent, "{}", s.id);
        assert!(s.balance >= Nanos::ZERO, "{} went below zero", s.id);
        let credit = store.account_credit(&s.id).await.expect("credit");
        assert_eq!(credit.balance, s.balance, "{}", s.id);
        assert_eq!(credit.leased, Nanos::ZERO, "{}", s.id);
    }
    let billed: std::collections::HashMap<String, i128> = store
        .usage_charges()
        .await
        .expect("charges")
        .into_iter()
        .map(|(id, n)| (id, i128::from(n.nanos())))
        .collect();
    let kill = killed_at.lock().expect("lock").expect("killed");
    let (mut ok, mut refused, mut lost) = (0, 0, 0);
    for o in &outcomes {
        if o.status == 402 {
            refused += 1;
            continue;
        }
        ok += 1;
        let id = o.request_id.as_deref().expect("request id");
        match billed.get(id) {
            Some(c) => assert_eq!(*c, o.cost, "{id} billed what its answer said"),
            None => {
                // Only the killed run may lose charges: those settled in its last group
                // commit before the SIGKILL (their answers may still be read after it);
                // none when answers wait for their commit.
                assert!(o.killed_run, "{id} was answered and never billed");
                assert!(
                    !commit_before_answer,
                    "{id} was answered before its charge was committed"
                );
                assert!(
                    kill.saturating_duration_since(o.done) < Duration::from_secs(1),
                    "{id} lost, answered {:?} before the kill",
                    kill.duration_since(o.done)
                );
                lost += 1;
            }
        }
    }
    assert!(refused > 0, "balances were tight enough to refuse requests");
    assert!(ok >= 200, "the accounts were served for a while: {ok}");
    let upstream = cluster.openai.requests().len();
    assert!(
        billed.len() <= upstream,
        "nothing is billed that was not served"
    );
    eprintln!(
        "multi-replica run (commit_before_answer = {commit_before_answer}): {ok} served, {refused} refused (402), {} billed, {upstream} upstream calls, {lost} answered by the killed replica in its last moments and not billed",
        billed.len()
    );
}

/// A key's spending limit holds across replicas: what one replica charged counts on
/// the others within a second (docs/scaling.md).
#[tokio::test]
async fn a_keys_spending_limit_counts_what_other_replicas_charged() {
    let Some(_) = Backend::postgres() else { return };
    let a = Gw::start_on(Backend::Postgres, |_| {}).await;
    let b = Gw::start_replica(a.database_url(), |_| {}).await;
    let (id, _) = a.account("spend-replicas@example.com").await;
    let (key_id, key) = a.key_with(&id, r#"{"limits":{"total_usd":"0.05"}}"#).await;
    wait_for_key(&b, &key).await;
    // About $0.012 each at Opus prices, with a worst case near $0.0225: the $0.05
    // limit serves three in a row.
    let body = chat_body(
        "claude-opus-4-5",
        &"word ".repeat(400),
        r#""max_tokens":500"#,
    );
    let mut spent = 0i128;
    let mut served = 0;
    loop {
        let r = a.chat(&key, &body, &[]).await;
        if r.status != 200 {
            assert_eq!(r.error_code(), "key_spend_limit_reached", "{}", r.text());
            break;
        }
        spent += usd_to_nanos(r.header("x-gammainfra-cost-usd").expect("cost"));
        served += 1;
        assert!(served < 10, "the limit never applied on A");
    }
    assert!(served >= 2, "{served}");
    // Within a refresh, replica B knows what A charged, and refuses as A does.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let r = b.chat(&key, &body, &[]).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.error_code(), "key_spend_limit_reached");
    assert!(
        spent <= 50_000_000,
        "the key spent {spent} nano-dollars of $0.05"
    );
    // B's view of the key shows what A charged.
    let view = b
        .admin("GET", &format!("/admin/v1/keys/{key_id}"), None)
        .await;
    assert_eq!(view.status, 200, "{}", view.text());
    assert_eq!(
        usd_to_nanos(view.json()["spend"]["total_usd"].as_str().expect("total")),
        spent
    );
}
