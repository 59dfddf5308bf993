//! The SSE body of a streamed completion. [`BilledStream`] turns the provider's chunks
//! into frames as they arrive (never buffered whole), keeps the usage reported so far,
//! and settles the reservation exactly once: when the stream ends or when the upstream
//! fails mid-stream.
//!
//! It is the response body itself, polled by hyper: no task or channel between the
//! provider and the client while the client reads. When the client goes away, hyper
//! drops the body; its `Drop` hands the rest of the provider's stream to a task of its
//! own, which reads it to the end, discarding the frames, so the request is billed from
//! the provider's own final usage rather than an estimate. That costs at most the output
//! cap the reservation already holds, and the upstream idle timeout bounds how long a
//! stalled provider can keep it. Only if that task cannot run (the runtime is shutting
//! down), or shutdown's grace period ends first (connections still open then are cut
//! and their streams dropped the same way), is the stream settled from what was seen,
//! with estimated usage.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::catalog::Endpoint;
use crate::chat::{ChunkStream, StreamItem, Usage};
use crate::ledger::{Charge, ClientHandle, Reservation, UsageStatus};
use crate::providers::UpstreamError;
use crate::router::Router;

/// Times a stream's throughput for the router's observations: from its first output
/// chunk to its end, recorded with the provider's final output tokens only when the
/// stream ends normally (not cut, not failed; a stream read to its end after its client
/// left counts). The clock runs at the gateway, so a client that reads slowly enough
/// to hold the provider back lowers the figure.
pub struct Throughput {
    pub router: Arc<Router>,
    /// When the first output chunk arrived.
    pub since: std::time::Instant,
}

pub struct BilledStream {
    inner: ChunkStream,
    /// Frames ready to send (the peeked first item, the closing frames).
    queue: VecDeque<Bytes>,
    reservation: Option<Reservation>,
    endpoint: Arc<Endpoint>,
    model: String,
    include_usage: bool,
    /// Usage as last reported by the provider, and whether it was final.
    usage: Usage,
    final_usage: bool,
    /// Output chunks seen, for a stream cut before the provider reports usage.
    generated: u64,
    estimated_input: u64,
    meta: (String, u64, String),
    finished: bool,
    /// The client went away; the rest is read only to bill it.
    client_left: bool,
    /// The client's presence, marked gone when the body is dropped unfinished.
    client: ClientHandle,
    /// The gateway's request ID, for the error frame and the log.
    request_id: String,
    /// With `billing.commit_before_answer`: the commit of the stream's charge, awaited
    /// before the last frames go out.
    commit: Option<Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    /// Recorded, and taken, when the stream ends normally.
    throughput: Option<Throughput>,
    /// For `/v1/messages`: how the stream is written in Anthropic's dialect.
    messages: Option<MessagesOut>,
    /// For `/v1/responses`: how the stream is written as the Responses events.
    responses: Option<ResponsesOut>,
    /// The request's trace and log line, finished at settlement.
    trace: crate::telemetry::RequestTrace,
    /// The request's measurements, recorded when it is settled.
    tally: Option<crate::metrics::Tally>,
}

/// How a `/v1/messages` stream is written: an Anthropic endpoint's own events as they
/// came, or another provider's chunks encoded as Anthropic's events.
pub struct MessagesOut {
    /// `None`: the provider's own events are forwarded.
    encoder: Option<crate::messages::encode::Events>,
}

/// How a `/v1/responses` stream is written: OpenAI's own events as they came (the
/// final one held back until the charge is known, to add it to its `usage`), or another
/// provider's chunks encoded as the Responses events.
pub enum ResponsesOut {
    Encoded(crate::responses::encode::Events),
    Native {
        /// The final event (`response.completed` or `.incomplete`), held back.
        last: Option<(String, Bytes)>,
        /// The last `sequence_number` forwarded, and the response's ID.
        sequence: Option<u64>,
        id: String,
    },
}

impl ResponsesOut {
    pub fn new(echo: &crate::responses::Echo, request_id: &str, ep: &Endpoint) -> Self {
        if ep.provider == crate::catalog::ProviderKind::OpenAi {
            ResponsesOut::Native {
                last: None,
                sequence: None,
                id: crate::responses::encode::response_id(request_id),
            }
        } else {
            ResponsesOut::Encoded(crate::responses::encode::Events::new(
                echo.served_by(&ep.upstream_id),
                request_id,
            ))
        }
    }

