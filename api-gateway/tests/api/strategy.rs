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
    let item = app
        .create_item(json!({"starting_price": 10, "min_increment": 1}))
        .await;
    assert_eq!(
        app.bid(&item, "alice", json!(9.99)).await.1["code"],
        "bid_too_low"
    );
    let mut accepted = Vec::new();
    let (_, body) = app.bid(&item, "alice", json!(10)).await;
    accepted.push(body["event_id"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        (body["code"].as_str(), body["seq"].as_u64()),
        (Some("accepted"), Some(1)),
        "{body}"
    );
    assert_eq!(
        app.bid(&item, "bob", json!(10.99)).await.1["code"],
        "bid_too_low"
    );
    let (_, body) = app.bid(&item, "bob", json!(11)).await;
    assert_eq!(body["code"], "accepted", "{body}");
    accepted.push(body["event_id"].as_str().unwrap_or_default().to_owned());
    let state = app.item(&item).await;
    assert_eq!(
        (state["seq"].as_u64(), state["highest_bidder_id"].as_str()),
        (Some(2), Some("bob"))
    );

    let scheduled = app
        .create_item(json!({"start_time": in_secs(600), "end_time": in_secs(1200)}))
        .await;
    let (status, body) = app.bid(&scheduled, "alice", json!(50)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("auction_not_started"))
    );
    let (status, _) = app.bid("no-such-item", "alice", json!(50)).await;
    assert_eq!(status, 404);
    assert_archived_exactly_once(&app.config, &accepted).await;
    delete_stream(&app.config).await;
}

#[tokio::test]
async fn optimistic_retries_with_an_idempotency_key_bid_once() {
    let app = optimistic_app().await;
    let item = app.create_item(json!({})).await;
    let send = |amount: serde_json::Value| {
        app.http
            .post(format!("{}/api/v1/items/{item}/bid", app.base))
            .header("Idempotency-Key", "opt-1")
            .json(&json!({"user_id": "alice", "amount": amount}))
            .send()
    };
    let first: serde_json::Value = send(json!(20)).await.unwrap().json().await.unwrap();
    let second: serde_json::Value = send(json!(20)).await.unwrap().json().await.unwrap();
    assert_eq!(first["code"], "accepted", "{first}");
    assert_eq!(second["event_id"], first["event_id"]);
    assert_eq!(second["replayed"], true);
    let conflict = send(json!(30)).await.unwrap();
    assert_eq!(conflict.status(), 409);
    assert_eq!(app.item(&item).await["bid_count"], 1);
    delete_stream(&app.config).await;
}

#[tokio::test]
async fn the_script_and_the_optimistic_strategy_replay_each_others_idempotent_answers() {
    let script = spawn_app().await;
    let mut config = script.config.clone();
    config.redis_strategy = api_gateway::config::RedisStrategy::Optimistic;
    config.relay_enabled = false;
    let optimistic = spawn_app_with(config).await;
    let item = script.create_item(json!({})).await;
    let send = |app: &TestApp, key: &str, amount: u64| {
        app.http
            .post(format!("{}/api/v1/items/{item}/bid", app.base))
            .header("Idempotency-Key", key)
            .json(&json!({"user_id": "alice", "amount": amount}))
            .send()
    };
    let answer = |app, key, amount| async move {
        let response = send(app, key, amount).await.unwrap();
        response.json::<serde_json::Value>().await.unwrap()
    };
    for (first, second, key, amount) in [
        (&script, &optimistic, "by-script", 20),
        (&optimistic, &script, "by-optimistic", 30),
    ] {
        let original = answer(first, key, amount).await;
        let replayed = answer(second, key, amount).await;
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
        let conflict = send(second, key, amount + 1).await.unwrap();
        assert_eq!(conflict.status(), 409, "{key}");
    }
    assert_eq!(script.item(&item).await["bid_count"], 2);
    delete_stream(&script.config).await;
}
