//! Card payments through Stripe Checkout, and ledger adjustments.
//!
//! A top-up paid by card is credited only from Stripe's signed webhook events, each
//! applied at most once (its event ID is the key of `stripe_events`), and each paid
//! Checkout Session credits at most once (`stripe_payments` is keyed by the session).
//! Refunds and disputes take credit back as negative `adjustment` entries, never more
//! in all than the payment credited: the credit taken back from a payment is
//! `min(credited, largest refunded amount reported + sum of disputed amounts)`, and each
//! event appends only the difference from what was already taken. Events may arrive in
//! any order: a refund or dispute whose payment is not known yet is recorded, and taken
//! into account when the payment's `checkout.session.completed` arrives.

use sqlx::Row;

use super::{claim_money_movement, on_pool, Pool, Store, StoreError, WriteTx};
use crate::money::Nanos;

/// Nano-dollars per cent.
const NANOS_PER_CENT: i64 = 10_000_000;

/// A Checkout Session created for a top-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRecord {
    pub session_id: String,
    pub account_id: String,
    pub credited: Nanos,
    pub fee: Nanos,
    pub fee_basis_points: i64,
    pub created_at: String,
}

/// A verified Stripe event, reduced to what the ledger needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeEvent {
    pub id: String,
    pub event_type: String,
    /// The event's `created` (Unix seconds).
    pub created: i64,
    pub kind: StripeEventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StripeEventKind {
    /// `checkout.session.completed` or `checkout.session.async_payment_succeeded`.
    Checkout {
        session_id: String,
        payment_intent: Option<String>,
        /// `payment_status == "paid"`.
        paid: bool,
        amount_total_cents: i64,
        currency: String,
    },
    /// `charge.refunded`: the charge's cumulative `amount_refunded`.
    Refund {
        charge_id: String,
        payment_intent: String,
        refunded_cents: i64,
    },
    /// `charge.dispute.created`: the dispute's `amount`.
    Dispute {
        dispute_id: String,
        payment_intent: String,
        disputed_cents: i64,
    },
    /// Any other event type: recorded and acknowledged, without effect.
    Other,
}

/// A change an event or adjustment made to an account's balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalanceChange {
    Topup(Nanos),
    Adjustment(Nanos),
    /// The signup trial, granted when the email is verified.
    Trial(Nanos),
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventOutcome {
    /// The event ID was already applied: nothing was done now.
    pub replayed: bool,
    /// What the event did, in words (also stored with the event).
    pub outcome: String,
    /// The account the event concerned, when known.
    pub account_id: Option<String>,
    /// The balance changes made, in order.
    pub changes: Vec<BalanceChange>,
}

/// A received event, as listed to operators.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StripeEventRow {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub kind: String,
    pub session_id: Option<String>,
    pub payment_intent: Option<String>,
    pub account_id: Option<String>,
    pub reported_cents: i64,
    pub amount_usd: Nanos,
    pub outcome: String,
    pub created: i64,
    pub received_at: String,
}

/// What an adjustment did: the first result is replayed for a retried idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AdjustmentReceipt {
    pub adjustment_id: String,
    pub account_id: String,
    pub amount_nanos: i64,
    pub reason: String,
    pub created_at: String,
}

impl Store {
    /// Records a Checkout Session created for a top-up, before the customer is sent to
    /// pay it. The same session again (a client's retry, answered the same session by
    /// Stripe) is recorded once.
    pub async fn record_checkout(&self, c: &CheckoutRecord) -> Result<(), StoreError> {
        on_pool!(self, |p, Db| {
            sqlx::query("INSERT INTO stripe_checkouts (session_id, account_id, credited_nanos, fee_nanos, fee_basis_points, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (session_id) DO NOTHING")
                .bind(&c.session_id)
                .bind(&c.account_id)
                .bind(c.credited.nanos())
                .bind(c.fee.nanos())
                .bind(c.fee_basis_points)
                .bind(&c.created_at)
                .execute(p)
                .await?;
            Ok(())
        })
    }

