//! Accounts, keys and credits.
//!
//! # Layout
//! * this file: [`Ledger`], the in-memory view that admits and settles requests, and the
//!   [`Reservation`] every admitted request holds until it is settled.
//! * [`store`]: persistence on SQLite or PostgreSQL.
//! * [`keys`]: key generation and hashing.
//! * [`limits`]: per-key spending limits (total, UTC day, UTC month), checked at
//!   admission next to the balance and updated at settlement.
//! * `lease`: credit leases, on PostgreSQL, where several replicas share the ledger.
//! * [`migrate`]: `gammainfra db migrate-to`, a whole SQLite database copied into an
//!   empty PostgreSQL one and verified.
//!
//! # Why balances live in memory
//! The hot path must not wait on the database. On SQLite the ledger sums are loaded at
//! start; from then on this process is the only writer of its database, so the
//! in-memory balance is exact: admission and settlement are a few integer operations
//! under one mutex, and usage entries are appended by a background writer that commits
//! them in batches. On PostgreSQL, where several replicas share the ledger, the
//! in-memory "balance" of an account is this replica's credit lease on it (see
//! `lease`), admitted against and settled in exactly the same way.
//! Account creation, top-ups, key and residency-policy changes are rare and are
//! committed before they answer. The database always converges to the in-memory state;
//! on shutdown the writer is drained. A crash loses at most the usage charges of the
//! last batch not yet committed (milliseconds), never a credit: an undercharge, never a
//! double charge.
//!
//! # Failing closed
//! The writer counts the usage entries settled but not yet committed. While the
//! database refuses them, or while that backlog is at
//! [`Billing::max_unwritten_usage`](crate::ledger::Billing), [`Ledger::reserve`] refuses
//! new requests ([`AdmitError::LedgerUnavailable`]); requests already admitted finish and
//! their charges join the backlog, which the writer keeps retrying until the database
//! takes it. Nothing is dropped, and the backlog a crash could lose stays bounded.
//!
//! # Clients that leave
//! A request is settled by the gateway, not by the client's connection: once admitted
//! it runs to its end in its own task and is billed from the provider's usage even if
//! the client hung up. Such *detached* requests still hold their reservations, and an
//! account may have at most [`Billing::max_detached_per_account`](crate::ledger::Billing)
//! of them at a time ([`AdmitError::TooManyDetached`]).

mod billing;
pub mod keys;
mod lease;
pub mod limits;
pub mod migrate;
pub mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot};

use crate::catalog::{Catalog, RegionConstraint, Residency};
use crate::money::Nanos;
use crate::ratelimit::Rates;
pub use billing::{Billing, FeeStep};
use keys::{KeyHash, NewKey};
pub use lease::LocalLease;
use limits::{SpendLimitReached, SpendView, Spending};
pub use store::{
    AdjustmentReceipt, BalanceChange, CheckoutRecord, CustomerRow, DailyUsage, EventOutcome,
    Idempotency, KeyDetails, KeyLimits, LoginRow, OutboxMessage, PaymentReceipt, SessionRow, Store,
    StoreError, StripeEvent, StripeEventKind, StripeEventRow, TokenPurpose, TopupReceipt,
    UsageEntry, UsageFilter, UsageOrder, UsageRecord,
};

/// The account behind an API key.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub key_id: Arc<str>,
    pub account_id: Arc<str>,
    /// Where requests with this key may be processed: its account's residency policy
    /// and its own, parsed and combined when either is loaded or set, so that a
    /// request only clones an `Arc`. `None`: no policy applies.
    pub residency: Option<Arc<Residency>>,
    /// The key's own rate-limit overrides.
    pub rates: Rates,
    /// Its account's rate-limit overrides.
    pub account_rates: Rates,
}

/// The active keys and the accounts' residency policies, under one lock: a key created
/// while its account's policy changes cannot keep the old policy.
#[derive(Default)]
struct KeyTable {
    by_hash: HashMap<KeyHash, KeyInfo>,
    /// The residency policies of the accounts that have one.
    account_policy: HashMap<Arc<str>, RegionConstraint>,
    /// The rate-limit overrides of the accounts that have some.
    account_rates: HashMap<Arc<str>, Rates>,
    /// The accounts an operator disabled.
    disabled: std::collections::HashSet<Arc<str>>,
}

impl KeyTable {
    /// Records a key with its own policy, combined with its account's.
    fn insert(
        &mut self,
        hash: KeyHash,
        key_id: &str,
        account_id: &str,
        key_policy: Option<RegionConstraint>,
        rates: Rates,
    ) {
        let account = self.account_policy.get(account_id).cloned();
        self.by_hash.insert(
            hash,
            KeyInfo {
                key_id: key_id.into(),
                account_id: account_id.into(),
                residency: Residency::of(account, key_policy).map(Arc::new),
                rates,
                account_rates: self
                    .account_rates
                    .get(account_id)
                    .copied()
                    .unwrap_or_default(),
            },
        );
    }

    /// Sets an account's rate-limit overrides, in each of its keys too.
    fn set_account_rates(&mut self, account_id: &str, rates: Rates) {
        if rates.is_none() {
            self.account_rates.remove(account_id);
        } else {
            self.account_rates.insert(account_id.into(), rates);
        }
        for k in self
            .by_hash
            .values_mut()
            .filter(|k| &*k.account_id == account_id)
        {
            k.account_rates = rates;
        }
    }

    /// Sets an account's policy and recombines it into each of the account's keys.
    fn set_account_policy(&mut self, account_id: &str, policy: Option<RegionConstraint>) {
        match &policy {
            Some(p) => {
                self.account_policy.insert(account_id.into(), p.clone());
            }
            None => {
                self.account_policy.remove(account_id);
            }
        }
        for k in self
            .by_hash
            .values_mut()
            .filter(|k| &*k.account_id == account_id)
        {
            let own = k.residency.as_ref().and_then(|r| r.key().cloned());
            k.residency = Residency::of(policy.clone(), own).map(Arc::new);
        }
    }
}

/// An account's money, in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Balance {
    /// Sum of the account's ledger entries. On PostgreSQL, in the ledger's memory: what
    /// this replica's lease on the account has left (granted minus charged); in what
    /// [`Ledger::account_balance`] returns: the account's balance.
    pub balance: Nanos,
    /// Held by requests in flight.
    pub reserved: Nanos,
    pub trial: Nanos,
    pub topups: Nanos,
    pub spent: Nanos,
    /// Operator grants (positive) and credit taken back for refunded or disputed card
    /// payments (negative).
    pub adjustments: Nanos,
    /// Requests whose client has left and that are still being served and billed.
    pub detached: u32,
    /// Requests admitted and not yet settled (in this process).
    pub in_flight: u32,
    /// This replica's credit lease on the account (PostgreSQL).
    #[serde(skip)]
    pub lease: Option<LocalLease>,
}

