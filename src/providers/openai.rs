//! OpenAI Chat Completions, and any OpenAI-compatible server by base URL.
//!
//! The request body passes through: only `model` is rewritten to the endpoint's upstream
//! ID, the gateway's own `provider` field is dropped, and streams always ask for
//! `stream_options.include_usage` so that every stream can be billed (the usage chunk
//! is withheld from clients that did not ask for it). Response bodies are not
//! re-serialised: the top-level fields are copied as they came, `usage` gets the cost.

use std::borrow::Cow;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::Request;
use serde::Deserialize;

use super::http::{BaseUrl, HttpClient};
use super::{Call, Provider, UpstreamError, UpstreamErrorKind};
use crate::chat::raw::RawObject;
use crate::chat::{Completion, Reply, StreamItem, Usage};
use crate::config::Secret;

pub struct OpenAi {
    /// `openai` or `openai_compatible:<name>`: names this provider in errors.
    name: String,
    url: String,
    host: String,
    auth: Option<String>,
    client: HttpClient,
}

impl OpenAi {
    /// `base_url` ends in `/v1` like `OPENAI_BASE_URL`; requests go to `{base}/chat/completions`.
    pub fn new(
        name: &str,
        base_url: &str,
        api_key: Option<&Secret>,
        client: HttpClient,
    ) -> Result<Self, String> {
        let base = BaseUrl::parse(base_url)?;
        Ok(Self {
            name: name.to_owned(),
            url: base.url("/chat/completions"),
            host: base.host_header,
            auth: api_key.map(|k| format!("Bearer {}", k.expose())),
            client,
        })
    }

    fn body(&self, call: &Call<'_>) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        let stream = call.req.is_stream();
        let model = serde_json::to_string(&call.endpoint.upstream_id).unwrap_or_default();
        let has_opts = call.raw.get("stream_options").is_some();
        let extra: &[(&str, &str)] = if stream && !has_opts {
            &[("stream_options", r#"{"include_usage":true}"#)]
        } else {
            &[]
        };
        call.raw.write_with(
            &mut out,
            |k| match k {
                "model" => Some(Some(model.clone())),
                "provider" => Some(None),
                "stream_options" if stream => Some(Some(r#"{"include_usage":true}"#.to_owned())),
                _ => None,
            },
            extra,
        );
        out
    }
}

#[derive(Deserialize)]
struct UsageWire {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl UsageWire {
    fn usage(&self) -> Usage {
        let cached = self
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
            .min(self.prompt_tokens);
        Usage {
            input_tokens: self.prompt_tokens - cached,
            output_tokens: self.completion_tokens,
            cache_read_tokens: cached,
            ..Usage::default()
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorWire,
}

#[derive(Deserialize)]
struct ErrorWire {
    #[serde(default)]
    message: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<serde_json::Value>,
}

impl ErrorWire {
    fn code(&self) -> Option<String> {
        match &self.code {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => self.kind.clone(),
        }
    }
}

/// Just enough of a `chat.completion.chunk` to bill it.
#[derive(Deserialize)]
struct ChunkLite<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    created: Option<u64>,
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<UsageWire>,
    #[serde(default)]
    choices: Option<Vec<serde::de::IgnoredAny>>,
    #[serde(default)]
    error: Option<ErrorWire>,
}

impl Provider for OpenAi {
    fn call<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Reply, UpstreamError>> {
        Box::pin(async move {
            let mut req = Request::post(&self.url)
                .header(HOST, &self.host)
                .header(CONTENT_TYPE, "application/json");
            if let Some(a) = &self.auth {
                req = req.header(AUTHORIZATION, a);
            }
            let req = req
                .body(Full::new(Bytes::from(self.body(&call))))
                .map_err(|e| {
                    UpstreamError::new(UpstreamErrorKind::Protocol, &self.name, e.to_string())
                })?;
            let resp = self.client.send(req, &self.name).await?;
            let status = resp.status();
            if !status.is_success() {
                let body = self.client.read_body(resp.into_body(), &self.name).await?;
                return Err(self.error_from(status.as_u16(), &body));
            }
            if call.req.is_stream() {
                let name = self.name.clone();
                let events = self.client.sse(resp.into_body(), &self.name);
                let stream = events
                    .take_while(|ev| {
                        let done = matches!(ev, Ok(e) if e.data.trim() == "[DONE]");
                        std::future::ready(!done)
                    })
                    .filter_map(move |ev| std::future::ready(chunk_item(&name, ev)));
                return Ok(Reply::Stream(Box::pin(stream)));
            }
            let body = self.client.read_body(resp.into_body(), &self.name).await?;
            self.completion(&body)
        })
    }
}

impl OpenAi {
    fn error_from(&self, status: u16, body: &[u8]) -> UpstreamError {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(e) => {
                UpstreamError::from_status(&self.name, status, e.error.code(), e.error.message)
            }
            Err(_) => UpstreamError::from_status(
                &self.name,
                status,
                None,
                String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned(),
            ),
        }
    }

    fn completion(&self, body: &[u8]) -> Result<Reply, UpstreamError> {
        let bad = |m: String| UpstreamError::new(UpstreamErrorKind::Protocol, &self.name, m);
        let obj = RawObject::parse(body)
            .map_err(|e| bad(format!("response is not a JSON object: {e}")))?;
        let usage = match obj.get("usage") {
            Some(u) => serde_json::from_str::<UsageWire>(u.get())
                .map_err(|e| bad(format!("response usage is malformed: {e}")))?
                .usage(),
            None => return Err(bad("response carries no usage; it cannot be billed".into())),
        };
        let fields = obj
            .0
            .iter()
            .filter(|(k, _)| k != "usage")
            .map(|(k, v)| (k.to_string(), (*v).to_owned()))
            .collect();
        Ok(Reply::Complete(Completion { fields, usage }))
    }
}

fn chunk_item(
    provider: &str,
    ev: Result<eventsource_stream::Event, UpstreamError>,
) -> Option<Result<StreamItem, UpstreamError>> {
    let ev = match ev {
        Ok(ev) => ev,
        Err(e) => return Some(Err(e)),
    };
    if ev.data.is_empty() {
        return None;
    }
    let lite: ChunkLite<'_> = match serde_json::from_str(&ev.data) {
        Ok(l) => l,
        Err(e) => {
            return Some(Err(UpstreamError::new(
                UpstreamErrorKind::Protocol,
                provider,
                format!("stream chunk is not JSON: {e}"),
            )))
        }
    };
    if let Some(err) = lite.error {
        let mut e = UpstreamError::new(
            UpstreamErrorKind::Interrupted,
            provider,
            err.message.clone(),
        );
        e.code = err.code();
        return Some(Err(e));
    }
    let choices = lite.choices.as_ref().map_or(0, Vec::len);
    if let (Some(u), 0) = (&lite.usage, choices) {
        return Some(Ok(StreamItem::Usage {
            usage: u.usage(),
            id: lite.id.as_deref().unwrap_or_default().to_owned(),
            created: lite.created.unwrap_or_default(),
            model: lite.model.as_deref().unwrap_or_default().to_owned(),
            last: true,
        }));
    }
    Some(Ok(StreamItem::Chunk {
        json: Bytes::from(ev.data),
        generated: u64::from(choices > 0),
    }))
}
