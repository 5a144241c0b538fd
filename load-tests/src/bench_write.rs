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
use crate::bench_result::{BenchResult, Started};
use crate::contention::hot_item::{self, HotLevel};
use crate::figures::{median, round_to};
use crate::goose_run::{RunLength, not_interrupted};
use crate::service::{LOADED_REDIS_TIMEOUT_MS, Service};
use crate::verdict::prefixed;
use anyhow::{Context, bail};
use serde::Serialize;
use std::path::PathBuf;

/// Every item's starting price (1.00) and smallest raise (0.01), in cents: each bid is 1 to 5
/// cents above the last price its user saw.
const PRICES: (i64, i64) = (100, 1);
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
    #[command(flatten)]
    pub load: WriteLoad,
    /// Where to write the JSON result (its directory is created).
    #[arg(long, default_value = "bench/results/write.json")]
    pub out: PathBuf,
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

/// The flags bench-write and bench-write-floor share: the levels and how long each lasts.
#[derive(Debug, Clone, clap::Args)]
pub struct WriteLoad {
    /// Concurrent bidders (connections) per level, comma-separated; each level bids on a
    /// fresh item.
    #[arg(long, value_delimiter = ',', default_value = "64,256",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub clients: Vec<u32>,
    #[command(flatten)]
    pub run: RunLength,
}

impl WriteLoad {
    /// The rules clap cannot say ([`RunLength::check`]).
    ///
    /// # Errors
    /// Invalid levels.
    pub fn check(&self) -> anyhow::Result<()> {
        self.run.check("--clients", &self.clients)
    }
}

impl BenchWriteArgs {
    /// The rules clap cannot say.
    ///
    /// # Errors
    /// Invalid levels, or a comparison without a gateway binary to start in open mode.
    fn check(&self) -> anyhow::Result<()> {
        self.load.check()?;
        if self.compare_open_clients.is_some() && self.gateway_bin.is_none() {
            bail!("--compare-open-clients needs --gateway-bin: the bench starts the open gateway");
        }
        Ok(())
    }
}

/// The figures of a bench-write run (its JSON result, in [`BenchResult`]).
#[derive(Debug, Clone, Serialize)]
pub struct BenchWrite {
    /// A smoke run (`--smoke`): its numbers are not a benchmark.
    pub smoke: bool,
    pub gateway: GatewayInfo,
    /// Contention's hot-item levels, one per `--clients` level.
    pub levels: Vec<HotLevel>,
    /// Token verification's cost (`--compare-open-clients`); absent without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_comparison: Option<AuthComparison>,
}

/// The gateway the run was against.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayInfo {
    pub url: String,
    /// Whether the run started this gateway itself (`--gateway-bin`).
    pub started_by_bench: bool,
}

/// The same load against a gateway verifying tokens and one in `AUTH_MODE=open`.
#[derive(Debug, Clone, Serialize)]
pub struct AuthComparison {
    pub clients: u32,
    #[serde(flatten)]
    pub figures: AuthFigures,
    /// In the order they ran: token, open, open, token.
    pub token_levels: Vec<HotLevel>,
    pub open_levels: Vec<HotLevel>,
}

/// Token verification's cost, from the rates of both sides' levels.
#[derive(Debug, Clone, Serialize)]
pub struct AuthFigures {
    /// Bids per second with tokens: the median (mean of two) of the token levels.
    pub token_bids_per_sec: f64,
    /// Bids per second without: the median of the open levels.
    pub open_bids_per_sec: f64,
    /// `token_bids_per_sec / open_bids_per_sec`.
    pub ratio: f64,
    /// How much slower the token runs were, in percent of the open rate (negative: faster).
    pub overhead_percent: f64,
    pub budget_percent: f64,
    /// The overhead is at most the budget, and every level passed its checks.
    pub within_budget: bool,
}

impl AuthFigures {
    /// The figures of levels at `token` and `open` bids/s, whose checks all passed if `passed`.
    fn new(token: &[f64], open: &[f64], passed: bool) -> Self {
        let (token, open) = (median(token.to_vec()), median(open.to_vec()));
        let ratio = if open > 0.0 { token / open } else { 0.0 };
        let overhead_percent = round_to((1.0 - ratio) * 100.0, 2);
        Self {
            token_bids_per_sec: round_to(token, 1),
            open_bids_per_sec: round_to(open, 1),
            ratio: round_to(ratio, 4),
            overhead_percent,
            budget_percent: AUTH_BUDGET_PERCENT,
            within_budget: passed && open > 0.0 && overhead_percent <= AUTH_BUDGET_PERCENT,
        }
    }
}

/// Every level's bids per second.
pub(crate) fn rates(levels: &[HotLevel]) -> Vec<f64> {
    levels.iter().map(|l| l.requests_per_sec).collect()
}

/// Runs every level and writes the JSON result to `args.out`, even when a level fails its
/// check. A gateway started here is stopped whatever happens.
///
/// # Errors
/// Invalid arguments, a gateway that cannot be started, an item that cannot be created or
/// read back, goose failing, an interrupt, or the file not written.
pub async fn run(args: &BenchWriteArgs) -> anyhow::Result<BenchResult<BenchWrite>> {
    args.check()?;
    let started = Started::now("bench-write");
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
    let level = |l: &HotLevel| prefixed(format_args!("{} clients", l.users), &l.violations);
    let mut violations: Vec<String> = levels.iter().flat_map(level).collect();
    let over_budget = auth_comparison.as_ref().map(|c| &c.figures);
    if let Some(c) = over_budget.filter(|c| !c.within_budget && !args.load.run.smoke) {
        violations.push(format!(
            "tokens cost {} % of the open rate (budget {} %), or a compared level failed",
            c.overhead_percent, c.budget_percent
        ));
    }
    let figures = BenchWrite {
        smoke: args.load.run.smoke,
        gateway: gateway_info,
        levels,
        auth_comparison,
    };
    started.finish(figures, violations, &args.out)
}