impl Balance {
    pub fn available(&self) -> Nanos {
        self.balance - self.reserved
    }
}

// Nearly every op is a usage entry, so boxing it (as clippy suggests for the rare small
// variant's sake) would only add an allocation per settlement.
#[allow(clippy::large_enum_variant)]
enum WriteOp {
    Usage(UsageEntry),
    /// Answered once everything queued before it is committed.
    Flush(oneshot::Sender<()>),
}

/// Admission failed: the account cannot cover the reservation.
#[derive(Debug, Clone, thiserror::Error)]
#[error("This request may cost up to ${needed} but only ${available} is available (balance minus requests in flight). Top up your credits or lower max_tokens.")]
pub struct InsufficientCredits {
    pub needed: Nanos,
    pub available: Nanos,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdmitError {
    #[error(transparent)]
    Insufficient(#[from] InsufficientCredits),
    /// The ledger cannot persist charges: it fails closed.
    #[error("The gateway cannot record charges right now ({0}); no request is accepted until it can. Requests already running finish normally. Retry later.")]
    LedgerUnavailable(String),
    /// The client left before the request was admitted: nothing is sent upstream.
    #[error("The client closed the connection before the request was admitted.")]
    ClientGone,
    /// The request could take its key over one of its spending limits.
    #[error(transparent)]
    SpendLimit(#[from] SpendLimitReached),
    /// Too many of the account's requests outlived their clients and are still running.
    #[error("{0} requests of this account are still being served after their clients disconnected (they are billed when they finish); retry when they complete.")]
    TooManyDetached(u32),
    /// The key or the account has as many requests in flight as it may.
    #[error("This {scope} already has {limit} requests in flight, the most it may have at once; retry when some complete.")]
    TooManyConcurrent { scope: &'static str, limit: u32 },
}

/// A flush did not complete in time (the database is refusing or slow).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the ledger could not commit {pending} queued usage charges within {timeout:?} ({cause})")]
pub struct FlushTimeout {
    pub pending: usize,
    pub timeout: Duration,
    pub cause: String,
}

/// The writer's state, shared with the request path.
#[derive(Default)]
struct WriterHealth {
    /// False while the writer is retrying a batch the database refused.
    ok: AtomicBool,
    /// Usage entries settled and not yet committed.
    pending: AtomicUsize,
    /// The database's last refusal, for `/readyz` and the 503.
    last_error: Mutex<Option<String>>,
}

pub struct Ledger {
    store: Store,
    /// Balances by account ID. A std mutex: held only for a few integer operations and
    /// never across an `.await`, so it is cheaper than an async one.
    accounts: Mutex<HashMap<Arc<str>, Balance>>,
    /// Active keys by hash, with the residency policies that apply to them. Read on
    /// every request, written on create/revoke and policy changes: an RwLock.
    keys: RwLock<KeyTable>,
    /// Serialises the admin changes that touch residency policies (account creation
    /// and policy changes, key creation), each from its commit to its in-memory half,
    /// so that the memory ends in the state of the last commit.
    policy_changes: tokio::sync::Mutex<()>,
    /// To the writer task that appends usage entries. Unbounded, because a settlement
    /// must never wait or be dropped; bounded in practice by admission, which stops at
    /// `billing.max_unwritten_usage` pending entries (plus the requests in flight then).
    writer: mpsc::UnboundedSender<WriteOp>,
    /// The billing rules; replaced by a configuration reload (see [`Ledger::set_billing`]).
    billing: ArcSwap<Billing>,
    health: Arc<WriterHealth>,
    /// Every key's spending limits and spend. Taken after `accounts` when both are
    /// held (admission), alone otherwise.
    spending: Mutex<Spending>,
    /// Reservations not yet settled (requests in flight, attached or not).
    open: AtomicUsize,
    /// Woken when `open` drops to zero, for a graceful shutdown.
    idle: tokio::sync::Notify,
    /// Credit leases, when the database is shared by several replicas (PostgreSQL).
    shared: Option<lease::Shared>,
    /// Set at shutdown: background lease work stops.
    closing: AtomicBool,
    /// The most requests in flight per key and per account (`limits.*_max_concurrent_requests`).
    max_concurrent: (AtomicU32, AtomicU32),
    /// Requests in flight per key. Taken after `accounts` and `spending` when held together.
    key_in_flight: Mutex<HashMap<Arc<str>, u32>>,
    /// To parse residency policies reloaded after another replica's change; replaced
    /// by a catalog reload (see [`Ledger::set_catalog`]).
    catalog: ArcSwap<Catalog>,
    /// Set when shutdown's grace period is over: requests still being read for billing
    /// after their clients left stop, and are settled from what was seen.
    cut: tokio::sync::watch::Sender<bool>,
    /// How long the writer's group commits take (for `/metrics`).
    commits: crate::histogram::Histogram,
}

impl Ledger {
    /// Loads balances (SQLite), keys and residency policies (parsed with `catalog`), and
    /// starts the writer task; on PostgreSQL, also the lease upkeep and the listener
    /// for other replicas' changes.
    pub async fn open(
        store: Store,
        billing: Billing,
        catalog: Arc<Catalog>,
    ) -> Result<Arc<Self>, StoreError> {
        let mut accounts = HashMap::new();
        // On PostgreSQL, credit is leased on demand instead.
        if !store.shared() {
            for s in store.account_sums().await? {
                accounts.insert(
                    Arc::from(s.id.as_str()),
                    Balance {
                        balance: s.balance,
                        trial: s.trial,
                        topups: s.topups,
                        spent: s.spent,
                        adjustments: s.adjustments,
                        ..Balance::default()
                    },
                );
            }
        }
        let now = time::OffsetDateTime::now_utc();
        let (keys, spend_limits) = load_keys(&store, &catalog).await?;
        let limited: Vec<String> = spend_limits.iter().map(|(id, _)| id.clone()).collect();
        let spending = Spending::load(
            key_spend_now(&store, &limited, now).await?,
            spend_limits,
            now,
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let health = Arc::new(WriterHealth {
            ok: AtomicBool::new(true),
            ..WriterHealth::default()
        });
        let commits = crate::histogram::Histogram::new(crate::histogram::COMMIT_BUCKETS);
        tokio::spawn(writer(store.clone(), rx, health.clone(), commits.clone()));
        let shared = store.shared().then(|| lease::Shared::new(&billing));
        let ledger = Arc::new(Self {
            store,
            accounts: Mutex::new(accounts),
            keys: RwLock::new(keys),
            policy_changes: tokio::sync::Mutex::new(()),
            spending: Mutex::new(spending),
            writer: tx,
            billing: ArcSwap::from_pointee(billing),
            health,
            open: AtomicUsize::new(0),
            idle: tokio::sync::Notify::new(),
            shared,
            closing: AtomicBool::new(false),
            max_concurrent: (AtomicU32::new(u32::MAX), AtomicU32::new(u32::MAX)),
            key_in_flight: Mutex::default(),
            catalog: ArcSwap::new(catalog),
            cut: tokio::sync::watch::Sender::new(false),
            commits,
        });
        if ledger.shared.is_some() {
            ledger.start_leases().await?;
            ledger.listen_for_changes().await?;
        }
        Ok(ledger)
    }

    /// Follows the other replicas' admin changes (PostgreSQL `LISTEN`): the account
    /// named by each notification is reloaded; after a lost connection, everything is.
    async fn listen_for_changes(self: &Arc<Self>) -> Result<(), StoreError> {
        let mut listener = self.store.listen_changes().await?;
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let n = listener.try_recv().await;
                let Some(me) = weak.upgrade() else { return };
                if me.closing.load(Ordering::Relaxed) {
                    return;
                }
                let r = match n {
                    Ok(Some(n)) => me.reload_account(n.payload()).await,
                    // The connection was lost (notifications may have been missed) and
                    // is reopened by the next call.
                    Ok(None) => {
                        tracing::warn!("the PostgreSQL change listener reconnected; reloading every key and policy");
                        me.reload_all().await
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the PostgreSQL change listener failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        Ok(())
                    }
                };
                if let Err(e) = r {
                    tracing::error!(error = %e, "could not reload keys and policies after a change on another replica");
                }
            }
        });
        Ok(())
    }

    /// Reloads one account's keys, residency policy and limits from the database, and
    /// hands back the unreserved credit of this replica's lease on it (credit may have
    /// been taken back from the account).
    async fn reload_account(&self, account: &str) -> Result<(), StoreError> {
        self.hand_back(account).await;
        let row = self.store.account(account).await?;
        let keys = self.store.active_keys_of(Some(account)).await?;
        let policy = row
            .as_ref()
            .and_then(|r| r.residency.as_deref())
            .map(|p| stored_policy(&self.catalog.load(), p, "account", account));
        {
            let mut spending = self.spending.lock().unwrap_or_else(PoisonError::into_inner);
            for k in &keys {
                spending.set_limits(&k.id, k.limits.spend);
            }
        }
        let mut t = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        if row.as_ref().is_some_and(|r| r.disabled_at.is_some()) {
            t.disabled.insert(Arc::from(account));
        } else {
            t.disabled.remove(account);
        }
        t.by_hash.retain(|_, k| &*k.account_id != account);
        t.set_account_policy(account, policy);
        t.set_account_rates(account, row.map(|r| r.rates).unwrap_or_default());
        for k in keys {
            let own = k
                .residency
                .as_deref()
                .map(|p| stored_policy(&self.catalog.load(), p, "key", &k.id));
            t.insert(k.hash, &k.id, &k.account_id, own, k.limits.rates);
        }
        Ok(())
    }

    /// Reloads every key, residency policy and limit from the database.
    async fn reload_all(&self) -> Result<(), StoreError> {
        let (keys, limits) = load_keys(&self.store, &self.catalog.load()).await?;
        self.spending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace_limits(limits);
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
        Ok(())
    }

    /// Tells the other replicas that `account` changed (PostgreSQL); they reload it.
    /// A failure is logged: the change is committed, and they reload everything when
    /// their listener reconnects.
    async fn announce(&self, account: &str) {
        if let Err(e) = self.store.notify_change(account).await {
            tracing::warn!(account, error = %e, "could not notify the other replicas of a change");
        }
    }

    /// Shuts the ledger down after the last settlement: commits what is queued, hands
    /// back every credit lease and releases the database.
    pub async fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
        if let Err(e) = self.flush_timeout().await {
            tracing::error!(error = %e, "shutting down with usage charges not written");
        }
        if self.shared.is_some() {
            self.wait_prefetches(self.billing().flush_timeout).await;
            self.return_idle_leases(true).await;
        }
        self.store.close().await;
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Sets the most requests in flight per key and per account.
    pub fn set_max_concurrent(&self, key: u32, account: u32) {
        self.max_concurrent.0.store(key, Ordering::Relaxed);
        self.max_concurrent.1.store(account, Ordering::Relaxed);
    }

    /// The billing rules in force.
    pub fn billing(&self) -> Arc<Billing> {
        self.billing.load_full()
    }

    /// Replaces the billing rules (a configuration reload): new requests, accounts and
    /// top-ups follow them; requests in flight keep the amounts they reserved. The
    /// credit-lease settings (`lease_*`) are fixed when the ledger opens and are kept.
    pub fn set_billing(&self, mut billing: Billing) {
        let old = self.billing.load();
        billing.lease_ttl = old.lease_ttl;
        billing.lease_slice = old.lease_slice;
        billing.lease_idle = old.lease_idle;
        self.billing.store(Arc::new(billing));
    }

    /// The catalog residency policies are parsed with.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.load_full()
    }

    /// Every stored residency policy (accounts' and active keys') that `catalog` does
    /// not accept, described; empty when it accepts them all.
    pub async fn policies_refused_by(&self, catalog: &Catalog) -> Result<Vec<String>, StoreError> {
        let mut refused = Vec::new();
        for (account, policy) in self.store.account_policies().await? {
            if let (_, Some(e)) = RegionConstraint::stored(&policy, catalog) {
                refused.push(format!(
                    "account {account}: residency policy `{policy}`: {e}"
                ));
            }
        }
        for k in self.store.active_keys().await? {
            if let Some(policy) = k.residency.as_deref() {
                if let (_, Some(e)) = RegionConstraint::stored(policy, catalog) {
                    refused.push(format!("key {}: residency policy `{policy}`: {e}", k.id));
                }
            }
        }
        Ok(refused)
    }

    /// Replaces the catalog (a catalog reload) and parses every key's and account's
    /// residency policy again with it.
    pub async fn set_catalog(&self, catalog: Arc<Catalog>) -> Result<(), StoreError> {
        let _serial = self.policy_changes.lock().await;
        self.catalog.store(catalog);
        self.reload_all().await
    }

    /// Ends shutdown's grace period: requests still read to their end for billing after
    /// their clients left stop now and are settled from what was seen.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Resolves once [`Ledger::cut`] was called (at once if it was).
    pub async fn until_cut(&self) {
        let mut rx = self.cut.subscribe();
        let _ = rx.wait_for(|cut| *cut).await;
    }

    /// Why the ledger fails closed right now, if it does.
    pub fn unavailable(&self) -> Option<String> {
        if let Some(why) = self.store.one_writer_lost() {
            return Some(why.to_owned());
        }
        if let Some(why) = self.shared.as_ref().and_then(lease::Shared::unavailable) {
            return Some(why);
        }
        let pending = self.health.pending.load(Ordering::Relaxed);
        if !self.health.ok.load(Ordering::Relaxed) {
            let cause = self
                .health
                .last_error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .unwrap_or_default();
            return Some(format!(
                "the database refuses usage charges: {cause}; {pending} charges waiting"
            ));
        }
        let max = self.billing.load().max_unwritten_usage;
        (pending >= max).then(|| {
            format!("{pending} usage charges are waiting to be written, at the limit of {max}")
        })
    }

    /// Usage entries settled and not yet committed.
    pub fn pending_writes(&self) -> usize {
        self.health.pending.load(Ordering::Relaxed)
    }

    /// The durations of the writer's successful group commits.
    pub fn commit_latency(&self) -> &crate::histogram::Histogram {
        &self.commits
    }

    /// Requests admitted and not yet settled.
    pub fn open_reservations(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Waits until every admitted request is settled, or `timeout`. Returns how many
    /// are still open.
    pub async fn wait_settled(&self, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.idle.notified();
            let open = self.open_reservations();
            if open == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.open_reservations();
            }
        }
    }

