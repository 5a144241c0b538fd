//! Bid rules: window, increment, anti-sniping, idempotency.

use crate::helpers::*;
use futures::StreamExt;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn first_bid_must_reach_the_starting_price_and_later_bids_the_increment() {
    let app = spawn_app().await;
    // The defaults: starting at 10.00, increment 1.00.
    let item = app.create_item(json!({})).await;

    let below_start = app.bid(&item, "alice", json!(9.99)).await;
    assert_eq!(below_start.assert_outcome("bid_too_low")["success"], false);

    let first = app.accepted_bid(&item, "alice", json!(10)).await;
    assert_eq!(first.body["success"], true);
    assert_eq!(first.body["is_highest"], true);
    assert_eq!(first.seq, 1);
    assert_eq!(first.body["current_bid"].to_string(), "10");
    assert_eq!(first.event_id.len(), 36, "{}", first.body);

    let below_increment = app.bid(&item, "bob", json!(10.99)).await;
    let body = below_increment.assert_outcome("bid_too_low");
    assert_eq!(body["current_bid_cents"], 1000);

    let second = app.accepted_bid(&item, "bob", json!("11.00")).await;
    assert_eq!(second.seq, 2);

    let state = app.item(&item).await;
    assert_eq!(state["current_bid"].to_string(), "11");
    assert_eq!(state["highest_bidder_id"], "bob");
    assert_eq!(state["bid_count"], 2);
    assert_eq!(state["seq"], 2);
    assert_eq!(state["minimum_bid_cents"], 1200);
    // Two events and no more: counting the outbox and the archive apart would race the relay
    // moving one between the two reads.
    assert_archived_exactly_once(&app.config, &[first.event_id, second.event_id]).await;
}

#[tokio::test]
async fn bid_before_the_start_returns_409_and_changes_nothing() {
    let app = spawn_app().await;
    let item = app.create_scheduled_item(600, 1200).await;
    assert_eq!(app.item(&item).await["status"], "scheduled");

    let early = app.bid(&item, "alice", json!(50)).await;
    early.assert_error(409, "auction_not_started");
    app.assert_no_bid_on(&item).await;
}

#[tokio::test]
async fn bid_after_the_end_returns_409_and_changes_nothing() {
    let app = spawn_app().await;
    let item = app.create_item(json!({"end_time": in_secs(1)})).await;
    // Wait for the closer, so what follows compares against the final, closed state.
    wait_until(Duration::from_secs(5), "auction closed", || async {
        (app.item(&item).await["closed_at"] != serde_json::Value::Null).then_some(())
    })
    .await
    .unwrap();
    let before = app.item_hash(&item).await;

    let late = app.bid(&item, "alice", json!(50)).await;
    late.assert_error(409, "auction_closed");
    assert_eq!(
        app.item_hash(&item).await,
        before,
        "the rejected bid changed nothing"
    );
}

#[tokio::test]
async fn bid_on_unknown_item_returns_404() {
    let app = spawn_app().await;
    let unknown = app.bid("no-such-item", "alice", json!(50)).await;
    unknown.assert_error(404, "item_not_found");
}

#[tokio::test]
async fn bid_in_the_anti_sniping_window_extends_the_end_time() {
    let app = spawn_app().await;
    let item = app.create_item(anti_sniping(20, 60, 120)).await;
    let before = app.item(&item).await["end_time"]
        .as_str()
        .unwrap()
        .to_owned();

    let bid = app.accepted_bid(&item, "alice", json!(15)).await;
    assert_eq!(bid.body["extended"], true);

    let after = app.item(&item).await;
    let end = shared::Timestamp::parse_rfc3339(after["end_time"].as_str().unwrap()).unwrap();
    let old = shared::Timestamp::parse_rfc3339(&before).unwrap();
    assert!(
        end.micros() - old.micros() > 90_000_000,
        "end moved from {old} to {end}"
    );
    // The closing schedule follows the new end time.
    let score: i64 = redis::cmd("ZSCORE")
        .arg(app.item_keys(&item).closing)
        .arg(&item)
        .query_async(&mut app.redis().await)
        .await
        .unwrap();
    assert_eq!(score, end.micros());
}

#[tokio::test]
async fn bid_outside_the_anti_sniping_window_does_not_extend() {
    let app = spawn_app().await;
    let item = app.create_item(anti_sniping(3600, 60, 120)).await;
    let bid = app.accepted_bid(&item, "alice", json!(15)).await;
    assert_eq!(bid.body["extended"], false, "{}", bid.body);
}

