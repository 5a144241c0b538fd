//! The hot item: N users bid on one fresh item as fast as they can, each just above the last
//! price it saw, so nearly every bid races others for the same Redis key. This is where the
//! two strategies differ most: the Lua script serialises the races inside Redis, the
//! optimistic strategy loses them at `EXEC` and starts over. `bench-write` is this level
//! against one gateway as it is configured (and `bench-write-floor` against the floor too);
//! bench-cluster's many-items load is the same bids spread over many items.

use super::bidder::{BidTarget, place_bid};
use super::check::{ItemCheck, bid_violations, check_items};
use crate::api::{ApiClient, BID_REQUEST_NAME, NewItem, PROXY_BID_REQUEST_NAME};
use crate::figures::{per_sec, ratio, round_to};
use crate::goose_run::{RequestStats, attack, measured_window_secs, requests_named};
use crate::latency::{Histogram, LatencyMs};
use anyhow::Context;
use goose::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The gateway's counter of optimistic attempts that lost the race.
const RETRIES_COUNTER: &str = "gateway_optimistic_retries_total";
/// The gateway's count of bids its price pre-filter answered without Redis.
const PREFILTER_COUNTER: &str = "gateway_prefilter_rejections_total";

/// One users level on the hot item: contention's and bench-write's level alike.
#[derive(Debug, Clone, Serialize)]
pub struct HotLevel {
    pub users: u32,
    /// Configured run time after hatch.
    pub duration_secs: u64,
    /// Window the bids were made in: hatch, run time, last requests finishing.
    pub measured_secs: f64,
    /// Bid requests, their rate and timings (time to first byte).
    pub bids: RequestStats,
    /// With proxy bidders: the bids that carried a maximum (`bids` are then the plain ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_bids: Option<RequestStats>,
    /// Bid requests of both kinds, and their rate.
    pub requests: u64,
    pub requests_per_sec: f64,
    /// 200 with `success: true`.
    pub accepted: u64,
    pub accepted_per_sec: f64,
    /// 200 with `success: false`.
    pub rejected: u64,
    /// Bids without a readable 200 answer, by kind.
    pub errors: BTreeMap<String, u64>,
    /// Optimistic attempts retried during the level (`gateway_optimistic_retries_total`);
    /// `null` when the gateway does not report it.
    pub optimistic_retries: Option<u64>,
    /// `optimistic_retries / accepted`: how many lost races each accepted bid cost.
    pub retries_per_accepted: Option<f64>,
    /// Bids the gateway answered from its local price pre-filter, without a Redis call
    /// (`null` when the gateway does not report it).
    pub answered_without_redis: Option<u64>,
    /// Bids per second that ran the Lua script in Redis (`requests` less the pre-filtered).
    pub redis_bids_per_sec: Option<f64>,
    pub check: ItemCheck,
    /// With proxy bidders: the plain bids against those with a maximum, same run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_comparison: Option<ProxyComparison>,
    /// Everything that failed in this level; empty when it passed.
    pub violations: Vec<String>,
    /// CDF of bid latency (ms, share), for the chart; not part of the JSON.
    #[serde(skip)]
    pub latency_cdf: Vec<(f64, f64)>,
}

impl HotLevel {
    /// The level passed every check.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
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
    fn new(users: u32, plain: &RequestStats, proxy: &RequestStats) -> Self {
        let kind = |clients: u32, stats: &RequestStats| BidKind {
            clients,
            requests: stats.requests,
            bids_per_sec: stats.per_sec,
            bids_per_sec_per_client: round_to(stats.per_sec / f64::from(clients.max(1)), 1),
            latency_ms: stats.latency_ms,
        };
        let (plain, proxy) = (kind(users.div_ceil(2), plain), kind(users / 2, proxy));
        let p99 = |k: &BidKind| k.latency_ms.map(|l| l.p99);
        Self {
            rate_ratio: ratio(proxy.bids_per_sec_per_client, plain.bids_per_sec_per_client),
            p99_ratio: p99(&proxy).zip(p99(&plain)).and_then(|(p, q)| ratio(p, q)),
            plain,
            proxy,
        }
    }
}

