//! Bad input: the right 4xx in the OpenAI error shape, and the ledger unchanged.

use crate::harness::*;

#[tokio::test]
async fn bad_requests_get_clear_4xx_and_leave_the_ledger_unchanged() {
    let gw = Gw::start_with(|c| c.max_body_bytes = 64 * 1024).await;
    let (id, key) = gw.account("bad@example.com").await;
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "malformed JSON",
            "{\"model\":".into(),
            400,
            "invalid_request",
        ),
        (
            "wrong type",
            r#"{"model":"openai/gpt-4o","messages":"hi"}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "bad temperature",
            chat_body("openai/gpt-4o", "x", r#""temperature":"hot""#),
            400,
            "invalid_request",
        ),
        (
            "out of range",
            chat_body("openai/gpt-4o", "x", r#""top_p":7"#),
            400,
            "invalid_request",
        ),
        (
            "no messages",
            r#"{"model":"openai/gpt-4o","messages":[]}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "unknown model",
            chat_body("anthropic/claude-sonet-4-6", "x", ""),
            404,
            "model_not_found",
        ),
        (
            "oversized body",
            chat_body("openai/gpt-4o", &"x".repeat(70 * 1024), ""),
            413,
            "request_too_large",
        ),
        (
            "bad region",
            chat_body("openai/gpt-4o", "x", ""),
            400,
            "invalid_region",
        ),
    ];
    for (name, body, status, code) in cases {
        let headers: &[(&str, &str)] = if name == "bad region" {
            &[("x-gammainfra-region", "atlantis")]
        } else {
            &[]
        };
        let r = gw.chat(&key, &body, headers).await;
        assert_eq!(r.status, status, "{name}: {}", r.text());
        assert_eq!(r.error_code(), code, "{name}");
    }
    let r = gw
        .chat(&key, &chat_body("anthropic/claude-sonet-4-6", "x", ""), &[])
        .await;
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .expect("m")
            .contains("anthropic/claude-sonnet-4-6"),
        "close matches listed"
    );

    // Missing, unknown and revoked keys.
    let r = gw
        .send(
            "POST",
            "/v1/chat/completions",
            None,
            Some(&chat_body("openai/gpt-4o", "x", "")),
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (401, "invalid_api_key")
    );
    let r = gw
        .chat("gi-not-a-key", &chat_body("openai/gpt-4o", "x", ""), &[])
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (401, "invalid_api_key")
    );
    let k = gw
        .admin("POST", &format!("/admin/v1/accounts/{id}/keys"), None)
        .await;
    assert_eq!(k.status, 201, "{}", k.text());
    let (key_id, second) = (
        k.json()["key_id"].as_str().expect("id").to_owned(),
        k.json()["api_key"].as_str().expect("k").to_owned(),
    );
    assert_eq!(
        gw.chat(&second, &chat_body("openai/gpt-4o", "x", ""), &[])
            .await
            .status,
        200
    );
    let spent = gw.account_view(&id).await;
    assert_eq!(
        gw.admin("DELETE", &format!("/admin/v1/keys/{key_id}"), None)
            .await
            .status,
        200
    );
    let r = gw
        .chat(&second, &chat_body("openai/gpt-4o", "x", ""), &[])
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (401, "invalid_api_key")
    );

    let view = gw.account_view(&id).await;
    assert_eq!(
        view["ledger_entries"], 2,
        "trial + the one good request only"
    );
    assert_eq!(view["balance_usd"], spent["balance_usd"]);
    assert_eq!(view["ledger_sum_usd"], view["balance_usd"]);
    assert_eq!(
        gw.openai.requests().len(),
        1,
        "no bad request reached the upstream"
    );
}

#[tokio::test]
async fn upstream_rejections_keep_the_provider_message() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("reject@example.com").await;
    // Anthropic accepts temperature up to 1 only: the provider's message reaches the client.
    let r = gw
        .chat(
            &key,
            &chat_body("claude-sonnet-4-6", "x", r#""temperature":1.5"#),
            &[],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "upstream_rejected");
    assert!(r.json()["error"]["message"]
        .as_str()
        .expect("m")
        .contains("temperature"));
    assert_eq!(gw.credits(&key).await["balance_usd"], "3.00");
}

#[tokio::test]
async fn unknown_routes_and_disabled_admin() {
    let gw = Gw::start_with(|c| c.admin_token = None).await;
    let r = gw.send("GET", "/v1/nothing", None, None, &[]).await;
    assert_eq!(r.status, 404);
    r.error_code();
    let r = gw
        .admin("POST", "/admin/v1/accounts", Some(r#"{"email":"a@b.co"}"#))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "admin_disabled");
}

/// `[bedrock] enabled = false` in the file turns Bedrock off even with AWS credentials in
/// the environment, and a request only Bedrock could serve is told that, not to set
/// credentials.
#[tokio::test]
async fn bedrock_disabled_in_the_file_is_named_as_the_reason() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("gammainfra.toml");
    std::fs::write(&file, "[bedrock]\nenabled = false\n").expect("write");
    let loaded = gammainfra::config::Config::load(Some(&file), &|k| {
        matches!(k, "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY").then(|| "x".to_owned())
    })
    .expect("config");
    assert!(loaded.bedrock.is_none());
    let gw = Gw::start_with(|c| {
        c.bedrock = loaded.bedrock.clone();
        c.bedrock_disabled_in_file = loaded.bedrock_disabled_in_file;
    })
    .await;
    let (_, key) = gw.account("off@example.com").await;
    let r = gw
        .chat(&key, &chat_body("meta/llama3-70b-instruct", "x", ""), &[])
        .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.error_code(), "provider_not_available");
    assert_eq!(
        r.json()["error"]["message"],
        "meta/llama3-70b-instruct is listed in the catalog, but none of its eligible endpoints can be called by this deployment: Bedrock is disabled in this deployment by `[bedrock] enabled = false` in the configuration file (to enable it, set `enabled = true` there, or remove the line with AWS credentials in the environment, and restart the gateway)."
    );
}
