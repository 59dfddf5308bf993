//! `POST /v1/embeddings` against the simulated OpenAI and Bedrock: each provider, batches,
//! token arrays, `dimensions`, base64, exact billing, region constraints, refusals that
//! change nothing and provider failures that cost nothing.

use serde_json::Value;

use crate::harness::*;

async fn embed(gw: &Gw, key: &str, body: &str, headers: &[(&str, &str)]) -> Resp {
    gw.send("POST", "/v1/embeddings", Some(key), Some(body), headers)
        .await
}

/// The float vectors of an answer.
fn vectors(v: &Value) -> Vec<Vec<f32>> {
    v["data"]
        .as_array()
        .expect("data")
        .iter()
        .enumerate()
        .map(|(i, d)| {
            assert_eq!(d["object"], "embedding");
            assert_eq!(d["index"], i);
            d["embedding"]
                .as_array()
                .expect("floats")
                .iter()
                .map(|x| x.as_f64().expect("number") as f32)
                .collect()
        })
        .collect()
}

fn decode_base64(s: &str) -> Vec<f32> {
    let bytes = aws_smithy_types::base64::decode(s).expect("base64");
    assert_eq!(bytes.len() % 4, 0);
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Checks the answer's usage against the catalog price of `upstream`, computed
/// independently, and returns the cost in nano-dollars.
fn billed(gw: &Gw, r: &Resp, upstream: &str, tokens: u64) -> i128 {
    let v = r.json();
    assert_eq!(v["usage"]["prompt_tokens"], tokens, "{v}");
    assert_eq!(v["usage"]["total_tokens"], tokens, "{v}");
    let want = round_sum(&[nanos_at(tokens, &price(gw, upstream, "input"))]);
    let cost = usd_to_nanos(v["usage"]["cost_usd"].as_str().expect("cost"));
    assert_eq!(cost, want, "{v}");
    assert_eq!(
        usd_to_nanos(r.header("x-gammainfra-cost-usd").expect("cost header")),
        cost
    );
    cost
}

async fn spent(gw: &Gw, key: &str) -> i128 {
    let c = gw.credits(key).await;
    assert_eq!(c["reserved_usd"], "0.00", "{c}");
    usd_to_nanos(c["spent_usd"].as_str().expect("spent"))
}

async fn openai_batches_are_billed_exactly(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let (id, key) = gw.account("embed-openai@example.com").await;
    let r = embed(
        &gw,
        &key,
        r#"{"model":"openai/text-embedding-3-small","input":["the quick brown fox","jumps over"],"user":"u-1"}"#,
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "openai/text-embedding-3-small");
    let vs = vectors(&v);
    assert_eq!(vs.len(), 2);
    assert!(vs.iter().all(|x| x.len() == 1536));
    assert_ne!(vs[0], vs[1]);
    // The simulator counts words: 4 + 2.
    let cost = billed(&gw, &r, "text-embedding-3-small", 6);
    assert_eq!(r.header("x-gammainfra-provider"), Some("openai"));
    assert_eq!(
        r.header("x-gammainfra-upstream-model"),
        Some("text-embedding-3-small")
    );
    assert!(r.header("x-gammainfra-upstream-region").is_some());
    assert!(r.header("x-gammainfra-request-id").is_some());
    let sent = gw.openai.requests()[0].json().expect("json");
    assert_eq!(sent["model"], "text-embedding-3-small");
    assert_eq!(sent["user"], "u-1");
    assert_eq!(spent(&gw, &key).await, cost);
    let view = gw.account_view(&id).await;
    assert_eq!(view["ledger_entries"], 2);
    assert_eq!(
        usd_to_nanos(view["balance_usd"].as_str().expect("balance")),
        3_000_000_000 - cost
    );
    assert_eq!(view["ledger_sum_usd"], view["balance_usd"]);
}

on_both_backends!(openai_batches_are_billed_exactly);

#[tokio::test]
async fn dimensions_and_base64_give_the_same_floats() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("embed-b64@example.com").await;
    let body = |format: &str| {
        format!(
            r#"{{"model":"openai/text-embedding-3-large","input":"hello embeddings","dimensions":256,"encoding_format":"{format}"}}"#
        )
    };
    let floats = embed(&gw, &key, &body("float"), &[]).await;
    assert_eq!(floats.status, 200, "{}", floats.text());
    let b64 = embed(&gw, &key, &body("base64"), &[]).await;
    assert_eq!(b64.status, 200, "{}", b64.text());
    let a = vectors(&floats.json());
    assert_eq!(a[0].len(), 256);
    let s = b64.json()["data"][0]["embedding"]
        .as_str()
        .expect("base64 string")
        .to_owned();
    assert_eq!(decode_base64(&s), a[0]);
    let c1 = billed(&gw, &floats, "text-embedding-3-large", 2);
    let c2 = billed(&gw, &b64, "text-embedding-3-large", 2);
    assert_eq!(spent(&gw, &key).await, c1 + c2);
    // Titan gives 256, 512 or 1024 dimensions, on Bedrock.
    let r = embed(
        &gw,
        &key,
        r#"{"model":"amazon/titan-embed-text-v2","input":"short text","dimensions":512,"encoding_format":"base64"}"#,
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let s = r.json()["data"][0]["embedding"]
        .as_str()
        .expect("b64")
        .to_owned();
    assert_eq!(decode_base64(&s).len(), 512);
}

#[tokio::test]
async fn token_arrays_reach_openai_and_are_refused_for_bedrock() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("embed-tokens@example.com").await;
    let r = embed(
        &gw,
        &key,
        r#"{"model":"openai/text-embedding-3-small","input":[[1,2,3],[4,5]]}"#,
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(vectors(&r.json()).len(), 2);
    let cost = billed(&gw, &r, "text-embedding-3-small", 5);
    let sent = gw.openai.requests()[0].json().expect("json");
    assert_eq!(sent["input"], serde_json::json!([[1, 2, 3], [4, 5]]));
    let r = embed(
        &gw,
        &key,
        r#"{"model":"openai/text-embedding-3-small","input":[10,20,30]}"#,
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let cost2 = billed(&gw, &r, "text-embedding-3-small", 3);
    for model in ["amazon/titan-embed-text-v2", "cohere/embed-english-v3"] {
        let r = embed(
            &gw,
            &key,
            &format!(r#"{{"model":"{model}","input":[[1,2,3]]}}"#),
            &[],
        )
        .await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.error_code(), "invalid_request");
        let m = r.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(m.contains(model) && m.contains("text only"), "{m}");
    }
    assert!(gw.bedrock.requests().is_empty());
    assert_eq!(spent(&gw, &key).await, cost + cost2);
}

#[tokio::test]
async fn bedrock_titan_and_cohere_batches_are_signed_split_and_billed() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("embed-bedrock@example.com").await;
    // Titan: one InvokeModel call per text, token counts summed.
    let r = embed(
        &gw,
        &key,
        r#"{"model":"amazon/titan-embed-text-v2","input":["one two three","four","five six"],"dimensions":256}"#,
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let vs = vectors(&r.json());
    assert_eq!(vs.len(), 3);
    assert!(vs.iter().all(|v| v.len() == 256));
    let c1 = billed(&gw, &r, "amazon.titan-embed-text-v2:0", 6);
    assert_eq!(r.header("x-gammainfra-provider"), Some("bedrock"));
    assert_eq!(r.header("x-gammainfra-upstream-region"), Some("us-east-1"));
    let calls = gw.bedrock.requests();
    assert_eq!(calls.len(), 3);
    for c in &calls {
        assert_eq!(c.path, "/model/amazon.titan-embed-text-v2%3A0/invoke");
        assert!(c
            .header("authorization")
            .is_some_and(|a| a.contains("/us-east-1/bedrock/aws4_request")));
        let b = c.json().expect("json");
        assert_eq!(b["dimensions"], 256);
        assert_eq!(b["normalize"], true);
    }
    // The same text gives the same vector whichever call carries it.
    let again = embed(
        &gw,
        &key,
        r#"{"model":"amazon/titan-embed-text-v2","input":"four","dimensions":256}"#,
        &[],
    )
    .await;
    assert_eq!(vectors(&again.json())[0], vs[1]);
    let c2 = billed(&gw, &again, "amazon.titan-embed-text-v2:0", 1);
    // Cohere: at most 96 texts a call; 100 texts are two calls.
    let texts: Vec<String> = (0..100).map(|i| format!("text number {i}")).collect();
    let body = serde_json::json!({"model": "cohere/embed-english-v3", "input": texts}).to_string();
    let r = embed(&gw, &key, &body, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let vs = vectors(&r.json());
    assert_eq!(vs.len(), 100);
    assert!(vs.iter().all(|v| v.len() == 1024));
    let c3 = billed(&gw, &r, "cohere.embed-english-v3", 300);
    let cohere: Vec<_> = gw
        .bedrock
        .requests()
        .into_iter()
        .filter(|c| c.path.contains("cohere"))
        .collect();
    assert_eq!(cohere.len(), 2);
    let sizes: Vec<usize> = cohere
        .iter()
        .map(|c| {
            c.json().expect("json")["texts"]
                .as_array()
                .map_or(0, Vec::len)
        })
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 100);
    assert!(sizes.contains(&96));
    assert_eq!(
        cohere[0].json().expect("json")["input_type"],
        "search_document"
    );
    assert_eq!(spent(&gw, &key).await, c1 + c2 + c3);
}

#[tokio::test]
async fn a_region_constraint_chooses_or_refuses_endpoints() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("embed-region@example.com").await;
    let titan = r#"{"model":"amazon/titan-embed-text-v2","input":"hello"}"#;
    for region in ["us", "us-east-1"] {
        let r = embed(&gw, &key, titan, &[("x-gammainfra-region", region)]).await;
        assert_eq!(r.status, 200, "{region}: {}", r.text());
        assert_eq!(r.header("x-gammainfra-upstream-region"), Some("us-east-1"));
    }
    let before = gw.bedrock.requests().len();
    for (model, region) in [
        ("amazon/titan-embed-text-v2", "eu"),
        ("cohere/embed-english-v3", "us-west-2"),
        // OpenAI does not publish where it processes: no constraint is met.
        ("openai/text-embedding-3-small", "us"),
    ] {
        let body = format!(r#"{{"model":"{model}","input":"hello"}}"#);
        let r = embed(&gw, &key, &body, &[("x-gammainfra-region", region)]).await;
        assert_eq!(r.status, 400, "{model} in {region}: {}", r.text());
        assert_eq!(r.error_code(), "no_endpoint_in_region");
    }
    assert_eq!(gw.bedrock.requests().len(), before);
    assert!(gw.openai.requests().is_empty());
    let r = embed(&gw, &key, titan, &[("x-gammainfra-region", "global")]).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "invalid_region");
}

#[tokio::test]
async fn refused_requests_change_nothing() {
    let gw = Gw::start().await;
    let (id, key) = gw.account("embed-refused@example.com").await;
    let many =
        serde_json::json!({"model": "openai/text-embedding-3-small", "input": vec!["x"; 2049]})
            .to_string();
    let cases: Vec<(String, u16, &str, &str)> = vec![
        (
            r#"{"model":"openai/text-embedding-3-small","input":[]}"#.into(),
            400,
            "invalid_request",
            "input",
        ),
        (
            r#"{"model":"openai/text-embedding-3-small","input":""}"#.into(),
            400,
            "invalid_request",
            "input",
        ),
        (many, 400, "invalid_request", "input"),
        (
            r#"{"model":"openai/gpt-4o-mini","input":"hi"}"#.into(),
            400,
            "not_an_embedding_model",
            "model",
        ),
        (
            r#"{"model":"amazon/titan-embed-text-v2","input":"hi","dimensions":300}"#.into(),
            400,
            "invalid_request",
            "dimensions",
        ),
        (
            r#"{"model":"cohere/embed-english-v3","input":"hi","dimensions":512}"#.into(),
            400,
            "invalid_request",
            "dimensions",
        ),
        (
            r#"{"model":"openai/text-embedding-3-small","input":"hi","dimensions":1537}"#.into(),
            400,
            "invalid_request",
            "dimensions",
        ),
        (
            r#"{"model":"openai/text-embedding-3-small","input":"hi","encoding_format":"int8"}"#
                .into(),
            400,
            "invalid_request",
            "encoding_format",
        ),
        (
            r#"{"model":"openai/nope","input":"hi"}"#.into(),
            404,
            "model_not_found",
            "model",
        ),
    ];
    for (body, status, code, param) in &cases {
        let r = embed(&gw, &key, body, &[]).await;
        assert_eq!(r.status, *status, "{body}: {}", r.text());
        assert_eq!(r.error_code(), *code, "{body}");
        assert_eq!(r.json()["error"]["param"], *param, "{body}");
    }
    let r = embed(
        &gw,
        &key,
        r#"{"model":"openai/gpt-4o-mini","input":"hi"}"#,
        &[],
    )
    .await;
    let m = r.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        m.contains("openai/gpt-4o-mini") && m.contains("chat"),
        "{m}"
    );
    // An embedding model given to chat completions.
    let r = gw
        .chat(
            &key,
            &chat_body("openai/text-embedding-3-small", "hi", ""),
            &[],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "not_a_chat_model");
    let m = r.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(m.contains("openai/text-embedding-3-small"), "{m}");
    let r = embed(
        &gw,
        "sk-wrong",
        r#"{"model":"openai/text-embedding-3-small","input":"hi"}"#,
        &[],
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(gw.openai.requests().is_empty());
    assert!(gw.bedrock.requests().is_empty());
    let c = gw.credits(&key).await;
    assert_eq!(c["balance_usd"], "3.00");
    assert_eq!(c["spent_usd"], "0.00");
    let view = gw.account_view(&id).await;
    assert_eq!(view["ledger_entries"], 1);
}

#[tokio::test]
async fn a_provider_failure_costs_nothing() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("embed-fail@example.com").await;
    for (model, status) in [
        ("openai/text-embedding-3-small", 502),
        ("amazon/titan-embed-text-v2", 502),
        ("cohere/embed-multilingual-v3", 429),
    ] {
        let code = if status == 429 { "429" } else { "500" };
        let body = format!(r#"{{"model":"{model}","input":["fine","[[sim:error {code}]]"]}}"#);
        let r = embed(&gw, &key, &body, &[]).await;
        assert_eq!(r.status, status, "{model}: {}", r.text());
        assert!(r.header("x-gammainfra-route").is_some());
        assert!(r.json()["error"]["request_id"].is_string());
    }
    // The provider's refusal of the input is the client's 400, free as well.
    let long = vec!["word"; 600].join(" ");
    let body = serde_json::json!({"model": "cohere/embed-english-v3", "input": long}).to_string();
    let r = embed(&gw, &key, &body, &[]).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "upstream_rejected");
    assert_eq!(spent(&gw, &key).await, 0);
    assert_eq!(gw.credits(&key).await["balance_usd"], "3.00");
}

