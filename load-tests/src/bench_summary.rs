//! `bench-summary`: one table of every benchmark's latest figure beside its peer or floor and
//! the ratio, read from the result files under `bench/results/` and written as
//! `bench/results/SUMMARY.md` (`make bench` runs the benches, then this).
//!
//! Each row names its file and the run's date: `make bench` re-runs the fan-out and write
//! benches; the archive, close, cluster and rate-limit figures are their last runs'. A file
//! that is missing or lacks a field gives no row, never a made-up one.

use crate::figures::ratio;
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

/// A figure of a row: its label, the value in a result file, its unit and decimals.
type Figure<'a> = (&'a str, &'a Value, &'a str, usize);

/// The row of `benchmark` when `ours` is a number, with `peer` (and their ratio) when given
/// and a number too; a row whose peer is named but missing is none.
fn push(
    rows: &mut Vec<Row>,
    benchmark: String,
    (ours, peer): (Figure, Option<Figure>),
    goal: &str,
    source: &str,
) {
    let shown = |(label, value, unit, decimals): Figure| {
        let value = value.as_f64()?;
        Some((value, format!("{label}{value:.decimals$} {unit}")))
    };
    let Some((value, text)) = shown(ours) else {
        return;
    };
    let (peer_text, peer_ratio) = match peer.map(shown) {
        None => ("—".to_owned(), None),
        Some(None) => return,
        Some(Some((peer, peer_text))) => (peer_text, ratio(value, peer)),
    };
    rows.push(Row {
        benchmark,
        ours: text,
        peer: peer_text,
        ratio: peer_ratio,
        goal: goal.to_owned(),
        source: source.to_owned(),
    });
}

/// Every row the files under `dir` allow, in the table's order.
pub fn rows(dir: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    write_rows(dir, &mut rows);
    fanout_rows(dir, &mut rows);
    other_rows(dir, &mut rows);
    rows
}

fn levels(result: &Value) -> Vec<Value> {
    result["levels"].as_array().cloned().unwrap_or_default()
}

/// A bid rate in a result file, shown after `label`.
fn bids<'a>(label: &'a str, value: &'a Value) -> Figure<'a> {
    (label, value, "bids/s", 0)
}

fn write_rows(dir: &Path, rows: &mut Vec<Row>) {
    if let Some((floor, source)) = load(dir, "write-floor.json") {
        for level in levels(&floor) {
            let gateway = bids("gateway ", &level["gateway_bids_per_sec"]);
            let floor = Some(bids("write floor ", &level["floor_bids_per_sec"]));
            let what = format!("writes, one hot item, {} clients", level["clients"]);
            push(rows, what, (gateway, floor), "≥ 0.6", &source);
        }
    }
    let Some((write, source)) = load(dir, "write.json") else {
        return;
    };
    let auth = &write["auth_comparison"];
    let open = Some(bids("AUTH_MODE=open ", &auth["open_bids_per_sec"]));
    let what = format!("writes with tokens, {} clients", auth["clients"]);
    push(
        rows,
        what,
        (bids("", &auth["token_bids_per_sec"]), open),
        "≥ 0.9",
        &source,
    );
    let Some((off, _)) = load(dir, "write-no-prefilter.json") else {
        return;
    };
    let sources = format!("{source}, write-no-prefilter.json");
    for (on, off) in levels(&write).iter().zip(levels(&off)) {
        // A hot-item level counts `users`; results written before it, `clients`.
        let clients = if on["users"].is_null() {
            &on["clients"]
        } else {
            &on["users"]
        };
        let peer = Some(bids("pre-filter off ", &off["requests_per_sec"]));
        let what = format!("writes, price pre-filter, {clients} clients");
        push(
            rows,
            what,
            (bids("", &on["requests_per_sec"]), peer),
            "—",
            &sources,
        );
    }
}

