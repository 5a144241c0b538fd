//! The Prometheus registry every service builds its metrics in: one per application, not a
//! global recorder, so several instances started in one test process keep separate counts.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};
use std::fmt::Debug;
use std::hash::Hash;

/// The `outcome` label every service counts its answers by (`accepted`, `invalid_token`, …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// A service's registry under its prefix (`gateway_`, `broadcast_`, `archive_`).
#[derive(Debug)]
pub struct MetricsRegistry(Registry);

impl MetricsRegistry {
    pub fn with_prefix(prefix: &str) -> Self {
        Self(Registry::with_prefix(prefix))
    }

    /// Registers `metric` as `name` with `help` and returns it. A metric is a shared handle: the
    /// one returned and the one registered count together.
    pub fn register<M: Metric + Clone>(&mut self, name: &str, help: &str, metric: M) -> M {
        self.0.register(name, help, metric.clone());
        metric
    }

    pub fn counter(&mut self, name: &str, help: &str) -> Counter {
        self.register(name, help, Counter::default())
    }

    pub fn gauge(&mut self, name: &str, help: &str) -> Gauge {
        self.register(name, help, Gauge::default())
    }

    /// A counter per label set (`outcome`, `kind`, …).
    pub fn counters<L>(&mut self, name: &str, help: &str) -> Family<L, Counter>
    where
        L: EncodeLabelSet + Clone + Debug + Hash + Eq + Send + Sync + 'static,
    {
        self.register(name, help, Family::default())
    }

    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        buckets: impl Iterator<Item = f64>,
    ) -> Histogram {
        self.register(name, help, Histogram::new(buckets))
    }

    /// A histogram of in-process latencies in seconds: 50 µs doubling to about 1.6 s.
    pub fn latency(&mut self, name: &str, help: &str) -> Histogram {
        self.histogram(name, help, exponential_buckets(0.000_05, 2.0, 16))
    }

    /// The text exposition for `/metrics`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.0);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn a_registered_metric_counts_through_the_handle_returned() {
        let mut registry = MetricsRegistry::with_prefix("t");
        let hits: Counter = registry.register("hits", "Hits", Counter::default());
        hits.inc_by(3);
        let text = registry.render();
        assert!(text.contains("# HELP t_hits Hits."), "{text}");
        assert!(text.contains("t_hits_total 3"), "{text}");
    }
}
