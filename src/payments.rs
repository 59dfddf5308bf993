//! Card top-ups through Stripe Checkout (docs/payments.md).
//!
//! * [`Stripe::create_checkout`] asks Stripe for a Checkout Session over its documented
//!   HTTP API (form-encoded, the secret key as a bearer token, an `Idempotency-Key`):
//!   the credit and the top-up fee as two line items, in whole cents.
//! * [`verify_signature`] checks a webhook's `Stripe-Signature` header as Stripe's own
//!   libraries do: HMAC-SHA256 with the endpoint secret (used as is, `whsec_` prefix
//!   included) over `"{t}.{raw body}"`, compared in constant time with every `v1`
//!   signature, and the timestamp no further than [`TOLERANCE_SECS`] from now.
//! * [`parse_event`] reads the events the ledger acts on; the ledger applies each at
//!   most once (`ledger::store::payments`).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use serde_json::Value;

use crate::config::PaymentsConfig;
use crate::ledger::{StripeEvent, StripeEventKind};
use crate::money::Nanos;
use crate::providers::http::{BaseUrl, HttpClient, Timeouts};

/// How far a webhook's timestamp may be from now, either way (Stripe's libraries
/// default to 300 s for old timestamps; a timestamp from the future is refused too).
pub const TOLERANCE_SECS: i64 = 300;

/// A Stripe API client for Checkout Sessions.
pub struct Stripe {
    http: HttpClient,
    base: BaseUrl,
    secret_key: crate::secret::Secret,
    pub webhook_secret: crate::secret::Secret,
}

/// A Checkout Session Stripe created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    /// Where the customer pays.
    pub url: String,
    pub amount_total_cents: i64,
}

/// Why a Checkout Session could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// Stripe could not be reached or answered something unreadable.
    #[error("Stripe could not be reached: {0}")]
    Unreachable(String),
    /// Stripe refused the request (its error message).
    #[error("Stripe refused the checkout: {0}")]
    Refused(String),
}

/// What the top-up's line items say.
pub struct TopupLines<'a> {
    pub account_id: &'a str,
    pub email: Option<&'a str>,
    pub credited: Nanos,
    pub fee: Nanos,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
    pub idempotency_key: &'a str,
}

impl Stripe {
    pub fn new(config: &PaymentsConfig) -> Result<Self, String> {
        let timeouts = Timeouts {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(30),
            idle: Duration::from_secs(30),
            total: Duration::from_secs(60),
            pool_idle: Duration::from_secs(60),
        };
        Ok(Self {
            http: HttpClient::new(timeouts).map_err(|e| format!("TLS setup failed: {e}"))?,
            base: BaseUrl::parse(&config.api_base)?,
            secret_key: config.secret_key.clone(),
            webhook_secret: config.webhook_secret.clone(),
        })
    }

    /// The form of a top-up's Checkout Session (Stripe's bracket notation).
    fn checkout_form(&self, t: &TopupLines<'_>, credit_cents: i64, fee_cents: i64) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("mode", "payment")
            .append_pair("line_items[0][price_data][currency]", "usd")
            .append_pair(
                "line_items[0][price_data][product_data][name]",
                &format!("GammaInfra credit (${})", t.credited),
            )
            .append_pair(
                "line_items[0][price_data][unit_amount]",
                &credit_cents.to_string(),
            )
            .append_pair("line_items[0][quantity]", "1");
        if fee_cents > 0 {
            form.append_pair("line_items[1][price_data][currency]", "usd")
                .append_pair(
                    "line_items[1][price_data][product_data][name]",
                    "Top-up fee",
                )
                .append_pair(
                    "line_items[1][price_data][unit_amount]",
                    &fee_cents.to_string(),
                )
                .append_pair("line_items[1][quantity]", "1");
        }
        form.append_pair("success_url", t.success_url)
            .append_pair("cancel_url", t.cancel_url)
            .append_pair("client_reference_id", t.account_id)
            .append_pair("metadata[account_id]", t.account_id)
            .append_pair("metadata[credit_cents]", &credit_cents.to_string())
            .append_pair("payment_intent_data[metadata][account_id]", t.account_id);
        if let Some(e) = t.email {
            form.append_pair("customer_email", e);
        }
        form.finish()
    }

