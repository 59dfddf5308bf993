//! The API reference: `GET /openapi.json` describes every route the gateway serves and
//! nothing else, and docs/api.md is its rendering.

use std::collections::BTreeSet;
use std::fmt::Write;

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

/// docs/api.md is the rendering of the document; `GAMMAINFRA_WRITE_API_DOC=1` rewrites it.
#[test]
fn openapi_docs_api_md_is_the_rendering_of_the_document() {
    let rendered = render(&document());
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md");
    if std::env::var_os("GAMMAINFRA_WRITE_API_DOC").is_some() {
        std::fs::write(&file, &rendered).expect("write docs/api.md");
        return;
    }
    let current = std::fs::read_to_string(&file).unwrap_or_default();
    if current != rendered {
        let line = current
            .lines()
            .zip(rendered.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "the end".to_owned(), |n| format!("line {}", n + 1));
        panic!(
            "docs/api.md is not the rendering of the API reference (first difference at {line}). Regenerate it with:\n\n    GAMMAINFRA_WRITE_API_DOC=1 cargo test --test it openapi\n"
        );
    }
}

// The Markdown rendering.

/// One line of table text.
fn cell(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn ref_name(r: &str) -> &str {
    r.rsplit('/').next().unwrap_or(r)
}

fn anchor(name: &str) -> String {
    format!("schema-{}", name.to_lowercase())
}

/// A schema's type, briefly: `string`, `integer`, `[Model](#schema-model)[]`, ...
fn type_of(s: &Value) -> String {
    if let Some(r) = s["$ref"].as_str() {
        let n = ref_name(r);
        return format!("[{n}](#{})", anchor(n));
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(v) = s[key].as_array() {
            return v.iter().map(type_of).collect::<Vec<_>>().join(" \\| ");
        }
    }
    let ty = match &s["type"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(ts) => ts
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        _ if s.get("properties").is_some() => vec!["object".to_owned()],
        _ => vec!["any".to_owned()],
    };
    ty.iter()
        .map(|t| match t.as_str() {
            "array" => format!("{}[]", type_of(&s["items"])),
            t => t.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" \\| ")
}

/// The fields of an object schema as table rows.
fn fields(out: &mut String, s: &Value) {
    let required: BTreeSet<&str> = s["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let Some(props) = s["properties"].as_object() else {
        return;
    };
    out.push_str("| field | type | required | description |\n|---|---|---|---|\n");
    for (name, p) in props {
        let mut desc = cell(p["description"].as_str().unwrap_or_default());
        if let Some(e) = p["enum"].as_array() {
            let vals: Vec<String> = e
                .iter()
                .map(|v| format!("`{}`", v.as_str().unwrap_or_default()))
                .collect();
            let _ = write!(desc, " One of {}.", vals.join(", "));
        }
        if let Some(e) = p.get("example") {
            let _ = write!(desc, " Example: `{e}`.");
        }
        let _ = writeln!(
            out,
            "| `{name}` | {} | {} | {} |",
            type_of(p),
            if required.contains(name.as_str()) {
                "yes"
            } else {
                "no"
            },
            desc.trim()
        );
    }
    out.push('\n');
}

fn render(doc: &Value) -> String {
    let mut out = String::new();
    let info = &doc["info"];
    let _ = writeln!(
        out,
        "# {} reference\n",
        info["title"].as_str().unwrap_or("API")
    );
    out.push_str("<!-- Generated from the OpenAPI document; do not edit. Regenerate with `GAMMAINFRA_WRITE_API_DOC=1 cargo test --test it openapi`. -->\n\n");
    let _ = writeln!(
        out,
        "The gateway serves this reference as an OpenAPI {} document at `GET /openapi.json` (no authentication); this page is rendered from it by `tests/it/openapi.rs`, which also checks that it describes every route the gateway serves.\n",
        doc["openapi"].as_str().unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "{}\n",
        info["description"].as_str().unwrap_or_default()
    );

    out.push_str("## Authentication\n\n| scheme | how |\n|---|---|\n");
    let schemes = &doc["components"]["securitySchemes"];
    for (name, s) in schemes.as_object().into_iter().flatten() {
        let _ = writeln!(
            out,
            "| `{name}` | {} |",
            cell(s["description"].as_str().unwrap_or_default())
        );
    }
    out.push('\n');

    let tags: Vec<(String, String)> = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["name"].as_str().unwrap_or_default().to_owned(),
                t["description"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    out.push_str("## Contents\n\n");
    for (name, desc) in &tags {
        let _ = writeln!(out, "- [{name}](#{name}): {desc}");
    }
    out.push_str("- [Schemas](#schemas)\n\n");

    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    for (tag, desc) in &tags {
        let _ = writeln!(out, "## {tag}\n\n{desc}.\n");
        for (path, item) in &paths {
            for m in METHODS {
                let op = &item[m];
                if op.is_null() || op["tags"][0].as_str() != Some(tag.as_str()) {
                    continue;
                }
                operation(&mut out, m, path, op);
            }
        }
    }

    out.push_str("## Schemas\n\n");
    for (name, s) in doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let _ = writeln!(out, "<a id=\"{}\"></a>\n### {name}\n", anchor(name));
        if let Some(d) = s["description"].as_str() {
            let _ = writeln!(out, "{}\n", cell(d));
        }
        if let Some(variants) = s["oneOf"].as_array() {
            out.push_str("One of:\n\n");
            for v in variants {
                if v.get("properties").is_some() {
                    fields(&mut out, v);
                } else {
                    let _ = writeln!(out, "- {}\n", type_of(v));
                }
            }
        } else if s.get("properties").is_some() {
            fields(&mut out, s);
        } else {
            let _ = writeln!(out, "Type: {}\n", type_of(s));
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

fn operation(out: &mut String, method: &str, path: &str, op: &Value) {
    let _ = writeln!(out, "### `{} {path}`\n", method.to_uppercase());
    let _ = writeln!(out, "**{}**\n", op["summary"].as_str().unwrap_or_default());
    if let Some(d) = op["description"].as_str() {
        let _ = writeln!(out, "{d}\n");
    }
    let auth: Vec<String> = op["security"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| {
            s.as_object()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, _)| k)
        })
        .map(|k| format!("`{k}`"))
        .collect();
    let auth = match (auth.is_empty(), path.starts_with("/console")) {
        (_, true) => "the console's session cookie where the page needs a login".to_owned(),
        (true, false) => "none".to_owned(),
        (false, false) => auth.join(" or "),
    };
    let _ = writeln!(out, "Auth: {auth}\n");
    if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
        out.push_str("| parameter | in | type | required | description |\n|---|---|---|---|---|\n");
        for p in params {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                p["name"].as_str().unwrap_or_default(),
                p["in"].as_str().unwrap_or_default(),
                // A header or query parameter is absent, never null.
                type_of(&p["schema"]).trim_end_matches(" \\| null"),
                if p["required"] == true { "yes" } else { "no" },
                cell(p["description"].as_str().unwrap_or_default())
            );
        }
        out.push('\n');
    }
    if let Some(content) = op["requestBody"]["content"].as_object() {
        let kinds: Vec<String> = content
            .iter()
            .map(|(ct, c)| match c.get("schema") {
                Some(s) => format!("`{ct}`: {}", type_of(s)),
                None => format!("`{ct}`"),
            })
            .collect();
        let required = if op["requestBody"]["required"] == true {
            ""
        } else {
            " (optional)"
        };
        let _ = writeln!(out, "Request body{required}: {}\n", kinds.join("; "));
        if let Some(d) = op["requestBody"]["description"].as_str() {
            let _ = writeln!(out, "{}\n", cell(d));
        }
    }
    out.push_str("| status | body | description |\n|---|---|---|\n");
    let mut headers = String::new();
    for (status, r) in op["responses"].as_object().into_iter().flatten() {
        let bodies: Vec<String> = r["content"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(ct, c)| match c.get("schema") {
                Some(s) => format!("`{ct}`: {}", type_of(s)),
                None => format!("`{ct}`"),
            })
            .collect();
        let _ = writeln!(
            out,
            "| {status} | {} | {} |",
            if bodies.is_empty() {
                "—".to_owned()
            } else {
                bodies.join("<br>")
            },
            cell(r["description"].as_str().unwrap_or_default())
        );
        for (name, h) in r["headers"].as_object().into_iter().flatten() {
            let _ = writeln!(
                headers,
                "| {status} | `{name}` | {} |",
                cell(h["description"].as_str().unwrap_or_default())
            );
        }
    }
    out.push('\n');
    if !headers.is_empty() {
        out.push_str("| status | response header | description |\n|---|---|---|\n");
        out.push_str(&headers);
        out.push('\n');
    }
}

/// The schema `s` with its `$ref` (and a nullable `oneOf` / `anyOf` of one schema and
/// `null`) resolved in `doc`.
fn resolve<'a>(doc: &'a Value, s: &'a Value) -> &'a Value {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = ref_name(r);
        return resolve(doc, &doc["components"]["schemas"][name]);
    }
    for k in ["oneOf", "anyOf"] {
        if let Some(alts) = s.get(k).and_then(Value::as_array) {
            let real: Vec<&Value> = alts.iter().filter(|a| a["type"] != "null").collect();
            if real.len() == 1 {
                return resolve(doc, real[0]);
            }
        }
    }
    s
}