/// Bids 20 with `key` twice, then 30 with the same key, on a fresh item: the retry gets the
/// first answer again, the other amount a 409, and the item holds one bid. Returns the item.
/// Both Redis strategies keep this rule.
pub async fn assert_a_keyed_retry_bids_once(app: &TestApp, key: &str) -> String {
    let item = app.create_item(json!({})).await;
    let first = app.bid_with_key(&item, "alice", json!(20), key).await;
    let second = app.bid_with_key(&item, "alice", json!(20), key).await;
    let replayed = second.assert_status(200);
    assert_eq!(first.body["code"], "accepted", "{}", first.text);
    assert_eq!(replayed["event_id"], first.body["event_id"]);
    assert_eq!(replayed["seq"], 1);
    assert_eq!(replayed["replayed"], true);
    assert_eq!(app.item(&item).await["bid_count"], 1);

    let conflict = app.bid_with_key(&item, "alice", json!(30), key).await;
    conflict.assert_error(409, "idempotency_key_reused");
    assert_eq!(app.item(&item).await["seq"], 1);
    item
}

#[tokio::test]
async fn retry_with_the_same_idempotency_key_returns_the_first_answer_and_bids_once() {
    let app = spawn_app().await;
    assert_a_keyed_retry_bids_once(&app, "retry-1").await;

    wait_until(Duration::from_secs(10), "one archived event", || async {
        (app.archived_event_ids().await.len() == 1).then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_rejected_bid_is_also_answered_the_same_on_retry() {
    let app = spawn_app().await;
    let item = app.create_item(json!({})).await;
    app.accepted_bid(&item, "bob", json!(50)).await;
    for _ in 0..2 {
        let retried = app.bid_with_key(&item, "alice", json!(20), "low-1").await;
        let body = retried.assert_outcome("bid_too_low");
        assert_eq!(body["current_bid_cents"], 5000);
    }
}

#[tokio::test]
async fn a_user_bidding_faster_than_the_limit_gets_429_and_changes_nothing() {
    let mut config = shared_config();
    config.bid_rate_per_user = 1;
    config.bid_burst_per_user = 2;
    let app = spawn_app_with(config).await;
    let item = app.create_item(json!({})).await;
    app.accepted_bid(&item, "alice", json!(11)).await;
    app.accepted_bid(&item, "alice", json!(12)).await;

    let limited = app.bid(&item, "alice", json!(13)).await;
    limited.assert_error(429, "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
    assert_eq!(
        app.item(&item).await["seq"],
        2,
        "the limited bid changed nothing"
    );

    // Another bidder is not affected.
    app.accepted_bid(&item, "bob", json!(14)).await;
}

/// The TTL (seconds) of the idempotency record of `key` for `item`.
async fn record_ttl(app: &TestApp, item: &str, key: &str) -> i64 {
    let key = shared::IdempotencyKey::parse(key).unwrap();
    redis::cmd("TTL")
        .arg(app.item_keys(item).idempotency(&key))
        .query_async(&mut app.redis().await)
        .await
        .unwrap()
}

/// Both strategies keep accepted answers a day and rejections only for a retry's while.
pub async fn assert_rejections_are_kept_briefly(app: &TestApp) {
    let item = app.create_item(json!({})).await;
    app.bid_with_key(&item, "bob", json!(50), "kept-long")
        .await
        .assert_outcome("accepted");
    let rejected = app
        .bid_with_key(&item, "alice", json!(20), "kept-briefly")
        .await;
    rejected.assert_outcome("bid_too_low");
    let scheduled = app.create_scheduled_item(600, 1200).await;
    let early = app
        .bid_with_key(&scheduled, "alice", json!(60), "too-early")
        .await;
    early.assert_error(409, "auction_not_started");

    let accepted_ttl = record_ttl(app, &item, "kept-long").await;
    assert!(accepted_ttl > 86_000, "accepted: {accepted_ttl} s");
    for (item, key) in [(&item, "kept-briefly"), (&scheduled, "too-early")] {
        let ttl = record_ttl(app, item, key).await;
        assert!((1..=60).contains(&ttl), "{key}: {ttl} s");
    }
    // Within that while, a retry still gets the first answer.
    let retried = app
        .bid_with_key(&item, "alice", json!(20), "kept-briefly")
        .await;
    assert_eq!(retried.assert_outcome("bid_too_low")["replayed"], true);
}

#[tokio::test]
async fn a_rejection_is_remembered_for_a_minute_and_an_accepted_bid_for_a_day() {
    assert_rejections_are_kept_briefly(&spawn_app().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_bids_on_unknown_items_leave_nothing_in_the_gateways_memory() {
    let mut config = shared_config();
    config.bid_rate_per_user = 0;
    let app = spawn_app_with(config).await;
    let unknown = futures::stream::iter(0..10_000)
        .map(|n| {
            let app = &app;
            async move {
                app.bid(&format!("no-such-item-{n}"), "mallory", json!(20))
                    .await
                    .status
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<u16>>()
        .await;
    assert!(
        unknown.iter().all(|status| *status == 404),
        "every one a 404"
    );
    let item = app.create_item(json!({})).await;
    app.accepted_bid(&item, "alice", json!(11)).await;

    assert_eq!(
        app.reported_metric("gateway_live_tracked_items").await,
        Some(0.0),
        "no reorder buffer outlives its bid"
    );
    assert_eq!(
        app.reported_metric("gateway_prefilter_items").await,
        Some(1.0),
        "only the item that exists has a known price"
    );
}
