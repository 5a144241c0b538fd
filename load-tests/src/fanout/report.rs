//! The `fanout` report: `result.json`, the latency CDF per level, latency percentiles and
//! memory per viewer as bars, and the `README.md` table.

use super::level::FanoutLevel;
use super::{FanoutReport, LevelReport};
use crate::charts::{self, Series};
use crate::report::{ReportDir, markdown_table};
use crate::verdict::Outcome;

/// Writes `result.json`, the charts and `README.md` into `out`.
///
/// # Errors
/// A file cannot be written or a chart cannot be drawn.
pub(super) fn write(out: &ReportDir, report: FanoutReport) -> anyhow::Result<FanoutReport> {
    draw(out, &report)?;
    let markdown = markdown(&report);
    report.write_report(out, markdown)
}

fn draw(out: &ReportDir, report: &FanoutReport) -> anyhow::Result<()> {
    let levels = &report.levels;
    let name = |l: &LevelReport| format!("{} viewers", l.level.viewers);
    // The CDF is drawn up to 1.5× the slowest p999 so the bulk is readable; the tail beyond
    // is in the table (max).
    let clip = levels
        .iter()
        .map(|l| l.level.latency_ms.p999 * 1.5)
        .fold(1.0, f64::max);
    let cdf = |l: &LevelReport| {
        let points = l.latency_cdf.iter().copied().filter(|p| p.0 <= clip);
        Series::new(name(l), points.collect())
    };
    let cdfs: Vec<Series> = levels.iter().map(cdf).collect();
    let labels = (
        "POST to viewer receipt: CDF",
        "latency (ms)",
        "share of receipts",
    );
    charts::line_chart(&out.chart("latency-cdf"), labels, &cdfs)?;
    let categories: Vec<String> = levels.iter().map(name).collect();
    let bars = |name, pick: fn(&FanoutLevel) -> f64| {
        Series::bars(name, levels.iter().map(|l| pick(&l.level)))
    };
    let percentiles = [
        bars("p50", |l| l.latency_ms.p50),
        bars("p99", |l| l.latency_ms.p99),
        bars("p999", |l| l.latency_ms.p999),
    ];
    let labels = ("POST to viewer receipt", "", "latency (ms)");
    charts::bar_chart(&out.chart("latency"), labels, &categories, &percentiles)?;
    let memory = [bars("KiB/viewer", |l| l.rss_per_viewer_kib)];
    let labels = (
        "Broadcast resident memory per idle viewer",
        "",
        "KiB per viewer",
    );
    charts::bar_chart(&out.chart("memory"), labels, &categories, &memory)
}

fn markdown(report: &FanoutReport) -> String {
    let rows: Vec<Vec<String>> = report
        .levels
        .iter()
        .map(|LevelReport { level: l, .. }| {
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
        "viewers | connected | instances | bids | delivery | resyncs | p50 ms | p99 ms | \
         p999 ms | max ms | KiB/viewer",
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
