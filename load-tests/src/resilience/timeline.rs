//! The pure functions that turn what the load and the viewer observed (on one clock) into
//! figures: per-window availability and error counts, per-second rates, and the time to
//! recover. Kept free of I/O so the arithmetic has unit tests.

use crate::latency::{self, Histogram, LatencyMs};
use crate::open_loop::{Kind, Request};
use serde::Serialize;
use std::collections::BTreeMap;

/// The bids sent in one time window, summarised.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WindowStats {
    pub from_ms: f64,
    pub to_ms: f64,
    pub bids: usize,
    pub answered_2xx: usize,
    /// `answered_2xx / bids` (1 when no bid was sent).
    pub availability: f64,
    pub accepted: usize,
    /// Count per answer label (`200 accepted`, `503 unavailable`, `transport connect`, …).
    pub answers: BTreeMap<String, usize>,
    /// Latency of the bids not answered 2xx (a refusal should be fast, not a hang).
    pub failed_latency_ms: LatencyMs,
    /// Latency of the 503 answers alone.
    pub unavailable_latency_ms: LatencyMs,
    /// Reads sent in the window and how many were answered 2xx.
    pub reads: usize,
    pub reads_2xx: usize,
}

impl WindowStats {
    /// Summarises the requests sent in `[from_ms, to_ms)`, optionally to one gateway only.
    pub fn of(requests: &[Request], from_ms: f64, to_ms: f64, gateway: Option<usize>) -> Self {
        let in_window = requests.iter().filter(|r| {
            r.sent_ms >= from_ms && r.sent_ms < to_ms && gateway.is_none_or(|g| r.gateway == g)
        });
        let mut stats = Self {
            from_ms,
            to_ms,
            ..Self::default()
        };
        let (mut failed, mut unavailable) = (Histogram::exact(), Histogram::exact());
        let latency = |r: &Request| latency::from_ms(r.latency_ms);
        for r in in_window {
            if r.kind != Kind::Bid {
                stats.reads += 1;
                stats.reads_2xx += usize::from(r.is_2xx());
                continue;
            }
            stats.bids += 1;
            *stats.answers.entry(r.label()).or_default() += 1;
            if r.is_2xx() {
                stats.answered_2xx += 1;
            } else {
                failed.record(latency(r));
            }
            if r.is_503() {
                unavailable.record(latency(r));
            }
            stats.accepted += usize::from(r.is_accepted_bid());
        }
        stats.availability = if stats.bids == 0 {
            1.0
        } else {
            stats.answered_2xx as f64 / stats.bids as f64
        };
        stats.failed_latency_ms = failed.latency().unwrap_or_default();
        stats.unavailable_latency_ms = unavailable.latency().unwrap_or_default();
        stats
    }
}

/// Milliseconds from `from_ms` to the first bid sent after it that starts a run of bids, all
/// answered 2xx, spanning at least `hold_ms` (by send time); `None` if no such run exists.
/// `requests` must be in send order.
pub fn recovery_ms(requests: &[Request], from_ms: f64, hold_ms: f64) -> Option<f64> {
    let mut streak_start: Option<f64> = None;
    for r in requests
        .iter()
        .filter(|r| r.kind == Kind::Bid && r.sent_ms >= from_ms)
    {
        if r.is_2xx() {
            let start = *streak_start.get_or_insert(r.sent_ms);
            if r.sent_ms - start >= hold_ms {
                return Some(start - from_ms);
            }
        } else {
            streak_start = None;
        }
    }
    None
}

/// One second of the run, for the timeline chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Second {
    pub second: u64,
    pub bids_2xx: u64,
    pub bids_failed: u64,
    pub viewer_events: u64,
}

/// Bids (by send time) and viewer events (`arrivals_ms`) per second, from 0 to the last
/// second with a bid, empty seconds included so the chart shows gaps as zero.
pub fn per_second(requests: &[Request], arrivals_ms: &[f64]) -> Vec<Second> {
    let mut seconds: Vec<Second> = Vec::new();
    for r in requests.iter().filter(|r| r.kind == Kind::Bid) {
        let s = (r.sent_ms / 1000.0).floor() as usize;
        if seconds.len() <= s {
            seconds.extend((seconds.len()..=s).map(|i| Second {
                second: i as u64,
                bids_2xx: 0,
                bids_failed: 0,
                viewer_events: 0,
            }));
        }
        if let Some(slot) = seconds.get_mut(s) {
            *(if r.is_2xx() {
                &mut slot.bids_2xx
            } else {
                &mut slot.bids_failed
            }) += 1;
        }
    }
    for t in arrivals_ms {
        if let Some(slot) = seconds.get_mut((t / 1000.0).floor() as usize) {
            slot.viewer_events += 1;
        }
    }
    seconds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bid(sent_ms: f64, gateway: usize, status: Option<u16>, latency_ms: f64) -> Request {
        Request::bid(sent_ms, gateway, 100, status, latency_ms)
    }

    #[test]
    fn availability_is_the_share_of_bids_answered_2xx_in_the_window() {
        let requests = [
            bid(0.0, 0, Some(200), 2.0),
            bid(10.0, 1, Some(503), 3.0),
            bid(20.0, 0, Some(200), 2.0),
            bid(30.0, 1, None, 1.0),
            bid(99.0, 0, Some(503), 9.0),
        ];
        let all = WindowStats::of(&requests, 0.0, 50.0, None);
        assert_eq!((all.bids, all.answered_2xx, all.accepted), (4, 2, 2));
        assert!((all.availability - 0.5).abs() < 1e-9);
        assert_eq!(all.answers.get("503 unavailable"), Some(&1));
        assert_eq!(all.answers.get("transport connect"), Some(&1));
        assert_eq!(all.failed_latency_ms.count, 2);
        assert_eq!(all.unavailable_latency_ms.max, 3.0);
        assert_eq!(
            WindowStats::of(&requests, 0.0, 50.0, Some(0)).availability,
            1.0
        );
        let empty = WindowStats::of(&[], 0.0, 10.0, None);
        assert_eq!(
            empty.availability, 1.0,
            "an empty window counts as available"
        );
    }

    #[test]
    fn recovery_starts_at_the_first_bid_of_a_long_enough_successful_run() {
        let answers = [
            (100.0, 503),
            (200.0, 200),
            (300.0, 503),
            (400.0, 200),
            (900.0, 200),
        ];
        let answers = answers.into_iter().chain([(1400.0, 200)]);
        let requests: Vec<Request> = answers.map(|(t, s)| bid(t, 0, Some(s), 1.0)).collect();
        assert_eq!(recovery_ms(&requests, 50.0, 1000.0), Some(350.0));
        assert_eq!(recovery_ms(&requests, 50.0, 2000.0), None);
    }

    #[test]
    fn per_second_rates_keep_empty_seconds() {
        let requests = [
            bid(100.0, 0, Some(200), 1.0),
            bid(2500.0, 0, Some(503), 1.0),
        ];
        let seconds = per_second(&requests, &[10.0, 20.0, 1500.0]);
        let rates: Vec<_> = seconds
            .iter()
            .map(|s| (s.second, s.bids_2xx, s.bids_failed))
            .collect();
        assert_eq!(rates, vec![(0, 1, 0), (1, 0, 0), (2, 0, 1)]);
        let events: Vec<u64> = seconds.iter().map(|s| s.viewer_events).collect();
        assert_eq!(events, vec![2, 1, 0]);
    }
}
