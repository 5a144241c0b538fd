//! `bench-fanout-nchan`: bench-fanout's level against nginx + nchan (Debian's
//! `libnginx-mod-nchan`, one worker) in the same run, with the same [`viewers`](super::viewers)
//! processes and layout, so the broadcast service's latency and memory read as a ratio of a
//! well-known pub/sub server's (issue 18).
//!
//! nchan's peer of a bid is its publisher endpoint: each event (a real `bid_placed` JSON, as
//! long as the gateway's) is POSTed to `/pub?item_id=X` and nchan writes it to every WebSocket
//! subscribed at `/ws?item_id=X`, the broadcast service's own URL, so the viewers cannot tell
//! the two apart. Latency runs from just before the POST (the bid's POST on our side, which
//! also pays for the gateway, Redis and NATS) to each receipt. nginx runs from a throwaway
//! config in a temp dir on a free loopback port, started and stopped as a [`Service`] (its
//! config answers `/ready`) around each level.
//! The order is ours, nchan, nchan, ours (`--pairs` times), and the ratio is of the medians.
//!
//! Each level then runs `fanout-floor` with one writer per core on the same viewers and
//! events: what any server could reach on this machine ([`FloorReference`]). Its ratio to
//! nchan says whether the goal is reachable here at all.

use super::FanoutLoad;
use super::level::{self, Audience, FanoutLevel, rss_of};
use crate::bench_result::{BenchResult, Started};
use crate::fanout_floor::frame::{bid_placed_frame_bytes, sample_bid_placed};
use crate::fanout_floor::{self, FanoutFloorArgs, FloorLevel};
use crate::figures::{median, ratio};
use crate::handoff::each_level;
use crate::latency::wall_clock_us;
use crate::service::{Service, free_loopback_addr, run_tag};
use anyhow::{Context, bail};
use shared::ItemId;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Most viewers one nginx worker is given: its sockets must stay under the machine's open
/// files per process (about 20,000).
pub const MAX_NCHAN_VIEWERS: usize = 18_000;
/// What issue 18 asks: the broadcast service's p99 at most this fraction of nchan's.
pub const GOAL_RATIO: f64 = 0.5;

/// Flags of `load-tests bench-fanout-nchan`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchFanoutNchanArgs {
    #[command(flatten)]
    pub load: FanoutLoad,
    /// nginx with the nchan module available (`infrastructure/local/nchan.sh install`).
    #[arg(long, default_value = "/usr/sbin/nginx")]
    pub nginx_bin: PathBuf,
    #[arg(long, default_value = "/usr/lib/nginx/modules/ngx_nchan_module.so")]
    pub nchan_module: PathBuf,
    /// Ours-nchan-nchan-ours rounds per level.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=5))]
    pub pairs: u32,
    #[arg(long, default_value = "bench/results/fanout-nchan.json")]
    pub out: PathBuf,
}

/// The JSON result; it fails when a run of either side missed a viewer or an event.
pub type NchanResult = BenchResult<Nchan>;

/// The figures of the run.
#[derive(Debug, serde::Serialize)]
pub struct Nchan {
    pub bids_per_sec: u64,
    pub duration_secs: u64,
    pub goal_ratio: f64,
    pub levels: Vec<NchanComparison>,
}

/// One viewer count: every run of both, the medians, the ratios (ours / nchan).
#[derive(Debug, serde::Serialize)]
pub struct NchanComparison {
    pub viewers: usize,
    pub broadcast_p99_ms: f64,
    pub nchan_p99_ms: f64,
    pub p99_ratio: f64,
    pub broadcast_p50_ms: f64,
    pub nchan_p50_ms: f64,
    pub broadcast_rss_per_viewer_kib: f64,
    pub nchan_rss_per_viewer_kib: f64,
    /// What any server reaches on the same viewers and events.
    pub floor: FloorReference,
    pub broadcast_runs: Vec<FanoutLevel>,
    pub nchan_runs: Vec<FanoutLevel>,
}

/// `fanout-floor` with one writer process per core on the same viewers and events: about the
/// least any server reaches on this machine, against nchan. Optimistic: it has one reader
/// process per writer, where ours and nchan share the level's viewers processes.
#[derive(Debug, serde::Serialize)]
pub struct FloorReference {
    pub p99_ms: f64,
    /// `p99_ms / nchan_p99_ms`.
    pub ratio_to_nchan: f64,
    /// The goal asked for less than the floor reached in this run.
    pub goal_below_floor: bool,
    pub run: FloorLevel,
}

