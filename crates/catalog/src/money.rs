//! Exact money. No floating point anywhere on the money path.
//!
//! * [`Nanos`] is an amount of US dollars counted in nano-dollars (1e-9 USD) in an
//!   `i64`: enough for ±9.2 billion dollars, and fine enough that a single token of the
//!   cheapest model still costs a whole number of units once summed over a request.
//! * [`Price`] is a list price in USD per million tokens, held as nano-dollars per
//!   million tokens, so a price such as `"0.0375"` is exact.
//! * A request's cost is the sum over token kinds of `tokens × price`, computed in
//!   `i128` as 1e-15 USD and rounded once, half-up, to the nano-dollar.
//!
//! # Overflow
//!
//! Every value that comes from outside (a decimal string from a client or the
//! configuration, token counts reported by a provider) enters through a checked
//! conversion: [`Nanos::parse_usd`], [`Nanos::parse_cents`] and [`Price::parse`] refuse
//! what does not fit with [`MoneyError::TooLarge`], and [`CostAccumulator`] saturates.
//! The operators `+` and `-` on [`Nanos`] saturate at the ends of the `i64` range
//! (±$9.2 billion) instead of wrapping: a wrapped sum flips sign (a huge credit becomes
//! a debt, or the reverse) and a panic would poison the ledger's lock. Saturation is
//! unreachable from checked inputs; code that must know uses [`Nanos::checked_add`] and
//! [`Nanos::checked_sub`].

use std::fmt;

/// Nano-dollars per dollar.
pub const NANOS_PER_USD: i64 = 1_000_000_000;

/// Nano-dollars per cent.
pub const NANOS_PER_CENT: i64 = 10_000_000;

/// An exact amount of USD, in nano-dollars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Nanos(i64);

/// Why a decimal string is not an acceptable amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("`{0}` is not a decimal number (expected digits with an optional `.` and fraction, e.g. \"10.00\")")]
    NotDecimal(String),
    #[error("`{0}` has more than {1} decimal places")]
    TooPrecise(String, u32),
    #[error("`{0}` is too large")]
    TooLarge(String),
}

impl Nanos {
    pub const ZERO: Nanos = Nanos(0);
    /// The largest amount the ledger holds: $9,223,372,036.854775807.
    pub const MAX: Nanos = Nanos(i64::MAX);

    pub const fn from_nanos(n: i64) -> Self {
        Nanos(n)
    }

    /// Whole cents as nano-dollars, saturating at [`Nanos::MAX`] (and its negative) so
    /// that a constant can never wrap; values from outside go through
    /// [`Nanos::checked_from_cents`] or [`Nanos::parse_cents`].
    pub const fn from_cents(c: i64) -> Self {
        Nanos(c.saturating_mul(NANOS_PER_CENT))
    }

    /// Whole cents as nano-dollars, or `None` beyond the ledger's range.
    pub const fn checked_from_cents(c: i64) -> Option<Self> {
        match c.checked_mul(NANOS_PER_CENT) {
            Some(n) => Some(Nanos(n)),
            None => None,
        }
    }

    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// Parses a non-negative decimal string of USD with at most 9 decimals.
    pub fn parse_usd(s: &str) -> Result<Self, MoneyError> {
        parse_fixed(s, 9).map(Nanos)
    }

    /// Parses a non-negative amount in whole cents (at most two decimals), as top-ups take.
    /// An amount whose cents fit in an `i64` but whose nano-dollars do not (anything
    /// above $9,223,372,036.85) is [`MoneyError::TooLarge`], never a wrapped value.
    pub fn parse_cents(s: &str) -> Result<Self, MoneyError> {
        parse_fixed(s, 2).and_then(|cents| {
            Nanos::checked_from_cents(cents).ok_or_else(|| MoneyError::TooLarge(s.to_owned()))
        })
    }

    pub fn checked_add(self, o: Nanos) -> Option<Nanos> {
        self.0.checked_add(o.0).map(Nanos)
    }

    pub fn checked_sub(self, o: Nanos) -> Option<Nanos> {
        self.0.checked_sub(o.0).map(Nanos)
    }

    pub fn saturating_sub(self, o: Nanos) -> Nanos {
        Nanos(self.0.saturating_sub(o.0))
    }

    /// Whole cents, if the amount has no fraction of a cent.
    pub fn whole_cents(self) -> Option<i64> {
        (self.0 % 10_000_000 == 0).then_some(self.0 / 10_000_000)
    }
}

