//! Hostile bodies: each pathological request is refused quickly with a 400 that names
//! its cap, and while several run at once, another client's stream and `/healthz` keep
//! their normal latency (docs/architecture.md, "Limits per request").

use std::time::{Duration, Instant};

use crate::harness::*;

/// A 1×1 PNG header, enough for the simulators (they do not decode images).
const PNG: &str = "data:image/png;base64,iVBORw0KGgo=";

/// A 30 MB `model` string: once compared with every catalog name by Jaro-Winkler.
fn long_model_body() -> String {
    chat_body(&"m".repeat(30_000_000), "hi", "")
}

/// `n` tool calls in one assistant message, then `n` tool results, the last of which
/// answers no call (so the request is refused only after every ID is checked). A list
/// searched once per result made this quadratic: about 10^9 comparisons at n = 50,000.
fn tool_ids_body(n: usize) -> String {
    let calls: Vec<String> = (0..n)
        .map(|i| {
            format!(r#"{{"id":"call_{i:08}","type":"function","function":{{"name":"f","arguments":"{{}}"}}}}"#)
        })
        .collect();
    let mut results: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"role":"tool","tool_call_id":"call_{i:08}","content":"x"}}"#))
        .collect();
    if let Some(last) = results.last_mut() {
        *last = r#"{"role":"tool","tool_call_id":"nope","content":"x"}"#.to_owned();
    }
    format!(
        r#"{{"model":"anthropic/claude-sonnet-4-6","messages":[{{"role":"user","content":"go"}},{{"role":"assistant","content":null,"tool_calls":[{}]}},{}]}}"#,
        calls.join(","),
        results.join(",")
    )
}

