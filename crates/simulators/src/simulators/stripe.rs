//! Simulated Stripe: Checkout Sessions in `payment` mode, a stand-in for the hosted
//! payment page, and signed webhook events, for prepaid top-ups. A strict stand-in:
//! it checks what Stripe documents (authentication, form encoding, required
//! parameters, amounts, idempotency keys) and answers with Stripe's error bodies.
//!
//! # Layout
//! * this file: the handle [`StripeSim`], its configuration and the state the routes
//!   and the handle share;
//! * `routes`: the HTTP surface (API, payment page, controls), one function per route;
//! * `error`: Stripe's error body, where every refusal becomes an answer;
//! * `form`: form bodies in Stripe's bracket notation and typed access to them;
//! * `checkout`: the create parameters, their validation, and the session's life with
//!   the PaymentIntent ID, Charge and Dispute it leads to;
//! * `page`: the HTML payment page;
//! * `webhook`: events, their signature and their delivery (modes, retries, the log).
//!
//! # Routes
//! The Stripe API, behind `Authorization: Bearer <secret_key>` (or HTTP Basic with the
//! key as user name); bodies are `application/x-www-form-urlencoded`, answers are
//! pretty-printed JSON with `Request-Id` and `Stripe-Version` headers:
//! * `POST /v1/checkout/sessions`: creates a session (see `checkout` for the rules).
//!   An `Idempotency-Key` with the same parameters answers the saved response again
//!   (with `Idempotent-Replayed: true`), with other parameters a 400
//!   `idempotency_error`; a request refused by validation saves nothing.
//! * `GET /v1/checkout/sessions/{id}`: the session as it is now (404
//!   `resource_missing` for an unknown ID).
//! * `GET /v1/checkout/sessions?payment_intent=pi_...&limit=N`: the session list,
//!   newest first, optionally the one of a PaymentIntent.
//! * `POST /v1/checkout/sessions/{id}/expire`: expires an open session; emits
//!   `checkout.session.expired`.
//! * `GET /v1/events/{id}`: one event.
//!
//! The hosted page, at the session's `url` (`{base_url}/pay/{id}`):
//! * `GET /pay/{id}`: line items, total, a Pay button (`id="pay"`) and a cancel link.
//! * `POST /pay/{id}`: pays (the session becomes `complete` / `paid` and gets a
//!   `pi_...` and a charge `ch_...`), emits `checkout.session.completed`, and answers
//!   303 to `success_url` with `{CHECKOUT_SESSION_ID}` replaced. Paying again changes
//!   nothing and answers the same redirect.
//!
//! Controls for tests and demos, without authentication (the server listens on
//! loopback only); errors use Stripe's error body:
//! * `POST /_sim/sessions/{id}/refund` (form or query `amount` in cents, default all
//!   that is left): `amount_refunded` grows, `refunded` turns true when it reaches the
//!   amount; emits `charge.refunded` with the Charge; answers the Charge.
//! * `POST /_sim/sessions/{id}/dispute`: emits `charge.dispute.created` with a Dispute
//!   (`needs_response`, `fraudulent`, the charge's amount); answers the Dispute.
//! * `POST /_sim/events/{id}/redeliver`: sends an event again.
//! * `GET /_sim/events`: every event created, oldest first; `GET /_sim/deliveries`: every
//!   delivery attempt.
//!
//! The same controls, and the delivery modes, are methods of [`StripeSim`].
//!
//! # Choices
//! * Error messages for authentication, missing, unknown and empty parameters,
//!   unknown IDs and idempotency conflicts use Stripe's wording as its answers show
//!   it; the others (limits, what the simulator does not support) are its own words.
//!   The `param` and `code` fields are what a client should rely on.
//! * The Charge carries the PaymentIntent's metadata
//!   (`payment_intent_data[metadata]`); the session's `metadata` stays on the session.
//! * Events and API answers are pretty-printed JSON, as Stripe sends them: a receiver
//!   that re-serialises the body before checking the signature fails, as it would
//!   against Stripe.
//!
//! # What is not simulated
//! Only the events above are emitted (no `payment_intent.*`, `charge.succeeded`,
//! `refund.created`); sessions do not expire by the clock (`expires_at` is reported,
//! [`StripeSim::expire`] ends a session); no `expand`, no line-item listing, no
//! other currency than `usd`, no saved prices or products, no live mode.

mod checkout;
mod error;
mod form;
mod page;
mod routes;
mod webhook;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod webhook_tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use serde_json::Value;

pub use webhook::{Delivery, DeliveryMode, DeliveryOutcome};

use super::{random_id, RecordedRequest, RequestLog};
use checkout::Session;
use error::ApiError;
use webhook::{EventRequest, Webhooks};

/// What the simulated account is set up with.
#[derive(Clone)]
pub struct StripeSimConfig {
    /// The API key clients must present (`sk_test_...`).
    pub secret_key: String,
    /// The webhook endpoint's signing secret (`whsec_...`): the HMAC key, used as it is.
    pub webhook_secret: String,
    /// Where events are POSTed (`http://` only). Can also be set once the receiver
    /// runs, with [`StripeSim::set_webhook_url`].
    pub webhook_url: Option<String>,
}

