//! Bid increment schedules: how much the next bid must add to the current price.
//!
//! A flat `min_increment` is the one-row table `[{from: 0, increment}]`; a tiered table (as on
//! Trade Me or GunBroker) gives a larger step at higher prices. The increment in force is the
//! one of the last row whose `from` is at or below the current price.
//!
//! One table has three forms, all here so they cannot drift apart: the request/config text
//! the gateway parses, the item hash's storage text that `place_bid.lua` reads
//! (`from:increment` pairs in cents, `;`-separated, ascending: `0:100;10000:500`), and the JSON
//! rows of the item view (`[{"from": 0.0, "increment": 1.0}, …]`).

use crate::money::{Cents, serialize_cents};
use serde::Serialize;
use std::fmt;

/// Most rows a table may have: the Lua script walks the rows on every bid.
pub const MAX_ROWS: usize = 32;

/// One row: from the price `from_cents` on, the next bid adds at least `increment_cents`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IncrementRow {
    #[serde(rename = "from", serialize_with = "serialize_cents")]
    pub from_cents: i64,
    #[serde(rename = "increment", serialize_with = "serialize_cents")]
    pub increment_cents: i64,
}

/// A validated schedule: at least one row, the first from 0, `from` strictly ascending,
/// every increment positive, at most [`MAX_ROWS`] rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncrementTable(Vec<IncrementRow>);

/// Why a schedule is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncrementError {
    #[error("needs at least one row")]
    Empty,
    #[error("may have at most {MAX_ROWS} rows")]
    TooManyRows,
    #[error("must start with a row from 0")]
    FirstRowNotFromZero,
    #[error("rows must be in strictly ascending order of `from`")]
    NotAscending,
    #[error("increments must be positive")]
    NotPositive,
    #[error("row {0:?} is not `from:increment` with two amounts")]
    BadRow(String),
}

impl IncrementTable {
    /// Validates rows.
    ///
    /// # Errors
    /// [`IncrementError`] naming the broken rule.
    pub fn new(rows: Vec<IncrementRow>) -> Result<Self, IncrementError> {
        let first = rows.first().ok_or(IncrementError::Empty)?;
        if rows.len() > MAX_ROWS {
            return Err(IncrementError::TooManyRows);
        }
        if first.from_cents != 0 {
            return Err(IncrementError::FirstRowNotFromZero);
        }
        if rows.iter().any(|r| r.increment_cents <= 0) {
            return Err(IncrementError::NotPositive);
        }
        if rows.windows(2).any(|w| w[0].from_cents >= w[1].from_cents) {
            return Err(IncrementError::NotAscending);
        }
        Ok(Self(rows))
    }

    /// The one-row table of a flat increment.
    pub fn flat(increment: Cents) -> Self {
        Self(vec![IncrementRow {
            from_cents: 0,
            increment_cents: increment.get(),
        }])
    }

    pub fn rows(&self) -> &[IncrementRow] {
        &self.0
    }

    /// The increment in force at `price_cents`.
    pub fn increment_at(&self, price_cents: i64) -> i64 {
        self.0
            .iter()
            .take_while(|r| r.from_cents <= price_cents)
            .last()
            .map_or(self.first_increment(), |r| r.increment_cents)
    }

    /// The first row's increment (the item hash's `min_increment_cents`, for readers that
    /// know only a flat increment).
    pub fn first_increment(&self) -> i64 {
        self.0.first().map_or(1, |r| r.increment_cents)
    }

