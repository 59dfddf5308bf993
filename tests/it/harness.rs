//! Starts a gateway in front of fresh simulators and talks to it over HTTP.

use std::collections::HashMap;

use bytes::Bytes;
use gammainfra::config::{BedrockAuthConfig, BedrockConfig, Config, Secret};
use gammainfra::server::AppState;
use gammainfra::simulators::{self, Simulator};
use http_body_util::{BodyExt, Full};
use hyper::HeaderMap;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub const ADMIN: &str = "test-admin-token-0123456789";

pub const AWS_KEY: &str = "AKIDGAMMAINFRATEST";
pub const AWS_SECRET: &str = "gammainfra/test/secret/key/EXAMPLEKEY";

/// The database a test gateway runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the backend tests use, from `GAMMAINFRA_TEST_POSTGRES_URL`
/// (`.ci/run` sets it). Unset: PostgreSQL tests are skipped with a note (a developer
/// without PostgreSQL runs everything else). Set: the server must answer, or the
/// tests fail.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var("GAMMAINFRA_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("GAMMAINFRA_TEST_POSTGRES_URL is not set: skipping a PostgreSQL test");
    }
    url
}

/// The Redis server the shared rate-limit tests use, from `GAMMAINFRA_TEST_REDIS_URL`
/// (`.ci/run` sets it). Unset: those tests are skipped with a note. Set: the server
/// must answer, or the tests fail.
pub async fn redis_url() -> Option<String> {
    let url = std::env::var("GAMMAINFRA_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let Some(url) = url else {
        eprintln!("GAMMAINFRA_TEST_REDIS_URL is not set: skipping a Redis test");
        return None;
    };
    let client = redis::Client::open(url.as_str())
        .unwrap_or_else(|e| panic!("GAMMAINFRA_TEST_REDIS_URL `{url}`: {e}"));
    let mut c = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .unwrap_or_else(|_| panic!("Redis at GAMMAINFRA_TEST_REDIS_URL does not answer"))
    .unwrap_or_else(|e| panic!("Redis at GAMMAINFRA_TEST_REDIS_URL is unreachable: {e}"));
    let pong: String = redis::cmd("PING")
        .query_async(&mut c)
        .await
        .unwrap_or_else(|e| panic!("Redis at GAMMAINFRA_TEST_REDIS_URL: {e}"));
    assert_eq!(pong, "PONG");
    Some(url)
}

impl Backend {
    /// PostgreSQL, if configured for the tests (see [`postgres_url`]).
    pub fn postgres() -> Option<Backend> {
        postgres_url().map(|_| Backend::Postgres)
    }

    /// A new, empty database for one gateway: a file in `dir`, or a fresh schema on
    /// the test PostgreSQL server (so that tests run in parallel without sharing rows).
    pub async fn fresh_database(self, dir: &std::path::Path) -> String {
        match self {
            Backend::Sqlite => format!("sqlite://{}", dir.join("t.db").display()),
            Backend::Postgres => {
                let base = postgres_url().expect("GAMMAINFRA_TEST_POSTGRES_URL");
                let schema = format!("gi_test_{}", hex::encode(rand::random::<[u8; 8]>()));
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&base)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL at GAMMAINFRA_TEST_POSTGRES_URL is unreachable: {e}")
                    });
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&pool)
                    .await
                    .expect("create schema");
                pool.close().await;
                let sep = if base.contains('?') { '&' } else { '?' };
                format!("{base}{sep}options[search_path]={schema}")
            }
        }
    }
}

pub struct Gw {
    pub url: String,
    pub backend: Backend,
    pub anthropic: Simulator,
    pub openai: Simulator,
    pub bedrock: Simulator,
    pub state: AppState,
    database_url: String,
    client: Client<HttpConnector, Full<Bytes>>,
    _dir: tempfile::TempDir,
    _server: tokio::task::JoinHandle<()>,
}

pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).and_then(|v| v.to_str().ok())
    }
    /// The `data:` payloads of an SSE body, in order.
    pub fn sse_data(&self) -> Vec<String> {
        self.text()
            .split("\n\n")
            .filter_map(|ev| {
                ev.lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .map(str::to_owned)
            })
            .collect()
    }
    /// Asserts the OpenAI error shape and returns `error.code`.
    pub fn error_code(&self) -> String {
        let v = self.json();
        let e = &v["error"];
        assert!(
            e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error.message: {v}"
        );
        assert!(e["type"].is_string(), "error.type: {v}");
        assert!(e.get("param").is_some(), "error.param: {v}");
        e["code"].as_str().unwrap_or_default().to_owned()
    }
}

impl Gw {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(edit: impl FnOnce(&mut Config)) -> Self {
        Self::start_with_catalog("", edit).await
    }

    /// A gateway whose catalog is the built-in one plus `extra_models` (TOML), written
    /// into the gateway's own temporary directory so it lives as long as the gateway.
    pub async fn start_with_catalog(extra_models: &str, edit: impl FnOnce(&mut Config)) -> Self {
        Self::start_full(Backend::Sqlite, extra_models, edit).await
    }

