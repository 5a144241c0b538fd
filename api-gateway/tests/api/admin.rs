//! Admin actions: close now, cancel with a reason, extend, relist as a new round.

use crate::helpers::*;
use serde_json::{Value, json};

#[tokio::test]
async fn admin_actions_need_an_admin_token_and_change_nothing_without_it() {
    let app = spawn_app().await;
    let item = app.create_item(json!({})).await;
    let path = format!("/api/v1/items/{item}/close");
    app.post(&path, json!({}))
        .await
        .assert_error(401, "unauthorized");
    let not_a_token = app.http().post(app.url(&path)).bearer_auth("wrong");
    app.send(not_a_token)
        .await
        .assert_error(401, "invalid_token");
    app.post_as(Some("alice"), &path, json!({}))
        .await
        .assert_error(403, "forbidden");
    assert_eq!(app.item(&item).await["status"], "active");
    assert_eq!(app.events_for(&item).await, 0);
}

#[tokio::test]
async fn close_now_ends_the_auction_with_its_current_winner() {
    let app = spawn_app().await;
    let item = app.create_item(json!({})).await;
    app.accepted_bid(&item, "alice", json!(25)).await;

    let closed = app.admin(&item, "close", json!({})).await;
    let event = &closed.assert_status(200)["event"];
    assert_eq!(event["type"], "auction_closed");
    assert_eq!(event["winner_id"], "alice");
    assert_eq!(event["seq"], 2);
    let state = app.item(&item).await;
    assert_eq!(
        (state["status"].as_str(), state["winner_id"].as_str()),
        (Some("closed"), Some("alice"))
    );
    assert_ne!(state["closed_at"], Value::Null);
    assert_eq!(
        app.bid(&item, "bob", json!(90)).await.body["error"],
        "auction_closed"
    );
    let again = app.admin(&item, "close", json!({})).await;
    again.assert_error(409, "auction_not_active");
}

#[tokio::test]
async fn cancel_ends_the_auction_without_a_winner_and_keeps_the_reason() {
    let app = spawn_app().await;
    let item = app.create_item(json!({})).await;
    app.accepted_bid(&item, "alice", json!(25)).await;

    let no_reason = app.admin(&item, "cancel", json!({"reason": ""})).await;
    no_reason.assert_error(400, "invalid_reason");
    let cancelled = app
        .admin(&item, "cancel", json!({"reason": "counterfeit"}))
        .await;
    let event = &cancelled.assert_status(200)["event"];
    assert_eq!(event["cancelled"], true);
    assert_eq!(event["reason"], "counterfeit");
    assert_eq!(event["winner_id"], Value::Null);

    let state = app.item(&item).await;
    assert_eq!(state["status"], "cancelled");
    assert_eq!(state["cancel_reason"], "counterfeit");
    assert_eq!(state["winner_id"], Value::Null);
    let late = app.bid(&item, "bob", json!(90)).await;
    late.assert_error(409, "auction_cancelled");
    let listed = app.get("/api/v1/items?status=cancelled").await;
    assert_eq!(listed.body["items"][0]["id"], item.as_str());
}

#[tokio::test]
async fn extend_moves_the_end_later_only() {
    let app = spawn_app().await;
    let item = app.create_item(json!({"end_time": in_secs(600)})).await;
    let earlier = app
        .admin(&item, "extend", json!({"end_time": in_secs(300)}))
        .await;
    earlier.assert_error(400, "invalid_end_time");

    let later = in_secs(7200);
    let extended = app.admin(&item, "extend", json!({"end_time": later})).await;
    let event = &extended.assert_status(200)["event"];
    assert_eq!(event["type"], "auction_extended");
    assert_eq!(event["seq"], 1);
    let state = app.item(&item).await;
    let end = shared::Timestamp::parse_rfc3339(state["end_time"].as_str().unwrap()).unwrap();
    assert_eq!(end, shared::Timestamp::parse_rfc3339(&later).unwrap());
    assert_eq!(state["seq"], 1);
}

#[tokio::test]
async fn relist_starts_a_fresh_round_with_seq_still_rising() {
    let app = spawn_app().await;
    let item = app.create_item(json!({})).await;
    app.accepted_bid(&item, "alice", json!(50)).await;
    // Teach the price pre-filter the old round's price: 50.
    assert_eq!(
        app.bid(&item, "bob", json!(20)).await.body["code"],
        "bid_too_low"
    );

    let round_two = json!({"starting_price": 5, "end_time": in_secs(600)});
    let while_active = app.admin(&item, "relist", round_two.clone()).await;
    while_active.assert_error(409, "auction_active");
    app.admin(&item, "close", json!({}))
        .await
        .assert_status(200);

    let relisted = app.admin(&item, "relist", round_two).await;
    let event = &relisted.assert_status(200)["event"];
    assert_eq!(event["type"], "auction_relisted");
    assert_eq!(event["round"], 2);
    assert_eq!(event["seq"], 3, "bid, close, relist");
    let state = app.item(&item).await;
    assert_eq!(state["status"], "active");
    assert_eq!(state["round"], 2);
    assert_eq!(state["bid_count"], 0);
    assert_eq!(state["current_bid_cents"], 0);
    assert_eq!(state["winner_id"], Value::Null);
    assert_eq!(state["closed_at"], Value::Null);

    // Far below the old round's price, and accepted: the pre-filter forgot the old round.
    let accepted = app.accepted_bid(&item, "bob", json!(6)).await;
    assert_eq!(accepted.seq, 4);
}
