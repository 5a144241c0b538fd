//! Prometheus metrics of one gateway instance.
//!
//! A registry per application (not a global recorder) so several gateways started in one test
//! process keep separate counts.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

pub struct Metrics {
    registry: Registry,
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
    /// Auctions this instance closed.
    pub auctions_closed: Counter,
    /// Optimistic bid attempts whose `EXEC` applied nothing because another writer changed the
    /// item first, so the bid was read and decided again. The contention experiment divides it
    /// by accepted bids to show what contention costs that strategy (always 0 with Lua).
    pub optimistic_retries: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("gateway");
        let bids = Family::<OutcomeLabel, Counter>::default();
        registry.register("bids", "Bids answered, by outcome", bids.clone());
        // 50 µs .. ~1.6 s
        let bid_duration = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "bid_duration_seconds",
            "Time to answer a bid",
            bid_duration.clone(),
        );
        let prefilter_rejections = Counter::default();
        registry.register(
            "prefilter_rejections",
            "Bids below the known price rejected without Redis",
            prefilter_rejections.clone(),
        );
        let live_published = Counter::default();
        registry.register(
            "live_published",
            "Events published on core NATS",
            live_published.clone(),
        );
        let live_dropped = Counter::default();
        registry.register(
            "live_dropped",
            "Live events dropped because the publish queue was full",
            live_dropped.clone(),
        );
        let relay_published = Counter::default();
        registry.register(
            "relay_published",
            "Outbox entries acknowledged by JetStream",
            relay_published.clone(),
        );
        let relay_failures = Counter::default();
        registry.register(
            "relay_failures",
            "Relay batches that failed and are retried",
            relay_failures.clone(),
        );
        let relay_reclaimed = Counter::default();
        registry.register(
            "relay_reclaimed",
            "Outbox entries reclaimed from stalled instances",
            relay_reclaimed.clone(),
        );
        let outbox_lag = Gauge::default();
        registry.register(
            "outbox_lag",
            "Outbox entries waiting for JetStream",
            outbox_lag.clone(),
        );
        let auctions_closed = Counter::default();
        registry.register(
            "auctions_closed",
            "Auctions this instance closed",
            auctions_closed.clone(),
        );
        let optimistic_retries = Counter::default();
        registry.register(
            "optimistic_retries",
            "Optimistic bid attempts retried because EXEC found the item changed",
            optimistic_retries.clone(),
        );
        Self {
            registry,
            auctions_closed,
            optimistic_retries,
            bids,
            bid_duration,
            prefilter_rejections,
            live_published,
            live_dropped,
            relay_published,
            relay_failures,
            relay_reclaimed,
            outbox_lag,
        }
    }
}

impl Metrics {
    pub fn bid(&self, outcome: &'static str) {
        self.bids.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
