//! The hot item: N users bid on one fresh item as fast as they can, each just above the last
//! price it saw, so nearly every bid races others for the same Redis key. This is where the
//! two strategies differ most: the Lua script serialises the races inside Redis, the
//! optimistic strategy loses them at `EXEC` and starts over.

use super::bidder::{BID_REQUEST_NAME, BidTarget, place_bid};
use super::check::{ItemCheck, error_violations, undetermined_note};
use super::{MIN_INCREMENT_CENTS, RETRIES_COUNTER, STARTING_PRICE_CENTS, new_item};
use crate::api::ApiClient;
use crate::goose_run::{RequestStats, attack, latency_cdf, measured_window_secs, requests_named};
use goose::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

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

/// Runs one level: creates item `item_id`, lets `users` bid on it for `duration_secs`, reads
/// it back and checks it.
///
/// # Errors
///
/// The item cannot be created or read back, the metrics cannot be read, or goose fails.
#[tracing::instrument(skip_all, fields(users, item_id))]
pub async fn run_level(
    api: &ApiClient,
    gateway_url: &str,
    item_id: String,
    users: u32,
    duration_secs: u64,
) -> anyhow::Result<HotLevel> {
    api.create_item(&new_item(item_id.clone())).await?;
    let retries_before = api.counter(RETRIES_COUNTER).await?;
    let target = Arc::new(BidTarget::new(
        vec![item_id.clone()],
        STARTING_PRICE_CENTS,
        MIN_INCREMENT_CENTS,
    ));
    tracing::info!(users, duration_secs, "hot-item level started");
    let metrics = attack(
        scenario(Arc::clone(&target)),
        gateway_url,
        users,
        duration_secs,
    )
    .await?;
    let retries = match (retries_before, api.counter(RETRIES_COUNTER).await?) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };

    let measured_secs = measured_window_secs(&metrics);
    let bids = RequestStats::of(&metrics, BID_REQUEST_NAME, measured_secs);
    let tally = target.tally();
    let seen = tally.item(0);
    let errors = tally.errors();
    if bids.requests
        != tally.accepted_total() + tally.rejected_total() + errors.values().sum::<u64>()
    {
        tracing::warn!(
            goose_requests = bids.requests,
            "goose counted a different number of bids than the users tallied"
        );
    }
    let state = api.item_state(&item_id).await?;
    let check = ItemCheck::new(&item_id, &seen, &state, MIN_INCREMENT_CENTS);
    let mut violations: Vec<String> = check
        .violations
        .iter()
        .map(|v| format!("item {item_id}: {v}"))
        .collect();
    if !check.passed() {
        violations.extend(undetermined_note(&errors));
    }
    violations.extend(error_violations("bid", &errors));
    if seen.accepted == 0 {
        violations.push("no bid was accepted: the level proves nothing".to_owned());
    }
    let latency_cdf = requests_named(&metrics, BID_REQUEST_NAME)
        .map(|aggregate| latency_cdf(&aggregate.raw_data))
        .unwrap_or_default();
    Ok(HotLevel {
        users,
        duration_secs,
        measured_secs: crate::goose_run::round_to(measured_secs, 3),
        accepted: seen.accepted,
        accepted_per_sec: crate::goose_run::per_sec(seen.accepted, measured_secs),
        rejected: seen.rejected_too_low + seen.other_rejections,
        errors,
        optimistic_retries: retries,
        retries_per_accepted: retries
            .filter(|_| seen.accepted > 0)
            .map(|r| crate::goose_run::round_to(r as f64 / seen.accepted as f64, 3)),
        bids,
        check,
        violations,
        latency_cdf,
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
