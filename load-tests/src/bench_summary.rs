//! `bench-summary`: one table of every benchmark's latest figure beside its peer or floor and
//! the ratio, read from the result files under `bench/results/` and written as
//! `bench/results/SUMMARY.md` (`make bench` runs the benches, then this).
//!
//! Each row names its file and the run's date: `make bench` re-runs the fan-out and write
//! benches; the archive, close, cluster and rate-limit figures are their last runs'. A file
//! that is missing or lacks a field gives no row, never a made-up one.

use anyhow::Context;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Flags of `load-tests bench-summary`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchSummaryArgs {
    /// The directory holding the benches' JSON results.
    #[arg(long, default_value = "bench/results")]
    pub results: PathBuf,
    /// Where the table goes.
    #[arg(long, default_value = "bench/results/SUMMARY.md")]
    pub out: PathBuf,
}

/// One row: a figure of ours against its peer or floor.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    pub benchmark: String,
    pub ours: String,
    pub peer: String,
    /// Ours divided by the peer's (the rate's or the latency's, as the row says).
    pub ratio: Option<f64>,
    pub goal: String,
    pub source: String,
}

/// The rows and the Markdown they were written as.
#[derive(Debug, serde::Serialize)]
pub struct Summary {
    pub rows: Vec<Row>,
    #[serde(skip)]
    pub markdown: String,
}

impl crate::verdict::Outcome for Summary {
    fn verdict(&self) -> crate::verdict::Verdict {
        crate::verdict::Verdict::Passed
    }

    fn summary(&self) -> String {
        self.markdown.clone()
    }
}

/// Reads the results and writes the table.
///
/// # Errors
/// The table cannot be written.
pub fn run(args: &BenchSummaryArgs) -> anyhow::Result<Summary> {
    let rows = rows(&args.results);
    let markdown = markdown(&rows);
    std::fs::write(&args.out, &markdown)
        .with_context(|| format!("writing {}", args.out.display()))?;
    Ok(Summary { rows, markdown })
}

/// `file` under `dir`, parsed, with its start date; `None` when absent or not JSON.
fn load(dir: &Path, file: &str) -> Option<(Value, String)> {
    let text = std::fs::read_to_string(dir.join(file)).ok()?;
    let value: Value = serde_json::from_str(&text).ok()?;
    let date = value["started_at"]
        .as_str()
        .unwrap_or("")
        .get(..10)
        .unwrap_or("")
        .to_owned();
    Some((value, format!("{file} ({date})")))
}

fn num(value: &Value) -> Option<f64> {
    value.as_f64()
}

fn ratio(ours: f64, peer: f64) -> Option<f64> {
    (peer > 0.0).then(|| (ours / peer * 1000.0).round() / 1000.0)
}

fn row(
    benchmark: String,
    ours: String,
    peer: String,
    ratio: Option<f64>,
    goal: &str,
    source: &str,
) -> Row {
    Row {
        benchmark,
        ours,
        peer,
        ratio,
        goal: goal.to_owned(),
        source: source.to_owned(),
    }
}

/// Every row the files under `dir` allow, in the table's order.
pub fn rows(dir: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    write_rows(dir, &mut rows);
    fanout_rows(dir, &mut rows);
    other_rows(dir, &mut rows);
    rows
}