/// Checks a real answer against its documented schema: every member it has is
/// documented, and every member the schema requires is there, in nested objects and
/// list items too. `at` names the place for the failure message.
fn conforms(
    doc: &Value,
    schema: &Value,
    v: &Value,
    at: &str,
    problems: &mut Vec<String>,
    checked: &mut BTreeSet<String>,
) {
    let schema = resolve(doc, schema);
    match v {
        Value::Object(members) => {
            let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                // A free-form object (passed through from a provider, say).
                return;
            };
            for (k, value) in members {
                checked.insert(format!("{at}.{k}"));
                match props.get(k) {
                    Some(p) => conforms(doc, p, value, &format!("{at}.{k}"), problems, checked),
                    None => problems.push(format!("{at}.{k} is answered but not documented")),
                }
            }
            for r in schema["required"].as_array().into_iter().flatten() {
                let r = r.as_str().unwrap_or_default();
                if !members.contains_key(r) {
                    problems.push(format!(
                        "{at}.{r} is required by the reference but not answered"
                    ));
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items") {
                for (i, x) in items.iter().enumerate().take(3) {
                    conforms(doc, item, x, &format!("{at}[{i}]"), problems, checked);
                }
            }
        }
        _ => {}
    }
}

/// (method, route as documented, path called, customer key (else admin), body, status)
type Call = (
    &'static str,
    &'static str,
    String,
    bool,
    Option<String>,
    u16,
);

