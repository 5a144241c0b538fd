//! Latency summaries: from goose's response-time histogram, or from the fixed-width
//! histograms the WebSocket and TCP client processes keep ([`BUCKET_US`]), and the wall clock
//! that latencies measured across processes are read from.
//!
//! Goose keeps every response time of a request in log-linear microsecond
//! buckets (each within 0.78% of the times it holds) and answers percentiles
//! with `GooseRequestMetricTimingData::percentile_us`, nearest rank, clamped to
//! the fastest and slowest time measured. Goose measures time to first byte:
//! from just before the request is sent until the response headers arrive.

use crate::viewers::{BUCKET_US, BUCKETS};
use goose::metrics::GooseRequestMetricTimingData;
use serde::Serialize;
use std::time::{SystemTime, UNIX_EPOCH};

/// Response-time percentiles of one request kind, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyMs {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl LatencyMs {
    /// The summary of `timing`, or `None` when it holds no response time (a
    /// percentile of nothing would read as a reassuring 0 ms).
    pub fn from_timing(timing: &GooseRequestMetricTimingData) -> Option<Self> {
        if timing.counter == 0 {
            return None;
        }
        Some(Self {
            p50: micros_to_ms(timing.percentile_us(0.50)),
            p99: micros_to_ms(timing.percentile_us(0.99)),
            p999: micros_to_ms(timing.percentile_us(0.999)),
            max: micros_to_ms(timing.maximum_time_us),
        })
    }

    /// The summary of a histogram of [`BUCKET_US`]-wide buckets (`histogram[b]` counts the
    /// latencies in `[b, b + 1) × BUCKET_US`), each figure the upper edge of the bucket holding
    /// that rank (nearest rank), so a latency is never reported lower than it was. `None` when
    /// the histogram is empty.
    pub fn from_histogram(histogram: &[u64]) -> Option<Self> {
        let total: u64 = histogram.iter().sum();
        if total == 0 {
            return None;
        }
        let upper_edge_ms = |bucket: usize| ((bucket as u64 + 1) * BUCKET_US) as f64 / 1000.0;
        let at = |q: f64| {
            let rank = ((q * total as f64).ceil() as u64).max(1);
            let mut seen = 0;
            histogram
                .iter()
                .position(|n| {
                    seen += n;
                    seen >= rank
                })
                .map_or(upper_edge_ms(BUCKETS - 1), upper_edge_ms)
        };
        Some(Self {
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: histogram
                .iter()
                .rposition(|n| *n > 0)
                .map_or(0.0, upper_edge_ms),
        })
    }
}

/// Microseconds since the Unix epoch. Latencies that start in one process and end in another
/// (a POST and a viewer's receipt, a writer's stamp and a reader's) are read from this clock,
/// which every process on the machine shares; 0 if the clock is before 1970.
pub fn wall_clock_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn micros_to_ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timing data as goose would hold it for `samples` of `(micros, count)`.
    /// Every time below 128 µs has a bucket of its own, so these are exact.
    fn timing(samples: &[(u64, usize)]) -> GooseRequestMetricTimingData {
        let mut timing = GooseRequestMetricTimingData::default();
        for &(micros, count) in samples {
            timing.times_us.insert(micros, count);
            timing.counter += count;
            timing.total_time_us += micros * count as u64;
        }
        timing.minimum_time_us = samples.iter().map(|s| s.0).min().unwrap_or(0);
        timing.maximum_time_us = samples.iter().map(|s| s.0).max().unwrap_or(0);
        timing
    }

    #[test]
    fn percentiles_follow_the_nearest_rank() {
        // 1000 requests: ranks 1-900 at 50 µs, 901-990 at 80, 991-999 at 100, 1000 at 120.
        let latency = LatencyMs::from_timing(&timing(&[(50, 900), (80, 90), (100, 9), (120, 1)]));
        assert_eq!(
            latency,
            Some(LatencyMs {
                p50: 0.05,
                p99: 0.08,
                p999: 0.1,
                max: 0.12
            })
        );
    }

    #[test]
    fn p999_of_a_single_slow_request_in_a_thousand_is_not_the_max() {
        let latency = LatencyMs::from_timing(&timing(&[(10, 999), (127, 1)])).unwrap();
        assert_eq!(latency.p999, 0.01);
        assert_eq!(latency.max, 0.127);
    }

    #[test]
    fn no_response_times_is_no_summary() {
        assert_eq!(LatencyMs::from_timing(&timing(&[])), None);
    }

    #[test]
    fn histogram_percentiles_are_upper_bucket_edges_at_the_nearest_rank() {
        // 1000 latencies: 900 in bucket 0, 90 in bucket 4, 9 in bucket 9, 1 in bucket 20.
        let mut histogram = vec![0u64; BUCKETS];
        histogram[0] = 900;
        histogram[4] = 90;
        histogram[9] = 9;
        histogram[20] = 1;
        let bucket_ms = BUCKET_US as f64 / 1000.0;
        assert_eq!(
            LatencyMs::from_histogram(&histogram),
            Some(LatencyMs {
                p50: bucket_ms,
                p99: 5.0 * bucket_ms,
                p999: 10.0 * bucket_ms,
                max: 21.0 * bucket_ms,
            })
        );
    }

    #[test]
    fn an_empty_histogram_is_no_summary() {
        assert_eq!(LatencyMs::from_histogram(&vec![0; BUCKETS]), None);
    }
}
