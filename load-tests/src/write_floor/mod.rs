//! `bench-write-floor`: the gateway's contended write rate as a fraction of a floor server's
//! under the same load in the same run (issue 18).
//!
//! The [`server`] is the least a bid needs here (HTTP, token check, JSON, one `EVALSHA` of a
//! compare-and-set); the gateway does everything the contract promises (idempotency, the
//! window and anti-sniping rules, the outbox, the live publish, the relay to JetStream, the
//! limits). Both take bench-write's hot-item load ([`crate::bench_write::alternate`]: goose
//! users bidding just above the last price each saw, real access tokens, per-user limit off),
//! run alternately gateway, floor, floor, gateway per level and repeated `--pairs` times, so a
//! drift of the shared machine weighs on both sides alike; the ratio is of the medians. Every
//! level of both sides passes bench-write's no-lost-update check or the run fails.

pub mod server;

use crate::api::ApiClient;
use crate::bench_result::{BenchResult, Started};
use crate::bench_write::{WriteLoad, alternate, rates};
use crate::contention::hot_item::HotLevel;
use crate::figures::{median, ratio, round_to};
use crate::service::{Service, WRITE_FLOOR_ROLE, namespace, run_tag, start_services};
use crate::verdict::prefixed;
use std::path::PathBuf;

/// What issue 18 asks of the gateway: at least this fraction of the floor's rate.
pub const GOAL_RATIO: f64 = 0.6;

/// Flags of `load-tests bench-write-floor`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchWriteFloorArgs {
    /// The gateway binary, started on a free loopback port with its production defaults
    /// (tokens verified, price pre-filter on) but the per-user bid limit off.
    #[arg(long)]
    pub gateway_bin: PathBuf,
    /// The `load-tests` binary that runs `write-floor-server` (default: this one).
    #[arg(long)]
    pub floor_bin: Option<PathBuf>,
    #[command(flatten)]
    pub load: WriteLoad,
    /// Gateway-floor-floor-gateway rounds per level.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=5))]
    pub pairs: u32,
    #[arg(long, default_value = "bench/results/write-floor.json")]
    pub out: PathBuf,
}

/// The figures of the run (its JSON result, in [`BenchResult`]).
#[derive(Debug, serde::Serialize)]
pub struct WriteFloor {
    pub smoke: bool,
    /// What each side does per bid, in words.
    pub gateway_does: &'static str,
    pub floor_does: &'static str,
    pub goal_ratio: f64,
    pub levels: Vec<FloorComparison>,
}

/// One client level: every run of both sides, their medians and the ratio.
#[derive(Debug, serde::Serialize)]
pub struct FloorComparison {
    pub clients: u32,
    pub gateway_bids_per_sec: f64,
    pub floor_bids_per_sec: f64,
    /// `gateway_bids_per_sec / floor_bids_per_sec`.
    pub ratio: f64,
    /// Median p99 latency (ms) of each side's runs.
    pub gateway_p99_ms: Option<f64>,
    pub floor_p99_ms: Option<f64>,
    pub gateway_runs: Vec<HotLevel>,
    pub floor_runs: Vec<HotLevel>,
}

const GATEWAY_DOES: &str = "token verified, body parsed, price pre-filter, idempotency/window/increment/anti-sniping/seq in place_bid.lua with the outbox XADD, live publish to core NATS, outbox relay to JetStream; per-user bid limit off";
const FLOOR_DOES: &str = "the gateway's HTTP accept loop and axum, the same token verifier, the body parsed (Cents from the literal), one EVALSHA of a compare-and-set (HMGET + HSET) through the same RedisHandle; nothing else";

impl FloorComparison {
    fn new(clients: u32, gateway_runs: Vec<HotLevel>, floor_runs: Vec<HotLevel>) -> Self {
        let p99 = |runs: &[HotLevel]| {
            let p99s: Vec<f64> = runs
                .iter()
                .filter_map(|r| Some(r.bids.latency_ms?.p99))
                .collect();
            (!p99s.is_empty()).then(|| median(p99s))
        };
        let (gateway, floor) = (median(rates(&gateway_runs)), median(rates(&floor_runs)));
        Self {
            clients,
            gateway_bids_per_sec: round_to(gateway, 1),
            floor_bids_per_sec: round_to(floor, 1),
            ratio: ratio(gateway, floor).unwrap_or(0.0),
            gateway_p99_ms: p99(&gateway_runs),
            floor_p99_ms: p99(&floor_runs),
            gateway_runs,
            floor_runs,
        }
    }
}

/// Runs every level against both servers and writes the result.
///
/// # Errors
/// A server cannot start, a level cannot run, or the file cannot be written.
pub async fn run(args: &BenchWriteFloorArgs) -> anyhow::Result<BenchResult<WriteFloor>> {
    args.load.check()?;
    let started = Started::now("bench-write-floor");
    let floor_bin = match &args.floor_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe()?,
    };
    let env = namespace(&run_tag("wf"));
    let [gateway] = start_services([("gateway", &args.gateway_bin)], &env).await?;
    let floor_args = ["write-floor-server"];
    let floor = Service::start_with_args(WRITE_FLOOR_ROLE, &floor_bin, &floor_args, &env).await?;
    let measured = measure(args, gateway.url(), floor.url()).await;
    gateway.stop().await;
    floor.stop().await;
    let levels = measured?;
    let run = |r: &HotLevel| prefixed(format_args!("{} clients", r.users), &r.violations);
    let runs = levels
        .iter()
        .flat_map(|l| l.gateway_runs.iter().chain(&l.floor_runs));
    let violations = runs.flat_map(run).collect();
    let figures = WriteFloor {
        smoke: args.load.run.smoke,
        gateway_does: GATEWAY_DOES,
        floor_does: FLOOR_DOES,
        goal_ratio: GOAL_RATIO,
        levels,
    };
    started.finish(figures, violations, &args.out)
}

async fn measure(
    args: &BenchWriteFloorArgs,
    gateway: &str,
    floor: &str,
) -> anyhow::Result<Vec<FloorComparison>> {
    let (gateway_api, floor_api) = (ApiClient::new(gateway)?, ApiClient::new(floor)?);
    let mut levels = Vec::with_capacity(args.load.clients.len());
    for &clients in &args.load.clients {
        let apis = (&gateway_api, &floor_api);
        let load = (args.load.run.duration_secs, false);
        let (gateway_runs, floor_runs) = alternate(apis, clients, args.pairs, load).await?;
        let level = FloorComparison::new(clients, gateway_runs, floor_runs);
        tracing::info!(clients, ratio = level.ratio, "write floor level");
        levels.push(level);
    }
    Ok(levels)
}