/// How much each counter of `names` grew while `work` ran (`None` when the gateway lacks it).
///
/// # Errors
/// The metrics cannot be read, or `work` fails.
pub async fn counter_growth<T, const N: usize>(
    api: &ApiClient,
    names: [&str; N],
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<(T, [Option<u64>; N])> {
    let mut before = [None; N];
    for (value, name) in before.iter_mut().zip(names) {
        *value = api.counter(name).await?;
    }
    let result = work.await?;
    let mut grown = [None; N];
    for ((value, name), before) in grown.iter_mut().zip(names).zip(before) {
        let after = api.counter(name).await?;
        *value = before.zip(after).map(|(b, a)| (a - b).max(0.0) as u64);
    }
    Ok((result, grown))
}

/// Runs one level: creates `item`, lets `users` bid on it for `duration_secs` (every other
/// one with a maximum when `proxy_bidders`) against the server `api` calls, reads it back and
/// checks it.
///
/// # Errors
/// The item cannot be created or read back, the metrics cannot be read, or goose fails.
#[tracing::instrument(skip_all, fields(users, item_id = %item.id))]
pub async fn run_level(
    api: &ApiClient,
    item: &NewItem,
    users: u32,
    duration_secs: u64,
    proxy_bidders: bool,
) -> anyhow::Result<HotLevel> {
    tracing::info!(users, duration_secs, "hot-item level started");
    let items = std::slice::from_ref(item);
    let run = bid_run(api, items, users, duration_secs, proxy_bidders).await?;
    let BidRun {
        measured_secs,
        bids,
        proxy_bids,
        mut checks,
        errors,
        counters: [retries, prefiltered],
        histogram,
    } = run;
    let check = checks.pop().context("the hot item was not read back")?;
    let requests = bids.requests + proxy_bids.as_ref().map_or(0, |p| p.requests);
    let seen = check.seen;
    let violations = level_violations(&check, &errors, requests);
    let through_redis = |skipped: u64| requests.saturating_sub(skipped) as f64;
    Ok(HotLevel {
        users,
        duration_secs,
        measured_secs: round_to(measured_secs, 3),
        requests,
        requests_per_sec: round_to(
            bids.per_sec + proxy_bids.as_ref().map_or(0.0, |p| p.per_sec),
            1,
        ),
        accepted: seen.accepted,
        accepted_per_sec: per_sec(seen.accepted, measured_secs),
        rejected: seen.rejected_too_low + seen.other_rejections,
        errors,
        optimistic_retries: retries,
        retries_per_accepted: retries
            .filter(|_| seen.accepted > 0)
            .map(|r| round_to(r as f64 / seen.accepted as f64, 3)),
        answered_without_redis: prefiltered,
        redis_bids_per_sec: prefiltered
            .filter(|_| measured_secs > 0.0)
            .map(|skipped| round_to(through_redis(skipped) / measured_secs, 1)),
        proxy_comparison: proxy_bids
            .as_ref()
            .map(|p| ProxyComparison::new(users, &bids, p)),
        bids,
        proxy_bids,
        check,
        violations,
        latency_cdf: histogram.map(|h| h.cdf()).unwrap_or_default(),
    })
}

/// Everything wrong with a level: its bids' violations, or no bid accepted at all, which
/// proves nothing.
fn level_violations(
    check: &ItemCheck,
    errors: &BTreeMap<String, u64>,
    requests: u64,
) -> Vec<String> {
    let mut violations = bid_violations(std::slice::from_ref(check), errors, requests);
    if check.seen.accepted == 0 {
        violations.push("no bid was accepted: the level proves nothing".to_owned());
    }
    violations
}

/// A bids-only level over many items (bench-cluster's many-items write load).
#[derive(Debug, Clone, Serialize)]
pub struct SpreadLevel {
    pub users: u32,
    pub items: usize,
    pub bids: RequestStats,
    pub accepted_per_sec: f64,
    pub violations: Vec<String>,
}

/// Like [`run_level`] over every item of `items` (created here): each bid goes to an item
/// picked at random, so the load spreads over every Redis master of a cluster. Each item is
/// checked as the hot item is.
///
/// # Errors
/// An item cannot be created or read back, or goose fails.
pub async fn run_spread_level(
    api: &ApiClient,
    items: &[NewItem],
    users: u32,
    duration_secs: u64,
) -> anyhow::Result<SpreadLevel> {
    let run = bid_run(api, items, users, duration_secs, false).await?;
    let accepted = run.checks.iter().map(|c| c.seen.accepted).sum();
    Ok(SpreadLevel {
        users,
        items: items.len(),
        accepted_per_sec: per_sec(accepted, run.measured_secs),
        violations: bid_violations(&run.checks, &run.errors, run.bids.requests),
        bids: run.bids,
    })
}

/// What one bids-only run measured and read back.
struct BidRun {
    measured_secs: f64,
    bids: RequestStats,
    proxy_bids: Option<RequestStats>,
    checks: Vec<ItemCheck>,
    errors: BTreeMap<String, u64>,
    /// Growth of the optimistic retries and the pre-filter's answers.
    counters: [Option<u64>; 2],
    histogram: Option<Histogram>,
}

/// Creates `items`, lets `users` bid on them (each bid on one picked at random) for
/// `duration_secs`, and reads every item back.
async fn bid_run(
    api: &ApiClient,
    items: &[NewItem],
    users: u32,
    duration_secs: u64,
    proxy_bidders: bool,
) -> anyhow::Result<BidRun> {
    api.create_items(items.to_vec()).await?;
    let first = items.first().context("no items")?;
    let prices = (first.starting_price.get(), first.min_increment.get());
    let ids = items.iter().map(|i| i.id.clone()).collect();
    let target =
        Arc::new(BidTarget::for_client(ids, prices, api).with_proxy_bidders(proxy_bidders));
    let bid = Transaction::new(bid_transaction(&target)).set_name("bid");
    // On the heap: a goose attack's future is large (a test thread's 2 MiB stack overflowed).
    let attack = Box::pin(attack(
        scenario!("Bids").register_transaction(bid),
        api.url(),
        users,
        duration_secs,
    ));
    let counters = [RETRIES_COUNTER, PREFILTER_COUNTER];
    let (metrics, counters) = counter_growth(api, counters, attack).await?;
    let measured_secs = measured_window_secs(&metrics);
    let bids = RequestStats::of(&metrics, BID_REQUEST_NAME, measured_secs);
    let proxy_bids =
        proxy_bidders.then(|| RequestStats::of(&metrics, PROXY_BID_REQUEST_NAME, measured_secs));
    let histogram =
        requests_named(&metrics, BID_REQUEST_NAME).map(|a| Histogram::from_goose(&a.raw_data));
    Ok(BidRun {
        checks: check_items(api, &target).await?,
        errors: target.tally.errors(),
        measured_secs,
        bids,
        proxy_bids,
        counters,
        histogram,
    })
}

/// Each call bids on one of `target`'s items picked at random, with no wait.
pub(super) fn bid_transaction(target: &Arc<BidTarget>) -> TransactionFunction {
    let target = Arc::clone(target);
    Arc::new(move |user| {
        let target = Arc::clone(&target);
        let index = fastrand::usize(..target.item_ids.len().max(1));
        Box::pin(async move { place_bid(user, &target, index).await })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ItemState;
    use crate::contention::tally::ItemOutcomes;

    /// The violations of a level whose users saw `accepted` bids up to `highest` accepted,
    /// and whose item then read `(seq, bid_count, price)`.
    fn violations(accepted: u64, highest: Option<i64>, state: (u64, u64, Option<i64>)) -> usize {
        let seen = ItemOutcomes {
            accepted,
            events: accepted,
            rejected_too_low: 10,
            other_rejections: 0,
            highest_accepted_cents: highest,
            highest_seq: None,
            highest_rejected_cents: None,
        };
        let (seq, bid_count, current_bid_cents) = state;
        let state = ItemState {
            seq,
            bid_count,
            current_bid_cents,
        };
        let check = ItemCheck::new("i", &seen, &state, 1);
        level_violations(&check, &BTreeMap::new(), accepted + 10).len()
    }

    #[test]
    fn a_level_passes_only_with_accepted_bids_and_a_consistent_item() {
        assert_eq!(violations(7, Some(130), (7, 7, Some(130))), 0);
        for (accepted, highest, state) in [
            // A seq or bid_count other than the accepted count: a lost or phantom update.
            (7, Some(130), (6, 7, Some(130))),
            (7, Some(130), (8, 7, Some(130))),
            (7, Some(130), (7, 6, Some(130))),
            // A final price other than the highest accepted bid.
            (7, Some(130), (7, 7, Some(129))),
            // No bid accepted proves nothing.
            (0, None, (0, 0, None)),
        ] {
            assert!(
                violations(accepted, highest, state) > 0,
                "{accepted} {state:?}"
            );
        }
    }
}
