//! An independent AWS Signature Version 4 verifier (header-based auth), written from the
//! published algorithm and checked against the AWS test suite and botocore-signed Bedrock
//! requests (`vector_tests.rs`); it shares no code with the `aws-sigv4` crate.
//!
//! Canonical request = method, canonical URI, canonical query, canonical headers,
//! signed header list, hex SHA-256 of the body. The canonical URI follows the non-S3
//! rules: the path is normalized (dot segments removed, empty segments collapsed) and
//! percent-encoded once more, so an encoded `%3A` becomes `%253A`. String to sign =
//! `AWS4-HMAC-SHA256`, `X-Amz-Date`, the credential scope and the hex SHA-256 of the
//! canonical request; the signature is HMAC-SHA256 with the key chain
//! `"AWS4" + secret` → date → region → service → `aws4_request`.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

pub(super) const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Largest accepted difference between `X-Amz-Date` and the server clock.
const MAX_SKEW: Duration = Duration::minutes(5);

/// The message AWS sends when the signature does not match.
pub(super) const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/// The parsed `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Authorization {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

impl Authorization {
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// Why a signed request is rejected (mapped to AWS error names by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AuthFailure {
    /// `IncompleteSignatureException`: the header is not a well-formed SigV4 header.
    Incomplete(String),
    /// `UnrecognizedClientException`: unknown access key or wrong session token.
    UnrecognizedClient,
    /// `InvalidSignatureException`: wrong signature, scope or time.
    InvalidSignature(String),
}

/// The credentials the verifier accepts.
pub(super) struct Credentials<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
}

/// The parts of an HTTP request that are signed. `path` is used as given (see
/// [`reencode_path`] for the server's view of a wire path); `query` is the raw query
/// string without `?`; header names may use any case and repeat.
pub(super) struct SignedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl SignedRequest<'_> {
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).into_iter().next()
    }
}

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
/// SignedHeaders=a;b, Signature=hex`.
pub(super) fn parse_authorization(value: &str) -> Result<Authorization, AuthFailure> {
    let incomplete = || {
        AuthFailure::Incomplete(format!(
            "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization={value}"
        ))
    };
    let params = value
        .strip_prefix(ALGORITHM)
        .filter(|rest| rest.starts_with(' '))
        .ok_or_else(incomplete)?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for param in params.split(',') {
        let (key, val) = param.trim().split_once('=').ok_or_else(incomplete)?;
        match key {
            "Credential" => credential = Some(val),
            "SignedHeaders" => signed_headers = Some(val),
            "Signature" => signature = Some(val),
            _ => return Err(incomplete()),
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(incomplete());
    };
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts[..] else {
        return Err(AuthFailure::Incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
        )));
    };
    if terminator != "aws4_request" {
        return Err(AuthFailure::InvalidSignature(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'. "
        )));
    }
    Ok(Authorization {
        access_key_id: access_key_id.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: signed_headers.split(';').map(str::to_owned).collect(),
        signature: signature.to_owned(),
    })
}

/// Verifies a SigV4-signed request for `service` at time `now`; returns the parsed
/// header (its `region` is the signing region).
pub(super) fn verify(
    request: &SignedRequest<'_>,
    authorization: &str,
    credentials: &Credentials<'_>,
    service: &str,
    now: OffsetDateTime,
) -> Result<Authorization, AuthFailure> {
    let auth = parse_authorization(authorization)?;
    if auth.access_key_id != credentials.access_key_id {
        return Err(AuthFailure::UnrecognizedClient);
    }
    if request.header("x-amz-security-token") != credentials.session_token {
        return Err(AuthFailure::UnrecognizedClient);
    }
    if auth.service != service {
        return Err(AuthFailure::InvalidSignature(format!(
            "Credential should be scoped to correct service: '{service}'. "
        )));
    }
    let amz_date = request.header("x-amz-date").ok_or_else(|| {
        AuthFailure::Incomplete(format!(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization={authorization}"
        ))
    })?;
    let signed_at = parse_amz_date(amz_date).ok_or_else(|| {
        AuthFailure::Incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See http://en.wikipedia.org/wiki/ISO_8601"
        ))
    })?;
    let day = amz_date.get(..8).unwrap_or_default();
    if auth.date != day {
        return Err(AuthFailure::InvalidSignature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{day}', from '{amz_date}'.",
            auth.date
        )));
    }
    if signed_at < now - MAX_SKEW {
        return Err(AuthFailure::InvalidSignature(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 5 min.)",
            format_amz_date(now - MAX_SKEW),
            format_amz_date(now)
        )));
    }
    if signed_at > now + MAX_SKEW {
        return Err(AuthFailure::InvalidSignature(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + 5 min.)",
            format_amz_date(now + MAX_SKEW),
            format_amz_date(now)
        )));
    }
    if !auth.signed_headers.iter().any(|h| h == "host") {
        return Err(AuthFailure::InvalidSignature(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".to_owned(),
        ));
    }
    let mismatch = || AuthFailure::InvalidSignature(SIGNATURE_MISMATCH.to_owned());
    let canonical = canonical_request(request, &auth.signed_headers, &payload_hash(request.body))
        .ok_or_else(mismatch)?;
    let to_sign = string_to_sign(amz_date, &auth.scope(), &canonical);
    let key = signing_key(
        credentials.secret_access_key,
        &auth.date,
        &auth.region,
        &auth.service,
    );
    if !constant_time_eq(
        signature(&key, &to_sign).as_bytes(),
        auth.signature.as_bytes(),
    ) {
        return Err(mismatch());
    }
    Ok(auth)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(super) fn parse_amz_date(value: &str) -> Option<OffsetDateTime> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(value, format)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

