//! Simulated upstream LLM providers for integration tests and the offline demo mode.
//!
//! Four in-process HTTP servers speak the public wire formats of the providers the
//! gateway talks to:
//!
//! * [`start_openai`]: OpenAI Chat Completions (`POST /v1/chat/completions`,
//!   `GET /v1/models`, `GET /v1/models/{id}`); [`Simulator::base_url`] ends in `/v1`
//!   like `OPENAI_BASE_URL`. It also serves the Responses API (`POST /v1/responses`),
//!   stateless: the same reply, tool calls and fault triggers as chat completions, as
//!   `message` / `function_call` output items (after a `reasoning` item for `o1`, `o3`,
//!   `o4` and `gpt-5` models), `incomplete` past `max_output_tokens`, streamed as the
//!   documented `response.*` events with `sequence_number`s; `[[sim:midstream-error]]`
//!   ends such a stream with an `error` event and `response.failed`. See the module
//!   docs of `openai/responses.rs` for its rules.
//! * [`start_anthropic`]: Anthropic Messages (`POST /v1/messages`);
//!   [`Simulator::base_url`] is the API root like `ANTHROPIC_BASE_URL`.
//! * [`start_bedrock`]: AWS Bedrock Converse / ConverseStream behind SigV4 or a Bedrock
//!   API key, with the model-ID rules, `application/vnd.amazon.eventstream` framing and
//!   the control-plane calls for inference profiles and foundation models;
//!   [`Simulator::base_url`] is the endpoint root (`AWS_ENDPOINT_URL_BEDROCK_RUNTIME`).
//!   See [`BedrockSimConfig`] and the module docs of `bedrock.rs` for its rules.
//! * [`start_stripe`]: Stripe Checkout Sessions, a stand-in hosted payment page and
//!   signed webhook events with delivery modes and retries; see [`StripeSim`] and the
//!   module docs of `stripe.rs`.
//!
//! They are written independently of the gateway's adapters (own `serde_json::Value`
//! parsing) so that the adapters are tested against an outside view of each API:
//! authentication headers, request validation with the real status codes and error
//! bodies, and the real SSE framing (each event is sent as its own body frame).
//! Every request, rejected ones included, is recorded and can be inspected with
//! [`Simulator::requests`]. Dropping a [`Simulator`] stops its server.
//!
//! # Deterministic behaviour
//!
//! * **Last user text**: the text of the last message with role `user` (OpenAI: `user`
//!   or `tool`), text parts joined with a space. For Anthropic this includes the text
//!   of `tool_result` blocks.
//! * **Reply**: `"Simulated reply to: <last user text>"`, split into whitespace
//!   separated words that are re-joined with single spaces. When streaming, each word
//!   is one content delta and words after the first keep a leading space (`"Hello"`,
//!   `" world"`); the non-streaming content is the concatenation of those deltas.
//!   * A stop sequence (OpenAI `stop`, Anthropic `stop_sequences`) that occurs in the
//!     reply cuts it before the earliest occurrence (trailing whitespace dropped):
//!     finish reason `"stop"` / stop reason `"stop_sequence"` with `stop_sequence` set.
//!   * Otherwise, more words than the token limit (OpenAI `max_completion_tokens`, else
//!     `max_tokens`, default 4096; Anthropic `max_tokens`) truncates to that many words:
//!     `"length"` / `"max_tokens"`.
//!   * Otherwise `"stop"` / `"end_turn"`.
//! * **Tools**: when the request declares tools, the tool choice is not `none` and the
//!   last message is not a tool result, the model calls the forced tool (or the first
//!   one) with arguments `{"query":"<last user text>"}`, or, when the last user text
//!   holds `[[sim:call NAME key=value ...]]`, the tool NAME with those string arguments
//!   (`[[sim:call Read file_path=/tmp/a.txt]]` makes Claude Code read a file) (finish reason `"tool_calls"` /
//!   `"tool_use"`; token limits and stop sequences do not apply to the call). After a
//!   tool result it replies `"Simulated reply to: <tool result text>"`.
//! * **Extended thinking**: when the request turns it on (Anthropic `thinking` of type
//!   `enabled` or `adaptive`; Bedrock the same in `additionalModelRequestFields`), the
//!   answer starts with a thinking block `Simulated thinking.` with a random signature
//!   (its words count as output tokens); in a stream, its deltas come first, then the
//!   signature, as block 0. The simulated Bedrock then also refuses a conversation
//!   whose last assistant turn uses a tool without starting with its reasoning, as
//!   Claude does.
//! * **Tokens** (`count_words` is the only tokenizer): prompt tokens are the sum of
//!   the whitespace separated words of every text piece (system prompt, message text,
//!   tool-call arguments / `tool_use` input as JSON, tool results) plus 3 per message
//!   plus 85 per image. Completion tokens are the number of output words (for a tool
//!   call: the words of its JSON arguments string).
//! * **Anthropic prompt caching**: blocks carrying `cache_control` are breakpoints. The
//!   tokens up to and including the last breakpoint are reported as
//!   `cache_creation_input_tokens` the first time that exact prefix (model, tools,
//!   system, messages) is seen and as `cache_read_input_tokens` afterwards; with
//!   several breakpoints the longest previously seen one is read and the rest up to the
//!   last breakpoint is created. The remaining tokens are `input_tokens`. Without
//!   `cache_control` both cache counts are 0.
//! * **Fault triggers** found in the last user text:
//!   * `[[sim:error 500]]`, `[[sim:error 429]]`, `[[sim:error 529]]` (any status from
//!     400 to 599 works): that HTTP status with the provider's error body (OpenAI
//!     `{"error":{...}}`, Anthropic `{"type":"error","error":{...},"request_id":...}`);
//!     429 responses carry `retry-after: 1`.
//!   * `[[sim:cut]]`: a stream sends two content deltas, then the connection is
//!     closed abruptly (the chunked body never terminates); a non-streamed answer
//!     breaks off after half its body.
//!   * `[[sim:midstream-error]]` (streaming only): two content deltas, then an error
//!     event (OpenAI `data: {"error":{...}}`, Anthropic `event: error` with an
//!     `overloaded_error`), then the stream ends without the terminating events.
//!   * `[[sim:slow 200]]`: waits 200 ms (at most 60 s) before answering.
//!   * `[[sim:reset]]`: no answer; the connection is reset (TCP RST).
//!   * `[[sim:hang]]`: a stream sends two content deltas, then nothing, with the
//!     connection held open; a non-streamed answer sends its head and half its body,
//!     then nothing.
//!   * `[[sim:corrupt]]`: a stream sends two content deltas, then a frame that does not
//!     decode (truncated JSON in an SSE event; a bad CRC in a Bedrock event-stream
//!     frame), then ends; a non-streamed answer is half its JSON.
//!   * `[[sim:endless]]` (streaming): two content deltas, then a frame without content
//!     (Anthropic `ping`, an OpenAI chunk with an empty delta) every 100 ms, forever.
//!   * `[[sim:drip 50]]` (streaming): every frame waits 50 ms (at most 10 s).
//!   * `cut`, `midstream-error`, `hang`, `endless` and `corrupt` take the number of content deltas
//!     sent before the fault (`[[sim:cut 0]]`: before any content; default 2).
//!   * A directive with an `@MODEL` word (`[[sim:error 503 @us.anthropic.claude-sonnet-4-6]]`)
//!     applies only to requests for that upstream model ID (exact match), so one endpoint
//!     of a model can fail while another serves.
//!
//!   The triggers are part of the text, so they also appear in the reply and count as
//!   words.

