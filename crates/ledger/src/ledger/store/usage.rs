//! Reading usage entries back, for customers auditing their charges (`GET /v1/usage`)
//! and for the admin view of an account's usage.
//!
//! Records are the `usage` entries of `ledger_entries` themselves, not a copy: a
//! record's cost is exactly what that entry took from the balance, so the records of an
//! account always add up to its spending.

use sqlx::{QueryBuilder, Row};

use super::{on_pool, Pool, Store, StoreError};
use crate::money::Nanos;

/// Which usage entries to read. Times are compared with `created_at`, which is stored as
/// RFC 3339 UTC to the second (`2026-11-25T14:15:10Z`); bounds must be in that exact form
/// so that the string comparison is a time comparison.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    /// Inclusive lower bound.
    pub start: Option<String>,
    /// Exclusive upper bound.
    pub end: Option<String>,
    /// The gateway model ID.
    pub model: Option<String>,
}

/// Listing order, by ledger sequence (which is the order charges were recorded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UsageOrder {
    #[default]
    Ascending,
    Descending,
}

/// One billed request, as recorded in the ledger.
#[derive(Debug, Clone)]
pub struct UsageRecord {
    pub seq: i64,
    pub request_id: String,
    pub key_id: Option<String>,
    pub model: Option<String>,
    /// The next five are NULL on entries written before migration 0002.
    pub provider: Option<String>,
    pub upstream_model: Option<String>,
    pub upstream_request_id: Option<String>,
    pub region: Option<String>,
    pub status: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// What the entry took from the balance (a positive amount).
    pub cost: Nanos,
    pub note: Option<String>,
    pub created_at: String,
}

/// Usage of one model on one UTC day.
#[derive(Debug, Clone)]
pub struct DailyUsage {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub model: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost: Nanos,
}

/// A count (tokens, requests): written from `u64`s that fit an `i64`; a NULL or
/// negative value (never written by the gateway) reads as 0.
fn count<R: Row>(r: &R, i: usize) -> u64
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    r.get::<Option<i64>, _>(i)
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or_default()
}

/// `WHERE account_id = ? AND kind = 'usage'` and the filter's conditions. `kind =
/// 'usage'` is spelled literally so that SQLite can use the partial index on it.
fn push_filter<'a, DB: sqlx::Database>(
    q: &mut QueryBuilder<'a, DB>,
    account_id: &str,
    f: &UsageFilter,
) where
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    q.push(" WHERE kind = 'usage' AND account_id = ");
    q.push_bind(account_id.to_owned());
    if let Some(start) = &f.start {
        q.push(" AND created_at >= ");
        q.push_bind(start.clone());
    }
    if let Some(end) = &f.end {
        q.push(" AND created_at < ");
        q.push_bind(end.clone());
    }
    if let Some(model) = &f.model {
        q.push(" AND model = ");
        q.push_bind(model.clone());
    }
}

impl Store {
    /// The ledger position of the account's usage record for `request_id`: the paging
    /// cursor. `None` if the account has no such record (another account's request ID
    /// included, so a cursor reveals nothing about other accounts).
    pub async fn usage_seq(
        &self,
        account_id: &str,
        request_id: &str,
    ) -> Result<Option<i64>, StoreError> {
        on_pool!(self, |p, Db| {
            Ok(sqlx::query(
            "SELECT seq FROM ledger_entries WHERE kind = 'usage' AND request_id = $1 AND account_id = $2",
        )
        .bind(request_id)
        .bind(account_id)
        .fetch_optional(p)
        .await?
        .map(|r| r.get(0)))
        })
    }

    /// Up to `limit` of the account's usage records matching `filter`, in ledger order,
    /// starting after the record at `after` (a [`UsageRecord::seq`]).
    pub async fn usage_records(
        &self,
        account_id: &str,
        filter: &UsageFilter,
        after: Option<i64>,
        order: UsageOrder,
        limit: u32,
    ) -> Result<Vec<UsageRecord>, StoreError> {
        on_pool!(self, |p, Db| {
            let mut q = QueryBuilder::<Db>::new(
                "SELECT seq, request_id, key_id, model, provider, upstream_model, upstream_request_id,
                        region, status, input_tokens, output_tokens, cache_read_tokens,
                        cache_write_tokens, amount_nanos, note, created_at
                 FROM ledger_entries",
            );
            push_filter(&mut q, account_id, filter);
            if let Some(after) = after {
                q.push(match order {
                    UsageOrder::Ascending => " AND seq > ",
                    UsageOrder::Descending => " AND seq < ",
                });
                q.push_bind(after);
            }
            q.push(match order {
                UsageOrder::Ascending => " ORDER BY seq ASC LIMIT ",
                UsageOrder::Descending => " ORDER BY seq DESC LIMIT ",
            });
            q.push_bind(i64::from(limit));
            let rows = q.build().fetch_all(p).await?;
            Ok(rows
                .iter()
                .map(|r| UsageRecord {
                    seq: r.get(0),
                    request_id: r.get::<Option<String>, _>(1).unwrap_or_default(),
                    key_id: r.get(2),
                    model: r.get(3),
                    provider: r.get(4),
                    upstream_model: r.get(5),
                    upstream_request_id: r.get(6),
                    region: r.get(7),
                    status: r.get(8),
                    input_tokens: count(r, 9),
                    output_tokens: count(r, 10),
                    cache_read_tokens: count(r, 11),
                    cache_write_tokens: count(r, 12),
                    // Usage entries are debits: the cost is the negated amount.
                    cost: Nanos::from_nanos(-r.get::<i64, _>(13)),
                    note: r.get(14),
                    created_at: r.get(15),
                })
                .collect())
        })
    }

