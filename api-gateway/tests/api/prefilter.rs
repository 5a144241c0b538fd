//! The price pre-filter never wrongly rejects for long: after a close, cancel or relist it
//! defers to Redis at once on the instance that did it or heard of it, and within
//! `PRICE_PREFILTER_TTL_MS` on an instance that never heard of it.

use crate::helpers::*;
use serde_json::json;
use std::time::Duration;

/// Whether a bid's answer came from the pre-filter (which never knows the minimum next bid).
fn from_prefilter(body: &serde_json::Value) -> bool {
    body["code"] == "bid_too_low" && body.get("minimum_bid_cents").is_none()
}

/// The terms of a new round starting at 1.00 and ending in an hour.
fn cheaper_round() -> serde_json::Value {
    json!({"starting_price": 1, "min_increment": 0.01, "end_time": in_secs(3600)})
}

#[tokio::test]
async fn a_relist_at_a_lower_price_takes_a_bid_at_the_new_price_at_once() {
    let app = spawn_app().await;
    let item = app.create_item(json!({})).await;
    app.accepted_bid(&item, "alice", json!(50)).await;
    let low = app.bid(&item, "bob", json!(20)).await;
    assert!(
        from_prefilter(&low.body),
        "the filter knows 50: {}",
        low.body
    );

    app.admin(&item, "close", json!({}))
        .await
        .assert_status(200);
    app.admin(&item, "relist", cheaper_round())
        .await
        .assert_status(200);
    let bid = app.accepted_bid(&item, "bob", json!(2)).await;
    assert_eq!(bid.body["current_bid"].to_string(), "2", "{}", bid.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relist_another_gateway_never_announced_stops_the_filter_within_its_ttl() {
    // Gateway `a` has a NATS of its own, so `b`'s live events never reach it: it learns of
    // the new round only from Redis.
    let nats = NatsServer::start().unwrap();
    let b = spawn_app().await;
    let mut config = b.config.clone();
    config.common.nats_url = nats.url().into();
    config.instance_id = unique_id("gw-a");
    config.relay_enabled = false;
    config.bid_rate_per_user = 0;
    config.price_prefilter_ttl_ms = 300;
    let a = spawn_app_with(config).await;
    let item = b.create_item(json!({})).await;
    a.accepted_bid(&item, "alice", json!(50)).await;
    assert!(from_prefilter(&a.bid(&item, "bob", json!(20)).await.body));

    b.admin(&item, "close", json!({})).await.assert_status(200);
    b.admin(&item, "relist", cheaper_round())
        .await
        .assert_status(200);
    let accepted = wait_until(Duration::from_secs(5), "a bid at the new price", || async {
        let reply = a.bid(&item, "bob", json!(2)).await;
        (reply.body["code"] == "accepted").then_some(reply.body)
    })
    .await
    .unwrap();
    assert_eq!(accepted["seq"], 4, "bid, close, relist, bid: {accepted}");
}
