//! The event schema: one JSON shape, published live on core NATS, archived through JetStream
//! and stored by the archival worker.
//!
//! Field names stay compatible with the original system's WebSocket messages (`event_id`,
//! `item_id`, `bid_id`, `user_id`, `amount`, `previous_bid`, `timestamp`); amounts are also
//! given as integer `*_cents` so consumers never have to parse decimals.
//!
//! Every event carries the item's `seller_id` (the account that created the auction; `null`
//! for an item created before sellers existed), so a consumer can tell a seller's auctions
//! apart without reading the item.

use crate::ids::{ItemId, UserId};
use crate::money::serialize_cents;
use crate::timestamp::Timestamp;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use uuid::Uuid;

/// A UUIDv7: unique, and time-ordered so ids sort roughly by acceptance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(Uuid);

impl EventId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Parses the hyphenated form.
    ///
    /// # Errors
    /// When the text is not a UUID.
    pub fn parse(text: &str) -> Result<Self, uuid::Error> {
        Uuid::parse_str(text).map(Self)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

/// Every event, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    BidPlaced(BidPlaced),
    AuctionClosed(AuctionClosed),
    AuctionExtended(AuctionExtended),
    AuctionRelisted(AuctionRelisted),
}

impl Event {
    pub fn event_id(&self) -> EventId {
        match self {
            Event::BidPlaced(e) => e.event_id,
            Event::AuctionClosed(e) => e.event_id,
            Event::AuctionExtended(e) => e.event_id,
            Event::AuctionRelisted(e) => e.event_id,
        }
    }

    pub fn item_id(&self) -> &ItemId {
        match self {
            Event::BidPlaced(e) => &e.item_id,
            Event::AuctionClosed(e) => &e.item_id,
            Event::AuctionExtended(e) => &e.item_id,
            Event::AuctionRelisted(e) => &e.item_id,
        }
    }

    /// The item's sequence number this event produced (1, 2, 3 … with no gaps).
    pub fn seq(&self) -> u64 {
        match self {
            Event::BidPlaced(e) => e.seq,
            Event::AuctionClosed(e) => e.seq,
            Event::AuctionExtended(e) => e.seq,
            Event::AuctionRelisted(e) => e.seq,
        }
    }

    pub fn timestamp(&self) -> Timestamp {
        match self {
            Event::BidPlaced(e) => e.timestamp,
            Event::AuctionClosed(e) => e.timestamp,
            Event::AuctionExtended(e) => e.timestamp,
            Event::AuctionRelisted(e) => e.timestamp,
        }
    }

    /// The seller of the item (`None` for an item created before sellers existed).
    pub fn seller_id(&self) -> Option<&UserId> {
        match self {
            Event::BidPlaced(e) => e.seller_id.as_ref(),
            Event::AuctionClosed(e) => e.seller_id.as_ref(),
            Event::AuctionExtended(e) => e.seller_id.as_ref(),
            Event::AuctionRelisted(e) => e.seller_id.as_ref(),
        }
    }

    /// The auction round the event belongs to.
    pub fn round(&self) -> u32 {
        match self {
            Event::BidPlaced(e) => e.round,
            Event::AuctionClosed(e) => e.round,
            Event::AuctionExtended(e) => e.round,
            Event::AuctionRelisted(e) => e.round,
        }
    }

    /// The JSON bytes sent on the wire.
    ///
    /// # Errors
    /// Only if a field's serializer refuses its value (the decimal amounts are checked as
    /// JSON when written). Callers skip such an event rather than publish something else: an
    /// empty payload would reach every viewer and the archive as a broken event.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

fn default_round() -> u32 {
    1
}

/// An accepted bid.
///
/// Amounts are held as cents; the wire form adds the decimal twins (`amount`, `previous_bid`)
/// that old clients read. Decoding reads only the `_cents` fields, which are exact.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BidPlaced {
    pub event_id: EventId,
    pub item_id: ItemId,
    pub seq: u64,
    pub timestamp: Timestamp,
    /// Identifies the bid itself; equal to `event_id` for bids (kept for old clients).
    pub bid_id: String,
    pub user_id: UserId,
    pub amount_cents: i64,
    /// The price before this bid; `0` when this is the first bid.
    pub previous_bid_cents: i64,
    /// The auction's end time after this bid (later than before when `extended`).
    pub end_time: Timestamp,
    /// Whether this bid moved `end_time` (anti-sniping).
    pub extended: bool,
    /// The auction round (relisting an item starts a new round).
    #[serde(default = "default_round")]
    pub round: u32,
    /// The item's seller; `None` for an item created before sellers existed.
    #[serde(default)]
    pub seller_id: Option<UserId>,
    /// Placed by the system for the bidder's maximum (proxy bidding), not by a request of
    /// theirs. The maximum itself is never in any event.
    #[serde(default)]
    pub automatic: bool,
    /// A standing maximum answered this (manual) bid at once: the next event of the item,
    /// `seq + 1`, is the leader's automatic bid taking the lead back. Public, as that next
    /// event is; it lets a consumer that sees this bid alone (the archive's notification step,
    /// at a batch boundary) know the leader before it was not outbid.
    #[serde(default)]
    pub answered: bool,
}

