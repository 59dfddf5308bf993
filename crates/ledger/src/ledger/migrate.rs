//! `gammainfra db migrate-to`: moving a deployment's database from SQLite (one
//! machine) to PostgreSQL (several replicas), every row as it is.
//!
//! # How the copy goes
//! 1. Both databases are opened with [`Store::open`], which migrates each to this
//!    version's schema and takes its one-writer lock, held until the copy ends: a
//!    gateway serving the source or the target makes the copy refuse to start, and
//!    none can start on either while it runs.
//! 2. The source is read in one SQLite read transaction (one snapshot); the target is
//!    written in one PostgreSQL transaction, which first locks the copied tables
//!    against other writers and checks that they are empty: the copy never mixes two
//!    ledgers, and is all or nothing.
//! 3. Each table is copied with every column its source has, each of which must
//!    exist in the target (a column only the target has, from a later PostgreSQL
//!    migration, is left to its default). Rows are streamed from SQLite in primary-key
//!    order and written in multi-row INSERTs. Identity columns (`ledger_entries.seq`)
//!    keep their values (`OVERRIDING SYSTEM VALUE`) and their sequence is moved past
//!    the largest, so every entry keeps its number and the ledger its order.
//! 4. Before the commit, the target as the transaction sees it is checked against the
//!    source's snapshot: the row count of every table, and per account the count and
//!    the sum of its ledger entries. Any difference rolls everything back.
//!
//! Only the base tables of migrations 0001–0005, 0007 and 0008 are copied ([`TABLES`]); anything a
//! later PostgreSQL migration derives from them (maintained by triggers on insert) is
//! built by the inserts themselves.
//!
//! This module speaks SQL of its own, outside [`super::store`]: a one-off copy of
//! whole tables whose columns are read from the schemas, not the store's statements.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use futures_util::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{ConnectOptions, Connection, Postgres, QueryBuilder, Row};

use super::store::{Store, StoreError};
use crate::money::Nanos;

/// The tables copied, each after the tables its foreign keys point to.
pub const TABLES: [&str; 11] = [
    "accounts",
    "api_keys",
    "ledger_entries",
    "topups",
    "idempotency_keys",
    "stripe_checkouts",
    "stripe_payments",
    "stripe_events",
    "console_sessions",
    "email_tokens",
    "mail_outbox",
];

/// PostgreSQL's limit on the parameters of one statement (a 16-bit count).
const PG_MAX_PARAMS: usize = 65_535;

/// At most this many rows per INSERT: large enough that a million-entry ledger is a few
/// hundred statements, small enough that one statement stays a few megabytes.
const MAX_ROWS_PER_INSERT: usize = 2_000;

/// A progress line is logged every this many rows of a table.
const PROGRESS_EVERY: u64 = 100_000;

