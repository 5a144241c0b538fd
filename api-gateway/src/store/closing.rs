//! Closing auctions: which items are due, and the atomic close itself (`close_item.lua`).

use super::{Store, StoreError};
use shared::{AuctionClosed, Event, ItemId, Timestamp, UserId};

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
    /// This call closed it; the event is in the outbox and must go out live.
    Closed(AuctionClosed),
    /// A late bid moved the end; the closing set now has the new time.
    NotDue,
    /// Already closed (by another instance), cancelled, or deleted.
    Gone,
    /// A cancellation came after the end: the result stands.
    Ended,
    /// A seller's cancellation of an item that is not theirs; nothing changed.
    NotSeller,
    /// A seller's cancellation after the first bid (only an admin may cancel then); nothing
    /// changed.
    HasBids,
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
    /// When Redis is unavailable (nothing changed, or the close is complete: the next attempt
    /// answers `Gone`, and the outbox still carries the event).
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
            .arg(seller.map(UserId::as_str).unwrap_or_default());
        self.run_script("close_item.lua", invocation, |reply| {
            reply.decide(
                "closed",
                |event| match event {
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
}
