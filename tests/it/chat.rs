//! Chat completions through both adapters, streaming and not.

use crate::harness::*;

#[tokio::test]
async fn anthropic_completion_is_translated_both_ways_and_billed_exactly() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("chat@example.com").await;
    let body = r#"{"model":"claude-sonnet-4-6","max_tokens":100,"temperature":0.2,"top_p":0.9,"stop":["NEVER"],"user":"u1",
      "messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello there"},
                  {"role":"assistant","content":"Hi."},{"role":"user","content":"How are you today"}]}"#;
    let r = gw.chat(&key, body, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Simulated reply to: How are you today"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(r.header("x-gammainfra-provider"), Some("anthropic"));
    assert_eq!(
        r.header("x-gammainfra-upstream-model"),
        Some("claude-sonnet-4-6")
    );
    assert!(r
        .header("x-gammainfra-request-id")
        .is_some_and(|v| v.starts_with("req_")));

    // The simulator saw a native Messages request.
    let seen = gw.anthropic.requests();
    let up = seen.last().expect("upstream request");
    assert_eq!(up.path, "/v1/messages");
    assert_eq!(up.header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(up.header("anthropic-version"), Some("2023-06-01"));
    let j = up.json().expect("json");
    assert_eq!(j["model"], "claude-sonnet-4-6");
    assert_eq!(j["system"][0]["text"], "Be brief.");
    assert_eq!(j["messages"].as_array().map(Vec::len), Some(3));
    assert_eq!(j["stop_sequences"][0], "NEVER");
    assert_eq!(j["metadata"]["user_id"], "u1");

    // Cost = tokens × the endpoint's prices, to the nano-dollar.
    let u = &v["usage"];
    let (p, c) = (
        u["prompt_tokens"].as_u64().expect("p"),
        u["completion_tokens"].as_u64().expect("c"),
    );
    assert_eq!(u["total_tokens"].as_u64(), Some(p + c));
    let want = round_sum(&[
        nanos_at(p, &price(&gw, "claude-sonnet-4-6", "input")),
        nanos_at(c, &price(&gw, "claude-sonnet-4-6", "output")),
    ]);
    let cost = u["cost_usd"]
        .as_str()
        .expect("cost_usd is a decimal string");
    assert_eq!(usd_to_nanos(cost), want);
    assert_eq!(r.header("x-gammainfra-cost-usd"), Some(cost));
    let credits = gw.credits(&key).await;
    assert_eq!(
        usd_to_nanos(credits["balance_usd"].as_str().expect("bal")),
        3_000_000_000 - want
    );
}

#[tokio::test]
async fn openai_stream_is_forwarded_chunk_by_chunk_with_a_final_usage_chunk() {
    let gw = Gw::start().await;
    let (id, key) = gw.account("stream@example.com").await;
    let body = chat_body(
        "openai/gpt-4o-mini",
        "count to three",
        r#""stream":true,"stream_options":{"include_usage":true}"#,
    );
    let r = gw.chat(&key, &body, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert!(r.header("x-gammainfra-cost-usd").is_none());
    let data = r.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let usage: serde_json::Value =
        serde_json::from_str(&data[data.len() - 2]).expect("usage chunk");
    assert_eq!(usage["choices"].as_array().map(Vec::len), Some(0));
    let cost = usage["usage"]["cost_usd"].as_str().expect("cost");
    let text: String = data[..data.len() - 2]
        .iter()
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "Simulated reply to: count to three");
    // Upstream was asked for usage and got the upstream model ID.
    let up = gw
        .openai
        .requests()
        .last()
        .expect("req")
        .json()
        .expect("json");
    assert_eq!(up["model"], "gpt-4o-mini");
    assert_eq!(up["stream_options"]["include_usage"], true);
    let view = gw.account_view(&id).await;
    assert_eq!(
        view["spent_usd"].as_str().map(usd_to_nanos),
        Some(usd_to_nanos(cost))
    );
    assert_eq!(view["ledger_sum_usd"], view["balance_usd"]);
}

#[tokio::test]
async fn stream_without_include_usage_has_no_usage_chunk_but_is_billed() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("nousage@example.com").await;
    let r = gw
        .chat(
            &key,
            &chat_body("openai/gpt-4o", "hi", r#""stream":true"#),
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    let data = r.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert!(data.iter().all(|d| !d.contains("cost_usd")), "{data:?}");
    let up = gw
        .openai
        .requests()
        .last()
        .expect("req")
        .json()
        .expect("json");
    assert_eq!(
        up["stream_options"]["include_usage"], true,
        "the gateway asks for usage to bill"
    );
    let c = gw.credits(&key).await;
    assert_ne!(c["spent_usd"], "0.00");
    assert_eq!(c["reserved_usd"], "0.00");
}

#[tokio::test]
async fn anthropic_stream_becomes_openai_chunks() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("astream@example.com").await;
    let body = chat_body(
        "claude-sonnet-4-6",
        "tell me more",
        r#""stream":true,"stream_options":{"include_usage":true}"#,
    );
    let r = gw.chat(&key, &body, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-gammainfra-resolved-model"),
        Some("anthropic/claude-sonnet-4-6")
    );
    let data = r.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<serde_json::Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk"))
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Simulated reply to: tell me more");
    let finish: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, vec!["stop"]);
    let last = chunks.last().expect("usage chunk");
    assert!(last["usage"]["completion_tokens"]
        .as_u64()
        .is_some_and(|n| n > 0));
    assert!(last["usage"]["cost_usd"].is_string());
}

