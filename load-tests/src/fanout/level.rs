//! One fan-out level: a gateway, ⌈N / per-process⌉ broadcast instances and as many
//! [`viewers`](super::viewers) processes (⌈N / per-client⌉ when that is given), each from its
//! own 127.0.0.x address and the `k`-th to instance `k mod instances`; once all are
//! connected, memory per idle viewer, then bids at a fixed rate, then the clients' reports
//! merged: delivery and latency from just before each POST to each receipt.

use super::FanoutLoad;
use super::viewers::ViewerReport;
use crate::api::{ApiClient, NewItem, in_secs};
use crate::handoff::{Handoff, publish, shares};
use crate::host::rss_kib;
use crate::latency::{Histogram, LatencyMs, RECEIPT_BUCKET};
use crate::open_loop::{Clock, STARTING_CENTS, Target, Workload};
use crate::service::{Service, namespace, run_tag};
use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Most time a level's connections may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(300);
/// Time for the connections to settle (initial snapshots written, buffers drained) before
/// the idle memory is read.
const SETTLE: Duration = Duration::from_secs(2);
/// Time for the last events to arrive before the clients stop listening.
const LAST_EVENTS: Duration = Duration::from_secs(3);

#[derive(Debug, Serialize)]
pub struct FanoutLevel {
    pub viewers: usize,
    pub bids_per_sec: u64,
    pub connected: usize,
    pub broadcast_instances: usize,
    /// Client processes the viewers were spread over (`--per-client`, else as many as
    /// instances).
    pub viewers_processes: usize,
    /// Bids posted, and how many of them were accepted.
    pub bids_posted: usize,
    pub bids_accepted: usize,
    pub delivery_ratio: f64,
    pub resyncs: u64,
    /// All zero when no bid reached a viewer.
    pub latency_ms: LatencyMs,
    /// Resident memory the broadcast instances gained per connected idle viewer.
    pub rss_per_viewer_kib: f64,
    pub connect_secs: f64,
    /// Every receipt's latency, for the `fanout` report's CDF.
    #[serde(skip)]
    pub histogram: Histogram,
}

/// Runs one level: services, client processes, bids, merged reports.
///
/// # Errors
/// When a service or client process cannot run.
pub async fn run(load: &FanoutLoad, viewers: usize) -> anyhow::Result<FanoutLevel> {
    let tag = run_tag("fan");
    let shares = shares(viewers, load.per_process);
    let mut per_instance = vec![0; shares.len()];
    for (k, count) in load.client_shares(viewers).into_iter().enumerate() {
        per_instance[server_of(k, shares.len())] += count;
    }
    let busiest = per_instance.into_iter().max().unwrap_or(0);
    let mut env: Vec<(&str, String)> = load
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    env.extend(namespace(&tag));
    let limit = (busiest + 100).to_string();
    env.extend([
        ("MAX_CONNECTIONS_PER_IP", limit.clone()),
        ("MAX_CONNECTIONS", limit),
        ("IDLE_TIMEOUT_MS", "600000".to_owned()),
    ]);
    let gateway = Service::start("gateway", &load.binaries.gateway_bin, &env).await?;
    let mut broadcasts = Vec::with_capacity(shares.len());
    for _ in &shares {
        broadcasts.push(Service::start("broadcast", &load.binaries.broadcast_bin, &env).await?);
    }
    let item = format!("{tag}-item");
    let api = ApiClient::new(gateway.url())?;
    let new_item = NewItem::new(item.clone(), "fanout", (STARTING_CENTS, 1), in_secs(3_600));
    api.create_item(&new_item?).await?;

    let pids: Vec<u32> = broadcasts.iter().filter_map(Service::pid).collect();
    let servers: Vec<&str> = broadcasts.iter().map(Service::authority).collect();
    let audience =
        Audience::connect(load, viewers, &servers, &item, &tag, || rss_of(&pids)).await?;

    let clock = Clock::start();
    let target = Target {
        gateways: vec![gateway.url().to_owned()],
        items: vec![item],
        rate: u32::try_from(load.rate)?,
        bids_per_read: None,
        bids: Some(load.rate * load.duration_secs),
    };
    let requests = Workload::start(target, clock)?.finish().await;
    // When each accepted bid was posted, by `seq`, on the clock the viewers read.
    let posts: HashMap<u64, u64> = requests
        .iter()
        .filter_map(|r| Some((r.seq?, clock.wall_us(r.sent_ms))))
        .collect();
    let level = audience.level(load, &posts, requests.len()).await?;
    for broadcast in broadcasts {
        broadcast.shutdown().await?;
    }
    gateway.shutdown().await?;
    Ok(level)
}

