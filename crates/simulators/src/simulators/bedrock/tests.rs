//! HTTP-level tests of the simulated Bedrock, signing requests like an SDK would.

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::sigv4::{
    canonical_request, format_amz_date, payload_hash, signature, signing_key, string_to_sign,
    uri_encode, SignedRequest, SIGNATURE_MISMATCH,
};
use crate::simulators::test_client::{send, TestResponse};
use crate::simulators::{start_bedrock, BedrockSimConfig, Simulator};

const AKID: &str = "AKIDSIMULATOR";
const SECRET: &str = "sim/secret+key";
const ON_DEMAND_TEXT: &str = "Invocation of model ID anthropic.claude-sonnet-4-6 with on-demand throughput isn\u{2019}t supported. Retry your request with the ID or ARN of an inference profile that contains this model.";

/// How a test request authenticates.
struct Signer {
    access_key: &'static str,
    secret: &'static str,
    token: Option<&'static str>,
    region: &'static str,
    service: &'static str,
    at: OffsetDateTime,
}

impl Signer {
    fn new(region: &'static str) -> Self {
        Signer {
            access_key: AKID,
            secret: SECRET,
            token: None,
            region,
            service: "bedrock",
            at: OffsetDateTime::now_utc(),
        }
    }

    /// The request headers, `Authorization` included, for a request signed over
    /// `path` (as the client signs it) with `query`.
    fn headers(
        &self,
        sim: &Simulator,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> Vec<(String, String)> {
        let amz_date = format_amz_date(self.at);
        let mut headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("host".to_owned(), sim.addr().to_string()),
            ("x-amz-date".to_owned(), amz_date.clone()),
        ];
        if let Some(token) = self.token {
            headers.push(("x-amz-security-token".to_owned(), token.to_owned()));
        }
        let signed_headers: Vec<String> = headers.iter().map(|(n, _)| n.clone()).collect();
        let request = SignedRequest {
            method,
            path,
            query,
            headers: &headers,
            body,
        };
        let creq = canonical_request(&request, &signed_headers, &payload_hash(body))
            .expect("canonical request");
        let date = &amz_date[..8];
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let sts = string_to_sign(&amz_date, &scope, &creq);
        let key = signing_key(self.secret, date, self.region, self.service);
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={}, Signature={}",
            self.access_key,
            signed_headers.join(";"),
            signature(&key, &sts)
        );
        headers.push(("authorization".to_owned(), authorization));
        headers
    }
}

