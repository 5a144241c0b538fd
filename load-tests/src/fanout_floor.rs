//! `fanout-floor`: the least any server can spend here to put one small event on N sockets,
//! measured with bench-fanout's layout, so its figures can be read against this floor.
//!
//! Per level: ⌈N / per-process⌉ [`writer`] processes (bench-fanout's broadcast instances) and
//! as many [`reader`] processes (its viewer processes), each reader connecting its share from
//! its own 127.0.0.x address to one writer in plain TCP: no WebSocket, no tasks, no queues.
//! Each writer makes `rounds` passes, all starting at the same wall-clock tick (as broadcast
//! instances receive the same NATS event): stamp a [`frame`] as long as a real `bid_placed`
//! one and write it to each socket. Readers record stamp to receipt; writers, each pass.

pub mod frame;
pub mod reader;
pub mod writer;

use self::reader::ReaderReport;
use self::writer::WriterReport;
use crate::bench_result::{BenchResult, Started};
use crate::handoff::{Handoff, each_level, publish, shares};
use crate::host::load_average;
use crate::latency::{Histogram, LatencyMs, RECEIPT_BUCKET, from_ms, wall_clock_us};
use anyhow::bail;
use clap::Args;
use serde::Serialize;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// From the start time's publication to the first pass: time for every writer to see it
/// (they look every millisecond) with plenty to spare on a busy machine.
const START_LEAD: Duration = Duration::from_millis(500);

/// Source address of the first reader; reader `k` uses the `k`-th address after it. Not
/// bench-fanout's 127.0.0.11 onwards: on a shared machine the two may run at once, and a source
/// address's ~28,000 ephemeral ports (and its TIME_WAIT sockets) would then be shared.
const FIRST_READER_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 111);

/// Most time a level's connections may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(300);

/// Flags of `load-tests fanout-floor`.
#[derive(Debug, Clone, Args)]
pub struct FanoutFloorArgs {
    /// Viewer (socket) counts, one level each.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,50000")]
    pub viewers: Vec<usize>,
    /// Most sockets per writer and per reader process (bench-fanout's per-process).
    #[arg(long, default_value_t = 12_500)]
    pub per_process: usize,
    /// Passes per level; each writes one frame to every socket.
    #[arg(long, default_value_t = 20)]
    pub rounds: u32,
    /// Time between passes (500 ms is bench-fanout's 2 bids/s).
    #[arg(long, default_value_t = 500)]
    pub interval_ms: u64,
    /// Bytes per frame (default: a real `bid_placed` WebSocket frame).
    #[arg(long, default_value_t = frame::bid_placed_frame_bytes())]
    pub frame_bytes: usize,
    #[arg(long, default_value = "bench/results/fanout-floor.json")]
    pub out: PathBuf,
    /// The `load-tests` binary that runs the writer and reader processes (default: this one).
    #[arg(long)]
    pub floor_bin: Option<PathBuf>,
}

/// The JSON result; it fails unless every frame reached every socket, in order, and no write
/// would have blocked.
pub type FloorResult = BenchResult<Floor>;

/// The figures of the run.
#[derive(Debug, Serialize)]
pub struct Floor {
    pub per_process: usize,
    pub rounds: u32,
    pub interval_ms: u64,
    pub frame_bytes: usize,
    pub levels: Vec<FloorLevel>,
}

#[derive(Debug, Serialize)]
pub struct FloorLevel {
    pub viewers: usize,
    /// Sockets the readers connected.
    pub connected: usize,
    /// Writer processes, and as many reader processes.
    pub writer_processes: usize,
    /// Every viewer times every pass.
    pub frames_expected: u64,
    /// Whole frames received in pass order.
    pub frames_received: u64,
    pub delivery_ratio: f64,
    /// Writes that would have blocked or took part of a frame (each dropped its socket).
    pub would_block: u64,
    pub write_errors: u64,
    /// Frames out of pass order on their socket.
    pub out_of_order: u64,
    /// Sockets whose stream ended, or still lacked frames at the readers' timeout.
    pub sockets_short: usize,
    /// From the writer's stamp to the reader's receipt. All zero when nothing arrived.
    pub latency_ms: LatencyMs,
    /// Median over every writer's passes of one pass's duration.
    pub pass_ms_median: f64,
    pub pass_ms_max: f64,
    /// Median over every writer's passes of its duration divided by its sockets.
    pub pass_us_per_socket_median: f64,
    /// Latest start of a pass after its tick (not in the latency, which starts at the stamp).
    pub pass_late_ms_max: f64,
    pub connect_secs: f64,
    /// 1-minute load average before the level's processes started and after they ended (the
    /// machine is shared: this says how busy it was, this run's own work included).
    pub load_average_before: f64,
    pub load_average_after: f64,
}

impl FloorLevel {
    /// What went wrong in the level: a frame missing, out of order, or a write that would
    /// have blocked.
    pub fn violations(&self) -> Vec<String> {
        let whole = self.delivery_ratio == 1.0
            && self.would_block == 0
            && self.write_errors == 0
            && self.out_of_order == 0;
        let (n, delivery) = (self.viewers, self.delivery_ratio);
        let (blocked, errors, disorder) = (self.would_block, self.write_errors, self.out_of_order);
        let what = format!(
            "{n} viewers: delivery {delivery:.6}, {blocked} writes would block, {errors} write \
             errors, {disorder} frames out of order"
        );
        if whole { Vec::new() } else { vec![what] }
    }
}

