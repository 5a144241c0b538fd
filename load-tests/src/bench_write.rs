//! `bench-write`: write throughput and latency of the bid path. Each client level is a
//! [`contention`](crate::contention) hot-item level, checked the same way (no lost update),
//! against one gateway as it is configured (price pre-filter as `PRICE_PREFILTER` says, which
//! the Makefile sets for its second run). The rate is over goose's whole window, hatch included.
//!
//! Bids carry real access tokens (the first users are accounts registered through the API,
//! the rest sign with the run's key), so the figures include verifying them. With
//! `--compare-open-clients N` the run also measures what that costs: N clients against this
//! gateway and against a second one started with `AUTH_MODE=open` (same binary, same
//! environment, bids without tokens), alternating token, open, open, token so that a drift of
//! the machine during the run weighs on both alike; the result holds both rates, their ratio
//! and whether verification stays within [`AUTH_BUDGET_PERCENT`] of the open rate.

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
/// What verifying tokens may cost at most: the token run's bids/s may be this much below the
/// open run's (issue 12).
pub const AUTH_BUDGET_PERCENT: f64 = 10.0;

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
    /// Bidder accounts registered through the API (`POST /api/v1/auth/register`) for the
    /// first users of every level; the others' tokens are signed with the run's key.
    #[arg(long, default_value_t = 4)]
    pub registered_bidders: usize,
    /// Also compare, at this many clients, bids with tokens against a second gateway in
    /// `AUTH_MODE=open` (needs --gateway-bin: the bench starts that gateway).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub compare_open_clients: Option<u32>,
    /// DATABASE_URL of the gateways the bench starts (their accounts, for the registered
    /// bidders); without it they inherit this process's environment.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Half the bidders of every level (every other user) bid with a maximum (proxy
    /// bidding, issue 16): their bids/s and latency are reported apart from the plain bids of
    /// the same run (`proxy_comparison` of each level).
    #[arg(long)]
    pub proxy_bidders: bool,
}

impl BenchWriteArgs {
    /// The rules clap cannot say.
    ///
    /// # Errors
    /// Invalid levels, or a comparison without a gateway binary to start in open mode.
    fn check(&self) -> anyhow::Result<()> {
        check_levels("--clients", &self.clients, self.duration_secs, self.smoke)?;
        if self.compare_open_clients.is_some() && self.gateway_bin.is_none() {
            bail!("--compare-open-clients needs --gateway-bin: the bench starts the open gateway");
        }
        Ok(())
    }
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
    /// Token verification's cost (`--compare-open-clients`); absent without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_comparison: Option<AuthComparison>,
}

/// The same load against a gateway verifying tokens and one in `AUTH_MODE=open`.
#[derive(Debug, Clone, Serialize)]
pub struct AuthComparison {
    pub clients: u32,
    /// Bids per second with tokens: the mean of the two token levels.
    pub token_bids_per_sec: f64,
    /// Bids per second without: the mean of the two open levels.
    pub open_bids_per_sec: f64,
    /// `token_bids_per_sec / open_bids_per_sec`.
    pub ratio: f64,
    /// How much slower the token runs were, in percent of the open rate (negative: faster).
    pub overhead_percent: f64,
    pub budget_percent: f64,
    /// The overhead is at most the budget, and every level passed its checks.
    pub within_budget: bool,
    /// In the order they ran: token, open, open, token.
    pub token_levels: Vec<LevelResult>,
    pub open_levels: Vec<LevelResult>,
}

impl AuthComparison {
    fn new(clients: u32, token_levels: Vec<LevelResult>, open_levels: Vec<LevelResult>) -> Self {
        let mean = |levels: &[LevelResult]| {
            levels.iter().map(|l| l.requests_per_sec).sum::<f64>() / levels.len().max(1) as f64
        };
        let (token, open) = (mean(&token_levels), mean(&open_levels));
        let ratio = if open > 0.0 { token / open } else { 0.0 };
        let overhead_percent = round_to((1.0 - ratio) * 100.0, 2);
        let correct = token_levels.iter().chain(&open_levels).all(|l| l.correct);
        Self {
            clients,
            token_bids_per_sec: round_to(token, 1),
            open_bids_per_sec: round_to(open, 1),
            ratio: round_to(ratio, 4),
            overhead_percent,
            budget_percent: AUTH_BUDGET_PERCENT,
            within_budget: correct && open > 0.0 && overhead_percent <= AUTH_BUDGET_PERCENT,
            token_levels,
            open_levels,
        }
    }
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
    /// With `--proxy-bidders`: the plain bids against those with a maximum, same run. The
    /// level's `requests` and rates are then both kinds together, `latency_ms` the plain bids'.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_comparison: Option<ProxyComparison>,
}

