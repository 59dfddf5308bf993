//! Property-based fuzzing of what parses untrusted input: the request parser, the
//! Anthropic and Bedrock request translators (the OpenAI path forwards the body), the
//! response parsers, and the Anthropic SSE and Bedrock event-stream translators.
//! Nothing may panic, whatever a client or a provider sends.
//!
//! A bounded run is part of the suite (`GAMMAINFRA_FUZZ_CASES`, default 256 cases per
//! target); a longer one: `GAMMAINFRA_FUZZ_CASES=100000 cargo test --test it fuzz`.

use std::sync::OnceLock;

use futures_util::StreamExt;
use gammainfra::chat::raw::RawObject;
use gammainfra::chat::ChatRequest;
use gammainfra::providers::{anthropic, bedrock};
use proptest::prelude::*;
use serde_json::{json, Value};

fn cases() -> u32 {
    std::env::var("GAMMAINFRA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn images() -> &'static bedrock::images::ImageFetcher {
    static F: OnceLock<bedrock::images::ImageFetcher> = OnceLock::new();
    F.get_or_init(|| bedrock::images::ImageFetcher::new(false).expect("fetcher"))
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A string that is sometimes one of `known`, sometimes anything.
fn one_of(known: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(known).prop_map(str::to_owned),
        1 => ".{0,10}",
    ]
}

/// A content part: text, an image (data URL, valid or not), or something else.
fn part() -> impl Strategy<Value = Value> {
    prop_oneof![
        ".{0,20}".prop_map(|t| json!({"type": "text", "text": t})),
        (
            one_of(&["image/png", "image/jpeg", "image/gif", "text/plain"]),
            "[A-Za-z0-9+/=]{0,40}"
        )
            .prop_map(|(mime, b64)| json!({"type": "image_url", "image_url": {"url": format!("data:{mime};base64,{b64}")}})),
        any_json(),
    ]
}

fn content() -> impl Strategy<Value = Value> {
    prop_oneof![
        ".{0,30}".prop_map(Value::String),
        proptest::collection::vec(part(), 0..4).prop_map(Value::Array),
        Just(Value::Null),
        any_json(),
    ]
}

fn message() -> impl Strategy<Value = Value> {
    (
        one_of(&["system", "developer", "user", "assistant", "tool"]),
        content(),
        proptest::option::of(proptest::collection::vec(
            ("[a-z0-9]{0,6}", "[a-z_]{0,8}", ".{0,20}").prop_map(|(id, name, args)| {
                json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})
            }),
            0..3,
        )),
        proptest::option::of("[a-z0-9]{0,6}"),
    )
        .prop_map(|(role, content, calls, call_id)| {
            let mut m = json!({"role": role, "content": content});
            if let Some(c) = calls {
                m["tool_calls"] = Value::Array(c);
            }
            if let Some(id) = call_id {
                m["tool_call_id"] = json!(id);
            }
            m
        })
}

/// A chat request body, mostly well-formed, with random twists.
fn chat_body() -> impl Strategy<Value = Value> {
    (
        one_of(&["gpt-4o-mini", "claude-opus-4-5", "anthropic/claude-sonnet-4-5"]),
        proptest::collection::vec(message(), 0..6),
        proptest::option::of(any::<i64>()),
        proptest::option::of(any_json()),
        proptest::option::of(proptest::collection::vec(
            ("[a-z_]{0,8}", any_json()).prop_map(|(name, params)| {
                json!({"type": "function", "function": {"name": name, "parameters": params}})
            }),
            0..3,
        )),
        proptest::option::of(prop_oneof![
            Just(json!("auto")),
            Just(json!("none")),
            Just(json!("required")),
            any_json()
        ]),
        proptest::option::of(proptest::collection::vec(".{0,5}", 0..3)),
    )
        .prop_map(|(model, messages, max_tokens, temperature, tools, choice, stop)| {
            let mut b = json!({"model": model, "messages": messages});
            if let Some(n) = max_tokens {
                b["max_tokens"] = json!(n);
            }
            if let Some(t) = temperature {
                b["temperature"] = t;
            }
            if let Some(t) = tools {
                b["tools"] = Value::Array(t);
            }
            if let Some(c) = choice {
                b["tool_choice"] = c;
            }
            if let Some(s) = stop {
                b["stop"] = json!(s);
            }
            b
        })
}

