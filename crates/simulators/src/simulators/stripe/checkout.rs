//! The Checkout Session: the create parameters and their validation, the session's
//! life (open → complete or expired), and the PaymentIntent ID, Charge and Dispute a
//! paid session leads to, rendered as Stripe renders them.
//!
//! Validation follows Stripe's order: unknown parameters first, then `mode`, the line
//! items, the URLs and the optional fields, then the total. Only `payment` mode with
//! inline `price_data` in `usd` is simulated; what Stripe would accept but the
//! simulator does not (another currency, a saved `price`, `setup` mode) is refused with
//! a message that says so.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::form::{Fields, Param};
use super::{ApiError, ControlError};

/// The one currency the simulator charges in.
pub(super) const CURRENCY: &str = "usd";
/// Stripe's minimum charge in USD, in cents.
const MIN_TOTAL: u64 = 50;
/// Stripe's largest amount: eight digits of cents ($999,999.99).
const MAX_AMOUNT: u64 = 99_999_999;
/// "For `payment` mode, there is a maximum of 100 line items".
const MAX_LINE_ITEMS: usize = 100;
/// A session expires 24 hours after creation unless `expires_at` says otherwise
/// (between 30 minutes and 24 hours).
const DEFAULT_LIFETIME: u64 = 24 * 3600;
const MIN_LIFETIME: u64 = 30 * 60;
/// Stripe's metadata limits.
const MAX_METADATA_KEYS: usize = 50;
const MAX_METADATA_KEY_CHARS: usize = 40;
const MAX_METADATA_VALUE_CHARS: usize = 500;
/// The longest `client_reference_id` Stripe takes.
const MAX_REFERENCE_CHARS: usize = 200;

/// The create parameters the simulator knows (any other is `parameter_unknown`).
const CREATE_PARAMS: &[&str] = &[
    "mode",
    "line_items",
    "success_url",
    "cancel_url",
    "client_reference_id",
    "customer_email",
    "metadata",
    "payment_intent_data",
    "expires_at",
];

/// One line item with inline price data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LineItem {
    pub name: String,
    pub description: Option<String>,
    /// Cents per unit.
    pub unit_amount: u64,
    pub quantity: u64,
}

impl LineItem {
    /// Cents for the whole line (validated not to overflow).
    pub fn amount(&self) -> u64 {
        self.unit_amount.saturating_mul(self.quantity)
    }
}

/// A validated `POST /v1/checkout/sessions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NewSession {
    pub line_items: Vec<LineItem>,
    pub amount_total: u64,
    pub success_url: String,
    pub cancel_url: Option<String>,
    pub client_reference_id: Option<String>,
    pub customer_email: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// `payment_intent_data[metadata]`: lands on the PaymentIntent and its Charge.
    pub payment_intent_metadata: BTreeMap<String, String>,
    pub expires_at: Option<u64>,
}

