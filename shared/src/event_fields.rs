//! An event as a flat list of `(field, value)` text pairs: what the gateway's scripts `XADD`
//! to the outbox and return in their replies, and what the outbox relay reads back.
//!
//! Redis streams and Lua replies hold flat text, not JSON, and a script can build a flat list
//! without an encoder. [`Event::from_fields`] is the one decoder of that list, for script
//! replies and outbox entries alike, so adding an event field means one change here plus the
//! scripts that write it.
//!
//! The field names are the stream's (`ts_us`, `previous_cents`, `end_us`, …), not the JSON
//! ones, so entries already waiting in an outbox stay readable. Values are decimal integers,
//! flags `"1"`/`"0"`, and `""` for an absent optional value.

use crate::event::{AuctionClosed, AuctionExtended, AuctionRelisted, BidPlaced, Event, EventId};
use crate::ids::{IdError, ItemId, UserId};
use crate::timestamp::Timestamp;
use std::str::FromStr;

/// Field names of the flat form.
pub mod name {
    /// The event type: one of the [`super::kind`] tags.
    pub const TYPE: &str = "type";
    pub const EVENT_ID: &str = "event_id";
    pub const ITEM_ID: &str = "item_id";
    pub const SEQ: &str = "seq";
    /// The event's timestamp, µs since the epoch.
    pub const TS_US: &str = "ts_us";
    pub const ROUND: &str = "round";
    pub const USER_ID: &str = "user_id";
    pub const AMOUNT_CENTS: &str = "amount_cents";
    /// The price before a bid (`0` before the first).
    pub const PREVIOUS_CENTS: &str = "previous_cents";
    pub const END_US: &str = "end_us";
    pub const EXTENDED: &str = "extended";
    /// `""` when nobody won.
    pub const WINNER_ID: &str = "winner_id";
    /// `""` when nobody won.
    pub const FINAL_PRICE_CENTS: &str = "final_price_cents";
    pub const RESERVE_MET: &str = "reserve_met";
    /// Absent in entries written before cancellation existed (read as `"0"`).
    pub const CANCELLED: &str = "cancelled";
    /// `""` or absent unless cancelled.
    pub const REASON: &str = "reason";
    pub const STARTING_CENTS: &str = "starting_cents";
    pub const START_US: &str = "start_us";
    /// The item's seller, in every event; `""` or absent (entries written before sellers
    /// existed) for an item without one.
    pub const SELLER_ID: &str = "seller_id";
    /// `bid_placed`: a bid the system placed for a maximum; absent in older entries (`"0"`).
    pub const AUTOMATIC: &str = "automatic";
    /// `bid_placed`: answered at once by a standing maximum (the next event is the automatic
    /// answer); absent in older entries (`"0"`).
    pub const ANSWERED: &str = "answered";
    /// `auction_closed`: ended by buy it now; absent in older entries (`"0"`).
    pub const BUY_NOW: &str = "buy_now";
}

/// The `type` tags, the same as the JSON form's `type`.
pub mod kind {
    pub const BID_PLACED: &str = "bid_placed";
    pub const AUCTION_CLOSED: &str = "auction_closed";
    pub const AUCTION_EXTENDED: &str = "auction_extended";
    pub const AUCTION_RELISTED: &str = "auction_relisted";
}