/// Runs every level and writes the JSON result.
///
/// # Errors
/// When the flags make no sense, a writer or reader process cannot run, or the result cannot
/// be written.
pub async fn run(args: &FanoutFloorArgs) -> anyhow::Result<FloorResult> {
    frame::new_frame(args.frame_bytes)?;
    if args.per_process == 0 || args.viewers.contains(&0) {
        bail!("--viewers and --per-process must be at least 1");
    }
    let started = Started::now("fanout-floor");
    let levels = each_level("fanout-floor", &args.viewers, async |n| {
        level(args, n).await
    })
    .await?;
    let violations = levels.iter().flat_map(FloorLevel::violations).collect();
    let figures = Floor {
        per_process: args.per_process,
        rounds: args.rounds,
        interval_ms: args.interval_ms,
        frame_bytes: args.frame_bytes,
        levels,
    };
    started.finish(figures, violations, &args.out)
}

/// Runs one level: writers, readers, the passes, the processes' reports merged.
///
/// # Errors
/// When a writer or reader process cannot start, or does not report in time.
pub async fn level(args: &FanoutFloorArgs, viewers: usize) -> anyhow::Result<FloorLevel> {
    let shares = shares(viewers, args.per_process);
    let files = Handoff::create("floor")?;
    let bin = args.floor_bin.as_deref();
    let common = |command: &mut tokio::process::Command| {
        command.args(["--rounds", &args.rounds.to_string()]);
        command.args(["--frame-bytes", &args.frame_bytes.to_string()]);
    };
    let load_average_before = load_average();
    let started = Instant::now();
    let mut children = files.spawn(bin, "floor-writer", &shares, |k, w| {
        common(w);
        w.args(["--interval-ms", &args.interval_ms.to_string()]);
        w.arg("--port-file").arg(files.file("port", Some(k)));
        w.arg("--start-file").arg(files.file("start", None));
        w.arg("--done-file").arg(files.file("done", None));
        w.arg("--out").arg(files.file("writer", Some(k)));
    })?;
    let mut ports = Vec::with_capacity(shares.len());
    for k in 0..shares.len() {
        ports.push(files.wait("port", k, CONNECT_TIMEOUT).await?);
    }
    children.extend(files.spawn(bin, "floor-reader", &shares, |k, r| {
        common(r);
        let port = ports.get(k).map_or("", |p| p.trim());
        r.args(["--server", &format!("127.0.0.1:{port}")]);
        r.args(["--source", &reader_source(k).to_string()]);
        r.arg("--ready-file").arg(files.file("ready", Some(k)));
        r.arg("--out").arg(files.file("reader", Some(k)));
    })?);
    let connected = files.sum("ready", shares.len(), CONNECT_TIMEOUT).await?;
    let connect_secs = started.elapsed().as_secs_f64();
    tracing::info!(viewers, connected, connect_secs, "connected; writing");
    let start_us = wall_clock_us() + START_LEAD.as_micros() as u64;
    publish(&files.file("start", None), &start_us.to_string())?;

    let passes = Duration::from_millis(args.interval_ms.saturating_mul(u64::from(args.rounds)));
    let timeout = START_LEAD + passes + Duration::from_secs(120);
    let writers: Vec<WriterReport> = files.reports("writer", shares.len(), timeout).await?;
    let readers: Vec<ReaderReport> = files.reports("reader", shares.len(), timeout).await?;
    publish(&files.file("done", None), "1")?;
    for mut child in children {
        // They exit right after the done file; one that does not is killed on drop.
        let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    }

    let mut histogram = Histogram::bucketed(RECEIPT_BUCKET);
    readers.iter().for_each(|r| histogram.merge(&r.histogram));
    let (mut pass, mut per_socket) = (Histogram::exact(), Histogram::exact());
    let passes = || writers.iter().flat_map(|w| w.passes.iter());
    for p in passes() {
        pass.record(Duration::from_micros(p.micros));
        per_socket.record(from_ms(p.micros_per_socket() / 1000.0));
    }
    let median_us = |h: &Histogram| h.quantile(0.5).map_or(0.0, |d| d.as_nanos() as f64 / 1e3);
    let frames_expected = viewers as u64 * u64::from(args.rounds);
    let frames_received: u64 = readers.iter().map(|r| r.frames).sum();
    Ok(FloorLevel {
        viewers,
        connected: readers.iter().map(|r| r.connected).sum(),
        writer_processes: writers.len(),
        frames_expected,
        frames_received,
        delivery_ratio: frames_received as f64 / frames_expected.max(1) as f64,
        would_block: writers.iter().map(|w| w.would_block).sum(),
        write_errors: writers.iter().map(|w| w.write_errors).sum(),
        out_of_order: readers.iter().map(|r| r.out_of_order).sum(),
        sockets_short: readers.iter().map(|r| r.ended_early + r.timed_out).sum(),
        latency_ms: histogram.latency().unwrap_or_default(),
        pass_ms_median: median_us(&pass) / 1000.0,
        pass_ms_max: pass.latency().map_or(0.0, |l| l.max),
        pass_us_per_socket_median: median_us(&per_socket),
        pass_late_ms_max: passes().map(|p| p.late_us).max().unwrap_or(0) as f64 / 1000.0,
        connect_secs,
        load_average_before,
        load_average_after: load_average(),
    })
}

/// Source address of reader `k` (still in 127.0.0.0/8, loopback, for any realistic `k`).
fn reader_source(k: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(FIRST_READER_SOURCE).saturating_add(k as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_get_consecutive_loopback_sources_past_bench_fanouts() {
        assert_eq!(reader_source(0), Ipv4Addr::new(127, 0, 0, 111));
        assert_eq!(reader_source(3), Ipv4Addr::new(127, 0, 0, 114));
        assert_eq!(reader_source(200), Ipv4Addr::new(127, 0, 1, 55));
    }
}
