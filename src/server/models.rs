//! `GET /v1/models` and `GET /v1/models/{id}`: the catalog in OpenAI list shape, each
//! model extended with its endpoints, processing regions, prices and limits.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Value};

use super::error::ApiError;
use super::{auth, AppState};
use crate::catalog::{Catalog, Model, ProcessingRegions};
use crate::router::Router;

fn model_json(m: &Model, router: &Router) -> Value {
    let endpoints: Vec<Value> = m
        .endpoints
        .iter()
        .map(|e| {
            let regions: Vec<String> = match &e.processing_regions {
                ProcessingRegions::Known(r) => r.iter().cloned().collect(),
                ProcessingRegions::Unknown => Vec::new(),
            };
            let mut v = json!({
                "provider": e.provider.to_string(),
                "upstream_id": e.upstream_id,
                "regions": regions,
                "region": e.region_label,
                // Whether this deployment routes to it (catalog switch, Bedrock region
                // access, provider configured).
                "enabled": router.routable(e),
                "pricing": e.pricing,
                "verified": {"date": e.verified_date, "method": e.verified_method},
            });
            if let Some(b) = &e.bedrock {
                v["source_region"] = json!(b.source_region);
                v["invocation"] = json!(match b.invocation {
                    crate::catalog::BedrockInvocation::Profile { .. } => "profile",
                    crate::catalog::BedrockInvocation::OnDemand => "on_demand",
                });
            }
            v
        })
        .collect();
    let mut v = json!({
        "id": m.id,
        "object": "model",
        "created": 0,
        "owned_by": m.owned_by,
        "name": m.name,
        "kind": m.kind.as_str(),
        "context_window": m.context_window,
        "max_output_tokens": m.max_output_tokens,
        "capabilities": m.capabilities,
        "endpoints": endpoints,
    });
    if let Some(e) = m.embedding() {
        v["dimensions"] = json!(e.dimensions);
        if let Some(c) = &e.dimension_choices {
            v["dimension_choices"] = json!(c);
        }
    }
    v
}

/// The list, rendered once at start.
pub fn render_list(c: &Catalog, router: &Router) -> Bytes {
    let data: Vec<Value> = c.models.iter().map(|m| model_json(m, router)).collect();
    Bytes::from(json!({"object": "list", "data": data}).to_string())
}

fn json_response(body: Bytes) -> Response {
    ([("content-type", "application/json")], body).into_response()
}

#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "models",
    operation_id = "models_list",
    summary = "List the catalog's models",
    description = "Every model in OpenAI's list shape, each with its endpoints: provider, model ID, processing regions, whether this deployment routes to it, prices (USD per million tokens) and verification.",
    responses(
        (status = 200, description = "The models", body = crate::server::openapi::ModelList),
        (status = 401, description = "`invalid_api_key`: no key, or an unknown or revoked one", body = crate::server::openapi::Error),
        (status = 403, description = "`account_disabled`: the key's account is disabled", body = crate::server::openapi::Error),
    ),
    security(("customer_key" = []), ("x_api_key" = [])),
)]
pub async fn list(State(st): State<AppState>, h: HeaderMap) -> Result<Response, ApiError> {
    auth::customer(&st, &h)?;
    Ok(json_response(st.models_json.clone()))
}

#[utoipa::path(
    get,
    path = "/v1/models/{id}",
    tag = "models",
    operation_id = "models_get",
    summary = "One model",
    description = "A model by its ID or an alias (resolved as a request's `model` is).",
    params(("id" = String, Path, description = "The model's ID or alias; it may contain slashes")),
    responses(
        (status = 200, description = "The model", body = crate::server::openapi::Model),
        (status = 401, description = "`invalid_api_key`: no key, or an unknown or revoked one", body = crate::server::openapi::Error),
        (status = 403, description = "`account_disabled`: the key's account is disabled", body = crate::server::openapi::Error),
        (status = 404, description = "`model_not_found`"),
    ),
    security(("customer_key" = []), ("x_api_key" = [])),
)]
pub async fn one(
    State(st): State<AppState>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    auth::customer(&st, &h)?;
    let res = st.catalog.resolve(&id)?;
    Ok(json_response(Bytes::from(
        model_json(&res.model, &st.router).to_string(),
    )))
}
