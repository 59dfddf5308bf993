//! Persistence of accounts, keys and the ledger (SQLite through sqlx). The only module
//! that speaks SQL.
//!
//! * this file: opening and migrating, accounts, keys, top-ups, appending usage.
//! * [`usage`]: reading usage records back for `GET /v1/usage`.

mod usage;

use std::borrow::Cow;
use std::str::FromStr;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::keys::{KeyHash, NewKey};
use super::UsageStatus;
use crate::money::Nanos;
pub use usage::{DailyUsage, UsageFilter, UsageOrder, UsageRecord};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("no such account")]
    NoAccount,
    #[error("no such key")]
    NoKey,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the database file {0} is in use by another GammaInfra process (one process per SQLite file; run several replicas on PostgreSQL)")]
    Locked(String),
    #[error("cannot lock the database file {0}: {1}")]
    Lock(String, std::io::Error),
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyConflict,
}

/// A usage charge, as the writer task appends it.
#[derive(Debug, Clone)]
pub struct UsageEntry {
    pub account_id: String,
    pub key_id: String,
    pub request_id: String,
    pub model: String,
    pub endpoint: String,
    pub provider: String,
    pub upstream_model: String,
    pub upstream_request_id: Option<String>,
    pub region: String,
    pub status: UsageStatus,
    pub charged: Nanos,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub note: Option<String>,
    pub at: String,
}

/// Per-account sums, to rebuild the in-memory balances at start.
#[derive(Debug, Clone)]
pub struct AccountSums {
    pub id: String,
    pub balance: Nanos,
    pub trial: Nanos,
    pub topups: Nanos,
    pub spent: Nanos,
}

#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: String,
    pub account_id: String,
    pub hash: KeyHash,
    /// The key's residency policy (column `default_region`, see migration 0004).
    pub residency: Option<String>,
}

/// An account's stored details (money aside: balances are the ledger's sums).
#[derive(Debug, Clone)]
pub struct AccountRow {
    pub email: String,
    /// The account's residency policy, as set through the admin API.
    pub residency: Option<String>,
}

/// Every write transaction takes SQLite's write lock up front. A deferred transaction
/// that reads first and writes later cannot wait for a concurrent writer (the busy
/// handler does not apply to the upgrade) and fails at once with SQLITE_BUSY; an
/// immediate one waits up to the busy timeout like any single statement.
const WRITE_TX: &str = "BEGIN IMMEDIATE";

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    /// The database file, locked (`flock`, exclusive) for as long as any clone of this
    /// store lives: in-memory balances are exact only if this process is the file's one
    /// writer. `None` for in-memory databases.
    _lock: Option<std::sync::Arc<std::fs::File>>,
}

/// A money movement's idempotency key and the fingerprint of what it asked for.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: String,
}

/// What a top-up did: the first result is replayed for a retried idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopupReceipt {
    pub topup_id: String,
    pub account_id: String,
    pub credited_nanos: i64,
    pub fee_nanos: i64,
    /// The balance right after this top-up was credited.
    pub balance_nanos: i64,
    pub created_at: String,
}

/// Locks the SQLite file at `path` for the process's lifetime, or says who holds it.
/// An advisory `flock`, independent of SQLite's own `fcntl` locks on the same file.
fn lock_file(path: &str) -> Result<std::fs::File, StoreError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StoreError::Lock(path.to_owned(), e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked(path.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Lock(path.to_owned(), e)),
    }
}

/// SQLite's limit on the parameters of one statement (`SQLITE_MAX_VARIABLE_NUMBER`,
/// 32,766 since SQLite 3.32; sqlx bundles a newer SQLite).
const SQLITE_MAX_PARAMS: usize = 32_766;

/// The columns [`Store::append_usage`] writes, in the order it binds them.
const USAGE_COLUMNS: [&str; 18] = [
    "account_id",
    "kind",
    "amount_nanos",
    "request_id",
    "key_id",
    "model",
    "endpoint",
    "provider",
    "upstream_model",
    "upstream_request_id",
    "region",
    "status",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "note",
    "created_at",
];

