//! Creating, reading and listing items.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn created_item_is_returned_with_its_state_and_never_its_reserve() {
    let app = spawn_app().await;
    let id = unique_id("cam");
    let (status, body) = app
        .post(
            "/api/v1/items",
            json!({
                "id": id, "name": "Camera", "description": "A Leica", "starting_price": 100.5,
                "min_increment": 0.5, "reserve_price": 777.77, "end_time": in_secs(3600),
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["status"], "active");
    assert_eq!(body["starting_price"].to_string(), "100.5");
    assert_eq!(body["min_increment_cents"], 50);
    assert_eq!(body["current_bid"].to_string(), "0");
    assert_eq!(body["seq"], 0);
    assert_eq!(body["has_reserve"], true);
    assert_eq!(body["reserve_met"], false);
    assert!(!reveals_amount(&body, 777.77), "{body}");

    let again = app.item(&id).await;
    assert_eq!(again["name"], "Camera");
    assert_eq!(again["description"], "A Leica");
}

#[tokio::test]
async fn creating_an_existing_id_returns_409_and_keeps_the_original() {
    let app = spawn_app().await;
    let id = app.create_item(json!({"name": "Original"})).await;
    let (status, body) = app
        .post(
            "/api/v1/items",
            json!({"id": id, "name": "Copy", "starting_price": 1, "end_time": in_secs(60)}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("item_exists")),
        "{body}"
    );
    assert_eq!(app.item(&id).await["name"], "Original");
}

#[tokio::test]
async fn item_without_id_gets_a_generated_one() {
    let app = spawn_app().await;
    let (status, body) = app
        .post(
            "/api/v1/items",
            json!({"name": "Anon", "starting_price": 1, "end_time": in_secs(60)}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap();
    assert!(shared::ItemId::parse(id).is_ok());
    assert_eq!(app.item(id).await["name"], "Anon");
}

#[tokio::test]
async fn listing_filters_by_status() {
    let app = spawn_app().await;
    let active = app.create_item(json!({})).await;
    let scheduled = app
        .create_item(json!({"start_time": in_secs(600), "end_time": in_secs(1200)}))
        .await;

    let (status, body) = app.get("/api/v1/items").await;
    assert_eq!(status, 200);
    assert_eq!(body["count"], 2, "{body}");

    let (_, body) = app.get("/api/v1/items?status=active").await;
    let ids: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![active.as_str()]);

    let (_, body) = app.get("/api/v1/items?status=scheduled").await;
    assert_eq!(body["items"][0]["id"], scheduled.as_str());

    let (status, body) = app.get("/api/v1/items?status=bogus").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_status"))
    );
}

#[tokio::test]
async fn unknown_item_is_404_and_invalid_id_is_400() {
    let app = spawn_app().await;
    let (status, body) = app.get("/api/v1/items/nope").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("item_not_found"))
    );
    let (status, body) = app.get("/api/v1/items/bad.id").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_item_id"))
    );
}

#[tokio::test]
async fn health_ready_and_metrics_answer() {
    let app = spawn_app().await;
    let (status, body) = app.get("/health").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let ready = testkit::wait_until(std::time::Duration::from_secs(5), "ready", || async {
        let (status, body) = app.get("/ready").await;
        (status == 200).then_some(body)
    })
    .await
    .unwrap();
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
    delete_stream(&app.config).await;
    // Graceful shutdown finishes cleanly.
    app.stop().await;
}