#[tokio::test]
async fn models_lists_the_embedding_kind_and_sizes() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("embed-models@example.com").await;
    let r = gw.send("GET", "/v1/models", Some(&key), None, &[]).await;
    let v = r.json();
    let find = |id: &str| {
        v["data"]
            .as_array()
            .and_then(|d| d.iter().find(|m| m["id"] == id).cloned())
            .expect(id)
    };
    let titan = find("amazon/titan-embed-text-v2");
    assert_eq!(titan["kind"], "embedding");
    assert_eq!(titan["dimensions"], 1024);
    assert_eq!(
        titan["dimension_choices"],
        serde_json::json!([256, 512, 1024])
    );
    assert_eq!(titan["endpoints"][0]["pricing"]["output"], "0");
    assert_eq!(find("openai/text-embedding-3-small")["dimensions"], 1536);
    assert_eq!(find("openai/gpt-4o-mini")["kind"], "chat");
}

/// An embedding model on three OpenAI-compatible servers, cheapest first: `dead` (a port
/// where nothing listens), then `live` and `alt` (both the OpenAI simulator), serving
/// `text-embedding-ada-002`.
async fn three_endpoint_gw() -> Gw {
    let endpoint = |provider: &str, price: &str| {
        format!(
            r#"
[[models.endpoints]]
provider = "openai_compatible:{provider}"
upstream_id = "text-embedding-ada-002"
verified = {{ date = "2026-12-01", method = "test" }}
pricing = {{ input = "{price}", source = {{ kind = "provider", url = "https://example.com/test-prices", read = "2026-12-01" }} }}
"#
        )
    };
    let catalog = format!(
        r#"
[[models]]
id = "test/embed"
name = "Test embeddings"
owned_by = "test"
kind = "embedding"
embedding = {{ dimensions = 1536 }}
context_window = 8192
{}{}{}"#,
        endpoint("dead", "0.01"),
        endpoint("live", "0.02"),
        endpoint("alt", "0.03")
    );
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}/v1", dead.local_addr().expect("addr"));
    drop(dead);
    Gw::start_with_catalog(&catalog, |c| {
        let live = c.openai.clone().expect("openai");
        let mut d = live.clone();
        d.base_url = dead_url;
        c.openai_compatible = vec![
            ("dead".into(), d),
            ("live".into(), live.clone()),
            ("alt".into(), live),
        ];
    })
    .await
}