async fn send_with(
    sim: &Simulator,
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> TestResponse {
    let url = format!("{}{path_and_query}", sim.base_url());
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    send(method, &url, &refs, body.to_vec()).await
}

fn model_path(model_id: &str, operation: &str) -> String {
    format!(
        "/model/{}/{operation}",
        uri_encode(model_id.as_bytes(), false)
    )
}

async fn converse_as(
    signer: &Signer,
    sim: &Simulator,
    model_id: &str,
    body: &Value,
) -> TestResponse {
    let path = model_path(model_id, "converse");
    let body = body.to_string().into_bytes();
    let headers = signer.headers(sim, "POST", &path, "", &body);
    send_with(sim, "POST", &path, &headers, &body).await
}

async fn converse(sim: &Simulator, model_id: &str, body: &Value) -> TestResponse {
    converse_as(&Signer::new("us-east-1"), sim, model_id, body).await
}

pub(super) async fn converse_stream(sim: &Simulator, model_id: &str, body: &Value) -> TestResponse {
    let path = model_path(model_id, "converse-stream");
    let body = body.to_string().into_bytes();
    let headers = Signer::new("us-east-1").headers(sim, "POST", &path, "", &body);
    send_with(sim, "POST", &path, &headers, &body).await
}

async fn control(sim: &Simulator, region: &'static str, path: &str, query: &str) -> TestResponse {
    let headers = Signer::new(region).headers(sim, "GET", path, query, b"");
    let target = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    send_with(sim, "GET", &target, &headers, b"").await
}

pub(super) fn user(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": [{"text": text}]}]})
}

pub(super) const SONNET: &str = "us.anthropic.claude-sonnet-4-6";

pub(super) async fn start() -> Simulator {
    start_bedrock(BedrockSimConfig::new(AKID, SECRET))
        .await
        .expect("start")
}

/// Checks an AWS error response; returns its message.
pub(super) fn assert_aws_error(response: &TestResponse, status: u16, code: &str) -> String {
    assert_eq!(response.status, status, "{}", response.text());
    let error_type = response
        .header("x-amzn-errortype")
        .expect("x-amzn-ErrorType");
    let (name, namespace) = error_type.split_once(':').expect("namespaced error type");
    assert_eq!(name, code, "{}", response.text());
    assert!(namespace.starts_with("http://internal.amazon.com/coral/"));
    assert!(response
        .header("x-amzn-requestid")
        .is_some_and(|id| id.len() == 36));
    let body = response.json();
    body.get("message")
        .or_else(|| body.get("Message"))
        .and_then(Value::as_str)
        .expect("message")
        .to_owned()
}

#[tokio::test]
async fn converse_with_sigv4() {
    let sim = start().await;
    assert_eq!(sim.base_url(), format!("http://{}", sim.addr()));
    let response = converse(&sim, SONNET, &user("Hello  there")).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.header("x-amzn-requestid").is_some());
    let body = response.json();
    assert_eq!(body["output"]["message"]["role"], "assistant");
    assert_eq!(
        body["output"]["message"]["content"],
        json!([{"text": "Simulated reply to: Hello there"}])
    );
    assert_eq!(body["stopReason"], "end_turn");
    // 2 words + 3 for the message; 5 output words.
    assert_eq!(
        body["usage"],
        json!({"inputTokens": 5, "outputTokens": 5, "totalTokens": 10,
               "cacheReadInputTokens": 0, "cacheWriteInputTokens": 0})
    );
    assert!(body["metrics"]["latencyMs"].is_u64());

    let meta = converse(&sim, "meta.llama3-70b-instruct-v1:0", &user("hi")).await;
    assert_eq!(meta.status, 200, "{}", meta.text());
    let recorded = sim.requests();
    assert_eq!(recorded.len(), 2);
    assert_eq!(
        recorded[1].path,
        "/model/meta.llama3-70b-instruct-v1%3A0/converse"
    );
    assert_eq!(
        recorded[1].decoded_model_id().as_deref(),
        Some("meta.llama3-70b-instruct-v1:0")
    );
    assert_eq!(recorded[1].signing_region().as_deref(), Some("us-east-1"));
}

