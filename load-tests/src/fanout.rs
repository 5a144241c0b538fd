//! `fanout`: the WebSocket fan-out experiment with a report people can read.
//!
//! It runs [`bench_fanout::level`] for each viewer count (1k/10k/50k by default: several
//! broadcast instances and client processes from 127.0.0.x source addresses, raised fd limit,
//! bids at a steady rate) and writes `bench/results/fanout/`: `result.json`, `README.md`, the
//! latency CDF per level, latency percentiles and memory per viewer as bars.
//!
//! Its check: every viewer connected, bids were accepted, and every accepted bid reached every
//! viewer (delivery 1.0) unless the viewer was conflated to a fresh snapshot, which the report
//! counts as a resync.

use crate::bench_fanout::{self, BenchFanoutArgs, FanoutLevel};
use crate::charts::{self, Labels, Series};
use crate::report::{Machine, ReportDir, markdown_table};
use crate::viewers::{BUCKET_US, raise_fd_limit};
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;

/// Points kept per CDF in `result.json` (the SVG gets the same ones).
const CDF_POINTS: usize = 200;

/// Flags of `load-tests fanout`.
#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
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
    /// Bids per second while the viewers watch.
    #[arg(long, default_value_t = 2)]
    pub rate: u64,
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    #[arg(long, default_value = "bench/results/fanout")]
    pub out_dir: PathBuf,
    /// The `load-tests` binary for the client processes (default: this program).
    #[arg(long)]
    pub viewers_bin: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct FanoutReport {
    pub experiment: &'static str,
    pub started_at: String,
    pub machine: Machine,
    pub bids_per_sec: u64,
    pub duration_secs: u64,
    pub levels: Vec<LevelReport>,
    /// What failed the check, empty when it passed.
    pub violations: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct LevelReport {
    #[serde(flatten)]
    pub level: FanoutLevel,
    /// Empirical CDF of POST-to-receipt latency: `(ms, share of receipts at or below)`.
    pub latency_cdf: Vec<(f64, f64)>,
}

impl FanoutReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// What is wrong with a level, if anything.
fn violations(level: &FanoutLevel) -> Vec<String> {
    let mut found = Vec::new();
    let n = level.viewers;
    if level.connected < n {
        found.push(format!("{n} viewers: only {} connected", level.connected));
    }
    if level.bids_accepted == 0 {
        found.push(format!("{n} viewers: no bid was accepted"));
    }
    if level.delivery_ratio < 1.0 && level.resyncs == 0 {
        found.push(format!(
            "{n} viewers: delivery {:.6} with no resync to explain it",
            level.delivery_ratio
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
    (0..keep)
        .map(|i| points[((i as f64 * step).round() as usize).min(points.len() - 1)])
        .collect()
}

/// Runs every level, writes the report and returns it.
///
/// # Errors
/// A service or client process cannot run, or the report cannot be written.
pub async fn run(args: &FanoutArgs) -> anyhow::Result<FanoutReport> {
    raise_fd_limit();
    let out = ReportDir::create(&args.out_dir)?;
    let bench = BenchFanoutArgs {
        gateway_bin: args.gateway_bin.clone(),
        broadcast_bin: args.broadcast_bin.clone(),
        viewers: args.viewers.clone(),
        per_process: args.per_process,
        rate: args.rate,
        duration_secs: args.duration_secs,
        out: out.path().join("result.json"),
        viewers_bin: args.viewers_bin.clone(),
    };
    let started_at = chrono::Utc::now().to_rfc3339();
    let mut levels = Vec::new();
    let mut found = Vec::new();
    for &viewers in &args.viewers {
        tracing::info!(viewers, "fanout level");
        let level = bench_fanout::level(&bench, viewers).await?;
        found.extend(violations(&level));
        let cdf = charts::cdf_points(&level.histogram, BUCKET_US as f64 / 1000.0);
        levels.push(LevelReport {
            level,
            latency_cdf: thin(cdf, CDF_POINTS),
        });
    }
    let report = FanoutReport {
        experiment: "fanout",
        started_at,
        machine: Machine::current(),
        bids_per_sec: args.rate,
        duration_secs: args.duration_secs,
        levels,
        violations: found,
    };
    out.write_result(&report)?;
    draw(&out, &report)?;
    out.write_summary(&markdown(&report))?;
    Ok(report)
}

fn draw(out: &ReportDir, report: &FanoutReport) -> anyhow::Result<()> {
    let name = |l: &LevelReport| format!("{} viewers", l.level.viewers);
    // The CDF is drawn up to 1.5× the slowest p999 so the bulk is readable; the tail beyond
    // is in the table (max).
    let clip = report
        .levels
        .iter()
        .map(|l| l.level.latency_ms.p999 * 1.5)
        .fold(1.0, f64::max);
    let cdfs: Vec<Series> = report
        .levels
        .iter()
        .map(|l| {
            let points = l.latency_cdf.iter().copied().filter(|p| p.0 <= clip);
            Series::new(name(l), points.collect())
        })
        .collect();
    charts::line_chart(
        &out.chart("latency-cdf"),
        Labels {
            title: "POST to viewer receipt: CDF",
            x: "latency (ms)",
            y: "share of receipts",
        },
        &cdfs,
    )?;
    let categories: Vec<String> = report.levels.iter().map(name).collect();
    let bars = |pick: fn(&FanoutLevel) -> f64| -> Vec<(f64, f64)> {
        report
            .levels
            .iter()
            .enumerate()
            .map(|(i, l)| (i as f64, pick(&l.level)))
            .collect()
    };
    charts::bar_chart(
        &out.chart("latency"),
        Labels {
            title: "POST to viewer receipt",
            x: "",
            y: "latency (ms)",
        },
        &categories,
        &[
            Series::new("p50", bars(|l| l.latency_ms.p50)),
            Series::new("p99", bars(|l| l.latency_ms.p99)),
            Series::new("p999", bars(|l| l.latency_ms.p999)),
        ],
    )?;
    charts::bar_chart(
        &out.chart("memory"),
        Labels {
            title: "Broadcast resident memory per idle viewer",
            x: "",
            y: "KiB per viewer",
        },
        &categories,
        &[Series::new("KiB/viewer", bars(|l| l.rss_per_viewer_kib))],
    )
}

fn markdown(report: &FanoutReport) -> String {
    let rows: Vec<Vec<String>> = report
        .levels
        .iter()
        .map(|l| {
            let l = &l.level;
            vec![
                l.viewers.to_string(),
                l.connected.to_string(),
                l.broadcast_instances.to_string(),
                l.bids_accepted.to_string(),
                format!("{:.4}", l.delivery_ratio),
                l.resyncs.to_string(),
                format!("{:.1}", l.latency_ms.p50),
                format!("{:.1}", l.latency_ms.p99),
                format!("{:.1}", l.latency_ms.p999),
                format!("{:.1}", l.latency_ms.max),
                format!("{:.1}", l.rss_per_viewer_kib),
            ]
        })
        .collect();
    let table = markdown_table(
        &[
            "viewers",
            "connected",
            "instances",
            "bids",
            "delivery",
            "resyncs",
            "p50 ms",
            "p99 ms",
            "p999 ms",
            "max ms",
            "KiB/viewer",
        ],
        &rows,
    );
    let verdict = if report.passed() {
        "passed: every viewer connected and received every accepted bid".to_owned()
    } else {
        format!("FAILED:\n\n- {}", report.violations.join("\n- "))
    };
    format!(
        "# Fan-out experiment\n\n\
         Started {} on {} cores ({}/{}). One item, {} bids/s for {} s per level, posted through \
         the gateway; latency is from just before each POST to each viewer's receipt of the \
         `bid_placed` frame. Gateway, NATS, Redis, the broadcast instances and the viewer \
         client processes all share this machine.\n\n{table}\n\
         Check: {verdict}\n\n\
         ![latency CDF](latency-cdf.svg)\n\n![latency](latency.svg)\n\n![memory](memory.svg)\n",
        report.started_at,
        report.machine.cores,
        report.machine.os,
        report.machine.arch,
        report.bids_per_sec,
        report.duration_secs,
    )
}

/// The human summary printed on stdout.
pub fn summary(report: &FanoutReport) -> String {
    let mut text = format!("fanout ({} cores):", report.machine.cores);
    for l in &report.levels {
        let l = &l.level;
        text.push_str(&format!(
            "\n  {:>6} viewers: delivery {:.4}, resyncs {}, p50 {:.1} ms, p99 {:.1} ms, \
             p999 {:.1} ms, {:.1} KiB/viewer",
            l.viewers,
            l.delivery_ratio,
            l.resyncs,
            l.latency_ms.p50,
            l.latency_ms.p99,
            l.latency_ms.p999,
            l.rss_per_viewer_kib
        ));
    }
    for v in &report.violations {
        text.push_str(&format!("\n  VIOLATION: {v}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_the_ends_and_the_count() {
        let points: Vec<(f64, f64)> = (0..1000).map(|i| (i as f64, i as f64 / 999.0)).collect();
        let thinned = thin(points, 200);
        assert_eq!(thinned.len(), 200);
        assert_eq!(thinned[0], (0.0, 0.0));
        assert_eq!(thinned[199], (999.0, 1.0));
        assert_eq!(thin(vec![(1.0, 1.0)], 200), vec![(1.0, 1.0)]);
    }
}