    /// The key's account, if the key is active.
    pub fn authenticate(&self, key: &str) -> Option<KeyInfo> {
        let h = KeyHash::of(key);
        self.keys.read().ok()?.by_hash.get(&h).cloned()
    }

    /// Whether an operator disabled the account (its keys are then refused).
    pub fn account_disabled(&self, account: &str) -> bool {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .disabled
            .contains(account)
    }

    /// Disables the account (its keys are refused from the next request on; requests in
    /// flight finish and are billed) or enables it again.
    pub async fn set_account_disabled(
        &self,
        account_id: &str,
        disabled: bool,
    ) -> Result<(), StoreError> {
        let _serial = self.policy_changes.lock().await;
        let at = disabled.then(crate::clock::now_rfc3339);
        self.store
            .set_account_disabled(account_id, at.as_deref())
            .await?;
        tracing::info!(
            account_id,
            disabled,
            "account disabled or enabled by an operator"
        );
        {
            let mut t = self.keys.write().unwrap_or_else(PoisonError::into_inner);
            if disabled {
                t.disabled.insert(Arc::from(account_id));
            } else {
                t.disabled.remove(account_id);
            }
        }
        self.announce(account_id).await;
        Ok(())
    }

    /// The account's residency policy, as in force now.
    pub fn account_residency(&self, account: &str) -> Option<RegionConstraint> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .account_policy
            .get(account)
            .cloned()
    }

    /// The account's money as this process holds it in memory: on SQLite its balance,
    /// on PostgreSQL this replica's lease on it. See [`Ledger::account_balance`].
    pub fn balance(&self, account: &str) -> Option<Balance> {
        self.accounts.lock().ok()?.get(account).cloned()
    }

    /// The account's balance, trial, top-ups and spend, with what this process holds
    /// for requests in flight: from memory on SQLite; on PostgreSQL from the database
    /// once the charges queued here are committed (other replicas' uncommitted charges
    /// are not in it yet). `None`: no such account.
    pub async fn account_balance(&self, account: &str) -> Result<Option<Balance>, StoreError> {
        let local = self.balance(account);
        if !self.store.shared() {
            return Ok(local);
        }
        let _ = self.flush_timeout().await;
        let Some(s) = self.store.account_sums_of(account).await? else {
            return Ok(None);
        };
        let local = local.unwrap_or_default();
        Ok(Some(Balance {
            balance: s.balance,
            reserved: local.reserved,
            trial: s.trial,
            topups: s.topups,
            spent: s.spent,
            adjustments: s.adjustments,
            detached: local.detached,
            in_flight: local.in_flight,
            lease: None,
        }))
    }

    /// Creates an account with a first key and the one-time trial credit.
    pub async fn create_account(
        &self,
        email: &str,
    ) -> Result<(String, NewKey, Balance), StoreError> {
        self.create_account_with_residency(email, None).await
    }

    /// [`Ledger::create_account`], restricted to a residency policy from the start
    /// (its first key included).
    pub async fn create_account_with_residency(
        &self,
        email: &str,
        residency: Option<RegionConstraint>,
    ) -> Result<(String, NewKey, Balance), StoreError> {
        let email = normalize_email(email);
        let id = keys::random_id("acct_");
        let key = keys::generate();
        let trial = self.billing.load().trial;
        let _serial = self.policy_changes.lock().await;
        self.store
            .create_account(
                &id,
                &email,
                residency.as_ref().map(RegionConstraint::as_str),
                &key,
                trial,
                &crate::clock::now_rfc3339(),
            )
            .await?;
        let bal = Balance {
            balance: trial,
            trial,
            ..Balance::default()
        };
        // On PostgreSQL the trial is in the database, to be leased from there.
        if !self.store.shared() {
            if let Ok(mut a) = self.accounts.lock() {
                a.insert(Arc::from(id.as_str()), bal.clone());
            }
        }
        {
            let mut k = self.keys.write().unwrap_or_else(PoisonError::into_inner);
            if let Some(r) = residency {
                k.account_policy.insert(id.as_str().into(), r);
            }
            k.insert(key.hash, &key.id, &id, None, Rates::default());
        }
        self.announce(&id).await;
        Ok((id, key, bal))
    }

    /// Creates an account that signed up in the console, with its password's hash: no
    /// key and no trial until its email is verified ([`Ledger::verify_email`]).
    pub async fn create_customer(
        &self,
        email: &str,
        password_hash: &str,
    ) -> Result<String, StoreError> {
        let email = normalize_email(email);
        let id = keys::random_id("acct_");
        self.store
            .create_customer(&id, &email, password_hash, &crate::clock::now_rfc3339())
            .await?;
        if !self.store.shared() {
            if let Ok(mut a) = self.accounts.lock() {
                a.insert(Arc::from(id.as_str()), Balance::default());
            }
        }
        Ok(id)
    }

    /// Marks the account's email verified and grants the trial, once per account: the
    /// amount granted now (zero if it was granted before).
    pub async fn verify_email(&self, account_id: &str) -> Result<Nanos, StoreError> {
        let trial = self.billing.load().trial;
        let granted = self
            .store
            .verify_email(account_id, trial, &crate::clock::now_rfc3339())
            .await?;
        if granted > Nanos::ZERO {
            self.apply_changes(account_id, &[BalanceChange::Trial(granted)]);
        }
        Ok(granted)
    }

    /// Creates a key, restricted to `residency` (within its account's policy, which
    /// applies to it as well).
    pub async fn create_key(
        &self,
        account_id: &str,
        name: Option<&str>,
        residency: Option<RegionConstraint>,
    ) -> Result<NewKey, StoreError> {
        self.create_key_with_limits(account_id, name, residency, KeyLimits::default())
            .await
    }

    /// [`Ledger::create_key`] with spending and rate limits of its own.
    pub async fn create_key_with_limits(
        &self,
        account_id: &str,
        name: Option<&str>,
        residency: Option<RegionConstraint>,
        limits: KeyLimits,
    ) -> Result<NewKey, StoreError> {
        let key = keys::generate();
        let _serial = self.policy_changes.lock().await;
        self.store
            .add_key_with_limits(
                account_id,
                &key,
                name,
                residency.as_ref().map(RegionConstraint::as_str),
                &limits,
                &crate::clock::now_rfc3339(),
            )
            .await?;
        if !limits.spend.is_none() {
            self.spending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .set_limits(&key.id, limits.spend);
        }
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.hash, &key.id, account_id, residency, limits.rates);
        self.announce(account_id).await;
        Ok(key)
    }

    /// Changes a key's spending and rate limits from their current value with `f` (a
    /// PATCH): committed to the database, then in force from the key's next request on
    /// (requests in flight keep their admission). Read and written under the same lock,
    /// so that two concurrent changes of different fields cannot overwrite each other.
    pub async fn update_key_limits<E: From<StoreError>>(
        &self,
        key_id: &str,
        f: impl FnOnce(KeyLimits) -> Result<KeyLimits, E>,
    ) -> Result<(), E> {
        let _serial = self.policy_changes.lock().await;
        let current = self
            .store
            .key(key_id)
            .await?
            .ok_or(StoreError::NoKey)?
            .limits;
        let new = f(current)?;
        Ok(self.apply_key_limits(key_id, new).await?)
    }

    /// Commits and applies a key's limits; the caller holds `policy_changes`.
    async fn apply_key_limits(&self, key_id: &str, limits: KeyLimits) -> Result<(), StoreError> {
        self.store.set_key_limits(key_id, &limits).await?;
        tracing::info!(key_id, ?limits, "key limits set");
        self.spending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set_limits(key_id, limits.spend);
        let account = {
            let mut k = self.keys.write().unwrap_or_else(PoisonError::into_inner);
            let mut account = None;
            for info in k.by_hash.values_mut().filter(|i| &*i.key_id == key_id) {
                info.rates = limits.rates;
                account = Some(info.account_id.clone());
            }
            account
        };
        if let Some(a) = account {
            self.announce(&a).await;
        }
        Ok(())
    }

    /// Replaces an account's rate-limit overrides (committed, then in force).
    pub async fn set_account_rates(
        &self,
        account_id: &str,
        rates: Rates,
    ) -> Result<(), StoreError> {
        let _serial = self.policy_changes.lock().await;
        self.store.set_account_rates(account_id, &rates).await?;
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .set_account_rates(account_id, rates);
        self.announce(account_id).await;
        Ok(())
    }

    /// A key's spend now: total, this UTC day, this UTC month, and in flight. On
    /// PostgreSQL the windows are read from the database once this replica's queued
    /// charges are committed (every replica's committed charges are there); in flight
    /// is this replica's.
    pub async fn key_spend(&self, key_id: &str) -> Result<SpendView, StoreError> {
        let now = time::OffsetDateTime::now_utc();
        let local = self
            .spending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .view(key_id, now);
        if !self.store.shared() {
            return Ok(local);
        }
        let _ = self.flush_timeout().await;
        let key = [key_id.to_owned()];
        let db = key_spend_now(&self.store, &key, now).await?.pop();
        Ok(db.map_or(
            SpendView {
                reserved: local.reserved,
                ..SpendView::default()
            },
            |d| SpendView {
                total: d.total,
                today: d.day,
                month: d.month,
                reserved: local.reserved,
            },
        ))
    }

    /// Sets (or, with `None`, clears) an account's residency policy: committed to the
    /// database, then applied to every key of the account, before it returns, so that
    /// the next request is held to it.
    pub async fn set_account_residency(
        &self,
        account_id: &str,
        residency: Option<RegionConstraint>,
    ) -> Result<(), StoreError> {
        let _serial = self.policy_changes.lock().await;
        self.store
            .set_account_residency(account_id, residency.as_ref().map(RegionConstraint::as_str))
            .await?;
        tracing::info!(
            account_id,
            residency = residency.as_ref().map_or("none", RegionConstraint::as_str),
            "account residency policy set"
        );
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .set_account_policy(account_id, residency);
        self.announce(account_id).await;
        Ok(())
    }

    /// Revokes a key: it fails from the next request on.
    pub async fn revoke_key(&self, key_id: &str) -> Result<(), StoreError> {
        let hash = self
            .store
            .revoke_key(key_id, &crate::clock::now_rfc3339())
            .await?;
        let removed = self
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .by_hash
            .remove(&hash);
        match removed {
            Some(k) => self.announce(&k.account_id).await,
            // Not loaded here (another replica's fresh key): announce by the stored row.
            None => {
                if let Ok(Some(k)) = self.store.key(key_id).await {
                    self.announce(&k.account_id).await;
                }
            }
        }
        Ok(())
    }

    /// Credits a top-up, durably, once per idempotency key. Returns the receipt: the
    /// first one again when `idem` names a key already used for the same request.
    pub async fn topup(
        &self,
        account_id: &str,
        credited: Nanos,
        idem: Option<&Idempotency>,
    ) -> Result<TopupReceipt, StoreError> {
        let now = time::OffsetDateTime::now_utc();
        let billing = self.billing.load_full();
        let fee = billing.topup_fee(credited, now);
        let bp = billing.fee_basis_points(now);
        let current = if self.store.shared() {
            self.store.ledger_sum(account_id).await?
        } else {
            self.balance(account_id).unwrap_or_default().balance
        };
        let predicted = current + credited;
        let receipt = TopupReceipt {
            topup_id: keys::random_id("topup_"),
            account_id: account_id.to_owned(),
            credited_nanos: credited.nanos(),
            fee_nanos: fee.nanos(),
            balance_nanos: predicted.nanos(),
            created_at: crate::clock::now_rfc3339(),
        };
        if let Some(first) = self.store.topup(&receipt, bp, idem).await? {
            return Ok(first);
        }
        self.apply_changes(account_id, &[BalanceChange::Topup(credited)]);
        // The receipt as stored with the idempotency key, so that a retry answers exactly
        // this (its balance is the one predicted just before the commit; requests
        // settling meanwhile may have moved the live balance since).
        Ok(receipt)
    }

    /// Grants `amount` of credit to the account, with the operator's reason, as an
    /// `adjustment` entry (at most once per idempotency key).
    pub async fn grant_credit(
        &self,
        account_id: &str,
        amount: Nanos,
        reason: &str,
        idem: Option<&Idempotency>,
    ) -> Result<AdjustmentReceipt, StoreError> {
        let receipt = AdjustmentReceipt {
            adjustment_id: keys::random_id("adj_"),
            account_id: account_id.to_owned(),
            amount_nanos: amount.nanos(),
            reason: reason.to_owned(),
            created_at: crate::clock::now_rfc3339(),
        };
        if let Some(first) = self.store.adjust(&receipt, idem).await? {
            return Ok(first);
        }
        self.apply_changes(account_id, &[BalanceChange::Adjustment(amount)]);
        Ok(receipt)
    }

    /// Records a Checkout Session created for a top-up of the account.
    pub async fn record_checkout(&self, c: &CheckoutRecord) -> Result<(), StoreError> {
        self.store.record_checkout(c).await
    }

    /// Applies a verified Stripe event (see `store::payments`): at most once per event,
    /// at most one credit per paid checkout, refunds and disputes taken back.
    pub async fn apply_stripe_event(&self, e: &StripeEvent) -> Result<EventOutcome, StoreError> {
        let outcome = self
            .store
            .apply_stripe_event(e, &crate::clock::now_rfc3339())
            .await?;
        if let Some(account) = &outcome.account_id {
            self.apply_changes(account, &outcome.changes);
            // Credit taken back on PostgreSQL: the replicas' leases on the account hand
            // back what they hold unreserved, so that new requests are admitted against
            // what the database has left.
            let took_back = outcome
                .changes
                .iter()
                .any(|c| matches!(c, BalanceChange::Adjustment(n) if *n < Nanos::ZERO));
            if took_back && self.store.shared() {
                self.hand_back(account).await;
                self.announce(account).await;
            }
        }
        Ok(outcome)
    }

    /// What the database just recorded, in the in-memory balances (SQLite; on
    /// PostgreSQL the credit is in the database, to be leased from there).
    fn apply_changes(&self, account_id: &str, changes: &[BalanceChange]) {
        if self.store.shared() || changes.is_empty() {
            return;
        }
        let mut a = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let b = a.entry(Arc::from(account_id)).or_default();
        for c in changes {
            match *c {
                BalanceChange::Topup(n) => {
                    b.balance = b.balance + n;
                    b.topups = b.topups + n;
                }
                BalanceChange::Adjustment(n) => {
                    b.balance = b.balance + n;
                    b.adjustments = b.adjustments + n;
                }
                BalanceChange::Trial(n) => {
                    b.balance = b.balance + n;
                    b.trial = b.trial + n;
                }
            }
        }
    }

    /// Holds `amount` of the account's available credit for one request. Fails closed
    /// while the ledger cannot persist charges.
    pub fn reserve(
        self: &Arc<Self>,
        key: &KeyInfo,
        request_id: &str,
        amount: Nanos,
        client: &ClientHandle,
    ) -> Result<Reservation, AdmitError> {
        if let Some(why) = self.unavailable() {
            return Err(AdmitError::LedgerUnavailable(why));
        }
        if client.left() {
            return Err(AdmitError::ClientGone);
        }
        let mut a = self
            .accounts
            .lock()
            .map_err(|_| AdmitError::LedgerUnavailable("the ledger's lock is poisoned".into()))?;
        let b = a.entry(key.account_id.clone()).or_default();
        if b.detached >= self.billing.load().max_detached_per_account {
            return Err(AdmitError::TooManyDetached(b.detached));
        }
        let account_max = self.max_concurrent.1.load(Ordering::Relaxed);
        if b.in_flight >= account_max {
            return Err(AdmitError::TooManyConcurrent {
                scope: "account",
                limit: account_max,
            });
        }
        let key_max = self.max_concurrent.0.load(Ordering::Relaxed);
        let mut in_flight = self
            .key_in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if in_flight.get(&key.key_id).is_some_and(|&n| n >= key_max) {
            return Err(AdmitError::TooManyConcurrent {
                scope: "API key",
                limit: key_max,
            });
        }
        if b.available() < amount {
            return Err(InsufficientCredits {
                needed: amount,
                available: b.available().max(Nanos::ZERO),
            }
            .into());
        }
        // The key's spending limits, under the balances' lock so that both holds are
        // taken together or not at all.
        self.spending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reserve(&key.key_id, amount, time::OffsetDateTime::now_utc())?;
        b.reserved = b.reserved + amount;
        b.in_flight += 1;
        let lease_low = self.note_admission(b);
        *in_flight.entry(key.key_id.clone()).or_default() += 1;
        drop(in_flight);
        drop(a);
        if lease_low {
            self.prefetch(&key.account_id);
        }
        self.open.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut c) = client.0.lock() {
            c.account = Some((self.clone(), key.account_id.clone()));
            if c.left {
                self.set_detached(&key.account_id, true);
            }
        }
        Ok(Reservation {
            ledger: self.clone(),
            account_id: key.account_id.clone(),
            key_id: key.key_id.clone(),
            request_id: request_id.to_owned(),
            amount,
            settled: false,
            client: client.clone(),
        })
    }

    /// Waits until every settlement queued so far is committed to the database.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.writer.send(WriteOp::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// With `billing.commit_before_answer`: waits until the charges settled so far are
    /// committed, before an answer is finished. A database that does not take them
    /// within `billing.flush_timeout` is logged and the answer goes out anyway: the
    /// request was served and its charge stays queued.
    pub async fn commit_before_answer(&self) {
        if !self.billing.load().commit_before_answer {
            return;
        }
        if let Err(e) = self.flush_timeout().await {
            tracing::warn!(error = %e, "answering before the request's charge is committed");
        }
    }

    /// [`Ledger::flush`], giving up after `billing.flush_timeout`.
    pub async fn flush_timeout(&self) -> Result<(), FlushTimeout> {
        let timeout = self.billing.load().flush_timeout;
        if tokio::time::timeout(timeout, self.flush()).await.is_ok() {
            return Ok(());
        }
        Err(FlushTimeout {
            pending: self.pending_writes(),
            timeout,
            cause: self
                .unavailable()
                .unwrap_or_else(|| "the database is slow".to_owned()),
        })
    }

    /// Releases a key's hold of `amount` and counts `cost` in its spending windows.
    fn settle_key(&self, key_id: &Arc<str>, amount: Nanos, cost: Nanos, now: time::OffsetDateTime) {
        self.spending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .settle(key_id, amount, cost, now);
    }

    fn set_detached(&self, account_id: &Arc<str>, up: bool) {
        if let Ok(mut a) = self.accounts.lock() {
            let b = a.entry(account_id.clone()).or_default();
            b.detached = if up {
                b.detached + 1
            } else {
                b.detached.saturating_sub(1)
            };
        }
    }
}

