//! The Anthropic Messages API (`POST {ANTHROPIC_BASE_URL}/v1/messages`).
//!
//! * [`wire`]: Anthropic's serde types (responses, stream events, errors).
//! * [`convert`]: the internal request to a Messages request, and a message back to an
//!   OpenAI `chat.completion`.
//! * [`stream`]: Anthropic's SSE event sequence to OpenAI chunks.

pub mod convert;
pub mod stream;
pub mod wire;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::Request;

use super::http::{BaseUrl, HttpClient};
use super::{Call, Provider, UpstreamError, UpstreamErrorKind};
use crate::chat::limits::off_workers;
use crate::chat::Reply;
use crate::config::Secret;

/// The API version we speak.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

pub struct Anthropic {
    url: String,
    host: String,
    api_key: Secret,
    client: HttpClient,
}

impl Anthropic {
    /// `base_url` is the API root, like `ANTHROPIC_BASE_URL` (`https://api.anthropic.com`).
    pub fn new(base_url: &str, api_key: Secret, client: HttpClient) -> Result<Self, String> {
        let base = BaseUrl::parse(base_url)?;
        Ok(Self {
            url: base.url("/v1/messages"),
            host: base.host_header,
            api_key,
            client,
        })
    }
}

const NAME: &str = "anthropic";

impl Provider for Anthropic {
    fn call<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Reply, UpstreamError>> {
        Box::pin(async move {
            let body = off_workers(call.body_len, || {
                convert::request(
                    call.req,
                    &call.endpoint.upstream_id,
                    call.model.max_output_tokens,
                )
            })
            .await
            .map_err(|e| UpstreamError::invalid_input(NAME, e))?;
            let req = Request::post(&self.url)
                .header(HOST, &self.host)
                .header(CONTENT_TYPE, "application/json")
                .header("x-api-key", self.api_key.expose())
                .header("anthropic-version", ANTHROPIC_VERSION)
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| {
                    UpstreamError::new(UpstreamErrorKind::Protocol, NAME, e.to_string())
                })?;
            let resp = self.client.send(req, NAME).await?;
            let status = resp.status().as_u16();
            if !(200..300).contains(&status) {
                let body = self.client.read_body(resp.into_body(), NAME).await?;
                return Err(wire::error_from(status, &body));
            }
            if call.req.is_stream() {
                let events = self.client.sse(resp.into_body(), NAME);
                return Ok(Reply::Stream(stream::translate(events)));
            }
            let body = self.client.read_body(resp.into_body(), NAME).await?;
            convert::completion(&body).map(Reply::Complete)
        })
    }
}
