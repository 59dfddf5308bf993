//! `/v1/responses` on OpenAI endpoints: the client's own Responses request passed to
//! OpenAI's `/v1/responses`, and its answer, or its events, passed back as they came
//! (see [`crate::responses`]). Billed from OpenAI's `usage`: `input_tokens` counts the
//! cached ones (`input_tokens_details.cached_tokens`), `output_tokens` the reasoning
//! ones.

use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::chat::{Completion, Reply, StreamItem, Usage};
use crate::providers::{Call, UpstreamError, UpstreamErrorKind};
use crate::responses::NativeResponses;

/// The body for OpenAI: the client's, with the endpoint's model ID, nothing stored,
/// OpenAI's standard tier (the one the catalog prices), and the output cap within the
/// catalog's (the gateway's own cap when the request set none and the credit affords
/// less).
pub(super) fn body(call: &Call<'_>, native: &NativeResponses) -> Vec<u8> {
    let mut body = native.body.clone();
    body.insert("model".into(), json!(call.endpoint.upstream_id));
    body.insert("store".into(), json!(false));
    body.insert("service_tier".into(), json!("default"));
    let cap = call.model.max_output_tokens;
    let asked = body.get("max_output_tokens").and_then(Value::as_u64);
    match (asked, call.req.budget_cap) {
        (Some(n), _) if n > cap => {
            body.insert("max_output_tokens".into(), json!(cap));
        }
        (None, Some(_)) => {
            body.insert(
                "max_output_tokens".into(),
                json!(call.req.output_tokens(cap)),
            );
        }
        _ => {}
    }
    serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
}

#[derive(Deserialize)]
struct UsageWire {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<InputDetails>,
}

#[derive(Deserialize)]
struct InputDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl UsageWire {
    fn usage(&self) -> Usage {
        let cached = self
            .input_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
            .min(self.input_tokens);
        Usage {
            input_tokens: self.input_tokens - cached,
            output_tokens: self.output_tokens,
            cache_read_tokens: cached,
            ..Usage::default()
        }
    }
}

/// The parts of a `response` object the gateway reads.
#[derive(Deserialize)]
struct ResponseLite {
    #[serde(default)]
    id: String,
    #[serde(default)]
    created_at: u64,
    #[serde(default)]
    model: String,
    usage: Option<UsageWire>,
}

/// A non-streamed answer: OpenAI's `response` object, kept as it came.
pub(super) fn complete(provider: &str, body: Bytes) -> Result<Reply, UpstreamError> {
    let bad = |m: String| UpstreamError::new(UpstreamErrorKind::Protocol, provider, m);
    let r: ResponseLite = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("response is not a Responses object: {e}")))?;
    let Some(u) = r.usage else {
        return Err(bad("response carries no usage; it cannot be billed".into()));
    };
    let id =
        serde_json::value::to_raw_value(&r.id).map_err(|e| bad(format!("response id: {e}")))?;
    Ok(Reply::Complete(Completion {
        fields: vec![("id".to_owned(), id)],
        usage: u.usage(),
        native: Some(body),
    }))
}

/// The event's `type` and what it reports.
#[derive(Deserialize)]
struct EventLite {
    #[serde(rename = "type", default)]
    kind: String,
    response: Option<ResponseLite>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// The items of one event of OpenAI's stream: the event as it came (a failure
/// excepted: the gateway answers it in its own words), an output count for each delta
/// (to bill a stream cut short), and the usage of the final `response`.
pub(super) fn event_items(
    provider: &str,
    ev: Result<super::super::http::Event, UpstreamError>,
) -> Vec<Result<StreamItem, UpstreamError>> {
    let ev = match ev {
        Ok(ev) => ev,
        Err(e) => return vec![Err(e)],
    };
    if ev.data.is_empty() {
        return Vec::new();
    }
    let lite: EventLite = match serde_json::from_str(&ev.data) {
        Ok(l) => l,
        Err(e) => {
            return vec![Err(UpstreamError::new(
                UpstreamErrorKind::Protocol,
                provider,
                format!("stream event is not JSON: {e}"),
            ))]
        }
    };
    match lite.kind.as_str() {
        "error" | "response.failed" => {
            let message = lite
                .message
                .or_else(|| {
                    lite.response
                        .as_ref()
                        .map(|_| "the response failed".to_owned())
                })
                .unwrap_or_else(|| "the response failed".to_owned());
            let mut e = UpstreamError::new(UpstreamErrorKind::Interrupted, provider, message);
            e.code = lite.code;
            return vec![Err(e)];
        }
        _ => {}
    }
    let frame = Bytes::from(format!("event: {}\ndata: {}\n\n", lite.kind, ev.data));
    let mut items = vec![Ok(StreamItem::Native(frame))];
    match lite.kind.as_str() {
        "response.output_text.delta"
        | "response.function_call_arguments.delta"
        | "response.reasoning_summary_text.delta"
        | "response.refusal.delta" => items.push(Ok(StreamItem::Chunk {
            json: Bytes::new(),
            generated: 1,
        })),
        "response.completed" | "response.incomplete" => {
            if let Some(r) = lite.response {
                if let Some(u) = r.usage {
                    items.push(Ok(StreamItem::Usage {
                        usage: u.usage(),
                        id: r.id,
                        created: r.created_at,
                        model: r.model,
                        last: true,
                    }));
                }
            }
        }
        _ => {}
    }
    items
}

/// OpenAI's stream, until its final event.
pub(super) fn stream(
    provider: String,
    events: impl futures_util::Stream<Item = Result<super::super::http::Event, UpstreamError>>
        + Send
        + 'static,
) -> crate::chat::ChunkStream {
    Box::pin(
        events
            .flat_map(move |ev| {
                let items = event_items(&provider, ev);
                futures_util::stream::iter(items)
            })
            .scan(false, |done, item| {
                if *done {
                    return std::future::ready(None);
                }
                if matches!(&item, Ok(StreamItem::Usage { last: true, .. }) | Err(_)) {
                    *done = true;
                }
                std::future::ready(Some(item))
            }),
    )
}
