//! `bench-write`: write throughput and latency of the bid path, with a
//! correctness check after each level.
//!
//! For each client level: create a fresh item, let that many goose users bid on
//! it as fast as they can for the run time, then read the item back. Its `seq`
//! and `bid_count` must equal the number of bids the users saw accepted, and its
//! price the highest of them (no lost update). Goose's metrics are kept from the
//! first request on (`--no-reset-metrics`), so goose's request count and the
//! users' accepted/rejected/errors tally cover exactly the same bids; the rate
//! is over that whole window, hatch (one second at hatch rate = users) included.

mod bidder;

use crate::api::{ApiClient, NewItem};
use crate::gateway::{Gateway, GatewaySource};
use crate::goose_run::{attack, measured_window_secs, round_to};
use crate::latency::LatencyMs;
use crate::report::{GatewayInfo, Machine, write_json};
use anyhow::{Context, bail};
use bidder::{BID_REQUEST_NAME, BidOutcomes, BidTarget};
use chrono::{Duration as ChronoDuration, SecondsFormat, Utc};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

/// Shortest run time per level that counts as a benchmark rather than a smoke run.
pub const MIN_BENCH_SECS: u64 = 10;
/// Price of every bench item (1.00), in cents.
const STARTING_PRICE_CENTS: i64 = 100;
/// Smallest raise over the current bid (0.01), in cents.
const MIN_INCREMENT_CENTS: i64 = 1;

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

impl BenchWriteArgs {
    /// A quick run (4 clients for 2 s) that checks the whole pipeline works,
    /// e.g. from an integration test.
    pub fn smoke(gateway: GatewaySource, out: PathBuf) -> Self {
        let (gateway_url, gateway_bin) = match gateway {
            GatewaySource::Url(url) => (Some(url), None),
            GatewaySource::Binary(path) => (None, Some(path)),
        };
        Self {
            gateway_url,
            gateway_bin,
            clients: vec![4],
            duration_secs: 2,
            out,
            smoke: true,
        }
    }