/// Validates the parameters of a create call.
pub(super) fn parse_create(
    params: &BTreeMap<String, Param>,
    now: u64,
) -> Result<NewSession, ApiError> {
    let root = Fields::root(params);
    root.reject_unknown(CREATE_PARAMS)?;

    match root.required_string("mode")? {
        "payment" => {}
        "setup" | "subscription" => {
            return Err(ApiError::invalid(
                "The Stripe simulator only supports mode=payment; setup and subscription Checkout Sessions are not simulated.".to_owned(),
                Some("mode"),
                None,
            ))
        }
        _ => {
            return Err(ApiError::invalid(
                "Invalid mode: must be one of payment, setup, or subscription".to_owned(),
                Some("mode"),
                None,
            ))
        }
    }

    let items = root
        .array("line_items")?
        .filter(|items| !items.is_empty())
        .ok_or_else(|| ApiError::missing("line_items"))?;
    if items.len() > MAX_LINE_ITEMS {
        return Err(ApiError::invalid(
            format!("For `payment` mode, there is a maximum of {MAX_LINE_ITEMS} line items."),
            Some("line_items"),
            None,
        ));
    }
    let line_items = items.iter().map(line_item).collect::<Result<Vec<_>, _>>()?;

    let success_url = root.required_string("success_url")?;
    check_url(success_url, "success_url")?;
    let cancel_url = root.string("cancel_url")?;
    if let Some(url) = cancel_url {
        check_url(url, "cancel_url")?;
    }
    let client_reference_id = root.string("client_reference_id")?;
    if client_reference_id.is_some_and(|id| id.chars().count() > MAX_REFERENCE_CHARS) {
        return Err(ApiError::invalid(
            format!(
                "Invalid client_reference_id: must be at most {MAX_REFERENCE_CHARS} characters"
            ),
            Some("client_reference_id"),
            None,
        ));
    }
    let customer_email = root.string("customer_email")?;
    if let Some(email) = customer_email {
        let valid = email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
        if !valid || email.contains(char::is_whitespace) {
            return Err(ApiError::invalid(
                format!("Invalid email address: {email}"),
                Some("customer_email"),
                Some("email_invalid"),
            ));
        }
    }
    let metadata = match root.hash("metadata")? {
        Some(fields) => checked_metadata(&fields)?,
        None => BTreeMap::new(),
    };
    let payment_intent_metadata = match root.hash("payment_intent_data")? {
        Some(data) => {
            data.reject_unknown(&["metadata"])?;
            match data.hash("metadata")? {
                Some(fields) => checked_metadata(&fields)?,
                None => BTreeMap::new(),
            }
        }
        None => BTreeMap::new(),
    };
    let expires_at = match root.string("expires_at")? {
        Some(_) => {
            let at = root.required_integer("expires_at", 0)?;
            if at < now + MIN_LIFETIME || at > now + DEFAULT_LIFETIME {
                return Err(ApiError::invalid(
                    "The `expires_at` timestamp must be between 30 minutes and 24 hours after the Checkout Session is created.".to_owned(),
                    Some("expires_at"),
                    None,
                ));
            }
            Some(at)
        }
        None => None,
    };

    let amount_total = line_items
        .iter()
        .try_fold(0u64, |sum, item| sum.checked_add(item.amount()))
        .filter(|total| *total <= MAX_AMOUNT)
        .ok_or_else(|| {
            ApiError::invalid(
                "Amount must be no more than $999,999.99".to_owned(),
                None,
                Some("amount_too_large"),
            )
        })?;
    if amount_total < MIN_TOTAL {
        return Err(ApiError::invalid(
            format!(
                "The Checkout Session's total amount due must add up to at least {} {CURRENCY}",
                dollars(MIN_TOTAL)
            ),
            None,
            Some("amount_too_small"),
        ));
    }

    Ok(NewSession {
        line_items,
        amount_total,
        success_url: success_url.to_owned(),
        cancel_url: cancel_url.map(str::to_owned),
        client_reference_id: client_reference_id.map(str::to_owned),
        customer_email: customer_email.map(str::to_owned),
        metadata,
        payment_intent_metadata,
        expires_at,
    })
}

fn line_item(item: &Fields<'_>) -> Result<LineItem, ApiError> {
    item.reject_unknown(&["price", "price_data", "quantity"])?;
    if let Some(price) = item.string("price")? {
        return Err(ApiError::invalid(
            format!("No such price: '{price}'"),
            Some(&item.name("price")),
            Some("resource_missing"),
        ));
    }
    let price = item
        .hash("price_data")?
        .ok_or_else(|| ApiError::missing(&item.name("price_data")))?;
    price.reject_unknown(&["currency", "product_data", "unit_amount", "product"])?;
    let currency = price.required_string("currency")?;
    if !currency.eq_ignore_ascii_case(CURRENCY) {
        return Err(ApiError::invalid(
            format!(
                "Invalid currency: {currency}. The Stripe simulator only charges in {CURRENCY}."
            ),
            Some(&price.name("currency")),
            None,
        ));
    }
    if let Some(product) = price.string("product")? {
        return Err(ApiError::invalid(
            format!("No such product: '{product}'"),
            Some(&price.name("product")),
            Some("resource_missing"),
        ));
    }
    let product = price
        .hash("product_data")?
        .ok_or_else(|| ApiError::missing(&price.name("product_data")))?;
    product.reject_unknown(&["name", "description"])?;
    let name = product.required_string("name")?;
    let description = product.string("description")?;
    let unit_amount = price.required_integer("unit_amount", 0)?;
    let quantity = item.required_integer("quantity", 1)?;
    let too_large = || {
        ApiError::invalid(
            "Amount must be no more than $999,999.99".to_owned(),
            Some(&price.name("unit_amount")),
            Some("amount_too_large"),
        )
    };
    if unit_amount > MAX_AMOUNT {
        return Err(too_large());
    }
    unit_amount
        .checked_mul(quantity)
        .filter(|amount| *amount <= MAX_AMOUNT)
        .ok_or_else(too_large)?;
    Ok(LineItem {
        name: name.to_owned(),
        description: description.map(str::to_owned),
        unit_amount,
        quantity,
    })
}

