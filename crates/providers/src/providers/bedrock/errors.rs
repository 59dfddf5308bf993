//! Bedrock's errors, classified by exception type first (`x-amzn-ErrorType` on a
//! response, `:exception-type` in a stream) and message second.
//!
//! Two ValidationExceptions are catalog faults, not the client's: the bare ID of a
//! profile-only model ("... with on-demand throughput isn’t supported ...", with U+2019
//! or an ASCII apostrophe) and a prefixed ID of a model that forbids the prefix ("The
//! provided model identifier is invalid."). They fail over and trip the endpoint's
//! circuit.

use serde::Deserialize;

use crate::providers::{UpstreamError, UpstreamErrorKind};

#[derive(Deserialize)]
struct Body {
    #[serde(default, alias = "Message")]
    message: String,
    #[serde(default, alias = "__type", alias = "Code")]
    code: Option<String>,
}

/// `ThrottlingException` from `ThrottlingException:http://internal.amazon.com/...` or
/// `com.amazon.bedrock#ThrottlingException`.
pub fn exception_name(raw: &str) -> &str {
    let head = raw.split(':').next().unwrap_or(raw);
    head.rsplit('#').next().unwrap_or(head)
}

/// Whether a ValidationException message says the model ID's form is wrong.
pub fn is_catalog_fault(message: &str) -> bool {
    let m = message.replace('\u{2019}', "'");
    m.contains("with on-demand throughput isn't supported")
        || m.contains("The provided model identifier is invalid")
        || m.contains("doesn't support on-demand throughput")
}

/// Whether AWS refused the credentials themselves (an unknown, invalid or expired access
/// key, session token, signature or Bedrock API key), as opposed to refusing an
/// authenticated caller access to a model. A Bedrock API key that is not valid comes
/// back as an `AccessDeniedException` too, but with an authentication text:
/// `{"Message":"Authentication failed: Please make sure your API Key is valid."}`.
pub fn is_credential_refusal(name: &str, message: &str) -> bool {
    match name.to_ascii_lowercase().as_str() {
        "unrecognizedclientexception"
        | "invalidsignatureexception"
        | "incompletesignatureexception"
        | "expiredtokenexception"
        | "missingauthenticationtokenexception" => true,
        "accessdeniedexception" => {
            let m = message.to_ascii_lowercase();
            m.starts_with("authentication failed")
                || m.contains("api key")
                || m.contains("bearer token")
                || m.contains("authorization header")
        }
        _ => false,
    }
}

