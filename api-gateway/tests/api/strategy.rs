//! The optimistic strategy (`WATCH`/`MULTI`/`EXEC`) follows the same rules as the Lua script.

use crate::helpers::*;
use serde_json::json;

async fn optimistic_app() -> TestApp {
    let mut config = shared_config();
    config.redis_strategy = api_gateway::config::RedisStrategy::Optimistic;
    spawn_app_with(config).await
}

#[tokio::test]
async fn optimistic_bids_follow_the_starting_price_increment_and_window_rules() {
    let app = optimistic_app().await;
    // The defaults: starting at 10.00, increment 1.00.
    let item = app.create_item(json!({})).await;
    assert_eq!(
        app.bid(&item, "alice", json!(9.99)).await.body["code"],
        "bid_too_low"
    );
    let first = app.accepted_bid(&item, "alice", json!(10)).await;
    assert_eq!(first.seq, 1, "{}", first.body);
    assert_eq!(
        app.bid(&item, "bob", json!(10.99)).await.body["code"],
        "bid_too_low"
    );
    let second = app.accepted_bid(&item, "bob", json!(11)).await;
    let accepted = vec![first.event_id, second.event_id];
    let state = app.item(&item).await;
    assert_eq!(
        (state["seq"].as_u64(), state["highest_bidder_id"].as_str()),
        (Some(2), Some("bob"))
    );

    let scheduled = app.create_scheduled_item(600, 1200).await;
    let early = app.bid(&scheduled, "alice", json!(50)).await;
    early.assert_error(409, "auction_not_started");
    let unknown = app.bid("no-such-item", "alice", json!(50)).await;
    unknown.assert_status(404);
    assert_archived_exactly_once(&app.config, &accepted).await;
}

#[tokio::test]
async fn optimistic_retries_with_an_idempotency_key_bid_once() {
    let app = optimistic_app().await;
    crate::bids::assert_a_keyed_retry_bids_once(&app, "opt-1").await;
}

#[tokio::test]
async fn the_script_and_the_optimistic_strategy_replay_each_others_idempotent_answers() {
    let script = spawn_app().await;
    let mut config = script.config.clone();
    config.redis_strategy = api_gateway::config::RedisStrategy::Optimistic;
    config.relay_enabled = false;
    let optimistic = spawn_app_with(config).await;
    let item = script.create_item(json!({})).await;
    for (first, second, key, amount) in [
        (&script, &optimistic, "by-script", 20),
        (&optimistic, &script, "by-optimistic", 30),
    ] {
        let original = first.bid_with_key(&item, "alice", json!(amount), key).await;
        let replayed = second
            .bid_with_key(&item, "alice", json!(amount), key)
            .await;
        let (original, replayed) = (original.body, replayed.body);
        assert_eq!(original["code"], "accepted", "{original}");
        assert_eq!(replayed["replayed"], true, "{replayed}");
        for field in [
            "event_id",
            "seq",
            "current_bid",
            "minimum_bid_cents",
            "end_time",
        ] {
            assert_eq!(replayed[field], original[field], "{field}: {replayed}");
        }
        let conflict = second
            .bid_with_key(&item, "alice", json!(amount + 1), key)
            .await;
        assert_eq!(conflict.status, 409, "{key}");
    }
    assert_eq!(script.item(&item).await["bid_count"], 2);
}

#[tokio::test]
async fn an_optimistic_bid_at_the_price_ceiling_wins_at_once() {
    crate::lifecycle::assert_a_bid_at_the_ceiling_wins_at_once(&optimistic_app().await).await;
}

#[tokio::test]
async fn optimistic_rejections_are_remembered_briefly_too() {
    crate::bids::assert_rejections_are_kept_briefly(&optimistic_app().await).await;
}

#[tokio::test]
async fn an_optimistic_bid_that_extends_the_auction_reorders_the_listing_too() {
    crate::listing::assert_extensions_reorder_the_ending_listing(&optimistic_app().await).await;
}
