//! The report people read: `README.md` (one row per fault, then the loss check), the charts
//! (`timeline.svg`, `availability.svg`) and `result.json`.

use super::cluster::VICTIM_GATEWAY;
use super::faults::Fault;
use super::timeline::{Second, WindowStats};
use super::{FaultResult, ResilienceResult};
use crate::charts::{Series, bar_chart, line_chart};
use crate::report::{ReportDir, markdown_table, violations_section};
use crate::verdict::Outcome;
use std::fmt::Write as _;
use std::path::Path;

/// Writes `result.json`, `README.md` and both charts under `dir`.
///
/// # Errors
/// A file cannot be written.
pub fn write(dir: &Path, result: ResilienceResult) -> anyhow::Result<ResilienceResult> {
    let report = ReportDir::create(dir)?;
    timeline_chart(&report.chart("timeline"), &result)?;
    availability_chart(&report.chart("availability"), &result)?;
    let markdown = markdown(&result);
    result.write_report(&report, markdown)
}

fn timeline_chart(path: &Path, r: &ResilienceResult) -> anyhow::Result<()> {
    let line = |name: &str, value: fn(&Second) -> u64| {
        let points = r
            .per_second
            .iter()
            .map(|s| (s.second as f64, value(s) as f64));
        Series::new(name, points.collect())
    };
    let labels = (
        "Bids per second through the faults",
        "seconds since the load started",
        "per second",
    );
    line_chart(
        path,
        labels,
        &[
            line("bids answered 2xx", |s| s.bids_2xx),
            line("bids failed", |s| s.bids_failed),
            line("viewer events", |s| s.viewer_events),
        ],
    )
}

fn availability_chart(path: &Path, r: &ResilienceResult) -> anyhow::Result<()> {
    let categories: Vec<String> = r.faults.iter().map(|f| f.fault.name().to_owned()).collect();
    let bars = |name: &str, value: fn(&FaultResult) -> f64| {
        Series::bars(name, r.faults.iter().map(|f| value(f) * 100.0))
    };
    let labels = (
        "Bids answered 2xx while the component was down",
        "component killed",
        "% of bids",
    );
    bar_chart(
        path,
        labels,
        &categories,
        &[
            bars("all bids", |f| f.outage.availability),
            bars("gateway 0", |f| gateway_availability(f, 0)),
            bars("gateway 1", |f| gateway_availability(f, 1)),
        ],
    )
}

fn gateway_availability(f: &FaultResult, gateway: usize) -> f64 {
    f.outage_per_gateway
        .get(gateway)
        .map_or(0.0, |w| w.availability)
}

fn percent(value: f64) -> String {
    format!("{:.1} %", value * 100.0)
}

fn millis(value: Option<f64>) -> String {
    value.map_or_else(|| "never".to_owned(), |ms| format!("{ms:.0} ms"))
}

/// `503 unavailable ×12, transport connect ×3`, or `none`.
fn counted<'a>(counts: impl Iterator<Item = (&'a String, &'a usize)>) -> String {
    let counts: Vec<String> = counts.map(|(label, n)| format!("{label} ×{n}")).collect();
    if counts.is_empty() {
        "none".to_owned()
    } else {
        counts.join(", ")
    }
}

/// The answers other than 2xx in `w`.
fn errors_seen(w: &WindowStats) -> String {
    counted(
        w.answers
            .iter()
            .filter(|(label, _)| !label.starts_with('2')),
    )
}

