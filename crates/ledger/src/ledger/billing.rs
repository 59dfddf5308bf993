//! The billing rules that are configuration: trial, minimum top-up, fees, and the
//! ledger's bounds.

use std::time::Duration;

use crate::money::Nanos;

/// The billing rules that are configuration, not code.
#[derive(Debug, Clone, PartialEq)]
pub struct Billing {
    pub trial: Nanos,
    pub min_topup: Nanos,
    /// Sorted by `from`; the last step whose `from` is not after now applies.
    pub topup_fees: Vec<FeeStep>,
    /// Requests of one account whose client has gone while the gateway still serves them
    /// upstream (to bill them from the provider's own usage). At this many, the account's
    /// new requests are refused with 429 until some finish.
    pub max_detached_per_account: u32,
    /// Usage charges settled but not yet committed to the database. At this many (or
    /// while the database refuses writes) new requests are refused with 503: the ledger
    /// fails closed, and what a crash can lose stays bounded.
    pub max_unwritten_usage: usize,
    /// How long admin reads and shutdown wait for queued charges to be committed.
    pub flush_timeout: Duration,
    /// How long shutdown waits for requests still running (those whose clients left
    /// included) to finish and settle.
    pub shutdown_drain: Duration,
    /// PostgreSQL: how long a replica's credit lease lives without being renewed (its
    /// heartbeat renews it every third of this). A dead replica's unused credit returns
    /// to its accounts after this, plus at most a third of it.
    pub lease_ttl: Duration,
    /// PostgreSQL: the most credit a replica leases on an account at once beyond what a
    /// request needs (a quarter of the account's unleased credit, if less).
    pub lease_slice: Nanos,
    /// PostgreSQL: a replica hands back the unused credit of an account it has not
    /// admitted a request for in this long.
    pub lease_idle: Duration,
    /// Hold the end of each answer (a non-streamed body, a stream's last frames) until
    /// its charge is committed, so that a process killed outright has billed every
    /// answer a client received in full. Costs a commit's wait on every request.
    pub commit_before_answer: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeeStep {
    pub from: time::OffsetDateTime,
    /// Hundredths of a percent.
    pub basis_points: i64,
}

impl Billing {
    /// The top-up fee in force at `at`, in hundredths of a percent.
    pub fn fee_basis_points(&self, at: time::OffsetDateTime) -> i64 {
        self.topup_fees
            .iter()
            .rev()
            .find(|s| s.from <= at)
            .map_or(0, |s| s.basis_points)
    }

    /// The top-up fee at `at` for `amount` (whole cents), rounded half-up to the cent.
    /// The product is formed in `i128` (cents and basis points are each `i64`, so it
    /// cannot overflow there) and the fee saturates at [`Nanos::MAX`]; the top-up handler
    /// refuses any amount whose charge would not fit before it gets here.
    pub fn topup_fee(&self, amount: Nanos, at: time::OffsetDateTime) -> Nanos {
        let bp = self.fee_basis_points(at);
        let cents = i128::from(amount.whole_cents().unwrap_or(0));
        let fee_cents = (cents * i128::from(bp) + 5_000).div_euclid(10_000);
        Nanos::from_cents(i64::try_from(fee_cents).unwrap_or(i64::MAX))
    }
}

impl Default for Billing {
    fn default() -> Self {
        Self {
            trial: Nanos::from_cents(300),
            min_topup: Nanos::from_cents(1000),
            topup_fees: default_fees(),
            max_detached_per_account: 8,
            max_unwritten_usage: 100_000,
            flush_timeout: Duration::from_secs(10),
            shutdown_drain: Duration::from_secs(60),
            lease_ttl: Duration::from_secs(15),
            lease_slice: Nanos::from_cents(500),
            lease_idle: Duration::from_secs(2),
            commit_before_answer: false,
        }
    }
}

fn default_fees() -> Vec<FeeStep> {
    vec![
        FeeStep {
            from: time::macros::datetime!(2000-01-01 0:00 UTC),
            basis_points: 300,
        },
        FeeStep {
            from: time::macros::datetime!(2026-06-24 0:00 UTC),
            basis_points: 500,
        },
    ]
}
