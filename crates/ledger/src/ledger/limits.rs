//! Per-key spending limits: a total, a UTC-day and a UTC-month ceiling on what one API
//! key may spend, enforced at admission exactly like the balance.
//!
//! # Why in memory
//! As for balances (see the [ledger](super)), each key's spend is kept in memory and
//! checked with a few integer operations (on SQLite this process is the only writer of
//! its database; on PostgreSQL each replica counts what it has seen, see
//! docs/scaling.md): at start it is summed from the key's usage entries (by the text prefix
//! of their `created_at`, `YYYY-MM-DD` for the day and `YYYY-MM` for the month, which is
//! how the entries are dated: UTC, RFC 3339), then every settlement adds its charge.
//!
//! # The rule
//! A request is admitted only if, for every limit the key has, the key's spend in that
//! window, plus the reservations of its requests still in flight, plus this request's
//! reservation (its worst-case cost) stays at or under the limit. A settled request
//! counts in the window of its settlement (the date of its usage entry), so memory and
//! database agree on which day a charge belongs to.
//!
//! # Windows
//! Days and months are UTC calendar windows. They roll over lazily: each key's state
//! remembers which day and month its counters are for, and the first access in a new
//! window starts that counter at zero. Every function takes the time as an argument, so
//! the window arithmetic is tested without waiting for midnight.

use std::collections::HashMap;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::money::Nanos;

/// A key's spending limits; `None` is no limit for that window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpendLimits {
    pub total: Option<Nanos>,
    pub daily: Option<Nanos>,
    pub monthly: Option<Nanos>,
}

impl SpendLimits {
    pub fn is_none(&self) -> bool {
        *self == Self::default()
    }
}

/// Which spending window a limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Total,
    Day,
    Month,
}

impl Window {
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Total => "total",
            Window::Day => "daily",
            Window::Month => "monthly",
        }
    }
}

/// A request refused because it could take its key over a spending limit.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.message())]
pub struct SpendLimitReached {
    pub key_id: Arc<str>,
    pub window: Window,
    pub limit: Nanos,
    /// Spent in the window so far (settled requests).
    pub spent: Nanos,
    /// Held by the key's requests still in flight.
    pub in_flight: Nanos,
    /// This request's reservation (its worst-case cost).
    pub needed: Nanos,
    /// Seconds until the window resets (`None` for the total, which never does).
    pub resets_in: Option<u64>,
    /// When the window resets, RFC 3339.
    pub resets_at: Option<String>,
    /// This request alone costs more than the limit: no retry can succeed.
    pub never_fits: bool,
    /// Refused only because of requests in flight: it fits once they settle.
    pub only_in_flight: bool,
}

impl SpendLimitReached {
    fn message(&self) -> String {
        let what = match self.window {
            Window::Total => "total spending limit",
            Window::Day => "daily spending limit (UTC day)",
            Window::Month => "monthly spending limit (UTC month)",
        };
        if self.never_fits {
            return format!(
                "This request may cost up to ${}, more than key {}'s {what} of ${} on its own. Lower max_tokens (or send a smaller request); retrying it unchanged cannot succeed.",
                self.needed, self.key_id, self.limit
            );
        }
        let reset = match (&self.resets_at, self.only_in_flight) {
            (_, true) => " It fits once requests in flight settle.".to_owned(),
            (Some(at), false) => format!(" The limit resets at {at}."),
            (None, false) => {
                " The total limit does not reset; an administrator can raise it.".to_owned()
            }
        };
        format!(
            "This request may cost up to ${} and would take key {} over its {what} of ${}: ${} spent, ${} held by requests in flight.{reset} Lower max_tokens or retry later.",
            self.needed, self.key_id, self.limit, self.spent, self.in_flight
        )
    }
}

/// Of two windows a request does not fit, the one to answer with: one it can never
/// fit first, then one that waits for a reset (the later reset; a total limit, which
/// never resets, beats any), then one that only waits for requests in flight.
fn worse(a: SpendLimitReached, b: SpendLimitReached) -> SpendLimitReached {
    let rank = |r: &SpendLimitReached| -> (u8, u64) {
        if r.never_fits {
            (3, 0)
        } else if r.only_in_flight {
            (0, 0)
        } else {
            match r.resets_in {
                None => (2, 0),
                Some(s) => (1, s),
            }
        }
    };
    if rank(&b) > rank(&a) {
        b
    } else {
        a
    }
}

