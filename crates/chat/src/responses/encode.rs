//! Answers in the internal (OpenAI chat) format encoded as the Responses API's: a
//! `response` object, and a stream in the Responses event sequence:
//!
//! `response.created`, `response.in_progress`; per output item
//! `response.output_item.added`, then for a message `response.content_part.added`,
//! `response.output_text.delta`s, `response.output_text.done`,
//! `response.content_part.done`, and for a function call
//! `response.function_call_arguments.delta`s and `.done`; `response.output_item.done`;
//! last `response.completed` (or `response.incomplete` when the output cap cut it) with
//! the usage and its cost, or `response.failed` when the provider failed mid-stream.
//! Every event carries its `type` and a `sequence_number` counted from 0.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::Echo;
use crate::chat::Usage;
use crate::money::Nanos;

/// The Responses usage object, with the charge as `cost_usd` and the cache writes as
/// `input_tokens_details.cache_write_tokens` (which Codex CLI reads), both the gateway's.
pub fn usage_json(u: &Usage, cost: Nanos) -> Value {
    let input = u.prompt_tokens();
    json!({
        "input_tokens": input,
        "input_tokens_details": {
            "cached_tokens": u.cache_read_tokens,
            "cache_write_tokens": u.cache_write_5m_tokens.saturating_add(u.cache_write_1h_tokens),
        },
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input.saturating_add(u.output_tokens),
        "cost_usd": cost.to_string(),
    })
}

/// The response's ID: the gateway's request ID, as OpenAI's `resp_…`.
pub fn response_id(request_id: &str) -> String {
    format!("resp_{}", request_id.trim_start_matches("req_"))
}

/// A `response` object: the request's settings echoed, with `status`, `output` and
/// `usage`.
fn object(echo: &Echo, id: &str, status: &str, output: Vec<Value>, usage: Value) -> Value {
    let m = &echo.members;
    let member = |k: &str, default: Value| m.get(k).cloned().unwrap_or(default);
    let mut o = Map::new();
    o.insert("id".into(), json!(id));
    o.insert("object".into(), json!("response"));
    o.insert("created_at".into(), json!(echo.created_at));
    o.insert("status".into(), json!(status));
    o.insert("background".into(), json!(false));
    o.insert("error".into(), Value::Null);
    o.insert("incomplete_details".into(), Value::Null);
    o.insert("instructions".into(), member("instructions", Value::Null));
    o.insert(
        "max_output_tokens".into(),
        member("max_output_tokens", Value::Null),
    );
    o.insert("metadata".into(), member("metadata", json!({})));
    o.insert("model".into(), json!(echo.model));
    o.insert("output".into(), Value::Array(output));
    o.insert(
        "parallel_tool_calls".into(),
        member("parallel_tool_calls", json!(true)),
    );
    o.insert("previous_response_id".into(), Value::Null);
    o.insert(
        "prompt_cache_key".into(),
        member("prompt_cache_key", Value::Null),
    );
    o.insert(
        "reasoning".into(),
        member("reasoning", json!({"effort": null, "summary": null})),
    );
    o.insert(
        "safety_identifier".into(),
        member("safety_identifier", Value::Null),
    );
    o.insert("service_tier".into(), member("service_tier", json!("auto")));
    o.insert("store".into(), json!(false));
    o.insert("temperature".into(), member("temperature", json!(1.0)));
    o.insert(
        "text".into(),
        member("text", json!({"format": {"type": "text"}})),
    );
    o.insert("tool_choice".into(), member("tool_choice", json!("auto")));
    o.insert("tools".into(), member("tools", json!([])));
    o.insert("top_p".into(), member("top_p", json!(1.0)));
    o.insert("truncation".into(), member("truncation", json!("disabled")));
    o.insert("usage".into(), usage);
    o.insert("user".into(), member("user", Value::Null));
    Value::Object(o)
}