/// An error response of the runtime API.
pub fn from_response(
    status: u16,
    error_type: Option<&str>,
    body: &[u8],
    model: &str,
    region: &str,
) -> UpstreamError {
    let parsed: Option<Body> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .map(|b| b.message.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
    let name = error_type
        .map(exception_name)
        .or_else(|| {
            parsed
                .as_ref()
                .and_then(|b| b.code.as_deref())
                .map(exception_name)
        })
        .unwrap_or("")
        .to_owned();
    classify(&name, Some(status), message, model, region)
}

/// An exception of a stream or a response, by its (PascalCase or lowerCamel) name.
pub fn classify(
    name: &str,
    status: Option<u16>,
    message: String,
    model: &str,
    region: &str,
) -> UpstreamError {
    let lower = name.to_ascii_lowercase();
    let (kind, message) = match lower.as_str() {
        _ if is_credential_refusal(&lower, &message) => (
            UpstreamErrorKind::Auth,
            format!("AWS refused the deployment's credentials ({name}: {message})"),
        ),
        "validationexception" if is_catalog_fault(&message) => (
            UpstreamErrorKind::CatalogFault,
            format!("catalog fault: Bedrock refused the model ID `{model}` in {region} in this form ({message})"),
        ),
        "validationexception" => {
            // The client's input refused: the one Bedrock text a client may see, redacted.
            let mut e = UpstreamError::new(UpstreamErrorKind::Rejected, "bedrock", message);
            e.status = status;
            return named(e.disclosing_validation(), name);
        }
        "throttlingexception" => (UpstreamErrorKind::RateLimited, message),
        "servicequotaexceededexception" => (UpstreamErrorKind::RateLimited, message),
        "modelnotreadyexception" | "serviceunavailableexception" | "internalserverexception" => {
            (UpstreamErrorKind::Unavailable, message)
        }
        "modeltimeoutexception" => (UpstreamErrorKind::Timeout, message),
        "accessdeniedexception" => (
            UpstreamErrorKind::Auth,
            format!("the deployment's AWS account has no access to `{model}` in {region} ({message}); enable model access for it in the Bedrock console of {region}"),
        ),
        "resourcenotfoundexception" => (UpstreamErrorKind::ModelMissing, message),
        "modelerrorexception" | "modelstreamerrorexception" => (UpstreamErrorKind::Unavailable, message),
        _ => match status {
            Some(s) => return named(UpstreamError::from_status("bedrock", s, None, message), name),
            None => (UpstreamErrorKind::Interrupted, message),
        },
    };
    let mut e = UpstreamError::new(kind, "bedrock", message);
    e.status = status;
    named(e, name)
}

fn named(mut e: UpstreamError, name: &str) -> UpstreamError {
    if !name.is_empty() {
        e.code = Some(name.to_owned());
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_validation_exceptions_are_catalog_faults_with_either_apostrophe() {
        for m in [
            "Invocation of model ID anthropic.claude-sonnet-4-6 with on-demand throughput isn\u{2019}t supported. Retry your request with the ID or ARN of an inference profile that contains this model.",
            "Invocation of model ID anthropic.claude-sonnet-4-6 with on-demand throughput isn't supported. Retry your request with the ID or ARN of an inference profile that contains this model.",
            "The provided model identifier is invalid.",
        ] {
            let body = serde_json::json!({ "message": m }).to_string();
            let e = from_response(400, Some("ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"), body.as_bytes(), "x", "us-east-1");
            assert_eq!(e.kind, UpstreamErrorKind::CatalogFault, "{m}");
            assert!(e.retryable());
        }
        let e = from_response(
            400,
            Some("ValidationException"),
            br#"{"message":"A conversation must start with a user message."}"#,
            "x",
            "us-east-1",
        );
        assert_eq!(e.kind, UpstreamErrorKind::Rejected);
    }

    /// AWS's texts for credentials it does not accept are a refusal of the credentials;
    /// an authenticated caller without access to the model is told to enable it.
    #[test]
    fn refused_credentials_are_not_a_missing_model_access() {
        for (error_type, body) in [
            ("AccessDeniedException:http://internal.amazon.com/coral/com.amazon.coral.service/", r#"{"Message":"Authentication failed: Please make sure your API Key is valid."}"#),
            ("UnrecognizedClientException:http://internal.amazon.com/coral/com.amazon.coral.service/", r#"{"message":"The security token included in the request is invalid."}"#),
            ("InvalidSignatureException", r#"{"message":"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."}"#),
            ("ExpiredTokenException", r#"{"message":"The security token included in the request is expired"}"#),
            ("AccessDeniedException", r#"{"Message":"Authorization header is missing"}"#),
        ] {
            let e = from_response(403, Some(error_type), body.as_bytes(), "m", "us-east-1");
            assert_eq!(e.kind, UpstreamErrorKind::Auth, "{body}");
            assert!(e.message.starts_with("AWS refused the deployment's credentials ("), "{}", e.message);
            assert!(!e.message.contains("model access"), "{}", e.message);
        }
        let e = from_response(
            403,
            Some("AccessDeniedException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            br#"{"message":"You don't have access to the model with the specified model ID."}"#,
            "meta.llama3-70b-instruct-v1:0",
            "us-east-1",
        );
        assert_eq!(
            e.message,
            "the deployment's AWS account has no access to `meta.llama3-70b-instruct-v1:0` in us-east-1 (You don't have access to the model with the specified model ID.); enable model access for it in the Bedrock console of us-east-1"
        );
        let e = from_response(
            403,
            Some("UnrecognizedClientException"),
            br#"{"message":"The security token included in the request is invalid."}"#,
            "m",
            "us-east-1",
        );
        assert_eq!(
            e.message,
            "AWS refused the deployment's credentials (UnrecognizedClientException: The security token included in the request is invalid.)"
        );
    }

    #[test]
    fn retryable_and_access_errors() {
        let cases = [
            (
                "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
                429,
                UpstreamErrorKind::RateLimited,
            ),
            (
                "ServiceUnavailableException",
                503,
                UpstreamErrorKind::Unavailable,
            ),
            (
                "ModelNotReadyException",
                429,
                UpstreamErrorKind::Unavailable,
            ),
            ("ModelTimeoutException", 408, UpstreamErrorKind::Timeout),
            ("AccessDeniedException", 403, UpstreamErrorKind::Auth),
        ];
        for (t, s, k) in cases {
            let e = from_response(
                s,
                Some(t),
                br#"{"message":"m"}"#,
                "meta.llama3-70b-instruct-v1:0",
                "eu-west-1",
            );
            assert_eq!(e.kind, k, "{t}");
            assert!(e.retryable(), "{t}");
        }
        let e = from_response(
            403,
            Some("AccessDeniedException"),
            br#"{"message":"You don't have access to the model with the specified model ID."}"#,
            "m",
            "eu-west-1",
        );
        assert!(e.message.contains("eu-west-1") && e.message.contains("model access"));
        // Streams name exceptions in lowerCamel.
        assert_eq!(
            classify("throttlingException", None, "slow".into(), "m", "r").kind,
            UpstreamErrorKind::RateLimited
        );
    }
}
