//! `bench-write`: write throughput and latency of the bid path. Each client level is a
//! [`contention`](crate::contention) hot-item level, checked the same way (no lost update),
//! against one gateway as it is configured (price pre-filter as `PRICE_PREFILTER` says, which
//! the Makefile sets for its second run). The rate is over goose's whole window, hatch included.

use crate::api::{ApiClient, NewItem, in_secs};
use crate::contention::hot_item::{self, HotLevel, counter_growth};
use crate::goose_run::{MIN_BENCH_SECS, check_levels, not_interrupted, round_to};
use crate::host::Machine;
use crate::latency::LatencyMs;
use crate::report::{now_rfc3339, write_json};
use crate::service::Service;
use crate::verdict::{Outcome, Verdict};
use anyhow::{Context, bail};
use serde::Serialize;
use std::path::PathBuf;

/// Every item's starting price (1.00) and smallest raise (0.01), in cents: each bid is 1 to 5
/// cents above the last price its user saw.
const PRICES: (i64, i64) = (100, 1);
/// The gateway's count of bids its price pre-filter answered without Redis.
const PREFILTER_COUNTER: &str = "gateway_prefilter_rejections_total";

/// Flags of `load-tests bench-write`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(
    clap::ArgGroup::new("gateway").required(true).args(["gateway_url", "gateway_bin"])
))]
pub struct BenchWriteArgs {
    /// Gateway already running, e.g. http://127.0.0.1:8080 (left running afterwards).
    #[arg(long)]
    pub gateway_url: Option<String>,
    /// Gateway binary to start on a free loopback port for the run and stop
    /// afterwards, e.g. target/release/api-gateway. It inherits REDIS_URL and NATS_URL.
    #[arg(long)]
    pub gateway_bin: Option<PathBuf>,
    /// Concurrent bidders per level, comma-separated; each level bids on a fresh item.
    #[arg(long, value_delimiter = ',', default_value = "64,256",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub clients: Vec<u32>,
    /// Seconds each level runs after its users are hatched (at least 10 unless --smoke).
    #[arg(long, default_value_t = MIN_BENCH_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub duration_secs: u64,
    /// Where to write the JSON result (its directory is created).
    #[arg(long, default_value = "bench/results/write.json")]
    pub out: PathBuf,
    /// Allow levels shorter than 10 s: checks the pipeline works, measures nothing reliable.
    #[arg(long)]
    pub smoke: bool,
}

/// The JSON result of a bench-write run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchWriteResult {
    pub experiment: &'static str,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// A smoke run (`--smoke`): its numbers are not a benchmark.
    pub smoke: bool,
    pub machine: Machine,
    pub gateway: GatewayInfo,
    pub levels: Vec<LevelResult>,
}

/// The gateway the run was against.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayInfo {
    pub url: String,
    /// Whether the run started this gateway itself (`--gateway-bin`).
    pub started_by_bench: bool,
}

/// One client level's measurements and its correctness check.
#[derive(Debug, Clone, Serialize)]
pub struct LevelResult {
    pub clients: u32,
    /// Configured run time after hatch.
    pub duration_secs: u64,
    /// Measured window over which `requests` were made (hatch, run time, last requests).
    pub measured_secs: f64,
    /// Bid requests goose made and timed.
    pub requests: u64,
    pub requests_per_sec: f64,
    /// 200 with `success: true`.
    pub accepted: u64,
    /// 200 with `success: false` (outbid).
    pub rejected: u64,
    /// Transport errors, statuses other than 200, unreadable replies.
    pub errors: u64,
    /// Bids the gateway answered from its local price pre-filter, without a Redis call
    /// (`null` when the gateway does not report it).
    pub answered_without_redis: Option<u64>,
    /// Bids per second that ran the Lua script in Redis (`requests` less the pre-filtered).
    pub redis_bids_per_sec: Option<f64>,
    /// Time to first byte of bid requests; `null` when none completed.
    pub latency_ms: Option<LatencyMs>,
    pub item_id: String,
    /// The item's `seq`, `bid_count` and price after the level.
    pub final_seq: u64,
    pub final_bid_count: u64,
    pub final_price_cents: Option<i64>,
    /// The highest bid the users saw accepted.
    pub highest_accepted_cents: Option<i64>,
    /// The level passed every contention check (no lost update, at least one bid accepted).
    pub correct: bool,
    /// What failed, when it did not.
    pub violations: Vec<String>,
}

