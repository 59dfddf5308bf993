//! Upstream providers behind one trait.
//!
//! # Layout
//! * this file: the [`Provider`] trait and the [`Providers`] registry the router looks
//!   endpoints' providers up in; [`UpstreamError`] and [`disclosure`] live in the chat
//!   layer (`crate::chat::upstream`), since every answer stream carries them, and are
//!   re-exported here.
//! * [`http`]: the pooled HTTP/1.1 client (rustls, TCP_NODELAY, timeouts) and the SSE
//!   reader every provider uses.
//! * [`openai`]: OpenAI Chat Completions and OpenAI-compatible servers (one adapter,
//!   configured by base URL; vendors are configuration, not modules).
//! * [`anthropic`]: the Anthropic Messages API (`wire`, `convert`, `stream`).
//! * [`embeddings`]: the provider-neutral embeddings call and answer
//!   ([`Provider::embed`]), served by OpenAI (and compatible servers) and by Bedrock's
//!   InvokeModel.
//!
//! A provider turns the internal request ([`crate::chat::ChatRequest`]) into its native
//! call and its native answer back into [`Reply`]. It knows nothing of routing,
//! accounts or billing; the router knows nothing of wire formats.

pub mod anthropic;
pub mod bedrock;
pub mod embeddings;
pub mod http;
pub mod openai;
pub mod pool;

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;

pub use crate::chat::disclosure;
pub use crate::chat::upstream::{UpstreamError, UpstreamErrorKind};

use crate::catalog::{Endpoint, Model, ProviderKind};
use crate::chat::raw::RawObject;
use crate::chat::{ChatRequest, ChunkStream, Reply, StreamItem};

/// One upstream call: the validated request, its top-level raw fields (for adapters that
/// pass the body through), and the endpoint chosen by the router.
pub struct Call<'a> {
    pub req: &'a ChatRequest,
    pub raw: &'a RawObject<'a>,
    pub endpoint: &'a Endpoint,
    pub model: &'a Model,
    /// The request body's size in bytes: work that grows with it (building a provider's
    /// body) runs off the async workers when it is large ([`crate::chat::limits::off_workers`]).
    pub body_len: usize,
    /// The client's own Anthropic Messages request (`/v1/messages`): the Anthropic
    /// adapter sends it instead of converting `req`, and answers in kind.
    pub native: Option<&'a crate::messages::NativeMessages>,
    /// The client's own Responses request (`/v1/responses`): the OpenAI adapter sends it
    /// to OpenAI's `/v1/responses` instead of converting `req`, and answers in kind.
    pub responses: Option<&'a crate::responses::NativeResponses>,
}

/// A model provider. An open set: held as `Arc<dyn Provider>`.
pub trait Provider: Send + Sync + 'static {
    fn call<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Reply, UpstreamError>>;

    /// The input tokens the provider counts for this request, where it offers counting
    /// (Anthropic's `count_tokens`, Bedrock's CountTokens); `Ok(None)` where it does not.
    fn count_tokens<'a>(
        &'a self,
        _call: Call<'a>,
    ) -> BoxFuture<'a, Result<Option<u64>, UpstreamError>> {
        Box::pin(async { Ok(None) })
    }

    /// Embeddings for `call.input`, in input order, with the input tokens the provider
    /// counted. A provider without an embeddings API refuses (the catalog gives it no
    /// embedding model).
    fn embed<'a>(
        &'a self,
        call: embeddings::EmbedCall<'a>,
    ) -> BoxFuture<'a, Result<embeddings::Embeddings, UpstreamError>> {
        Box::pin(async move {
            Err(UpstreamError::new(
                UpstreamErrorKind::Protocol,
                &call.endpoint.provider.to_string(),
                format!(
                    "endpoint {} has no embeddings API in this gateway",
                    call.endpoint.key
                ),
            ))
        })
    }

    /// The host a call to `ep` goes to (`server.address` in traces).
    fn server_address(&self, _ep: &Endpoint) -> Option<String> {
        None
    }
}

/// A foreign stream's state machine: turns one upstream event into OpenAI stream items.
pub trait StreamTranslator: Send + 'static {
    type Event: Send + 'static;
    fn step(&mut self, event: Self::Event) -> Vec<Result<StreamItem, UpstreamError>>;
    /// Whether the stream is over (its last event, or an error event, was seen).
    fn is_done(&self) -> bool;
}

/// A provider's event stream as a [`ChunkStream`]: each event through the translator,
/// ending after the translator is done or after the first upstream error.
pub fn translate_stream<T: StreamTranslator>(
    events: impl futures_util::Stream<Item = Result<T::Event, UpstreamError>> + Send + 'static,
    translator: T,
) -> ChunkStream {
    use futures_util::StreamExt;
    let s = events
        .scan((translator, false), |(t, failed), event| {
            if *failed || t.is_done() {
                return std::future::ready(None);
            }
            let items = match event {
                Ok(event) => t.step(event),
                Err(e) => {
                    *failed = true;
                    vec![Err(e)]
                }
            };
            std::future::ready(Some(futures_util::stream::iter(items)))
        })
        .flatten();
    Box::pin(s)
}

/// The providers this deployment has configured, by kind.
#[derive(Clone, Default)]
pub struct Providers {
    map: HashMap<ProviderKind, Arc<dyn Provider>>,
    /// The shared connection pool's connections, for `/metrics`.
    pub upstream_connections: Option<Arc<pool::UpstreamConnections>>,
}

impl Providers {
    pub fn insert(&mut self, kind: ProviderKind, p: Arc<dyn Provider>) {
        self.map.insert(kind, p);
    }

    pub fn get(&self, kind: &ProviderKind) -> Option<&Arc<dyn Provider>> {
        self.map.get(kind)
    }

    pub fn kinds(&self) -> impl Iterator<Item = &ProviderKind> {
        self.map.keys()
    }
}
