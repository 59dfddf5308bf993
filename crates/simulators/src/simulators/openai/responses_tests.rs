//! HTTP-level tests of the simulated Responses API (`POST /v1/responses`).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::simulators::start_openai;
use crate::simulators::test_client::{post_json, send, TestResponse};
use crate::simulators::Simulator;

const KEY: &str = "sk-test-0123456789";

async fn create(sim: &Simulator, body: &Value) -> TestResponse {
    let url = format!("{}/responses", sim.base_url());
    let auth = format!("Bearer {KEY}");
    post_json(&url, &[("authorization", &auth)], body).await
}

fn ask(text: &str) -> Value {
    json!({"model": "gpt-4o-mini", "input": text})
}

fn with(mut body: Value, patch: Value) -> Value {
    for (key, value) in patch.as_object().expect("patch object") {
        body[key] = value.clone();
    }
    body
}

/// The error body of a refused request, checked for its status, param and code.
fn refused(response: &TestResponse, status: u16, param: Option<&str>, code: Option<&str>) -> Value {
    assert_eq!(response.status, status, "{}", response.text());
    let body = response.json();
    let error = &body["error"];
    assert_eq!(error["type"], "invalid_request_error", "{body}");
    assert_eq!(error["param"].as_str(), param, "{body}");
    assert_eq!(error["code"].as_str(), code, "{body}");
    body
}

/// The events of a stream, as `(SSE event name, data)`.
fn events(response: &TestResponse) -> Vec<(String, Value)> {
    response
        .sse()
        .into_iter()
        .map(|(name, data)| {
            let name = name.expect("every event has an `event:` line");
            let data: Value = serde_json::from_str(&data).expect("event JSON");
            (name, data)
        })
        .collect()
}

/// Checks a finished stream against the documented grammar and returns its last event's
/// response: `event:` names equal `type`, `sequence_number`s count from 0, the stream
/// opens with `response.created` and `response.in_progress`, every item added is done
/// at the same index, text deltas concatenate to `response.output_text.done` (and the
/// part and item that follow), argument deltas to `response.function_call_arguments.done`,
/// and the stream ends with `response.completed` or `response.incomplete` carrying the
/// items done and the usage.
fn check_grammar(events: &[(String, Value)]) -> Value {
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str(), "{data}");
        assert_eq!(data["sequence_number"], i, "{data}");
    }
    let kinds: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(kinds[..2], ["response.created", "response.in_progress"]);
    let id = events[0].1["response"]["id"].clone();
    for (_, data) in &events[..2] {
        assert_eq!(data["response"]["status"], "in_progress");
        assert_eq!(data["response"]["output"], json!([]));
        assert!(data["response"]["usage"].is_null());
        assert_eq!(data["response"]["id"], id);
    }
    let (last_kind, last) = events.last().expect("events");
    assert!(
        last_kind == "response.completed" || last_kind == "response.incomplete",
        "{last_kind}"
    );
    let mut done_items: Vec<Value> = Vec::new();
    let mut open: Option<(usize, Value)> = None;
    let mut text = String::new();
    let mut arguments = String::new();
    let mut part_open = false;
    for (kind, data) in &events[2..events.len() - 1] {
        match kind.as_str() {
            "response.output_item.added" => {
                assert!(open.is_none(), "an item is added while another is open");
                assert_eq!(data["output_index"], done_items.len());
                open = Some((done_items.len(), data["item"].clone()));
                text.clear();
                arguments.clear();
            }
            "response.output_item.done" => {
                let (index, added) = open.take().expect("an open item");
                assert!(!part_open);
                assert_eq!(data["output_index"], index);
                let item = &data["item"];
                assert_eq!(item["id"], added["id"]);
                assert_eq!(item["type"], added["type"]);
                match item["type"].as_str() {
                    Some("message") => {
                        assert_eq!(added["status"], "in_progress");
                        assert_eq!(added["content"], json!([]));
                        assert_eq!(item["content"][0]["text"], text.as_str());
                    }
                    Some("function_call") => {
                        assert_eq!(added["arguments"], "");
                        assert_eq!(item["arguments"], arguments.as_str());
                        assert_eq!(item["status"], "completed");
                    }
                    _ => {}
                }
                done_items.push(item.clone());
            }
            "response.content_part.added" => {
                let (index, item) = open.as_ref().expect("an open item");
                assert_eq!(data["output_index"], *index);
                assert_eq!(data["item_id"], item["id"]);
                assert_eq!(data["content_index"], 0);
                assert_eq!(data["part"]["type"], "output_text");
                assert_eq!(data["part"]["text"], "");
                part_open = true;
            }
            "response.output_text.delta" => {
                assert!(part_open);
                let (index, item) = open.as_ref().expect("an open item");
                assert_eq!(data["output_index"], *index);
                assert_eq!(data["item_id"], item["id"]);
                assert_eq!(data["content_index"], 0);
                assert!(data["obfuscation"].is_string(), "{data}");
                text.push_str(data["delta"].as_str().expect("delta"));
            }
            "response.output_text.done" => {
                assert!(part_open);
                assert_eq!(data["text"], text.as_str());
            }
            "response.content_part.done" => {
                assert!(part_open);
                assert_eq!(data["part"]["text"], text.as_str());
                part_open = false;
            }
            "response.function_call_arguments.delta" => {
                let (index, item) = open.as_ref().expect("an open item");
                assert_eq!(data["output_index"], *index);
                assert_eq!(data["item_id"], item["id"]);
                arguments.push_str(data["delta"].as_str().expect("delta"));
            }
            "response.function_call_arguments.done" => {
                let (_, item) = open.as_ref().expect("an open item");
                assert_eq!(data["arguments"], arguments.as_str());
                assert_eq!(data["name"], item["name"]);
            }
            other => panic!("unexpected event {other}"),
        }
    }
    assert!(open.is_none(), "every item added is done");
    let response = last["response"].clone();
    assert_eq!(response["id"], id);
    assert_eq!(response["output"], Value::Array(done_items));
    assert!(response["usage"]["total_tokens"].is_u64(), "{response}");
    response
}

