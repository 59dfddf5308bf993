//! HTTP-level tests of the simulated OpenAI API.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::simulators::start_openai;
use crate::simulators::test_client::{post_json, send, TestResponse};

const KEY: &str = "sk-test-0123456789";

async fn chat(sim: &crate::simulators::Simulator, body: Value) -> TestResponse {
    let url = format!("{}/chat/completions", sim.base_url());
    let auth = format!("Bearer {KEY}");
    post_json(&url, &[("authorization", &auth)], &body).await
}

fn user(text: &str) -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})
}

/// The `data:` payloads of a chat completion stream, `[DONE]` excluded.
fn chunks(response: &TestResponse) -> Vec<Value> {
    response
        .sse()
        .into_iter()
        .filter(|(_, data)| data != "[DONE]")
        .map(|(_, data)| serde_json::from_str(&data).expect("chunk JSON"))
        .collect()
}

fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

fn assert_error(response: &TestResponse, status: u16, param: Option<&str>) -> Value {
    assert_eq!(response.status, status, "{}", response.text());
    let body = response.json();
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    assert_eq!(body["error"]["param"].as_str(), param, "{body}");
    body
}

#[tokio::test]
async fn rejects_missing_and_wrong_api_keys() {
    let sim = start_openai(KEY).await.expect("start");
    assert!(sim.base_url().ends_with("/v1"));
    let url = format!("{}/chat/completions", sim.base_url());
    let body = user("hi");

    let response = post_json(&url, &[], &body).await;
    assert_error(&response, 401, None);
    assert!(response.header("x-request-id").is_some());

    let response = post_json(
        &url,
        &[("authorization", "Bearer sk-wrong-key-123456")],
        &body,
    )
    .await;
    let error = assert_error(&response, 401, None);
    assert_eq!(error["error"]["code"], "invalid_api_key");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    let message = error["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("Incorrect API key provided: sk-"),
        "{message}"
    );
    assert!(!message.contains("sk-wrong-key-123456"));

    let recorded = sim.requests();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[1].path, "/v1/chat/completions");
    assert_eq!(recorded[1].method, "POST");
    assert_eq!(
        recorded[1].header("Authorization"),
        Some("Bearer sk-wrong-key-123456")
    );
    assert_eq!(recorded[1].json(), Some(body));
}

#[tokio::test]
async fn completes_with_deterministic_reply_and_usage() {
    let sim = start_openai(KEY).await.expect("start");
    let response = chat(
        &sim,
        json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]},
            ],
            "temperature": 0.5,
        }),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert!(body["id"].as_str().expect("id").starts_with("chatcmpl-"));
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(
        choice["message"]["content"],
        "Simulated reply to: Hello there"
    );
    assert_eq!(choice["finish_reason"], "stop");
    // (3 + 3 words) + (3 + 2 words); 5 output words.
    assert_eq!(body["usage"]["prompt_tokens"], 11);
    assert_eq!(body["usage"]["completion_tokens"], 5);
    assert_eq!(body["usage"]["total_tokens"], 16);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(
        body["usage"]["completion_tokens_details"]["reasoning_tokens"],
        0
    );
}

