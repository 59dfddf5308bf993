//! The Bedrock adapter against the simulated Bedrock: verified IDs, SigV4 for the right
//! source region, profile rules, event-stream frames, errors, and `catalog verify`.

use crate::harness::*;
use gammainfra::config::BedrockConfig;

/// The region a request was signed for, from its SigV4 credential scope.
fn signed_region(r: &gammainfra::simulators::RecordedRequest) -> String {
    let auth = r.header("authorization").expect("signed");
    let scope = auth.split("Credential=").nth(1).expect("credential");
    scope.split('/').nth(2).expect("region").to_owned()
}

fn encoded(id: &str) -> String {
    id.replace(':', "%3A").replace('/', "%2F")
}

const SEED: &[(&str, &str, &str)] = &[
    (
        "anthropic/claude-opus-4-7",
        "us.anthropic.claude-opus-4-7",
        "us",
    ),
    (
        "anthropic/claude-sonnet-4-6",
        "us.anthropic.claude-sonnet-4-6",
        "us",
    ),
    ("amazon/nova-pro-v1", "us.amazon.nova-pro-v1:0", "us"),
    ("amazon/nova-2-lite-v1", "us.amazon.nova-2-lite-v1:0", "us"),
    (
        "meta/llama3-70b-instruct",
        "meta.llama3-70b-instruct-v1:0",
        "us-east-1",
    ),
    (
        "mistral/mistral-large-2402",
        "mistral.mistral-large-2402-v1:0",
        "us-east-1",
    ),
];

#[tokio::test]
async fn each_seed_model_reaches_bedrock_with_its_verified_id_signed_for_us_east_1() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("seed@example.com").await;
    for &(model, verified, region) in SEED {
        for stream in [false, true] {
            let extra = if stream {
                r#""stream":true,"stream_options":{"include_usage":true},"max_tokens":50"#
            } else {
                r#""max_tokens":50"#
            };
            let r = gw
                .chat(
                    &key,
                    &chat_body(model, "hello bedrock", extra),
                    &[("x-gammainfra-region", region)],
                )
                .await;
            assert_eq!(r.status, 200, "{model} stream={stream}: {}", r.text());
            assert_eq!(r.header("x-gammainfra-provider"), Some("bedrock"));
            assert_eq!(
                r.header("x-gammainfra-upstream-model"),
                Some(verified),
                "{model}"
            );
            let up = gw
                .bedrock
                .requests()
                .last()
                .cloned()
                .expect("bedrock request");
            let op = if stream {
                "converse-stream"
            } else {
                "converse"
            };
            assert_eq!(
                up.path,
                format!("/model/{}/{op}", encoded(verified)),
                "{model}"
            );
            assert_eq!(signed_region(&up), "us-east-1", "{model}");
            let text = if stream {
                r.sse_data()
                    .iter()
                    .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                    .filter_map(|c| {
                        c["choices"][0]["delta"]["content"]
                            .as_str()
                            .map(str::to_owned)
                    })
                    .collect::<String>()
            } else {
                r.json()["choices"][0]["message"]["content"]
                    .as_str()
                    .expect("content")
                    .to_owned()
            };
            assert_eq!(
                text, "Simulated reply to: hello bedrock",
                "{model} stream={stream}"
            );
            if stream {
                assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
            }
        }
    }
}

