//! Bad input gets a clear 4xx with `{"error","message"}` and changes nothing.

use crate::helpers::*;
use serde_json::{Value, json};

async fn send_raw(
    app: &TestApp,
    path: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = app
        .http
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn assert_unchanged(app: &TestApp, item: &str) {
    let hash = app.item_hash(item).await;
    assert_eq!(hash["seq"], "0");
    assert_eq!(hash["bid_count"], "0");
    assert_eq!(hash["current_cents"], "0");
    assert_eq!(app.outbox_entries_for(item).await, 0);
}

#[tokio::test]
async fn every_malformed_bid_gets_a_4xx_and_changes_nothing() {
    let app = spawn_app().await;
    let item = app.create_item(json!({})).await;
    let path = format!("/api/v1/items/{item}/bid");
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "malformed json",
            b"{\"user_id\": \"a\", ".to_vec(),
            400,
            "invalid_json",
        ),
        ("not an object", b"[1,2]".to_vec(), 400, "invalid_input"),
        ("empty body", Vec::new(), 400, "invalid_json"),
        (
            "amount as bool",
            br#"{"user_id":"a","amount":true}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            "user as number",
            br#"{"user_id":5,"amount":20}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            "missing amount",
            br#"{"user_id":"a"}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            "three decimals",
            br#"{"user_id":"a","amount":20.005}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            "negative",
            br#"{"user_id":"a","amount":-20}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            "zero",
            br#"{"user_id":"a","amount":0}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            "huge",
            br#"{"user_id":"a","amount":1000000000000.01}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            "exponent",
            br#"{"user_id":"a","amount":2e3}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            "nan string",
            br#"{"user_id":"a","amount":"NaN"}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            "user with dot",
            br#"{"user_id":"a.b","amount":20}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            "user too long",
            format!(r#"{{"user_id":"{}","amount":20}}"#, "u".repeat(65)).into_bytes(),
            400,
            "invalid_input",
        ),
        (
            "unknown field",
            br#"{"user_id":"a","amount":20,"admin":true}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            "oversized",
            format!(
                r#"{{"user_id":"a","amount":20,"pad":"{}"}}"#,
                "x".repeat(20_000)
            )
            .into_bytes(),
            413,
            "payload_too_large",
        ),
    ];
    for (name, body, status, code) in cases {
        let (got, json) = send_raw(&app, &path, body, &[]).await;
        assert_eq!(got, status, "{name}: {json}");
        assert_eq!(json["error"], code, "{name}: {json}");
        assert!(
            json["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}: {json}"
        );
    }

    let (status, json) = send_raw(
        &app,
        "/api/v1/items/bad*id/bid",
        br#"{"user_id":"a","amount":20}"#.to_vec(),
        &[],
    )
    .await;
    assert_eq!(
        (status, json["error"].as_str()),
        (400, Some("invalid_item_id")),
        "{json}"
    );
    let (status, json) = send_raw(
        &app,
        &path,
        br#"{"user_id":"a","amount":20}"#.to_vec(),
        &[("idempotency-key", "has space")],
    )
    .await;
    assert_eq!(
        (status, json["error"].as_str()),
        (400, Some("invalid_idempotency_key")),
        "{json}"
    );

    assert_unchanged(&app, &item).await;
}

#[tokio::test]
async fn every_malformed_item_gets_a_4xx_and_creates_nothing() {
    let app = spawn_app().await;
    let id = unique_id("bad");
    let cases = vec![
        (
            "missing name",
            json!({"id": id, "starting_price": 1, "end_time": in_secs(60)}),
            "invalid_input",
        ),
        (
            "blank name",
            json!({"id": id, "name": "  ", "starting_price": 1, "end_time": in_secs(60)}),
            "invalid_name",
        ),
        (
            "bad id",
            json!({"id": "a b", "name": "x", "starting_price": 1, "end_time": in_secs(60)}),
            "invalid_input",
        ),
        (
            "price with 3 decimals",
            json!({"id": id, "name": "x", "starting_price": 1.001, "end_time": in_secs(60)}),
            "invalid_input",
        ),
        (
            "zero increment",
            json!({"id": id, "name": "x", "starting_price": 1, "min_increment": 0, "end_time": in_secs(60)}),
            "invalid_input",
        ),
        (
            "end in the past",
            json!({"id": id, "name": "x", "starting_price": 1, "end_time": in_secs(-60)}),
            "invalid_end_time",
        ),
        (
            "end before start",
            json!({"id": id, "name": "x", "starting_price": 1, "start_time": in_secs(120), "end_time": in_secs(60)}),
            "invalid_end_time",
        ),
        (
            "end not a time",
            json!({"id": id, "name": "x", "starting_price": 1, "end_time": "tomorrow"}),
            "invalid_input",
        ),
        (
            "too long",
            json!({"id": id, "name": "x", "starting_price": 1, "end_time": in_secs(400 * 86_400)}),
            "invalid_end_time",
        ),
        (
            "huge window",
            json!({"id": id, "name": "x", "starting_price": 1, "end_time": in_secs(60), "extension_window_secs": 100_000}),
            "invalid_extension",
        ),
        (
            "unknown field",
            json!({"id": id, "name": "x", "starting_price": 1, "end_time": in_secs(60), "color": "red"}),
            "invalid_input",
        ),
    ];
    for (name, body, code) in cases {
        let (status, json) = app.post("/api/v1/items", body).await;
        assert_eq!(status, 400, "{name}: {json}");
        assert_eq!(json["error"], code, "{name}: {json}");
    }
    let (status, _) = app.get(&format!("/api/v1/items/{id}")).await;
    assert_eq!(status, 404, "no item was created");
    let (_, list) = app.get("/api/v1/items").await;
    assert_eq!(list["count"], 0);
}

#[tokio::test]
async fn an_unknown_route_is_404_with_the_error_body() {
    let app = spawn_app().await;
    for (status, json) in [
        app.get("/api/v1/nothing-here").await,
        app.get("/api/v2/items").await,
        app.post("/api/v1/items/x/bid/extra", json!({})).await,
    ] {
        assert_eq!(status, 404, "{json}");
        assert_eq!(json["error"], "not_found", "{json}");
        assert_eq!(json["message"], "no such endpoint", "{json}");
    }
}

#[tokio::test]
async fn a_wrong_method_on_a_known_path_is_405_with_the_error_body() {
    let app = spawn_app().await;
    for (status, json) in [
        app.post("/health", json!({})).await,
        app.post("/api/v1/items/x", json!({})).await,
        app.get("/api/v1/items/x/bid").await,
    ] {
        assert_eq!(status, 405, "{json}");
        assert_eq!(json["error"], "method_not_allowed", "{json}");
        assert!(json["message"].is_string(), "{json}");
    }
}
