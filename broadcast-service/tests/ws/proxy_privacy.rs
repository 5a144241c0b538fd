//! Proxy bidding (issue 16) keeps every maximum private: a viewer's snapshot and every frame
//! it receives carry the price, the automatic bids (flagged) and never anyone's maximum.

use crate::helpers::*;
use serde_json::{Value, json};

/// Whether any frame shows `cents`, as cents or as the decimal amount.
fn shows(frame: &Value, cents: i64) -> bool {
    let text = frame.to_string();
    text.contains(&cents.to_string())
        || text.contains(&format!("{}.{:02}", cents / 100, cents % 100))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_frame_or_snapshot_shows_a_maximum() {
    let Stage(gateway, broadcast, item, ..) = &start(Isolation::shared()).await;
    let mut viewer = broadcast.connect(&format!("/ws?item_id={item}")).await;
    viewer.expect_snapshot().await;
    // A maximum of 876.54 on the penny item, then a lower bid it answers automatically.
    let max = 87_654;
    let ann = gateway
        .post_as(
            Some("ann"),
            &format!("/api/v1/items/{item}/bid"),
            json!({"amount": 1, "max_amount": "876.54"}),
        )
        .await;
    ann.assert_outcome("accepted");
    for amount in [2, 3] {
        gateway
            .bid(item, "bob", json!(amount))
            .await
            .assert_outcome("outbid_by_proxy");
    }

    let mut frames = Vec::new();
    for _ in 0..5 {
        frames.push(viewer.next_of_type("bid_placed").await);
    }
    assert_eq!(frames[4]["automatic"], true, "{frames:?}");
    assert_eq!(frames[4]["user_id"], "ann");
    assert_eq!(
        frames[4]["amount_cents"], 301,
        "bob's bid plus one increment"
    );
    // A fresh viewer's snapshot of the same item.
    let mut late = broadcast.connect(&format!("/ws?item_id={item}")).await;
    let snapshot = late.expect_snapshot().await;
    assert_eq!(snapshot["highest_bidder_id"], "ann");
    frames.push(snapshot);
    for frame in &frames {
        assert!(!shows(frame, max), "the maximum leaked in {frame}");
        assert!(!frame.to_string().contains("max_amount"), "{frame}");
    }
}
