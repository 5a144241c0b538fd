//! A signed-in user's private notifications: what each kind says, and the frame that goes out
//! on core NATS `<prefix>.user.<user_id>` (the broadcast service hands it to that user's
//! sockets only).
//!
//! They are derived from the archived events in the batch's own transaction (see
//! `store::notifications`) and are persisted before they are published, so a user who was
//! offline still finds them in `GET /api/v1/me/notifications`. Publishing happens after the
//! commit and is best effort: a frame lost because the worker stopped between the commit and
//! the publish is still in the list, and a redelivered batch inserts (and so publishes)
//! nothing twice.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use shared::money::serialize_cents;
use shared::{AuctionClosed, BidPlaced, ItemId, Timestamp, UserId};

/// The kinds of notification, as their `type` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Someone else now leads an auction this user led.
    Outbid,
    /// This user won the auction.
    Won,
    /// The auction this user bid on ended, and this user did not win it.
    Lost,
    /// An auction this user bid on or watches ends within the window.
    EndingSoon,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Outbid => "outbid",
            Kind::Won => "won",
            Kind::Lost => "lost",
            Kind::EndingSoon => "ending_soon",
        }
    }
}

/// A notification about to be inserted: for whom, what, and what produced it (`source`, the
/// idempotency key with the user and the kind).
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    pub user_id: UserId,
    pub kind: Kind,
    pub item_id: ItemId,
    pub source: String,
    /// The frame's fields, `type` included, without `notification_id` and `timestamp`.
    pub data: Value,
    pub created_at: DateTime<Utc>,
}

/// A stored notification, as it goes out.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: i64,
    pub user_id: UserId,
    pub data: Value,
    pub created_at: Timestamp,
}

impl Notification {
    /// The private frame: the stored fields plus `notification_id` and `timestamp`.
    pub fn frame(&self) -> Vec<u8> {
        let mut frame = match &self.data {
            Value::Object(fields) => fields.clone(),
            _ => Map::new(),
        };
        frame.insert("notification_id".into(), self.id.into());
        frame.insert("timestamp".into(), json!(self.created_at));
        // A map of JSON values always serializes.
        serde_json::to_vec(&Value::Object(frame)).unwrap_or_default()
    }
}

/// A decimal JSON number from cents, as every amount of the API is shown.
fn decimal(cents: i64) -> Value {
    serialize_cents(&cents, serde_json::value::Serializer).unwrap_or(Value::Null)
}

/// `user` was outbid by `bid`; `minimum_to_lead` is the smallest bid that would lead now, if
/// the item's current state could be read.
pub fn outbid(user: UserId, bid: &BidPlaced, minimum_to_lead: Option<i64>) -> NewNotification {
    NewNotification {
        user_id: user,
        kind: Kind::Outbid,
        item_id: bid.item_id.clone(),
        source: bid.event_id.to_string(),
        data: json!({
            "type": Kind::Outbid.as_str(),
            "item_id": bid.item_id,
            "current_bid": decimal(bid.amount_cents),
            "current_bid_cents": bid.amount_cents,
            "minimum_to_lead": minimum_to_lead.map(decimal),
            "minimum_to_lead_cents": minimum_to_lead,
            "seq": bid.seq,
        }),
        created_at: bid.timestamp.to_datetime(),
    }
}

/// What one close tells each of its round's bidders: `won` to the winner (also one who bought
/// it outright without bidding), `lost` to everyone else. A `lost` carries the final price
/// when there was a winner, never who won; a cancellation says so (`cancelled: true`).
pub fn closed(close: &AuctionClosed, bidders: &[UserId]) -> Vec<NewNotification> {
    let note = |user: &UserId, kind: Kind, data: Value| NewNotification {
        user_id: user.clone(),
        kind,
        item_id: close.item_id.clone(),
        source: close.event_id.to_string(),
        data,
        created_at: close.timestamp.to_datetime(),
    };
    let mut out = Vec::with_capacity(bidders.len() + 1);
    let price = close
        .final_price_cents
        .filter(|_| close.winner_id.is_some());
    if let (Some(winner), Some(price)) = (&close.winner_id, price) {
        out.push(note(
            winner,
            Kind::Won,
            json!({
                "type": Kind::Won.as_str(),
                "item_id": close.item_id,
                "final_price": decimal(price),
                "final_price_cents": price,
            }),
        ));
    }
    for bidder in bidders {
        if close.winner_id.as_ref() == Some(bidder) {
            continue;
        }
        let mut data = json!({ "type": Kind::Lost.as_str(), "item_id": close.item_id });
        if let Some(price) = price {
            data["final_price"] = decimal(price);
            data["final_price_cents"] = price.into();
        }
        if close.cancelled {
            data["cancelled"] = true.into();
        }
        out.push(note(bidder, Kind::Lost, data));
    }
    out
}

/// The `data` of an `ending_soon` for an auction ending at `end`.
pub fn ending_soon_data(item: &ItemId, end: Timestamp) -> Value {
    json!({ "type": Kind::EndingSoon.as_str(), "item_id": item, "end_time": end })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::EventId;

    fn close(winner: Option<&str>, price: Option<i64>, cancelled: bool) -> AuctionClosed {
        AuctionClosed {
            event_id: EventId::new(),
            item_id: ItemId::parse("lot-1").unwrap(),
            seq: 9,
            timestamp: Timestamp::now(),
            winner_id: winner.map(|w| UserId::parse(w).unwrap()),
            final_price_cents: price,
            reserve_met: true,
            round: 1,
            cancelled,
            reason: None,
            seller_id: None,
            buy_now: false,
        }
    }

    fn users(names: &[&str]) -> Vec<UserId> {
        names.iter().map(|n| UserId::parse(*n).unwrap()).collect()
    }

    #[test]
    fn the_winner_is_told_won_and_every_other_bidder_lost_without_the_winner() {
        let notes = closed(
            &close(Some("alice"), Some(1250), false),
            &users(&["alice", "bob"]),
        );
        assert_eq!(notes.len(), 2);
        assert_eq!(notes[0].user_id.as_str(), "alice");
        assert_eq!(
            notes[0].data,
            json!({"type": "won", "item_id": "lot-1", "final_price": 12.5, "final_price_cents": 1250})
        );
        assert_eq!(notes[1].user_id.as_str(), "bob");
        assert_eq!(
            notes[1].data,
            json!({"type": "lost", "item_id": "lot-1", "final_price": 12.5, "final_price_cents": 1250})
        );
    }

    #[test]
    fn without_a_winner_every_bidder_lost_with_no_price() {
        let notes = closed(&close(None, None, true), &users(&["bob"]));
        assert_eq!(
            notes[0].data,
            json!({"type": "lost", "item_id": "lot-1", "cancelled": true})
        );
    }

    #[test]
    fn a_buyer_who_never_bid_is_still_told_won() {
        let notes = closed(&close(Some("carol"), Some(500), false), &[]);
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].kind, Kind::Won);
    }

    #[test]
    fn a_frame_adds_the_notification_id_and_timestamp() {
        let note = Notification {
            id: 7,
            user_id: UserId::parse("bob").unwrap(),
            data: json!({"type": "won", "item_id": "lot-1"}),
            created_at: Timestamp::from_micros(1_700_000_000_000_000),
        };
        let frame: Value = serde_json::from_slice(&note.frame()).unwrap();
        assert_eq!(frame["notification_id"], 7);
        assert_eq!(frame["type"], "won");
        assert!(
            frame["timestamp"]
                .as_str()
                .unwrap()
                .starts_with("2023-11-14T")
        );
    }
}
