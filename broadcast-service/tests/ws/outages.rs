//! Dependency outages: a NATS restart loses the events published meanwhile, so viewers get a
//! fresh snapshot when it returns and keep receiving; a Redis outage delays snapshots.

use crate::helpers::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_mid_stream_sends_a_fresh_snapshot_and_events_keep_coming() {
    let mut nats = NatsServer::start().unwrap();
    let iso = Isolation::new(testkit::SHARED_REDIS_URL, &nats.url());
    let gateway = spawn_gateway(iso.gateway_config()).await;
    let broadcast = spawn_broadcast(iso.broadcast_config()).await;
    let item = gateway.create_item().await;
    let mut viewers = Vec::new();
    for _ in 0..3 {
        let mut viewer = broadcast.connect(&format!("/ws/items/{item}")).await;
        assert_eq!(viewer.next_of_type("snapshot").await["seq"], 0);
        viewers.push(viewer);
    }
    for n in 1..=5 {
        gateway.bid(&item, n + 1).await;
    }
    for viewer in &mut viewers {
        for seq in 1..=5 {
            assert_eq!(viewer.next_of_type("bid_placed").await["seq"], seq);
        }
    }

    nats.stop();
    // Bids go on while NATS is away; their live events are lost.
    for n in 6..=10 {
        gateway.bid(&item, n + 1).await;
    }
    nats.restart().unwrap();

    for viewer in &mut viewers {
        let snapshot = viewer.next_of_type("snapshot").await;
        assert_eq!(snapshot["seq"], 10, "the fresh snapshot covers the outage");
        assert_eq!(snapshot["current_bid"].to_string(), "11");
    }
    wait_until(Duration::from_secs(10), "gateway back on NATS", || async {
        gateway.nats_ready().await.then_some(())
    })
    .await
    .unwrap();
    for n in 11..=15 {
        gateway.bid(&item, n + 1).await;
    }
    for viewer in &mut viewers {
        for seq in 11..=15 {
            assert_eq!(viewer.next_of_type("bid_placed").await["seq"], seq);
        }
    }
    assert!(
        broadcast
            .metric("broadcast_snapshots_total{reason=\"reconnect\"}")
            .await
            >= 3.0
    );
    iso.cleanup().await;
}

#[tokio::test]
async fn redis_down_delays_the_snapshot_with_an_error_frame_and_it_follows_when_redis_returns() {
    let mut redis = RedisServer::start().unwrap();
    let iso = Isolation::new(&redis.url(), testkit::SHARED_NATS_URL);
    let gateway = spawn_gateway(iso.gateway_config()).await;
    let mut config = iso.broadcast_config();
    config.redis_timeout_ms = 200;
    let broadcast = spawn_broadcast(config).await;
    let item = gateway.create_item().await;
    gateway.bid(&item, 2).await;

    redis.stop();
    let mut viewer = broadcast.connect("/ws").await;
    viewer
        .send_json(json!({"type": "subscribe", "item_id": item}))
        .await;
    let error = viewer.next_json().await;
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("error"), Some("unavailable")),
        "{error}"
    );
    assert_eq!(error["item_id"], item.as_str());
    let (status, _) = broadcast.get("/ready").await;
    assert_eq!(status, 503);

    // A fresh Redis (no persistence here): the item is gone, and the retried snapshot says so.
    redis.restart().unwrap();
    let answer = viewer.next_json().await;
    assert_eq!(answer["code"], "item_not_found", "{answer}");
    let (status, _) = broadcast.get("/ready").await;
    assert_eq!(status, 200);
}
