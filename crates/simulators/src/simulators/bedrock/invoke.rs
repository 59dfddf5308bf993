//! InvokeModel (`POST /model/{modelId}/invoke`) for the embedding models, after the same
//! authentication, model-ID and access checks as Converse. Each body is validated the
//! way the model's own schema does on Bedrock, with its `Malformed input request: ...`
//! ValidationException texts:
//!
//! * Titan Text Embeddings V2 (`amazon.titan-embed-text-v2:0`): `inputText` (required,
//!   a non-empty string, at most 8192 tokens), `dimensions` (256, 512 or 1024),
//!   `normalize` (bool), `embeddingTypes` (`float` / `binary`); no other member. Answers
//!   `{"embedding","embeddingsByType":{"float"},"inputTextTokenCount"}`.
//! * Cohere Embed v3 (`cohere.embed-english-v3`, `cohere.embed-multilingual-v3`): `texts`
//!   (required, at most 96 strings of at most 2048 characters), `input_type` (required:
//!   `search_document`, `search_query`, `classification`, `clustering`), `truncate`
//!   (`NONE`, `START`, `END`), `embedding_types` (`float`, `int8`, `uint8`, `binary`,
//!   `ubinary`; only `float` is simulated); no other member. Answers
//!   `{"embeddings":{"float":[...]},"id","response_type":"embeddings_by_type","texts"}`
//!   (without `embedding_types`: a plain list, `embeddings_floats`). With `truncate` NONE
//!   a text over 512 tokens is refused.
//!
//! Vectors are the parent module's pseudo-embeddings (Titan normalized when `normalize`
//! is true, its default; Cohere's always normalized), 1024 floats unless Titan is asked
//! for fewer. Tokens are whitespace-separated words; the count is sent in
//! `X-Amzn-Bedrock-Input-Token-Count` (and Titan's `inputTextTokenCount`).
//! `[[sim:error 429|500|503|400]]` in a text answers ThrottlingException,
//! InternalServerException, ServiceUnavailableException or ValidationException.
//! Other models are refused: the simulator serves InvokeModel for embeddings only.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::super::embedding::pseudo_embedding;
use super::super::{count_words, json_response, sim_directives, RecordedRequest};
use super::models::{resolve, ModelIdError};
use super::{percent_decode, request_id as aws_request_id, AwsError, SimState};

const TITAN_V2: &str = "amazon.titan-embed-text-v2:0";
const COHERE: [&str; 2] = ["cohere.embed-english-v3", "cohere.embed-multilingual-v3"];

/// `Malformed input request: {what}, please reformat your input and try again.`
fn malformed(what: impl std::fmt::Display) -> AwsError {
    AwsError::validation(format!(
        "Malformed input request: {what}, please reformat your input and try again."
    ))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "Null",
        Value::Bool(_) => "Boolean",
        Value::Number(n) if n.is_f64() => "BigDecimal",
        Value::Number(_) => "Integer",
        Value::String(_) => "String",
        Value::Array(_) => "JSONArray",
        Value::Object(_) => "JSONObject",
    }
}

fn expect_type(path: &str, v: &Value, want: &str) -> Result<(), AwsError> {
    if type_name(v) == want {
        Ok(())
    } else {
        Err(malformed(format!(
            "#/{path}: expected type: {want}, found: {}",
            type_name(v)
        )))
    }
}

fn only_keys(obj: &Map<String, Value>, allowed: &[&str]) -> Result<(), AwsError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(malformed(format!(
            "#: extraneous key [{k}] is not permitted"
        ))),
        None => Ok(()),
    }
}

fn required<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a Value, AwsError> {
    obj.get(key)
        .ok_or_else(|| malformed(format!("#: required key [{key}] not found")))
}

fn enum_member(path: &str, v: &Value, allowed: &[&str]) -> Result<(), AwsError> {
    match v.as_str() {
        Some(s) if allowed.contains(&s) => Ok(()),
        _ => Err(malformed(format!(
            "#/{path}: {v} is not a valid enum value"
        ))),
    }
}

/// The error a `[[sim:error STATUS]]` in one of the texts asks for.
fn triggered(texts: &[&str], model_id: &str) -> Option<AwsError> {
    texts.iter().find_map(|t| {
        sim_directives(t, model_id)
            .into_iter()
            .find(|(name, _)| *name == "error")
            .map(|(_, arg)| match arg {
                "429" => AwsError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "ThrottlingException",
                    "Too many requests, please wait before trying again.",
                ),
                "503" => AwsError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailableException",
                    "Bedrock is unable to process your request.",
                ),
                "400" => AwsError::validation("Simulated client error."),
                _ => AwsError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerException",
                    "The system encountered an unexpected error during processing. Try your request again.",
                ),
            })
    })
}

fn answer(body: &Value, tokens: u64, request_id: &str) -> Response {
    json_response(
        StatusCode::OK,
        body,
        &[
            ("x-amzn-requestid", request_id.to_owned()),
            ("x-amzn-bedrock-input-token-count", tokens.to_string()),
            ("x-amzn-bedrock-invocation-latency", "12".to_owned()),
        ],
    )
}

