//! The SSE body of a streamed completion. It forwards chunks as they arrive (never
//! buffered whole), keeps the usage reported so far, and settles the reservation exactly
//! once: when the stream ends, when the upstream fails mid-stream, or when the client
//! goes away (the body is dropped); tokens generated until then are billed.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

use crate::catalog::Endpoint;
use crate::chat::{ChunkStream, StreamItem, Usage};
use crate::ledger::{Charge, Reservation, UsageStatus};
use crate::providers::UpstreamError;

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

    fn accept(&mut self, item: Result<StreamItem, UpstreamError>) {
        match item {
            Ok(StreamItem::Chunk { json, generated }) => {
                self.generated += generated;
                self.queue.push_back(frame(&json));
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
                self.meta = (id, created, model);
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
        let reason = error.as_ref().map(|e| e.to_string()).or_else(|| {
            (!self.final_usage)
                .then(|| "the upstream ended the stream without reporting usage".to_owned())
        });
        let status = match (&error, self.final_usage) {
            (Some(_), _) => UsageStatus::UpstreamError,
            (None, true) => UsageStatus::Completed,
            (None, false) => UsageStatus::CutShort,
        };
        let charged = self.settle(reason, status);
        match error {
            None => {
                if self.include_usage {
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
            Some(e) => {
                let err: crate::server::error::ApiError = e.into();
                self.queue.push_back(frame(err.body().as_bytes()));
            }
        }
    }

    fn settle(&mut self, note: Option<String>, status: UsageStatus) -> crate::money::Nanos {
        let Some(r) = self.reservation.take() else {
            return crate::money::Nanos::ZERO;
        };
        let mut usage = self.usage;
        let mut note = note;
        if !self.final_usage {
            // Cut short: bill what was generated, estimating what the provider did not report.
            usage.output_tokens = usage.output_tokens.max(self.generated);
            if usage.prompt_tokens() == 0 {
                usage.input_tokens = self.estimated_input;
            }
            note = Some(format!(
                "stream ended early ({}); usage partly estimated",
                note.as_deref().unwrap_or("client disconnected")
            ));
        }
        self.usage = usage;
        r.settle(Charge::for_endpoint(
            &self.endpoint,
            &self.model,
            usage,
            Some(self.meta.0.clone()),
            status,
            note,
        ))
    }
}

fn frame(json: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(json.len() + 8);
    b.extend_from_slice(b"data: ");
    b.extend_from_slice(json);
    b.extend_from_slice(b"\n\n");
    Bytes::from(b)
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

impl Stream for BilledStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
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
        // The client went away mid-stream: bill what was generated so far.
        if self.reservation.is_some() {
            self.settle(None, UsageStatus::ClientDisconnected);
        }
    }
}
