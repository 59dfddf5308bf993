//! Embeddings through InvokeModel (`POST /model/{modelId}/invoke`), signed like Converse
//! for the endpoint's source region. Each model family has its own body:
//!
//! * Amazon Titan Text Embeddings V2: one text a call,
//!   `{"inputText","dimensions","normalize":true,"embeddingTypes":["float"]}` →
//!   `{"embedding":[...],"inputTextTokenCount":N}`. A batch of N texts is N calls, run
//!   [`CONCURRENT_CALLS`] at a time; their token counts are summed.
//! * Cohere Embed v3: up to [`COHERE_TEXTS_PER_CALL`] texts a call,
//!   `{"texts","input_type":"search_document","truncate":"NONE","embedding_types":["float"]}`
//!   → `{"embeddings":{"float":[[...]]},"id","texts","response_type"}`; the answer has no
//!   token count in its body.
//!
//! Billing uses the count Bedrock puts in the `X-Amzn-Bedrock-Input-Token-Count`
//! response header (Titan's `inputTextTokenCount` if the header is missing); an answer
//! with neither cannot be billed and is an error. Both take text only: token IDs are
//! refused before anything is sent.

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::{json, Value};

use super::{Bedrock, NAME};
use crate::providers::embeddings::{EmbedCall, EmbedInput, Embeddings};
use crate::providers::{UpstreamError, UpstreamErrorKind};

/// Titan calls in flight at once for one request: enough to hide latency on a batch,
/// few enough that one request does not eat the account's InvokeModel quota.
pub const CONCURRENT_CALLS: usize = 4;

/// Cohere Embed's limit on `texts` in one InvokeModel call.
pub const COHERE_TEXTS_PER_CALL: usize = 96;

/// The InvokeModel body family of a model ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    TitanV2,
    Cohere,
}

impl Family {
    pub fn of(model_id: &str) -> Option<Self> {
        if model_id.starts_with("amazon.titan-embed-text-v2") {
            Some(Self::TitanV2)
        } else if model_id.starts_with("cohere.embed-") {
            Some(Self::Cohere)
        } else {
            None
        }
    }
}

fn protocol(message: String) -> UpstreamError {
    UpstreamError::new(UpstreamErrorKind::Protocol, NAME, message)
}

/// One InvokeModel answer: its JSON body and the header's token count.
struct Invoked {
    body: Value,
    header_tokens: Option<u64>,
    request_id: Option<String>,
}

impl Bedrock {
    pub(super) async fn invoke_embeddings(
        &self,
        call: EmbedCall<'_>,
    ) -> Result<Embeddings, UpstreamError> {
        let Some(b) = &call.endpoint.bedrock else {
            return Err(protocol(format!(
                "endpoint {} has no Bedrock region",
                call.endpoint.key
            )));
        };
        let model_id = call.endpoint.upstream_id.as_str();
        let family = Family::of(model_id).ok_or_else(|| {
            UpstreamError::invalid_input(
                NAME,
                format!("{model_id} has no embeddings body known to this gateway"),
            )
        })?;
        let texts = match call.input {
            EmbedInput::Texts(t) => t,
            EmbedInput::Tokens(_) => {
                return Err(UpstreamError::invalid_input(
                    NAME,
                    format!("{model_id} on Bedrock takes text only, not token IDs"),
                ))
            }
        };
        let region = b.source_region.as_str();
        let bodies: Vec<Value> = match family {
            Family::TitanV2 => texts
                .iter()
                .map(|t| {
                    let mut body = json!({
                        "inputText": t,
                        "normalize": true,
                        "embeddingTypes": ["float"],
                    });
                    if let Some(d) = call.dimensions {
                        body["dimensions"] = json!(d);
                    }
                    body
                })
                .collect(),
            Family::Cohere => texts
                .chunks(COHERE_TEXTS_PER_CALL)
                .map(|chunk| {
                    json!({
                        "texts": chunk,
                        "input_type": "search_document",
                        "truncate": "NONE",
                        "embedding_types": ["float"],
                    })
                })
                .collect(),
        };
        // `buffered` keeps the answers in the order of the calls.
        let answers: Vec<Invoked> = futures_util::stream::iter(bodies)
            .map(|body| self.invoke(region, model_id, body))
            .buffered(CONCURRENT_CALLS)
            .try_collect()
            .await?;
        let mut out = Embeddings {
            vectors: Vec::with_capacity(texts.len()),
            input_tokens: 0,
            id: None,
        };
        for a in answers {
            let (vectors, body_tokens) = match family {
                Family::TitanV2 => (
                    vec![titan_vector(&a.body)?],
                    a.body["inputTextTokenCount"].as_u64(),
                ),
                Family::Cohere => (cohere_vectors(&a.body)?, None),
            };
            let tokens = a.header_tokens.or(body_tokens).ok_or_else(|| {
                protocol(format!(
                    "InvokeModel answer for {model_id} reports no input token count; it cannot be billed"
                ))
            })?;
            out.input_tokens = out.input_tokens.saturating_add(tokens);
            out.vectors.extend(vectors);
            if out.id.is_none() {
                out.id = a.request_id;
            }
        }
        if out.vectors.len() != texts.len() {
            return Err(protocol(format!(
                "{model_id} answered {} embeddings for {} texts",
                out.vectors.len(),
                texts.len()
            )));
        }
        Ok(out)
    }

