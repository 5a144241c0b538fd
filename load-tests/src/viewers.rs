//! `viewers`: one client process of `bench-fanout`. It opens `--count` WebSocket viewers on
//! one item from one source address, records when each `bid_placed` frame arrives, and once the
//! orchestrator writes the POST times (`--posts-file`), reports delivery and latency.
//!
//! One process holds at most ~20,000 sockets here, so large runs use several of these, each
//! from its own 127.0.0.x source address (a source address has ~28,000 ephemeral ports).

use crate::latency::wall_clock_us;
use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

#[derive(Debug, Clone, Args)]
pub struct ViewersArgs {
    /// Broadcast address, e.g. 127.0.0.1:8081.
    #[arg(long)]
    pub server: SocketAddr,
    #[arg(long)]
    pub item: String,
    #[arg(long)]
    pub count: usize,
    /// Source address of every connection, e.g. 127.0.0.11.
    #[arg(long)]
    pub source: IpAddr,
    /// Written (with the number connected) once every viewer is connected.
    #[arg(long)]
    pub ready_file: PathBuf,
    /// JSON `{seq: post_time_us}` the orchestrator writes when the bids are done.
    #[arg(long)]
    pub posts_file: PathBuf,
    /// Where this process writes its [`ViewerReport`].
    #[arg(long)]
    pub out: PathBuf,
}

/// Microsecond latency histogram: bucket `i` counts latencies in `[i*100, (i+1)*100)` µs; the
/// last bucket holds everything from 10 s on.
pub const BUCKET_US: u64 = 100;
pub const BUCKETS: usize = 100_000;

#[derive(Debug, Serialize, Deserialize)]
pub struct ViewerReport {
    pub connected: usize,
    pub failed: usize,
    /// Distinct accepted bids received, summed over viewers.
    pub delivered: u64,
    /// Accepted bids times connected viewers.
    pub expected: u64,
    /// Snapshots received after the first (conflations or resyncs).
    pub resyncs: u64,
    /// Sparse histogram: (bucket, count).
    pub histogram: Vec<(usize, u64)>,
}

/// Every viewer's `(seq, received µs)` pairs, gathered when the viewers stop.
type Receipts = Arc<std::sync::Mutex<Vec<Vec<(u64, u64)>>>>;

/// `seq` of a `bid_placed` frame, found without decoding the whole event.
fn bid_seq(text: &str) -> Option<u64> {
    if !text.contains("\"type\":\"bid_placed\"") {
        return None;
    }
    let rest = &text[text.find("\"seq\":")? + 6..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Raises this process's open-file limit to its hard limit.
pub fn raise_fd_limit() {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    if let Err(e) = rustix::process::setrlimit(rustix::process::Resource::Nofile, raised) {
        tracing::warn!(error = %e, "cannot raise the open-file limit");
    }
}

/// Runs one client process to the end.
///
/// # Errors
/// When the files cannot be read or written.
pub async fn run(args: &ViewersArgs) -> anyhow::Result<()> {
    raise_fd_limit();
    let url = format!("ws://{}/ws?item_id={}", args.server, args.item);
    let receipts: Receipts = Arc::default();
    let resyncs = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let connecting = Arc::new(Semaphore::new(256));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let (connected_tx, mut connected_rx) = tokio::sync::mpsc::channel::<bool>(args.count.max(1));
    for _ in 0..args.count {
        let (url, receipts, resyncs, failed) = (
            url.clone(),
            receipts.clone(),
            resyncs.clone(),
            failed.clone(),
        );
        let (connecting, connected_tx, stop) =
            (connecting.clone(), connected_tx.clone(), stop.clone());
        let (source, server) = (args.source, args.server);
        tasks.spawn(async move {
            let permit = connecting.acquire_owned().await;
            let socket = match source {
                IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
            };
            let stream = async {
                let socket = socket?;
                socket.bind(SocketAddr::new(source, 0))?;
                let stream = socket.connect(server).await?;
                // Small buffers: the default 128 KiB per socket would make the load generator,
                // not the service, what runs out of memory and cache.
                let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                    .read_buffer_size(4 * 1024)
                    .write_buffer_size(0);
                let (ws, _) =
                    tokio_tungstenite::client_async_with_config(url, stream, Some(config))
                        .await
                        .map_err(std::io::Error::other)?;
                Ok::<_, std::io::Error>(ws)
            }
            .await;
            drop(permit);
            let mut ws = match stream {
                Ok(ws) => ws,
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    let _ = connected_tx.send(false).await;
                    return;
                }
            };
            let _ = connected_tx.send(true).await;
            let mut mine = Vec::new();
            let mut snapshots = 0u64;
            // Registered once: every viewer shares `stop`, and creating its future anew for
            // each frame took the token's waiter-list lock twice per frame per viewer.
            let mut stopped = std::pin::pin!(stop.cancelled());
            loop {
                tokio::select! {
                    message = ws.next() => match message {
                        Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) => {
                            if let Some(seq) = bid_seq(&text) {
                                mine.push((seq, wall_clock_us()));
                            } else if text.contains("\"type\":\"snapshot\"") {
                                snapshots += 1;
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                    () = &mut stopped => break,
                }
            }
            resyncs.fetch_add(snapshots.saturating_sub(1), Ordering::Relaxed);
            if let Ok(mut all) = receipts.lock() {
                all.push(mine);
            }
        });
    }
    drop(connected_tx);
    let mut connected = 0;
    for _ in 0..args.count {
        if connected_rx.recv().await == Some(true) {
            connected += 1;
        }
    }
    std::fs::write(&args.ready_file, connected.to_string())?;
    tracing::info!(connected, "viewers connected");

    // Wait for the orchestrator's POST times.
    let posts: HashMap<u64, u64> = loop {
        if let Ok(text) = std::fs::read_to_string(&args.posts_file)
            && let Ok(posts) = serde_json::from_str::<HashMap<String, u64>>(&text)
        {
            break posts
                .into_iter()
                .filter_map(|(k, v)| k.parse().ok().map(|k| (k, v)))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop.cancel();
    while tasks.join_next().await.is_some() {}

    let mut histogram = vec![0u64; BUCKETS];
    let mut delivered = 0;
    let all = receipts
        .lock()
        .map(|mut r| std::mem::take(&mut *r))
        .unwrap_or_default();
    for viewer in &all {
        let mut seen = std::collections::HashSet::new();
        for (seq, at) in viewer {
            if let Some(posted) = posts.get(seq)
                && seen.insert(*seq)
            {
                delivered += 1;
                let bucket = (at.saturating_sub(*posted) / BUCKET_US) as usize;
                histogram[bucket.min(BUCKETS - 1)] += 1;
            }
        }
    }
    let report = ViewerReport {
        connected,
        failed: failed.load(Ordering::Relaxed) as usize,
        delivered,
        expected: posts.len() as u64 * connected as u64,
        resyncs: resyncs.load(Ordering::Relaxed),
        histogram: histogram
            .into_iter()
            .enumerate()
            .filter(|(_, n)| *n > 0)
            .collect(),
    };
    std::fs::write(&args.out, serde_json::to_vec(&report)?).context("writing the report")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bid_seq_is_read_from_bid_frames_only() {
        assert_eq!(
            bid_seq(r#"{"type":"bid_placed","item_id":"x","seq":42,"amount":1}"#),
            Some(42)
        );
        assert_eq!(bid_seq(r#"{"type":"snapshot","seq":42}"#), None);
    }
}
