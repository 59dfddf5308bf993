//! Credit leases: exact credit across replicas sharing one PostgreSQL ledger.
//!
//! On PostgreSQL a replica never holds an account's balance. It holds a *lease*: a
//! slice of the account's credit granted by one atomic statement that succeeds only if
//! the account's unleased credit covers it (`gammainfra_lease_grant` in
//! `migrations/postgres/0006_leases.sql`). Requests are admitted against the lease in
//! memory, exactly as the SQLite path admits them against the balance; settlements
//! charge the lease, and the writer's group commit moves what was charged from
//! "leased" to "spent" in the same transaction as the ledger entries (a trigger). A
//! grant happens only when the lease cannot cover a request (or, in the background,
//! when it runs low), so in the steady state the request path does not touch the
//! database.
//!
//! A replica hands back what it does not use once the account is idle here
//! (`billing.lease_idle_ms`) and everything at shutdown. Its heartbeat renews its
//! leases every third of `billing.lease_ttl_ms`; a lease not renewed for that long has
//! expired and any replica closes it, returning its unused credit to the account. A
//! replica whose heartbeat has not succeeded for four fifths of the TTL stops admitting
//! requests until one does, and
//! one that finds a lease of its own closed by another stops for good (until
//! restarted): its memory no longer matches the database. The exact bounds are in
//! docs/scaling.md.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::store::GrantError;
use super::{keys, AdmitError, InsufficientCredits, Ledger};
use crate::money::Nanos;

/// A lease this replica holds on one account, in that account's [`super::Balance`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalLease {
    pub id: Arc<str>,
    /// When it was first granted (a heartbeat sent before does not know it).
    pub since: Instant,
    /// The last request admitted under it.
    pub last_admit: Instant,
}

/// The lease settings and state of a replica on PostgreSQL.
pub(super) struct Shared {
    pub ttl: Duration,
    pub slice: Nanos,
    pub idle: Duration,
    /// Serialises grants per account, so that a burst of requests takes one slice.
    grants: Mutex<HashMap<Arc<str>, Arc<tokio::sync::Mutex<()>>>>,
    /// When the last successful heartbeat was sent.
    renewed: Mutex<Instant>,
    /// Set for good when a lease of this replica was closed by another: this process's
    /// memory no longer matches the database.
    lost: AtomicBool,
    /// Background grants in flight, per account.
    prefetching: Mutex<std::collections::HashSet<Arc<str>>>,
}

impl Shared {
    pub fn new(billing: &crate::ledger::Billing) -> Self {
        Self {
            ttl: billing.lease_ttl,
            slice: billing.lease_slice,
            idle: billing.lease_idle,
            grants: Mutex::default(),
            renewed: Mutex::new(Instant::now()),
            lost: AtomicBool::new(false),
            prefetching: Mutex::default(),
        }
    }

    fn half_slice(&self) -> Nanos {
        Nanos::from_nanos(self.slice.nanos() / 2)
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX)
    }

    /// Why this replica may not admit requests under its leases, if so.
    pub fn unavailable(&self) -> Option<String> {
        if self.lost.load(Ordering::Relaxed) {
            return Some("a credit lease of this replica was closed by another replica after it expired (this replica could not reach PostgreSQL for longer than billing.lease_ttl_ms); restart this replica".into());
        }
        let since = self
            .renewed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed();
        // A margin of a fifth of the TTL for clock rates and the heartbeat's own time:
        // the lease must still be valid in the database when a request is admitted.
        (since > self.ttl - self.ttl / 5).then(|| {
            format!("the credit leases of this replica could not be renewed for {since:.1?} (PostgreSQL unreachable?)")
        })
    }

    fn grant_lock(&self, account: &Arc<str>) -> Arc<tokio::sync::Mutex<()>> {
        self.grants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(account.clone())
            .or_default()
            .clone()
    }
}

impl Ledger {
    fn shared(&self) -> Option<&Shared> {
        self.shared.as_ref()
    }

    /// Admits a request: [`Ledger::reserve`], and on PostgreSQL, when the lease on the
    /// account cannot cover it, a grant from the account's unleased credit first.
    pub async fn admit(
        self: &Arc<Self>,
        key: &super::KeyInfo,
        request_id: &str,
        amount: Nanos,
        client: &super::ClientHandle,
    ) -> Result<super::Reservation, AdmitError> {
        let Some(shared) = self.shared() else {
            return self.reserve(key, request_id, amount, client);
        };
        // A few rounds: a grant may be taken by concurrent requests of the same account
        // before this one reserves, in which case it asks again.
        for _ in 0..4 {
            match self.reserve(key, request_id, amount, client) {
                Err(AdmitError::Insufficient(_)) => {}
                r => return r,
            }
            self.grant(shared, &key.account_id, amount, false).await?;
        }
        self.reserve(key, request_id, amount, client)
    }