#[tokio::test]
async fn bedrock_usage_is_billed_at_the_profile_endpoints_prices() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("bedrock-bill@example.com").await;
    let r = gw
        .chat(
            &key,
            &chat_body("anthropic/claude-sonnet-4-6", "price check please", ""),
            &[("x-gammainfra-region", "us")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let u = &r.json()["usage"];
    let (p, c) = (
        u["prompt_tokens"].as_u64().expect("p"),
        u["completion_tokens"].as_u64().expect("c"),
    );
    let id = "us.anthropic.claude-sonnet-4-6";
    let want = round_sum(&[
        nanos_at(p, &price(&gw, id, "input")),
        nanos_at(c, &price(&gw, id, "output")),
    ]);
    assert_eq!(usd_to_nanos(u["cost_usd"].as_str().expect("cost")), want);
    assert_eq!(r.header("x-gammainfra-cost-usd"), u["cost_usd"].as_str());
}

#[tokio::test]
async fn wrong_forms_of_bedrock_ids_are_served_in_the_verified_form() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("forms@example.com").await;
    // Bare ID of a profile-only model.
    let r = gw
        .chat(
            &key,
            &chat_body("anthropic.claude-sonnet-4-6", "hi", ""),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-gammainfra-resolved-model"),
        Some("anthropic/claude-sonnet-4-6")
    );
    assert_eq!(r.header("x-gammainfra-provider"), Some("bedrock"));
    let up = r
        .header("x-gammainfra-upstream-model")
        .expect("upstream")
        .to_owned();
    assert!(
        up == "us.anthropic.claude-sonnet-4-6" || up == "global.anthropic.claude-sonnet-4-6",
        "{up}"
    );
    // Prefixed ID of a profile-forbidden model.
    let r = gw
        .chat(
            &key,
            &chat_body("us.meta.llama3-70b-instruct-v1:0", "hi", ""),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-gammainfra-resolved-model"),
        Some("meta/llama3-70b-instruct")
    );
    assert_eq!(
        r.header("x-gammainfra-upstream-model"),
        Some("meta.llama3-70b-instruct-v1:0")
    );
    assert_eq!(r.header("x-gammainfra-upstream-region"), Some("us-east-1"));
}

