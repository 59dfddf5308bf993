//! `gammainfra catalog verify`: the catalog's Bedrock IDs checked against this
//! deployment's AWS account. For each Bedrock endpoint this deployment routes to, the
//! control plane is asked whether the ID exists in that form and is accessible
//! (GetInferenceProfile for a profile, GetFoundationModel for a bare ID, and
//! ListInferenceProfiles to suggest the right form); with `--invoke` (it costs money)
//! a 1-token Converse call is made too.

use crate::catalog::{BedrockInvocation, Catalog, Endpoint, Model, ProviderKind};
use crate::chat::raw::RawObject;
use crate::chat::ChatRequest;
use crate::config::Config;
use crate::providers::bedrock::auth::Signer;
use crate::providers::bedrock::control::{ControlPlane, Lookup};
use crate::providers::bedrock::images::ImageFetcher;
use crate::providers::bedrock::Bedrock;
use crate::providers::http::HttpClient;
use crate::providers::{Call, Provider, UpstreamError, UpstreamErrorKind};

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Row {
    pub entry: String,
    pub upstream_id: String,
    pub form: String,
    pub exists: String,
    pub access: String,
    pub invoke: String,
    pub ok: bool,
    pub suggestion: Option<String>,
}

/// Checks every Bedrock endpoint of `catalog` this deployment routes to.
pub async fn verify(catalog: &Catalog, config: &Config, invoke: bool) -> Result<Vec<Row>, String> {
    let Some(b) = &config.bedrock else {
        if config.bedrock_disabled_in_file {
            return Err("Bedrock is disabled by `[bedrock] enabled = false` in the configuration file; set `enabled = true` there (or remove the line, with AWS credentials in the environment) to verify the catalog against AWS".into());
        }
        return Err("Bedrock is not configured: set AWS credentials (or AWS_BEARER_TOKEN_BEDROCK) and GAMMAINFRA_BEDROCK_REGIONS".into());
    };
    let client = HttpClient::new(config.timeouts).map_err(|e| e.to_string())?;
    let signer = Signer::from_config(
        &b.auth,
        b.regions.first().map_or("us-east-1", String::as_str),
    )
    .await;
    let control = ControlPlane::new(
        signer.clone(),
        b.control_endpoint_url.as_deref(),
        client.clone(),
    )?;
    let runtime = Bedrock::new(
        signer.clone(),
        b.endpoint_url.as_deref(),
        client,
        ImageFetcher::new(false).map_err(|e| e.to_string())?,
    )?;
    let mut rows = Vec::new();
    for m in &catalog.models {
        for e in m
            .endpoints
            .iter()
            .filter(|e| e.provider == ProviderKind::Bedrock && e.enabled)
        {
            let Some(be) = &e.bedrock else { continue };
            if !b.regions.contains(&be.source_region) {
                continue;
            }
            let mut row = match check(&control, e, &be.source_region, &be.invocation).await {
                Ok(row) => row,
                // Every other entry would fail the same way: said once, naming the
                // credentials used.
                Err(err) => return Err(credentials_error(&signer, &be.source_region, &err)),
            };
            row.entry = m.id.clone();
            if invoke && row.ok {
                row.invoke = match one_token(&runtime, m, e).await {
                    Ok(()) => "ok".into(),
                    Err(msg) => {
                        row.ok = false;
                        format!("failed: {msg}")
                    }
                };
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

fn base_id<'a>(id: &'a str, catalog_prefixes: &[&str]) -> &'a str {
    match id.split_once('.') {
        Some((head, rest)) if catalog_prefixes.contains(&head) && rest.contains('.') => rest,
        _ => id,
    }
}

const PREFIXES: &[&str] = &["us", "eu", "apac", "jp", "au", "us-gov", "ca", "global"];

/// What `catalog verify` says when the credentials did not get it an answer: there are
/// none to use, or AWS refused them (an invalid or expired key, token or signature),
/// which is not a question of model access.
fn credentials_error(signer: &Signer, region: &str, err: &UpstreamError) -> String {
    if err.status.is_none() {
        return err.to_string();
    }
    let why = err
        .message
        .strip_prefix("AWS refused the deployment's credentials ")
        .unwrap_or(&err.message);
    format!(
        "Bedrock in {region} refused the credentials used, {} {why}: they are not valid or have expired (this is not about model access)",
        signer.describe()
    )
}

/// One entry's row; an error when the credentials are missing or refused.
async fn check(
    control: &ControlPlane,
    e: &Endpoint,
    region: &str,
    inv: &BedrockInvocation,
) -> Result<Row, UpstreamError> {
    let mut row = Row {
        entry: String::new(),
        upstream_id: e.upstream_id.clone(),
        form: match inv {
            BedrockInvocation::Profile { geography } => format!("profile {geography} @ {region}"),
            BedrockInvocation::OnDemand => format!("on-demand @ {region}"),
        },
        exists: "?".into(),
        access: "?".into(),
        invoke: "-".into(),
        ok: false,
        suggestion: None,
    };
    let base = base_id(&e.upstream_id, PREFIXES).to_owned();
    let result = match inv {
        BedrockInvocation::Profile { .. } => {
            control.inference_profile(region, &e.upstream_id).await
        }
        BedrockInvocation::OnDemand => control.foundation_model(region, &e.upstream_id).await,
    };
    match result {
        Err(err) if err.kind == UpstreamErrorKind::Auth => return Err(err),
        Err(err) => {
            row.exists = format!("error: {err}");
        }
        Ok(Lookup::AccessDenied(msg)) => {
            row.exists = "?".into();
            row.access = "denied".into();
            row.suggestion = Some(format!(
                "enable access to {base} in the Bedrock console of {region} ({msg})"
            ));
        }
        Ok(Lookup::NotFound) => {
            row.exists = "no".into();
            row.access = "-".into();
            row.suggestion = suggest(control, region, &base).await;
        }
        Ok(Lookup::Found(v)) => {
            row.exists = "yes".into();
            row.access = "yes".into();
            match inv {
                BedrockInvocation::Profile { .. } => {
                    let status = v["status"].as_str().unwrap_or("ACTIVE");
                    row.ok = status == "ACTIVE";
                    if !row.ok {
                        row.exists = format!("yes ({status})");
                    }
                }
                BedrockInvocation::OnDemand => {
                    let on_demand = v["modelDetails"]["inferenceTypesSupported"]
                        .as_array()
                        .is_some_and(|t| t.iter().any(|x| x == "ON_DEMAND"));
                    row.ok = on_demand;
                    if !on_demand {
                        row.exists = "yes, but not on-demand".into();
                        row.suggestion = suggest(control, region, &base).await;
                    }
                }
            }
        }
    }
    Ok(row)
}

/// The right form of `base` in `region`: a bare ID if the model is on-demand there,
/// else the profile IDs of the region that contain it, geographic ones first.
async fn suggest(control: &ControlPlane, region: &str, base: &str) -> Option<String> {
    if let Ok(Lookup::Found(v)) = control.foundation_model(region, base).await {
        let on_demand = v["modelDetails"]["inferenceTypesSupported"]
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x == "ON_DEMAND"));
        if on_demand {
            return Some(format!(
                "use the bare ID `{base}` (invocation = \"on_demand\", region = \"{region}\")"
            ));
        }
    }
    let ids = control.inference_profile_ids(region).await.ok()?;
    let mut matching: Vec<String> = ids
        .into_iter()
        .filter(|id| base_id(id, PREFIXES) == base && id != base)
        .collect();
    matching.sort_by_key(|id| id.starts_with("global."));
    matching.first().map(|id| {
        let geo = id.split('.').next().unwrap_or("");
        format!("use the profile ID `{id}` (invocation = \"profile\", geography = \"{geo}\")")
    })
}

