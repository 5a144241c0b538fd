//! `ending_soon`: a periodic pass that finds the auctions ending within the window
//! (`ENDING_SOON_WINDOW_SECS`, 5 min) and notifies their bidders and watchers once per round
//! and schedule (see `store::notifications::ending_soon` for what re-arms it).
//!
//! The running auctions and their end times come from Redis (the shards' closing sets, then
//! each item's state, which also filters out a closed item still waiting there for its
//! announcement), since an item nobody bid on has no row in the archive yet may be watched.
//! Who to tell comes from PostgreSQL. The pass is idempotent by the notifications' unique key,
//! so several workers may run it, and a pass cut short is completed by the next.

use crate::current_state::CurrentState;
use crate::publisher::Publisher;
use crate::store::Store;
use shared::{ItemId, ItemStatus, Timestamp};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Most items taken from one shard per pass; the rest are seen by the next passes (an item
/// stays in the window for its whole length).
const PER_SHARD: usize = 1_000;

#[derive(Debug, Clone, Copy)]
pub struct EndingSoonSettings {
    pub window: Duration,
    pub interval: Duration,
}

/// How many passes an item's check stands for when its end does not move: a bidder or watcher
/// who joins an auction already in the window hears of it within that many intervals.
const RECHECK_PASSES: u32 = 10;

/// The pass's memory: each item already handled, with the end time it was handled for and
/// when, so a pass reads again only the items that are new in the window, whose end moved,
/// or whose last check is [`RECHECK_PASSES`] intervals old (for late bidders and watchers).
#[derive(Debug)]
pub struct EndingSoon {
    handled: HashMap<ItemId, (i64, Instant)>,
    recheck: Duration,
}

impl EndingSoon {
    pub fn new(interval: Duration) -> Self {
        Self {
            handled: HashMap::new(),
            recheck: interval * RECHECK_PASSES,
        }
    }
}

impl EndingSoon {
    /// One pass at `now`; returns how many notifications it stored (and published).
    ///
    /// # Errors
    /// When Redis or PostgreSQL fails; what was stored before is kept, the rest is retried.
    pub async fn pass(
        &mut self,
        state: &CurrentState,
        store: &Store,
        publisher: &Publisher,
        window: Duration,
        now: Timestamp,
    ) -> anyhow::Result<usize> {
        let until = Timestamp::from_micros(
            now.micros()
                .saturating_add(i64::try_from(window.as_micros()).unwrap_or(i64::MAX)),
        );
        let ending = state.ending(now, until, PER_SHARD).await?;
        // Forget what left the window; it can only come back with a new end time.
        let current: HashMap<ItemId, i64> = ending.into_iter().collect();
        self.handled
            .retain(|item, (end, _)| current.get(item) == Some(end));
        let mut stored = 0;
        for (item, end) in current {
            if let Some((_, at)) = self.handled.get(&item)
                && at.elapsed() < self.recheck
            {
                continue;
            }
            let Some(item_state) = state.item(&item).await else {
                continue;
            };
            if item_state.status_at(now) == ItemStatus::Active && item_state.end <= until {
                let notes = store.ending_soon(&item_state, now).await?;
                publisher.publish(&notes).await;
                stored += notes.len();
            }
            self.handled.insert(item, (end, Instant::now()));
        }
        Ok(stored)
    }
}

/// Runs a pass every `interval` until `shutdown`. A failed pass is logged and the next one
/// retries it, so the task never ends by itself before shutdown.
pub async fn run(
    state: CurrentState,
    store: Store,
    publisher: Publisher,
    settings: EndingSoonSettings,
    shutdown: CancellationToken,
) {
    let mut pass = EndingSoon::new(settings.interval);
    let mut ticks = tokio::time::interval(settings.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Both branches are cancellation-safe: a tick or the token, nothing half done.
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => return,
        }
        match pass
            .pass(
                &state,
                &store,
                &publisher,
                settings.window,
                Timestamp::now(),
            )
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(notifications = n, "ending_soon pass"),
            Err(e) => tracing::warn!(error = %e, "ending_soon pass failed; retried next tick"),
        }
    }
}
