//! Routing by what is observed: `provider.sort` by latency, the `models` fallback list
//! (within the region constraint, held for at the dearest model), and the
//! `x-gammainfra-route` header that names each attempt.

use crate::harness::*;

fn endpoint(provider: &str, upstream: &str, price: &str, region: Option<&str>) -> String {
    let region = region
        .map(|r| format!("region = \"{r}\"\n"))
        .unwrap_or_default();
    format!(
        r#"
[[models.endpoints]]
provider = "openai_compatible:{provider}"
upstream_id = "{upstream}"
{region}verified = {{ date = "2026-11-25", method = "test" }}
pricing = {{ input = "{price}", output = "{price}", source = {{ kind = "provider", url = "https://example.com/test-prices", read = "2026-11-25" }} }}
"#
    )
}

fn model(id: &str, endpoints: &[String]) -> String {
    format!(
        r#"
[[models]]
id = "{id}"
name = "{id}"
owned_by = "test"
context_window = 100000
max_output_tokens = 1000
capabilities = ["streaming"]
{}"#,
        endpoints.concat()
    )
}

/// Models on OpenAI-compatible servers, all the OpenAI simulator except `dead` (a port
/// where nothing listens): `useast` and `euwest` declare their regions.
async fn routing_gw() -> Gw {
    let catalog = [
        model("test/first", &[endpoint("dead", "sim-first", "1", None)]),
        model("test/second", &[endpoint("live", "sim-second", "1", None)]),
        model("test/third", &[endpoint("live", "sim-third", "1", None)]),
        model(
            "test/us",
            &[endpoint("useast", "sim-us", "1", Some("us-east-1"))],
        ),
        model(
            "test/eu",
            &[endpoint("euwest", "sim-eu", "1", Some("eu-west-1"))],
        ),
        model(
            "test/eu-dead",
            &[endpoint("eudead", "sim-eu-dead", "1", Some("eu-west-1"))],
        ),
        // $1 per output token: 1,000 tokens of output cap is $1,000.
        model(
            "test/dear",
            &[endpoint("live", "sim-dear", "1000000", None)],
        ),
        model(
            "test/speed",
            &[
                endpoint("cheap", "sim-cheap", "1", None),
                endpoint("quick", "sim-quick", "2", None),
            ],
        ),
    ]
    .concat();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}/v1", dead.local_addr().expect("addr"));
    drop(dead);
    Gw::start_with_catalog(&catalog, |c| {
        let live = c.openai.clone().expect("openai");
        let mut d = live.clone();
        d.base_url = dead_url;
        c.openai_compatible = ["live", "useast", "euwest", "cheap", "quick"]
            .into_iter()
            .map(|n| (n.to_owned(), live.clone()))
            .chain(["dead", "eudead"].map(|n| (n.to_owned(), d.clone())))
            .collect();
    })
    .await
}

