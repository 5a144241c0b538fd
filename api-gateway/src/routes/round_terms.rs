//! The terms of one auction round as a request gives them: creating an item
//! (`POST /api/v1/items`) sets them for its first round and relisting it
//! (`POST /api/v1/items/{id}/relist`) for the next, so one struct and one validation serve
//! both and a new round can never be set up under looser rules than a new item.
//!
//! serde's `flatten` cannot embed these fields in the creation request: it does not combine
//! with `deny_unknown_fields`, and it buffers values, which the exact money parser (it reads
//! each amount's own text, `shared::money`) cannot read back. So the creation request takes
//! its own fields out of the body's raw field map and reads the rest as these terms
//! ([`RoundTermsRequest::from_rest`]), unknown fields refused here as anywhere.

use crate::error::{ApiError, ErrorCode};
use crate::store::RoundTerms;
use serde::Deserialize;
use serde_json::value::RawValue;
use shared::{Cents, IncrementRow, IncrementTable, Timestamp};
use std::collections::BTreeMap;

/// Longest allowed auction round.
const MAX_DURATION_US: i64 = 366 * 24 * 3600 * 1_000_000;
/// Longest anti-sniping window or extension.
const MAX_EXTENSION_SECS: u32 = 24 * 3600;

/// A JSON object's fields, each value still its own text (so money keeps its exact digits).
pub(super) type RawFields = BTreeMap<String, Box<RawValue>>;

/// One round's terms. Also the whole body of a relist.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RoundTermsRequest {
    #[schema(value_type = f64, minimum = 0.01, example = 12.5)]
    starting_price: Cents,
    /// A flat increment; without it (and without `increments`) the gateway's
    /// `DEFAULT_INCREMENTS` table applies.
    #[schema(value_type = Option<f64>)]
    min_increment: Option<Cents>,
    /// A tiered increment schedule instead of `min_increment`: rows ascending by `from`,
    /// the first from 0; the increment in force is the last row at or below the price.
    #[schema(value_type = Option<Vec<IncrementRowSchema>>)]
    increments: Option<Vec<IncrementRow>>,
    #[schema(value_type = Option<f64>)]
    reserve_price: Option<Cents>,
    /// Buy it now: anyone but the seller may end the round at this price
    /// (`POST /api/v1/items/{id}/buy`) until its first bid. At least the starting price and
    /// the reserve.
    #[schema(value_type = Option<f64>)]
    buy_now_price: Option<Cents>,
    #[schema(value_type = Option<String>, format = DateTime)]
    start_time: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    end_time: Timestamp,
    extension_window_secs: Option<u32>,
    extension_secs: Option<u32>,
}

/// One row of an increment schedule, as the OpenAPI document shows it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct IncrementRowSchema {
    /// From this price on (0 for the first row).
    #[schema(minimum = 0, example = 100)]
    from: f64,
    #[schema(minimum = 0.01, example = 2.5)]
    increment: f64,
}

impl RoundTermsRequest {
    /// Reads the terms from what is left of a request body once its other fields were taken
    /// out; a field left over that is not a term is refused.
    ///
    /// # Errors
    /// The serde error naming the field that is missing, unknown or malformed.
    pub(super) fn from_rest(rest: &RawFields) -> Result<Self, serde_json::Error> {
        serde_json::from_str(&serde_json::to_string(rest)?)
    }

    /// Applies the rules serde cannot express; `default` is the increment table of a round
    /// that names none.
    ///
    /// # Errors
    /// 400 `invalid_increments`, `invalid_buy_now_price`, `invalid_end_time` (a round longer
    /// than 366 days) or `invalid_extension`.
    pub(super) fn validate(self, default: &IncrementTable) -> Result<RoundTerms, ApiError> {
        let increments = match (self.min_increment, self.increments) {
            (Some(_), Some(_)) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidIncrements,
                    "give min_increment or increments, not both",
                ));
            }
            (Some(flat), None) => IncrementTable::flat(flat),
            (None, Some(rows)) => IncrementTable::new(rows).map_err(|e| {
                ApiError::new(ErrorCode::InvalidIncrements, format!("increments {e}"))
            })?,
            (None, None) => default.clone(),
        };
        let reserve_cents = self.reserve_price.map_or(0, Cents::get);
        if let Some(buy_now) = self.buy_now_price
            && (buy_now.get() < self.starting_price.get() || buy_now.get() < reserve_cents)
        {
            return Err(ApiError::new(
                ErrorCode::InvalidBuyNowPrice,
                "buy_now_price must be at least the starting price and the reserve",
            ));
        }
        let start_us = self.start_time.map(Timestamp::micros);
        let end_us = self.end_time.micros();
        let reference = start_us.unwrap_or_else(|| Timestamp::now().micros());
        if end_us - reference > MAX_DURATION_US {
            return Err(ApiError::new(
                ErrorCode::InvalidEndTime,
                "an auction may last at most 366 days",
            ));
        }
        let window = self.extension_window_secs.unwrap_or(0);
        let extension = self.extension_secs.unwrap_or(window);
        if window > MAX_EXTENSION_SECS || extension > MAX_EXTENSION_SECS {
            return Err(ApiError::new(
                ErrorCode::InvalidExtension,
                "extension_window_secs and extension_secs must be at most 86400",
            ));
        }
        if window > 0 && extension == 0 {
            return Err(ApiError::new(
                ErrorCode::InvalidExtension,
                "extension_secs must be positive when extension_window_secs is set",
            ));
        }
        Ok(RoundTerms {
            starting_cents: self.starting_price.get(),
            increments,
            reserve_cents,
            buy_now_cents: self.buy_now_price.map_or(0, Cents::get),
            start_us,
            end_us,
            extension_window_us: i64::from(window) * 1_000_000,
            extension_us: i64::from(extension) * 1_000_000,
        })
    }
}
