//! Persistence of accounts, keys and the ledger, on SQLite (the default, one machine)
//! or PostgreSQL (several replicas), through sqlx. The only module the gateway's SQL
//! goes through (`db migrate-to` has its own, in `super::migrate`).
//!
//! * this file: opening and migrating, accounts, keys, top-ups, appending usage.
//! * [`usage`]: reading usage records back for `GET /v1/usage`.
//! * `lease`: credit leases and change notifications (PostgreSQL).
//!
//! # Two backends, one set of statements
//! Every statement is written once, in the SQL both engines share: `$1`-style
//! parameters (SQLite reads `$N` as the N-th parameter), `ON CONFLICT … DO NOTHING`,
//! `RETURNING`, sums cast to `BIGINT` (PostgreSQL sums a `BIGINT` column as `NUMERIC`).
//! [`on_pool!`] runs a method's body against whichever pool the store has, with the
//! body's code compiled once per backend. Only the schema (each backend has its own
//! migrations, PostgreSQL's in `migrations/postgres/`), the connection settings, the
//! lock (one process per SQLite file, one per replica ID on PostgreSQL) and the leases
//! differ.

mod console;
mod lease;
mod payments;
mod usage;

use std::borrow::Cow;
use std::str::FromStr;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Row, SqlitePool};

use super::keys::{KeyHash, NewKey};
use super::limits::{LoadedSpend, SpendLimits};
use super::UsageStatus;
use crate::money::Nanos;
use crate::ratelimit::Rates;
pub use console::{CustomerRow, LoginRow, OutboxMessage, PaymentReceipt, SessionRow, TokenPurpose};
pub use lease::{AccountCredit, Grant, GrantError, LeaseClosed, CHANGES_CHANNEL};
pub use payments::{
    AdjustmentReceipt, BalanceChange, CheckoutRecord, EventOutcome, StripeEvent, StripeEventKind,
    StripeEventRow,
};
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
    #[error("the replica ID {0} is in use by another GammaInfra process on this PostgreSQL database (give each replica its own GAMMAINFRA_REPLICA_ID, or leave it unset for a random one)")]
    LockedPostgres(String),
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
    /// The credit lease the request was admitted under (PostgreSQL only).
    pub lease_id: Option<std::sync::Arc<str>>,
}

/// Per-account sums, to rebuild the in-memory balances at start.
#[derive(Debug, Clone)]
pub struct AccountSums {
    pub id: String,
    pub balance: Nanos,
    pub trial: Nanos,
    pub topups: Nanos,
    pub spent: Nanos,
    /// Operator grants (positive) and credit taken back for refunded or disputed card
    /// payments (negative).
    pub adjustments: Nanos,
}

#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: String,
    pub account_id: String,
    pub hash: KeyHash,
    /// The key's residency policy (column `default_region`, see migration 0004).
    pub residency: Option<String>,
    pub limits: KeyLimits,
}

/// A key's own limits, as stored (migration 0005).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyLimits {
    pub spend: SpendLimits,
    pub rates: Rates,
}

/// A key's stored details, for the admin API's key view.
#[derive(Debug, Clone)]
pub struct KeyDetails {
    pub id: String,
    pub account_id: String,
    pub name: Option<String>,
    pub residency: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
    pub limits: KeyLimits,
}

/// An account's stored details (money aside: balances are the ledger's sums).
#[derive(Debug, Clone)]
pub struct AccountRow {
    pub email: String,
    /// The account's residency policy, as set through the admin API.
    pub residency: Option<String>,
    /// The account's rate-limit overrides.
    pub rates: Rates,
    /// When an operator disabled the account (its keys are refused), if they did.
    pub disabled_at: Option<String>,
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// What keeps this process the only one of its kind, held as long as the store lives.
enum OneWriter {
    /// The SQLite file, locked with `flock` (exclusive): in-memory balances are exact
    /// only if no other process changes the ledger. `None` for in-memory databases.
    File(#[allow(dead_code)] Option<std::fs::File>),
    /// A PostgreSQL session holding an advisory lock on this process's replica ID
    /// (keyed by database, schema and ID): the leases of a replica ID belong to the one
    /// process holding it. The lock goes when the session does. The flag is set, for
    /// good, when a periodic ping of that session fails: the lock may be gone, and the
    /// ledger then fails closed.
    Session(
        tokio::sync::Mutex<sqlx::PgConnection>,
        std::sync::atomic::AtomicBool,
    ),
}

/// How often the session holding the PostgreSQL replica lock is checked.
const LOCK_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    _one_writer: std::sync::Arc<OneWriter>,
    /// This process's replica ID, on PostgreSQL.
    replica: Option<std::sync::Arc<str>>,
}

/// Runs `$body` with `$p` bound to the store's pool and `$Db` to that backend's sqlx
/// database type: the body is compiled once per backend.
macro_rules! on_pool {
    ($store:expr, |$p:ident, $Db:ident| $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($p) => {
                #[allow(dead_code)]
                type $Db = sqlx::Sqlite;
                $body
            }
            Pool::Postgres($p) => {
                #[allow(dead_code)]
                type $Db = sqlx::Postgres;
                $body
            }
        }
    };
}
pub(crate) use on_pool;

/// The start of a money movement's write transaction `$tx`: claims its idempotency key
/// (when `$idem` is given) with `$receipt` as the first result, and checks that the
/// account exists. Evaluates to `Some(key)` when the key was already used (nothing is
/// to be written: the first result is replayed), `None` when the movement is to be
/// written now; returns `NoAccount` from the enclosing function for an unknown account.
macro_rules! claim_money_movement {
    ($tx:ident, $scope:literal, $idem:expr, $receipt:expr, $account:expr) => {{
        let mut replay = None;
        if let Some(i) = $idem {
            // First statement of the transaction, and a write: a concurrent retry of
            // the same key waits for this one to commit (SQLite's write lock,
            // PostgreSQL's unique index), so the key decides which of two racing
            // retries moves the money.
            let result = serde_json::to_string($receipt)
                .map_err(|e| StoreError::Db(sqlx::Error::Protocol(e.to_string())))?;
            let r = sqlx::query(concat!(
                "INSERT INTO idempotency_keys (scope, idem_key, fingerprint, result, created_at) VALUES ('",
                $scope,
                "', $1, $2, $3, $4)"
            ))
            .bind(&i.key)
            .bind(&i.fingerprint)
            .bind(result)
            .bind(&$receipt.created_at)
            .execute(&mut *$tx)
            .await;
            match &r {
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => replay = Some(i),
                _ => {
                    r?;
                }
            }
        }
        if replay.is_none()
            && sqlx::query("SELECT 1 FROM accounts WHERE id = $1")
                .bind($account)
                .fetch_optional(&mut *$tx)
                .await?
                .is_none()
        {
            return Err(StoreError::NoAccount);
        }
        replay
    }};
}
pub(crate) use claim_money_movement;

/// Opening a write transaction, per backend.
trait WriteTx {
    type Db: sqlx::Database;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>;
}