mod anthropic;
mod bedrock;
mod embedding;
mod openai;
mod stripe;

pub use bedrock::{BedrockSimConfig, BedrockSimModel};
pub use stripe::{
    ControlError, Delivery, DeliveryMode, DeliveryOutcome, StripeSim, StripeSimConfig,
};

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use futures_util::StreamExt;
use rand::distributions::Alphanumeric;
use rand::Rng;

/// Largest request body the simulators accept (both real APIs allow about 32 MB).
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// A running simulated provider. Dropping it stops the server.
pub struct Simulator {
    addr: SocketAddr,
    base_url: String,
    requests: RequestLog,
    task: tokio::task::JoinHandle<()>,
}

impl Simulator {
    /// The address the server listens on (`127.0.0.1` and an ephemeral port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// For OpenAI: "http://127.0.0.1:PORT/v1" (like OPENAI_BASE_URL). For Anthropic and
    /// Bedrock: "http://127.0.0.1:PORT" (the API root, like ANTHROPIC_BASE_URL /
    /// AWS_ENDPOINT_URL_BEDROCK_RUNTIME).
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Every request received so far (also rejected ones), in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.snapshot()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        // Aborting the accept loop also drops axum's shutdown watch receiver, which makes
        // every open connection shut down gracefully.
        self.task.abort();
    }
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.addr)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// One HTTP request as the simulator received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Header names are lower-case; values that are not UTF-8 are converted lossily.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The region of the SigV4 credential scope in the `Authorization` header
    /// (`Credential=AKID/DATE/REGION/SERVICE/aws4_request`), if the request is signed.
    pub fn signing_region(&self) -> Option<String> {
        self.header("authorization")
            .and_then(bedrock::signing_region)
    }

    /// For a Bedrock runtime request (`/model/{modelId}/...`): the model ID, percent-decoded.
    pub fn decoded_model_id(&self) -> Option<String> {
        let rest = self.path.strip_prefix("/model/")?;
        let raw = rest.split('/').next()?;
        Some(String::from_utf8_lossy(&bedrock::percent_decode(raw)).into_owned())
    }
}