#[tokio::test]
async fn responses_answer_with_a_message_and_usage() {
    let sim = start_openai(KEY).await.expect("start");
    let body = json!({
        "model": "gpt-4o-mini",
        "instructions": "Be terse.",
        "input": [
            {"role": "developer", "content": "Answer kindly."},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "Hello"},
                {"type": "input_text", "text": "there"},
            ]},
        ],
        "metadata": {"team": "search"},
        "store": false,
        "temperature": 0.5,
    });
    let response = create(&sim, &body).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert!(response.header("x-request-id").is_some());
    let body = response.json();
    assert!(body["id"].as_str().expect("id").starts_with("resp_"));
    assert_eq!(body["object"], "response");
    assert!(body["created_at"].is_u64());
    assert_eq!(body["status"], "completed");
    assert!(body["error"].is_null() && body["incomplete_details"].is_null());
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["instructions"], "Be terse.");
    assert_eq!(body["metadata"], json!({"team": "search"}));
    assert_eq!(body["store"], false);
    assert_eq!(body["temperature"], 0.5);
    assert_eq!(body["tool_choice"], "auto");
    assert_eq!(body["tools"], json!([]));
    assert_eq!(body["parallel_tool_calls"], true);
    assert_eq!(body["text"]["format"]["type"], "text");
    let output = body["output"].as_array().expect("output");
    assert_eq!(output.len(), 1);
    let message = &output[0];
    assert!(message["id"].as_str().expect("id").starts_with("msg_"));
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["status"], "completed");
    assert_eq!(
        message["content"],
        json!([{"type": "output_text", "annotations": [], "logprobs": [], "text": "Simulated reply to: Hello there"}])
    );
    // Instructions (3 + 2), developer (3 + 2), user (3 + 2); 5 output words.
    assert_eq!(
        body["usage"],
        json!({
            "input_tokens": 15,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 20,
        })
    );
    let recorded = sim.requests();
    assert_eq!(recorded[0].path, "/v1/responses");
}