/// A decimal JSON number written from cents.
struct Decimal(i64);

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_cents(&self.0, serializer)
    }
}

impl Serialize for BidPlaced {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("BidPlaced", 16)?;
        s.serialize_field("event_id", &self.event_id)?;
        s.serialize_field("item_id", &self.item_id)?;
        s.serialize_field("seq", &self.seq)?;
        s.serialize_field("timestamp", &self.timestamp)?;
        s.serialize_field("bid_id", &self.bid_id)?;
        s.serialize_field("user_id", &self.user_id)?;
        s.serialize_field("amount", &Decimal(self.amount_cents))?;
        s.serialize_field("amount_cents", &self.amount_cents)?;
        s.serialize_field("previous_bid", &Decimal(self.previous_bid_cents))?;
        s.serialize_field("previous_bid_cents", &self.previous_bid_cents)?;
        s.serialize_field("end_time", &self.end_time)?;
        s.serialize_field("extended", &self.extended)?;
        s.serialize_field("round", &self.round)?;
        s.serialize_field("seller_id", &self.seller_id)?;
        s.serialize_field("automatic", &self.automatic)?;
        s.serialize_field("answered", &self.answered)?;
        s.end()
    }
}

/// An auction's end, with its result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AuctionClosed {
    pub event_id: EventId,
    pub item_id: ItemId,
    pub seq: u64,
    pub timestamp: Timestamp,
    pub winner_id: Option<UserId>,
    /// `None` when the auction closed without a winner.
    pub final_price_cents: Option<i64>,
    pub reserve_met: bool,
    #[serde(default = "default_round")]
    pub round: u32,
    /// Ended by an admin's cancellation rather than by time (no winner).
    #[serde(default)]
    pub cancelled: bool,
    /// Why it was cancelled.
    #[serde(default)]
    pub reason: Option<String>,
    /// The item's seller; `None` for an item created before sellers existed.
    #[serde(default)]
    pub seller_id: Option<UserId>,
    /// Ended by the winner's buy it now (`POST /api/v1/items/{id}/buy`) before any bid.
    #[serde(default)]
    pub buy_now: bool,
}

/// An admin moved an auction's end time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionExtended {
    pub event_id: EventId,
    pub item_id: ItemId,
    pub seq: u64,
    pub timestamp: Timestamp,
    pub end_time: Timestamp,
    pub round: u32,
    /// The item's seller; `None` for an item created before sellers existed.
    #[serde(default)]
    pub seller_id: Option<UserId>,
}

/// A closed or cancelled item put up again as a new round (a fresh auction; `seq` continues).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AuctionRelisted {
    pub event_id: EventId,
    pub item_id: ItemId,
    pub seq: u64,
    pub timestamp: Timestamp,
    pub round: u32,
    pub starting_price_cents: i64,
    pub start_time: Timestamp,
    pub end_time: Timestamp,
    /// The item's seller; `None` for an item created before sellers existed.
    #[serde(default)]
    pub seller_id: Option<UserId>,
}

impl Serialize for AuctionRelisted {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("AuctionRelisted", 10)?;
        s.serialize_field("event_id", &self.event_id)?;
        s.serialize_field("item_id", &self.item_id)?;
        s.serialize_field("seq", &self.seq)?;
        s.serialize_field("timestamp", &self.timestamp)?;
        s.serialize_field("round", &self.round)?;
        s.serialize_field("starting_price", &Decimal(self.starting_price_cents))?;
        s.serialize_field("starting_price_cents", &self.starting_price_cents)?;
        s.serialize_field("start_time", &self.start_time)?;
        s.serialize_field("end_time", &self.end_time)?;
        s.serialize_field("seller_id", &self.seller_id)?;
        s.end()
    }
}

impl Serialize for AuctionClosed {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("AuctionClosed", 13)?;
        s.serialize_field("event_id", &self.event_id)?;
        s.serialize_field("item_id", &self.item_id)?;
        s.serialize_field("seq", &self.seq)?;
        s.serialize_field("timestamp", &self.timestamp)?;
        s.serialize_field("winner_id", &self.winner_id)?;
        s.serialize_field("final_price", &self.final_price_cents.map(Decimal))?;
        s.serialize_field("final_price_cents", &self.final_price_cents)?;
        s.serialize_field("reserve_met", &self.reserve_met)?;
        s.serialize_field("round", &self.round)?;
        s.serialize_field("cancelled", &self.cancelled)?;
        s.serialize_field("reason", &self.reason)?;
        s.serialize_field("seller_id", &self.seller_id)?;
        s.serialize_field("buy_now", &self.buy_now)?;
        s.end()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A bid every event test starts from.
    pub(crate) fn bid() -> BidPlaced {
        let event_id = EventId::new();
        BidPlaced {
            event_id,
            item_id: ItemId::parse("item-1").unwrap(),
            seq: 7,
            timestamp: Timestamp::from_micros(1_700_000_000_000_001),
            bid_id: event_id.to_string(),
            user_id: UserId::parse("alice").unwrap(),
            amount_cents: 20_050,
            previous_bid_cents: 20_000,
            end_time: Timestamp::from_micros(1_700_000_600_000_000),
            extended: false,
            round: 1,
            seller_id: Some(UserId::parse("sam").unwrap()),
            automatic: false,
            answered: false,
        }
    }

