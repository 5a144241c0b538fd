//! The bid write path: one Lua script that validates, applies and records a bid atomically.

use super::script_reply::{OUTCOME, ReplyError, ScriptReply};
use super::{Store, StoreError};
use shared::{BidPlaced, Cents, Event, EventId, FieldList, IdempotencyKey, ItemId, UserId};

/// A bid to apply.
#[derive(Debug, Clone)]
pub struct PlaceBid {
    pub item_id: ItemId,
    pub user_id: UserId,
    pub amount_cents: i64,
    /// The bidder's maximum (proxy bidding), never below `amount_cents`; `None` for a plain
    /// bid.
    pub max_cents: Option<i64>,
    pub idempotency_key: Option<IdempotencyKey>,
}

/// How long an `Idempotency-Key`'s answer is kept.
///
/// An accepted bid's for a day: a retry must never place it twice. Any other answer (too low,
/// not started, closed, …) changed nothing, so a retry after its record expired is simply
/// decided again; it is kept only long enough for a client's retry to get the same answer,
/// which keeps a flood of rejected keyed bids from filling Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyTtl {
    pub accepted_secs: u64,
    pub rejected_secs: u64,
}

impl IdempotencyTtl {
    /// The TTL of the record of an answer with `outcome`.
    pub fn of(self, outcome: BidOutcome) -> u64 {
        if outcome.recorded() {
            self.accepted_secs
        } else {
            self.rejected_secs
        }
    }
}

/// What the script decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BidOutcome {
    Accepted,
    /// The bid was valid and recorded, and a standing maximum answered it at once: the
    /// bidder does not lead (two events: this bid, then the leader's automatic one).
    OutbidByProxy,
    /// The leader raised its own maximum; the price stays (unless it reached the reserve).
    MaxRaised,
    /// The leader's new maximum is not above its current one; nothing changed.
    MaxNotRaised,
    TooLow,
    NotFound,
    NotStarted,
    Closed,
    Cancelled,
    /// The `Idempotency-Key` was used before for a different bid.
    IdempotencyConflict,
    /// The bidder is the item's seller; nothing changed.
    SellerCannotBid,
    /// A maximum (or an item with a standing maximum) reached the optimistic strategy, which
    /// does not implement proxy bidding; nothing changed.
    ProxyUnsupported,
}

impl BidOutcome {
    const ALL: [BidOutcome; 12] = [
        BidOutcome::Accepted,
        BidOutcome::OutbidByProxy,
        BidOutcome::MaxRaised,
        BidOutcome::MaxNotRaised,
        BidOutcome::ProxyUnsupported,
        BidOutcome::TooLow,
        BidOutcome::NotFound,
        BidOutcome::NotStarted,
        BidOutcome::Closed,
        BidOutcome::Cancelled,
        BidOutcome::IdempotencyConflict,
        BidOutcome::SellerCannotBid,
    ];

    /// The script's `outcome` value, also the gateway's bid metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            BidOutcome::Accepted => "accepted",
            BidOutcome::OutbidByProxy => "outbid_by_proxy",
            BidOutcome::MaxRaised => "max_raised",
            BidOutcome::MaxNotRaised => "max_not_raised",
            BidOutcome::ProxyUnsupported => "proxy_bidding_unsupported",
            BidOutcome::TooLow => "bid_too_low",
            BidOutcome::NotFound => "not_found",
            BidOutcome::NotStarted => "not_started",
            BidOutcome::Closed => "closed",
            BidOutcome::Cancelled => "cancelled",
            BidOutcome::IdempotencyConflict => "idempotency_conflict",
            BidOutcome::SellerCannotBid => "seller_cannot_bid",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == text)
    }

    /// Whether the bid changed the item (it is kept, and its answer for a day).
    pub fn recorded(self) -> bool {
        matches!(
            self,
            BidOutcome::Accepted | BidOutcome::OutbidByProxy | BidOutcome::MaxRaised
        )
    }

    /// How many events this outcome carries at least and at most.
    fn events(self) -> std::ops::RangeInclusive<usize> {
        match self {
            BidOutcome::Accepted => 1..=1,
            BidOutcome::OutbidByProxy => 2..=2,
            BidOutcome::MaxRaised => 0..=1,
            _ => 0..=0,
        }
    }

    /// Whether the reply describes the item (the others find no item, no bid to judge, or a
    /// bidder who may not learn more).
    fn has_state(self) -> bool {
        !matches!(
            self,
            BidOutcome::NotFound
                | BidOutcome::IdempotencyConflict
                | BidOutcome::SellerCannotBid
                | BidOutcome::ProxyUnsupported
        )
    }
}