    /// Applies a verified event in one transaction: at most once per event ID, at most
    /// one credit per paid session, never more credit taken back than credited.
    pub async fn apply_stripe_event(
        &self,
        e: &StripeEvent,
        received_at: &str,
    ) -> Result<EventOutcome, StoreError> {
        // (kind, session, object, payment intent, amount reported)
        let (kind, session, object, intent, reported) = match &e.kind {
            StripeEventKind::Checkout {
                session_id,
                payment_intent,
                ..
            } => (
                "checkout",
                Some(session_id.as_str()),
                Some(session_id.as_str()),
                payment_intent.as_deref(),
                0,
            ),
            StripeEventKind::Refund {
                charge_id,
                payment_intent,
                refunded_cents,
            } => (
                "refund",
                None,
                Some(charge_id.as_str()),
                Some(payment_intent.as_str()),
                *refunded_cents,
            ),
            StripeEventKind::Dispute {
                dispute_id,
                payment_intent,
                disputed_cents,
            } => (
                "dispute",
                None,
                Some(dispute_id.as_str()),
                Some(payment_intent.as_str()),
                *disputed_cents,
            ),
            StripeEventKind::Other => ("other", None, None, None, 0),
        };
        let shared = self.shared();
        on_pool!(self, |p, Db| {
            let mut tx = p.begin_write().await?;
            // First, and a write: a concurrent delivery of the same event waits for this
            // transaction and then finds the ID taken.
            let claimed = sqlx::query("INSERT INTO stripe_events (event_id, type, kind, session_id, object_id, payment_intent, account_id, reported_cents, amount_nanos, outcome, created, received_at) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, 0, 'pending', $8, $9)")
                .bind(&e.id)
                .bind(&e.event_type)
                .bind(kind)
                .bind(session)
                .bind(object)
                .bind(intent)
                .bind(reported)
                .bind(e.created)
                .bind(received_at)
                .execute(&mut *tx)
                .await;
            match claimed {
                Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                    drop(tx);
                    let row = sqlx::query(
                        "SELECT outcome, account_id FROM stripe_events WHERE event_id = $1",
                    )
                    .bind(&e.id)
                    .fetch_one(p)
                    .await?;
                    return Ok(EventOutcome {
                        replayed: true,
                        outcome: row.get(0),
                        account_id: row.get(1),
                        changes: Vec::new(),
                    });
                }
                r => {
                    r?;
                }
            }
            // One payment's events one after the other (PostgreSQL; SQLite's write
            // transactions are serialised already): a refund committed while its
            // payment's event is being applied would otherwise be missed by both.
            if let (Some(pi), true) = (intent, shared) {
                sqlx::query(
                    "SELECT pg_advisory_xact_lock(hashtextextended('gammainfra.stripe.' || $1, 0))",
                )
                .bind(pi)
                .execute(&mut *tx)
                .await?;
            }
            let mut changes = Vec::new();
            let mut account: Option<String> = None;
            let outcome: String = match &e.kind {
                StripeEventKind::Checkout {
                    session_id,
                    payment_intent,
                    paid,
                    amount_total_cents,
                    currency,
                } => {
                    let checkout = sqlx::query("SELECT account_id, credited_nanos, fee_nanos, fee_basis_points FROM stripe_checkouts WHERE session_id = $1")
                        .bind(session_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    match checkout {
                        None => "ignored: not a checkout of this gateway".to_owned(),
                        Some(c) => {
                            let acct: String = c.get(0);
                            let credited: i64 = c.get(1);
                            let fee: i64 = c.get(2);
                            let bp: i64 = c.get(3);
                            account = Some(acct.clone());
                            let expected_cents = (credited + fee) / NANOS_PER_CENT;
                            let already =
                                sqlx::query("SELECT 1 FROM stripe_payments WHERE session_id = $1")
                                    .bind(session_id)
                                    .fetch_optional(&mut *tx)
                                    .await?
                                    .is_some();
                            if already {
                                "ignored: this checkout was already credited".to_owned()
                            } else if !paid {
                                "ignored: not paid yet".to_owned()
                            } else if currency != "usd" || *amount_total_cents != expected_cents {
                                format!(
                                    "refused: paid {amount_total_cents} {currency} cents, the checkout asked for {expected_cents} usd cents"
                                )
                            } else {
                                let topup_id = crate::ids::random_id("topup_");
                                sqlx::query("INSERT INTO topups (id, account_id, credited_nanos, fee_nanos, charged_nanos, fee_basis_points, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                                    .bind(&topup_id)
                                    .bind(&acct)
                                    .bind(credited)
                                    .bind(fee)
                                    .bind(credited + fee)
                                    .bind(bp)
                                    .bind(received_at)
                                    .execute(&mut *tx)
                                    .await?;
                                sqlx::query("INSERT INTO ledger_entries (account_id, kind, amount_nanos, note, created_at) VALUES ($1, 'topup', $2, $3, $4)")
                                    .bind(&acct)
                                    .bind(credited)
                                    .bind(&topup_id)
                                    .bind(received_at)
                                    .execute(&mut *tx)
                                    .await?;
                                sqlx::query("INSERT INTO stripe_payments (session_id, account_id, payment_intent, topup_id, credited_nanos, taken_nanos, created_at) VALUES ($1, $2, $3, $4, $5, 0, $6)")
                                    .bind(session_id)
                                    .bind(&acct)
                                    .bind(payment_intent.as_deref())
                                    .bind(&topup_id)
                                    .bind(credited)
                                    .bind(received_at)
                                    .execute(&mut *tx)
                                    .await?;
                                changes.push(BalanceChange::Topup(Nanos::from_nanos(credited)));
                                format!("credited {} ({topup_id})", Nanos::from_nanos(credited))
                            }
                        }
                    }
                }
                StripeEventKind::Other => "ignored: event type not used".to_owned(),
                StripeEventKind::Refund { .. } | StripeEventKind::Dispute { .. } => String::new(),
            };
            // Refunds and disputes, including ones that arrived before their payment.
            let mut outcome = outcome;
            if let Some(pi) = intent {
                let payment = sqlx::query("SELECT session_id, account_id, credited_nanos, taken_nanos FROM stripe_payments WHERE payment_intent = $1")
                    .bind(pi)
                    .fetch_optional(&mut *tx)
                    .await?;
                match payment {
                    None if kind != "checkout" => {
                        outcome = "recorded: no payment with this payment intent yet".to_owned();
                    }
                    None => {}
                    Some(pay) => {
                        let session_id: String = pay.get(0);
                        let acct: String = pay.get(1);
                        let credited: i64 = pay.get(2);
                        let taken: i64 = pay.get(3);
                        account = Some(acct.clone());
                        // Refunds: the charge's running total, so the largest reported.
                        // Disputes: each dispute once, even if Stripe sent it in two
                        // Event objects.
                        let row = sqlx::query("SELECT CAST(COALESCE((SELECT MAX(reported_cents) FROM stripe_events WHERE payment_intent = $1 AND kind = 'refund'), 0) AS BIGINT), CAST(COALESCE((SELECT SUM(d.amount) FROM (SELECT MAX(reported_cents) AS amount FROM stripe_events WHERE payment_intent = $1 AND kind = 'dispute' GROUP BY object_id) d), 0) AS BIGINT)")
                            .bind(pi)
                            .fetch_one(&mut *tx)
                            .await?;
                        let refunded: i64 = row.get(0);
                        let disputed: i64 = row.get(1);
                        let reported = refunded
                            .saturating_add(disputed)
                            .saturating_mul(NANOS_PER_CENT);
                        let target = reported.min(credited);
                        let delta = target - taken;
                        if delta > 0 {
                            let note = format!(
                                "taken back: card payment of checkout {session_id} refunded or disputed"
                            );
                            sqlx::query("INSERT INTO ledger_entries (account_id, kind, amount_nanos, note, created_at) VALUES ($1, 'adjustment', $2, $3, $4)")
                                .bind(&acct)
                                .bind(-delta)
                                .bind(&note)
                                .bind(received_at)
                                .execute(&mut *tx)
                                .await?;
                            sqlx::query(
                                "UPDATE stripe_payments SET taken_nanos = $1 WHERE session_id = $2",
                            )
                            .bind(target)
                            .bind(&session_id)
                            .execute(&mut *tx)
                            .await?;
                            changes.push(BalanceChange::Adjustment(Nanos::from_nanos(-delta)));
                            let took = format!("took back {}", Nanos::from_nanos(delta));
                            outcome = if outcome.is_empty() {
                                took
                            } else {
                                format!("{outcome}; {took}")
                            };
                        } else if outcome.is_empty() {
                            outcome = "no change: already taken back".to_owned();
                        }
                    }
                }
            }
            let amount: i64 = changes
                .iter()
                .map(|c| match c {
                    BalanceChange::Topup(n)
                    | BalanceChange::Adjustment(n)
                    | BalanceChange::Trial(n) => n.nanos(),
                })
                .sum();
            // The claim inserted above gets its outcome, in the same transaction.
            sqlx::query("UPDATE stripe_events SET outcome = $1, account_id = $2, amount_nanos = $3 WHERE event_id = $4")
                .bind(&outcome)
                .bind(account.as_deref())
                .bind(amount)
                .bind(&e.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(EventOutcome {
                replayed: false,
                outcome,
                account_id: account,
                changes,
            })
        })
    }

    /// Disables the account (its keys are refused) at `at`, or enables it (`None`).
    pub async fn set_account_disabled(
        &self,
        account_id: &str,
        at: Option<&str>,
    ) -> Result<(), StoreError> {
        on_pool!(self, |p, Db| {
            let r = sqlx::query("UPDATE accounts SET disabled_at = $1 WHERE id = $2")
                .bind(at)
                .bind(account_id)
                .execute(p)
                .await?;
            if r.rows_affected() == 0 {
                return Err(StoreError::NoAccount);
            }
            Ok(())
        })
    }

    /// The accounts an operator disabled.
    pub async fn disabled_accounts(&self) -> Result<Vec<String>, StoreError> {
        on_pool!(self, |p, Db| {
            Ok(
                sqlx::query("SELECT id FROM accounts WHERE disabled_at IS NOT NULL")
                    .fetch_all(p)
                    .await?
                    .into_iter()
                    .map(|r| r.get(0))
                    .collect(),
            )
        })
    }

    /// The account's email, if the account exists.
    pub async fn account_email(&self, account_id: &str) -> Result<Option<String>, StoreError> {
        on_pool!(self, |p, Db| {
            Ok(sqlx::query("SELECT email FROM accounts WHERE id = $1")
                .bind(account_id)
                .fetch_optional(p)
                .await?
                .map(|r| r.get(0)))
        })
    }

    /// The events received, newest first, at most `limit`, before the event received
    /// just before `before` (an event ID) when given.
    pub async fn stripe_events(
        &self,
        limit: i64,
        before: Option<&str>,
    ) -> Result<Vec<StripeEventRow>, StoreError> {
        on_pool!(self, |p, Db| {
            let rows = sqlx::query(
                "SELECT event_id, type, kind, session_id, payment_intent, account_id, reported_cents, amount_nanos, outcome, created, received_at
                 FROM stripe_events
                 WHERE $1 IS NULL OR (received_at, event_id) < (SELECT received_at, event_id FROM stripe_events WHERE event_id = $1)
                 ORDER BY received_at DESC, event_id DESC
                 LIMIT $2",
            )
            .bind(before)
            .bind(limit)
            .fetch_all(p)
            .await?;
            Ok(rows
                .into_iter()
                .map(|r| StripeEventRow {
                    event_id: r.get(0),
                    event_type: r.get(1),
                    kind: r.get(2),
                    session_id: r.get(3),
                    payment_intent: r.get(4),
                    account_id: r.get(5),
                    reported_cents: r.get(6),
                    amount_usd: Nanos::from_nanos(r.get(7)),
                    outcome: r.get(8),
                    created: r.get(9),
                    received_at: r.get(10),
                })
                .collect())
        })
    }

    /// Appends an adjustment (credit an operator grants, with its reason) in one
    /// transaction with its idempotency key if given. Returns `Ok(None)` when it was
    /// recorded now, `Ok(Some(first))` when the key was already used for the same
    /// request (nothing is appended again).
    pub async fn adjust(
        &self,
        receipt: &AdjustmentReceipt,
        idem: Option<&super::Idempotency>,
    ) -> Result<Option<AdjustmentReceipt>, StoreError> {
        let replay = on_pool!(self, |p, Db| {
            let mut tx = p.begin_write().await?;
            let replay =
                claim_money_movement!(tx, "adjustment", idem, receipt, &receipt.account_id);
            if replay.is_none() {
                sqlx::query("INSERT INTO ledger_entries (account_id, kind, amount_nanos, note, created_at) VALUES ($1, 'adjustment', $2, $3, $4)")
                    .bind(&receipt.account_id)
                    .bind(receipt.amount_nanos)
                    .bind(format!("{}: {}", receipt.adjustment_id, receipt.reason))
                    .bind(&receipt.created_at)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Ok::<_, StoreError>(replay)
        })?;
        match replay {
            Some(i) => self.replay("adjustment", i).await.map(Some),
            None => Ok(None),
        }
    }
}