    /// A gateway on `backend` with the built-in catalog.
    pub async fn start_on(backend: Backend, edit: impl FnOnce(&mut Config)) -> Self {
        Self::start_full(backend, "", edit).await
    }

    pub async fn start_full(
        backend: Backend,
        extra_models: &str,
        edit: impl FnOnce(&mut Config),
    ) -> Self {
        Self::start_in(backend, extra_models, None, &[], edit).await
    }

    /// A gateway whose simulated AWS account also has model access in `regions` (by
    /// default only us-east-1, us-west-2 and eu-central-1). The gateway's own Bedrock
    /// regions are still set by `edit`.
    pub async fn start_with_bedrock_access(
        regions: &[&str],
        edit: impl FnOnce(&mut Config),
    ) -> Self {
        Self::start_in(Backend::Sqlite, "", None, regions, edit).await
    }

    /// Another replica of a gateway on the PostgreSQL database `database_url` (with
    /// simulators of its own).
    pub async fn start_replica(database_url: &str, edit: impl FnOnce(&mut Config)) -> Self {
        Self::start_in(
            Backend::Postgres,
            "",
            Some(database_url.to_owned()),
            &[],
            edit,
        )
        .await
    }

    /// The database URL this gateway runs on.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    async fn start_in(
        backend: Backend,
        extra_models: &str,
        database_url: Option<String>,
        bedrock_access: &[&str],
        edit: impl FnOnce(&mut Config),
    ) -> Self {
        let anthropic = simulators::start_anthropic("sk-ant-test")
            .await
            .expect("anthropic sim");
        let openai = simulators::start_openai("sk-openai-test")
            .await
            .expect("openai sim");
        let mut bedrock_cfg = simulators::BedrockSimConfig::new(AWS_KEY, AWS_SECRET);
        bedrock_cfg.accessible_regions = vec![
            "us-east-1".into(),
            "us-west-2".into(),
            "eu-central-1".into(),
        ];
        bedrock_cfg
            .accessible_regions
            .extend(bedrock_access.iter().map(|r| (*r).to_owned()));
        let bedrock = simulators::start_bedrock(bedrock_cfg)
            .await
            .expect("bedrock sim");
        let dir = tempfile::tempdir().expect("tempdir");
        let database_url = match database_url {
            Some(u) => u,
            None => backend.fresh_database(dir.path()).await,
        };
        let env: HashMap<&str, String> = HashMap::from([
            ("GAMMAINFRA_ADMIN_TOKEN", ADMIN.to_owned()),
            ("ANTHROPIC_API_KEY", "sk-ant-test".to_owned()),
            ("ANTHROPIC_BASE_URL", anthropic.base_url()),
            ("OPENAI_API_KEY", "sk-openai-test".to_owned()),
            ("OPENAI_BASE_URL", openai.base_url()),
            ("GAMMAINFRA_DATABASE_URL", database_url.clone()),
        ]);
        let mut config = Config::load(None, &|k| env.get(k).cloned()).expect("config");
        config.bedrock = Some(BedrockConfig {
            regions: vec!["us-east-1".into()],
            endpoint_url: Some(bedrock.base_url()),
            control_endpoint_url: Some(bedrock.base_url()),
            auth: BedrockAuthConfig::Static {
                access_key_id: AWS_KEY.into(),
                secret_access_key: Secret::new(AWS_SECRET),
                session_token: None,
            },
            allow_private_image_urls: false,
        });
        if !extra_models.is_empty() {
            let path = dir.path().join("catalog.toml");
            let text = format!("{}\n{extra_models}", gammainfra::catalog::DEFAULT_CATALOG);
            std::fs::write(&path, text).expect("write catalog");
            config.catalog_path = Some(path);
        }
        edit(&mut config);
        let state = gammainfra::gateway::build(config).await.expect("gateway");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let st = state.clone();
        let server = tokio::spawn(async move {
            let _ = gammainfra::server::serve(listener, st, std::future::pending()).await;
        });
        Self {
            url,
            backend,
            anthropic,
            openai,
            bedrock,
            state,
            database_url,
            client: Client::builder(TokioExecutor::new()).build_http(),
            _dir: dir,
            _server: server,
        }
    }

    /// Stops the gateway and waits until its database file is free (its lock goes with
    /// the last handle on the ledger: the server, its connections and the usage writer),
    /// so that another gateway can open `database_url`: a restart.
    pub async fn stop(self, database_url: &str) {
        let Gw {
            state,
            client,
            _server,
            ..
        } = self;
        _server.abort();
        let _ = _server.await;
        drop(client);
        drop(state);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            match gammainfra::ledger::Store::open(database_url).await {
                Ok(s) => {
                    s.close().await;
                    return;
                }
                Err(gammainfra::ledger::StoreError::Locked(_))
                    if std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("the stopped gateway's database cannot be reopened: {e}"),
            }
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url));
        if let Some(a) = auth {
            b = b.header("authorization", format!("Bearer {a}"));
        }
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b
            .body(Full::new(Bytes::from(body.unwrap_or_default().to_owned())))
            .expect("request");
        let resp = self.client.request(req).await.expect("gateway answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn chat(&self, key: &str, body: &str, headers: &[(&str, &str)]) -> Resp {
        self.send(
            "POST",
            "/v1/chat/completions",
            Some(key),
            Some(body),
            headers,
        )
        .await
    }

    /// Creates a key for `account` with the admin API's `body`; returns (key id, key).
    pub async fn key_with(&self, account: &str, body: &str) -> (String, String) {
        let r = self
            .admin(
                "POST",
                &format!("/admin/v1/accounts/{account}/keys"),
                Some(body),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let v = r.json();
        (
            v["key_id"].as_str().expect("id").to_owned(),
            v["api_key"].as_str().expect("key").to_owned(),
        )
    }

    pub async fn admin(&self, method: &str, path: &str, body: Option<&str>) -> Resp {
        self.send(method, path, Some(ADMIN), body, &[]).await
    }

    /// Creates an account; returns (account id, api key).
    pub async fn account(&self, email: &str) -> (String, String) {
        let r = self
            .admin(
                "POST",
                "/admin/v1/accounts",
                Some(&format!(r#"{{"email":"{email}"}}"#)),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let v = r.json();
        (
            v["id"].as_str().expect("id").to_owned(),
            v["api_key"].as_str().expect("key").to_owned(),
        )
    }

    pub async fn credits(&self, key: &str) -> Value {
        let r = self.send("GET", "/v1/credits", Some(key), None, &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    /// The admin view: balance and the ledger sum straight from the database.
    pub async fn account_view(&self, id: &str) -> Value {
        let r = self
            .admin("GET", &format!("/admin/v1/accounts/{id}"), None)
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }
}

/// `{"model": model, "messages": [{"role":"user","content": text}]}` plus extra fields.
/// Sends `signal` (`-TERM`, `-HUP`, …) to the process `pid` with kill(1), and checks it
/// was delivered.
pub async fn signal(pid: u32, signal: &str) {
    let s = tokio::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .await
        .expect("kill");
    assert!(s.success(), "kill {signal} {pid}");
}

pub fn chat_body(model: &str, text: &str, extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { "," };
    format!(
        r#"{{"model":{},"messages":[{{"role":"user","content":{}}}]{sep}{extra}}}"#,
        serde_json::to_string(model).expect("json"),
        serde_json::to_string(text).expect("json")
    )
}

/// Nano-dollars of `tokens` at a price in USD per million tokens given as a decimal
/// string, computed independently of the gateway's money module (as exact rationals).
pub fn nanos_at(tokens: u64, price_per_mtok: &str) -> (i128, i128) {
    // price = digits / 10^scale USD per 1e6 tokens → tokens*digits*1e9 / (10^scale*1e6) nano
    let (int, frac) = price_per_mtok
        .split_once('.')
        .unwrap_or((price_per_mtok, ""));
    let digits: i128 = format!("{int}{frac}").parse().expect("price digits");
    let scale = 10i128.pow(frac.len() as u32);
    (tokens as i128 * digits * 1_000_000_000, scale * 1_000_000)
}

/// Sum of rationals rounded half-up to an integer, as a decimal dollar string with
/// the gateway's formatting rules checked separately.
pub fn round_sum(parts: &[(i128, i128)]) -> i128 {
    let den: i128 = 1_000_000_000_000_000; // common denominator: every scale divides it
    let num: i128 = parts.iter().map(|(n, d)| n * (den / d)).sum();
    (num + den / 2) / den
}

pub fn usd_to_nanos(s: &str) -> i128 {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let neg = int.starts_with('-');
    let int: i128 = int.trim_start_matches('-').parse().expect("int");
    let mut f = frac.to_owned();
    while f.len() < 9 {
        f.push('0');
    }
    let v = int * 1_000_000_000 + f.parse::<i128>().expect("frac");
    if neg {
        -v
    } else {
        v
    }
}

/// The catalog price of an endpoint, as written in the catalog.
pub fn price(gw: &Gw, upstream_id: &str, which: &str) -> String {
    let c = &gw.state.catalog;
    let e = c
        .models
        .iter()
        .flat_map(|m| m.endpoints.iter())
        .find(|e| e.upstream_id == upstream_id)
        .expect("endpoint");
    let v = serde_json::to_value(&e.pricing).expect("pricing");
    v[which].as_str().expect("price").to_owned()
}

/// Declares each named `async fn name(backend: Backend)` of the calling module as two
/// tests: `sqlite::name`, and `postgres::name`, which runs on PostgreSQL when
/// `GAMMAINFRA_TEST_POSTGRES_URL` is set (and is skipped with a note otherwise).
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::harness::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(b) = $crate::harness::Backend::postgres() {
                        super::$name(b).await
                    }
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;