/// At most this many differences are listed when the verification fails.
const MAX_LISTED_DIFFERENCES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("the source must be an SQLite database (sqlite://PATH), not a `{0}:` URL")]
    SourceNotSqlite(String),
    #[error("the source is an in-memory SQLite database: there is nothing to copy")]
    SourceInMemory,
    #[error("there is no SQLite database at {0} (check --from, or GAMMAINFRA_DATABASE_URL / `database_url`)")]
    NoSource(String),
    #[error(
        "the target must be a PostgreSQL database (postgres://USER@HOST/DB), not a `{0}:` URL"
    )]
    TargetNotPostgres(String),
    #[error("the source database {0} is in use by a running gateway: stop it first, so that the copy holds every charge and nothing is written after it")]
    SourceInUse(String),
    #[error("the target {0} is in use by a running gateway: stop it; start gateways on the target only once the copy is done")]
    TargetInUse(String),
    #[error("cannot open the source {0}: {1}")]
    OpenSource(String, #[source] StoreError),
    #[error("cannot open the target: {0}")]
    OpenTarget(#[source] StoreError),
    #[error("reading the source: {0}")]
    Source(#[source] sqlx::Error),
    #[error("writing the target: {0}")]
    Target(#[source] sqlx::Error),
    #[error("the target {target} is not empty ({holds}): migrate-to copies into an empty database or schema only, so that two ledgers are never mixed")]
    NotEmpty { target: String, holds: String },
    #[error("table {table}: the source's column `{column}` does not exist in the target, whose schema is older than the source's")]
    MissingColumn { table: &'static str, column: String },
    #[error("table {table}: the target's column `{column}` has the type `{ty}`, which the copy does not handle")]
    UnsupportedType {
        table: &'static str,
        column: String,
        ty: String,
    },
    #[error("table {table}, column `{column}`: {source}")]
    Value {
        table: &'static str,
        column: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("the copy does not match the source, so nothing was committed; the target is as it was:\n  - {}", .0.join("\n  - "))]
    Mismatch(Vec<String>),
}

/// What was copied, as verified on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The source's file path.
    pub source: String,
    /// The target, without its credentials: database, schema, host.
    pub target: String,
    pub accounts: i64,
    pub keys: i64,
    pub revoked_keys: i64,
    pub entries: i64,
    pub topups: i64,
    pub idempotency_keys: i64,
    /// The sum of every ledger entry: what all the accounts' balances add up to.
    pub total_balance: Nanos,
}

/// What the verification compares, read the same way from either side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Tally {
    /// Rows per table.
    rows: BTreeMap<&'static str, i64>,
    /// Per account: the number of its ledger entries and their sum (nano-dollars).
    per_account: BTreeMap<String, (i64, i64)>,
    /// The sum of every ledger entry.
    total: i64,
    /// The largest `ledger_entries.seq`.
    max_seq: Option<i64>,
    revoked_keys: i64,
}

/// Reads a [`Tally`] through `$conn` (either backend): the statements are written in
/// the SQL both share, and the body is compiled once per connection type.
macro_rules! tally {
    ($conn:expr) => {
        async {
            let mut t = Tally::default();
            for table in TABLES {
                let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                    .fetch_one($conn)
                    .await?;
                t.rows.insert(table, n);
            }
            let rows = sqlx::query(
                "SELECT account_id, COUNT(*), CAST(SUM(amount_nanos) AS BIGINT) FROM ledger_entries GROUP BY account_id",
            )
            .fetch_all($conn)
            .await?;
            for r in rows {
                t.per_account
                    .insert(r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?));
            }
            (t.total, t.max_seq) = sqlx::query_as::<_, (i64, Option<i64>)>(
                "SELECT CAST(COALESCE(SUM(amount_nanos), 0) AS BIGINT), MAX(seq) FROM ledger_entries",
            )
            .fetch_one($conn)
            .await?;
            t.revoked_keys =
                sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NOT NULL")
                    .fetch_one($conn)
                    .await?;
            Ok::<_, sqlx::Error>(t)
        }
        .await
    };
}

/// Copies the SQLite database at `from` (`sqlite://PATH`) into the empty PostgreSQL
/// database or schema at `to`, verifies the copy and commits it, or changes nothing.
pub async fn migrate_to(from: &str, to: &str) -> Result<Summary, MigrateError> {
    let path = source_path(from)?;
    if !to.starts_with("postgres://") && !to.starts_with("postgresql://") {
        return Err(MigrateError::TargetNotPostgres(scheme(to)));
    }
    // `Store::open` creates a missing file: a mistyped path must not copy an empty ledger.
    if !std::path::Path::new(path).is_file() {
        return Err(MigrateError::NoSource(path.to_owned()));
    }
    let source_store = Store::open(from).await.map_err(|e| match e {
        StoreError::Locked(p) => MigrateError::SourceInUse(p),
        e => MigrateError::OpenSource(path.to_owned(), e),
    })?;
    let target_store = match Store::open(to).await {
        Ok(s) => s,
        Err(e) => {
            source_store.close().await;
            return Err(match e {
                StoreError::LockedPostgres(t) => MigrateError::TargetInUse(t),
                e => MigrateError::OpenTarget(e),
            });
        }
    };
    // The stores stay open (their locks held) until the copy has committed or failed.
    let result = copy(path, from, to).await;
    target_store.close().await;
    source_store.close().await;
    result
}

/// The file path of an SQLite URL, read as [`Store::open`] reads it.
fn source_path(url: &str) -> Result<&str, MigrateError> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| MigrateError::SourceNotSqlite(scheme(url)))?;
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        return Err(MigrateError::SourceInMemory);
    }
    Ok(path)
}