/// Saturating (see the module's notes on overflow): never wraps, never panics.
impl std::ops::Add for Nanos {
    type Output = Nanos;
    fn add(self, o: Nanos) -> Nanos {
        Nanos(self.0.saturating_add(o.0))
    }
}

/// Saturating (see the module's notes on overflow): never wraps, never panics.
impl std::ops::Sub for Nanos {
    type Output = Nanos;
    fn sub(self, o: Nanos) -> Nanos {
        Nanos(self.0.saturating_sub(o.0))
    }
}

/// Saturating, like `+`.
impl std::iter::Sum for Nanos {
    fn sum<I: Iterator<Item = Nanos>>(iter: I) -> Nanos {
        iter.fold(Nanos::ZERO, |a, b| a + b)
    }
}

/// Formats as a decimal string of dollars with at least two and at most nine decimals:
/// `3.00`, `10.50`, `0.000045`, `-0.000000001`.
impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_fixed(self.0 as i128, 9, 2))
    }
}

impl serde::Serialize for Nanos {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A list price in USD per million tokens, exact to the nano-dollar per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Price(i64);

impl Price {
    pub fn parse(s: &str) -> Result<Self, MoneyError> {
        parse_fixed(s, 9).map(Price)
    }

    /// Nano-dollars per million tokens.
    pub const fn nanos_per_mtok(self) -> i64 {
        self.0
    }

    pub const fn from_nanos_per_mtok(n: i64) -> Self {
        Price(n)
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_fixed(self.0 as i128, 9, 0))
    }
}

impl serde::Serialize for Price {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Price {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Price::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Accumulates `tokens × price` terms exactly and rounds once.
#[derive(Debug, Default, Clone, Copy)]
pub struct CostAccumulator {
    /// Sum of tokens × nano-dollars-per-million-tokens, i.e. units of 1e-15 USD.
    femto: i128,
}

impl CostAccumulator {
    /// Adds `tokens × price`. Token counts come from providers, so nothing here may
    /// overflow: one term always fits in an `i128` (`u64::MAX × i64::MAX < 2¹²⁷`), and the
    /// sum saturates, far beyond anything [`CostAccumulator::total`] can represent anyway.
    pub fn add(&mut self, tokens: u64, price: Price) -> &mut Self {
        let term = i128::from(tokens) * i128::from(price.0);
        self.femto = self.femto.saturating_add(term);
        self
    }