/// The script's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BidReply {
    pub outcome: BidOutcome,
    /// Price after the call, seq after the call, and so on; zero/empty for `NotFound` and
    /// `IdempotencyConflict`.
    pub current_cents: i64,
    pub seq: u64,
    pub highest_bidder: Option<UserId>,
    pub end_us: i64,
    pub minimum_cents: i64,
    pub round: u32,
    /// The item's seller (who may not bid on it).
    pub seller_id: Option<UserId>,
    /// The events this bid appended, in `seq` order (taken by the handler, which publishes
    /// them): one when accepted, two when outbid by a standing maximum.
    pub events: Vec<BidPlaced>,
    /// This is the stored answer of an earlier request with the same `Idempotency-Key`.
    pub replayed: bool,
}

/// `place_bid.lua`'s reply fields besides `outcome` (see its header).
mod reply_field {
    pub const CURRENT_CENTS: &str = "current_cents";
    pub const SEQ: &str = "seq";
    pub const HIGHEST_BIDDER: &str = "highest_bidder";
    pub const END_US: &str = "end_us";
    pub const MINIMUM_CENTS: &str = "minimum_cents";
    pub const ROUND: &str = "round";
    /// Absent in idempotency records stored before sellers existed.
    pub const SELLER_ID: &str = "seller_id";
    pub const REPLAYED: &str = "replayed";
}

impl BidReply {
    /// The answer for outcomes that carry no item state.
    pub(super) fn without_state(outcome: BidOutcome) -> Self {
        BidReply {
            outcome,
            current_cents: 0,
            seq: 0,
            highest_bidder: None,
            end_us: 0,
            minimum_cents: 0,
            round: 1,
            seller_id: None,
            events: Vec::new(),
            replayed: false,
        }
    }

