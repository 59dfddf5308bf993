//! Region constraints (DESIGN §4), observed over HTTP.

use crate::harness::*;

/// A catalog where one model has endpoints with known regions served by configured
/// providers: a self-hosted OpenAI-compatible server in us-east-1 and one in eu-west-1
/// (both the OpenAI simulator), plus OpenAI direct (regions unknown, cheapest).
const REGIONAL_MODELS: &str = r#"
[[models]]
id = "test/regional"
name = "Regional test model"
owned_by = "test"
context_window = 100000
max_output_tokens = 1000
capabilities = ["streaming"]

[[models.endpoints]]
provider = "openai_compatible:useast"
upstream_id = "sim-us-east-1"
region = "us-east-1"
verified = { date = "2026-11-25", method = "test" }
pricing = { input = "1", output = "1", source = { kind = "provider", url = "https://example.com/test-prices", read = "2026-11-25" } }

[[models.endpoints]]
provider = "openai_compatible:euwest"
upstream_id = "sim-eu-west-1"
region = "eu-west-1"
verified = { date = "2026-11-25", method = "test" }
pricing = { input = "2", output = "2", source = { kind = "provider", url = "https://example.com/test-prices", read = "2026-11-25" } }

[[models.endpoints]]
provider = "openai"
upstream_id = "sim-anywhere"
verified = { date = "2026-11-25", method = "test" }
pricing = { input = "0.5", output = "0.5", source = { kind = "provider", url = "https://example.com/test-prices", read = "2026-11-25" } }
"#;

async fn regional_gw() -> Gw {
    Gw::start_with_catalog(REGIONAL_MODELS, |c| {
        let o = c.openai.clone().expect("openai");
        c.openai_compatible = vec![("useast".into(), o.clone()), ("euwest".into(), o)];
    })
    .await
}

#[tokio::test]
async fn constraint_table_over_http() {
    let gw = regional_gw().await;
    let (_, key) = gw.account("regions@example.com").await;
    let body = chat_body("test/regional", "hi", "");
    // (header, expected status, expected upstream model or error code)
    let rows: &[(Option<&str>, u16, &str)] = &[
        (None, 200, "sim-anywhere"),
        (Some("us"), 200, "sim-us-east-1"),
        (Some("us-east-1"), 200, "sim-us-east-1"),
        (Some("eu"), 200, "sim-eu-west-1"),
        (Some("eu-west-1"), 200, "sim-eu-west-1"),
        (Some("us-east-1,eu"), 200, "sim-us-east-1"),
        (Some("eu, us-west-2"), 200, "sim-eu-west-1"),
        (Some("apac"), 400, "no_endpoint_in_region"),
        (Some("us-west-2"), 400, "no_endpoint_in_region"),
        (Some("mars"), 400, "invalid_region"),
        (Some("us,,eu"), 400, "invalid_region"),
        (Some("global"), 400, "invalid_region"),
    ];
    for &(header, status, want) in rows {
        let h: Vec<(&str, &str)> = header
            .map(|v| ("x-gammainfra-region", v))
            .into_iter()
            .collect();
        let r = gw.chat(&key, &body, &h).await;
        assert_eq!(r.status, status, "{header:?}: {}", r.text());
        if status == 200 {
            assert_eq!(
                r.header("x-gammainfra-upstream-model"),
                Some(want),
                "{header:?}"
            );
        } else {
            assert_eq!(r.error_code(), want, "{header:?}");
        }
    }
    let r = gw
        .chat(&key, &body, &[("x-gammainfra-region", "mars")])
        .await;
    let m = r.json()["error"]["message"].as_str().expect("m").to_owned();
    assert!(m.contains("us, eu, apac"), "accepted values listed: {m}");
    let r = gw
        .chat(&key, &body, &[("x-gammainfra-region", "apac")])
        .await;
    let m = r.json()["error"]["message"].as_str().expect("m").to_owned();
    assert!(
        m.contains("sim-us-east-1") && m.contains("eu-west-1"),
        "endpoints and regions named: {m}"
    );
}

#[tokio::test]
async fn profile_only_model_under_exact_region_names_the_geography() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("profile@example.com").await;
    let r = gw
        .chat(
            &key,
            &chat_body("anthropic/claude-sonnet-4-6", "hi", ""),
            &[("x-gammainfra-region", "us-east-1")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "no_endpoint_in_region");
    let m = r.json()["error"]["message"].as_str().expect("m").to_owned();
    assert!(
        m.contains("cross-region inference profiles") && m.contains("X-GammaInfra-Region: us"),
        "{m}"
    );
}

#[tokio::test]
async fn disabled_eu_entry_is_named_not_silently_replaced() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("eu@example.com").await;
    let r = gw
        .chat(
            &key,
            &chat_body("anthropic/claude-sonnet-4-6", "hi", ""),
            &[("x-gammainfra-region", "eu")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "no_endpoint_in_region");
    let m = r.json()["error"]["message"].as_str().expect("m").to_owned();
    assert!(
        m.contains("eu.anthropic.claude-sonnet-4-6")
            && m.contains("eu-central-1")
            && m.contains("not enabled"),
        "{m}"
    );
    assert!(
        gw.anthropic.requests().is_empty() && gw.bedrock.requests().is_empty(),
        "no silent call elsewhere"
    );
}

/// `default_region`, the old name of a key's residency policy, is still accepted; it is
/// a policy, not a default: the header narrows it but cannot override it. (The rules are
/// tested in `residency.rs`.)
#[tokio::test]
async fn deprecated_default_region_is_a_policy_the_header_cannot_override() {
    let gw = regional_gw().await;
    let (id, _) = gw.account("default@example.com").await;
    let k = gw
        .admin(
            "POST",
            &format!("/admin/v1/accounts/{id}/keys"),
            Some(r#"{"name":"eu-only","default_region":"eu"}"#),
        )
        .await;
    assert_eq!(k.status, 201, "{}", k.text());
    assert_eq!(k.json()["residency"], "eu");
    assert_eq!(k.json()["default_region"], "eu");
    let key = k.json()["api_key"].as_str().expect("k").to_owned();
    let body = chat_body("test/regional", "hi", "");
    let r = gw.chat(&key, &body, &[]).await;
    assert_eq!(
        r.header("x-gammainfra-upstream-model"),
        Some("sim-eu-west-1")
    );
    let r = gw.chat(&key, &body, &[("x-gammainfra-region", "us")]).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.error_code(), "region_not_allowed");
    let bad = gw
        .admin(
            "POST",
            &format!("/admin/v1/accounts/{id}/keys"),
            Some(r#"{"default_region":"mars"}"#),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error_code(), "invalid_region");
    assert_eq!(bad.json()["error"]["param"], "default_region");
}
