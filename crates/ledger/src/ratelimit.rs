//! Rate limits: requests per minute (RPM) and tokens per minute (TPM), per API key and
//! per account.
//!
//! # The rule
//! Fixed one-minute windows aligned to the UTC minute. A request is admitted only if,
//! for every limit that applies to it (its key's RPM and TPM, its account's RPM and
//! TPM), the window's count plus the request stays within the limit; then all its
//! counters are incremented together, or none is (a refused request counts nowhere).
//! A request counts 1 toward RPM and, toward TPM, its input bound plus its output cap
//! (see `server::chat`): what it may use at most, like OpenAI, which counts
//! `max_tokens` at admission. Fixed windows are the cheapest exact counter (one integer
//! per window, one round trip to Redis); their known cost is that a client can pass up
//! to twice a limit across a window boundary.
//!
//! # Where the counters live
//! In this process, or, when `GAMMAINFRA_REDIS_URL` is set, in Redis, so that replicas
//! share them: one Lua script checks and increments every counter of a request
//! atomically. Every Redis call has a short timeout. When Redis fails (down, slow,
//! refusing), the limiter falls back to its in-process counters — the same limits,
//! counted per replica, never no limit — logs it, shows it in `/readyz`, and tries
//! Redis again after [`REDIS_RETRY`], without holding requests up meanwhile.
//!
//! A key and account without any limit (the default) never reach the counters: no
//! lock, no Redis call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::secret::Secret;

/// Rate limits: the defaults for every key and every account (overridable per key and
/// account through the admin API), and the Redis that shares counters across replicas.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    pub key: Rates,
    pub account: Rates,
    /// `GAMMAINFRA_REDIS_URL`: counters in Redis, shared by every replica using it.
    pub redis_url: Option<Secret>,
    /// The most a request waits for Redis before counting locally.
    pub redis_timeout: Duration,
    /// Prefix of the counters' Redis keys (separates deployments sharing one Redis).
    pub redis_prefix: String,
    /// Requests of one key admitted and not yet settled, at most (per process).
    pub key_concurrent: u32,
    /// Requests of one account admitted and not yet settled, at most (per process).
    pub account_concurrent: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            key: Rates::default(),
            account: Rates::default(),
            redis_url: None,
            redis_timeout: Duration::from_millis(100),
            redis_prefix: "gammainfra:rl".to_owned(),
            key_concurrent: 1_024,
            account_concurrent: 2_048,
        }
    }
}

/// Rate limits of one key or account; `None` is no limit (or, for an override, "use
/// the configured default").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rates {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
}

impl Rates {
    /// This override, falling back to `default` for what it does not set.
    pub fn or(self, default: Rates) -> Rates {
        Rates {
            rpm: self.rpm.or(default.rpm),
            tpm: self.tpm.or(default.tpm),
        }
    }

    pub fn is_none(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none()
    }
}

/// [`Rates`] in atomics (0: no limit; a configured limit is at least 1).
struct AtomicRates {
    rpm: std::sync::atomic::AtomicU64,
    tpm: std::sync::atomic::AtomicU64,
}

impl AtomicRates {
    fn new(r: Rates) -> Self {
        let a = Self {
            rpm: std::sync::atomic::AtomicU64::new(0),
            tpm: std::sync::atomic::AtomicU64::new(0),
        };
        a.set(r);
        a
    }

    fn set(&self, r: Rates) {
        use std::sync::atomic::Ordering::Relaxed;
        self.rpm.store(r.rpm.unwrap_or(0), Relaxed);
        self.tpm.store(r.tpm.unwrap_or(0), Relaxed);
    }

    fn get(&self) -> Rates {
        use std::sync::atomic::Ordering::Relaxed;
        let some = |v: u64| (v > 0).then_some(v);
        Rates {
            rpm: some(self.rpm.load(Relaxed)),
            tpm: some(self.tpm.load(Relaxed)),
        }
    }
}

/// How long the limiter keeps to its local counters after Redis failed before trying
/// it again: a dead Redis costs one timeout per this period, not one per request.
pub const REDIS_RETRY: Duration = Duration::from_secs(2);