#[tokio::test]
async fn applies_max_tokens_and_stop() {
    let sim = start_openai(KEY).await.expect("start");
    let mut body = user("one two three");
    body["max_completion_tokens"] = json!(4);
    let response = chat(&sim, body).await.json();
    assert_eq!(
        response["choices"][0]["message"]["content"],
        "Simulated reply to: one"
    );
    assert_eq!(response["choices"][0]["finish_reason"], "length");
    assert_eq!(response["usage"]["completion_tokens"], 4);

    let mut body = user("one two three");
    body["stop"] = json!(["two", "zzz"]);
    let response = chat(&sim, body).await.json();
    assert_eq!(
        response["choices"][0]["message"]["content"],
        "Simulated reply to: one"
    );
    assert_eq!(response["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn validates_requests() {
    let sim = start_openai(KEY).await.expect("start");
    let url = format!("{}/chat/completions", sim.base_url());
    let auth = format!("Bearer {KEY}");
    let response = send("POST", &url, &[("authorization", &auth)], "{not json").await;
    assert_error(&response, 400, None);

    let mut body = user("hi");
    body["model"] = json!("llama-3");
    let error = assert_error(&chat(&sim, body).await, 404, None);
    assert_eq!(error["error"]["code"], "model_not_found");
    assert_eq!(
        error["error"]["message"],
        "The model `llama-3` does not exist or you do not have access to it."
    );

    let cases = [
        (json!({"temperature": 3}), "temperature"),
        (json!({"temperature": "hot"}), "temperature"),
        (json!({"top_p": 1.5}), "top_p"),
        (json!({"max_tokens": 0}), "max_tokens"),
        (
            json!({"max_completion_tokens": "many"}),
            "max_completion_tokens",
        ),
        (
            json!({"stream_options": {"include_usage": true}}),
            "stream_options",
        ),
        (json!({"stop": ["a", "b", "c", "d", "e"]}), "stop"),
        (json!({"n": 2}), "n"),
        (json!({"stream": "yes"}), "stream"),
        (json!({"messages": []}), "messages"),
        (
            json!({"messages": [{"role": "robot", "content": "x"}]}),
            "messages[0].role",
        ),
        (json!({"model": 5}), "model"),
    ];
    for (patch, param) in cases {
        let mut body = user("hi");
        for (key, value) in patch.as_object().expect("object") {
            body[key] = value.clone();
        }
        let response = chat(&sim, body).await;
        let error = assert_error(&response, 400, Some(param));
        assert_eq!(error["error"]["type"], "invalid_request_error");
    }
    let mut body = user("hi");
    body["stream_options"] = json!({"include_usage": true});
    let error = chat(&sim, body).await.json();
    assert_eq!(
        error["error"]["message"],
        "The 'stream_options' parameter is only allowed when 'stream' is enabled."
    );
}

#[tokio::test]
async fn tool_messages_must_answer_tool_calls() {
    let sim = start_openai(KEY).await.expect("start");
    let assistant = json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"query\":\"weather\"}"}}
    ]});
    let orphan = json!({"model": "gpt-4o", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]});
    assert_error(&chat(&sim, orphan).await, 400, Some("messages.[1].role"));
    let wrong_id = json!({"model": "gpt-4o", "messages": [
        {"role": "user", "content": "weather?"},
        assistant,
        {"role": "tool", "tool_call_id": "call_2", "content": "sunny"},
    ]});
    assert_error(
        &chat(&sim, wrong_id).await,
        400,
        Some("messages.[2].tool_call_id"),
    );
    let unanswered = json!({"model": "gpt-4o", "messages": [
        {"role": "user", "content": "weather?"},
        assistant,
        {"role": "user", "content": "well?"},
    ]});
    assert_error(
        &chat(&sim, unanswered).await,
        400,
        Some("messages.[1].role"),
    );
    let answered = json!({"model": "gpt-4o", "messages": [
        {"role": "user", "content": "weather?"},
        assistant,
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny and warm"},
    ], "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]});
    let response = chat(&sim, answered).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Simulated reply to: sunny and warm"
    );
    // (3 + 1) + (3 + 1 argument word) + (3 + 3)
    assert_eq!(body["usage"]["prompt_tokens"], 14);
}

#[tokio::test]
async fn calls_tools() {
    let sim = start_openai(KEY).await.expect("start");
    let tools = json!([
        {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "lookup"}},
    ]);
    let mut body = user("find cats");
    body["tools"] = tools.clone();
    let response = chat(&sim, body.clone()).await.json();
    let choice = &response["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().expect("id").starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "search");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().expect("arguments"))
            .expect("arguments JSON");
    assert_eq!(arguments, json!({"query": "find cats"}));

    body["tool_choice"] = json!({"type": "function", "function": {"name": "lookup"}});
    body["stream"] = json!(true);
    let response = chat(&sim, body.clone()).await;
    let chunks = chunks(&response);
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(calls[0]["function"]["name"], "lookup");
    assert_eq!(calls[0]["function"]["arguments"], "");
    assert!(calls.len() >= 3, "header plus 2+ argument fragments");
    let streamed: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(streamed, r#"{"query":"find cats"}"#);
    let last = chunks.last().expect("last chunk");
    assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");

    body["tool_choice"] = json!("none");
    body["stream"] = json!(false);
    let response = chat(&sim, body).await.json();
    assert_eq!(response["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn streams_chunks_in_order() {
    let sim = start_openai(KEY).await.expect("start");
    let mut body = user("stream me");
    body["stream"] = json!(true);
    let response = chat(&sim, body).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    assert!(response.error.is_none());
    assert!(response.frames.len() > 3, "one body frame per chunk");
    assert!(response.text().ends_with("data: [DONE]\n\n"));
    let chunks = chunks(&response);
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": "", "refusal": null})
    );
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Simulated");
    assert_eq!(chunks[2]["choices"][0]["delta"]["content"], " reply");
    assert_eq!(streamed_text(&chunks), "Simulated reply to: stream me");
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "gpt-4o-mini");
        assert!(chunk.get("usage").is_none());
    }
    let last = chunks.last().expect("last");
    assert_eq!(last["choices"][0]["delta"], json!({}));
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn include_usage_adds_a_final_usage_chunk() {
    let sim = start_openai(KEY).await.expect("start");
    let mut body = user("count me");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let response = chat(&sim, body).await;
    let chunks = chunks(&response);
    let (usage_chunk, earlier) = chunks.split_last().expect("chunks");
    for chunk in earlier {
        assert!(
            chunk["usage"].is_null() && chunk.get("usage").is_some(),
            "{chunk}"
        );
    }
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 5);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 5);
    assert_eq!(usage_chunk["usage"]["total_tokens"], 10);
    assert_eq!(
        earlier.last().expect("finish")["choices"][0]["finish_reason"],
        "stop"
    );
}

