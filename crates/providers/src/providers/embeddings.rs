//! Embeddings: what the server asks a provider for (`POST /v1/embeddings`) and what it
//! gets back, independent of any wire format. Each adapter turns an [`EmbedCall`] into
//! its own requests (OpenAI's `/v1/embeddings`, Bedrock's InvokeModel per model family)
//! and reports the input tokens the provider counted, which is what is billed.

use crate::catalog::{Endpoint, Model};

/// The inputs of one request, as the client sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbedInput {
    /// Texts (a single string is a batch of one).
    Texts(Vec<String>),
    /// Token IDs, one array per input (OpenAI's tokenizer for the model).
    Tokens(Vec<Vec<u32>>),
}

impl EmbedInput {
    /// How many embeddings the answer holds.
    pub fn len(&self) -> usize {
        match self {
            Self::Texts(t) => t.len(),
            Self::Tokens(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One upstream embeddings call at one endpoint.
pub struct EmbedCall<'a> {
    pub input: &'a EmbedInput,
    /// The vector size the client asked for (already checked against the catalog).
    pub dimensions: Option<u32>,
    /// OpenAI's end-user identifier, passed on to OpenAI-compatible APIs.
    pub user: Option<&'a str>,
    pub endpoint: &'a Endpoint,
    pub model: &'a Model,
}

/// A provider's answer: one vector per input, in input order, and the input tokens the
/// provider counted (billed at the endpoint's input price).
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    pub input_tokens: u64,
    /// The provider's request ID, when it reports one (kept on the usage record).
    pub id: Option<String>,
}

/// A vector as OpenAI's `encoding_format: "base64"` sends it: the little-endian bytes of
/// each `f32`, base64-encoded (standard alphabet, padded).
pub fn to_base64(v: &[f32]) -> String {
    let mut bytes = Vec::with_capacity(v.len() * 4);
    for x in v {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    aws_smithy_types::base64::encode(bytes)
}

/// The inverse of [`to_base64`]; `None` when the text is not base64 of whole `f32`s.
pub fn from_base64(s: &str) -> Option<Vec<f32>> {
    let bytes = aws_smithy_types::base64::decode(s).ok()?;
    if bytes.len() % 4 != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_exactly_in_little_endian() {
        let v = [0.0f32, -1.5, 0.1, f32::MIN_POSITIVE, 3.4e38];
        let s = to_base64(&v);
        assert_eq!(from_base64(&s).as_deref(), Some(&v[..]));
        // 1.0f32 is 0x3f800000: little-endian bytes 00 00 80 3f.
        assert_eq!(to_base64(&[1.0]), "AACAPw==");
        assert_eq!(from_base64("AACA"), None);
    }
}
