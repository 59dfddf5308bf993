//! `GET /v1/usage` and `/v1/usage/daily`: every charge can be audited, and the records
//! add up to exactly what the balance moved by.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::harness::*;

/// What a chat response said about itself, to compare with its usage record.
#[derive(Debug, Clone)]
struct Sent {
    request_id: String,
    model: String,
    provider: String,
    upstream_model: String,
    region: String,
    upstream_id: String,
    usage: Value,
}

impl Sent {
    fn cost(&self) -> i128 {
        usd_to_nanos(self.usage["cost_usd"].as_str().expect("cost_usd"))
    }
}

/// Sends one completion (streamed with `include_usage`, or not) and returns what its
/// response said: headers, the response/chunk `id` and `usage`.
async fn send(gw: &Gw, key: &str, model: &str, text: &str, stream: bool, region: &str) -> Sent {
    let extra = if stream {
        r#""stream":true,"stream_options":{"include_usage":true},"max_tokens":50"#
    } else {
        r#""max_tokens":50"#
    };
    let headers: Vec<(&str, &str)> = if region.is_empty() {
        vec![]
    } else {
        vec![("x-gammainfra-region", region)]
    };
    let r = gw.chat(key, &chat_body(model, text, extra), &headers).await;
    assert_eq!(r.status, 200, "{model}: {}", r.text());
    let h = |k: &str| r.header(k).unwrap_or_default().to_owned();
    let (upstream_id, usage) = if stream {
        let data = r.sse_data();
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
        let chunk: Value = serde_json::from_str(&data[data.len() - 2]).expect("usage chunk");
        (
            chunk["id"].as_str().expect("id").to_owned(),
            chunk["usage"].clone(),
        )
    } else {
        let v = r.json();
        assert_eq!(
            r.header("x-gammainfra-cost-usd"),
            v["usage"]["cost_usd"].as_str()
        );
        (v["id"].as_str().expect("id").to_owned(), v["usage"].clone())
    };
    Sent {
        request_id: h("x-gammainfra-request-id"),
        model: r
            .header("x-gammainfra-resolved-model")
            .unwrap_or(model)
            .to_owned(),
        provider: h("x-gammainfra-provider"),
        upstream_model: h("x-gammainfra-upstream-model"),
        region: h("x-gammainfra-upstream-region"),
        upstream_id,
        usage,
    }
}

/// One request of each kind: Anthropic direct, OpenAI, Bedrock on-demand and profile,
/// streamed and not.
async fn mixed_traffic(gw: &Gw, key: &str) -> Vec<Sent> {
    let mut sent = Vec::new();
    for stream in [false, true] {
        sent.push(send(gw, key, "claude-haiku-4-5", "hello anthropic", stream, "").await);
        sent.push(send(gw, key, "openai/gpt-4o-mini", "hello openai", stream, "").await);
        sent.push(
            send(
                gw,
                key,
                "meta/llama3-70b-instruct",
                "hello llama",
                stream,
                "us-east-1",
            )
            .await,
        );
        sent.push(
            send(
                gw,
                key,
                "us.anthropic.claude-sonnet-4-6",
                "hello sonnet",
                stream,
                "",
            )
            .await,
        );
    }
    sent
}

async fn get(gw: &Gw, key: Option<&str>, path: &str) -> Resp {
    gw.send("GET", path, key, None, &[]).await
}

/// A successful JSON listing.
async fn list(gw: &Gw, key: &str, path: &str) -> Value {
    let r = get(gw, Some(key), path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["object"], "list", "{v}");
    v
}

