//! The contention report: `result.json` (every figure), `README.md` (the side-by-side tables
//! people read, linking the charts) and four SVG charts: hot-item bids/s and p99 per users
//! level, the bid latency CDF at the highest level, and the mixed run's rate per request kind.

use super::{ContentionResult, HotLevel, StrategyResult};
use crate::charts::{Series, bar_chart, line_chart};
use crate::goose_run::RequestStats;
use crate::latency::LatencyMs;
use crate::report::{ReportDir, markdown_table};
use std::fmt::Write as _;

/// Writes `result.json`, the charts and `README.md` into `dir`.
///
/// # Errors
/// A file cannot be written or a chart cannot be drawn.
pub fn write(dir: &ReportDir, result: ContentionResult) -> anyhow::Result<ContentionResult> {
    let users = &result.args.users;
    let levels: Vec<String> = users.iter().map(|u| format!("{u} users")).collect();
    // One bar series per strategy: `value` of each of its levels, in `--users` order.
    let per_level = |value: fn(&HotLevel) -> f64| -> Vec<Series> {
        let series = |s: &StrategyResult| {
            let level = |users| s.hot.iter().find(|l| l.users == users).map_or(0.0, value);
            Series::bars(s.strategy.name(), users.iter().map(|u| level(*u)))
        };
        result.strategies.iter().map(series).collect()
    };
    let x = "concurrent bidders on one item";
    let labels = ("Hot item: bids per second", x, "bids/s");
    bar_chart(
        &dir.chart("throughput"),
        labels,
        &levels,
        &per_level(|l| l.bids.per_sec),
    )?;
    let p99 = per_level(|l| l.bids.latency_ms.map_or(0.0, |l| l.p99));
    bar_chart(
        &dir.chart("p99"),
        ("Hot item: p99 bid latency", x, "ms"),
        &levels,
        &p99,
    )?;
    let top = users.iter().max().copied().unwrap_or(0);
    let cdf = |s: &StrategyResult| {
        let level = s.hot.iter().find(|level| level.users == top);
        let points = level.map(|level| level.latency_cdf.clone());
        Series::new(s.strategy.name(), points.unwrap_or_default())
    };
    let cdf: Vec<Series> = result.strategies.iter().map(cdf).collect();
    let title = format!("Hot item: bid latency CDF at {top} bidders");
    let labels = (title.as_str(), "ms (time to first byte)", "share of bids");
    line_chart(&dir.chart("latency-cdf"), labels, &cdf)?;
    let kinds: Vec<String> = result.strategies.first().map_or_else(Vec::new, |s| {
        s.mixed.requests.iter().map(|r| r.name.clone()).collect()
    });
    let mixed = |s: &StrategyResult| {
        Series::bars(
            s.strategy.name(),
            s.mixed.requests.iter().map(|r| r.per_sec),
        )
    };
    let mixed: Vec<Series> = result.strategies.iter().map(mixed).collect();
    let labels = (
        "Mixed workload: requests per second by kind",
        "",
        "requests/s",
    );
    bar_chart(&dir.chart("mixed"), labels, &kinds, &mixed)?;
    let markdown = markdown(&result);
    result.write_report(dir, markdown)
}

/// A table of `columns` after the strategy's, with the `rows` of each strategy in turn.
fn table(
    result: &ContentionResult,
    columns: &str,
    rows: impl Fn(&StrategyResult) -> Vec<Vec<String>>,
) -> String {
    let strategy_rows = |s: &StrategyResult| {
        let name = |row: Vec<String>| [vec![s.strategy.name().to_owned()], row].concat();
        rows(s).into_iter().map(name).collect::<Vec<_>>()
    };
    let rows: Vec<Vec<String>> = result.strategies.iter().flat_map(strategy_rows).collect();
    markdown_table(&format!("strategy | {columns}"), &rows)
}

/// The p50, p99, p99.9 and max cells, `-` when nothing was timed.
fn percentiles(latency: Option<LatencyMs>) -> [String; 4] {
    let ms = |pick: fn(LatencyMs) -> f64| latency.map_or("-".into(), |l| format!("{:.2}", pick(l)));
    [ms(|l| l.p50), ms(|l| l.p99), ms(|l| l.p999), ms(|l| l.max)]
}

fn verdict_cell(violations: &[String]) -> String {
    match violations.len() {
        0 => "pass".to_owned(),
        n => format!("**FAIL** ({n})"),
    }
}