    /// The human form, decimal amounts (`0:1.00,100:5.00`): `from:increment` pairs separated
    /// by commas, as `DEFAULT_INCREMENTS` takes it.
    ///
    /// # Errors
    /// [`IncrementError`] for a malformed row or a broken rule.
    pub fn parse_decimal(text: &str) -> Result<Self, IncrementError> {
        let rows = text
            .split(',')
            .map(str::trim)
            .filter(|row| !row.is_empty())
            .map(|row| {
                let bad = || IncrementError::BadRow(row.to_owned());
                let (from, step) = row.split_once(':').ok_or_else(bad)?;
                let from_cents = match from.trim() {
                    "0" | "0.0" | "0.00" => 0,
                    other => Cents::parse_decimal(other).map_err(|_| bad())?.get(),
                };
                let increment = Cents::parse_decimal(step.trim()).map_err(|_| bad())?;
                Ok(IncrementRow {
                    from_cents,
                    increment_cents: increment.get(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(rows)
    }

    /// The item hash's storage text, which `place_bid.lua` walks.
    pub fn to_storage(&self) -> String {
        self.0
            .iter()
            .map(|r| format!("{}:{}", r.from_cents, r.increment_cents))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// Reads the storage text back.
    ///
    /// # Errors
    /// [`IncrementError`] for text the gateway did not write.
    pub fn from_storage(text: &str) -> Result<Self, IncrementError> {
        let rows = text
            .split(';')
            .filter(|row| !row.is_empty())
            .map(|row| {
                let bad = || IncrementError::BadRow(row.to_owned());
                let (from, step) = row.split_once(':').ok_or_else(bad)?;
                Ok(IncrementRow {
                    from_cents: from.parse().map_err(|_| bad())?,
                    increment_cents: step.parse().map_err(|_| bad())?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(rows)
    }
}

impl fmt::Display for IncrementTable {
    /// The decimal form [`IncrementTable::parse_decimal`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<String> = self
            .0
            .iter()
            .map(|r| {
                format!(
                    "{}:{}",
                    crate::money::decimal_text(r.from_cents),
                    crate::money::decimal_text(r.increment_cents)
                )
            })
            .collect();
        f.write_str(&rows.join(","))
    }
}

impl<'de> serde::Deserialize<'de> for IncrementRow {
    /// `{"from": <amount or 0>, "increment": <amount>}`, amounts as JSON decimals read from
    /// their digits (`shared::money`), never through a float.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Row<'a> {
            #[serde(borrow)]
            from: &'a serde_json::value::RawValue,
            increment: Cents,
        }
        let row = Row::deserialize(deserializer)?;
        let text = row.from.get().trim_matches('"');
        let from_cents = match text {
            "0" | "0.0" | "0.00" => 0,
            other => Cents::parse_decimal(other)
                .map_err(|e| D::Error::custom(format!("from {e}")))?
                .get(),
        };
        Ok(Self {
            from_cents,
            increment_cents: row.increment.get(),
        })
    }
}

impl Serialize for IncrementTable {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(from_cents: i64, increment_cents: i64) -> IncrementRow {
        IncrementRow {
            from_cents,
            increment_cents,
        }
    }

    fn tiered() -> IncrementTable {
        IncrementTable::new(vec![row(0, 50), row(1_000, 100), row(10_000, 500)]).unwrap()
    }

    #[test]
    fn the_increment_in_force_is_the_last_row_at_or_below_the_price() {
        let t = tiered();
        assert_eq!(t.increment_at(0), 50);
        assert_eq!(t.increment_at(999), 50);
        assert_eq!(t.increment_at(1_000), 100);
        assert_eq!(t.increment_at(9_999), 100);
        assert_eq!(t.increment_at(10_000), 500);
        assert_eq!(t.increment_at(i64::MAX), 500);
    }

    #[test]
    fn a_table_must_start_at_zero_ascend_and_have_positive_steps() {
        assert_eq!(IncrementTable::new(vec![]), Err(IncrementError::Empty));
        assert_eq!(
            IncrementTable::new(vec![row(100, 5)]),
            Err(IncrementError::FirstRowNotFromZero)
        );
        assert_eq!(
            IncrementTable::new(vec![row(0, 5), row(0, 10)]),
            Err(IncrementError::NotAscending)
        );
        assert_eq!(
            IncrementTable::new(vec![row(0, 0)]),
            Err(IncrementError::NotPositive)
        );
        assert_eq!(
            IncrementTable::new((0..=MAX_ROWS as i64).map(|i| row(i, 1)).collect()),
            Err(IncrementError::TooManyRows)
        );
    }

    #[test]
    fn storage_and_decimal_forms_round_trip() {
        let t = tiered();
        assert_eq!(t.to_storage(), "0:50;1000:100;10000:500");
        assert_eq!(IncrementTable::from_storage(&t.to_storage()), Ok(t.clone()));
        assert_eq!(IncrementTable::parse_decimal(&t.to_string()), Ok(t.clone()));
        assert_eq!(
            IncrementTable::parse_decimal("0:0.50, 10:1, 100:5.00"),
            Ok(t)
        );
        assert!(matches!(
            IncrementTable::parse_decimal("0:1,x"),
            Err(IncrementError::BadRow(_))
        ));
    }

    #[test]
    fn rows_read_from_json_with_a_zero_from() {
        let rows: Vec<IncrementRow> = serde_json::from_str(
            r#"[{"from": 0, "increment": 0.5}, {"from": 10, "increment": 1}]"#,
        )
        .unwrap();
        assert_eq!(rows, vec![row(0, 50), row(1_000, 100)]);
        assert!(
            serde_json::from_str::<Vec<IncrementRow>>(r#"[{"from": 0, "increment": 0}]"#).is_err()
        );
    }

    #[test]
    fn the_view_shows_decimal_rows() {
        let json = serde_json::to_value(tiered()).unwrap();
        assert_eq!(json[1]["from"], serde_json::json!(10));
        assert_eq!(json[0]["increment"], serde_json::json!(0.5));
    }
}
