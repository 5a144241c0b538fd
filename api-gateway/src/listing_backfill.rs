//! The backfill of the per-shard listing sets from the legacy `items:index` set, run once by
//! every gateway at start.
//!
//! Gateways before the listing sets kept one Redis set of every item id (`items:index`) and
//! read every item for each listing. A deployment upgrading has that set and no listing sets,
//! so at start each gateway takes ids from it in batches, puts each item in the listing sets
//! its hash says (`reindex_item.lua`, idempotent), and only then removes the batch from the
//! set. A gateway that stops half way leaves the rest for the next start; several gateways
//! doing it at once do the same work twice, harmlessly. Once the set is empty (Redis deletes
//! it), nothing reads or writes `items:index` any more: the listing sets are kept by the
//! scripts themselves. During a rolling upgrade an older gateway may still add ids to it; they
//! are indexed at the next gateway start.

use crate::store::{Store, StoreError};
use shared::supervisor::Backoff;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Ids taken from the legacy set per round (their reindexing is pipelined).
const BATCH: usize = 200;

/// Backfills until the legacy set is empty, retrying Redis outages with `backoff`, then waits
/// for shutdown (a supervised task that returned would be restarted).
pub async fn run(store: Store, backoff: Backoff, shutdown: CancellationToken) {
    let mut pause = backoff.first;
    loop {
        match backfill(&store).await {
            Ok(0) => break,
            Ok(indexed) => {
                tracing::info!(
                    indexed,
                    "listing sets backfilled from the legacy items:index"
                );
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?pause, "listing backfill failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = shutdown.cancelled() => return,
                }
                pause = backoff.after(pause);
            }
        }
    }
    shutdown.cancelled().await;
}

/// Moves every id of the legacy set into the listing sets; returns how many ids it took.
///
/// # Errors
/// When Redis is unavailable; what was done stays done, the rest stays in the legacy set.
pub async fn backfill(store: &Store) -> Result<usize, StoreError> {
    let mut taken = 0;
    loop {
        let batch = store.backfill_listing_batch(BATCH).await?;
        if batch == 0 {
            return Ok(taken);
        }
        taken += batch;
        // Yield between batches: the backfill must not crowd out the first bids.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