/// Stripe wants an absolute `http(s)` URL.
fn check_url(url: &str, param: &str) -> Result<(), ApiError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host_ok = rest.is_some_and(|rest| {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        !host.is_empty()
    });
    if host_ok && !url.contains(char::is_whitespace) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "Not a valid URL".to_owned(),
            Some(param),
            Some("url_invalid"),
        ))
    }
}

/// A metadata hash within Stripe's limits.
fn checked_metadata(fields: &Fields<'_>) -> Result<BTreeMap<String, String>, ApiError> {
    let values = fields.strings()?;
    if values.len() > MAX_METADATA_KEYS {
        return Err(ApiError::invalid(
            format!("You can only specify up to {MAX_METADATA_KEYS} metadata keys."),
            Some(fields.path()),
            None,
        ));
    }
    for (key, value) in &values {
        let name = fields.name(key);
        if key.chars().count() > MAX_METADATA_KEY_CHARS {
            return Err(ApiError::invalid(
                format!("Metadata keys can have a maximum length of {MAX_METADATA_KEY_CHARS} characters."),
                Some(&name),
                None,
            ));
        }
        if value.chars().count() > MAX_METADATA_VALUE_CHARS {
            return Err(ApiError::invalid(
                format!(
                    "Metadata values can have up to {MAX_METADATA_VALUE_CHARS} characters, but you passed in a value that is {} characters.",
                    value.chars().count()
                ),
                Some(&name),
                None,
            ));
        }
    }
    Ok(values)
}

/// `2089` → `$20.89`.
pub(super) fn dollars(cents: u64) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    Open,
    Complete,
    Expired,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Complete => "complete",
            Status::Expired => "expired",
        }
    }
}

/// A Checkout Session as the simulator keeps it.
#[derive(Debug, Clone)]
pub(super) struct Session {
    pub id: String,
    pub created: u64,
    pub expires_at: u64,
    pub details: NewSession,
    pub status: Status,
    /// Set once paid.
    pub payment: Option<Payment>,
}

/// What paying a session creates.
#[derive(Debug, Clone)]
pub(super) struct Payment {
    pub payment_intent: String,
    pub charge: Charge,
}

#[derive(Debug, Clone)]
pub(super) struct Charge {
    pub id: String,
    pub amount: u64,
    /// Cumulative over every refund.
    pub amount_refunded: u64,
    pub created: u64,
    pub dispute: Option<Dispute>,
}

#[derive(Debug, Clone)]
pub(super) struct Dispute {
    pub id: String,
    pub amount: u64,
    pub created: u64,
}

impl Session {
    pub fn new(id: String, details: NewSession, now: u64) -> Self {
        Session {
            id,
            created: now,
            expires_at: details.expires_at.unwrap_or(now + DEFAULT_LIFETIME),
            details,
            status: Status::Open,
            payment: None,
        }
    }

    /// Pays an open session. `Ok(false)` when it was paid already (nothing changes).
    pub fn pay(&mut self, now: u64) -> Result<bool, ControlError> {
        match self.status {
            Status::Complete => Ok(false),
            Status::Expired => Err(ControlError::Expired(self.id.clone())),
            Status::Open => {
                self.status = Status::Complete;
                self.payment = Some(Payment {
                    payment_intent: super::random_id("pi_", 24),
                    charge: Charge {
                        id: super::random_id("ch_", 24),
                        amount: self.details.amount_total,
                        amount_refunded: 0,
                        created: now,
                        dispute: None,
                    },
                });
                Ok(true)
            }
        }
    }

    /// Expires an open session.
    pub fn expire(&mut self) -> Result<(), ControlError> {
        match self.status {
            Status::Open => {
                self.status = Status::Expired;
                Ok(())
            }
            Status::Complete | Status::Expired => Err(ControlError::NotOpen(self.id.clone())),
        }
    }

    /// Refunds `amount` cents (default: all that is left) of the session's charge.
    pub fn refund(&mut self, amount: Option<u64>) -> Result<(), ControlError> {
        let charge = self.charge_mut()?;
        let available = charge.amount - charge.amount_refunded;
        if available == 0 {
            return Err(ControlError::AlreadyRefunded(charge.id.clone()));
        }
        let amount = amount.unwrap_or(available);
        if amount == 0 {
            return Err(ControlError::ZeroRefund);
        }
        if amount > available {
            return Err(ControlError::RefundTooLarge {
                requested: amount,
                available,
            });
        }
        charge.amount_refunded += amount;
        Ok(())
    }