    /// Creates the Checkout Session of a top-up: the credit and the fee as two line items.
    pub async fn create_checkout(&self, t: &TopupLines<'_>) -> Result<Session, CheckoutError> {
        let cents = |n: Nanos| {
            n.whole_cents().ok_or_else(|| {
                CheckoutError::Refused(format!("${n} is not a whole number of cents"))
            })
        };
        let (credit_cents, fee_cents) = (cents(t.credited)?, cents(t.fee)?);
        let body = self.checkout_form(t, credit_cents, fee_cents);
        let req = Request::post(self.base.url("/v1/checkout/sessions"))
            .header(
                "authorization",
                format!("Bearer {}", self.secret_key.expose()),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .header("idempotency-key", t.idempotency_key)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| CheckoutError::Unreachable(e.to_string()))?;
        let resp = self
            .http
            .send(req, "stripe")
            .await
            .map_err(|e| CheckoutError::Unreachable(e.message.clone()))?;
        let status = resp.status();
        let body = self
            .http
            .read_body(resp.into_body(), "stripe")
            .await
            .map_err(|e| CheckoutError::Unreachable(e.message.clone()))?;
        let v: Value = serde_json::from_slice(&body).map_err(|_| {
            CheckoutError::Unreachable(format!(
                "Stripe answered {status} with a body that is not JSON"
            ))
        })?;
        if !status.is_success() {
            let message = v["error"]["message"]
                .as_str()
                .unwrap_or("no message")
                .to_owned();
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                CheckoutError::Unreachable(format!("{status}: {message}"))
            } else {
                CheckoutError::Refused(message)
            });
        }
        let (Some(id), Some(url), Some(total)) = (
            v["id"].as_str(),
            v["url"].as_str(),
            v["amount_total"].as_i64(),
        ) else {
            return Err(CheckoutError::Unreachable(
                "Stripe's Checkout Session has no id, url or amount_total".to_owned(),
            ));
        };
        if total != credit_cents + fee_cents {
            return Err(CheckoutError::Refused(format!(
                "Stripe's session totals {total} cents, not the {} asked for",
                credit_cents + fee_cents
            )));
        }
        Ok(Session {
            id: id.to_owned(),
            url: url.to_owned(),
            amount_total_cents: total,
        })
    }
}

/// Why a webhook's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header has no timestamp (t=) or no v1 signature")]
    Malformed,
    #[error("the Stripe-Signature timestamp is {0} s away from now (at most {TOLERANCE_SECS} s is accepted)")]
    Stale(i64),
    #[error("no v1 signature in the Stripe-Signature header matches the payload")]
    Mismatch,
}

/// Checks a webhook's `Stripe-Signature` header against its raw body and the endpoint
/// secret, at `now` (Unix seconds).
pub fn verify_signature(
    header: Option<&str>,
    body: &[u8],
    secret: &str,
    now: i64,
) -> Result<(), SignatureError> {
    use hmac::Mac;
    let header = header.ok_or(SignatureError::Missing)?;
    let mut t: Option<&str> = None;
    let mut v1: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        match k {
            "t" if t.is_none() => t = Some(v),
            // Other schemes (v0 on test events) are ignored, against downgrades.
            "v1" => {
                if let Ok(sig) = hex::decode(v) {
                    v1.push(sig);
                }
            }
            _ => {}
        }
    }
    let ts = t.ok_or(SignatureError::Malformed)?;
    let at: i64 = ts.parse().map_err(|_| SignatureError::Malformed)?;
    if v1.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| SignatureError::Mismatch)?;
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    // Each candidate compared in constant time (hmac's verify).
    let matches = v1.iter().any(|sig| mac.clone().verify_slice(sig).is_ok());
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    let skew = now - at;
    if skew.abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale(skew));
    }
    Ok(())
}

