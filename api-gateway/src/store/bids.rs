//! The bid write path: one Lua script that validates, applies and records a bid atomically.

use super::{Store, StoreError};
use anyhow::{Context, anyhow};
use shared::{BidPlaced, EventId, IdempotencyKey, ItemId, Timestamp, UserId};

/// A bid to apply.
#[derive(Debug, Clone)]
pub struct PlaceBid {
    pub item_id: ItemId,
    pub user_id: UserId,
    pub amount_cents: i64,
    pub idempotency_key: Option<IdempotencyKey>,
}

/// What the script decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BidOutcome {
    Accepted,
    TooLow,
    NotFound,
    NotStarted,
    Closed,
    Cancelled,
    /// The `Idempotency-Key` was used before for a different bid.
    IdempotencyConflict,
}

/// The script's answer.
#[derive(Debug, Clone)]
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
    /// The event when accepted (taken by the handler, which publishes it).
    pub event: Option<BidPlaced>,
    /// This is the stored answer of an earlier request with the same `Idempotency-Key`.
    pub replayed: bool,
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
        idempotency_ttl_secs: u64,
    ) -> Result<BidReply, StoreError> {
        if let Some(pool) = &self.optimistic {
            return self
                .place_bid_optimistic(pool, bid, idempotency_ttl_secs)
                .await;
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
            .arg(bid.user_id.as_str())
            .arg(bid.amount_cents)
            .arg(event_id.to_string())
            .arg(bid.item_id.as_str())
            .arg(if bid.idempotency_key.is_some() {
                "1"
            } else {
                "0"
            })
            .arg(idempotency_ttl_secs);
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .timed(async move { invocation.invoke_async(&mut conn).await })
            .await?;
        parse_reply(bid, &reply).map_err(StoreError::Internal)
    }
}

/// Reads the bid script's reply (the optimistic strategy builds the same shape).
pub(super) fn parse_reply(bid: &PlaceBid, reply: &[String]) -> anyhow::Result<BidReply> {
    let field = |i: usize| {
        reply
            .get(i)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("bid script reply too short: {reply:?}"))
    };
    let int = |i: usize| -> anyhow::Result<i64> {
        field(i)?
            .parse()
            .with_context(|| format!("bid script reply field {i} is not an integer: {reply:?}"))
    };
    let outcome = match field(0)? {
        "accepted" => BidOutcome::Accepted,
        "bid_too_low" => BidOutcome::TooLow,
        "not_found" => BidOutcome::NotFound,
        "not_started" => BidOutcome::NotStarted,
        "closed" => BidOutcome::Closed,
        "cancelled" => BidOutcome::Cancelled,
        "idempotency_conflict" => BidOutcome::IdempotencyConflict,
        other => anyhow::bail!("unknown bid script outcome {other:?}"),
    };
    let replayed = reply.last().is_some_and(|last| last == "replayed");
    if matches!(
        outcome,
        BidOutcome::NotFound | BidOutcome::IdempotencyConflict
    ) {
        return Ok(BidReply {
            outcome,
            current_cents: 0,
            seq: 0,
            highest_bidder: None,
            end_us: 0,
            minimum_cents: 0,
            round: 1,
            event: None,
            replayed,
        });
    }
    let highest_bidder = match field(3)? {
        "" => None,
        user => Some(UserId::parse(user).context("bid script returned an invalid bidder")?),
    };
    let round = u32::try_from(int(6)?).context("round out of range")?;
    let seq = u64::try_from(int(2)?).context("seq out of range")?;
    let end_us = int(4)?;
    let event = if outcome == BidOutcome::Accepted {
        let event_id =
            EventId::parse(field(7)?).context("bid script returned an invalid event id")?;
        Some(BidPlaced {
            event_id,
            item_id: bid.item_id.clone(),
            seq,
            timestamp: Timestamp::from_micros(int(8)?),
            bid_id: event_id.to_string(),
            user_id: bid.user_id.clone(),
            amount_cents: bid.amount_cents,
            previous_bid_cents: int(9)?,
            end_time: Timestamp::from_micros(end_us),
            extended: field(10)? == "1",
            round,
        })
    } else {
        None
    };
    Ok(BidReply {
        outcome,
        current_cents: int(1)?,
        seq,
        highest_bidder,
        end_us,
        minimum_cents: int(5)?,
        round,
        event,
        replayed,
    })
}
