//! Every latency figure the experiments report comes from one [`Histogram`] and is summarised
//! by one routine (nearest rank) into one [`LatencyMs`]: goose's response times, the viewers'
//! and floor readers' receipts, the resilience load's answers, closes and archive delays.
//!
//! Latencies measured across processes (a POST and a viewer's receipt, a writer's stamp and a
//! reader's) are read from [`wall_clock_us`], which every process on the machine shares.

use goose::metrics::GooseRequestMetricTimingData;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The bucket fan-out receipts (the viewers' and the floor readers') are kept in: fine for
/// figures in milliseconds, and a report of a few thousand buckets however many receipts it
/// counts.
pub const RECEIPT_BUCKET: Duration = Duration::from_micros(100);

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyMs {
    pub count: u64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// Latencies counted by value. An exact histogram keeps every nanosecond; a bucketed one
/// rounds each latency *up* to its bucket's upper edge, so nothing is reported lower than it
/// was, and stays small enough to pass between processes as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    resolution_ns: u64,
    counts: BTreeMap<u64, u64>,
}

impl Histogram {
    /// Keeps every value as it is.
    pub fn exact() -> Self {
        Self::bucketed(Duration::from_nanos(1))
    }

    /// Rounds every value up to a multiple of `width`.
    pub fn bucketed(width: Duration) -> Self {
        let resolution_ns = u64::try_from(width.as_nanos()).unwrap_or(u64::MAX).max(1);
        Self {
            resolution_ns,
            counts: BTreeMap::new(),
        }
    }

    /// Goose's response times, each bucket at the middle time goose itself reports for it
    /// (every time under 128 µs has a bucket of its own), clamped to the fastest and slowest
    /// time measured.
    pub fn from_goose(timing: &GooseRequestMetricTimingData) -> Self {
        let mut histogram = Self::exact();
        for (&floor, &count) in timing.times_us.iter() {
            // Goose splits each power of two from 128 µs on into 64 buckets.
            let half_width = match floor {
                0..128 => 0,
                _ => (1u64 << (63 - floor.leading_zeros() - 6)) >> 1,
            };
            let us = (floor + half_width).clamp(timing.minimum_time_us, timing.maximum_time_us);
            histogram.record_n(Duration::from_micros(us), count as u64);
        }
        histogram
    }

    pub fn record(&mut self, latency: Duration) {
        self.record_n(latency, 1);
    }