/// Why a field list is not what its reader expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("a field list needs name/value pairs, got {0} elements")]
    OddLength(usize),
    #[error("lacks field {0}")]
    Missing(&'static str),
    #[error("field {field} is not an integer in range: {value:?}")]
    BadInteger { field: &'static str, value: String },
    #[error("field {field} is not \"1\" or \"0\": {value:?}")]
    BadFlag { field: &'static str, value: String },
    #[error("field {field} {source}")]
    BadId {
        field: &'static str,
        source: IdError,
    },
    #[error("field event_id is not a UUID: {0:?}")]
    BadEventId(String),
    #[error("unknown event type {0:?}")]
    UnknownType(String),
}

/// Flat `(field, value)` text pairs with typed lookups. The first pair of a name wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldList(Vec<(String, String)>);

impl FieldList {
    /// Pairs up a flat `[name, value, name, value, …]` list, as Lua returns one.
    ///
    /// # Errors
    /// [`FieldError::OddLength`] when a name has no value.
    pub fn from_flat(flat: Vec<String>) -> Result<Self, FieldError> {
        if !flat.len().is_multiple_of(2) {
            return Err(FieldError::OddLength(flat.len()));
        }
        let mut pairs = Vec::with_capacity(flat.len() / 2);
        let mut items = flat.into_iter();
        while let (Some(name), Some(value)) = (items.next(), items.next()) {
            pairs.push((name, value));
        }
        Ok(Self(pairs))
    }

    /// The flat `[name, value, …]` form (what a script returns, what `XADD` takes).
    pub fn into_flat(self) -> Vec<String> {
        self.0
            .into_iter()
            .flat_map(|(name, value)| [name, value])
            .collect()
    }

    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.0.push((name.to_owned(), value.into()));
    }

    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The value of `name`, if present (empty or not).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// # Errors
    /// [`FieldError::Missing`].
    pub fn text(&self, name: &'static str) -> Result<&str, FieldError> {
        self.get(name).ok_or(FieldError::Missing(name))
    }

    /// `None` when the field is absent or empty, the encoding of an absent optional value.
    pub fn optional(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// A decimal integer that fits `T`.
    ///
    /// # Errors
    /// [`FieldError::Missing`] or [`FieldError::BadInteger`].
    pub fn int<T: FromStr>(&self, name: &'static str) -> Result<T, FieldError> {
        parse_int(name, self.text(name)?)
    }

    /// A decimal integer that fits `T`, or `default` when the field is absent.
    ///
    /// # Errors
    /// [`FieldError::BadInteger`].
    pub fn int_or<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, FieldError> {
        self.get(name)
            .map_or(Ok(default), |value| parse_int(name, value))
    }

    /// # Errors
    /// [`FieldError::Missing`] or [`FieldError::BadFlag`] for anything but `"1"`/`"0"`.
    pub fn flag(&self, name: &'static str) -> Result<bool, FieldError> {
        match self.text(name)? {
            "1" => Ok(true),
            "0" => Ok(false),
            other => Err(FieldError::BadFlag {
                field: name,
                value: other.to_owned(),
            }),
        }
    }

    /// A flag added after entries were first written: absent reads as `false`.
    ///
    /// # Errors
    /// [`FieldError::BadFlag`] for anything but `"1"`/`"0"`.
    pub fn flag_or_false(&self, name: &'static str) -> Result<bool, FieldError> {
        match self.get(name) {
            None => Ok(false),
            Some(_) => self.flag(name),
        }
    }

    /// # Errors
    /// [`FieldError::Missing`] or [`FieldError::BadId`].
    pub fn user_id(&self, name: &'static str) -> Result<UserId, FieldError> {
        UserId::parse(self.text(name)?).map_err(|source| FieldError::BadId {
            field: name,
            source,
        })
    }

    /// A user id, `None` when absent or empty.
    ///
    /// # Errors
    /// [`FieldError::BadId`].
    pub fn optional_user_id(&self, name: &'static str) -> Result<Option<UserId>, FieldError> {
        self.optional(name)
            .map(|id| {
                UserId::parse(id).map_err(|source| FieldError::BadId {
                    field: name,
                    source,
                })
            })
            .transpose()
    }

    fn item_id(&self, name: &'static str) -> Result<ItemId, FieldError> {
        ItemId::parse(self.text(name)?).map_err(|source| FieldError::BadId {
            field: name,
            source,
        })
    }

    fn event_id(&self) -> Result<EventId, FieldError> {
        let text = self.text(name::EVENT_ID)?;
        EventId::parse(text).map_err(|_| FieldError::BadEventId(text.to_owned()))
    }

    fn timestamp(&self, name: &'static str) -> Result<Timestamp, FieldError> {
        self.int(name).map(Timestamp::from_micros)
    }
}

impl FromIterator<(String, String)> for FieldList {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

fn parse_int<T: FromStr>(field: &'static str, value: &str) -> Result<T, FieldError> {
    value.parse().map_err(|_| FieldError::BadInteger {
        field,
        value: value.to_owned(),
    })
}

fn flag(value: bool) -> &'static str {
    if value { "1" } else { "0" }
}

impl Event {
    /// The flat form, as the scripts write it. Lossless except that `bid_id` is not written
    /// (it equals `event_id`) and an empty cancellation reason reads back as `None`.
    pub fn to_fields(&self) -> FieldList {
        let tag = match self {
            Event::BidPlaced(_) => kind::BID_PLACED,
            Event::AuctionClosed(_) => kind::AUCTION_CLOSED,
            Event::AuctionExtended(_) => kind::AUCTION_EXTENDED,
            Event::AuctionRelisted(_) => kind::AUCTION_RELISTED,
        };
        let mut f = FieldList::default();
        f.push(name::TYPE, tag);
        f.push(name::EVENT_ID, self.event_id().to_string());
        f.push(name::ITEM_ID, self.item_id().as_str());
        f.push(name::SEQ, self.seq().to_string());
        f.push(name::TS_US, self.timestamp().micros().to_string());
        f.push(name::ROUND, self.round().to_string());
        f.push(
            name::SELLER_ID,
            self.seller_id().map(UserId::as_str).unwrap_or_default(),
        );
        match self {
            Event::BidPlaced(e) => {
                f.push(name::USER_ID, e.user_id.as_str());
                f.push(name::AMOUNT_CENTS, e.amount_cents.to_string());
                f.push(name::PREVIOUS_CENTS, e.previous_bid_cents.to_string());
                f.push(name::END_US, e.end_time.micros().to_string());
                f.push(name::EXTENDED, flag(e.extended));
                f.push(name::AUTOMATIC, flag(e.automatic));
                f.push(name::ANSWERED, flag(e.answered));
            }
            Event::AuctionClosed(e) => {
                f.push(
                    name::WINNER_ID,
                    e.winner_id.as_ref().map(UserId::as_str).unwrap_or_default(),
                );
                f.push(
                    name::FINAL_PRICE_CENTS,
                    e.final_price_cents
                        .map(|c| c.to_string())
                        .unwrap_or_default(),
                );
                f.push(name::RESERVE_MET, flag(e.reserve_met));
                f.push(name::CANCELLED, flag(e.cancelled));
                f.push(name::REASON, e.reason.clone().unwrap_or_default());
                f.push(name::BUY_NOW, flag(e.buy_now));
            }
            Event::AuctionExtended(e) => {
                f.push(name::END_US, e.end_time.micros().to_string());
            }
            Event::AuctionRelisted(e) => {
                f.push(name::STARTING_CENTS, e.starting_price_cents.to_string());
                f.push(name::START_US, e.start_time.micros().to_string());
                f.push(name::END_US, e.end_time.micros().to_string());
            }
        }
        f
    }

    /// Decodes the flat form, from a script reply or an outbox entry; unknown fields are
    /// ignored (a reply carries its own besides the event's).
    ///
    /// # Errors
    /// [`FieldError`] naming the first field that is missing or malformed, or the unknown type.
    pub fn from_fields(f: &FieldList) -> Result<Event, FieldError> {
        let tag = f.text(name::TYPE)?;
        let event_id = f.event_id()?;
        let item_id = f.item_id(name::ITEM_ID)?;
        let seq = f.int(name::SEQ)?;
        let timestamp = f.timestamp(name::TS_US)?;
        let round = f.int(name::ROUND)?;
        let seller_id = f.optional_user_id(name::SELLER_ID)?;
        Ok(match tag {
            kind::BID_PLACED => Event::BidPlaced(BidPlaced {
                event_id,
                item_id,
                seq,
                timestamp,
                bid_id: event_id.to_string(),
                user_id: f.user_id(name::USER_ID)?,
                amount_cents: f.int(name::AMOUNT_CENTS)?,
                previous_bid_cents: f.int(name::PREVIOUS_CENTS)?,
                end_time: f.timestamp(name::END_US)?,
                extended: f.flag(name::EXTENDED)?,
                round,
                seller_id,
                automatic: f.flag_or_false(name::AUTOMATIC)?,
                answered: f.flag_or_false(name::ANSWERED)?,
            }),
            kind::AUCTION_CLOSED => Event::AuctionClosed(AuctionClosed {
                event_id,
                item_id,
                seq,
                timestamp,
                winner_id: f.optional_user_id(name::WINNER_ID)?,
                final_price_cents: f
                    .optional(name::FINAL_PRICE_CENTS)
                    .map(|c| parse_int(name::FINAL_PRICE_CENTS, c))
                    .transpose()?,
                reserve_met: f.flag(name::RESERVE_MET)?,
                round,
                cancelled: f.flag_or_false(name::CANCELLED)?,
                reason: f.optional(name::REASON).map(str::to_owned),
                seller_id,
                buy_now: f.flag_or_false(name::BUY_NOW)?,
            }),
            kind::AUCTION_EXTENDED => Event::AuctionExtended(AuctionExtended {
                event_id,
                item_id,
                seq,
                timestamp,
                end_time: f.timestamp(name::END_US)?,
                round,
                seller_id,
            }),
            kind::AUCTION_RELISTED => Event::AuctionRelisted(AuctionRelisted {
                event_id,
                item_id,
                seq,
                timestamp,
                round,
                starting_price_cents: f.int(name::STARTING_CENTS)?,
                start_time: f.timestamp(name::START_US)?,
                end_time: f.timestamp(name::END_US)?,
                seller_id,
            }),
            other => return Err(FieldError::UnknownType(other.to_owned())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::event::tests::every_event;

    fn bid() -> Event {
        Event::BidPlaced(crate::event::tests::bid())
    }

    fn closed_with_winner() -> Event {
        every_event()
            .into_iter()
            .find(|e| matches!(e, Event::AuctionClosed(c) if c.winner_id.is_some()))
            .unwrap()
    }

    /// The field list of a bid with one field replaced (or removed, for `None`).
    fn bid_with(field: &str, value: Option<&str>) -> FieldList {
        bid()
            .to_fields()
            .pairs()
            .filter(|(n, _)| *n != field)
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .chain(value.map(|v| (field.to_owned(), v.to_owned())))
            .collect()
    }

    #[test]
    fn every_event_type_round_trips_through_its_fields() {
        for event in every_event() {
            assert_eq!(Event::from_fields(&event.to_fields()), Ok(event.clone()));
        }
    }

    #[test]
    fn every_event_round_trips_through_the_flat_list_a_script_returns() {
        for event in every_event() {
            let flat = event.to_fields().into_flat();
            let fields = FieldList::from_flat(flat).unwrap();
            assert_eq!(Event::from_fields(&fields), Ok(event));
        }
    }

    #[test]
    fn the_type_tag_is_the_json_type() {
        for event in every_event() {
            let json: serde_json::Value =
                serde_json::from_slice(&event.to_json().unwrap()).unwrap();
            assert_eq!(
                event.to_fields().get(name::TYPE),
                json["type"].as_str(),
                "{event:?}"
            );
        }
    }

    #[test]
    fn fields_of_a_reply_besides_the_event_are_ignored() {
        let mut fields = FieldList::default();
        fields.push("outcome", "accepted");
        fields.push("minimum_cents", "20150");
        for (n, v) in bid().to_fields().pairs() {
            fields.push(n, v);
        }
        assert!(matches!(
            Event::from_fields(&fields),
            Ok(Event::BidPlaced(_))
        ));
    }

    #[test]
    fn a_close_written_before_cancellation_existed_is_not_cancelled() {
        let fields: FieldList = closed_with_winner()
            .to_fields()
            .pairs()
            .filter(|(n, _)| *n != name::CANCELLED && *n != name::REASON)
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        let Ok(Event::AuctionClosed(close)) = Event::from_fields(&fields) else {
            panic!("decodes");
        };
        assert!(!close.cancelled);
        assert_eq!(close.reason, None);
    }

    #[test]
    fn entries_written_before_proxy_bids_and_buy_now_are_neither() {
        let Ok(Event::BidPlaced(placed)) = Event::from_fields(&bid_with(name::AUTOMATIC, None))
        else {
            panic!("decodes");
        };
        assert!(!placed.automatic);
        let Ok(Event::BidPlaced(placed)) = Event::from_fields(&bid_with(name::ANSWERED, None))
        else {
            panic!("decodes");
        };
        assert!(!placed.answered);
        let fields: FieldList = closed_with_winner()
            .to_fields()
            .pairs()
            .filter(|(n, _)| *n != name::BUY_NOW)
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        let Ok(Event::AuctionClosed(close)) = Event::from_fields(&fields) else {
            panic!("decodes");
        };
        assert!(!close.buy_now);
    }

    #[test]
    fn an_entry_written_before_sellers_existed_has_no_seller() {
        let Ok(Event::BidPlaced(placed)) = Event::from_fields(&bid_with(name::SELLER_ID, None))
        else {
            panic!("decodes");
        };
        assert_eq!(placed.seller_id, None);
        let Ok(Event::BidPlaced(placed)) = Event::from_fields(&bid_with(name::SELLER_ID, Some("")))
        else {
            panic!("decodes");
        };
        assert_eq!(placed.seller_id, None);
    }

    #[test]
    fn a_missing_field_is_named() {
        assert_eq!(
            Event::from_fields(&bid_with(name::SEQ, None)),
            Err(FieldError::Missing(name::SEQ))
        );
        assert_eq!(
            Event::from_fields(&FieldList::default()),
            Err(FieldError::Missing(name::TYPE))
        );
    }

    #[test]
    fn a_bad_integer_is_named_with_its_value() {
        assert_eq!(
            Event::from_fields(&bid_with(name::AMOUNT_CENTS, Some("12.5"))),
            Err(FieldError::BadInteger {
                field: name::AMOUNT_CENTS,
                value: "12.5".into()
            })
        );
        // In range for the field's type, too: seq is never negative.
        assert!(matches!(
            Event::from_fields(&bid_with(name::SEQ, Some("-1"))),
            Err(FieldError::BadInteger { field: "seq", .. })
        ));
    }

    #[test]
    fn a_bad_flag_is_rejected() {
        assert!(matches!(
            Event::from_fields(&bid_with(name::EXTENDED, Some("yes"))),
            Err(FieldError::BadFlag {
                field: "extended",
                ..
            })
        ));
    }

    #[test]
    fn a_bad_id_is_named_with_the_rule_it_breaks() {
        assert_eq!(
            Event::from_fields(&bid_with(name::ITEM_ID, Some("a.b"))),
            Err(FieldError::BadId {
                field: name::ITEM_ID,
                source: IdError::InvalidCharacter
            })
        );
        assert_eq!(
            Event::from_fields(&bid_with(name::USER_ID, Some(""))),
            Err(FieldError::BadId {
                field: name::USER_ID,
                source: IdError::Empty
            })
        );
        assert_eq!(
            Event::from_fields(&bid_with(name::EVENT_ID, Some("not-a-uuid"))),
            Err(FieldError::BadEventId("not-a-uuid".into()))
        );
    }

    #[test]
    fn an_unknown_type_is_rejected() {
        assert_eq!(
            Event::from_fields(&bid_with(name::TYPE, Some("bid_withdrawn"))),
            Err(FieldError::UnknownType("bid_withdrawn".into()))
        );
    }

    #[test]
    fn an_odd_flat_list_is_rejected() {
        let flat = vec!["type".to_owned(), "bid_placed".to_owned(), "seq".to_owned()];
        assert_eq!(FieldList::from_flat(flat), Err(FieldError::OddLength(3)));
    }

    #[test]
    fn errors_read_as_a_dead_letter_reason() {
        assert_eq!(FieldError::Missing("seq").to_string(), "lacks field seq");
        assert_eq!(
            FieldError::BadId {
                field: "item_id",
                source: IdError::InvalidCharacter
            }
            .to_string(),
            "field item_id may contain only letters, digits, '_' and '-'"
        );
    }
}
