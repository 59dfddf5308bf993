//! Fields that would change what a provider charges: refused before any credit is held
//! or any provider is called, unless the gateway bills them exactly
//! (docs/billing.md, "Fields that change the price").

use crate::harness::*;

#[tokio::test]
async fn unpriced_tiers_and_features_are_400_before_anything_is_held_or_sent() {
    let gw = Gw::start().await;
    let (id, key) = gw.account("tiers@example.com").await;
    for (extra, param) in [
        (r#""service_tier":"priority""#, "service_tier"),
        (r#""service_tier":"flex""#, "service_tier"),
        (r#""service_tier":"scale""#, "service_tier"),
        (r#""service_tier":"priority","stream":true"#, "service_tier"),
        (r#""web_search_options":{}"#, "web_search_options"),
        (r#""audio":{"voice":"alloy","format":"wav"}"#, "audio"),
        (r#""modalities":["text","audio"]"#, "modalities"),
        (
            r#""prediction":{"type":"content","content":"hello"}"#,
            "prediction",
        ),
        (r#""n":3"#, "n"),
    ] {
        for model in ["openai/gpt-4o", "openai/gpt-4o-mini", "claude-haiku-4-5"] {
            let r = gw.chat(&key, &chat_body(model, "hi", extra), &[]).await;
            assert_eq!(r.status, 400, "{model} {extra}: {}", r.text());
            assert_eq!(r.error_code(), "invalid_request", "{extra}");
            let v = r.json();
            assert_eq!(v["error"]["type"], "invalid_request_error");
            assert_eq!(v["error"]["param"], param, "{extra}");
            let m = v["error"]["message"].as_str().unwrap_or_default();
            assert!(m.contains(param), "{extra}: {m}");
        }
    }
    assert!(gw.openai.requests().is_empty(), "nothing reached OpenAI");
    assert!(
        gw.anthropic.requests().is_empty(),
        "nothing reached Anthropic"
    );
    let c = gw.credits(&key).await;
    assert_eq!(c["balance_usd"], "3.00");
    assert_eq!(c["reserved_usd"], "0.00");
    assert_eq!(c["spent_usd"], "0.00");
    let view = gw.account_view(&id).await;
    assert_eq!(view["ledger_entries"], 1);
    assert_eq!(view["ledger_sum_usd"], "3.00");
}

#[tokio::test]
async fn the_standard_tier_is_what_reaches_openai_and_is_billed_at_list_price() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("standard@example.com").await;
    let mut spent = 0i128;
    for (i, extra) in [
        "",
        r#""service_tier":"auto""#,
        r#""service_tier":"default""#,
        r#""service_tier":null"#,
        r#""service_tier":"auto","stream":true,"stream_options":{"include_usage":true}"#,
    ]
    .into_iter()
    .enumerate()
    {
        let r = gw
            .chat(&key, &chat_body("openai/gpt-4o-mini", "hi", extra), &[])
            .await;
        assert_eq!(r.status, 200, "{extra}: {}", r.text());
        let usage = if extra.contains("stream") {
            let data = r.sse_data();
            let last = data
                .iter()
                .rev()
                .find(|d| d.contains("\"usage\""))
                .expect("usage chunk");
            serde_json::from_str::<serde_json::Value>(last).expect("json")["usage"].clone()
        } else {
            r.json()["usage"].clone()
        };
        // Billed at the catalog's (standard-tier) prices.
        let input = usage["prompt_tokens"].as_u64().expect("prompt");
        let output = usage["completion_tokens"].as_u64().expect("completion");
        let want = round_sum(&[
            nanos_at(input, &price(&gw, "gpt-4o-mini", "input")),
            nanos_at(output, &price(&gw, "gpt-4o-mini", "output")),
        ]);
        let cost = usd_to_nanos(usage["cost_usd"].as_str().expect("cost"));
        assert_eq!(cost, want, "{extra}");
        spent += cost;
        let sent = gw.openai.requests()[i].json().expect("json body");
        assert_eq!(sent["service_tier"], "default", "{extra}: {sent}");
        assert!(sent.get("provider").is_none());
    }
    let c = gw.credits(&key).await;
    assert_eq!(usd_to_nanos(c["spent_usd"].as_str().expect("spent")), spent);
}

#[tokio::test]
async fn fields_the_gateway_has_not_reviewed_do_not_reach_openai() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("unknown-fields@example.com").await;
    let r = gw
        .chat(
            &key,
            &chat_body(
                "openai/gpt-4o",
                "hi",
                r#""web_search_options":null,"audio":null,"prediction":null,"modalities":["text"],"some_future_priced_option":{"on":true},"seed":3"#,
            ),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = gw.openai.requests()[0].json().expect("json body");
    for gone in [
        "web_search_options",
        "audio",
        "prediction",
        "some_future_priced_option",
    ] {
        assert!(sent.get(gone).is_none(), "{gone}: {sent}");
    }
    assert_eq!(sent["seed"], 3);
    assert_eq!(sent["modalities"][0], "text");
}
