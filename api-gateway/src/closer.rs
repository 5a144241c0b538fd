//! The auction closer: every gateway instance runs one, with no leader and no lock service.
//!
//! Each tick it lists, per outbox shard, the items whose end time has passed (the shard's
//! `closing` sorted set) and runs the atomic close script on each. However many instances try
//! the same item at once, the script's status check lets exactly one close it; a late bid that
//! moved the end time is noticed inside the script and the item is rescheduled. The close
//! event goes out live (in `seq` order with the item's bids) and through the outbox, like a bid.
//! All state lives in Redis, so closes due while every gateway was down happen on restart.

use crate::live_publisher::LivePublisher;
use crate::metrics::Metrics;
use crate::store::{CloseMode, CloseOutcome, Store};
use shared::redis_keys::Keyspace;
use shared::{Event, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Most items one shard closes per tick; the rest follow on the next tick.
const BATCH: usize = 1_000;

/// Closes due auctions every `interval` until `shutdown`.
pub async fn run(
    store: Store,
    live: Arc<LivePublisher>,
    metrics: Arc<Metrics>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => break,
        }
        if let Err(e) = close_due(&store, &live, &metrics).await {
            tracing::warn!(error = %e, "closer tick failed; retrying next tick");
        }
    }
}

/// One pass over every shard. Returns how many auctions this instance closed.
///
/// # Errors
/// When Redis is unavailable.
pub async fn close_due(
    store: &Store,
    live: &Arc<LivePublisher>,
    metrics: &Metrics,
) -> Result<usize, crate::store::StoreError> {
    let now = Timestamp::now();
    let mut closed = 0;
    for shard in Keyspace::shards() {
        let due = store.due_items(shard, now, BATCH).await?;
        // All closes of a shard are sent at once; the multiplexed connection pipelines them.
        let results = futures::future::join_all(due.iter().map(|id| async move {
            let in_flight = live.begin(id);
            let outcome = store.close_item(id, CloseMode::Due, "").await;
            let event = match &outcome {
                Ok(CloseOutcome::Closed(close)) => Some(Event::AuctionClosed(close.clone())),
                _ => None,
            };
            in_flight.finish(event.as_ref());
            outcome
        }))
        .await;
        for result in results {
            if let CloseOutcome::Closed(close) = result? {
                closed += 1;
                metrics.auctions_closed.inc();
                tracing::info!(item_id = %close.item_id, winner = ?close.winner_id, reserve_met = close.reserve_met, "auction closed");
            }
        }
    }
    Ok(closed)
}
