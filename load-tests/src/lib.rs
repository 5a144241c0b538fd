//! Load experiments against the auction platform. Each experiment is one module with its clap
//! `Args` and a `run` that writes and returns its result, an [`Outcome`] (a [`Verdict`] and a
//! summary for people), so `main` only dispatches ([`cli`]). The experiments:
//!
//! - [`contention`]: the gateway's Lua and optimistic Redis strategies side by side on a hot
//!   item and a mixed workload (goose), with lost-update and outbox checks.
//! - [`bench_write`]: contention's hot-item level against one gateway as configured.
//! - [`write_floor`]: that load against the gateway and a minimal floor server, alternately.
//! - [`fanout`]: WebSocket fan-out, as the `fanout` report or the `bench-fanout` JSON, with
//!   its `viewers` client processes.
//! - [`fanout_floor`]: the floor under fan-out: its layout in plain TCP.
//! - [`resilience`]: kill each component in turn under load; availability, recovery time and
//!   the loss check (throwaway Redis/NATS/PostgreSQL and its own services).
//! - [`bench_archive`]: archive drain rate and accept-to-row delay.
//! - [`bench_close`]: delay from auction end to a viewer's `auction_closed`.
//! - [`bench_listing`]: the item listing over 20,000 items, and bids with clients listing.
//! - [`bench_cluster`]: the write loads and a fan-out level on one node and on the cluster.
//! - [`cluster`]: the guarantees on the local cluster (`cluster.sh`): the whole path, a Redis
//!   master, a NATS node, a gateway and a broadcast instance killed under load.
//!
//! - [`bench_summary`]: one table of every benchmark against its peer or floor.
//!
//! What they share:
//!
//! - [`bench_result`]: every experiment's one result and its verdict.
//! - [`service`]: starting, crashing and stopping any service binary or a set of them; a run's
//!   namespace.
//! - [`api`]: every gateway call, the bid body and the replies.
//! - [`credentials`]: the run's signing key and its users' access tokens.
//! - [`goose_run`]: one goose attack and what is read from its metrics.
//! - [`open_loop`]: bids at a fixed rate whatever happens, every answer recorded.
//! - [`watcher`]: a reconnecting WebSocket viewer.
//! - [`archive`]: reading the archive's rows and a JetStream stream's count.
//! - [`latency`]: the one histogram and latency summary.
//! - [`figures`]: rates, rounding, ratios and medians of runs, as the results report them.
//! - [`handoff`]: files between an orchestrator and its client processes.
//! - [`client_sockets`]: many sockets from one 127.0.0.x source address, read on one thread.
//! - [`host`]: cores, memory, load average and the open-file limit.
//! - [`report`] and [`charts`]: JSON results, report directories, Markdown tables, SVG charts.
//! - [`verdict`]: [`Verdict`] and [`Outcome`]; [`telemetry`]: progress logging to stderr.

pub mod api;
pub mod archive;
pub mod bench_archive;
pub mod bench_close;
pub mod bench_cluster;
pub mod bench_listing;
pub mod bench_result;
pub mod bench_summary;
pub mod bench_write;
pub mod charts;
pub mod cli;
pub mod client_sockets;
pub mod cluster;
pub mod contention;
pub mod credentials;
pub mod fanout;
pub mod fanout_floor;
pub mod figures;
pub mod goose_run;
pub mod handoff;
pub mod host;
pub mod latency;
pub mod open_loop;
pub mod report;
pub mod resilience;
pub mod service;
pub mod telemetry;
pub mod verdict;
pub mod watcher;
pub mod write_floor;

pub use cli::{Cli, Command, run};
pub use verdict::{Outcome, Verdict};