/// Starts a simulated OpenAI Chat Completions API on `127.0.0.1:0` that accepts
/// `Authorization: Bearer <api_key>`.
pub async fn start_openai(api_key: &str) -> std::io::Result<Simulator> {
    let log = RequestLog::default();
    let router = openai::router(api_key, log.clone());
    spawn(router, log, "/v1").await
}

/// Starts a simulated Anthropic Messages API on `127.0.0.1:0` that accepts
/// `x-api-key: <api_key>`.
pub async fn start_anthropic(api_key: &str) -> std::io::Result<Simulator> {
    let log = RequestLog::default();
    let router = anthropic::router(api_key, log.clone());
    spawn(router, log, "").await
}

/// Starts a simulated AWS Bedrock (runtime and control plane) on `127.0.0.1:0`;
/// [`Simulator::base_url`] is `http://127.0.0.1:PORT`, usable as
/// `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` and as the control-plane endpoint.
pub async fn start_bedrock(config: BedrockSimConfig) -> std::io::Result<Simulator> {
    let log = RequestLog::default();
    let router = bedrock::router(config, log.clone());
    spawn(router, log, "").await
}

/// Starts a simulated Stripe (Checkout Sessions, the hosted payment page, signed
/// webhooks) on `127.0.0.1:0`; [`StripeSim::base_url`] stands in for
/// `https://api.stripe.com`.
pub async fn start_stripe(config: StripeSimConfig) -> std::io::Result<StripeSim> {
    stripe::start(config).await
}

async fn spawn(
    router: Router,
    requests: RequestLog,
    base_path: &str,
) -> std::io::Result<Simulator> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(serve(listener, router));
    Ok(Simulator {
        addr,
        base_url: format!("http://{addr}{base_path}"),
        requests,
        task,
    })
}

/// Marks a response the server does not send: it resets the connection instead
/// (`[[sim:reset]]`).
#[derive(Clone, Copy)]
struct ResetConnection;

/// A response that makes the server reset the connection without answering.
fn reset_response() -> Response {
    let mut response = Response::new(Body::empty());
    response.extensions_mut().insert(ResetConnection);
    response
}

/// The accept loop: HTTP/1.1 with TCP_NODELAY (streaming tests look at individual
/// frames: Nagle must not merge them). A response marked [`ResetConnection`] is not sent:
/// the socket gets `SO_LINGER` 0 and is closed, so the client sees a TCP reset. When the
/// loop is aborted (the [`Simulator`] dropped), open connections finish what they are
/// sending and close.
async fn serve(listener: tokio::net::TcpListener, router: Router) {
    use hyper_util::rt::TokioIo;
    use tower::ServiceExt;

    let (_stop, stopped) = tokio::sync::watch::channel(());
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(err) => {
                tracing::warn!(%err, "simulator accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        // A second handle on the socket, kept to reset it: hyper owns the first.
        let twin = tcp.into_std().and_then(|std| {
            let twin = std.try_clone().ok();
            Ok((twin, tokio::net::TcpStream::from_std(std)?))
        });
        let Ok((twin, tcp)) = twin else { continue };
        let twin = Arc::new(twin);
        let router = router.clone();
        let mut stop = stopped.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let (router, twin) = (router.clone(), twin.clone());
                    async move {
                        let Ok(response) = router.oneshot(request.map(Body::new)).await;
                        if response.extensions().get::<ResetConnection>().is_some() {
                            if let Some(socket) = twin.as_ref() {
                                let _ =
                                    socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO));
                            }
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::ConnectionReset,
                                "simulated connection reset",
                            ));
                        }
                        Ok(response)
                    }
                });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

/// The shared, append-only request log.
///
/// A std `Mutex` rather than a tokio one: the lock is only held for a push or a clone,
/// never across an `.await`, and [`Simulator::requests`] is a plain sync fn that tests
/// call outside of async code paths.
#[derive(Clone, Default)]
struct RequestLog(Arc<Mutex<Vec<RecordedRequest>>>);

impl RequestLog {
    fn push(&self, request: RecordedRequest) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
    }

    fn snapshot(&self) -> Vec<RecordedRequest> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the whole body and records the request. `None` if the body could not be
    /// read (too large or broken); the request is still recorded, with an empty body.
    async fn record(&self, request: Request) -> Option<RecordedRequest> {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, MAX_BODY_BYTES).await;
        let recorded = RecordedRequest {
            method: parts.method.as_str().to_owned(),
            path: parts.uri.path().to_owned(),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_ascii_lowercase(), value)
                })
                .collect(),
            body: body.as_ref().map(Bytes::clone).unwrap_or_default(),
        };
        self.push(recorded.clone());
        body.ok().map(|_| recorded)
    }
}

/// The tokenizer of both simulators: the number of whitespace separated words.
fn count_words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// Why the simulated generation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Finish {
    /// Natural end of the reply.
    Stop,
    /// Truncated to the token limit.
    Length,
    /// Cut before this stop sequence.
    StopSequence(String),
}