/// The UTC day number (days since 1970-01-01).
pub fn day_of(t: OffsetDateTime) -> i64 {
    t.unix_timestamp().div_euclid(86_400)
}

/// The UTC month number (`year * 12 + month - 1`).
pub fn month_of(t: OffsetDateTime) -> i64 {
    let t = t.to_offset(time::UtcOffset::UTC);
    i64::from(t.year()) * 12 + i64::from(u8::from(t.month())) - 1
}

/// The instant the window containing `t` ends (`None` for the total).
pub fn window_end(window: Window, t: OffsetDateTime) -> Option<OffsetDateTime> {
    let t = t.to_offset(time::UtcOffset::UTC);
    match window {
        Window::Total => None,
        Window::Day => OffsetDateTime::from_unix_timestamp((day_of(t) + 1) * 86_400).ok(),
        Window::Month => {
            let (y, m) = match t.month() {
                time::Month::December => (t.year() + 1, time::Month::January),
                m => (t.year(), m.next()),
            };
            time::Date::from_calendar_date(y, m, 1)
                .ok()
                .map(|d| d.midnight().assume_utc())
        }
    }
}

/// One key's limits and spend.
#[derive(Debug, Clone, Copy, Default)]
struct KeySpend {
    limits: SpendLimits,
    total: Nanos,
    /// (day number, spent that day)
    day: (i64, Nanos),
    /// (month number, spent that month)
    month: (i64, Nanos),
    /// Reservations of the key's requests in flight.
    reserved: Nanos,
    /// Settled here since the last [`Spending::mark`]: (total, (day, spent), (month,
    /// spent)), added to what the database says at the next [`Spending::refresh`].
    since: (Nanos, (i64, Nanos), (i64, Nanos)),
}

impl KeySpend {
    /// Starts a new day or month at zero when `now` is past the stored one.
    fn roll(&mut self, now: OffsetDateTime) {
        let (d, m) = (day_of(now), month_of(now));
        if self.day.0 != d {
            self.day = (d, Nanos::ZERO);
        }
        if self.month.0 != m {
            self.month = (m, Nanos::ZERO);
        }
    }
}

/// A key's spend as shown by the admin API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SpendView {
    #[serde(rename = "total_usd")]
    pub total: Nanos,
    #[serde(rename = "today_usd")]
    pub today: Nanos,
    #[serde(rename = "this_month_usd")]
    pub month: Nanos,
    #[serde(rename = "in_flight_usd")]
    pub reserved: Nanos,
}

/// Every key's limits and spend. Kept under the ledger's lock discipline: admission
/// takes it while holding the balances' lock (always in that order), settlement alone.
#[derive(Debug, Default)]
pub struct Spending {
    keys: HashMap<Arc<str>, KeySpend>,
}

/// A key's spend summed from the store at start.
#[derive(Debug, Clone)]
pub struct LoadedSpend {
    pub key_id: String,
    pub total: Nanos,
    pub day: Nanos,
    pub month: Nanos,
}

impl Spending {
    /// Builds the state from the summed usage (`loaded`, summed for the day and month
    /// of `now`) and the keys' limits.
    pub fn load(
        loaded: Vec<LoadedSpend>,
        limits: impl IntoIterator<Item = (String, SpendLimits)>,
        now: OffsetDateTime,
    ) -> Self {
        let (d, m) = (day_of(now), month_of(now));
        let mut keys: HashMap<Arc<str>, KeySpend> = HashMap::new();
        for l in loaded {
            keys.insert(
                l.key_id.as_str().into(),
                KeySpend {
                    total: l.total,
                    day: (d, l.day),
                    month: (m, l.month),
                    ..KeySpend::default()
                },
            );
        }
        for (id, lim) in limits {
            let k = keys.entry(id.as_str().into()).or_insert_with(|| KeySpend {
                day: (d, Nanos::ZERO),
                month: (m, Nanos::ZERO),
                ..KeySpend::default()
            });
            k.limits = lim;
        }
        Self { keys }
    }

