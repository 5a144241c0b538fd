//! Ordering on the live subject: events that arrive out of order or twice reach viewers once
//! and in order, and a lost event is replaced by a fresh snapshot after a short wait.
//!
//! The gateway here publishes on its own subject prefix; the test captures its real events
//! there and republishes them to the broadcast instance's prefix in the order under test.
//! Redis (the snapshot source) is shared by both, as in production.

use crate::helpers::*;
use futures::StreamExt;
use std::time::Duration;

struct Relay {
    captured: async_nats::Subscriber,
    nats: async_nats::Client,
    target: String,
    events: Vec<bytes::Bytes>,
}

impl Relay {
    /// The event with `seq` (captured in order, so at index `seq - 1`).
    async fn event(&mut self, seq: usize) -> bytes::Bytes {
        while self.events.len() < seq {
            let message = tokio::time::timeout(FRAME_WAIT, self.captured.next())
                .await
                .expect("gateway published")
                .expect("subscription open");
            self.events.push(message.payload);
        }
        self.events[seq - 1].clone()
    }

    async fn publish(&mut self, seqs: &[usize]) {
        for &seq in seqs {
            let payload = self.event(seq).await;
            self.nats
                .publish(self.target.clone(), payload)
                .await
                .unwrap();
        }
        self.nats.flush().await.unwrap();
    }
}

/// Snapshots sent because an event was missing.
const GAP_SNAPSHOTS: &str = "broadcast_snapshots_total{reason=\"gap\"}";

/// A stage whose gateway publishes to a side prefix and whose broadcast instance listens on
/// the test's prefix, a relay between the two, and a viewer of the stage's item that has
/// seen its first snapshot (`seq` 0).
async fn setup() -> (Stage, Relay, Client) {
    let iso = Isolation::shared();
    let side = format!("{}side", iso.subject_prefix);
    let mut gateway = gateway_config(&iso);
    gateway.common.subject_prefix = side.clone();
    let broadcast = broadcast_config(&iso);
    let stage = Stage::new(iso, gateway, broadcast).await;
    let (item, iso) = (&stage.2, &stage.3);
    let nats = async_nats::connect(iso.nats_url.as_str()).await.unwrap();
    let captured = nats.subscribe(format!("{side}.live.{item}")).await.unwrap();
    nats.flush().await.unwrap();
    let relay = Relay {
        captured,
        nats,
        target: format!("{}.live.{item}", iso.subject_prefix),
        events: Vec::new(),
    };
    let mut viewer = stage.1.connect(&format!("/ws/items/{item}")).await;
    assert_eq!(viewer.expect_snapshot().await["seq"], 0);
    (stage, relay, viewer)
}

/// The next frame that is not a `viewers` count.
async fn next_not_viewers(viewer: &mut Client) -> serde_json::Value {
    loop {
        let frame = viewer.next_json().await;
        if frame["type"] != "viewers" {
            return frame;
        }
    }
}

#[tokio::test]
async fn events_arriving_out_of_order_or_twice_reach_viewers_once_in_order() {
    let (stage, mut relay, mut viewer) = setup().await;
    let Stage(gateway, broadcast, item, ..) = &stage;
    place_bids(gateway, item, 1..=6).await;

    relay.publish(&[2, 1, 1, 3, 5, 4, 6, 6, 2]).await;
    for seq in 1..=6 {
        let frame = next_not_viewers(&mut viewer).await;
        assert_eq!(
            (frame["type"].as_str(), frame["seq"].as_u64()),
            (Some("bid_placed"), Some(seq))
        );
    }
    // Nothing else: the duplicates were dropped and no resync was needed. The very next frame
    // other than a `viewers` count must be the pong; a late duplicate `bid_placed` fails here.
    viewer.ping().await;
    let after = next_not_viewers(&mut viewer).await;
    assert_eq!(
        after,
        serde_json::json!({"type": "pong"}),
        "unexpected frame"
    );
    assert_eq!(broadcast.metric(GAP_SNAPSHOTS).await, 0.0);
}

#[tokio::test]
async fn a_lost_event_is_replaced_by_a_fresh_snapshot_after_a_short_wait() {
    let (stage, mut relay, mut viewer) = setup().await;
    let Stage(gateway, broadcast, item, ..) = &stage;
    place_bids(gateway, item, 1..=4).await;

    // Event 3 is lost on the way.
    relay.publish(&[1, 2, 4]).await;
    for seq in [1, 2] {
        let frame = next_not_viewers(&mut viewer).await;
        assert_eq!(
            (frame["type"].as_str(), frame["seq"].as_u64()),
            (Some("bid_placed"), Some(seq))
        );
    }
    let snapshot = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let frame = viewer.next_json().await;
            assert_ne!(frame["type"], "bid_placed", "no event after a gap: {frame}");
            if frame["type"] == "snapshot" {
                return frame;
            }
        }
    })
    .await
    .expect("a snapshot after the gap");
    assert_eq!(snapshot["seq"], 4, "the snapshot covers the lost event");
    assert_eq!(snapshot["current_bid"].to_string(), "5");

    bid(gateway, item, 6).await;
    relay.publish(&[5]).await;
    let frame = next_not_viewers(&mut viewer).await;
    assert_eq!(
        (frame["type"].as_str(), frame["seq"].as_u64()),
        (Some("bid_placed"), Some(5))
    );
    assert_eq!(broadcast.metric(GAP_SNAPSHOTS).await, 1.0);
}
