//! Exact money. No floating point anywhere on the money path.
//!
//! * [`Nanos`] is an amount of US dollars counted in nano-dollars (1e-9 USD) in an
//!   `i64`: enough for ±9.2 billion dollars, and fine enough that a single token of the
//!   cheapest model still costs a whole number of units once summed over a request.
//! * [`Price`] is a list price in USD per million tokens, held as nano-dollars per
//!   million tokens, so a price such as `"0.0375"` is exact.
//! * A request's cost is the sum over token kinds of `tokens × price`, computed in
//!   `i128` as 1e-15 USD and rounded once, half-up, to the nano-dollar.

use std::fmt;

/// Nano-dollars per dollar.
pub const NANOS_PER_USD: i64 = 1_000_000_000;

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

    pub const fn from_nanos(n: i64) -> Self {
        Nanos(n)
    }

    pub const fn from_cents(c: i64) -> Self {
        Nanos(c * 10_000_000)
    }

    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// Parses a non-negative decimal string of USD with at most 9 decimals.
    pub fn parse_usd(s: &str) -> Result<Self, MoneyError> {
        parse_fixed(s, 9).map(Nanos)
    }

    /// Parses a non-negative amount in whole cents (at most two decimals), as top-ups take.
    pub fn parse_cents(s: &str) -> Result<Self, MoneyError> {
        parse_fixed(s, 2).map(|cents| Nanos(cents * 10_000_000))
    }

    pub fn checked_add(self, o: Nanos) -> Option<Nanos> {
        self.0.checked_add(o.0).map(Nanos)
    }

    pub fn saturating_sub(self, o: Nanos) -> Nanos {
        Nanos(self.0.saturating_sub(o.0))
    }

    /// Whole cents, if the amount has no fraction of a cent.
    pub fn whole_cents(self) -> Option<i64> {
        (self.0 % 10_000_000 == 0).then_some(self.0 / 10_000_000)
    }
}

impl std::ops::Add for Nanos {
    type Output = Nanos;
    fn add(self, o: Nanos) -> Nanos {
        Nanos(self.0 + o.0)
    }
}

impl std::ops::Sub for Nanos {
    type Output = Nanos;
    fn sub(self, o: Nanos) -> Nanos {
        Nanos(self.0 - o.0)
    }
}

impl std::iter::Sum for Nanos {
    fn sum<I: Iterator<Item = Nanos>>(iter: I) -> Nanos {
        Nanos(iter.map(|n| n.0).sum())
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
    pub fn add(&mut self, tokens: u64, price: Price) -> &mut Self {
        self.femto += tokens as i128 * price.0 as i128;
        self
    }

    /// The total, rounded half-up to the nano-dollar (saturating at `i64::MAX`).
    pub fn total(&self) -> Nanos {
        let q = (self.femto + 500_000) / 1_000_000;
        Nanos(q.min(i64::MAX as i128) as i64)
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
    if frac.len() as u32 > max_decimals {
        return Err(MoneyError::TooPrecise(s.to_owned(), max_decimals));
    }
    let scale = 10i64.pow(max_decimals);
    let int_v: i64 = int
        .parse()
        .map_err(|_| MoneyError::TooLarge(s.to_owned()))?;
    let mut frac_v: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| bad())?
    };
    frac_v *= 10i64.pow(max_decimals - frac.len() as u32);
    int_v
        .checked_mul(scale)
        .and_then(|v| v.checked_add(frac_v))
        .ok_or_else(|| MoneyError::TooLarge(s.to_owned()))
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
