//! Money as integer minor units.
//!
//! Amounts enter as JSON decimal literals (`200.5`) and are converted from the literal's
//! digits, never through `f64`, so `0.1 + 0.2` problems cannot exist anywhere in the system.
//! They leave as JSON numbers with at most two fraction digits, written from the integer.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use std::fmt;

/// A positive amount of money in cents (`1..=MAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cents(i64);

/// Why a decimal literal is not an acceptable amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("must be a decimal number such as 12.50")]
    NotANumber,
    #[error("may have at most 2 fraction digits")]
    TooManyFractionDigits,
    #[error("must be greater than zero")]
    NotPositive,
    #[error("must not exceed 1000000000000")]
    TooLarge,
}

impl Cents {
    /// Largest accepted amount: 1e12 currency units.
    pub const MAX: Cents = Cents(1_000_000_000_000 * 100);

    /// Wraps a cent count, enforcing `1..=MAX`.
    ///
    /// # Errors
    /// [`MoneyError::NotPositive`] or [`MoneyError::TooLarge`].
    pub fn new(cents: i64) -> Result<Self, MoneyError> {
        if cents <= 0 {
            Err(MoneyError::NotPositive)
        } else if cents > Self::MAX.0 {
            Err(MoneyError::TooLarge)
        } else {
            Ok(Self(cents))
        }
    }

    /// Parses a decimal literal such as `12`, `12.5`, `12.50` or `-3` exactly.
    ///
    /// # Errors
    /// [`MoneyError`] for exponents, signs other than a leading `-`, more than two fraction
    /// digits, zero, negatives and amounts above 1e12.
    pub fn parse_decimal(text: &str) -> Result<Self, MoneyError> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((w, f)) => (w, f),
            None => (unsigned, ""),
        };
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(fraction) {
            return Err(MoneyError::NotANumber);
        }
        if unsigned.contains('.') && fraction.is_empty() {
            return Err(MoneyError::NotANumber);
        }
        if fraction.len() > 2 {
            return Err(MoneyError::TooManyFractionDigits);
        }
        let whole = whole.trim_start_matches('0');
        // More than 13 integer digits is above 1e12 whatever follows; this also keeps the
        // arithmetic below far from i64 overflow.
        if whole.len() > 13 {
            return Err(if negative {
                MoneyError::NotPositive
            } else {
                MoneyError::TooLarge
            });
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| MoneyError::NotANumber)?
        };
        let fraction: i64 = match fraction.len() {
            0 => 0,
            1 => {
                fraction
                    .parse::<i64>()
                    .map_err(|_| MoneyError::NotANumber)?
                    * 10
            }
            _ => fraction.parse().map_err(|_| MoneyError::NotANumber)?,
        };
        let cents = whole * 100 + fraction;
        Self::new(if negative { -cents } else { cents })
    }

    /// The cent count.
    pub fn get(self) -> i64 {
        self.0
    }

    /// Whether a bid of this amount leaves room for a higher one `increment_cents` above it
    /// within [`Cents::MAX`]. A bid that does not is the price ceiling: nobody may send a bid
    /// that beats it, so it wins at once (the auction ends at that bid) instead of leaving the
    /// auction waiting for a minimum next bid no request can carry.
    pub fn leaves_room_above(self, increment_cents: i64) -> bool {
        self.0.saturating_add(increment_cents) <= Self::MAX.0
    }
}

/// Renders cents as a decimal with two fraction digits trimmed (`200.5`, `12`, `0.05`).
pub fn decimal_text(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    match abs % 100 {
        0 => format!("{sign}{}", abs / 100),
        f if f % 10 == 0 => format!("{sign}{}.{}", abs / 100, f / 10),
        f => format!("{sign}{}.{f:02}", abs / 100),
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&decimal_text(self.0))
    }
}

/// Serializes any cent count (including 0, used for "no bid yet") as a JSON decimal number.
///
/// # Errors
/// Only if the serializer fails.
pub fn serialize_cents<S: Serializer>(cents: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    let raw = RawValue::from_string(decimal_text(*cents)).map_err(serde::ser::Error::custom)?;
    raw.serialize(serializer)
}