/// Real answers of the JSON routes a client reads have exactly the members the
/// reference documents for them (a documentation type that drifted from its handler's
/// `json!` fails here).
#[tokio::test]
async fn answers_have_the_members_the_reference_documents() {
    let gw = Gw::start().await;
    let doc = document();
    let (account, key) = gw.account("shapes@example.com").await;
    let chat = crate::harness::chat_body("anthropic/claude-sonnet-4-6", "Hello!", "");
    let created = gw
        .admin(
            "POST",
            &format!("/admin/v1/accounts/{account}/keys"),
            Some(r#"{"name":"ci","limits":{"daily_usd":"5.00"}}"#),
        )
        .await;
    let key_id = created.json()["key_id"]
        .as_str()
        .expect("key id")
        .to_owned();
    let topup = r#"{"amount_usd":"10.00"}"#.to_owned();
    let calls: Vec<Call> = vec![
        (
            "post",
            "/v1/chat/completions",
            "/v1/chat/completions".into(),
            true,
            Some(chat),
            200,
        ),
        ("get", "/v1/credits", "/v1/credits".into(), true, None, 200),
        ("get", "/v1/usage", "/v1/usage".into(), true, None, 200),
        (
            "get",
            "/v1/usage/daily",
            "/v1/usage/daily".into(),
            true,
            None,
            200,
        ),
        ("get", "/v1/models", "/v1/models".into(), true, None, 200),
        (
            "get",
            "/v1/models/{id}",
            "/v1/models/anthropic/claude-sonnet-4-6".into(),
            true,
            None,
            200,
        ),
        ("get", "/readyz", "/readyz".into(), false, None, 200),
        (
            "post",
            "/admin/v1/accounts",
            "/admin/v1/accounts".into(),
            false,
            Some(r#"{"email":"other@example.com"}"#.into()),
            201,
        ),
        (
            "get",
            "/admin/v1/accounts/{id}",
            format!("/admin/v1/accounts/{account}"),
            false,
            None,
            200,
        ),
        (
            "post",
            "/admin/v1/accounts/{id}/topups",
            format!("/admin/v1/accounts/{account}/topups"),
            false,
            Some(topup),
            201,
        ),
        (
            "get",
            "/admin/v1/keys/{key_id}",
            format!("/admin/v1/keys/{key_id}"),
            false,
            None,
            200,
        ),
        (
            "get",
            "/admin/v1/accounts/{id}/usage",
            format!("/admin/v1/accounts/{account}/usage"),
            false,
            None,
            200,
        ),
        (
            "get",
            "/admin/v1/runtime",
            "/admin/v1/runtime".into(),
            false,
            None,
            200,
        ),
        ("get", "/v1/foo", "/v1/foo".into(), true, None, 404),
    ];
    let mut problems = Vec::new();
    let mut checked = BTreeSet::new();
    for (method, route, path, customer, body, status) in calls {
        let auth = if customer {
            key.as_str()
        } else {
            crate::harness::ADMIN
        };
        let r = gw
            .send(
                &method.to_uppercase(),
                &path,
                Some(auth),
                body.as_deref(),
                &[],
            )
            .await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        let schema = if status == 404 {
            serde_json::json!({"$ref": "#/components/schemas/Error"})
        } else {
            let op = &doc["paths"][route][method];
            assert!(op.is_object(), "{method} {route} is not in the reference");
            op["responses"][status.to_string()]["content"]["application/json"]["schema"].clone()
        };
        assert!(
            !schema.is_null(),
            "{method} {route}: no JSON schema for {status}"
        );
        conforms(
            &doc,
            &schema,
            &r.json(),
            &format!("{method} {route}"),
            &mut problems,
            &mut checked,
        );
    }
    // The members compared reach into nested objects and list items.
    for deep in [
        "post /v1/chat/completions.usage.cost_usd",
        "get /v1/usage.data[0].upstream_model",
        "get /v1/models.data[0].id",
        "get /admin/v1/keys/{key_id}.limits",
        "get /v1/foo.error.code",
    ] {
        assert!(
            checked.contains(deep),
            "{deep} was not compared: {checked:?}"
        );
    }
    assert!(
        problems.is_empty(),
        "answers and the reference differ:\n{}",
        problems.join("\n")
    );
}
