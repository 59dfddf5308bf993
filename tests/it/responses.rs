//! `POST /v1/responses`: OpenAI's Responses API, stateless, on every provider, with the
//! same routing, region constraints and billing as chat completions.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::harness::*;

async fn responses(gw: &Gw, key: &str, body: &Value, headers: &[(&str, &str)]) -> Resp {
    gw.send(
        "POST",
        "/v1/responses",
        Some(key),
        Some(&body.to_string()),
        headers,
    )
    .await
}

/// Each event of a Responses stream, checked against the event grammar: every event is
/// framed as `event: <type>` with `data` whose `type` is the same, the sequence numbers
/// count from 0 without a gap, the stream opens with `response.created` and
/// `response.in_progress` and ends with one terminal event, and every item added is
/// done once, with deltas only while it is open.
fn events(r: &Resp) -> Vec<Value> {
    let mut out = Vec::new();
    for e in r.text().split("\n\n").filter(|e| !e.trim().is_empty()) {
        let mut lines = e.lines();
        let name = lines
            .next()
            .and_then(|l| l.strip_prefix("event: "))
            .unwrap_or_else(|| panic!("an event without its name: {e}"));
        let data = lines
            .next()
            .and_then(|l| l.strip_prefix("data: "))
            .unwrap_or_else(|| panic!("an event without data: {e}"));
        let v: Value = serde_json::from_str(data).expect("event data is JSON");
        assert_eq!(v["type"], name, "{e}");
        assert_eq!(v["sequence_number"], out.len() as u64, "{e}");
        out.push(v);
    }
    let kinds: Vec<&str> = out
        .iter()
        .map(|v| v["type"].as_str().unwrap_or(""))
        .collect();
    assert!(kinds.len() >= 3, "{kinds:?}");
    assert_eq!(&kinds[..2], ["response.created", "response.in_progress"]);
    let terminal = [
        "response.completed",
        "response.incomplete",
        "response.failed",
    ];
    assert!(terminal.contains(kinds.last().expect("last")), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| terminal.contains(k)).count(),
        1,
        "{kinds:?}"
    );
    let mut open: HashSet<u64> = HashSet::new();
    let mut done: HashSet<u64> = HashSet::new();
    for v in &out {
        let index = v["output_index"].as_u64();
        match v["type"].as_str().unwrap_or("") {
            "response.output_item.added" => {
                let i = index.expect("output_index");
                assert!(!done.contains(&i) && open.insert(i), "added twice: {v}");
                // Reasoning items carry no status.
                if v["item"]["type"] != "reasoning" {
                    assert_eq!(v["item"]["status"], "in_progress", "{v}");
                }
            }
            "response.output_item.done" => {
                let i = index.expect("output_index");
                assert!(open.remove(&i) && done.insert(i), "done unopened: {v}");
                if v["item"]["type"] != "reasoning" {
                    assert_eq!(v["item"]["status"], "completed", "{v}");
                }
            }
            "response.output_text.delta"
            | "response.output_text.done"
            | "response.content_part.added"
            | "response.content_part.done"
            | "response.function_call_arguments.delta"
            | "response.function_call_arguments.done" => {
                let i = index.expect("output_index");
                assert!(open.contains(&i), "an event of an item not open: {v}");
                assert!(v["item_id"].is_string(), "{v}");
            }
            _ => {}
        }
    }
    if kinds.last() == Some(&"response.completed") {
        assert!(open.is_empty(), "items left open: {open:?}");
        let final_output = out.last().expect("last")["response"]["output"]
            .as_array()
            .map_or(0, Vec::len);
        assert_eq!(final_output, done.len());
    }
    out
}

/// The concatenated `output_text` of a `response` object.
fn output_text(r: &Value) -> String {
    r["output"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["text"].as_str().map(str::to_owned))
        .collect()
}

/// Each kind of provider: Claude through Bedrock's profile and Anthropic's API, and
/// GPT-4o mini on OpenAI.
const ROUTES: [(&str, &str); 3] = [
    ("anthropic/claude-haiku-4-5", "bedrock"),
    ("anthropic/claude-haiku-4-5", "anthropic"),
    ("openai/gpt-4o-mini", "openai"),
];

on_both_backends!(a_response_is_served_and_billed_exactly_on_every_provider);

