//! Dependency outages: a NATS restart loses the events published meanwhile, so viewers get a
//! fresh snapshot when it returns and keep receiving; a Redis outage delays snapshots.

use crate::helpers::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_mid_stream_sends_a_fresh_snapshot_and_events_keep_coming() {
    let mut nats = NatsServer::start().unwrap();
    let isolation = Isolation::new(testkit::SHARED_REDIS_URL, &nats.url());
    let Stage(gateway, broadcast, item, ..) = &start(isolation).await;
    let mut viewers = Vec::new();
    for _ in 0..3 {
        let mut viewer = broadcast.connect(&format!("/ws/items/{item}")).await;
        assert_eq!(viewer.expect_snapshot().await["seq"], 0);
        viewers.push(viewer);
    }
    place_bids(gateway, item, 1..=5).await;
    for viewer in &mut viewers {
        viewer.expect_bids(1..=5).await;
    }

    nats.stop();
    // Bids go on while NATS is away; their live events are lost.
    place_bids(gateway, item, 6..=10).await;
    nats.restart().unwrap();

    for viewer in &mut viewers {
        let snapshot = viewer.expect_snapshot().await;
        assert_eq!(snapshot["seq"], 10, "the fresh snapshot covers the outage");
        assert_eq!(snapshot["current_bid"].to_string(), "11");
    }
    gateway
        .wait_dependency_up(Duration::from_secs(10), "nats")
        .await;
    place_bids(gateway, item, 11..=15).await;
    for viewer in &mut viewers {
        viewer.expect_bids(11..=15).await;
    }
    let reconnects = broadcast.metric("broadcast_snapshots_total{reason=\"reconnect\"}");
    assert!(reconnects.await >= 3.0);
}

#[tokio::test]
async fn redis_down_delays_the_snapshot_with_an_error_frame_and_it_follows_when_redis_returns() {
    let mut redis = RedisServer::start().unwrap();
    let isolation = Isolation::new(&redis.url(), testkit::SHARED_NATS_URL);
    let quick = |config: &mut BroadcastConfig| config.redis_timeout_ms = 200;
    let Stage(gateway, broadcast, item, ..) = &start_with(isolation, quick).await;
    bid(gateway, item, 2).await;

    redis.stop();
    let mut viewer = broadcast.connect("/ws").await;
    viewer.subscribe(item).await;
    let error = viewer.immediate_error("unavailable").await;
    assert_eq!(error["item_id"], item.as_str());
    assert_eq!(broadcast.get("/ready").await.status, 503);

    // A fresh Redis (no persistence here): the item is gone, and the retried snapshot says so.
    redis.restart().unwrap();
    let answer = viewer.next_json().await;
    assert_eq!(answer["code"], "item_not_found", "{answer}");
    assert_eq!(broadcast.get("/ready").await.status, 200);
}