impl FloorReference {
    fn new(run: FloorLevel, nchan_p99_ms: f64) -> Self {
        let ratio_to_nchan = ratio(run.latency_ms.p99, nchan_p99_ms).unwrap_or(0.0);
        Self {
            p99_ms: run.latency_ms.p99,
            ratio_to_nchan,
            goal_below_floor: GOAL_RATIO < ratio_to_nchan,
            run,
        }
    }
}

fn median_of(runs: &[FanoutLevel], value: impl Fn(&FanoutLevel) -> f64) -> f64 {
    median(runs.iter().map(value).collect())
}

impl NchanComparison {
    fn new(
        viewers: usize,
        broadcast_runs: Vec<FanoutLevel>,
        nchan_runs: Vec<FanoutLevel>,
        floor_run: FloorLevel,
    ) -> Self {
        let p99 = |l: &FanoutLevel| l.latency_ms.p99;
        let p50 = |l: &FanoutLevel| l.latency_ms.p50;
        let rss = |l: &FanoutLevel| l.rss_per_viewer_kib;
        let (ours, theirs) = (median_of(&broadcast_runs, p99), median_of(&nchan_runs, p99));
        Self {
            viewers,
            broadcast_p99_ms: ours,
            nchan_p99_ms: theirs,
            p99_ratio: ratio(ours, theirs).unwrap_or(0.0),
            broadcast_p50_ms: median_of(&broadcast_runs, p50),
            nchan_p50_ms: median_of(&nchan_runs, p50),
            broadcast_rss_per_viewer_kib: median_of(&broadcast_runs, rss),
            nchan_rss_per_viewer_kib: median_of(&nchan_runs, rss),
            broadcast_runs,
            nchan_runs,
            floor: FloorReference::new(floor_run, theirs),
        }
    }

    /// The runs that missed a viewer or an event, in words.
    fn violations(&self) -> Vec<String> {
        let runs = (self.broadcast_runs.iter().map(|l| ("broadcast", l)))
            .chain(self.nchan_runs.iter().map(|l| ("nchan", l)));
        // As bench-fanout's check: a viewer conflated to a fresh snapshot (a resync) misses
        // the events it covers by design.
        let mut violations: Vec<String> = runs
            .filter(|(_, l)| l.connected != l.viewers || (l.delivery_ratio < 1.0 && l.resyncs == 0))
            .map(|(side, l)| {
                let (n, connected, delivery) = (l.viewers, l.connected, l.delivery_ratio);
                format!("{n} viewers, {side}: {connected} connected, delivery {delivery:.6}")
            })
            .collect();
        violations.extend(self.floor.run.violations());
        violations
    }
}

/// Runs every level against both servers and writes the result.
///
/// # Errors
/// A level asks one nginx worker for too many sockets, a server or client cannot run, or the
/// file cannot be written.
pub async fn run(args: &BenchFanoutNchanArgs) -> anyhow::Result<NchanResult> {
    if let Some(&too_many) = args.load.viewers.iter().find(|&&n| n > MAX_NCHAN_VIEWERS) {
        bail!("{too_many} viewers: one nginx worker takes at most {MAX_NCHAN_VIEWERS} sockets");
    }
    let started = Started::now("bench-fanout-nchan");
    let levels = each_level("nchan", &args.load.viewers, async |viewers| {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..args.pairs {
            ours.push(level::run(&args.load, viewers).await?);
            theirs.push(nchan_level(args, viewers).await?);
            theirs.push(nchan_level(args, viewers).await?);
            ours.push(level::run(&args.load, viewers).await?);
        }
        let floor = fanout_floor::level(&floor_args(&args.load, viewers), viewers).await?;
        let level = NchanComparison::new(viewers, ours, theirs, floor);
        tracing::info!(
            viewers,
            ours = level.broadcast_p99_ms,
            nchan = level.nchan_p99_ms,
            ratio = level.p99_ratio,
            floor = level.floor.p99_ms,
            floor_ratio = level.floor.ratio_to_nchan,
            "nchan level"
        );
        anyhow::Ok(level)
    })
    .await?;
    let violations = levels
        .iter()
        .flat_map(NchanComparison::violations)
        .collect();
    let figures = Nchan {
        bids_per_sec: args.load.rate,
        duration_secs: args.load.duration_secs,
        goal_ratio: GOAL_RATIO,
        levels,
    };
    started.finish(figures, violations, &args.out)
}

