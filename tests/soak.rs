//! The soak: 1,000 concurrent streams for 60 s through the real `gammainfra serve`
//! process, in front of the three simulated providers (Anthropic SSE, OpenAI SSE,
//! Bedrock event-stream). Every stream must complete whole, the gateway's resident
//! memory must stay under 150 MB, and afterwards nothing may be left behind: no task,
//! no file descriptor, no connection, no reservation, and the ledger must hold exactly
//! one charge per stream.
//!
//! A test binary of its own, so that cargo runs it alone, after the other suites: its
//! load would disturb their latency checks. `GAMMAINFRA_SOAK_SECS` and
//! `GAMMAINFRA_SOAK_STREAMS` change its length and width (60 and 1,000 by default).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gammainfra::simulators::{self, BedrockSimConfig};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

const ADMIN: &str = "soak-admin-token-0123456789";
const AWS_KEY: &str = "AKIDGAMMAINFRASOAK";
const AWS_SECRET: &str = "gammainfra/soak/secret/key/EXAMPLEKEY";
/// Resident memory the gateway must stay under with the streams open.
const RSS_LIMIT_KB: u64 = 150 * 1024;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One request: (status, body).
async fn send(
    client: &HttpClient,
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: &str,
    body: Option<String>,
) -> Result<(u16, String), String> {
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("authorization", format!("Bearer {auth}"));
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    let req = b
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A value of `/proc/PID/status`, in kB (`VmRSS`, `VmHWM`).
fn proc_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// What the gateway reports holding: (tasks, connections, open reservations).
async fn runtime(client: &HttpClient, addr: SocketAddr) -> (u64, u64, u64) {
    let (status, body) = send(client, addr, "GET", "/admin/v1/runtime", ADMIN, None)
        .await
        .expect("runtime view");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    let n = |k: &str| v[k].as_u64().expect(k);
    (n("tasks"), n("connections"), n("open_reservations"))
}

/// Checks one streamed answer: whole, with its usage chunk and `[DONE]`, and the
/// simulated reply to `text` as its content. Returns the cost shown, in nanodollars.
fn check_stream(body: &str, text: &str) -> Result<i128, String> {
    let data: Vec<&str> = body
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .collect();
    if data.last() != Some(&"[DONE]") {
        return Err(format!("no [DONE]: {body}"));
    }
    let mut content = String::new();
    let mut cost = None;
    for d in &data[..data.len() - 1] {
        let v: Value = serde_json::from_str(d).map_err(|e| format!("{e}: {d}"))?;
        if v["error"].is_object() {
            return Err(format!("error event: {d}"));
        }
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            content.push_str(t);
        }
        if let Some(c) = v["usage"]["cost_usd"].as_str() {
            cost = Some(nanos(c));
        }
    }
    let want = format!("Simulated reply to: {text}");
    if content != want {
        return Err(format!("content {content:?}, want {want:?}"));
    }
    cost.ok_or_else(|| format!("no usage chunk: {body}"))
}

/// The models the streams rotate over: one per wire format.
const MODELS: [&str; 3] = [
    "openai/gpt-4o-mini",
    "claude-haiku-4-5",
    "meta/llama3-70b-instruct",
];

/// One stream, `n`th of client `i`: 20 words of reply, one frame every 400 ms, about
/// 10 s. Returns the cost shown.
async fn one_stream(
    client: HttpClient,
    addr: SocketAddr,
    key: String,
    i: usize,
    n: usize,
) -> Result<i128, String> {
    let text =
        format!("stream {i} number {n} of the soak with a few more words to say [[sim:drip 400]]");
    let body = serde_json::json!({
        "model": MODELS[(i + n) % MODELS.len()],
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 200,
        "stream": true,
        "stream_options": {"include_usage": true},
    })
    .to_string();
    let (status, body) = send(
        &client,
        addr,
        "POST",
        "/v1/chat/completions",
        &key,
        Some(body),
    )
    .await?;
    if status != 200 {
        return Err(format!("{status}: {body}"));
    }
    check_stream(&body, &text)
}

