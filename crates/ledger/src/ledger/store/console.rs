//! Customers of the web console (migration 0008): passwords, verified emails, login
//! sessions, one-time email links and the mail outbox.
//!
//! Secrets never reach the database in the clear: passwords are stored as the argon2id
//! hash the caller computed, and session and link tokens as their SHA-256 (the caller
//! hashes them too, so this module never sees a token).

use sqlx::Row;

use super::{on_pool, Pool, Store, StoreError, WriteTx};
use crate::money::Nanos;

/// What logging in needs to know about the account of an email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRow {
    pub account_id: String,
    /// `None`: made by an operator, no password set yet (a password reset sets one).
    pub password_hash: Option<String>,
}

/// A console customer's account, as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRow {
    pub email: String,
    pub email_verified_at: Option<String>,
    pub disabled_at: Option<String>,
    pub created_at: String,
}

/// A live login session, with its account as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub account_id: String,
    /// The token every form of this session carries.
    pub csrf: String,
    pub customer: CustomerRow,
}

/// What a link sent by email is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    Verify,
    Reset,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::Verify => "verify",
            TokenPurpose::Reset => "reset",
        }
    }
}

/// A message in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub seq: i64,
    pub to_address: String,
    pub subject: String,
    pub body: String,
    pub created_at: String,
}

/// A card payment credited to the account, with what Stripe charged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentReceipt {
    pub session_id: String,
    pub topup_id: String,
    pub credited: Nanos,
    pub fee: Nanos,
    pub fee_basis_points: i64,
    /// Credit taken back since, for refunds and disputes.
    pub taken: Nanos,
    pub paid_at: String,
}