    pub fn record_n(&mut self, latency: Duration, count: u64) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let key = ns
            .div_ceil(self.resolution_ns)
            .saturating_mul(self.resolution_ns);
        *self.counts.entry(key).or_default() += count;
    }

    /// Adds `other`'s counts (a histogram of the same resolution, e.g. another process's).
    pub fn merge(&mut self, other: &Histogram) {
        for (&key, &count) in &other.counts {
            *self.counts.entry(key).or_default() += count;
        }
    }

    pub fn count(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The value at quantile `q` by nearest rank, `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let rank = ((q * self.count() as f64).ceil() as u64).max(1);
        let mut seen = 0;
        self.counts.iter().find_map(|(&ns, &n)| {
            seen += n;
            (seen >= rank).then(|| Duration::from_nanos(ns))
        })
    }

    /// The summary, or `None` when the histogram is empty (a percentile of nothing would read
    /// as a reassuring 0 ms).
    pub fn latency(&self) -> Option<LatencyMs> {
        let ms = |q| self.quantile(q).map_or(0.0, |d| d.as_nanos() as f64 / 1e6);
        (!self.counts.is_empty()).then(|| LatencyMs {
            count: self.count(),
            p50: ms(0.50),
            p99: ms(0.99),
            p999: ms(0.999),
            max: ms(1.0),
        })
    }

    /// The empirical CDF: `(ms, share of values at or below it)` per value, from `(0, 0)`.
    pub fn cdf(&self) -> Vec<(f64, f64)> {
        let total = self.count() as f64;
        let mut seen = 0;
        let mut points = vec![(0.0, 0.0)];
        for (&ns, &n) in &self.counts {
            seen += n;
            points.push((ns as f64 / 1e6, seen as f64 / total));
        }
        points
    }
}

/// A duration from a figure in milliseconds, to the nearest nanosecond (0 when negative).
pub fn from_ms(ms: f64) -> Duration {
    Duration::from_nanos((ms * 1e6).round().max(0.0) as u64)
}

/// Microseconds since the Unix epoch; 0 if the clock is before 1970.
pub fn wall_clock_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goose's timing data for `samples` of `(micros, count)`; below 128 µs each time has a
    /// bucket of its own, so these are exact.
    fn timing(samples: &[(u64, usize)]) -> GooseRequestMetricTimingData {
        let mut timing = GooseRequestMetricTimingData::default();
        for &(micros, count) in samples {
            timing.times_us.insert(micros, count);
            timing.counter += count;
        }
        timing.minimum_time_us = samples.iter().map(|s| s.0).min().unwrap_or(0);
        timing.maximum_time_us = samples.iter().map(|s| s.0).max().unwrap_or(0);
        timing
    }

    fn summary(h: &Histogram) -> Option<(u64, f64, f64, f64, f64)> {
        h.latency().map(|l| (l.count, l.p50, l.p99, l.p999, l.max))
    }

    fn exact_ms(values: impl IntoIterator<Item = u64>) -> Histogram {
        let mut histogram = Histogram::exact();
        values
            .into_iter()
            .for_each(|ms| histogram.record(Duration::from_millis(ms)));
        histogram
    }

    #[test]
    fn percentiles_follow_the_nearest_rank() {
        // 1000 requests: ranks 1-900 at 50 µs, 901-990 at 80, 991-999 at 100, 1000 at 120.
        let goose = Histogram::from_goose(&timing(&[(50, 900), (80, 90), (100, 9), (120, 1)]));
        assert_eq!(summary(&goose), Some((1000, 0.05, 0.08, 0.1, 0.12)));
        assert_eq!(
            summary(&exact_ms(1..=100)),
            Some((100, 50.0, 99.0, 100.0, 100.0))
        );
        // A single slow request in a thousand is the max, not the p999.
        let one_slow = Histogram::from_goose(&timing(&[(10, 999), (127, 1)]));
        assert_eq!(summary(&one_slow), Some((1000, 0.01, 0.01, 0.01, 0.127)));
        // Bucketed: 900 in bucket 0, 90 in bucket 4, 9 in bucket 9, 1 in bucket 20.
        let mut bucketed = Histogram::bucketed(Duration::from_micros(100));
        for (us, n) in [(50, 900), (450, 90), (950, 9), (2_050, 1)] {
            bucketed.record_n(Duration::from_micros(us), n);
        }
        assert_eq!(summary(&bucketed), Some((1000, 0.1, 0.5, 1.0, 2.1)));
        let median = |ms: &[u64]| exact_ms(ms.iter().copied()).quantile(0.5);
        assert_eq!(median(&[3, 1, 2]), Some(Duration::from_millis(2)));
        assert_eq!(
            median(&[4, 1, 3, 2]),
            Some(Duration::from_millis(2)),
            "the lower median"
        );
    }

    #[test]
    fn goose_buckets_are_read_at_their_middle_within_the_times_measured() {
        let mut samples = timing(&[(1024, 3)]);
        samples.maximum_time_us = 1_100;
        // Bucket 1024 µs is 16 µs wide: its middle, 1032 µs.
        assert_eq!(
            Histogram::from_goose(&samples).latency().map(|l| l.p50),
            Some(1.032)
        );
    }

    #[test]
    fn no_values_is_no_summary() {
        assert_eq!(Histogram::from_goose(&timing(&[])).latency(), None);
        assert_eq!(Histogram::exact().latency(), None);
        assert_eq!(Histogram::exact().quantile(0.5), None);
    }

    #[test]
    fn merged_histograms_add_their_counts_and_survive_json() {
        let mut merged = exact_ms([1, 2]);
        let json = serde_json::to_string(&exact_ms([2, 3])).unwrap();
        merged.merge(&serde_json::from_str(&json).unwrap());
        assert_eq!(merged.count(), 4);
        assert_eq!(merged.quantile(0.5), Some(Duration::from_millis(2)));
    }

    #[test]
    fn the_cdf_rises_from_zero_to_one_in_time_order() {
        let latency = Histogram::from_goose(&timing(&[(90, 1), (10, 2), (50, 1)]));
        let expected = vec![(0.0, 0.0), (0.01, 0.5), (0.05, 0.75), (0.09, 1.0)];
        assert_eq!(latency.cdf(), expected);
        let mut bucketed = Histogram::bucketed(Duration::from_micros(500));
        for us in [700, 800, 1_900, 2_400] {
            bucketed.record(Duration::from_micros(us));
        }
        let expected = vec![(0.0, 0.0), (1.0, 0.5), (2.0, 0.75), (2.5, 1.0)];
        assert_eq!(bucketed.cdf(), expected);
        assert_eq!(Histogram::exact().cdf(), vec![(0.0, 0.0)]);
    }
}