#[tokio::test]
async fn error_triggers() {
    let sim = start_openai(KEY).await.expect("start");
    for (status, kind) in [
        (500, "server_error"),
        (429, "requests"),
        (529, "server_error"),
    ] {
        let response = chat(&sim, user(&format!("boom [[sim:error {status}]]"))).await;
        let error = assert_error(&response, status, None);
        assert_eq!(error["error"]["type"], kind);
        if status == 429 {
            assert_eq!(error["error"]["code"], "rate_limit_exceeded");
            assert_eq!(response.header("retry-after"), Some("1"));
        }
    }
}

#[tokio::test]
async fn stream_faults() {
    let sim = start_openai(KEY).await.expect("start");
    let mut body = user("please [[sim:cut]] now");
    body["stream"] = json!(true);
    let response = chat(&sim, body.clone()).await;
    assert_eq!(response.status, 200);
    assert!(response.error.is_some(), "the body must end abruptly");
    assert!(!response.text().contains("[DONE]"));
    assert_eq!(streamed_text(&chunks(&response)), "Simulated reply");

    body["messages"][0]["content"] = json!("please [[sim:midstream-error]]");
    let response = chat(&sim, body).await;
    assert!(response.error.is_none());
    assert!(!response.text().contains("[DONE]"));
    let chunks = chunks(&response);
    assert_eq!(streamed_text(&chunks), "Simulated reply");
    let last = chunks.last().expect("error chunk");
    assert_eq!(last["error"]["type"], "server_error");
}

#[tokio::test]
async fn slow_trigger_delays_the_answer() {
    let sim = start_openai(KEY).await.expect("start");
    let started = Instant::now();
    let response = chat(&sim, user("[[sim:slow 200]] hi")).await;
    assert_eq!(response.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn validates_and_counts_images() {
    let sim = start_openai(KEY).await.expect("start");
    let with_image = |url: &str| {
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": url}},
        ]}]})
    };
    let response = chat(&sim, with_image("data:image/png;base64,iVBORw0KGgo=")).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["usage"]["prompt_tokens"], 3 + 3 + 85);
    let response = chat(&sim, with_image("https://example.com/cat.png")).await;
    assert_eq!(response.status, 200, "{}", response.text());

    let error = assert_error(
        &chat(&sim, with_image("data:image/bmp;base64,iVBORw0KGgo=")).await,
        400,
        None,
    );
    assert_eq!(error["error"]["code"], "invalid_image_format");
    assert_error(
        &chat(&sim, with_image("data:image/png;base64,not base64!")).await,
        400,
        Some("messages[0].content[1].image_url.url"),
    );
    assert_error(
        &chat(&sim, with_image("ftp://example.com/cat.png")).await,
        400,
        Some("messages[0].content[1].image_url.url"),
    );
}

#[tokio::test]
async fn lists_models_and_stops_on_drop() {
    let sim = start_openai(KEY).await.expect("start");
    let auth = format!("Bearer {KEY}");
    let url = format!("{}/models", sim.base_url());
    let response = send("GET", &url, &[("authorization", &auth)], "").await;
    assert_eq!(response.status, 200);
    let models = response.json();
    assert_eq!(models["object"], "list");
    assert!(models["data"]
        .as_array()
        .expect("data")
        .iter()
        .any(|m| m["id"] == "gpt-4o-mini"));
    let response = send(
        "GET",
        &format!("{url}/gpt-4o"),
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(response.json()["id"], "gpt-4o");
    let response = send(
        "GET",
        &format!("{url}/nope"),
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(response.status, 404);
    let response = send(
        "GET",
        &format!("{}/nope", sim.base_url()),
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(response.status, 404);

    let addr = sim.addr();
    drop(sim);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
