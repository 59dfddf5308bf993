//! `application/vnd.amazon.eventstream` framing of ConverseStream responses, written with
//! `aws-smithy-eventstream` (real prelude, headers and CRC-32 checksums).
//!
//! Event frames carry the headers `:event-type`, `:content-type` (`application/json`)
//! and `:message-type` (`event`), in that order as on real Bedrock frames; exception
//! frames carry `:exception-type`, `:content-type` and `:message-type` (`exception`)
//! with a `{"message": ...}` payload.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::http::{header, HeaderValue as HttpHeaderValue};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

use super::super::{frames_body, insert_headers, StreamPlan};

pub(super) const CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

fn string_header(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_owned().into()))
}

fn encode(message: &Message) -> Bytes {
    let mut buffer = Vec::new();
    match write_message_to(message, &mut buffer) {
        Ok(()) => Bytes::from(buffer),
        Err(err) => {
            // Only oversized headers or payloads fail; the simulator's are tiny.
            tracing::warn!(%err, "could not encode an event-stream frame");
            Bytes::new()
        }
    }
}

/// An event frame, e.g. `event_frame("messageStart", &json!({"role": "assistant"}))`.
pub(super) fn event_frame(event_type: &str, payload: &Value) -> Bytes {
    let message = Message::new_from_parts(
        vec![
            string_header(":event-type", event_type),
            string_header(":content-type", "application/json"),
            string_header(":message-type", "event"),
        ],
        payload.to_string(),
    );
    encode(&message)
}

/// A modeled exception frame, e.g. `exception_frame("throttlingException", "...")`.
pub(super) fn exception_frame(exception_type: &str, message: &str) -> Bytes {
    let frame = Message::new_from_parts(
        vec![
            string_header(":exception-type", exception_type),
            string_header(":content-type", "application/json"),
            string_header(":message-type", "exception"),
        ],
        json!({"message": message}).to_string(),
    );
    encode(&frame)
}

/// One frame of a response; `delta` marks content deltas (faults are injected after
/// the second one).
pub(super) struct StreamFrame {
    pub data: Bytes,
    pub delta: bool,
}

/// A 200 event-stream response sending every frame as its own body chunk.
pub(super) fn eventstream_response(
    frames: Vec<StreamFrame>,
    plan: StreamPlan,
    extra_headers: &[(&'static str, String)],
) -> Response {
    let frames = frames.into_iter().map(|f| (f.data, f.delta)).collect();
    let mut response = Response::new(frames_body(frames, plan));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HttpHeaderValue::from_static(CONTENT_TYPE),
    );
    insert_headers(&mut response, extra_headers);
    response
}

/// A decoded frame: its string headers in order and its JSON payload.
#[cfg(test)]
#[derive(Debug)]
pub(super) struct DecodedFrame {
    pub headers: Vec<(String, String)>,
    pub payload: Value,
}

#[cfg(test)]
impl DecodedFrame {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Decodes a whole event-stream body (CRC-checked by `aws-smithy-eventstream`), frames
/// split across chunks included.
#[cfg(test)]
pub(super) fn decode_frames(body: &[u8]) -> Vec<DecodedFrame> {
    use aws_smithy_eventstream::frame::{DecodedFrame as Decoded, MessageFrameDecoder};

    let mut decoder = MessageFrameDecoder::new();
    let mut buffer = Bytes::copy_from_slice(body);
    let mut frames = Vec::new();
    while !buffer.is_empty() {
        match decoder.decode_frame(&mut buffer).expect("valid frame") {
            Decoded::Complete(message) => {
                let headers = message
                    .headers()
                    .iter()
                    .map(|h| {
                        let value = h.value().as_string().expect("string header");
                        (h.name().as_str().to_owned(), value.as_str().to_owned())
                    })
                    .collect();
                let payload = serde_json::from_slice(message.payload()).expect("JSON payload");
                frames.push(DecodedFrame { headers, payload });
            }
            Decoded::Incomplete => panic!("truncated event stream"),
        }
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: &str = include_str!("testdata/eventstream_generated_frames.json");

    fn vectors() -> Value {
        serde_json::from_str(VECTORS).expect("vectors JSON")
    }

    fn hex_bytes(value: &Value) -> Vec<u8> {
        hex::decode(value.as_str().expect("hex string")).expect("hex")
    }

    /// Frames without padding are byte-identical to the botocore-checked vectors.
    #[test]
    fn frames_match_reference_bytes() {
        let vectors = vectors();
        let stream2 = &vectors["stream2_reasoning_no_padding"]["frames"];
        let start = event_frame("messageStart", &json!({"role": "assistant"}));
        assert_eq!(start.to_vec(), hex_bytes(&stream2[0]["hex"]));
        let stop = event_frame("contentBlockStop", &json!({"contentBlockIndex": 0}));
        assert_eq!(stop.to_vec(), hex_bytes(&stream2[3]["hex"]));
        let message_stop = event_frame("messageStop", &json!({"stopReason": "end_turn"}));
        assert_eq!(message_stop.to_vec(), hex_bytes(&stream2[6]["hex"]));

        let stream3 = &vectors["stream3_midstream_throttling"]["frames"];
        let exception = exception_frame(
            "throttlingException",
            "Too many tokens, please wait before trying again.",
        );
        assert_eq!(exception.to_vec(), hex_bytes(&stream3[2]["hex"]));
    }

    /// The reference streams decode with our decoder to the same structure as ours.
    #[test]
    fn reference_streams_decode() {
        let vectors = vectors();
        let stream1 = &vectors["stream1_text_then_tool_use_with_p_padding"];
        let frames = decode_frames(&hex_bytes(&stream1["concatenated_hex"]));
        let parsed = stream1["botocore_parsed_events"]
            .as_array()
            .expect("parsed events");
        assert_eq!(frames.len(), parsed.len());
        for (frame, expected) in frames.iter().zip(parsed) {
            assert_eq!(frame.header(":message-type"), Some("event"));
            assert_eq!(frame.header(":content-type"), Some("application/json"));
            let event_type = frame.header(":event-type").expect("event type");
            let mut payload = frame.payload.clone();
            if let Some(map) = payload.as_object_mut() {
                map.remove("p");
            }
            assert_eq!(&payload, &expected[event_type], "{event_type}");
        }

        let stream3 = &vectors["stream3_midstream_throttling"];
        let frames = decode_frames(&hex_bytes(&stream3["concatenated_hex"]));
        let last = frames.last().expect("exception frame");
        let names: Vec<&str> = last.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, [":exception-type", ":content-type", ":message-type"]);
        assert_eq!(last.header(":exception-type"), Some("throttlingException"));
        assert_eq!(last.header(":message-type"), Some("exception"));
    }

    #[test]
    fn our_frames_decode_with_header_order() {
        let payload = json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}, "p": "abc"});
        let mut body = event_frame("contentBlockDelta", &payload).to_vec();
        body.extend_from_slice(&exception_frame("internalServerException", "boom"));
        let frames = decode_frames(&body);
        assert_eq!(frames.len(), 2);
        let names: Vec<&str> = frames[0].headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, [":event-type", ":content-type", ":message-type"]);
        assert_eq!(frames[0].header(":event-type"), Some("contentBlockDelta"));
        assert_eq!(frames[0].payload, payload);
        assert_eq!(frames[1].payload, json!({"message": "boom"}));
    }
}