    /// Opens a dispute over the whole charge.
    pub fn dispute(&mut self, now: u64) -> Result<(), ControlError> {
        let charge = self.charge_mut()?;
        if charge.dispute.is_some() {
            return Err(ControlError::AlreadyDisputed(charge.id.clone()));
        }
        charge.dispute = Some(Dispute {
            id: super::random_id("dp_", 24),
            amount: charge.amount,
            created: now,
        });
        Ok(())
    }

    fn charge_mut(&mut self) -> Result<&mut Charge, ControlError> {
        match &mut self.payment {
            Some(payment) => Ok(&mut payment.charge),
            None => Err(ControlError::NotPaid(self.id.clone())),
        }
    }

    /// The URL of the payment page.
    pub fn pay_url(&self, base_url: &str) -> String {
        format!("{base_url}/pay/{}", self.id)
    }

    /// `success_url` with `{CHECKOUT_SESSION_ID}` replaced by the session's ID.
    pub fn success_redirect(&self) -> String {
        self.details
            .success_url
            .replace("{CHECKOUT_SESSION_ID}", &self.id)
    }

    /// The `checkout.session` object.
    pub fn json(&self, base_url: &str) -> Value {
        let d = &self.details;
        let (payment_status, customer_details) = match self.status {
            Status::Complete => (
                "paid",
                json!({
                    "address": null,
                    "email": d.customer_email.as_deref().unwrap_or("customer@example.com"),
                    "name": null,
                    "phone": null,
                    "tax_exempt": "none",
                    "tax_ids": [],
                }),
            ),
            Status::Open | Status::Expired => ("unpaid", Value::Null),
        };
        json!({
            "id": self.id,
            "object": "checkout.session",
            "allow_promotion_codes": null,
            "amount_subtotal": d.amount_total,
            "amount_total": d.amount_total,
            "cancel_url": d.cancel_url,
            "client_reference_id": d.client_reference_id,
            "created": self.created,
            "currency": CURRENCY,
            "customer": null,
            "customer_creation": "if_required",
            "customer_details": customer_details,
            "customer_email": d.customer_email,
            "expires_at": self.expires_at,
            "livemode": false,
            "locale": null,
            "metadata": d.metadata,
            "mode": "payment",
            "payment_intent": self.payment.as_ref().map(|p| p.payment_intent.as_str()),
            "payment_method_types": ["card"],
            "payment_status": payment_status,
            "status": self.status.as_str(),
            "submit_type": null,
            "success_url": d.success_url,
            "ui_mode": "hosted",
            // "This value is only present when the session is active."
            "url": (self.status == Status::Open).then(|| self.pay_url(base_url)),
        })
    }

    /// The `charge` object, once paid. `refunds` is left out, as Stripe does since
    /// API version 2022-11-15.
    pub fn charge_json(&self) -> Option<Value> {
        let payment = self.payment.as_ref()?;
        let charge = &payment.charge;
        Some(json!({
            "id": charge.id,
            "object": "charge",
            "amount": charge.amount,
            "amount_captured": charge.amount,
            "amount_refunded": charge.amount_refunded,
            "captured": true,
            "created": charge.created,
            "currency": CURRENCY,
            "description": null,
            "disputed": charge.dispute.is_some(),
            "livemode": false,
            "metadata": self.details.payment_intent_metadata,
            "paid": true,
            "payment_intent": payment.payment_intent,
            "refunded": charge.amount_refunded == charge.amount,
            "status": "succeeded",
        }))
    }

    /// The `dispute` object, once disputed.
    pub fn dispute_json(&self) -> Option<Value> {
        let payment = self.payment.as_ref()?;
        let dispute = payment.charge.dispute.as_ref()?;
        Some(json!({
            "id": dispute.id,
            "object": "dispute",
            "amount": dispute.amount,
            "balance_transactions": [],
            "charge": payment.charge.id,
            "created": dispute.created,
            "currency": CURRENCY,
            "is_charge_refundable": false,
            "livemode": false,
            "metadata": {},
            "payment_intent": payment.payment_intent,
            "reason": "fraudulent",
            "status": "needs_response",
        }))
    }
}