const WINDOW_MS: i64 = 60_000;

/// The Lua script run by Redis: KEYS are the counters, ARGV[1] their expiry in ms,
/// then for each counter its increment and its limit. Reads every counter; if one
/// would pass its limit returns `{index, counts...}` and changes nothing, else
/// increments them all and returns `{0, counts...}`.
const SCRIPT: &str = r"
local n = #KEYS
local cur = {}
local refused = 0
for i = 1, n do
  local c = tonumber(redis.call('GET', KEYS[i]) or '0')
  cur[i] = c
  if refused == 0 and c + tonumber(ARGV[2 * i]) > tonumber(ARGV[2 * i + 1]) then
    refused = i
  end
end
if refused == 0 then
  for i = 1, n do
    cur[i] = redis.call('INCRBY', KEYS[i], ARGV[2 * i])
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
  end
end
local out = {refused}
for i = 1, n do out[i + 1] = cur[i] end
return out
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Requests,
    Tokens,
}

/// One counter a request is checked against.
#[derive(Debug, Clone)]
struct Counter {
    /// `key:ID` or `account:ID`.
    scope: String,
    kind: Kind,
    limit: u64,
    add: u64,
}

/// One counter's state after a check.
#[derive(Debug, Clone, Copy)]
pub struct Level {
    pub limit: u64,
    pub remaining: u64,
}

/// What the `x-ratelimit-*` headers report: per kind, the tightest limit that applied.
#[derive(Debug, Clone, Default)]
pub struct RateStatus {
    pub requests: Option<Level>,
    pub tokens: Option<Level>,
    /// Until the current window ends.
    pub reset: Duration,
}

impl RateStatus {
    /// OpenAI's headers: limit, remaining and reset (a duration such as `17s` or
    /// `250ms`) for requests and tokens, where a limit applies.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = Vec::new();
        let reset = format_reset(self.reset);
        if let Some(l) = self.requests {
            h.push(("x-ratelimit-limit-requests", l.limit.to_string()));
            h.push(("x-ratelimit-remaining-requests", l.remaining.to_string()));
            h.push(("x-ratelimit-reset-requests", reset.clone()));
        }
        if let Some(l) = self.tokens {
            h.push(("x-ratelimit-limit-tokens", l.limit.to_string()));
            h.push(("x-ratelimit-remaining-tokens", l.remaining.to_string()));
            h.push(("x-ratelimit-reset-tokens", reset));
        }
        h
    }
}

/// A refused request.
#[derive(Debug, Clone, thiserror::Error)]
#[error("Rate limit reached for {scope}: {limit} {what} per minute, {used} used in this minute and this request needs {needed}. Retry in {retry_after}s.")]
pub struct RateLimited {
    pub scope: String,
    pub what: &'static str,
    pub limit: u64,
    pub used: u64,
    pub needed: u64,
    /// Whole seconds until the window ends (at least 1).
    pub retry_after: u64,
    pub status: Box<RateStatus>,
}

