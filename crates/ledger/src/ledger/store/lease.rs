//! Credit leases and change notifications: what several replicas sharing one PostgreSQL
//! ledger need (docs/scaling.md). PostgreSQL only; the SQL itself lives in
//! `migrations/postgres/0006_leases.sql` (the grant, return and close functions and the
//! trigger that keeps each account's balance and leased credit).

use sqlx::postgres::{PgListener, PgPool};
use sqlx::Row;

use super::{Pool, Store, StoreError};
use crate::money::Nanos;

/// The channel admin changes are announced on, with the account ID as payload.
pub const CHANGES_CHANNEL: &str = "gammainfra_changes";

/// What a lease grant did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Added to the lease: zero when the account's unleased credit was below the need.
    pub granted: Nanos,
    /// The account's credit neither charged nor leased, after the grant.
    pub available: Nanos,
}

/// An account's credit as the database has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountCredit {
    /// The sum of its ledger entries.
    pub balance: Nanos,
    /// Held by open leases and not yet charged.
    pub leased: Nanos,
}

/// The lease was closed (expired and closed by another replica) before this call.
#[derive(Debug, thiserror::Error)]
#[error("credit lease {0} was closed")]
pub struct LeaseClosed(pub String);

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error(transparent)]
    Closed(#[from] LeaseClosed),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    fn pg(&self) -> Result<&PgPool, StoreError> {
        match &self.pool {
            Pool::Postgres(p) => Ok(p),
            Pool::Sqlite(_) => Err(StoreError::Db(sqlx::Error::Protocol(
                "credit leases need PostgreSQL".into(),
            ))),
        }
    }

    /// Whether several replicas may share this database (PostgreSQL), so that credit
    /// is taken in leases rather than kept in this process's memory.
    pub fn shared(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }

    /// This process's replica ID (PostgreSQL only).
    pub fn replica_id(&self) -> Option<&str> {
        self.replica.as_deref()
    }

    /// Grants `need` or more of `account`'s unleased credit to the lease `lease_id` of
    /// this replica (created, or extended and renewed for `ttl_ms`).
    pub async fn lease_grant(
        &self,
        lease_id: &str,
        account: &str,
        need: Nanos,
        target: Nanos,
        ttl_ms: i64,
    ) -> Result<Grant, GrantError> {
        let p = self.pg()?;
        let replica = self.replica.as_deref().unwrap_or_default();
        let mut attempts = 0;
        let r = loop {
            let r = sqlx::query(
                "SELECT granted, available FROM gammainfra_lease_grant($1, $2, $3, $4, $5, $6)",
            )
            .bind(lease_id)
            .bind(account)
            .bind(replica)
            .bind(need.nanos())
            .bind(target.nanos())
            .bind(ttl_ms)
            .fetch_one(p)
            .await;
            // Locks are taken in one order everywhere; should PostgreSQL still pick this
            // grant as a deadlock's victim, it is simply asked again.
            match &r {
                Err(sqlx::Error::Database(e))
                    if e.code().as_deref() == Some("40P01") && attempts < 3 =>
                {
                    attempts += 1;
                }
                _ => break r,
            }
        };
        match r {
            Ok(row) => Ok(Grant {
                granted: Nanos::from_nanos(row.get(0)),
                available: Nanos::from_nanos(row.get(1)),
            }),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("GI001") => {
                Err(LeaseClosed(lease_id.to_owned()).into())
            }
            Err(e) => Err(StoreError::Db(e).into()),
        }
    }

    /// Hands `amount` of a lease's outstanding credit back to its account. `Ok(true)`:
    /// the lease is closed now (nothing of it is outstanding); `Err(LeaseClosed)`: it
    /// had been closed already.
    pub async fn lease_return(&self, lease_id: &str, amount: Nanos) -> Result<bool, GrantError> {
        let p = self.pg()?;
        let closed: Option<bool> = sqlx::query("SELECT gammainfra_lease_return($1, $2)")
            .bind(lease_id)
            .bind(amount.nanos())
            .fetch_one(p)
            .await
            .map_err(StoreError::Db)?
            .get(0);
        closed.ok_or_else(|| LeaseClosed(lease_id.to_owned()).into())
    }

    /// Renews every open lease of this replica for `ttl_ms`; returns their IDs.
    pub async fn lease_heartbeat(&self, ttl_ms: i64) -> Result<Vec<String>, StoreError> {
        let p = self.pg()?;
        // The rows are locked in ID order, as every writer of leases locks them.
        let rows = sqlx::query(
            "UPDATE credit_leases SET expires_at = now() + $2 * INTERVAL '1 millisecond'
             WHERE id IN (SELECT id FROM credit_leases WHERE replica_id = $1 AND closed_at IS NULL
                          ORDER BY id FOR UPDATE)
             RETURNING id",
        )
        .bind(self.replica.as_deref().unwrap_or_default())
        .bind(ttl_ms)
        .fetch_all(p)
        .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// Closes every expired lease, whoever holds it, returning what they had not
    /// charged to their accounts. Returns how many it closed.
    pub async fn close_expired_leases(&self) -> Result<i64, StoreError> {
        let p = self.pg()?;
        let by = format!(
            "expired; closed by {}",
            self.replica.as_deref().unwrap_or("?")
        );
        Ok(
            sqlx::query("SELECT gammainfra_close_leases(NULL, true, $1)")
                .bind(by)
                .fetch_one(p)
                .await?
                .get(0),
        )
    }

    /// Closes every open lease of `replica`: a previous run of this replica ID, which is
    /// dead since this process holds the ID's lock. Returns how many it closed.
    pub async fn close_replica_leases(&self, replica: &str) -> Result<i64, StoreError> {
        let p = self.pg()?;
        Ok(sqlx::query("SELECT gammainfra_close_leases($1, false, $2)")
            .bind(replica)
            .bind(format!("restart of replica {replica}"))
            .fetch_one(p)
            .await?
            .get(0))
    }

    /// Open leases (all replicas), for `/readyz`-style checks and tests.
    pub async fn open_leases(&self) -> Result<i64, StoreError> {
        let p = self.pg()?;
        Ok(
            sqlx::query("SELECT COUNT(*) FROM credit_leases WHERE closed_at IS NULL")
                .fetch_one(p)
                .await?
                .get(0),
        )
    }

    /// An account's committed balance and leased credit.
    pub async fn account_credit(&self, account: &str) -> Result<AccountCredit, StoreError> {
        let p = self.pg()?;
        let row = sqlx::query(
            "SELECT balance_nanos, leased_nanos FROM account_credit WHERE account_id = $1",
        )
        .bind(account)
        .fetch_optional(p)
        .await?;
        Ok(row.map_or(AccountCredit::default(), |r| AccountCredit {
            balance: Nanos::from_nanos(r.get(0)),
            leased: Nanos::from_nanos(r.get(1)),
        }))
    }

    /// What `keys` have spent in total, on the UTC day `day` (`YYYY-MM-DD`) and in the
    /// UTC month `month` (`YYYY-MM`), from the per-day sums the ledger's trigger keeps.
    pub async fn keys_spend(
        &self,
        keys: &[String],
        day: &str,
        month: &str,
    ) -> Result<Vec<crate::ledger::limits::LoadedSpend>, StoreError> {
        let p = self.pg()?;
        let rows = sqlx::query(
            "SELECT key_id,
                    CAST(SUM(spent_nanos) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN day = $2 THEN spent_nanos END), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN substr(day, 1, 7) = $3 THEN spent_nanos END), 0) AS BIGINT)
             FROM key_spend_daily WHERE key_id = ANY($1) GROUP BY key_id",
        )
        .bind(keys)
        .bind(day)
        .bind(month)
        .fetch_all(p)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| super::loaded_spend(r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect())
    }

    /// Tells every replica that an account's keys, policies or limits changed. A no-op
    /// on SQLite, where this process is the only one.
    pub async fn notify_change(&self, account: &str) -> Result<(), StoreError> {
        if let Pool::Postgres(p) = &self.pool {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANGES_CHANNEL)
                .bind(account)
                .execute(p)
                .await?;
        }
        Ok(())
    }

    /// A listener on [`CHANGES_CHANNEL`].
    pub async fn listen_changes(&self) -> Result<PgListener, StoreError> {
        let p = self.pg()?;
        let mut l = PgListener::connect_with(p).await?;
        l.listen(CHANGES_CHANNEL).await?;
        Ok(l)
    }
}

