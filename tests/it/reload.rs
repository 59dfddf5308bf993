//! Operating without restarts: the catalog and configuration reloaded while serving
//! (`POST /admin/v1/reload`, `SIGHUP`, `gammainfra reload`), a broken catalog refused
//! while the old one keeps serving, shutdown bounded by its grace period, and start-up
//! reporting every problem at once.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::harness::*;

const PRICES: &str = r#"source = { kind = "provider", url = "https://example.com/test-prices", read = "2026-11-25" }"#;

/// A model on the OpenAI-compatible server `live` (the OpenAI simulator).
fn model(id: &str, upstream: &str, price: &str) -> String {
    format!(
        r#"
[[models]]
id = "{id}"
name = "{id}"
owned_by = "test"
context_window = 100000
max_output_tokens = 1000
capabilities = ["streaming"]

[[models.endpoints]]
provider = "openai_compatible:live"
upstream_id = "{upstream}"
verified = {{ date = "2026-11-25", method = "test" }}
pricing = {{ input = "{price}", output = "{price}", {PRICES} }}
"#
    )
}

fn catalog(extra: &str) -> String {
    format!("{}\n{extra}", gammainfra::catalog::DEFAULT_CATALOG)
}

/// A gateway whose catalog file is `path` (the built-in catalog plus `test/first`).
async fn gw_on(path: &std::path::Path) -> Gw {
    std::fs::write(path, catalog(&model("test/first", "sim-first", "1"))).expect("catalog");
    let path = path.to_owned();
    Gw::start_with(move |c| {
        c.catalog_path = Some(path);
        let live = c.openai.clone().expect("openai");
        c.openai_compatible = vec![("live".into(), live)];
    })
    .await
}

fn model_ids(r: &Resp) -> Vec<String> {
    r.json()["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_serves_a_new_model_and_a_broken_catalog_is_refused_while_the_old_one_serves() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("catalog.toml");
    let gw = gw_on(&path).await;
    let (_, key) = gw.account("reload@example.com").await;
    let before = gw.send("GET", "/v1/models", Some(&key), None, &[]).await;
    assert!(!model_ids(&before).contains(&"test/second".to_owned()));
    let r = gw
        .chat(&key, &chat_body("test/second", "hi", ""), &[])
        .await;
    assert_eq!(r.status, 404, "{}", r.text());

    // A catalog that adds a model.
    std::fs::write(
        &path,
        catalog(&format!(
            "{}{}",
            model("test/first", "sim-first", "1"),
            model("test/second", "sim-second", "2")
        )),
    )
    .expect("catalog");
    // The admin token is required.
    let r = gw
        .send("POST", "/admin/v1/reload", Some(&key), None, &[])
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = gw.admin("POST", "/admin/v1/reload", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "reload");
    assert_eq!(
        v["catalog"]["models_added"],
        serde_json::json!(["test/second"])
    );
    assert_eq!(v["catalog"]["models_removed"], serde_json::json!([]));
    assert_eq!(v["catalog"]["endpoints_added"], 1);
    assert_eq!(v["not_applied"], serde_json::json!([]), "{v}");
    let listed = gw.send("GET", "/v1/models", Some(&key), None, &[]).await;
    let ids = model_ids(&listed);
    assert!(ids.contains(&"test/second".to_owned()), "{ids:?}");
    assert_eq!(ids.len(), model_ids(&before).len() + 1);
    let one = gw
        .send("GET", "/v1/models/test/second", Some(&key), None, &[])
        .await;
    assert_eq!(one.status, 200, "{}", one.text());
    for extra in ["", r#""stream":true"#] {
        let r = gw
            .chat(&key, &chat_body("test/second", "hi", extra), &[])
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }

    // A broken catalog: refused with every problem, and nothing changes.
    std::fs::write(
        &path,
        catalog(&format!(
            "{}{}",
            model("test/second", "sim-second", "2"),
            model("test/third", "sim-third", "not-a-price")
        ))
        .replace("version = ", "version = \"\"\nunused_version = "),
    )
    .expect("catalog");
    let r = gw.admin("POST", "/admin/v1/reload", None).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.error_code(), "invalid_configuration");
    let v = r.json();
    let errors = v["error"]["errors"].as_array().expect("errors");
    assert!(!errors.is_empty(), "{v}");
    let text = r.text();
    assert!(text.contains("catalog.toml"), "the file is named: {text}");
    let after = gw.send("GET", "/v1/models", Some(&key), None, &[]).await;
    assert_eq!(after.body, listed.body, "/v1/models is unchanged");
    for model in ["test/first", "test/second"] {
        let r = gw.chat(&key, &chat_body(model, "hi", ""), &[]).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
    }
    let r = gw.chat(&key, &chat_body("test/third", "hi", ""), &[]).await;
    assert_eq!(r.status, 404, "{}", r.text());

    // A catalog that parses but breaks its rules is refused the same way, listing
    // each problem.
    std::fs::write(
        &path,
        catalog(&format!(
            "{}{}",
            model("test/first", "sim-first", "1"),
            model("test/first", "sim-first-again", "1")
        )),
    )
    .expect("catalog");
    let r = gw.admin("POST", "/admin/v1/reload", None).await;
    assert_eq!(r.status, 422, "{}", r.text());
    let after = gw.send("GET", "/v1/models", Some(&key), None, &[]).await;
    assert_eq!(after.body, listed.body, "/v1/models is unchanged");

    // A catalog that removes a model: it is gone for new requests.
    std::fs::write(&path, catalog(&model("test/second", "sim-second", "2"))).expect("catalog");
    let r = gw.admin("POST", "/admin/v1/reload", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["catalog"]["models_removed"],
        serde_json::json!(["test/first"])
    );
    let r = gw.chat(&key, &chat_body("test/first", "hi", ""), &[]).await;
    assert_eq!(r.status, 404, "{}", r.text());
}

