//! `bench-fanout`: N WebSocket viewers on one item while bids arrive at a steady rate.
//!
//! Per level it starts a gateway and ⌈N / per-process⌉ broadcast instances (one process may
//! hold ~20,000 sockets here), the same number of `viewers` client processes, each from its own
//! 127.0.0.x source address, waits until every viewer is connected, measures the broadcast
//! instances' resident memory per idle viewer, posts bids for `--duration-secs`, and merges the
//! clients' reports: delivery ratio and latency from just before each POST to each receipt.

use crate::gateway::Gateway;
use crate::latency::{LatencyMs, wall_clock_us};
use crate::viewers::{BUCKETS, ViewerReport, raise_fd_limit};
use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Args)]
pub struct BenchFanoutArgs {
    #[arg(long)]
    pub gateway_bin: PathBuf,
    #[arg(long)]
    pub broadcast_bin: PathBuf,
    /// Viewer counts, one level each.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,50000")]
    pub viewers: Vec<usize>,
    /// Most viewers per broadcast instance and per client process.
    #[arg(long, default_value_t = 12_500)]
    pub per_process: usize,
    /// Bids per second while viewers watch (a busy live auction; every bid is one frame to
    /// every viewer, so 2/s at 50,000 viewers is 100,000 frames/s).
    #[arg(long, default_value_t = 2)]
    pub rate: u64,
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    #[arg(long, default_value = "bench/results/fanout.json")]
    pub out: PathBuf,
    /// The `load-tests` binary that runs the `viewers` client processes (default: this program;
    /// tests, whose own executable is the test harness, point it at the built binary).
    #[arg(long)]
    pub viewers_bin: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct FanoutResult {
    pub experiment: &'static str,
    pub started_at: String,
    pub cores: usize,
    pub levels: Vec<FanoutLevel>,
}

#[derive(Debug, Serialize)]
pub struct FanoutLevel {
    pub viewers: usize,
    pub bids_per_sec: u64,
    pub connected: usize,
    pub broadcast_instances: usize,
    pub bids_accepted: usize,
    pub delivery_ratio: f64,
    pub resyncs: u64,
    /// All zero when no bid reached a viewer.
    pub latency_ms: LatencyMs,
    /// Resident memory the broadcast instances gained per connected idle viewer.
    pub rss_per_viewer_kib: f64,
    pub connect_secs: f64,
    /// Merged latency histogram ([`crate::viewers::BUCKET_US`] per bucket), for the `fanout`
    /// experiment's CDF.
    #[serde(skip)]
    pub histogram: Vec<u64>,
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The text of `path` once some process has written it (non-empty), polled every 100 ms: how
/// an orchestrator hears from the client processes it started.
///
/// # Errors
/// When nothing was written within `timeout`.
pub(crate) async fn wait_for_file(path: &Path, timeout: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.is_empty()
        {
            return Ok(text);
        }
        if Instant::now() > deadline {
            bail!("{} not written within {timeout:?}", path.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs one level: services, client processes, bids, merged reports.
///
/// # Errors
/// When a service or client process cannot run.
pub async fn level(args: &BenchFanoutArgs, viewers: usize) -> anyhow::Result<FanoutLevel> {
    let tag = format!("fan{:010x}", fastrand::u64(..) >> 24);
    let processes = viewers.div_ceil(args.per_process);
    let per = viewers.div_ceil(processes);
    let env = vec![
        ("REDIS_KEY_PREFIX", format!("{tag}:")),
        ("SUBJECT_PREFIX", tag.clone()),
        ("ARCHIVE_STREAM", tag.to_uppercase()),
        ("BID_RATE_PER_USER", "0".to_owned()),
        ("MAX_CONNECTIONS_PER_IP", (per + 100).to_string()),
        ("MAX_CONNECTIONS", (per + 100).to_string()),
        ("IDLE_TIMEOUT_MS", "600000".to_owned()),
    ];
    let gateway = Gateway::spawn_with_env(&args.gateway_bin, &env).await?;
    let mut broadcasts = Vec::new();
    for _ in 0..processes {
        broadcasts.push(Gateway::spawn_with_env(&args.broadcast_bin, &env).await?);
    }
    let http = reqwest::Client::new();
    let item = format!("{tag}-item");
    let end = chrono::Utc::now() + chrono::Duration::hours(1);
    let response = http
        .post(format!("{}/api/v1/items", gateway.url()))
        .json(
            &serde_json::json!({"id": item, "name": "fanout", "starting_price": 1,
            "min_increment": 0.01, "end_time": end.to_rfc3339()}),
        )
        .send()
        .await?;
    if response.status() != 201 {
        bail!("creating the item: {}", response.text().await?);
    }

    let before: u64 = broadcasts
        .iter()
        .filter_map(Gateway::pid)
        .map(rss_kib)
        .sum();
    let dir = std::env::temp_dir().join(&tag);
    std::fs::create_dir_all(&dir)?;
    let me = match &args.viewers_bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe().context("finding the load-tests binary")?,
    };
    let posts_file = dir.join("posts.json");
    let mut clients = Vec::new();
    let started = Instant::now();
    for (k, broadcast) in broadcasts.iter().enumerate() {
        let server = broadcast.url().trim_start_matches("http://").to_owned();
        let count = per.min(viewers - k * per);
        clients.push(
            tokio::process::Command::new(&me)
                .args(["viewers", "--server", &server, "--item", &item])
                .args(["--count", &count.to_string()])
                .args(["--source", &format!("127.0.0.{}", 11 + k)])
                .arg("--ready-file")
                .arg(dir.join(format!("ready-{k}")))
                .arg("--posts-file")
                .arg(&posts_file)
                .arg("--out")
                .arg(dir.join(format!("report-{k}.json")))
                .kill_on_drop(true)
                .spawn()
                .context("starting a viewers process")?,
        );
    }
    let mut connected = 0;
    for k in 0..clients.len() {
        connected += wait_for_file(&dir.join(format!("ready-{k}")), Duration::from_secs(300))
            .await?
            .trim()
            .parse::<usize>()
            .unwrap_or(0);
    }
    let connect_secs = started.elapsed().as_secs_f64();
    // Let the connections settle (initial snapshots written, buffers drained).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle: u64 = broadcasts
        .iter()
        .filter_map(Gateway::pid)
        .map(rss_kib)
        .sum();
    tracing::info!(
        viewers,
        connected,
        connect_secs,
        "viewers connected; bidding"
    );

    let posts: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let mut bids = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / args.rate.max(1)));
    for n in 0..args.rate * args.duration_secs {
        tick.tick().await;
        let (http, posts) = (http.clone(), posts.clone());
        let url = format!("{}/api/v1/items/{item}/bid", gateway.url());
        bids.spawn(async move {
            let cents = 100 + n;
            let posted = wall_clock_us();
            let reply: serde_json::Value = http
                .post(url)
                .json(&serde_json::json!({"user_id": format!("u{n}"),
                    "amount": format!("{}.{:02}", cents / 100, cents % 100)}))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let seq = reply["seq"]
                .as_u64()
                .filter(|_| reply["code"] == "accepted")?;
            posts.lock().ok()?.insert(seq.to_string(), posted);
            Some(())
        });
    }
    while bids.join_next().await.is_some() {}
    // Time for the last events to arrive before the clients stop listening.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let posts = posts.lock().map(|p| p.clone()).unwrap_or_default();
    std::fs::write(&posts_file, serde_json::to_vec(&posts)?)?;

    let mut histogram = vec![0u64; BUCKETS];
    let (mut delivered, mut expected, mut resyncs) = (0, 0, 0);
    for k in 0..clients.len() {
        let text = wait_for_file(
            &dir.join(format!("report-{k}.json")),
            Duration::from_secs(120),
        )
        .await?;
        let report: ViewerReport = serde_json::from_str(&text)?;
        delivered += report.delivered;
        expected += report.expected;
        resyncs += report.resyncs;
        for (bucket, n) in report.histogram {
            histogram[bucket] += n;
        }
    }
    for mut client in clients {
        let _ = client.wait().await;
    }
    for broadcast in broadcasts {
        broadcast.shutdown().await?;
    }
    gateway.shutdown().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(FanoutLevel {
        viewers,
        bids_per_sec: args.rate,
        connected,
        broadcast_instances: processes,
        bids_accepted: posts.len(),
        delivery_ratio: if expected > 0 {
            delivered as f64 / expected as f64
        } else {
            0.0
        },
        resyncs,
        latency_ms: LatencyMs::from_histogram(&histogram).unwrap_or(LatencyMs {
            p50: 0.0,
            p99: 0.0,
            p999: 0.0,
            max: 0.0,
        }),
        rss_per_viewer_kib: if connected > 0 {
            idle.saturating_sub(before) as f64 / connected as f64
        } else {
            0.0
        },
        connect_secs,
        histogram,
    })
}

/// Runs every level and writes the JSON result.
///
/// # Errors
/// When a service or client process cannot run.
pub async fn run(args: &BenchFanoutArgs) -> anyhow::Result<FanoutResult> {
    raise_fd_limit();
    let started_at = chrono::Utc::now().to_rfc3339();
    let mut levels = Vec::new();
    for &viewers in &args.viewers {
        levels.push(level(args, viewers).await?);
    }
    let result = FanoutResult {
        experiment: "bench-fanout",
        started_at,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        levels,
    };
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&result)?)?;
    Ok(result)
}

pub fn summary(result: &FanoutResult) -> String {
    let mut text = format!("bench-fanout ({} cores):", result.cores);
    for l in &result.levels {
        text.push_str(&format!(
            "\n  {:>6} viewers ({} connected, {} instances): {} bids, delivery {:.4}, resyncs {}, latency p50 {:.1} ms p99 {:.1} ms p999 {:.1} ms max {:.1} ms, {:.1} KiB/viewer",
            l.viewers, l.connected, l.broadcast_instances, l.bids_accepted, l.delivery_ratio,
            l.resyncs, l.latency_ms.p50, l.latency_ms.p99, l.latency_ms.p999, l.latency_ms.max,
            l.rss_per_viewer_kib
        ));
    }
    text
}
