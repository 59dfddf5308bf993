//! Anthropic's wire types: what the Messages API returns and streams.

use serde::Deserialize;

use crate::chat::Usage;
use crate::providers::{UpstreamError, UpstreamErrorKind};

#[derive(Debug, Deserialize)]
pub struct Message {
    pub id: String,
    pub model: String,
    pub content: Vec<ContentBlock>,
    pub stop_reason: Option<String>,
    pub usage: UsageWire,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: serde_json::Value,
    },
    /// Thinking and other block types are not part of the OpenAI answer.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize, Default, Clone, Copy)]
pub struct UsageWire {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation: Option<CacheCreation>,
}

/// The split of cache writes by TTL, when Anthropic reports it.
#[derive(Debug, Deserialize, Default, Clone, Copy)]
pub struct CacheCreation {
    #[serde(default)]
    pub ephemeral_5m_input_tokens: u64,
    #[serde(default)]
    pub ephemeral_1h_input_tokens: u64,
}

impl UsageWire {
    /// Folds these (possibly partial) figures into `u`.
    pub fn apply(&self, u: &mut Usage) {
        if let Some(v) = self.input_tokens {
            u.input_tokens = v;
        }
        if let Some(v) = self.output_tokens {
            u.output_tokens = v;
        }
        if let Some(v) = self.cache_read_input_tokens {
            u.cache_read_tokens = v;
        }
        match (self.cache_creation, self.cache_creation_input_tokens) {
            (Some(c), _) => {
                u.cache_write_5m_tokens = c.ephemeral_5m_input_tokens;
                u.cache_write_1h_tokens = c.ephemeral_1h_input_tokens;
            }
            (None, Some(v)) => u.cache_write_5m_tokens = v,
            (None, None) => {}
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    MessageStart {
        message: StreamMessageStart,
    },
    ContentBlockStart {
        index: usize,
        content_block: StreamBlockStart,
    },
    ContentBlockDelta {
        index: usize,
        delta: StreamDelta,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<UsageWire>,
    },
    MessageStop,
    Ping,
    Error {
        error: ErrorWire,
    },
}

#[derive(Debug, Deserialize)]
pub struct StreamMessageStart {
    pub id: String,
    pub model: String,
    #[serde(default)]
    pub usage: Option<UsageWire>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamBlockStart {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
pub struct MessageDeltaBody {
    #[serde(default)]
    pub stop_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorWire,
}

#[derive(Debug, Deserialize)]
pub struct ErrorWire {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub message: String,
}

/// Anthropic's stop reason as OpenAI's finish reason.
pub fn finish_reason(stop: Option<&str>) -> &'static str {
    match stop {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// An error response of the Messages API, classified. The message of an
/// `invalid_request_error` or `request_too_large` (the client's input refused) may reach
/// the client, redacted; every other message is for the log only.
pub fn error_from(status: u16, body: &[u8]) -> UpstreamError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => {
            let mut e = UpstreamError::from_status(
                "anthropic",
                status,
                Some(b.error.kind.clone()),
                b.error.message,
            );
            match b.error.kind.as_str() {
                "overloaded_error" => e.kind = UpstreamErrorKind::Unavailable,
                "invalid_request_error" | "request_too_large" => e = e.disclosing_validation(),
                _ => {}
            }
            e
        }
        Err(_) => UpstreamError::from_status(
            "anthropic",
            status,
            None,
            String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned(),
        ),
    }
}
