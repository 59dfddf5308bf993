//! The control-plane calls (signing name `bedrock` as well): ListInferenceProfiles,
//! GetInferenceProfile, ListFoundationModels and GetFoundationModel, answered for the
//! signing (source) region.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::super::json_response;
use super::models::{
    find_profile, foundation_model_json, profile_json, profiles_in, BedrockSimConfig,
    BedrockSimModel,
};
use super::{percent_decode, AwsError};

const DEFAULT_MAX_RESULTS: usize = 100;
const MAX_MAX_RESULTS: usize = 1000;

fn decode(value: &str) -> String {
    String::from_utf8_lossy(&percent_decode(value)).into_owned()
}

/// The decoded query parameters, in order.
fn query_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn ok(body: &Value, request_id: &str) -> Response {
    json_response(
        StatusCode::OK,
        body,
        &[("x-amzn-requestid", request_id.to_owned())],
    )
}

fn check_access(config: &BedrockSimConfig, region: &str, action: &str) -> Result<(), AwsError> {
    if config.has_access(region) {
        Ok(())
    } else {
        Err(AwsError::access_denied(format!(
            "You are not authorized to perform: bedrock:{action} in {region}."
        )))
    }
}

fn enum_error(value: &str, member: &str, allowed: &str) -> AwsError {
    AwsError::validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: Member must satisfy enum value set: [{allowed}]"
    ))
}

/// A page token: the base64 of `offset:N`.
fn page_token(offset: usize) -> String {
    aws_smithy_types::base64::encode(format!("offset:{offset}"))
}

fn parse_page_token(token: &str) -> Option<usize> {
    let raw = aws_smithy_types::base64::decode(token).ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

/// `GET /inference-profiles` (`maxResults`, `nextToken`, and the `typeEquals` member sent
/// as the `type` query parameter, as the API reference documents; other parameters are
/// ignored, as by the service).
pub(super) fn list_inference_profiles(
    config: &BedrockSimConfig,
    region: &str,
    query: &str,
    request_id: &str,
) -> Result<Response, AwsError> {
    check_access(config, region, "ListInferenceProfiles")?;
    let params = query_params(query);
    let type_equals = param(&params, "type").unwrap_or("SYSTEM_DEFINED");
    if type_equals != "SYSTEM_DEFINED" && type_equals != "APPLICATION" {
        return Err(enum_error(
            type_equals,
            "typeEquals",
            "SYSTEM_DEFINED, APPLICATION",
        ));
    }
    let max_results = match param(&params, "maxResults") {
        None => DEFAULT_MAX_RESULTS,
        Some(value) => match value.parse::<usize>() {
            Ok(n) if (1..=MAX_MAX_RESULTS).contains(&n) => n,
            _ => {
                return Err(AwsError::validation(format!(
                    "1 validation error detected: Value '{value}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and {MAX_MAX_RESULTS}"
                )))
            }
        },
    };
    let offset = match param(&params, "nextToken") {
        None => 0,
        Some(token) => parse_page_token(token)
            .ok_or_else(|| AwsError::validation("The provided nextToken is invalid."))?,
    };
    let profiles = if type_equals == "SYSTEM_DEFINED" {
        profiles_in(config, region)
    } else {
        Vec::new()
    };
    let page: Vec<Value> = profiles
        .iter()
        .skip(offset)
        .take(max_results)
        .map(|profile| profile_json(profile, region))
        .collect();
    let mut body = json!({ "inferenceProfileSummaries": page });
    if offset + max_results < profiles.len() {
        body["nextToken"] = Value::String(page_token(offset + max_results));
    }
    Ok(ok(&body, request_id))
}

/// `GET /inference-profiles/{inferenceProfileIdentifier}` (a profile ID or ARN).
pub(super) fn get_inference_profile(
    config: &BedrockSimConfig,
    region: &str,
    raw_id: &str,
    request_id: &str,
) -> Result<Response, AwsError> {
    check_access(config, region, "GetInferenceProfile")?;
    let id = decode(raw_id);
    let profile = find_profile(config, &id, region).ok_or_else(|| {
        AwsError::not_found(format!("Inference profile {id} not found in {region}."))
    })?;
    Ok(ok(&profile_json(&profile, region), request_id))
}

/// The model a GetFoundationModel identifier (ID or foundation-model ARN) names, if it
/// is offered in `region`.
fn find_model<'a>(
    config: &'a BedrockSimConfig,
    identifier: &str,
    region: &str,
) -> Option<&'a BedrockSimModel> {
    let id = match identifier.strip_prefix("arn:aws:bedrock:") {
        Some(rest) => rest.strip_prefix(&format!("{region}::foundation-model/"))?,
        None => identifier,
    };
    config.model(id).filter(|model| model.available_in(region))
}

/// `GET /foundation-models/{modelIdentifier}`.
pub(super) fn get_foundation_model(
    config: &BedrockSimConfig,
    region: &str,
    raw_id: &str,
    request_id: &str,
) -> Result<Response, AwsError> {
    check_access(config, region, "GetFoundationModel")?;
    let id = decode(raw_id);
    let model = find_model(config, &id, region).ok_or_else(|| {
        AwsError::not_found(
            "Could not resolve the foundation model from the provided model identifier.",
        )
    })?;
    let body = json!({ "modelDetails": foundation_model_json(model, region) });
    Ok(ok(&body, request_id))
}

/// `GET /foundation-models` (filters `byProvider` and `byInferenceType`).
pub(super) fn list_foundation_models(
    config: &BedrockSimConfig,
    region: &str,
    query: &str,
    request_id: &str,
) -> Result<Response, AwsError> {
    check_access(config, region, "ListFoundationModels")?;
    let params = query_params(query);
    let provider = param(&params, "byProvider").map(str::to_ascii_lowercase);
    let inference_type = param(&params, "byInferenceType");
    if let Some(kind) = inference_type {
        if kind != "ON_DEMAND" && kind != "PROVISIONED" {
            return Err(enum_error(
                kind,
                "byInferenceType",
                "ON_DEMAND, PROVISIONED",
            ));
        }
    }
    let summaries: Vec<Value> = config
        .models
        .iter()
        .filter(|model| model.available_in(region))
        .filter(|model| {
            provider
                .as_deref()
                .is_none_or(|p| model.provider.to_ascii_lowercase() == p)
        })
        .filter(|model| inference_type.is_none_or(|kind| kind == "ON_DEMAND" && model.on_demand))
        .map(|model| foundation_model_json(model, region))
        .collect();
    Ok(ok(&json!({ "modelSummaries": summaries }), request_id))
}
