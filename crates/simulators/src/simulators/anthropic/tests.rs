//! HTTP-level tests of the simulated Anthropic API.

use serde_json::{json, Value};

use crate::simulators::test_client::{post_json, send, TestResponse};
use crate::simulators::{start_anthropic, Simulator};

const KEY: &str = "sk-ant-test-key";

async fn messages(sim: &Simulator, body: Value) -> TestResponse {
    let url = format!("{}/v1/messages", sim.base_url());
    let headers = [("x-api-key", KEY), ("anthropic-version", "2023-06-01")];
    post_json(&url, &headers, &body).await
}

fn user(text: &str) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": text}],
    })
}

fn assert_error(response: &TestResponse, status: u16, kind: &str) -> String {
    assert_eq!(response.status, status, "{}", response.text());
    let body = response.json();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    let request_id = body["request_id"].as_str().expect("request_id");
    assert!(request_id.starts_with("req_"));
    assert_eq!(response.header("request-id"), Some(request_id));
    body["error"]["message"]
        .as_str()
        .expect("message")
        .to_owned()
}

/// (event name, data JSON) pairs of a stream.
fn events(response: &TestResponse) -> Vec<(String, Value)> {
    response
        .sse()
        .into_iter()
        .map(|(event, data)| {
            let data: Value = serde_json::from_str(&data).expect("event JSON");
            let event = event.expect("event name");
            assert_eq!(data["type"], event.as_str());
            (event, data)
        })
        .collect()
}

#[tokio::test]
async fn checks_api_key_and_version_headers() {
    let sim = start_anthropic(KEY).await.expect("start");
    assert_eq!(sim.base_url(), format!("http://{}", sim.addr()));
    let url = format!("{}/v1/messages", sim.base_url());
    let body = user("hi");

    let response = post_json(&url, &[("anthropic-version", "2023-06-01")], &body).await;
    assert_error(&response, 401, "authentication_error");
    let headers = [
        ("x-api-key", "sk-ant-wrong"),
        ("anthropic-version", "2023-06-01"),
    ];
    let message = assert_error(
        &post_json(&url, &headers, &body).await,
        401,
        "authentication_error",
    );
    assert_eq!(message, "invalid x-api-key");
    let message = assert_error(
        &post_json(&url, &[("x-api-key", KEY)], &body).await,
        400,
        "invalid_request_error",
    );
    assert_eq!(message, "anthropic-version: header is required");

    let recorded = sim.requests();
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded[2].header("x-api-key"), Some(KEY));
    assert_eq!(recorded[2].json(), Some(body));
}

