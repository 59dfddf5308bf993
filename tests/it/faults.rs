//! Upstream faults: fail-over before the first byte, errors mapped, streams cut
//! mid-way billed for what was generated, exactly once.

use crate::harness::*;

/// A model with a dead (cheaper) endpoint and a live one.
async fn failover_gw() -> Gw {
    let extra = r#"
[[models]]
id = "test/failover"
name = "Fail-over test model"
owned_by = "test"
context_window = 100000
max_output_tokens = 1000

[[models.endpoints]]
provider = "openai_compatible:dead"
upstream_id = "sim-dead"
verified = { date = "2026-11-25", method = "test" }
pricing = { input = "0.1", output = "0.1", source = { kind = "provider", url = "https://example.com/test-prices", read = "2026-11-25" } }

[[models.endpoints]]
provider = "openai_compatible:ghost"
upstream_id = "unknown-to-the-upstream"
verified = { date = "2026-11-25", method = "test" }
pricing = { input = "0.5", output = "0.5", source = { kind = "provider", url = "https://example.com/test-prices", read = "2026-11-25" } }

[[models.endpoints]]
provider = "openai_compatible:live"
upstream_id = "sim-live"
verified = { date = "2026-11-25", method = "test" }
pricing = { input = "1", output = "2", source = { kind = "provider", url = "https://example.com/test-prices", read = "2026-11-25" } }
"#;
    // A port that was just free: connections are refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}/v1", dead.local_addr().expect("addr"));
    drop(dead);
    Gw::start_with_catalog(extra, |c| {
        let live = c.openai.clone().expect("openai");
        let mut d = live.clone();
        d.base_url = dead_url;
        c.openai_compatible = vec![
            ("dead".into(), d),
            ("ghost".into(), live.clone()),
            ("live".into(), live),
        ];
    })
    .await
}

