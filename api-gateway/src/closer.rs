//! The auction closer: every gateway instance runs one, with no leader and no lock service.
//!
//! Each tick it lists, per outbox shard, the items whose end time has passed (the shard's
//! `closing` sorted set) and runs the atomic close script on each, at most `concurrency` at a
//! time (so a wave of ending auctions cannot queue thousands of scripts in front of the bids
//! sharing the Redis connection). However many instances try the same item at once, the
//! script's status check lets exactly one close it; a late bid that moved the end time is
//! noticed inside the script and the item is rescheduled. The close event goes out live (in
//! `seq` order with the item's bids) and through the outbox, like a bid.
//!
//! A close is announced at least once: the closing instance confirms the live handoff
//! (`Store::confirm_close`); until then the item stays due a little later
//! (`store::ANNOUNCE_GRACE`), so a close whose reply was lost (a call that timed out after Redis
//! ran it, an instance that stopped) is announced by the next pass of any instance. One item
//! whose close fails is logged, counted and retried on the next tick; it never stops the pass.
//! All state lives in Redis, so closes due while every gateway was down happen on restart.
//!
//! The same pass moves, per shard, the listing entries of auctions whose start time has come
//! from the scheduled listing sets to the active ones (`Store::start_listed`): nothing else
//! happens at a start, and the closer already visits every shard each tick.

use crate::live_publisher::LivePublisher;
use crate::metrics::Metrics;
use crate::store::{CloseMode, CloseOutcome, Store, StoreError};
use futures::StreamExt;
use shared::redis_keys::Keyspace;
use shared::{AuctionClosed, Event, ItemId, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Most items one shard closes per tick; the rest follow on the next tick.
const BATCH: usize = 1_000;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClosePass {
    /// Auctions this instance closed.
    pub closed: usize,
    /// Closes made earlier whose announcement was never confirmed, announced now.
    pub announced_again: usize,
    /// Shards that could not be listed (or their started items moved) plus items whose close
    /// failed; retried next tick.
    pub failed: usize,
    /// Auctions whose start came, moved from the scheduled listing to the active one.
    pub started: u64,
}

/// Closes due auctions every `interval` until `shutdown`, at most `concurrency` at a time.
pub async fn run(
    store: Store,
    live: Arc<LivePublisher>,
    metrics: Arc<Metrics>,
    interval: Duration,
    concurrency: usize,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => break,
        }
        close_due(&store, &live, &metrics, concurrency).await;
    }
}

/// One pass over every shard, at most `concurrency` closes in flight.
pub async fn close_due(
    store: &Store,
    live: &Arc<LivePublisher>,
    metrics: &Metrics,
    concurrency: usize,
) -> ClosePass {
    let now = Timestamp::now();
    let mut pass = ClosePass::default();
    let mut due = Vec::new();
    for shard in Keyspace::shards() {
        match store.due_items(shard, now, BATCH).await {
            Ok(ids) => due.extend(ids),
            Err(e) => {
                pass.failed += 1;
                tracing::warn!(shard, error = %e, "cannot list the shard's due auctions; retrying next tick");
            }
        }
    }
    let starts =
        futures::future::join_all(Keyspace::shards().map(|shard| store.start_listed(shard)));
    for (shard, moved) in starts.await.into_iter().enumerate() {
        match moved {
            Ok(moved) => pass.started += moved,
            Err(e) => {
                pass.failed += 1;
                tracing::warn!(shard, error = %e, "cannot move the shard's started auctions to the active listing; retrying next tick");
            }
        }
    }
    // The multiplexed connection pipelines the closes in flight.
    let mut outcomes = futures::stream::iter(due)
        .map(|id| async move {
            let outcome = close_one(store, live, &id).await;
            (id, outcome)
        })
        .buffer_unordered(concurrency.max(1));
    while let Some((id, outcome)) = outcomes.next().await {
        match outcome {
            Ok(CloseOutcome::Closed(close)) => {
                pass.closed += 1;
                metrics.auctions_closed.inc();
                tracing::info!(item_id = %close.item_id, winner = ?close.winner_id, reserve_met = close.reserve_met, "auction closed");
            }
            Ok(CloseOutcome::Replayed(close)) => {
                pass.announced_again += 1;
                metrics.close_announcements_repeated.inc();
                tracing::info!(item_id = %close.item_id, seq = close.seq, "unconfirmed close announced again");
            }
            // NotSeller and HasBids answer only a seller's own cancellation, never the closer.
            Ok(
                CloseOutcome::NotDue
                | CloseOutcome::Gone
                | CloseOutcome::Ended
                | CloseOutcome::NotSeller
                | CloseOutcome::HasBids,
            ) => {}
            Err(e) => {
                pass.failed += 1;
                metrics.close_failures.inc();
                tracing::warn!(item_id = %id, error = %e, "closing failed; retrying next tick");
            }
        }
    }
    pass
}

/// Closes one item, hands its event (new or replayed) to the live publisher in `seq` order,
/// and confirms the handoff.
async fn close_one(
    store: &Store,
    live: &Arc<LivePublisher>,
    id: &ItemId,
) -> Result<CloseOutcome, StoreError> {
    let in_flight = live.begin(id);
    let outcome = store.close_item(id, CloseMode::Due, "").await;
    let announced = match &outcome {
        Ok(CloseOutcome::Closed(close) | CloseOutcome::Replayed(close)) => Some(close.clone()),
        _ => None,
    };
    in_flight.finish(announced.clone().map(Event::AuctionClosed).as_ref());
    if let Some(close) = announced {
        confirm(store, &close).await;
    }
    outcome
}

/// Confirms that `close` went to the live publisher; a failure only means a later pass
/// announces it again.
pub async fn confirm(store: &Store, close: &AuctionClosed) {
    if let Err(e) = store.confirm_close(&close.item_id, close.seq).await {
        tracing::debug!(item_id = %close.item_id, error = %e, "close not confirmed; a later pass announces it again");
    }
}