/// Streamed and not, on every provider: the answer's text, its usage and `cost_usd`,
/// and the charge in the ledger, which equals the usage at the catalog's prices.
async fn a_response_is_served_and_billed_exactly_on_every_provider(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let (_, key) = gw.account("responses@example.com").await;
    for (model, provider) in ROUTES {
        for stream in [false, true] {
            let what = format!("{model} via {provider}, stream={stream}");
            let before = usd_to_nanos(gw.credits(&key).await["balance_usd"].as_str().expect("b"));
            let body = json!({
                "model": model,
                "instructions": "Be brief.",
                "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hello responses"}]}],
                "max_output_tokens": 100,
                "stream": stream,
                "metadata": {"ticket": "42"},
                "provider": {"only": [provider]},
            });
            let r = responses(&gw, &key, &body, &[]).await;
            assert_eq!(r.status, 200, "{what}: {}", r.text());
            assert_eq!(r.header("x-gammainfra-provider"), Some(provider), "{what}");
            let response = if stream {
                assert_eq!(r.header("content-type"), Some("text/event-stream"));
                let ev = events(&r);
                let deltas: String = ev
                    .iter()
                    .filter(|v| v["type"] == "response.output_text.delta")
                    .filter_map(|v| v["delta"].as_str())
                    .collect();
                let last = ev.last().expect("last")["response"].clone();
                assert_eq!(deltas, output_text(&last), "{what}");
                last
            } else {
                r.json()
            };
            assert_eq!(response["object"], "response", "{what}");
            assert_eq!(response["status"], "completed", "{what}");
            assert_eq!(response["store"], false, "{what}");
            // The model that served it, as chat completions name it.
            assert_eq!(
                response["model"].as_str(),
                r.header("x-gammainfra-upstream-model"),
                "{what}"
            );
            assert_eq!(response["metadata"], json!({"ticket": "42"}), "{what}");
            assert_eq!(
                output_text(&response),
                "Simulated reply to: Hello responses",
                "{what}"
            );
            let usage = &response["usage"];
            assert_eq!(
                usage["total_tokens"].as_u64(),
                Some(
                    usage["input_tokens"].as_u64().expect("in")
                        + usage["output_tokens"].as_u64().expect("out")
                ),
                "{what}: {usage}"
            );
            let cost = usd_to_nanos(usage["cost_usd"].as_str().expect("cost"));
            let after = usd_to_nanos(gw.credits(&key).await["balance_usd"].as_str().expect("b"));
            assert!(cost > 0, "{what}");
            assert_eq!(
                before - after,
                cost,
                "{what}: the ledger took what the answer says"
            );
            // The charge at the catalog's price of the endpoint that answered.
            let upstream = r.header("x-gammainfra-upstream-model").expect("upstream");
            let expected = round_sum(&[
                nanos_at(
                    usage["input_tokens"].as_u64().expect("in"),
                    &price(&gw, upstream, "input"),
                ),
                nanos_at(
                    usage["output_tokens"].as_u64().expect("out"),
                    &price(&gw, upstream, "output"),
                ),
            ]);
            assert_eq!(cost, expected, "{what}");
        }
    }
}

