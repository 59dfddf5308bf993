//! What a client sees of a provider failure: a fixed message per category with the
//! gateway's request ID, the provider and its HTTP status, never the provider's own
//! text (AWS's access denials name the deployment's account ID and role ARN; OpenAI's
//! rate limits name its organisation). The one exception, a provider's refusal of the
//! client's own input, is passed on redacted. Each provider, streamed and not; the
//! error frame of a stream that fails midway; and the customer-visible usage record.

use serde_json::Value;

use crate::harness::*;

/// One fault and what the client must (and must not) see of it.
struct Case {
    model: &'static str,
    provider: &'static str,
    trigger: &'static str,
    status: u16,
    code: &'static str,
    provider_status: u16,
    /// Texts of the provider that must not reach the client.
    hidden: &'static [&'static str],
}

const BEDROCK: &str = "meta/llama3-70b-instruct";
const ANTHROPIC: &str = "claude-haiku-4-5";
const OPENAI: &str = "openai/gpt-4o-mini";

/// AWS's IAM denial (see the Bedrock simulator's `[[sim:iam-denied]]`) names these.
const AWS_ACCOUNT: &[&str] = &[
    "123456789012",
    "arn:",
    "assumed-role",
    "GammaInfra/i-0abc",
    "not authorized to perform",
    "identity-based policy",
];

fn cases() -> Vec<Case> {
    let c = |model, provider, trigger, status, code, provider_status, hidden| Case {
        model,
        provider,
        trigger,
        status,
        code,
        provider_status,
        hidden,
    };
    vec![
        // Bedrock, with AWS's real message texts (shared/data/bedrock/errors.md).
        c(
            BEDROCK,
            "bedrock",
            "[[sim:iam-denied]]",
            502,
            "upstream_auth_failed",
            403,
            AWS_ACCOUNT,
        ),
        c(
            BEDROCK,
            "bedrock",
            "[[sim:error 403]]",
            502,
            "upstream_auth_failed",
            403,
            &["You don't have access to the model with the specified model ID."],
        ),
        c(
            BEDROCK,
            "bedrock",
            "[[sim:error 429]]",
            429,
            "upstream_rate_limited",
            429,
            &["Too many tokens, please wait before trying again."],
        ),
        c(
            BEDROCK,
            "bedrock",
            "[[sim:error 503]]",
            502,
            "upstream_error",
            503,
            &["Bedrock is unable to process your request."],
        ),
        c(
            BEDROCK,
            "bedrock",
            "[[sim:error 500]]",
            502,
            "upstream_error",
            500,
            &["The system encountered an unexpected error"],
        ),
        c(
            BEDROCK,
            "bedrock",
            "[[sim:error 404]]",
            502,
            "upstream_model_not_found",
            404,
            &["Model not found."],
        ),
        c(
            BEDROCK,
            "bedrock",
            "[[sim:error 408]]",
            504,
            "upstream_timeout",
            408,
            &["Processing time exceeded the model timeout length."],
        ),
        // Anthropic.
        c(
            ANTHROPIC,
            "anthropic",
            "[[sim:error 401]]",
            502,
            "upstream_auth_failed",
            401,
            &["invalid x-api-key"],
        ),
        c(
            ANTHROPIC,
            "anthropic",
            "[[sim:error 403]]",
            502,
            "upstream_auth_failed",
            403,
            &["Your API key does not have permission"],
        ),
        c(
            ANTHROPIC,
            "anthropic",
            "[[sim:error 429]]",
            429,
            "upstream_rate_limited",
            429,
            &["rate limit for your organization", "50 requests per minute"],
        ),
        c(
            ANTHROPIC,
            "anthropic",
            "[[sim:error 529]]",
            502,
            "upstream_error",
            529,
            &["Overloaded"],
        ),
        c(
            ANTHROPIC,
            "anthropic",
            "[[sim:error 500]]",
            502,
            "upstream_error",
            500,
            &["Internal server error"],
        ),
        c(
            ANTHROPIC,
            "anthropic",
            "[[sim:error 404]]",
            502,
            "upstream_model_not_found",
            404,
            &["Not found"],
        ),
        // OpenAI.
        c(
            OPENAI,
            "openai",
            "[[sim:error 401]]",
            502,
            "upstream_auth_failed",
            401,
            &["Incorrect API key provided."],
        ),
        c(
            OPENAI,
            "openai",
            "[[sim:error 429]]",
            429,
            "upstream_rate_limited",
            429,
            &["org-simulated", "Rate limit reached", "Limit 3"],
        ),
        c(
            OPENAI,
            "openai",
            "[[sim:error 503]]",
            502,
            "upstream_error",
            503,
            &["The server is overloaded or not ready yet."],
        ),
        c(
            OPENAI,
            "openai",
            "[[sim:error 500]]",
            502,
            "upstream_error",
            500,
            &["Sorry about that"],
        ),
    ]
}

