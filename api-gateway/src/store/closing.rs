//! Closing auctions: which items are due, the atomic close itself (`close_item.lua`), and the
//! confirmation that its event was announced live (`confirm_close.lua`).
//!
//! A close is announced at least once: until the gateway that closed an item confirms it
//! handed the event to the live publisher, the event stays in the item hash and the item in
//! its closing set, so a later closer pass (of any instance) announces it when the reply never
//! arrived ([`CloseOutcome::Replayed`]).

use super::{Store, StoreError};
use shared::{AuctionClosed, Event, ItemId, Timestamp, UserId};
use std::time::Duration;

/// How long the gateway that closed an item has to confirm the announcement before a closer
/// pass announces it again: far beyond a call's deadline (`REDIS_TIMEOUT_MS`, 80 ms) and the
/// handoff to the live publisher, so a slow gateway is rarely repeated (a repeat is harmless:
/// viewers drop a `seq` they have seen), and short enough that viewers learn of a close whose
/// reply was lost within a few seconds.
pub const ANNOUNCE_GRACE: Duration = Duration::from_secs(2);

/// How an auction is ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseMode {
    /// The closer: only once its end time has passed.
    Due,
    /// An admin closes it early; the result is decided as at the end.
    Now,
    /// An admin cancels it before its end: no winner.
    Cancel,
}

/// What an attempt to close an item did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseOutcome {
    /// This call closed it; the event is in the outbox and must go out live, then be
    /// confirmed ([`Store::confirm_close`]).
    Closed(AuctionClosed),
    /// Closed earlier, and its announcement was never confirmed (the reply was lost): it must
    /// go out live now, then be confirmed. Only the closer's mode ([`CloseMode::Due`]) asks.
    Replayed(AuctionClosed),
    /// A late bid moved the end; the closing set now has the new time.
    NotDue,
    /// Already closed (by another instance, whose announcement is not overdue), cancelled, or
    /// deleted.
    Gone,
    /// A cancellation came after the end: the result stands.
    Ended,
    /// A seller's cancellation of an item that is not theirs; nothing changed.
    NotSeller,
    /// A seller's cancellation after the first bid (only an admin may cancel then); nothing
    /// changed.
    HasBids,
}

/// What buying an item now did (`close_item.lua` mode `buy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuyOutcome {
    /// This call closed the auction with the buyer as winner; announce and confirm the event
    /// as any close ([`Store::confirm_close`]).
    Bought(AuctionClosed),
    /// Already closed or cancelled, or no such item.
    Gone,
    /// The end time has passed (the result is the closer's).
    Ended,
    NotStarted,
    /// The item has no buy-it-now price.
    NoBuyNow,
    /// A bid exists: buy it now ended with the first bid.
    HasBids,
    /// The buyer is the item's seller.
    Seller,
}

impl Store {
    /// Item ids in `shard` whose scheduled end is at or before `now`, at most `limit`.
    ///
    /// # Errors
    /// When Redis is unavailable.
    pub async fn due_items(
        &self,
        shard: u32,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<ItemId>, StoreError> {
        let ids: Vec<String> = self
            .redis
            .query(
                redis::cmd("ZRANGE")
                    .arg(self.keys.closing(shard))
                    .arg("-inf")
                    .arg(now.micros())
                    .arg("BYSCORE")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit),
            )
            .await?;
        Ok(ids
            .into_iter()
            .filter_map(|id| ItemId::parse(id).ok())
            .collect())
    }

    /// Runs `close_item.lua` for one item.
    ///
    /// # Errors
    /// When Redis is unavailable (nothing changed), or did not answer in time (the close may
    /// be complete: a closer pass announces it once [`ANNOUNCE_GRACE`] has passed).
    #[tracing::instrument(name = "redis.close_item", level = "debug", skip_all, fields(item_id = %id))]
    pub async fn close_item(
        &self,
        id: &ItemId,
        mode: CloseMode,
        reason: &str,
    ) -> Result<CloseOutcome, StoreError> {
        self.run_close(id, mode, reason, None).await
    }