/// Whether the client of a request is still there, shared between the request's task
/// (through its [`Reservation`]) and the [`Presence`] its connection holds.
#[derive(Default)]
struct ClientState {
    left: bool,
    delivered: bool,
    settled: bool,
    /// The account to count a detached request against, once admitted.
    account: Option<(Arc<Ledger>, Arc<str>)>,
}

/// Held by the side that delivers a request's answer to its client (the handler, then
/// the response body). Dropped before [`Presence::delivered`], it marks the request as
/// detached: the request goes on to its end and counts against the account's limit of
/// detached requests until it is settled.
pub struct Presence(Arc<Mutex<ClientState>>);

/// The request task's side of a [`Presence`], given to [`Ledger::reserve`].
#[derive(Clone)]
pub struct ClientHandle(Arc<Mutex<ClientState>>);

impl Presence {
    pub fn new() -> (Presence, ClientHandle) {
        let s = Arc::new(Mutex::new(ClientState::default()));
        (Presence(s.clone()), ClientHandle(s))
    }

    /// The client received the whole answer.
    pub fn delivered(self) {
        if let Ok(mut c) = self.0.lock() {
            c.delivered = true;
        }
    }
}

impl ClientHandle {
    /// Whether the client has gone.
    pub fn left(&self) -> bool {
        self.0.lock().map(|c| c.left).unwrap_or(false)
    }

