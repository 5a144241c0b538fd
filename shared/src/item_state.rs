//! An item's current state as the gateway stores it in Redis (`{s<n>}:item:<id>` hash), and
//! the JSON view of it that `GET /api/v1/items/{id}` and WebSocket snapshots show.
//!
//! The hash field names live here, next to the parser, so the gateway's Lua script, the
//! gateway's reads and the broadcast service's snapshots cannot drift apart.

use crate::ids::{ItemId, UserId};
use crate::increments::IncrementTable;
use crate::money::Cents;
use crate::money::{serialize_cents, serialize_opt_cents};
use crate::timestamp::Timestamp;
use serde::Serialize;
use std::collections::HashMap;

/// Hash field names of an item.
pub mod field {
    pub const NAME: &str = "name";
    pub const DESCRIPTION: &str = "description";
    /// Stored status: `active`, `closed` or `cancelled` (`scheduled` is derived from time).
    pub const STATUS: &str = "status";
    pub const START_US: &str = "start_us";
    pub const END_US: &str = "end_us";
    pub const STARTING_CENTS: &str = "starting_cents";
    pub const MIN_INCREMENT_CENTS: &str = "min_increment_cents";
    /// `0` when the auction has no reserve.
    pub const RESERVE_CENTS: &str = "reserve_cents";
    /// `0` until the first bid.
    pub const CURRENT_CENTS: &str = "current_cents";
    /// Empty until the first bid.
    pub const HIGHEST_BIDDER: &str = "highest_bidder";
    pub const BID_COUNT: &str = "bid_count";
    pub const SEQ: &str = "seq";
    pub const EXTENSION_WINDOW_US: &str = "ext_window_us";
    pub const EXTENSION_US: &str = "ext_us";
    pub const CREATED_US: &str = "created_us";
    /// When this round was listed (µs): the creation, or the latest relist. The listing's
    /// `newest` order is by it; items created before it existed fall back to `created_us`.
    pub const LISTED_US: &str = "listed_us";
    pub const ROUND: &str = "round";
    /// Empty unless the auction closed with a winner.
    pub const WINNER_ID: &str = "winner_id";
    /// When the closer closed the auction (µs); absent until then.
    pub const CLOSED_US: &str = "closed_us";
    /// Why an admin cancelled the auction.
    pub const CANCEL_REASON: &str = "cancel_reason";
    /// The account that created the auction (the token's `sub`); it may not bid on it.
    /// Absent or empty for an item created before sellers existed.
    pub const SELLER_ID: &str = "seller_id";
    /// The `auction_closed` event (its field list, as JSON) of a close not yet confirmed as
    /// announced live; written by `close_item.lua`, removed by `confirm_close.lua`.
    pub const CLOSE_EVENT: &str = "close_event";
    /// The increment schedule (`IncrementTable::to_storage`: `from:increment` cents pairs,
    /// `;`-separated); absent for a flat `min_increment_cents` (items made before tables).
    pub const INCREMENTS: &str = "increments";
    /// The buy-it-now price in cents; absent or `0` without one. Available only before the
    /// first bid, while the auction runs.
    pub const BUY_NOW_CENTS: &str = "buy_now_cents";
    /// The current leader's maximum (proxy bid) in cents; absent or `0` when the leader bid
    /// no more than the price. Read only by the bid scripts: [`super::ItemState`] does not
    /// parse it, so no view, snapshot or listing can show it.
    pub const LEADER_MAX_CENTS: &str = "leader_max_cents";
}

/// What a viewer or client sees as the auction's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Scheduled,
    Active,
    Closed,
    Cancelled,
}

/// The parsed item hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemState {
    pub id: ItemId,
    pub name: String,
    pub description: String,
    pub stored_status: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub starting_cents: i64,
    pub min_increment_cents: i64,
    pub reserve_cents: i64,
    pub current_cents: i64,
    pub highest_bidder: Option<UserId>,
    pub bid_count: u64,
    pub seq: u64,
    pub extension_window_secs: i64,
    pub extension_secs: i64,
    pub round: u32,
    pub winner_id: Option<UserId>,
    /// Set once the auction was closed (its result is final from then on).
    pub closed_at: Option<Timestamp>,
    pub cancel_reason: Option<String>,
    /// Who created the auction; `None` for an item created before sellers existed.
    pub seller_id: Option<UserId>,
    /// The increment schedule (a flat `min_increment_cents` is its one row).
    pub increments: IncrementTable,
    /// `0` without a buy-it-now price.
    pub buy_now_cents: i64,
}

