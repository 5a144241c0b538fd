//! Bad client input gets a clear error frame or a clear close code, never a dropped server,
//! and the connection count stays right.

use crate::helpers::*;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn malformed_messages_get_error_frames_and_the_connection_stays_usable() {
    let iso = Isolation::shared();
    let gateway = spawn_gateway(iso.gateway_config()).await;
    let broadcast = spawn_broadcast(iso.broadcast_config()).await;
    let item = gateway.create_item().await;
    let mut viewer = broadcast.connect("/ws").await;
    broadcast
        .wait_for_metric("broadcast_connections", 1.0)
        .await;

    let cases = [
        ("not json at all", "invalid_json"),
        (r#"{"type":"dance"}"#, "unknown_type"),
        (r#"{"no_type":1}"#, "invalid_message"),
        (r#"{"type":"subscribe"}"#, "invalid_message"),
        (r#"{"type":"subscribe","item_id":"a.b"}"#, "invalid_item_id"),
        (
            r#"{"type":"subscribe","item_id":"auction.live.>"}"#,
            "invalid_item_id",
        ),
    ];
    for (text, code) in cases {
        viewer.send_text(text).await;
        let error = viewer.next_json().await;
        assert_eq!(error["type"], "error", "{text}");
        assert_eq!(error["code"], code, "{text}: {error}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    viewer.send_raw(Message::binary(vec![1u8, 2, 3])).await;
    assert_eq!(viewer.next_json().await["code"], "invalid_message");

    viewer
        .send_json(json!({"type": "subscribe", "item_id": item}))
        .await;
    assert_eq!(
        viewer.next_of_type("snapshot").await["item_id"],
        item.as_str()
    );
    assert_eq!(broadcast.metric("broadcast_connections").await, 1.0);
    assert_eq!(
        broadcast
            .metric("broadcast_client_errors_total{kind=\"invalid_json\"}")
            .await,
        1.0
    );
    viewer.close().await;
    broadcast
        .wait_for_metric("broadcast_connections", 0.0)
        .await;
    broadcast
        .wait_for_metric("broadcast_subscriptions", 0.0)
        .await;
    iso.cleanup().await;
}

#[tokio::test]
async fn a_message_over_the_size_limit_closes_the_socket_with_1009() {
    let iso = Isolation::shared();
    let mut config = iso.broadcast_config();
    config.max_inbound_bytes = 1024;
    let broadcast = spawn_broadcast(config).await;
    let mut viewer = broadcast.connect("/ws").await;
    let big = json!({"type": "subscribe", "item_id": "x".repeat(2000)}).to_string();
    viewer.send_text(&big).await;
    let (code, reason) = viewer.expect_close().await;
    assert_eq!(code, 1009, "{reason}");
    broadcast
        .wait_for_metric("broadcast_connections", 0.0)
        .await;
}

#[tokio::test]
async fn an_invalid_item_id_in_the_url_gets_an_error_frame_and_close_1008() {
    let iso = Isolation::shared();
    let broadcast = spawn_broadcast(iso.broadcast_config()).await;
    for path in ["/ws?item_id=bad.id", "/ws/items/has%20space"] {
        let mut viewer = broadcast.connect(path).await;
        let error = viewer.next_json().await;
        assert_eq!(error["code"], "invalid_item_id", "{path}: {error}");
        let (code, _) = viewer.expect_close().await;
        assert_eq!(code, 1008, "{path}");
    }
    broadcast
        .wait_for_metric("broadcast_connections", 0.0)
        .await;
}

#[tokio::test]
async fn a_client_that_keeps_sending_garbage_is_closed_with_1008() {
    let iso = Isolation::shared();
    let broadcast = spawn_broadcast(iso.broadcast_config()).await;
    let mut viewer = broadcast.connect("/ws").await;
    for _ in 0..30 {
        viewer.send_text("garbage").await;
    }
    let (code, reason) = viewer.expect_close().await;
    assert_eq!(code, 1008);
    assert_eq!(reason, "too many invalid messages");
    broadcast
        .wait_for_metric("broadcast_connections", 0.0)
        .await;
}

#[tokio::test]
async fn connections_over_the_per_address_limit_are_closed_with_1013() {
    let iso = Isolation::shared();
    let mut config = iso.broadcast_config();
    config.max_connections_per_ip = 2;
    let broadcast = spawn_broadcast(config).await;
    let first = broadcast.connect("/ws").await;
    let mut second = broadcast.connect("/ws").await;
    let mut third = broadcast.connect("/ws").await;
    let (code, reason) = third.expect_close().await;
    assert_eq!(code, 1013);
    assert!(reason.contains("too many connections"), "{reason}");
    assert_eq!(
        broadcast
            .metric("broadcast_connections_rejected_total{reason=\"per_ip\"}")
            .await,
        1.0
    );
    broadcast
        .wait_for_metric("broadcast_connections", 2.0)
        .await;

    first.close().await;
    broadcast
        .wait_for_metric("broadcast_connections", 1.0)
        .await;
    let mut fourth = broadcast.connect("/ws").await;
    fourth.send_json(json!({"type": "ping"})).await;
    assert_eq!(fourth.next_json().await, json!({"type": "pong"}));
    second.send_json(json!({"type": "ping"})).await;
    assert_eq!(second.next_json().await, json!({"type": "pong"}));
}

#[tokio::test]
async fn a_plain_http_get_of_a_websocket_endpoint_is_a_400_with_a_code() {
    let iso = Isolation::shared();
    let broadcast = spawn_broadcast(iso.broadcast_config()).await;
    for path in ["/ws", "/ws/items/lot-1", "/ws?item_id=lot-1"] {
        let (status, body) = broadcast.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
        assert_eq!(body["error"], "websocket_upgrade_required", "{path}");
    }
    assert_eq!(broadcast.metric("broadcast_connections").await, 0.0);
    iso.cleanup().await;
}

#[tokio::test]
async fn an_unknown_route_is_a_404_with_the_json_error_body() {
    let iso = Isolation::shared();
    let broadcast = spawn_broadcast(iso.broadcast_config()).await;
    let http = reqwest::Client::new();
    let requests = [
        (reqwest::Method::GET, "/nope"),
        (reqwest::Method::GET, "/ws/items"),
        (reqwest::Method::GET, "/ws/items/lot-1/bids"),
        (reqwest::Method::GET, "/api/v1/items/lot-1"),
        (reqwest::Method::POST, "/api/v1/items/lot-1/bid"),
    ];
    for (method, path) in requests {
        let response = http
            .request(method.clone(), broadcast.http_url(path))
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), 404, "{method} {path}");
        let content_type = response.headers().get(reqwest::header::CONTENT_TYPE);
        assert_eq!(
            content_type.and_then(|value| value.to_str().ok()),
            Some("application/json"),
            "{method} {path}"
        );
        let body: serde_json::Value = response.json().await.expect("a JSON body");
        assert_eq!(
            body,
            json!({"error": "not_found", "message": "no such endpoint"}),
            "{method} {path}"
        );
    }
    assert_eq!(broadcast.metric("broadcast_connections").await, 0.0);
}

#[tokio::test]
async fn a_wrong_method_on_a_known_path_is_a_405_with_the_json_error_body() {
    let iso = Isolation::shared();
    let broadcast = spawn_broadcast(iso.broadcast_config()).await;
    let http = reqwest::Client::new();
    for (method, path) in [
        (reqwest::Method::POST, "/health"),
        (reqwest::Method::DELETE, "/ready"),
        (reqwest::Method::POST, "/ws"),
        (reqwest::Method::PUT, "/ws/items/lot-1"),
    ] {
        let response = http
            .request(method.clone(), broadcast.http_url(path))
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), 405, "{method} {path}");
        assert!(
            response.headers().contains_key(reqwest::header::ALLOW),
            "{method} {path}"
        );
        let body: serde_json::Value = response.json().await.expect("a JSON body");
        assert_eq!(
            body["error"], "method_not_allowed",
            "{method} {path}: {body}"
        );
    }
    assert_eq!(broadcast.metric("broadcast_connections").await, 0.0);
}
