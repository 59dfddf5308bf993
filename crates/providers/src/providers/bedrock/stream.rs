//! ConverseStream: `application/vnd.amazon.eventstream` frames, decoded (prelude, headers,
//! CRCs) by `aws-smithy-eventstream`, turned into OpenAI `chat.completion.chunk`s.

use std::collections::HashMap;

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::BytesMut;
use futures_util::{Stream, StreamExt};
use http_body_util::BodyDataStream;
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::convert::{finish_reason, UsageWire};
use super::errors;
use crate::chat::{ChunkStream, StreamItem};
use crate::providers::http::Timeouts;
use crate::providers::{translate_stream, StreamTranslator, UpstreamError, UpstreamErrorKind};

fn err(kind: UpstreamErrorKind, m: impl Into<String>) -> UpstreamError {
    UpstreamError::new(kind, "bedrock", m)
}

struct FrameState {
    body: BodyDataStream<Incoming>,
    buf: BytesMut,
    decoder: MessageFrameDecoder,
    done: bool,
}

/// The event-stream messages of a response body, each within the idle timeout and all
/// within the total one.
pub fn frames(
    body: Incoming,
    timeouts: Timeouts,
) -> impl Stream<Item = Result<Message, UpstreamError>> + Send + 'static {
    let st = FrameState {
        body: BodyDataStream::new(body),
        buf: BytesMut::new(),
        decoder: MessageFrameDecoder::new(),
        done: false,
    };
    let started = tokio::time::Instant::now();
    futures_util::stream::unfold(st, move |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            match st.decoder.decode_frame(&mut st.buf) {
                Ok(DecodedFrame::Complete(m)) => return Some((Ok(m), st)),
                Ok(DecodedFrame::Incomplete) => {}
                Err(e) => {
                    st.done = true;
                    return Some((
                        Err(err(
                            UpstreamErrorKind::Protocol,
                            format!("bad event-stream frame: {e}"),
                        )),
                        st,
                    ));
                }
            }
            match timeouts.next(started, st.body.next()).await {
                Err(why) => {
                    st.done = true;
                    return Some((
                        Err(err(UpstreamErrorKind::Timeout, format!("stream {why}"))),
                        st,
                    ));
                }
                Ok(None) if st.buf.is_empty() => return None,
                Ok(None) => {
                    st.done = true;
                    return Some((
                        Err(err(
                            UpstreamErrorKind::Interrupted,
                            "stream ended inside a frame",
                        )),
                        st,
                    ));
                }
                Ok(Some(Err(e))) => {
                    st.done = true;
                    return Some((
                        Err(err(
                            UpstreamErrorKind::Interrupted,
                            format!("stream broke: {e}"),
                        )),
                        st,
                    ));
                }
                Ok(Some(Ok(chunk))) => st.buf.extend_from_slice(&chunk),
            }
        }
    })
}

fn header<'m>(m: &'m Message, name: &str) -> Option<&'m str> {
    m.headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| match h.value() {
            HeaderValue::String(s) => Some(s.as_str()),
            _ => None,
        })
}

struct State {
    id: String,
    created: u64,
    model: String,
    region: String,
    /// Converse content-block index → OpenAI tool-call index.
    tools: HashMap<u64, usize>,
    done: bool,
}

type Item = Result<StreamItem, UpstreamError>;

impl State {
    fn chunk(&self, delta: Value, finish: Option<&str>, generated: u64) -> Item {
        Ok(StreamItem::chunk(
            &self.id,
            self.created,
            &self.model,
            delta,
            finish,
            generated,
        ))
    }