/// The upstream model IDs the OpenAI simulator was asked for, in order.
fn asked(gw: &Gw) -> Vec<String> {
    gw.openai
        .requests()
        .iter()
        .filter_map(|r| r.json())
        .filter_map(|j| j["model"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_fallback_model_answers_when_the_first_models_endpoint_fails() {
    let gw = routing_gw().await;
    let (id, key) = gw.account("fallback@example.com").await;
    for stream in [false, true] {
        let extra = if stream {
            r#""models":["test/second"],"stream":true"#
        } else {
            r#""models":["test/second"]"#
        };
        let r = gw
            .chat(&key, &chat_body("test/first", "hi", extra), &[])
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-gammainfra-upstream-model"), Some("sim-second"));
        assert_eq!(r.header("x-gammainfra-resolved-model"), Some("test/second"));
        assert_eq!(
            r.header("x-gammainfra-route"),
            Some(
                "sort=price; test/first@openai_compatible:dead:sim-first=connect, \
                 test/second@openai_compatible:live:sim-second=ok"
            ),
            "stream: {stream}"
        );
        let model = if stream {
            let first: serde_json::Value = serde_json::from_str(&r.sse_data()[0]).expect("chunk");
            first["model"].clone()
        } else {
            r.json()["model"].clone()
        };
        assert_eq!(
            model, "sim-second",
            "the answer names the model that answered"
        );
    }
    // `model` absent: the first of `models` is tried first, and `model` is sent upstream.
    let body =
        r#"{"models":["test/first","test/third"],"messages":[{"role":"user","content":"hi"}]}"#;
    let r = gw.chat(&key, body, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gammainfra-upstream-model"), Some("sim-third"));
    assert_eq!(asked(&gw).last().map(String::as_str), Some("sim-third"));
    // The first choice answering: no fallback, no renaming.
    let r = gw
        .chat(
            &key,
            &chat_body("test/second", "hi", r#""models":["test/third"]"#),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gammainfra-resolved-model"), None);
    assert_eq!(
        r.header("x-gammainfra-route"),
        Some("sort=price; test/second@openai_compatible:live:sim-second=ok")
    );
    let view = gw.account_view(&id).await;
    assert_eq!(view["reserved_usd"], "0.00");
    assert_eq!(view["ledger_sum_usd"], view["balance_usd"]);
    assert_eq!(view["ledger_entries"], 5, "trial + one charge per answer");
}

#[tokio::test]
async fn a_refusal_of_the_clients_input_is_answered_not_retried_with_the_next_model() {
    let gw = routing_gw().await;
    let (_, key) = gw.account("refused@example.com").await;
    let r = gw
        .chat(
            &key,
            &chat_body(
                "test/second",
                "[[sim:error 400]]",
                r#""models":["test/third"]"#,
            ),
            &[],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "upstream_rejected");
    assert_eq!(
        r.header("x-gammainfra-route"),
        Some("sort=price; test/second@openai_compatible:live:sim-second=400")
    );
    assert_eq!(asked(&gw), ["sim-second"]);
}

#[tokio::test]
async fn fallback_models_stay_within_the_region_constraint() {
    let gw = routing_gw().await;
    let (_, key) = gw.account("fallback-region@example.com").await;
    // The first model has no endpoint in the EU: skipped, the EU model answers.
    let eu = [("x-gammainfra-region", "eu")];
    let r = gw
        .chat(
            &key,
            &chat_body("test/us", "hi", r#""models":["test/eu"]"#),
            &eu,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gammainfra-upstream-model"), Some("sim-eu"));
    assert_eq!(
        r.header("x-gammainfra-route"),
        Some("sort=price; test/eu@openai_compatible:euwest:sim-eu=ok")
    );
    // Under `us`, the first model answers.
    let r = gw
        .chat(
            &key,
            &chat_body("test/us", "hi", r#""models":["test/eu"]"#),
            &[("x-gammainfra-region", "us")],
        )
        .await;
    assert_eq!(r.header("x-gammainfra-upstream-model"), Some("sim-us"));
    // The EU endpoint fails: the US fallback is never tried.
    let r = gw
        .chat(
            &key,
            &chat_body(
                "test/eu-dead",
                "hi",
                r#""models":["test/us","test/second"]"#,
            ),
            &eu,
        )
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(
        r.header("x-gammainfra-route"),
        Some("sort=price; test/eu-dead@openai_compatible:eudead:sim-eu-dead=connect")
    );
    // No model has an endpoint in the EU: the first model's refusal.
    let r = gw
        .chat(
            &key,
            &chat_body("test/us", "hi", r#""models":["test/second"]"#),
            &eu,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "no_endpoint_in_region");
    let m = r.json()["error"]["message"].as_str().expect("m").to_owned();
    assert!(m.contains("test/us"), "{m}");
    assert_eq!(
        r.header("x-gammainfra-route"),
        None,
        "nothing was attempted"
    );
    assert_eq!(
        asked(&gw),
        ["sim-eu", "sim-us"],
        "nothing outside the constraint"
    );
}

#[tokio::test]
async fn the_credit_hold_covers_the_dearest_model_that_may_answer() {
    let gw = routing_gw().await;
    let (id, key) = gw.account("dear@example.com").await;
    let r = gw
        .chat(&key, &chat_body("test/second", "hi", ""), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The dear model might answer, at up to $1,000: more than the $3 trial.
    let r = gw
        .chat(
            &key,
            &chat_body("test/second", "hi", r#""models":["test/dear"]"#),
            &[],
        )
        .await;
    assert_eq!(r.status, 402, "{}", r.text());
    assert_eq!(r.error_code(), "insufficient_credits");
    assert_eq!(asked(&gw), ["sim-second"], "nothing sent upstream");
    let view = gw.account_view(&id).await;
    assert_eq!(view["reserved_usd"], "0.00");
}

#[tokio::test]
async fn models_are_checked_before_anything_is_held_or_sent() {
    let gw = routing_gw().await;
    let (_, key) = gw.account("models-checked@example.com").await;
    let r = gw
        .chat(
            &key,
            &chat_body(
                "test/second",
                "hi",
                r#""models":["test/third","test/nope"]"#,
            ),
            &[],
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.error_code(), "model_not_found");
    let e = &r.json()["error"];
    assert_eq!(e["param"], "models[1]");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("test/nope")),
        "{e}"
    );
    let nine = [r#""test/third""#; 9].join(",");
    let r = gw
        .chat(
            &key,
            &chat_body("test/second", "hi", &format!(r#""models":[{nine}]"#)),
            &[],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["param"], "models");
    let r = gw
        .chat(
            &key,
            &chat_body("test/second", "hi", r#""provider":{"sort":"fastest"}"#),
            &[],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["param"], "provider.sort");
    assert!(asked(&gw).is_empty());
}

#[tokio::test]
async fn sort_by_latency_moves_traffic_to_the_faster_endpoint_once_observed() {
    let gw = routing_gw().await;
    let (_, key) = gw.account("latency@example.com").await;
    let latency = r#""stream":true,"provider":{"sort":"latency"}"#;
    let route = |r: &Resp| {
        r.header("x-gammainfra-route")
            .unwrap_or_default()
            .to_owned()
    };
    // Nothing observed: price order, so the cheap endpoint is measured first (slow).
    let r = gw
        .chat(
            &key,
            &chat_body("test/speed", "hi [[sim:slow 300]]", latency),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        route(&r),
        "sort=latency; test/speed@openai_compatible:cheap:sim-cheap=ok"
    );
    // Then the unobserved one, fast.
    let r = gw
        .chat(&key, &chat_body("test/speed", "hi", latency), &[])
        .await;
    assert_eq!(r.header("x-gammainfra-upstream-model"), Some("sim-quick"));
    // Both observed: the faster one, although it costs twice as much.
    for _ in 0..3 {
        let r = gw
            .chat(&key, &chat_body("test/speed", "hi", latency), &[])
            .await;
        assert_eq!(
            route(&r),
            "sort=latency; test/speed@openai_compatible:quick:sim-quick=ok"
        );
    }
    let router = &gw.state.router;
    let cheap = router
        .observed("openai_compatible:cheap:sim-cheap")
        .expect("endpoint");
    let quick = router
        .observed("openai_compatible:quick:sim-quick")
        .expect("endpoint");
    assert!(cheap.ttft_us.expect("observed") >= 300_000, "{cheap:?}");
    assert!(quick.ttft_us < cheap.ttft_us, "{quick:?} {cheap:?}");
    assert_eq!(quick.ttft_samples, 4);
    // Streams that ended normally fed throughput too.
    assert_eq!(quick.throughput_samples, 4);
    // Price order is unchanged by observations.
    let r = gw
        .chat(
            &key,
            &chat_body("test/speed", "hi", r#""stream":true"#),
            &[],
        )
        .await;
    assert_eq!(
        route(&r),
        "sort=price; test/speed@openai_compatible:cheap:sim-cheap=ok"
    );
    // A non-streamed answer feeds throughput, not time to first token.
    let r = gw.chat(&key, &chat_body("test/speed", "hi", ""), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let after = router
        .observed("openai_compatible:cheap:sim-cheap")
        .expect("endpoint");
    assert_eq!(after.ttft_samples, 2);
    assert_eq!(after.throughput_samples, 3);
}

#[tokio::test]
async fn sort_by_throughput_moves_traffic_to_the_endpoint_that_streams_faster() {
    let gw = routing_gw().await;
    let (_, key) = gw.account("throughput@example.com").await;
    // Every frame from the cheap endpoint takes 30 ms; the dear one streams at once.
    let text = "one two three four five six [[sim:drip 30 @sim-cheap]]";
    let body = chat_body(
        "test/speed",
        text,
        r#""stream":true,"provider":{"sort":"throughput"}"#,
    );
    let mut served = Vec::new();
    for _ in 0..4 {
        let r = gw.chat(&key, &body, &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        served.push(
            r.header("x-gammainfra-upstream-model")
                .unwrap_or_default()
                .to_owned(),
        );
    }
    // Price order while unobserved, then the faster one.
    assert_eq!(served, ["sim-cheap", "sim-quick", "sim-quick", "sim-quick"]);
    let router = &gw.state.router;
    let cheap = router
        .observed("openai_compatible:cheap:sim-cheap")
        .expect("endpoint");
    let quick = router
        .observed("openai_compatible:quick:sim-quick")
        .expect("endpoint");
    assert!(
        quick.tokens_per_s_milli > cheap.tokens_per_s_milli,
        "{quick:?} {cheap:?}"
    );
}

#[tokio::test]
async fn a_fallback_model_answers_after_a_retryable_upstream_error() {
    let gw = routing_gw().await;
    let (_, key) = gw.account("fallback-503@example.com").await;
    let r = gw
        .chat(
            &key,
            &chat_body(
                "test/second",
                "hi [[sim:error 503 @sim-second]]",
                r#""models":["test/third"],"provider":{"sort":"latency"}"#,
            ),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-gammainfra-route"),
        Some(
            "sort=latency; test/second@openai_compatible:live:sim-second=503, \
             test/third@openai_compatible:live:sim-third=ok"
        )
    );
    assert_eq!(r.json()["model"], "sim-third");
    // Without `models`, the same failure is the answer, with its route.
    let r = gw
        .chat(
            &key,
            &chat_body("test/second", "hi [[sim:error 503 @sim-second]]", ""),
            &[],
        )
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(
        r.header("x-gammainfra-route"),
        Some("sort=price; test/second@openai_compatible:live:sim-second=503")
    );
}