    /// The client has gone (its streamed body was dropped unfinished), even if the
    /// handler had already handed the body over.
    pub fn mark_left(&self) {
        mark_left(&self.0, true);
    }
}

fn mark_left(state: &Mutex<ClientState>, even_if_delivered: bool) {
    let Ok(mut c) = state.lock() else {
        return;
    };
    if (c.delivered && !even_if_delivered) || c.left {
        return;
    }
    c.left = true;
    if let (false, Some((ledger, account))) = (c.settled, &c.account) {
        ledger.set_detached(account, true);
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        mark_left(&self.0, false);
    }
}

/// How a billed request ended, as its usage record says (`status`). A short, closed
/// set so that customers can filter and count by it; the details go in the note.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UsageStatus {
    /// The provider answered in full and reported its final usage.
    #[default]
    Completed,
    /// The client went away before the answer was complete; the gateway read the
    /// answer to its end and billed the provider's own usage.
    ClientDisconnected,
    /// The upstream failed after the answer had begun (an error event, a broken
    /// connection); what was generated until then is billed.
    UpstreamError,
    /// The upstream ended the answer without an error but without its final usage
    /// report; the usage is partly estimated.
    CutShort,
}

impl UsageStatus {
    /// The value stored in `ledger_entries.status` and shown to customers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::ClientDisconnected => "client_disconnected",
            Self::UpstreamError => "upstream_error",
            Self::CutShort => "cut_short",
        }
    }
}

