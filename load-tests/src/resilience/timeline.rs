//! What the load generator and the viewer observed, on one clock, and the pure functions that
//! turn it into figures: per-window availability and error counts, per-second rates, and the
//! time to recover. Kept free of I/O so the arithmetic has unit tests.

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;
use uuid::Uuid;

/// Milliseconds since the start of the run, shared by every recorder.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn start() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    pub fn now_ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }
}

/// Which call a request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Bid,
    /// `GET /api/v1/items/{id}` (Redis).
    ItemRead,
    /// `GET /api/v1/items/{id}/bids` (PostgreSQL).
    HistoryRead,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP answer, with the JSON body's `code` (bids) or `error` (errors) when present.
    Answered { status: u16, code: Option<String> },
    /// No HTTP answer: `timeout`, `connect` (refused) or `other` (reset mid-request, …).
    Transport(&'static str),
}

/// One request as the load generator saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub sent_ms: f64,
    pub gateway: usize,
    pub kind: Kind,
    pub item: usize,
    /// The bid's amount (unique per item, so an archived row can be traced back to its bid).
    pub amount_cents: i64,
    pub outcome: Outcome,
    pub latency_ms: f64,
    /// For an accepted bid, the event the gateway says it stored.
    pub event_id: Option<Uuid>,
}

impl Request {
    /// Answered 2xx: the service handled it (an outbid `bid_too_low` counts: it was processed).
    pub fn is_2xx(&self) -> bool {
        matches!(self.outcome, Outcome::Answered { status, .. } if (200..300).contains(&status))
    }

    pub fn is_accepted_bid(&self) -> bool {
        self.kind == Kind::Bid && self.event_id.is_some()
    }

    /// The label the report counts: `200 accepted`, `503 unavailable`, `transport connect`.
    pub fn label(&self) -> String {
        match &self.outcome {
            Outcome::Answered { status, code } => match code {
                Some(code) => format!("{status} {code}"),
                None => status.to_string(),
            },
            Outcome::Transport(kind) => format!("transport {kind}"),
        }
    }

    pub fn is_503(&self) -> bool {
        matches!(self.outcome, Outcome::Answered { status: 503, .. })
    }
}

/// Percentiles of a set of latencies, in milliseconds (0 when empty).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencyMs {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl LatencyMs {
    pub fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let rank = ((values.len() as f64 * q).ceil() as usize).saturating_sub(1);
            values.get(rank).copied().unwrap_or(0.0)
        };
        Self {
            count: values.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: values.last().copied().unwrap_or(0.0),
        }
    }
}

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
        let mut failed = Vec::new();
        let mut unavailable = Vec::new();
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
                failed.push(r.latency_ms);
            }
            if r.is_503() {
                unavailable.push(r.latency_ms);
            }
            stats.accepted += usize::from(r.is_accepted_bid());
        }
        stats.availability = if stats.bids == 0 {
            1.0
        } else {
            stats.answered_2xx as f64 / stats.bids as f64
        };
        stats.failed_latency_ms = LatencyMs::of(failed);
        stats.unavailable_latency_ms = LatencyMs::of(unavailable);
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

/// Bids per second by send second: `(second, answered 2xx, not answered 2xx)`, from 0 to the
/// last second with a bid, empty seconds included so the chart shows gaps as zero.
pub fn bids_per_second(requests: &[Request]) -> Vec<(u64, u64, u64)> {
    let mut seconds: Vec<(u64, u64, u64)> = Vec::new();
    for r in requests.iter().filter(|r| r.kind == Kind::Bid) {
        let s = (r.sent_ms / 1000.0).floor() as usize;
        if seconds.len() <= s {
            seconds.extend((seconds.len()..=s).map(|i| (i as u64, 0, 0)));
        }
        if let Some(slot) = seconds.get_mut(s) {
            if r.is_2xx() {
                slot.1 += 1;
            } else {
                slot.2 += 1;
            }
        }
    }
    seconds
}

/// Events per second from arrival times in ms, over `seconds` seconds.
pub fn events_per_second(arrivals_ms: &[f64], seconds: usize) -> Vec<u64> {
    let mut counts = vec![0; seconds];
    for t in arrivals_ms {
        if let Some(slot) = counts.get_mut((t / 1000.0).floor() as usize) {
            *slot += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bid(sent_ms: f64, gateway: usize, status: Option<u16>, latency_ms: f64) -> Request {
        Request {
            sent_ms,
            gateway,
            kind: Kind::Bid,
            item: 0,
            amount_cents: 100,
            outcome: match status {
                Some(status) => Outcome::Answered {
                    status,
                    code: Some(
                        if status == 200 {
                            "accepted"
                        } else {
                            "unavailable"
                        }
                        .into(),
                    ),
                },
                None => Outcome::Transport("connect"),
            },
            latency_ms,
            event_id: (status == Some(200)).then(Uuid::now_v7),
        }
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
        let first = WindowStats::of(&requests, 0.0, 50.0, Some(0));
        assert_eq!(first.availability, 1.0);
    }

    #[test]
    fn an_empty_window_counts_as_available() {
        assert_eq!(WindowStats::of(&[], 0.0, 10.0, None).availability, 1.0);
    }

    #[test]
    fn recovery_starts_at_the_first_bid_of_a_long_enough_successful_run() {
        let requests = [
            bid(100.0, 0, Some(503), 1.0),
            bid(200.0, 0, Some(200), 1.0),
            bid(300.0, 0, Some(503), 1.0),
            bid(400.0, 0, Some(200), 1.0),
            bid(900.0, 0, Some(200), 1.0),
            bid(1400.0, 0, Some(200), 1.0),
        ];
        assert_eq!(recovery_ms(&requests, 50.0, 1000.0), Some(350.0));
        assert_eq!(recovery_ms(&requests, 50.0, 2000.0), None);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let latency = LatencyMs::of((1..=100).map(f64::from).collect());
        assert_eq!((latency.p50, latency.p99, latency.max), (50.0, 99.0, 100.0));
        assert_eq!(LatencyMs::of(Vec::new()), LatencyMs::default());
    }

    #[test]
    fn per_second_rates_keep_empty_seconds() {
        let requests = [
            bid(100.0, 0, Some(200), 1.0),
            bid(2500.0, 0, Some(503), 1.0),
        ];
        assert_eq!(
            bids_per_second(&requests),
            vec![(0, 1, 0), (1, 0, 0), (2, 0, 1)]
        );
        assert_eq!(events_per_second(&[10.0, 20.0, 1500.0], 3), vec![2, 1, 0]);
    }
}