    fn step_message(&mut self, m: Message) -> Vec<Item> {
        let payload: Value = serde_json::from_slice(m.payload()).unwrap_or(Value::Null);
        match header(&m, ":message-type") {
            Some("exception") => {
                self.done = true;
                let name = header(&m, ":exception-type")
                    .unwrap_or("exception")
                    .to_owned();
                let message = payload
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                return vec![Err(errors::classify(
                    &name,
                    None,
                    message,
                    &self.model,
                    &self.region,
                ))];
            }
            Some("error") => {
                self.done = true;
                let code = header(&m, ":error-code").unwrap_or("error").to_owned();
                let message = header(&m, ":error-message").unwrap_or("").to_owned();
                return vec![Err(errors::classify(
                    &code,
                    None,
                    message,
                    &self.model,
                    &self.region,
                ))];
            }
            _ => {}
        }
        match header(&m, ":event-type") {
            Some("messageStart") => {
                vec![self.chunk(json!({"role": "assistant", "content": ""}), None, 0)]
            }
            Some("contentBlockStart") => {
                let idx = payload["contentBlockIndex"].as_u64().unwrap_or(0);
                match payload["start"].get("toolUse") {
                    Some(tu) => {
                        let k = self.tools.len();
                        self.tools.insert(idx, k);
                        vec![self.chunk(
                            json!({"tool_calls": [{"index": k, "id": tu["toolUseId"], "type": "function", "function": {"name": tu["name"], "arguments": ""}}]}),
                            None,
                            1,
                        )]
                    }
                    None => Vec::new(),
                }
            }
            Some("contentBlockDelta") => {
                let idx = payload["contentBlockIndex"].as_u64().unwrap_or(0);
                let d = &payload["delta"];
                // An empty delta (a keep-alive) carries no output: it neither counts as
                // generated nor commits the stream to this endpoint.
                if let Some(t) = d.get("text").and_then(Value::as_str) {
                    vec![self.chunk(json!({ "content": t }), None, u64::from(!t.is_empty()))]
                } else if let Some(rc) = d.get("reasoningContent") {
                    // The model's thinking, in the chat format's `reasoning_content`
                    // (and its signature); thinking tokens are output tokens.
                    if let Some(t) = rc.get("text").and_then(Value::as_str) {
                        vec![self.chunk(
                            json!({ "reasoning_content": t }),
                            None,
                            u64::from(!t.is_empty()),
                        )]
                    } else if let Some(s) = rc.get("signature").and_then(Value::as_str) {
                        vec![self.chunk(json!({ "reasoning_signature": s }), None, 0)]
                    } else if let Some(r) = rc.get("redactedContent") {
                        vec![self.chunk(json!({ "reasoning_redacted": r }), None, 1)]
                    } else {
                        Vec::new()
                    }
                } else if let Some(input) = d
                    .get("toolUse")
                    .and_then(|t| t.get("input"))
                    .and_then(Value::as_str)
                {
                    let k = self.tools.get(&idx).copied().unwrap_or(0);
                    vec![self.chunk(
                        json!({"tool_calls": [{"index": k, "function": {"arguments": input}}]}),
                        None,
                        u64::from(!input.is_empty()),
                    )]
                } else {
                    Vec::new()
                }
            }
            Some("messageStop") => {
                let reason = payload["stopReason"].as_str();
                vec![self.chunk(json!({}), Some(finish_reason(reason)), 0)]
            }
            Some("metadata") => {
                // Without readable usage the stream is not final: it is billed from
                // what was generated, like a stream cut short.
                let Ok(u) = serde_json::from_value::<UsageWire>(payload["usage"].clone()) else {
                    return Vec::new();
                };
                if payload.get("usage").is_none() {
                    return Vec::new();
                }
                self.done = true;
                vec![Ok(StreamItem::Usage {
                    usage: u.usage(),
                    id: self.id.clone(),
                    created: self.created,
                    model: self.model.clone(),
                    last: true,
                })]
            }
            _ => Vec::new(),
        }
    }
}

pub fn translate(
    frames: impl Stream<Item = Result<Message, UpstreamError>> + Send + 'static,
    model: String,
    region: String,
) -> ChunkStream {
    let st = State {
        id: format!("chatcmpl-{}", crate::ids::random_id("")),
        created: crate::clock::unix_now(),
        model,
        region,
        tools: HashMap::new(),
        done: false,
    };
    translate_stream(frames, st)
}

impl StreamTranslator for State {
    type Event = Message;

    fn step(&mut self, m: Message) -> Vec<Item> {
        self.step_message(m)
    }

    fn is_done(&self) -> bool {
        self.done
    }
}