#[tokio::test]
async fn an_exact_region_serves_a_bare_model_there() {
    // The profile-only refusals (`eu` not enabled, `us-east-1` for Sonnet) are in
    // regions.rs; this is the Bedrock side of the table.
    let gw = Gw::start().await;
    let (_, key) = gw.account("bedrock-regions@example.com").await;
    let r = gw
        .chat(
            &key,
            &chat_body("meta/llama3-70b-instruct", "hi", ""),
            &[("x-gammainfra-region", "us-east-1")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        signed_region(gw.bedrock.requests().last().expect("req")),
        "us-east-1"
    );
}

#[tokio::test]
async fn with_eu_enabled_sonnet_goes_to_the_eu_profile_at_an_eu_source_region() {
    let gw = Gw::start_with(|c| {
        if let Some(b) = c.bedrock.as_mut() {
            b.regions = vec!["us-east-1".into(), "eu-central-1".into()];
        }
    })
    .await;
    let (_, key) = gw.account("eu-enabled@example.com").await;
    let r = gw
        .chat(
            &key,
            &chat_body("anthropic/claude-sonnet-4-6", "hallo", ""),
            &[("x-gammainfra-region", "eu")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-gammainfra-upstream-model"),
        Some("eu.anthropic.claude-sonnet-4-6")
    );
    let up = gw.bedrock.requests().last().cloned().expect("req");
    assert_eq!(signed_region(&up), "eu-central-1");
    assert_eq!(up.path, "/model/eu.anthropic.claude-sonnet-4-6/converse");
}

/// A catalog forced past `catalog check` (the model declared `optional`) with wrong forms.
async fn wrong_form_gw(with_good_endpoint: bool) -> Gw {
    let good = if with_good_endpoint {
        r#"
[[models.endpoints]]
provider = "openai"
upstream_id = "sim-good"
verified = { date = "2026-11-25", method = "test" }
pricing = { input = "3.30", output = "16.50", source = { kind = "provider", url = "https://example.com/test-prices", read = "2026-11-25" } }
"#
    } else {
        ""
    };
    let extra = format!(
        r#"
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
verified = {{ date = "2026-11-25", method = "planted mistake" }}
pricing = {{ input = "1", output = "1", source = {{ kind = "provider", url = "https://example.com/test-prices", read = "2026-11-25" }} }}
{good}
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
verified = {{ date = "2026-11-25", method = "planted mistake" }}
pricing = {{ input = "1", output = "1", source = {{ kind = "provider", url = "https://example.com/test-prices", read = "2026-11-25" }} }}
"#
    );
    Gw::start_with_catalog(&extra, |_| {}).await
}

#[tokio::test]
async fn a_wrong_form_reaches_the_client_as_a_catalog_fault_not_a_raw_400() {
    let gw = wrong_form_gw(false).await;
    let (id, key) = gw.account("fault@example.com").await;
    for model in ["test/wrong-form", "test/wrong-prefix"] {
        let r = gw.chat(&key, &chat_body(model, "hi", ""), &[]).await;
        assert_eq!(r.status, 502, "{model}: {}", r.text());
        assert_eq!(r.error_code(), "catalog_fault", "{model}");
        let m = r.json()["error"]["message"].as_str().expect("m").to_owned();
        assert!(
            m.contains("catalog fault") && m.contains("not yours"),
            "{m}"
        );
    }
    assert_eq!(gw.account_view(&id).await["balance_usd"], "3.00");
}

#[tokio::test]
async fn a_catalog_fault_fails_over_and_trips_the_endpoints_circuit() {
    let gw = wrong_form_gw(true).await;
    let (_, key) = gw.account("failover-fault@example.com").await;
    for _ in 0..3 {
        let r = gw
            .chat(&key, &chat_body("test/wrong-form", "hi", ""), &[])
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-gammainfra-upstream-model"), Some("sim-good"));
    }
    let bad = gw
        .bedrock
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/model/anthropic.claude-sonnet-4-6/"))
        .count();
    assert_eq!(
        bad, 1,
        "after the first fault the wrong endpoint is not tried again"
    );
}

#[tokio::test]
async fn an_exception_frame_ends_the_stream_with_an_error_event() {
    let gw = Gw::start().await;
    let (id, key) = gw.account("exception@example.com").await;
    let r = gw
        .chat(
            &key,
            &chat_body(
                "meta/llama3-70b-instruct",
                "a b c d [[sim:exception throttlingException]]",
                r#""stream":true"#,
            ),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let data = r.sse_data();
    let last: serde_json::Value = serde_json::from_str(data.last().expect("events")).expect("json");
    assert_eq!(last["error"]["code"], "upstream_rate_limited", "{data:?}");
    assert!(!data.iter().any(|d| d == "[DONE]"));
    let view = gw.account_view(&id).await;
    assert_eq!(view["ledger_sum_usd"], view["balance_usd"]);
    assert_eq!(view["reserved_usd"], "0.00");
}

#[tokio::test]
async fn bedrock_errors_are_mapped() {
    let gw = Gw::start_with(|c| {
        if let Some(b) = c.bedrock.as_mut() {
            b.regions = vec!["us-east-1".into(), "ap-northeast-1".into()];
        }
    })
    .await;
    let (_, key) = gw.account("bedrock-errors@example.com").await;
    let only = r#""provider":{"only":["bedrock"]}"#;
    let r = gw
        .chat(
            &key,
            &chat_body("meta/llama3-70b-instruct", "[[sim:error 429]]", only),
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (429, "upstream_rate_limited"),
        "{}",
        r.text()
    );
    let r = gw
        .chat(
            &key,
            &chat_body("meta/llama3-70b-instruct", "[[sim:error 503]]", only),
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (502, "upstream_error"),
        "{}",
        r.text()
    );
    // The simulated account has no model access in ap-northeast-1.
    let r = gw
        .chat(
            &key,
            &chat_body("amazon/nova-pro-v1", "hi", ""),
            &[("x-gammainfra-region", "apac")],
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (502, "upstream_auth_failed"),
        "{}",
        r.text()
    );
    // The clean answer: the category and Bedrock's status, not AWS's text (the region
    // to enable model access in goes to the log).
    let m = r.json()["error"]["message"].as_str().expect("m").to_owned();
    assert!(
        m.contains("credentials or access") && m.contains("HTTP 403"),
        "{m}"
    );
    assert!(!m.contains("You don't have access"), "{m}");
}

#[tokio::test]
async fn tools_and_images_through_converse() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("bedrock-tools@example.com").await;
    let tools = r#""tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"query":{"type":"string"}}}}}]"#;
    let r = gw
        .chat(
            &key,
            &chat_body("amazon/nova-pro-v1", "weather in Oslo", tools),
            &[("x-gammainfra-region", "us")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    let args: serde_json::Value =
        serde_json::from_str(call["function"]["arguments"].as_str().expect("a")).expect("json");
    assert_eq!(args["query"], "weather in Oslo");
    let body = r#"{"model":"amazon/nova-pro-v1","messages":[{"role":"user","content":[{"type":"text","text":"what is this"},
        {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg=="}}]}]}"#;
    let r = gw.chat(&key, body, &[("x-gammainfra-region", "us")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = gw
        .bedrock
        .requests()
        .last()
        .expect("req")
        .json()
        .expect("json");
    assert_eq!(up["messages"][0]["content"][1]["image"]["format"], "png");
    // An image URL inside the gateway's network is refused, and nothing is charged.
    let body = r#"{"model":"amazon/nova-pro-v1","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://169.254.169.254/latest/meta-data"}}]}]}"#;
    let r = gw.chat(&key, body, &[("x-gammainfra-region", "us")]).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("public"), "{}", r.text());
}

fn verify_config(gw: &Gw, catalog: Option<std::path::PathBuf>) -> gammainfra::config::Config {
    let mut c = gammainfra::config::Config::load(None, &|_| None).expect("config");
    c.bedrock = Some(BedrockConfig {
        regions: vec!["us-east-1".into()],
        endpoint_url: Some(gw.bedrock.base_url()),
        control_endpoint_url: Some(gw.bedrock.base_url()),
        auth: gammainfra::config::BedrockAuthConfig::Static {
            access_key_id: AWS_KEY.into(),
            secret_access_key: gammainfra::config::Secret::new(AWS_SECRET),
            session_token: None,
        },
        allow_private_image_urls: false,
    });
    c.catalog_path = catalog;
    c
}

#[tokio::test]
async fn catalog_verify_passes_for_the_shipped_catalog() {
    let gw = Gw::start().await;
    let config = verify_config(&gw, None);
    let catalog = gammainfra::gateway::load_catalog(&config).expect("catalog");
    let rows = gammainfra::verify::verify(&catalog, &config, true)
        .await
        .expect("verify");
    assert!(rows.len() >= 6, "{rows:?}");
    let bad: Vec<_> = rows.iter().filter(|r| !r.ok).collect();
    assert!(bad.is_empty(), "{}", gammainfra::verify::render(&rows));
    assert!(rows.iter().all(|r| r.invoke == "ok"));
}

#[tokio::test]
async fn catalog_verify_reports_planted_mismatches_with_the_right_suggestion() {
    let gw = wrong_form_gw(false).await;
    let config = verify_config(&gw, gw.state.config.catalog_path.clone());
    let catalog = gammainfra::gateway::load_catalog(&config).expect("catalog");
    let rows = gammainfra::verify::verify(&catalog, &config, false)
        .await
        .expect("verify");
    let table = gammainfra::verify::render(&rows);
    let row = |id: &str| {
        rows.iter()
            .find(|r| r.upstream_id == id)
            .unwrap_or_else(|| panic!("{id} in {table}"))
    };
    let bare = row("anthropic.claude-sonnet-4-6");
    assert!(!bare.ok);
    assert!(
        bare.suggestion
            .as_deref()
            .is_some_and(|s| s.contains("us.anthropic.claude-sonnet-4-6")),
        "{table}"
    );
    let prefixed = row("us.mistral.mistral-large-2402-v1:0");
    assert!(!prefixed.ok);
    assert!(
        prefixed
            .suggestion
            .as_deref()
            .is_some_and(|s| s.contains("bare ID `mistral.mistral-large-2402-v1:0`")),
        "{table}"
    );
    assert_eq!(rows.iter().filter(|r| !r.ok).count(), 2, "{table}");
}

#[tokio::test]
async fn bedrock_api_keys_are_sent_as_bearer_tokens() {
    let mut sim = gammainfra::simulators::BedrockSimConfig::new(AWS_KEY, AWS_SECRET);
    sim.bearer_token = Some("bedrock-api-key-gammainfra-test".into());
    let sim = gammainfra::simulators::start_bedrock(sim)
        .await
        .expect("sim");
    let url = sim.base_url();
    let gw = Gw::start_with(|c| {
        if let Some(b) = c.bedrock.as_mut() {
            b.endpoint_url = Some(url.clone());
            b.auth = gammainfra::config::BedrockAuthConfig::BearerToken(
                gammainfra::config::Secret::new("bedrock-api-key-gammainfra-test"),
            );
        }
    })
    .await;
    let (_, key) = gw.account("bearer@example.com").await;
    let r = gw
        .chat(&key, &chat_body("meta/llama3-70b-instruct", "hi", ""), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = sim.requests().last().cloned().expect("request");
    assert_eq!(
        up.header("authorization"),
        Some("Bearer bedrock-api-key-gammainfra-test")
    );
}

#[tokio::test]
async fn the_demo_serves_all_six_seed_models_offline() {
    let (demo, config) = gammainfra::demo::prepare(Some("127.0.0.1:0".parse().expect("addr")))
        .await
        .expect("demo");
    let state = gammainfra::gateway::build(config).await.expect("gateway");
    let (_, key, _) = state
        .ledger
        .create_account("demo@gammainfra.local")
        .await
        .expect("account");
    let app = gammainfra::server::app(state);
    use tower::ServiceExt;
    for &(model, verified, region) in SEED {
        let req = hyper::Request::post("/v1/chat/completions")
            .header("authorization", format!("Bearer {}", key.plain))
            .header("x-gammainfra-region", region)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(chat_body(
                model,
                "Hello!",
                r#""max_tokens":100"#,
            )))
            .expect("request");
        let resp = app.clone().oneshot(req).await.expect("response");
        assert_eq!(resp.status(), 200, "{model}");
        assert_eq!(
            resp.headers()["x-gammainfra-provider"],
            "bedrock",
            "{model}"
        );
        assert_eq!(
            resp.headers()["x-gammainfra-upstream-model"],
            verified,
            "{model}"
        );
    }
    assert!(!demo.bedrock.requests().is_empty());
}

/// The AWS credential chain, with its own HTTP client (rustls on ring), as the binary
/// runs it: credentials come from a container credentials endpoint, and `catalog verify`
/// signs the simulated Bedrock's control plane with them.
#[cfg(feature = "aws-credential-chain")]
#[tokio::test]
async fn the_credential_chain_fetches_container_credentials_and_signs_with_them() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A simulated Bedrock that accepts only these credentials with this session token.
    let mut sim = gammainfra::simulators::BedrockSimConfig::new(AWS_KEY, AWS_SECRET);
    sim.session_token = Some("container-token".to_owned());
    let bedrock = gammainfra::simulators::start_bedrock(sim)
        .await
        .expect("bedrock sim");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let creds_url = format!(
        "http://{}/v2/credentials/test",
        listener.local_addr().expect("addr")
    );
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = vec![0u8; 8192];
            let _ = s.read(&mut buf).await;
            let body = format!(
                r#"{{"AccessKeyId":"{AWS_KEY}","SecretAccessKey":"{AWS_SECRET}","Token":"container-token","Expiration":"2099-01-01T00:00:00Z"}}"#
            );
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    let home = tempfile::tempdir().expect("home");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gammainfra"))
        .args(["catalog", "verify"])
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_REGION", "us-east-1")
        .env("GAMMAINFRA_BEDROCK_REGIONS", "us-east-1")
        .env("AWS_ENDPOINT_URL_BEDROCK", bedrock.base_url())
        .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", bedrock.base_url())
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &creds_url)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), out)
        .await
        .expect("verify finishes")
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        served.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the chain asked the container endpoint"
    );
    // Signed with the container's credentials and token: the simulator, which refuses
    // any other, accepted every call.
    assert!(!bedrock.requests().is_empty(), "{stdout}");
    assert!(stdout.contains(" OK"), "{stdout}");
}

/// A control-plane URL that reaches something else (its 404s carry no
/// ResourceNotFoundException) is reported as an endpoint error, not as missing models.
#[tokio::test]
async fn catalog_verify_reports_a_wrong_control_endpoint_not_missing_models() {
    let gw = Gw::start().await;
    let mut config = verify_config(&gw, None);
    // A web server that answers every path 404, as one at a wrong URL does.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = sock.read(&mut buf).await;
                let _ = sock
                    .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-type: text/html\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot found")
                    .await;
            });
        }
    });
    if let Some(b) = config.bedrock.as_mut() {
        b.control_endpoint_url = Some(format!("http://{addr}"));
    }
    let catalog = gammainfra::gateway::load_catalog(&config).expect("catalog");
    let rows = gammainfra::verify::verify(&catalog, &config, false)
        .await
        .expect("verify");
    let table = gammainfra::verify::render(&rows);
    assert!(!rows.is_empty());
    for r in &rows {
        assert!(!r.ok, "{table}");
        assert_ne!(r.exists, "no", "not reported as a missing model: {table}");
        assert!(
            r.exists.contains("404 without a ResourceNotFoundException")
                && r.exists.contains("AWS_ENDPOINT_URL_BEDROCK"),
            "{table}"
        );
    }
}