#[tokio::test]
async fn sigv4_failures() {
    let sim = start().await;
    let body = user("hi").to_string().into_bytes();
    let path = model_path(SONNET, "converse");

    let missing = send_with(&sim, "POST", &path, &[], &body).await;
    let message = assert_aws_error(&missing, 403, "AccessDeniedException");
    assert_eq!(message, "Authorization header is missing");
    assert_eq!(
        missing.json(),
        json!({"Message": "Authorization header is missing"})
    );

    let unknown = Signer {
        access_key: "AKIDUNKNOWN",
        ..Signer::new("us-east-1")
    };
    let response = converse_as(&unknown, &sim, SONNET, &user("hi")).await;
    let message = assert_aws_error(&response, 403, "UnrecognizedClientException");
    assert_eq!(
        message,
        "The security token included in the request is invalid."
    );

    let wrong_secret = Signer {
        secret: "not-the-secret",
        ..Signer::new("us-east-1")
    };
    let response = converse_as(&wrong_secret, &sim, SONNET, &user("hi")).await;
    assert_eq!(
        assert_aws_error(&response, 403, "InvalidSignatureException"),
        SIGNATURE_MISMATCH
    );

    let stale = Signer {
        at: OffsetDateTime::now_utc() - time::Duration::minutes(10),
        ..Signer::new("us-east-1")
    };
    let response = converse_as(&stale, &sim, SONNET, &user("hi")).await;
    let message = assert_aws_error(&response, 403, "InvalidSignatureException");
    assert!(message.starts_with("Signature expired: "), "{message}");
    assert!(message.ends_with(" - 5 min.)"), "{message}");

    let runtime_name = Signer {
        service: "bedrock-runtime",
        ..Signer::new("us-east-1")
    };
    let response = converse_as(&runtime_name, &sim, SONNET, &user("hi")).await;
    let message = assert_aws_error(&response, 403, "InvalidSignatureException");
    assert_eq!(
        message,
        "Credential should be scoped to correct service: 'bedrock'. "
    );

    // Body changed after signing.
    let headers = Signer::new("us-east-1").headers(&sim, "POST", &path, "", &body);
    let response = send_with(&sim, "POST", &path, &headers, br#"{"messages":[]}"#).await;
    assert_aws_error(&response, 403, "InvalidSignatureException");

    // A raw `:` in the path, signed as sent: the server's canonical form differs.
    let raw = "/model/meta.llama3-70b-instruct-v1:0/converse";
    let headers = Signer::new("us-east-1").headers(&sim, "POST", raw, "", &body);
    let response = send_with(&sim, "POST", raw, &headers, &body).await;
    assert_eq!(
        assert_aws_error(&response, 403, "InvalidSignatureException"),
        SIGNATURE_MISMATCH
    );

    let response = send_with(
        &sim,
        "POST",
        &path,
        &[(
            "authorization".to_owned(),
            "AWS4-HMAC-SHA256 Credential=x".to_owned(),
        )],
        &body,
    )
    .await;
    assert_aws_error(&response, 403, "IncompleteSignatureException");
}

#[tokio::test]
async fn session_token_is_required_when_configured() {
    let config = BedrockSimConfig {
        session_token: Some("session/token=".to_owned()),
        ..BedrockSimConfig::new(AKID, SECRET)
    };
    let sim = start_bedrock(config).await.expect("start");
    let response = converse(&sim, SONNET, &user("hi")).await;
    assert_aws_error(&response, 403, "UnrecognizedClientException");
    let signer = Signer {
        token: Some("session/token="),
        ..Signer::new("us-east-1")
    };
    let response = converse_as(&signer, &sim, SONNET, &user("hi")).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let wrong = Signer {
        token: Some("other"),
        ..Signer::new("us-east-1")
    };
    let response = converse_as(&wrong, &sim, SONNET, &user("hi")).await;
    assert_aws_error(&response, 403, "UnrecognizedClientException");
}

#[tokio::test]
async fn bearer_token_auth() {
    let examples: Value =
        serde_json::from_str(include_str!("testdata/bearer_token_examples.json")).expect("JSON");
    let wire = &examples["bearer_request_example"];
    let authorization = wire["headers"]["Authorization"].as_str().expect("header");
    let token = authorization.strip_prefix("Bearer ").expect("bearer");
    let config = BedrockSimConfig {
        bearer_token: Some(token.to_owned()),
        accessible_regions: vec!["eu-west-1".to_owned(), "us-east-1".to_owned()],
        ..BedrockSimConfig::new(AKID, SECRET)
    };
    let sim = start_bedrock(config).await.expect("start");
    let url = wire["url"].as_str().expect("url");
    let path = &url[url.find("/model/").expect("path")..];
    let body = wire["body"].as_str().expect("body").as_bytes();
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("authorization".to_owned(), authorization.to_owned()),
    ];
    // The example's model (Claude 3.5 Haiku) is not in the default table.
    let response = send_with(&sim, "POST", path, &headers, body).await;
    assert_eq!(
        assert_aws_error(&response, 400, "ValidationException"),
        "The provided model identifier is invalid."
    );
    // The token was minted for us-east-1: a `us.` profile works, an `eu.` one does not.
    let sonnet = model_path(SONNET, "converse");
    let response = send_with(&sim, "POST", &sonnet, &headers, body).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let eu = model_path("eu.anthropic.claude-sonnet-4-6", "converse");
    let response = send_with(&sim, "POST", &eu, &headers, body).await;
    assert_aws_error(&response, 400, "ValidationException");

    let wrong = vec![("authorization".to_owned(), "Bearer ABSKwrong".to_owned())];
    let response = send_with(&sim, "POST", &sonnet, &wrong, body).await;
    let message = assert_aws_error(&response, 403, "AccessDeniedException");
    assert_eq!(
        message,
        "Authentication failed: Please make sure your API Key is valid."
    );
    assert_eq!(sim.requests()[0].signing_region(), None);
}

