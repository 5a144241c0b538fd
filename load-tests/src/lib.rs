//! Load experiments against the auction platform, driven by goose.
//!
//! Each experiment is one module with its clap `Args`, a `run` function that
//! returns its result (and writes it as JSON), and a `summary` for people; the
//! binary's `main` only dispatches. Modules:
//!
//! - [`cli`]: the command line (one subcommand per experiment) and [`run`].
//! - [`bench_write`]: bid throughput and latency per client level, with a
//!   no-lost-update check after each level.
//! - [`bench_archive`]: archive drain rate and accept-to-row delay.
//! - [`bench_close`]: delay from auction end to a viewer's `auction_closed`.
//! - [`contention`]: the gateway's Lua and optimistic Redis strategies side by side on a hot
//!   item and a mixed workload, with lost-update and outbox checks.
//! - [`resilience`]: kill each component in turn under load; availability, recovery time and
//!   the loss check (throwaway Redis/NATS/PostgreSQL and its own services).
//! - [`bench_fanout`] and [`viewers`]: WebSocket fan-out (orchestrator and client processes).
//! - [`fanout`]: the fan-out experiment: [`bench_fanout`] levels as a report with charts.
//! - [`source_socket`]: client sockets bound to a chosen 127.0.0.x source address.
//! - [`fanout_floor`]: the floor under fan-out: bench-fanout's layout in plain TCP, one write
//!   per socket per event (orchestrator, writer and reader processes).
//! - [`goose_run`]: one goose attack (users, hatch, run time) and what is read from its metrics.
//! - [`gateway`]: the gateway under test, given by URL or started from a binary.
//! - [`api`]: the gateway calls made around the load (create the item, read it back).
//! - [`money`]: cents to JSON decimals and back, from the digits.
//! - [`latency`]: percentiles from goose's response-time histogram.
//! - [`report`]: what every JSON result shares (machine, gateway), writing it, and the
//!   per-experiment report directory (`result.json`, `README.md`, charts).
//! - [`charts`]: SVG line and bar charts (plotters).
//! - [`telemetry`]: progress logging to stderr.

pub mod api;
pub mod bench_archive;
pub mod bench_close;
pub mod bench_fanout;
pub mod bench_write;
pub mod charts;
pub mod cli;
pub mod contention;
pub mod fanout;
pub mod fanout_floor;
pub mod gateway;
pub mod goose_run;
pub mod latency;
pub mod money;
pub mod report;
pub mod resilience;
pub mod source_socket;
pub mod telemetry;
pub mod viewers;

pub use cli::{Cli, Command, Verdict, run};
