//! `bench-cluster`: the same loads on one Redis and one NATS server, and on the local cluster
//! (3+3 Redis Cluster, 3 NATS nodes with R3 JetStream), in one run: contention's hot-item
//! level (every bid on one item, so one Redis master), the same bidders over many items
//! (spread over every master; bids only), and a fan-out level. With durable accept on the cluster too
//! (`WAIT 1` per write). Each topology gets one gateway started here (pre-filter off, so every
//! bid reaches Redis); fan-out starts its own gateway and broadcast instances on the topology.
//!
//! Two cores run everything here (Redis nodes, NATS nodes, services, load), so the ratios
//! measure the cluster's overhead per request on one machine, not its scaling.

use crate::api::{ApiClient, NewItem, in_secs};
use crate::bench_result::{BenchResult, Started};
use crate::contention::hot_item;
use crate::fanout::{FanoutLoad, level};
use crate::figures::{ratio, round_to};
use crate::goose_run::RequestStats;
use crate::host::{cores, cpu_secs};
use crate::latency::LatencyMs;
use crate::service::{LOADED_REDIS_TIMEOUT_MS, LiveBinaries, Service, Stores, namespace, run_tag};
use crate::verdict::prefixed;
use anyhow::Context;
use serde::Serialize;
use std::path::PathBuf;
use testkit::cluster::LocalCluster;
use testkit::{NatsServer, RedisServer};

/// Flags of `load-tests bench-cluster`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchClusterArgs {
    /// Directory holding the api-gateway and broadcast-service binaries.
    #[arg(long, default_value = "target/release")]
    pub bin_dir: PathBuf,
    /// The script that starts the cluster.
    #[arg(long, default_value = "infrastructure/local/cluster.sh")]
    pub script: PathBuf,
    /// Concurrent bidders of the hot-item and the many-items loads.
    #[arg(long, default_value_t = 64)]
    pub users: u32,
    /// Items of the many-items load.
    #[arg(long, default_value_t = 200)]
    pub items: usize,
    /// Seconds each write load runs.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Viewers of the fan-out level (one broadcast instance and client process per 12,500).
    #[arg(long, default_value_t = 10_000)]
    pub viewers: usize,
    /// Where to write the JSON result.
    #[arg(long, default_value = "bench/results/cluster-bench.json")]
    pub out: PathBuf,
}

/// One write load's figures.
#[derive(Debug, Clone, Serialize)]
pub struct WriteFigures {
    pub requests: u64,
    pub bids_per_sec: f64,
    pub accepted_per_sec: f64,
    pub latency_ms: Option<LatencyMs>,
    /// Where the time went: cores each part used during the load (CPU seconds per second).
    pub cores_used: CoresUsed,
    pub violations: Vec<String>,
}

impl WriteFigures {
    fn new(bids: &RequestStats, accepted: f64, cores: CoresUsed, violations: Vec<String>) -> Self {
        Self {
            requests: bids.requests,
            bids_per_sec: round_to(bids.per_sec, 1),
            accepted_per_sec: round_to(accepted, 1),
            latency_ms: bids.latency_ms,
            cores_used: cores,
            violations,
        }
    }

    fn p99(&self) -> Option<f64> {
        self.latency_ms.as_ref().map(|l| l.p99)
    }
}

/// CPU seconds per second of each part during one load, summed over its processes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CoresUsed {
    pub gateway: f64,
    /// Every Redis process (masters and replicas).
    pub redis: f64,
    /// Every NATS process.
    pub nats: f64,
    /// This process: goose's bidders.
    pub load_generator: f64,
}

/// CPU readings of the parts, to difference around a load.
struct CpuProbe {
    gateway: Vec<u32>,
    redis: Vec<u32>,
    nats: Vec<u32>,
}

impl CpuProbe {
    fn read(&self) -> [f64; 4] {
        let sum = |pids: &[u32]| pids.iter().copied().map(cpu_secs).sum::<f64>();
        [
            sum(&self.gateway),
            sum(&self.redis),
            sum(&self.nats),
            cpu_secs(std::process::id()),
        ]
    }