#[tokio::test]
async fn tools_round_trip_through_both_adapters() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("tools@example.com").await;
    let tools = r#""tools":[{"type":"function","function":{"name":"lookup","description":"find","parameters":{"type":"object","properties":{"query":{"type":"string"}}}}}]"#;
    for model in ["claude-haiku-4-5", "openai/gpt-4.1-mini"] {
        let r = gw
            .chat(&key, &chat_body(model, "weather in Paris", tools), &[])
            .await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let v = r.json();
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{model}");
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "lookup");
        let args: serde_json::Value =
            serde_json::from_str(call["function"]["arguments"].as_str().expect("args"))
                .expect("json args");
        assert_eq!(args["query"], "weather in Paris");
        let id = call["id"].as_str().expect("id");
        // Send the tool result back.
        let follow = format!(
            r#"{{"model":"{model}",{tools},"messages":[{{"role":"user","content":"weather in Paris"}},
              {{"role":"assistant","content":null,"tool_calls":[{{"id":"{id}","type":"function","function":{{"name":"lookup","arguments":{}}}}}]}},
              {{"role":"tool","tool_call_id":"{id}","content":"sunny"}}]}}"#,
            serde_json::to_string(call["function"]["arguments"].as_str().expect("a")).expect("s")
        );
        let r = gw.chat(&key, &follow, &[]).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert_eq!(
            r.json()["choices"][0]["message"]["content"],
            "Simulated reply to: sunny",
            "{model}"
        );
    }
    let up = gw.anthropic.requests();
    let last = up.last().expect("req").json().expect("json");
    assert_eq!(last["messages"][1]["content"][0]["type"], "tool_use");
    assert_eq!(last["messages"][2]["content"][0]["type"], "tool_result");
}

