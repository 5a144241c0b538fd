//! `fanout` and `bench-fanout`: N WebSocket viewers on one item while bids arrive at a steady
//! rate. Both run the same [`level`]s with their [`viewers`] processes; `bench-fanout` writes
//! one JSON file, `fanout` a [`report`] with charts. The check: every viewer connected, most
//! bids were accepted (a run of refusals measures nothing), and every accepted bid reached every
//! viewer unless it was conflated to a fresh snapshot (a resync). `bench-fanout` asks the first
//! two.

pub mod level;
pub mod nchan;
mod report;
pub mod viewers;

use crate::bench_result::{BenchResult, Started};
use crate::handoff::{each_level, shares};
use crate::host::cores;
use crate::report::ReportDir;
use crate::service::LiveBinaries;
use clap::Args;
use level::FanoutLevel;
use serde::Serialize;
use std::path::PathBuf;

/// Points kept per CDF in `result.json` (the SVG gets the same ones).
const CDF_POINTS: usize = 200;

/// What both fan-out subcommands run.
#[derive(Debug, Clone, Args)]
pub struct FanoutLoad {
    #[command(flatten)]
    pub binaries: LiveBinaries,
    /// Viewer counts, one level each.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,50000")]
    pub viewers: Vec<usize>,
    /// Most viewers per broadcast instance and per client process.
    #[arg(long, default_value_t = 12_500)]
    pub per_process: usize,
    /// Most viewers per client process, when not `per_process` (one client per instance):
    /// more clients than instances spread the viewers' reading over more `epoll` sets and
    /// processes, as viewers on many hosts would be, with the same servers.
    #[arg(long)]
    pub per_client: Option<usize>,
    /// Bids per second while viewers watch (a busy live auction; every bid is one frame to
    /// every viewer, so 2/s at 50,000 viewers is 100,000 frames/s).
    #[arg(long, default_value_t = 2)]
    pub rate: u64,
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// The `load-tests` binary that runs the `viewers` client processes (default: this one).
    #[arg(long)]
    pub viewers_bin: Option<PathBuf>,
    /// Environment for the gateway and broadcast instances beyond the inherited one (for
    /// bench-cluster: the cluster's REDIS_URL, NATS_URL, JETSTREAM_REPLICAS). Not a flag.
    #[arg(skip)]
    pub env: Vec<(String, String)>,
}

impl FanoutLoad {
    /// How many viewers each client process of a level of `viewers` opens.
    pub fn client_shares(&self, viewers: usize) -> Vec<usize> {
        shares(viewers, self.per_client.unwrap_or(self.per_process))
    }
}

/// Flags of `load-tests fanout`.
#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub load: FanoutLoad,
    #[arg(long, default_value = "bench/results/fanout")]
    pub out_dir: PathBuf,
}

/// Flags of `load-tests bench-fanout`.
#[derive(Debug, Clone, Args)]
pub struct BenchFanoutArgs {
    #[command(flatten)]
    pub load: FanoutLoad,
    #[arg(long, default_value = "bench/results/fanout.json")]
    pub out: PathBuf,
}

/// The JSON result of `bench-fanout`; it fails when a level's viewers did not all connect or
/// most of its bids were refused.
pub type FanoutResult = BenchResult<BenchFanout>;

/// The figures of `bench-fanout`.
#[derive(Debug, Serialize)]
pub struct BenchFanout {
    pub cores: usize,
    pub levels: Vec<FanoutLevel>,
}

/// The `fanout` report (`result.json`): it fails as `bench-fanout` does, and also when an
/// accepted bid missed a viewer that was not resynced.
pub type FanoutReport = BenchResult<Fanout>;

/// The figures of the `fanout` report.
#[derive(Debug, Serialize)]
pub struct Fanout {
    pub bids_per_sec: u64,
    pub duration_secs: u64,
    pub levels: Vec<LevelReport>,
}

#[derive(Debug, Serialize)]
pub struct LevelReport {
    #[serde(flatten)]
    pub level: FanoutLevel,
    /// Empirical CDF of POST-to-receipt latency: `(ms, share of receipts at or below)`.
    pub latency_cdf: Vec<(f64, f64)>,
}

async fn levels(load: &FanoutLoad) -> anyhow::Result<Vec<FanoutLevel>> {
    each_level("fan-out", &load.viewers, async |viewers| {
        level::run(load, viewers).await
    })
    .await
}

/// Runs `bench-fanout`: every level, written as one JSON file.
///
/// # Errors
/// A service or client process cannot run, or the file cannot be written.
pub async fn bench(args: &BenchFanoutArgs) -> anyhow::Result<FanoutResult> {
    let started = Started::now("bench-fanout");
    let levels = levels(&args.load).await?;
    let violations = levels.iter().flat_map(incomplete).collect();
    let figures = BenchFanout {
        cores: cores(),
        levels,
    };
    started.finish(figures, violations, &args.out)
}

/// Runs the `fanout` experiment: every level, then the report.
///
/// # Errors
/// A service or client process cannot run, or the report cannot be written.
pub async fn run(args: &FanoutArgs) -> anyhow::Result<FanoutReport> {
    let out = ReportDir::create(&args.out_dir)?;
    let started = Started::now("fanout");
    let levels = levels(&args.load).await?;
    let violations = levels.iter().flat_map(violations).collect();
    let figures = Fanout {
        bids_per_sec: args.load.rate,
        duration_secs: args.load.duration_secs,
        levels: levels
            .into_iter()
            .map(|level| {
                let latency_cdf = thin(level.histogram.cdf(), CDF_POINTS);
                LevelReport { level, latency_cdf }
            })
            .collect(),
    };
    report::write(&out, started.result(figures, violations))
}

/// What bench-fanout checks of a level: every viewer connected, most bids accepted.
fn incomplete(level: &FanoutLevel) -> Vec<String> {
    let n = level.viewers;
    let mut found = Vec::new();
    if level.connected < n {
        found.push(format!("{n} viewers: only {} connected", level.connected));
    }
    if level.bids_accepted * 2 <= level.bids_posted {
        let (accepted, posted) = (level.bids_accepted, level.bids_posted);
        found.push(format!("{n} viewers: {accepted} of {posted} bids accepted"));
    }
    found
}

/// What is wrong with a level for `fanout`, if anything.
fn violations(level: &FanoutLevel) -> Vec<String> {
    let n = level.viewers;
    let mut found = incomplete(level);
    if level.delivery_ratio < 1.0 && level.resyncs == 0 {
        let ratio = level.delivery_ratio;
        found.push(format!(
            "{n} viewers: delivery {ratio:.6} with no resync to explain it"
        ));
    }
    found
}

/// At most `keep` points of `points`, evenly spaced, always keeping the last.
fn thin(points: Vec<(f64, f64)>, keep: usize) -> Vec<(f64, f64)> {
    if points.len() <= keep || keep < 2 {
        return points;
    }
    let step = (points.len() - 1) as f64 / (keep - 1) as f64;
    let at = |i: usize| ((i as f64 * step).round() as usize).min(points.len() - 1);
    (0..keep)
        .filter_map(|i| points.get(at(i)).copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_the_ends_and_the_count() {
        let points: Vec<(f64, f64)> = (0..1000).map(|i| (i as f64, i as f64 / 999.0)).collect();
        let thinned = thin(points, 200);
        assert_eq!(thinned.len(), 200);
        assert_eq!((thinned[0], thinned[199]), ((0.0, 0.0), (999.0, 1.0)));
        assert_eq!(thin(vec![(1.0, 1.0)], 200), vec![(1.0, 1.0)]);
    }
}