impl LevelResult {
    fn new(level: HotLevel, answered_without_redis: Option<u64>) -> Self {
        let (check, measured) = (&level.check, level.measured_secs);
        let through_redis = |skipped: u64| level.bids.requests.saturating_sub(skipped) as f64;
        Self {
            clients: level.users,
            duration_secs: level.duration_secs,
            measured_secs: measured,
            requests: level.bids.requests,
            requests_per_sec: level.bids.per_sec,
            accepted: level.accepted,
            rejected: level.rejected,
            errors: level.errors.values().sum(),
            answered_without_redis,
            redis_bids_per_sec: answered_without_redis
                .filter(|_| measured > 0.0)
                .map(|skipped| round_to(through_redis(skipped) / measured, 1)),
            latency_ms: level.bids.latency_ms,
            item_id: check.item_id.clone(),
            final_seq: check.final_seq,
            final_bid_count: check.final_bid_count,
            final_price_cents: check.final_price_cents,
            highest_accepted_cents: check.highest_accepted_cents,
            correct: level.violations.is_empty(),
            violations: level.violations,
        }
    }
}

/// Runs every level and writes the JSON result to `args.out`, even when a level fails its
/// check. A gateway started here is stopped whatever happens.
///
/// # Errors
/// Invalid arguments, a gateway that cannot be started, an item that cannot be created or
/// read back, goose failing, an interrupt, or the file not written.
pub async fn run(args: &BenchWriteArgs) -> anyhow::Result<BenchWriteResult> {
    check_levels("--clients", &args.clients, args.duration_secs, args.smoke)?;
    let started_at = now_rfc3339();
    let gateway = match (&args.gateway_url, &args.gateway_bin) {
        (Some(url), _) => Service::external(url),
        (None, Some(path)) => Service::start("gateway", path, &[]).await?,
        (None, None) => bail!("either --gateway-url or --gateway-bin is required"),
    };
    let gateway_info = GatewayInfo {
        url: gateway.url().to_owned(),
        started_by_bench: gateway.started_by_bench(),
    };
    let levels = run_levels(args, gateway.url()).await;
    gateway.stop().await;
    let result = BenchWriteResult {
        experiment: "bench-write",
        started_at,
        smoke: args.smoke,
        machine: Machine::current(),
        gateway: gateway_info,
        levels: levels?,
    };
    write_json(&args.out, &result)?;
    tracing::info!(out = %args.out.display(), "result written");
    Ok(result)
}

async fn run_levels(args: &BenchWriteArgs, url: &str) -> anyhow::Result<Vec<LevelResult>> {
    let api = ApiClient::new(url)?;
    let mut levels = Vec::with_capacity(args.clients.len());
    for &clients in &args.clients {
        let item = NewItem::new(
            format!("bench-{:016x}", fastrand::u64(..)),
            "bench",
            PRICES,
            in_secs(3_600),
        )?;
        let level = hot_item::run_level(&api, url, &item, clients, args.duration_secs);
        let (level, prefiltered) = counter_growth(&api, PREFILTER_COUNTER, level)
            .await
            .with_context(|| format!("level of {clients} clients"))?;
        levels.push(LevelResult::new(level, prefiltered));
        not_interrupted()?;
    }
    Ok(levels)
}

impl Outcome for BenchWriteResult {
    fn verdict(&self) -> Verdict {
        Verdict::passed_if(self.levels.iter().all(|l| l.correct))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchWriteArgs,
    }

    /// The flags `args` parse to, if they parse, and whether they pass the level rules.
    fn parse(args: &[&str]) -> Option<(BenchWriteArgs, bool)> {
        let argv = std::iter::once("bench-write").chain(args.iter().copied());
        let args = Cli::try_parse_from(argv).ok()?.args;
        let valid = check_levels("--clients", &args.clients, args.duration_secs, args.smoke);
        Some((args, valid.is_ok()))
    }

    #[test]
    fn defaults_are_two_levels_of_ten_seconds() {
        let (args, valid) = parse(&["--gateway-url", "http://127.0.0.1:8080"]).unwrap();
        assert_eq!(args.clients, vec![64, 256]);
        assert_eq!(args.duration_secs, 10);
        assert_eq!(args.out, PathBuf::from("bench/results/write.json"));
        assert!(valid);
    }

    #[test]
    fn flags_are_checked() {
        let url = ["--gateway-url", "http://x"];
        assert!(parse(&[]).is_none(), "a gateway is required");
        assert!(parse(&["--gateway-url", "http://x", "--gateway-bin", "gw"]).is_none());
        let (args, _) = parse(&["--gateway-bin", "target/release/api-gateway"]).unwrap();
        assert!(args.gateway_bin.is_some() && args.gateway_url.is_none());
        let (args, _) = parse(&[&url[..], &["--clients", "1,8,512"]].concat()).unwrap();
        assert_eq!(args.clients, vec![1, 8, 512]);
        assert!(parse(&[&url[..], &["--clients", "4,0"]].concat()).is_none());
        let short = [&url[..], &["--duration-secs", "2"]].concat();
        assert_eq!(
            parse(&short).map(|p| p.1),
            Some(false),
            "a short run needs --smoke"
        );
        let smoke = [&short[..], &["--smoke"]].concat();
        assert_eq!(parse(&smoke).map(|p| p.1), Some(true));
    }
}