fn write_rows(dir: &Path, rows: &mut Vec<Row>) {
    if let Some((floor, source)) = load(dir, "write-floor.json") {
        for level in floor["levels"].as_array().into_iter().flatten() {
            let (Some(ours), Some(peer)) = (
                num(&level["gateway_bids_per_sec"]),
                num(&level["floor_bids_per_sec"]),
            ) else {
                continue;
            };
            rows.push(row(
                format!("writes, one hot item, {} clients", level["clients"]),
                format!("gateway {ours:.0} bids/s"),
                format!("write floor {peer:.0} bids/s"),
                ratio(ours, peer),
                "≥ 0.6",
                &source,
            ));
        }
    }
    if let Some((write, source)) = load(dir, "write.json") {
        let auth = &write["auth_comparison"];
        if let (Some(ours), Some(peer)) = (
            num(&auth["token_bids_per_sec"]),
            num(&auth["open_bids_per_sec"]),
        ) {
            rows.push(row(
                format!("writes with tokens, {} clients", auth["clients"]),
                format!("{ours:.0} bids/s"),
                format!("AUTH_MODE=open {peer:.0} bids/s"),
                ratio(ours, peer),
                "≥ 0.9",
                &source,
            ));
        }
        if let Some((off, _)) = load(dir, "write-no-prefilter.json") {
            let levels = |v: &Value| v["levels"].as_array().cloned().unwrap_or_default();
            for (on, off) in levels(&write).iter().zip(levels(&off)) {
                let (Some(ours), Some(peer)) =
                    (num(&on["requests_per_sec"]), num(&off["requests_per_sec"]))
                else {
                    continue;
                };
                // A hot-item level counts `users`; results written before it, `clients`.
                let clients = if on["users"].is_null() {
                    &on["clients"]
                } else {
                    &on["users"]
                };
                rows.push(row(
                    format!("writes, price pre-filter, {clients} clients"),
                    format!("{ours:.0} bids/s"),
                    format!("pre-filter off {peer:.0} bids/s"),
                    ratio(ours, peer),
                    "—",
                    &format!("{source}, write-no-prefilter.json"),
                ));
            }
        }
    }
}

fn fanout_rows(dir: &Path, rows: &mut Vec<Row>) {
    if let Some((nchan, source)) = load(dir, "fanout-nchan.json") {
        for level in nchan["levels"].as_array().into_iter().flatten() {
            let viewers = &level["viewers"];
            if let (Some(ours), Some(peer)) =
                (num(&level["broadcast_p99_ms"]), num(&level["nchan_p99_ms"]))
            {
                rows.push(row(
                    format!("fan-out p99, {viewers} viewers"),
                    format!("{ours:.1} ms"),
                    format!("nginx + nchan {peer:.1} ms"),
                    ratio(ours, peer),
                    "≤ 0.5",
                    &source,
                ));
            }
            if let (Some(ours), Some(peer)) = (
                num(&level["broadcast_rss_per_viewer_kib"]),
                num(&level["nchan_rss_per_viewer_kib"]),
            ) {
                rows.push(row(
                    format!("memory per idle viewer, {viewers} viewers"),
                    format!("{ours:.1} KiB"),
                    format!("nginx + nchan {peer:.1} KiB"),
                    ratio(ours, peer),
                    "ours < 10 KiB",
                    &source,
                ));
            }
        }
    }
    let (Some((fanout, source)), Some((floor, _))) =
        (load(dir, "fanout.json"), load(dir, "fanout-floor.json"))
    else {
        return;
    };
    let floor_levels = floor["levels"].as_array().cloned().unwrap_or_default();
    for level in fanout["levels"].as_array().into_iter().flatten() {
        let viewers = &level["viewers"];
        let Some(peer) = floor_levels
            .iter()
            .find(|f| &f["viewers"] == viewers)
            .and_then(|f| num(&f["latency_ms"]["p99"]))
        else {
            continue;
        };
        let Some(ours) = num(&level["latency_ms"]["p99"]) else {
            continue;
        };
        let goal = if viewers.as_u64() >= Some(10_000) {
            "≤ 1.3"
        } else {
            "—"
        };
        rows.push(row(
            format!("fan-out p99, {viewers} viewers, 2 bids/s"),
            format!("{ours:.1} ms"),
            format!("fanout-floor {peer:.1} ms"),
            ratio(ours, peer),
            goal,
            &format!("{source}, fanout-floor.json"),
        ));
    }
}