#[tokio::test]
async fn responses_validate_requests_with_openai_texts() {
    let sim = start_openai(KEY).await.expect("start");
    let url = format!("{}/responses", sim.base_url());
    let auth = format!("Bearer {KEY}");
    let response = send("POST", &url, &[("authorization", &auth)], "{not json").await;
    refused(&response, 400, None, None);
    let response = post_json(&url, &[], &ask("hi")).await;
    assert_eq!(response.status, 401);

    let error = refused(
        &create(&sim, &with(ask("hi"), json!({"model": "llama-3"}))).await,
        404,
        None,
        Some("model_not_found"),
    );
    assert_eq!(
        error["error"]["message"],
        "The model `llama-3` does not exist or you do not have access to it."
    );

    let function_call =
        json!({"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"});
    let cases: Vec<(Value, &str, Option<&str>, &str)> = vec![
        (
            json!({"max_tokens": 20}),
            "max_tokens",
            Some("unknown_parameter"),
            "Unknown parameter: 'max_tokens'.",
        ),
        (
            json!({"model": null}),
            "model",
            Some("missing_required_parameter"),
            "Missing required parameter: 'model'.",
        ),
        (
            json!({"input": null}),
            "input",
            Some("missing_required_parameter"),
            "Missing required parameter: 'input'.",
        ),
        (
            json!({"input": 5}),
            "input",
            Some("invalid_type"),
            "Invalid type for 'input': expected one of a string or array of input items, but got an integer instead.",
        ),
        (
            json!({"input": []}),
            "input",
            Some("empty_array"),
            "Invalid 'input': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        ),
        (
            json!({"max_output_tokens": 10}),
            "max_output_tokens",
            Some("integer_below_min_value"),
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got 10 instead.",
        ),
        (
            json!({"max_output_tokens": "many"}),
            "max_output_tokens",
            Some("invalid_type"),
            "Invalid type for 'max_output_tokens': expected an integer, but got a string instead.",
        ),
        (
            json!({"temperature": 3}),
            "temperature",
            Some("decimal_above_max_value"),
            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 3 instead.",
        ),
        (
            json!({"top_p": "high"}),
            "top_p",
            Some("invalid_type"),
            "Invalid type for 'top_p': expected a decimal, but got a string instead.",
        ),
        (
            json!({"stream": "yes"}),
            "stream",
            Some("invalid_type"),
            "Invalid type for 'stream': expected a boolean, but got a string instead.",
        ),
        (
            json!({"store": 1}),
            "store",
            Some("invalid_type"),
            "Invalid type for 'store': expected a boolean, but got an integer instead.",
        ),
        (
            json!({"parallel_tool_calls": "no"}),
            "parallel_tool_calls",
            Some("invalid_type"),
            "Invalid type for 'parallel_tool_calls': expected a boolean, but got a string instead.",
        ),
        (
            json!({"previous_response_id": "resp_123"}),
            "previous_response_id",
            Some("previous_response_not_found"),
            "Previous response with id 'resp_123' not found.",
        ),
        (
            json!({"include": ["reasoning.summary"]}),
            "include[0]",
            Some("invalid_value"),
            "Invalid value: 'reasoning.summary'. Supported values are: 'file_search_call.results', 'web_search_call.results', 'web_search_call.action.sources', 'message.input_image.image_url', 'computer_call_output.output.image_url', 'code_interpreter_call.outputs', 'reasoning.encrypted_content', and 'message.output_text.logprobs'.",
        ),
        (
            json!({"reasoning": {"effort": "high"}}),
            "reasoning.effort",
            Some("unsupported_parameter"),
            "Unsupported parameter: 'reasoning.effort' is not supported with this model.",
        ),
        (
            json!({"service_tier": "fast"}),
            "service_tier",
            Some("invalid_value"),
            "Invalid value: 'fast'. Supported values are: 'auto', 'default', 'flex', 'scale', and 'priority'.",
        ),
        (
            json!({"truncation": "middle"}),
            "truncation",
            Some("invalid_value"),
            "Invalid value: 'middle'. Supported values are: 'auto' and 'disabled'.",
        ),
        (
            json!({"metadata": {"n": 1}}),
            "metadata.n",
            Some("invalid_type"),
            "Invalid type for 'metadata.n': expected a string, but got an integer instead.",
        ),
        (
            json!({"stream_options": {"include_obfuscation": false}}),
            "stream_options",
            None,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        ),
        (
            json!({"text": {"format": {"type": "json_schema", "schema": {}}}}),
            "text.format.name",
            Some("missing_required_parameter"),
            "Missing required parameter: 'text.format.name'.",
        ),
        (
            json!({"tools": [{"type": "function", "function": {"name": "lookup"}}]}),
            "tools[0].function",
            Some("unknown_parameter"),
            "Unknown parameter: 'tools[0].function'.",
        ),
        (
            json!({"tools": [{"type": "function", "name": "look up"}]}),
            "tools[0].name",
            Some("invalid_value"),
            "Invalid 'tools[0].name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
        ),
        (
            json!({"tools": [{"type": "computer"}]}),
            "tools[0].type",
            Some("invalid_value"),
            "Invalid value: 'computer'. Supported values are: 'function', 'web_search', and 'web_search_preview'.",
        ),
        (
            json!({"tools": [{"type": "function", "name": "lookup"}], "tool_choice": {"type": "function", "name": "search"}}),
            "tool_choice",
            None,
            "Tool choice 'function' not found in 'tools' parameter.",
        ),
        (
            json!({"tool_choice": "always"}),
            "tool_choice",
            Some("invalid_value"),
            "Invalid value: 'always'. Supported values are: 'none', 'auto', and 'required'.",
        ),
        (
            json!({"input": [{"role": "tool", "content": "x"}]}),
            "input[0].role",
            Some("invalid_value"),
            "Invalid value: 'tool'. Supported values are: 'user', 'assistant', 'system', and 'developer'.",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}),
            "input[0].content[0].type",
            Some("invalid_value"),
            "Invalid value: 'text'. Supported values are: 'input_text' and 'input_image'.",
        ),
        (
            json!({"input": [{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}]}),
            "input[0].content[0].type",
            Some("invalid_value"),
            "Invalid value: 'input_text'. Supported values are: 'output_text' and 'refusal'.",
        ),
        (
            json!({"input": [{"role": "user", "content": "x", "name": "bob"}]}),
            "input[0].name",
            Some("unknown_parameter"),
            "Unknown parameter: 'input[0].name'.",
        ),
        (
            json!({"input": [{"type": "item_reference", "id": "msg_1"}]}),
            "input[0].type",
            Some("invalid_value"),
            "Invalid value: 'item_reference'. Supported values are: 'message', 'function_call', 'function_call_output', and 'reasoning'.",
        ),
        (
            json!({"input": [{"type": "function_call", "call_id": "call_1", "name": "lookup"}]}),
            "input[0].arguments",
            Some("missing_required_parameter"),
            "Missing required parameter: 'input[0].arguments'.",
        ),
        (
            json!({"input": [
                {"role": "user", "content": "weather?"},
                {"type": "function_call_output", "call_id": "call_9", "output": "sunny"},
            ]}),
            "input",
            None,
            "No tool call found for function call output with call_id call_9.",
        ),
        (
            json!({"input": [{"role": "user", "content": "weather?"}, function_call]}),
            "input",
            None,
            "No tool output found for function call call_1.",
        ),
        (
            json!({"input": [{"type": "reasoning", "id": "rs_1"}]}),
            "input[0].summary",
            Some("missing_required_parameter"),
            "Missing required parameter: 'input[0].summary'.",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "ftp://example.com/cat.png"}]}]}),
            "input[0].content[0].image_url",
            Some("invalid_value"),
            "Invalid 'input[0].content[0].image_url'. Expected a base64-encoded data URL with an image MIME type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), or a publicly accessible image URL.",
        ),
    ];
    for (patch, param, code, message) in cases {
        let response = create(&sim, &with(ask("hi"), patch.clone())).await;
        let error = refused(&response, 400, Some(param), code);
        assert_eq!(error["error"]["message"], message, "{patch}");
    }
}

