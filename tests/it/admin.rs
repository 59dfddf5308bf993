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
