//! Viewers see an auction's whole life, not only its bids: extensions and the close arrive in
//! `seq` order after the snapshot.

use crate::helpers::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_receive_extension_and_close_events_in_seq_order() {
    let Stage(gateway, broadcast, item, ..) = &start(Isolation::shared()).await;
    let mut viewer = broadcast.connect(&format!("/ws?item_id={item}")).await;
    assert_eq!(viewer.expect_snapshot().await["seq"], 0);

    assert_eq!(bid(gateway, item, 5).await, 1);
    assert_eq!(viewer.next_bid().await["seq"], 1);

    let later = in_secs(7_200);
    let extend = gateway
        .admin(item, "extend", json!({"end_time": later}))
        .await;
    extend.assert_status(200);
    let extended = viewer.next_of_type("auction_extended").await;
    assert_eq!(extended["seq"], 2);
    assert_eq!(extended["end_time"], later);

    gateway
        .admin(item, "close", json!({}))
        .await
        .assert_status(200);
    let closed = viewer.next_of_type("auction_closed").await;
    assert_eq!(closed["seq"], 3);
    assert_eq!(closed["winner_id"], "alice");
    assert_eq!(closed["final_price_cents"], 500);
}