async fn one_token(runtime: &Bedrock, m: &Model, e: &Endpoint) -> Result<(), String> {
    // An embedding model is invoked with one short text (InvokeModel), not Converse.
    if m.embedding().is_some() {
        let input = crate::providers::embeddings::EmbedInput::Texts(vec!["verify".to_owned()]);
        return runtime
            .embed(crate::providers::embeddings::EmbedCall {
                input: &input,
                dimensions: None,
                user: None,
                endpoint: e,
                model: m,
            })
            .await
            .map(|_| ())
            .map_err(|err| err.to_string());
    }
    let body = br#"{"model":"verify","messages":[{"role":"user","content":"Reply with one word."}],"max_tokens":1}"#;
    let req = ChatRequest::parse(body).map_err(|e| e.message)?;
    let raw = RawObject::parse(body).map_err(|e| e.to_string())?;
    runtime
        .call(Call {
            req: &req,
            raw: &raw,
            endpoint: e,
            model: m,
            body_len: body.len(),
            native: None,
            responses: None,
        })
        .await
        .map(|_| ())
        .map_err(|err| err.to_string())
}

/// The report as a table.
pub fn render(rows: &[Row]) -> String {
    let head = [
        "entry",
        "bedrock id",
        "form",
        "exists",
        "access",
        "invoke",
        "result",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.entry.clone(),
                r.upstream_id.clone(),
                r.form.clone(),
                r.exists.clone(),
                r.access.clone(),
                r.invoke.clone(),
                if r.ok { "OK".into() } else { "MISMATCH".into() },
            ]
        })
        .collect();
    let mut width = head.map(str::len);
    for c in &cells {
        for (i, v) in c.iter().enumerate() {
            width[i] = width[i].max(v.chars().count());
        }
    }
    let line = |v: &[String]| -> String {
        v.iter()
            .enumerate()
            .map(|(i, s)| format!("{s:<w$}", w = width[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = line(&head.map(str::to_owned));
    out.push('\n');
    for (c, r) in cells.iter().zip(rows) {
        out.push_str(&line(c));
        out.push('\n');
        if let Some(s) = &r.suggestion {
            out.push_str(&format!("    → {s}\n"));
        }
    }
    out
}