    async fn invoke(
        &self,
        region: &str,
        model_id: &str,
        body: Value,
    ) -> Result<Invoked, UpstreamError> {
        let body = serde_json::to_vec(&body).map_err(|e| protocol(e.to_string()))?;
        let resp = self
            .post(
                region,
                model_id,
                "invoke",
                "application/json",
                Bytes::from(body),
            )
            .await?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let header_tokens =
            header("x-amzn-bedrock-input-token-count").and_then(|v| v.trim().parse().ok());
        let request_id = header("x-amzn-requestid");
        let bytes = self.client.read_body(resp.into_body(), NAME).await?;
        let body = serde_json::from_slice(&bytes)
            .map_err(|e| protocol(format!("InvokeModel answer is not JSON: {e}")))?;
        Ok(Invoked {
            body,
            header_tokens,
            request_id,
        })
    }
}

fn floats(v: &Value) -> Option<Vec<f32>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32))
        .collect()
}

/// Titan's `embedding` (or `embeddingsByType.float`).
fn titan_vector(body: &Value) -> Result<Vec<f32>, UpstreamError> {
    floats(&body["embedding"])
        .or_else(|| floats(&body["embeddingsByType"]["float"]))
        .ok_or_else(|| protocol("Titan answer has no float embedding".into()))
}

/// Cohere's `embeddings.float` (asked for by `embedding_types`), or the plain list of an
/// `embeddings_floats` answer.
fn cohere_vectors(body: &Value) -> Result<Vec<Vec<f32>>, UpstreamError> {
    let list = match &body["embeddings"] {
        Value::Object(by_type) => by_type.get("float"),
        other => Some(other),
    };
    list.and_then(Value::as_array)
        .and_then(|l| l.iter().map(floats).collect())
        .ok_or_else(|| protocol("Cohere answer has no float embeddings".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_by_model_id() {
        assert_eq!(
            Family::of("amazon.titan-embed-text-v2:0"),
            Some(Family::TitanV2)
        );
        assert_eq!(Family::of("cohere.embed-english-v3"), Some(Family::Cohere));
        assert_eq!(
            Family::of("cohere.embed-multilingual-v3"),
            Some(Family::Cohere)
        );
        assert_eq!(Family::of("amazon.nova-pro-v1:0"), None);
    }

    #[test]
    fn cohere_answers_of_either_response_type() {
        let by_type =
            json!({"embeddings": {"float": [[0.5, -1.0]]}, "response_type": "embeddings_by_type"});
        let plain = json!({"embeddings": [[0.5, -1.0]], "response_type": "embeddings_floats"});
        for body in [by_type, plain] {
            assert_eq!(cohere_vectors(&body).ok(), Some(vec![vec![0.5, -1.0]]));
        }
        assert!(cohere_vectors(&json!({"id": "x"})).is_err());
    }
}
