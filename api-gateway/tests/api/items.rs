//! Creating, reading and listing items.

use crate::helpers::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn created_item_is_returned_with_its_state_and_never_its_reserve() {
    let app = spawn_app().await;
    let id = unique_id("cam");
    let created = app
        .post_as(
            Some(SELLER),
            "/api/v1/items",
            json!({
                "id": id, "name": "Camera", "description": "A Leica", "starting_price": 100.5,
                "min_increment": 0.5, "reserve_price": 777.77, "end_time": in_secs(3600),
            }),
        )
        .await;
    let body = created.assert_status(201);
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["status"], "active");
    assert_eq!(body["starting_price"].to_string(), "100.5");
    assert_eq!(body["min_increment_cents"], 50);
    assert_eq!(body["current_bid"].to_string(), "0");
    assert_eq!(body["seq"], 0);
    assert_eq!(body["has_reserve"], true);
    assert_eq!(body["reserve_met"], false);
    assert!(!reveals_amount(body, 777.77), "{body}");
    assert_eq!(body["seller_id"], SELLER, "the token's account sells it");

    let again = app.item(&id).await;
    assert_eq!(again["name"], "Camera");
    assert_eq!(again["description"], "A Leica");
}

#[tokio::test]
async fn creating_an_existing_id_returns_409_and_keeps_the_original() {
    let app = spawn_app().await;
    let id = app.create_item(json!({"name": "Original"})).await;
    let copy = json!({"id": id, "name": "Copy", "starting_price": 1, "end_time": in_secs(60)});
    let refused = app.post_as(Some(SELLER), "/api/v1/items", copy).await;
    refused.assert_error(409, "item_exists");
    assert_eq!(app.item(&id).await["name"], "Original");
}

#[tokio::test]
async fn item_without_id_gets_a_generated_one() {
    let app = spawn_app().await;
    let anonymous = json!({"name": "Anon", "starting_price": 1, "end_time": in_secs(60)});
    let created = app.post_as(Some(SELLER), "/api/v1/items", anonymous).await;
    let id = created.assert_status(201)["id"].as_str().unwrap();
    assert!(shared::ItemId::parse(id).is_ok());
    assert_eq!(app.item(id).await["name"], "Anon");
}

#[tokio::test]
async fn listing_filters_by_status() {
    let app = spawn_app().await;
    let active = app.create_item(json!({})).await;
    let scheduled = app.create_scheduled_item(600, 1200).await;

    let default = app.get("/api/v1/items").await;
    assert_eq!(
        default.assert_status(200)["count"],
        1,
        "active by default: {}",
        default.text
    );
    assert_eq!(default.body["items"][0]["id"], active.as_str());

    let listed = app.get("/api/v1/items?status=active").await;
    let ids: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![active.as_str()]);

    let listed = app.get("/api/v1/items?status=scheduled").await;
    assert_eq!(listed.body["items"][0]["id"], scheduled.as_str());

    let bogus = app.get("/api/v1/items?status=bogus").await;
    bogus.assert_error(400, "invalid_status");
}

#[tokio::test]
async fn unknown_item_is_404_and_invalid_id_is_400() {
    let app = spawn_app().await;
    for (path, status, code) in [
        ("/api/v1/items/nope", 404, "item_not_found"),
        ("/api/v1/items/bad.id", 400, "invalid_item_id"),
    ] {
        app.get(path).await.assert_error(status, code);
    }
}

#[tokio::test]
async fn health_ready_and_metrics_answer() {
    let app = spawn_app().await;
    let health = app.get("/health").await;
    assert_eq!(health.assert_status(200)["status"], "ok");
    // NATS is advisory: the gateway can be ready before it is connected.
    app.wait_dependency_up(Duration::from_secs(5), "nats").await;
    let ready = app.wait_ready(Duration::from_secs(5)).await;
    assert_eq!(
        (ready["redis"].as_str(), ready["nats"].as_str()),
        (Some("up"), Some("up"))
    );
    let item = app.create_item(json!({})).await;
    app.bid(&item, "alice", json!(11)).await;
    let text = app.metrics_text().await;
    assert!(
        text.contains("gateway_bids_total{outcome=\"accepted\"} 1"),
        "{text}"
    );
    assert!(text.contains("gateway_outbox_lag"), "{text}");
    // Graceful shutdown finishes cleanly.
    app.stop().await;
}