/// An Anthropic SSE event: a known type with plausible or random data.
fn anthropic_event() -> impl Strategy<Value = gammainfra::providers::http::Event> {
    let data = prop_oneof![
        (0u64..4, ".{0,10}").prop_map(|(i, t)| json!({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": t}}).to_string()),
        (0u64..4, ".{0,10}").prop_map(|(i, t)| json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": t}}).to_string()),
        (0u64..4, "[a-z_]{0,6}").prop_map(|(i, n)| json!({"type": "content_block_start", "index": i, "content_block": {"type": "tool_use", "id": "t", "name": n, "input": {}}}).to_string()),
        any::<u32>().prop_map(|n| json!({"type": "message_start", "message": {"id": "msg", "model": "m", "usage": {"input_tokens": n, "output_tokens": 1}}}).to_string()),
        (one_of(&["end_turn", "max_tokens", "tool_use", "stop_sequence"]), any::<u32>()).prop_map(|(s, n)| json!({"type": "message_delta", "delta": {"stop_reason": s}, "usage": {"output_tokens": n}}).to_string()),
        Just(json!({"type": "message_stop"}).to_string()),
        Just(json!({"type": "error", "error": {"type": "overloaded_error", "message": "x"}}).to_string()),
        any_json().prop_map(|v| v.to_string()),
        ".{0,30}",
    ];
    (
        one_of(&[
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
            "ping",
            "error",
        ]),
        data,
    )
        .prop_map(|(event, data)| gammainfra::providers::http::Event { event, data })
}

/// A Bedrock ConverseStream event-stream message: known or random headers and payload.
fn bedrock_message() -> impl Strategy<Value = aws_smithy_types::event_stream::Message> {
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let payload = prop_oneof![
        ".{0,10}".prop_map(|t| json!({"contentBlockIndex": 0, "delta": {"text": t}}).to_string()),
        (0u64..3, ".{0,10}").prop_map(|(i, t)| {
            json!({"contentBlockIndex": i, "delta": {"toolUse": {"input": t}}}).to_string()
        }),
        (0u64..3, "[a-z]{0,5}").prop_map(|(i, n)| {
            json!({"contentBlockIndex": i, "start": {"toolUse": {"toolUseId": "t", "name": n}}})
                .to_string()
        }),
        one_of(&["end_turn", "max_tokens", "tool_use"])
            .prop_map(|s| json!({"stopReason": s}).to_string()),
        any::<u32>().prop_map(|n| {
            json!({"usage": {"inputTokens": n, "outputTokens": n, "totalTokens": n}}).to_string()
        }),
        any_json().prop_map(|v| v.to_string()),
        ".{0,20}",
    ];
    (
        one_of(&["event", "exception", "error"]),
        one_of(&[
            "messageStart",
            "contentBlockStart",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata",
            "throttlingException",
        ]),
        payload,
    )
        .prop_map(|(kind, name, payload)| {
            let header = if kind == "exception" {
                ":exception-type"
            } else {
                ":event-type"
            };
            Message::new(payload.into_bytes())
                .add_header(Header::new(
                    ":message-type",
                    HeaderValue::String(kind.into()),
                ))
                .add_header(Header::new(header, HeaderValue::String(name.into())))
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_request_parser_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = ChatRequest::parse(&bytes);
        let _ = RawObject::parse(&bytes);
    }

    #[test]
    fn the_request_parser_and_translators_take_any_chat_body(body in chat_body()) {
        let bytes = body.to_string().into_bytes();
        let _ = RawObject::parse(&bytes);
        if let Ok(req) = ChatRequest::parse(&bytes) {
            let _ = req.image_count();
            let _ = anthropic::convert::request(&req, "claude-x", 4_096);
            let _ = runtime().block_on(bedrock::convert::request(&req, 4_096, images(), bytes.len(), None));
        }
    }

    #[test]
    fn the_response_parsers_take_any_json(v in any_json()) {
        let bytes = v.to_string().into_bytes();
        let _ = anthropic::convert::completion(&bytes);
        let _ = bedrock::convert::completion(&bytes, "m");
    }

    #[test]
    fn the_anthropic_stream_translator_takes_any_events(events in proptest::collection::vec(anthropic_event(), 0..12)) {
        let s = anthropic::stream::translate(futures_util::stream::iter(events.into_iter().map(Ok)), true);
        let items: Vec<_> = runtime().block_on(s.collect());
        prop_assert!(items.len() <= 64);
    }

    #[test]
    fn the_bedrock_stream_translator_takes_any_messages(msgs in proptest::collection::vec(bedrock_message(), 0..12)) {
        let s = bedrock::stream::translate(futures_util::stream::iter(msgs.into_iter().map(Ok)), "m".into(), "us-east-1".into());
        let items: Vec<_> = runtime().block_on(s.collect());
        prop_assert!(items.len() <= 64);
    }

    #[test]
    fn the_event_stream_framer_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
        let mut buf = bytes::BytesMut::from(&bytes[..]);
        let mut d = MessageFrameDecoder::new();
        for _ in 0..8 {
            match d.decode_frame(&mut buf) {
                Ok(DecodedFrame::Complete(_)) => {}
                Ok(DecodedFrame::Incomplete) | Err(_) => break,
            }
        }
    }
}
