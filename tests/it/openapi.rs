//! The API reference: `GET /openapi.json` describes every route the gateway serves and
//! nothing else.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::harness::Gw;

/// The reference's path for a route of the router: axum's `{*id}` is `{id}`.
fn openapi_path(axum_path: &str) -> String {
    axum_path.replace("{*", "{")
}

fn document() -> Value {
    serde_json::to_value(gammainfra::server::openapi::document()).expect("the document")
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Every (METHOD, path) the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// Whether an answer is the router's fallback (an unknown route), not a handler's.
fn is_fallback(status: u16, body: &[u8]) -> bool {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    status == 404
        && v["error"]["code"] == "not_found"
        && v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("No such route"))
}

#[tokio::test]
async fn openapi_describes_every_route_served_and_nothing_else() {
    let doc = document();
    let served: BTreeSet<(String, String)> = gammainfra::server::routes_served()
        .flat_map(|(path, methods)| {
            methods
                .iter()
                .map(move |m| (m.to_uppercase(), openapi_path(path)))
        })
        .collect();
    let documented = documented(&doc);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "routes served but not in the API reference (annotate the handler and list it in src/server/openapi.rs): {undocumented:?}"
    );
    assert!(
        not_served.is_empty(),
        "routes in the API reference that are not served: {not_served:?}"
    );

    // Each operation says what it is, who may call it and what it answers; every error
    // of the JSON API has a body of the shared error shape.
    for (method, path) in &documented {
        let op = &doc["paths"][path][method.to_lowercase()];
        let at = format!("{method} {path}");
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{at}: summary"
        );
        assert_eq!(
            op["tags"].as_array().map(Vec::len),
            Some(1),
            "{at}: one tag"
        );
        let responses = op["responses"].as_object().expect("responses");
        assert!(!responses.is_empty(), "{at}: responses");
        if path.starts_with("/console") {
            continue;
        }
        assert!(op["security"].is_array(), "{at}: security");
        for (status, r) in responses {
            if status.as_str() >= "400" {
                let schema = &r["content"]["application/json"]["schema"]["$ref"];
                assert!(
                    schema == "#/components/schemas/Error"
                        || schema == "#/components/schemas/AnthropicError"
                        // Readiness answers its own shape when not ready.
                        || (path == "/readyz" && schema == "#/components/schemas/NotReady"),
                    "{at} {status}: {r}"
                );
            }
        }
        for p in op["parameters"].as_array().into_iter().flatten() {
            if p["in"] == "path" {
                let name = p["name"].as_str().unwrap_or_default();
                assert!(path.contains(&format!("{{{name}}}")), "{at}: {p}");
            }
        }
    }
}

#[tokio::test]
async fn openapi_json_is_served_and_every_documented_route_reaches_a_handler() {
    let gw = Gw::start().await;
    let r = gw.send("GET", "/openapi.json", None, None, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let served = r.json();
    assert!(
        served["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        served["openapi"]
    );
    assert_eq!(served, document());

    for (method, path) in documented(&served) {
        // Sample path parameters; a model ID may contain slashes.
        let path = path
            .replace("/v1/models/{id}", "/v1/models/vendor/some-model")
            .replace("{id}", "sample_id")
            .replace("{key_id}", "sample_key")
            .replace("{session_id}", "cs_sample");
        let body = (method != "GET" && method != "DELETE").then_some("{}");
        let r = gw.send(&method, &path, None, body, &[]).await;
        assert!(
            r.status != 405 && !is_fallback(r.status, &r.body),
            "{method} {path} did not reach a handler: {} {}",
            r.status,
            r.text()
        );
    }

    // An unknown route names itself and the reference.
    let r = gw.send("GET", "/v1/foo", None, None, &[]).await;
    assert!(is_fallback(r.status, &r.body), "{} {}", r.status, r.text());
    assert_eq!(
        r.json()["error"]["message"],
        "No such route: GET /v1/foo. The API reference is at /openapi.json (docs/api.md)."
    );
}
