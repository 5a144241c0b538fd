//! The `fanout` report: `result.json`, the latency CDF per level, latency percentiles and
//! memory per viewer as bars, and the `README.md` table.

use super::level::FanoutLevel;
use super::{FanoutReport, LevelReport};
use crate::charts::{self, Labels, Series};
use crate::report::{ReportDir, markdown_table};

/// Writes `result.json`, the charts and `README.md` into `out`.
///
/// # Errors
/// A file cannot be written or a chart cannot be drawn.
pub(super) fn write(out: &ReportDir, report: &FanoutReport) -> anyhow::Result<()> {
    out.write_result(report)?;
    draw(out, report)?;
    out.write_summary(&markdown(report))
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

pub(super) fn markdown(report: &FanoutReport) -> String {
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
