//! What the router observes of each endpoint's answers, for `provider.sort`.
//!
//! Each endpoint's observations live next to its circuit state, in atomics: no lock on
//! the hot path, and per process (replicas do not share them; a restart forgets them).
//! Each is a decaying average (EWMA) in which a new sample weighs [`EWMA_DIVISOR`]⁻¹
//! (a quarter): after eight more samples an old one weighs about a tenth (0.75⁸). Integers
//! throughout: time to first token in microseconds, throughput in thousandths of a
//! token per second.
//!
//! * **Time to first token**, from streamed answers only: from the call of the
//!   provider's adapter to the first chunk that carries output. A non-streamed answer
//!   has no first token the gateway can see, so it never feeds this average.
//! * **Throughput**: a stream's output tokens (the provider's final usage) over the time
//!   from its first output chunk to its end, from streams that ended normally; a
//!   non-streamed answer's output tokens over the whole call. The clock runs at the
//!   gateway: a client that reads a stream slowly enough to hold the provider back
//!   lowers its figure.
//!
//! Failures are not observations: a failing endpoint is the circuit breaker's business.
//!
//! An endpoint with no observation of the sorted quantity, or whose last one is older
//! than [`OBSERVATION_TTL_MS`], is *unobserved*. Unobserved endpoints go first (in price
//! order) so that each is measured, and re-measured once its figure is stale: otherwise
//! an endpoint measured slow once would never be tried again to see that it recovered.
//! The cost: requests that arrive together while an endpoint is unobserved all go to it,
//! until its first answer is timed.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// The weight of a new sample in an observation's decaying average is one over this.
pub const EWMA_DIVISOR: u64 = 4;
/// An observation older than this counts as none: the endpoint is measured afresh.
pub const OBSERVATION_TTL_MS: i64 = 5 * 60 * 1000;
/// Throughput is timed over at least this long, so that a stream delivered in one burst
/// does not record an unbounded figure.
const MIN_TIMED: Duration = Duration::from_millis(1);

/// One endpoint's observations, next to its circuit state.
#[derive(Default)]
pub(super) struct Observed {
    /// Time to first token, microseconds.
    ttft: Ewma,
    /// Output tokens per second, thousandths.
    throughput: Ewma,
}

impl Observed {
    pub(super) fn record_ttft(&self, ttft: Duration, now: i64) {
        let us = u64::try_from(ttft.as_micros()).unwrap_or(u64::MAX);
        self.ttft.record(us, now);
    }

    /// `output_tokens` in `time` (at least [`MIN_TIMED`]); nothing when there was no
    /// output.
    pub(super) fn record_throughput(&self, output_tokens: u64, time: Duration, now: i64) {
        if output_tokens == 0 {
            return;
        }
        let us = time.max(MIN_TIMED).as_micros();
        // Thousandths of a token per second: tokens × 1000 × 10⁶ / µs.
        let milli = u128::from(output_tokens) * 1_000_000_000 / us;
        self.throughput
            .record(u64::try_from(milli).unwrap_or(u64::MAX), now);
    }

    pub(super) fn ttft_us(&self, now: i64) -> Option<u64> {
        self.ttft.read(now)
    }

    pub(super) fn tokens_per_s_milli(&self, now: i64) -> Option<u64> {
        self.throughput.read(now)
    }

    pub(super) fn snapshot(&self, now: i64) -> Observation {
        Observation {
            ttft_us: self.ttft.read(now),
            ttft_samples: self.ttft.samples.load(Ordering::Relaxed),
            tokens_per_s_milli: self.throughput.read(now),
            throughput_samples: self.throughput.samples.load(Ordering::Relaxed),
        }
    }
}

/// A decaying average in atomics. 0 means no sample yet (samples are stored as at
/// least 1). Concurrent updates may interleave between the value and its time stamp;
/// at worst a sample blends into a figure that had just gone stale.
#[derive(Default)]
struct Ewma {
    value: AtomicU64,
    at_ms: AtomicI64,
    samples: AtomicU64,
}

impl Ewma {
    fn record(&self, sample: u64, now: i64) {
        let sample = sample.max(1);
        let fresh = self.is_fresh(now);
        let _ = self
            .value
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 || !fresh {
                    sample
                } else {
                    blend(old, sample)
                })
            });
        self.at_ms.store(now, Ordering::Relaxed);
        self.samples.fetch_add(1, Ordering::Relaxed);
    }

    /// The average, if there is one and it is not stale.
    fn read(&self, now: i64) -> Option<u64> {
        let v = self.value.load(Ordering::Relaxed);
        (v != 0 && self.is_fresh(now)).then_some(v)
    }

    fn is_fresh(&self, now: i64) -> bool {
        now.saturating_sub(self.at_ms.load(Ordering::Relaxed)) <= OBSERVATION_TTL_MS
    }
}

/// `old + (sample - old) / EWMA_DIVISOR`, in integers.
fn blend(old: u64, sample: u64) -> u64 {
    let d = u128::from(EWMA_DIVISOR);
    let v = (u128::from(old) * (d - 1) + u128::from(sample)) / d;
    u64::try_from(v).unwrap_or(u64::MAX).max(1)
}

/// What this process has observed of one endpoint ([`super::Router::observed`]). An average is
/// `None` when there is no sample, or the last is older than [`OBSERVATION_TTL_MS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Observation {
    /// Decaying average of the time to first token of streamed answers, microseconds.
    pub ttft_us: Option<u64>,
    /// Samples of the time to first token taken since the process started.
    pub ttft_samples: u64,
    /// Decaying average of output tokens per second, in thousandths.
    pub tokens_per_s_milli: Option<u64>,
    /// Samples of throughput taken since the process started.
    pub throughput_samples: u64,
}