impl StripeSimConfig {
    /// A configuration without a webhook URL yet.
    pub fn new(secret_key: impl Into<String>, webhook_secret: impl Into<String>) -> Self {
        StripeSimConfig {
            secret_key: secret_key.into(),
            webhook_secret: webhook_secret.into(),
            webhook_url: None,
        }
    }
}

impl std::fmt::Debug for StripeSimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeSimConfig")
            .field("secret_key", &"<redacted>")
            .field("webhook_secret", &"<redacted>")
            .field("webhook_url", &self.webhook_url)
            .finish()
    }
}

/// Why a control ([`StripeSim::pay`], [`StripeSim::refund`], ...) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlError {
    /// No Checkout Session has this ID.
    NoSuchSession(String),
    /// No event has this ID.
    NoSuchEvent(String),
    /// The session is not paid, so it has no charge to refund or dispute.
    NotPaid(String),
    /// The session expired and can no longer be paid.
    Expired(String),
    /// Only an open session can be expired.
    NotOpen(String),
    /// A refund of zero cents.
    ZeroRefund,
    /// A refund larger than what is left of the charge.
    RefundTooLarge { requested: u64, available: u64 },
    /// The charge (this ID) is refunded in full already.
    AlreadyRefunded(String),
    /// The charge (this ID) has a dispute already.
    AlreadyDisputed(String),
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::NoSuchSession(id) => write!(f, "No such checkout.session: '{id}'"),
            ControlError::NoSuchEvent(id) => write!(f, "No such event: '{id}'"),
            ControlError::NotPaid(id) => {
                write!(f, "Checkout Session {id} is not paid: it has no charge.")
            }
            ControlError::Expired(id) => write!(f, "Checkout Session {id} has expired."),
            ControlError::NotOpen(id) => write!(
                f,
                "Only Checkout Sessions with a status of `open` can be expired; {id} is not open."
            ),
            ControlError::ZeroRefund => f.write_str("Refund amount must be a positive integer."),
            ControlError::RefundTooLarge {
                requested,
                available,
            } => write!(
                f,
                "Refund amount ({}) is greater than unrefunded amount on charge ({})",
                checkout::dollars(*requested),
                checkout::dollars(*available)
            ),
            ControlError::AlreadyRefunded(id) => {
                write!(f, "Charge {id} has already been refunded.")
            }
            ControlError::AlreadyDisputed(id) => {
                write!(f, "Charge {id} has already been disputed.")
            }
        }
    }
}

impl std::error::Error for ControlError {}

/// A running simulated Stripe. Dropping it stops the server and every delivery.
pub struct StripeSim {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
    deliveries: tokio::task::JoinHandle<()>,
}

impl Drop for StripeSim {
    fn drop(&mut self) {
        self.server.abort();
        self.deliveries.abort();
    }
}

impl std::fmt::Debug for StripeSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeSim")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Starts the simulator on `127.0.0.1:0`.
pub(super) async fn start(config: StripeSimConfig) -> std::io::Result<StripeSim> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let (webhooks, deliveries) = Webhooks::start(config.webhook_secret, config.webhook_url);
    let shared = Arc::new(Shared {
        secret_key: config.secret_key,
        base_url: format!("http://{addr}"),
        log: RequestLog::default(),
        store: Mutex::new(Store::default()),
        webhooks,
    });
    let router = Router::new()
        .fallback(routes::handle)
        .with_state(shared.clone());
    let server = tokio::spawn(super::serve(listener, router));
    Ok(StripeSim {
        addr,
        shared,
        server,
        deliveries,
    })
}

impl StripeSim {
    /// The address the server listens on (`127.0.0.1` and an ephemeral port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the stand-in for `https://api.stripe.com` (paths start
    /// with `/v1`) and for the hosted page's origin.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// Sets where events are POSTed from now on (`http://` only).
    pub fn set_webhook_url(&self, url: impl Into<String>) {
        self.shared.webhooks.set_url(url.into());
    }

