//! Admin actions: close now, cancel with a reason, extend, relist as a new round.

use crate::helpers::*;
use serde_json::{Value, json};

const TOKEN: &str = "test-admin-token";

async fn admin_app() -> TestApp {
    let mut config = shared_config();
    config.admin_token = TOKEN.into();
    spawn_app_with(config).await
}

async fn admin(app: &TestApp, item: &str, action: &str, body: Value) -> (u16, Value) {
    let response = app
        .http
        .post(format!("{}/api/v1/items/{item}/{action}", app.base))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn admin_actions_need_the_admin_token_and_change_nothing_without_it() {
    let disabled = spawn_app().await;
    let item = disabled.create_item(json!({})).await;
    let (status, body) = disabled
        .post(&format!("/api/v1/items/{item}/close"), json!({}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );

    let app = admin_app().await;
    let item = app.create_item(json!({})).await;
    let response = app
        .http
        .post(format!("{}/api/v1/items/{item}/close", app.base))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(app.item(&item).await["status"], "active");
}

#[tokio::test]
async fn close_now_ends_the_auction_with_its_current_winner() {
    let app = admin_app().await;
    let item = app.create_item(json!({})).await;
    assert_eq!(
        app.bid(&item, "alice", json!(25)).await.1["code"],
        "accepted"
    );

    let (status, body) = admin(&app, &item, "close", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["event"]["type"], "auction_closed");
    assert_eq!(body["event"]["winner_id"], "alice");
    assert_eq!(body["event"]["seq"], 2);
    let state = app.item(&item).await;
    assert_eq!(
        (state["status"].as_str(), state["winner_id"].as_str()),
        (Some("closed"), Some("alice"))
    );
    assert_ne!(state["closed_at"], Value::Null);
    assert_eq!(
        app.bid(&item, "bob", json!(90)).await.1["error"],
        "auction_closed"
    );
    let (status, body) = admin(&app, &item, "close", json!({})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("auction_not_active")),
        "{body}"
    );
    delete_stream(&app.config).await;
}

#[tokio::test]
async fn cancel_ends_the_auction_without_a_winner_and_keeps_the_reason() {
    let app = admin_app().await;
    let item = app.create_item(json!({})).await;
    assert_eq!(
        app.bid(&item, "alice", json!(25)).await.1["code"],
        "accepted"
    );

    let (status, body) = admin(&app, &item, "cancel", json!({"reason": ""})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_reason")),
        "{body}"
    );
    let (status, body) = admin(&app, &item, "cancel", json!({"reason": "counterfeit"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["event"]["cancelled"], true);
    assert_eq!(body["event"]["reason"], "counterfeit");
    assert_eq!(body["event"]["winner_id"], Value::Null);

    let state = app.item(&item).await;
    assert_eq!(state["status"], "cancelled");
    assert_eq!(state["cancel_reason"], "counterfeit");
    assert_eq!(state["winner_id"], Value::Null);
    let (status, body) = app.bid(&item, "bob", json!(90)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("auction_cancelled"))
    );
    let (_, cancelled) = app.get("/api/v1/items?status=cancelled").await;
    assert_eq!(cancelled["items"][0]["id"], item.as_str());
    delete_stream(&app.config).await;
}

#[tokio::test]
async fn extend_moves_the_end_later_only() {
    let app = admin_app().await;
    let item = app.create_item(json!({"end_time": in_secs(600)})).await;
    let (status, body) = admin(&app, &item, "extend", json!({"end_time": in_secs(300)})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_end_time")),
        "{body}"
    );

    let later = in_secs(7200);
    let (status, body) = admin(&app, &item, "extend", json!({"end_time": later})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["event"]["type"], "auction_extended");
    assert_eq!(body["event"]["seq"], 1);
    let state = app.item(&item).await;
    let end = shared::Timestamp::parse_rfc3339(state["end_time"].as_str().unwrap()).unwrap();
    assert_eq!(end, shared::Timestamp::parse_rfc3339(&later).unwrap());
    assert_eq!(state["seq"], 1);
    delete_stream(&app.config).await;
}

#[tokio::test]
async fn relist_starts_a_fresh_round_with_seq_still_rising() {
    let app = admin_app().await;
    let item = app.create_item(json!({})).await;
    assert_eq!(
        app.bid(&item, "alice", json!(50)).await.1["code"],
        "accepted"
    );
    // Teach the price pre-filter the old round's price: 50.
    assert_eq!(
        app.bid(&item, "bob", json!(20)).await.1["code"],
        "bid_too_low"
    );

    let (status, body) = admin(
        &app,
        &item,
        "relist",
        json!({"starting_price": 5, "end_time": in_secs(600)}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("auction_active")),
        "{body}"
    );
    assert_eq!(admin(&app, &item, "close", json!({})).await.0, 200);

    let (status, body) = admin(
        &app,
        &item,
        "relist",
        json!({"starting_price": 5, "end_time": in_secs(600)}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["event"]["type"], "auction_relisted");
    assert_eq!(body["event"]["round"], 2);
    assert_eq!(body["event"]["seq"], 3, "bid, close, relist");
    let state = app.item(&item).await;
    assert_eq!(state["status"], "active");
    assert_eq!(state["round"], 2);
    assert_eq!(state["bid_count"], 0);
    assert_eq!(state["current_bid_cents"], 0);
    assert_eq!(state["winner_id"], Value::Null);
    assert_eq!(state["closed_at"], Value::Null);

    // Far below the old round's price, and accepted: the pre-filter forgot the old round.
    let (_, body) = app.bid(&item, "bob", json!(6)).await;
    assert_eq!(body["code"], "accepted", "{body}");
    assert_eq!(body["seq"], 4);
    delete_stream(&app.config).await;
}
