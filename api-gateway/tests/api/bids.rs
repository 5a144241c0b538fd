//! Bid rules: window, increment, anti-sniping, idempotency.

use crate::helpers::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn first_bid_must_reach_the_starting_price_and_later_bids_the_increment() {
    let app = spawn_app().await;
    let item = app
        .create_item(json!({"starting_price": 10, "min_increment": 1}))
        .await;

    let (status, body) = app.bid(&item, "alice", json!(9.99)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (200, Some("bid_too_low")),
        "{body}"
    );
    assert_eq!(body["success"], false);

    let (status, body) = app.bid(&item, "alice", json!(10)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (200, Some("accepted")),
        "{body}"
    );
    assert_eq!(body["success"], true);
    assert_eq!(body["is_highest"], true);
    assert_eq!(body["seq"], 1);
    assert_eq!(body["current_bid"].to_string(), "10");
    assert!(body["event_id"].as_str().is_some_and(|id| id.len() == 36));

    let (_, body) = app.bid(&item, "bob", json!(10.99)).await;
    assert_eq!(body["code"], "bid_too_low", "{body}");
    assert_eq!(body["current_bid_cents"], 1000);

    let (_, body) = app.bid(&item, "bob", json!("11.00")).await;
    assert_eq!(body["code"], "accepted", "{body}");
    assert_eq!(body["seq"], 2);

    let state = app.item(&item).await;
    assert_eq!(state["current_bid"].to_string(), "11");
    assert_eq!(state["highest_bidder_id"], "bob");
    assert_eq!(state["bid_count"], 2);
    assert_eq!(state["seq"], 2);
    assert_eq!(state["minimum_bid_cents"], 1200);
    assert_eq!(
        app.outbox_entries_for(&item).await + app.archived_event_ids().await.len(),
        2
    );
    delete_stream(&app.config).await;
}

#[tokio::test]
async fn bid_before_the_start_returns_409_and_changes_nothing() {
    let app = spawn_app().await;
    let item = app
        .create_item(json!({"start_time": in_secs(600), "end_time": in_secs(1200)}))
        .await;
    assert_eq!(app.item(&item).await["status"], "scheduled");

    let (status, body) = app.bid(&item, "alice", json!(50)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "auction_not_started");
    let hash = app.item_hash(&item).await;
    assert_eq!(
        (hash["seq"].as_str(), hash["bid_count"].as_str()),
        ("0", "0")
    );
    assert_eq!(app.outbox_entries_for(&item).await, 0);
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

    let (status, body) = app.bid(&item, "alice", json!(50)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "auction_closed");
    assert_eq!(
        app.item_hash(&item).await,
        before,
        "the rejected bid changed nothing"
    );
    delete_stream(&app.config).await;
}

#[tokio::test]
async fn bid_on_unknown_item_returns_404() {
    let app = spawn_app().await;
    let (status, body) = app.bid("no-such-item", "alice", json!(50)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "item_not_found");
}

#[tokio::test]
async fn bid_in_the_anti_sniping_window_extends_the_end_time() {
    let app = spawn_app().await;
    let item = app
        .create_item(json!({
            "end_time": in_secs(20),
            "extension_window_secs": 60,
            "extension_secs": 120,
        }))
        .await;
    let before = app.item(&item).await["end_time"]
        .as_str()
        .unwrap()
        .to_owned();

    let (_, body) = app.bid(&item, "alice", json!(15)).await;
    assert_eq!(body["code"], "accepted", "{body}");
    assert_eq!(body["extended"], true);

    let after = app.item(&item).await;
    let end = shared::Timestamp::parse_rfc3339(after["end_time"].as_str().unwrap()).unwrap();
    let old = shared::Timestamp::parse_rfc3339(&before).unwrap();
    assert!(
        end.micros() - old.micros() > 90_000_000,
        "end moved from {old} to {end}"
    );
    // The closing schedule follows the new end time.
    let keys = app.keys();
    let item_keys = keys.item(&shared::ItemId::parse(&item).unwrap());
    let score: i64 = redis::cmd("ZSCORE")
        .arg(&item_keys.closing)
        .arg(&item)
        .query_async(&mut app.redis().await)
        .await
        .unwrap();
    assert_eq!(score, end.micros());
    delete_stream(&app.config).await;
}

