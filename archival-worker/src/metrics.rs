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
            registry,
        }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        self.registry.render()
    }
}