#[tokio::test]
async fn replies_with_message_and_usage() {
    let sim = start_anthropic(KEY).await.expect("start");
    let response = messages(
        &sim,
        json!({
            "model": "claude-haiku-4-5",
            "max_tokens": 100,
            "system": "Be brief please.",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]},
            ],
            "temperature": 1,
            "metadata": {"user_id": "u-1"},
        }),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.header("request-id").is_some());
    let body = response.json();
    assert!(body["id"].as_str().expect("id").starts_with("msg_"));
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "claude-haiku-4-5");
    assert_eq!(
        body["content"],
        json!([{"type": "text", "text": "Simulated reply to: Hello there"}])
    );
    assert_eq!(body["stop_reason"], "end_turn");
    assert!(body["stop_sequence"].is_null());
    // 3 system words + (3 + 2); 5 output words.
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 8, "output_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
    );

    let mut request = user("one two three");
    request["stop_sequences"] = json!(["two"]);
    let body = messages(&sim, request).await.json();
    assert_eq!(body["content"][0]["text"], "Simulated reply to: one");
    assert_eq!(body["stop_reason"], "stop_sequence");
    assert_eq!(body["stop_sequence"], "two");
    let mut request = user("one two three");
    request["max_tokens"] = json!(3);
    let body = messages(&sim, request).await.json();
    assert_eq!(body["content"][0]["text"], "Simulated reply to:");
    assert_eq!(body["stop_reason"], "max_tokens");
    assert_eq!(body["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn validates_requests() {
    let sim = start_anthropic(KEY).await.expect("start");
    let mut body = user("hi");
    body["model"] = json!("gpt-4o");
    assert_eq!(
        assert_error(&messages(&sim, body).await, 404, "not_found_error"),
        "model: gpt-4o"
    );

    let system_role = json!({"model": "claude-x", "max_tokens": 5, "messages": [
        {"role": "system", "content": "be nice"}, {"role": "user", "content": "hi"}]});
    let message = assert_error(
        &messages(&sim, system_role).await,
        400,
        "invalid_request_error",
    );
    assert!(
        message.contains("top-level `system` parameter"),
        "{message}"
    );

    let cases = [
        (json!({"max_tokens": null}), "max_tokens: Field required"),
        (
            json!({"max_tokens": 0}),
            "max_tokens: Input should be greater than or equal to 1",
        ),
        (
            json!({"temperature": 1.5}),
            "temperature: Input should be less than or equal to 1",
        ),
        (
            json!({"messages": []}),
            "messages: at least one message is required",
        ),
        (
            json!({"messages": [{"role": "assistant", "content": "hi"}]}),
            "messages: first message must use the \"user\" role",
        ),
        (
            json!({"stream": "yes"}),
            "stream: Input should be a valid boolean",
        ),
        (
            json!({"stop_sequences": "x"}),
            "stop_sequences: Input should be a valid list",
        ),
        (
            json!({"metadata": {"user_id": "u", "tier": 1}}),
            "metadata.tier: Extra inputs are not permitted",
        ),
        (
            json!({"top_k": -1}),
            "top_k: Input should be greater than or equal to 0",
        ),
        (json!({"bogus": 1}), "bogus: Extra inputs are not permitted"),
        (
            json!({"tools": [{"name": "x"}]}),
            "tools.0.custom.input_schema: Field required",
        ),
        (
            json!({"tool_choice": {"type": "any"}}),
            "tool_choice may only be specified while providing tools.",
        ),
    ];
    for (patch, expected) in cases {
        let mut body = user("hi");
        for (key, value) in patch.as_object().expect("object") {
            body[key] = value.clone();
        }
        let message = assert_error(&messages(&sim, body).await, 400, "invalid_request_error");
        assert_eq!(message, expected);
    }
}

#[tokio::test]
async fn tool_results_must_match_the_previous_tool_use() {
    let sim = start_anthropic(KEY).await.expect("start");
    let tool_use = json!({"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"query": "weather"}}]});
    let orphan = json!({"model": "claude-x", "max_tokens": 50, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Let me check."},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ]});
    let message = assert_error(&messages(&sim, orphan).await, 400, "invalid_request_error");
    assert!(message.starts_with("messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_1."), "{message}");

    let unanswered = json!({"model": "claude-x", "max_tokens": 50, "messages": [
        {"role": "user", "content": "weather?"},
        tool_use,
        {"role": "user", "content": "well?"},
    ]});
    let message = assert_error(
        &messages(&sim, unanswered).await,
        400,
        "invalid_request_error",
    );
    assert!(message.starts_with("messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1."), "{message}");

    let answered = json!({"model": "claude-x", "max_tokens": 50,
    "tools": [{"name": "lookup", "input_schema": {"type": "object"}}],
    "messages": [
        {"role": "user", "content": "weather?"},
        tool_use,
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny and warm"}]}]},
    ]});
    let response = messages(&sim, answered).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(
        body["content"][0]["text"],
        "Simulated reply to: sunny and warm"
    );
    assert_eq!(body["stop_reason"], "end_turn");
    // (3 + 1) + (3 + 1 word of input JSON) + (3 + 3)
    assert_eq!(body["usage"]["input_tokens"], 14);
}

#[tokio::test]
async fn calls_tools() {
    let sim = start_anthropic(KEY).await.expect("start");
    let mut body = user("find cats");
    body["tools"] = json!([
        {"name": "search", "input_schema": {"type": "object"}},
        {"name": "lookup", "description": "d", "input_schema": {"type": "object"}},
    ]);
    let response = messages(&sim, body.clone()).await.json();
    assert_eq!(response["stop_reason"], "tool_use");
    let block = &response["content"][0];
    assert_eq!(block["type"], "tool_use");
    assert!(block["id"].as_str().expect("id").starts_with("toolu_"));
    assert_eq!(block["name"], "search");
    assert_eq!(block["input"], json!({"query": "find cats"}));

    body["tool_choice"] = json!({"type": "tool", "name": "lookup"});
    body["stream"] = json!(true);
    let events = events(&messages(&sim, body.clone()).await);
    let start = &events[1].1["content_block"];
    assert_eq!(start["type"], "tool_use");
    assert_eq!(start["name"], "lookup");
    assert_eq!(start["input"], json!({}));
    let partial: Vec<&str> = events
        .iter()
        .filter(|(name, _)| name == "content_block_delta")
        .map(|(_, data)| {
            assert_eq!(data["delta"]["type"], "input_json_delta");
            data["delta"]["partial_json"]
                .as_str()
                .expect("partial_json")
        })
        .collect();
    assert!(partial.len() >= 2);
    let input: Value = serde_json::from_str(&partial.concat()).expect("input JSON");
    assert_eq!(input, json!({"query": "find cats"}));
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");

    body["tool_choice"] = json!({"type": "none"});
    body["stream"] = json!(false);
    assert_eq!(messages(&sim, body).await.json()["stop_reason"], "end_turn");
}

#[tokio::test]
async fn streams_the_real_event_sequence() {
    let sim = start_anthropic(KEY).await.expect("start");
    let mut body = user("stream me");
    body["stream"] = json!(true);
    let response = messages(&sim, body).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    assert!(response.error.is_none());
    assert!(response.frames.len() > 3, "one body frame per event");
    let events = events(&response);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let start = &events[0].1["message"];
    assert_eq!(start["model"], "claude-sonnet-4-5");
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["usage"]["input_tokens"], 5);
    assert_eq!(start["usage"]["output_tokens"], 1);
    assert_eq!(start["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: String = events[3..8]
        .iter()
        .map(|(_, data)| {
            assert_eq!(data["delta"]["type"], "text_delta");
            data["delta"]["text"].as_str().expect("text")
        })
        .collect();
    assert_eq!(text, "Simulated reply to: stream me");
    assert_eq!(events[4].1["delta"]["text"], " reply");
    assert_eq!(
        events[9].1["delta"],
        json!({"stop_reason": "end_turn", "stop_sequence": null})
    );
    assert_eq!(events[9].1["usage"]["output_tokens"], 5);
}

#[tokio::test]
async fn reports_prompt_caching() {
    let sim = start_anthropic(KEY).await.expect("start");
    let body = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "a long shared system prompt", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "first question"}],
    });
    let first = messages(&sim, body.clone()).await.json();
    assert_eq!(
        first["usage"],
        json!({"input_tokens": 5, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 0, "output_tokens": 5})
    );
    let mut second = body.clone();
    second["messages"][0]["content"] = json!("another question here");
    let second = messages(&sim, second).await.json();
    assert_eq!(second["usage"]["cache_read_input_tokens"], 5);
    assert_eq!(second["usage"]["cache_creation_input_tokens"], 0);
    assert_eq!(second["usage"]["input_tokens"], 6);

    let mut other = body;
    other["system"][0]["text"] = json!("a different system prompt");
    let other = messages(&sim, other).await.json();
    assert_eq!(other["usage"]["cache_creation_input_tokens"], 4);
    assert_eq!(other["usage"]["cache_read_input_tokens"], 0);
}

#[tokio::test]
async fn error_triggers() {
    let sim = start_anthropic(KEY).await.expect("start");
    for (status, kind) in [
        (500, "api_error"),
        (429, "rate_limit_error"),
        (529, "overloaded_error"),
    ] {
        let response = messages(&sim, user(&format!("boom [[sim:error {status}]]"))).await;
        assert_error(&response, status, kind);
        if status == 429 {
            assert_eq!(response.header("retry-after"), Some("1"));
        }
    }
}

#[tokio::test]
async fn stream_faults() {
    let sim = start_anthropic(KEY).await.expect("start");
    let mut body = user("please [[sim:cut]]");
    body["stream"] = json!(true);
    let response = messages(&sim, body.clone()).await;
    assert_eq!(response.status, 200);
    assert!(response.error.is_some(), "the body must end abruptly");
    let names: Vec<String> = events(&response)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta"
        ]
    );

    body["messages"][0]["content"] = json!("please [[sim:midstream-error]]");
    let response = messages(&sim, body).await;
    assert!(response.error.is_none());
    let events = events(&response);
    assert_eq!(events.len(), 6);
    let (name, error) = events.last().expect("error event");
    assert_eq!(name, "error");
    assert_eq!(error["error"]["type"], "overloaded_error");
}

