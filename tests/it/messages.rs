//! `POST /v1/messages`: Anthropic's Messages API on every provider, with the same
//! routing, region constraints and billing as chat completions.

use serde_json::{json, Value};

use crate::harness::*;

async fn messages(gw: &Gw, key: &str, body: &Value, headers: &[(&str, &str)]) -> Resp {
    gw.send(
        "POST",
        "/v1/messages",
        Some(key),
        Some(&body.to_string()),
        headers,
    )
    .await
}

/// (event name, data) of each event of an Anthropic stream.
fn events(r: &Resp) -> Vec<(String, Value)> {
    r.text()
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = Value::Null;
            for l in e.lines() {
                if let Some(n) = l.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = l.strip_prefix("data: ") {
                    data = serde_json::from_str(d).expect("event data is JSON");
                }
            }
            (name, data)
        })
        .collect()
}

/// The text of a stream's text deltas.
fn streamed_text(ev: &[(String, Value)]) -> String {
    ev.iter()
        .filter(|(n, _)| n == "content_block_delta")
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect()
}

/// Each way a Claude model is served: Anthropic's API, Bedrock's US profile; and
/// GPT-4o mini on OpenAI.
const ROUTES: [(&str, &str, &str); 3] = [
    ("claude-haiku-4-5", "anthropic", "anthropic"),
    ("claude-haiku-4-5", "bedrock", "bedrock"),
    ("openai/gpt-4o-mini", "openai", "openai"),
];

fn body(model: &str, only: &str, text: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 100,
        "stream": stream,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
        "metadata": {"user_id": "user_1"},
        "provider": {"only": [only]},
    })
}

#[tokio::test]
async fn a_message_on_every_provider_in_anthropics_shape_billed_exactly() {
    let gw = Gw::start().await;
    let (id, key) = gw.account("messages@example.com").await;
    for (model, only, provider) in ROUTES {
        let before = usd_to_nanos(gw.credits(&key).await["balance_usd"].as_str().expect("b"));
        // Anthropic's SDKs send the key as x-api-key.
        let r = gw
            .send(
                "POST",
                "/v1/messages?beta=true",
                None,
                Some(&body(model, only, "hello there", false).to_string()),
                &[("x-api-key", &key), ("anthropic-version", "2023-06-01")],
            )
            .await;
        assert_eq!(r.status, 200, "{model} via {only}: {}", r.text());
        assert_eq!(r.header("x-gammainfra-provider"), Some(provider));
        let m = r.json();
        assert_eq!(m["type"], "message", "{m}");
        assert_eq!(m["role"], "assistant");
        assert!(
            m["id"].as_str().is_some_and(|i| i.starts_with("msg_")),
            "{m}"
        );
        assert_eq!(m["content"][0]["type"], "text");
        assert_eq!(m["content"][0]["text"], "Simulated reply to: hello there");
        assert_eq!(m["stop_reason"], "end_turn");
        assert!(
            m["usage"]["input_tokens"].as_u64().is_some_and(|n| n > 0),
            "{m}"
        );
        assert_eq!(m["usage"]["output_tokens"], 5, "{m}");
        let charged =
            before - usd_to_nanos(gw.credits(&key).await["balance_usd"].as_str().expect("b"));
        assert_eq!(
            charged,
            usd_to_nanos(r.header("x-gammainfra-cost-usd").expect("cost")),
            "{model} via {only}"
        );
        assert!(charged > 0);
    }
    // What Anthropic received is the client's own request, `model` aside, without the
    // gateway's own members.
    let sent = gw
        .anthropic
        .requests()
        .last()
        .and_then(|r| r.json())
        .expect("a request reached Anthropic");
    assert_eq!(sent["metadata"]["user_id"], "user_1");
    assert_eq!(sent["system"][0]["cache_control"]["type"], "ephemeral");
    assert!(sent.get("provider").is_none(), "{sent}");
    assert_eq!(sent["model"], "claude-haiku-4-5");
    let view = gw.account_view(&id).await;
    assert_eq!(view["ledger_sum_usd"], view["balance_usd"]);
    assert_eq!(view["ledger_entries"], 4, "{view}");
}