/// A planned text reply: `pieces` are the streamed deltas, `text` their concatenation.
#[derive(Debug, Clone)]
struct Reply {
    text: String,
    pieces: Vec<String>,
    finish: Finish,
}

impl Reply {
    fn from_words<'a>(words: impl IntoIterator<Item = &'a str>, finish: Finish) -> Self {
        let pieces: Vec<String> = words
            .into_iter()
            .enumerate()
            .map(|(i, w)| {
                if i == 0 {
                    w.to_owned()
                } else {
                    format!(" {w}")
                }
            })
            .collect();
        Reply {
            text: pieces.concat(),
            pieces,
            finish,
        }
    }

    fn output_tokens(&self) -> u64 {
        self.pieces.len() as u64
    }
}

/// The simulated model's extended thinking, when a request turns it on: the words
/// `Simulated thinking.` (one token each, counted as output) and a random signature.
#[derive(Debug, Clone)]
struct Thinking {
    reply: Reply,
    signature: String,
}

impl Thinking {
    fn new() -> Self {
        Thinking {
            reply: Reply::from_words("Simulated thinking.".split_whitespace(), Finish::Stop),
            signature: random_id("sig_", 40),
        }
    }

    fn output_tokens(&self) -> u64 {
        self.reply.output_tokens()
    }
}

/// Whether a `thinking` member (Anthropic's, or Bedrock's in
/// `additionalModelRequestFields`) turns extended thinking on.
fn thinking_on(thinking: Option<&serde_json::Value>) -> bool {
    thinking
        .and_then(|t| t.get("type"))
        .and_then(serde_json::Value::as_str)
        .is_some_and(|t| t == "enabled" || t == "adaptive")
}

/// Plans the reply to `subject` under a token limit and stop sequences.
fn plan_reply(subject: &str, max_tokens: u64, stop_sequences: &[String]) -> Reply {
    let full = format!("Simulated reply to: {subject}");
    let words: Vec<&str> = full.split_whitespace().collect();
    let joined = words.join(" ");
    let earliest_stop = stop_sequences
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| joined.find(s.as_str()).map(|pos| (pos, s)))
        .min_by_key(|(pos, _)| *pos);
    if let Some((pos, stop)) = earliest_stop {
        let cut = joined.get(..pos).unwrap_or_default().trim_end();
        if count_words(cut) <= max_tokens {
            return Reply::from_words(cut.split_whitespace(), Finish::StopSequence(stop.clone()));
        }
    }
    let limit = usize::try_from(max_tokens).unwrap_or(usize::MAX);
    if words.len() > limit {
        Reply::from_words(words.into_iter().take(limit), Finish::Length)
    } else {
        Reply::from_words(words, Finish::Stop)
    }
}

/// The simulated prompt cache of the Anthropic and Bedrock simulators: hashes of the
/// prompt prefixes already written. A std `Mutex`: it is only held for a few set
/// operations, never across an `.await`.
#[derive(Default)]
struct PromptCache(Mutex<std::collections::HashSet<u64>>);

/// Prompt tokens split by how the cache saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CacheSplit {
    /// Not cached.
    input: u64,
    /// Written to the cache by this request.
    write: u64,
    /// Read from the cache.
    read: u64,
}

impl PromptCache {
    /// `breakpoints` are `(prompt tokens up to and including the marker, prefix hash)`,
    /// in order: the longest prefix seen before is read, the rest up to the last marker
    /// is written, and everything after it is plain input.
    fn split(&self, prompt_tokens: u64, breakpoints: &[(u64, u64)]) -> CacheSplit {
        let Some(&(cached_total, _)) = breakpoints.last() else {
            return CacheSplit {
                input: prompt_tokens,
                write: 0,
                read: 0,
            };
        };
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let read = breakpoints
            .iter()
            .filter(|(_, hash)| seen.contains(hash))
            .map(|(tokens, _)| *tokens)
            .max()
            .unwrap_or(0);
        seen.extend(breakpoints.iter().map(|(_, hash)| *hash));
        CacheSplit {
            input: prompt_tokens - cached_total,
            write: cached_total - read,
            read,
        }
    }
}

/// `[[sim:...]]` fault triggers found in a text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Triggers {
    error_status: Option<u16>,
    cut: bool,
    midstream_error: bool,
    slow: Option<Duration>,
    transport: Transport,
}

/// The `(name, argument)` of every `[[sim:name argument @target]]` directive in a text
/// that applies to a request for `model`, in order. A directive with `@target` words
/// applies only to requests whose model ID is exactly one of them, so a test can fail
/// one endpoint of a model and not the other.
fn sim_directives<'a>(text: &'a str, model: &str) -> Vec<(&'a str, &'a str)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("[[sim:") {
        let after = &rest[start + "[[sim:".len()..];
        let Some(end) = after.find("]]") else { break };
        let mut words = after[..end].split_whitespace();
        rest = &after[end + 2..];
        let Some(name) = words.next() else { continue };
        let (targets, args): (Vec<&str>, Vec<&str>) = words.partition(|w| w.starts_with('@'));
        if !targets.is_empty() && !targets.iter().any(|t| &t[1..] == model) {
            continue;
        }
        found.push((name, args.first().copied().unwrap_or("")));
    }
    found
}