    /// Every request received so far (also refused ones), in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.snapshot()
    }

    /// The Checkout Session as `GET /v1/checkout/sessions/{id}` would answer it.
    pub fn session(&self, session_id: &str) -> Option<Value> {
        self.shared
            .with_session(session_id, |s, base| Ok(s.json(base)))
            .ok()
    }

    /// Every event created, oldest first, as sent.
    pub fn events(&self) -> Vec<Value> {
        self.shared.webhooks.events()
    }

    /// Every delivery attempt so far, in the order they ended.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.webhooks.deliveries()
    }

    /// Pays the session as the Pay button does; answers the session. Paying a paid
    /// session changes nothing.
    pub fn pay(&self, session_id: &str) -> Result<Value, ControlError> {
        self.shared.pay(session_id).map(|(session, _)| session)
    }

    /// Refunds `amount` cents of the session's charge (default: all that is left);
    /// answers the Charge.
    pub fn refund(&self, session_id: &str, amount: Option<u64>) -> Result<Value, ControlError> {
        let request = EventRequest {
            id: Some(random_id("req_", 14)),
            idempotency_key: None,
        };
        self.shared.refund(session_id, amount, request)
    }

    /// Opens a dispute over the session's charge; answers the Dispute.
    pub fn dispute(&self, session_id: &str) -> Result<Value, ControlError> {
        self.shared.dispute(session_id)
    }

    /// Expires an open session, as its `expires_at` passing would; answers the session.
    pub fn expire(&self, session_id: &str) -> Result<Value, ControlError> {
        self.shared.expire(session_id, EventRequest::default())
    }

    /// Sends an event again: same ID and body, a fresh signature, whatever the mode.
    pub fn redeliver(&self, event_id: &str) -> Result<(), ControlError> {
        if self.shared.webhooks.redeliver(event_id) {
            Ok(())
        } else {
            Err(ControlError::NoSuchEvent(event_id.to_owned()))
        }
    }

    /// How events created from now on are sent. Events already held stay held until
    /// released.
    pub fn set_delivery(&self, mode: DeliveryMode) {
        self.shared.webhooks.set_mode(mode);
    }

    /// Sends the held events, oldest first; returns how many.
    pub fn release_held(&self) -> usize {
        self.shared.webhooks.release(false)
    }

    /// Sends the held events, newest first; returns how many.
    pub fn release_held_in_reverse(&self) -> usize {
        self.shared.webhooks.release(true)
    }

    /// Waits for the first successful delivery of an event; `None` after `timeout`.
    pub async fn wait_delivered(&self, event_id: &str, timeout: Duration) -> Option<Delivery> {
        let delivered = |d: &Delivery| d.event_id == event_id && d.outcome.is_success();
        let webhooks = &self.shared.webhooks;
        if !webhooks
            .wait_for(timeout, |log| log.iter().any(delivered))
            .await
        {
            return None;
        }
        webhooks.deliveries().into_iter().find(delivered)
    }

    /// Waits until `done` holds for the delivery log (see [`StripeSim::deliveries`]);
    /// `false` after `timeout`.
    pub async fn wait_deliveries(
        &self,
        timeout: Duration,
        done: impl Fn(&[Delivery]) -> bool,
    ) -> bool {
        self.shared.webhooks.wait_for(timeout, done).await
    }
}

/// State shared by the routes and the handle.
struct Shared {
    secret_key: String,
    base_url: String,
    log: RequestLog,
    /// Sessions and saved idempotent responses. A std mutex: it is held for in-memory
    /// changes only, never across an `.await`. Events are emitted while it is held,
    /// so their order is the order of the changes they report.
    store: Mutex<Store>,
    webhooks: Arc<Webhooks>,
}

#[derive(Default)]
struct Store {
    /// In creation order; a few sessions per test, so lookups are linear.
    sessions: Vec<Session>,
    /// Idempotency key → the sorted parameters and the saved body of the response.
    idempotent: HashMap<String, (Vec<(String, String)>, String)>,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with_session<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Session, &str) -> Result<T, ControlError>,
    ) -> Result<T, ControlError> {
        let mut store = self.store();
        let session = store
            .sessions
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or_else(|| ControlError::NoSuchSession(id.to_owned()))?;
        f(session, &self.base_url)
    }

    /// Pays; answers the session and where to send the customer.
    fn pay(&self, id: &str) -> Result<(Value, String), ControlError> {
        self.with_session(id, |session, base| {
            let paid_now = session.pay(crate::clock::unix_now())?;
            let json = session.json(base);
            if paid_now {
                // Paid on the hosted page, not through the API: an automatic event.
                let request = EventRequest::default();
                self.webhooks
                    .emit("checkout.session.completed", json.clone(), request);
            }
            Ok((json, session.success_redirect()))
        })
    }

    fn refund(
        &self,
        id: &str,
        amount: Option<u64>,
        request: EventRequest,
    ) -> Result<Value, ControlError> {
        self.with_session(id, |session, _| {
            session.refund(amount)?;
            let charge = session
                .charge_json()
                .ok_or_else(|| ControlError::NotPaid(id.to_owned()))?;
            self.webhooks
                .emit("charge.refunded", charge.clone(), request);
            Ok(charge)
        })
    }

    fn dispute(&self, id: &str) -> Result<Value, ControlError> {
        self.with_session(id, |session, _| {
            session.dispute(crate::clock::unix_now())?;
            let dispute = session
                .dispute_json()
                .ok_or_else(|| ControlError::NotPaid(id.to_owned()))?;
            let request = EventRequest::default();
            self.webhooks
                .emit("charge.dispute.created", dispute.clone(), request);
            Ok(dispute)
        })
    }

    fn expire(&self, id: &str, request: EventRequest) -> Result<Value, ControlError> {
        self.with_session(id, |session, base| {
            session.expire()?;
            let json = session.json(base);
            self.webhooks
                .emit("checkout.session.expired", json.clone(), request);
            Ok(json)
        })
    }
}