    /// Sets every key's limits to `limits` (keys not in it have none).
    pub fn replace_limits(&mut self, limits: impl IntoIterator<Item = (String, SpendLimits)>) {
        for k in self.keys.values_mut() {
            k.limits = SpendLimits::default();
        }
        for (id, l) in limits {
            self.set_limits(&id, l);
        }
    }

    pub fn set_limits(&mut self, key_id: &str, limits: SpendLimits) {
        self.keys.entry(key_id.into()).or_default().limits = limits;
    }

    pub fn limits(&self, key_id: &str) -> SpendLimits {
        self.keys.get(key_id).map(|k| k.limits).unwrap_or_default()
    }

    /// The key's spend in the windows of `now`.
    pub fn view(&self, key_id: &str, now: OffsetDateTime) -> SpendView {
        let Some(mut k) = self.keys.get(key_id).copied() else {
            return SpendView::default();
        };
        k.roll(now);
        SpendView {
            total: k.total,
            today: k.day.1,
            month: k.month.1,
            reserved: k.reserved,
        }
    }

    /// Admits `amount` for `key_id` if it fits every limit of the key, and holds it.
    pub fn reserve(
        &mut self,
        key_id: &Arc<str>,
        amount: Nanos,
        now: OffsetDateTime,
    ) -> Result<(), SpendLimitReached> {
        let k = self.keys.entry(key_id.clone()).or_default();
        k.roll(now);
        if !k.limits.is_none() {
            let windows = [
                (Window::Total, k.limits.total, k.total),
                (Window::Day, k.limits.daily, k.day.1),
                (Window::Month, k.limits.monthly, k.month.1),
            ];
            // Every window the request does not fit, to answer with the one that matters:
            // the request alone over a limit (no retry helps), or only requests in flight
            // in the way (retry soon), or else the latest reset among the failing windows.
            let mut refused: Option<SpendLimitReached> = None;
            for (window, limit, spent) in windows {
                let Some(limit) = limit else { continue };
                // Checked: an overflow cannot fit any limit.
                let fits = spent
                    .checked_add(k.reserved)
                    .and_then(|s| s.checked_add(amount))
                    .is_some_and(|total| total <= limit);
                if fits {
                    continue;
                }
                let never_fits = amount > limit;
                let only_in_flight = spent.checked_add(amount).is_some_and(|t| t <= limit);
                let end = window_end(window, now);
                let this = SpendLimitReached {
                    key_id: key_id.clone(),
                    window,
                    limit,
                    spent,
                    in_flight: k.reserved,
                    needed: amount,
                    resets_in: if only_in_flight {
                        Some(1)
                    } else {
                        // Rounded up: retrying a moment early would be refused again.
                        end.map(|e| {
                            let ms = (e - now).whole_milliseconds().max(1);
                            u64::try_from((ms + 999) / 1000).unwrap_or(1)
                        })
                    },
                    resets_at: end.and_then(|e| {
                        e.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    }),
                    never_fits,
                    only_in_flight,
                };
                refused = Some(match refused {
                    None => this,
                    Some(prev) => worse(prev, this),
                });
            }
            if let Some(mut r) = refused {
                if r.never_fits {
                    r.resets_in = None;
                }
                return Err(r);
            }
        }
        k.reserved = k.reserved + amount;
        Ok(())
    }

    /// Releases a reservation of `amount` and counts `cost` (possibly zero) in the
    /// windows of `now`, the settlement's time.
    pub fn settle(&mut self, key_id: &Arc<str>, amount: Nanos, cost: Nanos, now: OffsetDateTime) {
        let k = self.keys.entry(key_id.clone()).or_default();
        k.roll(now);
        k.reserved = k.reserved.saturating_sub(amount).max(Nanos::ZERO);
        k.total = k.total + cost;
        k.day.1 = k.day.1 + cost;
        k.month.1 = k.month.1 + cost;
        let (d, m) = (day_of(now), month_of(now));
        let since = &mut k.since;
        since.0 = since.0 + cost;
        since.1 = (
            d,
            if since.1 .0 == d {
                since.1 .1 + cost
            } else {
                cost
            },
        );
        since.2 = (
            m,
            if since.2 .0 == m {
                since.2 .1 + cost
            } else {
                cost
            },
        );
    }