/// A URL's scheme, to name it in an error without its credentials.
fn scheme(url: &str) -> String {
    url.split(':').next().unwrap_or_default().to_owned()
}

async fn copy(path: &str, from: &str, to: &str) -> Result<Summary, MigrateError> {
    // Statement logging off: the one SELECT streaming a whole table would be reported
    // as a slow statement.
    let src_opts = SqliteConnectOptions::from_str(from)
        .map_err(MigrateError::Source)?
        .create_if_missing(false)
        .busy_timeout(std::time::Duration::from_secs(10))
        .disable_statement_logging();
    let mut src_conn = SqliteConnection::connect_with(&src_opts)
        .await
        .map_err(MigrateError::Source)?;
    let pg_opts = PgConnectOptions::from_str(to)
        .map_err(MigrateError::Target)?
        .disable_statement_logging();
    let mut pg_conn = PgConnection::connect_with(&pg_opts)
        .await
        .map_err(MigrateError::Target)?;
    // One snapshot of the source, read by every statement below.
    let mut src = src_conn.begin().await.map_err(MigrateError::Source)?;
    // Dropped without a commit on any error: rolled back, the target as it was.
    let mut pg = pg_conn.begin().await.map_err(MigrateError::Target)?;

    let (db, schema): (String, String) =
        sqlx::query_as("SELECT current_database()::text, current_schema()::text")
            .fetch_one(&mut *pg)
            .await
            .map_err(MigrateError::Target)?;
    let target = format!(
        "PostgreSQL database `{db}`, schema `{schema}` ({}:{})",
        pg_opts.get_host(),
        pg_opts.get_port()
    );
    // No other writer until the commit: the emptiness checked here is the emptiness
    // the copy is committed into. Readers are not blocked.
    sqlx::query(&format!(
        "LOCK TABLE {} IN EXCLUSIVE MODE",
        TABLES.join(", ")
    ))
    .execute(&mut *pg)
    .await
    .map_err(MigrateError::Target)?;
    let mut holds = Vec::new();
    for table in TABLES {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut *pg)
            .await
            .map_err(MigrateError::Target)?;
        if n > 0 {
            holds.push(format!("{n} rows in {table}"));
        }
    }
    if !holds.is_empty() {
        return Err(MigrateError::NotEmpty {
            target,
            holds: holds.join(", "),
        });
    }

    for table in TABLES {
        let plan = plan(&mut src, &mut pg, table).await?;
        copy_table(&mut src, &mut pg, &plan).await?;
    }

    let source_tally = tally!(&mut *src).map_err(MigrateError::Source)?;
    let target_tally = tally!(&mut *pg).map_err(MigrateError::Target)?;
    let differences = differences(&source_tally, &target_tally);
    if !differences.is_empty() {
        return Err(MigrateError::Mismatch(differences));
    }
    pg.commit().await.map_err(MigrateError::Target)?;
    let rows = |t: &str| source_tally.rows.get(t).copied().unwrap_or_default();
    Ok(Summary {
        source: path.to_owned(),
        target,
        accounts: rows("accounts"),
        keys: rows("api_keys"),
        revoked_keys: source_tally.revoked_keys,
        entries: rows("ledger_entries"),
        topups: rows("topups"),
        idempotency_keys: rows("idempotency_keys"),
        total_balance: Nanos::from_nanos(source_tally.total),
    })
}

/// How the target stores a column, and so how its values are read from SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int8,
    Int4,
    Int2,
    Bool,
}