impl WriteTx for SqlitePool {
    type Db = sqlx::Sqlite;
    /// Takes SQLite's write lock up front. A deferred transaction that reads first and
    /// writes later cannot wait for a concurrent writer (the busy handler does not apply
    /// to the upgrade) and fails at once with SQLITE_BUSY; an immediate one waits up to
    /// the busy timeout like any single statement.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl WriteTx for PgPool {
    type Db = sqlx::Postgres;
    /// READ COMMITTED: row locks and unique indexes make PostgreSQL's writers wait for
    /// each other where they conflict.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
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
const USAGE_COLUMNS: [&str; 19] = [
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
    "lease_id",
];

/// The most rows one usage INSERT carries: 256 × 19 binds stays far under SQLite's limit
/// on bound parameters (32,766).
const MAX_ROWS_PER_INSERT: usize = 256;
const _: () = assert!(MAX_ROWS_PER_INSERT * USAGE_COLUMNS.len() <= SQLITE_MAX_PARAMS);
/// The most rows of one PostgreSQL usage INSERT: as many as SQLite's limit on bound
/// parameters would allow (1,724), far more than a group commit gathers in practice.
const MAX_ROWS_PER_STATEMENT: usize = SQLITE_MAX_PARAMS / USAGE_COLUMNS.len();

/// How a group commit of `n` usage entries is split into INSERTs: the largest power of
/// two that fits, up to [`MAX_ROWS_PER_INSERT`], again and again. Every statement then
/// has one of nine shapes (1 to 256 rows), each prepared once per connection and reused:
/// a statement per distinct batch length would grow every connection's statement cache
/// without bound (one cause of memory growth under load), and not caching them would
/// parse SQL on every commit.
fn insert_chunks(mut n: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if n == 0 {
            return None;
        }
        let size = if n >= MAX_ROWS_PER_INSERT {
            MAX_ROWS_PER_INSERT
        } else {
            1 << (usize::BITS - 1 - n.leading_zeros())
        };
        n -= size;
        Some(size)
    })
}

