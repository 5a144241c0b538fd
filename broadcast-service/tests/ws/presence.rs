//! Several broadcast instances: the same events everywhere, and viewer counts summed over
//! all of them.

use crate::helpers::*;
use serde_json::json;
use std::time::Duration;

/// Reads `viewers` frames until one says `count` (other frames are skipped).
async fn wait_for_count(viewer: &mut Client, count: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match viewer.receive(left).await {
            Some(Received::Json(frame))
                if frame["type"] == "viewers" && frame["count"] == count =>
            {
                return;
            }
            Some(Received::Json(_)) => {}
            other => panic!("waiting for viewers = {count}, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_deliver_the_same_events_and_show_the_summed_viewer_count() {
    let iso = Isolation::shared();
    let gateway = spawn_gateway(gateway_config(&iso)).await;
    let mut config = broadcast_config(&iso);
    config.presence_interval_ms = 300;
    let one = spawn_broadcast(config.clone()).await;
    config.instance_id = unique_id("bc");
    let two = spawn_broadcast(config).await;
    let item = gateway.create_penny_item().await;
    let path = format!("/ws/items/{item}");

    let mut on_one = Vec::new();
    for _ in 0..2 {
        on_one.push(one.connect(&path).await);
    }
    let mut on_two = Vec::new();
    for _ in 0..3 {
        on_two.push(two.connect(&path).await);
    }
    for viewer in on_one.iter_mut().chain(on_two.iter_mut()) {
        wait_for_count(viewer, 5).await;
    }

    place_bids(&gateway, &item, 1..=10).await;
    for viewer in on_one.iter_mut().chain(on_two.iter_mut()) {
        viewer.expect_bids(1..=10).await;
    }

    // Viewers leave instance two; instance one's viewers see the total fall.
    for viewer in on_two {
        viewer.close().await;
    }
    for viewer in &mut on_one {
        wait_for_count(viewer, 2).await;
    }
    iso.delete_redis_keys().await;
}

#[tokio::test]
async fn a_silent_instance_s_viewers_are_forgotten_after_the_presence_expiry() {
    let expiring = |config: &mut BroadcastConfig| {
        config.presence_interval_ms = 200;
        config.presence_expiry_ms = 1_000;
        config.viewers_min_interval_ms = 100;
    };
    let stage = &start_with(Isolation::shared(), expiring).await;
    let Stage(_, broadcast, item, iso) = stage;
    let mut viewer = broadcast.connect(&format!("/ws/items/{item}")).await;
    wait_for_count(&mut viewer, 1).await;

    // Another instance reports 7 viewers once, then crashes (sends nothing more).
    let nats = async_nats::connect(iso.nats_url.as_str()).await.unwrap();
    let beat = json!({
        "instance": "crashed-instance",
        "item_id": item,
        "count": 7,
        "timestamp": shared::Timestamp::now(),
    });
    nats.publish(
        format!("{}.presence.{item}", iso.subject_prefix),
        beat.to_string().into(),
    )
    .await
    .unwrap();
    nats.flush().await.unwrap();
    wait_for_count(&mut viewer, 8).await;
    let added = tokio::time::Instant::now();
    wait_for_count(&mut viewer, 1).await;
    assert!(
        added.elapsed() >= Duration::from_millis(500),
        "a count is kept until its expiry"
    );
}