impl std::fmt::Display for UsageStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a settled request used, and the details its usage record keeps for audit.
#[derive(Debug, Clone, Default)]
pub struct Charge {
    pub cost: Nanos,
    /// The gateway's model ID.
    pub model: String,
    /// The endpoint's key, `provider:upstream_id`.
    pub endpoint: String,
    pub provider: String,
    pub upstream_model: String,
    /// The provider's ID of its answer (`chatcmpl-...`, `msg_...`), when known.
    pub upstream_request_id: Option<String>,
    /// As in the `X-GammaInfra-Upstream-Region` header.
    pub region: String,
    pub status: UsageStatus,
    pub usage: crate::chat::Usage,
    pub note: Option<String>,
}

impl Charge {
    /// The charge for `usage` served by `ep`, priced at `ep`'s prices, with the
    /// endpoint's details filled in. The one place a charge is built, so that the
    /// settlement paths (non-streamed, streamed) cannot record them differently.
    pub fn for_endpoint(
        ep: &crate::catalog::Endpoint,
        model: &str,
        usage: crate::chat::Usage,
        upstream_request_id: Option<String>,
        status: UsageStatus,
        note: Option<String>,
    ) -> Self {
        Self {
            cost: usage.cost(&ep.pricing),
            model: model.to_owned(),
            endpoint: ep.key.clone(),
            provider: ep.provider.to_string(),
            upstream_model: ep.upstream_id.clone(),
            upstream_request_id: upstream_request_id.filter(|id| !id.is_empty()),
            region: ep.served_region().to_owned(),
            status,
            usage,
            note,
        }
    }
}