fn other_rows(dir: &Path, rows: &mut Vec<Row>) {
    if let Some((cluster, source)) = load(dir, "cluster-bench.json") {
        for r in cluster["ratios"].as_array().into_iter().flatten() {
            let topology = r["topology"].as_str().unwrap_or("?");
            for (field, what) in [
                ("hot_item_bids_per_sec", "hot item bids/s"),
                ("many_items_bids_per_sec", "200 items bids/s"),
                ("fanout_p99", "10,000 viewers p99"),
            ] {
                if let Some(value) = num(&r[field]) {
                    rows.push(row(
                        format!("{topology}: {what}"),
                        topology.to_owned(),
                        "one Redis, one NATS".to_owned(),
                        Some(value),
                        "—",
                        &source,
                    ));
                }
            }
        }
    }
    if let Some((limits, source)) = load(dir, "rate-limits.json") {
        let median = &limits["median_bids_per_sec"]["prefilter_on"];
        if let (Some(ours), Some(peer)) = (num(&median["shared"]), num(&median["main"])) {
            rows.push(row(
                "writes, shared rate limiter, 64 clients".to_owned(),
                format!("{ours:.0} bids/s"),
                format!("per-instance limiter {peer:.0} bids/s"),
                ratio(ours, peer),
                "—",
                &source,
            ));
        }
    }
    if let Some((archive, source)) = load(dir, "archive.json")
        && let Some(rate) = num(&archive["drain"]["events_per_sec"])
    {
        rows.push(row(
            "archive drain".to_owned(),
            format!("{rate:.0} events/s"),
            "—".to_owned(),
            None,
            "—",
            &source,
        ));
    }
    if let Some((close, source)) = load(dir, "close.json")
        && let Some(p99) = num(&close["delay_ms"]["p99"])
    {
        rows.push(row(
            format!(
                "10,000 closes, end to viewer p99 ({} seen)",
                close["closes_seen"]
            ),
            format!("{p99:.1} ms"),
            "—".to_owned(),
            None,
            "—",
            &source,
        ));
    }
}

/// The table, with a header saying how it was made.
pub fn markdown(rows: &[Row]) -> String {
    let mut text = String::from(
        "# Benchmarks\n\nGenerated by `make bench` (`load-tests bench-summary`) from the JSON \
         results in this directory; each row names its file and the date it ran. A ratio is \
         ours divided by the peer's figure (rates: higher is better; latencies and memory: \
         lower is better). Ratios compare runs of the same command on this shared 2-core \
         machine; absolute figures move from run to run.\n\n\
         | benchmark | ours | peer or floor | ratio | goal | source |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in rows {
        let ratio = r
            .ratio
            .map_or_else(|| "—".to_owned(), |v| format!("{v:.3}"));
        let _ = writeln!(
            text,
            "| {} | {} | {} | {ratio} | {} | {} |",
            r.benchmark, r.ours, r.peer, r.goal, r.source
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_from_the_files_there_and_missing_ones_give_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(rows(dir.path()).is_empty());
        let floor = r#"{"started_at":"2026-12-01T15:00:00Z","levels":[
            {"clients":64,"gateway_bids_per_sec":15000.0,"floor_bids_per_sec":20000.0}]}"#;
        std::fs::write(dir.path().join("write-floor.json"), floor).unwrap();
        let nchan = r#"{"started_at":"2026-12-01T15:00:00Z","levels":[{"viewers":10000,
            "broadcast_p99_ms":60.0,"nchan_p99_ms":120.0,
            "broadcast_rss_per_viewer_kib":9.0,"nchan_rss_per_viewer_kib":10.0}]}"#;
        std::fs::write(dir.path().join("fanout-nchan.json"), nchan).unwrap();
        let rows = rows(dir.path());
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].ratio, Some(0.75));
        assert_eq!(rows[0].source, "write-floor.json (2026-12-01)");
        assert_eq!(rows[1].ratio, Some(0.5));
        assert_eq!(rows[2].ratio, Some(0.9));
        let table = markdown(&rows);
        assert!(table.contains("| writes, one hot item, 64 clients | gateway 15000 bids/s |"));
    }

    #[test]
    fn the_fanout_rows_pair_each_level_with_the_floor_of_its_viewer_count() {
        let dir = tempfile::tempdir().unwrap();
        let ours = r#"{"started_at":"2026-11-23T16:10:30Z","levels":[
            {"viewers":1000,"latency_ms":{"p99":20.0}},{"viewers":10000,"latency_ms":{"p99":90.0}}]}"#;
        let floor = r#"{"started_at":"2026-11-23T16:12:22Z","levels":[
            {"viewers":10000,"latency_ms":{"p99":60.0}}]}"#;
        std::fs::write(dir.path().join("fanout.json"), ours).unwrap();
        std::fs::write(dir.path().join("fanout-floor.json"), floor).unwrap();
        let rows = rows(dir.path());
        assert_eq!(rows.len(), 1, "1,000 has no floor level: {rows:?}");
        assert_eq!((rows[0].ratio, rows[0].goal.as_str()), (Some(1.5), "≤ 1.3"));
    }
}
