//! Money on the wire: integer cents inside this crate, JSON decimals outside.
//!
//! The gateway speaks decimal numbers with at most two fraction digits
//! (`"amount": 200.5`). Converting through `f64` would invite rounding errors, so
//! both directions work on the digits: [`format_cents`] writes them with integer
//! arithmetic and [`parse_decimal_cents`] reads the literal's text.

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// Why a JSON number could not be read as cents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// Not a plain decimal literal (exponent, letters, missing digits, …).
    #[error("{0:?} is not a plain decimal number")]
    NotDecimal(String),
    /// More than two digits after the point: not a whole number of cents.
    #[error("{0:?} has more than two fraction digits")]
    TooPrecise(String),
    /// Does not fit in `i64` cents.
    #[error("{0:?} is out of range")]
    OutOfRange(String),
}

/// Writes `cents` as a decimal with exactly two fraction digits (`150` → `"1.50"`).
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let magnitude = cents.unsigned_abs();
    format!("{sign}{}.{:02}", magnitude / 100, magnitude % 100)
}

/// Reads a JSON decimal literal (`"12"`, `"12.5"`, `"12.50"`, `"-0.01"`) as cents.
///
/// # Errors
///
/// [`DecimalError`] when the text is not a plain decimal, has more than two
/// fraction digits, or does not fit in `i64` cents.
pub fn parse_decimal_cents(text: &str) -> Result<i64, DecimalError> {
    let not_decimal = || DecimalError::NotDecimal(text.to_owned());
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) if !fraction.is_empty() => (whole, fraction),
        Some(_) => return Err(not_decimal()),
        None => (unsigned, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return Err(not_decimal());
    }
    if fraction.len() > 2 {
        return Err(DecimalError::TooPrecise(text.to_owned()));
    }
    let out_of_range = || DecimalError::OutOfRange(text.to_owned());
    let whole: i64 = whole.parse().map_err(|_| out_of_range())?;
    // "5" is 50 cents, "05" is 5 cents: pad the fraction to two digits.
    let fraction_cents: i64 = format!("{fraction:0<2}")
        .parse()
        .map_err(|_| not_decimal())?;
    let cents = whole
        .checked_mul(100)
        .and_then(|c| c.checked_add(fraction_cents))
        .ok_or_else(out_of_range)?;
    Ok(if negative { -cents } else { cents })
}

/// An amount the server reported, as `<field>_cents` and/or `<field>` (decimal).
///
/// The integer field is preferred when present, as it needs no parsing; JSON
/// `null` or a missing field reads as `None` (an item with no bid yet).
///
/// # Errors
///
/// [`DecimalError`] when only the decimal field is present and it is not a
/// whole number of cents.
pub fn reported_cents(
    cents: Option<i64>,
    decimal: Option<&RawValue>,
) -> Result<Option<i64>, DecimalError> {
    if let Some(cents) = cents {
        return Ok(Some(cents));
    }
    match decimal.map(RawValue::get) {
        None | Some("null") => Ok(None),
        Some(text) => parse_decimal_cents(text).map(Some),
    }
}

/// Cents that serialize as a JSON decimal number (`Decimal(150)` → `1.50`),
/// written from the digits, never through `f64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal(pub i64);

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(format_cents(self.0)).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents_are_formatted_with_two_fraction_digits() {
        assert_eq!(format_cents(0), "0.00");
        assert_eq!(format_cents(1), "0.01");
        assert_eq!(format_cents(105), "1.05");
        assert_eq!(format_cents(150), "1.50");
        assert_eq!(format_cents(123_456), "1234.56");
        assert_eq!(format_cents(-1), "-0.01");
        assert_eq!(format_cents(i64::MIN), "-92233720368547758.08");
    }

    #[test]
    fn decimals_with_up_to_two_fraction_digits_are_read_exactly() {
        assert_eq!(parse_decimal_cents("12"), Ok(1200));
        assert_eq!(parse_decimal_cents("12.5"), Ok(1250));
        assert_eq!(parse_decimal_cents("12.50"), Ok(1250));
        assert_eq!(parse_decimal_cents("0.01"), Ok(1));
        assert_eq!(parse_decimal_cents("0.1"), Ok(10));
        assert_eq!(parse_decimal_cents("-0.07"), Ok(-7));
    }

    #[test]
    fn decimal_with_three_fraction_digits_is_rejected() {
        assert!(matches!(
            parse_decimal_cents("1.005"),
            Err(DecimalError::TooPrecise(_))
        ));
    }

    #[test]
    fn non_decimal_literals_are_rejected() {
        for text in [
            "", "-", ".5", "5.", "1e2", "1.2e1", "abc", "1,5", " 1", "+1", "--1",
        ] {
            assert!(
                matches!(parse_decimal_cents(text), Err(DecimalError::NotDecimal(_))),
                "{text:?} should not parse"
            );
        }
    }

    #[test]
    fn decimal_beyond_i64_cents_is_out_of_range() {
        assert!(matches!(
            parse_decimal_cents("92233720368547758.08"),
            Err(DecimalError::OutOfRange(_))
        ));
        assert_eq!(parse_decimal_cents("92233720368547758.07"), Ok(i64::MAX));
    }

    #[test]
    fn formatting_then_parsing_gives_the_same_cents() {
        for cents in [0, 1, 9, 10, 99, 100, 101, 12_345, 100_000_000_000_000] {
            assert_eq!(parse_decimal_cents(&format_cents(cents)), Ok(cents));
        }
    }

    #[test]
    fn integer_field_is_preferred_over_the_decimal_one() {
        let decimal = RawValue::from_string("9.99".into()).unwrap();
        assert_eq!(reported_cents(Some(42), Some(&decimal)), Ok(Some(42)));
        assert_eq!(reported_cents(None, Some(&decimal)), Ok(Some(999)));
    }

    #[test]
    fn missing_or_null_amount_is_none() {
        let null = RawValue::from_string("null".into()).unwrap();
        assert_eq!(reported_cents(None, None), Ok(None));
        assert_eq!(reported_cents(None, Some(&null)), Ok(None));
    }

    #[test]
    fn decimal_serializes_as_a_json_number() {
        #[derive(Serialize)]
        struct Body {
            amount: Decimal,
        }
        let text = serde_json::to_string(&Body {
            amount: Decimal(1001),
        })
        .unwrap();
        assert_eq!(text, r#"{"amount":10.01}"#);
        assert_eq!(serde_json::to_string(&Decimal(5)).unwrap(), "0.05");
        assert_eq!(serde_json::to_string(&Decimal(100)).unwrap(), "1.00");
    }
}
