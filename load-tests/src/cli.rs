//! The command line: one subcommand per experiment, and the dispatcher that
//! runs it and prints its summary.

use crate::bench_archive::{self, BenchArchiveArgs};
use crate::bench_close::{self, BenchCloseArgs};
use crate::bench_fanout::{self, BenchFanoutArgs};
use crate::bench_write::{self, BenchWriteArgs};
use crate::contention::{self, ContentionArgs};
use crate::fanout::{self, FanoutArgs};
use crate::fanout_floor::reader::FloorReaderArgs;
use crate::fanout_floor::writer::FloorWriterArgs;
use crate::fanout_floor::{self, FanoutFloorArgs};
use crate::resilience::{self, ResilienceArgs};
use crate::viewers::{self, ViewersArgs};
use clap::{Parser, Subcommand};

/// Load experiments against the auction platform (goose).
#[derive(Debug, Parser)]
#[command(name = "load-tests", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The experiments.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bid throughput and latency per client level on one hot item, then check
    /// that the item counted exactly the accepted bids.
    BenchWrite(BenchWriteArgs),
    /// How fast the archival worker drains a JetStream backlog into PostgreSQL, and the delay
    /// from an accepted bid to its row at a steady bid rate.
    BenchArchive(BenchArchiveArgs),
    /// N WebSocket viewers on one item while bids arrive: delivery, latency, memory per viewer.
    BenchFanout(BenchFanoutArgs),
    /// Many auctions ending in one second: delay from end time to a viewer's `auction_closed`.
    BenchClose(BenchCloseArgs),
    /// Experiment: N viewers per level on one item while bids arrive; delivery, latency CDF,
    /// memory per viewer, as a report under bench/results/fanout/.
    Fanout(FanoutArgs),
    /// N users bidding on one item (and a mixed workload over many items) against the
    /// gateway's two Redis strategies side by side, each checked for lost updates and for
    /// the outbox afterwards.
    Contention(ContentionArgs),
    /// Kill NATS, PostgreSQL, the worker, the broadcast service, a gateway and Redis in turn
    /// under load: availability, errors, recovery time, and no accepted bid lost.
    Resilience(ResilienceArgs),
    /// The floor under bench-fanout: the same layout of processes and sockets in plain TCP, one
    /// non-blocking write per socket per event; receipt latency and the writers' cost per
    /// socket.
    FanoutFloor(FanoutFloorArgs),
    /// One client process of bench-fanout (started by it).
    Viewers(ViewersArgs),
    /// One writer process of fanout-floor (started by it).
    #[command(hide = true)]
    FloorWriter(FloorWriterArgs),
    /// One reader process of fanout-floor (started by it).
    #[command(hide = true)]
    FloorReader(FloorReaderArgs),
}

impl Command {
    /// The runtime this command runs on. A `viewers` client process and fanout-floor's writer
    /// and reader processes run blocking event loops on their one thread and need no worker
    /// threads at all: on cores they share with the services they measure, workers spent
    /// more time parking, waking and stealing tasks than reading. Everything else keeps the
    /// multi-threaded default.
    ///
    /// # Errors
    /// When the runtime cannot be built (out of threads or file descriptors).
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = match self {
            Self::Viewers(_) | Self::FloorWriter(_) | Self::FloorReader(_) => {
                tokio::runtime::Builder::new_current_thread()
            }
            _ => tokio::runtime::Builder::new_multi_thread(),
        };
        builder.enable_all().build()
    }
}

/// How an experiment that ran to the end came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every check passed.
    Passed,
    /// The run finished but a correctness check failed.
    Violated,
}

/// Runs `command`, prints its human summary on stdout (the program's output;
/// progress goes to stderr through `tracing`) and says whether its checks passed.
///
/// # Errors
///
/// The experiment could not run to the end (see each experiment's `run`).
pub async fn run(command: Command) -> anyhow::Result<Verdict> {
    match command {
        Command::BenchWrite(args) => {
            let result = bench_write::run(&args).await?;
            println!("{}", bench_write::summary(&result));
            Ok(if result.all_correct() {
                Verdict::Passed
            } else {
                Verdict::Violated
            })
        }
        Command::BenchFanout(args) => {
            let result = bench_fanout::run(&args).await?;
            println!("{}", bench_fanout::summary(&result));
            Ok(
                if result
                    .levels
                    .iter()
                    .all(|l| l.connected == l.viewers && l.bids_accepted > 0)
                {
                    Verdict::Passed
                } else {
                    Verdict::Violated
                },
            )
        }
        Command::Fanout(args) => {
            let report = fanout::run(&args).await?;
            println!("{}", fanout::summary(&report));
            Ok(if report.passed() {
                Verdict::Passed
            } else {
                Verdict::Violated
            })
        }
        Command::BenchClose(args) => {
            let result = bench_close::run(&args).await?;
            println!("{}", bench_close::summary(&result));
            Ok(Verdict::Passed)
        }
        Command::Contention(args) => {
            let result = contention::run(&args).await?;
            println!("{}", contention::summary(&result));
            Ok(result.verdict())
        }
        Command::Resilience(args) => {
            let result = resilience::run(&args).await?;
            println!("{}", resilience::summary(&result));
            Ok(if result.passed() {
                Verdict::Passed
            } else {
                Verdict::Violated
            })
        }
        Command::FanoutFloor(args) => {
            let result = fanout_floor::run(&args).await?;
            println!("{}", fanout_floor::summary(&result));
            Ok(if result.passed() {
                Verdict::Passed
            } else {
                Verdict::Violated
            })
        }
        // Blocking on purpose: each is one thread doing socket work, on a runtime of its own.
        Command::Viewers(args) => {
            viewers::run(&args)?;
            Ok(Verdict::Passed)
        }
        Command::FloorWriter(args) => {
            fanout_floor::writer::run(&args)?;
            Ok(Verdict::Passed)
        }
        Command::FloorReader(args) => {
            fanout_floor::reader::run(&args)?;
            Ok(Verdict::Passed)
        }
        Command::BenchArchive(args) => {
            let result = bench_archive::run(&args).await?;
            println!("{}", bench_archive::summary(&result));
            Ok(
                if result.drain.rows == result.drain.events as i64
                    && result.steady.rows == result.steady.accepted as i64
                {
                    Verdict::Passed
                } else {
                    Verdict::Violated
                },
            )
        }
    }
}
