//! `POST {base}/embeddings` (OpenAI's Embeddings API, and OpenAI-compatible servers).
//!
//! The client's inputs are sent as they came (texts or token arrays) with `model`
//! replaced by the endpoint's upstream ID. Vectors are always asked for as base64
//! (`encoding_format: "base64"`), the little-endian `f32`s OpenAI computes, so the gateway
//! answers either format from the exact values; usage is `usage.prompt_tokens`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::Request;
use serde::Deserialize;
use serde_json::{json, Value};

use super::OpenAi;
use crate::providers::embeddings::{from_base64, EmbedCall, EmbedInput, Embeddings};
use crate::providers::{UpstreamError, UpstreamErrorKind};

#[derive(Deserialize)]
struct Answer {
    data: Vec<Item>,
    usage: Option<UsageWire>,
}

#[derive(Deserialize)]
struct Item {
    index: usize,
    embedding: Vector,
}

/// A vector as base64 (what the gateway asks for) or, from a server that ignores
/// `encoding_format`, as numbers.
#[derive(Deserialize)]
#[serde(untagged)]
enum Vector {
    Base64(String),
    Floats(Vec<f32>),
}

#[derive(Deserialize)]
struct UsageWire {
    prompt_tokens: u64,
}

impl OpenAi {
    /// The embeddings URL next to the chat URL (`{base}/embeddings`).
    fn embeddings_url(&self) -> String {
        match self.url.strip_suffix("/chat/completions") {
            Some(base) => format!("{base}/embeddings"),
            None => self.url.clone(),
        }
    }

    pub(super) async fn embeddings(
        &self,
        call: EmbedCall<'_>,
    ) -> Result<Embeddings, UpstreamError> {
        let bad = |m: String| UpstreamError::new(UpstreamErrorKind::Protocol, &self.name, m);
        let input = match call.input {
            EmbedInput::Texts(t) => json!(t),
            EmbedInput::Tokens(t) => json!(t),
        };
        let mut body = json!({
            "model": call.endpoint.upstream_id,
            "input": input,
            "encoding_format": "base64",
        });
        if let Some(d) = call.dimensions {
            body["dimensions"] = json!(d);
        }
        if let Some(u) = call.user {
            body["user"] = Value::from(u);
        }
        let body = serde_json::to_vec(&body).map_err(|e| bad(e.to_string()))?;
        let mut req = Request::post(self.embeddings_url())
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, "application/json");
        if let Some(a) = &self.auth {
            req = req.header(AUTHORIZATION, a);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| bad(e.to_string()))?;
        let resp = self.client.send(req, &self.name).await?;
        let status = resp.status();
        let request_id = resp
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = self.client.read_body(resp.into_body(), &self.name).await?;
        if !status.is_success() {
            return Err(self.error_from(status.as_u16(), &body));
        }
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("embeddings answer is malformed: {e}")))?;
        let Some(usage) = answer.usage else {
            return Err(bad(
                "embeddings answer carries no usage; it cannot be billed".into(),
            ));
        };
        let n = call.input.len();
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; n];
        for item in answer.data {
            let v = match item.embedding {
                Vector::Base64(s) => from_base64(&s)
                    .ok_or_else(|| bad(format!("embedding {} is not base64 f32s", item.index)))?,
                Vector::Floats(f) => f,
            };
            match vectors.get_mut(item.index) {
                Some(slot @ None) => *slot = Some(v),
                _ => {
                    return Err(bad(format!(
                        "embedding index {} is out of place",
                        item.index
                    )))
                }
            }
        }
        let vectors = vectors
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad(format!("the answer lacks some of the {n} embeddings")))?;
        Ok(Embeddings {
            vectors,
            input_tokens: usage.prompt_tokens,
            id: request_id,
        })
    }
}