#[tokio::test]
async fn model_identifier_rules() {
    let config = BedrockSimConfig {
        accessible_regions: vec!["us-east-1".to_owned(), "eu-west-1".to_owned()],
        ..BedrockSimConfig::new(AKID, SECRET)
    };
    let sim = start_bedrock(config).await.expect("start");
    let invalid = "The provided model identifier is invalid.";
    let response = converse(&sim, "anthropic.claude-sonnet-4-6", &user("hi")).await;
    assert_eq!(
        assert_aws_error(&response, 400, "ValidationException"),
        ON_DEMAND_TEXT
    );
    assert!(response.text().contains("isn\\u2019t") || response.text().contains('\u{2019}'));
    for id in [
        "us.meta.llama3-70b-instruct-v1:0",
        "anthropic.claude-nonexistent",
        "eu.anthropic.claude-sonnet-4-6",
        "apac.anthropic.claude-sonnet-4-6",
        "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-sonnet-4-6",
    ] {
        let response = converse(&sim, id, &user("hi")).await;
        assert_eq!(
            assert_aws_error(&response, 400, "ValidationException"),
            invalid,
            "{id}"
        );
    }
    for id in [
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-6",
        "global.anthropic.claude-opus-4-7",
        "us.amazon.nova-2-lite-v1:0",
        "arn:aws:bedrock:us-east-1::foundation-model/mistral.mistral-large-2402-v1:0",
    ] {
        let response = converse(&sim, id, &user("hi")).await;
        assert_eq!(response.status, 200, "{id}: {}", response.text());
    }
    let eu = Signer::new("eu-west-1");
    let response = converse_as(&eu, &sim, "eu.amazon.nova-pro-v1:0", &user("hi")).await;
    assert_eq!(response.status, 200, "{}", response.text());
    // On-demand models are not offered in eu-west-1.
    let response = converse_as(&eu, &sim, "meta.llama3-70b-instruct-v1:0", &user("hi")).await;
    assert_aws_error(&response, 400, "ValidationException");
    // A valid profile from a region without model access.
    let frankfurt = Signer::new("eu-central-1");
    let response = converse_as(
        &frankfurt,
        &sim,
        "eu.anthropic.claude-sonnet-4-6",
        &user("hi"),
    )
    .await;
    let message = assert_aws_error(&response, 403, "AccessDeniedException");
    assert_eq!(
        message,
        "You don't have access to the model with the specified model ID."
    );
    assert_eq!(
        sim.requests()
            .last()
            .and_then(|r| r.signing_region())
            .as_deref(),
        Some("eu-central-1")
    );
}

pub(super) fn tool_config() -> Value {
    json!({"tools": [{"toolSpec": {"name": "get_weather", "description": "Get weather",
        "inputSchema": {"json": {"type": "object"}}}}]})
}