    /// The keys that have spending limits, with what they settled here forgotten: what
    /// they settle from now on is counted apart, for [`Spending::refresh`]. (Several
    /// replicas, each counting only its own settlements, refresh from the database.)
    pub fn mark(&mut self) -> Vec<String> {
        self.keys
            .iter_mut()
            .filter(|(_, k)| !k.limits.is_none())
            .map(|(id, k)| {
                k.since = Default::default();
                id.to_string()
            })
            .collect()
    }

    /// Sets the spend of the keys [`Spending::mark`] returned to what the database had
    /// committed (`loaded`, summed for the day and month of `now`; a key missing from it
    /// spent nothing) plus what they settled here since the mark. Some of the latter may
    /// be in the database already: the spend can only be counted high, never low.
    pub fn refresh(&mut self, marked: &[String], loaded: Vec<LoadedSpend>, now: OffsetDateTime) {
        let (d, m) = (day_of(now), month_of(now));
        let mut db: HashMap<String, LoadedSpend> =
            loaded.into_iter().map(|l| (l.key_id.clone(), l)).collect();
        for id in marked {
            let Some(k) = self.keys.get_mut(id.as_str()) else {
                continue;
            };
            let l = db.remove(id.as_str());
            let (total, day, month) = l.map_or(Default::default(), |l| (l.total, l.day, l.month));
            let since = k.since;
            k.total = total + since.0;
            k.day = (
                d,
                day + if since.1 .0 == d {
                    since.1 .1
                } else {
                    Nanos::ZERO
                },
            );
            k.month = (
                m,
                month
                    + if since.2 .0 == m {
                        since.2 .1
                    } else {
                        Nanos::ZERO
                    },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn usd(c: i64) -> Nanos {
        Nanos::from_cents(c)
    }

    #[test]
    fn window_arithmetic() {
        let t = datetime!(2026-12-31 23:59:59 UTC);
        assert_eq!(
            window_end(Window::Day, t),
            Some(datetime!(2027-01-01 0:00 UTC))
        );
        assert_eq!(
            window_end(Window::Month, t),
            Some(datetime!(2027-01-01 0:00 UTC))
        );
        assert_eq!(
            window_end(Window::Month, datetime!(2026-02-14 12:00 UTC)),
            Some(datetime!(2026-03-01 0:00 UTC))
        );
        assert_eq!(window_end(Window::Total, t), None);
        assert_eq!(day_of(t) + 1, day_of(datetime!(2027-01-01 0:00 UTC)));
        assert_eq!(month_of(t) + 1, month_of(datetime!(2027-01-01 0:00 UTC)));
        // Another offset is the same instant, hence the same UTC day.
        assert_eq!(
            day_of(datetime!(2026-06-01 01:00 +02:00)),
            day_of(datetime!(2026-05-31 23:00 UTC))
        );
    }

    #[test]
    fn exact_boundary_in_flight_and_rollover() {
        let key: Arc<str> = "key_a".into();
        let t0 = datetime!(2026-11-30 23:00 UTC);
        let mut s = Spending::load(
            vec![LoadedSpend {
                key_id: "key_a".into(),
                total: usd(300),
                day: usd(400),
                month: usd(400),
            }],
            [(
                "key_a".to_owned(),
                SpendLimits {
                    total: None,
                    daily: Some(usd(500)),
                    monthly: Some(usd(2_000)),
                },
            )],
            t0,
        );
        // $4.00 spent today, limit $5.00: $1.00 fits exactly, a nano more does not.
        let over = s
            .reserve(&key, usd(100) + Nanos::from_nanos(1), t0)
            .expect_err("over");
        assert_eq!(over.window, Window::Day);
        assert_eq!(over.resets_in, Some(3_600));
        assert_eq!(over.resets_at.as_deref(), Some("2026-12-01T00:00:00Z"));
        s.reserve(&key, usd(60), t0).expect("fits");
        // The in-flight $0.60 counts: another $0.41 does not fit, $0.40 does.
        assert!(s.reserve(&key, usd(41), t0).is_err());
        s.reserve(&key, usd(40), t0).expect("fits exactly");
        // Settled for less than reserved: the difference is free again.
        s.settle(&key, usd(60), usd(10), t0);
        s.settle(&key, usd(40), usd(40), t0);
        assert_eq!(s.view("key_a", t0).today, usd(450));
        s.reserve(&key, usd(50), t0)
            .expect("exactly up to the limit");
        s.settle(&key, usd(50), Nanos::ZERO, t0);
        // A new UTC day (and month): the daily counter restarts, the monthly too.
        let t1 = datetime!(2026-12-01 00:00 UTC);
        let v = s.view("key_a", t1);
        assert_eq!(
            (v.today, v.month, v.total),
            (Nanos::ZERO, Nanos::ZERO, usd(350))
        );
        s.reserve(&key, usd(500), t1).expect("a fresh day");
        let e = s.reserve(&key, Nanos::from_nanos(1), t1).expect_err("full");
        assert_eq!(e.window, Window::Day);
        s.settle(&key, usd(500), usd(500), t1);
        // Next day: the day is free, the month holds $5.00 of its $20.00.
        let t2 = datetime!(2026-12-02 00:00 UTC);
        assert_eq!(s.view("key_a", t2).month, usd(500));
        s.set_limits(
            "key_a",
            SpendLimits {
                total: Some(usd(900)),
                ..SpendLimits::default()
            },
        );
        let e = s.reserve(&key, usd(51), t2).expect_err("total");
        assert_eq!((e.window, e.resets_in), (Window::Total, None));
        assert!(e.to_string().contains("does not reset"), "{e}");
        s.reserve(&key, usd(50), t2).expect("up to the total");
    }

    /// What a refusal tells the client: a request over a limit on its own can never
    /// succeed (no retry time); one blocked only by requests in flight retries soon; one
    /// over both the day and the month waits for the month, not the day.
    #[test]
    fn a_refusal_says_when_a_retry_can_succeed() {
        let key: Arc<str> = "key_c".into();
        let t = datetime!(2026-11-15 23:00 UTC);
        let mut s = Spending::load(
            vec![LoadedSpend {
                key_id: "key_c".into(),
                total: usd(1_000),
                day: usd(450),
                month: usd(1_000),
            }],
            [(
                "key_c".to_owned(),
                SpendLimits {
                    total: None,
                    daily: Some(usd(500)),
                    monthly: Some(usd(1_000)),
                },
            )],
            t,
        );
        let e = s
            .reserve(&key, usd(600), t)
            .expect_err("alone over the day");
        assert!(e.never_fits && e.resets_in.is_none(), "{e:?}");
        assert!(e.to_string().contains("cannot succeed"), "{e}");
        // Over the day and the month (the month is full): come back next month.
        let e = s.reserve(&key, usd(60), t).expect_err("day and month");
        assert_eq!(e.window, Window::Month);
        assert_eq!(
            e.resets_in,
            Some(15 * 86_400 + 3_600),
            "at 2026-12-01T00:00:00Z"
        );
        let t2 = datetime!(2026-11-15 12:00 UTC);
        let mut s2 = Spending::load(
            Vec::new(),
            [(
                "key_c".to_owned(),
                SpendLimits {
                    total: None,
                    daily: Some(usd(500)),
                    monthly: None,
                },
            )],
            t2,
        );
        s2.reserve(&key, usd(400), t2).expect("in flight");
        let e = s2
            .reserve(&key, usd(200), t2)
            .expect_err("blocked by in flight");
        assert!(e.only_in_flight, "{e:?}");
        assert_eq!(e.resets_in, Some(1));
        assert!(e.to_string().contains("requests in flight settle"), "{e}");
    }

    #[test]
    fn keys_without_limits_are_only_counted() {
        let key: Arc<str> = "key_b".into();
        let t = datetime!(2026-11-30 12:00 UTC);
        let mut s = Spending::default();
        s.reserve(&key, Nanos::MAX, t).expect("no limit");
        s.settle(&key, Nanos::MAX, usd(7), t);
        assert_eq!(s.view("key_b", t).total, usd(7));
        assert_eq!(s.view("key_b", t).reserved, Nanos::ZERO);
    }
}