impl Kind {
    /// From `information_schema.columns.data_type`.
    fn from_pg(data_type: &str) -> Option<Kind> {
        match data_type {
            "text" | "character varying" | "character" => Some(Kind::Text),
            "bigint" => Some(Kind::Int8),
            "integer" => Some(Kind::Int4),
            "smallint" => Some(Kind::Int2),
            "boolean" => Some(Kind::Bool),
            _ => None,
        }
    }
}

/// One value on its way, typed as the target stores it.
enum Value {
    Text(Option<String>),
    Int8(Option<i64>),
    Int4(Option<i32>),
    Int2(Option<i16>),
    Bool(Option<bool>),
}

/// How one table is copied.
struct Plan {
    table: &'static str,
    /// The source's columns, in its order, with the target's type of each.
    columns: Vec<(String, Kind)>,
    /// The target's identity columns among them: written as they are, their sequences
    /// moved past the largest value afterwards.
    identity: Vec<String>,
    /// Whether an identity column is `GENERATED ALWAYS` (needs `OVERRIDING SYSTEM VALUE`).
    overriding: bool,
}

async fn plan(
    src: &mut SqliteConnection,
    pg: &mut PgConnection,
    table: &'static str,
) -> Result<Plan, MigrateError> {
    let source: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info($1) ORDER BY cid")
            .bind(table)
            .fetch_all(&mut *src)
            .await
            .map_err(MigrateError::Source)?;
    let target: HashMap<String, (String, Option<String>)> = sqlx::query_as::<_, (String, String, Option<String>)>(
        "SELECT column_name::text, data_type::text, identity_generation::text FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1",
    )
    .bind(table)
    .fetch_all(&mut *pg)
    .await
    .map_err(MigrateError::Target)?
    .into_iter()
    .map(|(name, ty, identity)| (name, (ty, identity)))
    .collect();
    let mut plan = Plan {
        table,
        columns: Vec::with_capacity(source.len()),
        identity: Vec::new(),
        overriding: false,
    };
    for column in source {
        let Some((ty, identity)) = target.get(&column) else {
            return Err(MigrateError::MissingColumn { table, column });
        };
        let Some(kind) = Kind::from_pg(ty) else {
            return Err(MigrateError::UnsupportedType {
                table,
                column,
                ty: ty.clone(),
            });
        };
        if let Some(generation) = identity {
            plan.overriding |= generation == "ALWAYS";
            plan.identity.push(column.clone());
        }
        plan.columns.push((column, kind));
    }
    Ok(plan)
}

/// A column name as a quoted identifier, the same in both dialects.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn copy_table(
    src: &mut SqliteConnection,
    pg: &mut PgConnection,
    plan: &Plan,
) -> Result<(), MigrateError> {
    let table = plan.table;
    let list = plan
        .columns
        .iter()
        .map(|(c, _)| quoted(c))
        .collect::<Vec<_>>()
        .join(", ");
    let insert = format!(
        "INSERT INTO {table} ({list}){} ",
        if plan.overriding {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        }
    );
    let per_insert = (PG_MAX_PARAMS / plan.columns.len().max(1)).clamp(1, MAX_ROWS_PER_INSERT);
    let mut batch: Vec<Vec<Value>> = Vec::with_capacity(per_insert);
    let mut copied: u64 = 0;
    // Every table has a rowid (none is WITHOUT ROWID); for ledger_entries it is `seq`.
    let select = format!("SELECT {list} FROM {table} ORDER BY rowid");
    let mut rows = sqlx::query(&select).fetch(&mut *src);
    while let Some(row) = rows.try_next().await.map_err(MigrateError::Source)? {
        batch.push(values(&row, plan)?);
        if batch.len() == per_insert {
            insert_batch(pg, &insert, &mut batch).await?;
            copied += per_insert as u64;
            if copied % PROGRESS_EVERY < per_insert as u64 {
                tracing::info!(table, rows = copied, "copying");
            }
        }
    }
    copied += batch.len() as u64;
    if !batch.is_empty() {
        insert_batch(pg, &insert, &mut batch).await?;
    }
    for column in &plan.identity {
        let c = quoted(column);
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), m) FROM (SELECT MAX({c}) AS m FROM {table}) x WHERE m IS NOT NULL"
        ))
        .execute(&mut *pg)
        .await
        .map_err(MigrateError::Target)?;
    }
    tracing::info!(table, rows = copied, "copied");
    Ok(())
}

