//! Residency policies (DESIGN §4, docs/regions.md#residency-policies): an account or a
//! key restricted to a geography or a list of regions is never served outside it. The
//! request's constraint (the header, or the geography of a Bedrock profile prefix) is
//! intersected with the policies; nothing left is `403 region_not_allowed`, with nothing
//! sent upstream and nothing charged.

use crate::harness::*;

/// One model served by the OpenAI simulator under four names: self-hosted servers
/// declared in us-east-1, eu-west-1 and eu-central-1, and OpenAI direct (regions
/// unknown). By price: direct, us-east-1, eu-west-1, eu-central-1.
const RESIDENCY_MODELS: &str = r#"
[[models]]
id = "test/resident"
name = "Residency test model"
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
provider = "openai_compatible:eucentral"
upstream_id = "sim-eu-central-1"
region = "eu-central-1"
verified = { date = "2026-11-25", method = "test" }
pricing = { input = "3", output = "3", source = { kind = "provider", url = "https://example.com/test-prices", read = "2026-11-25" } }

[[models.endpoints]]
provider = "openai"
upstream_id = "sim-anywhere"
verified = { date = "2026-11-25", method = "test" }
pricing = { input = "0.5", output = "0.5", source = { kind = "provider", url = "https://example.com/test-prices", read = "2026-11-25" } }
"#;

async fn resident_gw(edit: impl FnOnce(&mut gammainfra::config::Config)) -> Gw {
    Gw::start_with_catalog(RESIDENCY_MODELS, |c| {
        let o = c.openai.clone().expect("openai");
        c.openai_compatible = vec![
            ("useast".into(), o.clone()),
            ("euwest".into(), o.clone()),
            ("eucentral".into(), o),
        ];
        edit(c);
    })
    .await
}