#[tokio::test]
async fn connection_failure_fails_over_to_the_next_endpoint() {
    let gw = failover_gw().await;
    let (_, key) = gw.account("failover@example.com").await;
    for stream in [false, true] {
        let extra = if stream { r#""stream":true"# } else { "" };
        let r = gw
            .chat(&key, &chat_body("test/failover", "hi", extra), &[])
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-gammainfra-upstream-model"), Some("sim-live"));
        assert_eq!(
            r.header("x-gammainfra-provider"),
            Some("openai_compatible:live")
        );
    }
    // The endpoint whose upstream ID the server does not know was tried (a 404 is a
    // catalog fault, so it failed over instead of reaching the client).
    assert!(gw.openai.requests().iter().any(|r| r
        .json()
        .is_some_and(|j| j["model"] == "unknown-to-the-upstream")));
}

#[tokio::test]
async fn output_cap_sent_upstream_never_exceeds_the_catalog_cap() {
    let gw = failover_gw().await;
    let (_, key) = gw.account("cap@example.com").await;
    let r = gw
        .chat(
            &key,
            &chat_body("test/failover", "hi", r#""max_tokens":999999"#),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = gw
        .openai
        .requests()
        .last()
        .expect("req")
        .json()
        .expect("json");
    assert_eq!(up["max_tokens"], 1000);
}

#[tokio::test]
async fn upstream_errors_map_to_openai_shape_and_charge_nothing() {
    let gw = Gw::start().await;
    let (id, key) = gw.account("errors@example.com").await;
    let cases = [
        ("[[sim:error 500]]", 502, "upstream_error", 500),
        ("[[sim:error 429]]", 429, "upstream_rate_limited", 429),
        ("[[sim:error 529]]", 502, "upstream_error", 529),
    ];
    for (trigger, status, code, provider_status) in cases {
        let r = gw
            .chat(&key, &chat_body("claude-haiku-4-5", trigger, ""), &[])
            .await;
        assert_eq!(r.status, status, "{trigger}: {}", r.text());
        assert_eq!(r.error_code(), code, "{trigger}");
        let m = r.json()["error"]["message"].as_str().expect("m").to_owned();
        assert!(
            m.contains(&format!("anthropic answered HTTP {provider_status}")),
            "{trigger}: {m}"
        );
    }
    let view = gw.account_view(&id).await;
    assert_eq!(view["balance_usd"], "3.00");
    assert_eq!(view["reserved_usd"], "0.00");
    assert_eq!(view["ledger_entries"], 1);
}

#[tokio::test]
async fn stream_cut_midway_ends_with_an_error_event_and_bills_what_was_generated_once() {
    let gw = Gw::start().await;
    let (id, key) = gw.account("cut@example.com").await;
    for (model, trigger) in [
        ("claude-haiku-4-5", "[[sim:cut]]"),
        ("openai/gpt-4o-mini", "[[sim:cut]]"),
        ("claude-haiku-4-5", "[[sim:midstream-error]]"),
        ("openai/gpt-4o-mini", "[[sim:midstream-error]]"),
        ("meta/llama3-70b-instruct", "[[sim:cut]]"),
        ("meta/llama3-70b-instruct", "[[sim:midstream-error]]"),
    ] {
        let before = usd_to_nanos(gw.credits(&key).await["balance_usd"].as_str().expect("b"));
        let r = gw
            .chat(&key, &chat_body(model, trigger, r#""stream":true"#), &[])
            .await;
        assert_eq!(r.status, 200, "{model} {trigger}");
        let data = r.sse_data();
        let last: serde_json::Value =
            serde_json::from_str(data.last().expect("events")).expect("error event is JSON");
        assert!(
            last["error"]["message"].is_string(),
            "{model} {trigger}: {data:?}"
        );
        assert!(!data.iter().any(|d| d == "[DONE]"));
        let after = gw.credits(&key).await;
        let charged = before - usd_to_nanos(after["balance_usd"].as_str().expect("b"));
        assert!(
            charged > 0,
            "{model} {trigger}: tokens generated before the cut are billed"
        );
        assert_eq!(after["reserved_usd"], "0.00");
    }
    let view = gw.account_view(&id).await;
    assert_eq!(view["ledger_sum_usd"], view["balance_usd"]);
    assert_eq!(view["ledger_entries"], 7, "trial + one charge per stream");
}

#[tokio::test]
async fn a_stream_cut_before_usage_bills_an_image_at_the_providers_maximum() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("cut-image@example.com").await;
    let body = r#"{"model":"openai/gpt-4o-mini","stream":true,"messages":[{"role":"user","content":[
        {"type":"text","text":"describe this [[sim:cut]]"},
        {"type":"image_url","image_url":{"url":"https://example.com/photo.jpg"}}]}]}"#;
    let before = usd_to_nanos(gw.credits(&key).await["balance_usd"].as_str().expect("b"));
    let r = gw.chat(&key, body, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let data = r.sse_data();
    let chunks: Vec<serde_json::Value> = data
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    assert!(
        chunks.iter().all(|c| c["usage"].is_null()),
        "cut before usage: {data:?}"
    );
    assert!(chunks.last().is_some_and(|c| c["error"].is_object()));
    let generated = chunks
        .iter()
        .filter(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        })
        .count() as u64;
    let charged = before - usd_to_nanos(gw.credits(&key).await["balance_usd"].as_str().expect("b"));
    // The estimate: the text, framing, and the image at GPT-4o mini's high-detail maximum
    // (2,833 + 8 tiles × 5,667), not the body's bytes / 4.
    let req = gammainfra::chat::ChatRequest::parse(body.as_bytes()).expect("request");
    let model = gw.state.catalog.model("openai/gpt-4o-mini").expect("model");
    let estimate = req.estimated_input_tokens_at(body.len(), &model.endpoints[0]);
    assert!(estimate >= 48_169, "{estimate}");
    let want = round_sum(&[
        nanos_at(estimate, &price(&gw, "gpt-4o-mini", "input")),
        nanos_at(generated, &price(&gw, "gpt-4o-mini", "output")),
    ]);
    assert_eq!(charged, want);
}

#[tokio::test]
async fn client_disconnect_mid_stream_settles_the_reservation() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = Gw::start().await;
    let (id, key) = gw.account("disconnect@example.com").await;
    let body = chat_body(
        "openai/gpt-4o-mini",
        "a b c d e f g h [[sim:slow 300]]",
        r#""stream":true"#,
    );
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    // Leave while the upstream is still thinking.
    let mut buf = [0u8; 64];
    let _ = tokio::time::timeout(std::time::Duration::from_millis(100), s.read(&mut buf)).await;
    drop(s);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let view = gw.account_view(&id).await;
    assert_eq!(view["reserved_usd"], "0.00", "{view}");
    assert_eq!(view["ledger_sum_usd"], view["balance_usd"]);
}