    /// Reads `place_bid.lua`'s reply (or the idempotency record's copy of it).
    pub(super) fn from_script(reply: ScriptReply) -> Result<Self, ReplyError> {
        let ScriptReply {
            outcome,
            fields: f,
            events,
        } = reply;
        let Some(outcome) = BidOutcome::parse(&outcome) else {
            return Err(ReplyError::UnknownOutcome(outcome));
        };
        let mismatch = || ReplyError::EventMismatch(outcome.as_str().to_owned());
        if !outcome.events().contains(&events.len()) {
            return Err(mismatch());
        }
        let events = events
            .into_iter()
            .map(|event| match event {
                Event::BidPlaced(placed) => Ok(placed),
                _ => Err(mismatch()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let replayed = f.get(reply_field::REPLAYED) == Some("1");
        if !outcome.has_state() {
            return Ok(BidReply {
                replayed,
                ..Self::without_state(outcome)
            });
        }
        Ok(BidReply {
            outcome,
            current_cents: f.int(reply_field::CURRENT_CENTS)?,
            seq: f.int(reply_field::SEQ)?,
            highest_bidder: f.optional_user_id(reply_field::HIGHEST_BIDDER)?,
            end_us: f.int(reply_field::END_US)?,
            minimum_cents: f.int(reply_field::MINIMUM_CENTS)?,
            round: f.int(reply_field::ROUND)?,
            seller_id: f.optional_user_id(reply_field::SELLER_ID)?,
            events,
            replayed,
        })
    }

    /// The reply lists `place_bid.lua` would have given (without `replayed`), for the
    /// idempotency record the optimistic strategy shares with the script.
    pub(super) fn to_script_lists(&self) -> Vec<Vec<String>> {
        let mut f = FieldList::default();
        f.push(OUTCOME, self.outcome.as_str());
        if self.outcome.has_state() {
            f.push(reply_field::CURRENT_CENTS, self.current_cents.to_string());
            f.push(reply_field::SEQ, self.seq.to_string());
            f.push(
                reply_field::HIGHEST_BIDDER,
                user_field(&self.highest_bidder),
            );
            f.push(reply_field::END_US, self.end_us.to_string());
            f.push(reply_field::MINIMUM_CENTS, self.minimum_cents.to_string());
            f.push(reply_field::ROUND, self.round.to_string());
            f.push(reply_field::SELLER_ID, user_field(&self.seller_id));
        }
        let events = self
            .events
            .iter()
            .map(|placed| Event::BidPlaced(placed.clone()).to_fields().into_flat());
        std::iter::once(f.into_flat()).chain(events).collect()
    }
}

/// An optional account as `place_bid.lua` writes it: its id, or empty for none.
fn user_field(user: &Option<UserId>) -> &str {
    user.as_ref().map(UserId::as_str).unwrap_or_default()
}

impl Store {
    /// Runs `place_bid.lua`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when Redis is unreachable (nothing applied);
    /// [`StoreError::TimedOut`] when it is slow (the bid may or may not have been applied:
    /// clients retry with an `Idempotency-Key` to be sure).
    #[tracing::instrument(name = "redis.place_bid", skip_all, fields(item_id = %bid.item_id))]
    pub async fn place_bid(
        &self,
        bid: &PlaceBid,
        idempotency_ttl: IdempotencyTtl,
    ) -> Result<BidReply, StoreError> {
        if let Some(pool) = &self.optimistic {
            if bid.max_cents.is_some() {
                return Ok(BidReply::without_state(BidOutcome::ProxyUnsupported));
            }
            return self.place_bid_optimistic(pool, bid, idempotency_ttl).await;
        }
        let keys = self.keys.item(&bid.item_id);
        let event_id = EventId::new();
        let idem_key = match &bid.idempotency_key {
            Some(key) => keys.idempotency(key),
            // Unused by the script, but every key it may touch must be declared (cluster).
            None => keys.item.clone(),
        };
        let mut invocation = self.scripts.place_bid.prepare_invoke();
        invocation
            .key(&keys.item)
            .key(&keys.outbox)
            .key(&keys.closing)
            .key(idem_key)
            // Last, as `item_index.lua` wants them.
            .key(&self.keys.listing_keys(keys.shard))
            .arg(bid.user_id.as_str())
            .arg(bid.amount_cents)
            .arg(event_id.to_string())
            .arg(bid.item_id.as_str())
            .arg(if bid.idempotency_key.is_some() {
                "1"
            } else {
                "0"
            })
            .arg(idempotency_ttl.accepted_secs)
            .arg(Cents::MAX.get())
            .arg(idempotency_ttl.rejected_secs)
            .arg(bid.max_cents.map(|m| m.to_string()).unwrap_or_default())
            .arg(EventId::new().to_string());
        self.run_script("place_bid.lua", invocation, BidReply::from_script)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(fields: &[&str]) -> ScriptReply {
        ScriptReply::parse(vec![fields.iter().map(|s| (*s).to_owned()).collect()]).unwrap()
    }

    #[test]
    fn only_an_accepted_answer_is_kept_for_the_long_ttl() {
        let ttl = IdempotencyTtl {
            accepted_secs: 86_400,
            rejected_secs: 60,
        };
        for outcome in BidOutcome::ALL {
            let expected = if outcome.recorded() { 86_400 } else { 60 };
            assert_eq!(ttl.of(outcome), expected, "{outcome:?}");
        }
    }

    #[test]
    fn every_outcome_reads_back_from_its_script_text() {
        for outcome in BidOutcome::ALL {
            assert_eq!(BidOutcome::parse(outcome.as_str()), Some(outcome));
        }
        assert_eq!(BidOutcome::parse("maybe"), None);
    }

    #[test]
    fn a_too_low_bid_reads_the_item_state_and_an_accepted_one_needs_its_event() {
        let state = [
            "current_cents",
            "1000",
            "seq",
            "4",
            "highest_bidder",
            "bob",
            "end_us",
            "99",
            "minimum_cents",
            "1100",
            "round",
            "2",
        ];
        let too_low = BidReply::from_script(reply(
            &[&["outcome", "bid_too_low"][..], &state[..]].concat(),
        ))
        .unwrap();
        assert_eq!(
            (too_low.current_cents, too_low.seq, too_low.minimum_cents),
            (1000, 4, 1100)
        );
        assert_eq!(too_low.highest_bidder, UserId::parse("bob").ok());
        assert!(!too_low.replayed);
        let accepted = reply(&[&["outcome", "accepted"][..], &state[..]].concat());
        assert!(matches!(
            BidReply::from_script(accepted),
            Err(ReplyError::EventMismatch(_))
        ));
    }

    #[test]
    fn a_replayed_answer_is_marked() {
        let replayed =
            BidReply::from_script(reply(&["outcome", "not_found", "replayed", "1"])).unwrap();
        assert_eq!(
            replayed,
            BidReply {
                replayed: true,
                ..BidReply::without_state(BidOutcome::NotFound)
            }
        );
    }
}
