//! The SigV4 verifier against the AWS SigV4 test suite, the `aws-sigv4` crate's
//! double-encoding cases and botocore-signed Bedrock requests (all in `testdata/`).

use std::path::{Path, PathBuf};

use serde_json::Value;
use time::OffsetDateTime;

use super::sigv4::{
    canonical_request, canonical_uri, parse_amz_date, parse_authorization, payload_hash,
    reencode_path, signature, signing_key, string_to_sign, verify, AuthFailure, Credentials,
    SignedRequest, SIGNATURE_MISMATCH,
};

const ACCESS_KEY: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/simulators/bedrock/testdata")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn at(amz_date: &str) -> OffsetDateTime {
    parse_amz_date(amz_date).expect("X-Amz-Date")
}

/// A request of the legacy `.req` format.
#[derive(Clone)]
struct VectorRequest {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl VectorRequest {
    fn parse(text: &str) -> Self {
        let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
        let mut lines = head.split('\n');
        let request_line = lines.next().expect("request line");
        let (method, target) = request_line.split_once(' ').expect("method");
        let target = target.strip_suffix(" HTTP/1.1").expect("HTTP version");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            if line.starts_with([' ', '\t']) {
                let last = headers.last_mut().expect("folded line after a header");
                last.1.push('\n');
                last.1.push_str(line);
            } else {
                let (name, value) = line.split_once(':').expect("header line");
                headers.push((name.to_owned(), value.to_owned()));
            }
        }
        VectorRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn signed(&self) -> SignedRequest<'_> {
        SignedRequest {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

/// A copy of `authorization` with the last signature character changed.
fn tampered(authorization: &str) -> String {
    let mut tampered = authorization.to_owned();
    let last = tampered.pop().expect("non-empty");
    tampered.push(if last == '0' { '1' } else { '0' });
    tampered
}

/// Checks one legacy case: canonical request, string to sign, signature, and that the
/// verifier accepts the request and rejects a one-character change of the signature.
fn check_legacy_case(dir: &Path) {
    let name = dir.file_name().and_then(|n| n.to_str()).expect("case name");
    let file = |ext: &str| read(&dir.join(format!("{name}.{ext}")));
    let mut request = VectorRequest::parse(&file("req"));
    let expected_creq = file("creq");
    let authorization = file("authz");
    // The signer adds the session token header when the case signs one.
    if request.header("x-amz-security-token").is_none() {
        if let Some(token) = expected_creq
            .lines()
            .find_map(|l| l.strip_prefix("x-amz-security-token:"))
        {
            request
                .headers
                .push(("X-Amz-Security-Token".to_owned(), token.to_owned()));
        }
    }
    let auth = parse_authorization(&authorization).expect("authorization");
    let signed = request.signed();
    let creq = canonical_request(&signed, &auth.signed_headers, &payload_hash(&request.body))
        .expect("signed headers present");
    assert_eq!(creq, expected_creq, "{name}: canonical request");
    let amz_date = request.header("x-amz-date").expect("X-Amz-Date");
    let sts = string_to_sign(amz_date, &auth.scope(), &creq);
    assert_eq!(sts, file("sts"), "{name}: string to sign");
    let key = signing_key(SECRET, &auth.date, &auth.region, &auth.service);
    assert_eq!(signature(&key, &sts), auth.signature, "{name}: signature");

    let credentials = Credentials {
        access_key_id: ACCESS_KEY,
        secret_access_key: SECRET,
        session_token: request.header("x-amz-security-token"),
    };
    let now = at(amz_date);
    verify(&signed, &authorization, &credentials, "service", now)
        .unwrap_or_else(|err| panic!("{name}: {err:?}"));
    assert_eq!(
        verify(
            &signed,
            &tampered(&authorization),
            &credentials,
            "service",
            now
        ),
        Err(AuthFailure::InvalidSignature(SIGNATURE_MISMATCH.to_owned())),
        "{name}: tampered signature"
    );
}

fn case_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("test-suite directory")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn aws_sigv4_test_suite() {
    let root = testdata().join("sigv4-test-suite");
    let mut checked = Vec::new();
    for dir in case_dirs(&root) {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        match name {
            "aws-sigv4-crate-1.6.4" => continue,
            "normalize-path" | "post-sts-token" => {
                for case in case_dirs(&dir) {
                    check_legacy_case(&case);
                    checked.push(case);
                }
            }
            _ => {
                check_legacy_case(&dir);
                checked.push(dir);
            }
        }
    }
    let names: Vec<&str> = checked
        .iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()))
        .collect();
    for required in [
        "get-vanilla",
        "post-vanilla",
        "get-vanilla-query-order-key-case",
        "post-header-key-sort",
        "get-utf8",
        "get-vanilla-utf8-query",
        "get-header-value-trim",
        "get-header-value-multiline",
        "get-vanilla-with-session-token",
        "post-sts-header-after",
        "get-slashes",
        "get-relative-relative",
        "get-space",
        "post-x-www-form-urlencoded",
    ] {
        assert!(names.contains(&required), "missing case {required}");
    }
    assert_eq!(checked.len(), 34);
}

/// The lambda ARN case: a `%3A`-encoded path is encoded again (`%253A`).
#[test]
fn aws_sigv4_crate_double_url_encode() {
    let dir = testdata().join("sigv4-test-suite/aws-sigv4-crate-1.6.4/double-url-encode");
    let request = VectorRequest::parse(&read(&dir.join("request.txt")));
    assert_eq!(reencode_path(&request.path), request.path);
    let signed_request = read(&dir.join("header-signed-request.txt"));
    let authorization = signed_request
        .lines()
        .find_map(|l| l.strip_prefix("Authorization: "))
        .expect("Authorization line");
    let auth = parse_authorization(authorization).expect("authorization");
    let creq = canonical_request(
        &request.signed(),
        &auth.signed_headers,
        &payload_hash(&request.body),
    )
    .expect("canonical request");
    assert_eq!(creq, read(&dir.join("header-canonical-request.txt")));
    let amz_date = request.header("x-amz-date").expect("date");
    let sts = string_to_sign(amz_date, &auth.scope(), &creq);
    assert_eq!(sts, read(&dir.join("header-string-to-sign.txt")).trim_end());
    let credentials = Credentials {
        access_key_id: ACCESS_KEY,
        secret_access_key: SECRET,
        session_token: None,
    };
    let now = at(amz_date);
    verify(
        &request.signed(),
        authorization,
        &credentials,
        "lambda",
        now,
    )
    .expect("verifies");
    assert!(verify(
        &request.signed(),
        &tampered(authorization),
        &credentials,
        "lambda",
        now
    )
    .is_err());
}

/// `@` is single-encoded, an encoded `%3D` double-encoded.
#[test]
fn aws_sigv4_crate_double_encode_path() {
    let dir = testdata().join("sigv4-test-suite/aws-sigv4-crate-1.6.4/double-encode-path");
    let request = VectorRequest::parse(&read(&dir.join("request.txt")));
    let expected = read(&dir.join("header-canonical-request.txt"));
    let expected_uri = expected.lines().nth(1).expect("canonical URI line");
    assert_eq!(canonical_uri(&request.path), expected_uri);
}

struct BotocoreExample {
    name: String,
    request: VectorRequest,
    authorization: String,
    example: Value,
}

fn botocore_examples() -> Vec<BotocoreExample> {
    let data: Value =
        serde_json::from_str(include_str!("testdata/botocore_signed_examples.json")).expect("JSON");
    assert_eq!(data["credentials"]["access_key"], ACCESS_KEY);
    assert_eq!(data["credentials"]["secret_key"], SECRET);
    data["examples"]
        .as_array()
        .expect("examples")
        .iter()
        .map(|example| {
            let str_of = |key: &str| example[key].as_str().expect(key).to_owned();
            let url = str_of("url");
            let host = url
                .strip_prefix("https://")
                .and_then(|rest| rest.split('/').next())
                .expect("host");
            let mut headers: Vec<(String, String)> = example["headers"]
                .as_object()
                .expect("headers")
                .iter()
                .filter(|(name, _)| !name.eq_ignore_ascii_case("authorization"))
                .map(|(name, value)| (name.clone(), value.as_str().expect("value").to_owned()))
                .collect();
            headers.push(("Host".to_owned(), host.to_owned()));
            BotocoreExample {
                name: str_of("name"),
                request: VectorRequest {
                    method: str_of("method"),
                    path: str_of("wire_path"),
                    query: String::new(),
                    headers,
                    body: str_of("body").into_bytes(),
                },
                authorization: str_of("authorization"),
                example: example.clone(),
            }
        })
        .collect()
}

/// The verifier accepts botocore's Bedrock signatures (ARN and `:` model IDs included)
/// and rejects any one-character change.
#[test]
fn botocore_signed_bedrock_requests() {
    let examples = botocore_examples();
    assert_eq!(examples.len(), 6);
    let now = at("20250115T120000Z");
    for BotocoreExample {
        name,
        request,
        authorization,
        example,
    } in &examples
    {
        // The server's view of the wire path is the wire path itself (SDK encoding).
        assert_eq!(reencode_path(&request.path), request.path, "{name}");
        assert_eq!(
            canonical_uri(&request.path),
            example["canonical_uri"].as_str().expect("canonical_uri"),
            "{name}"
        );
        let auth = parse_authorization(authorization).expect("authorization");
        assert_eq!(auth.service, "bedrock");
        let hash = payload_hash(&request.body);
        assert_eq!(
            hash,
            example["body_sha256"].as_str().expect("sha"),
            "{name}"
        );
        let creq = canonical_request(&request.signed(), &auth.signed_headers, &hash)
            .expect("canonical request");
        assert_eq!(
            creq,
            example["canonical_request"].as_str().expect("creq"),
            "{name}"
        );
        let sts = string_to_sign("20250115T120000Z", &auth.scope(), &creq);
        assert_eq!(
            sts,
            example["string_to_sign"].as_str().expect("sts"),
            "{name}"
        );

        let credentials = Credentials {
            access_key_id: ACCESS_KEY,
            secret_access_key: SECRET,
            session_token: request.header("x-amz-security-token"),
        };
        let verified = verify(
            &request.signed(),
            authorization,
            &credentials,
            "bedrock",
            now,
        )
        .unwrap_or_else(|err| panic!("{name}: {err:?}"));
        assert_eq!(verified.region, example["region"].as_str().expect("region"));

        let mismatch = Err(AuthFailure::InvalidSignature(SIGNATURE_MISMATCH.to_owned()));
        let rejected = |request: &VectorRequest, authorization: &str| {
            verify(
                &request.signed(),
                authorization,
                &credentials,
                "bedrock",
                now,
            )
            .map(|_| ())
        };
        assert_eq!(
            rejected(request, &tampered(authorization)),
            mismatch,
            "{name}"
        );
        let mut body_changed = request.clone();
        body_changed.body[5] ^= 1;
        assert_eq!(rejected(&body_changed, authorization), mismatch, "{name}");
        let mut path_changed = request.clone();
        path_changed.path = request.path.replacen("/model/", "/model/x", 1);
        assert_eq!(rejected(&path_changed, authorization), mismatch, "{name}");
        assert_eq!(
            verify(
                &request.signed(),
                authorization,
                &credentials,
                "bedrock-runtime",
                now
            ),
            Err(AuthFailure::InvalidSignature(
                "Credential should be scoped to correct service: 'bedrock-runtime'. ".to_owned()
            )),
            "{name}"
        );
    }
}

#[test]
fn credentials_and_clock() {
    let examples = botocore_examples();
    let example = examples
        .iter()
        .find(|e| e.name == "converse-colon-model-id")
        .expect("example");
    let request = example.request.signed();
    let credentials =
        |key: &'static str, secret: &'static str, token: Option<&'static str>| Credentials {
            access_key_id: key,
            secret_access_key: secret,
            session_token: token,
        };
    let now = at("20250115T120000Z");
    let auth = example.authorization.as_str();
    assert_eq!(
        verify(
            &request,
            auth,
            &credentials("AKIDOTHER", SECRET, None),
            "bedrock",
            now
        )
        .map(|_| ()),
        Err(AuthFailure::UnrecognizedClient)
    );
    assert_eq!(
        verify(
            &request,
            auth,
            &credentials(ACCESS_KEY, SECRET, Some("token")),
            "bedrock",
            now
        )
        .map(|_| ()),
        Err(AuthFailure::UnrecognizedClient)
    );
    assert_eq!(
        verify(
            &request,
            auth,
            &credentials(ACCESS_KEY, "wrong", None),
            "bedrock",
            now
        )
        .map(|_| ()),
        Err(AuthFailure::InvalidSignature(SIGNATURE_MISMATCH.to_owned()))
    );
    let good = credentials(ACCESS_KEY, SECRET, None);
    assert!(verify(&request, auth, &good, "bedrock", at("20250115T120459Z")).is_ok());
    assert_eq!(
        verify(&request, auth, &good, "bedrock", at("20250115T120600Z")).map(|_| ()),
        Err(AuthFailure::InvalidSignature(
            "Signature expired: 20250115T120000Z is now earlier than 20250115T120100Z (20250115T120600Z - 5 min.)"
                .to_owned()
        ))
    );
    assert_eq!(
        verify(&request, auth, &good, "bedrock", at("20250115T115400Z")).map(|_| ()),
        Err(AuthFailure::InvalidSignature(
            "Signature not yet current: 20250115T120000Z is still later than 20250115T115900Z (20250115T115400Z + 5 min.)"
                .to_owned()
        ))
    );
}