#[tokio::test]
async fn bid_outside_the_anti_sniping_window_does_not_extend() {
    let app = spawn_app().await;
    let item = app
        .create_item(
            json!({"end_time": in_secs(3600), "extension_window_secs": 60, "extension_secs": 120}),
        )
        .await;
    let (_, body) = app.bid(&item, "alice", json!(15)).await;
    assert_eq!(
        (body["code"].as_str(), body["extended"].as_bool()),
        (Some("accepted"), Some(false))
    );
    delete_stream(&app.config).await;
}

#[tokio::test]
async fn retry_with_the_same_idempotency_key_returns_the_first_answer_and_bids_once() {
    let app = spawn_app().await;
    let item = app.create_item(json!({})).await;
    let send = |amount: serde_json::Value| {
        app.http
            .post(format!("{}/api/v1/items/{item}/bid", app.base))
            .header("Idempotency-Key", "retry-1")
            .json(&json!({"user_id": "alice", "amount": amount}))
            .send()
    };
    let first: serde_json::Value = send(json!(20)).await.unwrap().json().await.unwrap();
    let second = send(json!(20)).await.unwrap();
    assert_eq!(second.status(), 200);
    let second: serde_json::Value = second.json().await.unwrap();
    assert_eq!(first["code"], "accepted", "{first}");
    assert_eq!(second["event_id"], first["event_id"]);
    assert_eq!(second["seq"], 1);
    assert_eq!(second["replayed"], true);
    assert_eq!(app.item(&item).await["bid_count"], 1);

    let conflict = send(json!(30)).await.unwrap();
    assert_eq!(conflict.status(), 409);
    let conflict: serde_json::Value = conflict.json().await.unwrap();
    assert_eq!(conflict["error"], "idempotency_key_reused");
    assert_eq!(app.item(&item).await["seq"], 1);

    wait_until(Duration::from_secs(10), "one archived event", || async {
        (app.archived_event_ids().await.len() == 1).then_some(())
    })
    .await
    .unwrap();
    delete_stream(&app.config).await;
}

#[tokio::test]
async fn a_rejected_bid_is_also_answered_the_same_on_retry() {
    let app = spawn_app().await;
    let item = app.create_item(json!({})).await;
    app.bid(&item, "bob", json!(50)).await;
    for _ in 0..2 {
        let body: serde_json::Value = app
            .http
            .post(format!("{}/api/v1/items/{item}/bid", app.base))
            .header("Idempotency-Key", "low-1")
            .json(&json!({"user_id": "alice", "amount": 20}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["code"], "bid_too_low", "{body}");
        assert_eq!(body["current_bid_cents"], 5000);
    }
    delete_stream(&app.config).await;
}

#[tokio::test]
async fn a_user_bidding_faster_than_the_limit_gets_429_and_changes_nothing() {
    let mut config = shared_config();
    config.bid_rate_per_user = 1;
    config.bid_burst_per_user = 2;
    let app = spawn_app_with(config).await;
    let item = app.create_item(json!({})).await;
    assert_eq!(
        app.bid(&item, "alice", json!(11)).await.1["code"],
        "accepted"
    );
    assert_eq!(
        app.bid(&item, "alice", json!(12)).await.1["code"],
        "accepted"
    );

    let response = app
        .http
        .post(format!("{}/api/v1/items/{item}/bid", app.base))
        .json(&json!({"user_id": "alice", "amount": 13}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited", "{body}");
    assert_eq!(
        app.item(&item).await["seq"],
        2,
        "the limited bid changed nothing"
    );

    // Another bidder is not affected.
    assert_eq!(app.bid(&item, "bob", json!(14)).await.1["code"], "accepted");
    delete_stream(&app.config).await;
}