/// `{"provider":{"only":[provider]}}` (and `"stream":true`): no fail-over to another
/// provider, so the fault is the answer.
fn extra(provider: &str, stream: bool) -> String {
    let only = format!(r#""provider":{{"only":["{provider}"]}}"#);
    if stream {
        format!(r#"{only},"stream":true"#)
    } else {
        only
    }
}

/// The clean answer: request ID, provider and provider status in the message and as
/// members of `error`, and none of the provider's texts anywhere in the body.
fn assert_clean(
    ctx: &str,
    body: &str,
    error: &Value,
    request_id: &str,
    provider: &str,
    provider_status: Option<u16>,
    hidden: &[&str],
) {
    let m = error["message"].as_str().unwrap_or_default();
    assert!(m.contains(request_id), "{ctx}: request ID in {m}");
    assert_eq!(error["request_id"], request_id, "{ctx}: {body}");
    assert!(m.contains(provider), "{ctx}: provider in {m}");
    assert_eq!(error["provider"], provider, "{ctx}: {body}");
    match provider_status {
        Some(s) => {
            assert!(m.contains(&format!("HTTP {s}")), "{ctx}: status in {m}");
            assert_eq!(error["provider_status"], s, "{ctx}: {body}");
        }
        None => assert_eq!(error["provider_status"], Value::Null, "{ctx}: {body}"),
    }
    for h in hidden {
        assert!(!body.contains(h), "{ctx}: `{h}` reached the client: {body}");
    }
}

#[tokio::test]
async fn provider_failures_reach_the_client_as_clean_messages_with_request_id_and_status() {
    let gw = Gw::start().await;
    let (id, key) = gw.account("provider-errors@example.com").await;
    for case in cases() {
        for stream in [false, true] {
            let ctx = format!("{} {} stream={stream}", case.provider, case.trigger);
            let r = gw
                .chat(
                    &key,
                    &chat_body(case.model, case.trigger, &extra(case.provider, stream)),
                    &[],
                )
                .await;
            // A stream that fails before its first output is answered like a
            // non-streamed request: the error status, not a 200.
            assert_eq!(r.status, case.status, "{ctx}: {}", r.text());
            assert_eq!(r.error_code(), case.code, "{ctx}");
            let request_id = r.header("x-gammainfra-request-id").expect("request id");
            assert_clean(
                &ctx,
                &r.text(),
                &r.json()["error"],
                request_id,
                case.provider,
                Some(case.provider_status),
                case.hidden,
            );
        }
    }
    let view = gw.account_view(&id).await;
    assert_eq!(view["balance_usd"], "3.00", "no failure is charged");
    assert_eq!(view["reserved_usd"], "0.00");
}

/// A refusal of the client's own input is the one provider text passed on, because it
/// is about the client's request; only Anthropic's and OpenAI's `invalid_request_error`
/// and Bedrock's `ValidationException`.
#[tokio::test]
async fn a_refusal_of_the_clients_input_passes_the_providers_text_on() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("provider-rejects@example.com").await;
    for (model, provider, text) in [
        (BEDROCK, "bedrock", "Input is too long for requested model."),
        (ANTHROPIC, "anthropic", "Simulated invalid request"),
        (OPENAI, "openai", "Simulated invalid request."),
    ] {
        for stream in [false, true] {
            let ctx = format!("{provider} stream={stream}");
            let r = gw
                .chat(
                    &key,
                    &chat_body(model, "[[sim:error 400]]", &extra(provider, stream)),
                    &[],
                )
                .await;
            assert_eq!(r.status, 400, "{ctx}: {}", r.text());
            assert_eq!(r.error_code(), "upstream_rejected", "{ctx}");
            let request_id = r.header("x-gammainfra-request-id").expect("request id");
            let error = &r.json()["error"];
            assert_clean(&ctx, &r.text(), error, request_id, provider, Some(400), &[]);
            let m = error["message"].as_str().unwrap_or_default();
            assert!(m.contains(text), "{ctx}: {m}");
        }
    }
}

/// A stream that fails after output reached the client ends with an error frame that
/// is just as clean, and the usage record the client can read carries no provider
/// text either.
#[tokio::test]
async fn a_mid_stream_failure_ends_with_a_clean_error_frame() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("provider-midstream@example.com").await;
    let cases: [(&str, &str, &str, &str, &[&str]); 4] = [
        (
            BEDROCK,
            "bedrock",
            "[[sim:midstream-error]]",
            "upstream_error",
            &["Bedrock is unable to process your request."],
        ),
        (
            BEDROCK,
            "bedrock",
            "[[sim:exception throttlingException]]",
            "upstream_rate_limited",
            &["Too many tokens, please wait before trying again."],
        ),
        (
            ANTHROPIC,
            "anthropic",
            "[[sim:midstream-error]]",
            "upstream_error",
            &["Overloaded"],
        ),
        (
            OPENAI,
            "openai",
            "[[sim:midstream-error]]",
            "upstream_error",
            &["Sorry about that"],
        ),
    ];
    let mut broken = Vec::new();
    for (model, provider, trigger, code, hidden) in cases {
        let ctx = format!("{provider} {trigger}");
        let r = gw
            .chat(
                &key,
                &chat_body(model, trigger, &extra(provider, true)),
                &[],
            )
            .await;
        assert_eq!(r.status, 200, "{ctx}: {}", r.text());
        let request_id = r.header("x-gammainfra-request-id").expect("request id");
        let data = r.sse_data();
        let last = data.last().expect("events");
        let frame: Value = serde_json::from_str(last).expect("error frame is JSON");
        assert_eq!(frame["error"]["code"], code, "{ctx}: {data:?}");
        // The provider answered 200 and failed in the stream: there is no error status.
        assert_clean(
            &ctx,
            &r.text(),
            &frame["error"],
            request_id,
            provider,
            None,
            hidden,
        );
        broken.push((request_id.to_owned(), provider, hidden));
    }
    let usage = gw.send("GET", "/v1/usage", Some(&key), None, &[]).await;
    assert_eq!(usage.status, 200, "{}", usage.text());
    let records = usage.json()["data"].as_array().expect("data").clone();
    for (request_id, provider, hidden) in broken {
        let rec = records
            .iter()
            .find(|r| r["request_id"] == request_id.as_str())
            .expect("a record of the broken stream");
        assert_eq!(rec["status"], "upstream_error", "{rec}");
        let note = rec["note"].as_str().unwrap_or_default();
        assert!(
            note.contains(&format!(
                "{provider} failed mid-stream, answered as upstream_"
            )),
            "{note}"
        );
        for h in hidden {
            assert!(!note.contains(h), "`{h}` in the usage note: {note}");
        }
    }
}