    fn chunk(&mut self, json: &[u8], out: &mut VecDeque<Bytes>) {
        if let ResponsesOut::Encoded(events) = self {
            events.chunk(json, out);
        }
    }

    fn native(&mut self, event: Bytes, out: &mut VecDeque<Bytes>) {
        let ResponsesOut::Native { last, sequence, id } = self else {
            return;
        };
        #[derive(serde::Deserialize)]
        struct Lite {
            #[serde(rename = "type", default)]
            kind: String,
            sequence_number: Option<u64>,
            response: Option<Id>,
        }
        #[derive(serde::Deserialize)]
        struct Id {
            id: Option<String>,
        }
        let data = event
            .split(|&b| b == b'\n')
            .find_map(|l| l.strip_prefix(b"data: "))
            .unwrap_or_default();
        let Ok(lite) = serde_json::from_slice::<Lite>(data) else {
            out.push_back(event);
            return;
        };
        if let Some(n) = lite.sequence_number {
            *sequence = Some(n);
        }
        if let Some(i) = lite.response.and_then(|r| r.id) {
            *id = i;
        }
        if matches!(
            lite.kind.as_str(),
            "response.completed" | "response.incomplete"
        ) {
            *last = Some((lite.kind, Bytes::copy_from_slice(data)));
        } else {
            out.push_back(event);
        }
    }

    fn finish(
        &mut self,
        usage: &crate::chat::Usage,
        cost: crate::money::Nanos,
        out: &mut VecDeque<Bytes>,
    ) {
        match self {
            ResponsesOut::Encoded(events) => events.finish(usage, cost, out),
            ResponsesOut::Native { last, sequence, id } => match last.take() {
                Some((kind, data)) => out.push_back(crate::responses::encode::event_with_cost(
                    &kind, &data, cost,
                )),
                // Ended without its final event: the response did not complete.
                None => out.push_back(crate::responses::encode::failed_after(
                    sequence.map_or(0, |n| n + 1),
                    id,
                    "upstream_error",
                    "The provider ended the stream before the response completed.",
                    usage,
                    cost,
                )),
            },
        }
    }

    fn failed(
        &mut self,
        code: &str,
        message: &str,
        usage: &crate::chat::Usage,
        cost: crate::money::Nanos,
        out: &mut VecDeque<Bytes>,
    ) {
        match self {
            ResponsesOut::Encoded(events) => events.failed(code, message, usage, cost, out),
            ResponsesOut::Native { sequence, id, .. } => {
                out.push_back(crate::responses::encode::failed_after(
                    sequence.map_or(0, |n| n + 1),
                    id,
                    code,
                    message,
                    usage,
                    cost,
                ))
            }
        }
    }
}

impl MessagesOut {
    pub fn new(n: &crate::messages::NativeMessages, request_id: &str, ep: &Endpoint) -> Self {
        let native = ep.provider == crate::catalog::ProviderKind::Anthropic;
        Self {
            encoder: (!native).then(|| crate::messages::encode::Events::new(&n.model, request_id)),
        }
    }
}