fn errors_cell(errors: &std::collections::BTreeMap<String, u64>) -> String {
    let errors: Vec<String> = errors
        .iter()
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    if errors.is_empty() {
        "0".to_owned()
    } else {
        errors.join(", ")
    }
}

/// The README: how the run was made, the side-by-side tables, the charts, the verdict.
fn markdown(result: &ContentionResult) -> String {
    let args = &result.args;
    let mut text = String::from("# Contention: Lua script vs optimistic WATCH/MULTI/EXEC\n\n");
    let _ = writeln!(
        text,
        "Started {} on {} cores ({}/{}){}. Each level and the mixed run last {} s after hatch; \
         price pre-filter {}; gateway Redis deadline {} ms; each strategy ran against its own \
         freshly started gateway.\n",
        result.started_at,
        result.machine.cores,
        result.machine.os,
        result.machine.arch,
        if result.smoke {
            ", **smoke run: the figures are not a benchmark**"
        } else {
            ""
        },
        args.run.duration_secs,
        if args.prefilter { "on" } else { "off" },
        args.redis_timeout_ms,
    );

    text.push_str("## Hot item\n\nN users bid on one item as fast as they can.\n\n");
    text.push_str(&table(
        result,
        "users | bids | bids/s | accepted/s | rejected | errors | p50 ms | p99 ms | p99.9 ms | \
         max ms | retries/accepted",
        |s| {
            let row = |l: &HotLevel| {
                let retries = l.retries_per_accepted.map(|r| format!("{r:.2}"));
                let head = [
                    l.users.to_string(),
                    l.bids.requests.to_string(),
                    format!("{:.1}", l.bids.per_sec),
                    format!("{:.1}", l.accepted_per_sec),
                    l.rejected.to_string(),
                    errors_cell(&l.errors),
                ];
                let tail = [
                    retries.unwrap_or_else(|| "-".into()),
                    verdict_cell(&l.violations),
                ];
                [&head[..], &percentiles(l.bids.latency_ms), &tail].concat()
            };
            s.hot.iter().map(row).collect()
        },
    ));
    text.push_str(
        "\n![bids per second](throughput.svg)\n\n![p99 latency](p99.svg)\n\n\
         ![latency CDF at the highest level](latency-cdf.svg)\n\n",
    );

    let _ = writeln!(
        text,
        "## Mixed workload\n\n{} users over {} items: 60 % bids on a random item, 30 % item \
         reads, 10 % list reads.\n",
        args.mixed_users, args.mixed_items
    );
    text.push_str(&table(
        result,
        "request | count | per s | failed | p50 ms | p99 ms | p99.9 ms | max ms",
        |s| {
            let row = |r: &RequestStats| {
                let head = [r.name.clone(), r.requests.to_string()];
                let head = [
                    &head[..],
                    &[format!("{:.1}", r.per_sec), r.failed.to_string()],
                ];
                [&head.concat()[..], &percentiles(r.latency_ms)].concat()
            };
            s.mixed.requests.iter().map(row).collect()
        },
    ));
    text.push('\n');
    text.push_str(&table(
        result,
        "accepted/s | rejected | items with bids | check",
        |s| {
            let m = &s.mixed;
            vec![vec![
                format!("{:.1}", m.accepted_per_sec),
                m.rejected.to_string(),
                format!("{} / {}", m.items_with_bids, m.items),
                verdict_cell(&m.violations),
            ]]
        },
    ));
    text.push_str("\n![mixed workload](mixed.svg)\n\n");

    text.push_str(
        "## Checks\n\nPer item, read back through `GET /api/v1/items/{id}`: final price = highest \
         accepted bid, `seq` = `bid_count` = accepted bids, every bid rejected as too low < final \
         price + minimum increment; no 500 or unreadable reply (503s are reported above; a 503 \
         may hide an applied bid); no kind of request refused more often than answered. \
         Outbox: the run's JetStream stream holds exactly one message per accepted bid.\n\n",
    );
    text.push_str(&table(
        result,
        "accepted bids | messages in stream | waited s | all checks",
        |s| {
            let a = &s.archive;
            vec![vec![
                a.expected.to_string(),
                a.found.to_string(),
                format!("{:.1}", a.waited_secs),
                verdict_cell(&s.violations()),
            ]]
        },
    ));
    if result.violations.is_empty() {
        text.push_str("\n**Every check passed.**\n");
    } else {
        text.push_str("\n**Correctness violated:**\n\n");
        for v in &result.violations {
            let _ = writeln!(text, "- {v}");
        }
    }
    text
}