/// Like [`serialize_cents`] for optional amounts (`null` when absent).
///
/// # Errors
/// Only if the serializer fails.
pub fn serialize_opt_cents<S: Serializer>(
    cents: &Option<i64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match cents {
        Some(c) => serialize_cents(c, serializer),
        None => serializer.serialize_none(),
    }
}

impl Serialize for Cents {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_cents(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for Cents {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw: &RawValue = Deserialize::deserialize(deserializer)?;
        let text = raw.get();
        // Clients in weakly typed languages often send money as a string; accept both.
        let text = text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(text);
        Cents::parse_decimal(text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bid_whose_next_increment_passes_the_maximum_leaves_no_room() {
        let max = Cents::MAX.get();
        assert!(Cents::new(max - 500).unwrap().leaves_room_above(500));
        assert!(!Cents::new(max - 499).unwrap().leaves_room_above(500));
        assert!(!Cents::MAX.leaves_room_above(1));
        assert!(
            !Cents::new(1).unwrap().leaves_room_above(i64::MAX),
            "no overflow"
        );
    }

    use super::*;

    fn cents(text: &str) -> Result<i64, MoneyError> {
        Cents::parse_decimal(text).map(Cents::get)
    }

    #[test]
    fn whole_and_fractional_amounts_are_exact() {
        assert_eq!(cents("200"), Ok(20_000));
        assert_eq!(cents("200.5"), Ok(20_050));
        assert_eq!(cents("200.50"), Ok(20_050));
        assert_eq!(cents("0.01"), Ok(1));
        assert_eq!(cents("0.1"), Ok(10));
        assert_eq!(cents("007.25"), Ok(725));
    }

    #[test]
    fn amount_with_three_fraction_digits_is_rejected() {
        assert_eq!(cents("1.005"), Err(MoneyError::TooManyFractionDigits));
        assert_eq!(cents("1.000"), Err(MoneyError::TooManyFractionDigits));
    }

    #[test]
    fn zero_and_negative_amounts_are_rejected() {
        assert_eq!(cents("0"), Err(MoneyError::NotPositive));
        assert_eq!(cents("0.00"), Err(MoneyError::NotPositive));
        assert_eq!(cents("-5"), Err(MoneyError::NotPositive));
        assert_eq!(cents("-99999999999999999999"), Err(MoneyError::NotPositive));
    }

    #[test]
    fn amount_above_one_trillion_is_rejected() {
        assert_eq!(cents("1000000000000"), Ok(100_000_000_000_000));
        assert_eq!(cents("1000000000000.01"), Err(MoneyError::TooLarge));
        assert_eq!(cents("99999999999999999999999"), Err(MoneyError::TooLarge));
    }

    #[test]
    fn non_numbers_exponents_and_nan_are_rejected() {
        for bad in [
            "", "abc", "1e3", "NaN", "inf", "1.", ".5", "1.2.3", "+1", "1 ", "0x10",
        ] {
            assert_eq!(cents(bad), Err(MoneyError::NotANumber), "{bad:?}");
        }
    }

    #[test]
    fn json_numbers_and_strings_deserialize_exactly() {
        let c: Cents = serde_json::from_str("200.5").unwrap();
        assert_eq!(c.get(), 20_050);
        let c: Cents = serde_json::from_str("\"0.29\"").unwrap();
        assert_eq!(c.get(), 29);
        assert!(serde_json::from_str::<Cents>("1.234").is_err());
        assert!(serde_json::from_str::<Cents>("true").is_err());
        assert!(serde_json::from_str::<Cents>("null").is_err());
    }

    #[test]
    fn cents_serialize_as_short_decimal_numbers() {
        let text = |c: i64| serde_json::to_string(&Cents::new(c).unwrap()).unwrap();
        assert_eq!(text(20_050), "200.5");
        assert_eq!(text(20_000), "200");
        assert_eq!(text(1), "0.01");
        assert_eq!(text(29), "0.29");
        assert_eq!(text(100_000_000_000_000), "1000000000000");
    }

    #[test]
    fn serialized_amounts_round_trip() {
        for c in [1, 9, 10, 99, 100, 101, 12_345, 99_999_999_999_999] {
            let cents = Cents::new(c).unwrap();
            let back: Cents =
                serde_json::from_str(&serde_json::to_string(&cents).unwrap()).unwrap();
            assert_eq!(back, cents);
        }
    }
}