    /// Extends this replica's lease on `account` until it covers `amount` available,
    /// or fails with what the account has. A `prefetch` asks for no particular amount:
    /// the database grants its usual slice (at most a quarter of what is unleased), so
    /// that one busy replica does not take a small account's credit from the others.
    async fn grant(
        &self,
        shared: &Shared,
        account: &Arc<str>,
        amount: Nanos,
        prefetch: bool,
    ) -> Result<(), AdmitError> {
        let lock = shared.grant_lock(account);
        let _one = lock.lock().await;
        for _ in 0..2 {
            let (local, lease) = {
                let mut a = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
                let b = a.entry(account.clone()).or_default();
                if b.available() >= amount {
                    return Ok(());
                }
                // The lease is recorded here once the database has granted it.
                let lease = b
                    .lease
                    .as_ref()
                    .map_or_else(|| keys::random_id("lease_").into(), |l| l.id.clone());
                (b.available(), lease)
            };
            let need = if prefetch {
                Nanos::ZERO
            } else {
                amount - local.max(Nanos::ZERO)
            };
            match self
                .store
                .lease_grant(&lease, account, need, shared.slice, shared.ttl_ms())
                .await
            {
                Ok(g) if g.granted > Nanos::ZERO => {
                    self.credit_lease(account, &lease, g.granted);
                    return Ok(());
                }
                Ok(g) => {
                    return Err(InsufficientCredits {
                        needed: amount,
                        available: local.max(Nanos::ZERO) + g.available,
                    }
                    .into())
                }
                Err(GrantError::Closed(_)) => {
                    // Closed by this replica's idle return racing this grant, or by
                    // another replica after expiry (then the heartbeat stops us).
                    self.forget_lease(account, &lease);
                }
                Err(GrantError::Store(e)) => {
                    return Err(AdmitError::LedgerUnavailable(format!(
                        "could not lease credit: {e}"
                    )))
                }
            }
        }
        Err(AdmitError::LedgerUnavailable(
            "could not lease credit: the lease was closed twice in a row".into(),
        ))
    }

    fn credit_lease(&self, account: &Arc<str>, lease: &Arc<str>, granted: Nanos) {
        let mut a = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let b = a.entry(account.clone()).or_default();
        match &b.lease {
            Some(l) if &l.id == lease => {}
            Some(l) => {
                // Cannot happen while grants are serialised per account.
                tracing::error!(%account, %lease, held = %l.id, "a lease grant arrived for a lease no longer held");
                return;
            }
            None => {
                let now = Instant::now();
                b.lease = Some(LocalLease {
                    id: lease.clone(),
                    since: now,
                    last_admit: now,
                });
            }
        }
        b.balance = b.balance + granted;
    }

