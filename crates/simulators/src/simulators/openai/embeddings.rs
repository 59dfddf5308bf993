//! Simulated `POST /v1/embeddings`, validated on its own (not with the gateway's code):
//!
//! * `model`: `text-embedding-3-small` (1536 dimensions), `text-embedding-3-large`
//!   (3072) or `text-embedding-ada-002` (1536, no `dimensions`); any other model is a 404
//!   `model_not_found`.
//! * `input`: a non-empty string, or a non-empty array (at most 2048 items) of non-empty
//!   strings, of token integers, or of non-empty token arrays; otherwise 400 `'$.input'
//!   is invalid`. An input over 8192 tokens is refused with the context-length message.
//! * `dimensions`: 1 to the model's size (not for ada-002); `encoding_format`: `float`
//!   (default) or `base64`; `user`: a string. Any other member is refused.
//!
//! Vectors are the parent module's pseudo-embeddings of each input (a token array is
//! embedded as its numbers joined by spaces), normalized, in the asked size and format.
//! Tokens: the whitespace-separated words of a text, the length of a token array.
//! `[[sim:error STATUS]]` in any text input answers that error instead.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::super::embedding::{base64_f32, pseudo_embedding};
use super::super::{count_words, json_response, sim_directives, RecordedRequest};
use super::ApiError;

const MODELS: &[(&str, u32, bool)] = &[
    ("text-embedding-3-small", 1536, true),
    ("text-embedding-3-large", 3072, true),
    ("text-embedding-ada-002", 1536, false),
];
const MAX_INPUTS: usize = 2048;
const MAX_TOKENS_PER_INPUT: u64 = 8192;

fn invalid_input() -> ApiError {
    ApiError::invalid(
        "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.".to_owned(),
        None,
        None,
    )
}

/// The inputs as (text to embed, tokens).
fn inputs(v: &Value) -> Result<Vec<(String, u64)>, ApiError> {
    let token_array = |a: &Vec<Value>| -> Option<(String, u64)> {
        if a.is_empty() {
            return None;
        }
        let ids: Option<Vec<u64>> = a.iter().map(Value::as_u64).collect();
        let ids = ids?;
        let text: Vec<String> = ids.iter().map(u64::to_string).collect();
        Some((text.join(" "), ids.len() as u64))
    };
    match v {
        Value::String(s) if !s.is_empty() => Ok(vec![(s.clone(), count_words(s))]),
        Value::Array(items) if !items.is_empty() && items.len() <= MAX_INPUTS => {
            if items.iter().all(Value::is_u64) {
                return token_array(items)
                    .map(|t| vec![t])
                    .ok_or_else(invalid_input);
            }
            items
                .iter()
                .map(|item| match item {
                    Value::String(s) if !s.is_empty() => Ok((s.clone(), count_words(s))),
                    Value::Array(a) => token_array(a).ok_or_else(invalid_input),
                    _ => Err(invalid_input()),
                })
                .collect()
        }
        _ => Err(invalid_input()),
    }
}

pub(super) fn create(request: &RecordedRequest, request_id: &str) -> Result<Response, ApiError> {
    let body: Value = serde_json::from_slice(&request.body).map_err(|_| {
        ApiError::invalid(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)".to_owned(),
            None,
            None,
        )
    })?;
    let Some(obj) = body.as_object() else {
        return Err(invalid_input());
    };
    for key in obj.keys() {
        if !["model", "input", "dimensions", "encoding_format", "user"].contains(&key.as_str()) {
            return Err(ApiError::invalid(
                format!("Unrecognized request argument supplied: {key}"),
                None,
                None,
            ));
        }
    }
    let Some(model) = obj.get("model").and_then(Value::as_str) else {
        return Err(ApiError::invalid(
            "you must provide a model parameter".to_owned(),
            None,
            None,
        ));
    };
    let Some(&(_, size, shortenable)) = MODELS.iter().find(|(m, _, _)| *m == model) else {
        return Err(ApiError::model_not_found(model));
    };
    let inputs = inputs(obj.get("input").unwrap_or(&Value::Null))?;
    let dimensions = match obj.get("dimensions") {
        None | Some(Value::Null) => size,
        Some(_) if !shortenable => {
            return Err(ApiError::invalid(
                "This model does not support specifying dimensions.".to_owned(),
                Some("dimensions"),
                None,
            ))
        }
        Some(d) => match d.as_u64().and_then(|d| u32::try_from(d).ok()) {
            Some(d) if (1..=size).contains(&d) => d,
            _ => {
                return Err(ApiError::invalid(
                    format!(
                    "Invalid value for 'dimensions' = {d}. Must be an integer from 1 to {size}."
                ),
                    Some("dimensions"),
                    Some("invalid_value"),
                ))
            }
        },
    };
    let base64 = match obj.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(f)) if f == "float" => false,
        Some(Value::String(f)) if f == "base64" => true,
        Some(other) => {
            return Err(ApiError::invalid(
                format!("Invalid value for 'encoding_format': {other}. Supported values are: 'float' and 'base64'."),
                Some("encoding_format"),
                Some("invalid_value"),
            ))
        }
    };
    if obj.get("user").is_some_and(|u| !u.is_string()) {
        return Err(ApiError::invalid(
            "Invalid type for 'user': expected a string.".to_owned(),
            Some("user"),
            Some("invalid_type"),
        ));
    }
    for (text, _) in &inputs {
        for (name, arg) in sim_directives(text, model) {
            if name == "error" {
                if let Ok(status) = arg.parse::<u16>() {
                    if (400..=599).contains(&status) {
                        return Err(ApiError::simulated(status, model));
                    }
                }
            }
        }
    }
    if let Some((_, n)) = inputs.iter().find(|(_, n)| *n > MAX_TOKENS_PER_INPUT) {
        return Err(ApiError::invalid(
            format!("This model's maximum context length is {MAX_TOKENS_PER_INPUT} tokens, however you requested {n} tokens ({n} in your prompt; 0 for the completion). Please reduce your prompt; or completion length."),
            None,
            None,
        ));
    }
    let tokens: u64 = inputs.iter().map(|(_, n)| n).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, (text, _))| {
            let v = pseudo_embedding(text, dimensions as usize, true);
            let embedding = if base64 {
                json!(base64_f32(&v))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }),
        &[("x-request-id", request_id.to_owned())],
    ))
}