fn many_messages_body(n: usize) -> String {
    let m = vec![r#"{"role":"user","content":"x"}"#; n].join(",");
    format!(r#"{{"model":"anthropic/claude-sonnet-4-6","messages":[{m}]}}"#)
}

fn many_tools_body(n: usize) -> String {
    let tools: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"type":"function","function":{{"name":"f{i}"}}}}"#))
        .collect();
    chat_body(
        "anthropic/claude-sonnet-4-6",
        "hi",
        &format!(r#""tools":[{}]"#, tools.join(",")),
    )
}

fn images_body(n: usize, extra: &str) -> String {
    let mut parts = vec![r#"{"type":"text","text":"what are these"}"#.to_owned()];
    parts
        .extend((0..n).map(|_| format!(r#"{{"type":"image_url","image_url":{{"url":"{PNG}"}}}}"#)));
    let sep = if extra.is_empty() { "" } else { "," };
    format!(
        r#"{{"model":"anthropic/claude-sonnet-4-6","max_tokens":20,"messages":[{{"role":"user","content":[{}]}}]{sep}{extra}}}"#,
        parts.join(",")
    )
}

/// Asserts a 400 `invalid_request` naming `param` and saying `says`.
fn refused(r: &Resp, param: &str, says: &str) {
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "invalid_request", "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["param"], param, "{}", r.text());
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains(says), "{msg}");
    assert!(
        msg.len() < 1_000,
        "the message echoes the body: {} bytes",
        msg.len()
    );
}

/// Generous: a debug build on a loaded 2-core CI machine parses a 30 MB body in about
/// a second; the quadratic or fuzzy-matching paths took tens of seconds.
const QUICK: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pathological_body_is_refused_quickly_naming_its_cap() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("hostile@example.com").await;
    for (name, body, param, says) in [
        (
            "30 MB model",
            long_model_body(),
            "model",
            "limit is 256 bytes",
        ),
        (
            "50,000 tool-call IDs",
            tool_ids_body(50_000),
            "messages[50001].tool_call_id",
            "must answer a tool call",
        ),
        (
            "100,001 messages",
            many_messages_body(100_001),
            "messages",
            "limit is 100000 messages",
        ),
        (
            "129 tools",
            many_tools_body(129),
            "tools",
            "limit is 128 tools",
        ),
        (
            "501 images",
            images_body(501, ""),
            "messages",
            "limit is 500 images",
        ),
        (
            "21 images, Bedrock only",
            images_body(21, r#""provider":{"only":["bedrock"]}"#),
            "messages",
            "at most 20 images",
        ),
        (
            "101 images, Bedrock and Anthropic",
            images_body(101, ""),
            "messages",
            "at most 100 images",
        ),
        (
            "33 provider.only entries",
            chat_body(
                "anthropic/claude-sonnet-4-6",
                "hi",
                &format!(
                    r#""provider":{{"only":[{}]}}"#,
                    vec![r#""x""#; 33].join(",")
                ),
            ),
            "provider.only",
            "limit is 32",
        ),
    ] {
        let t = Instant::now();
        let r = gw.chat(&key, &body, &[]).await;
        let took = t.elapsed();
        refused(&r, param, says);
        assert!(took < QUICK, "{name}: {took:?}");
        eprintln!("{name}: {} bytes refused in {took:?}", body.len());
    }
    // Nothing was sent upstream, and nothing was charged.
    assert!(gw.bedrock.requests().is_empty());
    assert!(gw.anthropic.requests().is_empty());
    assert_eq!(gw.credits(&key).await["balance_usd"], "3.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_bedrocks_image_cap_the_request_goes_to_an_endpoint_that_accepts_it() {
    let gw = Gw::start().await;
    let (id, key) = gw.account("images@example.com").await;
    // Each image is held for at the most any model charges (50,000 tokens), up to the
    // context window: 20 images hold about $6.60 at Claude Sonnet, over the $3 trial.
    let r = gw
        .admin(
            "POST",
            &format!("/admin/v1/accounts/{id}/topups"),
            Some(r#"{"amount_usd":"10.00"}"#),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // At Bedrock's cap, Bedrock (the cheapest) serves it, with every image sent.
    let r = gw.chat(&key, &images_body(20, ""), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gammainfra-provider"), Some("bedrock"));
    let seen = gw.bedrock.requests();
    let up = seen.last().expect("converse").json().expect("json");
    let blocks = up["messages"][0]["content"].as_array().expect("blocks");
    assert_eq!(
        blocks.iter().filter(|b| b.get("image").is_some()).count(),
        20
    );
    // One over it, Bedrock is skipped for Anthropic direct, which takes up to 100.
    let r = gw.chat(&key, &images_body(21, ""), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gammainfra-provider"), Some("anthropic"));
    assert_eq!(gw.bedrock.requests().len(), 1);
}

/// Latencies, sorted: of `/healthz` and of a whole streamed completion, 7 of each.
struct Latencies {
    health: Vec<Duration>,
    chat: Vec<Duration>,
}

fn median(v: &[Duration]) -> Duration {
    v[v.len() / 2]
}

async fn latencies(gw: &Gw, key: &str) -> Latencies {
    let stream = chat_body(
        "anthropic/claude-sonnet-4-6",
        "hello there",
        r#""stream":true,"max_tokens":20"#,
    );
    let (mut health, mut chat) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        let t = Instant::now();
        let r = gw.send("GET", "/healthz", None, None, &[]).await;
        health.push(t.elapsed());
        assert_eq!(r.status, 200);
        let t = Instant::now();
        let r = gw.chat(key, &stream, &[]).await;
        chat.push(t.elapsed());
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().contains("[DONE]"), "{}", r.text());
    }
    health.sort();
    chat.sort();
    Latencies { health, chat }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_clients_keep_their_latency_while_hostile_bodies_are_refused() {
    let gw = std::sync::Arc::new(Gw::start().await);
    let (_, key) = gw.account("victim@example.com").await;
    let (_, attacker) = gw.account("attacker@example.com").await;
    let base = latencies(&gw, &key).await;

    // Several hostile requests at once, one of each kind, sent again as each is refused,
    // until the victim's measurements are done.
    let bodies = std::sync::Arc::new(
        [
            long_model_body(),
            tool_ids_body(50_000),
            many_messages_body(100_001),
            images_body(501, ""),
        ]
        .map(bytes::Bytes::from),
    );
    // The attackers' own client sends each body without copying it, so that the test's
    // side of the load stays small next to the gateway's.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let url = format!("{}/v1/chat/completions", gw.url);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut attackers = Vec::new();
    for i in 0..bodies.len() {
        let (client, url, bodies, stop, sent, key) = (
            client.clone(),
            url.clone(),
            bodies.clone(),
            stop.clone(),
            sent.clone(),
            attacker.clone(),
        );
        attackers.push(tokio::spawn(async move {
            let body = &bodies[i % bodies.len()];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let req = hyper::Request::post(&url)
                    .header("authorization", format!("Bearer {key}"))
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(body.clone()))
                    .expect("request");
                let r = client.request(req).await.expect("gateway answers");
                assert_eq!(r.status(), 400);
                // Read the (small) error body so the connection is reused.
                let _ = http_body_util::BodyExt::collect(r.into_body()).await;
                sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    // Let the hostile bodies reach the gateway's parser before measuring.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let under = latencies(&gw, &key).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for a in attackers {
        a.await.expect("attacker");
    }
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "alone: healthz {:?}, stream {:?}; under {sent} hostile requests: healthz {:?}, \
         stream {:?}",
        base.health, base.chat, under.health, under.chat
    );
    assert!(
        sent >= 4,
        "every attacker was refused at least once: {sent}"
    );
    // Generous, for a loaded 2-core CI machine: the typical (median) latency stays
    // within 5 times its baseline or 250 ms, and no request waits a second. Before,
    // one of these bodies held a worker, and every request on it, for seconds.
    let normal = |base: &[Duration]| (median(base) * 5).max(Duration::from_millis(250));
    for (what, base, under) in [
        ("healthz", &base.health, &under.health),
        ("stream", &base.chat, &under.chat),
    ] {
        assert!(
            median(under) < normal(base),
            "{what}: {under:?} vs {base:?}"
        );
        assert!(
            under.iter().all(|d| *d < Duration::from_secs(1)),
            "{what}: {under:?}"
        );
    }
}