/// `fanout-floor` on `viewers` sockets with one writer (and one reader) process per core, at
/// the level's events and pace.
fn floor_args(load: &FanoutLoad, viewers: usize) -> FanoutFloorArgs {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    FanoutFloorArgs {
        viewers: vec![viewers],
        per_process: viewers.div_ceil(cores).max(1),
        rounds: u32::try_from(load.rate * load.duration_secs).unwrap_or(u32::MAX),
        interval_ms: 1_000 / load.rate.max(1),
        frame_bytes: bid_placed_frame_bytes(),
        out: PathBuf::new(),
        floor_bin: load.viewers_bin.clone(),
    }
}

/// nginx + nchan on a free port with one worker, from a config in its temp dir; stopped
/// like any service (its config answers `/ready`).
struct Nginx {
    service: Service,
    _dir: tempfile::TempDir,
}

impl Nginx {
    async fn start(args: &BenchFanoutNchanArgs, viewers: usize) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("nchan-").tempdir()?;
        let addr = free_loopback_addr()?;
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(
            &conf_path,
            config(dir.path(), &args.nchan_module, addr, viewers),
        )?;
        let prefix = dir.path().display().to_string();
        let log = dir.path().join("error.log").display().to_string();
        let conf = conf_path.display().to_string();
        let flags = ["-p", &prefix, "-e", &log, "-c", &conf];
        let service = Service::start_at("nginx", &args.nginx_bin, addr, &flags, &[]).await?;
        Ok(Self { service, _dir: dir })
    }

    /// The master's pid and its worker's (nginx forks the worker).
    fn pids(&self) -> Vec<u32> {
        let Some(master) = self.service.pid() else {
            return Vec::new();
        };
        let children = format!("/proc/{master}/task/{master}/children");
        let workers = std::fs::read_to_string(children).unwrap_or_default();
        std::iter::once(master)
            .chain(workers.split_whitespace().filter_map(|p| p.parse().ok()))
            .collect()
    }
}

/// The throwaway config: one worker with room for `viewers` sockets, a WebSocket subscriber
/// at the broadcast service's `/ws?item_id=` and a publisher at `/pub?item_id=`.
fn config(dir: &Path, module: &Path, addr: SocketAddr, viewers: usize) -> String {
    let dir = dir.display();
    let files = viewers + 2_000;
    format!(
        "load_module {module};
worker_processes 1;
worker_rlimit_nofile {files};
pid {dir}/nginx.pid;
daemon off;
events {{ worker_connections {files}; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {{
    listen {addr} backlog=4096;
    location = /ws {{ nchan_subscriber websocket; nchan_channel_id $arg_item_id; }}
    location = /pub {{ nchan_publisher; nchan_channel_id $arg_item_id; }}
    location = /ready {{ return 200; }}
  }}
}}
",
        module = module.display()
    )
}

/// One level against nchan: nginx, the viewers processes, `rate × duration` events POSTed
/// to the publisher at the bids' pace, the reports merged.
async fn nchan_level(args: &BenchFanoutNchanArgs, viewers: usize) -> anyhow::Result<FanoutLevel> {
    let load = &args.load;
    let nginx = Nginx::start(args, viewers).await?;
    let tag = run_tag("nch");
    let item = format!("{tag}-item");
    let measured = async {
        let pids = nginx.pids();
        let servers = [nginx.service.authority()];
        let audience =
            Audience::connect(load, viewers, &servers, &item, &tag, || rss_of(&pids)).await?;
        let posts = publish_events(load, nginx.service.authority(), &item).await?;
        audience.level(load, &posts, posts.len()).await
    }
    .await;
    nginx.service.stop().await;
    measured
}

/// POSTs `rate × duration` `bid_placed` events to nchan's publisher at `rate` per second;
/// when each `seq` was sent (wall-clock µs, just before its POST).
async fn publish_events(
    load: &FanoutLoad,
    addr: &str,
    item: &str,
) -> anyhow::Result<HashMap<u64, u64>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = format!("http://{addr}/pub?item_id={item}");
    let item_id = ItemId::parse(item).context("the run's item id")?;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / load.rate.max(1)));
    let mut posts = HashMap::new();
    for seq in 1..=load.rate * load.duration_secs {
        tick.tick().await;
        let body = sample_bid_placed(item_id.clone(), seq)
            .to_json()
            .context("encoding an event")?;
        let sent = wall_clock_us();
        let answer = http.post(&url).body(body).send().await;
        match answer {
            Ok(r) if r.status().is_success() => {
                posts.insert(seq, sent);
            }
            Ok(r) => tracing::warn!(status = %r.status(), "nchan refused an event"),
            Err(e) => tracing::warn!(error = %e, "nchan publish failed"),
        }
    }
    Ok(posts)
}