    #[test]
    fn bid_placed_has_the_compatible_wire_shape() {
        let json: serde_json::Value =
            serde_json::from_slice(&Event::BidPlaced(bid()).to_json().unwrap()).unwrap();
        assert_eq!(json["type"], "bid_placed");
        assert_eq!(json["item_id"], "item-1");
        assert_eq!(json["user_id"], "alice");
        assert_eq!(json["amount"].to_string(), "200.5");
        assert_eq!(json["amount_cents"], 20_050);
        assert_eq!(json["previous_bid"].to_string(), "200");
        assert_eq!(json["timestamp"], "2023-11-14T22:13:20.000001Z");
        assert_eq!(json["seq"], 7);
        assert_eq!(json["seller_id"], "sam");
        assert!(json["event_id"].as_str().unwrap().len() == 36);
    }

    #[test]
    fn an_event_written_before_sellers_existed_decodes_without_one() {
        let mut json: serde_json::Value =
            serde_json::from_slice(&Event::BidPlaced(bid()).to_json().unwrap()).unwrap();
        json.as_object_mut().unwrap().remove("seller_id");
        let event: Event = serde_json::from_value(json).unwrap();
        assert_eq!(event.seller_id(), None);
    }

    fn closed(winner: Option<&str>, cancelled: bool) -> Event {
        Event::AuctionClosed(AuctionClosed {
            event_id: EventId::new(),
            item_id: ItemId::parse("item-1").unwrap(),
            seq: 8,
            timestamp: Timestamp::from_micros(1),
            winner_id: winner.map(|w| UserId::parse(w).unwrap()),
            final_price_cents: winner.map(|_| 20_050),
            reserve_met: winner.is_some(),
            round: 1,
            cancelled,
            reason: cancelled.then(|| "fraud, see ticket 7".to_owned()),
            seller_id: Some(UserId::parse("sam").unwrap()),
            buy_now: false,
        })
    }

    /// One event of every type, and a close with a winner, without one, and cancelled.
    pub(crate) fn every_event() -> Vec<Event> {
        vec![
            Event::BidPlaced(bid()),
            Event::BidPlaced(BidPlaced {
                extended: true,
                round: 2,
                ..bid()
            }),
            Event::BidPlaced(BidPlaced {
                automatic: true,
                ..bid()
            }),
            Event::BidPlaced(BidPlaced {
                answered: true,
                ..bid()
            }),
            closed(Some("alice"), false),
            match closed(Some("bob"), false) {
                Event::AuctionClosed(c) => {
                    Event::AuctionClosed(AuctionClosed { buy_now: true, ..c })
                }
                other => other,
            },
            closed(None, false),
            closed(None, true),
            Event::AuctionRelisted(AuctionRelisted {
                event_id: EventId::new(),
                item_id: ItemId::parse("item-1").unwrap(),
                seq: 9,
                timestamp: Timestamp::from_micros(1),
                round: 2,
                starting_price_cents: 500,
                start_time: Timestamp::from_micros(2),
                end_time: Timestamp::from_micros(3),
                seller_id: Some(UserId::parse("sam").unwrap()),
            }),
            Event::AuctionExtended(AuctionExtended {
                event_id: EventId::new(),
                item_id: ItemId::parse("item-1").unwrap(),
                seq: 10,
                timestamp: Timestamp::from_micros(1),
                end_time: Timestamp::from_micros(5),
                round: 2,
                seller_id: None,
            }),
        ]
    }

    #[test]
    fn events_round_trip_through_json() {
        for event in every_event() {
            assert_eq!(
                serde_json::from_slice::<Event>(&event.to_json().unwrap()).unwrap(),
                event
            );
        }
    }

    #[test]
    fn event_with_invalid_item_id_is_not_decoded() {
        let mut json: serde_json::Value =
            serde_json::from_slice(&Event::BidPlaced(bid()).to_json().unwrap()).unwrap();
        json["item_id"] = "a.b".into();
        assert!(serde_json::from_value::<Event>(json).is_err());
    }

    #[test]
    fn event_ids_are_time_ordered() {
        let a = EventId::new();
        let b = EventId::new();
        assert!(a < b);
        assert_eq!(a.as_uuid().get_version_num(), 7);
    }
}