/// The last endpoint's failure is what the client is told, even after a fail-over: an
/// AWS access denial in one region, then another, still reaches the client clean.
#[tokio::test]
async fn an_access_denial_after_fail_over_is_still_clean() {
    let gw = Gw::start_with(|c| {
        if let Some(b) = c.bedrock.as_mut() {
            b.regions = vec!["us-east-1".into(), "us-west-2".into()];
        }
    })
    .await;
    let (_, key) = gw.account("provider-failover@example.com").await;
    let r = gw
        .chat(
            &key,
            &chat_body(
                "amazon/nova-pro-v1",
                "[[sim:iam-denied]]",
                &extra("bedrock", false),
            ),
            &[("x-gammainfra-region", "us")],
        )
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.error_code(), "upstream_auth_failed");
    let request_id = r.header("x-gammainfra-request-id").expect("request id");
    assert_clean(
        "nova-pro",
        &r.text(),
        &r.json()["error"],
        request_id,
        "bedrock",
        Some(403),
        AWS_ACCOUNT,
    );
}

/// Everything the client is not told goes to the log, with the request ID the client's
/// message quotes: the provider's full text, its status and the endpoint.
#[tokio::test]
async fn the_providers_own_text_goes_to_the_log_with_the_request_id() {
    let log = captured_log();
    let gw = Gw::start().await;
    let (_, key) = gw.account("provider-log@example.com").await;
    let r = gw
        .chat(
            &key,
            &chat_body(BEDROCK, "[[sim:iam-denied]]", &extra("bedrock", false)),
            &[],
        )
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
    let request_id = r.header("x-gammainfra-request-id").expect("request id");
    let text = log.text();
    let line = text
        .lines()
        .find(|l| l.contains("upstream failure answered to the client") && l.contains(request_id))
        .unwrap_or_else(|| panic!("no log line for {request_id}: {text}"));
    for wanted in [
        "provider_status=403",
        "AccessDeniedException",
        "arn:aws:sts::123456789012:assumed-role/GammaInfra/i-0abc is not authorized to perform",
        "meta.llama3-70b-instruct-v1:0",
    ] {
        assert!(line.contains(wanted), "`{wanted}` not in {line}");
    }
    assert!(line.contains(" WARN "), "{line}");
}

/// The log of this test binary, collected in memory from the first call on: a global
/// subscriber, because a thread-local one misses events whose callsites another test's
/// thread registered first. Other tests' lines land here too; a test finds its own by
/// the request ID.
fn captured_log() -> Captured {
    static LOG: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(log.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        log
    })
    .clone()
}

/// Log output collected in memory.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}