#[tokio::test]
async fn responses_accept_every_documented_setting() {
    let sim = start_openai(KEY).await.expect("start");
    let body = json!({
        "model": "gpt-5-mini",
        "input": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "input_text", "text": "what is this"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
            ]},
        ],
        "include": ["reasoning.encrypted_content", "message.output_text.logprobs"],
        "max_output_tokens": 100,
        "metadata": {},
        "parallel_tool_calls": false,
        "prompt_cache_key": "key-1",
        "reasoning": {"effort": "low", "summary": "auto"},
        "safety_identifier": "user-1",
        "service_tier": "auto",
        "store": true,
        "stream": false,
        "text": {"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": true}, "verbosity": "low"},
        "tool_choice": "auto",
        "tools": [{"type": "web_search"}],
        "top_logprobs": 2,
        "top_p": 0.9,
        "truncation": "auto",
        "user": "end-user-1",
    });
    let response = create(&sim, &body).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(
        body["reasoning"],
        json!({"effort": "low", "summary": "auto"})
    );
    assert_eq!(body["prompt_cache_key"], "key-1");
    assert_eq!(body["parallel_tool_calls"], false);
    assert_eq!(body["truncation"], "auto");
    assert_eq!(body["text"]["verbosity"], "low");
    assert_eq!(body["tools"], json!([{"type": "web_search"}]));
    // A web search tool is accepted, never called: the answer is text.
    assert_eq!(body["output"][1]["type"], "message");
    // System (3 + 2), user (3 + 3 + one image).
    assert_eq!(body["usage"]["input_tokens"], 11 + 85);
}