    /// The gateway to use: `--gateway-url` if given, else `--gateway-bin`.
    ///
    /// # Errors
    ///
    /// Neither is given (clap prevents that on the command line).
    pub fn gateway_source(&self) -> anyhow::Result<GatewaySource> {
        match (&self.gateway_url, &self.gateway_bin) {
            (Some(url), _) => Ok(GatewaySource::Url(url.clone())),
            (None, Some(path)) => Ok(GatewaySource::Binary(path.clone())),
            (None, None) => bail!("either --gateway-url or --gateway-bin is required"),
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.clients.is_empty() || self.clients.contains(&0) {
            bail!("--clients needs one or more levels of at least 1 client");
        }
        if self.duration_secs == 0 {
            bail!("--duration-secs must be at least 1");
        }
        if self.duration_secs < MIN_BENCH_SECS && !self.smoke {
            bail!(
                "--duration-secs {} is too short for a benchmark (minimum {MIN_BENCH_SECS}); \
                 add --smoke for a quick check",
                self.duration_secs
            );
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
}

impl BenchWriteResult {
    /// Whether every level passed its correctness check.
    pub fn all_correct(&self) -> bool {
        self.levels.iter().all(|level| level.correct)
    }
}

/// One client level's measurements and its correctness check.
#[derive(Debug, Clone, Serialize)]
pub struct LevelResult {
    pub clients: u32,
    /// Configured run time after hatch.
    pub duration_secs: u64,
    /// Measured window over which `requests` were made: hatch, run time and the
    /// users finishing their last request (from goose's test plan history).
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
    /// The item's `seq` after the level.
    pub final_seq: u64,
    /// The item's `bid_count` after the level.
    pub final_bid_count: u64,
    /// The item's price after the level.
    pub final_price_cents: Option<i64>,
    /// The highest bid the users saw accepted.
    pub highest_accepted_cents: Option<i64>,
    /// `final_seq` and `final_bid_count` equal `accepted`, the final price is the
    /// highest accepted bid, and at least one bid was accepted.
    pub correct: bool,
}

/// Runs every level and writes the JSON result to `args.out`.
///
/// A gateway started here is stopped whatever happens. The result is returned
/// (and written) even when a level fails its correctness check; see
/// [`BenchWriteResult::all_correct`].
///
/// # Errors
///
/// Invalid arguments, a gateway that cannot be started, an item that cannot be
/// created or read back, goose failing, an interrupt, or the file not written.
pub async fn run(args: &BenchWriteArgs) -> anyhow::Result<BenchWriteResult> {
    args.validate()?;
    let started_at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let gateway = Gateway::start(&args.gateway_source()?).await?;
    let gateway_info = GatewayInfo {
        url: gateway.url().to_owned(),
        started_by_bench: gateway.started_by_bench(),
    };
    let levels = run_levels(args, gateway.url()).await;
    if let Err(e) = gateway.shutdown().await {
        // The measurements are complete; a gateway that stopped badly is worth a
        // warning, not the loss of the run.
        tracing::warn!(error = %e, error.chain = ?e, "gateway did not stop cleanly");
    }
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

async fn run_levels(args: &BenchWriteArgs, gateway_url: &str) -> anyhow::Result<Vec<LevelResult>> {
    let api = ApiClient::new(gateway_url)?;
    let mut levels = Vec::with_capacity(args.clients.len());
    for &clients in &args.clients {
        let level = run_level(&api, gateway_url, clients, args.duration_secs)
            .await
            .with_context(|| format!("level of {clients} clients"))?;
        levels.push(level);
        if goose::is_killswitch_triggered() {
            bail!("interrupted");
        }
    }
    Ok(levels)
}

#[tracing::instrument(skip_all, fields(clients = clients, item_id = tracing::field::Empty))]
async fn run_level(
    api: &ApiClient,
    gateway_url: &str,
    clients: u32,
    duration_secs: u64,
) -> anyhow::Result<LevelResult> {
    let item = NewItem {
        id: format!("bench-{:016x}", fastrand::u64(..)),
        name: "bench".to_owned(),
        starting_price_cents: STARTING_PRICE_CENTS,
        min_increment_cents: MIN_INCREMENT_CENTS,
        end_time: Utc::now() + ChronoDuration::hours(1),
    };
    tracing::Span::current().record("item_id", item.id.as_str());
    api.create_item(&item).await?;
    tracing::info!(clients, duration_secs, "level started");

    let prefiltered_before = api.prefilter_rejections().await?;
    let target = Arc::new(BidTarget::new(&item.id, STARTING_PRICE_CENTS));
    let metrics = attack(
        bidder::scenario(Arc::clone(&target)),
        gateway_url,
        clients,
        duration_secs,
    )
    .await?;
    let outcomes = target.outcomes();

    let bids = metrics
        .requests
        .values()
        .find(|aggregate| aggregate.path == BID_REQUEST_NAME);
    let requests = bids.map_or(0, |b| (b.success_count + b.fail_count) as u64);
    let latency_ms = bids.and_then(|b| LatencyMs::from_timing(&b.raw_data));
    if requests != outcomes.total() {
        tracing::warn!(
            goose_requests = requests,
            tallied = outcomes.total(),
            "goose counted a different number of bids than the users tallied"
        );
    }
    let measured_secs = measured_window_secs(&metrics);
    let requests_per_sec = if measured_secs > 0.0 {
        requests as f64 / measured_secs
    } else {
        0.0
    };

    let answered_without_redis = match (prefiltered_before, api.prefilter_rejections().await?) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    let redis_bids_per_sec = answered_without_redis
        .filter(|_| measured_secs > 0.0)
        .map(|skipped| round_to(requests.saturating_sub(skipped) as f64 / measured_secs, 1));

    let state = api.item_state(&item.id).await?;
    let correct = is_consistent(
        &outcomes,
        state.seq,
        state.bid_count,
        state.current_bid_cents,
    );
    if !correct {
        tracing::error!(
            accepted = outcomes.accepted,
            seq = state.seq,
            bid_count = state.bid_count,
            price_cents = ?state.current_bid_cents,
            highest_accepted_cents = ?outcomes.highest_accepted_cents,
            errors = outcomes.errors,
            "item state does not match the accepted bids"
        );
    }
    Ok(LevelResult {
        clients,
        duration_secs,
        measured_secs: round_to(measured_secs, 3),
        requests,
        requests_per_sec: round_to(requests_per_sec, 1),
        accepted: outcomes.accepted,
        rejected: outcomes.rejected,
        errors: outcomes.errors,
        answered_without_redis,
        redis_bids_per_sec,
        latency_ms,
        item_id: item.id,
        final_seq: state.seq,
        final_bid_count: state.bid_count,
        final_price_cents: state.current_bid_cents,
        highest_accepted_cents: outcomes.highest_accepted_cents,
        correct,
    })
}

/// The no-lost-update check: the item counted exactly the bids the users saw
/// accepted, and its price is the highest of them. A level without any accepted
/// bid proves nothing and does not pass.
fn is_consistent(
    outcomes: &BidOutcomes,
    seq: u64,
    bid_count: u64,
    price_cents: Option<i64>,
) -> bool {
    outcomes.accepted > 0
        && seq == outcomes.accepted
        && bid_count == outcomes.accepted
        && price_cents == outcomes.highest_accepted_cents
}

/// A few lines for a person: one per level, then the verdict.
pub fn summary(result: &BenchWriteResult) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "bench-write against {} ({} cores{}):",
        result.gateway.url,
        result.machine.cores,
        if result.smoke { ", SMOKE run" } else { "" }
    );
    for level in &result.levels {
        let latency = level.latency_ms.map_or_else(
            || "no latency (no response)".to_owned(),
            |l| {
                format!(
                    "p50 {:.2} ms  p99 {:.2} ms  p999 {:.2} ms  max {:.2} ms",
                    l.p50, l.p99, l.p999, l.max
                )
            },
        );
        let _ = writeln!(
            text,
            "  {:>5} clients  {:>9.1} req/s ({} via Redis)  {} req in {:.1} s  accepted {}  rejected {}  errors {}  {}  seq {} -> {}",
            level.clients,
            level.requests_per_sec,
            level
                .redis_bids_per_sec
                .map_or_else(|| "?".to_owned(), |r| format!("{r:.1}/s")),
            level.requests,
            level.measured_secs,
            level.accepted,
            level.rejected,
            level.errors,
            latency,
            level.final_seq,
            if level.correct {
                "correct"
            } else {
                "INCORRECT"
            },
        );
    }
    let _ = write!(
        text,
        "{}",
        if result.all_correct() {
            "all levels correct"
        } else {
            "CORRECTNESS VIOLATED: see the levels marked INCORRECT"
        }
    );
    text
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

    fn parse(args: &[&str]) -> Result<BenchWriteArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench-write").chain(args.iter().copied()))
            .map(|cli| cli.args)
    }

    fn outcomes(accepted: u64, highest: Option<i64>) -> BidOutcomes {
        BidOutcomes {
            accepted,
            rejected: 10,
            errors: 0,
            highest_accepted_cents: highest,
        }
    }

    #[test]
    fn defaults_are_two_levels_of_ten_seconds() {
        let args = parse(&["--gateway-url", "http://127.0.0.1:8080"]).unwrap();
        assert_eq!(args.clients, vec![64, 256]);
        assert_eq!(args.duration_secs, 10);
        assert_eq!(args.out, PathBuf::from("bench/results/write.json"));
        assert!(args.validate().is_ok());
    }

    #[test]
    fn a_gateway_is_required_and_only_one() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["--gateway-url", "http://x", "--gateway-bin", "gw"]).is_err());
        let args = parse(&["--gateway-bin", "target/release/api-gateway"]).unwrap();
        assert!(matches!(
            args.gateway_source(),
            Ok(GatewaySource::Binary(_))
        ));
    }

    #[test]
    fn clients_take_a_comma_separated_list_of_positive_counts() {
        let args = parse(&["--gateway-url", "http://x", "--clients", "1,8,512"]).unwrap();
        assert_eq!(args.clients, vec![1, 8, 512]);
        assert!(parse(&["--gateway-url", "http://x", "--clients", "4,0"]).is_err());
    }

    #[test]
    fn a_short_run_needs_smoke() {
        let args = parse(&["--gateway-url", "http://x", "--duration-secs", "2"]).unwrap();
        assert!(args.validate().is_err());
        let args = parse(&[
            "--gateway-url",
            "http://x",
            "--duration-secs",
            "2",
            "--smoke",
        ])
        .unwrap();
        assert!(args.validate().is_ok());
    }

    #[test]
    fn smoke_args_are_valid_and_short() {
        let args = BenchWriteArgs::smoke(GatewaySource::Url("http://x".into()), "out.json".into());
        assert!(args.validate().is_ok());
        assert_eq!(args.clients, vec![4]);
        assert_eq!(args.duration_secs, 2);
    }

    #[test]
    fn state_matching_the_accepted_bids_is_consistent() {
        assert!(is_consistent(&outcomes(7, Some(130)), 7, 7, Some(130)));
    }

    #[test]
    fn a_seq_other_than_the_accepted_count_is_a_lost_or_phantom_update() {
        assert!(!is_consistent(&outcomes(7, Some(130)), 6, 7, Some(130)));
        assert!(!is_consistent(&outcomes(7, Some(130)), 8, 7, Some(130)));
        assert!(!is_consistent(&outcomes(7, Some(130)), 7, 6, Some(130)));
    }

    #[test]
    fn a_final_price_other_than_the_highest_accepted_bid_is_inconsistent() {
        assert!(!is_consistent(&outcomes(7, Some(130)), 7, 7, Some(129)));
    }

    #[test]
    fn a_level_without_accepted_bids_does_not_pass() {
        assert!(!is_consistent(&outcomes(0, None), 0, 0, None));
    }

    #[test]
    fn rounding_keeps_the_requested_decimals() {
        assert_eq!(round_to(1234.5678, 1), 1234.6);
        assert_eq!(round_to(10.0004, 3), 10.0);
    }
}