fn migrator() -> Migrator {
    Migrator {
        migrations: Cow::Owned(vec![
            Migration::new(
                1,
                Cow::Borrowed("init"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/0001_init.sql")),
                false,
            ),
            Migration::new(
                2,
                Cow::Borrowed("usage details"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/0002_usage_details.sql")),
                false,
            ),
            Migration::new(
                3,
                Cow::Borrowed("idempotency"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/0003_idempotency.sql")),
                false,
            ),
            Migration::new(
                4,
                Cow::Borrowed("residency"),
                MigrationType::Simple,
                Cow::Borrowed(include_str!("../../migrations/0004_residency.sql")),
                false,
            ),
        ]),
        ..Migrator::DEFAULT
    }
}

impl Store {
    /// Opens (creating if missing) and migrates the database at `url` (`sqlite://PATH`).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let mut lock = None;
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or_default();
            if let Some(dir) = std::path::Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|e| StoreError::Db(sqlx::Error::Io(e)))?;
            }
            if !path.is_empty() && !path.starts_with(":memory:") {
                lock = Some(std::sync::Arc::new(lock_file(path)?));
            }
        }
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + FULL: every commit is fsynced before it returns, so an account, a
            // key change or a top-up that was answered survives a power loss too. Usage
            // charges are group-committed (one fsync per batch), so this costs the
            // request path nothing.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        migrator().run(&pool).await?;
        Ok(Self { pool, _lock: lock })
    }

    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Creates an account (with its residency policy, if any) with its first key and the
    /// trial credit, in one transaction.
    pub async fn create_account(
        &self,
        id: &str,
        email: &str,
        residency: Option<&str>,
        key: &NewKey,
        trial: Nanos,
        at: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(WRITE_TX).await?;
        let r = sqlx::query(
            "INSERT INTO accounts (id, email, residency, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(id)
        .bind(email)
        .bind(residency)
        .bind(at)
        .execute(&mut *tx)
        .await;
        if let Err(sqlx::Error::Database(e)) = &r {
            if e.is_unique_violation() {
                return Err(StoreError::EmailTaken);
            }
        }
        r?;
        insert_key(&mut tx, id, key, None, None, at).await?;
        if trial > Nanos::ZERO {
            sqlx::query("INSERT INTO ledger_entries (account_id, kind, amount_nanos, note, created_at) VALUES (?, 'trial', ?, 'signup trial credit', ?)")
                .bind(id)
                .bind(trial.nanos())
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn account_exists(&self, id: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query("SELECT 1 FROM accounts WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// The account's stored details, if it exists.
    pub async fn account(&self, id: &str) -> Result<Option<AccountRow>, StoreError> {
        Ok(
            sqlx::query("SELECT email, residency FROM accounts WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| AccountRow {
                    email: r.get(0),
                    residency: r.get(1),
                }),
        )
    }

    /// Sets (or, with `None`, clears) an account's residency policy. Committed (and
    /// fsynced) when it returns.
    pub async fn set_account_residency(
        &self,
        id: &str,
        residency: Option<&str>,
    ) -> Result<(), StoreError> {
        let r = sqlx::query("UPDATE accounts SET residency = ? WHERE id = ?")
            .bind(residency)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NoAccount);
        }
        Ok(())
    }

    /// Every account's residency policy, to load with the keys at start.
    pub async fn account_policies(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT id, residency FROM accounts WHERE residency IS NOT NULL")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn account_email(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query("SELECT email FROM accounts WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.get::<String, _>(0)))
    }

    pub async fn add_key(
        &self,
        account_id: &str,
        key: &NewKey,
        name: Option<&str>,
        residency: Option<&str>,
        at: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(WRITE_TX).await?;
        if sqlx::query("SELECT 1 FROM accounts WHERE id = ?")
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?
            .is_none()
        {
            return Err(StoreError::NoAccount);
        }
        insert_key(&mut tx, account_id, key, name, residency, at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks a key revoked; returns its hash so the caller can drop it from memory.
    pub async fn revoke_key(&self, key_id: &str, at: &str) -> Result<KeyHash, StoreError> {
        let row = sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? RETURNING key_hash")
            .bind(at)
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NoKey)?;
        KeyHash::from_hex(&row.get::<String, _>(0)).ok_or(StoreError::NoKey)
    }

    /// Records a top-up and its ledger credit in one transaction, with its idempotency
    /// key if given. `receipt` is what the caller will answer; it is stored with the key.
    /// Returns `Ok(None)` when it was recorded now, `Ok(Some(first))` when the key was
    /// already used for the same request (nothing is credited again).
    pub async fn topup(
        &self,
        receipt: &TopupReceipt,
        basis_points: i64,
        idem: Option<&Idempotency>,
    ) -> Result<Option<TopupReceipt>, StoreError> {
        let mut tx = self.pool.begin_with(WRITE_TX).await?;
        if let Some(i) = idem {
            // First statement of the transaction, and a write: it takes SQLite's write
            // lock (waiting for a concurrent retry of the same key to commit), so the
            // unique key decides which of two racing retries credits.
            let result = serde_json::to_string(receipt)
                .map_err(|e| StoreError::Db(sqlx::Error::Protocol(e.to_string())))?;
            let r = sqlx::query("INSERT INTO idempotency_keys (scope, idem_key, fingerprint, result, created_at) VALUES ('topup', ?, ?, ?, ?)")
                .bind(&i.key)
                .bind(&i.fingerprint)
                .bind(result)
                .bind(&receipt.created_at)
                .execute(&mut *tx)
                .await;
            if let Err(sqlx::Error::Database(e)) = &r {
                if e.is_unique_violation() {
                    drop(tx);
                    return self.replay("topup", i).await.map(Some);
                }
            }
            r?;
        }
        if sqlx::query("SELECT 1 FROM accounts WHERE id = ?")
            .bind(&receipt.account_id)
            .fetch_optional(&mut *tx)
            .await?
            .is_none()
        {
            return Err(StoreError::NoAccount);
        }
        sqlx::query("INSERT INTO topups (id, account_id, credited_nanos, fee_nanos, charged_nanos, fee_basis_points, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(&receipt.topup_id)
            .bind(&receipt.account_id)
            .bind(receipt.credited_nanos)
            .bind(receipt.fee_nanos)
            .bind(receipt.credited_nanos + receipt.fee_nanos)
            .bind(basis_points)
            .bind(&receipt.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO ledger_entries (account_id, kind, amount_nanos, note, created_at) VALUES (?, 'topup', ?, ?, ?)")
            .bind(&receipt.account_id)
            .bind(receipt.credited_nanos)
            .bind(&receipt.topup_id)
            .bind(&receipt.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(None)
    }

    /// The first result recorded for an idempotency key, if the request is the same.
    async fn replay(&self, scope: &str, i: &Idempotency) -> Result<TopupReceipt, StoreError> {
        let row = sqlx::query(
            "SELECT fingerprint, result FROM idempotency_keys WHERE scope = ? AND idem_key = ?",
        )
        .bind(scope)
        .bind(&i.key)
        .fetch_one(&self.pool)
        .await?;
        if row.get::<String, _>(0) != i.fingerprint {
            return Err(StoreError::IdempotencyConflict);
        }
        serde_json::from_str(&row.get::<String, _>(1))
            .map_err(|e| StoreError::Db(sqlx::Error::Protocol(e.to_string())))
    }

    /// Appends usage charges in one transaction. A request already charged (same
    /// request ID) is skipped, so a retried batch cannot double-charge.
    pub async fn append_usage(&self, entries: &[UsageEntry]) -> Result<(), StoreError> {
        // Multi-row INSERTs with as many rows per statement as SQLite's limit on bound
        // parameters allows (32,766 / 18 columns = 1,820 rows), in one transaction.
        const ROWS_PER_INSERT: usize = SQLITE_MAX_PARAMS / USAGE_COLUMNS.len();
        let insert = format!("INSERT INTO ledger_entries ({}) ", USAGE_COLUMNS.join(", "));
        let mut tx = self.pool.begin_with(WRITE_TX).await?;
        for chunk in entries.chunks(ROWS_PER_INSERT) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(&insert);
            // One bind per name in USAGE_COLUMNS, in that order.
            q.push_values(chunk, |mut b, e| {
                b.push_bind(&e.account_id)
                    .push_bind("usage")
                    .push_bind(-e.charged.nanos())
                    .push_bind(&e.request_id)
                    .push_bind(&e.key_id)
                    .push_bind(&e.model)
                    .push_bind(&e.endpoint)
                    .push_bind(&e.provider)
                    .push_bind(&e.upstream_model)
                    .push_bind(&e.upstream_request_id)
                    .push_bind(&e.region)
                    .push_bind(e.status.as_str())
                    .push_bind(e.input_tokens as i64)
                    .push_bind(e.output_tokens as i64)
                    .push_bind(e.cache_read_tokens as i64)
                    .push_bind(e.cache_write_tokens as i64)
                    .push_bind(&e.note)
                    .push_bind(&e.at);
            });
            q.push(" ON CONFLICT DO NOTHING");
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn account_sums(&self) -> Result<Vec<AccountSums>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.id,
                    COALESCE(SUM(l.amount_nanos), 0),
                    COALESCE(SUM(CASE WHEN l.kind = 'trial' THEN l.amount_nanos END), 0),
                    COALESCE(SUM(CASE WHEN l.kind = 'topup' THEN l.amount_nanos END), 0),
                    COALESCE(-SUM(CASE WHEN l.kind = 'usage' THEN l.amount_nanos END), 0)
             FROM accounts a LEFT JOIN ledger_entries l ON l.account_id = a.id GROUP BY a.id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| AccountSums {
                id: r.get(0),
                balance: Nanos::from_nanos(r.get(1)),
                trial: Nanos::from_nanos(r.get(2)),
                topups: Nanos::from_nanos(r.get(3)),
                spent: Nanos::from_nanos(r.get(4)),
            })
            .collect())
    }

    /// The sum of an account's ledger entries, straight from the database.
    pub async fn ledger_sum(&self, account_id: &str) -> Result<Nanos, StoreError> {
        let v: i64 = sqlx::query(
            "SELECT COALESCE(SUM(amount_nanos), 0) FROM ledger_entries WHERE account_id = ?",
        )
        .bind(account_id)
        .fetch_one(&self.pool)
        .await?
        .get(0);
        Ok(Nanos::from_nanos(v))
    }

    pub async fn ledger_count(&self, account_id: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT COUNT(*) FROM ledger_entries WHERE account_id = ?")
                .bind(account_id)
                .fetch_one(&self.pool)
                .await?
                .get(0),
        )
    }

    pub async fn active_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        let rows = sqlx::query("SELECT id, account_id, key_hash, default_region FROM api_keys WHERE revoked_at IS NULL")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(KeyRow {
                    id: r.get(0),
                    account_id: r.get(1),
                    hash: KeyHash::from_hex(&r.get::<String, _>(2))?,
                    residency: r.get(3),
                })
            })
            .collect())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn insert_key(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    account_id: &str,
    key: &NewKey,
    name: Option<&str>,
    residency: Option<&str>,
    at: &str,
) -> Result<(), StoreError> {
    // The key's residency policy goes in `default_region` (see migration 0004).
    sqlx::query("INSERT INTO api_keys (id, account_id, key_hash, key_prefix, name, default_region, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
        .bind(&key.id)
        .bind(account_id)
        .bind(key.hash.to_hex())
        .bind(&key.plain[..key.plain.len().min(10)])
        .bind(name)
        .bind(residency)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn topups_are_durable_and_idempotent() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let store = Store::open(&url).await.expect("open");
        // Every commit is fsynced (FULL = 2), so an answered top-up survives power loss.
        let sync: i64 = sqlx::query("PRAGMA synchronous")
            .fetch_one(&store.pool)
            .await
            .expect("pragma")
            .get(0);
        assert_eq!(sync, 2);
        let key = super::super::keys::generate();
        store
            .create_account(
                "acct_1",
                "a@example.com",
                None,
                &key,
                Nanos::ZERO,
                "2026-11-30T00:00:00Z",
            )
            .await
            .expect("account");
        let receipt = TopupReceipt {
            topup_id: "topup_1".into(),
            account_id: "acct_1".into(),
            credited_nanos: 10_000_000_000,
            fee_nanos: 500_000_000,
            balance_nanos: 10_000_000_000,
            created_at: "2026-11-30T00:00:00Z".into(),
        };
        let idem = Idempotency {
            key: "k".into(),
            fingerprint: "f".into(),
        };
        assert_eq!(
            store
                .topup(&receipt, 500, Some(&idem))
                .await
                .expect("first"),
            None
        );
        let again = TopupReceipt {
            topup_id: "topup_2".into(),
            ..receipt.clone()
        };
        assert_eq!(
            store.topup(&again, 500, Some(&idem)).await.expect("replay"),
            Some(receipt)
        );
        let other = Idempotency {
            key: "k".into(),
            fingerprint: "g".into(),
        };
        assert!(matches!(
            store.topup(&again, 500, Some(&other)).await,
            Err(StoreError::IdempotencyConflict)
        ));
        assert_eq!(
            store.ledger_sum("acct_1").await.expect("sum"),
            Nanos::from_nanos(10_000_000_000)
        );
    }

    /// A database from before migration 0004 keeps its keys' `default_region` as their
    /// residency policy; accounts get one that survives reopening the file.
    #[tokio::test]
    async fn residency_is_migrated_stored_and_survives_reopening() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("r.db");
        let url = format!("sqlite://{}", path.display());
        // The schema as of migration 3, with a key that has a default region.
        {
            let opts = SqliteConnectOptions::from_str(&url)
                .expect("url")
                .create_if_missing(true);
            let pool = SqlitePoolOptions::new()
                .connect_with(opts)
                .await
                .expect("pool");
            let old = Migrator {
                migrations: Cow::Owned(migrator().migrations[..3].to_vec()),
                ..Migrator::DEFAULT
            };
            old.run(&pool).await.expect("migrate to 3");
            sqlx::query("INSERT INTO accounts (id, email, created_at) VALUES ('acct_old', 'old@example.com', 'x')")
                .execute(&pool)
                .await
                .expect("account");
            sqlx::query("INSERT INTO api_keys (id, account_id, key_hash, key_prefix, default_region, created_at) VALUES ('key_old', 'acct_old', ?, 'gi-', 'eu', 'x')")
                .bind(super::super::keys::generate().hash.to_hex())
                .execute(&pool)
                .await
                .expect("key");
            pool.close().await;
        }
        let store = Store::open(&url).await.expect("open and migrate");
        let keys = store.active_keys().await.expect("keys");
        assert_eq!(keys[0].residency.as_deref(), Some("eu"));
        assert!(store.account_policies().await.expect("p").is_empty());
        store
            .set_account_residency("acct_old", Some("eu-west-1"))
            .await
            .expect("set");
        assert!(matches!(
            store.set_account_residency("acct_nope", Some("eu")).await,
            Err(StoreError::NoAccount)
        ));
        let key = super::super::keys::generate();
        store
            .create_account(
                "acct_new",
                "new@example.com",
                Some("us"),
                &key,
                Nanos::ZERO,
                "x",
            )
            .await
            .expect("create");
        store.close().await;
        drop(store);

        let store = Store::open(&url).await.expect("reopen");
        let mut p = store.account_policies().await.expect("p");
        p.sort();
        assert_eq!(
            p,
            vec![
                ("acct_new".to_owned(), "us".to_owned()),
                ("acct_old".to_owned(), "eu-west-1".to_owned())
            ]
        );
        store
            .set_account_residency("acct_old", None)
            .await
            .expect("clear");
        let a = store.account("acct_old").await.expect("a").expect("exists");
        assert_eq!((a.email.as_str(), a.residency), ("old@example.com", None));
    }
}