/// The summed resident memory of `pids`, in KiB.
pub fn rss_of(pids: &[u32]) -> u64 {
    pids.iter().copied().map(rss_kib).sum()
}

/// Which of `servers` the `k`-th viewers process of a level connects to.
fn server_of(k: usize, servers: usize) -> usize {
    k % servers
}

/// A level's viewers processes, connected to their servers ([`server_of`]), and the memory
/// the servers gained for them.
pub struct Audience {
    files: Handoff,
    clients: Vec<tokio::process::Child>,
    viewers: usize,
    servers: usize,
    connected: usize,
    connect_secs: f64,
    /// Server memory (KiB) before the viewers connected and once they were idle.
    rss_before: u64,
    rss_idle: u64,
}

impl Audience {
    /// Starts [`FanoutLoad::client_shares`] viewers processes watching `item` and waits
    /// until all are connected and settled; `rss` reads the servers' memory.
    ///
    /// # Errors
    /// A process cannot start or its viewers do not connect in time.
    pub async fn connect(
        load: &FanoutLoad,
        viewers: usize,
        servers: &[&str],
        item: &str,
        tag: &str,
        rss: impl Fn() -> u64,
    ) -> anyhow::Result<Self> {
        let shares = load.client_shares(viewers);
        anyhow::ensure!(!servers.is_empty(), "no server for the viewers");
        let rss_before = rss();
        let files = Handoff::create(tag)?;
        let started = Instant::now();
        let clients = files.spawn(load.viewers_bin.as_deref(), "viewers", &shares, |k, c| {
            let server = servers[server_of(k, servers.len())];
            c.args(["--server", server, "--item", item]);
            c.args(["--source", &format!("127.0.0.{}", 11 + k)]);
            c.arg("--ready-file").arg(files.file("ready", Some(k)));
            c.arg("--posts-file").arg(files.file("posts", None));
            c.arg("--out").arg(files.file("report", Some(k)));
        })?;
        let connected = files.sum("ready", shares.len(), CONNECT_TIMEOUT).await?;
        let connected = usize::try_from(connected)?;
        let connect_secs = started.elapsed().as_secs_f64();
        tokio::time::sleep(SETTLE).await;
        let rss_idle = rss();
        tracing::info!(viewers, connected, connect_secs, "viewers connected");
        Ok(Self {
            files,
            clients,
            viewers,
            servers: servers.len(),
            connected,
            connect_secs,
            rss_before,
            rss_idle,
        })
    }

    /// Once `posted` events are sent: waits for the last ones, hands the processes `posts`
    /// (when each accepted `seq` was sent, wall-clock µs), merges their reports into the
    /// level's figures.
    ///
    /// # Errors
    /// The posts cannot be written or a report does not come in time.
    pub async fn level(
        mut self,
        load: &FanoutLoad,
        posts: &HashMap<u64, u64>,
        posted: usize,
    ) -> anyhow::Result<FanoutLevel> {
        tokio::time::sleep(LAST_EVENTS).await;
        let posts_file = self.files.file("posts", None);
        publish(&posts_file, &serde_json::to_string(posts)?)?;
        let (processes, timeout) = (self.clients.len(), Duration::from_secs(120));
        let reports: Vec<ViewerReport> = self.files.reports("report", processes, timeout).await?;
        let mut histogram = Histogram::bucketed(RECEIPT_BUCKET);
        reports.iter().for_each(|r| histogram.merge(&r.histogram));
        for client in &mut self.clients {
            let _ = client.wait().await;
        }
        let expected: u64 = reports.iter().map(|r| r.expected).sum();
        let delivered: u64 = reports.iter().map(|r| r.delivered).sum();
        let connected = self.connected;
        let gained = self.rss_idle.saturating_sub(self.rss_before);
        Ok(FanoutLevel {
            viewers: self.viewers,
            bids_per_sec: load.rate,
            connected,
            broadcast_instances: self.servers,
            viewers_processes: processes,
            bids_posted: posted,
            bids_accepted: posts.len(),
            delivery_ratio: delivered as f64 / expected.max(1) as f64,
            resyncs: reports.iter().map(|r| r.resyncs).sum(),
            latency_ms: histogram.latency().unwrap_or_default(),
            rss_per_viewer_kib: gained as f64 / connected.max(1) as f64,
            connect_secs: self.connect_secs,
            histogram,
        })
    }
}