/// The tool call a turn makes: `[[sim:call NAME key=value ...]]` in the last user text
/// names the tool and its (string) arguments; otherwise the `default` tool (the forced
/// or first one) with `{"query": <last user text>}`. Only when the turn calls a tool at
/// all (tools declared, tool choice not `none`, the last message not a tool result).
fn tool_call(default: &str, last_user_text: &str) -> (String, serde_json::Value) {
    let mut rest = last_user_text;
    while let Some(start) = rest.find("[[sim:call ") {
        let after = &rest[start + "[[sim:call ".len()..];
        let Some(end) = after.find("]]") else { break };
        let mut words = after[..end].split_whitespace();
        if let Some(name) = words.next() {
            let input: serde_json::Map<String, serde_json::Value> = words
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
                .collect();
            return (name.to_owned(), serde_json::Value::Object(input));
        }
        rest = &after[end..];
    }
    (
        default.to_owned(),
        serde_json::json!({"query": last_user_text}),
    )
}

/// `[[sim:slow N]]`: N milliseconds, at most a minute.
fn slow_delay(arg: &str) -> Option<Duration> {
    arg.parse::<u64>()
        .ok()
        .map(|ms| Duration::from_millis(ms.min(60_000)))
}

/// Content deltas sent before a mid-stream fault: the directive's number, else 2.
fn fault_position(arg: &str) -> usize {
    arg.parse::<usize>().unwrap_or(2)
}

/// Faults of the transport, injected the same way by every simulator.
///
/// * `[[sim:reset]]`: no answer; the connection is reset (TCP RST).
/// * `[[sim:drip MS]]` (streaming): each frame waits MS milliseconds (at most 10 s).
/// * `[[sim:hang N]]`: a stream sends N content deltas (default 2), then nothing more,
///   with the connection held open; a non-streamed answer sends its head and half its
///   body, then nothing more.
/// * `[[sim:endless N]]` (streaming): N content deltas (default 2), then a keep-alive
///   frame that carries no content (an Anthropic `ping`, an empty OpenAI delta, an
///   empty Bedrock `contentBlockDelta`) every 100 ms (or the drip delay), forever.
/// * `[[sim:corrupt N]]`: a stream sends N content deltas (default 2), then a frame that
///   does not decode (invalid JSON in an SSE event; a bad CRC in an event-stream frame),
///   then ends; a non-streamed answer is cut to half its JSON.
/// * `[[sim:cut N]]` and the mid-stream errors take the same N; a non-streamed answer
///   with `[[sim:cut]]` breaks off after half its body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Transport {
    reset: bool,
    drip: Option<Duration>,
    hang: bool,
    endless: bool,
    corrupt: bool,
    cut: bool,
    /// Content deltas sent before a mid-stream fault.
    after: Option<usize>,
}

impl Transport {
    fn parse(text: &str, model: &str) -> Self {
        let mut t = Transport::default();
        for (name, arg) in sim_directives(text, model) {
            match name {
                "reset" => t.reset = true,
                "drip" => {
                    t.drip = arg
                        .parse::<u64>()
                        .ok()
                        .map(|ms| Duration::from_millis(ms.min(10_000)));
                }
                "hang" => t.hang = true,
                "endless" => t.endless = true,
                "corrupt" => t.corrupt = true,
                "cut" => t.cut = true,
                "midstream-error" | "exception" => {}
                _ => continue,
            }
            if matches!(
                name,
                "hang" | "endless" | "corrupt" | "cut" | "midstream-error"
            ) {
                t.after = Some(fault_position(arg));
            }
        }
        t
    }

    /// How a stream with this mid-stream fault is sent. `corrupt_frame` is a frame of
    /// the simulator's framing that does not decode, `keep_alive` one without content.
    fn stream_plan(
        &self,
        fault: StreamFault,
        corrupt_frame: impl FnOnce() -> Bytes,
        keep_alive: impl FnOnce() -> Bytes,
    ) -> StreamPlan {
        let fault = if self.hang {
            StreamFault::Hang
        } else if self.endless {
            StreamFault::Endless(keep_alive())
        } else if self.corrupt {
            StreamFault::Corrupt(corrupt_frame())
        } else {
            fault
        };
        StreamPlan {
            fault,
            after: self.after.unwrap_or(2),
            drip: self.drip,
        }
    }