/// A decimal USD amount in nanodollars.
fn nanos(s: &str) -> i128 {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let frac = format!("{frac:0<9}");
    whole.parse::<i128>().expect("whole") * 1_000_000_000 + frac[..9].parse::<i128>().expect("frac")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_streams_for_a_minute_leave_nothing_behind() {
    let secs = env_or("GAMMAINFRA_SOAK_SECS", 60);
    let streams = env_or("GAMMAINFRA_SOAK_STREAMS", 1000) as usize;
    // This process holds a client and a simulator socket per stream.
    let limit = gammainfra::server::raise_open_files_limit().expect("open-files limit");
    assert!(
        limit >= 3 * streams as u64 + 256,
        "the open-files hard limit ({limit}) is too low for {streams} streams: raise it (ulimit -Hn)"
    );

    let anthropic = simulators::start_anthropic("sk-ant-soak")
        .await
        .expect("sim");
    let openai = simulators::start_openai("sk-openai-soak")
        .await
        .expect("sim");
    let bedrock = simulators::start_bedrock(BedrockSimConfig::new(AWS_KEY, AWS_SECRET))
        .await
        .expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    // Idle upstream connections are kept 2 s (not 90), so that the leak check after the
    // soak does not have to wait for the pool to let them go.
    std::fs::write(
        dir.path().join("gammainfra.toml"),
        "[timeouts]\npool_idle_ms = 2000\n",
    )
    .expect("config");
    let addr: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let log = |what: &str| std::fs::File::create(dir.path().join(what)).expect("log file");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gammainfra"))
        .args(["serve", "--listen", &addr.to_string(), "--config"])
        .arg(dir.path().join("gammainfra.toml"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "GAMMAINFRA_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("soak.db").display()),
        )
        .env("GAMMAINFRA_ADMIN_TOKEN", ADMIN)
        .env("ANTHROPIC_API_KEY", "sk-ant-soak")
        .env("ANTHROPIC_BASE_URL", anthropic.base_url())
        .env("OPENAI_API_KEY", "sk-openai-soak")
        .env("OPENAI_BASE_URL", openai.base_url())
        .env("AWS_ACCESS_KEY_ID", AWS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", bedrock.base_url())
        .env("AWS_ENDPOINT_URL_BEDROCK", bedrock.base_url())
        .env("GAMMAINFRA_BEDROCK_REGIONS", "us-east-1")
        .env("RUST_LOG", "warn")
        .stdout(log("out.log"))
        .stderr(log("err.log"))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn gammainfra serve");
    let pid = child.id().expect("pid");
    let gateway_log = || std::fs::read_to_string(dir.path().join("err.log")).unwrap_or_default();

    let admin_client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, _)) = send(&admin_client, addr, "GET", "/readyz", ADMIN, None).await {
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {}", gateway_log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = send(
        &admin_client,
        addr,
        "POST",
        "/admin/v1/accounts",
        ADMIN,
        Some(r#"{"email":"soak@example.com"}"#.to_owned()),
    )
    .await
    .expect("account");
    assert_eq!(status, 201, "{body}");
    let account: Value = serde_json::from_str(&body).expect("JSON");
    let id = account["id"].as_str().expect("id").to_owned();
    let key = account["api_key"].as_str().expect("key").to_owned();
    let (status, body) = send(
        &admin_client,
        addr,
        "POST",
        &format!("/admin/v1/accounts/{id}/topups"),
        ADMIN,
        Some(r#"{"amount_usd":"1000.00"}"#.to_owned()),
    )
    .await
    .expect("top-up");
    assert_eq!(status, 201, "{body}");

    // Warm up every path, let the pool's connections expire, and take the baseline.
    let warm: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let mut warm_cost = 0;
    for n in 0..MODELS.len() {
        warm_cost += one_stream(warm.clone(), addr, key.clone(), 0, n)
            .await
            .expect("warm-up stream");
    }
    drop(warm);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (tasks_before, _, _) = runtime(&admin_client, addr).await;
    let fds_before = open_fds(pid);
    let rss_idle = proc_status_kb(pid, "VmRSS");

    // The soak: every client runs streams back to back until the end.
    let clients: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(streams)
        .build_http();
    let end = Instant::now() + Duration::from_secs(secs);
    let completed = Arc::new(AtomicU64::new(0));
    let shown = Arc::new(std::sync::Mutex::new(0i128));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::with_capacity(streams);
    for i in 0..streams {
        let (clients, key) = (clients.clone(), key.clone());
        let (completed, shown, failures) = (completed.clone(), shown.clone(), failures.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < end {
                match one_stream(clients.clone(), addr, key.clone(), i, n).await {
                    Ok(cost) => {
                        completed.fetch_add(1, Ordering::Relaxed);
                        *shown.lock().expect("lock") += cost;
                    }
                    Err(e) => failures.lock().expect("lock").push(format!("{i}/{n}: {e}")),
                }
                n += 1;
            }
        }));
    }
    let mut rss_peak = 0;
    let mut connections_peak = 0;
    let mut fds_peak = 0;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_peak = rss_peak.max(proc_status_kb(pid, "VmRSS"));
        fds_peak = fds_peak.max(open_fds(pid));
        connections_peak = connections_peak.max(runtime(&admin_client, addr).await.1);
    }
    for w in workers {
        w.await.expect("worker");
    }
    let rss_end = proc_status_kb(pid, "VmRSS");
    drop(clients);

    // Afterwards: the clients' connections close, the pool lets the upstream ones go.
    let settle = Instant::now() + Duration::from_secs(15);
    let (tasks_after, connections_after, open_after, fds_after) = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (tasks, connections, open) = runtime(&admin_client, addr).await;
        let fds = open_fds(pid);
        // The admin client's own connection is one connection and one descriptor.
        if (tasks <= tasks_before && connections <= 1 && open == 0 && fds <= fds_before)
            || Instant::now() > settle
        {
            break (tasks, connections, open, fds);
        }
    };
    let failures = failures.lock().expect("lock").clone();
    let completed = completed.load(Ordering::Relaxed);
    let shown = *shown.lock().expect("lock");
    eprintln!(
        "soak: {streams} streams for {secs} s: {completed} completed, {} failed; gateway RSS \
         {} MB idle, {} MB peak, {} MB at the end; peak {connections_peak} connections, \
         {fds_peak} descriptors; tasks {tasks_before} before, {tasks_after} after; \
         descriptors {fds_before} before, {fds_after} after",
        failures.len(),
        rss_idle / 1024,
        rss_peak / 1024,
        rss_end / 1024,
    );
    assert!(failures.is_empty(), "every stream completes: {failures:#?}");
    assert!(
        connections_peak as usize >= streams,
        "the streams ran at once: {connections_peak} connections"
    );
    assert!(
        completed >= (streams as u64) * (secs / 15).max(1),
        "{completed} streams"
    );
    assert!(
        rss_peak < RSS_LIMIT_KB,
        "RSS peaked at {} MB",
        rss_peak / 1024
    );
    assert_eq!(open_after, 0, "no reservation left open");
    assert!(
        connections_after <= 1,
        "{connections_after} connections left"
    );
    assert!(
        tasks_after <= tasks_before,
        "tasks: {tasks_before} before, {tasks_after} after"
    );
    assert!(
        fds_after <= fds_before,
        "descriptors: {fds_before} before, {fds_after} after"
    );

    // The ledger: one charge per stream, nothing reserved, and the costs the clients
    // were shown are what the balance lost.
    let (status, body) = send(
        &admin_client,
        addr,
        "GET",
        &format!("/admin/v1/accounts/{id}"),
        ADMIN,
        None,
    )
    .await
    .expect("account view");
    assert_eq!(status, 200, "{body}");
    let view: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(view["reserved_usd"], "0.00", "{view}");
    assert_eq!(view["ledger_sum_usd"], view["balance_usd"], "{view}");
    let warmups = MODELS.len() as u64;
    assert_eq!(
        view["ledger_entries"].as_u64(),
        Some(2 + warmups + completed),
        "the trial, the top-up and one charge per stream: {view}"
    );
    let spent = nanos("1003.00") - nanos(view["balance_usd"].as_str().expect("balance"));
    assert_eq!(
        spent,
        warm_cost + shown,
        "the balance lost exactly the costs the clients were shown"
    );
    assert!(!gateway_log().contains("panicked"), "{}", gateway_log());
    child.kill().await.expect("kill");
}