    /// Cancels `id` for its seller: only when `seller` is the item's `seller_id` and no bid
    /// has been placed ([`CloseOutcome::NotSeller`], [`CloseOutcome::HasBids`] otherwise),
    /// decided inside the script, atomically with the bids.
    ///
    /// # Errors
    /// When Redis is unavailable.
    #[tracing::instrument(name = "redis.cancel_as_seller", skip_all, fields(item_id = %id))]
    pub async fn cancel_as_seller(
        &self,
        id: &ItemId,
        seller: &UserId,
        reason: &str,
    ) -> Result<CloseOutcome, StoreError> {
        self.run_close(id, CloseMode::Cancel, reason, Some(seller))
            .await
    }

    /// Buys `id` now for `buyer`: one `close_item.lua` call (mode `buy`) decides against any
    /// racing bid, so exactly one of them wins.
    ///
    /// # Errors
    /// When Redis is unavailable, or did not answer in time (the purchase may be complete).
    #[tracing::instrument(name = "redis.buy_now", skip_all, fields(item_id = %id))]
    pub async fn buy_now(&self, id: &ItemId, buyer: &UserId) -> Result<BuyOutcome, StoreError> {
        let mut invocation = self.item_change(&self.scripts.close_item, id);
        invocation
            .arg("buy")
            .arg("")
            .arg(ANNOUNCE_GRACE.as_micros() as u64)
            .arg("")
            .arg(buyer.as_str());
        self.run_script("close_item.lua", invocation, |reply| {
            reply.decide(
                "closed",
                |event| match event {
                    Event::AuctionClosed(close) if close.buy_now => Some(BuyOutcome::Bought(close)),
                    _ => None,
                },
                &[
                    ("gone", BuyOutcome::Gone),
                    ("ended", BuyOutcome::Ended),
                    ("not_started", BuyOutcome::NotStarted),
                    ("no_buy_now", BuyOutcome::NoBuyNow),
                    ("has_bids", BuyOutcome::HasBids),
                    ("seller", BuyOutcome::Seller),
                ],
            )
        })
        .await
    }

    async fn run_close(
        &self,
        id: &ItemId,
        mode: CloseMode,
        reason: &str,
        seller: Option<&UserId>,
    ) -> Result<CloseOutcome, StoreError> {
        let mut invocation = self.item_change(&self.scripts.close_item, id);
        invocation
            .arg(match mode {
                CloseMode::Due => "due",
                CloseMode::Now => "now",
                CloseMode::Cancel => "cancel",
            })
            .arg(reason)
            .arg(ANNOUNCE_GRACE.as_micros() as u64)
            .arg(seller.map(UserId::as_str).unwrap_or_default());
        self.run_script("close_item.lua", invocation, |reply| {
            let replayed = reply.fields.get("replayed") == Some("1");
            reply.decide(
                "closed",
                |event| match event {
                    Event::AuctionClosed(close) if replayed => Some(CloseOutcome::Replayed(close)),
                    Event::AuctionClosed(close) => Some(CloseOutcome::Closed(close)),
                    _ => None,
                },
                &[
                    ("not_due", CloseOutcome::NotDue),
                    ("gone", CloseOutcome::Gone),
                    ("ended", CloseOutcome::Ended),
                    ("not_seller", CloseOutcome::NotSeller),
                    ("has_bids", CloseOutcome::HasBids),
                ],
            )
        })
        .await
    }

    /// Runs `confirm_close.lua`: the close of `id` at `seq` was announced live, so nothing
    /// keeps it for a later pass any more. Returns whether there was an announcement to
    /// confirm (not after a relist, or when another pass confirmed it first).
    ///
    /// # Errors
    /// When Redis is unavailable or slow; the close is then announced again after
    /// [`ANNOUNCE_GRACE`], which viewers absorb.
    pub async fn confirm_close(&self, id: &ItemId, seq: u64) -> Result<bool, StoreError> {
        let keys = self.keys.item(id);
        let mut invocation = self.scripts.confirm_close.prepare_invoke();
        invocation
            .key(&keys.item)
            .key(&keys.closing)
            .arg(id.as_str())
            .arg(seq);
        let confirmed: i64 = self.redis.invoke(&invocation).await?;
        Ok(confirmed == 1)
    }
}
