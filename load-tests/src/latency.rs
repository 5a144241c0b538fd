//! Latency summary read from goose's response-time histogram.
//!
//! Goose keeps every response time of a request in log-linear microsecond
//! buckets (each within 0.78% of the times it holds) and answers percentiles
//! with `GooseRequestMetricTimingData::percentile_us`, nearest rank, clamped to
//! the fastest and slowest time measured. Goose measures time to first byte:
//! from just before the request is sent until the response headers arrive.

use goose::metrics::GooseRequestMetricTimingData;
use serde::Serialize;

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
}