#[tokio::test]
async fn responses_reasoning_models_reason_first() {
    let sim = start_openai(KEY).await.expect("start");
    let mut body = with(
        ask("think about it"),
        json!({"model": "o4-mini", "include": ["reasoning.encrypted_content"]}),
    );
    let response = create(&sim, &body).await.json();
    assert_eq!(response["reasoning"]["effort"], "medium");
    let output = response["output"].as_array().expect("output");
    assert_eq!(output.len(), 2);
    let reasoning = &output[0];
    assert_eq!(reasoning["type"], "reasoning");
    assert!(reasoning["id"].as_str().expect("id").starts_with("rs_"));
    assert_eq!(reasoning["summary"], json!([]));
    assert!(reasoning["encrypted_content"]
        .as_str()
        .expect("encrypted content")
        .starts_with("gAAAAAB"));
    assert_eq!(
        output[1]["content"][0]["text"],
        "Simulated reply to: think about it"
    );
    // 2 reasoning words ("Simulated thinking.") and 6 reply words.
    assert_eq!(response["usage"]["output_tokens"], 8);
    assert_eq!(
        response["usage"]["output_tokens_details"]["reasoning_tokens"],
        2
    );

    // The reasoning item goes back as input on the next turn.
    body["input"] = json!([
        {"role": "user", "content": "think about it"},
        reasoning,
        {"role": "assistant", "content": [{"type": "output_text", "text": "Simulated reply to: think about it"}]},
        {"role": "user", "content": "again"},
    ]);
    body["stream"] = json!(true);
    let response = create(&sim, &body).await;
    let events = events(&response);
    let last = check_grammar(&events);
    assert_eq!(last["output"][0]["type"], "reasoning");
    assert_eq!(
        last["output"][1]["content"][0]["text"],
        "Simulated reply to: again"
    );

    // Without the include, no encrypted content; a chat model has no reasoning item.
    body["stream"] = json!(false);
    body["include"] = json!([]);
    let response = create(&sim, &body).await.json();
    assert!(response["output"][0].get("encrypted_content").is_none());
    body["model"] = json!("gpt-4.1");
    body["include"] = json!(["reasoning.encrypted_content"]);
    let response = create(&sim, &body).await.json();
    assert_eq!(response["output"][0]["type"], "message");
    assert_eq!(
        response["usage"]["output_tokens_details"]["reasoning_tokens"],
        0
    );
}

#[tokio::test]
async fn responses_stream_the_documented_events() {
    let sim = start_openai(KEY).await.expect("start");
    let response = create(
        &sim,
        &with(ask("stream me please"), json!({"stream": true})),
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    assert!(response.error.is_none());
    assert!(response.frames.len() > 8, "one body frame per event");
    let events = events(&response);
    let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[4].1["delta"], "Simulated");
    assert_eq!(events[5].1["delta"], " reply");
    let last = check_grammar(&events);
    assert_eq!(last["status"], "completed");
    assert_eq!(
        last["output"][0]["content"][0]["text"],
        "Simulated reply to: stream me please"
    );
    assert_eq!(last["usage"]["input_tokens"], 6);
    assert_eq!(last["usage"]["output_tokens"], 6);

    let response = create(
        &sim,
        &with(
            ask("plain"),
            json!({"stream": true, "stream_options": {"include_obfuscation": false}}),
        ),
    )
    .await;
    for (_, data) in events_of(&response, "response.output_text.delta") {
        assert!(data.get("obfuscation").is_none(), "{data}");
    }
}