impl BilledStream {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        inner: ChunkStream,
        prefetched: Vec<StreamItem>,
        first: Option<Result<StreamItem, UpstreamError>>,
        reservation: Reservation,
        endpoint: Arc<Endpoint>,
        model: String,
        include_usage: bool,
        estimated_input: u64,
        client: ClientHandle,
        request_id: String,
        throughput: Option<Throughput>,
        messages: Option<MessagesOut>,
        responses: Option<ResponsesOut>,
        trace: crate::telemetry::RequestTrace,
    ) -> Self {
        let mut s = Self {
            inner,
            queue: VecDeque::new(),
            reservation: Some(reservation),
            endpoint,
            model,
            include_usage,
            usage: Usage::default(),
            final_usage: false,
            generated: 0,
            estimated_input,
            meta: Default::default(),
            finished: false,
            client_left: false,
            client,
            request_id,
            commit: None,
            throughput,
            messages,
            responses,
            trace,
            tally: None,
        };
        for item in prefetched {
            s.accept(Ok(item));
        }
        match first {
            Some(item) => s.accept(item),
            None => s.finish(None),
        }
        s
    }

    /// Records the request's metrics when the stream is settled.
    pub fn with_tally(mut self, tally: crate::metrics::Tally) -> Self {
        self.tally = Some(tally);
        self
    }

    /// Queues one chat chunk in the client's dialect.
    fn encode_chunk(&mut self, json: &[u8]) {
        match (&mut self.responses, &mut self.messages) {
            (Some(out), _) => out.chunk(json, &mut self.queue),
            (None, None) => self.queue.push_back(frame(json)),
            (
                None,
                Some(MessagesOut {
                    encoder: Some(events),
                }),
            ) => events.chunk(json, &mut self.queue),
            (None, Some(_)) => {}
        }
    }

    /// The unfinished rest of this stream, moved out to be read to its end without a
    /// client (this one is left settled-looking: no reservation, finished).
    fn take_rest(&mut self) -> BilledStream {
        let rest = BilledStream {
            inner: std::mem::replace(&mut self.inner, Box::pin(futures_util::stream::empty())),
            queue: VecDeque::new(),
            reservation: self.reservation.take(),
            endpoint: self.endpoint.clone(),
            model: std::mem::take(&mut self.model),
            include_usage: false,
            usage: self.usage,
            final_usage: self.final_usage,
            generated: self.generated,
            estimated_input: self.estimated_input,
            meta: std::mem::take(&mut self.meta),
            finished: self.finished,
            client_left: true,
            client: self.client.clone(),
            request_id: self.request_id.clone(),
            commit: None,
            throughput: self.throughput.take(),
            messages: None,
            responses: None,
            trace: self.trace.take(),
            tally: self.tally.take(),
        };
        self.finished = true;
        rest
    }

    fn accept(&mut self, item: Result<StreamItem, UpstreamError>) {
        match item {
            Ok(StreamItem::Chunk { json, generated }) => {
                self.generated += generated;
                // The chunks' `id`, `created` and `model`, for the usage chunk of a
                // stream that ends before the provider reports them.
                if self.meta.0.is_empty() {
                    if let Some(meta) = chunk_meta(&json) {
                        self.meta = meta;
                    }
                }
                self.encode_chunk(&json);
            }
            Ok(StreamItem::Native(event)) => {
                if let Some(out) = &mut self.responses {
                    out.native(event, &mut self.queue);
                } else if let Some(MessagesOut { encoder: None }) = self.messages {
                    self.queue.push_back(event);
                }
            }
            Ok(StreamItem::Usage {
                usage,
                id,
                created,
                model,
                last,
            }) => {
                self.usage = usage;
                self.final_usage = last;
                if !id.is_empty() {
                    self.meta = (id, created, model);
                }
            }
            Err(e) => self.finish(Some(e)),
        }
    }

    /// Settles and queues the closing frames.
    fn finish(&mut self, error: Option<UpstreamError>) {
        if self.finished {
            return;
        }
        self.finished = true;
        // The client may have gone before this body reached it (the handler's presence
        // saw it), though the stream itself was never dropped unfinished.
        if self
            .reservation
            .as_ref()
            .is_some_and(Reservation::client_left)
        {
            self.client_left = true;
        }
        // The provider's own text goes to the log only; the client's answer and the
        // usage record (which the client can read) get the clean answer.
        let answer = error.as_ref().map(|e| {
            super::chat::log_upstream_failure(
                &self.endpoint,
                e,
                &self.request_id,
                "upstream failure mid-stream",
            );
            crate::server::error::ApiError::upstream(e, &self.request_id)
        });
        let reason = answer
            .as_ref()
            .map(|a| match a.upstream.as_deref() {
                Some(u) => format!(
                    "{} failed mid-stream, answered as {}{}",
                    u.provider,
                    a.code,
                    u.provider_code
                        .as_deref()
                        .map(|c| format!(" (provider code {c})"))
                        .unwrap_or_default()
                ),
                None => a.code.to_owned(),
            })
            .or_else(|| {
                (!self.final_usage)
                    .then(|| "the upstream ended the stream without reporting usage".to_owned())
            });
        if let Some(t) = self
            .throughput
            .take()
            .filter(|_| error.is_none() && self.final_usage)
        {
            t.router.record_throughput(
                &self.endpoint.key,
                self.usage.output_tokens,
                t.since.elapsed(),
            );
        }
        let status = match (&error, self.final_usage) {
            (Some(_), _) => UsageStatus::UpstreamError,
            (None, false) => UsageStatus::CutShort,
            (None, true) if self.client_left => UsageStatus::ClientDisconnected,
            (None, true) => UsageStatus::Completed,
        };
        if let Some(ledger) = self
            .reservation
            .as_ref()
            .map(|r| r.ledger().clone())
            .filter(|l| l.billing().commit_before_answer)
        {
            self.commit = Some(Box::pin(async move { ledger.commit_before_answer().await }));
        }
        let charged = self.settle(reason, status);
        match answer {
            // A Messages stream ends with Anthropic's closing events: the provider's
            // own (forwarded), or encoded with the final usage.
            None if self.responses.is_some() => {
                if let Some(out) = &mut self.responses {
                    out.finish(&self.usage, charged, &mut self.queue);
                }
            }
            Some(err) if self.responses.is_some() => {
                if let Some(out) = &mut self.responses {
                    out.failed(
                        err.code,
                        &err.message,
                        &self.usage,
                        charged,
                        &mut self.queue,
                    );
                }
            }
            None if self.messages.is_some() => {
                if let Some(MessagesOut {
                    encoder: Some(events),
                }) = &mut self.messages
                {
                    events.finish(&self.usage, &mut self.queue);
                }
            }
            None => {
                if self.include_usage {
                    // No chunk came (or none named itself): the gateway's own names.
                    if self.meta.0.is_empty() {
                        self.meta = (
                            format!("chatcmpl-{}", self.request_id),
                            crate::clock::unix_now(),
                            self.model.clone(),
                        );
                    }
                    let (id, created, model) = &self.meta;
                    let chunk = format!(
                        r#"{{"id":{},"object":"chat.completion.chunk","created":{},"model":{},"choices":[],"usage":{}}}"#,
                        json_str(id),
                        created,
                        json_str(model),
                        self.usage.to_openai_json(charged)
                    );
                    self.queue.push_back(frame(chunk.as_bytes()));
                }
                self.queue
                    .push_back(Bytes::from_static(b"data: [DONE]\n\n"));
            }
            Some(err) if self.messages.is_some() => {
                let body = crate::messages::encode::error_body(
                    err.status,
                    &err.message,
                    Some(&self.request_id),
                );
                self.queue
                    .push_back(crate::messages::encode::event("error", &body));
            }
            Some(err) => self.queue.push_back(frame(err.body().as_bytes())),
        }
    }

    fn settle(&mut self, note: Option<String>, status: UsageStatus) -> crate::money::Nanos {
        let Some(r) = self.reservation.take() else {
            return crate::money::Nanos::ZERO;
        };
        let mut usage = self.usage;
        let mut note = match (note, self.client_left) {
            (n, false) => n,
            (None, true) => Some("client disconnected; the stream was read to its end and billed from the provider's usage".to_owned()),
            (Some(n), true) => Some(format!("client disconnected; {n}")),
        };
        if !self.final_usage {
            // Cut short: bill what was generated, estimating what the provider did not report.
            usage.output_tokens = usage.output_tokens.max(self.generated);
            if usage.prompt_tokens() == 0 {
                usage.input_tokens = self.estimated_input;
            }
            note = Some(format!(
                "stream ended early ({}); usage partly estimated",
                note.as_deref().unwrap_or("the gateway stopped reading it")
            ));
        }
        self.usage = usage;
        let charged = r.settle(Charge::for_endpoint(
            &self.endpoint,
            &self.model,
            usage,
            Some(self.meta.0.clone()),
            status,
            note,
        ));
        // The request ends with its stream (its 200 went out long ago).
        self.trace.billed(
            &self.model,
            &self.endpoint,
            &usage,
            charged,
            status.as_str(),
        );
        let error = (status == UsageStatus::UpstreamError).then_some("upstream_error");
        self.trace.finish(200, error);
        if let Some(mut t) = self.tally.take() {
            let broke = matches!(status, UsageStatus::UpstreamError | UsageStatus::CutShort);
            t.answered(&usage, charged, broke.then(|| status.as_str()));
        }
        charged
    }
}