/// The schema's migrations, per backend, in version order.
fn migrator(postgres: bool) -> Migrator {
    let m = |v: i64, name: &'static str, sql: &'static str| {
        Migration::new(
            v,
            Cow::Borrowed(name),
            MigrationType::Simple,
            Cow::Borrowed(sql),
            false,
        )
    };
    let migrations = if postgres {
        vec![
            m(
                1,
                "init",
                include_str!("../../../../migrations/postgres/0001_init.sql"),
            ),
            m(
                2,
                "usage details",
                include_str!("../../../../migrations/postgres/0002_usage_details.sql"),
            ),
            m(
                3,
                "idempotency",
                include_str!("../../../../migrations/postgres/0003_idempotency.sql"),
            ),
            m(
                4,
                "residency",
                include_str!("../../../../migrations/postgres/0004_residency.sql"),
            ),
            m(
                5,
                "limits",
                include_str!("../../../../migrations/postgres/0005_limits.sql"),
            ),
            m(
                6,
                "leases",
                include_str!("../../../../migrations/postgres/0006_leases.sql"),
            ),
            m(
                7,
                "adjustments and payments",
                include_str!("../../../../migrations/postgres/0007_adjustments_payments.sql"),
            ),
            m(
                8,
                "console",
                include_str!("../../../../migrations/postgres/0008_console.sql"),
            ),
        ]
    } else {
        vec![
            m(
                1,
                "init",
                include_str!("../../../../migrations/0001_init.sql"),
            ),
            m(
                2,
                "usage details",
                include_str!("../../../../migrations/0002_usage_details.sql"),
            ),
            m(
                3,
                "idempotency",
                include_str!("../../../../migrations/0003_idempotency.sql"),
            ),
            m(
                4,
                "residency",
                include_str!("../../../../migrations/0004_residency.sql"),
            ),
            m(
                5,
                "limits",
                include_str!("../../../../migrations/0005_limits.sql"),
            ),
            m(
                6,
                "leases",
                include_str!("../../../../migrations/0006_leases.sql"),
            ),
            m(
                7,
                "adjustments and payments",
                include_str!("../../../../migrations/0007_adjustments_payments.sql"),
            ),
            m(
                8,
                "console",
                include_str!("../../../../migrations/0008_console.sql"),
            ),
        ]
    };
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

impl Store {
    /// Opens and migrates the database at `url`: `sqlite://PATH` (created if missing) or
    /// `postgres://…` (the database must exist; the schema is created in the connection's
    /// `search_path`, by default `public`). Fails if another process serves the SQLite
    /// file. On PostgreSQL this process is a replica with a random ID.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_replica(url, None).await
    }

    /// [`Store::open`], as the replica `replica` on PostgreSQL (ignored on SQLite).
    /// Fails if another process holds that replica ID.
    pub async fn open_replica(url: &str, replica: Option<&str>) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let id = replica.map_or_else(|| super::keys::random_id("rep_"), str::to_owned);
            return Self::open_postgres(url, id).await;
        }
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
                lock = Some(lock_file(path)?);
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
        migrator(false).run(&pool).await?;
        Ok(Self {
            pool: Pool::Sqlite(pool),
            _one_writer: std::sync::Arc::new(OneWriter::File(lock)),
            replica: None,
        })
    }

    async fn open_postgres(url: &str, replica: String) -> Result<Self, StoreError> {
        let opts = PgConnectOptions::from_str(url)?;
        // One session holds the replica ID's advisory lock for the process's lifetime.
        // Keyed by the database, the schema (separate schemas are separate ledgers) and
        // the replica ID.
        let mut session = sqlx::PgConnection::connect_with(&opts).await?;
        let row = sqlx::query(
            "SELECT pg_try_advisory_lock(hashtextextended('gammainfra.replica.' || current_database() || '.' || current_schema() || '.' || $1, 0)), current_database(), current_schema()",
        )
        .bind(&replica)
        .fetch_one(&mut session)
        .await?;
        // NULL when the search_path names no schema that exists.
        let Some(locked) = row.try_get::<Option<bool>, _>(0)? else {
            return Err(StoreError::Db(sqlx::Error::Protocol(
                "no schema of the connection's search_path exists: create it first, or fix `options[search_path]` in the database URL".into(),
            )));
        };
        if !locked {
            let (db, schema): (String, String) = (row.get(1), row.get(2));
            return Err(StoreError::LockedPostgres(format!(
                "`{replica}` (database `{db}`, schema `{schema}`)"
            )));
        }
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await?;
        migrator(true).run(&pool).await?;
        let one_writer = std::sync::Arc::new(OneWriter::Session(
            tokio::sync::Mutex::new(session),
            std::sync::atomic::AtomicBool::new(false),
        ));
        // Watch the lock's session for as long as the store lives.
        let weak = std::sync::Arc::downgrade(&one_writer);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LOCK_CHECK).await;
                let Some(w) = weak.upgrade() else { return };
                let OneWriter::Session(session, lost) = &*w else {
                    return;
                };
                let alive = {
                    let mut s = session.lock().await;
                    tokio::time::timeout(LOCK_CHECK, sqlx::query("SELECT 1").execute(&mut *s))
                        .await
                        .is_ok_and(|r| r.is_ok())
                };
                if !alive {
                    lost.store(true, std::sync::atomic::Ordering::Relaxed);
                    tracing::error!("the PostgreSQL session holding this replica's lock is gone; no request is accepted until the gateway is restarted");
                    return;
                }
            }
        });
        Ok(Self {
            pool: Pool::Postgres(pool),
            _one_writer: one_writer,
            replica: Some(replica.into()),
        })
    }

    /// Why this process may no longer be the database's one writer, if so.
    pub fn one_writer_lost(&self) -> Option<&'static str> {
        match &*self._one_writer {
            OneWriter::Session(_, lost) if lost.load(std::sync::atomic::Ordering::Relaxed) => {
                Some("the PostgreSQL session holding this replica's lock is gone (a database restart or a cut connection); restart the gateway")
            }
            _ => None,
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    pub async fn ping(&self) -> bool {
        on_pool!(self, |p, Db| sqlx::query("SELECT 1")
            .execute(p)
            .await
            .is_ok())
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
        on_pool!(self, |p, Db| {
            let mut tx = p.begin_write().await?;
            let r = sqlx::query(
                "INSERT INTO accounts (id, email, residency, created_at) VALUES ($1, $2, $3, $4)",
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
            insert_key!(tx, id, key, None::<&str>, None::<&str>, at);
            if trial > Nanos::ZERO {
                sqlx::query("INSERT INTO ledger_entries (account_id, kind, amount_nanos, note, created_at) VALUES ($1, 'trial', $2, 'signup trial credit', $3)")
                    .bind(id)
                    .bind(trial.nanos())
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn account_exists(&self, id: &str) -> Result<bool, StoreError> {
        on_pool!(self, |p, Db| Ok(sqlx::query(
            "SELECT 1 FROM accounts WHERE id = $1"
        )
        .bind(id)
        .fetch_optional(p)
        .await?
        .is_some()))
    }

    /// The account's stored details, if it exists.
    pub async fn account(&self, id: &str) -> Result<Option<AccountRow>, StoreError> {
        on_pool!(self, |p, Db| {
            Ok(sqlx::query(
            "SELECT email, residency, requests_per_minute, tokens_per_minute, disabled_at FROM accounts WHERE id = $1"
        )
        .bind(id)
        .fetch_optional(p)
        .await?
        .map(|r| AccountRow {
            email: r.get(0),
            residency: r.get(1),
            rates: Rates {
                rpm: count(r.get(2)),
                tpm: count(r.get(3)),
            },
            disabled_at: r.get(4),
        }))
        })
    }

    /// Sets (or, with `None`, clears) an account's residency policy. Committed (and
    /// fsynced) when it returns.
    pub async fn set_account_residency(
        &self,
        id: &str,
        residency: Option<&str>,
    ) -> Result<(), StoreError> {
        let affected = on_pool!(self, |p, Db| sqlx::query(
            "UPDATE accounts SET residency = $1 WHERE id = $2"
        )
        .bind(residency)
        .bind(id)
        .execute(p)
        .await?
        .rows_affected());
        if affected == 0 {
            return Err(StoreError::NoAccount);
        }
        Ok(())
    }

    /// Every account's residency policy, to load with the keys at start.
    pub async fn account_policies(&self) -> Result<Vec<(String, String)>, StoreError> {
        on_pool!(self, |p, Db| {
            let rows =
                sqlx::query("SELECT id, residency FROM accounts WHERE residency IS NOT NULL")
                    .fetch_all(p)
                    .await?;
            Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    pub async fn add_key(
        &self,
        account_id: &str,
        key: &NewKey,
        name: Option<&str>,
        residency: Option<&str>,
        at: &str,
    ) -> Result<(), StoreError> {
        self.add_key_with_limits(account_id, key, name, residency, &KeyLimits::default(), at)
            .await
    }

    /// [`Store::add_key`] with the key's limits, in one transaction.
    pub async fn add_key_with_limits(
        &self,
        account_id: &str,
        key: &NewKey,
        name: Option<&str>,
        residency: Option<&str>,
        l: &KeyLimits,
        at: &str,
    ) -> Result<(), StoreError> {
        let n = |v: Option<Nanos>| v.map(Nanos::nanos);
        let c = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        on_pool!(self, |p, Db| {
            let mut tx = p.begin_write().await?;
            if sqlx::query("SELECT 1 FROM accounts WHERE id = $1")
                .bind(account_id)
                .fetch_optional(&mut *tx)
                .await?
                .is_none()
            {
                return Err(StoreError::NoAccount);
            }
            insert_key!(tx, account_id, key, name, residency, at);
            if *l != KeyLimits::default() {
                sqlx::query("UPDATE api_keys SET limit_total_nanos = $1, limit_daily_nanos = $2, limit_monthly_nanos = $3, requests_per_minute = $4, tokens_per_minute = $5 WHERE id = $6")
                    .bind(n(l.spend.total))
                    .bind(n(l.spend.daily))
                    .bind(n(l.spend.monthly))
                    .bind(c(l.rates.rpm))
                    .bind(c(l.rates.tpm))
                    .bind(&key.id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Marks a key revoked; returns its hash so the caller can drop it from memory.
    pub async fn revoke_key(&self, key_id: &str, at: &str) -> Result<KeyHash, StoreError> {
        let hash: String = on_pool!(self, |p, Db| {
            sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 RETURNING key_hash")
            .bind(at)
            .bind(key_id)
            .fetch_optional(p)
            .await?
            .ok_or(StoreError::NoKey)?
            .get(0)
        });
        KeyHash::from_hex(&hash).ok_or(StoreError::NoKey)
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
        let replay = on_pool!(self, |p, Db| {
            let mut tx = p.begin_write().await?;
            let replay = claim_money_movement!(tx, "topup", idem, receipt, &receipt.account_id);
            if replay.is_none() {
                sqlx::query("INSERT INTO topups (id, account_id, credited_nanos, fee_nanos, charged_nanos, fee_basis_points, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .bind(&receipt.topup_id)
                    .bind(&receipt.account_id)
                    .bind(receipt.credited_nanos)
                    .bind(receipt.fee_nanos)
                    .bind(receipt.credited_nanos + receipt.fee_nanos)
                    .bind(basis_points)
                    .bind(&receipt.created_at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("INSERT INTO ledger_entries (account_id, kind, amount_nanos, note, created_at) VALUES ($1, 'topup', $2, $3, $4)")
                    .bind(&receipt.account_id)
                    .bind(receipt.credited_nanos)
                    .bind(&receipt.topup_id)
                    .bind(&receipt.created_at)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Ok::<_, StoreError>(replay)
        })?;
        match replay {
            // The failed transaction is rolled back (dropped) before the first result is read.
            Some(i) => self.replay("topup", i).await.map(Some),
            None => Ok(None),
        }
    }

    /// The first result recorded for an idempotency key, if the request is the same.
    async fn replay<T: serde::de::DeserializeOwned>(
        &self,
        scope: &str,
        i: &Idempotency,
    ) -> Result<T, StoreError> {
        let (fingerprint, result): (String, String) = on_pool!(self, |p, Db| {
            let row = sqlx::query(
                "SELECT fingerprint, result FROM idempotency_keys WHERE scope = $1 AND idem_key = $2",
            )
            .bind(scope)
            .bind(&i.key)
            .fetch_one(p)
            .await?;
            (row.get(0), row.get(1))
        });
        if fingerprint != i.fingerprint {
            return Err(StoreError::IdempotencyConflict);
        }
        serde_json::from_str(&result)
            .map_err(|e| StoreError::Db(sqlx::Error::Protocol(e.to_string())))
    }

    /// Appends usage charges in one transaction. A request already charged (same
    /// request ID) is skipped, so a retried batch cannot double-charge. On PostgreSQL
    /// the leases the entries were admitted under are locked first; an entry whose
    /// lease was closed meanwhile is charged at most the account's unleased credit
    /// ([`lease::cover`]), so that no account goes below zero.
    pub async fn append_usage(&self, entries: &[UsageEntry]) -> Result<(), StoreError> {
        // Multi-row INSERTs in one transaction. On SQLite, of 1, 2, 4, … or
        // MAX_ROWS_PER_INSERT rows each (see `insert_chunks`): few enough shapes that the
        // connection keeps every one prepared, so a commit parses no SQL and the statement
        // cache stays bounded. On PostgreSQL, one statement per commit (up to
        // MAX_ROWS_PER_STATEMENT rows), not kept prepared (each length would be a new
        // statement in the connection's cache): the credit trigger runs once per
        // statement and locks the statement's accounts in ID order, so a commit split
        // into several statements would lock them out of order and could deadlock with
        // another replica's commit. PostgreSQL parses it on its own side.
        let insert = format!("INSERT INTO ledger_entries ({}) ", USAGE_COLUMNS.join(", "));
        macro_rules! insert_usage {
            ($tx:ident, $Db:ty, $entries:expr, $chunks:expr, $persistent:expr) => {
                let mut rest: &[UsageEntry] = $entries;
                for n in $chunks(rest.len()) {
                    let (chunk, tail) = rest.split_at(n);
                    rest = tail;
                    let mut q = sqlx::QueryBuilder::<$Db>::new(&insert);
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
                            .push_bind(&e.at)
                            .push_bind(e.lease_id.as_deref());
                    });
                    // Only the one-charge-per-request index may skip a row: any other
                    // conflict (a primary key behind its sequence) is an error, never a
                    // silently lost charge.
                    q.push(" ON CONFLICT (request_id) WHERE kind = 'usage' DO NOTHING");
                    q.build().persistent($persistent).execute(&mut *$tx).await?;
                }
            };
        }
        match &self.pool {
            Pool::Sqlite(p) => {
                let mut tx = p.begin_write().await?;
                insert_usage!(tx, sqlx::Sqlite, entries, insert_chunks, true);
                tx.commit().await?;
            }
            Pool::Postgres(p) => {
                let mut tx = p.begin_write().await?;
                let clamped = lease::cover(&mut tx, entries).await?;
                let entries = clamped.as_deref().unwrap_or(entries);
                let whole = |n: usize| {
                    (0..n)
                        .step_by(MAX_ROWS_PER_STATEMENT)
                        .map(move |i| MAX_ROWS_PER_STATEMENT.min(n - i))
                };
                insert_usage!(tx, sqlx::Postgres, entries, whole, false);
                tx.commit().await?;
            }
        }
        Ok(())
    }

    pub async fn account_sums(&self) -> Result<Vec<AccountSums>, StoreError> {
        self.sums(None).await
    }

    /// One account's sums, if it exists.
    pub async fn account_sums_of(&self, account: &str) -> Result<Option<AccountSums>, StoreError> {
        Ok(self.sums(Some(account)).await?.pop())
    }

    async fn sums(&self, account: Option<&str>) -> Result<Vec<AccountSums>, StoreError> {
        on_pool!(self, |p, Db| {
            let rows = sqlx::query(
                "SELECT a.id,
                        CAST(COALESCE(SUM(l.amount_nanos), 0) AS BIGINT),
                        CAST(COALESCE(SUM(CASE WHEN l.kind = 'trial' THEN l.amount_nanos END), 0) AS BIGINT),
                        CAST(COALESCE(SUM(CASE WHEN l.kind = 'topup' THEN l.amount_nanos END), 0) AS BIGINT),
                        CAST(COALESCE(-SUM(CASE WHEN l.kind = 'usage' THEN l.amount_nanos END), 0) AS BIGINT),
                        CAST(COALESCE(SUM(CASE WHEN l.kind = 'adjustment' THEN l.amount_nanos END), 0) AS BIGINT)
                 FROM accounts a LEFT JOIN ledger_entries l ON l.account_id = a.id
                 WHERE $1 IS NULL OR a.id = $1
                 GROUP BY a.id",
            )
            .bind(account)
            .fetch_all(p)
            .await?;
            Ok(rows
                .into_iter()
                .map(|r| AccountSums {
                    id: r.get(0),
                    balance: Nanos::from_nanos(r.get(1)),
                    trial: Nanos::from_nanos(r.get(2)),
                    topups: Nanos::from_nanos(r.get(3)),
                    spent: Nanos::from_nanos(r.get(4)),
                    adjustments: Nanos::from_nanos(r.get(5)),
                })
                .collect())
        })
    }

    /// The sum of an account's ledger entries, straight from the database.
    pub async fn ledger_sum(&self, account_id: &str) -> Result<Nanos, StoreError> {
        let v: i64 = on_pool!(self, |p, Db| {
            sqlx::query(
            "SELECT CAST(COALESCE(SUM(amount_nanos), 0) AS BIGINT) FROM ledger_entries WHERE account_id = $1",
        )
        .bind(account_id)
        .fetch_one(p)
        .await?
        .get(0)
        });
        Ok(Nanos::from_nanos(v))
    }

    /// Every usage charge: request ID and amount charged.
    pub async fn usage_charges(&self) -> Result<Vec<(String, Nanos)>, StoreError> {
        on_pool!(self, |p, Db| {
            let rows = sqlx::query(
                "SELECT request_id, -amount_nanos FROM ledger_entries WHERE kind = 'usage'",
            )
            .fetch_all(p)
            .await?;
            Ok(rows
                .into_iter()
                .map(|r| (r.get(0), Nanos::from_nanos(r.get(1))))
                .collect())
        })
    }

    pub async fn ledger_count(&self, account_id: &str) -> Result<i64, StoreError> {
        Ok(on_pool!(self, |p, Db| sqlx::query(
            "SELECT COUNT(*) FROM ledger_entries WHERE account_id = $1"
        )
        .bind(account_id)
        .fetch_one(p)
        .await?
        .get(0)))
    }

    pub async fn active_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        self.active_keys_of(None).await
    }

    /// The active keys of one account, or of all with `None`.
    pub async fn active_keys_of(&self, account: Option<&str>) -> Result<Vec<KeyRow>, StoreError> {
        on_pool!(self, |p, Db| {
            let rows = sqlx::query("SELECT id, account_id, key_hash, default_region, limit_total_nanos, limit_daily_nanos, limit_monthly_nanos, requests_per_minute, tokens_per_minute FROM api_keys WHERE revoked_at IS NULL AND ($1 IS NULL OR account_id = $1)")
                .bind(account)
                .fetch_all(p)
                .await?;
            Ok(rows
                .into_iter()
                .filter_map(|r| {
                    Some(KeyRow {
                        id: r.get(0),
                        account_id: r.get(1),
                        hash: KeyHash::from_hex(&r.get::<String, _>(2))?,
                        residency: r.get(3),
                        limits: key_limits(r.get(4), r.get(5), r.get(6), r.get(7), r.get(8)),
                    })
                })
                .collect())
        })
    }

    /// One key's stored details, revoked or not.
    pub async fn key(&self, key_id: &str) -> Result<Option<KeyDetails>, StoreError> {
        Ok(self
            .keys_where("id = $1 LIMIT 1", key_id)
            .await?
            .into_iter()
            .next())
    }

    /// The account's keys, revoked or not, newest first.
    pub async fn keys_of(&self, account_id: &str) -> Result<Vec<KeyDetails>, StoreError> {
        self.keys_where("account_id = $1 ORDER BY created_at DESC, id", account_id)
            .await
    }

    async fn keys_where(&self, cond: &str, arg: &str) -> Result<Vec<KeyDetails>, StoreError> {
        let sql = format!("SELECT id, account_id, name, default_region, created_at, revoked_at, limit_total_nanos, limit_daily_nanos, limit_monthly_nanos, requests_per_minute, tokens_per_minute FROM api_keys WHERE {cond}");
        on_pool!(self, |p, Db| {
            let rows = sqlx::query(&sql).bind(arg).fetch_all(p).await?;
            Ok(rows
                .into_iter()
                .map(|r| KeyDetails {
                    id: r.get(0),
                    account_id: r.get(1),
                    name: r.get(2),
                    residency: r.get(3),
                    created_at: r.get(4),
                    revoked_at: r.get(5),
                    limits: key_limits(r.get(6), r.get(7), r.get(8), r.get(9), r.get(10)),
                })
                .collect())
        })
    }

    /// Replaces a key's limits. Committed (and fsynced) when it returns.
    pub async fn set_key_limits(&self, key_id: &str, l: &KeyLimits) -> Result<(), StoreError> {
        let n = |v: Option<crate::money::Nanos>| v.map(crate::money::Nanos::nanos);
        let c = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        let affected = on_pool!(self, |p, Db| {
            sqlx::query(
            "UPDATE api_keys SET limit_total_nanos = $1, limit_daily_nanos = $2, limit_monthly_nanos = $3, requests_per_minute = $4, tokens_per_minute = $5 WHERE id = $6"
        )
        .bind(n(l.spend.total))
        .bind(n(l.spend.daily))
        .bind(n(l.spend.monthly))
        .bind(c(l.rates.rpm))
        .bind(c(l.rates.tpm))
        .bind(key_id)
        .execute(p)
        .await?
        .rows_affected()
        });
        if affected == 0 {
            return Err(StoreError::NoKey);
        }
        Ok(())
    }

    /// Replaces an account's rate-limit overrides. Committed when it returns.
    pub async fn set_account_rates(&self, id: &str, r: &Rates) -> Result<(), StoreError> {
        let c = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        let affected = on_pool!(self, |p, Db| {
            sqlx::query(
            "UPDATE accounts SET requests_per_minute = $1, tokens_per_minute = $2 WHERE id = $3"
        )
        .bind(c(r.rpm))
        .bind(c(r.tpm))
        .bind(id)
        .execute(p)
        .await?
        .rows_affected()
        });
        if affected == 0 {
            return Err(StoreError::NoAccount);
        }
        Ok(())
    }

    /// Every account's rate-limit overrides, to load at start.
    pub async fn account_rates(&self) -> Result<Vec<(String, Rates)>, StoreError> {
        on_pool!(self, |p, Db| {
            let rows = sqlx::query("SELECT id, requests_per_minute, tokens_per_minute FROM accounts WHERE requests_per_minute IS NOT NULL OR tokens_per_minute IS NOT NULL")
                .fetch_all(p)
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    (
                        r.get(0),
                        Rates {
                            rpm: count(r.get(1)),
                            tpm: count(r.get(2)),
                        },
                    )
                })
                .collect())
        })
    }

    /// What each key has spent: in total, on the UTC day `day` (`YYYY-MM-DD`) and in the
    /// UTC month `month` (`YYYY-MM`), summed from its usage entries, whose `created_at`
    /// is RFC 3339 UTC and so starts with its day and month.
    pub async fn key_spend(&self, day: &str, month: &str) -> Result<Vec<LoadedSpend>, StoreError> {
        on_pool!(self, |p, Db| {
            let rows = sqlx::query(
                "SELECT key_id,
                        CAST(COALESCE(-SUM(amount_nanos), 0) AS BIGINT),
                        CAST(COALESCE(-SUM(CASE WHEN substr(created_at, 1, 10) = $1 THEN amount_nanos END), 0) AS BIGINT),
                        CAST(COALESCE(-SUM(CASE WHEN substr(created_at, 1, 7) = $2 THEN amount_nanos END), 0) AS BIGINT)
                 FROM ledger_entries WHERE kind = 'usage' AND key_id IS NOT NULL GROUP BY key_id",
            )
            .bind(day)
            .bind(month)
            .fetch_all(p)
            .await?;
            Ok(rows
                .into_iter()
                .map(|r| loaded_spend(r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect())
        })
    }

    /// Closes the pool and, on PostgreSQL, releases the one-writer lock now: dropping
    /// the session only closes its socket, and the server may notice that a moment
    /// later, refusing a process that opens the database right after this one.
    pub async fn close(&self) {
        on_pool!(self, |p, Db| p.close().await);
        if let OneWriter::Session(s, _) = &*self._one_writer {
            let mut s = s.lock().await;
            if let Err(e) = sqlx::query("SELECT pg_advisory_unlock_all()")
                .execute(&mut *s)
                .await
            {
                tracing::warn!(error = %e, "could not release the PostgreSQL one-writer lock; it goes with the session");
            }
        }
    }
}

/// A key's spend as summed by a query: key ID, total, day, month.
fn loaded_spend(key_id: String, total: i64, day: i64, month: i64) -> LoadedSpend {
    LoadedSpend {
        key_id,
        total: Nanos::from_nanos(total),
        day: Nanos::from_nanos(day),
        month: Nanos::from_nanos(month),
    }
}

/// A stored per-minute count (NULL: none).
fn count(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

fn key_limits(
    total: Option<i64>,
    daily: Option<i64>,
    monthly: Option<i64>,
    rpm: Option<i64>,
    tpm: Option<i64>,
) -> KeyLimits {
    KeyLimits {
        spend: SpendLimits {
            total: total.map(Nanos::from_nanos),
            daily: daily.map(Nanos::from_nanos),
            monthly: monthly.map(Nanos::from_nanos),
        },
        rates: Rates {
            rpm: count(rpm),
            tpm: count(tpm),
        },
    }
}

/// Inserts a key row inside the transaction `$tx` (either backend). The key's residency
/// policy goes in `default_region` (see migration 0004).
macro_rules! insert_key {
    ($tx:ident, $account_id:expr, $key:expr, $name:expr, $region:expr, $at:expr) => {
        sqlx::query("INSERT INTO api_keys (id, account_id, key_hash, key_prefix, name, default_region, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&$key.id)
            .bind($account_id)
            .bind($key.hash.to_hex())
            .bind(&$key.plain[..$key.plain.len().min(10)])
            .bind($name)
            .bind($region)
            .bind($at)
            .execute(&mut *$tx)
            .await?
    };
}
use insert_key;

#[cfg(test)]
mod tests {
    use super::*;

    /// Migration 7 rebuilds `ledger_entries` on SQLite (to allow the `adjustment` kind):
    /// a database written by version 6 keeps every row, sequence number and column, its
    /// append-only triggers and unique indexes, and its sequence goes on from the last.
    #[tokio::test]
    async fn the_sqlite_ledger_rebuild_keeps_every_entry_and_rule() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("v6.db").display());
        {
            let opts = SqliteConnectOptions::from_str(&url)
                .expect("url")
                .create_if_missing(true)
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .connect_with(opts)
                .await
                .expect("pool");
            let all = migrator(false);
            let six = Migrator {
                migrations: Cow::Owned(all.migrations[..6].to_vec()),
                ..Migrator::DEFAULT
            };
            six.run(&pool).await.expect("migrations 1-6");
            for q in [
                "INSERT INTO accounts (id, email, created_at) VALUES ('acct_a', 'a@example.com', '2026-01-01T00:00:00Z')",
                "INSERT INTO ledger_entries (account_id, kind, amount_nanos, note, created_at) VALUES ('acct_a', 'trial', 3000000000, 'signup trial credit', '2026-01-01T00:00:00Z')",
                "INSERT INTO ledger_entries (account_id, kind, amount_nanos, request_id, key_id, model, endpoint, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, note, created_at, provider, upstream_model, upstream_request_id, region, status, lease_id) VALUES ('acct_a', 'usage', -1234, 'req_1', 'key_1', 'm', 'openai:m', 10, 20, 3, 4, 'n', '2026-01-01T00:00:01Z', 'openai', 'm', 'up_1', 'us-east-1', 'ok', NULL)",
                "INSERT INTO ledger_entries (account_id, kind, amount_nanos, created_at) VALUES ('acct_a', 'topup', 1000000000, '2026-01-01T00:00:02Z')",
            ] {
                sqlx::query(q).execute(&pool).await.expect(q);
            }
            pool.close().await;
        }
        let store = Store::open(&url).await.expect("migrated to 7");
        let Pool::Sqlite(p) = &store.pool else {
            panic!("sqlite")
        };
        type EntryRow = (
            i64,
            String,
            i64,
            Option<String>,
            Option<i64>,
            Option<String>,
        );
        let rows: Vec<EntryRow> =
            sqlx::query_as("SELECT seq, kind, amount_nanos, request_id, cache_write_tokens, region FROM ledger_entries ORDER BY seq")
                .fetch_all(p)
                .await
                .expect("rows");
        assert_eq!(
            rows,
            vec![
                (1, "trial".into(), 3_000_000_000, None, None, None),
                (
                    2,
                    "usage".into(),
                    -1234,
                    Some("req_1".into()),
                    Some(4),
                    Some("us-east-1".into())
                ),
                (3, "topup".into(), 1_000_000_000, None, None, None),
            ]
        );
        let sums = store
            .account_sums_of("acct_a")
            .await
            .expect("sums")
            .expect("account");
        assert_eq!(sums.balance, Nanos::from_nanos(3_999_998_766));
        // Still append-only.
        for q in [
            "UPDATE ledger_entries SET amount_nanos = 0 WHERE seq = 1",
            "DELETE FROM ledger_entries WHERE seq = 1",
        ] {
            let e = sqlx::query(q).execute(p).await.expect_err(q).to_string();
            assert!(e.contains("append-only"), "{q}: {e}");
        }
        // Still one trial per account and one charge per request.
        for q in [
            "INSERT INTO ledger_entries (account_id, kind, amount_nanos, created_at) VALUES ('acct_a', 'trial', 1, 'x')",
            "INSERT INTO ledger_entries (account_id, kind, amount_nanos, request_id, created_at) VALUES ('acct_a', 'usage', -1, 'req_1', 'x')",
            "INSERT INTO ledger_entries (account_id, kind, amount_nanos, created_at) VALUES ('acct_a', 'bonus', 1, 'x')",
        ] {
            assert!(sqlx::query(q).execute(p).await.is_err(), "{q}");
        }
        // The new kind is accepted, and numbered after the last entry.
        let seq: i64 = sqlx::query_scalar("INSERT INTO ledger_entries (account_id, kind, amount_nanos, note, created_at) VALUES ('acct_a', 'adjustment', -5, 'x', 'x') RETURNING seq")
            .fetch_one(p)
            .await
            .expect("adjustment");
        assert_eq!(seq, 4);
        let sums = store
            .account_sums_of("acct_a")
            .await
            .expect("sums")
            .expect("account");
        assert_eq!(sums.adjustments, Nanos::from_nanos(-5));
    }

    #[test]
    fn usage_inserts_come_in_nine_shapes_that_cover_every_entry() {
        let mut shapes = std::collections::BTreeSet::new();
        for n in 0..=3_000usize {
            let sizes: Vec<usize> = insert_chunks(n).collect();
            assert_eq!(
                sizes.iter().sum::<usize>(),
                n,
                "every entry of {n} is inserted"
            );
            for &s in &sizes {
                assert!(
                    s.is_power_of_two() && s <= MAX_ROWS_PER_INSERT,
                    "{n}: {sizes:?}"
                );
                shapes.insert(s);
            }
            // Largest first, and at most one statement per bit below the cap.
            assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{n}: {sizes:?}");
            assert!(sizes.len() <= n / MAX_ROWS_PER_INSERT + 8, "{n}: {sizes:?}");
        }
        assert_eq!(shapes.len(), 9, "{shapes:?}");
    }

    #[tokio::test]
    async fn topups_are_durable_and_idempotent() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let store = Store::open(&url).await.expect("open");
        // Every commit is fsynced (FULL = 2), so an answered top-up survives power loss.
        let Pool::Sqlite(pool) = &store.pool else {
            panic!("a sqlite store")
        };
        let sync: i64 = sqlx::query("PRAGMA synchronous")
            .fetch_one(pool)
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
                migrations: Cow::Owned(migrator(false).migrations[..3].to_vec()),
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

/// The same behaviour on both backends: each check runs on SQLite, and on PostgreSQL
/// when `GAMMAINFRA_TEST_POSTGRES_URL` is set (`.ci/run` sets it; then the server must
/// answer, or the tests fail).
#[cfg(test)]
mod both_backends {
    use super::*;

    /// A fresh database URL: a file, or a new schema on the test PostgreSQL server.
    async fn fresh(postgres: bool, dir: &tempfile::TempDir) -> Option<String> {
        if !postgres {
            return Some(format!("sqlite://{}", dir.path().join("b.db").display()));
        }
        let Some(base) = std::env::var("GAMMAINFRA_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            eprintln!("GAMMAINFRA_TEST_POSTGRES_URL is not set: skipping the PostgreSQL run");
            return None;
        };
        let schema = format!("gi_test_{}", hex::encode(rand::random::<[u8; 8]>()));
        let mut c = sqlx::PgConnection::connect(&base)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at GAMMAINFRA_TEST_POSTGRES_URL: {e}"));
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut c)
            .await
            .expect("schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(format!("{base}{sep}options[search_path]={schema}"))
    }

    fn receipt(id: &str, account: &str, cents: i64) -> TopupReceipt {
        TopupReceipt {
            topup_id: id.into(),
            account_id: account.into(),
            credited_nanos: cents * 10_000_000,
            fee_nanos: 0,
            balance_nanos: 0,
            created_at: "2026-11-30T00:00:00Z".into(),
        }
    }

    fn usage(account: &str, n: usize) -> UsageEntry {
        UsageEntry {
            account_id: account.into(),
            key_id: "key_1".into(),
            request_id: format!("req_{n}"),
            model: "m/one".into(),
            endpoint: "openai:one".into(),
            provider: "openai".into(),
            upstream_model: "one".into(),
            upstream_request_id: Some(format!("chatcmpl-{n}")),
            region: "us".into(),
            status: UsageStatus::Completed,
            charged: Nanos::from_nanos(1_000 + n as i64),
            input_tokens: 10,
            output_tokens: 20,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            note: None,
            at: format!("2026-11-30T00:00:{:02}Z", n % 60),
            lease_id: None,
        }
    }

    async fn behaves(postgres: bool) {
        let dir = tempfile::tempdir().expect("dir");
        let Some(url) = fresh(postgres, &dir).await else {
            return;
        };
        let store = Store::open_replica(&url, Some("r1")).await.expect("open");
        assert_eq!(
            store.backend(),
            if postgres { "postgres" } else { "sqlite" }
        );
        // SQLite: one process per database. PostgreSQL: one process per replica ID, and
        // any number of replicas.
        let second = Store::open_replica(&url, Some("r1")).await;
        assert!(
            matches!(
                second,
                Err(StoreError::Locked(_) | StoreError::LockedPostgres(_))
            ),
            "a second store on the same database (SQLite) or replica ID (PostgreSQL) is refused"
        );
        if postgres {
            let other = Store::open_replica(&url, Some("r2")).await;
            assert!(
                other.is_ok(),
                "a second replica is welcome: {:?}",
                other.err()
            );
            let random = Store::open(&url).await.expect("a replica with a random ID");
            assert!(random.replica_id().is_some_and(|r| r.starts_with("rep_")));
        }
        // Accounts: the trial once, emails unique.
        let key = crate::ledger::keys::generate();
        store
            .create_account(
                "acct_1",
                "a@example.com",
                Some("eu"),
                &key,
                Nanos::from_cents(300),
                "2026-11-30T00:00:00Z",
            )
            .await
            .expect("account");
        let again = store
            .create_account(
                "acct_2",
                "a@example.com",
                None,
                &crate::ledger::keys::generate(),
                Nanos::from_cents(300),
                "2026-11-30T00:00:00Z",
            )
            .await;
        assert!(matches!(again, Err(StoreError::EmailTaken)));
        assert!(store.account_exists("acct_1").await.expect("exists"));
        // Residency policies: stored, changed, listed.
        assert_eq!(
            store
                .account("acct_1")
                .await
                .expect("a")
                .expect("some")
                .residency
                .as_deref(),
            Some("eu")
        );
        store
            .set_account_residency("acct_1", Some("eu-central-1"))
            .await
            .expect("set");
        assert_eq!(
            store.account_policies().await.expect("policies"),
            vec![("acct_1".to_owned(), "eu-central-1".to_owned())]
        );
        assert!(matches!(
            store.set_account_residency("acct_x", None).await,
            Err(StoreError::NoAccount)
        ));
        assert_eq!(
            store
                .account("acct_1")
                .await
                .expect("account")
                .map(|a| a.email)
                .as_deref(),
            Some("a@example.com")
        );
        // Keys: added, listed, revoked.
        let k2 = crate::ledger::keys::generate();
        store
            .add_key(
                "acct_1",
                &k2,
                Some("ci"),
                Some("eu"),
                "2026-11-30T00:00:00Z",
            )
            .await
            .expect("key");
        assert!(matches!(
            store
                .add_key("acct_x", &crate::ledger::keys::generate(), None, None, "t")
                .await,
            Err(StoreError::NoAccount)
        ));
        assert_eq!(store.active_keys().await.expect("keys").len(), 2);
        assert_eq!(
            store.revoke_key(&k2.id, "t").await.expect("revoke"),
            k2.hash
        );
        assert_eq!(store.active_keys().await.expect("keys").len(), 1);
        // Top-ups: idempotent, a reused key for another request is a conflict, racing
        // retries credit once.
        let idem = Idempotency {
            key: "k".into(),
            fingerprint: "f".into(),
        };
        assert_eq!(
            store
                .topup(&receipt("t1", "acct_1", 1000), 0, Some(&idem))
                .await
                .expect("t1"),
            None
        );
        assert_eq!(
            store
                .topup(&receipt("t2", "acct_1", 1000), 0, Some(&idem))
                .await
                .expect("replay"),
            Some(receipt("t1", "acct_1", 1000))
        );
        let other = Idempotency {
            key: "k".into(),
            fingerprint: "g".into(),
        };
        assert!(matches!(
            store
                .topup(&receipt("t3", "acct_1", 2000), 0, Some(&other))
                .await,
            Err(StoreError::IdempotencyConflict)
        ));
        let race = Idempotency {
            key: "race".into(),
            fingerprint: "r".into(),
        };
        let racers: Vec<_> = (0..6)
            .map(|i| {
                let (store, race) = (store.clone(), race.clone());
                tokio::spawn(async move {
                    store
                        .topup(&receipt(&format!("r{i}"), "acct_1", 500), 0, Some(&race))
                        .await
                })
            })
            .collect();
        let mut first = 0;
        for r in racers {
            if r.await.expect("task").expect("topup").is_none() {
                first += 1;
            }
        }
        assert_eq!(first, 1, "one of the racing retries credits");
        assert!(matches!(
            store.topup(&receipt("t4", "acct_x", 1000), 0, None).await,
            Err(StoreError::NoAccount)
        ));
        // Usage: appended once however often a batch is retried.
        let batch: Vec<_> = (0..50).map(|n| usage("acct_1", n)).collect();
        store.append_usage(&batch).await.expect("usage");
        store.append_usage(&batch).await.expect("usage again");
        let spent: i64 = batch.iter().map(|e| e.charged.nanos()).sum();
        // 3.00 trial + 10.00 + 5.00 top-ups − usage.
        let expected = 18_000_000_000 - spent;
        assert_eq!(
            store.ledger_sum("acct_1").await.expect("sum").nanos(),
            expected
        );
        assert_eq!(store.ledger_count("acct_1").await.expect("count"), 3 + 50);
        // Key limits are stored and listed with the active keys; a key's spend is summed
        // per UTC day and month from the created_at prefix (these entries are all
        // dated 2026-11-30).
        let limits = KeyLimits {
            spend: SpendLimits {
                total: Some(Nanos::from_cents(5_000)),
                daily: Some(Nanos::from_cents(500)),
                monthly: None,
            },
            rates: Rates {
                rpm: Some(60),
                tpm: None,
            },
        };
        store
            .set_key_limits(&key.id, &limits)
            .await
            .expect("limits");
        assert!(matches!(
            store.set_key_limits("key_x", &limits).await,
            Err(StoreError::NoKey)
        ));
        let k = store.active_keys().await.expect("keys");
        assert_eq!(
            k.iter().find(|k| k.id == key.id).expect("key").limits,
            limits
        );
        assert_eq!(
            store.key(&key.id).await.expect("key").expect("some").limits,
            limits
        );
        store
            .set_account_rates(
                "acct_1",
                &Rates {
                    rpm: None,
                    tpm: Some(1_000),
                },
            )
            .await
            .expect("rates");
        assert_eq!(
            store.account_rates().await.expect("rates"),
            vec![(
                "acct_1".to_owned(),
                Rates {
                    rpm: None,
                    tpm: Some(1_000)
                }
            )]
        );
        let spend = store
            .key_spend("2026-11-30", "2026-11")
            .await
            .expect("spend");
        assert_eq!(spend.len(), 1);
        assert_eq!(
            (
                spend[0].key_id.as_str(),
                spend[0].total.nanos(),
                spend[0].day.nanos(),
                spend[0].month.nanos()
            ),
            ("key_1", spent, spent, spent)
        );
        let other_day = store
            .key_spend("2026-12-01", "2026-12")
            .await
            .expect("spend");
        assert_eq!(
            (
                other_day[0].total.nanos(),
                other_day[0].day.nanos(),
                other_day[0].month.nanos()
            ),
            (spent, 0, 0)
        );
        let sums = store.account_sums().await.expect("sums");
        let s = sums.iter().find(|s| s.id == "acct_1").expect("acct_1");
        assert_eq!(
            (
                s.balance.nanos(),
                s.trial.nanos(),
                s.topups.nanos(),
                s.spent.nanos()
            ),
            (expected, 3_000_000_000, 15_000_000_000, spent)
        );
        // Usage records read back, paged and summed per day.
        let page = store
            .usage_records(
                "acct_1",
                &UsageFilter::default(),
                None,
                UsageOrder::Ascending,
                20,
            )
            .await
            .expect("records");
        assert_eq!(page.len(), 20);
        let rest = store
            .usage_records(
                "acct_1",
                &UsageFilter::default(),
                Some(page[19].seq),
                UsageOrder::Ascending,
                100,
            )
            .await
            .expect("records");
        assert_eq!(rest.len(), 30);
        assert_eq!(rest[0].request_id, "req_20");
        let daily = store
            .usage_daily("acct_1", &UsageFilter::default())
            .await
            .expect("daily");
        assert_eq!(daily.len(), 1);
        assert_eq!(daily[0].requests, 50);
        assert_eq!(daily[0].cost.nanos(), spent);
        // The ledger is append-only.
        let refused = on_pool!(store, |p, Db| sqlx::query(
            "UPDATE ledger_entries SET amount_nanos = 0"
        )
        .execute(p)
        .await
        .is_err());
        assert!(refused, "UPDATE of ledger_entries is refused");
        let refused = on_pool!(store, |p, Db| sqlx::query("DELETE FROM topups")
            .execute(p)
            .await
            .is_err());
        assert!(refused, "DELETE of topups is refused");
        let refused = on_pool!(store, |p, Db| sqlx::query("DELETE FROM idempotency_keys")
            .execute(p)
            .await
            .is_err());
        assert!(refused, "DELETE of idempotency_keys is refused");
        if postgres {
            for table in ["ledger_entries", "topups", "idempotency_keys"] {
                let refused = on_pool!(store, |p, Db| sqlx::query(&format!("TRUNCATE {table}"))
                    .execute(p)
                    .await
                    .is_err());
                assert!(refused, "TRUNCATE {table} is refused");
            }
        }
        // Closing releases the database for another process.
        store.close().await;
        drop(store);
        Store::open(&url)
            .await
            .expect("reopened after the first closed");
    }

    #[tokio::test]
    async fn store_on_sqlite() {
        behaves(false).await;
    }

    #[tokio::test]
    async fn store_on_postgres() {
        behaves(true).await;
    }

    /// The session holding the PostgreSQL one-writer lock is cut: the store says so
    /// within a check period, and the ledger fails closed on it.
    #[tokio::test]
    async fn a_lost_postgres_lock_session_is_noticed() {
        let dir = tempfile::tempdir().expect("dir");
        let Some(url) = fresh(true, &dir).await else {
            return;
        };
        let store = Store::open(&url).await.expect("open");
        assert_eq!(store.one_writer_lost(), None);
        let OneWriter::Session(session, _) = &*store._one_writer else {
            panic!("a PostgreSQL store holds a session");
        };
        let pid: i32 = {
            let mut s = session.lock().await;
            sqlx::query("SELECT pg_backend_pid()")
                .fetch_one(&mut *s)
                .await
                .expect("pid")
                .get(0)
        };
        on_pool!(store, |p, Db| sqlx::query(
            "SELECT pg_terminate_backend($1)"
        )
        .bind(pid)
        .execute(p)
        .await
        .expect("terminate")
        .rows_affected());
        let mut noticed = false;
        for _ in 0..40 {
            if store.one_writer_lost().is_some() {
                noticed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        assert!(noticed, "the lost lock session is noticed");
    }
}