#[tokio::test]
async fn validates_and_counts_images() {
    let sim = start_anthropic(KEY).await.expect("start");
    let with_image = |source: Value| {
        json!({"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": [
            {"type": "image", "source": source},
            {"type": "text", "text": "what is this"},
        ]}]})
    };
    let png = json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="});
    let response = messages(&sim, with_image(png)).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["usage"]["input_tokens"], 3 + 85 + 3);
    let url = json!({"type": "url", "url": "https://example.com/cat.png"});
    assert_eq!(messages(&sim, with_image(url)).await.status, 200);

    let bmp = json!({"type": "base64", "media_type": "image/bmp", "data": "iVBORw0KGgo="});
    let message = assert_error(
        &messages(&sim, with_image(bmp)).await,
        400,
        "invalid_request_error",
    );
    assert!(
        message.starts_with("messages.0.content.0.image.source.base64.media_type:"),
        "{message}"
    );
    let broken = json!({"type": "base64", "media_type": "image/png", "data": "not base64!"});
    assert_error(
        &messages(&sim, with_image(broken)).await,
        400,
        "invalid_request_error",
    );
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let sim = start_anthropic(KEY).await.expect("start");
    let response = send("GET", &format!("{}/v1/nothing", sim.base_url()), &[], "").await;
    assert_error(&response, 404, "not_found_error");
    assert_eq!(sim.requests()[0].path, "/v1/nothing");
}
