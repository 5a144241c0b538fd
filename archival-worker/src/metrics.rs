//! Prometheus metrics of one worker (a registry per application, so tests stay separate).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use shared::metrics::MetricsRegistry;

pub struct Metrics {
    registry: MetricsRegistry,
    /// Events newly written (redeliveries of archived events are not counted).
    pub events_stored: Counter,
    /// Events received again after they were archived (absorbed by `event_id`).
    pub duplicates: Counter,
    /// Messages sent to `dead_letters`.
    pub dead_letters: Counter,
    /// Messages per committed batch.
    pub batch_size: Histogram,
    /// Messages in the stream not yet delivered to this consumer.
    pub consumer_lag: Gauge,
    /// Batches that failed and were handed back for redelivery.
    pub batch_failures: Counter,
    /// Parts of batches split in two because PostgreSQL refused an event in them.
    pub batch_splits: Counter,
    /// Notifications newly stored (outbid, won, lost, ending_soon).
    pub notifications_stored: Counter,
    /// Notifications published on their user's subject.
    pub notifications_published: Counter,
    /// Notifications whose publish failed (they stay in the list).
    pub notification_publish_failures: Counter,
    /// Item states (Redis) that could not be read for a notification.
    pub redis_read_failures: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = MetricsRegistry::with_prefix("archive");
        Self {
            events_stored: registry.counter("events_stored", "Events newly archived"),
            duplicates: registry.counter("duplicates", "Redelivered events already archived"),
            dead_letters: registry.counter("dead_letters", "Messages sent to dead_letters"),
            batch_size: registry.histogram(
                "batch_size",
                "Messages per committed batch",
                exponential_buckets(1.0, 2.0, 12),
            ),
            consumer_lag: registry
                .gauge("consumer_lag", "Messages not yet delivered to the consumer"),
            batch_failures: registry
                .counter("batch_failures", "Batches handed back for redelivery"),
            batch_splits: registry.counter(
                "batch_splits",
                "Batch parts split to isolate an event PostgreSQL refused",
            ),
            notifications_stored: registry
                .counter("notifications_stored", "Notifications newly stored"),
            notifications_published: registry.counter(
                "notifications_published",
                "Notifications published on their user's subject",
            ),
            notification_publish_failures: registry.counter(
                "notification_publish_failures",
                "Notifications whose publish failed (kept in the list)",
            ),
            redis_read_failures: registry.counter(
                "redis_read_failures",
                "Item states that could not be read from Redis for a notification",
            ),
            registry,
        }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        self.registry.render()
    }
}
