//! Whether the auctions' Redis may evict keys: its `maxmemory-policy`, read at start and every
//! [`RECHECK`] after, logged loudly when it evicts and shown by `/ready` and `/metrics`.
//!
//! Every key of the auctions is meant to live until the gateway deletes it: items, the
//! outbox, the closing and listing sets, and the idempotency records (24 h for an accepted
//! bid, 60 s for a rejection). Under a policy that evicts, Redis drops keys silently when it
//! reaches `maxmemory`: `volatile-*` takes keys with a TTL, the idempotency records first among
//! them (a client's retry of an accepted bid is then decided again: a second bid, or
//! `bid_too_low` for the bid it already won); `allkeys-*` may take an item or an outbox with
//! events not yet archived. Only `noeviction` (writes fail with `OOM`, a 503 the client
//! retries, and nothing is lost) keeps the guarantees, so anything else is warned about.
//!
//! The gateway does not refuse to run on such a Redis, and `/ready` does not fail for it: every
//! gateway would be pulled from the load balancer at once for a setting only an operator can
//! change, and bids keep working until memory actually runs out. It says so instead: a `warn`
//! log at start (and whenever the reading changes), `gateway_redis_evicting` 1, and
//! `"redis_maxmemory_policy"` / `"redis_evicts"` in `/ready`'s body.
//!
//! `CONFIG GET maxmemory-policy` is what a self-run Redis answers. Managed services often refuse
//! `CONFIG` (ElastiCache renames it), so the fallback is the `maxmemory_policy` line of `INFO
//! memory` (in cluster mode from every primary; a policy that evicts on any of them counts).
//! When both are refused the policy is shown as `unknown` with a logged note, and nothing else
//! changes.

use crate::metrics::Metrics;
use crate::store::{PolicyReading, Store};
use serde_json::{Value, json};
use shared::supervisor::Backoff;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the policy is read again once it has been read: an operator's `CONFIG SET` or a
/// failover to a node configured otherwise shows within this.
pub const RECHECK: Duration = Duration::from_secs(60);

/// The latest reading, shared by the task that reads it and the probes that show it.
#[derive(Debug, Default)]
pub struct RedisEviction {
    reading: Mutex<PolicyReading>,
}

impl RedisEviction {
    pub fn reading(&self) -> PolicyReading {
        shared::mutex::lock(&self.reading).clone()
    }

    /// Stores `reading`; true when it differs from the previous one.
    fn update(&self, reading: PolicyReading) -> bool {
        let mut current = shared::mutex::lock(&self.reading);
        if *current == reading {
            return false;
        }
        *current = reading;
        true
    }

    /// The `/ready` fields: `"redis_maxmemory_policy"` and, once known, `"redis_evicts"`.
    pub fn ready_fields(&self) -> Vec<(&'static str, Value)> {
        let reading = self.reading();
        let mut fields = Vec::new();
        if let Some(shown) = reading.shown() {
            fields.push(("redis_maxmemory_policy", json!(shown)));
        }
        if let Some(evicts) = reading.evicts() {
            fields.push(("redis_evicts", json!(evicts)));
        }
        fields
    }
}

/// Reads the policy now, then every [`RECHECK`]; while Redis cannot be reached, retries with
/// `backoff`. Runs until `shutdown` (a supervised task that returned would be restarted).
pub async fn run(
    store: Store,
    eviction: Arc<RedisEviction>,
    metrics: Arc<Metrics>,
    backoff: Backoff,
    shutdown: CancellationToken,
) {
    let mut pause = backoff.first;
    loop {
        let wait = match store.maxmemory_policy().await {
            Ok(reading) => {
                pause = backoff.first;
                record(&eviction, &metrics, reading);
                RECHECK
            }
            Err(e) => {
                tracing::debug!(error = %e, retry_in = ?pause, "Redis maxmemory-policy not read; retrying");
                let wait = pause;
                pause = (pause * 2).min(backoff.max);
                wait
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Keeps `reading`, sets the gauges, and logs it when it changed.
fn record(eviction: &RedisEviction, metrics: &Metrics, reading: PolicyReading) {
    let previous = eviction.reading();
    if !eviction.update(reading.clone()) {
        return;
    }
    metrics.redis_policy(previous.shown().as_deref(), reading.shown().as_deref());
    metrics
        .redis_evicting
        .set(i64::from(reading.evicts() == Some(true)));
    let policy = reading.shown().unwrap_or_default();
    match reading.evicts() {
        Some(true) => tracing::warn!(
            maxmemory_policy = %policy,
            "REDIS MAY EVICT KEYS: maxmemory-policy is {policy}, not noeviction. At maxmemory, \
             Redis silently drops keys (volatile-*: idempotency records and other keys with a \
             TTL; allkeys-*: items and undelivered outbox events too), so a retried bid may be \
             applied twice and accepted events lost. Set maxmemory-policy noeviction \
             (ElastiCache: the parameter group). Shown as gateway_redis_evicting and in /ready."
        ),
        Some(false) => tracing::info!(maxmemory_policy = %policy, "Redis never evicts keys"),
        None => tracing::warn!(
            "Redis maxmemory-policy could not be read (CONFIG GET and INFO memory refused, as \
             some managed services do): make sure it is noeviction, or retried bids and \
             undelivered events may be lost when Redis runs out of memory"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_fields_appear_once_read() {
        let eviction = RedisEviction::default();
        assert!(eviction.ready_fields().is_empty());
        assert!(eviction.update(PolicyReading::Known(vec!["allkeys-lru".into()])));
        assert!(!eviction.update(PolicyReading::Known(vec!["allkeys-lru".into()])));
        assert_eq!(
            eviction.ready_fields(),
            [
                ("redis_maxmemory_policy", json!("allkeys-lru")),
                ("redis_evicts", json!(true))
            ]
        );
        eviction.update(PolicyReading::Hidden);
        assert_eq!(
            eviction.ready_fields(),
            [("redis_maxmemory_policy", json!("unknown"))]
        );
    }
}