/// (body, expected status, error code, expected message or prefix)
fn invalid_bodies() -> Vec<(Value, u16, &'static str, &'static str)> {
    let text = |t: &str| json!({"text": t});
    let msg = |role: &str, content: Value| json!({"role": role, "content": content});
    let tool_use = json!({"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}});
    let result =
        |id: &str| json!({"toolResult": {"toolUseId": id, "content": [{"text": "sunny"}]}});
    vec![
        (json!({"messages": [msg("user", json!([text("hi")]))], "modelId": "x"}), 400, "ValidationException",
            "Malformed input request: #: extraneous key [modelId] is not permitted"),
        (json!({}), 400, "ValidationException",
            "1 validation error detected: Value null at 'messages' failed to satisfy constraint: Member must not be null"),
        (json!({"messages": []}), 400, "ValidationException",
            "A conversation must start with a user message. Try again with a conversation that starts with a user message."),
        (json!({"messages": [msg("assistant", json!([text("hi")]))]}), 400, "ValidationException",
            "A conversation must start with a user message."),
        (json!({"messages": [msg("user", json!([text("a")])), msg("user", json!([text("b")]))]}), 400,
            "ValidationException", "A conversation must alternate between user and assistant roles."),
        (json!({"messages": [msg("user", json!([]))]}), 400, "ValidationException",
            "The content field in the Message object at messages.0 is empty."),
        (json!({"messages": [msg("user", json!([text("  ")]))]}), 400, "ValidationException",
            "The text field in the ContentBlock object at messages.0.content.0 is blank."),
        (json!({"messages": [msg("user", json!([{"image": {"format": "png", "source": {"bytes": "not base64!"}}}]))]}),
            400, "ValidationException", "Invalid image input at "),
        (json!({"messages": [msg("user", json!([{"image": {"format": "bmp", "source": {"bytes": "aGk="}}}]))]}),
            400, "ValidationException", "1 validation error detected: Value 'bmp' at 'messages.1.member.content.1.member.image.format'"),
        (json!({"messages": [msg("user", json!([text("a")])), msg("assistant", json!([tool_use.clone()])),
            msg("user", json!([result("tooluse_1")]))]}), 400, "ValidationException",
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."),
        (json!({"toolConfig": tool_config(), "messages": [msg("user", json!([text("a")])), msg("assistant", json!([tool_use.clone()])),
            msg("user", json!([text("no result")]))]}), 400, "ValidationException",
            "Expected toolResult blocks at messages.2.content for the following Ids: tooluse_1"),
        (json!({"toolConfig": tool_config(), "messages": [msg("user", json!([text("a")])), msg("assistant", json!([tool_use])),
            msg("user", json!([result("tooluse_1"), result("tooluse_2")]))]}), 400, "ValidationException",
            "The number of toolResult blocks at messages.2.content exceeds the number of toolUse blocks of previous turn."),
        (json!({"messages": [msg("user", json!([text("a")]))], "inferenceConfig": {"maxTokens": 0}}), 400,
            "ValidationException", "1 validation error detected: Value '0' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1"),
        (json!({"messages": [msg("user", json!([text("a")]))], "inferenceConfig": {"temperature": 1.5}}), 400,
            "ValidationException", "1 validation error detected: Value '1.5' at 'inferenceConfig.temperature' failed to satisfy constraint: Member must have value less than or equal to 1"),
        (json!({"messages": [msg("user", json!([text("a")]))], "inferenceConfig": {"topP": -0.5}}), 400,
            "ValidationException", "1 validation error detected: Value '-0.5' at 'inferenceConfig.topP'"),
        (json!({"messages": [msg("user", json!([text("a")]))], "inferenceConfig": {"stopSequences": ["a", "b", "c", "d", "e"]}}),
            400, "ValidationException", "1 validation error detected: Value '[a, b, c, d, e]' at 'inferenceConfig.stopSequences' failed to satisfy constraint: Member must have length less than or equal to 4"),
        (json!({"messages": [msg("user", json!([text("a")]))], "inferenceConfig": {"maxTokens": "ten"}}), 400,
            "SerializationException", "Expected integer at 'inferenceConfig.maxTokens'"),
        (json!({"messages": [msg("user", json!([text("a")]))], "toolConfig": {"tools": []}}), 400,
            "ValidationException", "1 validation error detected: Value '[]' at 'toolConfig.tools'"),
        (json!({"messages": [msg("user", json!([text("a")]))], "toolConfig": {"tools": [{"toolSpec": {"name": "bad name",
            "inputSchema": {"json": {}}}}]}}), 400, "ValidationException",
            "1 validation error detected: Value 'bad name' at 'toolConfig.tools.1.member.toolSpec.name' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+"),
        (json!({"messages": [msg("user", json!([text("a")]))], "toolConfig": {"tools": tool_config()["tools"],
            "toolChoice": {"tool": {"name": "other"}}}}), 400, "ValidationException",
            "The model returned the following errors: Tool 'other' not found in provided tools"),
        (json!({"messages": [msg("user", json!([text("a"), {"cachePoint": {"type": "ephemeral"}}]))]}), 400,
            "ValidationException", "1 validation error detected: Value 'ephemeral' at 'messages.1.member.content.2.member.cachePoint.type'"),
        (json!({"messages": [msg("user", json!([{"text": "a", "image": {}}]))]}), 400, "ValidationException",
            "1 validation error detected: Value at 'messages.1.member.content.1.member' failed to satisfy constraint"),
        (json!({"messages": "hi"}), 400, "SerializationException", "Expected list at 'messages', found string"),
    ]
}

#[tokio::test]
async fn request_validation() {
    let sim = start().await;
    for (body, status, code, expected) in invalid_bodies() {
        let response = converse(&sim, SONNET, &body).await;
        let message = assert_aws_error(&response, status, code);
        assert!(
            message.starts_with(expected),
            "{body}: got {message:?}, want {expected:?}"
        );
    }
    let path = model_path(SONNET, "converse");
    let headers = Signer::new("us-east-1").headers(&sim, "POST", &path, "", b"{not json");
    let response = send_with(&sim, "POST", &path, &headers, b"{not json").await;
    assert_aws_error(&response, 400, "SerializationException");
    let error_type = response.header("x-amzn-errortype").unwrap_or_default();
    assert!(
        error_type.ends_with("com.amazon.coral.service/"),
        "{error_type}"
    );
}

#[tokio::test]
async fn limits_stops_and_tokens() {
    let sim = start().await;
    let mut body = user("one two three");
    body["inferenceConfig"] = json!({"maxTokens": 2, "temperature": 0.2, "topP": 1});
    let response = converse(&sim, SONNET, &body).await.json();
    assert_eq!(
        response["output"]["message"]["content"][0]["text"],
        "Simulated reply"
    );
    assert_eq!(response["stopReason"], "max_tokens");
    assert_eq!(response["usage"]["outputTokens"], 2);

    body["inferenceConfig"] = json!({"stopSequences": ["two"]});
    let response = converse(&sim, SONNET, &body).await.json();
    assert_eq!(
        response["output"]["message"]["content"][0]["text"],
        "Simulated reply to: one"
    );
    assert_eq!(response["stopReason"], "stop_sequence");

    let image = json!({"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}});
    let body = json!({
        "system": [{"text": "Be brief please"}],
        "messages": [
            {"role": "user", "content": [{"text": "first question"}, image]},
            {"role": "assistant", "content": [{"text": "an answer"}]},
            {"role": "user", "content": [{"text": "second"}]},
        ],
    });
    let response = converse(&sim, SONNET, &body).await.json();
    // 3 system + (2 + 85 + 3) + (2 + 3) + (1 + 3)
    assert_eq!(response["usage"]["inputTokens"], 102);
    assert_eq!(
        response["output"]["message"]["content"][0]["text"],
        "Simulated reply to: second"
    );
}

#[tokio::test]
async fn tool_use_and_tool_result() {
    let sim = start().await;
    let mut body = user("weather in Paris");
    body["toolConfig"] = tool_config();
    let response = converse(&sim, SONNET, &body).await.json();
    assert_eq!(response["stopReason"], "tool_use");
    let tool_use = &response["output"]["message"]["content"][0]["toolUse"];
    assert_eq!(tool_use["name"], "get_weather");
    assert_eq!(tool_use["input"], json!({"query": "weather in Paris"}));
    let id = tool_use["toolUseId"].as_str().expect("id");
    assert!(id.starts_with("tooluse_"));

    let follow_up = json!({
        "toolConfig": {"tools": tool_config()["tools"], "toolChoice": {"any": {}}},
        "messages": [
            {"role": "user", "content": [{"text": "weather in Paris"}]},
            {"role": "assistant", "content": [{"toolUse": tool_use.clone()}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": id,
                "content": [{"text": "sunny and warm"}], "status": "success"}}]},
        ],
    });
    let response = converse(&sim, SONNET, &follow_up).await.json();
    assert_eq!(response["stopReason"], "end_turn");
    assert_eq!(
        response["output"]["message"]["content"][0]["text"],
        "Simulated reply to: sunny and warm"
    );
}

#[tokio::test]
async fn cache_points() {
    let sim = start().await;
    let body = json!({
        "system": [{"text": "a long shared system prompt"}, {"cachePoint": {"type": "default"}}],
        "messages": [{"role": "user", "content": [{"text": "question one"}]}],
    });
    let first = converse(&sim, SONNET, &body).await.json();
    assert_eq!(first["usage"]["cacheWriteInputTokens"], 5);
    assert_eq!(first["usage"]["cacheReadInputTokens"], 0);
    assert_eq!(first["usage"]["inputTokens"], 5);
    let mut second_body = body.clone();
    second_body["messages"][0]["content"][0]["text"] = json!("another question here");
    let second = converse(&sim, SONNET, &second_body).await.json();
    assert_eq!(second["usage"]["cacheReadInputTokens"], 5);
    assert_eq!(second["usage"]["cacheWriteInputTokens"], 0);
    assert_eq!(second["usage"]["inputTokens"], 6);
    assert_eq!(
        second["usage"]["totalTokens"],
        6 + 5 + second["usage"]["outputTokens"].as_u64().expect("n")
    );
    // Another model has its own cache.
    let other = converse(&sim, "global.anthropic.claude-sonnet-4-6", &body)
        .await
        .json();
    assert_eq!(other["usage"]["cacheWriteInputTokens"], 5);
}

#[tokio::test]
async fn error_triggers() {
    let sim = start().await;
    for (trigger, status, code, message) in [
        ("[[sim:error 429]]", 429, "ThrottlingException", "Too many tokens, please wait before trying again."),
        ("[[sim:error modelNotReady]]", 429, "ModelNotReadyException", "Model is not ready to serve inference requests."),
        ("[[sim:error 500]]", 500, "InternalServerException", "The system encountered an unexpected error during processing. Try your request again."),
        ("[[sim:error 424]]", 424, "ModelErrorException", "The system encountered an unexpected error during processing. Try your request again."),
        ("[[sim:error 408]]", 408, "ModelTimeoutException", "The request took too long to process. Processing time exceeded the model timeout length."),
    ] {
        let response = converse(&sim, SONNET, &user(&format!("hello {trigger}"))).await;
        assert_eq!(assert_aws_error(&response, status, code), message, "{trigger}");
        assert_eq!(response.json(), json!({"message": message}));
        let error_type = response.header("x-amzn-errortype").unwrap_or_default();
        assert_eq!(error_type, format!("{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"));
    }
}

#[tokio::test]
async fn control_plane() {
    let sim = start().await;
    let response = control(
        &sim,
        "us-east-1",
        "/inference-profiles",
        "type=SYSTEM_DEFINED",
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert!(body.get("nextToken").is_none());
    let summaries = body["inferenceProfileSummaries"].as_array().expect("list");
    let ids: Vec<&str> = summaries
        .iter()
        .filter_map(|s| s["inferenceProfileId"].as_str())
        .collect();
    assert!(ids.contains(&"us.anthropic.claude-sonnet-4-6"));
    assert!(ids.contains(&"global.anthropic.claude-opus-4-7"));
    assert!(ids.contains(&"us.amazon.nova-2-lite-v1:0"));
    assert!(!ids
        .iter()
        .any(|id| id.starts_with("eu.") || id.starts_with("apac.")));
    let sonnet = summaries
        .iter()
        .find(|s| s["inferenceProfileId"] == "us.anthropic.claude-sonnet-4-6")
        .expect("sonnet profile");
    assert_eq!(
        sonnet["inferenceProfileArn"],
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-6"
    );
    assert_eq!(sonnet["status"], "ACTIVE");
    assert_eq!(sonnet["type"], "SYSTEM_DEFINED");
    assert_eq!(sonnet["models"].as_array().map(Vec::len), Some(3));

    // Paging.
    let first = control(&sim, "us-east-1", "/inference-profiles", "maxResults=4")
        .await
        .json();
    assert_eq!(
        first["inferenceProfileSummaries"].as_array().map(Vec::len),
        Some(4)
    );
    let token = first["nextToken"].as_str().expect("nextToken");
    let query = format!(
        "maxResults=4&nextToken={}",
        uri_encode(token.as_bytes(), false)
    );
    let second = control(&sim, "us-east-1", "/inference-profiles", &query)
        .await
        .json();
    assert_ne!(
        second["inferenceProfileSummaries"][0],
        first["inferenceProfileSummaries"][0]
    );
    assert_eq!(second["inferenceProfileSummaries"][0], summaries[4]);
    let apps = control(&sim, "us-east-1", "/inference-profiles", "type=APPLICATION")
        .await
        .json();
    assert_eq!(apps["inferenceProfileSummaries"], json!([]));
    // `typeEquals` is the member's name, not a query parameter: ignored, the default
    // (system-defined) profiles are listed.
    let ignored = control(
        &sim,
        "us-east-1",
        "/inference-profiles",
        "typeEquals=APPLICATION",
    )
    .await
    .json();
    assert_eq!(
        ignored["inferenceProfileSummaries"],
        body["inferenceProfileSummaries"]
    );
    let response = control(&sim, "us-east-1", "/inference-profiles", "maxResults=0").await;
    assert_aws_error(&response, 400, "ValidationException");

    let path = format!(
        "/inference-profiles/{}",
        uri_encode(b"us.amazon.nova-pro-v1:0", false)
    );
    let profile = control(&sim, "us-east-1", &path, "").await.json();
    assert_eq!(profile["inferenceProfileId"], "us.amazon.nova-pro-v1:0");
    let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0";
    let path = format!("/inference-profiles/{}", uri_encode(arn.as_bytes(), false));
    assert_eq!(control(&sim, "us-east-1", &path, "").await.json(), profile);
    let path = format!(
        "/inference-profiles/{}",
        uri_encode(b"eu.amazon.nova-pro-v1:0", false)
    );
    assert_aws_error(
        &control(&sim, "us-east-1", &path, "").await,
        404,
        "ResourceNotFoundException",
    );

    let path = format!(
        "/foundation-models/{}",
        uri_encode(b"anthropic.claude-sonnet-4-6", false)
    );
    let details = control(&sim, "us-east-1", &path, "").await.json();
    let details = &details["modelDetails"];
    assert_eq!(details["modelId"], "anthropic.claude-sonnet-4-6");
    assert_eq!(
        details["inferenceTypesSupported"],
        json!(["INFERENCE_PROFILE"])
    );
    assert_eq!(details["responseStreamingSupported"], true);
    assert_eq!(details["modelLifecycle"]["status"], "ACTIVE");
    let path = format!(
        "/foundation-models/{}",
        uri_encode(b"meta.llama3-70b-instruct-v1:0", false)
    );
    let details = control(&sim, "us-east-1", &path, "").await.json();
    assert_eq!(
        details["modelDetails"]["inferenceTypesSupported"],
        json!(["ON_DEMAND"])
    );
    let response = control(
        &sim,
        "us-east-1",
        "/foundation-models/amazon.titan-nope",
        "",
    )
    .await;
    let message = assert_aws_error(&response, 404, "ResourceNotFoundException");
    assert_eq!(
        message,
        "Could not resolve the foundation model from the provided model identifier."
    );
    let list = control(&sim, "us-east-1", "/foundation-models", "byProvider=meta")
        .await
        .json();
    assert_eq!(list["modelSummaries"].as_array().map(Vec::len), Some(1));

    let response = control(&sim, "eu-west-1", "/inference-profiles", "").await;
    assert_aws_error(&response, 403, "AccessDeniedException");
    let response = control(&sim, "us-east-1", "/unknown", "").await;
    assert_aws_error(&response, 404, "UnknownOperationException");
    assert_eq!(sim.requests()[0].path, "/inference-profiles");
}

/// Signs like the AWS SDKs do (the `aws-sigv4` crate, default settings); only the
/// test client uses it, the simulator's verifier is independent.
fn sdk_signed_headers(
    url: &str,
    body: &[u8],
    region: &str,
    token: Option<&str>,
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;

    let credentials = aws_credential_types::Credentials::new(
        AKID,
        SECRET,
        token.map(str::to_owned),
        None,
        "test",
    );
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("bedrock")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let host = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .expect("host");
    let headers = [("content-type", "application/json"), ("host", host)];
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("signed").into_parts();
    headers
        .iter()
        .copied()
        .chain(instructions.headers())
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test]
async fn accepts_sdk_signatures() {
    let config = BedrockSimConfig {
        session_token: Some("sdk-session-token".to_owned()),
        ..BedrockSimConfig::new(AKID, SECRET)
    };
    let sim = start_bedrock(config).await.expect("start");
    let body = user("signed by the SDK").to_string().into_bytes();
    for model in [
        "meta.llama3-70b-instruct-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0",
    ] {
        let path = model_path(model, "converse");
        let url = format!("{}{path}", sim.base_url());
        let headers = sdk_signed_headers(&url, &body, "us-east-1", Some("sdk-session-token"));
        let response = send_with(&sim, "POST", &path, &headers, &body).await;
        assert_eq!(response.status, 200, "{model}: {}", response.text());
        assert_eq!(
            sim.requests()
                .last()
                .and_then(|r| r.decoded_model_id())
                .as_deref(),
            Some(model)
        );
    }
    // The SDK signer given a raw `:` signs a different canonical URI than the server's.
    let raw = "/model/meta.llama3-70b-instruct-v1:0/converse";
    let url = format!("{}{raw}", sim.base_url());
    let headers = sdk_signed_headers(&url, &body, "us-east-1", Some("sdk-session-token"));
    let response = send_with(&sim, "POST", raw, &headers, &body).await;
    assert_aws_error(&response, 403, "InvalidSignatureException");
}
