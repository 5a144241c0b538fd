//! The hot item: N users bid on one fresh item as fast as they can, each just above the last
//! price it saw, so nearly every bid races others for the same Redis key. This is where the
//! two strategies differ most: the Lua script serialises the races inside Redis, the
//! optimistic strategy loses them at `EXEC` and starts over. `bench-write` is this level
//! against one gateway as it is configured.

use super::bidder::{BidTarget, place_bid};
use super::check::{ItemCheck, error_violations, refusal_violation, undetermined_note};
use crate::api::{ApiClient, BID_REQUEST_NAME, NewItem, PROXY_BID_REQUEST_NAME};
use crate::goose_run::{
    RequestStats, attack, measured_window_secs, per_sec, requests_named, round_to,
};
use crate::latency::Histogram;
use crate::verdict::prefixed;
use goose::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The gateway's counter of optimistic attempts that lost the race.
const RETRIES_COUNTER: &str = "gateway_optimistic_retries_total";

/// One users level on the hot item.
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
    pub check: ItemCheck,
    /// Everything that failed in this level; empty when it passed.
    pub violations: Vec<String>,
    /// CDF of bid latency (ms, share), for the chart; not part of the JSON.
    #[serde(skip)]
    pub latency_cdf: Vec<(f64, f64)>,
}