/// Every level against the gateway at `url`, then the comparison with an open gateway when
/// asked for.
async fn measure(
    args: &BenchWriteArgs,
    url: &str,
) -> anyhow::Result<(Vec<HotLevel>, Option<AuthComparison>)> {
    let api = ApiClient::new(url)?
        .register_bidders(args.registered_bidders)
        .await?;
    let (secs, proxy) = (args.load.run.duration_secs, args.proxy_bidders);
    let mut levels = Vec::with_capacity(args.load.clients.len());
    for &clients in &args.load.clients {
        levels.push(run_one(&api, clients, secs, proxy).await?);
    }
    let comparison = match (args.compare_open_clients, &args.gateway_bin) {
        (Some(clients), Some(binary)) => {
            Some(Box::pin(compare_auth_modes(args, &api, binary, clients)).await?)
        }
        _ => None,
    };
    Ok((levels, comparison))
}

/// One level of `clients` for `duration_secs` on a fresh item through `api` (tokens or not,
/// as it says; every other bidder with a maximum when `proxy_bidders`), against the server
/// `api` calls (a gateway, or `bench-write-floor`'s floor).
pub(crate) async fn run_one(
    api: &ApiClient,
    clients: u32,
    duration_secs: u64,
    proxy_bidders: bool,
) -> anyhow::Result<HotLevel> {
    let id = format!("bench-{:016x}", fastrand::u64(..));
    let item = NewItem::new(id, "bench", PRICES, in_secs(3_600))?;
    let level = Box::pin(hot_item::run_level(
        api,
        &item,
        clients,
        duration_secs,
        proxy_bidders,
    ));
    let level = level
        .await
        .with_context(|| format!("level of {clients} clients"))?;
    not_interrupted()?;
    Ok(level)
}

/// `clients` against the servers `first` and `second` calls, alternately first, second,
/// second, first, `pairs` times (each `secs` long, with proxy bidders if `proxy`), so that a drift of the shared machine weighs on both alike;
/// each side's levels in the order they ran.
pub(crate) async fn alternate(
    (first, second): (&ApiClient, &ApiClient),
    clients: u32,
    pairs: u32,
    (secs, proxy): (u64, bool),
) -> anyhow::Result<(Vec<HotLevel>, Vec<HotLevel>)> {
    let (mut firsts, mut seconds) = (Vec::new(), Vec::new());
    for _ in 0..pairs {
        firsts.push(run_one(first, clients, secs, proxy).await?);
        seconds.push(run_one(second, clients, secs, proxy).await?);
        seconds.push(run_one(second, clients, secs, proxy).await?);
        firsts.push(run_one(first, clients, secs, proxy).await?);
    }
    Ok((firsts, seconds))
}

/// `clients` against the token gateway `api` calls and against a second gateway in
/// `AUTH_MODE=open`, token, open, open, token. Both gateways run throughout, so each level
/// shares the machine with the same idle gateway.
async fn compare_auth_modes(
    args: &BenchWriteArgs,
    api: &ApiClient,
    binary: &std::path::Path,
    clients: u32,
) -> anyhow::Result<AuthComparison> {
    let open_env = started_env(args, Some(("AUTH_MODE", "open".to_owned())));
    let open = Service::start("gateway", binary, &open_env).await?;
    let compared = async {
        let open_api = ApiClient::new(open.url())?.open_mode();
        let load = (args.load.run.duration_secs, args.proxy_bidders);
        alternate((api, &open_api), clients, 1, load).await
    }
    .await;
    open.stop().await;
    let (token_levels, open_levels) = compared?;
    let passed = token_levels
        .iter()
        .chain(&open_levels)
        .all(HotLevel::passed);
    let figures = AuthFigures::new(&rates(&token_levels), &rates(&open_levels), passed);
    tracing::info!(clients, ?figures, "token verification cost measured");
    Ok(AuthComparison {
        clients,
        figures,
        token_levels,
        open_levels,
    })
}

/// The environment of a gateway the bench starts: the benchmarks' Redis deadline, its
/// database when given, and `extra`.
fn started_env(
    args: &BenchWriteArgs,
    extra: Option<(&'static str, String)>,
) -> Vec<(&'static str, String)> {
    let deadline = ("REDIS_TIMEOUT_MS", LOADED_REDIS_TIMEOUT_MS.to_string());
    let database = args.database_url.clone().map(|url| ("DATABASE_URL", url));
    std::iter::once(deadline)
        .chain(database)
        .chain(extra)
        .collect()
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
        assert_eq!(args.load.clients, vec![64, 256]);
        assert_eq!(args.load.run.duration_secs, 10);
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

    #[test]
    fn the_comparison_is_the_ratio_of_the_mean_rates_against_the_budget() {
        let cheap = AuthFigures::new(&[950.0, 930.0], &[1000.0, 1000.0], true);
        assert_eq!(
            (cheap.token_bids_per_sec, cheap.open_bids_per_sec),
            (940.0, 1000.0)
        );
        assert_eq!((cheap.ratio, cheap.overhead_percent), (0.94, 6.0));
        assert!(cheap.within_budget);
        let costly = AuthFigures::new(&[800.0, 850.0], &[1000.0, 1000.0], true);
        assert!(!costly.within_budget, "{}", costly.overhead_percent);
        let wrong = AuthFigures::new(&[1000.0, 1000.0], &[1000.0, 1000.0], false);
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
        assert_eq!(args.load.clients, vec![1, 8, 512]);
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