/// A stream that started before a reload that changes its model's price is billed at
/// the price it started with; the next request pays the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_during_a_reload_is_billed_at_the_price_it_started_with() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("catalog.toml");
    let gw = gw_on(&path).await;
    let (account, key) = gw.account("price@example.com").await;
    let stream_body = chat_body(
        "test/first",
        "[[sim:drip 100]] one two three four five",
        r#""stream":true,"stream_options":{"include_usage":true}"#,
    );
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = hyper::Request::post(format!("{}/v1/chat/completions", gw.url))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(stream_body)))
        .expect("request");
    let resp = client.request(req).await.expect("stream");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    // The first frame: the request is routed, priced and reserved.
    let first = body.frame().await.expect("a frame").expect("frame");
    assert!(first.is_data());
    std::fs::write(&path, catalog(&model("test/first", "sim-first", "10"))).expect("catalog");
    let r = gw.admin("POST", "/admin/v1/reload", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rest = body.collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&rest);
    assert!(text.contains("[DONE]"), "{text}");
    let usage: serde_json::Value = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .find(|v| !v["usage"].is_null())
        .map(|v| v["usage"].clone())
        .expect("usage chunk");
    let tokens = usage["prompt_tokens"].as_u64().expect("prompt") as i128
        + usage["completion_tokens"].as_u64().expect("completion") as i128;
    gw.state.ledger.flush().await;
    let spent = |v: &serde_json::Value| usd_to_nanos(v["spent_usd"].as_str().expect("spent"));
    let after_first = spent(&gw.account_view(&account).await);
    // $1 per million tokens, both directions.
    assert_eq!(after_first, round_sum(&[nanos_at(tokens as u64, "1")]));
    // The next request pays the new price.
    let r = gw
        .chat(
            &key,
            &chat_body("test/first", "one two three four five", ""),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let u = &r.json()["usage"];
    let tokens =
        u["prompt_tokens"].as_u64().expect("p") + u["completion_tokens"].as_u64().expect("c");
    gw.state.ledger.flush().await;
    let after_second = spent(&gw.account_view(&account).await);
    assert_eq!(
        after_second - after_first,
        round_sum(&[nanos_at(tokens, "10")])
    );
}

