//! `GET /metrics`: the Prometheus series after real traffic, checked against the
//! answers and the ledger.

use std::collections::BTreeMap;

use serde_json::json;

use crate::harness::*;

/// One sample of the exposition: its name, labels and value.
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text exposition (label values here hold no `"`, `,` or `}`).
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("a sample line");
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => {
                    let inner = rest.strip_suffix('}').expect("closing brace");
                    let labels = inner
                        .split(',')
                        .filter(|kv| !kv.is_empty())
                        .map(|kv| {
                            let (k, v) = kv.split_once('=').expect("label");
                            (k.to_owned(), v.trim_matches('"').to_owned())
                        })
                        .collect();
                    (n.to_owned(), labels)
                }
                None => (series.to_owned(), BTreeMap::new()),
            };
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("value of `{l}`")),
            };
            Sample {
                name,
                labels,
                value,
            }
        })
        .collect()
}

/// The sum of the samples named `name` whose labels include every pair of `want`.
fn sum(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

fn has(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> bool {
    samples.iter().any(|s| {
        s.name == name
            && want
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

/// A model whose cheapest endpoint refuses connections, so a request fails over.
const FAILOVER: &str = r#"
[[models]]
id = "test/failover"
name = "Fail-over test model"
owned_by = "test"
context_window = 100000
max_output_tokens = 1000

[[models.endpoints]]
provider = "openai_compatible:dead"
upstream_id = "sim-dead"
verified = { date = "2026-11-25", method = "test" }
pricing = { input = "0.1", output = "0.1", source = { kind = "provider", url = "https://example.com/test-prices", read = "2026-11-25" } }

[[models.endpoints]]
provider = "openai_compatible:live"
upstream_id = "sim-live"
verified = { date = "2026-11-25", method = "test" }
pricing = { input = "1", output = "2", source = { kind = "provider", url = "https://example.com/test-prices", read = "2026-11-25" } }
"#;

#[tokio::test]
async fn metrics_count_requests_tokens_cost_and_latency_after_traffic() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}/v1", dead.local_addr().expect("addr"));
    drop(dead);
    let gw = Gw::start_with_catalog(FAILOVER, |c| {
        let live = c.openai.clone().expect("openai");
        let mut d = live.clone();
        d.base_url = dead_url;
        c.openai_compatible = vec![("dead".into(), d), ("live".into(), live)];
    })
    .await;

    // Admin only, like the admin API.
    let r = gw.send("GET", "/metrics", None, None, &[]).await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = gw
        .send("GET", "/metrics", Some("not-the-token"), None, &[])
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    let (id, key) = gw.account("metrics@example.com").await;
    let r = gw.send("GET", "/metrics", Some(&key), None, &[]).await;
    assert_eq!(r.status, 401, "a customer key is not the admin token");

    // Traffic: a non-streamed and a streamed chat completion, a message, a fail-over,
    // a stream that breaks, an unknown model and a request refused for credit.
    let mut input = 0;
    let mut output = 0;
    let plain = gw
        .chat(&key, &chat_body("openai/gpt-4o-mini", "hello", ""), &[])
        .await;
    assert_eq!(plain.status, 200, "{}", plain.text());
    let u = &plain.json()["usage"];
    input += u["prompt_tokens"].as_u64().expect("prompt");
    output += u["completion_tokens"].as_u64().expect("completion");

    let streamed = gw
        .chat(
            &key,
            &chat_body(
                "openai/gpt-4o-mini",
                "count to three",
                r#""stream":true,"stream_options":{"include_usage":true}"#,
            ),
            &[],
        )
        .await;
    assert_eq!(streamed.status, 200, "{}", streamed.text());
    let data = streamed.sse_data();
    let usage: serde_json::Value =
        serde_json::from_str(&data[data.len() - 2]).expect("usage chunk");
    input += usage["usage"]["prompt_tokens"].as_u64().expect("prompt");
    output += usage["usage"]["completion_tokens"]
        .as_u64()
        .expect("completion");

    let message = json!({
        "model": "claude-haiku-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hello there"}],
    });
    let m = gw
        .send(
            "POST",
            "/v1/messages",
            None,
            Some(&message.to_string()),
            &[
                ("x-api-key", &key),
                ("anthropic-version", "2023-06-01"),
                ("x-gammainfra-provider", "anthropic"),
            ],
        )
        .await;
    assert_eq!(m.status, 200, "{}", m.text());
    let mu = &m.json()["usage"];

    let failover = gw
        .chat(&key, &chat_body("test/failover", "hi", ""), &[])
        .await;
    assert_eq!(failover.status, 200, "{}", failover.text());
    assert_eq!(
        failover.header("x-gammainfra-provider"),
        Some("openai_compatible:live")
    );

    // A stream that breaks after its 200.
    let broken = gw
        .chat(
            &key,
            &chat_body(
                "meta/llama3-70b-instruct",
                "[[sim:midstream-error]]",
                r#""stream":true"#,
            ),
            &[],
        )
        .await;
    assert_eq!(broken.status, 200, "{}", broken.text());

    let unknown = gw
        .chat(&key, &chat_body("nobody/no-such-model", "hi", ""), &[])
        .await;
    let unknown_code = unknown.error_code();
    let poor = gw
        .chat(
            &key,
            &chat_body("anthropic/claude-opus-4-7", "hi", r#""max_tokens":128000"#),
            &[],
        )
        .await;
    assert_eq!(poor.status, 402, "{}", poor.text());

    // The account view commits every settlement first: the ledger's queue is empty.
    let view = gw.account_view(&id).await;
    let spent = usd_to_nanos(view["spent_usd"].as_str().expect("spent"));
    assert!(spent > 0);

    let r = gw.admin("GET", "/metrics", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{:?}",
        r.header("content-type")
    );
    let text = r.text();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let s = parse(&text);
    let chat = ("route", "/v1/chat/completions");
    let mini = ("model", "openai/gpt-4o-mini");

    // Requests by route, model, provider and status.
    assert_eq!(
        sum(
            &s,
            "gammainfra_requests_total",
            &[chat, mini, ("provider", "openai"), ("status", "200")]
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        sum(
            &s,
            "gammainfra_requests_total",
            &[
                ("route", "/v1/messages"),
                ("provider", "anthropic"),
                ("status", "200")
            ]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sum(
            &s,
            "gammainfra_requests_total",
            &[
                chat,
                ("provider", "openai_compatible:live"),
                ("status", "200")
            ]
        ),
        1.0
    );
    let unknown_status = unknown.status.to_string();
    assert_eq!(
        sum(
            &s,
            "gammainfra_requests_total",
            &[chat, ("model", ""), ("status", &unknown_status)]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sum(
            &s,
            "gammainfra_requests_total",
            &[chat, ("model", ""), ("status", "402")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "gammainfra_requests_total",
            &[chat, ("provider", "bedrock"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(sum(&s, "gammainfra_requests_total", &[]), 7.0, "{text}");
    // Errors by code; the fail-over's first call, by endpoint and kind.
    assert_eq!(
        sum(
            &s,
            "gammainfra_errors_total",
            &[chat, ("status", "402"), ("code", "insufficient_credits")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "gammainfra_errors_total",
            &[chat, ("code", &unknown_code)]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "gammainfra_errors_total",
            &[chat, ("status", "200"), ("code", "upstream_error")]
        ),
        1.0,
        "the broken stream"
    );
    assert_eq!(sum(&s, "gammainfra_errors_total", &[]), 3.0, "{text}");
    assert_eq!(
        sum(
            &s,
            "gammainfra_upstream_errors_total",
            &[("provider", "openai_compatible:dead"), ("kind", "connect")]
        ),
        1.0,
        "{text}"
    );

    // An endpoint that only failed has no request series of its own.
    assert!(!has(
        &s,
        "gammainfra_requests_total",
        &[("provider", "openai_compatible:dead")]
    ));

    // Tokens as the answers reported them; cost as the ledger charged it.
    let tokens = |model: &str, direction: &str| {
        sum(
            &s,
            "gammainfra_tokens_total",
            &[("model", model), ("direction", direction)],
        )
    };
    assert_eq!(tokens("openai/gpt-4o-mini", "input"), input as f64);
    assert_eq!(tokens("openai/gpt-4o-mini", "output"), output as f64);
    let haiku = s
        .iter()
        .find(|x| {
            x.name == "gammainfra_tokens_total"
                && x.labels.get("provider").map(String::as_str) == Some("anthropic")
        })
        .and_then(|x| x.labels.get("model").cloned())
        .expect("the message's model");
    assert_eq!(
        tokens(&haiku, "input"),
        mu["input_tokens"].as_u64().expect("input") as f64
    );
    assert_eq!(
        tokens(&haiku, "output"),
        mu["output_tokens"].as_u64().expect("output") as f64
    );
    assert_eq!(
        sum(&s, "gammainfra_cost_nanodollars_total", &[]),
        spent as f64,
        "{text}"
    );
    assert_eq!(
        sum(&s, "gammainfra_cost_nanodollars_total", &[mini]),
        (usd_to_nanos(plain.header("x-gammainfra-cost-usd").expect("cost"))
            + usd_to_nanos(usage["usage"]["cost_usd"].as_str().expect("cost"))) as f64
    );

    // Latency: every request has a duration; those that called a provider have an
    // upstream time and an overhead; the stream has its time to first token.
    assert_eq!(
        sum(&s, "gammainfra_request_duration_seconds_count", &[]),
        7.0
    );
    assert_eq!(
        sum(
            &s,
            "gammainfra_request_duration_seconds_count",
            &[chat, mini]
        ),
        2.0
    );
    assert_eq!(
        sum(
            &s,
            "gammainfra_request_duration_seconds_bucket",
            &[chat, mini, ("le", "+Inf")]
        ),
        2.0
    );
    for h in [
        "gammainfra_upstream_duration_seconds_count",
        "gammainfra_gateway_overhead_seconds_count",
    ] {
        assert_eq!(sum(&s, h, &[]), 5.0, "{h}");
        assert_eq!(sum(&s, h, &[chat, mini]), 2.0, "{h}");
    }
    assert_eq!(
        sum(&s, "gammainfra_time_to_first_token_seconds_count", &[]),
        2.0
    );
    assert_eq!(
        sum(
            &s,
            "gammainfra_time_to_first_token_seconds_count",
            &[chat, mini]
        ),
        1.0
    );
    let total = sum(&s, "gammainfra_request_duration_seconds_sum", &[chat, mini]);
    let upstream = sum(
        &s,
        "gammainfra_upstream_duration_seconds_sum",
        &[chat, mini],
    );
    let overhead = sum(&s, "gammainfra_gateway_overhead_seconds_sum", &[chat, mini]);
    assert!(upstream > 0.0 && overhead > 0.0 && upstream <= total);
    assert!(
        (total - upstream - overhead).abs() < 1e-6,
        "{total} {upstream} {overhead}"
    );

    // The ledger, the circuits and the connections, read at the scrape.
    assert!(sum(&s, "gammainfra_ledger_commit_duration_seconds_count", &[]) >= 1.0);
    assert_eq!(sum(&s, "gammainfra_ledger_queue_depth", &[]), 0.0);
    assert_eq!(sum(&s, "gammainfra_reservations_in_flight", &[]), 0.0);
    assert!(
        sum(&s, "gammainfra_connections", &[]) >= 1.0,
        "this scrape's"
    );
    assert!(has(
        &s,
        "gammainfra_circuit_open",
        &[
            ("endpoint", "openai:gpt-4o-mini"),
            mini,
            ("provider", "openai")
        ]
    ));
    assert_eq!(sum(&s, "gammainfra_circuit_open", &[]), 0.0, "none open");
    assert!(sum(&s, "gammainfra_upstream_connections_opened_total", &[]) >= 2.0);
    assert!(has(&s, "gammainfra_upstream_connections_open", &[]));
}

#[tokio::test]
async fn each_gateway_counts_its_own_requests() {
    let a = Gw::start().await;
    let b = Gw::start().await;
    let (_, key) = a.account("a@example.com").await;
    let r = a
        .chat(&key, &chat_body("openai/gpt-4o-mini", "hello", ""), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sa = parse(&a.admin("GET", "/metrics", None).await.text());
    let sb = parse(&b.admin("GET", "/metrics", None).await.text());
    assert_eq!(sum(&sa, "gammainfra_requests_total", &[]), 1.0);
    assert_eq!(sum(&sb, "gammainfra_requests_total", &[]), 0.0);
}

/// `/v1/embeddings` has its own series: the request answered with its model, provider
/// and region, its input tokens and cost, its durations, a refusal by code, and a
/// provider failure by kind.
#[tokio::test]
async fn embeddings_requests_have_their_series() {
    let gw = Gw::start().await;
    let (id, key) = gw.account("metrics-embed@example.com").await;
    let embed = |body: &'static str| gw.send("POST", "/v1/embeddings", Some(&key), Some(body), &[]);
    let ok = embed(r#"{"model":"openai/text-embedding-3-small","input":["one two three","four"]}"#)
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let tokens = ok.json()["usage"]["prompt_tokens"]
        .as_u64()
        .expect("prompt_tokens");
    let cost = usd_to_nanos(ok.header("x-gammainfra-cost-usd").expect("cost"));
    let refused = embed(r#"{"model":"openai/gpt-4o-mini","input":"hi"}"#).await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    let failed =
        embed(r#"{"model":"amazon/titan-embed-text-v2","input":"[[sim:error 500]]"}"#).await;
    assert_eq!(failed.status, 502, "{}", failed.text());
    gw.account_view(&id).await;

    let text = gw.admin("GET", "/metrics", None).await.text();
    let s = parse(&text);
    let route = ("route", "/v1/embeddings");
    let small = ("model", "openai/text-embedding-3-small");
    assert_eq!(
        sum(
            &s,
            "gammainfra_requests_total",
            &[route, small, ("provider", "openai"), ("status", "200")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sum(&s, "gammainfra_requests_total", &[route]),
        3.0,
        "{text}"
    );
    assert_eq!(
        sum(
            &s,
            "gammainfra_errors_total",
            &[route, ("status", "400"), ("code", "not_an_embedding_model")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sum(
            &s,
            "gammainfra_errors_total",
            &[route, ("status", "502"), ("code", "upstream_error")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sum(
            &s,
            "gammainfra_upstream_errors_total",
            &[
                ("model", "amazon/titan-embed-text-v2"),
                ("provider", "bedrock")
            ]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sum(
            &s,
            "gammainfra_tokens_total",
            &[small, ("direction", "input")]
        ),
        tokens as f64
    );
    assert_eq!(
        sum(
            &s,
            "gammainfra_tokens_total",
            &[small, ("direction", "output")]
        ),
        0.0
    );
    assert_eq!(
        sum(&s, "gammainfra_cost_nanodollars_total", &[small]),
        cost as f64
    );
    assert_eq!(
        sum(&s, "gammainfra_request_duration_seconds_count", &[route]),
        3.0
    );
    for h in [
        "gammainfra_upstream_duration_seconds_count",
        "gammainfra_gateway_overhead_seconds_count",
    ] {
        assert_eq!(sum(&s, h, &[route, small]), 1.0, "{h}");
        assert_eq!(sum(&s, h, &[route]), 2.0, "{h}: {text}");
    }
    assert_eq!(
        sum(&s, "gammainfra_time_to_first_token_seconds_count", &[route]),
        0.0
    );
    assert_eq!(
        sum(
            &s,
            "gammainfra_requests_total",
            &[("route", "/v1/chat/completions")]
        ),
        0.0
    );
}
