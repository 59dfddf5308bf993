//! The current Claude catalog over HTTP: Claude Code's default model name
//! (`claude-opus-4-8`, sent with no model setting at all) and the names Anthropic clients
//! send resolve, with or without a region constraint, and the `jp.`/`au.` geographies
//! reach their profiles at a source region inside them on the simulated Bedrock.

use crate::harness::*;

/// What Claude Code sends with every request (an output cap), kept small here.
const MAX: &str = r#""max_tokens":1000"#;

/// The region a request was signed for, from its SigV4 credential scope.
fn signed_region(r: &gammainfra::simulators::RecordedRequest) -> String {
    let auth = r.header("authorization").expect("signed");
    let scope = auth.split("Credential=").nth(1).expect("credential");
    scope.split('/').nth(2).expect("region").to_owned()
}

/// A gateway whose deployment (and simulated AWS account) also has Bedrock access in
/// ap-northeast-1 (the `jp.` source region) and ap-southeast-2 (the `au.` one).
async fn apac_gw() -> Gw {
    Gw::start_with_bedrock_access(&["ap-northeast-1", "ap-southeast-2"], |c| {
        if let Some(b) = c.bedrock.as_mut() {
            b.regions = vec![
                "us-east-1".into(),
                "ap-northeast-1".into(),
                "ap-southeast-2".into(),
            ];
        }
    })
    .await
}

#[tokio::test]
async fn claude_code_default_model_works_without_a_region_and_under_jp() {
    let gw = apac_gw().await;
    let (_, key) = gw.account("claude-code@example.com").await;
    // Claude Code always sends `max_tokens`; without one the reservation for Opus 4.8's
    // 128K output cap (about $3.20) would exceed the $3.00 trial credit.
    let body = chat_body("claude-opus-4-8", "hi", MAX);

    // No header: the Anthropic API name is served by Anthropic's API, as Claude Code
    // pointed at Anthropic would be.
    let r = gw.chat(&key, &body, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gammainfra-provider"), Some("anthropic"));
    assert_eq!(
        r.header("x-gammainfra-upstream-model"),
        Some("claude-opus-4-8")
    );
    assert_eq!(
        r.header("x-gammainfra-resolved-model"),
        Some("anthropic/claude-opus-4-8")
    );
    assert!(gw.bedrock.requests().is_empty());

    // `jp`: the Anthropic endpoint cannot promise Japan, so the model's `jp.` profile
    // serves it, called and signed at ap-northeast-1.
    let r = gw.chat(&key, &body, &[("x-gammainfra-region", "jp")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gammainfra-provider"), Some("bedrock"));
    assert_eq!(
        r.header("x-gammainfra-upstream-model"),
        Some("jp.anthropic.claude-opus-4-8")
    );
    assert_eq!(r.header("x-gammainfra-upstream-region"), Some("jp"));
    let up = gw
        .bedrock
        .requests()
        .last()
        .cloned()
        .expect("bedrock called");
    assert_eq!(up.path, "/model/jp.anthropic.claude-opus-4-8/converse");
    assert_eq!(signed_region(&up), "ap-northeast-1");
    // Billed at the jp. profile's price, not Anthropic's.
    assert!(r.header("x-gammainfra-cost-usd").is_some());

    // `au`, streamed: the `au.` profile at ap-southeast-2.
    let stream = chat_body(
        "claude-opus-4-8",
        "hi",
        r#""max_tokens":1000,"stream":true"#,
    );
    let r = gw
        .chat(&key, &stream, &[("x-gammainfra-region", "au")])
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-gammainfra-upstream-model"),
        Some("au.anthropic.claude-opus-4-8")
    );
    assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
    let up = gw
        .bedrock
        .requests()
        .last()
        .cloned()
        .expect("bedrock called");
    assert_eq!(
        up.path,
        "/model/au.anthropic.claude-opus-4-8/converse-stream"
    );
    assert_eq!(signed_region(&up), "ap-southeast-2");
}

#[tokio::test]
async fn claude_code_names_resolve_on_a_default_deployment() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("names@example.com").await;
    // (model as the client sends it, the catalog model)
    let rows = [
        ("claude-opus-4-8", "anthropic/claude-opus-4-8"),
        ("claude-haiku-4-5-20251001", "anthropic/claude-haiku-4-5"),
        ("claude-haiku-4-5", "anthropic/claude-haiku-4-5"),
        ("claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4-5"),
        ("claude-opus-5-5", "anthropic/claude-opus-5-5"),
        ("claude-sonnet-5-5", "anthropic/claude-sonnet-5-5"),
        ("claude-haiku-5-5", "anthropic/claude-haiku-5-5"),
        ("claude-fable-5-1", "anthropic/claude-fable-5-1"),
        ("anthropic/claude-opus-4-8", "anthropic/claude-opus-4-8"),
    ];
    for (name, model) in rows {
        let r = gw.chat(&key, &chat_body(name, "hi", MAX), &[]).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        if name != model {
            assert_eq!(
                r.header("x-gammainfra-resolved-model"),
                Some(model),
                "{name}"
            );
        }
    }
    // With `us` and the default Bedrock regions, Claude Code's default goes to the `us.`
    // profile in us-east-1.
    let r = gw
        .chat(
            &key,
            &chat_body("claude-opus-4-8", "hi", MAX),
            &[("x-gammainfra-region", "us")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-gammainfra-upstream-model"),
        Some("us.anthropic.claude-opus-4-8")
    );
    // `jp` without access to ap-northeast-1: a clear refusal naming the missing region,
    // never a silent call elsewhere (nor to Anthropic, whose regions are unknown).
    let before = (gw.anthropic.requests().len(), gw.bedrock.requests().len());
    let r = gw
        .chat(
            &key,
            &chat_body("claude-opus-4-8", "hi", MAX),
            &[("x-gammainfra-region", "jp")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "no_endpoint_in_region");
    let m = r.json()["error"]["message"].as_str().expect("m").to_owned();
    assert!(
        m.contains("jp.anthropic.claude-opus-4-8") && m.contains("ap-northeast-1"),
        "{m}"
    );
    assert_eq!(
        before,
        (gw.anthropic.requests().len(), gw.bedrock.requests().len())
    );
    // A retired `-latest` alias is unknown, with suggestions.
    let r = gw
        .chat(&key, &chat_body("claude-3-5-haiku-latest", "hi", ""), &[])
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.error_code(), "model_not_found");
}

/// Haiku 5.5 is priced in two bands; a Bedrock profile in `au` bills the au. band.
#[tokio::test]
async fn haiku_5_5_under_au_uses_the_au_profile() {
    let gw = apac_gw().await;
    let (_, key) = gw.account("haiku55@example.com").await;
    let r = gw
        .chat(
            &key,
            &chat_body("anthropic/claude-haiku-5-5", "hi", MAX),
            &[("x-gammainfra-region", "au")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-gammainfra-upstream-model"),
        Some("au.anthropic.claude-haiku-5-5")
    );
    let up = gw
        .bedrock
        .requests()
        .last()
        .cloned()
        .expect("bedrock called");
    assert_eq!(signed_region(&up), "ap-southeast-2");
}
