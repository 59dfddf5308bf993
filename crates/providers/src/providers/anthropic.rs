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
use crate::secret::Secret;

/// The API version we speak.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

pub struct Anthropic {
    url: String,
    count_url: String,
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
            count_url: base.url("/v1/messages/count_tokens"),
            host: base.host_header,
            api_key,
            client,
        })
    }
}

const NAME: &str = "anthropic";

impl Anthropic {
    /// Sends a JSON body to one of the API's URLs, with the client's own
    /// `anthropic-version` and `anthropic-beta` when it spoke Anthropic's dialect.
    async fn post(
        &self,
        url: &str,
        body: Vec<u8>,
        native: Option<&crate::messages::NativeMessages>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, UpstreamError> {
        let version = native
            .and_then(|n| n.version.as_deref())
            .unwrap_or(ANTHROPIC_VERSION);
        let mut req = Request::post(url)
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, "application/json")
            .header("x-api-key", self.api_key.expose())
            .header("anthropic-version", version);
        if let Some(beta) = native.and_then(|n| n.beta.as_deref()) {
            req = req.header("anthropic-beta", beta);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| UpstreamError::new(UpstreamErrorKind::Protocol, NAME, e.to_string()))?;
        self.client.send(req, NAME).await
    }
}

impl Provider for Anthropic {
    fn server_address(&self, _ep: &crate::catalog::Endpoint) -> Option<String> {
        Some(crate::providers::http::host_of(&self.host))
    }

    fn call<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Reply, UpstreamError>> {
        Box::pin(async move {
            let upstream_id = &call.endpoint.upstream_id;
            let cap = call.model.max_output_tokens;
            let body = off_workers(call.body_len, || match call.native {
                Some(n) => Ok(native_body(n, upstream_id, cap)),
                None => convert::request(call.req, upstream_id, cap),
            })
            .await
            .map_err(|e| UpstreamError::invalid_input(NAME, e))?;
            let resp = self.post(&self.url, body, call.native).await?;
            let status = resp.status().as_u16();
            if !(200..300).contains(&status) {
                let body = self.client.read_body(resp.into_body(), NAME).await?;
                return Err(wire::error_from(status, &body));
            }
            if call.req.is_stream() {
                let events = self.client.sse(resp.into_body(), NAME);
                return Ok(Reply::Stream(stream::translate(
                    events,
                    call.native.is_some(),
                )));
            }
            let body = self.client.read_body(resp.into_body(), NAME).await?;
            let mut completion = convert::completion(&body)?;
            if call.native.is_some() {
                completion.native = Some(body);
            }
            Ok(Reply::Complete(completion))
        })
    }

    /// `POST /v1/messages/count_tokens` with the client's own request (`model` set);
    /// a request that did not come in Anthropic's dialect is converted first.
    fn count_tokens<'a>(
        &'a self,
        call: Call<'a>,
    ) -> BoxFuture<'a, Result<Option<u64>, UpstreamError>> {
        Box::pin(async move {
            let upstream_id = &call.endpoint.upstream_id;
            let body = off_workers(call.body_len, || match call.native {
                Some(n) => {
                    let mut body = n.body.clone();
                    body.insert("model".into(), upstream_id.as_str().into());
                    Ok(serde_json::to_vec(&body).unwrap_or_default())
                }
                None => {
                    let mut v: serde_json::Value = serde_json::from_slice(&convert::request(
                        call.req,
                        upstream_id,
                        call.model.max_output_tokens,
                    )?)
                    .map_err(|e| e.to_string())?;
                    if let Some(o) = v.as_object_mut() {
                        for k in [
                            "max_tokens",
                            "stream",
                            "stop_sequences",
                            "temperature",
                            "top_p",
                            "metadata",
                        ] {
                            o.remove(k);
                        }
                    }
                    Ok(serde_json::to_vec(&v).unwrap_or_default())
                }
            })
            .await
            .map_err(|e: String| UpstreamError::invalid_input(NAME, e))?;
            let resp = self.post(&self.count_url, body, call.native).await?;
            let status = resp.status().as_u16();
            let body = self.client.read_body(resp.into_body(), NAME).await?;
            if !(200..300).contains(&status) {
                return Err(wire::error_from(status, &body));
            }
            let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
                UpstreamError::new(
                    UpstreamErrorKind::Protocol,
                    NAME,
                    format!("count_tokens answer: {e}"),
                )
            })?;
            v["input_tokens"].as_u64().map(Some).ok_or_else(|| {
                UpstreamError::new(
                    UpstreamErrorKind::Protocol,
                    NAME,
                    "count_tokens answer has no input_tokens",
                )
            })
        })
    }
}

/// The client's own Messages request for an endpoint: unchanged but for `model` (the
/// endpoint's upstream ID) and a `max_tokens` over the catalog's output cap (lowered to
/// it: the credit hold covers no more).
fn native_body(n: &crate::messages::NativeMessages, upstream_id: &str, cap: u64) -> Vec<u8> {
    let mut body = n.body.clone();
    body.insert("model".into(), upstream_id.into());
    if body
        .get("max_tokens")
        .and_then(serde_json::Value::as_u64)
        .is_some_and(|m| m > cap)
    {
        body.insert("max_tokens".into(), cap.into());
    }
    serde_json::to_vec(&body).unwrap_or_default()
}