/// The same request streamed through `/v1/responses` and through
/// `/v1/chat/completions`, on Bedrock, is billed the same to the nano-dollar.
#[tokio::test]
async fn a_streamed_response_through_bedrock_costs_what_the_chat_completion_costs() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("same@example.com").await;
    let only = json!({"only": ["bedrock"]});
    let text = "one two three four five six seven";
    let r = responses(
        &gw,
        &key,
        &json!({"model": "anthropic/claude-sonnet-4-6", "input": text, "stream": true,
                "max_output_tokens": 200, "provider": only}),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let via_responses = events(&r).last().expect("last")["response"]["usage"]["cost_usd"]
        .as_str()
        .expect("cost")
        .to_owned();
    let chat = json!({"model": "anthropic/claude-sonnet-4-6", "stream": true,
        "stream_options": {"include_usage": true}, "max_tokens": 200, "provider": only,
        "messages": [{"role": "user", "content": text}]});
    let r = gw.chat(&key, &chat.to_string(), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let data = r.sse_data();
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).expect("usage chunk");
    assert_eq!(usage["usage"]["cost_usd"], via_responses.as_str());
    // Both in the ledger, at the same cost.
    let records = gw
        .send("GET", "/v1/usage", Some(&key), None, &[])
        .await
        .json();
    let costs: Vec<&str> = records["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|r| r["cost_usd"].as_str())
        .collect();
    assert_eq!(costs, [via_responses.as_str(), via_responses.as_str()]);
}

/// A tool round trip as Codex CLI makes it: function tools, the model's
/// `function_call` answered (streamed), then the conversation sent back with the call
/// and its `function_call_output`, which reach Bedrock as `toolUse` and `toolResult`.
#[tokio::test]
async fn function_calls_and_their_outputs_round_trip_through_bedrock() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("tools@example.com").await;
    let tools = json!([{"type": "function", "name": "exec_command", "description": "Run a command",
        "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]},
        "strict": false}]);
    let first = json!({
        "model": "anthropic/claude-sonnet-4-6",
        "input": [{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are a coding agent."}]},
                  {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list files"}]}],
        "tools": tools, "tool_choice": "auto", "parallel_tool_calls": true,
        "reasoning": {"summary": "auto"}, "store": false,
        "include": ["reasoning.encrypted_content"], "prompt_cache_key": "conv-1",
        "stream": true, "provider": {"only": ["bedrock"]},
    });
    let r = responses(&gw, &key, &first, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ev = events(&r);
    let done = &ev.last().expect("last")["response"];
    let call = done["output"]
        .as_array()
        .expect("output")
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap_or_else(|| panic!("no function call: {done}"))
        .clone();
    assert_eq!(call["name"], "exec_command");
    let args: Value =
        serde_json::from_str(call["arguments"].as_str().expect("args")).expect("json");
    assert!(args.is_object(), "{args}");
    let call_id = call["call_id"].as_str().expect("call id").to_owned();

    let second = json!({
        "model": "anthropic/claude-sonnet-4-6",
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list files"}]},
                  {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
                  call,
                  {"type": "function_call_output", "call_id": call_id, "output": "a.txt b.txt"}],
        "tools": tools, "provider": {"only": ["bedrock"]},
    });
    let r = responses(&gw, &key, &second, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = gw.bedrock.requests().last().cloned().expect("request");
    let sent = up.json().expect("json");
    let messages = sent["messages"].as_array().expect("messages");
    let blocks: Vec<&Value> = messages
        .iter()
        .flat_map(|m| m["content"].as_array().into_iter().flatten())
        .collect();
    assert!(
        blocks
            .iter()
            .any(|b| b["toolUse"]["toolUseId"] == call_id.as_str()),
        "{sent}"
    );
    assert!(
        blocks
            .iter()
            .any(|b| b["toolResult"]["toolUseId"] == call_id.as_str()
                && b["toolResult"]["content"][0]["text"] == "a.txt b.txt"),
        "{sent}"
    );
}

/// What needs state the gateway does not keep, built-in tools and unknown members are
/// refused with a 400 naming them, before anything is held or sent.
#[tokio::test]
async fn stateful_features_and_built_in_tools_are_refused_naming_them() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("refused@example.com").await;
    let before = gw.credits(&key).await;
    let cases = [
        (json!({"store": true}), "store", "stateless"),
        (
            json!({"previous_response_id": "resp_1"}),
            "previous_response_id",
            "stateless",
        ),
        (json!({"background": true}), "background", "stateless"),
        (
            json!({"tools": [{"type": "web_search"}]}),
            "tools[0].type",
            "`web_search`",
        ),
        (
            json!({"tool_choice": {"type": "file_search"}}),
            "tool_choice",
            "file_search",
        ),
        (json!({"frobnicate": 1}), "frobnicate", "Unknown parameter"),
    ];
    for (extra, param, says) in cases {
        let mut body = json!({"model": "openai/gpt-4o-mini", "input": "hi"});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        let r = responses(&gw, &key, &body, &[]).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let e = &r.json()["error"];
        assert_eq!(e["param"], param, "{body}: {e}");
        assert!(e["message"].as_str().expect("m").contains(says), "{e}");
    }
    assert_eq!(gw.credits(&key).await, before);
    assert!(gw.openai.requests().is_empty(), "nothing was sent upstream");
}

/// A provider failing mid-stream ends the stream with `response.failed`, billed for
/// what was generated; one failing before the answer fails over.
#[tokio::test]
async fn a_provider_failing_mid_stream_ends_it_with_response_failed() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("failed@example.com").await;
    let r = responses(
        &gw,
        &key,
        &json!({"model": "openai/gpt-4o-mini", "input": "one two [[sim:midstream-error]]",
                "stream": true}),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ev = events(&r);
    let last = ev.last().expect("last");
    assert_eq!(last["type"], "response.failed", "{last}");
    assert_eq!(last["response"]["status"], "failed");
    assert!(last["response"]["error"]["message"].is_string(), "{last}");
    let cost = usd_to_nanos(
        last["response"]["usage"]["cost_usd"]
            .as_str()
            .expect("cost"),
    );
    let spent = usd_to_nanos(gw.credits(&key).await["spent_usd"].as_str().expect("spent"));
    assert_eq!(cost, spent);
}

/// On OpenAI endpoints the client's request goes to OpenAI's own `/v1/responses`
/// (with the endpoint's model ID, nothing stored, and without the gateway's members), so
/// a reasoning model's `reasoning` item with its `encrypted_content` comes back as
/// OpenAI sent it, and can be sent back; the charge is added to `usage` as `cost_usd`.
#[tokio::test]
async fn openai_endpoints_get_the_request_itself_and_answer_with_reasoning() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("native@example.com").await;
    for stream in [false, true] {
        let body = json!({
            "model": "openai/gpt-5-mini",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "think about it"}]}],
            "reasoning": {"effort": "low", "summary": "auto"},
            "include": ["reasoning.encrypted_content"],
            "store": false,
            "stream": stream,
            "provider": {"only": ["openai"]},
        });
        let before = usd_to_nanos(gw.credits(&key).await["balance_usd"].as_str().expect("b"));
        let r = responses(&gw, &key, &body, &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let up = gw.openai.requests().last().cloned().expect("request");
        assert_eq!(up.path, "/v1/responses");
        let sent = up.json().expect("json");
        assert_eq!(sent["model"], "gpt-5-mini");
        assert_eq!(sent["store"], false);
        assert_eq!(sent["include"], json!(["reasoning.encrypted_content"]));
        assert!(sent.get("provider").is_none(), "{sent}");
        let response = if stream {
            events(&r).last().expect("last")["response"].clone()
        } else {
            r.json()
        };
        let reasoning = &response["output"][0];
        assert_eq!(reasoning["type"], "reasoning", "{response}");
        assert!(
            reasoning["encrypted_content"]
                .as_str()
                .is_some_and(|c| !c.is_empty()),
            "{reasoning}"
        );
        let usage = &response["usage"];
        assert!(
            usage["output_tokens_details"]["reasoning_tokens"].as_u64() > Some(0),
            "{usage}"
        );
        let cost = usd_to_nanos(usage["cost_usd"].as_str().expect("cost"));
        let expected = round_sum(&[
            nanos_at(
                usage["input_tokens"].as_u64().expect("in"),
                &price(&gw, "gpt-5-mini", "input"),
            ),
            nanos_at(
                usage["output_tokens"].as_u64().expect("out"),
                &price(&gw, "gpt-5-mini", "output"),
            ),
        ]);
        assert_eq!(cost, expected, "reasoning tokens are billed as output");
        let after = usd_to_nanos(gw.credits(&key).await["balance_usd"].as_str().expect("b"));
        assert_eq!(before - after, cost);

        // The reasoning item goes back to OpenAI with the next turn, as it came.
        let next = json!({
            "model": "openai/gpt-5-mini",
            "input": [{"role": "user", "content": "think about it"}, reasoning,
                      {"role": "user", "content": "and now?"}],
            "include": ["reasoning.encrypted_content"],
            "provider": {"only": ["openai"]},
        });
        let r = responses(&gw, &key, &next, &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let sent = gw
            .openai
            .requests()
            .last()
            .cloned()
            .expect("request")
            .json()
            .expect("json");
        assert_eq!(
            sent["input"][1]["encrypted_content"],
            reasoning["encrypted_content"]
        );
    }
}

/// OpenAI breaking off mid-stream: the gateway ends the stream with its own
/// `response.failed`, numbered after the last event forwarded, billed for what was
/// generated; OpenAI's own words stay in the log.
#[tokio::test]
async fn an_openai_stream_failing_midway_ends_with_the_gateways_response_failed() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("native-failed@example.com").await;
    let r = responses(
        &gw,
        &key,
        &json!({"model": "openai/gpt-4o-mini", "input": "one two three [[sim:midstream-error 2]]",
                "stream": true, "provider": {"only": ["openai"]}}),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ev = events(&r);
    let last = ev.last().expect("last");
    assert_eq!(last["type"], "response.failed", "{last}");
    assert_eq!(
        last["response"]["error"]["code"], "upstream_error",
        "{last}"
    );
    let deltas = ev
        .iter()
        .filter(|v| v["type"] == "response.output_text.delta")
        .count() as i128;
    assert_eq!(deltas, 2);
    let spent = usd_to_nanos(gw.credits(&key).await["spent_usd"].as_str().expect("spent"));
    assert_eq!(
        usd_to_nanos(
            last["response"]["usage"]["cost_usd"]
                .as_str()
                .expect("cost")
        ),
        spent
    );
    assert!(spent > 0);
}
