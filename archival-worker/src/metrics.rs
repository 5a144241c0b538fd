//! Prometheus metrics of one worker (a registry per application, so tests stay separate).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub struct Metrics {
    registry: Registry,
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
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("archive");
        let events_stored = Counter::default();
        registry.register(
            "events_stored",
            "Events newly archived",
            events_stored.clone(),
        );
        let duplicates = Counter::default();
        registry.register(
            "duplicates",
            "Redelivered events already archived",
            duplicates.clone(),
        );
        let dead_letters = Counter::default();
        registry.register(
            "dead_letters",
            "Messages sent to dead_letters",
            dead_letters.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register(
            "batch_size",
            "Messages per committed batch",
            batch_size.clone(),
        );
        let consumer_lag = Gauge::default();
        registry.register(
            "consumer_lag",
            "Messages not yet delivered to the consumer",
            consumer_lag.clone(),
        );
        let batch_failures = Counter::default();
        registry.register(
            "batch_failures",
            "Batches handed back for redelivery",
            batch_failures.clone(),
        );
        Self {
            registry,
            events_stored,
            duplicates,
            dead_letters,
            batch_size,
            consumer_lag,
            batch_failures,
        }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