impl Store {
    /// Creates an account that signed up in the console: a password, no key, and no
    /// trial until its email is verified ([`Store::verify_email`]).
    pub async fn create_customer(
        &self,
        id: &str,
        email: &str,
        password_hash: &str,
        at: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, |p, Db| {
            let r = sqlx::query(
                "INSERT INTO accounts (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(email)
            .bind(password_hash)
            .bind(at)
            .execute(p)
            .await;
            match r {
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    Err(StoreError::EmailTaken)
                }
                Err(e) => Err(e.into()),
                Ok(_) => Ok(()),
            }
        })
    }

    /// The account of a (normalised) email, for logging in.
    pub async fn login_row(&self, email: &str) -> Result<Option<LoginRow>, StoreError> {
        on_pool!(self, |p, Db| {
            Ok(
                sqlx::query("SELECT id, password_hash FROM accounts WHERE email = $1")
                    .bind(email)
                    .fetch_optional(p)
                    .await?
                    .map(|r| LoginRow {
                        account_id: r.get(0),
                        password_hash: r.get(1),
                    }),
            )
        })
    }

    /// The account as the console shows it.
    pub async fn customer(&self, account_id: &str) -> Result<Option<CustomerRow>, StoreError> {
        on_pool!(self, |p, Db| {
            Ok(sqlx::query(
                "SELECT email, email_verified_at, disabled_at, created_at FROM accounts WHERE id = $1",
            )
            .bind(account_id)
            .fetch_optional(p)
            .await?
            .map(|r| CustomerRow {
                email: r.get(0),
                email_verified_at: r.get(1),
                disabled_at: r.get(2),
                created_at: r.get(3),
            }))
        })
    }

    /// Sets the account's password and ends every session it has, in one transaction.
    pub async fn set_password(&self, account_id: &str, hash: &str) -> Result<(), StoreError> {
        on_pool!(self, |p, Db| {
            let mut tx = p.begin_write().await?;
            let r = sqlx::query("UPDATE accounts SET password_hash = $1 WHERE id = $2")
                .bind(hash)
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
            if r.rows_affected() == 0 {
                return Err(StoreError::NoAccount);
            }
            sqlx::query("DELETE FROM console_sessions WHERE account_id = $1")
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Stores a link's token (its SHA-256), usable once until `expires_at`.
    pub async fn add_email_token(
        &self,
        token_hash: &str,
        account_id: &str,
        purpose: TokenPurpose,
        at: &str,
        expires_at: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, |p, Db| {
            sqlx::query("INSERT INTO email_tokens (token_hash, account_id, purpose, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(token_hash)
                .bind(account_id)
                .bind(purpose.as_str())
                .bind(at)
                .bind(expires_at)
                .execute(p)
                .await?;
            Ok(())
        })
    }

    /// The account a link's token is for, if it is for `purpose`, unused and unexpired
    /// at `now`. Does not use it up (see [`Store::use_email_token`]).
    pub async fn email_token(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now: &str,
    ) -> Result<Option<String>, StoreError> {
        on_pool!(self, |p, Db| {
            Ok(sqlx::query("SELECT account_id FROM email_tokens WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3")
                .bind(token_hash)
                .bind(purpose.as_str())
                .bind(now)
                .fetch_optional(p)
                .await?
                .map(|r| r.get(0)))
        })
    }

    /// The account a link's token was made for, used or not, expired or not.
    pub async fn email_token_account(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
    ) -> Result<Option<String>, StoreError> {
        on_pool!(self, |p, Db| {
            Ok(sqlx::query(
                "SELECT account_id FROM email_tokens WHERE token_hash = $1 AND purpose = $2",
            )
            .bind(token_hash)
            .bind(purpose.as_str())
            .fetch_optional(p)
            .await?
            .map(|r| r.get(0)))
        })
    }

    /// Uses up a link's token: the account it is for, or `None` if it is not for
    /// `purpose`, already used or expired at `now`. At most one caller gets it.
    pub async fn use_email_token(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now: &str,
    ) -> Result<Option<String>, StoreError> {
        on_pool!(self, |p, Db| {
            Ok(sqlx::query("UPDATE email_tokens SET used_at = $3 WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3 RETURNING account_id")
                .bind(token_hash)
                .bind(purpose.as_str())
                .bind(now)
                .fetch_optional(p)
                .await?
                .map(|r| r.get(0)))
        })
    }

    /// Marks the account's email verified and grants it `trial`, in one transaction.
    /// The trial is granted once per account (and so once per email): the amount
    /// granted now, zero when the email was verified before or the account already has
    /// its trial (an operator made it).
    pub async fn verify_email(
        &self,
        account_id: &str,
        trial: Nanos,
        at: &str,
    ) -> Result<Nanos, StoreError> {
        on_pool!(self, |p, Db| {
            let mut tx = p.begin_write().await?;
            let r = sqlx::query("UPDATE accounts SET email_verified_at = $1 WHERE id = $2 AND email_verified_at IS NULL")
                .bind(at)
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
            if r.rows_affected() == 0 {
                return Ok(Nanos::ZERO);
            }
            let mut granted = Nanos::ZERO;
            if trial > Nanos::ZERO {
                let r = sqlx::query("INSERT INTO ledger_entries (account_id, kind, amount_nanos, note, created_at) SELECT $1, 'trial', $2, 'signup trial credit', $3 WHERE NOT EXISTS (SELECT 1 FROM ledger_entries WHERE account_id = $1 AND kind = 'trial')")
                    .bind(account_id)
                    .bind(trial.nanos())
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                if r.rows_affected() == 1 {
                    granted = trial;
                }
            }
            tx.commit().await?;
            Ok(granted)
        })
    }

    /// Stores a login session (its token's SHA-256).
    pub async fn add_session(
        &self,
        token_hash: &str,
        account_id: &str,
        csrf: &str,
        at: &str,
        expires_at: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, |p, Db| {
            sqlx::query("INSERT INTO console_sessions (token_hash, account_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(token_hash)
                .bind(account_id)
                .bind(csrf)
                .bind(at)
                .bind(expires_at)
                .execute(p)
                .await?;
            Ok(())
        })
    }

    /// The session of a token's SHA-256 and its account, if it has not expired at `now`.
    pub async fn session(
        &self,
        token_hash: &str,
        now: &str,
    ) -> Result<Option<SessionRow>, StoreError> {
        on_pool!(self, |p, Db| {
            Ok(sqlx::query(
                "SELECT s.account_id, s.csrf, a.email, a.email_verified_at, a.disabled_at, a.created_at
                 FROM console_sessions s JOIN accounts a ON a.id = s.account_id
                 WHERE s.token_hash = $1 AND s.expires_at > $2",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_optional(p)
            .await?
            .map(|r| SessionRow {
                account_id: r.get(0),
                csrf: r.get(1),
                customer: CustomerRow {
                    email: r.get(2),
                    email_verified_at: r.get(3),
                    disabled_at: r.get(4),
                    created_at: r.get(5),
                },
            }))
        })
    }

    /// Ends a session (logout), and every session that expired before `now`.
    pub async fn end_session(&self, token_hash: &str, now: &str) -> Result<(), StoreError> {
        on_pool!(self, |p, Db| {
            sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1 OR expires_at <= $2")
                .bind(token_hash)
                .bind(now)
                .execute(p)
                .await?;
            Ok(())
        })
    }

    /// Appends a message to the outbox.
    pub async fn push_outbox(
        &self,
        to: &str,
        subject: &str,
        body: &str,
        at: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, |p, Db| {
            sqlx::query(
                "INSERT INTO mail_outbox (to_address, subject, body, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(to)
            .bind(subject)
            .bind(body)
            .bind(at)
            .execute(p)
            .await?;
            Ok(())
        })
    }

    /// The outbox, newest first, at most `limit`, to one address when given.
    pub async fn outbox(
        &self,
        to: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        on_pool!(self, |p, Db| {
            let rows = sqlx::query("SELECT seq, to_address, subject, body, created_at FROM mail_outbox WHERE ($1 IS NULL OR to_address = $1) ORDER BY seq DESC LIMIT $2")
                .bind(to)
                .bind(limit)
                .fetch_all(p)
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| OutboxMessage {
                    seq: r.get(0),
                    to_address: r.get(1),
                    subject: r.get(2),
                    body: r.get(3),
                    created_at: r.get(4),
                })
                .collect())
        })
    }

    /// The account's card payments, newest first.
    pub async fn payment_receipts(
        &self,
        account_id: &str,
    ) -> Result<Vec<PaymentReceipt>, StoreError> {
        on_pool!(self, |p, Db| {
            let rows = sqlx::query(
                "SELECT p.session_id, p.topup_id, p.credited_nanos, c.fee_nanos, c.fee_basis_points,
                        p.taken_nanos, p.created_at
                 FROM stripe_payments p JOIN stripe_checkouts c ON c.session_id = p.session_id
                 WHERE p.account_id = $1 ORDER BY p.created_at DESC, p.session_id",
            )
            .bind(account_id)
            .fetch_all(p)
            .await?;
            Ok(rows
                .into_iter()
                .map(|r| PaymentReceipt {
                    session_id: r.get(0),
                    topup_id: r.get(1),
                    credited: Nanos::from_nanos(r.get(2)),
                    fee: Nanos::from_nanos(r.get(3)),
                    fee_basis_points: r.get(4),
                    taken: Nanos::from_nanos(r.get(5)),
                    paid_at: r.get(6),
                })
                .collect())
        })
    }
}