/// A stream that never ends does not hold shutdown beyond its grace period, and is
/// billed for what it delivered; a short request in flight finishes normally meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cuts_a_never_ending_stream_after_the_grace_period_and_bills_it() {
    let grace = Duration::from_millis(2_500);
    let gw = Gw::start_with(|c| c.shutdown_grace = grace).await;
    let (account, key) = gw.account("shutdown@example.com").await;
    // A second server on the same state, which the test shuts down.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let url = format!("http://{addr}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gammainfra::server::serve(
        listener,
        gw.state.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let stream = |text: &str| {
        hyper::Request::post(format!("{url}/v1/chat/completions"))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(chat_body(
                "openai/gpt-4o-mini",
                text,
                r#""stream":true"#,
            ))))
            .expect("request")
    };
    let endless = client
        .request(stream("[[sim:endless]] go on forever"))
        .await
        .expect("endless");
    assert_eq!(endless.status(), 200);
    let mut endless = endless.into_body();
    let first = endless.frame().await.expect("a frame").expect("frame");
    assert!(first.is_data());
    let endless = tokio::spawn(async move {
        // Read until the gateway cuts the connection.
        while let Some(Ok(_)) = endless.frame().await {}
        Instant::now()
    });
    let short = client
        .request(stream("[[sim:drip 100]] a short answer"))
        .await
        .expect("short");
    assert_eq!(short.status(), 200);
    let short =
        tokio::spawn(async move { short.into_body().collect().await.map(|c| c.to_bytes()) });
    assert_eq!(gw.state.ledger.open_reservations(), 2);

    let t0 = Instant::now();
    stop.send(()).expect("stop");
    // Accepting stops at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "a stopping gateway accepts no new connection"
    );
    let short = short
        .await
        .expect("task")
        .expect("the short stream ends normally");
    let text = String::from_utf8_lossy(&short);
    assert!(text.contains("data: [DONE]"), "{text}");
    assert!(
        t0.elapsed() < grace,
        "the short stream finished within the grace period"
    );
    gw.state.ledger.flush().await;
    let spent_short = gw.state.ledger.balance(&account).expect("balance").spent;
    assert!(spent_short > gammainfra::money::Nanos::ZERO);

    tokio::time::timeout(grace + Duration::from_secs(10), server)
        .await
        .expect("shutdown ends soon after the grace period")
        .expect("task")
        .expect("serve");
    let took = t0.elapsed();
    assert!(
        took >= grace,
        "the endless stream had its grace period: {took:?}"
    );
    assert!(
        took < grace + Duration::from_secs(5),
        "shutdown is bounded by the grace period: {took:?}"
    );
    let cut_at = tokio::time::timeout(Duration::from_secs(5), endless)
        .await
        .expect("the endless stream's connection is cut")
        .expect("task");
    assert!(cut_at >= t0 + grace);
    // Both settled, the endless one for what it delivered, and nothing is held.
    assert_eq!(gw.state.ledger.open_reservations(), 0);
    let b = gw.state.ledger.balance(&account).expect("balance");
    assert!(b.spent > spent_short, "the cut stream is billed");
    assert_eq!(b.reserved, gammainfra::money::Nanos::ZERO);
    assert_eq!(b.in_flight, 0);
}

/// A free port on loopback (free when this returns).
fn free_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

async fn get(url: &str, path: &str, auth: Option<&str>) -> Option<(u16, String)> {
    call(url, "GET", path, auth, "").await
}