/// A source row's values, typed as the target stores them. SQLite keeps a value's
/// own type: one that does not fit the target's column (text in an integer column, a
/// number out of range) is an error, never converted.
fn values(row: &SqliteRow, plan: &Plan) -> Result<Vec<Value>, MigrateError> {
    let err = |column: &str, source: sqlx::Error| MigrateError::Value {
        table: plan.table,
        column: column.to_owned(),
        source,
    };
    let out_of_range = |column: &str, v: i64| {
        err(
            column,
            sqlx::Error::Decode(format!("{v} does not fit the target's column").into()),
        )
    };
    plan.columns
        .iter()
        .enumerate()
        .map(|(i, (column, kind))| {
            Ok(match kind {
                Kind::Text => Value::Text(row.try_get(i).map_err(|e| err(column, e))?),
                Kind::Int8 => Value::Int8(row.try_get(i).map_err(|e| err(column, e))?),
                Kind::Int4 => {
                    let v: Option<i64> = row.try_get(i).map_err(|e| err(column, e))?;
                    Value::Int4(
                        v.map(|v| i32::try_from(v).map_err(|_| out_of_range(column, v)))
                            .transpose()?,
                    )
                }
                Kind::Int2 => {
                    let v: Option<i64> = row.try_get(i).map_err(|e| err(column, e))?;
                    Value::Int2(
                        v.map(|v| i16::try_from(v).map_err(|_| out_of_range(column, v)))
                            .transpose()?,
                    )
                }
                Kind::Bool => Value::Bool(row.try_get(i).map_err(|e| err(column, e))?),
            })
        })
        .collect()
}

/// Writes `batch` in one multi-row INSERT and empties it.
async fn insert_batch(
    pg: &mut PgConnection,
    insert: &str,
    batch: &mut Vec<Vec<Value>>,
) -> Result<(), MigrateError> {
    let mut q = QueryBuilder::<Postgres>::new(insert);
    q.push_values(batch.drain(..), |mut b, row| {
        for v in row {
            match v {
                Value::Text(v) => b.push_bind(v),
                Value::Int8(v) => b.push_bind(v),
                Value::Int4(v) => b.push_bind(v),
                Value::Int2(v) => b.push_bind(v),
                Value::Bool(v) => b.push_bind(v),
            };
        }
    });
    q.build()
        .execute(&mut *pg)
        .await
        .map_err(MigrateError::Target)?;
    Ok(())
}