/// `provider` (`order`, `only`, `ignore`, `allow_fallbacks`, `sort`) and
/// `X-GammaInfra-Provider` choose and order the endpoints as on chat, named in
/// `X-GammaInfra-Route`; the answer is billed at the endpoint that served it.
#[tokio::test]
async fn provider_preferences_choose_and_order_the_endpoints() {
    let gw = three_endpoint_gw().await;
    let (_, key) = gw.account("embed-prefs@example.com").await;
    let ep = |p: &str| format!("test/embed@openai_compatible:{p}:text-embedding-ada-002");
    let send = |provider: &str, headers: &'static [(&'static str, &'static str)]| {
        let body = if provider.is_empty() {
            r#"{"model":"test/embed","input":"one two three"}"#.to_owned()
        } else {
            format!(r#"{{"model":"test/embed","input":"one two three","provider":{provider}}}"#)
        };
        let key = key.clone();
        let gw = &gw;
        async move { embed(gw, &key, &body, headers).await }
    };
    let cost_at = |price: &str| round_sum(&[nanos_at(3, price)]);
    let mut total = 0;

    // By price: the dead endpoint first, then the next cheapest.
    let r = send("", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let want = format!("sort=price; {}=connect, {}=ok", ep("dead"), ep("live"));
    assert_eq!(r.header("x-gammainfra-route"), Some(want.as_str()));
    assert_eq!(
        r.header("x-gammainfra-provider"),
        Some("openai_compatible:live")
    );
    let cost = usd_to_nanos(r.header("x-gammainfra-cost-usd").expect("cost"));
    assert_eq!(cost, cost_at("0.02"));
    total += cost;
    // No fallback: the first endpoint's failure is the answer, and costs nothing.
    let r = send(r#"{"allow_fallbacks":false}"#, &[]).await;
    assert_eq!(r.status, 502, "{}", r.text());
    let want = format!("sort=price; {}=connect", ep("dead"));
    assert_eq!(r.header("x-gammainfra-route"), Some(want.as_str()));
    // `order` first, then price.
    let r = send(r#"{"order":["openai_compatible:alt"]}"#, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let want = format!("sort=price; {}=ok", ep("alt"));
    assert_eq!(r.header("x-gammainfra-route"), Some(want.as_str()));
    let cost = usd_to_nanos(r.header("x-gammainfra-cost-usd").expect("cost"));
    assert_eq!(cost, cost_at("0.03"));
    total += cost;
    // `ignore` and `only`, in the body or the header.
    for (provider, headers, served) in [
        (r#"{"ignore":["openai_compatible:dead"]}"#, &[][..], "live"),
        (r#"{"only":["openai_compatible:alt"]}"#, &[][..], "alt"),
        (
            "",
            &[("x-gammainfra-provider", "openai_compatible:alt")][..],
            "alt",
        ),
        (
            r#"{"order":["openai_compatible:alt"]}"#,
            &[(
                "x-gammainfra-provider",
                "openai_compatible:live, openai_compatible:alt",
            )][..],
            "alt",
        ),
    ] {
        let r = send(provider, headers).await;
        assert_eq!(r.status, 200, "{provider} {headers:?}: {}", r.text());
        let want = format!("sort=price; {}=ok", ep(served));
        assert_eq!(
            r.header("x-gammainfra-route"),
            Some(want.as_str()),
            "{provider} {headers:?}"
        );
        total += usd_to_nanos(r.header("x-gammainfra-cost-usd").expect("cost"));
    }
    // `sort`: latency, observed from the embeddings calls themselves.
    let r = send(
        r#"{"sort":"latency","ignore":["openai_compatible:dead"]}"#,
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("x-gammainfra-route")
            .is_some_and(|h| h.starts_with("sort=latency; ")),
        "{:?}",
        r.header("x-gammainfra-route")
    );
    total += usd_to_nanos(r.header("x-gammainfra-cost-usd").expect("cost"));
    let observed = gw
        .state
        .router
        .observed("openai_compatible:live:text-embedding-ada-002")
        .expect("endpoint");
    assert!(observed.ttft_us.is_some(), "{observed:?}");
    // The preferences are the gateway's: never sent upstream.
    for req in gw.openai.requests() {
        let sent = req.json().expect("json");
        assert!(sent.get("provider").is_none(), "{sent}");
    }
    assert_eq!(spent(&gw, &key).await, total);
}

/// Preferences that exclude every endpoint, or that are malformed, are refused as on
/// chat, before anything is held or sent.
#[tokio::test]
async fn provider_preferences_that_exclude_every_endpoint_are_refused() {
    let gw = Gw::start().await;
    let (id, key) = gw.account("embed-prefs-refused@example.com").await;
    let body = |provider: &str| {
        format!(r#"{{"model":"openai/text-embedding-3-small","input":"hi","provider":{provider}}}"#)
    };
    let plain = r#"{"model":"openai/text-embedding-3-small","input":"hi"}"#.to_owned();
    let too_many = serde_json::to_string(&vec!["bedrock"; 33]).expect("json");
    // (body, headers, code, param)
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            body(r#"{"only":["bedrock"]}"#),
            vec![],
            "no_endpoint_for_preferences",
            "",
        ),
        (
            body(r#"{"ignore":["openai"]}"#),
            vec![],
            "no_endpoint_for_preferences",
            "",
        ),
        (
            plain.clone(),
            vec![("x-gammainfra-provider", "bedrock,anthropic")],
            "no_endpoint_for_preferences",
            "",
        ),
        (
            body(r#"{"only":["openai"]}"#),
            vec![("x-gammainfra-provider", "openai")],
            "invalid_provider_header",
            "X-GammaInfra-Provider",
        ),
        (
            plain.clone(),
            vec![("x-gammainfra-provider", " , ")],
            "invalid_provider_header",
            "X-GammaInfra-Provider",
        ),
        (
            body(r#"{"sort":"fastest"}"#),
            vec![],
            "invalid_request",
            "provider.sort",
        ),
        (
            body(&format!(r#"{{"only":{too_many}}}"#)),
            vec![],
            "invalid_request",
            "provider.only",
        ),
        (
            body(r#"{"prefer":["openai"]}"#),
            vec![],
            "invalid_request",
            "",
        ),
    ];
    for (body, headers, code, param) in &cases {
        let r = embed(&gw, &key, body, headers).await;
        assert_eq!(r.status, 400, "{body} {headers:?}: {}", r.text());
        assert_eq!(r.error_code(), *code, "{body} {headers:?}");
        if !param.is_empty() {
            assert_eq!(r.json()["error"]["param"], *param, "{body}");
        }
    }
    // The same refusal as chat's.
    let r = embed(&gw, &key, &body(r#"{"only":["bedrock"]}"#), &[]).await;
    let chat = gw
        .chat(
            &key,
            &chat_body(
                "openai/gpt-4o-mini",
                "hi",
                r#""provider":{"only":["bedrock"]}"#,
            ),
            &[],
        )
        .await;
    assert_eq!(chat.status, 400, "{}", chat.text());
    assert_eq!(chat.error_code(), r.error_code());
    let m = r.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(m.contains("openai/text-embedding-3-small"), "{m}");
    assert!(gw.openai.requests().is_empty());
    assert_eq!(spent(&gw, &key).await, 0);
    assert_eq!(gw.account_view(&id).await["ledger_entries"], 1);
}
