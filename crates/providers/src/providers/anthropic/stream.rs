//! Anthropic's streamed event sequence (`message_start`, `content_block_*`,
//! `message_delta`, `message_stop`, `ping`, `error`) as OpenAI `chat.completion.chunk`s.

use std::collections::HashMap;

use crate::providers::http::Event;
use futures_util::Stream;
use serde_json::{json, Value};

use super::wire::{self, StreamBlockStart, StreamDelta, StreamEvent};
use crate::chat::{ChunkStream, StreamItem, Usage};
use crate::providers::{translate_stream, StreamTranslator, UpstreamError, UpstreamErrorKind};

#[derive(Default)]
struct State {
    id: String,
    model: String,
    created: u64,
    usage: Usage,
    /// Anthropic content-block index → OpenAI tool-call index.
    tools: HashMap<usize, usize>,
    done: bool,
    /// Forward every event as it came too ([`StreamItem::Native`]), for `/v1/messages`.
    native: bool,
}

type Item = Result<StreamItem, UpstreamError>;

/// The stream as chunks; with `native`, each event also as it came, ahead of what it
/// translates to (an `error` event excepted: the gateway answers it in its own words).
pub fn translate(
    events: impl Stream<Item = Result<Event, UpstreamError>> + Send + 'static,
    native: bool,
) -> ChunkStream {
    translate_stream(
        events,
        State {
            native,
            ..State::default()
        },
    )
}

impl StreamTranslator for State {
    type Event = Event;

    fn step(&mut self, ev: Event) -> Vec<Item> {
        if !self.native || ev.data.is_empty() || ev.event == "error" {
            return self.step_event(&ev);
        }
        let mut frame = Vec::with_capacity(ev.event.len() + ev.data.len() + 16);
        if !ev.event.is_empty() && ev.event != "message" {
            frame.extend_from_slice(b"event: ");
            frame.extend_from_slice(ev.event.as_bytes());
            frame.push(b'\n');
        }
        frame.extend_from_slice(b"data: ");
        frame.extend_from_slice(ev.data.as_bytes());
        frame.extend_from_slice(b"\n\n");
        let mut items = vec![Ok(StreamItem::Native(bytes::Bytes::from(frame)))];
        items.extend(self.step_event(&ev));
        items
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

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

    fn usage(&self, last: bool) -> Item {
        Ok(StreamItem::Usage {
            usage: self.usage,
            id: self.id.clone(),
            created: self.created,
            model: self.model.clone(),
            last,
        })
    }

    fn step_event(&mut self, ev: &Event) -> Vec<Item> {
        if ev.data.is_empty() {
            return Vec::new();
        }
        let parsed: StreamEvent = match serde_json::from_str(&ev.data) {
            Ok(p) => p,
            // Unknown event types are allowed by Anthropic's versioning policy: skip them.
            Err(_)
                if !matches!(
                    ev.event.as_str(),
                    "message_start" | "content_block_delta" | "message_delta" | "error"
                ) =>
            {
                return Vec::new()
            }
            Err(e) => {
                self.done = true;
                return vec![Err(UpstreamError::new(
                    UpstreamErrorKind::Protocol,
                    "anthropic",
                    format!("malformed `{}` event: {e}", ev.event),
                ))];
            }
        };
        match parsed {
            StreamEvent::MessageStart { message } => {
                self.id = message.id;
                self.model = message.model;
                self.created = crate::clock::unix_now();
                if let Some(u) = message.usage {
                    u.apply(&mut self.usage);
                }
                vec![
                    self.usage(false),
                    self.chunk(json!({"role": "assistant", "content": ""}), None, 0),
                ]
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                StreamBlockStart::Text { text } if !text.is_empty() => {
                    vec![self.chunk(json!({"content": text}), None, 1)]
                }
                StreamBlockStart::ToolUse { id, name } => {
                    let k = self.tools.len();
                    self.tools.insert(index, k);
                    vec![self.chunk(
                        json!({"tool_calls": [{"index": k, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
                        None,
                        1,
                    )]
                }
                _ => Vec::new(),
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                // An empty delta carries no output: it neither counts as generated nor
                // commits the stream to this endpoint.
                StreamDelta::TextDelta { text } => {
                    let generated = u64::from(!text.is_empty());
                    vec![self.chunk(json!({"content": text}), None, generated)]
                }
                StreamDelta::InputJsonDelta { partial_json } => {
                    let k = self.tools.get(&index).copied().unwrap_or(0);
                    let generated = u64::from(!partial_json.is_empty());
                    vec![self.chunk(
                        json!({"tool_calls": [{"index": k, "function": {"arguments": partial_json}}]}),
                        None,
                        generated,
                    )]
                }
                StreamDelta::Other => Vec::new(),
            },
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(u) = usage {
                    u.apply(&mut self.usage);
                }
                let finish = wire::finish_reason(delta.stop_reason.as_deref());
                vec![self.chunk(json!({}), Some(finish), 0), self.usage(false)]
            }
            StreamEvent::MessageStop => {
                self.done = true;
                vec![self.usage(true)]
            }
            StreamEvent::ContentBlockStop { .. } | StreamEvent::Ping => Vec::new(),
            StreamEvent::Error { error } => {
                self.done = true;
                let mut e =
                    UpstreamError::new(UpstreamErrorKind::Interrupted, "anthropic", error.message);
                e.code = Some(error.kind);
                vec![Err(e)]
            }
        }
    }
}
