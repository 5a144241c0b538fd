//! The service's life: health, readiness, metrics, the watch page, keepalive, idle timeout
//! and graceful shutdown.

use crate::helpers::*;
use std::time::Duration;

#[tokio::test]
async fn health_ready_metrics_and_the_watch_page_are_served() {
    let broadcast = spawn_broadcast(broadcast_config(&Isolation::shared())).await;
    let health = broadcast.get("/health").await;
    assert_eq!(
        (health.status, health.text.as_str()),
        (200, r#"{"status":"ok"}"#)
    );
    broadcast.wait_ready(FRAME_WAIT).await;
    let metrics = broadcast.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    let metrics = metrics.text;
    for name in [
        CONNECTIONS,
        SUBSCRIPTIONS,
        "broadcast_messages_out_total",
        "broadcast_conflations_total",
        "broadcast_fan_out_latency_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing");
    }
    let page = broadcast.get("/").await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("<title>Watch an auction</title>"));
    assert!(page.text.contains("\"subscribe\""));
    let unknown = broadcast.get("/nope").await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.text.contains("not_found"));
}

/// A broadcast instance with these keepalive settings, and a client watching nothing.
async fn quiet_client(idle_timeout_ms: u64, ping_interval_ms: u64) -> (Broadcast, Client) {
    let mut config = broadcast_config(&Isolation::shared());
    config.idle_timeout_ms = idle_timeout_ms;
    config.ping_interval_ms = ping_interval_ms;
    let broadcast = spawn_broadcast(config).await;
    let viewer = broadcast.connect("/ws").await;
    (broadcast, viewer)
}

#[tokio::test]
async fn an_idle_client_is_closed_after_the_idle_timeout() {
    let (broadcast, mut viewer) = quiet_client(300, 60_000).await;
    let (code, reason) = viewer.expect_close().await;
    assert_eq!((code, reason.as_str()), (1001, "idle timeout"));
    broadcast.wait_for_metric(CONNECTIONS, 0.0).await;
}

#[tokio::test]
async fn server_pings_keep_a_reading_client_alive_past_the_idle_timeout() {
    let (broadcast, mut viewer) = quiet_client(600, 100).await;
    // Reading answers the server's pings; nothing but pings arrives for three idle timeouts.
    assert!(viewer.receive(Duration::from_millis(1_800)).await.is_none());
    viewer.assert_answers_ping().await;
    let pings = broadcast.metric("broadcast_messages_out_total{kind=\"ping\"}");
    assert!(pings.await >= 3.0);
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001() {
    // Not a `Stage`: this test stops the broadcast instance itself.
    let iso = Isolation::shared();
    let gateway = spawn_gateway(gateway_config(&iso)).await;
    let broadcast = spawn_broadcast(broadcast_config(&iso)).await;
    let item = gateway.create_penny_item().await;
    let mut viewers = Vec::new();
    for path in [
        "/ws".to_owned(),
        format!("/ws/items/{item}"),
        format!("/ws?item_id={item}"),
    ] {
        viewers.push(broadcast.connect(&path).await);
    }
    viewers[1].expect_snapshot().await;
    viewers[2].expect_snapshot().await;

    let stopped = tokio::spawn(broadcast.stop());
    for viewer in &mut viewers {
        let (code, _) = viewer.expect_close().await;
        assert_eq!(code, 1001);
    }
    tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .expect("shutdown finishes")
        .expect("clean shutdown");
    iso.delete_redis_keys().await;
}