    /// Runs `load` and reports the cores each part used meanwhile.
    async fn around<T>(
        &self,
        load: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<(T, CoresUsed)> {
        let (before, started) = (self.read(), std::time::Instant::now());
        let result = load.await?;
        let (after, secs) = (self.read(), started.elapsed().as_secs_f64().max(0.001));
        let share = |i: usize| round_to((after[i] - before[i]) / secs, 2);
        Ok((
            result,
            CoresUsed {
                gateway: share(0),
                redis: share(1),
                nats: share(2),
                load_generator: share(3),
            },
        ))
    }
}

/// The fan-out level's figures.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutFigures {
    pub viewers: usize,
    pub connected: usize,
    pub delivery_ratio: f64,
    pub latency_ms: LatencyMs,
    pub rss_per_viewer_kib: f64,
}

/// Everything measured on one topology.
#[derive(Debug, Clone, Serialize)]
pub struct TopologyResult {
    /// `single`, `cluster`, `cluster-durable`.
    pub topology: &'static str,
    pub hot_item: WriteFigures,
    pub many_items: WriteFigures,
    /// Only on `single` and `cluster` (durable accept changes nothing on the live path).
    pub fanout: Option<FanoutFigures>,
}

/// Cluster over single, for the figures that matter.
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    pub topology: &'static str,
    pub hot_item_bids_per_sec: Option<f64>,
    pub hot_item_p99: Option<f64>,
    pub many_items_bids_per_sec: Option<f64>,
    pub many_items_p99: Option<f64>,
    pub fanout_p99: Option<f64>,
}

/// The figures of the JSON result.
#[derive(Debug, Clone, Serialize)]
pub struct BenchCluster {
    pub cores: usize,
    pub users: u32,
    pub items: usize,
    pub duration_secs: u64,
    pub topologies: Vec<TopologyResult>,
    /// Each cluster topology against `single` (1.0 = the same).
    pub ratios: Vec<Ratios>,
    pub note: &'static str,
}

/// Where one topology's stores are, and their processes (for the cores they use).
struct Topology {
    stores: Stores,
    redis_pids: Vec<u32>,
    nats_pids: Vec<u32>,
}

/// Runs every topology and writes the result.
///
/// # Errors
/// A server, service or load cannot run.
pub async fn run(args: &BenchClusterArgs) -> anyhow::Result<BenchResult<BenchCluster>> {
    let started = Started::now("bench-cluster");
    let mut topologies = Vec::new();
    {
        let redis = tokio::task::block_in_place(RedisServer::start_durable)?;
        let nats = tokio::task::block_in_place(NatsServer::start)?;
        let on = Topology {
            stores: Stores {
                redis_url: redis.url(),
                nats_url: nats.url(),
                database_url: None,
                replicas: 1,
            },
            redis_pids: redis.pid().into_iter().collect(),
            nats_pids: nats.pid().into_iter().collect(),
        };
        topologies.push(topology(args, "single", &on, false).await?);
    }
    {
        let cluster = tokio::task::block_in_place(|| LocalCluster::stores_only(&args.script))?;
        let on = Topology {
            stores: Stores {
                redis_url: cluster.get("REDIS_URL")?,
                nats_url: cluster.get("NATS_URL")?,
                database_url: None,
                replicas: 3,
            },
            redis_pids: cluster.pids("redis-"),
            nats_pids: cluster.pids("nats-"),
        };
        topologies.push(topology(args, "cluster", &on, false).await?);
        topologies.push(topology(args, "cluster-durable", &on, true).await?);
    }
    let single = topologies.first().cloned().context("no single-node run")?;
    let ratio_of = |a: Option<f64>, b: Option<f64>| a.zip(b).and_then(|(a, b)| ratio(a, b));
    let ratios = topologies
        .iter()
        .skip(1)
        .map(|t| {
            let write = |pick: fn(&TopologyResult) -> &WriteFigures| {
                let (this, one) = (pick(t), pick(&single));
                let rate = ratio_of(Some(this.bids_per_sec), Some(one.bids_per_sec));
                (rate, ratio_of(this.p99(), one.p99()))
            };
            let (hot_item_bids_per_sec, hot_item_p99) = write(|t| &t.hot_item);
            let (many_items_bids_per_sec, many_items_p99) = write(|t| &t.many_items);
            let fanout_p99 = |t: &TopologyResult| t.fanout.as_ref().map(|f| f.latency_ms.p99);
            Ratios {
                topology: t.topology,
                hot_item_bids_per_sec,
                hot_item_p99,
                many_items_bids_per_sec,
                many_items_p99,
                fanout_p99: ratio_of(fanout_p99(t), fanout_p99(&single)),
            }
        })
        .collect();
    let violations = topologies
        .iter()
        .flat_map(|t| {
            let named =
                |what, w: &WriteFigures| prefixed(format!("{} {what}", t.topology), &w.violations);
            let hot = named("hot item", &t.hot_item);
            hot.into_iter().chain(named("many items", &t.many_items))
        })
        .collect();
    let figures = BenchCluster {
        cores: cores(),
        users: args.users,
        items: args.items,
        duration_secs: args.duration_secs,
        topologies,
        ratios,
        note: "every process on one 2-core machine: the ratios are the cluster's overhead per \
               request, not its scaling (more machines would add capacity; here they share \
               the same two cores)",
    };
    started.finish(figures, violations, &args.out)
}

