//! AWS Bedrock through the Converse API (`POST /model/{modelId}/converse`) and
//! ConverseStream (`POST /model/{modelId}/converse-stream`, event-stream framed).
//!
//! * [`auth`]: SigV4 signing with the official `aws-sigv4` crate (service `bedrock`,
//!   region = the endpoint's source region), credentials from the AWS chain; or a
//!   Bedrock API key as a bearer token.
//! * [`convert`]: the internal request to a Converse request and a Converse answer back.
//! * [`stream`]: `application/vnd.amazon.eventstream` frames (decoded by
//!   `aws-smithy-eventstream`) to OpenAI chunks.
//! * [`errors`]: Bedrock's errors classified by exception type first, message second.
//! * [`invoke`]: embeddings through InvokeModel (Titan Text Embeddings V2, Cohere Embed).
//! * [`images`]: https image URLs fetched by the gateway, with limits and no access to
//!   loopback, private or link-local addresses.

pub mod auth;
pub mod control;
pub mod convert;
pub mod errors;
pub mod images;
pub mod invoke;
pub mod stream;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::Full;
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST};
use hyper::Request;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::http::{BaseUrl, HttpClient};
use super::{Call, Provider, UpstreamError, UpstreamErrorKind};
use crate::chat::Reply;

const NAME: &str = "bedrock";

/// What the AWS SDKs leave unescaped in a URI label: the unreserved characters.
const LABEL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A model ID (or ARN) as a path segment, percent-encoded exactly as the AWS SDKs do
/// (`:` → `%3A`, `/` → `%2F`).
pub fn encode_model_id(id: &str) -> String {
    utf8_percent_encode(id, LABEL).to_string()
}

pub struct Bedrock {
    signer: auth::Signer,
    /// Replaces `https://bedrock-runtime.{region}.amazonaws.com` for every region.
    endpoint: Option<BaseUrl>,
    client: HttpClient,
    images: images::ImageFetcher,
}

impl Bedrock {
    pub fn new(
        signer: auth::Signer,
        endpoint_url: Option<&str>,
        client: HttpClient,
        images: images::ImageFetcher,
    ) -> Result<Self, String> {
        Ok(Self {
            signer,
            endpoint: endpoint_url.map(BaseUrl::parse).transpose()?,
            client,
            images,
        })
    }

    /// `(url, host)` of an operation on a model in a source region.
    fn target(&self, region: &str, model_id: &str, op: &str) -> (String, String) {
        let path = format!("/model/{}/{op}", encode_model_id(model_id));
        match &self.endpoint {
            Some(b) => (b.url(&path), b.host_header.clone()),
            None => {
                let host = format!("bedrock-runtime.{region}.amazonaws.com");
                (format!("https://{host}{path}"), host)
            }
        }
    }
}

impl Bedrock {
    /// The Converse body of a call (images fetched, large bodies built off the async
    /// workers); a request Bedrock cannot take is the client's error.
    async fn converse_body(&self, call: &Call<'_>) -> Result<Vec<u8>, UpstreamError> {
        convert::request(
            call.req,
            call.model.max_output_tokens,
            &self.images,
            call.body_len,
            call.native,
        )
        .await
        .map_err(|e| UpstreamError::invalid_input(NAME, e))
    }

    /// Sends a signed JSON body to an operation on a model; a refusal becomes its
    /// [`UpstreamError`] (read from AWS's error type and body).
    async fn post(
        &self,
        region: &str,
        model_id: &str,
        op: &str,
        accept: &str,
        body: Bytes,
    ) -> Result<hyper::Response<hyper::body::Incoming>, UpstreamError> {
        let (url, host) = self.target(region, model_id, op);
        let mut req = Request::post(&url)
            .header(HOST, &host)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, accept)
            .body(Full::new(body.clone()))
            .map_err(|e| UpstreamError::new(UpstreamErrorKind::Protocol, NAME, e.to_string()))?;
        self.signer.sign(&mut req, &body, region).await?;
        let resp = self.client.send(req, NAME).await?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(resp);
        }
        let error_type = resp
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = self.client.read_body(resp.into_body(), NAME).await?;
        Err(errors::from_response(
            status,
            error_type.as_deref(),
            &body,
            model_id,
            region,
        ))
    }
}