/// `17s`, `250ms`, `1m0s`: the Go-style durations of OpenAI's reset headers.
pub fn format_reset(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        let (s, frac) = (ms / 1000, ms % 1000);
        if frac == 0 {
            format!("{s}s")
        } else {
            format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
        }
    } else {
        format!("{}m{}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// Where the counters of the last check were kept, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    Local,
    Redis,
    /// Redis is configured but failing: local counters are used.
    Degraded(String),
}

struct RedisState {
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    /// While set and in the future, Redis is not tried.
    down_until: Mutex<Option<Instant>>,
    last_error: Mutex<Option<String>>,
    timeout: Duration,
    prefix: String,
}

pub struct RateLimiter {
    /// The configured defaults (key, account), replaced by a configuration reload.
    defaults: [AtomicRates; 2],
    /// `scope:kind` → (window, count).
    local: Mutex<HashMap<String, (i64, u64)>>,
    /// The last window in which `local` was swept of past windows (once per window, so
    /// that many active counters do not make every admission scan the map).
    swept: std::sync::atomic::AtomicI64,
    redis: Option<RedisState>,
}

impl RateLimiter {
    /// The limiter of `cfg`. A Redis URL that does not parse is a configuration error.
    pub fn new(cfg: &LimitsConfig) -> Result<Self, String> {
        let redis = match &cfg.redis_url {
            Some(url) => Some(RedisState {
                client: redis::Client::open(url.expose())
                    .map_err(|e| format!("GAMMAINFRA_REDIS_URL / limits.redis_url: {e}"))?,
                conn: tokio::sync::Mutex::new(None),
                down_until: Mutex::new(None),
                last_error: Mutex::new(None),
                timeout: cfg.redis_timeout,
                prefix: cfg.redis_prefix.clone(),
            }),
            None => None,
        };
        Ok(Self {
            defaults: [AtomicRates::new(cfg.key), AtomicRates::new(cfg.account)],
            local: Mutex::new(HashMap::new()),
            swept: std::sync::atomic::AtomicI64::new(i64::MIN),
            redis,
        })
    }

    /// Replaces the default limits of every key and every account (a configuration
    /// reload); counts so far are kept.
    pub fn set_defaults(&self, key: Rates, account: Rates) {
        self.defaults[0].set(key);
        self.defaults[1].set(account);
    }

    /// Where counters are kept now: local, Redis, or local because Redis fails.
    pub fn backing(&self) -> Backing {
        let Some(r) = &self.redis else {
            return Backing::Local;
        };
        match r.last_error.lock().ok().and_then(|e| e.clone()) {
            Some(e) => Backing::Degraded(e),
            None => Backing::Redis,
        }
    }

    /// Checks and counts one request of `tokens` tokens for a key and its account,
    /// whose overrides are `key_rates` and `account_rates`. `Ok(None)`: no limit applies.
    pub async fn admit(
        &self,
        key_id: &str,
        key_rates: Rates,
        account_id: &str,
        account_rates: Rates,
        tokens: u64,
    ) -> Result<Option<RateStatus>, RateLimited> {
        let k = key_rates.or(self.defaults[0].get());
        let a = account_rates.or(self.defaults[1].get());
        if k.is_none() && a.is_none() {
            return Ok(None);
        }
        let mut counters = Vec::with_capacity(4);
        for (scope, r) in [
            (format!("key:{key_id}"), k),
            (format!("account:{account_id}"), a),
        ] {
            if let Some(l) = r.rpm {
                counters.push(Counter {
                    scope: scope.clone(),
                    kind: Kind::Requests,
                    limit: l,
                    add: 1,
                });
            }
            if let Some(l) = r.tpm {
                counters.push(Counter {
                    scope,
                    kind: Kind::Tokens,
                    limit: l,
                    add: tokens,
                });
            }
        }
        let now_ms = crate::clock::unix_millis();
        let window = now_ms.div_euclid(WINDOW_MS);
        let reset_ms = (window + 1) * WINDOW_MS - now_ms;
        let (refused, counts) = match self.redis_check(&counters, window).await {
            Some(r) => r,
            None => self.local_check(&counters, window),
        };
        Ok(Some(verdict(&counters, refused, &counts, reset_ms)?))
    }

    /// Counts one attempt of something limited to `limit` per minute per `scope` (the
    /// console's logins per email, say), shared through Redis like the request limits.
    /// `Err` with the seconds until the next minute when the limit is reached.
    pub async fn attempt(&self, scope: &str, limit: u64) -> Result<(), u64> {
        let counters = [Counter {
            scope: scope.to_owned(),
            kind: Kind::Requests,
            limit,
            add: 1,
        }];
        let now_ms = crate::clock::unix_millis();
        let window = now_ms.div_euclid(WINDOW_MS);
        let (refused, _) = match self.redis_check(&counters, window).await {
            Some(r) => r,
            None => self.local_check(&counters, window),
        };
        if refused == 0 {
            Ok(())
        } else {
            let reset_ms = (window + 1) * WINDOW_MS - now_ms;
            Err(u64::try_from(reset_ms.div_euclid(1000) + 1).unwrap_or(1))
        }
    }

    fn local_check(&self, counters: &[Counter], window: i64) -> (usize, Vec<u64>) {
        let mut m = self
            .local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forget past windows now and then, so idle keys do not accumulate.
        if m.len() > 10_000
            && self
                .swept
                .swap(window, std::sync::atomic::Ordering::Relaxed)
                != window
        {
            m.retain(|_, (w, _)| *w == window);
        }
        let names: Vec<String> = counters.iter().map(counter_name).collect();
        let mut counts = Vec::with_capacity(counters.len());
        let mut refused = 0;
        for (i, (c, name)) in counters.iter().zip(&names).enumerate() {
            let cur = match m.get(name) {
                Some((w, n)) if *w == window => *n,
                _ => 0,
            };
            counts.push(cur);
            if refused == 0 && cur.saturating_add(c.add) > c.limit {
                refused = i + 1;
            }
        }
        if refused == 0 {
            for ((c, name), count) in counters.iter().zip(names).zip(counts.iter_mut()) {
                *count = count.saturating_add(c.add);
                m.insert(name, (window, *count));
            }
        }
        (refused, counts)
    }

    /// The check in Redis; `None` when Redis is not configured, or failed (then the
    /// caller counts locally).
    async fn redis_check(&self, counters: &[Counter], window: i64) -> Option<(usize, Vec<u64>)> {
        let r = self.redis.as_ref()?;
        if r.down_until
            .lock()
            .ok()
            .and_then(|d| *d)
            .is_some_and(|d| Instant::now() < d)
        {
            return None;
        }
        let result = tokio::time::timeout(r.timeout, r.eval(counters, window)).await;
        let err = match result {
            Ok(Ok(v)) => {
                let was = r.last_error.lock().ok().and_then(|mut e| e.take());
                if let Some(was) = was {
                    tracing::info!(previous_error = %was, "Redis answers again: rate limits are shared across replicas again");
                }
                return Some(v);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {:?}", r.timeout),
        };
        // Drop the connection: the next try reconnects.
        if let Ok(mut c) = r.conn.try_lock() {
            *c = None;
        }
        if let Ok(mut d) = r.down_until.lock() {
            *d = Some(Instant::now() + REDIS_RETRY);
        }
        let first = r
            .last_error
            .lock()
            .map(|mut e| e.replace(err.clone()).is_none())
            .unwrap_or(false);
        if first {
            tracing::error!(error = %err, "Redis is unavailable: rate limits fall back to this replica's own counters (the same limits, counted per replica) until it answers");
        } else {
            tracing::debug!(error = %err, "Redis still unavailable; local rate-limit counters in use");
        }
        None
    }
}

impl RedisState {
    async fn eval(
        &self,
        counters: &[Counter],
        window: i64,
    ) -> redis::RedisResult<(usize, Vec<u64>)> {
        let mut conn = {
            let mut guard = self.conn.lock().await;
            match &*guard {
                Some(c) => c.clone(),
                None => {
                    let c = self.client.get_multiplexed_async_connection().await?;
                    *guard = Some(c.clone());
                    c
                }
            }
        };
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SCRIPT).arg(counters.len());
        for c in counters {
            cmd.arg(format!("{}:{}:{window}", self.prefix, counter_name(c)));
        }
        // Kept a little beyond the window, so a counter never expires mid-window.
        cmd.arg(WINDOW_MS * 2);
        for c in counters {
            cmd.arg(c.add).arg(c.limit);
        }
        let out: Vec<i64> = cmd.query_async(&mut conn).await?;
        let refused = out.first().copied().unwrap_or(0);
        let counts = out
            .iter()
            .skip(1)
            .map(|&v| u64::try_from(v).unwrap_or(0))
            .collect();
        Ok((usize::try_from(refused).unwrap_or(0), counts))
    }
}

fn counter_name(c: &Counter) -> String {
    let k = match c.kind {
        Kind::Requests => "rpm",
        Kind::Tokens => "tpm",
    };
    format!("{}:{k}", c.scope)
}

/// The answer for a check: `refused` is 0 (admitted; `counts` are after the increment)
/// or the 1-based index of the counter that would pass its limit (`counts` unchanged).
fn verdict(
    counters: &[Counter],
    refused: usize,
    counts: &[u64],
    reset_ms: i64,
) -> Result<RateStatus, RateLimited> {
    let mut status = RateStatus {
        reset: Duration::from_millis(u64::try_from(reset_ms).unwrap_or(0)),
        ..RateStatus::default()
    };
    for (c, &n) in counters.iter().zip(counts) {
        let level = Level {
            limit: c.limit,
            remaining: c.limit.saturating_sub(n),
        };
        let slot = match c.kind {
            Kind::Requests => &mut status.requests,
            Kind::Tokens => &mut status.tokens,
        };
        if slot.is_none_or(|s| level.remaining < s.remaining) {
            *slot = Some(level);
        }
    }
    if refused == 0 {
        return Ok(status);
    }
    let c = &counters[(refused - 1).min(counters.len() - 1)];
    Err(RateLimited {
        scope: c.scope.replacen(':', " ", 1),
        what: match c.kind {
            Kind::Requests => "requests",
            Kind::Tokens => "tokens",
        },
        limit: c.limit,
        used: counts.get(refused - 1).copied().unwrap_or(0),
        needed: c.add,
        retry_after: u64::try_from((reset_ms + 999) / 1000).unwrap_or(1).max(1),
        status: Box::new(status),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(key: Rates, account: Rates) -> RateLimiter {
        RateLimiter::new(&LimitsConfig {
            key,
            account,
            ..LimitsConfig::default()
        })
        .expect("limiter")
    }

    #[test]
    fn reset_format_is_openais() {
        assert_eq!(format_reset(Duration::from_millis(250)), "250ms");
        assert_eq!(format_reset(Duration::from_millis(17_000)), "17s");
        assert_eq!(format_reset(Duration::from_millis(17_500)), "17.5s");
        assert_eq!(format_reset(Duration::from_millis(60_000)), "1m0s");
    }

    #[tokio::test]
    async fn attempts_are_limited_per_scope_and_minute() {
        let l = limiter(Rates::default(), Rates::default());
        for _ in 0..3 {
            l.attempt("login:a@example.com", 3).await.expect("within");
        }
        let wait = l
            .attempt("login:a@example.com", 3)
            .await
            .expect_err("the fourth in a minute");
        assert!((1..=60).contains(&wait), "{wait}");
        // Another scope counts apart.
        l.attempt("login:b@example.com", 3).await.expect("other");
    }

    #[tokio::test]
    async fn no_limit_no_counting_and_refusals_count_nowhere() {
        let none = limiter(Rates::default(), Rates::default());
        assert!(none
            .admit("k", Rates::default(), "a", Rates::default(), 10)
            .await
            .expect("ok")
            .is_none());
        assert!(none.local.lock().expect("lock").is_empty());

        let l = limiter(
            Rates {
                rpm: Some(100),
                tpm: Some(1_000),
            },
            Rates::default(),
        );
        // The account's override applies alongside the key's default.
        let acct = Rates {
            rpm: Some(2),
            tpm: None,
        };
        let s = l
            .admit("k", Rates::default(), "a", acct, 600)
            .await
            .expect("first")
            .expect("limits apply");
        let tokens = s.tokens.expect("tokens");
        assert_eq!((tokens.limit, tokens.remaining), (1_000, 400));
        let req = s.requests.expect("requests");
        assert_eq!((req.limit, req.remaining), (2, 1), "the tightest limit");
        // 600 more tokens would pass the key's TPM: refused, and counted nowhere.
        let e = l
            .admit("k", Rates::default(), "a", acct, 600)
            .await
            .expect_err("tpm");
        assert_eq!(
            (e.what, e.limit, e.used, e.needed),
            ("tokens", 1_000, 600, 600)
        );
        assert!(e.retry_after >= 1 && e.retry_after <= 60);
        l.admit("k", Rates::default(), "a", acct, 400)
            .await
            .expect("exactly up to the TPM");
        let e = l
            .admit("k2", Rates::default(), "a", acct, 1)
            .await
            .expect_err("account rpm");
        assert_eq!((e.scope.as_str(), e.what), ("account a", "requests"));
    }
}
