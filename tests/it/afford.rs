//! A request that sets no output cap is capped at what its credit affords instead of
//! refused; one that sets a cap it cannot afford is refused naming the cap it could.

use crate::harness::*;

/// Nano-dollars per token of a price in USD per million tokens ("27.50" → 27_500).
fn per_token(price: &str) -> i128 {
    let (n, d) = nanos_at(1, price);
    assert_eq!(
        n % d,
        0,
        "{price} is not a whole number of nano-dollars per token"
    );
    n / d
}

/// The largest output cap whose worst case (every body byte a token at the dearest
/// input-side price, the output at the output price) fits `room` nano-dollars.
fn affordable(room: i128, body_len: usize, input_side: i128, output: i128) -> i128 {
    (room - body_len as i128 * input_side) / output
}

on_both_backends!(
    a_first_request_without_max_tokens_is_capped_at_what_the_trial_affords,
    a_cap_the_credit_cannot_cover_is_refused_with_the_affordable_figure,
);

/// The README's first request, to Claude Opus 4.7 on a $3.00 trial: its whole output
/// cap (128,000 tokens at $27.50 per million, $3.52) is more than the trial, so the
/// request is capped at what $3.00 affords and answered, and the cap is sent upstream.
async fn a_first_request_without_max_tokens_is_capped_at_what_the_trial_affords(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let (_, key) = gw.account("first@example.com").await;
    let body = chat_body("anthropic/claude-opus-4-7", "Hello!", "");
    // The dearest planned endpoint sizes the hold: the us. profile (the eu., jp. and au.
    // ones are not configured here), whose 1-hour cache writes are its dearest input.
    let input = per_token(&price(
        &gw,
        "us.anthropic.claude-opus-4-7",
        "cache_write_1h",
    ));
    let output = per_token(&price(&gw, "us.anthropic.claude-opus-4-7", "output"));
    let cap = affordable(3_000_000_000, body.len(), input, output);
    assert!(cap > 100_000 && cap < 128_000, "{cap}");

    let r = gw.chat(&key, &body, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-gammainfra-output-capped"),
        Some(cap.to_string().as_str())
    );
    // The provider was asked for no more than that.
    let sent = match r.header("x-gammainfra-provider") {
        Some("bedrock") => {
            let up = gw.bedrock.requests().last().cloned().expect("request");
            up.json().expect("json")["inferenceConfig"]["maxTokens"].clone()
        }
        Some("anthropic") => {
            let up = gw.anthropic.requests().last().cloned().expect("request");
            up.json().expect("json")["max_tokens"].clone()
        }
        p => panic!("served by {p:?}"),
    };
    assert_eq!(sent, serde_json::json!(cap));

    // Streamed, the same, announced before the first byte.
    let stream = chat_body("anthropic/claude-opus-4-7", "Hello!", r#""stream":true"#);
    let r = gw.chat(&key, &stream, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let available = usd_to_nanos(gw.credits(&key).await["available_usd"].as_str().expect("s"));
    let capped: i128 = r
        .header("x-gammainfra-output-capped")
        .expect("capped")
        .parse()
        .expect("n");
    assert!(capped <= cap && capped > 0, "{capped}");
    assert!(available < 3_000_000_000);

    // A request with a cap it can afford is not touched.
    let small = chat_body("anthropic/claude-opus-4-7", "Hello!", r#""max_tokens":100"#);
    let r = gw.chat(&key, &small, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gammainfra-output-capped"), None);
}

/// A request that sets `max_tokens` beyond what the credit affords is refused with the
/// 402 it always got, whose message now names the largest cap that would be admitted;
/// that cap is then admitted.
async fn a_cap_the_credit_cannot_cover_is_refused_with_the_affordable_figure(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let (_, key) = gw.account("capped@example.com").await;
    let body = chat_body(
        "anthropic/claude-opus-4-7",
        "Hello!",
        r#""max_tokens":128000"#,
    );
    let before = gw.credits(&key).await;
    let r = gw.chat(&key, &body, &[]).await;
    assert_eq!(r.status, 402, "{}", r.text());
    assert_eq!(r.error_code(), "insufficient_credits");
    let input = per_token(&price(
        &gw,
        "us.anthropic.claude-opus-4-7",
        "cache_write_1h",
    ));
    let output = per_token(&price(&gw, "us.anthropic.claude-opus-4-7", "output"));
    let cap = affordable(3_000_000_000, body.len(), input, output);
    let message = r.json()["error"]["message"].as_str().expect("m").to_owned();
    assert!(
        message.ends_with(&format!(
            "It asks for up to 128000 output tokens; the credit it may use affords at most {cap}."
        )),
        "{message}"
    );
    // Refused, nothing changed.
    assert_eq!(gw.credits(&key).await, before);

    // The figure is exact: it is admitted, one more token is not.
    let over = chat_body(
        "anthropic/claude-opus-4-7",
        "Hello!",
        &format!(r#""max_tokens":{:06}"#, cap + 1),
    );
    assert_eq!(over.len(), body.len());
    assert_eq!(gw.chat(&key, &over, &[]).await.status, 402);
    let fits = chat_body(
        "anthropic/claude-opus-4-7",
        "Hello!",
        &format!(r#""max_tokens":{cap:06}"#),
    );
    let r = gw.chat(&key, &fits, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gammainfra-output-capped"), None);
}

/// A key's spending limit caps an uncapped request the same way, on OpenAI too, where
/// the cap is sent as `max_completion_tokens` (a `null` cap from the client is replaced,
/// not sent twice).
#[tokio::test]
async fn a_spending_limit_caps_an_uncapped_request_sent_as_max_completion_tokens() {
    let gw = Gw::start().await;
    let (account, _) = gw.account("limited@example.com").await;
    let (_, key) = gw
        .key_with(&account, r#"{"limits":{"daily_usd":"0.01"}}"#)
        .await;
    // gpt-4o's whole cap, 16,384 tokens at $10 per million, is $0.16.
    let body = chat_body("openai/gpt-4o", "Hello!", r#""max_tokens":null"#);
    let input = per_token(&price(&gw, "gpt-4o", "input"));
    let output = per_token(&price(&gw, "gpt-4o", "output"));
    let cap = affordable(10_000_000, body.len(), input, output);
    assert!(cap > 100 && cap < 16_384, "{cap}");
    let r = gw.chat(&key, &body, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-gammainfra-output-capped"),
        Some(cap.to_string().as_str())
    );
    let up = gw.openai.requests().last().cloned().expect("request");
    let text = String::from_utf8_lossy(&up.body).into_owned();
    assert!(!text.contains("\"max_tokens\""), "{text}");
    assert_eq!(
        text.matches("\"max_completion_tokens\"").count(),
        1,
        "{text}"
    );
    assert_eq!(
        up.json().expect("json")["max_completion_tokens"],
        serde_json::json!(cap)
    );

    // A body whose input alone could cost more than the room left is still refused.
    let big = chat_body("openai/gpt-4o", &"word ".repeat(1000), "");
    let r = gw.chat(&key, &big, &[]).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "request_exceeds_spend_limit");
}
