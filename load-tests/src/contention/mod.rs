//! `contention`: the gateway's two Redis strategies for applying a bid, side by side under
//! contention, each checked for correctness afterwards.
//!
//! For each strategy a fresh gateway is started with `REDIS_STRATEGY`, its own Redis key
//! prefix, NATS subjects and JetStream stream, the per-user rate limit off and the price
//! pre-filter off unless `--prefilter` (it answers stale bids without Redis and would hide the
//! difference). Against it: the [`hot_item`] levels, the [`mixed`] workload, then the
//! [`archive`] (outbox) check. Every item is read back and [`check`]ed; users place bids with
//! [`bidder`] and count the answers in [`tally`]; [`report`] writes the report directory.

mod archive;
mod bidder;
mod check;
pub(crate) mod hot_item;
mod mixed;
mod report;
mod tally;

/// One level's figures and checks, as the results (and their tests) read them.
pub use hot_item::HotLevel;

use crate::api::{ApiClient, NewItem, in_secs};
use crate::bench_result::{BenchResult, Started};
use crate::goose_run::RunLength;
use crate::report::ReportDir;
use crate::service::{LOADED_REDIS_TIMEOUT_MS, Service, namespace, run_tag};
use crate::verdict::prefixed;
use anyhow::bail;
use archive::ArchiveCheck;
use mixed::MixedResult;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// Every item's starting price (1.00) and smallest raise (0.05), in cents: wider than a cent
/// so the "rejected below final price plus increment" check has room to fail.
const PRICES: (i64, i64) = (100, 5);
/// Longest wait for the outbox relay to bring the stream to the accepted count.
const ARCHIVE_WAIT: Duration = Duration::from_secs(15);

/// How the gateway applies a bid in Redis (its `--redis-strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// One Lua script per bid.
    Lua,
    /// `WATCH`/`MULTI`/`EXEC`, retried when another bid got there first.
    Optimistic,
}

impl Strategy {
    /// The gateway's name for it (`REDIS_STRATEGY`).
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Lua => "lua",
            Strategy::Optimistic => "optimistic",
        }
    }
}

/// Flags of `load-tests contention`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct ContentionArgs {
    /// Gateway binary, started once per strategy, e.g. target/release/api-gateway. It inherits
    /// REDIS_URL.
    #[arg(long)]
    pub gateway_bin: PathBuf,
    /// Strategies to compare, comma-separated, each against its own gateway.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "lua,optimistic"
    )]
    pub strategies: Vec<Strategy>,
    /// Hot-item levels: users bidding on one item, comma-separated; each level gets a fresh item.
    #[arg(long, value_delimiter = ',', default_value = "16,64,256",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub users: Vec<u32>,
    #[command(flatten)]
    #[serde(flatten)]
    pub run: RunLength,
    /// Users of the mixed run (bids and reads over many items).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub mixed_users: u32,
    /// Items of the mixed run.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    pub mixed_items: u64,
    /// Keep the gateway's price pre-filter on (PRICE_PREFILTER): it rejects stale bids
    /// without Redis, which hides the difference between the strategies.
    #[arg(long)]
    pub prefilter: bool,
    /// The gateway's Redis deadline (REDIS_TIMEOUT_MS); see [`LOADED_REDIS_TIMEOUT_MS`].
    #[arg(long, default_value_t = LOADED_REDIS_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(1..))]
    pub redis_timeout_ms: u64,
    /// NATS with JetStream, where each run's archive stream is counted (also given to the gateway).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Directory of the report: result.json, README.md and the SVG charts.
    #[arg(long, default_value = "bench/results/contention")]
    pub out_dir: PathBuf,
}

impl ContentionArgs {
    fn validate(&self) -> anyhow::Result<()> {
        if self.strategies.is_empty() {
            bail!("--strategies needs at least one of lua, optimistic");
        }
        self.run.check("--users", &self.users)
    }
}

/// The JSON result of a contention run (`result.json`); its violations are every check that
/// failed, prefixed by its strategy.
pub type ContentionResult = BenchResult<Contention>;

/// The figures of a contention run (`--strategies` is never empty: see `validate`).
#[derive(Debug, Clone, Serialize)]
pub struct Contention {
    /// A smoke run (`--smoke`): its numbers are not a benchmark.
    pub smoke: bool,
    pub args: ContentionArgs,
    pub strategies: Vec<StrategyResult>,
}

/// Everything measured and checked against one strategy's gateway.
#[derive(Debug, Clone, Serialize)]
pub struct StrategyResult {
    pub strategy: Strategy,
    pub gateway_url: String,
    /// Per-run tag of the keys, subjects and stream.
    pub tag: String,
    pub hot: Vec<HotLevel>,
    pub mixed: MixedResult,
    pub archive: ArchiveCheck,
}

impl StrategyResult {
    /// Every failed check of this strategy.
    pub fn violations(&self) -> Vec<String> {
        let hot = self.hot.iter();
        let hot = hot.flat_map(|l| prefixed(format_args!("{} users", l.users), &l.violations));
        let outbox = prefixed("outbox", self.archive.violation().as_slice());
        hot.chain(prefixed("mixed", &self.mixed.violations))
            .chain(outbox)
            .collect()
    }
}

/// An item as every contention run creates it: one hour to run, [`PRICES`].
fn new_item(id: String) -> anyhow::Result<NewItem> {
    Ok(NewItem::new(id, "contention", PRICES, in_secs(3_600))?)
}