/// The status and `incomplete_details` for a chat finish reason.
fn ending(finish: Option<&str>) -> (&'static str, Value) {
    match finish {
        Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({
        "type": "message", "id": id, "status": status, "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    })
}

fn call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({
        "type": "function_call", "id": id, "call_id": call_id, "name": name,
        "arguments": arguments, "status": status,
    })
}

/// A `chat.completion`'s fields (without `usage`) as a `response` object.
pub fn response(
    fields: &[(String, Box<RawValue>)],
    usage: &Usage,
    cost: Nanos,
    echo: &Echo,
    request_id: &str,
) -> Vec<u8> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| serde_json::from_str::<Value>(v.get()).ok())
    };
    let choice = field("choices")
        .and_then(|c| c.get(0).cloned())
        .unwrap_or(Value::Null);
    let msg = &choice["message"];
    let id = response_id(request_id);
    let mut output = Vec::new();
    let text = msg["content"].as_str().unwrap_or_default();
    let refusal = msg["refusal"].as_str().unwrap_or_default();
    if !text.is_empty() {
        output.push(message_item(
            &format!("msg_{}", &id[5..]),
            text,
            "completed",
        ));
    } else if !refusal.is_empty() {
        output.push(json!({
            "type": "message", "id": format!("msg_{}", &id[5..]), "status": "completed",
            "role": "assistant", "content": [{"type": "refusal", "refusal": refusal}],
        }));
    }
    for (i, c) in msg["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        output.push(call_item(
            &format!("fc_{}_{i}", &id[5..]),
            c["id"].as_str().unwrap_or_default(),
            c["function"]["name"].as_str().unwrap_or_default(),
            c["function"]["arguments"].as_str().unwrap_or("{}"),
            "completed",
        ));
    }
    let (status, incomplete) = ending(choice["finish_reason"].as_str());
    let mut body = object(echo, &id, status, output, usage_json(usage, cost));
    body["incomplete_details"] = incomplete;
    serde_json::to_vec(&body).unwrap_or_default()
}

/// A `response` object as OpenAI sent it, with the charge added to its `usage` as
/// `cost_usd` (OpenAI's answer as it came when it is not a JSON object with `usage`).
pub fn with_cost(body: &[u8], cost: Nanos) -> Vec<u8> {
    match serde_json::from_slice::<Value>(body) {
        Ok(mut v) if v["usage"].is_object() => {
            v["usage"]["cost_usd"] = json!(cost.to_string());
            serde_json::to_vec(&v).unwrap_or_else(|_| body.to_vec())
        }
        _ => body.to_vec(),
    }
}

