//! Bad client input gets a clear error frame or a clear close code, never a dropped server,
//! and the connection count stays right.

use crate::helpers::*;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn malformed_messages_get_error_frames_and_the_connection_stays_usable() {
    let Stage(_, broadcast, item, ..) = &start(Isolation::shared()).await;
    let mut viewer = broadcast.connect("/ws").await;
    broadcast.wait_for_metric(CONNECTIONS, 1.0).await;

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

    viewer.subscribe(item).await;
    assert_eq!(viewer.expect_snapshot().await["item_id"], item.as_str());
    assert_eq!(broadcast.metric(CONNECTIONS).await, 1.0);
    let invalid_json = "broadcast_client_errors_total{kind=\"invalid_json\"}";
    assert_eq!(broadcast.metric(invalid_json).await, 1.0);
    viewer.close().await;
    broadcast.wait_for_metric(CONNECTIONS, 0.0).await;
    broadcast.wait_for_metric(SUBSCRIPTIONS, 0.0).await;
}

/// The HTTP server's request-body deadline (`REQUEST_BODY_TIMEOUT_MS`) applies to a request's
/// body only: an upgrade has none, and a watching socket lives on well past the deadline.
#[tokio::test]
async fn a_socket_outlives_the_request_body_deadline() {
    let Stage(gateway, broadcast, item, ..) = &start_with(Isolation::shared(), |config| {
        config.common.http.request_body_timeout_ms = 200;
    })
    .await;
    let mut viewer = broadcast.connect("/ws").await;
    viewer.subscribe(item).await;
    viewer.expect_snapshot().await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    viewer.ping().await;
    viewer.next_of_type("pong").await;
    assert_eq!(bid(gateway, item, 5).await, 1);
    assert_eq!(viewer.next_bid().await["seq"], 1);
    assert_eq!(broadcast.metric(CONNECTIONS).await, 1.0);
}

/// Opens a socket, sends `texts`, and asserts the server closes it with `code` and the
/// connection count falls back to zero; returns the close reason.
async fn closed_after(
    config: broadcast_service::config::Config,
    texts: &[String],
    code: u16,
) -> String {
    let broadcast = spawn_broadcast(config).await;
    let mut viewer = broadcast.connect("/ws").await;
    for text in texts {
        viewer.send_text(text).await;
    }
    let (got, reason) = viewer.expect_close().await;
    assert_eq!(got, code, "{reason}");
    broadcast.wait_for_metric(CONNECTIONS, 0.0).await;
    reason
}

#[tokio::test]
async fn a_message_over_the_size_limit_closes_the_socket_with_1009() {
    let mut config = broadcast_config(&Isolation::shared());
    config.max_inbound_bytes = 1024;
    let big = json!({"type": "subscribe", "item_id": "x".repeat(2000)}).to_string();
    closed_after(config, &[big], 1009).await;
}

#[tokio::test]
async fn a_client_that_keeps_sending_garbage_is_closed_with_1008() {
    let config = broadcast_config(&Isolation::shared());
    let garbage = vec!["garbage".to_owned(); 30];
    let reason = closed_after(config, &garbage, 1008).await;
    assert_eq!(reason, "too many invalid messages");
}

#[tokio::test]
async fn an_invalid_item_id_in_the_url_gets_an_error_frame_and_close_1008() {
    let broadcast = spawn_broadcast(broadcast_config(&Isolation::shared())).await;
    for path in ["/ws?item_id=bad.id", "/ws/items/has%20space"] {
        let mut viewer = broadcast.connect(path).await;
        let error = viewer.next_json().await;
        assert_eq!(error["code"], "invalid_item_id", "{path}: {error}");
        let (code, _) = viewer.expect_close().await;
        assert_eq!(code, 1008, "{path}");
    }
    broadcast.wait_for_metric(CONNECTIONS, 0.0).await;
}

#[tokio::test]
async fn connections_over_the_per_address_limit_are_closed_with_1013() {
    let mut config = broadcast_config(&Isolation::shared());
    config.max_connections_per_ip = 2;
    let broadcast = spawn_broadcast(config).await;
    let first = broadcast.connect("/ws").await;
    let mut second = broadcast.connect("/ws").await;
    let mut third = broadcast.connect("/ws").await;
    let (code, reason) = third.expect_close().await;
    assert_eq!(code, 1013);
    assert!(reason.contains("too many connections"), "{reason}");
    let rejected = "broadcast_connections_rejected_total{reason=\"per_ip\"}";
    assert_eq!(broadcast.metric(rejected).await, 1.0);
    broadcast.wait_for_metric(CONNECTIONS, 2.0).await;

    first.close().await;
    broadcast.wait_for_metric(CONNECTIONS, 1.0).await;
    let mut fourth = broadcast.connect("/ws").await;
    fourth.assert_answers_ping().await;
    second.assert_answers_ping().await;
}

