//! One goose attack as contention (and bench-write, its hot-item level) makes it, and what is
//! read from its metrics: the window the requests were made in, and each request kind's count and
//! timings.

use crate::figures::per_sec;
use crate::latency::{Histogram, LatencyMs};
use anyhow::Context;
use chrono::{DateTime, Utc};
use goose::config::GooseConfiguration;
use goose::metrics::GooseRequestMetricAggregate;
use goose::prelude::*;
use serde::Serialize;

/// Longest a single request may take before goose counts it as failed.
const REQUEST_TIMEOUT_SECS: &str = "10";

/// Runs `scenario` with `users` users, all hatched within a second, for `duration_secs`.
/// Goose writes no report, starts no controller, and keeps its metrics from the first request
/// on, so its counts cover exactly the requests the users tallied.
///
/// # Errors
/// Goose cannot be configured or the attack fails.
pub async fn attack(
    scenario: Scenario,
    gateway_url: &str,
    users: u32,
    duration_secs: u64,
) -> anyhow::Result<GooseMetrics> {
    let user_count = usize::try_from(users).context("too many users")?;
    let run_time = usize::try_from(duration_secs).context("--duration-secs too large")?;
    let metrics = GooseAttack::initialize_with_config(GooseConfiguration::default())?
        .register_scenario(scenario)
        .set_default(GooseDefault::Host, gateway_url)?
        .set_default(GooseDefault::Users, user_count)?
        .set_default(GooseDefault::IncreaseRate, users.to_string().as_str())?
        .set_default(GooseDefault::RunTime, run_time)?
        .set_default(GooseDefault::NoResetMetrics, true)?
        .set_default(GooseDefault::Timeout, REQUEST_TIMEOUT_SECS)?
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::NoPrintMetrics, true)?
        .set_default(GooseDefault::NoTransactionMetrics, true)?
        .set_default(GooseDefault::NoScenarioMetrics, true)?
        .execute()
        .await?;
    Ok(metrics)
}

/// Shortest run time per level that counts as a benchmark rather than a smoke run.
pub const MIN_BENCH_SECS: u64 = 10;

/// The flags every goose experiment shares (`#[command(flatten)]`ed into each one's).
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct RunLength {
    /// Seconds each level (and contention's mixed run) lasts after its users are hatched (at
    /// least 10 unless --smoke).
    #[arg(long, default_value_t = MIN_BENCH_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub duration_secs: u64,
    /// Allow runs shorter than 10 s: checks the pipeline works, measures nothing reliable.
    #[arg(long)]
    pub smoke: bool,
}

impl RunLength {
    /// A smoke run of `duration_secs` per level (the test suites' runs).
    pub fn smoke(duration_secs: u64) -> Self {
        Self {
            duration_secs,
            smoke: true,
        }
    }

    /// The rules clap cannot say: `flag` (`--users`, `--clients`) names one or more levels of
    /// at least one user, and a run shorter than [`MIN_BENCH_SECS`] needs `--smoke`.
    ///
    /// # Errors
    /// When either rule is broken.
    pub fn check(&self, flag: &str, levels: &[u32]) -> anyhow::Result<()> {
        if levels.is_empty() || levels.contains(&0) {
            anyhow::bail!("{flag} needs one or more levels of at least 1 user");
        }
        if self.duration_secs < MIN_BENCH_SECS && !self.smoke {
            anyhow::bail!(
                "--duration-secs {} is too short for a benchmark (minimum {MIN_BENCH_SECS}); \
                 add --smoke for a quick check",
                self.duration_secs
            );
        }
        Ok(())
    }
}

/// Whether the run may go on: goose's Ctrl-C handler stops the attack and sets its kill switch.
///
/// # Errors
/// The run was interrupted.
pub fn not_interrupted() -> anyhow::Result<()> {
    if goose::is_killswitch_triggered() {
        anyhow::bail!("interrupted");
    }
    Ok(())
}

/// Seconds from goose's first test plan step (hatch) to its last (users stopped), which
/// brackets every request; goose's whole-second `duration` when the history is missing.
pub fn measured_window_secs(metrics: &GooseMetrics) -> f64 {
    let stamps: Vec<DateTime<Utc>> = metrics.history.iter().map(|step| step.timestamp).collect();
    match (stamps.iter().min(), stamps.iter().max()) {
        (Some(first), Some(last)) if last > first => {
            let micros = (*last - *first).num_microseconds().unwrap_or(i64::MAX);
            micros as f64 / 1_000_000.0
        }
        _ => metrics.duration as f64,
    }
}

/// The aggregate of the requests named `name`, if any were made.
pub fn requests_named<'a>(
    metrics: &'a GooseMetrics,
    name: &str,
) -> Option<&'a GooseRequestMetricAggregate> {
    metrics
        .requests
        .values()
        .find(|aggregate| aggregate.path == name)
}

/// Count, rate, failures and timings of one request kind.
#[derive(Debug, Clone, Serialize)]
pub struct RequestStats {
    /// The request's name in goose's metrics.
    pub name: String,
    pub requests: u64,
    pub per_sec: f64,
    /// Requests goose counted as failed (unexpected status, transport error, timeout).
    pub failed: u64,
    /// Answers by HTTP status (0: no answer), as goose counted them.
    pub statuses: std::collections::BTreeMap<u16, u64>,
    pub latency_ms: Option<LatencyMs>,
}

impl RequestStats {
    /// The figures of the requests named `name` over `window_secs`; zeros when none were made.
    pub fn of(metrics: &GooseMetrics, name: &str, window_secs: f64) -> Self {
        let aggregate = requests_named(metrics, name);
        let requests = aggregate.map_or(0, |a| (a.success_count + a.fail_count) as u64);
        Self {
            name: name.to_owned(),
            requests,
            per_sec: per_sec(requests, window_secs),
            failed: aggregate.map_or(0, |a| a.fail_count as u64),
            statuses: aggregate
                .map(|a| {
                    a.status_code_counts
                        .iter()
                        .map(|(status, count)| (*status, *count as u64))
                        .collect()
                })
                .unwrap_or_default(),
            latency_ms: aggregate.and_then(|a| Histogram::from_goose(&a.raw_data).latency()),
        }
    }
}