#[tokio::test]
async fn images_reach_anthropic_as_base64_and_url_sources() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("img@example.com").await;
    let body = r#"{"model":"claude-sonnet-4-6","messages":[{"role":"user","content":[
        {"type":"text","text":"what is this"},
        {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg=="}},
        {"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}}]}]}"#;
    let r = gw.chat(&key, body, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = gw
        .anthropic
        .requests()
        .last()
        .expect("req")
        .json()
        .expect("json");
    let c = &up["messages"][0]["content"];
    assert_eq!(c[1]["source"]["type"], "base64");
    assert_eq!(c[1]["source"]["media_type"], "image/png");
    assert_eq!(c[2]["source"]["type"], "url");
    assert_eq!(c[2]["source"]["url"], "https://example.com/cat.jpg");
    // 85 tokens per image in the simulator: the images were counted and billed.
    assert!(r.json()["usage"]["prompt_tokens"]
        .as_u64()
        .is_some_and(|p| p > 170));
}

#[tokio::test]
async fn max_completion_tokens_and_length_finish() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("len@example.com").await;
    let r = gw
        .chat(
            &key,
            &chat_body(
                "openai/gpt-4o",
                "one two three four five",
                r#""max_completion_tokens":2"#,
            ),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["finish_reason"], "length");
    let r = gw
        .chat(
            &key,
            &chat_body(
                "claude-sonnet-4-6",
                "one two three four five",
                r#""max_tokens":2"#,
            ),
            &[],
        )
        .await;
    assert_eq!(r.json()["choices"][0]["finish_reason"], "length");
    assert_eq!(
        gw.anthropic
            .requests()
            .last()
            .expect("r")
            .json()
            .expect("j")["max_tokens"],
        2
    );
}

#[tokio::test]
async fn models_list_carries_endpoints_regions_and_decimal_prices() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("models@example.com").await;
    let r = gw.send("GET", "/v1/models", Some(&key), None, &[]).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["object"], "list");
    let sonnet = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|m| m["id"] == "anthropic/claude-sonnet-4-6")
        .expect("sonnet");
    assert_eq!(sonnet["object"], "model");
    assert!(sonnet["context_window"].as_u64().is_some());
    let us = sonnet["endpoints"]
        .as_array()
        .expect("eps")
        .iter()
        .find(|e| e["upstream_id"] == "us.anthropic.claude-sonnet-4-6")
        .expect("us");
    assert_eq!(us["provider"], "bedrock");
    // `enabled` is whether this deployment routes to it: the EU profile is unroutable
    // until eu-central-1 is one of the Bedrock regions.
    assert_eq!(us["enabled"], true);
    let eu = sonnet["endpoints"]
        .as_array()
        .expect("eps")
        .iter()
        .find(|e| e["upstream_id"] == "eu.anthropic.claude-sonnet-4-6")
        .expect("eu");
    assert_eq!(eu["enabled"], false);
    assert!(us["regions"]
        .as_array()
        .expect("regions")
        .iter()
        .any(|r| r == "us-west-2"));
    assert!(us["pricing"]["input"].is_string() && us["pricing"]["output"].is_string());
    let one = gw
        .send(
            "GET",
            "/v1/models/us.amazon.nova-pro-v1:0",
            Some(&key),
            None,
            &[],
        )
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["id"], "amazon/nova-pro-v1");
    let unauth = gw.send("GET", "/v1/models", None, None, &[]).await;
    assert_eq!(unauth.status, 401);
}

#[tokio::test]
async fn health_and_readiness() {
    let gw = Gw::start().await;
    assert_eq!(
        gw.send("GET", "/healthz", None, None, &[]).await.status,
        200
    );
    let r = gw.send("GET", "/readyz", None, None, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ready");
}

#[tokio::test]
async fn anthropic_prompt_caching_markers_pass_through_and_bill_at_cache_prices() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("cache@example.com").await;
    let body = r#"{"model":"claude-sonnet-4-6","messages":[
        {"role":"system","content":[{"type":"text","text":"a long shared instruction block that is worth caching","cache_control":{"type":"ephemeral"}}]},
        {"role":"user","content":"question"}]}"#;
    let first = gw.chat(&key, body, &[]).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let up = gw
        .anthropic
        .requests()
        .last()
        .expect("r")
        .json()
        .expect("j");
    assert_eq!(up["system"][0]["cache_control"]["type"], "ephemeral");
    let u1 = first.json()["usage"].clone();
    let written = u1["prompt_tokens_details"]["cache_write_tokens"]
        .as_u64()
        .expect("w");
    assert!(written > 0, "{u1}");
    let second = gw.chat(&key, body, &[]).await;
    let u2 = second.json()["usage"].clone();
    let read = u2["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .expect("r");
    assert_eq!(read, written, "{u2}");
    // Cost: uncached input, cache reads/writes and output, each at its own price.
    let p = u2["prompt_tokens"].as_u64().expect("p");
    let c = u2["completion_tokens"].as_u64().expect("c");
    let want = round_sum(&[
        nanos_at(p - read, &price(&gw, "claude-sonnet-4-6", "input")),
        nanos_at(read, &price(&gw, "claude-sonnet-4-6", "cache_read")),
        nanos_at(c, &price(&gw, "claude-sonnet-4-6", "output")),
    ]);
    assert_eq!(usd_to_nanos(u2["cost_usd"].as_str().expect("cost")), want);
    let p1 = u1["prompt_tokens"].as_u64().expect("p");
    let want1 = round_sum(&[
        nanos_at(p1 - written, &price(&gw, "claude-sonnet-4-6", "input")),
        nanos_at(written, &price(&gw, "claude-sonnet-4-6", "cache_write_5m")),
        nanos_at(
            u1["completion_tokens"].as_u64().expect("c"),
            &price(&gw, "claude-sonnet-4-6", "output"),
        ),
    ]);
    assert_eq!(usd_to_nanos(u1["cost_usd"].as_str().expect("cost")), want1);
}