async fn call(
    url: &str,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> Option<(u16, String)> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(format!("{url}{path}"))
        .header("content-type", "application/json");
    if let Some(a) = auth {
        b = b.header("authorization", format!("Bearer {a}"));
    }
    let resp = client
        .request(
            b.body(Full::new(Bytes::from(body.to_owned())))
                .expect("request"),
        )
        .await
        .ok()?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The real binary: `SIGHUP` reloads the catalog, a broken one is refused and the old
/// one keeps serving; `gammainfra reload` reports a setting that needs a restart.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_real_binary_and_refuses_a_broken_catalog() {
    let dir = tempfile::tempdir().expect("dir");
    let openai = gammainfra::simulators::start_openai("sk-openai-test")
        .await
        .expect("openai sim");
    let catalog_path = dir.path().join("catalog.toml");
    let config_path = dir.path().join("gammainfra.toml");
    let compatible = format!(
        "[[providers.openai_compatible]]\nname = \"live\"\nbase_url = \"{}\"\napi_key = \"sk-openai-test\"\n",
        openai.base_url()
    );
    let config = format!("catalog = \"{}\"\n{compatible}", catalog_path.display());
    std::fs::write(&config_path, &config).expect("config");
    std::fs::write(
        &catalog_path,
        catalog(&model("test/first", "sim-first", "1")),
    )
    .expect("catalog");
    let addr = free_addr();
    let url = format!("http://{addr}");
    let log = dir.path().join("serve.log");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gammainfra"))
        .args(["serve", "--listen", &addr.to_string(), "--config"])
        .arg(&config_path)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "GAMMAINFRA_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("gw.db").display()),
        )
        .env("GAMMAINFRA_ADMIN_TOKEN", ADMIN)
        .env("GAMMAINFRA_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn gammainfra serve");
    let pid = child.id().expect("pid");
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&url, "/readyz", None).await.map(|r| r.0) != Some(200) {
        assert!(Instant::now() < deadline, "never ready: {}", logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, account) = call(
        &url,
        "POST",
        "/admin/v1/accounts",
        Some(ADMIN),
        r#"{"email":"hup@example.com"}"#,
    )
    .await
    .expect("account");
    assert_eq!(status, 201, "{account}");
    let account: serde_json::Value = serde_json::from_str(&account).expect("json");
    let key = account["api_key"].as_str().expect("key").to_owned();
    let models = || async {
        let (status, body) = get(&url, "/v1/models", Some(&key)).await.expect("models");
        assert_eq!(status, 200, "{body}");
        body
    };
    let initial = models().await;
    assert!(initial.contains("test/first") && !initial.contains("test/second"));
    let hup = || crate::harness::signal(pid, "-HUP");

    std::fs::write(
        &catalog_path,
        catalog(&format!(
            "{}{}",
            model("test/first", "sim-first", "1"),
            model("test/second", "sim-second", "1")
        )),
    )
    .expect("catalog");
    hup().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let reloaded = loop {
        let m = models().await;
        if m.contains("test/second") {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload: {}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    std::fs::write(&catalog_path, "version = \"broken\"\n[[models]]\nid = 3\n").expect("catalog");
    hup().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !logs().contains("the reload was refused") {
        assert!(Instant::now() < deadline, "no refusal logged: {}", logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(models().await, reloaded, "the old catalog keeps serving");
    assert_eq!(
        get(&url, "/readyz", None).await.map(|r| r.0),
        Some(200),
        "still serving"
    );

    // `gammainfra reload`: the same through the admin API, answering what changed and
    // which settings need a restart.
    std::fs::write(
        &catalog_path,
        catalog(&model("test/first", "sim-first", "1")),
    )
    .expect("catalog");
    std::fs::write(
        &config_path,
        format!("max_connections = 10\n{config}[limits]\nkey_requests_per_minute = 100\n"),
    )
    .expect("config");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gammainfra"))
        .arg("reload")
        .env("GAMMAINFRA_URL", &url)
        .env("GAMMAINFRA_ADMIN_TOKEN", ADMIN)
        .output()
        .await
        .expect("cli");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(
        v["catalog"]["models_removed"],
        serde_json::json!(["test/second"])
    );
    assert_eq!(v["applied"], serde_json::json!(["limits"]), "{v}");
    assert_eq!(
        v["not_applied"],
        serde_json::json!(["max_connections"]),
        "{v}"
    );
    assert!(logs().contains("apply only after a restart"), "{}", logs());
    assert!(!models().await.contains("test/second"));
    // A refused reload through the CLI exits non-zero with the problems.
    std::fs::write(&config_path, format!("max_connections = 0\n{config}")).expect("config");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gammainfra"))
        .arg("reload")
        .env("GAMMAINFRA_URL", &url)
        .env("GAMMAINFRA_ADMIN_TOKEN", ADMIN)
        .output()
        .await
        .expect("cli");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("422") && stderr.contains("max_connections"),
        "{stderr}"
    );

    // SIGTERM: a graceful exit.
    crate::harness::signal(pid, "-TERM").await;
    let mut child = child;
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits")
        .expect("status");
    assert!(status.success(), "{}", logs());
}

/// Start-up reports the configuration's problems and its catalog's together.
#[tokio::test]
async fn start_up_reports_every_problem_of_the_configuration_and_the_catalog_at_once() {
    let dir = tempfile::tempdir().expect("dir");
    let catalog_path = dir.path().join("catalog.toml");
    std::fs::write(
        &catalog_path,
        catalog(&format!(
            "{}{}",
            model("test/first", "sim-first", "1"),
            model("test/first", "sim-first-again", "1")
        )),
    )
    .expect("catalog");
    let config_path = dir.path().join("gammainfra.toml");
    std::fs::write(
        &config_path,
        format!(
            "listen = \"nope\"\ncatalog = \"{}\"\nmax_connections = 0\n[billing]\ntrial_usd = \"x\"\n",
            catalog_path.display()
        ),
    )
    .expect("config");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gammainfra"))
        .args(["serve", "--config"])
        .arg(&config_path)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "GAMMAINFRA_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("gw.db").display()),
        )
        .env("GAMMAINFRA_ADMIN_TOKEN", "short")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), out)
        .await
        .expect("exits at once")
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for problem in [
        "listen / GAMMAINFRA_LISTEN",
        "max_connections",
        "billing.trial_usd",
        "admin_token",
        "test/first",
    ] {
        assert!(stderr.contains(problem), "{problem}: {stderr}");
    }
    assert!(
        !dir.path().join("gw.db").exists(),
        "nothing started: {stderr}"
    );
}

/// Bedrock regions are checked against the catalog with the rest of the configuration.
#[tokio::test]
async fn bedrock_regions_unknown_to_the_catalog_are_reported_with_the_other_problems() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = gammainfra::config::Config::load(None, &|k| match k {
        "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".into()),
        "GAMMAINFRA_BEDROCK_REGIONS" => Some("us-east-1,xx-nowhere-9".into()),
        _ => None,
    })
    .expect("valid alone");
    config.catalog_path = Some(dir.path().join("missing.toml"));
    let e = gammainfra::gateway::validate(Ok(config.clone()), None).expect_err("missing");
    assert!(e.to_string().contains("missing.toml"), "{e}");
    config.catalog_path = None;
    let e = gammainfra::gateway::validate(Ok(config), None).expect_err("unknown region");
    assert!(e.to_string().contains("xx-nowhere-9"), "{e}");
}