fn ids(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Creates an account with a top-up; returns (account id, key id, key).
async fn funded_account(gw: &Gw, email: &str) -> (String, String, String) {
    let r = gw
        .admin(
            "POST",
            "/admin/v1/accounts",
            Some(&format!(r#"{{"email":"{email}"}}"#)),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    let id = v["id"].as_str().expect("id").to_owned();
    let t = gw
        .admin(
            "POST",
            &format!("/admin/v1/accounts/{id}/topups"),
            Some(r#"{"amount_usd":"10.00"}"#),
        )
        .await;
    assert_eq!(t.status, 201, "{}", t.text());
    (
        id,
        v["key_id"].as_str().expect("key_id").to_owned(),
        v["api_key"].as_str().expect("key").to_owned(),
    )
}

/// Trial + top-ups − balance: what the account has spent, by its balance.
async fn spent_by_balance(gw: &Gw, key: &str) -> i128 {
    let c = gw.credits(key).await;
    let n = |k: &str| usd_to_nanos(c[k].as_str().expect(k));
    n("trial_usd") + n("topups_usd") - n("balance_usd")
}

async fn usage_records_every_charge_with_its_details_and_cost(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let (_, key_id, key) = funded_account(&gw, "audit@example.com").await;
    let sent = mixed_traffic(&gw, &key).await;
    // A stream the upstream breaks off: billed for what was generated, and says so.
    let r = gw
        .chat(
            &key,
            &chat_body(
                "openai/gpt-4o-mini",
                "[[sim:midstream-error]]",
                r#""stream":true"#,
            ),
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    let broken = r.header("x-gammainfra-request-id").expect("id").to_owned();

    let v = list(&gw, &key, "/v1/usage").await;
    assert_eq!(v["has_more"], false);
    let data = v["data"].as_array().expect("data");
    assert_eq!(data.len(), sent.len() + 1);
    assert_eq!(v["first_id"], data[0]["id"]);
    assert_eq!(v["last_id"], data[data.len() - 1]["id"]);
    let by_id: HashMap<&str, &Value> = data
        .iter()
        .map(|r| (r["request_id"].as_str().expect("request_id"), r))
        .collect();
    for s in &sent {
        let rec = by_id
            .get(s.request_id.as_str())
            .unwrap_or_else(|| panic!("no record for {s:?}"));
        let ctx = format!("{s:?} vs {rec}");
        assert_eq!(rec["object"], "usage.record");
        assert_eq!(rec["id"], rec["request_id"]);
        assert_eq!(rec["model"], s.model.as_str(), "{ctx}");
        assert_eq!(rec["provider"], s.provider.as_str(), "{ctx}");
        assert_eq!(rec["upstream_model"], s.upstream_model.as_str(), "{ctx}");
        assert_eq!(rec["region"], s.region.as_str(), "{ctx}");
        assert_eq!(rec["upstream_request_id"], s.upstream_id.as_str(), "{ctx}");
        assert_eq!(rec["status"], "completed", "{ctx}");
        assert_eq!(rec["key_id"], key_id.as_str(), "{ctx}");
        assert_eq!(rec["note"], Value::Null, "{ctx}");
        assert_eq!(rec["cost_usd"], s.usage["cost_usd"], "{ctx}");
        let u = &s.usage;
        let cached = u["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .expect("c");
        let written = u["prompt_tokens_details"]["cache_write_tokens"]
            .as_u64()
            .expect("w");
        assert_eq!(rec["cache_read_tokens"].as_u64(), Some(cached), "{ctx}");
        assert_eq!(rec["cache_write_tokens"].as_u64(), Some(written), "{ctx}");
        assert_eq!(
            rec["input_tokens"].as_u64(),
            Some(u["prompt_tokens"].as_u64().expect("p") - cached - written),
            "{ctx}"
        );
        assert_eq!(rec["output_tokens"], u["completion_tokens"], "{ctx}");
        let t = rec["created_at"].as_str().expect("created_at");
        assert!(t.len() == 20 && t.ends_with('Z'), "RFC 3339 UTC: {t}");
    }
    // Each provider, and both Bedrock forms (profile geography, on-demand region).
    let providers: HashSet<&str> = sent.iter().map(|s| s.provider.as_str()).collect();
    assert_eq!(providers.len(), 3, "{providers:?}");
    let regions: HashSet<&str> = sent.iter().map(|s| s.region.as_str()).collect();
    assert!(
        regions.contains("us") && regions.contains("us-east-1"),
        "{regions:?}"
    );

    let cut = by_id
        .get(broken.as_str())
        .expect("record of the broken stream");
    assert_eq!(cut["status"], "upstream_error", "{cut}");
    assert!(
        cut["note"]
            .as_str()
            .is_some_and(|n| n.contains("stream ended early")),
        "{cut}"
    );
    assert!(usd_to_nanos(cut["cost_usd"].as_str().expect("cost")) > 0);

    // The records add up to exactly what the balance moved by.
    let total: i128 = data
        .iter()
        .map(|r| usd_to_nanos(r["cost_usd"].as_str().expect("cost")))
        .sum();
    assert_eq!(total, spent_by_balance(&gw, &key).await);
    let sent_total: i128 = sent.iter().map(Sent::cost).sum();
    assert_eq!(
        total,
        sent_total + usd_to_nanos(cut["cost_usd"].as_str().expect("cost"))
    );
}

async fn usage_pages_cover_every_record_once_in_both_orders(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let (_, _, key) = funded_account(&gw, "pages@example.com").await;
    let mut sent = Vec::new();
    for i in 0..7 {
        sent.push(
            send(
                &gw,
                &key,
                "openai/gpt-4o-mini",
                &format!("n {i}"),
                i % 2 == 1,
                "",
            )
            .await,
        );
    }
    let all = ids(&list(&gw, &key, "/v1/usage?limit=1000").await);
    let want: Vec<String> = sent.iter().map(|s| s.request_id.clone()).collect();
    assert_eq!(all, want, "oldest first, in the order they were charged");

    for order in ["asc", "desc"] {
        let mut seen = Vec::new();
        let mut path = format!("/v1/usage?limit=3&order={order}");
        let mut pages = 0;
        loop {
            let v = list(&gw, &key, &path).await;
            let page = ids(&v);
            pages += 1;
            assert!(page.len() <= 3);
            seen.extend(page);
            if v["has_more"] == false {
                break;
            }
            assert_eq!(v["data"].as_array().map(Vec::len), Some(3));
            let last = v["last_id"].as_str().expect("last_id");
            path = format!("/v1/usage?limit=3&order={order}&after={last}");
        }
        assert_eq!(pages, 3, "{order}");
        let mut expect = all.clone();
        if order == "desc" {
            expect.reverse();
        }
        assert_eq!(seen, expect, "{order}: no gap, no duplicate");
    }
    // The default page size is 100; an empty page after the last record.
    let v = list(&gw, &key, &format!("/v1/usage?after={}", all[6])).await;
    assert_eq!(v["data"].as_array().map(Vec::len), Some(0));
    assert_eq!(v["has_more"], false);
    assert_eq!(v["last_id"], Value::Null);
    // The cursor is also in the headers (for CSV).
    let r = get(&gw, Some(&key), "/v1/usage?limit=2").await;
    assert_eq!(r.header("x-gammainfra-has-more"), Some("true"));
    assert_eq!(r.header("x-gammainfra-last-id"), Some(all[1].as_str()));
}

async fn usage_filters_by_time_and_model(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let (_, _, key) = funded_account(&gw, "filters@example.com").await;
    let sent = mixed_traffic(&gw, &key).await;
    let all = list(&gw, &key, "/v1/usage").await;
    let data = all["data"].as_array().expect("data").clone();
    assert_eq!(data.len(), sent.len());

    // Time bounds: start inclusive, end exclusive, in every accepted form.
    let first = data[0]["created_at"].as_str().expect("t").to_owned();
    let last = data[data.len() - 1]["created_at"]
        .as_str()
        .expect("t")
        .to_owned();
    let count_from = |t: &str| {
        data.iter()
            .filter(|r| r["created_at"].as_str() >= Some(t))
            .count()
    };
    let v = list(&gw, &key, &format!("/v1/usage?start={last}")).await;
    assert_eq!(ids(&v).len(), count_from(&last));
    let v = list(&gw, &key, &format!("/v1/usage?end={last}")).await;
    assert_eq!(ids(&v).len(), data.len() - count_from(&last));
    let v = list(
        &gw,
        &key,
        &format!("/v1/usage?start={first}&end=2100-01-01"),
    )
    .await;
    assert_eq!(ids(&v).len(), data.len());
    let v = list(&gw, &key, "/v1/usage?start=2100-01-01T00:00:00%2B01:00").await;
    assert_eq!(ids(&v).len(), 0);
    let v = list(&gw, &key, "/v1/usage?end=1700000000").await;
    assert_eq!(ids(&v).len(), 0, "before 2023-11-14: nothing");
    let v = list(&gw, &key, "/v1/usage?start=1700000000").await;
    assert_eq!(ids(&v).len(), data.len());
    let v = list(&gw, &key, "/v1/usage?start=2020-01-01T00:00:00+00:00").await;
    assert_eq!(
        ids(&v).len(),
        data.len(),
        "a raw `+` in the offset is a `+`"
    );

    // Model: the gateway ID, or any ID the catalog resolves to it.
    for (q, model, n) in [
        ("openai/gpt-4o-mini", "openai/gpt-4o-mini", 2),
        (
            "anthropic%2Fclaude-haiku-4-5",
            "anthropic/claude-haiku-4-5",
            2,
        ),
        ("claude-haiku-4-5", "anthropic/claude-haiku-4-5", 2),
        (
            "us.anthropic.claude-sonnet-4-6",
            "anthropic/claude-sonnet-4-6",
            2,
        ),
        ("vendor/never-served", "", 0),
    ] {
        let v = list(&gw, &key, &format!("/v1/usage?model={q}")).await;
        let d = v["data"].as_array().expect("data");
        assert_eq!(d.len(), n, "{q}: {v}");
        assert!(d.iter().all(|r| r["model"] == model), "{q}: {v}");
    }
    let v = list(
        &gw,
        &key,
        "/v1/usage?model=openai/gpt-4o-mini&end=2000-01-01",
    )
    .await;
    assert_eq!(ids(&v).len(), 0, "filters combine");
}

async fn usage_bad_parameters_are_400_naming_the_parameter(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let (_, _, key) = funded_account(&gw, "params@example.com").await;
    let (_, _, other) = funded_account(&gw, "params-other@example.com").await;
    let theirs = send(&gw, &other, "openai/gpt-4o-mini", "hi", false, "").await;
    for (query, param) in [
        ("start=yesterday", "start"),
        ("start=2026-11-25T14:00:00", "start"),
        ("end=-5", "end"),
        ("end=2026-13-01", "end"),
        ("start=2026-11-25&end=2026-11-24", "end"),
        ("start=2026-11-25&end=2026-11-25", "end"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("limit=5&limit=6", "limit"),
        ("order=newest", "order"),
        ("format=xml", "format"),
        ("after=req_nope", "after"),
        ("since=2026-11-25", "since"),
    ] {
        let r = get(&gw, Some(&key), &format!("/v1/usage?{query}")).await;
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        assert_eq!(r.error_code(), "invalid_request", "{query}");
        assert_eq!(r.json()["error"]["param"], param, "{query}: {}", r.text());
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    }
    // Another account's request ID is no cursor.
    let r = get(
        &gw,
        Some(&key),
        &format!("/v1/usage?after={}", theirs.request_id),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["param"], "after");
    // The daily sums take no paging parameters.
    for (query, param) in [
        ("limit=5", "limit"),
        ("end=soon", "end"),
        ("format=pdf", "format"),
    ] {
        let r = get(&gw, Some(&key), &format!("/v1/usage/daily?{query}")).await;
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        assert_eq!(r.json()["error"]["param"], param, "{query}");
    }
}

async fn usage_daily_sums_records_per_utc_day_and_model(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let (_, _, key) = funded_account(&gw, "daily@example.com").await;
    let sent = mixed_traffic(&gw, &key).await;
    let records = list(&gw, &key, "/v1/usage").await;
    let mut want: HashMap<(String, String), [i128; 6]> = HashMap::new();
    for r in records["data"].as_array().expect("data") {
        let day = r["created_at"].as_str().expect("t")[..10].to_owned();
        let model = r["model"].as_str().expect("model").to_owned();
        let w = want.entry((day, model)).or_default();
        w[0] += 1;
        for (i, k) in [
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
        ]
        .iter()
        .enumerate()
        {
            w[i + 1] += i128::from(r[*k].as_u64().expect(k));
        }
        w[5] += usd_to_nanos(r["cost_usd"].as_str().expect("cost"));
    }
    let v = list(&gw, &key, "/v1/usage/daily").await;
    assert_eq!(v["has_more"], false);
    let rows = v["data"].as_array().expect("data");
    assert_eq!(rows.len(), want.len(), "{v}");
    let mut total_requests = 0;
    let mut total_cost = 0;
    for row in rows {
        assert_eq!(row["object"], "usage.daily");
        let day = row["date"].as_str().expect("date").to_owned();
        assert_eq!(day.len(), 10, "YYYY-MM-DD: {day}");
        let model = row["model"].as_str().expect("model").to_owned();
        let w = want
            .get(&(day, model))
            .unwrap_or_else(|| panic!("unexpected {row}"));
        let got = [
            i128::from(row["requests"].as_u64().expect("requests")),
            i128::from(row["input_tokens"].as_u64().expect("i")),
            i128::from(row["output_tokens"].as_u64().expect("o")),
            i128::from(row["cache_read_tokens"].as_u64().expect("r")),
            i128::from(row["cache_write_tokens"].as_u64().expect("w")),
            usd_to_nanos(row["cost_usd"].as_str().expect("cost")),
        ];
        assert_eq!(&got, w, "{row}");
        total_requests += got[0];
        total_cost += got[5];
    }
    assert_eq!(total_requests, sent.len() as i128);
    assert_eq!(total_cost, spent_by_balance(&gw, &key).await);
    // Filters apply to the sums too.
    let v = list(&gw, &key, "/v1/usage/daily?model=openai/gpt-4o-mini").await;
    let rows = v["data"].as_array().expect("data");
    assert!(!rows.is_empty() && rows.iter().all(|r| r["model"] == "openai/gpt-4o-mini"));
    let v = list(&gw, &key, "/v1/usage/daily?end=2000-01-01").await;
    assert_eq!(v["data"].as_array().map(Vec::len), Some(0));
}

/// RFC 4180 fields of a CSV document (quoted fields with doubled quotes, CRLF lines).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        field.is_empty() && row.is_empty(),
        "the last line ends with CRLF"
    );
    rows
}

fn csv_value(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

async fn usage_csv_has_a_header_and_the_same_rows_as_json(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let (_, _, key) = funded_account(&gw, "csv@example.com").await;
    mixed_traffic(&gw, &key).await;
    gw.chat(
        &key,
        &chat_body(
            "claude-haiku-4-5",
            "[[sim:midstream-error]]",
            r#""stream":true"#,
        ),
        &[],
    )
    .await;
    let json = list(&gw, &key, "/v1/usage").await;
    let records = json["data"].as_array().expect("data");
    let columns = [
        "created_at",
        "request_id",
        "key_id",
        "model",
        "provider",
        "upstream_model",
        "upstream_request_id",
        "region",
        "status",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_usd",
        "note",
    ];
    let by_param = get(&gw, Some(&key), "/v1/usage?format=csv").await;
    let by_accept = gw
        .send(
            "GET",
            "/v1/usage",
            Some(&key),
            None,
            &[("accept", "text/csv")],
        )
        .await;
    for r in [&by_param, &by_accept] {
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("text/csv")),
            "{:?}",
            r.header("content-type")
        );
        assert_eq!(r.text(), by_param.text());
    }
    let rows = parse_csv(&by_param.text());
    assert_eq!(rows[0], columns);
    assert_eq!(rows.len(), records.len() + 1);
    for (row, rec) in rows[1..].iter().zip(records) {
        let want: Vec<String> = columns.iter().map(|c| csv_value(&rec[*c])).collect();
        assert_eq!(row, &want);
    }
    // The note of the broken stream has characters that need quoting.
    assert!(rows
        .iter()
        .any(|r| r[8] == "upstream_error" && !r[14].is_empty()));
    // `format=json` wins over the Accept header.
    let r = gw
        .send(
            "GET",
            "/v1/usage?format=json",
            Some(&key),
            None,
            &[("accept", "text/csv")],
        )
        .await;
    assert_eq!(r.json()["object"], "list");

    // The daily sums as CSV.
    let daily_json = list(&gw, &key, "/v1/usage/daily").await;
    let r = get(&gw, Some(&key), "/v1/usage/daily?format=csv").await;
    assert_eq!(r.status, 200);
    let rows = parse_csv(&r.text());
    let columns = [
        "date",
        "model",
        "requests",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_usd",
    ];
    assert_eq!(rows[0], columns);
    let days = daily_json["data"].as_array().expect("data");
    assert_eq!(rows.len(), days.len() + 1);
    for (row, d) in rows[1..].iter().zip(days) {
        let want: Vec<String> = columns.iter().map(|c| csv_value(&d[*c])).collect();
        assert_eq!(row, &want);
    }
}

async fn usage_of_one_account_is_invisible_to_another(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let (_, _, alice) = funded_account(&gw, "alice@example.com").await;
    let (_, _, bob) = funded_account(&gw, "bob@example.com").await;
    let a: Vec<String> = mixed_traffic(&gw, &alice)
        .await
        .into_iter()
        .map(|s| s.request_id)
        .collect();
    let b = vec![
        send(&gw, &bob, "openai/gpt-4o-mini", "bob here", false, "")
            .await
            .request_id,
    ];
    assert_eq!(ids(&list(&gw, &alice, "/v1/usage").await), a);
    assert_eq!(ids(&list(&gw, &bob, "/v1/usage").await), b);
    let daily = list(&gw, &bob, "/v1/usage/daily").await;
    let rows = daily["data"].as_array().expect("data");
    assert_eq!(rows.len(), 1, "{daily}");
    assert_eq!(rows[0]["requests"], 1);
    // A second key of the same account sees the account's records.
    let r = gw
        .admin(
            "POST",
            &format!(
                "/admin/v1/accounts/{}/keys",
                gw.credits(&bob).await["account_id"].as_str().expect("id")
            ),
            None,
        )
        .await;
    let bob2 = r.json()["api_key"].as_str().expect("key").to_owned();
    assert_eq!(ids(&list(&gw, &bob2, "/v1/usage").await), b);
}

async fn usage_admin_view_matches_the_customer_view_and_unknown_accounts_are_404(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let (id, _, key) = funded_account(&gw, "adminview@example.com").await;
    mixed_traffic(&gw, &key).await;
    for (customer, admin) in [
        (
            "/v1/usage?limit=3",
            format!("/admin/v1/accounts/{id}/usage?limit=3"),
        ),
        (
            "/v1/usage/daily",
            format!("/admin/v1/accounts/{id}/usage/daily"),
        ),
        (
            "/v1/usage?format=csv",
            format!("/admin/v1/accounts/{id}/usage?format=csv"),
        ),
    ] {
        let c = get(&gw, Some(&key), customer).await;
        let a = gw.admin("GET", &admin, None).await;
        assert_eq!(a.status, 200, "{admin}: {}", a.text());
        assert_eq!(a.text(), c.text(), "{admin}");
    }
    // The records' sum is the ledger's: the admin view of the account agrees.
    let view = gw.account_view(&id).await;
    let all = gw
        .admin(
            "GET",
            &format!("/admin/v1/accounts/{id}/usage?limit=1000"),
            None,
        )
        .await
        .json();
    let total: i128 = all["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| usd_to_nanos(r["cost_usd"].as_str().expect("cost")))
        .sum();
    assert_eq!(
        total,
        usd_to_nanos(view["spent_usd"].as_str().expect("spent"))
    );
    assert_eq!(view["ledger_sum_usd"], view["balance_usd"]);

    for path in [
        "/admin/v1/accounts/acct_nope/usage",
        "/admin/v1/accounts/acct_nope/usage/daily",
    ] {
        let r = gw.admin("GET", path, None).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(r.error_code(), "account_not_found");
    }
    let r = gw
        .admin(
            "GET",
            &format!("/admin/v1/accounts/{id}/usage?limit=0"),
            None,
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "limit");
}

async fn usage_requires_a_valid_key(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let (id, _, key) = funded_account(&gw, "authz@example.com").await;
    for path in ["/v1/usage", "/v1/usage/daily", "/v1/usage?format=csv"] {
        for auth in [None, Some("gi-not-a-key"), Some(ADMIN)] {
            let r = get(&gw, auth, path).await;
            assert_eq!(r.status, 401, "{path} {auth:?}: {}", r.text());
            assert_eq!(r.error_code(), "invalid_api_key");
        }
    }
    // Customer keys do not open the admin view.
    let r = get(&gw, Some(&key), &format!("/admin/v1/accounts/{id}/usage")).await;
    assert_eq!(r.status, 401, "{}", r.text());
    // Auth is checked before the parameters.
    let r = get(&gw, None, "/v1/usage?limit=0").await;
    assert_eq!(r.status, 401);
}

on_both_backends!(
    usage_records_every_charge_with_its_details_and_cost,
    usage_pages_cover_every_record_once_in_both_orders,
    usage_filters_by_time_and_model,
    usage_bad_parameters_are_400_naming_the_parameter,
    usage_daily_sums_records_per_utc_day_and_model,
    usage_csv_has_a_header_and_the_same_rows_as_json,
    usage_of_one_account_is_invisible_to_another,
    usage_admin_view_matches_the_customer_view_and_unknown_accounts_are_404,
    usage_requires_a_valid_key,
);