/// Runs every strategy and writes the report to `args.out_dir`, even when a check fails.
///
/// # Errors
/// Invalid arguments, a gateway that cannot be started, an item that cannot be created or
/// read back, NATS unreachable, goose failing, an interrupt, or the report not written.
pub async fn run(args: &ContentionArgs) -> anyhow::Result<ContentionResult> {
    args.validate()?;
    let report_dir = ReportDir::create(&args.out_dir)?;
    let started = Started::now("contention");
    let mut strategies = Vec::with_capacity(args.strategies.len());
    for &strategy in &args.strategies {
        strategies.push(run_strategy(args, strategy).await?);
    }
    let violations = strategies
        .iter()
        .flat_map(|s| prefixed(s.strategy.name(), &s.violations()))
        .collect();
    let figures = Contention {
        smoke: args.run.smoke,
        args: args.clone(),
        strategies,
    };
    let result = report::write(&report_dir, started.result(figures, violations))?;
    tracing::info!(out_dir = %args.out_dir.display(), "report written");
    Ok(result)
}

/// Starts a gateway with `strategy`, measures and checks against it, and stops it.
#[tracing::instrument(skip_all, fields(strategy = strategy.name()))]
async fn run_strategy(args: &ContentionArgs, strategy: Strategy) -> anyhow::Result<StrategyResult> {
    let tag = run_tag("ct");
    let mut env = namespace(&tag);
    env.extend([
        ("REDIS_STRATEGY", strategy.name().to_owned()),
        ("PRICE_PREFILTER", args.prefilter.to_string()),
        ("NATS_URL", args.nats_url.clone()),
        ("REDIS_TIMEOUT_MS", args.redis_timeout_ms.to_string()),
    ]);
    let gateway = Service::start("gateway", &args.gateway_bin, &env).await?;
    let measured = measure(args, strategy, gateway.url(), tag).await;
    gateway.stop().await;
    measured
}

async fn measure(
    args: &ContentionArgs,
    strategy: Strategy,
    gateway_url: &str,
    tag: String,
) -> anyhow::Result<StrategyResult> {
    let api = ApiClient::new(gateway_url)?;
    let mut hot = Vec::with_capacity(args.users.len());
    for &users in &args.users {
        let item = new_item(format!("{tag}-hot-{users}"))?;
        let duration = args.run.duration_secs;
        hot.push(hot_item::run_level(&api, &item, users, duration, false).await?);
        crate::goose_run::not_interrupted()?;
    }
    let items = usize::try_from(args.mixed_items)?;
    let (prefix, users) = (format!("{tag}-m"), args.mixed_users);
    let mixed = mixed::run(&api, &prefix, users, items, args.run.duration_secs).await?;
    crate::goose_run::not_interrupted()?;
    let accepted = hot.iter().map(|level| level.accepted).sum::<u64>() + mixed.accepted;
    let stream = tag.to_uppercase();
    let archive = archive::wait_for_archive(&args.nats_url, &stream, accepted, ARCHIVE_WAIT);
    Ok(StrategyResult {
        strategy,
        gateway_url: gateway_url.to_owned(),
        archive: archive.await?,
        tag,
        hot,
        mixed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ContentionArgs,
    }

    /// The flags `args` (after `--gateway-bin gw`) parse to, and whether they are valid.
    fn parse(args: &[&str]) -> Option<(ContentionArgs, bool)> {
        let argv = ["contention", "--gateway-bin", "gw"]
            .into_iter()
            .chain(args.iter().copied());
        let args = Cli::try_parse_from(argv).ok()?.args;
        let valid = args.validate().is_ok();
        Some((args, valid))
    }

    #[test]
    fn defaults_compare_both_strategies_at_three_levels_without_the_prefilter() {
        let (args, valid) = parse(&[]).unwrap();
        assert_eq!(args.strategies, [Strategy::Lua, Strategy::Optimistic]);
        assert_eq!(args.users, [16, 64, 256]);
        assert_eq!(args.run.duration_secs, 10);
        assert_eq!(args.mixed_items, 200);
        assert!(!args.prefilter);
        assert_eq!(args.redis_timeout_ms, 2_000);
        assert_eq!(args.out_dir, PathBuf::from("bench/results/contention"));
        assert!(valid);
        assert!(
            Cli::try_parse_from(["contention"]).is_err(),
            "the gateway is required"
        );
    }

    #[test]
    fn strategies_and_levels_take_comma_separated_lists_and_a_short_run_needs_smoke() {
        let (args, _) = parse(&["--strategies", "optimistic", "--users", "1,8"]).unwrap();
        assert_eq!(args.strategies, [Strategy::Optimistic]);
        assert_eq!(args.users, [1, 8]);
        assert!(parse(&["--strategies", "lua,pessimistic"]).is_none());
        assert!(parse(&["--users", "4,0"]).is_none());
        assert_eq!(parse(&["--duration-secs", "2"]).map(|p| p.1), Some(false));
        assert_eq!(
            parse(&["--duration-secs", "2", "--smoke"]).map(|p| p.1),
            Some(true)
        );
    }

    #[test]
    fn strategy_names_are_the_gateways() {
        assert_eq!(
            [Strategy::Lua.name(), Strategy::Optimistic.name()],
            ["lua", "optimistic"]
        );
        let json = serde_json::to_string(&Strategy::Optimistic).unwrap();
        assert_eq!(json, "\"optimistic\"");
    }
}