fn fanout_rows(dir: &Path, rows: &mut Vec<Row>) {
    if let Some((nchan, source)) = load(dir, "fanout-nchan.json") {
        for level in levels(&nchan) {
            let viewers = &level["viewers"];
            let ours = ("", &level["broadcast_p99_ms"], "ms", 1);
            let peer = ("nginx + nchan ", &level["nchan_p99_ms"], "ms", 1);
            let what = format!("fan-out p99, {viewers} viewers");
            push(rows, what, (ours, Some(peer)), "≤ 0.5", &source);
            // About the least any server reaches here, for reading the goal against.
            let floor = ("fanout-floor ", &level["floor"]["p99_ms"], "ms", 1);
            let peer = ("nginx + nchan ", &level["nchan_p99_ms"], "ms", 1);
            let what = format!("fan-out p99, {viewers} viewers, floor (one writer per core)");
            push(rows, what, (floor, Some(peer)), "reference", &source);
            let ours = ("", &level["broadcast_rss_per_viewer_kib"], "KiB", 1);
            let peer = (
                "nginx + nchan ",
                &level["nchan_rss_per_viewer_kib"],
                "KiB",
                1,
            );
            let what = format!("memory per idle viewer, {viewers} viewers");
            push(rows, what, (ours, Some(peer)), "ours < 10 KiB", &source);
        }
    }
    let (Some((fanout, source)), Some((floor, _))) =
        (load(dir, "fanout.json"), load(dir, "fanout-floor.json"))
    else {
        return;
    };
    let (floor_levels, source) = (levels(&floor), format!("{source}, fanout-floor.json"));
    for level in levels(&fanout) {
        let viewers = &level["viewers"];
        let Some(floor) = floor_levels.iter().find(|f| &f["viewers"] == viewers) else {
            continue;
        };
        let ours = ("", &level["latency_ms"]["p99"], "ms", 1);
        let peer = ("fanout-floor ", &floor["latency_ms"]["p99"], "ms", 1);
        let goal = if viewers.as_u64() >= Some(10_000) {
            "≤ 1.3"
        } else {
            "—"
        };
        let what = format!("fan-out p99, {viewers} viewers, 2 bids/s");
        push(rows, what, (ours, Some(peer)), goal, &source);
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
                if let Some(value) = r[field].as_f64() {
                    rows.push(Row {
                        benchmark: format!("{topology}: {what}"),
                        ours: topology.to_owned(),
                        peer: "one Redis, one NATS".to_owned(),
                        ratio: Some(value),
                        goal: "—".to_owned(),
                        source: source.clone(),
                    });
                }
            }
        }
    }
    if let Some((limits, source)) = load(dir, "rate-limits.json") {
        let median = &limits["median_bids_per_sec"]["prefilter_on"];
        let peer = Some(bids("per-instance limiter ", &median["main"]));
        let what = "writes, shared rate limiter, 64 clients".to_owned();
        push(
            rows,
            what,
            (bids("", &median["shared"]), peer),
            "—",
            &source,
        );
    }
    if let Some((archive, source)) = load(dir, "archive.json") {
        let ours = ("", &archive["drain"]["events_per_sec"], "events/s", 0);
        push(rows, "archive drain".to_owned(), (ours, None), "—", &source);
    }
    if let Some((close, source)) = load(dir, "close.json") {
        let what = format!(
            "10,000 closes, end to viewer p99 ({} seen)",
            close["closes_seen"]
        );
        let ours = ("", &close["delay_ms"]["p99"], "ms", 1);
        push(rows, what, (ours, None), "—", &source);
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
            "broadcast_p99_ms":60.0,"nchan_p99_ms":120.0,"floor":{"p99_ms":90.0},
            "broadcast_rss_per_viewer_kib":9.0,"nchan_rss_per_viewer_kib":10.0}]}"#;
        std::fs::write(dir.path().join("fanout-nchan.json"), nchan).unwrap();
        let rows = rows(dir.path());
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].ratio, Some(0.75));
        assert_eq!(rows[0].source, "write-floor.json (2026-12-01)");
        assert_eq!(rows[1].ratio, Some(0.5));
        assert_eq!(
            (rows[2].ratio, rows[2].goal.as_str()),
            (Some(0.75), "reference")
        );
        assert_eq!(rows[3].ratio, Some(0.9));
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