#[tokio::test]
async fn a_stream_through_bedrock_has_anthropics_event_order_and_the_same_bill_as_chat() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("messages-stream@example.com").await;
    let mut sequences = Vec::new();
    for (model, only, _) in ROUTES {
        let r = messages(&gw, &key, &body(model, only, "a b c", true), &[]).await;
        assert_eq!(r.status, 200, "{model} via {only}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        let ev = events(&r);
        assert_eq!(streamed_text(&ev), "Simulated reply to: a b c", "{ev:?}");
        let last_delta = &ev
            .iter()
            .rev()
            .find(|(n, _)| n == "message_delta")
            .expect("message_delta")
            .1;
        assert_eq!(last_delta["delta"]["stop_reason"], "end_turn");
        assert_eq!(last_delta["usage"]["output_tokens"], 6, "{last_delta}");
        // The sequence of event types and block indexes.
        let seq: Vec<(String, Option<u64>)> = ev
            .iter()
            .map(|(n, d)| (n.clone(), d["index"].as_u64()))
            .collect();
        sequences.push((only, seq));
    }
    assert_eq!(
        sequences[1].1, sequences[0].1,
        "Bedrock's stream in Anthropic's order, as the Anthropic simulator sends it"
    );
    assert_eq!(sequences[2].1, sequences[0].1, "and OpenAI's");

    // The same request through Bedrock costs the same on both surfaces.
    let before = usd_to_nanos(gw.credits(&key).await["balance_usd"].as_str().expect("b"));
    let r = messages(
        &gw,
        &key,
        &body("claude-haiku-4-5", "bedrock", "same bill", true),
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    let _ = events(&r);
    let mid = usd_to_nanos(gw.credits(&key).await["balance_usd"].as_str().expect("b"));
    let chat = json!({
        "model": "anthropic/claude-haiku-4-5",
        "max_tokens": 100,
        "stream": true,
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": [{"type": "text", "text": "same bill"}]}
        ],
        "user": "user_1",
        "provider": {"only": ["bedrock"]},
    });
    let r = gw.chat(&key, &chat.to_string(), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let after = usd_to_nanos(gw.credits(&key).await["balance_usd"].as_str().expect("b"));
    assert_eq!(before - mid, mid - after, "billed as the chat completion");
}

#[tokio::test]
async fn tools_round_trip_on_every_provider() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("messages-tools@example.com").await;
    for (model, only, _) in ROUTES {
        for stream in [false, true] {
            let tools = json!([{"name": "lookup", "description": "Looks it up",
                "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}]);
            let first = json!({
                "model": model, "max_tokens": 100, "stream": stream, "tools": tools,
                "tool_choice": {"type": "any"},
                "messages": [{"role": "user", "content": "find cats"}],
                "provider": {"only": [only]},
            });
            let r = messages(&gw, &key, &first, &[]).await;
            assert_eq!(r.status, 200, "{model} via {only}: {}", r.text());
            let (id, input) = if stream {
                let ev = events(&r);
                let start = ev
                    .iter()
                    .find(|(n, d)| {
                        n == "content_block_start" && d["content_block"]["type"] == "tool_use"
                    })
                    .expect("a tool_use block")
                    .1
                    .clone();
                let json: String = ev
                    .iter()
                    .filter(|(n, _)| n == "content_block_delta")
                    .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
                    .collect();
                let stop = &ev
                    .iter()
                    .find(|(n, _)| n == "message_delta")
                    .expect("delta")
                    .1;
                assert_eq!(
                    stop["delta"]["stop_reason"], "tool_use",
                    "{model} via {only}"
                );
                (
                    start["content_block"]["id"]
                        .as_str()
                        .expect("id")
                        .to_owned(),
                    serde_json::from_str::<Value>(&json).expect("input JSON"),
                )
            } else {
                let m = r.json();
                assert_eq!(m["stop_reason"], "tool_use", "{m}");
                let block = m["content"]
                    .as_array()
                    .and_then(|c| c.iter().find(|b| b["type"] == "tool_use"))
                    .expect("a tool_use block")
                    .clone();
                assert_eq!(block["name"], "lookup");
                (
                    block["id"].as_str().expect("id").to_owned(),
                    block["input"].clone(),
                )
            };
            assert_eq!(input, json!({"query": "find cats"}), "{model} via {only}");
            let second = json!({
                "model": model, "max_tokens": 100, "tools": tools,
                "messages": [
                    {"role": "user", "content": "find cats"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": id, "name": "lookup", "input": input}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "three cats"}]},
                ],
                "provider": {"only": [only]},
            });
            let r = messages(&gw, &key, &second, &[]).await;
            assert_eq!(r.status, 200, "{model} via {only}: {}", r.text());
            assert_eq!(
                r.json()["content"][0]["text"],
                "Simulated reply to: three cats",
                "{model} via {only}"
            );
        }
    }
}

#[tokio::test]
async fn errors_take_anthropics_shape() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("messages-errors@example.com").await;
    let shape = |r: &Resp, status: u16, kind: &str| {
        assert_eq!(r.status, status, "{}", r.text());
        let v = r.json();
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"]["type"], kind, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        assert!(
            v["request_id"]
                .as_str()
                .is_some_and(|m| m.starts_with("req_")),
            "{v}"
        );
    };
    let ok = body("claude-haiku-4-5", "anthropic", "hi", false);
    let r = gw
        .send("POST", "/v1/messages", None, Some(&ok.to_string()), &[])
        .await;
    shape(&r, 401, "authentication_error");
    let mut unknown = ok.clone();
    unknown["model"] = json!("claude-nonexistent-9");
    shape(
        &messages(&gw, &key, &unknown, &[]).await,
        404,
        "not_found_error",
    );
    let mut no_max = ok.clone();
    no_max.as_object_mut().expect("object").remove("max_tokens");
    let r = messages(&gw, &key, &no_max, &[]).await;
    shape(&r, 400, "invalid_request_error");
    assert!(r.text().contains("max_tokens"), "{}", r.text());
    let r = messages(&gw, &key, &ok, &[("x-gammainfra-region", "eu-west-3")]).await;
    shape(&r, 400, "invalid_request_error");
    // More than the trial can hold.
    let mut dear = body("anthropic/claude-opus-4-7", "anthropic", "hi", false);
    dear["max_tokens"] = json!(128000);
    shape(&messages(&gw, &key, &dear, &[]).await, 402, "billing_error");
    // A provider failure, streamed or not.
    let failing = body(
        "claude-haiku-4-5",
        "anthropic",
        "boom [[sim:error 500]]",
        false,
    );
    shape(&messages(&gw, &key, &failing, &[]).await, 502, "api_error");
    let cut = body("claude-haiku-4-5", "bedrock", "boom [[sim:cut]]", true);
    let r = messages(&gw, &key, &cut, &[]).await;
    assert_eq!(r.status, 200);
    let ev = events(&r);
    let (name, data) = ev.last().expect("events");
    assert_eq!(name, "error", "{ev:?}");
    assert_eq!(data["error"]["type"], "api_error", "{data}");
}

#[tokio::test]
async fn anthropic_only_features_keep_a_request_on_anthropic_and_top_k_goes_where_it_can() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("messages-only@example.com").await;
    let mut b = body("claude-haiku-4-5", "bedrock", "hi", false);
    b["tools"] = json!([{"type": "web_search_20250305", "name": "web_search"}]);
    let r = messages(&gw, &key, &b, &[]).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("web_search_20250305"), "{}", r.text());
    b.as_object_mut().expect("object").remove("provider");
    let r = messages(&gw, &key, &b, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gammainfra-provider"), Some("anthropic"));
    let sent = gw
        .anthropic
        .requests()
        .last()
        .and_then(|r| r.json())
        .expect("sent");
    assert_eq!(
        sent["tools"][0]["type"], "web_search_20250305",
        "passed through: {sent}"
    );
    // top_k: as sent to Anthropic, in additionalModelRequestFields to Bedrock, refused by
    // OpenAI.
    for (model, provider) in [
        ("claude-haiku-4-5", "anthropic"),
        ("claude-haiku-4-5", "bedrock"),
        ("openai/gpt-4o-mini", "openai"),
    ] {
        let mut b = body(model, provider, "hi", false);
        b["top_k"] = json!(5);
        let r = messages(&gw, &key, &b, &[]).await;
        if provider == "openai" {
            assert_eq!(r.status, 400, "{}", r.text());
            assert!(r.text().contains("top_k"), "{}", r.text());
            continue;
        }
        assert_eq!(r.status, 200, "{provider}: {}", r.text());
    }
    let sent = gw
        .anthropic
        .requests()
        .last()
        .and_then(|r| r.json())
        .expect("sent");
    assert_eq!(sent["top_k"], 5);
    let sent = gw
        .bedrock
        .requests()
        .last()
        .and_then(|r| r.json())
        .expect("sent");
    assert_eq!(sent["additionalModelRequestFields"]["top_k"], 5, "{sent}");
}

#[tokio::test]
async fn count_tokens_is_exact_where_the_provider_counts_and_free() {
    let gw = Gw::start().await;
    let (id, key) = gw.account("messages-count@example.com").await;
    for (model, only, how) in [
        ("claude-haiku-4-5", "anthropic", "exact"),
        ("claude-haiku-4-5", "bedrock", "exact"),
        ("openai/gpt-4o-mini", "openai", "estimate"),
    ] {
        let ask = json!({
            "model": model,
            "system": "Count me.",
            "messages": [{"role": "user", "content": "one two three four"}],
            "provider": {"only": [only]},
        });
        let before = gw.account_view(&id).await;
        let r = gw
            .send(
                "POST",
                "/v1/messages/count_tokens",
                None,
                Some(&ask.to_string()),
                &[("x-api-key", &key)],
            )
            .await;
        assert_eq!(r.status, 200, "{model} via {only}: {}", r.text());
        assert_eq!(
            r.header("x-gammainfra-token-count"),
            Some(how),
            "{model} via {only}"
        );
        let counted = r.json()["input_tokens"].as_u64().expect("input_tokens");
        let after = gw.account_view(&id).await;
        assert_eq!(
            before["balance_usd"], after["balance_usd"],
            "free of charge"
        );
        assert_eq!(before["ledger_entries"], after["ledger_entries"]);
        // The same request, sent: where the provider counts, the count is what it bills.
        let mut sent = ask.clone();
        sent["max_tokens"] = json!(50);
        let m = messages(&gw, &key, &sent, &[]).await;
        assert_eq!(m.status, 200, "{}", m.text());
        let billed = m.json()["usage"]["input_tokens"].as_u64().expect("usage");
        if how == "exact" {
            assert_eq!(counted, billed, "{model} via {only}");
        } else {
            assert!(
                counted >= billed,
                "an estimate errs high: {counted} < {billed}"
            );
        }
    }
    // Bedrock's CountTokens takes the foundation model's own ID, not the profile's.
    assert!(
        gw.bedrock
            .requests()
            .iter()
            .any(|r| r.path == "/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/count-tokens"),
        "{:?}",
        gw.bedrock
            .requests()
            .iter()
            .map(|r| r.path.clone())
            .collect::<Vec<_>>()
    );
    let r = gw
        .send("POST", "/v1/messages/count_tokens", None, Some("{}"), &[])
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["type"], "authentication_error");
}

