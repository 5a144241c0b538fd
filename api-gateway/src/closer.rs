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
//! A shard whose calls failed sits out the next passes, one tick doubling up to
//! [`MAX_SHARD_PAUSE`] ([`ShardPauses`]): in a Redis Cluster failover every call to the dead
//! master's slots fails, and every failure makes the cluster client refresh its slot map under
//! a lock each bid waits on. Two calls per shard every 100 ms tick from each gateway were most
//! of that refresh storm; a closer that backs off keeps it to the bids' own.
//!
//! The same pass moves, per shard, the listing entries of auctions whose start time has come
//! from the scheduled listing sets to the active ones (`Store::start_listed`): nothing else
//! happens at a start, and the closer already visits every shard each tick.

use crate::live_publisher::LivePublisher;
use crate::metrics::Metrics;
use crate::store::{CloseMode, CloseOutcome, Store, StoreError};
use futures::StreamExt;
use shared::redis_keys::Keyspace;
use shared::supervisor::Backoff;
use shared::{AuctionClosed, Event, ItemId, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Most items one shard closes per tick; the rest follow on the next tick.
const BATCH: usize = 1_000;

/// Longest a failing shard sits out: its auctions are announced at most this late once its
/// Redis is back (bids after an item's end are refused by the bid script all the same).
pub const MAX_SHARD_PAUSE: Duration = Duration::from_secs(1);

/// When each shard is next visited: a shard whose listing failed waits one `step`, doubling
/// with each further failure up to [`MAX_SHARD_PAUSE`]; a success clears it.
#[derive(Debug)]
pub struct ShardPauses {
    backoff: Backoff,
    /// Per shard: the next visit and the current pause; `None` while it is healthy.
    paused: Vec<Option<(Instant, Duration)>>,
}

impl ShardPauses {
    /// No shard paused; a first failure pauses a shard for `step` (the closer's tick).
    #[must_use]
    pub fn new(step: Duration) -> Self {
        Self {
            backoff: Backoff {
                first: step,
                max: MAX_SHARD_PAUSE,
            },
            paused: vec![None; Keyspace::shards().count()],
        }
    }

    /// Whether `shard` is due a visit at `now`.
    #[must_use]
    pub fn due(&self, shard: u32, now: Instant) -> bool {
        self.slot(shard)
            .and_then(Option::as_ref)
            .is_none_or(|(until, _)| now >= *until)
    }

    /// Records one visit of `shard`: a failure pauses it longer, a success clears it.
    pub fn record(&mut self, shard: u32, failed: bool, now: Instant) {
        let backoff = self.backoff;
        if let Some(slot) = usize::try_from(shard)
            .ok()
            .and_then(|i| self.paused.get_mut(i))
        {
            *slot = failed.then(|| {
                let pause = slot.map_or(backoff.first, |(_, pause)| backoff.after(pause));
                (now + pause, pause)
            });
        }
    }

    fn slot(&self, shard: u32) -> Option<&Option<(Instant, Duration)>> {
        usize::try_from(shard).ok().and_then(|i| self.paused.get(i))
    }
}

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
    let mut pauses = ShardPauses::new(interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => break,
        }
        close_due(&store, &live, &metrics, concurrency, &mut pauses).await;
    }
}

/// One pass over every shard not paused by `pauses`, at most `concurrency` closes in flight.
pub async fn close_due(
    store: &Store,
    live: &Arc<LivePublisher>,
    metrics: &Metrics,
    concurrency: usize,
    pauses: &mut ShardPauses,
) -> ClosePass {
    let (now, visited) = (Timestamp::now(), Instant::now());
    let mut pass = ClosePass::default();
    let mut due = Vec::new();
    let shards: Vec<u32> = Keyspace::shards()
        .filter(|&shard| pauses.due(shard, visited))
        .collect();
    let mut failed_shards = std::collections::HashSet::new();
    for &shard in &shards {
        match store.due_items(shard, now, BATCH).await {
            Ok(ids) => due.extend(ids),
            Err(e) => {
                pass.failed += 1;
                failed_shards.insert(shard);
                tracing::warn!(shard, error = %e, "cannot list the shard's due auctions; retrying after a pause");
            }
        }
    }
    let starts = futures::future::join_all(shards.iter().map(|&shard| store.start_listed(shard)));
    for (&shard, moved) in shards.iter().zip(starts.await) {
        match moved {
            Ok(moved) => pass.started += moved,
            Err(e) => {
                pass.failed += 1;
                failed_shards.insert(shard);
                tracing::warn!(shard, error = %e, "cannot move the shard's started auctions to the active listing; retrying after a pause");
            }
        }
    }
    for &shard in &shards {
        pauses.record(shard, failed_shards.contains(&shard), visited);
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

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(100);

    #[test]
    fn a_failing_shard_waits_a_tick_doubling_up_to_the_cap_and_a_success_clears_it() {
        let mut pauses = ShardPauses::new(TICK);
        let t0 = Instant::now();
        assert!(Keyspace::shards().all(|shard| pauses.due(shard, t0)));

        let mut at = t0;
        let mut waits = Vec::new();
        for _ in 0..6 {
            pauses.record(3, true, at);
            let wait = [TICK / 2, TICK, TICK * 2, TICK * 4, TICK * 8, TICK * 10]
                .into_iter()
                .find(|&w| pauses.due(3, at + w))
                .expect("due again within the cap");
            assert!(!pauses.due(3, at + wait - Duration::from_millis(1)));
            waits.push(wait);
            at += wait;
        }
        assert_eq!(
            waits,
            [
                TICK,
                TICK * 2,
                TICK * 4,
                TICK * 8,
                MAX_SHARD_PAUSE,
                MAX_SHARD_PAUSE
            ]
        );
        assert!(
            pauses.due(2, t0) && pauses.due(4, t0),
            "other shards unaffected"
        );

        pauses.record(3, false, at);
        assert!(pauses.due(3, at));
        pauses.record(3, true, at);
        assert!(
            !pauses.due(3, at) && pauses.due(3, at + TICK),
            "back to one tick"
        );
    }

    #[test]
    fn a_shard_outside_the_keyspace_is_ignored() {
        let mut pauses = ShardPauses::new(TICK);
        let now = Instant::now();
        pauses.record(shared::redis_keys::SHARDS, true, now);
        assert!(pauses.due(shared::redis_keys::SHARDS, now));
    }
}
