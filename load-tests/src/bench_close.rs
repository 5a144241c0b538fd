//! `bench-close`: many auctions ending in the same second, watched over WebSockets. Reports
//! the delay from each auction's end time to the moment a viewer receives its `auction_closed`.
//!
//! A gateway (with its closer) and a broadcast instance; `--auctions` items whose end falls in
//! one second, all watched over a few [`Watcher`]s. It passes when every auction closed exactly
//! once, none before its end time, and a viewer saw each close within a minute of the end.

use crate::api::{ApiClient, NewItem};
use crate::bench_result::{BenchResult, Started};
use crate::host::raise_fd_limit;
use crate::latency::{Histogram, LatencyMs, wall_clock_us};
use crate::service::{LiveBinaries, namespace, run_tag, shutdown_all, start_services};
use crate::watcher::Watcher;
use clap::Args;
use serde::Serialize;
use shared::Timestamp;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How long after the end time every close must have reached a viewer.
const CLOSE_BOUND_US: u64 = 60_000_000;

#[derive(Debug, Clone, Args)]
pub struct BenchCloseArgs {
    #[command(flatten)]
    pub binaries: LiveBinaries,
    #[arg(long, default_value_t = 10_000)]
    pub auctions: usize,
    /// Items watched per WebSocket connection.
    #[arg(long, default_value_t = 100)]
    pub per_connection: usize,
    #[arg(long, default_value = "bench/results/close.json")]
    pub out: PathBuf,
}

/// The figures of a bench-close run (its JSON result, in [`BenchResult`]).
#[derive(Debug, Serialize)]
pub struct Closes {
    pub auctions: usize,
    pub closes_seen: usize,
    /// From each auction's end time to a viewer's receipt of its `auction_closed`.
    pub delay_ms: LatencyMs,
}

/// Runs the experiment and writes its JSON result.
///
/// # Errors
/// When a service cannot start or an auction cannot be created.
pub async fn run(args: &BenchCloseArgs) -> anyhow::Result<BenchResult<Closes>> {
    raise_fd_limit();
    let started = Started::now("bench-close");
    let tag = run_tag("close");
    let mut env = namespace(&tag);
    let per_connection = args.per_connection.to_string();
    env.push(("MAX_SUBSCRIPTIONS_PER_CONNECTION", per_connection));
    let binaries = [
        ("gateway", &*args.binaries.gateway_bin),
        ("broadcast", &args.binaries.broadcast_bin),
    ];
    let [gateway, broadcast] = start_services(binaries, &env).await?;
    let api = ApiClient::new(gateway.url())?;

    // Every auction ends in the same second, far enough ahead to create and watch them all.
    let lead_secs = 15 + (args.auctions / 1_000) as u64;
    let end_us = (wall_clock_us() / 1_000_000 + lead_secs) * 1_000_000;
    // Spread within the second so the closer sees them fall due one by one.
    let ends: HashMap<String, u64> = (0..args.auctions)
        .map(|i| (format!("{tag}-{i}"), end_us + (i as u64 * 997) % 1_000_000))
        .collect();
    let item = |(id, &end): (&String, &u64)| {
        let end = Timestamp::from_micros(i64::try_from(end)?);
        Ok(NewItem::new(id.clone(), "closing", (100, 100), end)?)
    };
    api.create_items(ends.iter().map(item).collect::<anyhow::Result<_>>()?)
        .await?;
    tracing::info!(auctions = ends.len(), "auctions created; subscribing");

    let closes: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let items: Vec<String> = ends.keys().cloned().collect();
    let watchers: Vec<Watcher> = items
        .chunks(args.per_connection.max(1))
        .map(|chunk| {
            let closes = Arc::clone(&closes);
            Watcher::start(broadcast.authority(), chunk.to_vec(), move |text| {
                if let Some(item) = closed_item(text) {
                    let at = wall_clock_us();
                    let mut closes = closes.lock().unwrap_or_else(PoisonError::into_inner);
                    closes.push((item, at));
                }
            })
        })
        .collect();
    let closes = || {
        closes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    };
    while closes().len() < ends.len() && wall_clock_us() < end_us + CLOSE_BOUND_US {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for watcher in watchers {
        watcher.stop().await;
    }
    shutdown_all([broadcast, gateway]).await?;
    let (delays, violations) = check(&ends, &closes());
    let figures = Closes {
        auctions: ends.len(),
        closes_seen: delays.count() as usize,
        delay_ms: delays.latency().unwrap_or_default(),
    };
    started.finish(figures, violations, &args.out)
}

/// The item of an `auction_closed` frame.
fn closed_item(text: &str) -> Option<String> {
    if !text.contains("\"type\":\"auction_closed\"") {
        return None;
    }
    let frame: serde_json::Value = serde_json::from_str(text).ok()?;
    Some(frame.get("item_id")?.as_str()?.to_owned())
}

/// The delay of each auction's first close from its end time, and what went wrong: an
/// auction whose close never arrived, one closed before its end, one closed twice.
fn check(ends: &HashMap<String, u64>, closes: &[(String, u64)]) -> (Histogram, Vec<String>) {
    let mut first: HashMap<&str, u64> = HashMap::new();
    let (mut early, mut twice) = (0, 0);
    for (item, at) in closes {
        let Some(&end) = ends.get(item) else {
            continue;
        };
        if first.insert(item, *at).is_some() {
            twice += 1;
        } else if *at < end {
            early += 1;
        }
    }
    let mut delays = Histogram::exact();
    for (item, at) in &first {
        let end = ends.get(*item).copied().unwrap_or(*at);
        delays.record(Duration::from_micros(at.saturating_sub(end)));
    }
    let (missing, n) = (ends.len() - first.len(), ends.len());
    let violations = [
        (
            missing,
            format!("{missing} of {n} auctions had no close seen within a minute"),
        ),
        (
            early,
            format!("{early} auctions closed before their end time"),
        ),
        (
            twice,
            format!("{twice} extra auction_closed events: an auction closes once"),
        ),
    ];
    let violations = violations.into_iter().filter(|(count, _)| *count > 0);
    (delays, violations.map(|(_, v)| v).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_auction_must_close_once_and_not_before_its_end() {
        let ends = HashMap::from([("a".to_owned(), 1_000), ("b".to_owned(), 2_000)]);
        let closes = [("a", 1_500), ("b", 2_250), ("x", 9)].map(|(i, t)| (i.to_owned(), t));
        let (delays, violations) = check(&ends, &closes);
        assert!(violations.is_empty(), "{violations:?}");
        assert_eq!(delays.latency().map(|l| (l.count, l.max)), Some((2, 0.5)));
        let closes = [("a".to_owned(), 900), ("a".to_owned(), 1_500)];
        let (_, violations) = check(&ends, &closes);
        assert_eq!(
            violations.len(),
            3,
            "b missing, a early, a twice: {violations:?}"
        );
    }

    #[test]
    fn only_auction_closed_frames_name_a_closed_item() {
        let closed = r#"{"type":"auction_closed","item_id":"a","seq":3}"#;
        assert_eq!(closed_item(closed), Some("a".to_owned()));
        assert_eq!(closed_item(r#"{"type":"snapshot","item_id":"a"}"#), None);
    }
}