/// The original system's fan-out experiment ran its 1,000 viewers from one host; the old
/// default of 256 per address refused 744 of them.
#[tokio::test]
async fn a_thousand_sockets_from_one_address_are_all_accepted_by_default() {
    let broadcast = spawn_broadcast(broadcast_config(&Isolation::shared())).await;
    let mut viewers = Vec::with_capacity(1_000);
    for _ in 0..1_000 {
        viewers.push(broadcast.connect("/ws").await);
    }
    broadcast.wait_for_metric(CONNECTIONS, 1_000.0).await;
    let rejected = "broadcast_connections_rejected_total{reason=\"per_ip\"}";
    assert_eq!(broadcast.metric(rejected).await, 0.0);
    viewers[0].assert_answers_ping().await;
    viewers[999].assert_answers_ping().await;
}

/// Behind a trusted proxy each forwarded client has its own share; a client's own
/// `X-Forwarded-For` from an untrusted peer changes nothing.
#[tokio::test]
async fn forwarded_for_counts_only_from_trusted_proxies() {
    let mut config = broadcast_config(&Isolation::shared());
    config.max_connections_per_ip = 1;
    config.trusted_proxies = "127.0.0.1".parse().expect("address");
    let broadcast = spawn_broadcast(config).await;
    let (mut a, mut b) = forwarded_for_two_clients(&broadcast).await;
    a.assert_answers_ping().await;
    b.assert_answers_ping().await;
    // A spoofed entry before the one the proxy appended is not believed.
    let spoofed = [("x-forwarded-for", "198.51.100.9, 203.0.113.1")];
    let mut c = broadcast.connect_with_headers("/ws", &spoofed).await;
    assert_eq!(c.expect_close().await.0, 1013);

    let mut config = broadcast_config(&Isolation::shared());
    config.max_connections_per_ip = 1;
    let untrusting = spawn_broadcast(config).await;
    let (mut first, mut second) = forwarded_for_two_clients(&untrusting).await;
    first.assert_answers_ping().await;
    assert_eq!(second.expect_close().await.0, 1013);
}

/// Two sockets from this machine, the first saying `X-Forwarded-For: 203.0.113.1`, the
/// second `203.0.113.2`.
async fn forwarded_for_two_clients(broadcast: &Broadcast) -> (Client, Client) {
    let connect = |client: &'static str| async move {
        let headers = [("x-forwarded-for", client)];
        broadcast.connect_with_headers("/ws", &headers).await
    };
    (connect("203.0.113.1").await, connect("203.0.113.2").await)
}

#[tokio::test]
async fn a_plain_http_get_of_a_websocket_endpoint_is_a_400_with_a_code() {
    let iso = Isolation::shared();
    let broadcast = spawn_broadcast(broadcast_config(&iso)).await;
    for path in ["/ws", "/ws/items/lot-1", "/ws?item_id=lot-1"] {
        let reply = broadcast.get(path).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.text);
        assert!(reply.body.is_object(), "a JSON body: {}", reply.text);
        assert_eq!(reply.body["error"], "websocket_upgrade_required", "{path}");
    }
    assert_eq!(broadcast.metric(CONNECTIONS).await, 0.0);
    iso.delete_redis_keys().await;
}

#[tokio::test]
async fn an_unknown_route_is_a_404_with_the_json_error_body() {
    let broadcast = spawn_broadcast(broadcast_config(&Isolation::shared())).await;
    let requests = [
        (reqwest::Method::GET, "/nope"),
        (reqwest::Method::GET, "/ws/items"),
        (reqwest::Method::GET, "/ws/items/lot-1/bids"),
        (reqwest::Method::GET, "/api/v1/items/lot-1"),
        (reqwest::Method::POST, "/api/v1/items/lot-1/bid"),
    ];
    for (method, path) in requests {
        let request = broadcast
            .http()
            .request(method.clone(), broadcast.url(path));
        let reply = broadcast.send(request).await;
        assert_eq!(reply.status, 404, "{method} {path}");
        let content_type = reply.headers.get(reqwest::header::CONTENT_TYPE);
        assert_eq!(
            content_type.and_then(|value| value.to_str().ok()),
            Some("application/json"),
            "{method} {path}"
        );
        assert_eq!(
            reply.body,
            json!({"error": "not_found", "message": "no such endpoint"}),
            "{method} {path}"
        );
    }
    assert_eq!(broadcast.metric(CONNECTIONS).await, 0.0);
}

#[tokio::test]
async fn a_wrong_method_on_a_known_path_is_a_405_with_the_json_error_body() {
    let iso = Isolation::shared();
    let broadcast = spawn_broadcast(broadcast_config(&iso)).await;
    let http = reqwest::Client::new();
    for (method, path) in [
        (reqwest::Method::POST, "/health"),
        (reqwest::Method::DELETE, "/ready"),
        (reqwest::Method::POST, "/ws"),
        (reqwest::Method::PUT, "/ws/items/lot-1"),
    ] {
        let response = http
            .request(method.clone(), broadcast.url(path))
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