impl Provider for Bedrock {
    fn server_address(&self, ep: &crate::catalog::Endpoint) -> Option<String> {
        let b = ep.bedrock.as_ref()?;
        Some(crate::providers::http::host_of(
            &self.target(&b.source_region, &ep.upstream_id, "converse").1,
        ))
    }

    fn embed<'a>(
        &'a self,
        call: super::embeddings::EmbedCall<'a>,
    ) -> BoxFuture<'a, Result<super::embeddings::Embeddings, UpstreamError>> {
        Box::pin(self.invoke_embeddings(call))
    }

    fn call<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Reply, UpstreamError>> {
        Box::pin(async move {
            let Some(b) = &call.endpoint.bedrock else {
                return Err(UpstreamError::new(
                    UpstreamErrorKind::Protocol,
                    NAME,
                    format!("endpoint {} has no Bedrock region", call.endpoint.key),
                ));
            };
            let region = b.source_region.as_str();
            let body = self.converse_body(&call).await?;
            let stream = call.req.is_stream();
            let op = if stream {
                "converse-stream"
            } else {
                "converse"
            };
            let accept = if stream {
                "application/vnd.amazon.eventstream"
            } else {
                "application/json"
            };
            let resp = self
                .post(
                    region,
                    &call.endpoint.upstream_id,
                    op,
                    accept,
                    Bytes::from(body),
                )
                .await?;
            if stream {
                let frames = stream::frames(resp.into_body(), self.client.timeouts);
                return Ok(Reply::Stream(stream::translate(
                    frames,
                    call.endpoint.upstream_id.clone(),
                    region.to_owned(),
                )));
            }
            let body = self.client.read_body(resp.into_body(), NAME).await?;
            convert::completion(&body, &call.endpoint.upstream_id).map(Reply::Complete)
        })
    }

    /// CountTokens (`POST /model/{modelId}/count-tokens`) with the Converse request's
    /// messages, system prompt, tool configuration and additional model fields (the
    /// members of ConverseTokensRequest), in the endpoint's source region. The operation takes
    /// a foundation model's ID: a profile's geography prefix is dropped.
    fn count_tokens<'a>(
        &'a self,
        call: Call<'a>,
    ) -> BoxFuture<'a, Result<Option<u64>, UpstreamError>> {
        Box::pin(async move {
            let Some(b) = &call.endpoint.bedrock else {
                return Ok(None);
            };
            let region = b.source_region.as_str();
            let converse = self.converse_body(&call).await?;
            let mut converse: serde_json::Value =
                serde_json::from_slice(&converse).map_err(|e| {
                    UpstreamError::new(UpstreamErrorKind::Protocol, NAME, e.to_string())
                })?;
            let mut input = serde_json::Map::new();
            for k in [
                "messages",
                "system",
                "toolConfig",
                "additionalModelRequestFields",
            ] {
                if let Some(v) = converse.get_mut(k).map(serde_json::Value::take) {
                    input.insert(k.to_owned(), v);
                }
            }
            let body = Bytes::from(
                serde_json::to_vec(&serde_json::json!({"input": {"converse": input}}))
                    .unwrap_or_default(),
            );
            let upstream = &call.endpoint.upstream_id;
            let model_id = match &b.invocation {
                crate::catalog::BedrockInvocation::Profile { .. } => upstream
                    .split_once('.')
                    .map_or(upstream.as_str(), |(_, base)| base),
                crate::catalog::BedrockInvocation::OnDemand => upstream.as_str(),
            };
            let resp = self
                .post(region, model_id, "count-tokens", "application/json", body)
                .await?;
            let body = self.client.read_body(resp.into_body(), NAME).await?;
            let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
                UpstreamError::new(
                    UpstreamErrorKind::Protocol,
                    NAME,
                    format!("CountTokens answer: {e}"),
                )
            })?;
            v["inputTokens"].as_u64().map(Some).ok_or_else(|| {
                UpstreamError::new(
                    UpstreamErrorKind::Protocol,
                    NAME,
                    "CountTokens answer has no inputTokens",
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_are_encoded_like_the_aws_sdks() {
        assert_eq!(
            encode_model_id("us.amazon.nova-pro-v1:0"),
            "us.amazon.nova-pro-v1%3A0"
        );
        assert_eq!(
            encode_model_id("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-6"),
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-sonnet-4-6"
        );
        assert_eq!(encode_model_id("a_b~c-d.e"), "a_b~c-d.e");
    }
}
