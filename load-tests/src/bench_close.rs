//! `bench-close`: many auctions ending in the same second, watched over WebSockets. Reports
//! the delay from each auction's end time to the moment a viewer receives its `auction_closed`.
//!
//! It starts a gateway (with its closer) and a broadcast instance, creates `--auctions` items
//! whose end falls in one second, subscribes to all of them over a few WebSocket connections,
//! and waits for every close.

use crate::gateway::Gateway;
use crate::viewers::raise_fd_limit;
use anyhow::{Context, bail};
use clap::Args;
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Args)]
pub struct BenchCloseArgs {
    #[arg(long)]
    pub gateway_bin: PathBuf,
    #[arg(long)]
    pub broadcast_bin: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    pub auctions: usize,
    /// Items watched per WebSocket connection.
    #[arg(long, default_value_t = 100)]
    pub per_connection: usize,
    #[arg(long, default_value = "bench/results/close.json")]
    pub out: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct CloseResult {
    pub experiment: &'static str,
    pub started_at: String,
    pub cores: usize,
    pub auctions: usize,
    pub closes_seen: usize,
    /// From each auction's end time to a viewer's receipt of its `auction_closed`.
    pub delay_ms: Delay,
}

#[derive(Debug, Serialize)]
pub struct Delay {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Runs the experiment and writes its JSON result.
///
/// # Errors
/// When a service cannot start or not every close is seen within a minute of the end.
pub async fn run(args: &BenchCloseArgs) -> anyhow::Result<CloseResult> {
    raise_fd_limit();
    let started_at = chrono::Utc::now().to_rfc3339();
    let tag = format!("close{:010x}", fastrand::u64(..) >> 24);
    let env = vec![
        ("REDIS_KEY_PREFIX", format!("{tag}:")),
        ("SUBJECT_PREFIX", tag.clone()),
        ("ARCHIVE_STREAM", tag.to_uppercase()),
        (
            "MAX_SUBSCRIPTIONS_PER_CONNECTION",
            args.per_connection.to_string(),
        ),
    ];
    let gateway = Gateway::spawn_with_env(&args.gateway_bin, &env).await?;
    let broadcast = Gateway::spawn_with_env(&args.broadcast_bin, &env).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;

    // Every auction ends in the same second, far enough ahead to create and watch them all.
    let lead_secs = 15 + (args.auctions / 1_000) as i64;
    let end_us = (now_us() / 1_000_000 + lead_secs) * 1_000_000;
    let end = chrono::DateTime::from_timestamp_micros(end_us).context("end time")?;
    let items: Vec<String> = (0..args.auctions).map(|i| format!("{tag}-{i}")).collect();
    let created = futures::stream::iter(items.iter().enumerate())
        .map(|(i, id)| {
            let http = http.clone();
            let url = format!("{}/api/v1/items", gateway.url());
            // Spread within the second so the closer sees them fall due one by one.
            let end = end + chrono::Duration::microseconds((i as i64 * 997) % 1_000_000);
            async move {
                let response = http
                    .post(url)
                    .json(
                        &serde_json::json!({"id": id, "name": "closing", "starting_price": 1,
                        "end_time": end.to_rfc3339()}),
                    )
                    .send()
                    .await?;
                anyhow::ensure!(
                    response.status() == 201,
                    "creating {id}: {}",
                    response.status()
                );
                Ok::<_, anyhow::Error>((id.clone(), end.timestamp_micros()))
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let mut ends: HashMap<String, i64> = HashMap::new();
    for result in created {
        let (id, end) = result?;
        ends.insert(id, end);
    }
    tracing::info!(auctions = ends.len(), "auctions created; subscribing");

    let ws_url = format!("{}/ws", broadcast.url().replace("http://", "ws://"));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, i64)>();
    let mut watchers = tokio::task::JoinSet::new();
    for chunk in items.chunks(args.per_connection) {
        let (chunk, url, tx) = (chunk.to_vec(), ws_url.clone(), tx.clone());
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .context("connecting a viewer")?;
        watchers.spawn(async move {
            for id in &chunk {
                let frame = serde_json::json!({"type": "subscribe", "item_id": id}).to_string();
                ws.send(tokio_tungstenite::tungstenite::Message::text(frame))
                    .await
                    .ok()?;
            }
            let mut left = chunk.len();
            while left > 0 {
                let message = ws.next().await?.ok()?;
                if let tokio_tungstenite::tungstenite::Message::Text(text) = message
                    && text.contains("\"type\":\"auction_closed\"")
                {
                    let at = now_us();
                    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
                    let item = value["item_id"].as_str()?.to_owned();
                    tx.send((item, at)).ok()?;
                    left -= 1;
                }
            }
            Some(())
        });
    }
    drop(tx);

    let deadline =
        Instant::now() + Duration::from_micros((end_us + 60_000_000 - now_us()).max(0) as u64);
    let mut delays = Vec::with_capacity(ends.len());
    while delays.len() < ends.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some((item, at))) => {
                if let Some(end) = ends.get(&item) {
                    delays.push((at - end) as f64 / 1000.0);
                }
            }
            _ => break,
        }
    }
    watchers.abort_all();
    broadcast.shutdown().await?;
    gateway.shutdown().await?;
    if delays.len() < ends.len() {
        bail!(
            "only {} of {} closes seen within a minute of the end",
            delays.len(),
            ends.len()
        );
    }
    delays.sort_by(f64::total_cmp);
    let at =
        |q: f64| delays[((q * delays.len() as f64).ceil() as usize).clamp(1, delays.len()) - 1];
    let result = CloseResult {
        experiment: "bench-close",
        started_at,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        auctions: ends.len(),
        closes_seen: delays.len(),
        delay_ms: Delay {
            p50: at(0.5),
            p99: at(0.99),
            max: delays.last().copied().unwrap_or(0.0),
        },
    };
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&result)?)?;
    Ok(result)
}

pub fn summary(r: &CloseResult) -> String {
    format!(
        "bench-close ({} cores): {} auctions ending within one second, {} closes seen; end → viewer p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        r.cores, r.auctions, r.closes_seen, r.delay_ms.p50, r.delay_ms.p99, r.delay_ms.max
    )
}