    /// A non-streamed answer with this fault: cut, corrupt or hung half-way.
    fn non_streamed(&self, response: Response) -> Response {
        if !(self.hang || self.corrupt || self.cut) {
            return response;
        }
        let (parts, body) = response.into_parts();
        let (hang, corrupt) = (self.hang, self.corrupt);
        let stream = futures_util::stream::once(async move {
            axum::body::to_bytes(body, MAX_BODY_BYTES)
                .await
                .unwrap_or_default()
        })
        .flat_map(move |full| {
            let half = full.slice(..full.len() / 2);
            let tail: futures_util::stream::BoxStream<'static, Result<Bytes, std::io::Error>> =
                if hang {
                    futures_util::stream::pending().boxed()
                } else if corrupt {
                    futures_util::stream::empty().boxed()
                } else {
                    futures_util::stream::iter([Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "simulated connection cut",
                    ))])
                    .boxed()
                };
            futures_util::stream::iter([Ok(half)]).chain(tail)
        });
        let mut parts = parts;
        parts.headers.remove(header::CONTENT_LENGTH);
        Response::from_parts(parts, Body::from_stream(stream))
    }
}

impl Triggers {
    fn parse(text: &str, model: &str) -> Self {
        let mut triggers = Triggers {
            transport: Transport::parse(text, model),
            ..Triggers::default()
        };
        for (name, arg) in sim_directives(text, model) {
            match name {
                "error" => {
                    triggers.error_status =
                        arg.parse::<u16>().ok().filter(|s| (400..=599).contains(s));
                }
                "cut" => triggers.cut = true,
                "midstream-error" => triggers.midstream_error = true,
                "slow" => triggers.slow = slow_delay(arg),
                _ => {}
            }
        }
        triggers
    }

    async fn apply_delay(&self) {
        if let Some(delay) = self.slow {
            tokio::time::sleep(delay).await;
        }
    }

    /// How to send the stream: the mid-stream fault to inject, if any (`hang` wins over
    /// `corrupt`, over `cut`, over `midstream-error`), where, and at what pace.
    fn stream_plan(
        &self,
        error_frame: impl FnOnce() -> Bytes,
        corrupt_frame: impl FnOnce() -> Bytes,
        keep_alive: impl FnOnce() -> Bytes,
    ) -> StreamPlan {
        let fault = if self.cut {
            StreamFault::Cut
        } else if self.midstream_error {
            StreamFault::Error(error_frame())
        } else {
            StreamFault::None
        };
        self.transport.stream_plan(fault, corrupt_frame, keep_alive)
    }
}

/// Strict standard base64 (RFC 4648 alphabet, padded to a multiple of 4).
fn is_valid_base64(data: &str) -> bool {
    let bytes = data.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return false;
    }
    let body = data.trim_end_matches('=');
    let padding = bytes.len() - body.len();
    padding <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Image media types both providers accept.
const IMAGE_MEDIA_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// Prompt tokens charged per image.
const IMAGE_TOKENS: u64 = 85;

/// Prompt tokens charged per message on top of its words.
const MESSAGE_TOKENS: u64 = 3;

/// `prefix` followed by `len` random alphanumeric characters.
fn random_id(prefix: &str, len: usize) -> String {
    let suffix: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect();
    format!("{prefix}{suffix}")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Splits `text` into `parts` non-empty fragments of similar length (fewer when the
/// text is shorter), on char boundaries.
fn fragments(text: &str, parts: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(parts.max(1)).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// One server-sent event, already framed; `delta` marks content deltas.
struct SseFrame {
    data: Bytes,
    delta: bool,
}

impl SseFrame {
    fn data(json: &serde_json::Value, delta: bool) -> Self {
        SseFrame {
            data: Bytes::from(format!("data: {json}\n\n")),
            delta,
        }
    }

    fn event(name: &str, json: &serde_json::Value, delta: bool) -> Self {
        SseFrame {
            data: Bytes::from(format!("event: {name}\ndata: {json}\n\n")),
            delta,
        }
    }
}

/// A fault injected in a stream after some content deltas (see [`StreamPlan`]).
enum StreamFault {
    None,
    /// Close the connection abruptly.
    Cut,
    /// Send this frame, then end the stream.
    Error(Bytes),
    /// Send this frame, which does not decode, then end the stream.
    Corrupt(Bytes),
    /// Send nothing more, and keep the connection open.
    Hang,
    /// Send this frame, which carries no content, every 100 ms (or the drip delay),
    /// forever.
    Endless(Bytes),
}

/// How a stream is sent: its fault, the content deltas sent before it, and the delay
/// before each frame.
struct StreamPlan {
    fault: StreamFault,
    after: usize,
    drip: Option<Duration>,
}

/// How many frames of a stream (`deltas[i]`: frame i is a content delta) are sent
/// before a fault placed after `after` content deltas: the frames before the first
/// delta always go out; with fewer deltas than `after`, the fault follows the last one.
fn frames_before_fault(deltas: &[bool], after: usize) -> usize {
    let positions: Vec<usize> = deltas
        .iter()
        .enumerate()
        .filter(|(_, delta)| **delta)
        .map(|(i, _)| i)
        .collect();
    match after {
        0 => positions.first().copied().unwrap_or(1),
        n => positions
            .get(n - 1)
            .or(positions.last())
            .map_or(1, |i| i + 1),
    }
}

/// A body sending every frame (`(bytes, is a content delta)`) as its own body chunk,
/// with a yield (or the plan's drip delay) before each so clients can observe chunked
/// delivery. A fault is injected after `plan.after` content deltas (the frames before
/// the first delta, such as the role or `message_start`, are always sent): an error or
/// corrupt frame that ends the body, an abrupt cut, or silence.
fn frames_body(mut frames: Vec<(Bytes, bool)>, plan: StreamPlan) -> Body {
    let mut tail: Option<Result<Bytes, std::io::Error>> = None;
    let mut hang = false;
    let mut endless = None;
    if !matches!(plan.fault, StreamFault::None) {
        let deltas: Vec<bool> = frames.iter().map(|(_, delta)| *delta).collect();
        frames.truncate(frames_before_fault(&deltas, plan.after));
        tail = match plan.fault {
            StreamFault::Error(frame) | StreamFault::Corrupt(frame) => Some(Ok(frame)),
            StreamFault::Hang => {
                hang = true;
                None
            }
            StreamFault::Endless(frame) => {
                endless = Some(frame);
                None
            }
            _ => Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "simulated connection cut",
            ))),
        };
    }
    let items: Vec<Result<Bytes, std::io::Error>> = frames
        .into_iter()
        .map(|(data, _)| Ok(data))
        .chain(tail)
        .collect();
    let drip = plan.drip;
    let stream = futures_util::stream::iter(items).then(move |item| async move {
        match drip {
            Some(d) => tokio::time::sleep(d).await,
            None => tokio::task::yield_now().await,
        }
        item
    });
    if let Some(frame) = endless {
        let every = drip.unwrap_or(Duration::from_millis(100));
        let forever = futures_util::stream::repeat(frame).then(move |f| async move {
            tokio::time::sleep(every).await;
            Ok(f)
        });
        Body::from_stream(stream.chain(forever))
    } else if hang {
        Body::from_stream(stream.chain(futures_util::stream::pending()))
    } else {
        Body::from_stream(stream)
    }
}

