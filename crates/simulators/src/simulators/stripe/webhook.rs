//! Events and their delivery to the webhook endpoint.
//!
//! An event is rendered once when it is created (pretty-printed JSON, as Stripe sends
//! it) and every delivery sends those exact bytes, signed afresh for each attempt:
//! `Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>,v0=<fake>` where the HMAC
//! key is the endpoint secret as given (`whsec_` prefix included) and the message is
//! `"{t}.{body}"`. Stripe adds a `v0` signature that verifies under nothing to test
//! events; so does the simulator.
//!
//! # Delivery
//! One worker task takes events in the order they are queued and makes each one's
//! first attempt, so an endpoint sees first attempts in creation order (Stripe
//! promises no order: [`DeliveryMode::Held`] is how a test gets a different one). A
//! failed attempt (a status outside 2xx, including redirects, a connection error, or
//! no answer within 5 s) is retried on a task of its own after 0.2 s, 1 s and 3 s:
//! four attempts at most, each recorded as a [`Delivery`]. The worker owns those retry
//! tasks, so dropping the simulator stops them too.
//!
//! Events created while no webhook URL is set are kept (see
//! [`StripeSim::events`](super::StripeSim::events)) but not sent, and say
//! `pending_webhooks: 0`. Only plain `http://` URLs can be reached.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::RngCore;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

/// The API version events are rendered in (after 2022-08-01: no PaymentIntent before
/// payment; after 2022-11-15: no `refunds` on a Charge).
pub(super) const API_VERSION: &str = "2024-06-20";
/// The waits before the second, third and fourth attempt: short, for tests.
const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(200),
    Duration::from_secs(1),
    Duration::from_secs(3),
];
/// How long one attempt may take, answer body included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const USER_AGENT: &str = "Stripe/1.0 (+https://stripe.com/docs/webhooks)";

/// How new events reach the webhook endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeliveryMode {
    /// Each event is sent once, as soon as it is created.
    #[default]
    Immediate,
    /// Each event is sent twice (same event ID), as Stripe occasionally does.
    Duplicate,
    /// Events are queued, not sent, until
    /// [`StripeSim::release_held`](super::StripeSim::release_held) or
    /// [`StripeSim::release_held_in_reverse`](super::StripeSim::release_held_in_reverse).
    Held,
}

/// One attempt to deliver an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub event_id: String,
    pub event_type: String,
    /// 1 for the first attempt of a send, up to 4 with the retries. A duplicate or a
    /// redelivery is a new send and starts at 1 again.
    pub attempt: u32,
    pub outcome: DeliveryOutcome,
}

/// How the endpoint answered one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The HTTP status of the answer.
    Status(u16),
    /// No answer: the connection failed, the URL is unusable, or the attempt timed out.
    Error(String),
}

impl DeliveryOutcome {
    /// Only a 2xx answer counts as delivered; Stripe counts redirects as failures.
    pub fn is_success(&self) -> bool {
        match self {
            DeliveryOutcome::Status(status) => (200..300).contains(status),
            DeliveryOutcome::Error(_) => false,
        }
    }
}

/// An event as created; every delivery sends `body`.
#[derive(Debug)]
pub(super) struct Event {
    pub id: String,
    pub kind: String,
    pub body: Bytes,
    pub json: Value,
}

/// What caused an event: the API request (`id: None` for automatic events, such as a
/// customer paying on the hosted page).
#[derive(Debug, Clone, Default)]
pub(super) struct EventRequest {
    pub id: Option<String>,
    pub idempotency_key: Option<String>,
}

/// The events, the delivery mode and the delivery log.
pub(super) struct Webhooks {
    secret: String,
    /// Settable after start: the gateway's address is known only once it runs.
    url: Mutex<Option<String>>,
    /// A std mutex: held for pushes and copies only, never across an `.await`.
    state: Mutex<State>,
    /// The worker's queue of sends. Unbounded: events come from tests and a person
    /// clicking, a few at a time.
    jobs: mpsc::UnboundedSender<Arc<Event>>,
    /// Bumped on every recorded delivery, so waiters wake without polling.
    recorded: watch::Sender<usize>,
    client: Client<HttpConnector, Full<Bytes>>,
}

#[derive(Default)]
struct State {
    mode: DeliveryMode,
    events: Vec<Arc<Event>>,
    held: Vec<Arc<Event>>,
    log: Vec<Delivery>,
}

