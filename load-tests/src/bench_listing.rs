//! `bench-listing`: the item listing against many items, and whether listing delays bids
//! (issue 13: with 20,000 items `?limit=10` answered 503 after 92 ms, and four clients
//! listing raised the bid p50 4.4-fold).
//!
//! One gateway, `--items` auctions. First `--reads` sequential `GET /api/v1/items?limit=10`
//! (and as many name searches, which examine their bounded budget), then three bid phases of
//! `--duration-secs` each: bidders alone, bidders with `--listers` clients listing in a loop,
//! bidders alone again (so a drift of the machine shows). Each bidder bids on an item of its
//! own, one cent above its last bid, so every bid runs the script and is accepted. It passes
//! when every listing answered 200 and every bid was accepted; the bid p50 ratio is reported,
//! not judged (two shared cores make it noisy). With `--bid-rate` the bidders are paced
//! below what the machine can take, so the ratio shows queueing rather than a shared CPU.

use crate::api::{ApiClient, NewItem, Outcome};
use crate::host::{Machine, raise_fd_limit};
use crate::latency::{Histogram, LatencyMs};
use crate::report::{now_rfc3339, write_json};
use crate::service::{Service, namespace, run_tag};
use crate::verdict::{Outcome as RunOutcome, Verdict};
use clap::Args;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use shared::{Cents, Timestamp};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Items created at once during setup.
const SETUP_CONCURRENCY: usize = 64;
/// The listing every lister and the latency phase read.
const LIST_PATH: &str = "/api/v1/items?limit=10";
/// A name search matching nothing: each request examines the whole budget.
const SEARCH_PATH: &str = "/api/v1/items?limit=10&q=no-such-name";

#[derive(Debug, Clone, Args)]
pub struct BenchListingArgs {
    /// Gateway binary to start on a free loopback port (it inherits REDIS_URL and NATS_URL).
    #[arg(long)]
    pub gateway_bin: PathBuf,
    /// Auctions to create before measuring.
    #[arg(long, default_value_t = 20_000)]
    pub items: usize,
    /// Sequential listing requests timed in the latency phase (and as many name searches).
    #[arg(long, default_value_t = 500)]
    pub reads: usize,
    /// Concurrent bidders in every bid phase, each on an item of its own.
    #[arg(long, default_value_t = 16)]
    pub bidders: usize,
    /// Clients listing in a closed loop during the middle bid phase.
    #[arg(long, default_value_t = 4)]
    pub listers: usize,
    /// Bids per second over all bidders, each pacing its own share; 0: every bidder sends its
    /// next bid as soon as the last is answered (closed loop, the machine saturated).
    #[arg(long, default_value_t = 0)]
    pub bid_rate: u32,
    /// Seconds per bid phase.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    #[arg(long, default_value = "bench/results/listing.json")]
    pub out: PathBuf,
}

