//! HTTP-level tests of ConverseStream: event-stream framing, tool use and mid-stream
//! faults.

use serde_json::{json, Value};

use super::eventstream::{decode_frames, DecodedFrame, CONTENT_TYPE};
use super::tests::{assert_aws_error, converse_stream, start, tool_config, user, SONNET};

fn event_types(frames: &[DecodedFrame]) -> Vec<&str> {
    frames
        .iter()
        .map(|f| {
            f.header(":event-type")
                .or(f.header(":exception-type"))
                .unwrap_or("?")
        })
        .collect()
}

#[tokio::test]
async fn converse_stream_text() {
    let sim = start().await;
    let response = converse_stream(&sim, SONNET, &user("Hi there")).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some(CONTENT_TYPE));
    assert!(response.header("x-amzn-requestid").is_some());
    let body = response.frames.concat();
    let frames = decode_frames(&body);
    // Every event is its own body chunk.
    assert_eq!(frames.len(), response.frames.len());
    assert_eq!(
        event_types(&frames),
        [
            "messageStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    for frame in &frames {
        assert_eq!(frame.header(":message-type"), Some("event"));
        assert_eq!(frame.header(":content-type"), Some("application/json"));
        assert!(frame.payload["p"].is_string(), "padding");
    }
    assert_eq!(frames[0].payload["role"], "assistant");
    let text: String = frames[1..6]
        .iter()
        .map(|f| {
            assert_eq!(f.payload["contentBlockIndex"], 0);
            f.payload["delta"]["text"]
                .as_str()
                .expect("text")
                .to_owned()
        })
        .collect();
    assert_eq!(text, "Simulated reply to: Hi there");
    assert_eq!(frames[7].payload["stopReason"], "end_turn");
    assert_eq!(frames[8].payload["usage"]["inputTokens"], 5);
    assert_eq!(frames[8].payload["usage"]["outputTokens"], 5);
    assert!(frames[8].payload["metrics"]["latencyMs"].is_u64());
}

#[tokio::test]
async fn converse_stream_tool_use() {
    let sim = start().await;
    let mut body = user("find it");
    body["toolConfig"] =
        json!({"tools": tool_config()["tools"], "toolChoice": {"tool": {"name": "get_weather"}}});
    let response = converse_stream(&sim, SONNET, &body).await;
    let frames = decode_frames(&response.frames.concat());
    assert_eq!(
        event_types(&frames),
        [
            "messageStart",
            "contentBlockStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    let start = &frames[1].payload["start"]["toolUse"];
    assert_eq!(start["name"], "get_weather");
    assert!(start["toolUseId"]
        .as_str()
        .is_some_and(|id| id.starts_with("tooluse_")));
    let input: String = frames[2..5]
        .iter()
        .map(|f| {
            f.payload["delta"]["toolUse"]["input"]
                .as_str()
                .expect("input")
                .to_owned()
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&input).expect("JSON"),
        json!({"query": "find it"})
    );
    assert_eq!(frames[6].payload["stopReason"], "tool_use");
}

#[tokio::test]
async fn stream_faults() {
    let sim = start().await;
    let response = converse_stream(
        &sim,
        SONNET,
        &user("x [[sim:exception throttlingException]]"),
    )
    .await;
    assert_eq!(response.status, 200);
    assert!(response.error.is_none());
    let frames = decode_frames(&response.frames.concat());
    assert_eq!(
        event_types(&frames),
        [
            "messageStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "throttlingException"
        ]
    );
    let exception = &frames[3];
    let names: Vec<&str> = exception.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, [":exception-type", ":content-type", ":message-type"]);
    assert_eq!(exception.header(":message-type"), Some("exception"));
    assert_eq!(
        exception.payload,
        json!({"message": "Too many tokens, please wait before trying again."})
    );

    let response = converse_stream(
        &sim,
        SONNET,
        &user("x [[sim:exception ModelStreamErrorException]]"),
    )
    .await;
    let frames = decode_frames(&response.frames.concat());
    assert_eq!(
        frames.last().and_then(|f| f.header(":exception-type")),
        Some("modelStreamErrorException")
    );

    let response = converse_stream(&sim, SONNET, &user("x [[sim:cut]]")).await;
    assert!(response.error.is_some(), "the body ends with an error");
    let frames = decode_frames(&response.frames.concat());
    assert_eq!(
        event_types(&frames),
        ["messageStart", "contentBlockDelta", "contentBlockDelta"]
    );

    // Errors before the stream starts are ordinary JSON errors.
    let response = converse_stream(&sim, SONNET, &user("[[sim:error 503]]")).await;
    let message = assert_aws_error(&response, 503, "ServiceUnavailableException");
    assert_eq!(message, "Bedrock is unable to process your request.");
}