/// Every way the target's tally differs from the source's, in words.
fn differences(source: &Tally, target: &Tally) -> Vec<String> {
    let mut out = Vec::new();
    for table in TABLES {
        let (s, t) = (source.rows.get(table), target.rows.get(table));
        if s != t {
            out.push(format!(
                "{table}: {} rows in the source, {} in the target",
                s.copied().unwrap_or_default(),
                t.copied().unwrap_or_default()
            ));
        }
    }
    let accounts = source.per_account.keys().chain(
        target
            .per_account
            .keys()
            .filter(|a| !source.per_account.contains_key(*a)),
    );
    for account in accounts {
        let (s, t) = (
            source.per_account.get(account),
            target.per_account.get(account),
        );
        if s != t {
            let show = |v: Option<&(i64, i64)>| match v {
                Some((n, sum)) => format!("{n} entries summing to {} USD", Nanos::from_nanos(*sum)),
                None => "no entries".to_owned(),
            };
            out.push(format!(
                "ledger of {account}: {} in the source, {} in the target",
                show(s),
                show(t)
            ));
        }
    }
    if source.total != target.total {
        out.push(format!(
            "all ledger entries: {} USD in the source, {} USD in the target",
            Nanos::from_nanos(source.total),
            Nanos::from_nanos(target.total)
        ));
    }
    if source.max_seq != target.max_seq {
        out.push(format!(
            "last ledger entry: seq {:?} in the source, {:?} in the target",
            source.max_seq, target.max_seq
        ));
    }
    if source.revoked_keys != target.revoked_keys {
        out.push(format!(
            "revoked keys: {} in the source, {} in the target",
            source.revoked_keys, target.revoked_keys
        ));
    }
    if out.len() > MAX_LISTED_DIFFERENCES {
        let more = out.len() - MAX_LISTED_DIFFERENCES;
        out.truncate(MAX_LISTED_DIFFERENCES);
        out.push(format!("and {more} more"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally() -> Tally {
        Tally {
            rows: TABLES.iter().map(|t| (*t, 2)).collect(),
            per_account: BTreeMap::from([
                ("acct_a".to_owned(), (1, 3_000_000_000)),
                ("acct_b".to_owned(), (1, -5)),
            ]),
            total: 2_999_999_995,
            max_seq: Some(2),
            revoked_keys: 1,
        }
    }

    #[test]
    fn equal_tallies_have_no_differences() {
        assert!(differences(&tally(), &tally()).is_empty());
    }

    #[test]
    fn every_difference_is_named() {
        let source = tally();
        let mut target = tally();
        target.rows.insert("topups", 1);
        target
            .per_account
            .insert("acct_a".into(), (1, 2_999_999_999));
        target.per_account.remove("acct_b");
        target.per_account.insert("acct_c".into(), (4, 0));
        target.total = 0;
        target.max_seq = None;
        let d = differences(&source, &target);
        assert_eq!(
            d,
            vec![
                "topups: 2 rows in the source, 1 in the target",
                "ledger of acct_a: 1 entries summing to 3.00 USD in the source, 1 entries summing to 2.999999999 USD in the target",
                "ledger of acct_b: 1 entries summing to -0.000000005 USD in the source, no entries in the target",
                "ledger of acct_c: no entries in the source, 4 entries summing to 0.00 USD in the target",
                "all ledger entries: 2.999999995 USD in the source, 0.00 USD in the target",
                "last ledger entry: seq Some(2) in the source, None in the target",
            ]
        );
    }

    #[test]
    fn a_long_list_of_differences_is_cut() {
        let source = tally();
        let mut target = tally();
        target.per_account = (0..100).map(|i| (format!("acct_{i:03}"), (1, 1))).collect();
        let d = differences(&source, &target);
        assert_eq!(d.len(), MAX_LISTED_DIFFERENCES + 1);
        assert!(d[MAX_LISTED_DIFFERENCES].starts_with("and "), "{d:?}");
    }

    #[test]
    fn the_source_must_be_an_sqlite_file() {
        assert_eq!(
            source_path("sqlite://data/gammainfra.db?mode=rwc").ok(),
            Some("data/gammainfra.db")
        );
        assert_eq!(source_path("sqlite:x.db").ok(), Some("x.db"));
        assert!(matches!(
            source_path("sqlite::memory:"),
            Err(MigrateError::SourceInMemory)
        ));
        match source_path("postgres://u:secret@h/db") {
            Err(e @ MigrateError::SourceNotSqlite(_)) => {
                assert!(!e.to_string().contains("secret"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_missing_source_file_is_not_created() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("typo.db");
        let url = format!("sqlite://{}", path.display());
        let r = migrate_to(&url, "postgres://nobody@127.0.0.1:1/none").await;
        assert!(matches!(r, Err(MigrateError::NoSource(_))), "{r:?}");
        assert!(!path.exists());
        let r = migrate_to(&url, "mysql://h/db").await;
        assert!(
            matches!(r, Err(MigrateError::TargetNotPostgres(_))),
            "{r:?}"
        );
    }
}
