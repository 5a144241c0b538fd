//! Prometheus metrics of one gateway instance.
//!
//! A registry per application (not a global recorder) so several gateways started in one test
//! process keep separate counts.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use shared::metrics::{MetricsRegistry, OutcomeLabel};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabel {
    pub limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabel {
    pub policy: String,
}

pub struct Metrics {
    registry: MetricsRegistry,
    /// Bids answered, by outcome (`accepted`, `bid_too_low`, `closed`, …).
    pub bids: Family<OutcomeLabel, Counter>,
    /// Time from request parsed to answer ready, in seconds.
    pub bid_duration: Histogram,
    /// Bids rejected by the local price pre-filter without a Redis round trip.
    pub prefilter_rejections: Counter,
    /// Live events handed to core NATS.
    pub live_published: Counter,
    /// Live events dropped because the publish queue was full (NATS down or slow).
    pub live_dropped: Counter,
    /// Outbox entries published to JetStream and removed from Redis.
    pub relay_published: Counter,
    /// Relay batches that failed and will be retried.
    pub relay_failures: Counter,
    /// Outbox entries reclaimed from instances that stopped relaying them.
    pub relay_reclaimed: Counter,
    /// Outbox entries waiting for JetStream (all shards), read at scrape time.
    pub outbox_lag: Gauge,
    /// Items the live publisher keeps a reorder buffer for (bids in flight), read at scrape
    /// time.
    pub live_tracked_items: Gauge,
    /// Items the price pre-filter knows a price of, read at scrape time.
    pub prefilter_items: Gauge,
    /// Auctions this instance closed.
    pub auctions_closed: Counter,
    /// Closes whose announcement was never confirmed (the reply was lost), announced again by
    /// this instance's closer.
    pub close_announcements_repeated: Counter,
    /// Items whose close failed in a pass (retried on the next tick).
    pub close_failures: Counter,
    /// Optimistic bid attempts whose `EXEC` applied nothing because another writer changed the
    /// item first, so the bid was read and decided again. The contention experiment divides it
    /// by accepted bids to show what contention costs that strategy (always 0 with Lua).
    pub optimistic_retries: Counter,
    /// Requests refused with 429, by limit (`bid`, `ip`, `login_account`, `register_account`,
    /// `auth_ip`).
    rate_limited: Family<LimitLabel, Counter>,
    /// 1 while the rate limits are shared through Redis, 0 while this instance limits on its
    /// own counts because the last sync with the limiter's Redis failed.
    pub rate_limit_shared: Gauge,
    /// Calls to the limiter's Redis that failed (syncs and sign-in throttle counts).
    pub rate_limit_redis_failures: Counter,
    /// "Over the limit" verdicts of other instances applied here.
    pub rate_limit_verdicts_applied: Counter,
    /// Keys this instance holds limit state for (set once a second).
    pub rate_limit_keys: Gauge,
    /// 1 while the auctions' Redis has a `maxmemory-policy` that may evict keys (anything but
    /// `noeviction`; see `eviction_policy`), 0 while it never evicts or the policy is unknown.
    pub redis_evicting: Gauge,
    /// 1 for the `maxmemory-policy` last read (`unknown` when the server hides it).
    redis_maxmemory_policy: Family<PolicyLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = MetricsRegistry::with_prefix("gateway");
        Self {
            bids: registry.counters::<OutcomeLabel>("bids", "Bids answered, by outcome"),
            bid_duration: registry.latency("bid_duration_seconds", "Time to answer a bid"),
            prefilter_rejections: registry.counter(
                "prefilter_rejections",
                "Bids below the known price rejected without Redis",
            ),
            live_published: registry.counter("live_published", "Events published on core NATS"),
            live_dropped: registry.counter(
                "live_dropped",
                "Live events dropped because the publish queue was full",
            ),
            relay_published: registry.counter(
                "relay_published",
                "Outbox entries acknowledged by JetStream",
            ),
            relay_failures: registry.counter(
                "relay_failures",
                "Relay batches that failed and are retried",
            ),
            relay_reclaimed: registry.counter(
                "relay_reclaimed",
                "Outbox entries reclaimed from stalled instances",
            ),
            outbox_lag: registry.gauge("outbox_lag", "Outbox entries waiting for JetStream"),
            live_tracked_items: registry.gauge(
                "live_tracked_items",
                "Items with a live reorder buffer (bids in flight)",
            ),
            prefilter_items: registry
                .gauge("prefilter_items", "Items whose price the pre-filter knows"),
            auctions_closed: registry.counter("auctions_closed", "Auctions this instance closed"),
            close_announcements_repeated: registry.counter(
                "close_announcements_repeated",
                "Unconfirmed auction_closed events announced again",
            ),
            close_failures: registry.counter(
                "close_failures",
                "Closes that failed in a pass and are retried",
            ),
            optimistic_retries: registry.counter(
                "optimistic_retries",
                "Optimistic bid attempts retried because EXEC found the item changed",
            ),
            rate_limited: registry
                .counters::<LimitLabel>("rate_limited", "Requests refused with 429, by limit"),
            rate_limit_shared: registry.gauge(
                "rate_limit_shared",
                "1 while rate limits are shared through Redis, 0 while limited per instance",
            ),
            rate_limit_redis_failures: registry.counter(
                "rate_limit_redis_failures",
                "Calls to the rate limits' Redis that failed",
            ),
            rate_limit_verdicts_applied: registry.counter(
                "rate_limit_verdicts_applied",
                "Other instances' over-the-limit verdicts applied here",
            ),
            rate_limit_keys: registry.gauge(
                "rate_limit_keys",
                "Keys this instance holds rate-limit state for",
            ),
            redis_evicting: registry.gauge(
                "redis_evicting",
                "1 while Redis's maxmemory-policy may evict keys (not noeviction)",
            ),
            redis_maxmemory_policy: registry.register(
                "redis_maxmemory_policy",
                "1 for Redis's maxmemory-policy as last read (unknown: the server hides it)",
                Family::default(),
            ),
            registry,
        }
    }
}

impl Metrics {
    pub fn bid(&self, outcome: &'static str) {
        self.bids.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// The 429 counter of one limit.
    pub fn rate_limited(&self, limit: &'static str) -> Counter {
        self.rate_limited
            .get_or_create(&LimitLabel { limit })
            .clone()
    }

    /// Moves the `redis_maxmemory_policy` series from `previous` to `current`.
    pub fn redis_policy(&self, previous: Option<&str>, current: Option<&str>) {
        if let Some(policy) = previous {
            self.redis_maxmemory_policy.remove(&PolicyLabel {
                policy: policy.to_owned(),
            });
        }
        if let Some(policy) = current {
            self.redis_maxmemory_policy
                .get_or_create(&PolicyLabel {
                    policy: policy.to_owned(),
                })
                .set(1);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.registry.render()
    }
}
