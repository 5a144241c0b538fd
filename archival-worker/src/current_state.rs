//! The auctions' current state in Redis (the gateway's layout, read through
//! `shared::redis_reads`), which the worker reads only for its notifications: what an `outbid`
//! says would lead again, and which auctions end soon. The archive never waits for Redis: a
//! read that fails leaves that detail out of an `outbid` (or the `ending_soon` pass for the
//! next tick); the batch is stored all the same.

use crate::metrics::Metrics;
use crate::store::Batch;
use futures::StreamExt;
use shared::redis_connection::RedisHandle;
use shared::redis_keys::Keyspace;
use shared::redis_reads::{self, ItemReadError};
use shared::{ItemId, ItemState, Timestamp};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Item reads in flight at once for one batch.
const CONCURRENT_READS: usize = 16;

#[derive(Clone)]
pub struct CurrentState {
    redis: RedisHandle,
    keys: Keyspace,
    metrics: Arc<Metrics>,
}

impl CurrentState {
    pub fn new(redis: RedisHandle, keys: Keyspace, metrics: Arc<Metrics>) -> Self {
        Self {
            redis,
            keys,
            metrics,
        }
    }

    /// One item's state, `None` when it is missing or cannot be read now (counted).
    pub async fn item(&self, id: &ItemId) -> Option<ItemState> {
        match redis_reads::item_state(&self.redis, &self.keys, id).await {
            Ok(state) => state,
            Err(e) => {
                self.metrics.redis_read_failures.inc();
                match e {
                    ItemReadError::Redis(e) => {
                        tracing::debug!(error = %e, item_id = %id, "item state unreadable")
                    }
                    malformed => tracing::warn!(error = %malformed, "item state malformed"),
                }
                None
            }
        }
    }

    /// Fills `batch.items` with the state of every item it has bids for.
    #[tracing::instrument(name = "redis.read_items", skip_all, fields(bids = batch.bids.len()))]
    pub async fn read_items(&self, batch: &mut Batch) {
        let ids: BTreeSet<ItemId> = batch.bids.iter().map(|b| b.item_id.clone()).collect();
        // Owned futures (a clone of the handle each): the consumer's future must be `Send`
        // for every lifetime, which borrowed stream closures do not prove.
        let states: Vec<Option<ItemState>> = futures::stream::iter(ids)
            .map(|id| {
                let reader = self.clone();
                async move { reader.item(&id).await }
            })
            .buffer_unordered(CONCURRENT_READS)
            .collect()
            .await;
        batch.items = states
            .into_iter()
            .flatten()
            .map(|s| (s.id.clone(), s))
            .collect();
    }

    /// Items whose end is after `now` and at most `until`, over every shard, with their end
    /// times (µs), at most `per_shard` from each.
    ///
    /// # Errors
    /// When a shard's closing set cannot be read.
    pub async fn ending(
        &self,
        now: Timestamp,
        until: Timestamp,
        per_shard: usize,
    ) -> Result<Vec<(ItemId, i64)>, shared::redis_connection::RedisCallError> {
        let mut found = Vec::new();
        for shard in Keyspace::shards() {
            found.extend(
                redis_reads::items_ending(&self.redis, &self.keys, shard, now, until, per_shard)
                    .await?,
            );
        }
        Ok(found)
    }
}
