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

use crate::api::{Answer, ApiClient, NewItem, Outcome, in_secs};
use crate::bench_result::{BenchResult, Started};
use crate::host::raise_fd_limit;
use crate::latency::{Histogram, LatencyMs};
use crate::service::{namespace, run_tag, start_services};
use clap::Args;
use serde::Serialize;
use shared::{Cents, Timestamp};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

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

/// The figures of a bench-listing run (its JSON result, in [`BenchResult`]).
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
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
}

/// Runs the benchmark and writes its JSON result.
///
/// # Errors
/// When the gateway cannot start or an item cannot be created.
pub async fn run(args: &BenchListingArgs) -> anyhow::Result<BenchResult<Listing>> {
    raise_fd_limit();
    let started = Started::now("bench-listing");
    let tag = run_tag("listing");
    let [gateway] = start_services([("gateway", &*args.gateway_bin)], &namespace(&tag)).await?;
    let api = ApiClient::new(gateway.url())?;
    let start = Timestamp::now().micros();
    let hour = 3_600_000_000;
    let item = |i: usize| {
        // Ends spread over a day, a second apart, so the order is not one of ties.
        let end = Timestamp::from_micros(start + hour + (i as i64 % 86_400) * 1_000_000);
        NewItem::new(format!("{tag}-{i}"), "Listed lot", (100, 1), end)
    };
    api.create_items((0..args.items).map(item).collect::<Result<_, _>>()?)
        .await?;
    tracing::info!(items = args.items, "items created; timing the listing");

    let never = CancellationToken::new();
    let api = &api;
    let reads = |path: &'static str| {
        let read = move || async move { is_ok(&api.get(path).await) };
        repeat(&never, Some(args.reads), None, read)
    };
    let (list, search) = (reads(LIST_PATH).await, reads(SEARCH_PATH).await);

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
        phases.push(bid_phase(api, &tag, &load).await);
    }
    gateway.shutdown().await?;

    let alone = (phases[0].bid_ms.p50 + phases[2].bid_ms.p50) / 2.0;
    let ratio = if alone > 0.0 {
        phases[1].bid_ms.p50 / alone
    } else {
        0.0
    };
    let mut violations = Vec::new();
    if list.failed + search.failed > 0 {
        violations.push(format!(
            "{} listings and {} searches did not answer 200",
            list.failed, search.failed
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
    let figures = Listing {
        items: args.items,
        bid_rate: args.bid_rate,
        list_limit_10_ms: list.latencies.latency().unwrap_or_default(),
        list_limit_10_not_200: list.failed,
        search_ms: search.latencies.latency().unwrap_or_default(),
        search_not_200: search.failed,
        phases,
        bid_p50_ratio_with_listers: (ratio * 100.0).round() / 100.0,
    };
    started.finish(figures, violations, &args.out)
}

fn is_ok(answer: &Answer) -> bool {
    matches!(answer.outcome, Outcome::Answered { status: 200, .. })
}

/// What the requests of one task (or of a phase's tasks together) measured.
struct Tally {
    latencies: Histogram,
    requests: u64,
    failed: u64,
}

impl Tally {
    fn new() -> Self {
        Self {
            latencies: Histogram::exact(),
            requests: 0,
            failed: 0,
        }
    }
}

/// Sends `request` until `stop` or `limit` requests, one per `pace` if given (a late one is
/// sent at once, then the pace goes on from it), timing each and counting those that return
/// false.
async fn repeat<F>(
    stop: &CancellationToken,
    limit: Option<usize>,
    pace: Option<Duration>,
    mut request: impl FnMut() -> F,
) -> Tally
where
    F: Future<Output = bool>,
{
    let mut tally = Tally::new();
    let mut ticks = pace.map(|every| {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    while !stop.is_cancelled() && limit.is_none_or(|n| tally.requests < n as u64) {
        if let Some(ticks) = ticks.as_mut() {
            ticks.tick().await;
        }
        let sent = Instant::now();
        let ok = request().await;
        tally.latencies.record(sent.elapsed());
        tally.requests += 1;
        tally.failed += u64::from(!ok);
    }
    tally
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
        list_tasks.spawn(async move {
            let api = &api;
            let list = move || async move { is_ok(&api.get(LIST_PATH).await) };
            repeat(&stop, None, None, list).await
        });
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
        bid_ms: bids.latencies.latency().unwrap_or_default(),
        bids_not_accepted: bids.failed,
        listings: listings.requests,
        listing_ms: listings.latencies.latency(),
        listings_not_200: listings.failed,
    }
}

/// Every task's tally added up; a task that panicked counts as one failure.
async fn collect(mut tasks: JoinSet<Tally>) -> Tally {
    let mut total = Tally::new();
    while let Some(done) = tasks.join_next().await {
        let Ok(tally) = done else {
            total.failed += 1;
            continue;
        };
        total.requests += tally.requests;
        total.failed += tally.failed;
        total.latencies.merge(&tally.latencies);
    }
    total
}

/// Creates `item` and bids on it one cent above the last bid until `stop`, paced as
/// [`repeat`] says.
async fn bidder(
    api: ApiClient,
    item: String,
    user: String,
    pace: Option<Duration>,
    stop: CancellationToken,
) -> Tally {
    let end = in_secs(3_600);
    let created = match NewItem::new(item.clone(), "Bid lot", (100, 1), end) {
        Ok(new) => api.create_item(&new).await,
        Err(e) => Err(e.into()),
    };
    if let Err(e) = created {
        tracing::warn!(error = %format!("{e:#}"), "bid item not created");
        let mut tally = Tally::new();
        tally.failed += 1;
        return tally;
    }
    let (api, item, user, mut amount) = (&api, &item, &user, 100);
    let bid = move || {
        let cents = Cents::new(amount);
        amount += 1;
        async move {
            let Ok(cents) = cents else { return false };
            api.bid(item, user, cents).await.accepted_seq().is_some()
        }
    };
    repeat(&stop, None, pace, bid).await
}
