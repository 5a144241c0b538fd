//! The real-time path: core NATS subscribers see each item's events in `seq` order.

use crate::helpers::*;
use futures::StreamExt;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_subscriber_sees_every_accepted_bid_in_seq_order() {
    let app = Arc::new(spawn_app().await);
    let item = app.create_penny_item().await;
    let mut live = app.subscribe_live(&item).await;

    // 50 tasks × 20 rising bids, racing each other.
    let mut handles = Vec::new();
    for t in 0..50u64 {
        let app = Arc::clone(&app);
        let item = item.clone();
        handles.push(tokio::spawn(async move {
            let mut accepted = 0u64;
            for i in 0..20u64 {
                let cents = 100 + i * 100 + t;
                let reply = app.bid(&item, &format!("u{t}"), decimal(cents)).await;
                accepted += u64::from(reply.body["code"] == "accepted");
            }
            accepted
        }));
    }
    let mut accepted = 0;
    for handle in handles {
        accepted += handle.await.unwrap();
    }
    assert!(accepted > 20, "the race produced {accepted} accepted bids");

    let mut seqs = Vec::new();
    while seqs.len() < accepted as usize {
        let message = tokio::time::timeout(Duration::from_secs(5), live.next())
            .await
            .expect("live event within 5 s")
            .expect("subscription open");
        let event: Value = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(event["type"], "bid_placed");
        assert_eq!(event["item_id"], item.as_str());
        assert_eq!(
            message
                .headers
                .as_ref()
                .and_then(|h| h.get("Event-Id"))
                .map(|v| v.as_str()),
            event["event_id"].as_str()
        );
        seqs.push(event["seq"].as_u64().unwrap());
    }
    assert_eq!(
        seqs,
        (1..=accepted).collect::<Vec<_>>(),
        "every event once, in seq order"
    );
}