/// One kind of bid of a level with proxy bidders.
#[derive(Debug, Clone, Serialize)]
pub struct BidKind {
    /// The users that bid this way (plain: even goose indexes, proxy: odd ones).
    pub clients: u32,
    pub requests: u64,
    pub bids_per_sec: f64,
    /// Bids per second per client, comparable when the halves differ by one.
    pub bids_per_sec_per_client: f64,
    pub latency_ms: Option<LatencyMs>,
}

/// Plain bids against bids with a maximum, on the same item in the same run.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyComparison {
    pub plain: BidKind,
    pub proxy: BidKind,
    /// Proxy bids/s per client over plain bids/s per client.
    pub rate_ratio: Option<f64>,
    /// Proxy p99 over plain p99.
    pub p99_ratio: Option<f64>,
}

impl ProxyComparison {
    fn new(
        users: u32,
        plain: &crate::goose_run::RequestStats,
        proxy: &crate::goose_run::RequestStats,
    ) -> Self {
        let kind = |clients: u32, stats: &crate::goose_run::RequestStats| BidKind {
            clients,
            requests: stats.requests,
            bids_per_sec: stats.per_sec,
            bids_per_sec_per_client: round_to(stats.per_sec / f64::from(clients.max(1)), 1),
            latency_ms: stats.latency_ms,
        };
        let (plain, proxy) = (kind(users.div_ceil(2), plain), kind(users / 2, proxy));
        let ratio = |a: f64, b: f64| (b > 0.0).then(|| round_to(a / b, 3));
        Self {
            rate_ratio: ratio(proxy.bids_per_sec_per_client, plain.bids_per_sec_per_client),
            p99_ratio: match (&proxy.latency_ms, &plain.latency_ms) {
                (Some(p), Some(q)) => ratio(p.p99, q.p99),
                _ => None,
            },
            plain,
            proxy,
        }
    }
}

