//! `catalog verify` and the simulated Bedrock control plane checked against botocore's
//! own service model of the `bedrock` service (an excerpt in the simulator's testdata):
//! every request verify sends must be an operation of the model with its HTTP method,
//! URI template, path labels and query parameters (by their wire names), and every
//! answer of the simulator must have only the members of the operation's output shape,
//! with the model's JSON types and its required members, or be an error the model lists
//! for that operation, with that error's HTTP status. The checker reads the model as
//! plain JSON; it shares nothing with the gateway's Bedrock adapter.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use gammainfra::config::{BedrockAuthConfig, BedrockConfig, Config, Secret};
use gammainfra::simulators::{self, BedrockSimConfig, BedrockSimModel, Simulator};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value};

use crate::harness::{AWS_KEY, AWS_SECRET};

const MODEL: &str = include_str!(
    "../../crates/simulators/src/simulators/bedrock/testdata/botocore_bedrock_control_plane.json"
);

/// Enum values the service sends beyond the model's list (AWS's enums are open: the SDKs
/// accept values they do not know). GetFoundationModel reports `INFERENCE_PROFILE` for a
/// model that is invocable only through an inference profile; botocore's `InferenceType`
/// lists only `ON_DEMAND` and `PROVISIONED`.
const OPEN_ENUM_VALUES: &[(&str, &str)] = &[("InferenceType", "INFERENCE_PROFILE")];