/// One bid phase.
#[derive(Debug, Clone, Serialize)]
pub struct BidPhase {
    pub listers: usize,
    pub bids_per_sec: f64,
    pub bid_ms: LatencyMs,
    pub bids_not_accepted: u64,
    /// The listers' requests in this phase (none when `listers` is 0).
    pub listings: u64,
    pub listing_ms: Option<LatencyMs>,
    pub listings_not_200: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListingResult {
    pub experiment: &'static str,
    pub started_at: String,
    pub machine: Machine,
    pub items: usize,
    /// Bids per second asked for (0: closed loop).
    pub bid_rate: u32,
    /// `GET /api/v1/items?limit=10`, one at a time, no other load.
    pub list_limit_10_ms: LatencyMs,
    pub list_limit_10_not_200: u64,
    /// A name search that matches nothing (examines its whole budget per request).
    pub search_ms: LatencyMs,
    pub search_not_200: u64,
    /// Bidders alone, with the listers, alone again.
    pub phases: Vec<BidPhase>,
    /// Bid p50 with the listers over the mean of the two phases without.
    pub bid_p50_ratio_with_listers: f64,
    pub violations: Vec<String>,
}

impl RunOutcome for ListingResult {
    fn verdict(&self) -> Verdict {
        Verdict::of(&self.violations)
    }
}

/// Runs the benchmark and writes its JSON result.
///
/// # Errors
/// When the gateway cannot start or an item cannot be created.
pub async fn run(args: &BenchListingArgs) -> anyhow::Result<ListingResult> {
    raise_fd_limit();
    let started_at = now_rfc3339();
    let tag = run_tag("listing");
    let gateway = Service::start("gateway", &args.gateway_bin, &namespace(&tag)).await?;
    let api = ApiClient::new(gateway.url())?;

    let start = Timestamp::now().micros();
    let hour = 3_600_000_000;
    futures::stream::iter(0..args.items)
        .map(|i| {
            let api = &api;
            let tag = &tag;
            async move {
                // Ends spread over a day, a second apart, so the order is not one of ties.
                let end = Timestamp::from_micros(start + hour + (i as i64 % 86_400) * 1_000_000);
                let item = NewItem::new(format!("{tag}-{i}"), "Listed lot", (100, 1), end)?;
                api.create_item(&item).await
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    tracing::info!(items = args.items, "items created; timing the listing");

    let (list, list_failed) = sequential_reads(&api, LIST_PATH, args.reads).await;
    let (search, search_failed) = sequential_reads(&api, SEARCH_PATH, args.reads).await;

    let duration = Duration::from_secs(args.duration_secs);
    let mut phases = Vec::new();
    for listers in [0, args.listers, 0] {
        tracing::info!(listers, "bid phase");
        let load = BidLoad {
            bidders: args.bidders,
            rate: args.bid_rate,
            listers,
            duration,
        };
        phases.push(bid_phase(&api, &tag, &load).await);
    }
    gateway.shutdown().await?;

    let alone = (phases[0].bid_ms.p50 + phases[2].bid_ms.p50) / 2.0;
    let ratio = if alone > 0.0 {
        phases[1].bid_ms.p50 / alone
    } else {
        0.0
    };
    let mut violations = Vec::new();
    if list_failed + search_failed > 0 {
        violations.push(format!(
            "{list_failed} listings and {search_failed} searches did not answer 200"
        ));
    }
    for (n, phase) in phases.iter().enumerate() {
        if phase.bids_not_accepted > 0 || phase.listings_not_200 > 0 {
            violations.push(format!(
                "phase {n}: {} bids not accepted, {} listings not 200",
                phase.bids_not_accepted, phase.listings_not_200
            ));
        }
    }
    let result = ListingResult {
        experiment: "bench-listing",
        started_at,
        machine: Machine::current(),
        items: args.items,
        bid_rate: args.bid_rate,
        list_limit_10_ms: list.latency().unwrap_or_default(),
        list_limit_10_not_200: list_failed,
        search_ms: search.latency().unwrap_or_default(),
        search_not_200: search_failed,
        phases,
        bid_p50_ratio_with_listers: (ratio * 100.0).round() / 100.0,
        violations,
    };
    write_json(&args.out, &result)?;
    Ok(result)
}

/// `GET path` `reads` times, one after the other: latencies and how many were not 200.
async fn sequential_reads(api: &ApiClient, path: &str, reads: usize) -> (Histogram, u64) {
    let mut latencies = Histogram::exact();
    let mut failed = 0;
    for _ in 0..reads {
        let sent = Instant::now();
        let answer = api.get(path).await;
        latencies.record(sent.elapsed());
        if !is_ok(&answer.outcome) {
            failed += 1;
        }
    }
    (latencies, failed)
}

fn is_ok(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Answered { status: 200, .. })
}

/// What one task of a phase measured.
#[derive(Default)]
struct Tally {
    latencies: Option<Histogram>,
    requests: u64,
    failed: u64,
}

/// One bid phase's load.
struct BidLoad {
    bidders: usize,
    /// Bids per second over all bidders; 0: closed loop.
    rate: u32,
    listers: usize,
    duration: Duration,
}

/// `bidders` bidding (each on a fresh item of its own) and `listers` listing, for `duration`.
async fn bid_phase(api: &ApiClient, tag: &str, load: &BidLoad) -> BidPhase {
    let BidLoad {
        bidders,
        rate,
        listers,
        duration,
    } = *load;
    let stop = CancellationToken::new();
    let mut bid_tasks = JoinSet::new();
    // Each bidder's pause between bids when paced.
    let pace = (rate > 0).then(|| Duration::from_secs_f64(bidders as f64 / f64::from(rate)));
    for b in 0..bidders {
        let (api, stop) = (api.clone(), stop.clone());
        let item = format!("{tag}-bid-{}", fastrand::u64(..));
        let user = format!("bidder-{b}");
        bid_tasks.spawn(async move { bidder(api, item, user, pace, stop).await });
    }
    let mut list_tasks = JoinSet::new();
    for _ in 0..listers {
        let (api, stop) = (api.clone(), stop.clone());
        list_tasks.spawn(async move { lister(api, stop).await });
    }
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    stop.cancel();
    let bids = collect(bid_tasks).await;
    let elapsed = started.elapsed().as_secs_f64();
    let listings = collect(list_tasks).await;
    BidPhase {
        listers,
        bids_per_sec: (bids.requests as f64 / elapsed).round(),
        bid_ms: bids.latencies.and_then(|l| l.latency()).unwrap_or_default(),
        bids_not_accepted: bids.failed,
        listings: listings.requests,
        listing_ms: listings.latencies.and_then(|l| l.latency()),
        listings_not_200: listings.failed,
    }
}

async fn collect(mut tasks: JoinSet<Tally>) -> Tally {
    let mut total = Tally::default();
    while let Some(done) = tasks.join_next().await {
        let Ok(tally) = done else {
            total.failed += 1;
            continue;
        };
        total.requests += tally.requests;
        total.failed += tally.failed;
        if let Some(latencies) = tally.latencies {
            total
                .latencies
                .get_or_insert_with(Histogram::exact)
                .merge(&latencies);
        }
    }
    total
}

/// Creates `item` and bids on it one cent above the last bid until `stop`, one bid per `pace`
/// if given (a late bid is sent at once, then the pace goes on from it).
async fn bidder(
    api: ApiClient,
    item: String,
    user: String,
    pace: Option<Duration>,
    stop: CancellationToken,
) -> Tally {
    let mut tally = Tally {
        latencies: Some(Histogram::exact()),
        ..Tally::default()
    };
    let end = Timestamp::from_micros(Timestamp::now().micros() + 3_600_000_000);
    let created = match NewItem::new(item.clone(), "Bid lot", (100, 1), end) {
        Ok(new) => api.create_item(&new).await,
        Err(e) => Err(e.into()),
    };
    if let Err(e) = created {
        tracing::warn!(error = %format!("{e:#}"), "bid item not created");
        tally.failed += 1;
        return tally;
    }
    let mut amount = 100;
    let mut ticks = pace.map(|every| {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    while !stop.is_cancelled() {
        if let Some(ticks) = ticks.as_mut() {
            ticks.tick().await;
        }
        let Ok(cents) = Cents::new(amount) else {
            break;
        };
        let sent = Instant::now();
        let answer = api.bid(&item, &user, cents).await;
        if let Some(l) = tally.latencies.as_mut() {
            l.record(sent.elapsed());
        }
        tally.requests += 1;
        if answer.accepted_seq().is_none() {
            tally.failed += 1;
        }
        amount += 1;
    }
    tally
}

/// Lists the first page in a closed loop until `stop`.
async fn lister(api: ApiClient, stop: CancellationToken) -> Tally {
    let mut tally = Tally {
        latencies: Some(Histogram::exact()),
        ..Tally::default()
    };
    while !stop.is_cancelled() {
        let sent = Instant::now();
        let answer = api.get(LIST_PATH).await;
        if let Some(l) = tally.latencies.as_mut() {
            l.record(sent.elapsed());
        }
        tally.requests += 1;
        if !is_ok(&answer.outcome) {
            tally.failed += 1;
        }
    }
    tally
}