/// What the row's figures mean for this fault, in words.
fn notes(f: &FaultResult) -> String {
    let mut notes = vec![f.expectation.to_owned()];
    match f.fault {
        Fault::Nats | Fault::Broadcast => notes.push(format!(
            "viewer events in outage: {}, first event {} after restart",
            f.viewer_events_in_outage,
            millis(f.viewer_resumed_ms)
        )),
        Fault::Postgres | Fault::Worker => notes.push(format!(
            "archive held every earlier bid {} after restart",
            millis(f.times.archive_caught_up_ms)
        )),
        Fault::Gateway => notes.push(format!(
            "survivor (gateway 0) {}, killed (gateway {VICTIM_GATEWAY}) {}",
            percent(gateway_availability(f, 0)),
            percent(gateway_availability(f, VICTIM_GATEWAY))
        )),
        Fault::Redis => notes.push(format!(
            "503 latency p50 {:.1} ms, p99 {:.1} ms (must be < 250 ms)",
            f.outage.unavailable_latency_ms.p50, f.outage.unavailable_latency_ms.p99
        )),
    }
    if !f.violations.is_empty() {
        notes.push(format!("**VIOLATED**: {}", f.violations.join("; ")));
    }
    notes.join("; ")
}

pub(super) fn markdown(r: &ResilienceResult) -> String {
    let p = &r.plan;
    let mut text = format!(
        "# Resilience\n\nEach component is killed in turn for {} s under a steady load of {} \
         bids/s (spread over 4 items, alternating between two gateways) plus one read per 5 bids, \
         with {} s of healthy time before each fault and at least as much after each restart. \
         Redis runs with an append-only file (written before each reply, fsynced every second). \
         {} bids and {} reads were sent on {} cores.\n\n**Verdict: {}**\n\n",
        p.outage_secs,
        p.rate,
        p.settle_secs,
        r.bids_sent,
        r.reads_sent,
        r.machine.cores,
        if r.passed() { "passed" } else { "VIOLATED" },
    );
    let rows: Vec<Vec<String>> = r
        .faults
        .iter()
        .map(|f| {
            vec![
                f.fault.name().to_owned(),
                percent(f.before.availability),
                format!("{} of {}", percent(f.outage.availability), f.outage.bids),
                errors_seen(&f.outage),
                format!(
                    "{:.0} / {:.0} ms",
                    f.outage.failed_latency_ms.p50, f.outage.failed_latency_ms.p99
                ),
                format!("{:.0} ms", f.times.ready_ms - f.times.restart_ms),
                millis(f.recovery_ms),
                notes(f),
            ]
        })
        .collect();
    let header = "fault | bids 2xx before | bids 2xx during outage | errors seen | \
                  failed p50 / p99 | restart took | writes recovered after | notes";
    text.push_str(&markdown_table(header, &rows));
    text.push_str(
        "\n*Writes recovered after*: from the restart to the first bid of a run of ≥ 1 s of bids \
         all answered 2xx. *Failed p50 / p99*: latency of the bids not answered 2xx. *Bids 2xx \
         before*: the healthy window before the kill (the baseline an outage of a component off \
         the write path is held to, within 1 point or 2 bids, whichever is more).\n\n\
         Fault windows (seconds since the load started):\n\n",
    );
    for f in &r.faults {
        let _ = writeln!(
            text,
            "- {}: killed at {:.1}, restart issued at {:.1}, ready at {:.1}",
            f.fault.name(),
            f.times.kill_ms / 1000.0,
            f.times.restart_ms / 1000.0,
            f.times.ready_ms / 1000.0
        );
    }
    let l = &r.loss;
    let _ = write!(
        text,
        "\n## Loss check\n\nAfter the load stopped, the archive held every accepted bid {}. \
         Accepted (distinct event ids): {}; rows in `bids`: {}; **lost: {}**; rows whose bid got \
         no 2xx answer although the bid was stored: {} ({}); **unexplained rows: {}**; \
         JetStream archive stream messages: {}.\n",
        l.drained_after_ms
            .map_or("**never** (within 60 s)".to_owned(), |ms| format!(
                "{ms:.0} ms later"
            )),
        l.accepted,
        l.archived,
        l.lost,
        l.answer_lost,
        counted(l.answer_lost_by_label.iter()),
        l.unexplained,
        l.stream_messages
            .map_or("unknown".to_owned(), |n| n.to_string()),
    );
    text.push_str(&violations_section(&r.violations));
    text.push_str(
        "\n## Charts\n\n![bids per second](timeline.svg)\n\n![availability](availability.svg)\n",
    );
    text
}