/// A client that signs a raw `:` path with single encoding (what `aws-sigv4` does when
/// the model ID is not percent-encoded) is rejected: the server canonicalizes the path
/// to the SDK encoding first.
#[test]
fn raw_colon_path_is_rejected() {
    let examples = botocore_examples();
    let example = examples
        .iter()
        .find(|e| e.name == "converse-colon-model-id")
        .expect("example");
    let raw_path = "/model/meta.llama3-70b-instruct-v1:0/converse";
    let mut request = example.request.clone();
    request.path = raw_path.to_owned();
    let auth = parse_authorization(&example.authorization).expect("authorization");
    let creq = canonical_request(
        &request.signed(),
        &auth.signed_headers,
        &payload_hash(&request.body),
    )
    .expect("creq");
    assert!(creq.contains("/model/meta.llama3-70b-instruct-v1%3A0/converse\n"));
    let sts = string_to_sign("20250115T120000Z", &auth.scope(), &creq);
    let key = signing_key(SECRET, &auth.date, &auth.region, &auth.service);
    let authorization = example
        .authorization
        .replace(&auth.signature, &signature(&key, &sts));
    let credentials = Credentials {
        access_key_id: ACCESS_KEY,
        secret_access_key: SECRET,
        session_token: None,
    };
    let now = at("20250115T120000Z");
    // Verified as sent it would pass; the server's view re-encodes the path first.
    assert!(verify(
        &request.signed(),
        &authorization,
        &credentials,
        "bedrock",
        now
    )
    .is_ok());
    request.path = reencode_path(raw_path);
    assert_eq!(
        verify(
            &request.signed(),
            &authorization,
            &credentials,
            "bedrock",
            now
        )
        .map(|_| ()),
        Err(AuthFailure::InvalidSignature(SIGNATURE_MISMATCH.to_owned()))
    );
}