/// Why an event could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Stripe event: {0}")]
pub struct EventError(pub String);

/// Reads a verified event body into what the ledger acts on.
pub fn parse_event(body: &[u8]) -> Result<StripeEvent, EventError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| EventError(format!("invalid JSON: {e}")))?;
    let field = |k: &str| {
        v[k].as_str()
            .map(str::to_owned)
            .ok_or_else(|| EventError(format!("no `{k}`")))
    };
    if v["object"] != "event" {
        return Err(EventError("`object` is not \"event\"".to_owned()));
    }
    let id = field("id")?;
    let event_type = field("type")?;
    let created = v["created"].as_i64().unwrap_or(0);
    let o = &v["data"]["object"];
    let s = |k: &str| o[k].as_str().map(str::to_owned);
    let n = |k: &str| o[k].as_i64();
    let missing = |what: &str| EventError(format!("`data.object` of {event_type} has no {what}"));
    let kind = match event_type.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            StripeEventKind::Checkout {
                session_id: s("id").ok_or_else(|| missing("id"))?,
                payment_intent: s("payment_intent"),
                paid: o["payment_status"] == "paid",
                amount_total_cents: n("amount_total").ok_or_else(|| missing("amount_total"))?,
                currency: s("currency").unwrap_or_default(),
            }
        }
        "charge.refunded" => StripeEventKind::Refund {
            charge_id: s("id").ok_or_else(|| missing("id"))?,
            payment_intent: s("payment_intent").ok_or_else(|| missing("payment_intent"))?,
            refunded_cents: n("amount_refunded").ok_or_else(|| missing("amount_refunded"))?,
        },
        "charge.dispute.created" => StripeEventKind::Dispute {
            dispute_id: s("id").ok_or_else(|| missing("id"))?,
            payment_intent: s("payment_intent").ok_or_else(|| missing("payment_intent"))?,
            disputed_cents: n("amount").ok_or_else(|| missing("amount"))?,
        },
        _ => StripeEventKind::Other,
    };
    Ok(StripeEvent {
        id,
        event_type,
        created,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// stripe-dotnet's published vector (EventUtilityTest.cs with
    /// Resources/event_test_signature.json, 484 bytes with its final newline).
    const DOTNET_PAYLOAD: &str = "{\n  \"id\": \"evt_123\",\n  \"object\": \"event\",\n  \"account\": \"acct_123\",\n  \"api_version\": \"2017-05-25\",\n  \"created\": 1533204620,\n  \"data\": {\n    \"object\": {\n      \"id\": \"cus_123\",\n      \"object\": \"customer\",\n      \"created\": 123456789,\n      \"email\": \"test@stripe.com\",\n      \"livemode\": false,\n      \"metadata\": {}\n    }\n  },\n  \"livemode\": false,\n  \"pending_webhooks\": 1,\n  \"request\": {\n    \"id\": \"req_123\",\n    \"idempotency_key\": \"idempotency-key-123\"\n  },\n  \"type\": \"customer.created\"\n}\n";
    const DOTNET_HEADER: &str = "t=1533204620,v1=2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7,v0=63f3a72374a733066c4be69ed7f8e5ac85c22c9f0a6a612ab9a025a9e4ee7eef";

    #[test]
    fn stripes_published_vector_verifies() {
        assert_eq!(DOTNET_PAYLOAD.len(), 484);
        let at = 1_533_204_620;
        assert_eq!(
            verify_signature(
                Some(DOTNET_HEADER),
                DOTNET_PAYLOAD.as_bytes(),
                "webhook_secret",
                at + 100
            ),
            Ok(())
        );
        // Outside the tolerance, as in the SDK's test (t + 400).
        assert_eq!(
            verify_signature(
                Some(DOTNET_HEADER),
                DOTNET_PAYLOAD.as_bytes(),
                "webhook_secret",
                at + 400
            ),
            Err(SignatureError::Stale(400))
        );
        // A timestamp from the future is refused too.
        assert_eq!(
            verify_signature(
                Some(DOTNET_HEADER),
                DOTNET_PAYLOAD.as_bytes(),
                "webhook_secret",
                at - 400
            ),
            Err(SignatureError::Stale(-400))
        );
        // One byte less (the final newline) no longer matches.
        assert_eq!(
            verify_signature(
                Some(DOTNET_HEADER),
                &DOTNET_PAYLOAD.as_bytes()[..483],
                "webhook_secret",
                at
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(
                Some(DOTNET_HEADER),
                DOTNET_PAYLOAD.as_bytes(),
                "other_secret",
                at
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_whsec_prefix_is_part_of_the_key() {
        // stripe-python's test constants, signed with the secret used as is.
        let payload = "{\n  \"id\": \"evt_test_webhook\",\n  \"object\": \"event\",\n  \"data\": { \"object\": { \"id\": \"rdr_123\", \"object\": \"terminal.reader\" } }\n}";
        let header =
            "t=1700000000,v1=3bfab77baf5f7b6991a46c9b53b6547d7afc56148b10468fcad9f35c1992ffbd";
        assert_eq!(
            verify_signature(
                Some(header),
                payload.as_bytes(),
                "whsec_test_secret",
                1_700_000_000
            ),
            Ok(())
        );
        assert_eq!(
            verify_signature(
                Some(header),
                payload.as_bytes(),
                "test_secret",
                1_700_000_000
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn malformed_headers_are_refused_and_only_v1_counts() {
        let body = b"{}";
        assert_eq!(
            verify_signature(None, body, "s", 0),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_signature(Some("v1=00"), body, "s", 0),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_signature(Some("t=abc,v1=00"), body, "s", 0),
            Err(SignatureError::Malformed)
        );
        // A valid v0 (the test-mode scheme) alone is not accepted.
        use hmac::Mac;
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s").expect("key");
        m.update(b"10.{}");
        let sig = hex::encode(m.finalize().into_bytes());
        assert_eq!(
            verify_signature(Some(&format!("t=10,v0={sig}")), body, "s", 10),
            Err(SignatureError::Malformed)
        );
        // Any one of several v1 signatures may match (a secret being rolled).
        assert_eq!(
            verify_signature(Some(&format!("t=10,v1=00ff,v1={sig}")), body, "s", 10),
            Ok(())
        );
    }

    #[test]
    fn events_are_read_into_what_the_ledger_acts_on() {
        let e = parse_event(br#"{"id":"evt_1","object":"event","type":"checkout.session.completed","created":5,"data":{"object":{"id":"cs_test_1","object":"checkout.session","payment_intent":"pi_1","payment_status":"paid","amount_total":1050,"currency":"usd"}}}"#).expect("event");
        assert_eq!(
            e.kind,
            StripeEventKind::Checkout {
                session_id: "cs_test_1".into(),
                payment_intent: Some("pi_1".into()),
                paid: true,
                amount_total_cents: 1050,
                currency: "usd".into()
            }
        );
        let e = parse_event(br#"{"id":"evt_2","object":"event","type":"charge.refunded","created":5,"data":{"object":{"id":"ch_1","object":"charge","amount":1050,"amount_refunded":500,"payment_intent":"pi_1"}}}"#).expect("event");
        assert_eq!(
            e.kind,
            StripeEventKind::Refund {
                charge_id: "ch_1".into(),
                payment_intent: "pi_1".into(),
                refunded_cents: 500
            }
        );
        let e = parse_event(br#"{"id":"evt_3","object":"event","type":"customer.created","created":5,"data":{"object":{}}}"#).expect("event");
        assert_eq!(e.kind, StripeEventKind::Other);
        assert!(parse_event(b"[]").is_err());
        assert!(parse_event(
            br#"{"id":"evt_4","object":"event","type":"charge.refunded","data":{"object":{}}}"#
        )
        .is_err());
    }
}