/// An event of OpenAI's own stream whose `response` (`response.completed`,
/// `response.incomplete`) gets the charge in its `usage`, framed again.
pub fn event_with_cost(kind: &str, data: &[u8], cost: Nanos) -> Bytes {
    let data = match serde_json::from_slice::<Value>(data) {
        Ok(mut v) if v["response"]["usage"].is_object() => {
            v["response"]["usage"]["cost_usd"] = json!(cost.to_string());
            serde_json::to_vec(&v).unwrap_or_else(|_| data.to_vec())
        }
        _ => data.to_vec(),
    };
    let mut frame = Vec::with_capacity(data.len() + kind.len() + 16);
    frame.extend_from_slice(b"event: ");
    frame.extend_from_slice(kind.as_bytes());
    frame.extend_from_slice(b"\ndata: ");
    frame.extend_from_slice(&data);
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

/// `response.failed` for a passed-through stream that broke off: the gateway's error,
/// numbered after the last event forwarded.
pub fn failed_after(
    sequence: u64,
    id: &str,
    code: &str,
    message: &str,
    usage: &Usage,
    cost: Nanos,
) -> Bytes {
    let data = json!({
        "type": "response.failed",
        "sequence_number": sequence,
        "response": {"id": id, "object": "response", "status": "failed",
                     "error": {"code": code, "message": message},
                     "output": [], "usage": usage_json(usage, cost)},
    });
    Bytes::from(format!("event: response.failed\ndata: {data}\n\n"))
}

/// One output item of an encoded stream.
#[derive(Debug)]
enum Item {
    Message {
        id: String,
        text: String,
    },
    Call {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
    },
}

impl Item {
    fn json(&self, status: &str) -> Value {
        match self {
            Item::Message { id, text } => message_item(id, text, status),
            Item::Call {
                id,
                call_id,
                name,
                arguments,
            } => call_item(id, call_id, name, arguments, status),
        }
    }
}

/// Encodes an internal (OpenAI chunk) stream as the Responses event sequence.
#[derive(Debug)]
pub struct Events {
    echo: Echo,
    id: String,
    sequence: u64,
    started: bool,
    /// Every output item so far; the last one may be open.
    items: Vec<Item>,
    open: bool,
    /// Chat tool-call index → output index.
    tools: HashMap<u64, usize>,
    finish: Option<String>,
}

impl Events {
    pub fn new(echo: Echo, request_id: &str) -> Self {
        Self {
            echo,
            id: response_id(request_id),
            sequence: 0,
            started: false,
            items: Vec::new(),
            open: false,
            tools: HashMap::new(),
            finish: None,
        }
    }

    fn emit(&mut self, kind: &str, mut data: Value, out: &mut VecDeque<Bytes>) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        out.push_back(Bytes::from(format!("event: {kind}\ndata: {data}\n\n")));
    }

    fn start(&mut self, out: &mut VecDeque<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let r = object(&self.echo, &self.id, "in_progress", Vec::new(), Value::Null);
        self.emit("response.created", json!({"response": r}), out);
        let r = object(&self.echo, &self.id, "in_progress", Vec::new(), Value::Null);
        self.emit("response.in_progress", json!({"response": r}), out);
    }

    /// Closes the open item with its `.done` events.
    fn close(&mut self, out: &mut VecDeque<Bytes>) {
        if !self.open {
            return;
        }
        self.open = false;
        let index = self.items.len() - 1;
        let (done, item) = match &self.items[index] {
            Item::Message { id, text } => {
                let part = json!({"type": "output_text", "text": text, "annotations": []});
                (
                    vec![
                        (
                            "response.output_text.done",
                            json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}),
                        ),
                        (
                            "response.content_part.done",
                            json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
                        ),
                    ],
                    self.items[index].json("completed"),
                )
            }
            Item::Call {
                id,
                name,
                arguments,
                ..
            } => (
                vec![(
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": index, "name": name, "arguments": arguments}),
                )],
                self.items[index].json("completed"),
            ),
        };
        for (kind, data) in done {
            self.emit(kind, data, out);
        }
        self.emit(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
            out,
        );
    }

    /// Opens a new output item.
    fn open_item(&mut self, item: Item, out: &mut VecDeque<Bytes>) -> usize {
        self.close(out);
        let index = self.items.len();
        let added = item.json("in_progress");
        let message_id = match &item {
            Item::Message { id, .. } => Some(id.clone()),
            Item::Call { .. } => None,
        };
        self.items.push(item);
        self.open = true;
        self.emit(
            "response.output_item.added",
            json!({"output_index": index, "item": added}),
            out,
        );
        if let Some(id) = message_id {
            self.emit(
                "response.content_part.added",
                json!({"item_id": id, "output_index": index, "content_index": 0,
                       "part": {"type": "output_text", "text": "", "annotations": []}}),
                out,
            );
        }
        index
    }

    /// The events for one `chat.completion.chunk`.
    pub fn chunk(&mut self, json: &[u8], out: &mut VecDeque<Bytes>) {
        let Ok(c) = serde_json::from_slice::<Value>(json) else {
            return;
        };
        self.start(out);
        let choice = &c["choices"][0];
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            let index = match self.items.last() {
                Some(Item::Message { .. }) if self.open => self.items.len() - 1,
                _ => {
                    let id = format!("msg_{}_{}", &self.id[5..], self.items.len());
                    self.open_item(
                        Item::Message {
                            id,
                            text: String::new(),
                        },
                        out,
                    )
                }
            };
            let id = match &mut self.items[index] {
                Item::Message { id, text: all } => {
                    all.push_str(text);
                    id.clone()
                }
                Item::Call { id, .. } => id.clone(),
            };
            self.emit(
                "response.output_text.delta",
                json!({"item_id": id, "output_index": index, "content_index": 0, "delta": text, "logprobs": []}),
                out,
            );
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let n = call["index"].as_u64().unwrap_or(0);
            let index = match self.tools.get(&n) {
                Some(&i) => i,
                None => {
                    let item = Item::Call {
                        id: format!("fc_{}_{}", &self.id[5..], self.items.len()),
                        call_id: call["id"].as_str().unwrap_or_default().to_owned(),
                        name: call["function"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        arguments: String::new(),
                    };
                    let i = self.open_item(item, out);
                    self.tools.insert(n, i);
                    i
                }
            };
            let Some(args) = call["function"]["arguments"]
                .as_str()
                .filter(|a| !a.is_empty())
            else {
                continue;
            };
            let id = match &mut self.items[index] {
                Item::Call { id, arguments, .. } => {
                    arguments.push_str(args);
                    id.clone()
                }
                Item::Message { id, .. } => id.clone(),
            };
            self.emit(
                "response.function_call_arguments.delta",
                json!({"item_id": id, "output_index": index, "delta": args}),
                out,
            );
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish = Some(f.to_owned());
        }
    }

    /// The closing events: the open item's, then `response.completed` (or
    /// `response.incomplete`) with the usage and its cost.
    pub fn finish(&mut self, usage: &Usage, cost: Nanos, out: &mut VecDeque<Bytes>) {
        self.start(out);
        self.close(out);
        let (status, incomplete) = ending(self.finish.as_deref());
        let output = self.items.iter().map(|i| i.json("completed")).collect();
        let mut r = object(
            &self.echo,
            &self.id,
            status,
            output,
            usage_json(usage, cost),
        );
        r["incomplete_details"] = incomplete;
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.emit(kind, json!({"response": r}), out);
    }

    /// `response.failed`: the provider failed mid-stream. `code` and `message` are the
    /// gateway's error, as a non-streamed failure would have answered.
    pub fn failed(
        &mut self,
        code: &str,
        message: &str,
        usage: &Usage,
        cost: Nanos,
        out: &mut VecDeque<Bytes>,
    ) {
        self.start(out);
        let output = self.items.iter().map(|i| i.json("incomplete")).collect();
        let mut r = object(
            &self.echo,
            &self.id,
            "failed",
            output,
            usage_json(usage, cost),
        );
        r["error"] = json!({"code": code, "message": message});
        self.emit("response.failed", json!({"response": r}), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(out: &VecDeque<Bytes>) -> Vec<Value> {
        out.iter()
            .map(|b| {
                let s = std::str::from_utf8(b).expect("utf8");
                let (head, data) = s.split_once("\ndata: ").expect("framed");
                let v: Value = serde_json::from_str(data.trim_end()).expect("json");
                assert_eq!(
                    head,
                    format!("event: {}", v["type"].as_str().expect("type"))
                );
                v
            })
            .collect()
    }

    #[test]
    fn a_stream_of_text_then_two_calls_is_the_documented_event_sequence() {
        let mut e = Events::new(
            Echo {
                model: "m".into(),
                ..Echo::default()
            },
            "req_abc",
        );
        let mut out = VecDeque::new();
        for chunk in [
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
            json!({"choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
            json!({"choices": [{"index": 0, "delta": {"content": "lo"}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {"name": "ls", "arguments": ""}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "id": "c2", "type": "function", "function": {"name": "pwd", "arguments": "{}"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        ] {
            e.chunk(chunk.to_string().as_bytes(), &mut out);
        }
        let usage = Usage {
            input_tokens: 5,
            output_tokens: 7,
            ..Usage::default()
        };
        e.finish(&usage, Nanos::from_nanos(1234), &mut out);
        let evs = events(&out);
        let kinds: Vec<&str> = evs.iter().map(|v| v["type"].as_str().expect("t")).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (i, v) in evs.iter().enumerate() {
            assert_eq!(v["sequence_number"], i as u64);
        }
        assert_eq!(evs[6]["text"], "Hello");
        assert_eq!(evs[12]["arguments"], "{\"a\":1}");
        let done = &evs[18]["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["id"], "resp_abc");
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(done["output"][1]["call_id"], "c1");
        assert_eq!(done["output"][2]["name"], "pwd");
        assert_eq!(done["usage"]["input_tokens"], 5);
        assert_eq!(done["usage"]["total_tokens"], 12);
        assert_eq!(done["usage"]["cost_usd"], "0.000001234");
        assert_eq!(done["store"], false);
    }

    #[test]
    fn a_stream_cut_by_the_output_cap_ends_incomplete() {
        let mut e = Events::new(Echo::default(), "req_x");
        let mut out = VecDeque::new();
        e.chunk(
            json!({"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": "length"}]})
                .to_string()
                .as_bytes(),
            &mut out,
        );
        e.finish(&Usage::default(), Nanos::ZERO, &mut out);
        let last = events(&out).pop().expect("last");
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(
            last["response"]["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
    }
}