/// Credit held for one request. Settle it by value with [`Reservation::settle`]; if it
/// is dropped unsettled (a bug, or a panic), the hold is released without a charge.
#[must_use = "a reservation must be settled"]
pub struct Reservation {
    ledger: Arc<Ledger>,
    account_id: Arc<str>,
    key_id: Arc<str>,
    request_id: String,
    amount: Nanos,
    settled: bool,
    client: ClientHandle,
}

impl Reservation {
    pub fn amount(&self) -> Nanos {
        self.amount
    }

    /// The ledger this reservation is held in.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Whether the client has gone.
    pub fn client_left(&self) -> bool {
        self.client.left()
    }

    /// Releases the hold and charges `charge.cost` (never more than the balance), once.
    /// Returns the amount charged.
    pub fn settle(mut self, charge: Charge) -> Nanos {
        self.settled = true;
        self.finish(Some(charge))
    }

    fn finish(&mut self, charge: Option<Charge>) -> Nanos {
        let was_detached = self
            .client
            .0
            .lock()
            .map(|mut c| {
                c.settled = true;
                c.account = None;
                c.left
            })
            .unwrap_or(false);
        let closed = Closed(&self.ledger);
        // A poisoned lock (a panic elsewhere while it was held) still holds consistent
        // integers: settling goes on rather than lose the charge.
        let mut a = self
            .ledger
            .accounts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let b = a.entry(self.account_id.clone()).or_default();
        b.reserved = b.reserved - self.amount;
        b.in_flight = b.in_flight.saturating_sub(1);
        {
            let mut k = self
                .ledger
                .key_in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = k.get_mut(&self.key_id) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    k.remove(&self.key_id);
                }
            }
        }
        if was_detached {
            b.detached = b.detached.saturating_sub(1);
        }
        let now = time::OffsetDateTime::now_utc();
        // What is charged: nothing without a charge, or for a request that used nothing.
        let charged = charge.and_then(|charge| {
            let mut cost = charge.cost;
            if cost > b.balance {
                tracing::warn!(request_id = %self.request_id, cost = %cost, balance = %b.balance,
                    "actual cost exceeds the balance; charging the balance");
                cost = b.balance.max(Nanos::ZERO);
            }
            (cost != Nanos::ZERO || charge.usage != crate::chat::Usage::default())
                .then_some((cost, charge))
        });
        let cost = charged.as_ref().map_or(Nanos::ZERO, |(cost, _)| *cost);
        b.balance = b.balance - cost;
        b.spent = b.spent + cost;
        let lease_id = b.lease.as_ref().map(|l| l.id.clone());
        drop(a);
        // The key's hold is released either way; the cost counts in the windows of the
        // usage entry's date (`at` below).
        self.ledger.settle_key(&self.key_id, self.amount, cost, now);
        let Some((cost, charge)) = charged else {
            return Nanos::ZERO;
        };
        let u = charge.usage;
        let entry = UsageEntry {
            account_id: self.account_id.to_string(),
            key_id: self.key_id.to_string(),
            request_id: self.request_id.clone(),
            model: charge.model,
            endpoint: charge.endpoint,
            provider: charge.provider,
            upstream_model: charge.upstream_model,
            upstream_request_id: charge.upstream_request_id,
            region: charge.region,
            status: charge.status,
            charged: cost,
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_tokens,
            cache_write_tokens: u.cache_write_5m_tokens + u.cache_write_1h_tokens,
            note: charge.note,
            at: crate::clock::rfc3339(now),
            lease_id,
        };
        self.ledger.health.pending.fetch_add(1, Ordering::Relaxed);
        if self.ledger.writer.send(WriteOp::Usage(entry)).is_err() {
            self.ledger.health.pending.fetch_sub(1, Ordering::Relaxed);
            tracing::error!(request_id = %self.request_id, "ledger writer is gone; usage entry not persisted");
        }
        drop(closed);
        cost
    }
}