pub(super) fn format_amz_date(at: OffsetDateTime) -> String {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    at.format(format).unwrap_or_default()
}

/// Hex SHA-256 of the body, the last line of the canonical request.
pub(super) fn payload_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The canonical request, or `None` if a signed header is missing from the request.
pub(super) fn canonical_request(
    request: &SignedRequest<'_>,
    signed_headers: &[String],
    payload_hash: &str,
) -> Option<String> {
    let mut headers = String::new();
    for name in signed_headers {
        let values = request.header_values(name);
        if values.is_empty() {
            return None;
        }
        let values: Vec<String> = values.into_iter().map(canonical_header_value).collect();
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    Some(format!(
        "{}\n{}\n{}\n{headers}\n{}\n{payload_hash}",
        request.method,
        canonical_uri(request.path),
        canonical_query(request.query),
        signed_headers.join(";"),
    ))
}

/// Trims a header value and collapses runs of whitespace (also folded lines) to one space.
fn canonical_header_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(super) fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    let hash = hex::encode(Sha256::digest(canonical_request.as_bytes()));
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{hash}")
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; 32],
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub(super) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

pub(super) fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac(signing_key, string_to_sign.as_bytes()))
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Percent-encodes every byte except the unreserved characters (and `/` if asked),
/// with upper-case hex, as SigV4 requires.
pub(super) fn uri_encode(input: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(input.len());
    for &byte in input {
        if is_unreserved(byte) || (keep_slash && byte == b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; malformed escapes are kept literally.
pub(in crate::simulators) fn percent_decode(input: &str) -> Vec<u8> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// The server's view of a wire path: every segment decoded and re-encoded the way the
/// AWS SDKs encode URI labels (all but the unreserved characters escaped). A client
/// that puts a raw `:` in the path but signs it differently therefore fails the check.
pub(super) fn reencode_path(path: &str) -> String {
    path.split('/')
        .map(|segment| uri_encode(&percent_decode(segment), false))
        .collect::<Vec<_>>()
        .join("/")
}

/// The canonical URI for non-S3 services: normalized, then percent-encoded (again).
pub(super) fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut normalized = format!("/{}", segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        normalized.push('/');
    }
    uri_encode(normalized.as_bytes(), true)
}

/// The canonical query string: parameters decoded, re-encoded, sorted by name then value.
pub(super) fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode(key), false),
                uri_encode(&percent_decode(value), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The credential-scope region of an `Authorization: AWS4-HMAC-SHA256 ...` header.
pub(in crate::simulators) fn signing_region(authorization: &str) -> Option<String> {
    parse_authorization(authorization).ok().map(|a| a.region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_and_normalization() {
        assert_eq!(uri_encode(b"a b/c:d~", true), "a%20b/c%3Ad~");
        assert_eq!(uri_encode(b"a/b", false), "a%2Fb");
        assert_eq!(percent_decode("x%3A0%2f%zz%"), b"x:0/%zz%".to_vec());
        assert_eq!(
            reencode_path("/model/x:0/converse"),
            "/model/x%3A0/converse"
        );
        assert_eq!(
            reencode_path("/model/x%3a0/converse"),
            "/model/x%3A0/converse"
        );
        assert_eq!(
            canonical_uri("/model/x%3A0/converse"),
            "/model/x%253A0/converse"
        );
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("//a//b/../c/./"), "/a/c/");
        assert_eq!(canonical_query("b=2&a=%7e&a=1&c"), "a=1&a=~&b=2&c=");
    }

    #[test]
    fn authorization_header() {
        let auth = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKID/20250115/eu-west-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
        )
        .expect("parses");
        assert_eq!(auth.region, "eu-west-1");
        assert_eq!(auth.scope(), "20250115/eu-west-1/bedrock/aws4_request");
        assert_eq!(auth.signed_headers, ["host", "x-amz-date"]);
        assert!(matches!(
            parse_authorization("AWS4-HMAC-SHA256 Credential=AKID/20250115/bedrock/aws4_request, SignedHeaders=host, Signature=abc"),
            Err(AuthFailure::Incomplete(_))
        ));
        assert!(matches!(
            parse_authorization("AWS4-HMAC-SHA256 SignedHeaders=host, Signature=abc"),
            Err(AuthFailure::Incomplete(_))
        ));
        assert!(matches!(
            parse_authorization("Basic abc"),
            Err(AuthFailure::Incomplete(_))
        ));
        assert_eq!(
            signing_region("AWS4-HMAC-SHA256 Credential=A/20250115/us-west-2/bedrock/aws4_request, SignedHeaders=host, Signature=0"),
            Some("us-west-2".to_owned())
        );
    }

    #[test]
    fn dates() {
        let at = parse_amz_date("20250115T120000Z").expect("date");
        assert_eq!(format_amz_date(at), "20250115T120000Z");
        assert!(parse_amz_date("2025-01-15T12:00:00Z").is_none());
    }
}