/// Credentials AWS refuses stop `catalog verify` at once with what was refused and which
/// credentials were used, instead of advising model access entry by entry.
#[tokio::test]
async fn catalog_verify_names_refused_credentials_not_model_access() {
    let mut sim = gammainfra::simulators::BedrockSimConfig::new(AWS_KEY, AWS_SECRET);
    sim.bearer_token = Some("bedrock-api-key-the-right-one".into());
    let sim = gammainfra::simulators::start_bedrock(sim)
        .await
        .expect("sim");
    let gw = Gw::start().await;
    let catalog = gammainfra::gateway::load_catalog(&verify_config(&gw, None)).expect("catalog");
    let mut config = verify_config(&gw, None);
    if let Some(b) = config.bedrock.as_mut() {
        b.control_endpoint_url = Some(sim.base_url());
        b.auth = gammainfra::config::BedrockAuthConfig::BearerToken(
            gammainfra::config::Secret::new("bedrock-api-key-a-wrong-one"),
        );
    }
    let err = gammainfra::verify::verify(&catalog, &config, false)
        .await
        .expect_err("refused");
    assert_eq!(
        err,
        "Bedrock in us-east-1 refused the credentials used, the Bedrock API key in AWS_BEARER_TOKEN_BEDROCK (AccessDeniedException: Authentication failed: Please make sure your API Key is valid.): they are not valid or have expired (this is not about model access)"
    );
    if let Some(b) = config.bedrock.as_mut() {
        b.auth = gammainfra::config::BedrockAuthConfig::Static {
            access_key_id: "AKIDNOTKNOWN".into(),
            secret_access_key: gammainfra::config::Secret::new(AWS_SECRET),
            session_token: None,
        };
    }
    let err = gammainfra::verify::verify(&catalog, &config, false)
        .await
        .expect_err("refused");
    assert_eq!(
        err,
        "Bedrock in us-east-1 refused the credentials used, the access key configured for the gateway (UnrecognizedClientException: The security token included in the request is invalid.): they are not valid or have expired (this is not about model access)"
    );
    if let Some(b) = config.bedrock.as_mut() {
        b.auth = gammainfra::config::BedrockAuthConfig::Static {
            access_key_id: AWS_KEY.into(),
            secret_access_key: gammainfra::config::Secret::new("not/the/secret"),
            session_token: None,
        };
    }
    let err = gammainfra::verify::verify(&catalog, &config, false)
        .await
        .expect_err("refused");
    assert!(
        err.starts_with("Bedrock in us-east-1 refused the credentials used, the access key configured for the gateway (InvalidSignatureException: "),
        "{err}"
    );
}

/// `catalog verify` with `AWS_PROFILE` naming a profile the shared files do not define
/// says so, naming the files it read.
#[cfg(feature = "aws-credential-chain")]
#[tokio::test]
async fn catalog_verify_names_a_missing_aws_profile() {
    let home = tempfile::tempdir().expect("home");
    std::fs::create_dir_all(home.path().join(".aws")).expect("dir");
    std::fs::write(
        home.path().join(".aws/config"),
        "[default]\nregion = us-east-1\n[profile dev]\nregion = eu-west-1\n",
    )
    .expect("config");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gammainfra"))
        .args(["catalog", "verify"])
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_PROFILE", "prdo")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("GAMMAINFRA_BEDROCK_REGIONS", "us-east-1")
        .env("AWS_ENDPOINT_URL_BEDROCK", "http://127.0.0.1:9")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), out)
        .await
        .expect("verify finishes")
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("catalog verify: bedrock: no usable AWS credentials: the AWS profile `prdo` named by AWS_PROFILE does not exist in the shared config file ~/.aws/config or the shared credentials file ~/.aws/credentials (they define default, dev); add it there, or set AWS_PROFILE to one of theirs\n"),
        "{stderr}"
    );
}