async fn topology(
    args: &BenchClusterArgs,
    name: &'static str,
    on: &Topology,
    durable: bool,
) -> anyhow::Result<TopologyResult> {
    tracing::info!(topology = name, "topology");
    let tag = run_tag("bc");
    let mut env = namespace(&tag);
    env.extend(on.stores.env());
    env.extend([
        ("PRICE_PREFILTER", "false".to_owned()),
        ("REDIS_TIMEOUT_MS", LOADED_REDIS_TIMEOUT_MS.to_string()),
        ("DURABLE_ACCEPT", durable.to_string()),
        ("RUST_LOG", "error".to_owned()),
    ]);
    let gateway = Service::start("gateway", &args.bin_dir.join("api-gateway"), &env).await?;
    let api = ApiClient::new(gateway.url())?;
    let item = NewItem::new(format!("{tag}-hot"), "hot", (100, 1), in_secs(3_600))?;
    let probe = CpuProbe {
        gateway: gateway.pid().into_iter().collect(),
        redis: on.redis_pids.clone(),
        nats: on.nats_pids.clone(),
    };
    let hot_load = hot_item::run_level(&api, &item, args.users, args.duration_secs, false);
    let (hot, hot_cores) = probe.around(hot_load).await?;
    let hot_item = WriteFigures::new(&hot.bids, hot.accepted_per_sec, hot_cores, hot.violations);
    let items = (0..args.items)
        .map(|n| NewItem::new(format!("{tag}-m{n}"), "many", (100, 1), in_secs(3_600)))
        .collect::<Result<Vec<_>, _>>()?;
    let spread_load = hot_item::run_spread_level(&api, &items, args.users, args.duration_secs);
    let (spread, spread_cores) = probe.around(spread_load).await?;
    let many_items = WriteFigures::new(
        &spread.bids,
        spread.accepted_per_sec,
        spread_cores,
        spread.violations,
    );
    gateway.shutdown().await?;
    let fanout = if durable || args.viewers == 0 {
        None
    } else {
        let load = FanoutLoad {
            binaries: LiveBinaries::in_dir(&args.bin_dir),
            viewers: vec![args.viewers],
            per_process: 12_500,
            per_client: None,
            rate: 2,
            duration_secs: args.duration_secs,
            viewers_bin: None,
            env: on
                .stores
                .env()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        };
        let level = level::run(&load, args.viewers).await?;
        Some(FanoutFigures {
            viewers: level.viewers,
            connected: level.connected,
            delivery_ratio: round_to(level.delivery_ratio, 4),
            latency_ms: level.latency_ms,
            rss_per_viewer_kib: round_to(level.rss_per_viewer_kib, 2),
        })
    };
    Ok(TopologyResult {
        topology: name,
        hot_item,
        many_items,
        fanout,
    })
}