fn events_of(response: &TestResponse, kind: &str) -> Vec<(String, Value)> {
    events(response)
        .into_iter()
        .filter(|(name, _)| name == kind)
        .collect()
}

#[tokio::test]
async fn responses_call_functions_and_take_their_output() {
    let sim = start_openai(KEY).await.expect("start");
    let tools = json!([
        {"type": "web_search"},
        {"type": "function", "name": "search", "description": "Search.", "parameters": {"type": "object"}, "strict": false},
        {"type": "function", "name": "lookup", "parameters": null, "strict": null},
    ]);
    let body = with(ask("find cats"), json!({"tools": tools}));
    let response = create(&sim, &body).await.json();
    assert_eq!(response["status"], "completed");
    let call = &response["output"][0];
    assert_eq!(response["output"].as_array().expect("output").len(), 1);
    assert_eq!(call["type"], "function_call");
    assert!(call["id"].as_str().expect("id").starts_with("fc_"));
    assert!(call["call_id"]
        .as_str()
        .expect("call_id")
        .starts_with("call_"));
    assert_eq!(call["name"], "search");
    assert_eq!(call["status"], "completed");
    assert_eq!(call["arguments"], r#"{"query":"find cats"}"#);
    assert_eq!(response["usage"]["output_tokens"], 2);

    // Forced, and streamed.
    let forced = with(
        body.clone(),
        json!({"tool_choice": {"type": "function", "name": "lookup"}, "stream": true}),
    );
    let response = create(&sim, &forced).await;
    let events = events(&response);
    let last = check_grammar(&events);
    assert_eq!(last["output"][0]["name"], "lookup");
    let deltas = events
        .iter()
        .filter(|(kind, _)| kind == "response.function_call_arguments.delta")
        .count();
    assert!(deltas >= 2, "{deltas} argument deltas");

    // [[sim:call NAME key=value]] picks the function and its arguments.
    let response = create(
        &sim,
        &with(
            body.clone(),
            json!({"input": "go [[sim:call lookup city=Paris]]"}),
        ),
    )
    .await
    .json();
    assert_eq!(response["output"][0]["name"], "lookup");
    assert_eq!(response["output"][0]["arguments"], r#"{"city":"Paris"}"#);

    // The round trip: the call and its output go back; the model answers the output.
    let round_trip = with(
        body.clone(),
        json!({"input": [
            {"role": "user", "content": "find cats"},
            call,
            {"type": "function_call_output", "call_id": call["call_id"], "output": "three cats found"},
        ]}),
    );
    let response = create(&sim, &round_trip).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let response = response.json();
    assert_eq!(response["output"][0]["type"], "message");
    assert_eq!(
        response["output"][0]["content"][0]["text"],
        "Simulated reply to: three cats found"
    );
    // (3 + 2) + (3 + 2 argument words) + (3 + 3).
    assert_eq!(response["usage"]["input_tokens"], 16);

    // tool_choice none and a forced built-in tool answer with text.
    for choice in [json!("none"), json!({"type": "web_search"})] {
        let response = create(&sim, &with(body.clone(), json!({"tool_choice": choice}))).await;
        assert_eq!(response.json()["output"][0]["type"], "message");
    }
}

#[tokio::test]
async fn responses_stop_at_max_output_tokens() {
    let sim = start_openai(KEY).await.expect("start");
    let words: Vec<String> = (1..=20).map(|i| format!("w{i}")).collect();
    let long = words.join(" ");
    let body = with(ask(&long), json!({"max_output_tokens": 16}));
    let response = create(&sim, &body).await.json();
    assert_eq!(response["status"], "incomplete");
    assert_eq!(
        response["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(response["max_output_tokens"], 16);
    let message = &response["output"][0];
    assert_eq!(message["status"], "incomplete");
    let expected = format!("Simulated reply to: {}", words[..13].join(" "));
    assert_eq!(message["content"][0]["text"], expected.as_str());
    assert_eq!(response["usage"]["output_tokens"], 16);

    let response = create(&sim, &with(body, json!({"stream": true}))).await;
    let events = events(&response);
    assert_eq!(events.last().expect("last").0, "response.incomplete");
    let last = check_grammar(&events);
    assert_eq!(last["status"], "incomplete");
    assert_eq!(last["output"][0]["content"][0]["text"], expected.as_str());

    // A reasoning model's reasoning counts against the limit.
    let body = with(ask(&long), json!({"model": "o3", "max_output_tokens": 16}));
    let response = create(&sim, &body).await.json();
    assert_eq!(response["status"], "incomplete");
    assert_eq!(response["usage"]["output_tokens"], 16);
    assert_eq!(
        response["usage"]["output_tokens_details"]["reasoning_tokens"],
        2
    );
}

#[tokio::test]
async fn responses_fault_triggers() {
    let sim = start_openai(KEY).await.expect("start");
    for (status, kind) in [
        (500, "server_error"),
        (429, "requests"),
        (503, "server_error"),
    ] {
        let response = create(&sim, &ask(&format!("boom [[sim:error {status}]]"))).await;
        assert_eq!(response.status, status);
        assert_eq!(response.json()["error"]["type"], kind);
        if status == 429 {
            assert_eq!(response.header("retry-after"), Some("1"));
        }
    }

    // A cut stream ends abruptly after two text deltas, without a final event.
    let stream = json!({"stream": true});
    let response = create(&sim, &with(ask("please [[sim:cut]] now"), stream.clone())).await;
    assert_eq!(response.status, 200);
    assert!(response.error.is_some(), "the body must end abruptly");
    let text: String = events_of(&response, "response.output_text.delta")
        .iter()
        .map(|(_, data)| data["delta"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(text, "Simulated reply");
    assert!(events_of(&response, "response.completed").is_empty());

    // A mid-stream error: an `error` event, then `response.failed`, numbered on.
    let response = create(
        &sim,
        &with(ask("please [[sim:midstream-error 1]]"), stream.clone()),
    )
    .await;
    assert!(response.error.is_none());
    let failure = events(&response);
    for (i, (_, data)) in failure.iter().enumerate() {
        assert_eq!(data["sequence_number"], i);
    }
    let kinds: Vec<&str> = failure.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "error",
            "response.failed",
        ]
    );
    let error = &failure[5].1;
    assert_eq!(error["code"], "server_error");
    assert!(error["param"].is_null());
    let failed = &failure[6].1["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], "server_error");
    assert_eq!(failed["error"]["message"], error["message"]);

    // Slow and drip.
    let started = Instant::now();
    let response = create(&sim, &ask("[[sim:slow 200]] hi")).await;
    assert_eq!(response.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let started = Instant::now();
    let response = create(&sim, &with(ask("[[sim:drip 20]] hi"), stream)).await;
    check_grammar(&events(&response));
    let frames = u32::try_from(response.frames.len()).expect("frames");
    assert!(started.elapsed() >= Duration::from_millis(20) * frames);
}

/// `[[sim:reset]]` resets the connection; `[[sim:hang]]` sends two deltas, then
/// nothing, the connection held open.
#[tokio::test]
async fn responses_reset_and_hang() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sim = start_openai(KEY).await.expect("start");
    let exchange = |text: &'static str| {
        let addr = sim.addr();
        async move {
            let body = json!({"model": "gpt-4o-mini", "input": text, "stream": true}).to_string();
            let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let head = format!("POST /v1/responses HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len());
            tcp.write_all(head.as_bytes()).await.expect("write");
            tcp.write_all(body.as_bytes()).await.expect("write");
            let mut received = Vec::new();
            let mut buf = vec![0u8; 65536];
            loop {
                let read = tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut buf));
                match read.await {
                    Err(_) => return Ok((String::from_utf8_lossy(&received).into_owned(), true)),
                    Ok(Ok(0)) => {
                        return Ok((String::from_utf8_lossy(&received).into_owned(), false))
                    }
                    Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
                    Ok(Err(err)) => return Err(err),
                }
            }
        }
    };
    let err = exchange("hi [[sim:reset]]").await.expect_err("a reset");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    let (text, open) = exchange("hi [[sim:hang]]").await.expect("an answer");
    assert!(open, "the connection stays open");
    assert_eq!(text.matches("event: response.output_text.delta").count(), 2);
    assert!(!text.contains("response.completed"));
}