/// One request as it went through the recording proxy, with the simulator's answer.
#[derive(Debug, Clone)]
struct Exchange {
    method: String,
    /// The path as sent (still percent-encoded).
    path: String,
    query: String,
    request_body: Bytes,
    status: u16,
    error_type: Option<String>,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Exchange>>>;

/// A proxy in front of `upstream` that records every exchange; returns its base URL.
async fn recording_proxy(upstream: String) -> (String, Log) {
    let log: Log = Arc::default();
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let recorded = log.clone();
    let app = axum::Router::new().fallback(move |request: Request| {
        let client = client.clone();
        let upstream = upstream.clone();
        let log = recorded.clone();
        async move {
            let (parts, body) = request.into_parts();
            let request_body = body.collect().await.expect("request body").to_bytes();
            let path_and_query = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            let mut forward = hyper::Request::builder()
                .method(parts.method.clone())
                .uri(format!("{upstream}{path_and_query}"));
            // The Host header too: it is signed.
            for (name, value) in &parts.headers {
                forward = forward.header(name, value);
            }
            let forward = forward
                .body(Full::new(request_body.clone()))
                .expect("request");
            let answer = client.request(forward).await.expect("simulator answers");
            let (answer_parts, answer_body) = answer.into_parts();
            let body = answer_body.collect().await.expect("answer body").to_bytes();
            log.lock().expect("log").push(Exchange {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().unwrap_or_default().to_owned(),
                request_body,
                status: answer_parts.status.as_u16(),
                error_type: answer_parts
                    .headers
                    .get("x-amzn-errortype")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                body: body.clone(),
            });
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = answer_parts.status;
            *response.headers_mut() = answer_parts.headers;
            response
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, log)
}

/// The two planted mistakes of the Bedrock tests: a profile-only model called by its
/// bare ID, and an on-demand model called through a profile it does not have. verify
/// looks both up, gets a ResourceNotFoundException for the second and lists the
/// region's profiles to suggest the right form.
const PLANTED: &str = r#"
[[models]]
id = "test/wrong-form"
name = "Wrong form"
owned_by = "test"
context_window = 100000
max_output_tokens = 1000
bedrock_profile = "optional"

[[models.endpoints]]
provider = "bedrock"
upstream_id = "anthropic.claude-sonnet-4-6"
invocation = "on_demand"
region = "us-east-1"
verified = { date = "2026-11-25", method = "planted mistake" }
pricing = { input = "1", output = "1", source = { kind = "provider", url = "https://example.com/test-prices", read = "2026-11-25" } }

[[models]]
id = "test/wrong-prefix"
name = "Wrong prefix"
owned_by = "test"
context_window = 100000
max_output_tokens = 1000
bedrock_profile = "optional"

[[models.endpoints]]
provider = "bedrock"
upstream_id = "us.mistral.mistral-large-2402-v1:0"
invocation = "profile"
geography = "us"
source_region = "us-east-1"
verified = { date = "2026-11-25", method = "planted mistake" }
pricing = { input = "1", output = "1", source = { kind = "provider", url = "https://example.com/test-prices", read = "2026-11-25" } }
"#;

/// Runs `catalog verify` (no invocations) for us-east-1 against `sim` through the
/// recording proxy; returns what went over the wire.
async fn verify_through_proxy(sim: &Simulator) -> Vec<Exchange> {
    let (proxy, log) = recording_proxy(sim.base_url()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog_path = dir.path().join("catalog.toml");
    std::fs::write(
        &catalog_path,
        format!("{}\n{PLANTED}", gammainfra::catalog::DEFAULT_CATALOG),
    )
    .expect("write catalog");
    let mut config = Config::load(None, &|_| None).expect("config");
    config.bedrock = Some(BedrockConfig {
        regions: vec!["us-east-1".into()],
        endpoint_url: Some(sim.base_url()),
        control_endpoint_url: Some(proxy),
        auth: BedrockAuthConfig::Static {
            access_key_id: AWS_KEY.into(),
            secret_access_key: Secret::new(AWS_SECRET),
            session_token: None,
        },
        allow_private_image_urls: false,
    });
    config.catalog_path = Some(catalog_path);
    let catalog = gammainfra::gateway::load_catalog(&config).expect("catalog");
    let rows = gammainfra::verify::verify(&catalog, &config, false)
        .await
        .expect("verify");
    assert!(!rows.is_empty());
    let exchanges = log.lock().expect("log").clone();
    exchanges
}

/// What was observed, per operation, for the final coverage assertions.
#[derive(Debug, Default)]
struct Seen {
    ok: Vec<String>,
    errors: Vec<String>,
    query_parameters: Vec<String>,
}

#[tokio::test]
async fn verify_and_the_simulated_control_plane_follow_botocores_service_model() {
    let model = ServiceModel::new();
    assert_eq!(model.v["metadata"]["signingName"], "bedrock");
    assert_eq!(model.v["metadata"]["protocol"], "rest-json");

    // An account with more than one page of system-defined profiles in us-east-1 (verify
    // asks for 1000 a page), so that verify follows a nextToken.
    let mut config = BedrockSimConfig::new(AWS_KEY, AWS_SECRET);
    for i in 0..1001 {
        config.models.push(BedrockSimModel {
            id: format!("test.padding-{i:04}-v1:0"),
            on_demand: false,
            profiles: vec!["us".into()],
            name: format!("Padding {i}"),
            provider: "Test".into(),
        });
    }
    let sim = simulators::start_bedrock(config).await.expect("sim");
    let mut exchanges = verify_through_proxy(&sim).await;

    // An account without model access in us-east-1: every lookup is refused.
    let mut denied = BedrockSimConfig::new(AWS_KEY, AWS_SECRET);
    denied.accessible_regions = vec!["eu-central-1".into()];
    let denied = simulators::start_bedrock(denied).await.expect("sim");
    exchanges.extend(verify_through_proxy(&denied).await);

    let mut seen = Seen::default();
    let mut problems = Vec::new();
    for x in &exchanges {
        let at = format!("{} {}?{}", x.method, x.path, x.query);
        let Some((name, op)) = model.operation_for(&x.method, &x.path) else {
            problems.push(format!(
                "{at}: no operation of the model has this method and URI"
            ));
            continue;
        };
        let mut p = Vec::new();
        model.check_request(op, x, &mut seen, &mut p);
        model.check_response(name, op, x, &mut seen, &mut p);
        problems.extend(p.into_iter().map(|m| format!("{name} ({at}): {m}")));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Every operation of the excerpt was exercised, with the answers that matter.
    for op in [
        "ListInferenceProfiles",
        "GetInferenceProfile",
        "GetFoundationModel",
    ] {
        assert!(seen.ok.iter().any(|o| o == op), "{op} answered: {seen:?}");
    }
    for e in [
        "GetInferenceProfile ResourceNotFoundException",
        "GetInferenceProfile AccessDeniedException",
        "GetFoundationModel AccessDeniedException",
    ] {
        assert!(seen.errors.iter().any(|o| o == e), "{e}: {seen:?}");
    }
    for q in ["maxResults", "type", "nextToken"] {
        assert!(
            seen.query_parameters.iter().any(|o| o == q),
            "{q} sent: {seen:?}"
        );
    }
}

/// The checker itself catches what it is for: a parameter sent by its member name
/// instead of its wire name, an unknown member, a wrong JSON type, a missing required
/// member and an error the operation does not list.
#[test]
fn the_checker_finds_the_mistakes_it_is_for() {
    let model = ServiceModel::new();
    let exchange = |method: &str, path: &str, query: &str, status: u16, body: &str| Exchange {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        request_body: Bytes::new(),
        status,
        error_type: None,
        body: Bytes::from(body.to_owned()),
    };
    let check = |x: &Exchange| {
        let (name, op) = model
            .operation_for(&x.method, &x.path)
            .expect("an operation");
        let mut p = Vec::new();
        let mut seen = Seen::default();
        model.check_request(op, x, &mut seen, &mut p);
        model.check_response(name, op, x, &mut seen, &mut p);
        p
    };
    let good = exchange(
        "GET",
        "/inference-profiles",
        "maxResults=1000&type=SYSTEM_DEFINED",
        200,
        r#"{"inferenceProfileSummaries":[]}"#,
    );
    assert_eq!(check(&good), Vec::<String>::new());
    let p = check(&exchange(
        "GET",
        "/inference-profiles",
        "typeEquals=SYSTEM_DEFINED&maxResults=0",
        200,
        r#"{"inferenceProfileSummaries":{},"extra":1}"#,
    ));
    let all = p.join("\n");
    assert!(all.contains("`typeEquals`"), "{all}");
    assert!(all.contains("`maxResults`"), "{all}");
    assert!(all.contains("extra"), "{all}");
    assert!(all.contains("inferenceProfileSummaries"), "{all}");
    let p = check(&exchange(
        "GET",
        "/foundation-models/meta.llama3-70b-instruct-v1:0",
        "",
        200,
        r#"{"modelDetails":{"modelId":"m","responseStreamingSupported":"yes"}}"#,
    ));
    let all = p.join("\n");
    assert!(all.contains("modelArn"), "{all}");
    assert!(all.contains("responseStreamingSupported"), "{all}");
    assert!(all.contains("percent-encoded"), "{all}");
    let mut conflict = exchange(
        "GET",
        "/inference-profiles/us.x",
        "",
        409,
        r#"{"message":"no"}"#,
    );
    conflict.error_type = Some("ConflictException:http://internal.amazon.com/coral/".into());
    let all = check(&conflict).join("\n");
    assert!(all.contains("ConflictException"), "{all}");
}

/// botocore's service model (the excerpt), read as plain JSON.
struct ServiceModel {
    v: Value,
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Whether `raw` is percent-encoded as botocore encodes a URI label or a query value:
/// only unreserved characters are left as they are.
fn fully_encoded(raw: &str) -> bool {
    raw.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b))
}

impl ServiceModel {
    fn new() -> Self {
        let v: Value = serde_json::from_str(MODEL).expect("the model excerpt is JSON");
        assert!(v["_source"]
            .as_str()
            .is_some_and(|s| s.contains("botocore")));
        ServiceModel { v }
    }

    fn shape(&self, name: &str) -> &Value {
        let s = &self.v["shapes"][name];
        assert!(s.is_object(), "shape {name} is in the excerpt");
        s
    }

    fn members(&self, shape: &str) -> &Map<String, Value> {
        self.shape(shape)["members"]
            .as_object()
            .unwrap_or_else(|| panic!("{shape} is a structure"))
    }

    /// The operation whose method and URI template match a request, by name.
    fn operation_for(&self, method: &str, path: &str) -> Option<(&str, &Value)> {
        let ops = self.v["operations"].as_object()?;
        ops.iter()
            .find(|(_, op)| {
                op["http"]["method"] == method
                    && template_labels(op["http"]["requestUri"].as_str().unwrap_or(""), path)
                        .is_some()
            })
            .map(|(name, op)| (name.as_str(), op))
    }

    fn check_request(&self, op: &Value, x: &Exchange, seen: &mut Seen, p: &mut Vec<String>) {
        let input = op["input"]["shape"].as_str().expect("input shape");
        let members = self.members(input);
        let template = op["http"]["requestUri"].as_str().expect("requestUri");
        let labels = template_labels(template, &x.path).unwrap_or_default();
        let mut present = Vec::new();
        for (label, raw) in labels {
            let Some((member, m)) = members
                .iter()
                .find(|(_, m)| m["location"] == "uri" && m["locationName"] == label.as_str())
            else {
                p.push(format!(
                    "URI label {{{label}}} is no `uri` member of {input}"
                ));
                continue;
            };
            present.push(member.clone());
            if !fully_encoded(&raw) {
                p.push(format!(
                    "URI label {label} = {raw:?} is not percent-encoded as botocore encodes it"
                ));
            }
            match percent_decode(&raw) {
                Some(value) => {
                    let shape = m["shape"].as_str().expect("shape");
                    self.check_text(shape, &value, &format!("{{{label}}}"), p);
                }
                None => p.push(format!("URI label {label} = {raw:?} is not valid encoding")),
            }
        }
        let mut names = Vec::new();
        for pair in x.query.split('&').filter(|s| !s.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key).unwrap_or_default();
            if names.contains(&key) {
                p.push(format!("query parameter `{key}` sent twice"));
            }
            names.push(key.clone());
            let Some((member, m)) = members
                .iter()
                .find(|(_, m)| m["location"] == "querystring" && m["locationName"] == key.as_str())
            else {
                p.push(format!(
                    "query parameter `{key}` is no `querystring` member of {input} (its wire names: {})",
                    members
                        .values()
                        .filter(|m| m["location"] == "querystring")
                        .filter_map(|m| m["locationName"].as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                continue;
            };
            present.push(member.clone());
            seen.query_parameters.push(key.clone());
            if !fully_encoded(raw) {
                p.push(format!(
                    "query parameter `{key}` = {raw:?} is not percent-encoded"
                ));
            }
            match percent_decode(raw) {
                Some(value) => {
                    let shape = m["shape"].as_str().expect("shape");
                    self.check_text(shape, &value, &format!("`{key}`"), p);
                }
                None => p.push(format!(
                    "query parameter `{key}` = {raw:?} is not valid encoding"
                )),
            }
        }
        for required in self.shape(input)["required"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let required = required.as_str().unwrap_or_default();
            if !present.iter().any(|m| m == required) {
                p.push(format!("required member {required} of {input} not sent"));
            }
        }
        let has_body_members = members
            .values()
            .any(|m| m.get("location").is_none() || m["location"].is_null());
        if !has_body_members && !x.request_body.is_empty() {
            p.push(format!("{input} has no body members, yet a body was sent"));
        }
    }

    /// A label or query value (text on the wire) against its shape.
    fn check_text(&self, shape_name: &str, value: &str, at: &str, p: &mut Vec<String>) {
        let shape = self.shape(shape_name);
        match shape["type"].as_str().unwrap_or("") {
            "string" => self.check_string(shape_name, value, at, p),
            "integer" | "long" => match value.parse::<i64>() {
                Ok(n) => check_range(shape, n, at, p),
                Err(_) => p.push(format!("{at} = {value:?} is not an integer ({shape_name})")),
            },
            "boolean" => {
                if value != "true" && value != "false" {
                    p.push(format!("{at} = {value:?} is not a boolean ({shape_name})"));
                }
            }
            other => p.push(format!(
                "{at}: {shape_name} is a {other}, not checked as text"
            )),
        }
    }

    /// A string on the wire of a request: its enum and its length bounds.
    fn check_string(&self, shape_name: &str, value: &str, at: &str, p: &mut Vec<String>) {
        let shape = self.shape(shape_name);
        self.check_enum(shape_name, value, at, p);
        let len = i64::try_from(value.chars().count()).unwrap_or(i64::MAX);
        if shape["min"].as_i64().is_some_and(|min| len < min)
            || shape["max"].as_i64().is_some_and(|max| len > max)
        {
            p.push(format!(
                "{at}: length {len} outside {shape_name}'s {}..{}",
                shape["min"], shape["max"]
            ));
        }
    }

    fn check_enum(&self, shape_name: &str, value: &str, at: &str, p: &mut Vec<String>) {
        if let Some(allowed) = self.shape(shape_name)["enum"].as_array() {
            let open = OPEN_ENUM_VALUES.contains(&(shape_name, value));
            if !open && !allowed.iter().any(|a| a == value) {
                p.push(format!(
                    "{at} = {value:?} is not in the enum of {shape_name}: {allowed:?}"
                ));
            }
        }
    }

    fn check_response(
        &self,
        name: &str,
        op: &Value,
        x: &Exchange,
        seen: &mut Seen,
        p: &mut Vec<String>,
    ) {
        let body: Value = match serde_json::from_slice(&x.body) {
            Ok(v) => v,
            Err(e) => {
                p.push(format!("answer {} is not JSON: {e}", x.status));
                return;
            }
        };
        if (200..300).contains(&x.status) {
            let expected = op["http"]["responseCode"].as_u64().unwrap_or(200);
            if u64::from(x.status) != expected {
                p.push(format!("status {} instead of {expected}", x.status));
            }
            let output = op["output"]["shape"].as_str().expect("output shape");
            self.check_value(output, &body, output, p);
            seen.ok.push(name.to_owned());
            return;
        }
        // rest-json errors: botocore takes the code from x-amzn-errortype (up to the
        // first ':'), else from the body's `__type` or `code`.
        let code = x
            .error_type
            .as_deref()
            .or(body["__type"].as_str())
            .or(body["code"].as_str())
            .map(|c| c.split(':').next().unwrap_or(c))
            .map(|c| c.rsplit('#').next().unwrap_or(c).to_owned());
        let Some(code) = code else {
            p.push(format!("error {} without an error code", x.status));
            return;
        };
        let listed = op["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["shape"] == code.as_str());
        if !listed {
            p.push(format!(
                "error {code} (status {}) is not among the operation's errors {}",
                x.status, op["errors"]
            ));
            return;
        }
        let status = self.shape(&code)["error"]["httpStatusCode"].as_u64();
        if status != Some(u64::from(x.status)) {
            p.push(format!(
                "error {code} answered with status {}, the model says {status:?}",
                x.status
            ));
        }
        self.check_value(&code, &body, &code, p);
        seen.errors.push(format!("{name} {code}"));
    }

    /// A JSON body value against a shape: the member names, JSON types, required
    /// members and enums. Not the length and count bounds: in AWS's models they are the
    /// service's input validation, which its own answers exceed (the real `modelName` of
    /// `mistral.mistral-large-2402-v1:0`, `Mistral Large (24.02)`, is 21 characters long;
    /// `BrandedName` allows 20), so they are checked on requests only.
    fn check_value(&self, shape_name: &str, v: &Value, at: &str, p: &mut Vec<String>) {
        self.check_member(shape_name, None, v, at, p);
    }

    fn check_member(
        &self,
        shape_name: &str,
        member: Option<&Value>,
        v: &Value,
        at: &str,
        p: &mut Vec<String>,
    ) {
        let shape = self.shape(shape_name);
        let kind = shape["type"].as_str().unwrap_or("");
        let wrong = |p: &mut Vec<String>, what: &str| {
            p.push(format!("{at} should be {what} ({shape_name}), is {v}"));
        };
        match kind {
            "structure" => {
                let Some(object) = v.as_object() else {
                    return wrong(p, "an object");
                };
                let members = self.members(shape_name);
                for (key, value) in object {
                    let found = members.iter().find(|(name, m)| {
                        m["location"].is_null()
                            && m["jsonName"].as_str().unwrap_or(name.as_str()) == key
                    });
                    match found {
                        Some((_, m)) => {
                            let s = m["shape"].as_str().expect("member shape");
                            self.check_member(s, Some(m), value, &format!("{at}.{key}"), p);
                        }
                        None => p.push(format!("{at}.{key} is no member of {shape_name}")),
                    }
                }
                for required in shape["required"].as_array().into_iter().flatten() {
                    let required = required.as_str().unwrap_or_default();
                    let m = &members[required];
                    if !m["location"].is_null() {
                        continue;
                    }
                    let key = m["jsonName"].as_str().unwrap_or(required);
                    if object.get(key).is_none_or(Value::is_null) {
                        p.push(format!("{at}.{key} is required by {shape_name}, missing"));
                    }
                }
            }
            "list" => {
                let Some(items) = v.as_array() else {
                    return wrong(p, "an array");
                };
                let item = shape["member"]["shape"].as_str().expect("list member");
                for (i, value) in items.iter().enumerate() {
                    self.check_member(item, None, value, &format!("{at}[{i}]"), p);
                }
            }
            "map" => {
                let Some(object) = v.as_object() else {
                    return wrong(p, "an object (map)");
                };
                let item = shape["value"]["shape"].as_str().expect("map value");
                for (key, value) in object {
                    self.check_member(item, None, value, &format!("{at}.{key}"), p);
                }
            }
            "string" => match v.as_str() {
                Some(s) => self.check_enum(shape_name, s, at, p),
                None => wrong(p, "a string"),
            },
            "integer" | "long" => {
                if v.as_i64().is_none() {
                    wrong(p, "an integer");
                }
            }
            "float" | "double" => {
                if !v.is_number() {
                    wrong(p, "a number");
                }
            }
            "boolean" => {
                if !v.is_boolean() {
                    wrong(p, "a boolean");
                }
            }
            "blob" => {
                if !v.is_string() {
                    wrong(p, "a base64 string");
                }
            }
            "timestamp" => {
                // In a rest-json body a timestamp is epoch seconds unless the member or
                // its shape names another format.
                let format = member
                    .and_then(|m| m["timestampFormat"].as_str())
                    .or(shape["timestampFormat"].as_str())
                    .unwrap_or("unixTimestamp");
                let ok = match format {
                    "iso8601" => v.as_str().is_some_and(|s| {
                        time::OffsetDateTime::parse(
                            s,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .is_ok()
                    }),
                    "unixTimestamp" => v.is_number(),
                    "rfc822" => v.is_string(),
                    _ => false,
                };
                if !ok {
                    wrong(p, &format!("a {format} timestamp"));
                }
            }
            "document" => {}
            other => p.push(format!("{at}: {shape_name} has type {other}, unknown here")),
        }
    }
}

fn check_range(shape: &Value, n: i64, at: &str, p: &mut Vec<String>) {
    if shape["min"].as_i64().is_some_and(|min| n < min)
        || shape["max"].as_i64().is_some_and(|max| n > max)
    {
        p.push(format!(
            "{at} = {n} outside {}..{}",
            shape["min"], shape["max"]
        ));
    }
}

/// The labels of `template` (`/a/{b}`, `{b+}` greedy) in `path` with their raw values,
/// or None when the path does not fit the template.
fn template_labels(template: &str, path: &str) -> Option<Vec<(String, String)>> {
    let template = template.split('?').next().unwrap_or(template);
    let t: Vec<&str> = template.split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    let mut labels = Vec::new();
    for (i, part) in t.iter().enumerate() {
        if let Some(label) = part.strip_prefix('{').and_then(|l| l.strip_suffix('}')) {
            if let Some(greedy) = label.strip_suffix('+') {
                let rest = s.get(i..)?.join("/");
                if rest.is_empty() || i + 1 != t.len() {
                    return None;
                }
                labels.push((greedy.to_owned(), rest));
                return Some(labels);
            }
            let value = s.get(i)?;
            if value.is_empty() {
                return None;
            }
            labels.push((label.to_owned(), (*value).to_owned()));
        } else if s.get(i) != Some(part) {
            return None;
        }
    }
    (s.len() == t.len()).then_some(labels)
}