    /// Drops a lease that the database has closed, with what was left of it. If
    /// requests in flight were admitted under it, this replica's memory no longer
    /// matches the database (their credit went back to the account): it stops
    /// admitting requests until restarted.
    fn forget_lease(&self, account: &Arc<str>, lease: &Arc<str>) {
        let mut a = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let b = a.entry(account.clone()).or_default();
        if b.lease.as_ref().is_some_and(|l| &l.id == lease) {
            b.lease = None;
            b.balance = b.reserved;
            if b.reserved > Nanos::ZERO {
                if let Some(s) = self.shared() {
                    s.lost.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    /// Notes an admission under `b`'s lease (held under the balances' lock by
    /// [`Ledger::reserve`]); returns whether the lease has run below half a slice.
    pub(super) fn note_admission(&self, b: &mut super::Balance) -> bool {
        let Some(shared) = self.shared() else {
            return false;
        };
        if let Some(l) = &mut b.lease {
            l.last_admit = Instant::now();
        }
        b.available() < shared.half_slice()
    }

    /// Starts a background grant for a lease that runs low, so that the next requests
    /// find credit here without waiting for the database.
    pub(super) fn prefetch(self: &Arc<Self>, account: &Arc<str>) {
        let Some(shared) = self.shared() else { return };
        if !shared
            .prefetching
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(account.clone())
        {
            return;
        }
        let (me, account) = (self.clone(), account.clone());
        tokio::spawn(async move {
            if let Some(shared) = me.shared() {
                // Done when the lease has half a slice available again; an account that
                // cannot spare more simply is not prefetched.
                let _ = me.grant(shared, &account, shared.half_slice(), true).await;
                shared
                    .prefetching
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&account);
            }
        });
    }

    /// Waits, at most `timeout`, for the background grants [`Ledger::prefetch`] started:
    /// at shutdown, a grant still running would open a lease after the leases were
    /// handed back (the sweep skips an account whose grant is busy), and it would stay
    /// open until it expired.
    pub(super) async fn wait_prefetches(&self, timeout: Duration) {
        let Some(shared) = self.shared() else { return };
        let deadline = Instant::now() + timeout;
        while !shared
            .prefetching
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Hands back the unused credit of leases idle for `billing.lease_idle_ms` (all of
    /// them with `all`, at shutdown, once nothing is in flight), closing each lease
    /// once nothing of it is outstanding.
    pub(super) async fn return_idle_leases(&self, all: bool) {
        let Some(shared) = self.shared() else { return };
        let now = Instant::now();
        let idle: Vec<(Arc<str>, Arc<str>, Nanos)> = {
            let mut a = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
            // Accounts this replica holds nothing for are forgotten, so that the sweep
            // (and the maps) stay as small as the set of accounts active here.
            a.retain(|_, b| {
                b.lease.is_some()
                    || b.reserved != Nanos::ZERO
                    || b.in_flight != 0
                    || b.detached != 0
                    || b.balance != Nanos::ZERO
            });
            shared
                .grants
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|_, m| Arc::strong_count(m) > 1 || m.try_lock().is_err());
            a.iter_mut()
                .filter_map(|(account, b)| {
                    let l = b.lease.as_ref()?;
                    let quiet = all || now.duration_since(l.last_admit) >= shared.idle;
                    if !quiet || b.reserved != Nanos::ZERO || shared.grants_busy(account) {
                        return None;
                    }
                    let r = b.balance.max(Nanos::ZERO);
                    let id = l.id.clone();
                    // Taken out of reach of admissions before the database hears of it.
                    b.balance = b.balance - r;
                    Some((account.clone(), id, r))
                })
                .collect()
        };
        for (account, lease, r) in idle {
            let result = self.store.lease_return(&lease, r).await;
            self.returned(shared, &account, &lease, r, result);
        }
    }

    /// Hands back at once the credit this replica's lease on `account` holds and no
    /// request has reserved (after credit was taken back from the account, so that its
    /// next requests are admitted against what the database has left).
    pub(super) async fn hand_back(&self, account: &str) {
        let Some(shared) = self.shared() else { return };
        let taken = {
            let mut a = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
            a.get_mut(account).and_then(|b| {
                let l = b.lease.as_ref()?;
                let r = (b.balance - b.reserved).max(Nanos::ZERO);
                // Nothing to hand back, and the lease stays open for what is reserved.
                if r == Nanos::ZERO && b.reserved != Nanos::ZERO {
                    return None;
                }
                let id = l.id.clone();
                b.balance = b.balance - r;
                Some((Arc::<str>::from(account), id, r))
            })
        };
        if let Some((account, lease, r)) = taken {
            let result = self.store.lease_return(&lease, r).await;
            self.returned(shared, &account, &lease, r, result);
        }
    }

    /// After `r` of `lease` was handed back (or not): the lease is forgotten once
    /// closed; a failed return gives the credit back to the lease.
    fn returned(
        &self,
        shared: &Shared,
        account: &Arc<str>,
        lease: &Arc<str>,
        r: Nanos,
        result: Result<bool, GrantError>,
    ) {
        match result {
            Ok(closed) => {
                if closed {
                    let mut a = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(b) = a.get_mut(account) {
                        if b.lease.as_ref().is_some_and(|l| &l.id == lease)
                            && b.reserved == Nanos::ZERO
                        {
                            b.lease = None;
                        }
                    }
                }
            }
            Err(GrantError::Closed(_)) => {
                tracing::error!(%account, %lease, "a credit lease of this replica was closed by another replica; no request is accepted until this replica restarts");
                shared.lost.store(true, Ordering::Relaxed);
                self.forget_lease(account, lease);
            }
            Err(GrantError::Store(e)) => {
                tracing::warn!(%account, %lease, error = %e, "could not hand back lease credit; will retry");
                let mut a = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(b) = a.get_mut(account) {
                    if b.lease.as_ref().is_some_and(|l| &l.id == lease) {
                        b.balance = b.balance + r;
                    }
                }
            }
        }
    }

    /// Renews this replica's leases and closes expired ones (any replica's).
    async fn heartbeat(&self) {
        let Some(shared) = self.shared() else { return };
        let sent = Instant::now();
        match self.store.lease_heartbeat(shared.ttl_ms()).await {
            Ok(open) => {
                let open: std::collections::HashSet<String> = open.into_iter().collect();
                let lost: Vec<(Arc<str>, Arc<str>)> = {
                    let a = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
                    a.iter()
                        .filter_map(|(acct, b)| {
                            let l = b.lease.as_ref()?;
                            (l.since < sent && !open.contains(&*l.id) && !shared.grants_busy(acct))
                                .then(|| (acct.clone(), l.id.clone()))
                        })
                        .collect()
                };
                if lost.is_empty() {
                    *shared
                        .renewed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = sent;
                } else {
                    tracing::error!(leases = ?lost, "credit leases of this replica were closed by another replica after they expired; no request is accepted until this replica restarts");
                    shared.lost.store(true, Ordering::Relaxed);
                    for (acct, lease) in lost {
                        self.forget_lease(&acct, &lease);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not renew this replica's credit leases"),
        }
        match self.store.close_expired_leases().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                n,
                "closed expired credit leases of other replicas and returned their unused credit"
            ),
            Err(e) => tracing::warn!(error = %e, "could not close expired credit leases"),
        }
    }

    /// At start: closes what a previous process with this replica ID left open (it is
    /// dead: this process holds the ID's lock) and any expired lease, then keeps the
    /// leases renewed and idle credit handed back for as long as the ledger lives.
    pub(super) async fn start_leases(self: &Arc<Self>) -> Result<(), super::StoreError> {
        let Some(replica) = self.store.replica_id().map(str::to_owned) else {
            return Ok(());
        };
        let n = self.store.close_replica_leases(&replica).await?;
        if n > 0 {
            tracing::warn!(
                n,
                replica,
                "closed the credit leases a previous run of this replica left open"
            );
        }
        self.store.close_expired_leases().await?;
        let weak: Weak<Ledger> = Arc::downgrade(self);
        let ttl = self.shared().map_or(Duration::from_secs(15), |s| s.ttl);
        // The heartbeat runs on its own, so that slow idle returns or spend refreshes
        // cannot delay the renewal of the leases.
        let beat_weak = weak.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(ttl / 3);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                every.tick().await;
                let Some(me) = beat_weak.upgrade() else {
                    return;
                };
                if me.closing.load(Ordering::Relaxed) {
                    return;
                }
                me.heartbeat().await;
            }
        });
        tokio::spawn(async move {
            let tick = Duration::from_millis(250).min(ttl / 3);
            let mut last_spend = Instant::now();
            loop {
                tokio::time::sleep(tick).await;
                let Some(me) = weak.upgrade() else { return };
                if me.closing.load(Ordering::Relaxed) {
                    return;
                }
                me.return_idle_leases(false).await;
                if last_spend.elapsed() >= SPEND_REFRESH {
                    last_spend = Instant::now();
                    me.refresh_spend().await;
                }
            }
        });
        Ok(())
    }
}

/// How often a replica reloads the spend of keys with spending limits from the
/// database, where every replica's committed charges are.
pub const SPEND_REFRESH: Duration = Duration::from_secs(1);

impl Ledger {
    /// Sets the spend of every key with spending limits to the database's, plus what
    /// this replica settled since: the other replicas' charges are counted within
    /// [`SPEND_REFRESH`] (and their group commit) of being settled.
    async fn refresh_spend(&self) {
        let marked = self
            .spending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .mark();
        if marked.is_empty() {
            return;
        }
        // What was settled here before the mark is committed first, so the database's
        // sums hold it; what is settled after is counted apart.
        if let Err(e) = self.flush_timeout().await {
            tracing::warn!(error = %e, "not refreshing key spend: charges are not committed");
            return;
        }
        let now = time::OffsetDateTime::now_utc();
        match super::key_spend_now(&self.store, &marked, now).await {
            Ok(loaded) => self
                .spending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .refresh(&marked, loaded, now),
            Err(e) => tracing::warn!(error = %e, "could not refresh key spend from the database"),
        }
    }
}

impl Shared {
    /// Whether a grant for `account` is in progress (its lease is about to change).
    fn grants_busy(&self, account: &Arc<str>) -> bool {
        self.grants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(account)
            .is_some_and(|m| m.try_lock().is_err())
    }
}