/// Counts a reservation as closed when dropped (after its entry is queued), waking a
/// shutdown that waits for every request to be settled.
struct Closed<'a>(&'a Ledger);

impl Drop for Closed<'_> {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            self.settled = true;
            self.finish(None);
        }
    }
}

/// How long the writer gathers settlements before committing them together, on
/// SQLite (one fsync per batch). Bounds what a crash can lose (an undercharge), and
/// costs nothing on the request path.
const GROUP_COMMIT: Duration = Duration::from_millis(50);
/// The same on PostgreSQL, where a commit is cheaper to the gateway (another process
/// does the fsync) and several replicas' batches commit side by side: a shorter
/// window, so that a replica killed outright loses fewer charges.
const GROUP_COMMIT_POSTGRES: Duration = Duration::from_millis(10);
/// Most entries committed in one transaction.
const MAX_BATCH: usize = 20_000;

/// Appends usage entries in batches. A failed batch is retried (entries are idempotent
/// by request ID), so a transient database error delays but never drops a charge.
async fn writer(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<WriteOp>,
    health: Arc<WriterHealth>,
    commits: crate::histogram::Histogram,
) {
    let window = if store.shared() {
        GROUP_COMMIT_POSTGRES
    } else {
        GROUP_COMMIT
    };
    let mut ops = Vec::with_capacity(4096);
    loop {
        ops.clear();
        if rx.recv_many(&mut ops, 4096).await == 0 {
            return;
        }
        // Group commit: unless someone waits for a flush, let more settlements arrive
        // for a moment, so that one transaction carries many entries.
        if !ops.iter().any(|o| matches!(o, WriteOp::Flush(_))) {
            tokio::time::sleep(window).await;
            while ops.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
        }
        let mut entries = Vec::new();
        let mut flushes = Vec::new();
        for op in ops.drain(..) {
            match op {
                WriteOp::Usage(e) => entries.push(e),
                WriteOp::Flush(tx) => flushes.push(tx),
            }
        }
        let mut delay = Duration::from_millis(50);
        while !entries.is_empty() {
            let started = std::time::Instant::now();
            match store.append_usage(&entries).await {
                Ok(()) => {
                    commits.observe(started.elapsed());
                    health.pending.fetch_sub(entries.len(), Ordering::Relaxed);
                    health.ok.store(true, Ordering::Relaxed);
                    if let Ok(mut l) = health.last_error.lock() {
                        *l = None;
                    }
                    break;
                }
                Err(e) => {
                    if health.ok.swap(false, Ordering::Relaxed) {
                        tracing::error!(error = %e, n = entries.len(), "appending usage failed; new requests are refused until it succeeds; retrying");
                    } else {
                        tracing::debug!(error = %e, n = entries.len(), "appending usage failed again; retrying");
                    }
                    if let Ok(mut l) = health.last_error.lock() {
                        *l = Some(e.to_string());
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
        for f in flushes {
            let _ = f.send(());
        }
    }
}

/// Every active key with its account's and its own residency policy and rate limits,
/// and the spending limits of the keys that have some.
async fn load_keys(
    store: &Store,
    catalog: &Catalog,
) -> Result<(KeyTable, Vec<(String, limits::SpendLimits)>), StoreError> {
    let mut keys = KeyTable::default();
    for account in store.disabled_accounts().await? {
        keys.disabled.insert(account.into());
    }
    for (account, rates) in store.account_rates().await? {
        keys.account_rates.insert(account.into(), rates);
    }
    for (account, policy) in store.account_policies().await? {
        let policy = stored_policy(catalog, &policy, "account", &account);
        keys.account_policy.insert(account.into(), policy);
    }
    let mut spend_limits = Vec::new();
    for k in store.active_keys().await? {
        let own = k
            .residency
            .as_deref()
            .map(|p| stored_policy(catalog, p, "key", &k.id));
        keys.insert(k.hash, &k.id, &k.account_id, own, k.limits.rates);
        if !k.limits.spend.is_none() {
            spend_limits.push((k.id.clone(), k.limits.spend));
        }
    }
    Ok((keys, spend_limits))
}

/// What keys have spent in total, today and this month (UTC): on SQLite every key's,
/// summed from the ledger; on PostgreSQL those of the keys with limits (`limited`), from
/// the per-day sums every replica's charges add to.
async fn key_spend_now(
    store: &Store,
    limited: &[String],
    now: time::OffsetDateTime,
) -> Result<Vec<limits::LoadedSpend>, StoreError> {
    // `YYYY-MM-DD` and `YYYY-MM`: the prefixes of the usage entries' `created_at`.
    let stamp = crate::clock::rfc3339(now);
    let (day, month) = (
        stamp.get(..10).unwrap_or_default(),
        stamp.get(..7).unwrap_or_default(),
    );
    if store.shared() {
        store.keys_spend(limited, day, month).await
    } else {
        store.key_spend(day, month).await
    }
}

/// A residency policy read from the database. One the catalog no longer accepts is
/// logged and kept as a policy that admits nothing: failing closed for that account or
/// key, rather than serving it anywhere or refusing to start for everyone.
fn stored_policy(catalog: &Catalog, value: &str, what: &str, id: &str) -> RegionConstraint {
    let (policy, invalid) = RegionConstraint::stored(value, catalog);
    if let Some(e) = invalid {
        tracing::error!(what, id, error = %e, "stored residency policy is not valid for this catalog; its requests are refused until it is set again");
    }
    policy
}

/// Emails are unique trimmed and case-insensitively.
pub fn normalize_email(e: &str) -> String {
    e.trim().to_lowercase()
}
