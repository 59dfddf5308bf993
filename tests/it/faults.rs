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