/// How much counter `name` grew while `work` ran (`None` when the gateway lacks it).
///
/// # Errors
/// The metrics cannot be read, or `work` fails.
pub async fn counter_growth<T>(
    api: &ApiClient,
    name: &str,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<(T, Option<u64>)> {
    let before = api.counter(name).await?;
    let result = work.await?;
    let grown = match (before, api.counter(name).await?) {
        (Some(before), Some(after)) => Some((after - before).max(0.0) as u64),
        _ => None,
    };
    Ok((result, grown))
}

/// Runs one level: creates `item`, lets `users` bid on it for `duration_secs`, reads it back
/// and checks it.
///
/// # Errors
/// The item cannot be created or read back, the metrics cannot be read, or goose fails.
#[tracing::instrument(skip_all, fields(users, item_id = %item.id))]
pub async fn run_level(
    api: &ApiClient,
    gateway_url: &str,
    item: &NewItem,
    users: u32,
    duration_secs: u64,
) -> anyhow::Result<HotLevel> {
    run_level_with(api, gateway_url, item, users, duration_secs, false).await
}

/// [`run_level`], with every other user bidding with a maximum when `proxy_bidders`.
///
/// # Errors
/// As [`run_level`].
pub async fn run_level_with(
    api: &ApiClient,
    gateway_url: &str,
    item: &NewItem,
    users: u32,
    duration_secs: u64,
    proxy_bidders: bool,
) -> anyhow::Result<HotLevel> {
    api.create_item(item).await?;
    let (starting, increment) = (item.starting_price.get(), item.min_increment.get());
    let target = Arc::new(
        BidTarget::for_client(vec![item.id.clone()], (starting, increment), api)
            .with_proxy_bidders(proxy_bidders),
    );
    tracing::info!(users, duration_secs, "hot-item level started");
    let attack = attack(
        scenario(Arc::clone(&target)),
        gateway_url,
        users,
        duration_secs,
    );
    let (metrics, retries) = counter_growth(api, RETRIES_COUNTER, attack).await?;

    let measured_secs = measured_window_secs(&metrics);
    let bids = RequestStats::of(&metrics, BID_REQUEST_NAME, measured_secs);
    let proxy_bids =
        proxy_bidders.then(|| RequestStats::of(&metrics, PROXY_BID_REQUEST_NAME, measured_secs));
    let all_requests = bids.requests + proxy_bids.as_ref().map_or(0, |p| p.requests);
    let tally = &target.tally;
    let seen = tally.item(0);
    let errors = tally.errors();
    let tallied = tally.accepted_total() + tally.rejected_total() + errors.values().sum::<u64>();
    if all_requests != tallied {
        tracing::warn!(
            bids.requests,
            tallied,
            "goose counted other bids than the users"
        );
    }
    let state = api.item_state(&item.id).await?;
    let check = ItemCheck::new(&item.id, &seen, &state, increment);
    let violations = level_violations(&check, &errors, all_requests);
    let histogram =
        requests_named(&metrics, BID_REQUEST_NAME).map(|a| Histogram::from_goose(&a.raw_data));
    Ok(HotLevel {
        users,
        duration_secs,
        measured_secs: round_to(measured_secs, 3),
        accepted: seen.accepted,
        accepted_per_sec: per_sec(seen.accepted, measured_secs),
        rejected: seen.rejected_too_low + seen.other_rejections,
        errors,
        optimistic_retries: retries,
        retries_per_accepted: retries
            .filter(|_| seen.accepted > 0)
            .map(|r| round_to(r as f64 / seen.accepted as f64, 3)),
        bids,
        proxy_bids,
        check,
        violations,
        latency_cdf: histogram.map(|h| h.cdf()).unwrap_or_default(),
    })
}

/// Everything wrong with a level: its item's check (with a note when bids without a definite
/// answer may explain it), answers a correct gateway never gives, a level answered mostly
/// with refusals, or no bid accepted at all, which proves nothing.
fn level_violations(
    check: &ItemCheck,
    errors: &BTreeMap<String, u64>,
    requests: u64,
) -> Vec<String> {
    let mut violations = prefixed(format_args!("item {}", check.item_id), &check.violations);
    if !check.passed() {
        violations.extend(undetermined_note(errors));
    }
    violations.extend(error_violations("bid", errors));
    violations.extend(refusal_violation("bid", requests, errors));
    if check.accepted == 0 {
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
    gateway_url: &str,
    items: &[NewItem],
    users: u32,
    duration_secs: u64,
) -> anyhow::Result<SpreadLevel> {
    for item in items {
        api.create_item(item).await?;
    }
    let first = items.first().ok_or_else(|| anyhow::anyhow!("no items"))?;
    let (starting, increment) = (first.starting_price.get(), first.min_increment.get());
    let ids = items.iter().map(|i| i.id.clone()).collect();
    let target = Arc::new(BidTarget::for_client(ids, (starting, increment), api));
    let bid_target = Arc::clone(&target);
    let bid: TransactionFunction = Arc::new(move |user| {
        let target = Arc::clone(&bid_target);
        let index = fastrand::usize(..target.item_ids.len().max(1));
        Box::pin(async move { place_bid(user, &target, index).await })
    });
    let scenario =
        scenario!("ManyItems").register_transaction(Transaction::new(bid).set_name("bid"));
    let metrics = attack(scenario, gateway_url, users, duration_secs).await?;
    let measured_secs = measured_window_secs(&metrics);
    let bids = RequestStats::of(&metrics, BID_REQUEST_NAME, measured_secs);
    let errors = target.tally.errors();
    let mut violations = Vec::new();
    for (index, id) in target.item_ids.iter().enumerate() {
        let state = api.item_state(id).await?;
        let check = ItemCheck::new(id, &target.tally.item(index), &state, increment);
        violations.extend(prefixed(format_args!("item {id}"), &check.violations));
    }
    if !violations.is_empty() {
        violations.extend(undetermined_note(&errors));
    }
    violations.extend(error_violations("bid", &errors));
    violations.extend(refusal_violation("bid", bids.requests, &errors));
    Ok(SpreadLevel {
        users,
        items: items.len(),
        accepted_per_sec: per_sec(target.tally.accepted_total(), measured_secs),
        bids,
        violations,
    })
}

/// Every user bids on the one item in a loop, with no wait.
fn scenario(target: Arc<BidTarget>) -> Scenario {
    let bid: TransactionFunction = Arc::new(move |user| {
        let target = Arc::clone(&target);
        Box::pin(async move { place_bid(user, &target, 0).await })
    });
    scenario!("HotItem").register_transaction(Transaction::new(bid).set_name("bid"))
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