impl Webhooks {
    /// The delivery state and its worker task (abort it to stop every delivery).
    pub(super) fn start(secret: String, url: Option<String>) -> (Arc<Self>, JoinHandle<()>) {
        let (jobs, queue) = mpsc::unbounded_channel();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        // A new connection per attempt: a pooled connection the endpoint has closed
        // would turn into a spurious failed attempt.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        let webhooks = Arc::new(Webhooks {
            secret,
            url: Mutex::new(url),
            state: Mutex::new(State::default()),
            jobs,
            recorded: watch::channel(0).0,
            client,
        });
        let worker = tokio::spawn(work(webhooks.clone(), queue));
        (webhooks, worker)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn url(&self) -> Option<String> {
        self.url
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn set_url(&self, url: String) {
        *self.url.lock().unwrap_or_else(PoisonError::into_inner) = Some(url);
    }

    /// Creates an event around `object` and sends it as the delivery mode says.
    /// Returns its ID.
    pub(super) fn emit(&self, kind: &str, object: Value, request: EventRequest) -> String {
        let id = super::random_id("evt_", 24);
        let json = json!({
            "id": id,
            "object": "event",
            "api_version": API_VERSION,
            "created": crate::clock::unix_now(),
            "data": {"object": object},
            "livemode": false,
            "pending_webhooks": u8::from(self.url().is_some()),
            "request": {"id": request.id, "idempotency_key": request.idempotency_key},
            "type": kind,
        });
        let body = serde_json::to_vec_pretty(&json).unwrap_or_else(|_| json.to_string().into());
        let event = Arc::new(Event {
            id: id.clone(),
            kind: kind.to_owned(),
            body: Bytes::from(body),
            json,
        });
        let mut state = self.state();
        state.events.push(event.clone());
        match state.mode {
            DeliveryMode::Immediate => self.send(event),
            DeliveryMode::Duplicate => {
                self.send(event.clone());
                self.send(event);
            }
            DeliveryMode::Held => state.held.push(event),
        }
        id
    }

    fn send(&self, event: Arc<Event>) {
        // Fails only when the worker is gone, i.e. the simulator is being dropped.
        let _ = self.jobs.send(event);
    }

    pub(super) fn events(&self) -> Vec<Value> {
        self.state().events.iter().map(|e| e.json.clone()).collect()
    }

    pub(super) fn event(&self, id: &str) -> Option<Value> {
        self.state()
            .events
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.json.clone())
    }

    pub(super) fn deliveries(&self) -> Vec<Delivery> {
        self.state().log.clone()
    }

    pub(super) fn set_mode(&self, mode: DeliveryMode) {
        self.state().mode = mode;
    }

    /// Sends every held event, oldest first or newest first; returns how many.
    pub(super) fn release(&self, newest_first: bool) -> usize {
        let mut held = std::mem::take(&mut self.state().held);
        if newest_first {
            held.reverse();
        }
        let count = held.len();
        for event in held {
            self.send(event);
        }
        count
    }

    /// Sends an event again (same ID and body, a new signature). `false` if unknown.
    pub(super) fn redeliver(&self, id: &str) -> bool {
        let event = self.state().events.iter().find(|e| e.id == id).cloned();
        match event {
            Some(event) => {
                self.send(event);
                true
            }
            None => false,
        }
    }

    /// Waits until `done` holds for the delivery log; `false` after `timeout`.
    pub(super) async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[Delivery]) -> bool,
    ) -> bool {
        // Subscribed before the first look, so no delivery recorded in between is missed.
        let mut changes = self.recorded.subscribe();
        let wait = async {
            loop {
                if done(self.state().log.as_slice()) {
                    return;
                }
                if changes.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    fn record(&self, event: &Event, attempt: u32, outcome: DeliveryOutcome) {
        self.state().log.push(Delivery {
            event_id: event.id.clone(),
            event_type: event.kind.clone(),
            attempt,
            outcome,
        });
        self.recorded.send_modify(|count| *count += 1);
    }

    /// One signed attempt; `None` when no webhook URL is set (nothing is recorded).
    async fn attempt(&self, event: &Event, attempt: u32) -> Option<DeliveryOutcome> {
        let url = self.url()?;
        let outcome = match tokio::time::timeout(ATTEMPT_TIMEOUT, self.post(&url, event)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                DeliveryOutcome::Error(format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs()))
            }
        };
        self.record(event, attempt, outcome.clone());
        Some(outcome)
    }

    async fn post(&self, url: &str, event: &Event) -> DeliveryOutcome {
        let header = signature_header(&self.secret, crate::clock::unix_now(), &event.body);
        let request = axum::http::Request::builder()
            .method("POST")
            .uri(url)
            .header("content-type", "application/json; charset=utf-8")
            .header("user-agent", USER_AGENT)
            .header("accept", "*/*; q=0.5, application/xml")
            .header("cache-control", "no-cache")
            .header("stripe-signature", header)
            .body(Full::new(event.body.clone()));
        let request = match request {
            Ok(request) => request,
            Err(err) => return DeliveryOutcome::Error(format!("unusable webhook URL: {err}")),
        };
        match self.client.request(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                // Read the answer to its end; its content does not matter.
                let _ = response.into_body().collect().await;
                DeliveryOutcome::Status(status)
            }
            Err(err) => DeliveryOutcome::Error(error_chain(&err)),
        }
    }
}

/// The worker: first attempts in queue order, retries on tasks it owns.
async fn work(webhooks: Arc<Webhooks>, mut queue: mpsc::UnboundedReceiver<Arc<Event>>) {
    let mut retries = JoinSet::new();
    loop {
        tokio::select! {
            job = queue.recv() => {
                let Some(event) = job else { break };
                let first = webhooks.attempt(&event, 1).await;
                if first.is_some_and(|outcome| !outcome.is_success()) {
                    retries.spawn(retry(webhooks.clone(), event));
                }
            }
            Some(_) = retries.join_next() => {}
        }
    }
}

/// The attempts after a failed first one.
async fn retry(webhooks: Arc<Webhooks>, event: Arc<Event>) {
    for (attempt, delay) in (2..).zip(RETRY_DELAYS) {
        tokio::time::sleep(delay).await;
        match webhooks.attempt(&event, attempt).await {
            Some(outcome) if outcome.is_success() => return,
            Some(_) => {}
            None => return,
        }
    }
}

/// The error and its causes, `: `-joined (hyper's own message is only the outermost).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The hex HMAC-SHA256 of `"{timestamp}.{body}"` under `secret` used as it is.
pub(super) fn sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        // HMAC takes keys of any length; this branch cannot be taken.
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// `t=...,v1=...,v0=...`: the real signature and, as Stripe adds to test events, a
/// `v0` that verifies under nothing.
fn signature_header(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut fake = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut fake);
    format!(
        "t={timestamp},v1={},v0={}",
        sign(secret, timestamp, body),
        hex::encode(fake)
    )
}