    /// The account's usage matching `filter`, summed per UTC day and model, ordered by
    /// day then model.
    pub async fn usage_daily(
        &self,
        account_id: &str,
        filter: &UsageFilter,
    ) -> Result<Vec<DailyUsage>, StoreError> {
        // `created_at` is RFC 3339 UTC: its first ten characters are the UTC day.
        on_pool!(self, |p, Db| {
            let mut q = QueryBuilder::<Db>::new(
                "SELECT substr(created_at, 1, 10) AS day, COALESCE(model, '') AS m, COUNT(*),
                        CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT),
                        CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT),
                        CAST(COALESCE(SUM(cache_read_tokens), 0) AS BIGINT),
                        CAST(COALESCE(SUM(cache_write_tokens), 0) AS BIGINT),
                        CAST(-SUM(amount_nanos) AS BIGINT)
                 FROM ledger_entries",
            );
            push_filter(&mut q, account_id, filter);
            q.push(" GROUP BY day, m ORDER BY day, m");
            let rows = q.build().fetch_all(p).await?;
            Ok(rows
                .iter()
                .map(|r| DailyUsage {
                    day: r.get(0),
                    model: r.get(1),
                    requests: count(r, 2),
                    input_tokens: count(r, 3),
                    output_tokens: count(r, 4),
                    cache_read_tokens: count(r, 5),
                    cache_write_tokens: count(r, 6),
                    cost: Nanos::from_nanos(r.get(7)),
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::str::FromStr;

    use super::*;
    use crate::ledger::{keys, UsageEntry, UsageStatus};

    fn entry(account: &str, key: &str, n: usize, model: &str, at: &str) -> UsageEntry {
        UsageEntry {
            account_id: account.to_owned(),
            key_id: key.to_owned(),
            request_id: format!("req_{account}_{n}"),
            model: model.to_owned(),
            endpoint: format!("bedrock:{model}-upstream"),
            provider: "bedrock".to_owned(),
            upstream_model: format!("{model}-upstream"),
            upstream_request_id: Some(format!("chatcmpl-{n}")),
            region: "us".to_owned(),
            status: UsageStatus::Completed,
            charged: Nanos::from_nanos(1_000 + n as i64),
            input_tokens: 10,
            output_tokens: n as u64,
            cache_read_tokens: 1,
            cache_write_tokens: 2,
            note: None,
            at: at.to_owned(),
            lease_id: None,
        }
    }

    /// A database written by a gateway from before migration 0002 (one usage entry),
    /// then opened by this one.
    async fn upgraded_store(dir: &tempfile::TempDir) -> (Store, String, String) {
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
            .expect("url")
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.expect("pool");
        let mut v1 = super::super::migrator(false);
        v1.migrations = Cow::Owned(v1.migrations[..1].to_vec());
        v1.run(&pool).await.expect("migration 1");
        let key = keys::generate();
        sqlx::query("INSERT INTO accounts (id, email, created_at) VALUES ('acct_a', 'a@example.com', '2026-11-24T00:00:00Z')")
            .execute(&pool)
            .await
            .expect("account");
        sqlx::query("INSERT INTO ledger_entries (account_id, kind, amount_nanos, request_id, key_id, model, endpoint, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, created_at) VALUES ('acct_a', 'usage', -500, 'req_legacy', ?, 'm/one', 'bedrock:one', 5, 6, 0, 0, '2026-11-24T10:00:00Z')")
            .bind(&key.id)
            .execute(&pool)
            .await
            .expect("legacy usage");
        pool.close().await;
        let store = Store::open(&url).await.expect("upgrade");
        (store, "acct_a".to_owned(), key.id)
    }

    #[tokio::test]
    async fn ledger_usage_records_survive_the_upgrade_and_list_with_their_details() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, acct, key) = upgraded_store(&dir).await;
        let mut entries = vec![
            entry(&acct, &key, 1, "m/one", "2026-11-24T23:59:59Z"),
            entry(&acct, &key, 2, "m/two", "2026-11-25T00:00:00Z"),
            entry(&acct, &key, 3, "m/one", "2026-11-25T08:00:00Z"),
        ];
        entries[2].status = UsageStatus::UpstreamError;
        entries[2].upstream_request_id = None;
        entries[2].note = Some("stream ended early (x, \"y\"); usage partly estimated".into());
        store.append_usage(&entries).await.expect("append");
        // Retried: nothing is written twice.
        store.append_usage(&entries).await.expect("append again");

        let all = store
            .usage_records(
                &acct,
                &UsageFilter::default(),
                None,
                UsageOrder::Ascending,
                100,
            )
            .await
            .expect("list");
        let ids: Vec<&str> = all.iter().map(|r| r.request_id.as_str()).collect();
        assert_eq!(
            ids,
            ["req_legacy", "req_acct_a_1", "req_acct_a_2", "req_acct_a_3"]
        );
        let legacy = &all[0];
        assert_eq!(legacy.cost, Nanos::from_nanos(500));
        assert_eq!((legacy.input_tokens, legacy.output_tokens), (5, 6));
        assert_eq!(legacy.model.as_deref(), Some("m/one"));
        assert!(legacy.provider.is_none() && legacy.region.is_none() && legacy.status.is_none());
        let r = &all[1];
        assert_eq!(r.provider.as_deref(), Some("bedrock"));
        assert_eq!(r.upstream_model.as_deref(), Some("m/one-upstream"));
        assert_eq!(r.upstream_request_id.as_deref(), Some("chatcmpl-1"));
        assert_eq!(r.region.as_deref(), Some("us"));
        assert_eq!(r.status.as_deref(), Some("completed"));
        assert_eq!(r.key_id.as_deref(), Some(key.as_str()));
        assert_eq!(r.cost, Nanos::from_nanos(1_001));
        assert_eq!(
            (
                r.cache_read_tokens,
                r.cache_write_tokens,
                r.created_at.as_str()
            ),
            (1, 2, "2026-11-24T23:59:59Z")
        );
        assert_eq!(all[3].status.as_deref(), Some("upstream_error"));
        assert_eq!(all[3].upstream_request_id, None);

        // Paging by seq, both ways.
        let seq = store.usage_seq(&acct, "req_acct_a_1").await.expect("seq");
        let next = store
            .usage_records(
                &acct,
                &UsageFilter::default(),
                seq,
                UsageOrder::Ascending,
                1,
            )
            .await
            .expect("page");
        assert_eq!(next[0].request_id, "req_acct_a_2");
        let back = store
            .usage_records(
                &acct,
                &UsageFilter::default(),
                seq,
                UsageOrder::Descending,
                10,
            )
            .await
            .expect("page");
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].request_id, "req_legacy");
        assert_eq!(
            store
                .usage_seq("acct_other", "req_acct_a_1")
                .await
                .expect("seq"),
            None
        );

        // Time bounds: start inclusive, end exclusive; and the model.
        let f = UsageFilter {
            start: Some("2026-11-25T00:00:00Z".into()),
            end: Some("2026-11-25T08:00:00Z".into()),
            model: None,
        };
        let r = store
            .usage_records(&acct, &f, None, UsageOrder::Ascending, 100)
            .await
            .expect("list");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].request_id, "req_acct_a_2");
        let f = UsageFilter {
            model: Some("m/one".into()),
            ..UsageFilter::default()
        };
        let r = store
            .usage_records(&acct, &f, None, UsageOrder::Ascending, 100)
            .await
            .expect("list");
        assert_eq!(r.len(), 3);

        // Per UTC day and model; the sums are the records' sums.
        let days = store
            .usage_daily(&acct, &UsageFilter::default())
            .await
            .expect("daily");
        let rows: Vec<(&str, &str, u64, u64, i64)> = days
            .iter()
            .map(|d| {
                (
                    d.day.as_str(),
                    d.model.as_str(),
                    d.requests,
                    d.output_tokens,
                    d.cost.nanos(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("2026-11-24", "m/one", 2, 6 + 1, 500 + 1_001),
                ("2026-11-25", "m/one", 1, 3, 1_003),
                ("2026-11-25", "m/two", 1, 2, 1_002),
            ]
        );
        let sum: Nanos = all.iter().map(|r| r.cost).sum();
        assert_eq!(
            sum.nanos(),
            -store.ledger_sum(&acct).await.expect("sum").nanos()
        );
    }

    #[tokio::test]
    async fn ledger_batches_larger_than_one_insert_statement_are_written_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, acct, key) = upgraded_store(&dir).await;
        // More rows than fit one statement's parameters: several INSERTs.
        let n = 2 * super::super::SQLITE_MAX_PARAMS / super::super::USAGE_COLUMNS.len() + 7;
        let entries: Vec<UsageEntry> = (0..n)
            .map(|i| entry(&acct, &key, i, "m/one", "2026-11-25T00:00:00Z"))
            .collect();
        store.append_usage(&entries).await.expect("append");
        assert_eq!(
            store.ledger_count(&acct).await.expect("count"),
            n as i64 + 1
        );
        let page = store
            .usage_records(
                &acct,
                &UsageFilter::default(),
                None,
                UsageOrder::Descending,
                1,
            )
            .await
            .expect("list");
        assert_eq!(page[0].request_id, format!("req_acct_a_{}", n - 1));
    }
}