/// What a fault does to the client's answer and to the ledger.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Refused with this status and code; nothing charged.
    Fails(u16, &'static str),
    /// A 200 stream ending with an error event; charged for the deltas it carried.
    Partial,
    /// A whole answer, charged from the provider's usage.
    Whole,
}

/// A gateway with short upstream timeouts, so that silent or endless upstreams are
/// given up quickly.
async fn fault_gw() -> Gw {
    Gw::start_with(|c| {
        c.timeouts.first_byte = std::time::Duration::from_millis(1_000);
        c.timeouts.idle = std::time::Duration::from_millis(400);
        c.timeouts.total = std::time::Duration::from_millis(1_500);
    })
    .await
}

/// The usage record of one request.
async fn record_of(gw: &Gw, key: &str, request_id: &str) -> Option<serde_json::Value> {
    let r = gw
        .send("GET", "/v1/usage?limit=1000", Some(key), None, &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|x| x["request_id"] == request_id)
        .cloned()
}

/// Content deltas a streamed answer carried.
fn content_deltas(r: &Resp) -> u64 {
    r.sse_data()
        .iter()
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        })
        .count() as u64
}

#[tokio::test]
async fn every_fault_gets_its_answer_and_charges_only_what_was_generated() {
    use Expect::*;
    let gw = fault_gw().await;
    let (id, key) = gw.account("fault-suite@example.com").await;
    let cases: [(&str, bool, Expect); 17] = [
        ("[[sim:error 503]]", false, Fails(502, "upstream_error")),
        (
            "[[sim:error 429]]",
            true,
            Fails(429, "upstream_rate_limited"),
        ),
        ("[[sim:reset]]", false, Fails(502, "upstream_error")),
        ("[[sim:reset]]", true, Fails(502, "upstream_error")),
        ("[[sim:slow 1500]]", false, Fails(504, "upstream_timeout")),
        ("[[sim:slow 1500]]", true, Fails(504, "upstream_timeout")),
        ("[[sim:hang]]", false, Fails(504, "upstream_timeout")),
        ("[[sim:hang 0]]", true, Fails(504, "upstream_timeout")),
        ("[[sim:hang]]", true, Partial),
        ("[[sim:endless]]", true, Partial),
        ("[[sim:corrupt]]", false, Fails(502, "upstream_error")),
        ("[[sim:corrupt 0]]", true, Fails(502, "upstream_error")),
        ("[[sim:corrupt]]", true, Partial),
        ("[[sim:cut]]", false, Fails(502, "upstream_error")),
        ("[[sim:cut 0]]", true, Fails(502, "upstream_error")),
        ("[[sim:cut 3]]", true, Partial),
        ("[[sim:drip 30]]", true, Whole),
    ];
    // One model per wire format: Anthropic SSE, OpenAI SSE, Bedrock event-stream.
    let models = [
        ("claude-haiku-4-5", r#""provider":{"only":["anthropic"]}"#),
        ("openai/gpt-4o-mini", ""),
        ("meta/llama3-70b-instruct", ""),
    ];
    let mut charges = 0;
    for (model, prefs) in models {
        for (fault, stream, expect) in cases {
            let what = format!("{model} {fault} stream={stream}");
            let mut extra = if stream {
                r#""stream":true,"stream_options":{"include_usage":true}"#.to_owned()
            } else {
                r#""stream":false"#.to_owned()
            };
            if !prefs.is_empty() {
                extra = format!("{extra},{prefs}");
            }
            let text = format!("one two three four five six {fault}");
            let before = usd_to_nanos(gw.credits(&key).await["balance_usd"].as_str().expect("b"));
            let started = std::time::Instant::now();
            let r = gw.chat(&key, &chat_body(model, &text, &extra), &[]).await;
            let took = started.elapsed();
            let request_id = r.header("x-gammainfra-request-id").expect("id").to_owned();
            let after = gw.credits(&key).await;
            let charged = before - usd_to_nanos(after["balance_usd"].as_str().expect("b"));
            let record = record_of(&gw, &key, &request_id).await;
            match expect {
                Fails(status, code) => {
                    assert_eq!(r.status, status, "{what}: {}", r.text());
                    assert_eq!(r.error_code(), code, "{what}");
                    let m = r.json()["error"]["message"].as_str().expect("m").to_owned();
                    assert!(m.contains(&request_id), "{what}: {m}");
                    assert_eq!(charged, 0, "{what}: a failed request costs nothing");
                    assert!(record.is_none(), "{what}: {record:?}");
                }
                Partial => {
                    assert_eq!(r.status, 200, "{what}");
                    let data = r.sse_data();
                    let last: serde_json::Value =
                        serde_json::from_str(data.last().expect("events")).expect("JSON");
                    assert!(last["error"]["message"].is_string(), "{what}: {data:?}");
                    assert!(!data.iter().any(|d| d == "[DONE]"), "{what}");
                    let record = record.expect("a record");
                    assert_eq!(
                        record["output_tokens"].as_u64(),
                        Some(content_deltas(&r)),
                        "{what}: billed for exactly the deltas sent: {record}"
                    );
                    assert_eq!(
                        usd_to_nanos(record["cost_usd"].as_str().expect("cost")),
                        charged,
                        "{what}"
                    );
                    assert!(charged > 0, "{what}");
                    charges += 1;
                }
                Whole => {
                    assert_eq!(r.status, 200, "{what}");
                    let data = r.sse_data();
                    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{what}");
                    let usage: serde_json::Value =
                        serde_json::from_str(&data[data.len() - 2]).expect("usage chunk");
                    let record = record.expect("a record");
                    assert_eq!(record["status"], "completed", "{what}");
                    assert_eq!(
                        record["output_tokens"], usage["usage"]["completion_tokens"],
                        "{what}"
                    );
                    assert_eq!(
                        usd_to_nanos(record["cost_usd"].as_str().expect("cost")),
                        charged,
                        "{what}"
                    );
                    charges += 1;
                }
            }
            // Silence is given up after the timeouts, not waited out.
            assert!(took < std::time::Duration::from_secs(5), "{what}: {took:?}");
            assert_eq!(after["reserved_usd"], "0.00", "{what}: {after}");
            let health = gw.send("GET", "/healthz", None, None, &[]).await;
            assert_eq!(health.status, 200, "{what}");
        }
    }
    // The gateway is whole: a clean request still works, and the ledger adds up.
    let r = gw
        .chat(&key, &chat_body("openai/gpt-4o-mini", "hi", ""), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let view = gw.account_view(&id).await;
    assert_eq!(view["ledger_sum_usd"], view["balance_usd"]);
    assert_eq!(view["reserved_usd"], "0.00");
    assert_eq!(view["ledger_entries"], 1 + charges + 1, "{view}");
}

/// The built-in catalog with Claude Sonnet 4.6's `global.` endpoint switched off: the
/// model keeps exactly two deployed endpoints, Bedrock's US profile and Anthropic's API
/// (the `eu.` profile's region is not deployed in tests), at nearly one price.
fn two_endpoint_catalog(dir: &std::path::Path) -> std::path::PathBuf {
    let on = "upstream_id = \"global.anthropic.claude-sonnet-4-6\"\ninvocation = \"profile\"\ngeography = \"global\"\nsource_region = \"us-east-1\"\nenabled = true";
    let catalog = gammainfra::catalog::DEFAULT_CATALOG;
    assert!(
        catalog.contains(on),
        "the catalog's global Sonnet 4.6 entry moved"
    );
    let path = dir.join("catalog.toml");
    std::fs::write(
        &path,
        catalog.replace(on, &on.replace("enabled = true", "enabled = false")),
    )
    .expect("write catalog");
    path
}

/// 1,000 requests, half streamed, 20% of them with a random fault at the endpoint they
/// prefer (half prefer each of the two endpoints of their model): every one succeeds (the gateway fails over while nothing
/// has been sent), and the ledger holds exactly one charge per answer, equal to the
/// cost the client was shown. Faults after the first token of a stream are not in the
/// mix: no gateway can hide them without holding the whole answer back (the suite
/// above checks what they do).
#[tokio::test]
async fn a_thousand_requests_with_a_fifth_faulted_all_succeed_and_the_ledger_is_exact() {
    use futures_util::StreamExt;
    use rand::{Rng, SeedableRng};
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = two_endpoint_catalog(dir.path());
    let gw = Arc::new(
        Gw::start_with(|c| {
            c.catalog_path = Some(catalog);
            c.timeouts.first_byte = std::time::Duration::from_millis(1_000);
            c.timeouts.idle = std::time::Duration::from_millis(400);
        })
        .await,
    );
    let (id, key) = gw.account("mix@example.com").await;
    let top = gw
        .admin(
            "POST",
            &format!("/admin/v1/accounts/{id}/topups"),
            Some(r#"{"amount_usd":"100.00"}"#),
        )
        .await;
    assert_eq!(top.status, 201, "{}", top.text());
    let start = usd_to_nanos(
        gw.account_view(&id).await["balance_usd"]
            .as_str()
            .expect("balance"),
    );
    let endpoints = ["us.anthropic.claude-sonnet-4-6", "claude-sonnet-4-6"];
    let before_first = [
        "error 429",
        "error 500",
        "error 503",
        "error 529",
        "reset",
        "slow 1500",
    ];
    let non_streamed_only = ["hang", "corrupt", "cut"];
    let streamed_only = ["hang 0", "corrupt 0", "cut 0", "drip 5"];
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let mut plan = Vec::new();
    for i in 0..1000 {
        let stream = i % 2 == 0;
        let fault = rng.gen_bool(0.2).then(|| {
            let pool: Vec<&str> = before_first
                .iter()
                .chain(if stream {
                    &streamed_only[..]
                } else {
                    &non_streamed_only[..]
                })
                .copied()
                .collect();
            let f = pool[rng.gen_range(0..pool.len())];
            // At the endpoint the request prefers (see below): the one tried first
            // unless its circuit is open.
            format!("[[sim:{f} @{}]]", endpoints[1 - (i / 2) % 2])
        });
        plan.push((stream, fault));
    }
    let faulted = plan.iter().filter(|(_, f)| f.is_some()).count();
    assert!((150..250).contains(&faulted), "{faulted}");
    let results = futures_util::stream::iter(plan.into_iter().enumerate())
        .map(|(i, (stream, fault))| {
            let (gw, key) = (gw.clone(), key.clone());
            async move {
                let text = format!("request {i} {}", fault.clone().unwrap_or_default());
                // Half the requests prefer each endpoint, so both meet faults.
                let first = ["anthropic", "bedrock"][(i / 2) % 2];
                let extra = if stream {
                    format!(r#""max_tokens":50,"provider":{{"order":["{first}"]}},"stream":true,"stream_options":{{"include_usage":true}}"#)
                } else {
                    format!(r#""max_tokens":50,"provider":{{"order":["{first}"]}}"#)
                };
                let r = gw
                    .chat(&key, &chat_body("anthropic/claude-sonnet-4-6", &text, &extra), &[])
                    .await;
                (stream, fault, r)
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let mut failed = Vec::new();
    let mut shown = 0i128;
    let mut answered = std::collections::HashMap::new();
    for (stream, fault, r) in &results {
        let cost = if !stream {
            (r.status == 200)
                .then(|| r.header("x-gammainfra-cost-usd").map(usd_to_nanos))
                .flatten()
        } else {
            let data = r.sse_data();
            (r.status == 200 && data.last().map(String::as_str) == Some("[DONE]"))
                .then(|| {
                    serde_json::from_str::<serde_json::Value>(&data[data.len() - 2])
                        .ok()
                        .and_then(|u| u["usage"]["cost_usd"].as_str().map(usd_to_nanos))
                })
                .flatten()
        };
        match cost {
            Some(c) => {
                shown += c;
                *answered
                    .entry(r.header("x-gammainfra-provider").unwrap_or("?").to_owned())
                    .or_insert(0) += 1;
            }
            None => failed.push(format!(
                "{fault:?} stream={stream}: {} {}",
                r.status,
                r.text()
            )),
        }
    }
    assert!(failed.len() <= 1, "at least 99.9% succeed: {failed:#?}");
    assert!(answered.len() == 2, "both endpoints answered: {answered:?}");
    // A fault fires when its endpoint is tried first; each one that fired (a slow drip
    // aside) cost exactly one more attempt, at the other endpoint.
    let fired = |reqs: Vec<gammainfra::simulators::RecordedRequest>, target: &str| {
        let tag = format!(" @{target}]]");
        let tried = reqs.len();
        let fired = reqs
            .iter()
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .filter(|b| b.contains(&tag) && !b.contains("[[sim:drip"))
            .count();
        (tried, fired)
    };
    let bedrock: Vec<_> = gw
        .bedrock
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/model/"))
        .collect();
    let (b_tried, b_fired) = fired(bedrock, endpoints[0]);
    let (a_tried, a_fired) = fired(gw.anthropic.requests(), endpoints[1]);
    eprintln!("fault mix: {a_fired} faults met at Anthropic, {b_fired} at Bedrock; {a_tried} + {b_tried} attempts");
    // An endpoint whose circuit opened is tried second, so its faults are not all met.
    assert!(a_fired + b_fired >= 60, "{a_fired} + {b_fired} faults met");
    assert_eq!(
        a_tried + b_tried,
        1000 + a_fired + b_fired,
        "{a_tried} + {b_tried} attempts"
    );
    let view = gw.account_view(&id).await;
    assert_eq!(view["reserved_usd"], "0.00", "{view}");
    assert_eq!(view["ledger_sum_usd"], view["balance_usd"], "{view}");
    let successes = 1000 - failed.len();
    assert_eq!(
        view["ledger_entries"],
        2 + successes,
        "the trial, the top-up and one charge per answer: {view}"
    );
    let spent = start - usd_to_nanos(view["balance_usd"].as_str().expect("b"));
    assert_eq!(
        spent, shown,
        "the ledger holds exactly the costs the clients were shown"
    );
}

/// An OpenAI-compatible server that streams without a usage chunk (it ignores
/// `stream_options`): the gateway estimates the usage, and its usage chunk carries the
/// stream's own `id`, `created` and `model`, like every chunk before it.
#[tokio::test]
async fn an_estimated_usage_chunk_names_the_stream_it_ends() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let quiet = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/v1", quiet.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = quiet.accept().await {
            tokio::spawn(async move {
                // The request's head and body (small) arrive together with the delays
                // of loopback; read until the body's end is plausible.
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                while let Ok(n) = tcp.read(&mut buf).await {
                    got.extend_from_slice(&buf[..n]);
                    if n == 0 || got.ends_with(b"}") {
                        break;
                    }
                }
                let chunk = |delta: &str, finish: &str| {
                    format!(
                        "data: {{\"id\":\"chatcmpl-quiet\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"quiet-1\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
                    )
                };
                let body = format!(
                    "{}{}{}data: [DONE]\n\n",
                    chunk(r#"{"role":"assistant","content":"Hello"}"#, "null"),
                    chunk(r#"{"content":" there"}"#, "null"),
                    chunk("{}", r#""stop""#)
                );
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tcp.write_all(head.as_bytes()).await;
                let _ = tcp.write_all(body.as_bytes()).await;
            });
        }
    });
    let extra = r#"
[[models]]
id = "test/quiet"
name = "A server without usage in its streams"
owned_by = "test"
context_window = 100000
max_output_tokens = 1000

[[models.endpoints]]
provider = "openai_compatible:quiet"
upstream_id = "quiet-1"
verified = { date = "2026-11-25", method = "test" }
pricing = { input = "1", output = "2", source = { kind = "provider", url = "https://example.com/test-prices", read = "2026-11-25" } }
"#;
    let gw = Gw::start_with_catalog(extra, |c| {
        let mut q = c.openai.clone().expect("openai");
        q.base_url = url;
        c.openai_compatible = vec![("quiet".into(), q)];
    })
    .await;
    let (_, key) = gw.account("quiet@example.com").await;
    let r = gw
        .chat(
            &key,
            &chat_body(
                "test/quiet",
                "hi",
                r#""stream":true,"stream_options":{"include_usage":true}"#,
            ),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let data = r.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    let usage: serde_json::Value =
        serde_json::from_str(&data[data.len() - 2]).expect("the usage chunk");
    assert!(
        usage["usage"]["completion_tokens"].as_u64() > Some(0),
        "{usage}"
    );
    assert_eq!(usage["id"], "chatcmpl-quiet", "{usage}");
    assert_eq!(usage["created"], 1_700_000_000, "{usage}");
    assert_eq!(usage["model"], "quiet-1", "{usage}");
    assert_eq!(usage["object"], "chat.completion.chunk", "{usage}");
}