/// The request Claude Code 2.1.197 sends (its shape, trimmed): every member reaches
/// Anthropic unchanged, and Bedrock serves it translated. The provider is chosen with
/// `X-GammaInfra-Provider`, as Claude Code can only add headers.
#[tokio::test]
async fn a_claude_code_request_passes_through_to_anthropic_and_is_served_by_bedrock() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("claude-code@example.com").await;
    let request = json!({
        "model": "claude-sonnet-4-6",
        "max_tokens": 64000,
        "stream": true,
        "system": [
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": "Be concise.", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>context</system-reminder>"},
                {"type": "text", "text": "read it [[sim:call Read file_path=/tmp/notes.txt]]", "cache_control": {"type": "ephemeral"}}
            ]},
            {"role": "system", "content": "Available agent types: claude."}
        ],
        "tools": [
            {"name": "Agent", "description": "Runs an agent", "input_schema": {"type": "object", "properties": {"prompt": {"type": "string"}}}},
            {"name": "Read", "description": "Reads a file", "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}}}
        ],
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "metadata": {"user_id": "user_abc_account__session_1"},
    });
    let beta = "claude-code-20250219,context-management-2025-06-27,mid-conversation-system-2026-04-07,effort-2025-11-24";
    for provider in ["anthropic", "bedrock"] {
        let r = gw
            .send(
                "POST",
                "/v1/messages?beta=true",
                None,
                Some(&request.to_string()),
                &[
                    ("x-api-key", &key),
                    ("anthropic-version", "2023-06-01"),
                    ("anthropic-beta", beta),
                    ("x-gammainfra-provider", provider),
                ],
            )
            .await;
        assert_eq!(r.status, 200, "{provider}: {}", r.text());
        assert_eq!(r.header("x-gammainfra-provider"), Some(provider));
        let ev = events(&r);
        let tool = ev
            .iter()
            .find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
            .map(|(_, d)| d["content_block"]["name"].clone());
        assert_eq!(tool, Some(json!("Read")), "{provider}: {ev:?}");
        let input: String = ev
            .iter()
            .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&input).expect("JSON"),
            json!({"file_path": "/tmp/notes.txt"}),
            "{provider}"
        );
    }
    // Bedrock got the fields Converse passes to the model as they are.
    let converse = gw
        .bedrock
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/converse-stream"))
        .and_then(|r| r.json())
        .expect("Bedrock got the request");
    let additional = &converse["additionalModelRequestFields"];
    assert_eq!(additional["thinking"], request["thinking"], "{converse}");
    assert_eq!(additional["output_config"], request["output_config"]);
    assert_eq!(
        additional["context_management"],
        request["context_management"]
    );
    assert_eq!(
        additional["anthropic_beta"],
        json!(["context-management-2025-06-27"])
    );
    let sent = gw
        .anthropic
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/messages")
        .expect("Anthropic got the request");
    assert_eq!(sent.header("anthropic-beta"), Some(beta));
    let mut expected = request.clone();
    expected["model"] = json!("claude-sonnet-4-6");
    assert_eq!(
        sent.json().expect("JSON"),
        expected,
        "passed through unchanged"
    );
    // Both headers and `provider.only` at once are refused.
    let mut both = request.clone();
    both["provider"] = json!({"only": ["bedrock"]});
    let r = gw
        .send(
            "POST",
            "/v1/messages",
            Some(&key),
            Some(&both.to_string()),
            &[
                ("x-gammainfra-provider", "anthropic"),
                ("anthropic-beta", beta),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
}

/// Extended thinking on both providers that serve Claude: the same event order (the
/// thinking block, its deltas and signature, then the answer's block), and through
/// Bedrock a tool round trip that hands the thinking back unmodified.
#[tokio::test]
async fn extended_thinking_on_anthropic_and_bedrock() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("thinking@example.com").await;
    let tools = json!([{"name": "lookup", "input_schema": {"type": "object"}}]);
    let mut sequences = Vec::new();
    for provider in ["anthropic", "bedrock"] {
        let first = json!({
            "model": "claude-sonnet-4-6", "max_tokens": 2000, "stream": true,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "tools": tools,
            "messages": [{"role": "user", "content": "find it"}],
        });
        let r = messages(&gw, &key, &first, &[("x-gammainfra-provider", provider)]).await;
        assert_eq!(r.status, 200, "{provider}: {}", r.text());
        let ev = events(&r);
        sequences.push(
            ev.iter()
                .map(|(n, d)| (n.clone(), d["index"].as_u64(), d["delta"]["type"].clone()))
                .collect::<Vec<_>>(),
        );
        let thinking: String = ev
            .iter()
            .filter_map(|(_, d)| d["delta"]["thinking"].as_str())
            .collect();
        assert_eq!(thinking, "Simulated thinking.", "{provider}");
        let signature = ev
            .iter()
            .find_map(|(_, d)| d["delta"]["signature"].as_str())
            .expect("a signature")
            .to_owned();
        let tool = &ev
            .iter()
            .find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
            .expect("a tool call")
            .1["content_block"];
        let delta = &ev
            .iter()
            .find(|(n, _)| n == "message_delta")
            .expect("delta")
            .1;
        // The thinking words are output tokens: 2, plus the call's arguments.
        assert!(
            delta["usage"]["output_tokens"]
                .as_u64()
                .is_some_and(|n| n > 2),
            "{delta}"
        );
        // The next turn hands the thinking back, as Claude requires with tools.
        let thinking_block =
            json!({"type": "thinking", "thinking": thinking, "signature": signature});
        let tool_use = json!({"type": "tool_use", "id": tool["id"], "name": "lookup", "input": {}});
        let second = |assistant: Vec<Value>| {
            json!({
                "model": "claude-sonnet-4-6", "max_tokens": 2000,
                "thinking": {"type": "enabled", "budget_tokens": 1024},
                "tools": tools,
                "messages": [
                    {"role": "user", "content": "find it"},
                    {"role": "assistant", "content": assistant},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool["id"], "content": "found"}]},
                ],
            })
        };
        let r = messages(
            &gw,
            &key,
            &second(vec![thinking_block, tool_use.clone()]),
            &[("x-gammainfra-provider", provider)],
        )
        .await;
        assert_eq!(r.status, 200, "{provider}: {}", r.text());
        let m = r.json();
        assert_eq!(m["content"][0]["type"], "thinking", "{provider}: {m}");
        assert_eq!(
            m["content"][1]["text"], "Simulated reply to: found",
            "{provider}: {m}"
        );
        if provider == "bedrock" {
            let sent = gw
                .bedrock
                .requests()
                .last()
                .and_then(|r| r.json())
                .expect("sent");
            assert_eq!(
                sent["messages"][1]["content"][0]["reasoningContent"]["reasoningText"]["signature"],
                json!(signature),
                "the thinking went back unmodified: {sent}"
            );
            assert_eq!(
                sent["additionalModelRequestFields"]["thinking"]["budget_tokens"],
                1024
            );
            // Without it, Claude (here, the simulated Bedrock) refuses the turn.
            let r = messages(
                &gw,
                &key,
                &second(vec![tool_use]),
                &[("x-gammainfra-provider", provider)],
            )
            .await;
            assert_eq!(r.status, 400, "{}", r.text());
            assert_eq!(r.json()["error"]["type"], "invalid_request_error");
        }
    }
    assert_eq!(
        sequences[1], sequences[0],
        "Bedrock's thinking stream in Anthropic's order"
    );
}

#[tokio::test]
async fn every_answer_names_its_request_id_where_anthropics_sdks_read_it() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("messages-request-id@example.com").await;
    let same = |r: &Resp| {
        let id = r.header("x-gammainfra-request-id").expect("request ID");
        assert!(id.starts_with("req_"), "{id}");
        assert_eq!(r.header("request-id"), Some(id), "{}", r.text());
        id.to_owned()
    };
    for (model, only, _) in ROUTES {
        for stream in [false, true] {
            let r = messages(&gw, &key, &body(model, only, "hi", stream), &[]).await;
            assert_eq!(r.status, 200, "{model} via {only}: {}", r.text());
            same(&r);
        }
    }
    let r = gw
        .send(
            "POST",
            "/v1/messages",
            None,
            Some(&body("claude-haiku-4-5", "anthropic", "hi", false).to_string()),
            &[],
        )
        .await;
    assert_eq!(r.status, 401);
    let id = same(&r);
    assert_eq!(
        r.json()["request_id"],
        id.as_str(),
        "the body's request_id too"
    );
    let count =
        json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]});
    let r = gw
        .send(
            "POST",
            "/v1/messages/count_tokens",
            None,
            Some(&count.to_string()),
            &[("x-api-key", &key)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    same(&r);
}