/// Creates an account with `body` (JSON); returns (account id, api key).
async fn account_with(gw: &Gw, body: &str) -> (String, String) {
    let r = gw.admin("POST", "/admin/v1/accounts", Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    (
        v["id"].as_str().expect("id").to_owned(),
        v["api_key"].as_str().expect("key").to_owned(),
    )
}

async fn patch(gw: &Gw, account: &str, body: &str) -> Resp {
    gw.admin(
        "PATCH",
        &format!("/admin/v1/accounts/{account}"),
        Some(body),
    )
    .await
}

/// Sends `test/resident` with an optional header; returns the response.
async fn ask(gw: &Gw, key: &str, header: Option<&str>) -> Resp {
    let h: Vec<(&str, &str)> = header
        .map(|v| ("x-gammainfra-region", v))
        .into_iter()
        .collect();
    gw.chat(key, &chat_body("test/resident", "hi", ""), &h)
        .await
}

/// Asserts a 200 served by `upstream`, and that this is what reached the simulator.
fn served_by(gw: &Gw, r: &Resp, upstream: &str, what: &str) {
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    assert_eq!(
        r.header("x-gammainfra-upstream-model"),
        Some(upstream),
        "{what}"
    );
    let sent = gw
        .openai
        .requests()
        .last()
        .and_then(|q| q.json())
        .expect("sent");
    assert_eq!(sent["model"], upstream, "{what}: what reached upstream");
}

/// Asserts a refusal by policy; returns the error message.
fn refused(r: &Resp, param: Option<&str>, what: &str) -> String {
    assert_eq!(r.status, 403, "{what}: {}", r.text());
    assert_eq!(r.error_code(), "region_not_allowed", "{what}");
    let v = r.json();
    assert_eq!(v["error"]["param"].as_str(), param, "{what}");
    v["error"]["message"].as_str().expect("message").to_owned()
}

#[tokio::test]
async fn an_eu_account_is_never_served_outside_the_eu_whatever_the_header_says() {
    let gw = resident_gw(|_| {}).await;
    let (id, key) = account_with(&gw, r#"{"email":"eu@example.com","residency":"eu"}"#).await;
    let before = gw.account_view(&id).await;
    let upstream_before = gw.openai.requests().len();

    // Outside the policy: refused, naming the policy and what was asked.
    for header in ["us", "us-east-1", "apac", "us-west-2,ap-northeast-1"] {
        let r = ask(&gw, &key, Some(header)).await;
        let m = refused(&r, Some("X-GammaInfra-Region"), header);
        assert!(
            m.contains(&format!("`{header}`")) && m.contains("account's residency policy `eu`"),
            "{m}"
        );
    }
    // ... and a refusal is checked before anything else happens: nothing went
    // upstream, nothing was reserved or charged.
    assert_eq!(
        gw.openai.requests().len(),
        upstream_before,
        "nothing sent upstream"
    );
    let after = gw.account_view(&id).await;
    for f in ["balance_usd", "spent_usd", "reserved_usd", "ledger_entries"] {
        assert_eq!(after[f], before[f], "{f}: nothing charged");
    }

    // No header: served within the policy (the cheapest EU endpoint, not the cheaper
    // direct or US ones).
    let r = ask(&gw, &key, None).await;
    served_by(&gw, &r, "sim-eu-west-1", "no header");
    assert_eq!(r.header("x-gammainfra-upstream-region"), Some("eu-west-1"));
    // A header inside the policy narrows it.
    let r = ask(&gw, &key, Some("eu-central-1")).await;
    served_by(&gw, &r, "sim-eu-central-1", "eu-central-1");
    assert_eq!(
        r.header("x-gammainfra-upstream-region"),
        Some("eu-central-1")
    );
    // A header that partly overlaps: served within the overlap only.
    let r = ask(&gw, &key, Some("us-east-1,eu-central-1")).await;
    served_by(&gw, &r, "sim-eu-central-1", "us-east-1,eu-central-1");
    // A header wider than the policy: held to the policy.
    let r = ask(&gw, &key, Some("us,eu")).await;
    served_by(&gw, &r, "sim-eu-west-1", "us,eu");
    // An invalid header is still a 400, policy or not.
    let r = ask(&gw, &key, Some("mars")).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "invalid_region");
    // A valid constraint inside the policy that no endpoint meets: the usual 400,
    // which names the policy.
    let r = ask(&gw, &key, Some("eu-north-1")).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "no_endpoint_in_region");
    assert!(
        r.text().contains("account's residency policy `eu`"),
        "{}",
        r.text()
    );

    // Streams are held to the same policy.
    let stream = chat_body("test/resident", "hi", r#""stream":true"#);
    let r = gw
        .chat(&key, &stream, &[("x-gammainfra-region", "us")])
        .await;
    refused(&r, Some("X-GammaInfra-Region"), "stream");
    let r = gw.chat(&key, &stream, &[]).await;
    served_by(&gw, &r, "sim-eu-west-1", "stream");

    // Every request that reached upstream went to an EU endpoint.
    for q in gw.openai.requests() {
        let m = q.json().expect("json")["model"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(m.starts_with("sim-eu-"), "{m} reached upstream");
    }
    // The account view shows the policy.
    assert_eq!(gw.account_view(&id).await["residency"], "eu");
}

#[tokio::test]
async fn a_key_policy_narrows_its_accounts() {
    let gw = resident_gw(|_| {}).await;
    let (id, first) = account_with(&gw, r#"{"email":"keys@example.com","residency":"eu"}"#).await;
    let central = gw
        .key_with(&id, r#"{"name":"central","residency":"eu-central-1"}"#)
        .await
        .1;
    let r = ask(&gw, &central, None).await;
    served_by(&gw, &r, "sim-eu-central-1", "key policy, no header");
    let r = ask(&gw, &central, Some("eu")).await;
    served_by(&gw, &r, "sim-eu-central-1", "key policy, header eu");
    // Inside the account's policy but outside the key's: refused, naming the key's.
    let r = ask(&gw, &central, Some("eu-west-1")).await;
    let m = refused(&r, Some("X-GammaInfra-Region"), "eu-west-1");
    assert!(
        m.contains("API key's residency policy `eu-central-1`") && m.contains("`eu`"),
        "{m}"
    );
    // The account's other key is held to the account's policy only.
    let r = ask(&gw, &first, Some("eu-west-1")).await;
    served_by(&gw, &r, "sim-eu-west-1", "first key");

    // A key policy partly outside the account's: the intersection applies.
    let mixed = gw
        .key_with(&id, r#"{"residency":"us-east-1,eu-central-1"}"#)
        .await
        .1;
    let r = ask(&gw, &mixed, None).await;
    served_by(&gw, &r, "sim-eu-central-1", "mixed key, no header");
    let r = ask(&gw, &mixed, Some("us-east-1")).await;
    refused(&r, Some("X-GammaInfra-Region"), "mixed key, us-east-1");

    // A key policy with no region inside the account's is refused at creation.
    let r = gw
        .admin(
            "POST",
            &format!("/admin/v1/accounts/{id}/keys"),
            Some(r#"{"residency":"us"}"#),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "invalid_region");
    assert_eq!(r.json()["error"]["param"], "residency");

    // If the account's policy later leaves the key's, the key serves nothing.
    assert_eq!(
        patch(&gw, &id, r#"{"residency":"eu-west-1"}"#).await.status,
        200
    );
    let r = ask(&gw, &central, None).await;
    let m = refused(&r, None, "disjoint policies");
    assert!(m.contains("cannot be processed anywhere"), "{m}");
    let r = ask(&gw, &first, None).await;
    served_by(&gw, &r, "sim-eu-west-1", "first key after the change");
}

#[tokio::test]
async fn a_bedrock_profile_prefix_intersects_too() {
    let gw = Gw::start_with(|c| {
        if let Some(b) = c.bedrock.as_mut() {
            b.regions = vec!["us-east-1".into(), "eu-central-1".into()];
        }
    })
    .await;
    let (_, key) = account_with(&gw, r#"{"email":"prefix@example.com","residency":"eu"}"#).await;
    // `us.` implies `us`: outside the policy, refused (not rerouted).
    let r = gw
        .chat(
            &key,
            &chat_body("us.anthropic.claude-sonnet-4-6", "hi", ""),
            &[],
        )
        .await;
    let m = refused(&r, Some("model"), "us. prefix");
    assert!(
        m.contains("implies `us`")
            && m.contains("account's residency policy `eu`")
            && m.contains("`anthropic/claude-sonnet-4-6`"),
        "{m}"
    );
    assert!(gw.bedrock.requests().is_empty(), "nothing sent upstream");
    // The header wins over the prefix, and is inside the policy.
    let r = gw
        .chat(
            &key,
            &chat_body("us.anthropic.claude-sonnet-4-6", "hi", ""),
            &[("x-gammainfra-region", "eu")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-gammainfra-upstream-model"),
        Some("eu.anthropic.claude-sonnet-4-6")
    );
    // `eu.` and the gateway ID are served by the eu. profile, called in eu-central-1.
    for model in [
        "eu.anthropic.claude-sonnet-4-6",
        "anthropic/claude-sonnet-4-6",
    ] {
        let r = gw.chat(&key, &chat_body(model, "hi", ""), &[]).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert_eq!(
            r.header("x-gammainfra-upstream-region"),
            Some("eu"),
            "{model}"
        );
    }
    for q in gw.bedrock.requests() {
        assert_eq!(
            q.decoded_model_id().as_deref(),
            Some("eu.anthropic.claude-sonnet-4-6")
        );
        assert_eq!(q.signing_region().as_deref(), Some("eu-central-1"));
    }
    assert!(
        gw.anthropic.requests().is_empty(),
        "not Anthropic direct (regions unknown)"
    );
}

#[tokio::test]
async fn a_refusal_under_a_policy_suggests_nothing_outside_it() {
    // Default deployment: Bedrock in us-east-1 only, so the eu. profile is not enabled.
    let gw = Gw::start().await;
    let (_, key) = account_with(&gw, r#"{"email":"hint@example.com","residency":"eu"}"#).await;
    let r = gw
        .chat(
            &key,
            &chat_body("anthropic/claude-sonnet-4-6", "hi", ""),
            &[],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "no_endpoint_in_region");
    let m = r.json()["error"]["message"].as_str().expect("m").to_owned();
    assert!(
        m.contains("eu-central-1") && m.contains("not enabled"),
        "{m}"
    );
    assert!(
        !m.contains("X-GammaInfra-Region: us"),
        "no suggestion the policy refuses: {m}"
    );
    assert!(
        m.contains("only within `eu` (the account's residency policy `eu`)"),
        "{m}"
    );
    assert!(gw.bedrock.requests().is_empty() && gw.anthropic.requests().is_empty());
}

#[tokio::test]
async fn changing_the_policy_takes_effect_on_the_next_request() {
    let gw = resident_gw(|_| {}).await;
    let (id, key) = gw.account("change@example.com").await;
    assert_eq!(
        gw.account_view(&id).await["residency"],
        serde_json::Value::Null
    );
    served_by(
        &gw,
        &ask(&gw, &key, None).await,
        "sim-anywhere",
        "no policy",
    );

    let r = patch(&gw, &id, r#"{"residency":" EU "}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["residency"],
        "eu",
        "normalised, and answered as stored"
    );
    served_by(&gw, &ask(&gw, &key, None).await, "sim-eu-west-1", "eu");
    refused(
        &ask(&gw, &key, Some("us")).await,
        Some("X-GammaInfra-Region"),
        "eu",
    );

    // An empty patch changes nothing.
    let r = patch(&gw, &id, "{}").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["residency"], "eu");

    let r = patch(&gw, &id, r#"{"residency":"us"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    served_by(&gw, &ask(&gw, &key, None).await, "sim-us-east-1", "us");
    refused(
        &ask(&gw, &key, Some("eu")).await,
        Some("X-GammaInfra-Region"),
        "us",
    );

    let r = patch(&gw, &id, r#"{"residency":null}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["residency"], serde_json::Value::Null);
    served_by(&gw, &ask(&gw, &key, None).await, "sim-anywhere", "cleared");
    served_by(
        &gw,
        &ask(&gw, &key, Some("eu")).await,
        "sim-eu-west-1",
        "cleared, eu",
    );
    assert_eq!(
        gw.account_view(&id).await["residency"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn policies_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("restart.db").display());
    let u = url.clone();
    let gw = resident_gw(move |c| c.database_url = u).await;
    let (patched, patched_key) = gw.account("patched@example.com").await;
    assert_eq!(
        patch(&gw, &patched, r#"{"residency":"eu"}"#).await.status,
        200
    );
    let (created, _) =
        account_with(&gw, r#"{"email":"created@example.com","residency":"us"}"#).await;
    let (free, _) = gw.account("free@example.com").await;
    let central = gw
        .key_with(&free, r#"{"residency":"eu-central-1"}"#)
        .await
        .1;
    let legacy = gw
        .key_with(&free, r#"{"default_region":"us-east-1"}"#)
        .await
        .1;
    gw.stop(&url).await;

    let u = url.clone();
    let gw = resident_gw(move |c| c.database_url = u).await;
    assert_eq!(gw.account_view(&patched).await["residency"], "eu");
    assert_eq!(gw.account_view(&created).await["residency"], "us");
    assert_eq!(
        gw.account_view(&free).await["residency"],
        serde_json::Value::Null
    );
    refused(
        &ask(&gw, &patched_key, Some("us")).await,
        Some("X-GammaInfra-Region"),
        "account",
    );
    served_by(
        &gw,
        &ask(&gw, &patched_key, None).await,
        "sim-eu-west-1",
        "account",
    );
    served_by(
        &gw,
        &ask(&gw, &central, None).await,
        "sim-eu-central-1",
        "key",
    );
    refused(
        &ask(&gw, &central, Some("eu-west-1")).await,
        Some("X-GammaInfra-Region"),
        "key",
    );
    served_by(
        &gw,
        &ask(&gw, &legacy, None).await,
        "sim-us-east-1",
        "legacy key",
    );
    refused(
        &ask(&gw, &legacy, Some("eu")).await,
        Some("X-GammaInfra-Region"),
        "legacy key",
    );
}

#[tokio::test]
async fn admin_validation() {
    let gw = resident_gw(|_| {}).await;
    let bad_param = |r: &Resp, code: &str, param: &str| {
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.error_code(), code, "{}", r.text());
        assert_eq!(r.json()["error"]["param"], param, "{}", r.text());
    };
    // Account creation: an unknown region is refused, naming the field, and nothing
    // is created (the same email works afterwards).
    let r = gw
        .admin(
            "POST",
            "/admin/v1/accounts",
            Some(r#"{"email":"v@example.com","residency":"mars"}"#),
        )
        .await;
    bad_param(&r, "invalid_region", "residency");
    let m = r.json()["error"]["message"].as_str().expect("m").to_owned();
    assert!(
        m.starts_with("residency value `mars` is not valid") && m.contains("us, eu"),
        "{m}"
    );
    for bad in [r#""global""#, r#""""#, r#""eu,,us""#] {
        let r = gw
            .admin(
                "POST",
                "/admin/v1/accounts",
                Some(&format!(r#"{{"email":"v@example.com","residency":{bad}}}"#)),
            )
            .await;
        bad_param(&r, "invalid_region", "residency");
    }
    let r = gw
        .admin(
            "POST",
            "/admin/v1/accounts",
            Some(r#"{"email":"v@example.com","residency":5}"#),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "invalid_request");
    let (id, _) = account_with(&gw, r#"{"email":"v@example.com","residency":null}"#).await;
    assert_eq!(
        gw.account_view(&id).await["residency"],
        serde_json::Value::Null
    );

    // Changing it.
    bad_param(
        &patch(&gw, &id, r#"{"residency":"us-east-9"}"#).await,
        "invalid_region",
        "residency",
    );
    let r = patch(&gw, &id, r#"{"residency":"eu","email":"x@example.com"}"#).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "invalid_request");
    let r = gw
        .admin("PATCH", &format!("/admin/v1/accounts/{id}"), None)
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "invalid_request");
    let r = patch(&gw, "acct_nope", r#"{"residency":"eu"}"#).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "account_not_found");
    let r = gw
        .send(
            "PATCH",
            &format!("/admin/v1/accounts/{id}"),
            Some("not-the-admin-token"),
            Some(r#"{"residency":"eu"}"#),
            &[],
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        gw.account_view(&id).await["residency"],
        serde_json::Value::Null,
        "unchanged"
    );

    // Keys.
    let keys = format!("/admin/v1/accounts/{id}/keys");
    bad_param(
        &gw.admin("POST", &keys, Some(r#"{"residency":"mars"}"#))
            .await,
        "invalid_region",
        "residency",
    );
    bad_param(
        &gw.admin("POST", &keys, Some(r#"{"default_region":"mars"}"#))
            .await,
        "invalid_region",
        "default_region",
    );
    bad_param(
        &gw.admin(
            "POST",
            &keys,
            Some(r#"{"residency":"eu","default_region":"eu"}"#),
        )
        .await,
        "invalid_request",
        "default_region",
    );
    let r = gw
        .admin("POST", &keys, Some(r#"{"residency":"EU-West-1"}"#))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["residency"], "eu-west-1");
    assert_eq!(r.json()["default_region"], "eu-west-1", "deprecated copy");
}

/// `gammainfra accounts create --residency`, `accounts update --residency eu|none` and
/// `keys create --residency` (and its deprecated `--default-region`).
#[tokio::test]
async fn the_cli_sets_policies() {
    let gw = resident_gw(|_| {}).await;
    let run = |args: Vec<String>| {
        let url = gw.url.clone();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gammainfra"))
                .args(&args)
                .env("GAMMAINFRA_URL", url)
                .env("GAMMAINFRA_ADMIN_TOKEN", ADMIN)
                .kill_on_drop(true)
                .output()
                .await
                .expect("run");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "{args:?}: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_str::<serde_json::Value>(&stdout).expect("json")
        }
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let v = run(args(&[
        "accounts",
        "create",
        "--email",
        "cli@example.com",
        "--residency",
        "eu",
    ]))
    .await;
    assert_eq!(v["residency"], "eu");
    let id = v["id"].as_str().expect("id").to_owned();
    let v = run(args(&[
        "accounts",
        "update",
        "--account",
        &id,
        "--residency",
        "us",
    ]))
    .await;
    assert_eq!(v["residency"], "us");
    let v = run(args(&[
        "accounts",
        "update",
        "--account",
        &id,
        "--residency",
        "none",
    ]))
    .await;
    assert_eq!(v["residency"], serde_json::Value::Null);
    let v = run(args(&[
        "keys",
        "create",
        "--account",
        &id,
        "--residency",
        "eu-central-1",
    ]))
    .await;
    assert_eq!(v["residency"], "eu-central-1");
    let key = v["api_key"].as_str().expect("key").to_owned();
    served_by(
        &gw,
        &ask(&gw, &key, None).await,
        "sim-eu-central-1",
        "cli key",
    );
    let v = run(args(&[
        "keys",
        "create",
        "--account",
        &id,
        "--default-region",
        "us",
    ]))
    .await;
    assert_eq!(v["residency"], "us");
}