    /// The total, rounded half-up to the nano-dollar (⌊x + ½⌋, also for a negative sum),
    /// clamped to the range of [`Nanos`].
    pub fn total(&self) -> Nanos {
        let q = self.femto.saturating_add(500_000).div_euclid(1_000_000);
        let clamped = q.clamp(i128::from(i64::MIN), i128::from(i64::MAX));
        Nanos(i64::try_from(clamped).unwrap_or(i64::MAX))
    }
}

fn parse_fixed(s: &str, max_decimals: u32) -> Result<i64, MoneyError> {
    let bad = || MoneyError::NotDecimal(s.to_owned());
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if s.contains('.') && frac.is_empty() {
        return Err(bad());
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    // Compared as `usize`: a cast of the length to `u32` could wrap on a huge input.
    if frac.len() > max_decimals as usize {
        return Err(MoneyError::TooPrecise(s.to_owned(), max_decimals));
    }
    let too_large = || MoneyError::TooLarge(s.to_owned());
    // Digits only (checked above), so the only way `parse` fails is overflow.
    let int_v: i64 = int.parse().map_err(|_| too_large())?;
    let frac_v: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| bad())?
    };
    // `frac` has at most `max_decimals` digits, so both powers are at most 10^max_decimals.
    let frac_scale = 10i64.checked_pow(max_decimals - frac.len() as u32);
    let scale = 10i64.checked_pow(max_decimals);
    let frac_v = frac_scale.and_then(|f| frac_v.checked_mul(f));
    scale
        .and_then(|scale| int_v.checked_mul(scale))
        .zip(frac_v)
        .and_then(|(i, f)| i.checked_add(f))
        .ok_or_else(too_large)
}

fn format_fixed(v: i128, decimals: u32, min_decimals: usize) -> String {
    let scale = 10i128.pow(decimals);
    let sign = if v < 0 { "-" } else { "" };
    let a = v.abs();
    let mut frac = format!("{:0width$}", a % scale, width = decimals as usize);
    while frac.len() > min_decimals && frac.ends_with('0') {
        frac.pop();
    }
    if frac.is_empty() {
        format!("{sign}{}", a / scale)
    } else {
        format!("{sign}{}.{frac}", a / scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_dollars() {
        assert_eq!(Nanos::parse_usd("3").expect("ok").to_string(), "3.00");
        assert_eq!(Nanos::parse_usd("10.5").expect("ok").to_string(), "10.50");
        assert_eq!(Nanos::parse_usd("0.000045").expect("ok").nanos(), 45_000);
        assert_eq!(Nanos::from_nanos(-1).to_string(), "-0.000000001");
        assert!(Nanos::parse_usd("1e3").is_err());
        assert!(Nanos::parse_usd("-1").is_err());
        assert!(Nanos::parse_usd("1.").is_err());
        assert!(Nanos::parse_usd(".5").is_err());
        assert!(Nanos::parse_usd("0.0000000001").is_err());
        assert!(Nanos::parse_usd("99999999999999").is_err());
    }

    #[test]
    fn cents_reject_fractions_of_a_cent() {
        assert_eq!(
            Nanos::parse_cents("10.00").expect("ok").whole_cents(),
            Some(1000)
        );
        assert!(matches!(
            Nanos::parse_cents("10.001"),
            Err(MoneyError::TooPrecise(..))
        ));
    }

    #[test]
    fn cost_is_exact_and_rounds_once_half_up() {
        // 1 token at $0.0375/M = 37.5 nano-dollars → 38; 1000 tokens = 37,500 exactly.
        let p = Price::parse("0.0375").expect("price");
        let mut acc = CostAccumulator::default();
        acc.add(1, p);
        assert_eq!(acc.total().nanos(), 38);
        acc.add(999, p);
        assert_eq!(acc.total().nanos(), 37_500);
        // 1234 input at $3 + 567 output at $15 = 3702000 + 8505000 nano.
        let mut acc = CostAccumulator::default();
        acc.add(1234, Price::parse("3").expect("p"))
            .add(567, Price::parse("15.00").expect("p"));
        assert_eq!(acc.total(), Nanos::from_nanos(12_207_000));
        assert_eq!(acc.total().to_string(), "0.012207");
    }
}

/// Property tests: round trips, parsing that never wraps or panics, and rounding once.
/// The expected values are computed independently, as exact integers in `i128`.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    /// The form the gateway writes a decimal in: no leading zeros, trailing zeros of the
    /// fraction dropped down to `min` decimals.
    fn canonical(int: &str, frac: &str, min: usize) -> String {
        let int = int.trim_start_matches('0');
        let int = if int.is_empty() { "0" } else { int };
        let mut frac = frac.trim_end_matches('0').to_owned();
        while frac.len() < min {
            frac.push('0');
        }
        if frac.is_empty() {
            int.to_owned()
        } else {
            format!("{int}.{frac}")
        }
    }

    /// The exact value of `int.frac` in units of 10^-scale (`int` has at most 20 digits,
    /// so this fits an `i128`).
    fn exact(int: &str, frac: &str, scale: u32) -> i128 {
        let i: i128 = int.parse().expect("digits");
        let mut f = frac.to_owned();
        while f.len() < scale as usize {
            f.push('0');
        }
        let f: i128 = if f.is_empty() {
            0
        } else {
            f.parse().expect("digits")
        };
        i * 10i128.pow(scale) + f
    }

    fn decimal(int: &str, frac: &Option<String>) -> String {
        match frac {
            Some(f) => format!("{int}.{f}"),
            None => int.to_owned(),
        }
    }

    /// `⌊sum / 10⁶ + ½⌋` for a sum in 1e-15 USD: half-up to the nano-dollar.
    fn round_half_up(femto: i128) -> i128 {
        (2 * femto + 1_000_000).div_euclid(2_000_000)
    }

    fn total(terms: &[(u64, i64)]) -> Nanos {
        let mut acc = CostAccumulator::default();
        for &(t, p) in terms {
            acc.add(t, Price::from_nanos_per_mtok(p));
        }
        acc.total()
    }

    /// Up to 10¹³ tokens at up to $1,000,000 per million tokens: the exact sum of a
    /// handful of terms fits an `i128` comfortably, and may exceed what [`Nanos`] holds.
    fn huge_terms() -> impl Strategy<Value = Vec<(u64, i64)>> {
        prop::collection::vec(
            (0u64..=10_000_000_000_000, 0i64..=1_000_000_000_000_000),
            0..6,
        )
    }

    /// Up to 10¹⁰ tokens at up to $1,000 per million tokens: totals stay well inside
    /// [`Nanos`], so sums of totals can be compared exactly.
    fn terms() -> impl Strategy<Value = Vec<(u64, i64)>> {
        prop::collection::vec((0u64..=10_000_000_000, 0i64..=1_000_000_000_000), 0..6)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn nanos_parse_of_format_is_identity(n in 0..=i64::MAX) {
            let n = Nanos::from_nanos(n);
            prop_assert_eq!(Nanos::parse_usd(&n.to_string()), Ok(n));
        }

        #[test]
        fn price_parse_of_format_is_identity(n in 0..=i64::MAX) {
            let p = Price::from_nanos_per_mtok(n);
            prop_assert_eq!(Price::parse(&p.to_string()), Ok(p));
        }

        #[test]
        fn nanos_format_of_parse_is_canonical(
            int in "[0-9]{1,20}",
            frac in proptest::option::of("[0-9]{1,9}"),
        ) {
            let s = decimal(&int, &frac);
            let f = frac.as_deref().unwrap_or("");
            let want = exact(&int, f, 9);
            match Nanos::parse_usd(&s) {
                Ok(n) => {
                    prop_assert_eq!(i128::from(n.nanos()), want);
                    prop_assert_eq!(n.to_string(), canonical(&int, f, 2));
                }
                Err(MoneyError::TooLarge(_)) => prop_assert!(want > i128::from(i64::MAX), "{}", s),
                Err(e) => prop_assert!(false, "{}: {}", s, e),
            }
        }

        #[test]
        fn price_format_of_parse_is_canonical(
            int in "[0-9]{1,20}",
            frac in proptest::option::of("[0-9]{1,9}"),
        ) {
            let s = decimal(&int, &frac);
            let f = frac.as_deref().unwrap_or("");
            let want = exact(&int, f, 9);
            match Price::parse(&s) {
                Ok(p) => {
                    prop_assert_eq!(i128::from(p.nanos_per_mtok()), want);
                    prop_assert_eq!(p.to_string(), canonical(&int, f, 0));
                }
                Err(MoneyError::TooLarge(_)) => prop_assert!(want > i128::from(i64::MAX), "{}", s),
                Err(e) => prop_assert!(false, "{}: {}", s, e),
            }
        }

        /// The regression: cents that fit an `i64` but whose nano-dollars do not must be
        /// refused, never wrapped into a small (or negative) amount.
        #[test]
        fn cents_are_exact_or_too_large(
            int in "[0-9]{1,20}",
            frac in proptest::option::of("[0-9]{1,2}"),
        ) {
            let s = decimal(&int, &frac);
            let want = exact(&int, frac.as_deref().unwrap_or(""), 9);
            match Nanos::parse_cents(&s) {
                Ok(n) => {
                    prop_assert_eq!(i128::from(n.nanos()), want);
                    prop_assert_eq!(n.whole_cents().map(i128::from), Some(want / 10_000_000));
                }
                Err(MoneyError::TooLarge(_)) => prop_assert!(want > i128::from(i64::MAX), "{}", s),
                Err(e) => prop_assert!(false, "{}: {}", s, e),
            }
        }

        #[test]
        fn cents_refuse_fractions_of_a_cent(int in "[0-9]{1,12}", frac in "[0-9]{3,9}") {
            let parsed = Nanos::parse_cents(&format!("{int}.{frac}"));
            prop_assert!(matches!(parsed, Err(MoneyError::TooPrecise(_, 2))));
        }

        #[test]
        fn parsing_never_panics(s in any::<String>()) {
            let _ = Nanos::parse_usd(&s);
            let _ = Nanos::parse_cents(&s);
            let _ = Price::parse(&s);
        }

        /// Strings made of what numbers are made of: whatever parses is a plain decimal
        /// and never negative.
        #[test]
        fn what_parses_is_a_plain_non_negative_decimal(s in "[-+0-9.eE_, ]{0,30}") {
            for n in [Nanos::parse_usd(&s), Nanos::parse_cents(&s)].into_iter().flatten() {
                prop_assert!(n >= Nanos::ZERO);
                prop_assert!(s.bytes().all(|b| b.is_ascii_digit() || b == b'.'), "{}", s);
                prop_assert!(s.matches('.').count() <= 1, "{}", s);
            }
            if let Ok(p) = Price::parse(&s) {
                prop_assert!(p.nanos_per_mtok() >= 0);
            }
        }

        #[test]
        fn cost_is_the_exact_sum_rounded_half_up_once(t in huge_terms()) {
            let femto: i128 = t.iter().map(|&(n, p)| i128::from(n) * i128::from(p)).sum();
            let want = round_half_up(femto).min(i128::from(i64::MAX));
            prop_assert_eq!(i128::from(total(&t).nanos()), want);
        }

        #[test]
        fn cost_does_not_depend_on_the_order_of_terms(mut t in huge_terms()) {
            let forward = total(&t);
            t.reverse();
            prop_assert_eq!(total(&t), forward);
        }

        /// Rounding once: the cost of two parts together is within one nano-dollar of the
        /// sum of their separately rounded costs, and equal when neither part has a
        /// fraction of a nano-dollar.
        #[test]
        fn cost_is_additive_up_to_one_rounding(a in terms(), b in terms()) {
            let joined: Vec<_> = a.iter().chain(&b).copied().collect();
            let apart = total(&a).nanos() + total(&b).nanos();
            let diff = total(&joined).nanos() - apart;
            prop_assert!((-1..=1).contains(&diff), "{}", diff);
            let whole = |t: &[(u64, i64)]| {
                t.iter().map(|&(n, p)| i128::from(n) * i128::from(p)).sum::<i128>() % 1_000_000 == 0
            };
            if whole(&a) && whole(&b) {
                prop_assert_eq!(diff, 0);
            }
        }

        #[test]
        fn cost_is_monotonic(t in terms(), extra in 0u64..=1_000_000, price in 0i64..=1_000_000_000_000) {
            let before = total(&t);
            let mut more = t.clone();
            more.push((extra, price));
            prop_assert!(total(&more) >= before);
            if let Some(first) = more.first_mut() {
                first.0 += 1;
            }
            prop_assert!(total(&more) >= before);
        }

        /// Counts a provider reports are not trusted to be small: nothing overflows.
        #[test]
        fn cost_saturates_instead_of_overflowing(n in 1usize..5, t in any::<u64>(), p in 0..=i64::MAX) {
            let huge = vec![(t, p); n];
            let c = total(&huge);
            prop_assert!(c >= Nanos::ZERO);
            let mut acc = CostAccumulator::default();
            for _ in 0..n {
                acc.add(u64::MAX, Price::from_nanos_per_mtok(i64::MAX));
            }
            prop_assert_eq!(acc.total(), Nanos::MAX);
        }

        #[test]
        fn nanos_operators_saturate(a in any::<i64>(), b in any::<i64>()) {
            let (x, y) = (Nanos::from_nanos(a), Nanos::from_nanos(b));
            prop_assert_eq!((x + y).nanos(), a.saturating_add(b));
            prop_assert_eq!((x - y).nanos(), a.saturating_sub(b));
            prop_assert_eq!(x.checked_add(y).map(Nanos::nanos), a.checked_add(b));
            prop_assert_eq!(x.checked_sub(y).map(Nanos::nanos), a.checked_sub(b));
        }
    }

    #[test]
    fn the_reported_overflow_is_refused() {
        // 30,606,837,823,294,138 cents fit an i64; × 10⁷ nano-dollars per cent does not
        // (it wrapped to a small positive amount in a release build).
        assert!(matches!(
            Nanos::parse_cents("306068378232941.38"),
            Err(MoneyError::TooLarge(_))
        ));
        assert_eq!(
            Nanos::parse_cents("9223372036.85").map(Nanos::nanos),
            Ok(9_223_372_036_850_000_000)
        );
        assert!(matches!(
            Nanos::parse_cents("9223372036.86"),
            Err(MoneyError::TooLarge(_))
        ));
        assert_eq!(Nanos::parse_usd("9223372036.854775807"), Ok(Nanos::MAX));
        assert!(matches!(
            Nanos::parse_usd("9223372036.854775808"),
            Err(MoneyError::TooLarge(_))
        ));
        assert_eq!(Nanos::from_cents(i64::MAX), Nanos::MAX);
        assert_eq!(Nanos::checked_from_cents(i64::MAX), None);
    }

    #[test]
    fn half_a_nano_dollar_rounds_up_and_just_under_rounds_down() {
        let mut acc = CostAccumulator::default();
        acc.add(1, Price::from_nanos_per_mtok(500_000));
        assert_eq!(acc.total(), Nanos::from_nanos(1));
        let mut acc = CostAccumulator::default();
        acc.add(1, Price::from_nanos_per_mtok(499_999));
        assert_eq!(acc.total(), Nanos::ZERO);
    }
}
