//! What went wrong upstream ([`UpstreamError`]), in the chat layer because every answer
//! stream ([`super::ChunkStream`]) carries it; the provider adapters build it, the server
//! answers it (re-exported as `crate::providers::UpstreamError`).

use super::disclosure;

/// What went wrong upstream, classified so that the router knows whether to fail over
/// and the server knows which status to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// No connection could be made (refused, DNS, TLS).
    Connect,
    /// No answer within the connect / first-byte / idle-stream timeout.
    Timeout,
    /// The provider rate-limited us (429).
    RateLimited,
    /// The provider failed or is overloaded (5xx, 529).
    Unavailable,
    /// The provider refused the request itself (4xx other than auth and rate limits), or
    /// the adapter refused to send it: the client's input is at fault. Only
    /// [`UpstreamError::client_message`] of it reaches the client.
    Rejected,
    /// The provider refused the gateway's credentials (401/403): a deployment fault.
    Auth,
    /// The provider does not know the upstream model ID (404): a catalog fault.
    ModelMissing,
    /// The provider refused the model ID's form (Bedrock's profile-required and
    /// profile-forbidden ValidationExceptions): a catalog fault that trips the endpoint's
    /// circuit at once.
    CatalogFault,
    /// The provider answered something that is not its documented protocol.
    Protocol,
    /// The connection broke after the answer had begun.
    Interrupted,
}

/// An upstream failure. Its `message` is for the gateway's log only: a provider's own
/// text can name the deployment's AWS account, role ARN, organisation or quotas. What a
/// client is told is built from the kind, provider and status (see
/// `server::error::ApiError::upstream`), plus `client_message` where there is one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{provider}: {message}")]
pub struct UpstreamError {
    pub kind: UpstreamErrorKind,
    /// The provider (and endpoint) that failed, e.g. `anthropic`.
    pub provider: String,
    /// The provider's own message where it sent one (or the adapter's description).
    /// Logged, never sent to a client.
    pub message: String,
    /// The provider's HTTP status, if it answered.
    pub status: Option<u16>,
    /// The provider's error type or code, if it sent one.
    pub code: Option<String>,
    /// A text the client may see: the adapter's own reason for refusing the input, or
    /// a provider's validation message about the client's input, redacted (see
    /// [`disclosure`]). Set only by the adapters, only for [`UpstreamErrorKind::Rejected`].
    pub client_message: Option<String>,
    /// The adapter refused the request before sending it ([`UpstreamError::invalid_input`]).
    pub not_sent: bool,
}

impl UpstreamError {
    pub fn new(kind: UpstreamErrorKind, provider: &str, message: impl Into<String>) -> Self {
        Self {
            kind,
            provider: provider.to_owned(),
            message: message.into(),
            status: None,
            code: None,
            client_message: None,
            not_sent: false,
        }
    }

    /// The adapter refuses to send a request whose input the provider cannot take (an
    /// Anthropic conversation that starts with the assistant, an image that cannot be
    /// fetched): the gateway's own text, shown to the client as it is.
    pub fn invalid_input(provider: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut e = Self::new(UpstreamErrorKind::Rejected, provider, message.clone());
        e.client_message = Some(message);
        e.not_sent = true;
        e
    }

    /// Passes the provider's own message on to the client, redacted, if this is a
    /// refusal of the client's input. The adapter calls it only for the provider's
    /// validation errors (Anthropic and OpenAI `invalid_request_error`, Bedrock's
    /// `ValidationException` other than a catalog fault).
    pub fn disclosing_validation(mut self) -> Self {
        if self.kind == UpstreamErrorKind::Rejected && !self.message.is_empty() {
            self.client_message = Some(disclosure::redact(&self.message));
        }
        self
    }

    /// Classifies an HTTP error status of a provider.
    pub fn from_status(provider: &str, status: u16, code: Option<String>, message: String) -> Self {
        let kind = match status {
            429 => UpstreamErrorKind::RateLimited,
            401 | 403 => UpstreamErrorKind::Auth,
            404 => UpstreamErrorKind::ModelMissing,
            408 => UpstreamErrorKind::Timeout,
            400..=499 => UpstreamErrorKind::Rejected,
            _ => UpstreamErrorKind::Unavailable,
        };
        Self {
            kind,
            provider: provider.to_owned(),
            message,
            status: Some(status),
            code,
            client_message: None,
            not_sent: false,
        }
    }

    /// Whether another endpoint may be tried (if nothing has been sent to the client).
    pub fn retryable(&self) -> bool {
        match self.kind {
            UpstreamErrorKind::Connect
            | UpstreamErrorKind::Timeout
            | UpstreamErrorKind::RateLimited
            | UpstreamErrorKind::Unavailable
            | UpstreamErrorKind::Auth
            | UpstreamErrorKind::ModelMissing
            | UpstreamErrorKind::CatalogFault
            | UpstreamErrorKind::Interrupted
            // An answer that does not decode (a corrupt frame, invalid JSON): another
            // endpoint may answer soundly, and nothing was sent to the client yet.
            | UpstreamErrorKind::Protocol => true,
            UpstreamErrorKind::Rejected => false,
        }
    }
}
