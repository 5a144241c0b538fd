//! The mixed workload: many items, users that mostly bid on a random one and otherwise read.
//!
//! Closer to a live site than the hot item: contention is spread over `--mixed-items` keys
//! and reads share Redis with the writes. Weights per user: bid on a random item 6, read a
//! random item (`GET /api/v1/items/{id}`) 3, list the items (`GET /api/v1/items`) 1. Every
//! item is checked afterwards like the hot item.

use super::bidder::BidTarget;
use super::check::{ItemCheck, bid_violations, check_items};
use super::check::{error_violations, refusal_violation, status_errors};
use super::hot_item::bid_transaction;
use super::{PRICES, new_item};
use crate::api::{ApiClient, BID_REQUEST_NAME, ITEMS_PATH, item_path};
use crate::figures::{per_sec, round_to};
use crate::goose_run::{RequestStats, attack, measured_window_secs};
use anyhow::Context;
use goose::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Name of item reads in goose's metrics.
pub const ITEM_READ_NAME: &str = "GET /api/v1/items/{id}";
/// Name of list reads in goose's metrics.
pub const LIST_READ_NAME: &str = "GET /api/v1/items";
/// Transaction weights: bid, item read, list read (60 / 30 / 10 %).
const WEIGHTS: (usize, usize, usize) = (6, 3, 1);

/// The mixed run's figures and checks.
#[derive(Debug, Clone, Serialize)]
pub struct MixedResult {
    pub users: u32,
    pub items: usize,
    pub duration_secs: u64,
    pub measured_secs: f64,
    /// One entry per request kind: bids, item reads, list reads.
    pub requests: Vec<RequestStats>,
    pub accepted: u64,
    pub accepted_per_sec: f64,
    pub rejected: u64,
    /// Requests without the expected answer, by request kind then error kind.
    pub errors: BTreeMap<String, BTreeMap<String, u64>>,
    /// Items bid on at least once (accepted).
    pub items_with_bids: usize,
    /// The items that failed their check (all passed when empty).
    pub failed_items: Vec<ItemCheck>,
    /// Everything that failed; empty when the run passed.
    pub violations: Vec<String>,
}

/// Creates `items` items named `<prefix><n>`, runs `users` for `duration_secs`, reads every
/// item back and checks it.
///
/// # Errors
/// An item cannot be created or read back, or goose fails.
#[tracing::instrument(skip_all, fields(users, items))]
pub async fn run(
    api: &ApiClient,
    prefix: &str,
    users: u32,
    items: usize,
    duration_secs: u64,
) -> anyhow::Result<MixedResult> {
    let ids: Vec<String> = (0..items).map(|n| format!("{prefix}{n}")).collect();
    let new_items = ids.iter().map(|id| new_item(id.clone()));
    api.create_items(new_items.collect::<anyhow::Result<_>>()?)
        .await
        .context("creating the mixed items")?;
    let target = Arc::new(BidTarget::for_client(ids, PRICES, api));
    tracing::info!(users, items, duration_secs, "mixed run started");
    let scenario = scenario(&target)?;
    let metrics = Box::pin(attack(scenario, api.url(), users, duration_secs)).await?;
    let measured_secs = measured_window_secs(&metrics);
    let names = [BID_REQUEST_NAME, ITEM_READ_NAME, LIST_READ_NAME];
    let stats = |name| RequestStats::of(&metrics, name, measured_secs);
    let requests: Vec<RequestStats> = names.into_iter().map(stats).collect();

    let tally = &target.tally;
    let checks = check_items(api, &target).await?;
    let bids = requests.first().map_or(0, |b| b.requests);
    let mut violations = bid_violations(&checks, &tally.errors(), bids);
    let mut errors = BTreeMap::from([("bid".to_owned(), tally.errors())]);
    for stats in requests.iter().skip(1) {
        let kind_errors = status_errors(&stats.statuses, 200);
        violations.extend(error_violations(&stats.name, &kind_errors));
        violations.extend(refusal_violation(&stats.name, stats.requests, &kind_errors));
        errors.insert(stats.name.clone(), kind_errors);
    }
    let accepted = tally.accepted_total();
    if accepted == 0 {
        violations.push("no bid was accepted in the mixed run: it proves nothing".to_owned());
    }
    Ok(MixedResult {
        users,
        items,
        duration_secs,
        measured_secs: round_to(measured_secs, 3),
        requests,
        accepted,
        accepted_per_sec: per_sec(accepted, measured_secs),
        rejected: tally.rejected_total(),
        errors,
        items_with_bids: checks.iter().filter(|c| c.seen.accepted > 0).count(),
        failed_items: checks.into_iter().filter(|c| !c.passed()).collect(),
        violations,
    })
}

/// Bids and reads on random items, weighted by [`WEIGHTS`], with no wait.
fn scenario(target: &Arc<BidTarget>) -> anyhow::Result<Scenario> {
    let bid = bid_transaction(target);
    let item_paths: Arc<Vec<String>> =
        Arc::new(target.item_ids.iter().map(|id| item_path(id)).collect());
    let read_item: TransactionFunction = Arc::new(move |user| {
        let paths = Arc::clone(&item_paths);
        Box::pin(async move {
            match paths.get(fastrand::usize(..paths.len().max(1))) {
                Some(path) => read(user, path, ITEM_READ_NAME).await,
                None => Ok(()),
            }
        })
    });
    let list: TransactionFunction =
        Arc::new(|user| Box::pin(async move { read(user, ITEMS_PATH, LIST_READ_NAME).await }));
    let transaction = |f, name, weight| Transaction::new(f).set_name(name).set_weight(weight);
    Ok(scenario!("Mixed")
        .register_transaction(transaction(bid, "bid", WEIGHTS.0)?)
        .register_transaction(transaction(read_item, "read item", WEIGHTS.1)?)
        .register_transaction(transaction(list, "list items", WEIGHTS.2)?))
}

/// A `GET` whose body is read to the end, so the connection is reused, and dropped: the
/// reads load the gateway; goose times them and counts their statuses.
async fn read(user: &mut GooseUser, path: &str, name: &str) -> TransactionResult {
    let goose = user.get_named(path, name).await?;
    if let Ok(response) = goose.response {
        // A body cut short is already a failure goose has counted by status or transport.
        let _ = response.bytes().await;
    }
    Ok(())
}
