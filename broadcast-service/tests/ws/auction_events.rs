//! Viewers see an auction's whole life, not only its bids: extensions and the close arrive in
//! `seq` order after the snapshot.

use crate::helpers::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_receive_extension_and_close_events_in_seq_order() {
    let isolation = Isolation::shared();
    let broadcast = spawn_broadcast(isolation.broadcast_config()).await;
    let gateway = spawn_gateway(isolation.gateway_config()).await;
    let item = gateway.create_item().await;
    let mut viewer = broadcast.connect(&format!("/ws?item_id={item}")).await;
    let snapshot = viewer.next_of_type("snapshot").await;
    assert_eq!(snapshot["seq"], 0);

    assert_eq!(gateway.bid(&item, 5).await, 1);
    let bid = viewer.next_of_type("bid_placed").await;
    assert_eq!(bid["seq"], 1);

    let later = shared::Timestamp::from_micros(shared::Timestamp::now().micros() + 7_200_000_000);
    let (status, body) = gateway
        .admin(&item, "extend", json!({"end_time": later.to_rfc3339()}))
        .await;
    assert_eq!(status, 200, "{body}");
    let extended = viewer.next_of_type("auction_extended").await;
    assert_eq!(extended["seq"], 2);
    assert_eq!(extended["end_time"], later.to_rfc3339());

    let (status, body) = gateway.admin(&item, "close", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let closed = viewer.next_of_type("auction_closed").await;
    assert_eq!(closed["seq"], 3);
    assert_eq!(closed["winner_id"], "alice");
    assert_eq!(closed["final_price_cents"], 500);
    isolation.cleanup().await;
}