/// Why an item hash could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemStateError {
    #[error("item hash is missing field {0}")]
    Missing(&'static str),
    #[error("item hash field {0} is not a valid value")]
    Invalid(&'static str),
}

impl ItemState {
    /// Parses an `HGETALL` reply.
    ///
    /// # Errors
    /// When a required field is missing or malformed (a hash not written by the gateway).
    pub fn from_hash(id: ItemId, hash: &HashMap<String, String>) -> Result<Self, ItemStateError> {
        let text = |f: &'static str| hash.get(f).map(String::as_str).unwrap_or_default();
        let required = |f: &'static str| hash.get(f).ok_or(ItemStateError::Missing(f));
        let int = |f: &'static str| -> Result<i64, ItemStateError> {
            required(f)?.parse().map_err(|_| ItemStateError::Invalid(f))
        };
        let opt_user = |f: &'static str| -> Result<Option<UserId>, ItemStateError> {
            match text(f) {
                "" => Ok(None),
                u => UserId::parse(u)
                    .map(Some)
                    .map_err(|_| ItemStateError::Invalid(f)),
            }
        };
        let non_negative = |f: &'static str| -> Result<u64, ItemStateError> {
            u64::try_from(int(f)?).map_err(|_| ItemStateError::Invalid(f))
        };
        Ok(Self {
            name: text(field::NAME).to_owned(),
            description: text(field::DESCRIPTION).to_owned(),
            stored_status: required(field::STATUS)?.clone(),
            start: Timestamp::from_micros(int(field::START_US)?),
            end: Timestamp::from_micros(int(field::END_US)?),
            starting_cents: int(field::STARTING_CENTS)?,
            min_increment_cents: int(field::MIN_INCREMENT_CENTS)?,
            reserve_cents: int(field::RESERVE_CENTS).unwrap_or(0),
            current_cents: int(field::CURRENT_CENTS)?,
            highest_bidder: opt_user(field::HIGHEST_BIDDER)?,
            bid_count: non_negative(field::BID_COUNT)?,
            seq: non_negative(field::SEQ)?,
            extension_window_secs: int(field::EXTENSION_WINDOW_US).unwrap_or(0) / 1_000_000,
            extension_secs: int(field::EXTENSION_US).unwrap_or(0) / 1_000_000,
            round: int(field::ROUND)
                .ok()
                .and_then(|r| u32::try_from(r).ok())
                .unwrap_or(1),
            winner_id: opt_user(field::WINNER_ID)?,
            closed_at: int(field::CLOSED_US).ok().map(Timestamp::from_micros),
            cancel_reason: Some(text(field::CANCEL_REASON).to_owned()).filter(|r| !r.is_empty()),
            seller_id: opt_user(field::SELLER_ID)?,
            increments: match hash.get(field::INCREMENTS).filter(|t| !t.is_empty()) {
                Some(text) => IncrementTable::from_storage(text)
                    .map_err(|_| ItemStateError::Invalid(field::INCREMENTS))?,
                None => Cents::new(int(field::MIN_INCREMENT_CENTS)?)
                    .map(IncrementTable::flat)
                    .map_err(|_| ItemStateError::Invalid(field::MIN_INCREMENT_CENTS))?,
            },
            buy_now_cents: int(field::BUY_NOW_CENTS).unwrap_or(0),
            id,
        })
    }

    /// The status at `now`: a stored `active` auction is `scheduled` before its start and
    /// `closed` from its end on, even before the closer has marked it.
    pub fn status_at(&self, now: Timestamp) -> ItemStatus {
        match self.stored_status.as_str() {
            "cancelled" => ItemStatus::Cancelled,
            "closed" => ItemStatus::Closed,
            _ if now < self.start => ItemStatus::Scheduled,
            _ if now >= self.end => ItemStatus::Closed,
            _ => ItemStatus::Active,
        }
    }

    /// The smallest amount the next bid may have: the starting price, then the price plus
    /// the increment in force at it (`place_bid.lua` applies the same rule).
    pub fn minimum_bid_cents(&self) -> i64 {
        if self.bid_count == 0 {
            self.starting_cents
        } else {
            self.current_cents + self.increments.increment_at(self.current_cents)
        }
    }

    /// The buy-it-now price while it can still be used: set, no bid yet, auction running.
    pub fn buy_now_available(&self, now: Timestamp) -> Option<i64> {
        (self.buy_now_cents > 0 && self.bid_count == 0 && self.status_at(now) == ItemStatus::Active)
            .then_some(self.buy_now_cents)
    }

    /// The public view at `now`.
    pub fn view(&self, now: Timestamp) -> ItemView {
        ItemView {
            id: self.id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            status: self.status_at(now),
            current_bid: self.current_cents,
            current_bid_cents: self.current_cents,
            highest_bidder_id: self.highest_bidder.clone(),
            starting_price: self.starting_cents,
            starting_price_cents: self.starting_cents,
            min_increment: self.increments.increment_at(self.current_cents),
            min_increment_cents: self.increments.increment_at(self.current_cents),
            minimum_bid: self.minimum_bid_cents(),
            minimum_bid_cents: self.minimum_bid_cents(),
            next_minimum_bid: self.minimum_bid_cents(),
            next_minimum_bid_cents: self.minimum_bid_cents(),
            increments: self.increments.clone(),
            buy_now_price: self.buy_now_available(now),
            buy_now_price_cents: self.buy_now_available(now),
            has_reserve: self.reserve_cents > 0,
            reserve_met: (self.reserve_cents > 0)
                .then_some(self.bid_count > 0 && self.current_cents >= self.reserve_cents),
            bid_count: self.bid_count,
            seq: self.seq,
            start_time: self.start,
            end_time: self.end,
            extension_window_secs: self.extension_window_secs,
            extension_secs: self.extension_secs,
            round: self.round,
            winner_id: self.winner_id.clone(),
            closed_at: self.closed_at,
            cancel_reason: self.cancel_reason.clone(),
            seller_id: self.seller_id.clone(),
            // Only a closed auction with a winner has a final price (reserve not met: none).
            final_price: self.winner_id.as_ref().map(|_| self.current_cents),
        }
    }
}