pub(super) fn invoke(
    state: &SimState,
    request: &RecordedRequest,
    region: &str,
    raw_model_id: &str,
    request_id: &str,
) -> Result<Response, AwsError> {
    let model_id = String::from_utf8_lossy(&percent_decode(raw_model_id)).into_owned();
    let model = match resolve(&state.config, &model_id, region) {
        Ok((m, _)) => m,
        Err(ModelIdError::Invalid) => {
            return Err(AwsError::validation(
                "The provided model identifier is invalid.",
            ))
        }
        Err(ModelIdError::OnDemandUnsupported(id)) => {
            return Err(AwsError::validation(format!(
                "Invocation of model ID {id} with on-demand throughput isn\u{2019}t supported. Retry your request with the ID or ARN of an inference profile that contains this model."
            )))
        }
    };
    if !state.config.has_access(region) {
        return Err(AwsError::access_denied(
            "You don't have access to the model with the specified model ID.",
        ));
    }
    let body: Value = serde_json::from_slice(&request.body)
        .map_err(|e| malformed(format!("#: the body is not JSON ({e})")))?;
    let Some(obj) = body.as_object() else {
        return Err(malformed(format!(
            "#: expected type: JSONObject, found: {}",
            type_name(&body)
        )));
    };
    if model.id == TITAN_V2 {
        titan(obj, &model_id, request_id)
    } else if COHERE.contains(&model.id.as_str()) {
        cohere(obj, &model_id, request_id)
    } else {
        Err(AwsError::validation(format!(
            "The simulated InvokeModel serves the embedding models only, not {}.",
            model.id
        )))
    }
}

fn titan(obj: &Map<String, Value>, model_id: &str, request_id: &str) -> Result<Response, AwsError> {
    only_keys(
        obj,
        &["inputText", "dimensions", "normalize", "embeddingTypes"],
    )?;
    let text = required(obj, "inputText")?;
    expect_type("inputText", text, "String")?;
    let text = text.as_str().unwrap_or_default();
    if text.is_empty() {
        return Err(malformed("#/inputText: expected minLength: 1, actual: 0"));
    }
    let dimensions = match obj.get("dimensions") {
        None => 1024,
        Some(d) => match d.as_u64() {
            Some(n @ (256 | 512 | 1024)) => n as usize,
            _ => {
                return Err(malformed(format!(
                    "#/dimensions: {d} is not a valid enum value"
                )))
            }
        },
    };
    let normalize = match obj.get("normalize") {
        None => true,
        Some(n) => {
            expect_type("normalize", n, "Boolean")?;
            n.as_bool().unwrap_or(true)
        }
    };
    if let Some(types) = obj.get("embeddingTypes") {
        expect_type("embeddingTypes", types, "JSONArray")?;
        for (i, t) in types.as_array().into_iter().flatten().enumerate() {
            enum_member(&format!("embeddingTypes/{i}"), t, &["float", "binary"])?;
        }
    }
    if let Some(e) = triggered(&[text], model_id) {
        return Err(e);
    }
    let tokens = count_words(text);
    if tokens > 8192 {
        return Err(AwsError::validation(format!(
            "400 Bad Request: Too many input tokens. Max input tokens: 8192, request input token count: {tokens} "
        )));
    }
    let v = pseudo_embedding(text, dimensions, normalize);
    Ok(answer(
        &json!({
            "embedding": v,
            "embeddingsByType": {"float": v},
            "inputTextTokenCount": tokens,
        }),
        tokens,
        request_id,
    ))
}

fn cohere(
    obj: &Map<String, Value>,
    model_id: &str,
    request_id: &str,
) -> Result<Response, AwsError> {
    only_keys(
        obj,
        &[
            "texts",
            "images",
            "input_type",
            "truncate",
            "embedding_types",
        ],
    )?;
    let texts = required(obj, "texts")?;
    expect_type("texts", texts, "JSONArray")?;
    let texts = texts.as_array().cloned().unwrap_or_default();
    if texts.len() > 96 {
        return Err(malformed(format!(
            "#/texts: expected maxItems: 96, actual: {}",
            texts.len()
        )));
    }
    let mut strings = Vec::with_capacity(texts.len());
    for (i, t) in texts.iter().enumerate() {
        expect_type(&format!("texts/{i}"), t, "String")?;
        let s = t.as_str().unwrap_or_default();
        let chars = s.chars().count();
        if chars > 2048 {
            return Err(malformed(format!(
                "#/texts/{i}: expected maxLength: 2048, actual: {chars}"
            )));
        }
        strings.push(s);
    }
    let input_type = required(obj, "input_type")?;
    enum_member(
        "input_type",
        input_type,
        &[
            "search_document",
            "search_query",
            "classification",
            "clustering",
        ],
    )?;
    let truncate = obj.get("truncate");
    if let Some(t) = truncate {
        enum_member("truncate", t, &["NONE", "START", "END"])?;
    }
    let by_type = match obj.get("embedding_types") {
        None => false,
        Some(types) => {
            expect_type("embedding_types", types, "JSONArray")?;
            for (i, t) in types.as_array().into_iter().flatten().enumerate() {
                enum_member(
                    &format!("embedding_types/{i}"),
                    t,
                    &["float", "int8", "uint8", "binary", "ubinary"],
                )?;
                if t != "float" {
                    return Err(AwsError::validation(
                        "The simulator returns float embeddings only.",
                    ));
                }
            }
            true
        }
    };
    if let Some(e) = triggered(&strings, model_id) {
        return Err(e);
    }
    let truncating = truncate
        .and_then(Value::as_str)
        .is_some_and(|t| t != "NONE");
    let mut tokens = 0u64;
    for s in &strings {
        let n = count_words(s);
        if n > 512 && !truncating {
            return Err(AwsError::validation(
                "Input is too long for requested model.",
            ));
        }
        tokens += n.min(512);
    }
    let vectors: Vec<Vec<f32>> = strings
        .iter()
        .map(|s| pseudo_embedding(s, 1024, true))
        .collect();
    let (embeddings, response_type) = if by_type {
        (json!({"float": vectors}), "embeddings_by_type")
    } else {
        (json!(vectors), "embeddings_floats")
    };
    Ok(answer(
        &json!({
            "embeddings": embeddings,
            "id": aws_request_id(),
            "response_type": response_type,
            "texts": strings,
        }),
        tokens,
        request_id,
    ))
}