/// Locks the open leases `entries` were admitted under, in ID order (the order every
/// writer takes them in), so that none closes while the entries are inserted. Entries
/// whose lease is no longer open (it expired while this replica could not reach the
/// database, and another replica closed it and returned its credit) are charged at
/// most what their account has neither charged nor leased, in order: `Some` holds the
/// entries with those charges lowered, `None` means every entry is covered.
pub(super) async fn cover(
    tx: &mut sqlx::PgConnection,
    entries: &[super::UsageEntry],
) -> Result<Option<Vec<super::UsageEntry>>, StoreError> {
    let mut leases: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.lease_id.as_deref())
        .collect();
    leases.sort_unstable();
    leases.dedup();
    let open: std::collections::HashSet<String> = sqlx::query(
        "SELECT id FROM credit_leases WHERE id = ANY($1) AND closed_at IS NULL ORDER BY id FOR UPDATE",
    )
    .bind(&leases)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| r.get(0))
    .collect();
    let uncovered = |e: &super::UsageEntry| {
        e.charged > Nanos::ZERO && e.lease_id.as_deref().is_none_or(|l| !open.contains(l))
    };
    if !entries.iter().any(uncovered) {
        return Ok(None);
    }
    // Every account of the batch, in ID order: the trigger locks them all in that order
    // right after, and locking a few first out of order could deadlock with another
    // writer.
    let mut accounts: Vec<&str> = entries.iter().map(|e| e.account_id.as_str()).collect();
    accounts.sort_unstable();
    accounts.dedup();
    let mut free: std::collections::HashMap<String, Nanos> = sqlx::query(
        "SELECT account_id, balance_nanos - leased_nanos FROM account_credit
         WHERE account_id = ANY($1) ORDER BY account_id FOR UPDATE",
    )
    .bind(&accounts)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.get(0), Nanos::from_nanos(r.get(1))))
    .collect();
    let mut out = entries.to_vec();
    for e in out.iter_mut().filter(|e| uncovered(e)) {
        let f = free.entry(e.account_id.clone()).or_insert(Nanos::ZERO);
        let cost = e.charged.min((*f).max(Nanos::ZERO));
        if cost != e.charged {
            tracing::warn!(request_id = %e.request_id, lease = ?e.lease_id, cost = %e.charged, charged = %cost,
                "the request's credit lease was closed before its charge was written; charging what the account has left");
            let note = format!(
                "charged {cost} of {}: the replica's credit lease had expired",
                e.charged
            );
            e.note = Some(match e.note.take() {
                Some(n) => format!("{n}; {note}"),
                None => note,
            });
            e.charged = cost;
        }
        *f = *f - cost;
    }
    Ok(Some(out))
}