/// A `text/event-stream` response sending every frame as its own body frame.
fn sse_response(
    frames: Vec<SseFrame>,
    plan: StreamPlan,
    extra_headers: &[(&'static str, String)],
) -> Response {
    let frames = frames.into_iter().map(|f| (f.data, f.delta)).collect();
    let mut response = Response::new(frames_body(frames, plan));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    insert_headers(&mut response, extra_headers);
    response
}

/// A JSON response with extra headers.
fn json_response(
    status: StatusCode,
    body: &serde_json::Value,
    extra_headers: &[(&'static str, String)],
) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    insert_headers(&mut response, extra_headers);
    response
}

fn insert_headers(response: &mut Response, extra_headers: &[(&'static str, String)]) {
    for (name, value) in extra_headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(*name, value);
        }
    }
}

/// Short JSON type names, as both providers phrase them in error messages.
fn json_type_name(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        serde_json::Value::Number(_) => "decimal",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// A tiny HTTP/1.1 client for the simulator tests (hyper-util's legacy client).
#[cfg(test)]
mod test_client {
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    pub(super) struct TestResponse {
        pub status: u16,
        pub headers: axum::http::HeaderMap,
        /// The body frames as the client received them.
        pub frames: Vec<Bytes>,
        /// Set when the body ended with an error (e.g. the connection was cut).
        pub error: Option<String>,
    }

    impl TestResponse {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).and_then(|v| v.to_str().ok())
        }

        pub fn text(&self) -> String {
            String::from_utf8(self.frames.concat()).expect("utf-8 body")
        }

        pub fn json(&self) -> serde_json::Value {
            serde_json::from_str(&self.text()).expect("JSON body")
        }

        /// The SSE events as (event name, data) pairs.
        pub fn sse(&self) -> Vec<(Option<String>, String)> {
            let text = self.text();
            text.split("\n\n")
                .filter(|block| !block.trim().is_empty())
                .map(|block| {
                    let mut event = None;
                    let mut data = String::new();
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event: ") {
                            event = Some(v.to_owned());
                        } else if let Some(v) = line.strip_prefix("data: ") {
                            data.push_str(v);
                        }
                    }
                    (event, data)
                })
                .collect()
        }
    }

    pub(super) async fn send(
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> TestResponse {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut request = axum::http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.into())).expect("valid request");
        let exchange = async {
            let response = client.request(request).await.expect("response head");
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let mut body = response.into_body();
            let mut frames = Vec::new();
            let mut error = None;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => {
                        if let Ok(data) = frame.into_data() {
                            frames.push(data);
                        }
                    }
                    Err(err) => {
                        error = Some(err.to_string());
                        break;
                    }
                }
            }
            TestResponse {
                status,
                headers,
                frames,
                error,
            }
        };
        tokio::time::timeout(Duration::from_secs(20), exchange)
            .await
            .expect("simulator answered in time")
    }

    pub(super) async fn post_json(
        url: &str,
        headers: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> TestResponse {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        send("POST", url, &all, body.to_string()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_whitespace_separated() {
        assert_eq!(count_words("  Hello,\n world\tagain "), 3);
        assert_eq!(count_words(""), 0);
    }

    #[test]
    fn reply_plain_and_streaming_pieces() {
        let reply = plan_reply("what  is\nup", 4096, &[]);
        assert_eq!(reply.text, "Simulated reply to: what is up");
        assert_eq!(reply.pieces[0], "Simulated");
        assert_eq!(reply.pieces[1], " reply");
        assert_eq!(reply.output_tokens(), 6);
        assert_eq!(reply.finish, Finish::Stop);
    }

    #[test]
    fn reply_truncated_and_stopped() {
        let reply = plan_reply("a b c", 4, &[]);
        assert_eq!(reply.text, "Simulated reply to: a");
        assert_eq!(reply.finish, Finish::Length);

        let stops = vec!["zzz".to_owned(), "to:".to_owned(), "b".to_owned()];
        let reply = plan_reply("a b c", 10, &stops);
        assert_eq!(reply.text, "Simulated reply");
        assert_eq!(reply.finish, Finish::StopSequence("to:".to_owned()));

        // The stop sequence lies beyond the limit: truncation wins.
        let reply = plan_reply("a b c", 2, &["c".to_owned()]);
        assert_eq!(reply.text, "Simulated reply");
        assert_eq!(reply.finish, Finish::Length);
    }

    #[test]
    fn triggers_are_parsed() {
        let t = Triggers::parse("x [[sim:error 529]] y [[sim:slow 200]] [[sim:cut]]", "m");
        assert_eq!(t.error_status, Some(529));
        assert_eq!(t.slow, Some(Duration::from_millis(200)));
        assert!(t.cut);
        assert!(!t.midstream_error);
        assert_eq!(Triggers::parse("[[sim:error 200]]", "m").error_status, None);
        assert!(Triggers::parse("[[sim:midstream-error]]", "m").midstream_error);
    }

    #[test]
    fn targeted_directives_apply_to_their_model_only() {
        let text = "[[sim:error 503 @sim-a]] [[sim:slow 5 @sim-b @sim-c]] [[sim:hang 0 @sim-a]]";
        let a = Triggers::parse(text, "sim-a");
        assert_eq!(a.error_status, Some(503));
        assert_eq!(a.slow, None);
        assert!(a.transport.hang);
        assert_eq!(a.transport.after, Some(0));
        let c = Triggers::parse(text, "sim-c");
        assert_eq!(c.error_status, None);
        assert_eq!(c.slow, Some(Duration::from_millis(5)));
        assert_eq!(c.transport, Transport::default());
        assert_eq!(Triggers::parse(text, "sim-a2").error_status, None);
    }

    /// `[[sim:reset]]` is a TCP reset without a response, not a clean close; the next
    /// connection is served normally.
    #[tokio::test]
    async fn reset_resets_the_connection() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let sim = start_openai("sk").await.expect("sim");
        let send = |text: &'static str| {
            let addr = sim.addr();
            async move {
                let body = serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}).to_string();
                let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
                let head = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sk\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len());
                tcp.write_all(head.as_bytes()).await.expect("write");
                tcp.write_all(body.as_bytes()).await.expect("write");
                let mut buf = vec![0u8; 4096];
                tcp.read(&mut buf)
                    .await
                    .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
            }
        };
        let err = send("hi [[sim:reset]]").await.expect_err("a reset");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
        let ok = send("hi").await.expect("an answer");
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    }

    #[test]
    fn transport_faults_are_parsed() {
        let t = Transport::parse("[[sim:reset]] [[sim:drip 20]] [[sim:corrupt 1]]", "m");
        assert!(t.reset && t.corrupt && !t.hang);
        assert_eq!(t.drip, Some(Duration::from_millis(20)));
        assert_eq!(t.after, Some(1));
        assert_eq!(Transport::parse("[[sim:cut]]", "m").after, Some(2));
    }

    #[test]
    fn base64_check() {
        assert!(is_valid_base64("aGVsbG8="));
        assert!(is_valid_base64("aGVsbG8h"));
        assert!(is_valid_base64("aGk+/w=="));
        assert!(!is_valid_base64("aGVsbG8"));
        assert!(!is_valid_base64("aGVs=G8="));
        assert!(!is_valid_base64("a==="));
        assert!(!is_valid_base64("not base64!"));
        assert!(!is_valid_base64(""));
    }

    #[test]
    fn fragments_cover_text() {
        let parts = fragments(r#"{"query":"héllo"}"#, 3);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts.concat(), r#"{"query":"héllo"}"#);
        assert_eq!(fragments("ab", 3), vec!["a", "b"]);
    }
}
