//! The command line: one subcommand per experiment, and the dispatcher that runs it and
//! prints its summary.

use crate::bench_archive::{self, BenchArchiveArgs};
use crate::bench_close::{self, BenchCloseArgs};
use crate::bench_cluster::{self, BenchClusterArgs};
use crate::bench_listing::{self, BenchListingArgs};
use crate::bench_summary::{self, BenchSummaryArgs};
use crate::bench_write::{self, BenchWriteArgs};
use crate::cluster::{self, ClusterArgs};
use crate::contention::{self, ContentionArgs};
use crate::fanout::nchan::{self, BenchFanoutNchanArgs};
use crate::fanout::viewers::{self, ViewersArgs};
use crate::fanout::{self, BenchFanoutArgs, FanoutArgs};
use crate::fanout_floor::reader::{self, FloorReaderArgs};
use crate::fanout_floor::writer::{self, FloorWriterArgs};
use crate::fanout_floor::{self, FanoutFloorArgs};
use crate::resilience::{self, ResilienceArgs};
use crate::verdict::{Outcome, Verdict};
use crate::write_floor::server::{self as write_floor_server, WriteFloorServerArgs};
use crate::write_floor::{self, BenchWriteFloorArgs};
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
    /// bench-write's hot-item load against the gateway and a minimal floor server (HTTP,
    /// token, JSON, one EVALSHA), alternately; the ratio of their rates.
    BenchWriteFloor(BenchWriteFloorArgs),
    /// The floor server of bench-write-floor (started by it).
    #[command(hide = true)]
    WriteFloorServer(WriteFloorServerArgs),
    /// How fast the archival worker drains a JetStream backlog into PostgreSQL, and the delay
    /// from an accepted bid to its row at a steady bid rate.
    BenchArchive(BenchArchiveArgs),
    /// N WebSocket viewers on one item while bids arrive: delivery, latency, memory per viewer.
    BenchFanout(BenchFanoutArgs),
    /// bench-fanout's level against nginx + nchan (one worker) with the same viewers client,
    /// alternately; the ratio of the p99s and the memory per idle viewer of each.
    BenchFanoutNchan(BenchFanoutNchanArgs),
    /// Many auctions ending in one second: delay from end time to a viewer's `auction_closed`.
    BenchClose(BenchCloseArgs),
    /// The item listing over many items (`?limit=10` latency, a name search) and the bid
    /// latency with and without clients listing.
    BenchListing(BenchListingArgs),
    /// Experiment: N viewers per level on one item while bids arrive; delivery, latency CDF,
    /// memory per viewer, as a report under bench/results/fanout/.
    Fanout(FanoutArgs),
    /// The gateway's two Redis strategies side by side on one hot item and a mixed workload,
    /// each checked for lost updates and for the outbox afterwards.
    Contention(ContentionArgs),
    /// Kill NATS, PostgreSQL, the worker, the broadcast service, a gateway and Redis in turn
    /// under load: availability, errors, recovery time, and no accepted bid lost.
    Resilience(ResilienceArgs),
    /// The hot-item and many-items write loads and a fan-out level on one Redis and NATS server
    /// and on the local cluster (with and without durable accept), in one run.
    BenchCluster(BenchClusterArgs),
    /// The guarantees on the local cluster (infrastructure/local/cluster.sh): the whole path,
    /// then a Redis master, a NATS node, a gateway and a broadcast instance killed under load.
    Cluster(ClusterArgs),
    /// The floor under bench-fanout: its layout in plain TCP, one non-blocking write per socket
    /// per event; receipt latency and the writers' cost per socket.
    FanoutFloor(FanoutFloorArgs),
    /// bench/results/SUMMARY.md: every benchmark's latest figure against its peer or floor.
    BenchSummary(BenchSummaryArgs),
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
    /// The runtime this command runs on: the client processes run a blocking event loop on
    /// one thread, where worker threads would spend more time parking, waking and stealing
    /// than reading; everything else keeps the multi-threaded default.
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

/// Prints a finished experiment's summary on stdout (the program's output; progress goes to
/// stderr through `tracing`) and returns its verdict.
fn report(result: &impl Outcome) -> Verdict {
    println!("{}", result.summary());
    result.verdict()
}

/// Runs `command` and says whether its checks passed.
///
/// # Errors
/// The experiment could not run to the end (see each experiment's `run`).
pub async fn run(command: Command) -> anyhow::Result<Verdict> {
    Ok(match command {
        Command::BenchWrite(args) => report(&bench_write::run(&args).await?),
        Command::BenchWriteFloor(args) => report(&write_floor::run(&args).await?),
        Command::WriteFloorServer(args) => write_floor_server::run(&args)
            .await
            .map(|()| Verdict::Passed)?,
        Command::BenchArchive(args) => report(&bench_archive::run(&args).await?),
        Command::BenchFanout(args) => report(&fanout::bench(&args).await?),
        Command::BenchFanoutNchan(args) => report(&nchan::run(&args).await?),
        Command::BenchClose(args) => report(&bench_close::run(&args).await?),
        Command::BenchListing(args) => report(&bench_listing::run(&args).await?),
        Command::Fanout(args) => report(&fanout::run(&args).await?),
        Command::Contention(args) => report(&contention::run(&args).await?),
        Command::Resilience(args) => report(&resilience::run(&args).await?),
        Command::BenchCluster(args) => report(&bench_cluster::run(&args).await?),
        Command::Cluster(args) => report(&cluster::run(&args).await?),
        Command::BenchSummary(args) => report(&bench_summary::run(&args)?),
        Command::FanoutFloor(args) => report(&fanout_floor::run(&args).await?),
        // Blocking on purpose: each is one thread doing socket work, on a runtime of its own.
        Command::Viewers(args) => viewers::run(&args).map(|()| Verdict::Passed)?,
        Command::FloorWriter(args) => writer::run(&args).map(|()| Verdict::Passed)?,
        Command::FloorReader(args) => reader::run(&args).map(|()| Verdict::Passed)?,
    })
}
