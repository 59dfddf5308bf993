//! The admin API's authentication and validation.

use crate::harness::*;

#[tokio::test]
async fn admin_routes_need_the_admin_token_not_a_customer_key() {
    let gw = Gw::start().await;
    let (id, key) = gw.account("admin@example.com").await;
    let r = gw
        .send(
            "POST",
            "/admin/v1/accounts",
            Some(&key),
            Some(r#"{"email":"x@y.co"}"#),
            &[],
        )
        .await;
    assert_eq!(r.status, 401);
    let r = gw
        .send("GET", &format!("/admin/v1/accounts/{id}"), None, None, &[])
        .await;
    assert_eq!(r.status, 401);
    for bad in [
        r#"{"email":"not-an-email"}"#,
        r#"{"email":42}"#,
        "{",
        r#"{"mail":"a@b.co"}"#,
    ] {
        let r = gw.admin("POST", "/admin/v1/accounts", Some(bad)).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        r.error_code();
    }
    let r = gw
        .admin("POST", "/admin/v1/accounts/acct_missing/keys", None)
        .await;
    assert_eq!(r.status, 404);
    let r = gw.admin("DELETE", "/admin/v1/keys/key_missing", None).await;
    assert_eq!(r.status, 404);
}

/// An operator disables an account: its keys are refused with 403 `account_disabled` on
/// every customer route (on both APIs), other accounts are untouched, and enabling it
/// restores them; the CLI does the same.
async fn a_disabled_account_is_refused_until_enabled(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let (id, key) = gw.account("disable@example.com").await;
    let (_, other) = gw.account("other-disable@example.com").await;
    let body = chat_body("openai/gpt-4o-mini", "hi", "");
    assert_eq!(gw.chat(&key, &body, &[]).await.status, 200);
    let path = format!("/admin/v1/accounts/{id}");
    let r = gw.admin("PATCH", &path, Some(r#"{"disabled":true}"#)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["disabled"], true);
    let r = gw.chat(&key, &body, &[]).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.error_code(), "account_disabled");
    assert_eq!(
        gw.send("GET", "/v1/credits", Some(&key), None, &[])
            .await
            .status,
        403
    );
    let m = gw
        .send(
            "POST",
            "/v1/messages",
            None,
            Some(r#"{"model":"anthropic/claude-haiku-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#),
            &[("x-api-key", &key), ("anthropic-version", "2023-06-01")],
        )
        .await;
    assert_eq!(m.status, 403, "{}", m.text());
    assert_eq!(m.json()["type"], "error");
    assert_eq!(gw.chat(&other, &body, &[]).await.status, 200);
    // Enabled again through the CLI.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gammainfra"))
        .args([
            "accounts",
            "update",
            "--account",
            &id,
            "--disabled",
            "false",
        ])
        .env("GAMMAINFRA_URL", gw.url.clone())
        .env("GAMMAINFRA_ADMIN_TOKEN", ADMIN)
        .kill_on_drop(true)
        .output()
        .await
        .expect("cli");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["disabled"], false);
    assert_eq!(gw.chat(&key, &body, &[]).await.status, 200);
}

on_both_backends!(a_disabled_account_is_refused_until_enabled);