/// The JSON an item is shown as. Never includes the reserve amount, only whether it is met.
#[derive(Debug, Clone, Serialize)]
pub struct ItemView {
    pub id: ItemId,
    pub name: String,
    pub description: String,
    pub status: ItemStatus,
    /// Highest accepted bid; `0` before the first bid.
    #[serde(serialize_with = "serialize_cents")]
    pub current_bid: i64,
    pub current_bid_cents: i64,
    pub highest_bidder_id: Option<UserId>,
    #[serde(serialize_with = "serialize_cents")]
    pub starting_price: i64,
    pub starting_price_cents: i64,
    /// The increment in force at the current price.
    #[serde(serialize_with = "serialize_cents")]
    pub min_increment: i64,
    pub min_increment_cents: i64,
    /// The smallest amount the next bid may have (`next_minimum_bid` is the same value under
    /// the name of the issue 16 contract).
    #[serde(serialize_with = "serialize_cents")]
    pub minimum_bid: i64,
    pub minimum_bid_cents: i64,
    #[serde(serialize_with = "serialize_cents")]
    pub next_minimum_bid: i64,
    pub next_minimum_bid_cents: i64,
    /// The increment schedule in force (a flat increment is one row from 0).
    pub increments: IncrementTable,
    /// Present only while buy it now is available: before the first bid, while active.
    #[serde(
        serialize_with = "serialize_opt_cents",
        skip_serializing_if = "Option::is_none"
    )]
    pub buy_now_price: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buy_now_price_cents: Option<i64>,
    pub has_reserve: bool,
    /// `null` when there is no reserve.
    pub reserve_met: Option<bool>,
    pub bid_count: u64,
    pub seq: u64,
    pub start_time: Timestamp,
    pub end_time: Timestamp,
    pub extension_window_secs: i64,
    pub extension_secs: i64,
    pub round: u32,
    pub winner_id: Option<UserId>,
    /// When the auction was closed and its result became final (`null` until then; `status`
    /// already reads `closed` from the end time on).
    pub closed_at: Option<Timestamp>,
    /// Why an admin cancelled the auction (`null` unless cancelled).
    pub cancel_reason: Option<String>,
    /// Who created the auction (`null` for an item created before sellers existed).
    pub seller_id: Option<UserId>,
    #[serde(serialize_with = "serialize_opt_cents")]
    pub final_price: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash() -> HashMap<String, String> {
        [
            (field::NAME, "Camera"),
            (field::STATUS, "active"),
            (field::START_US, "1000000"),
            (field::END_US, "9000000"),
            (field::STARTING_CENTS, "1000"),
            (field::MIN_INCREMENT_CENTS, "100"),
            (field::RESERVE_CENTS, "5000"),
            (field::CURRENT_CENTS, "0"),
            (field::HIGHEST_BIDDER, ""),
            (field::BID_COUNT, "0"),
            (field::SEQ, "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn state() -> ItemState {
        ItemState::from_hash(ItemId::parse("i").unwrap(), &hash()).unwrap()
    }

    #[test]
    fn status_follows_the_clock_within_an_active_auction() {
        let s = state();
        assert_eq!(
            s.status_at(Timestamp::from_micros(0)),
            ItemStatus::Scheduled
        );
        assert_eq!(
            s.status_at(Timestamp::from_micros(1_000_000)),
            ItemStatus::Active
        );
        assert_eq!(
            s.status_at(Timestamp::from_micros(9_000_000)),
            ItemStatus::Closed
        );
    }

    #[test]
    fn first_bid_minimum_is_the_starting_price_then_price_plus_increment() {
        let mut s = state();
        assert_eq!(s.minimum_bid_cents(), 1000);
        s.bid_count = 1;
        s.current_cents = 1500;
        assert_eq!(s.minimum_bid_cents(), 1600);
    }

    #[test]
    fn view_never_reveals_the_reserve_amount() {
        let json = serde_json::to_value(state().view(Timestamp::from_micros(2_000_000))).unwrap();
        assert_eq!(json["reserve_met"], false);
        assert_eq!(json["has_reserve"], true);
        assert!(!json.to_string().contains("5000") && !json.to_string().contains("\"50\""));
    }

    #[test]
    fn view_never_reveals_the_leaders_maximum() {
        let mut h = hash();
        h.insert(field::BID_COUNT.into(), "1".into());
        h.insert(field::CURRENT_CENTS.into(), "1000".into());
        h.insert(field::HIGHEST_BIDDER.into(), "ada".into());
        h.insert(field::LEADER_MAX_CENTS.into(), "987654".into());
        let s = ItemState::from_hash(ItemId::parse("i").unwrap(), &h).unwrap();
        let json = serde_json::to_string(&s.view(Timestamp::from_micros(2_000_000))).unwrap();
        assert!(
            !json.contains("987654") && !json.contains("9876.54"),
            "{json}"
        );
    }

    #[test]
    fn a_tiered_table_sets_the_next_minimum_and_buy_now_shows_only_before_the_first_bid() {
        let mut h = hash();
        h.insert(field::INCREMENTS.into(), "0:50;2000:250".into());
        h.insert(field::BUY_NOW_CENTS.into(), "9900".into());
        let mut s = ItemState::from_hash(ItemId::parse("i").unwrap(), &h).unwrap();
        let now = Timestamp::from_micros(2_000_000);
        assert_eq!(s.buy_now_available(now), Some(9900));
        assert_eq!(s.view(now).buy_now_price, Some(9900));
        assert_eq!(s.buy_now_available(Timestamp::from_micros(9_000_000)), None);
        s.bid_count = 1;
        s.current_cents = 1500;
        assert_eq!(s.minimum_bid_cents(), 1550);
        s.current_cents = 2000;
        assert_eq!(s.minimum_bid_cents(), 2250);
        let view = serde_json::to_value(s.view(now)).unwrap();
        assert_eq!(view["next_minimum_bid_cents"], 2250);
        assert!(
            view.get("buy_now_price").is_none(),
            "gone after the first bid"
        );
        assert_eq!(view["increments"][1]["from"], serde_json::json!(20));
    }

    #[test]
    fn hash_missing_a_required_field_is_an_error() {
        let mut h = hash();
        h.remove(field::SEQ);
        assert_eq!(
            ItemState::from_hash(ItemId::parse("i").unwrap(), &h),
            Err(ItemStateError::Missing(field::SEQ))
        );
    }
}
