//! Traces and logs of the real binary (`serve --demo`): spans exported over OTLP/HTTP to
//! a collector stand-in on a loopback port, and JSON logs on standard error. The
//! exporter is configured from the process environment, hence a process of its own.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use crate::harness::{chat_body, usd_to_nanos};

/// What the collector stand-in received: `(content-type, body)` of each export.
type Received = Arc<Mutex<Vec<(String, Bytes)>>>;

/// A collector stand-in: `POST /v1/traces` recorded and answered with an empty success.
async fn collector() -> (SocketAddr, Received) {
    let got: Received = Arc::default();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post({
            let got = got.clone();
            move |headers: HeaderMap, body: Bytes| async move {
                let ct = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                got.lock().expect("lock").push((ct.clone(), body));
                if ct.contains("json") {
                    (
                        [("content-type", "application/json")],
                        Bytes::from_static(b"{}"),
                    )
                } else {
                    ([("content-type", "application/x-protobuf")], Bytes::new())
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, got)
}

/// `gammainfra serve --demo` with `env` set, its key read from the banner, its logs in a
/// file.
struct Gateway {
    child: tokio::process::Child,
    addr: SocketAddr,
    key: String,
    dir: tempfile::TempDir,
}

impl Gateway {
    async fn start(env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr: SocketAddr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gammainfra"));
        cmd.args(["serve", "--demo", "--listen", &addr.to_string()])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TMPDIR", dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("err.log")).expect("log"))
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn gammainfra serve --demo");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let key = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("stdout") {
                if let Some(k) = line.split("API key: ").nth(1) {
                    return k.trim().to_owned();
                }
            }
            panic!("the demo printed no API key");
        })
        .await
        .expect("the demo starts");
        // The rest of the banner, read so that the pipe never fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            addr,
            key,
            dir,
        }
    }

    async fn post(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> Resp {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let mut b = hyper::Request::builder()
            .method("POST")
            .uri(format!("http://{}{path}", self.addr))
            .header("authorization", format!("Bearer {}", self.key))
            .header("content-type", "application/json");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("request");
        let resp = client.request(req).await.expect("the gateway answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// SIGTERM, and the exit (after the last spans are exported); returns the log.
    async fn stop(mut self) -> String {
        crate::harness::signal(self.child.id().expect("pid"), "-TERM").await;
        let st = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the gateway stops")
            .expect("wait");
        let log = std::fs::read_to_string(self.dir.path().join("err.log")).unwrap_or_default();
        assert!(st.success(), "exited with {st}: {log}");
        log
    }
}

struct Resp {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Resp {
    fn header(&self, k: &str) -> &str {
        self.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {k} header"))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A span's attributes, as strings, integers, floats and booleans.
#[derive(Debug)]
enum V {
    S(String),
    I(i64),
    F(f64),
    B(bool),
}

fn attrs(s: &Span) -> HashMap<String, V> {
    s.attributes
        .iter()
        .filter_map(|kv| {
            let v = match kv.value.as_ref()?.value.as_ref()? {
                Any::StringValue(s) => V::S(s.clone()),
                Any::IntValue(i) => V::I(*i),
                Any::DoubleValue(f) => V::F(*f),
                Any::BoolValue(b) => V::B(*b),
                _ => return None,
            };
            Some((kv.key.clone(), v))
        })
        .collect()
}

fn s<'a>(a: &'a HashMap<String, V>, k: &str) -> &'a str {
    match a.get(k) {
        Some(V::S(s)) => s,
        other => panic!("{k}: {other:?} in {a:?}"),
    }
}

fn i(a: &HashMap<String, V>, k: &str) -> i64 {
    match a.get(k) {
        Some(V::I(i)) => *i,
        other => panic!("{k}: {other:?} in {a:?}"),
    }
}

/// Every span the collector received, and the resource's string attributes.
fn spans(got: &Received) -> (Vec<Span>, Vec<(String, String)>) {
    let mut out = Vec::new();
    let mut resource = Vec::new();
    for (ct, body) in got.lock().expect("lock").iter() {
        assert_eq!(ct, "application/x-protobuf", "the default protocol");
        let req = ExportTraceServiceRequest::decode(body.clone()).expect("OTLP protobuf");
        for rs in req.resource_spans {
            if let Some(r) = rs.resource {
                for kv in r.attributes {
                    if let Some(Any::StringValue(v)) = kv.value.and_then(|v| v.value) {
                        resource.push((kv.key, v));
                    }
                }
            }
            for ss in rs.scope_spans {
                out.extend(ss.spans);
            }
        }
    }
    (out, resource)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The usage an answer reports: (prompt_tokens, completion_tokens).
fn usage_of(v: &Value) -> (i64, i64) {
    (
        v["usage"]["prompt_tokens"].as_i64().expect("prompt_tokens"),
        v["usage"]["completion_tokens"]
            .as_i64()
            .expect("completion_tokens"),
    )
}

/// A request span per request, named `chat {model}` with the GenAI attributes and the
/// answer's own token counts and cost, its upstream call as a client span under it, the
/// client's `traceparent` as its parent; a stream's span ends at its settlement with its
/// time to first chunk. The JSON log has one `request finished` line per request, and
/// neither the key nor the prompt appears anywhere in it.
#[tokio::test]
async fn traces_are_exported_over_otlp_and_json_logs_name_each_request() {
    let (collector, got) = collector().await;
    let gw = Gateway::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}")),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ("GAMMAINFRA_LOG_FORMAT", "json".into()),
    ])
    .await;
    let prompt = "the secret prompt text 7f3a";
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{parent_id}-01");

    // Non-streamed, under the client's trace.
    let plain = gw
        .post(
            "/v1/chat/completions",
            &chat_body("openai/gpt-4o-mini", prompt, r#""max_tokens":50"#),
            &[("traceparent", &traceparent)],
        )
        .await;
    assert_eq!(plain.status, 200, "{}", plain.text());
    let plain_id = plain.header("x-request-id").to_owned();
    let plain_usage = usage_of(&serde_json::from_slice(&plain.body).expect("json"));
    let plain_cost = usd_to_nanos(plain.header("x-gammainfra-cost-usd"));

    // Streamed, with the usage chunk.
    let streamed = gw
        .post(
            "/v1/chat/completions",
            &chat_body(
                "anthropic/claude-sonnet-4-6",
                prompt,
                r#""stream":true,"stream_options":{"include_usage":true}"#,
            ),
            &[],
        )
        .await;
    assert_eq!(streamed.status, 200, "{}", streamed.text());
    let stream_id = streamed.header("x-request-id").to_owned();
    // Wherever it was routed, by the conventions' names.
    let stream_provider = match streamed.header("x-gammainfra-provider") {
        "bedrock" => "aws.bedrock",
        p => p,
    }
    .to_owned();
    let last: Value = streamed
        .text()
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|v| v["usage"].is_object())
        .last()
        .expect("a usage chunk");
    let stream_usage = usage_of(&last);

    // Refused: an unknown model.
    let refused = gw
        .post(
            "/v1/chat/completions",
            &chat_body("no-such-model", prompt, ""),
            &[],
        )
        .await;
    assert_eq!(refused.status, 404, "{}", refused.text());
    let refused_id = refused.header("x-request-id").to_owned();

    let key = gw.key.clone();
    let log = gw.stop().await;
    let (spans, resource) = spans(&got);
    assert!(
        resource
            .iter()
            .any(|(k, v)| k == "service.name" && v == "gammainfra"),
        "{resource:?}"
    );
    let server = |id: &str| {
        spans
            .iter()
            .find(|sp| {
                sp.kind == SpanKind::Server as i32
                    && matches!(attrs(sp).get("gammainfra.request_id"), Some(V::S(r)) if r == id)
            })
            .unwrap_or_else(|| panic!("no span for {id} in {spans:#?}"))
    };
    let children = |parent: &Span| -> Vec<&Span> {
        spans
            .iter()
            .filter(|sp| sp.parent_span_id == parent.span_id)
            .collect()
    };

    // The non-streamed request.
    let sp = server(&plain_id);
    assert_eq!(sp.name, "chat openai/gpt-4o-mini");
    assert_eq!(hex(&sp.trace_id), trace_id, "the client's trace");
    assert_eq!(hex(&sp.parent_span_id), parent_id, "the client's span");
    let a = attrs(sp);
    assert_eq!(s(&a, "gen_ai.operation.name"), "chat");
    assert_eq!(s(&a, "gen_ai.provider.name"), "openai");
    assert_eq!(s(&a, "gen_ai.request.model"), "openai/gpt-4o-mini");
    assert_eq!(s(&a, "gen_ai.response.model"), "gpt-4o-mini");
    assert_eq!(i(&a, "gen_ai.request.max_tokens"), 50);
    assert!(matches!(a.get("gen_ai.request.stream"), Some(V::B(false))));
    assert_eq!(i(&a, "gen_ai.usage.input_tokens"), plain_usage.0);
    assert_eq!(i(&a, "gen_ai.usage.output_tokens"), plain_usage.1);
    assert_eq!(i(&a, "http.response.status_code"), 200);
    assert_eq!(i128::from(i(&a, "gammainfra.cost_nanodollars")), plain_cost);
    assert!(s(&a, "gammainfra.account").starts_with("acct_"));
    assert!(s(&a, "gammainfra.key_id").starts_with("key_"));
    assert!(!a.contains_key("error.type"));
    let up = children(sp);
    assert_eq!(up.len(), 1, "one upstream call: {up:#?}");
    assert_eq!(up[0].kind, SpanKind::Client as i32);
    assert_eq!(up[0].trace_id, sp.trace_id);
    assert_eq!(up[0].name, "chat gpt-4o-mini");
    let ua = attrs(up[0]);
    assert_eq!(s(&ua, "server.address"), "127.0.0.1");
    assert_eq!(s(&ua, "gammainfra.endpoint"), "openai:gpt-4o-mini");
    assert_eq!(s(&ua, "gammainfra.outcome"), "answered");
    assert_eq!(i(&ua, "gen_ai.usage.output_tokens"), plain_usage.1);
    // The gateway's part holds the upstream's.
    assert!(up[0].start_time_unix_nano >= sp.start_time_unix_nano);
    assert!(up[0].end_time_unix_nano <= sp.end_time_unix_nano);

    // The stream: a trace of its own, ended at settlement.
    let sp = server(&stream_id);
    assert_eq!(sp.name, "chat anthropic/claude-sonnet-4-6");
    assert!(sp.parent_span_id.is_empty(), "no parent given");
    assert_ne!(hex(&sp.trace_id), trace_id);
    let a = attrs(sp);
    assert_eq!(s(&a, "gen_ai.provider.name"), stream_provider);
    assert!(matches!(a.get("gen_ai.request.stream"), Some(V::B(true))));
    assert_eq!(i(&a, "gen_ai.usage.input_tokens"), stream_usage.0);
    assert_eq!(i(&a, "gen_ai.usage.output_tokens"), stream_usage.1);
    assert_eq!(s(&a, "gammainfra.billing_status"), "completed");
    match a.get("gen_ai.response.time_to_first_chunk") {
        Some(V::F(t)) => assert!(*t > 0.0 && *t < 30.0, "{t}"),
        other => panic!("time to first chunk: {other:?}"),
    }
    let up = children(sp);
    assert_eq!(up.len(), 1, "{up:#?}");
    assert_eq!(s(&attrs(up[0]), "gen_ai.provider.name"), stream_provider);
    assert_eq!(
        i(&attrs(up[0]), "gen_ai.usage.output_tokens"),
        stream_usage.1
    );

    // The refusal.
    let a = attrs(server(&refused_id));
    assert_eq!(i(&a, "http.response.status_code"), 404);
    assert_eq!(s(&a, "error.type"), "model_not_found");

    // The logs: JSON lines, one `request finished` per request; no key, no prompt.
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let finished = |id: &str| -> &Value {
        let mut it = lines
            .iter()
            .filter(|l| l["message"] == "request finished" && l["request_id"] == id);
        let l = it
            .next()
            .unwrap_or_else(|| panic!("no line for {id}: {log}"));
        assert!(it.next().is_none(), "one line for {id}");
        l
    };
    let l = finished(&plain_id);
    assert_eq!(l["level"], "INFO");
    assert_eq!(l["status"], 200);
    assert_eq!(l["model"], "openai/gpt-4o-mini");
    assert_eq!(l["provider"], "openai");
    assert_eq!(l["input_tokens"], plain_usage.0);
    assert_eq!(l["output_tokens"], plain_usage.1);
    assert_eq!(
        usd_to_nanos(l["cost_usd"].as_str().expect("cost")),
        plain_cost
    );
    assert!(l["account_id"]
        .as_str()
        .is_some_and(|a| a.starts_with("acct_")));
    assert!(l["key_id"].as_str().is_some_and(|k| k.starts_with("key_")));
    assert!(l["duration_ms"].is_u64());
    let l = finished(&stream_id);
    assert_eq!(l["stream"], true);
    assert_eq!(l["output_tokens"], stream_usage.1);
    assert_eq!(finished(&refused_id)["status"], 404);
    assert!(!log.contains(&key), "the key is never logged");
    assert!(!log.contains(prompt), "the prompt is never logged");
}

/// An embeddings request is traced and logged as a chat request is: a server span named
/// `embeddings {model}` (operation `embeddings`) under the client's trace, its upstream
/// call under it, and one `request finished` line with the route, the key, the endpoint,
/// the tokens and the cost billed; a refusal has its span and line too.
#[tokio::test]
async fn embeddings_requests_are_traced_and_logged() {
    let (collector, got) = collector().await;
    let gw = Gateway::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}")),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ("GAMMAINFRA_LOG_FORMAT", "json".into()),
    ])
    .await;
    let trace_id = "5bf92f3577b34da6a3ce929d0e0e4737";
    let parent_id = "10f067aa0ba902b8";
    let traceparent = format!("00-{trace_id}-{parent_id}-01");
    let text = "the secret text to embed 9c2e";
    let ok = gw
        .post(
            "/v1/embeddings",
            &format!(
                r#"{{"model":"openai/text-embedding-3-small","input":["{text}","two words"]}}"#
            ),
            &[("traceparent", &traceparent)],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let ok_id = ok.header("x-request-id").to_owned();
    let body: Value = serde_json::from_slice(&ok.body).expect("json");
    let tokens = body["usage"]["prompt_tokens"]
        .as_i64()
        .expect("prompt_tokens");
    let cost = usd_to_nanos(ok.header("x-gammainfra-cost-usd"));
    assert!(tokens > 0 && cost > 0, "{body}");
    let refused = gw
        .post(
            "/v1/embeddings",
            r#"{"model":"openai/gpt-4o-mini","input":"hi"}"#,
            &[],
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    let refused_id = refused.header("x-request-id").to_owned();

    let key = gw.key.clone();
    let log = gw.stop().await;
    let (spans, _) = spans(&got);
    let server = |id: &str| {
        spans
            .iter()
            .find(|sp| {
                sp.kind == SpanKind::Server as i32
                    && matches!(attrs(sp).get("gammainfra.request_id"), Some(V::S(r)) if r == id)
            })
            .unwrap_or_else(|| panic!("no span for {id} in {spans:#?}"))
    };
    let sp = server(&ok_id);
    assert_eq!(sp.name, "embeddings openai/text-embedding-3-small");
    assert_eq!(hex(&sp.trace_id), trace_id, "the client's trace");
    assert_eq!(hex(&sp.parent_span_id), parent_id, "the client's span");
    let a = attrs(sp);
    assert_eq!(s(&a, "gen_ai.operation.name"), "embeddings");
    assert_eq!(s(&a, "http.route"), "/v1/embeddings");
    assert_eq!(s(&a, "gen_ai.provider.name"), "openai");
    assert_eq!(
        s(&a, "gen_ai.request.model"),
        "openai/text-embedding-3-small"
    );
    assert_eq!(s(&a, "gen_ai.response.model"), "text-embedding-3-small");
    assert_eq!(i(&a, "gen_ai.usage.input_tokens"), tokens);
    assert_eq!(i(&a, "gen_ai.usage.output_tokens"), 0);
    assert_eq!(i(&a, "http.response.status_code"), 200);
    assert_eq!(i128::from(i(&a, "gammainfra.cost_nanodollars")), cost);
    assert_eq!(s(&a, "gammainfra.billing_status"), "completed");
    assert_eq!(i(&a, "gammainfra.attempts"), 1);
    assert!(s(&a, "gammainfra.account").starts_with("acct_"));
    assert!(s(&a, "gammainfra.key_id").starts_with("key_"));
    let up: Vec<&Span> = spans
        .iter()
        .filter(|c| c.parent_span_id == sp.span_id)
        .collect();
    assert_eq!(up.len(), 1, "one upstream call: {up:#?}");
    assert_eq!(up[0].kind, SpanKind::Client as i32);
    assert_eq!(up[0].name, "embeddings text-embedding-3-small");
    let ua = attrs(up[0]);
    assert_eq!(s(&ua, "gen_ai.operation.name"), "embeddings");
    assert_eq!(
        s(&ua, "gammainfra.endpoint"),
        "openai:text-embedding-3-small"
    );
    assert_eq!(s(&ua, "gammainfra.outcome"), "answered");
    assert_eq!(i(&ua, "gen_ai.usage.input_tokens"), tokens);
    let a = attrs(server(&refused_id));
    assert_eq!(s(&a, "gen_ai.operation.name"), "embeddings");
    assert_eq!(i(&a, "http.response.status_code"), 400);
    assert_eq!(s(&a, "error.type"), "not_an_embedding_model");

    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let finished = |id: &str| -> &Value {
        let mut it = lines
            .iter()
            .filter(|l| l["message"] == "request finished" && l["request_id"] == id);
        let l = it
            .next()
            .unwrap_or_else(|| panic!("no line for {id}: {log}"));
        assert!(it.next().is_none(), "one line for {id}");
        l
    };
    let l = finished(&ok_id);
    assert_eq!(l["level"], "INFO");
    assert_eq!(l["target"], "gammainfra::requests");
    assert_eq!(l["route"], "/v1/embeddings");
    assert!(l["account_id"]
        .as_str()
        .is_some_and(|a| a.starts_with("acct_")));
    assert!(l["key_id"].as_str().is_some_and(|k| k.starts_with("key_")));
    assert_eq!(l["model"], "openai/text-embedding-3-small");
    assert_eq!(l["provider"], "openai");
    assert_eq!(l["endpoint"], "openai:text-embedding-3-small");
    assert_eq!(l["region"], "unknown");
    assert_eq!(l["status"], 200);
    assert_eq!(l["attempts"], 1);
    assert_eq!(l["input_tokens"], tokens);
    assert_eq!(usd_to_nanos(l["cost_usd"].as_str().expect("cost")), cost);
    assert_eq!(l["billing"], "completed");
    assert!(l["duration_ms"].is_u64());
    let l = finished(&refused_id);
    assert_eq!(l["route"], "/v1/embeddings");
    assert_eq!(l["status"], 400);
    assert_eq!(l["error"], "not_an_embedding_model");
    assert_eq!(l["model"], "openai/gpt-4o-mini");
    assert!(!log.contains(&key), "the key is never logged");
    assert!(!log.contains(text), "the input is never logged");
}

/// `OTEL_EXPORTER_OTLP_PROTOCOL=http/json` and a full traces URL: the same spans as
/// OTLP JSON.
#[tokio::test]
async fn traces_can_be_exported_as_otlp_json() {
    let (collector, got) = collector().await;
    let gw = Gateway::start(&[
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("http://{collector}/v1/traces"),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".into()),
        ("OTEL_SERVICE_NAME", "gateway-eu".into()),
    ])
    .await;
    let r = gw
        .post(
            "/v1/chat/completions",
            &chat_body("openai/gpt-4o-mini", "hello", ""),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.header("x-request-id").to_owned();
    gw.stop().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let bodies = loop {
        let b = got.lock().expect("lock").clone();
        if !b.is_empty() || Instant::now() > deadline {
            break b;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!bodies.is_empty(), "nothing exported");
    let all: Vec<Value> = bodies
        .iter()
        .map(|(ct, b)| {
            assert_eq!(ct, "application/json");
            serde_json::from_slice(b).expect("OTLP JSON")
        })
        .collect();
    let text = serde_json::to_string(&all).expect("json");
    assert!(text.contains(&id), "the request's span: {text}");
    assert!(text.contains("chat openai/gpt-4o-mini"), "{text}");
    assert!(text.contains("gen_ai.usage.output_tokens"), "{text}");
    assert!(text.contains("gateway-eu"), "OTEL_SERVICE_NAME: {text}");
}