impl LevelResult {
    fn new(level: HotLevel, answered_without_redis: Option<u64>) -> Self {
        let (check, measured) = (&level.check, level.measured_secs);
        let proxy = level.proxy_bids.as_ref();
        let requests = level.bids.requests + proxy.map_or(0, |p| p.requests);
        let through_redis = |skipped: u64| requests.saturating_sub(skipped) as f64;
        Self {
            clients: level.users,
            duration_secs: level.duration_secs,
            measured_secs: measured,
            requests,
            requests_per_sec: round_to(level.bids.per_sec + proxy.map_or(0.0, |p| p.per_sec), 1),
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
            proxy_comparison: proxy.map(|p| ProxyComparison::new(level.users, &level.bids, p)),
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
    args.check()?;
    let started_at = now_rfc3339();
    let gateway = match (&args.gateway_url, &args.gateway_bin) {
        (Some(url), _) => Service::external(url),
        (None, Some(path)) => Service::start("gateway", path, &started_env(args, None)).await?,
        (None, None) => bail!("either --gateway-url or --gateway-bin is required"),
    };
    let gateway_info = GatewayInfo {
        url: gateway.url().to_owned(),
        started_by_bench: gateway.started_by_bench(),
    };
    let measured = measure(args, gateway.url()).await;
    gateway.stop().await;
    let (levels, auth_comparison) = measured?;
    let result = BenchWriteResult {
        experiment: "bench-write",
        started_at,
        smoke: args.smoke,
        machine: Machine::current(),
        gateway: gateway_info,
        levels,
        auth_comparison,
    };
    write_json(&args.out, &result)?;
    tracing::info!(out = %args.out.display(), "result written");
    Ok(result)
}

/// Every level against the gateway at `url`, then the comparison with an open gateway when
/// asked for.
async fn measure(
    args: &BenchWriteArgs,
    url: &str,
) -> anyhow::Result<(Vec<LevelResult>, Option<AuthComparison>)> {
    let api = ApiClient::new(url)?
        .register_bidders(args.registered_bidders)
        .await?;
    let mut levels = Vec::with_capacity(args.clients.len());
    for &clients in &args.clients {
        levels.push(
            Box::pin(run_one(
                &api,
                url,
                clients,
                args.duration_secs,
                args.proxy_bidders,
            ))
            .await?,
        );
    }
    let comparison = match (args.compare_open_clients, &args.gateway_bin) {
        (Some(clients), Some(binary)) => {
            Some(Box::pin(compare_auth_modes(args, &api, url, binary, clients)).await?)
        }
        _ => None,
    };
    Ok((levels, comparison))
}

/// One level of `clients` for `duration_secs` on a fresh item through `api` (tokens or not,
/// as it says; every other bidder with a maximum when `proxy_bidders`), against the server at `url` (a gateway, or `bench-write-floor`'s floor).
pub(crate) async fn run_one(
    api: &ApiClient,
    url: &str,
    clients: u32,
    duration_secs: u64,
    proxy_bidders: bool,
) -> anyhow::Result<LevelResult> {
    let item = NewItem::new(
        format!("bench-{:016x}", fastrand::u64(..)),
        "bench",
        PRICES,
        in_secs(3_600),
    )?;
    // On the heap: a goose attack's future is large, and levels nest in the comparison (a
    // test thread's 2 MiB stack overflowed).
    let level = Box::pin(hot_item::run_level_with(
        api,
        url,
        &item,
        clients,
        duration_secs,
        proxy_bidders,
    ));
    let (level, prefiltered) = counter_growth(api, PREFILTER_COUNTER, level)
        .await
        .with_context(|| format!("level of {clients} clients"))?;
    not_interrupted()?;
    Ok(LevelResult::new(level, prefiltered))
}

/// `clients` against the token gateway at `url` and against a second gateway in
/// `AUTH_MODE=open`, token, open, open, token. Both gateways run throughout, so each level
/// shares the machine with the same idle gateway.
async fn compare_auth_modes(
    args: &BenchWriteArgs,
    api: &ApiClient,
    url: &str,
    binary: &std::path::Path,
    clients: u32,
) -> anyhow::Result<AuthComparison> {
    let open_env = started_env(args, Some(("AUTH_MODE", "open".to_owned())));
    let open = Service::start("gateway", binary, &open_env).await?;
    let compared = async {
        let open_api = ApiClient::new(open.url())?.open_mode();
        // One level of this comparison, on a fresh item, against either gateway.
        let level = |api, url| {
            Box::pin(run_one(
                api,
                url,
                clients,
                args.duration_secs,
                args.proxy_bidders,
            ))
        };
        let first = level(api, url).await?;
        let open_first = level(&open_api, open.url()).await?;
        let open_second = level(&open_api, open.url()).await?;
        let second = level(api, url).await?;
        anyhow::Ok(AuthComparison::new(
            clients,
            vec![first, second],
            vec![open_first, open_second],
        ))
    }
    .await;
    open.stop().await;
    let comparison = compared?;
    tracing::info!(
        clients,
        token = comparison.token_bids_per_sec,
        open = comparison.open_bids_per_sec,
        overhead_percent = comparison.overhead_percent,
        "token verification cost measured"
    );
    Ok(comparison)
}

/// The environment of a gateway the bench starts: its database when given, and `extra`.
fn started_env(
    args: &BenchWriteArgs,
    extra: Option<(&'static str, String)>,
) -> Vec<(&'static str, String)> {
    let database = args.database_url.clone().map(|url| ("DATABASE_URL", url));
    database.into_iter().chain(extra).collect()
}

impl Outcome for BenchWriteResult {
    fn verdict(&self) -> Verdict {
        let comparison = self.auth_comparison.as_ref();
        Verdict::passed_if(
            self.levels.iter().all(|l| l.correct)
                && comparison.is_none_or(|c| c.within_budget || self.smoke),
        )
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
        let valid = args.check();
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
    fn the_open_comparison_needs_a_gateway_the_bench_starts() {
        let bin = ["--gateway-bin", "target/release/api-gateway"];
        let (args, valid) = parse(&[&bin[..], &["--compare-open-clients", "64"]].concat()).unwrap();
        assert_eq!((args.compare_open_clients, valid), (Some(64), true));
        let external = parse(&["--gateway-url", "http://x", "--compare-open-clients", "64"]);
        assert_eq!(external.map(|p| p.1), Some(false));
    }

    fn level(requests_per_sec: f64, correct: bool) -> LevelResult {
        LevelResult {
            clients: 64,
            duration_secs: 10,
            measured_secs: 10.0,
            requests: 0,
            requests_per_sec,
            accepted: 1,
            rejected: 0,
            errors: 0,
            answered_without_redis: None,
            redis_bids_per_sec: None,
            latency_ms: None,
            item_id: "i".into(),
            final_seq: 1,
            final_bid_count: 1,
            final_price_cents: Some(1),
            highest_accepted_cents: Some(1),
            correct,
            violations: Vec::new(),
            proxy_comparison: None,
        }
    }

    #[test]
    fn the_comparison_is_the_ratio_of_the_mean_rates_against_the_budget() {
        let cheap = AuthComparison::new(
            64,
            vec![level(950.0, true), level(930.0, true)],
            vec![level(1000.0, true), level(1000.0, true)],
        );
        assert_eq!(
            (cheap.token_bids_per_sec, cheap.open_bids_per_sec),
            (940.0, 1000.0)
        );
        assert_eq!((cheap.ratio, cheap.overhead_percent), (0.94, 6.0));
        assert!(cheap.within_budget);
        let costly = AuthComparison::new(
            64,
            vec![level(800.0, true), level(850.0, true)],
            vec![level(1000.0, true), level(1000.0, true)],
        );
        assert!(!costly.within_budget, "{}", costly.overhead_percent);
        let wrong = AuthComparison::new(
            64,
            vec![level(1000.0, false), level(1000.0, true)],
            vec![level(1000.0, true), level(1000.0, true)],
        );
        assert!(!wrong.within_budget, "a level that failed its checks");
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