fn frame(json: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(json.len() + 8);
    b.extend_from_slice(b"data: ");
    b.extend_from_slice(json);
    b.extend_from_slice(b"\n\n");
    Bytes::from(b)
}

/// The `id`, `created` and `model` of a `chat.completion.chunk`, if it has an `id`.
fn chunk_meta(json: &[u8]) -> Option<(String, u64, String)> {
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(default)]
        id: String,
        #[serde(default)]
        created: u64,
        #[serde(default)]
        model: String,
    }
    serde_json::from_slice::<Meta>(json)
        .ok()
        .filter(|m| !m.id.is_empty())
        .map(|m| (m.id, m.created, m.model))
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

impl Stream for BilledStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(c) = self.commit.as_mut() {
                match std::future::Future::poll(c.as_mut(), cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => self.commit = None,
                }
            }
            if let Some(b) = self.queue.pop_front() {
                return Poll::Ready(Some(Ok(b)));
            }
            if self.finished {
                return Poll::Ready(None);
            }
            match self.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => self.finish(None),
                Poll::Ready(Some(item)) => self.accept(item),
            }
        }
    }
}

impl Drop for BilledStream {
    fn drop(&mut self) {
        if self.reservation.is_none() {
            return;
        }
        // Dropped unfinished by hyper: the client went away. Read the rest in a task of
        // its own and bill it from the provider's final usage.
        if !self.client_left {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                self.client.mark_left();
                tracing::debug!("client left mid-stream; reading the stream to its end to bill it");
                let mut rest = self.take_rest();
                let ledger = rest.reservation.as_ref().map(|r| r.ledger().clone());
                rt.spawn(async move {
                    let Some(ledger) = ledger else { return };
                    // Until shutdown's grace period ends (see `Ledger::cut`): then what
                    // was seen is billed, the rest estimated.
                    let ended = tokio::select! {
                        () = async { while rest.next().await.is_some() {} } => true,
                        () = ledger.until_cut() => false,
                    };
                    if !ended {
                        rest.settle(
                            Some("the gateway shut down".to_owned()),
                            UsageStatus::CutShort,
                        );
                    }
                });
                return;
            }
        }
        // The drain itself was dropped (the runtime is shutting down): bill what was
        // seen, estimating the rest.
        self.settle(None, UsageStatus::CutShort);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Ledger, Presence, Store};
    use std::time::Duration;

    /// A body dropped after its first frame (the client hung up): the rest is read to
    /// its end in a task of its own and billed from the provider's final usage, and
    /// nothing is left open.
    #[tokio::test]
    async fn a_body_dropped_unfinished_is_read_to_its_end_and_billed() {
        let store = Store::open("sqlite::memory:").await.expect("store");
        let catalog = std::sync::Arc::new(crate::catalog::Catalog::builtin().expect("catalog"));
        let ledger = Ledger::open(store, crate::config::Billing::default(), catalog.clone())
            .await
            .expect("ledger");
        let (account, key, _) = ledger.create_account("r@example.com").await.expect("acct");
        let info = ledger.authenticate(&key.plain).expect("key");
        let endpoint = catalog
            .models
            .iter()
            .flat_map(|m| m.endpoints.iter())
            .find(|e| e.upstream_id == "gpt-4o-mini")
            .expect("endpoint")
            .clone();
        let (presence, client) = Presence::new();
        let reservation = ledger
            .reserve(
                &info,
                "req_dropped",
                crate::money::Nanos::from_cents(10),
                &client,
            )
            .expect("reserve");
        presence.delivered();
        // Many frames, then the provider's final usage.
        let mut items: Vec<Result<StreamItem, UpstreamError>> = (0..200)
            .map(|_| {
                Ok(StreamItem::Chunk {
                    json: Bytes::from_static(br#"{"choices":[{"delta":{"content":"x"}}]}"#),
                    generated: 1,
                })
            })
            .collect();
        items.push(Ok(StreamItem::Usage {
            usage: Usage {
                input_tokens: 10,
                output_tokens: 200,
                ..Usage::default()
            },
            id: "chatcmpl-1".into(),
            created: 0,
            model: "gpt-4o-mini".into(),
            last: true,
        }));
        let first = items.remove(0);
        let inner: ChunkStream = Box::pin(futures_util::stream::iter(items));
        let billed = BilledStream::new(
            inner,
            Vec::new(),
            Some(first),
            reservation,
            endpoint.clone(),
            "openai/gpt-4o-mini".into(),
            false,
            0,
            client.clone(),
            "req_dropped".into(),
            None,
            None,
            None,
            crate::telemetry::RequestTrace::default(),
        );
        let mut billed = billed;
        assert!(billed.next().await.is_some(), "the first frame");
        drop(billed);
        assert_eq!(ledger.wait_settled(Duration::from_secs(5)).await, 0);
        assert!(client.left(), "a dropped body means the client left");
        let b = ledger.balance(&account).expect("balance");
        let cost = Usage {
            input_tokens: 10,
            output_tokens: 200,
            ..Usage::default()
        }
        .cost(&endpoint.pricing);
        assert_eq!(b.spent, cost, "billed from the provider's final usage");
        assert_eq!(b.reserved, crate::money::Nanos::ZERO);
        assert_eq!(b.detached, 0);
    }
}
