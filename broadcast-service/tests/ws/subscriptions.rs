//! Subscribing: the three endpoints, several items on one socket, unsubscribe, limits, and
//! interest-based NATS subscriptions.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn query_and_path_endpoints_start_with_a_snapshot_then_stream_events() {
    let iso = Isolation::shared();
    let gateway = spawn_gateway(iso.gateway_config()).await;
    let broadcast = spawn_broadcast(iso.broadcast_config()).await;
    let item = gateway.create_item().await;
    gateway.bid(&item, 2).await;

    let mut by_query = broadcast.connect(&format!("/ws?item_id={item}")).await;
    let mut by_path = broadcast.connect(&format!("/ws/items/{item}")).await;
    for viewer in [&mut by_query, &mut by_path] {
        let snapshot = viewer.next_of_type("snapshot").await;
        assert_eq!(snapshot["item_id"], item.as_str());
        assert_eq!(snapshot["id"], item.as_str());
        assert_eq!(snapshot["seq"], 1);
        assert_eq!(snapshot["current_bid"].to_string(), "2");
        assert_eq!(snapshot["status"], "active");
        assert_eq!(snapshot["name"], "Test camera");
    }
    gateway.bid(&item, 3).await;
    for viewer in [&mut by_query, &mut by_path] {
        let event = viewer.next_of_type("bid_placed").await;
        assert_eq!(event["seq"], 2);
        assert_eq!(event["amount"].to_string(), "3");
        assert_eq!(event["item_id"], item.as_str());
    }
    iso.cleanup().await;
}

#[tokio::test]
async fn one_socket_watches_several_items_and_unsubscribe_stops_delivery() {
    let iso = Isolation::shared();
    let gateway = spawn_gateway(iso.gateway_config()).await;
    let broadcast = spawn_broadcast(iso.broadcast_config()).await;
    let a = gateway.create_item().await;
    let b = gateway.create_item().await;

    let mut viewer = broadcast.connect("/ws").await;
    viewer
        .send_json(json!({"type": "subscribe", "item_id": a}))
        .await;
    viewer
        .send_json(json!({"type": "subscribe", "item_id": b}))
        .await;
    let mut snapshots = vec![
        viewer.next_of_type("snapshot").await["item_id"].clone(),
        viewer.next_of_type("snapshot").await["item_id"].clone(),
    ];
    snapshots.sort_by_key(|v| v.to_string());
    let mut expected = vec![json!(a), json!(b)];
    expected.sort_by_key(|v| v.to_string());
    assert_eq!(snapshots, expected);

    gateway.bid(&a, 2).await;
    gateway.bid(&b, 5).await;
    let first = viewer.next_of_type("bid_placed").await;
    let second = viewer.next_of_type("bid_placed").await;
    assert_eq!((&first["item_id"], &first["seq"]), (&json!(a), &json!(1)));
    assert_eq!((&second["item_id"], &second["seq"]), (&json!(b), &json!(1)));

    viewer
        .send_json(json!({"type": "unsubscribe", "item_id": a}))
        .await;
    let answer = viewer.next_of_type("unsubscribed").await;
    assert_eq!(answer["item_id"], a.as_str());
    gateway.bid(&a, 3).await;
    gateway.bid(&b, 6).await;
    // B's event was published after A's; if A's were still delivered it would come first.
    let next = viewer.next_of_type("bid_placed").await;
    assert_eq!((&next["item_id"], &next["seq"]), (&json!(b), &json!(2)));

    viewer
        .send_json(json!({"type": "unsubscribe", "item_id": a}))
        .await;
    let error = viewer.next_of_type("error").await;
    assert_eq!(error["code"], "not_subscribed");
    assert_eq!(broadcast.metric("broadcast_subscriptions").await, 1.0);
    iso.cleanup().await;
}

#[tokio::test]
async fn subscribing_again_sends_a_fresh_snapshot() {
    let iso = Isolation::shared();
    let gateway = spawn_gateway(iso.gateway_config()).await;
    let broadcast = spawn_broadcast(iso.broadcast_config()).await;
    let item = gateway.create_item().await;
    let mut viewer = broadcast.connect(&format!("/ws/items/{item}")).await;
    assert_eq!(viewer.next_of_type("snapshot").await["seq"], 0);
    gateway.bid(&item, 2).await;
    assert_eq!(viewer.next_of_type("bid_placed").await["seq"], 1);
    viewer
        .send_json(json!({"type": "subscribe", "item_id": item}))
        .await;
    assert_eq!(viewer.next_of_type("snapshot").await["seq"], 1);
    assert_eq!(broadcast.metric("broadcast_subscriptions").await, 1.0);
    iso.cleanup().await;
}

#[tokio::test]
async fn an_unknown_item_gets_an_item_not_found_error_frame() {
    let iso = Isolation::shared();
    let broadcast = spawn_broadcast(iso.broadcast_config()).await;
    let mut viewer = broadcast.connect("/ws?item_id=no-such-item").await;
    let error = viewer.next_json().await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "item_not_found");
    assert_eq!(error["item_id"], "no-such-item");
    // The connection stays usable and watches nothing.
    viewer.send_json(json!({"type": "ping"})).await;
    assert_eq!(viewer.next_json().await, json!({"type": "pong"}));
    broadcast
        .wait_for_metric("broadcast_subscriptions", 0.0)
        .await;
    broadcast.wait_for_metric("broadcast_rooms", 0.0).await;
}

#[tokio::test]
async fn a_connection_may_watch_only_so_many_items() {
    let iso = Isolation::shared();
    let gateway = spawn_gateway(iso.gateway_config()).await;
    let mut config = iso.broadcast_config();
    config.max_subscriptions_per_connection = 2;
    let broadcast = spawn_broadcast(config).await;
    let items = [
        gateway.create_item().await,
        gateway.create_item().await,
        gateway.create_item().await,
    ];
    let mut viewer = broadcast.connect("/ws").await;
    for item in &items[..2] {
        viewer
            .send_json(json!({"type": "subscribe", "item_id": item}))
            .await;
        viewer.next_of_type("snapshot").await;
    }
    viewer
        .send_json(json!({"type": "subscribe", "item_id": items[2]}))
        .await;
    let error = viewer.next_of_type("error").await;
    assert_eq!(error["code"], "too_many_subscriptions");
    assert_eq!(error["item_id"], items[2].as_str());
    viewer
        .send_json(json!({"type": "unsubscribe", "item_id": items[0]}))
        .await;
    viewer.next_of_type("unsubscribed").await;
    viewer
        .send_json(json!({"type": "subscribe", "item_id": items[2]}))
        .await;
    assert_eq!(
        viewer.next_of_type("snapshot").await["item_id"],
        items[2].as_str()
    );
    iso.cleanup().await;
}

#[tokio::test]
async fn nats_subscriptions_follow_interest_first_viewer_in_last_viewer_out() {
    let iso = Isolation::shared();
    let gateway = spawn_gateway(iso.gateway_config()).await;
    let broadcast = spawn_broadcast(iso.broadcast_config()).await;
    let item = gateway.create_item().await;
    assert_eq!(broadcast.metric("broadcast_rooms").await, 0.0);

    let mut first = broadcast.connect(&format!("/ws/items/{item}")).await;
    first.next_of_type("snapshot").await;
    let mut second = broadcast.connect(&format!("/ws/items/{item}")).await;
    second.next_of_type("snapshot").await;
    assert_eq!(broadcast.metric("broadcast_rooms").await, 1.0);

    first.close().await;
    gateway.bid(&item, 2).await;
    assert_eq!(second.next_of_type("bid_placed").await["seq"], 1);
    assert_eq!(broadcast.metric("broadcast_rooms").await, 1.0);

    second.close().await;
    broadcast.wait_for_metric("broadcast_rooms", 0.0).await;
    broadcast
        .wait_for_metric("broadcast_connections", 0.0)
        .await;
    // No room, no subscription: a bid made now passes through NATS without reaching this
    // instance. A raw subscriber shows when it has passed.
    let nats = async_nats::connect(iso.nats_url.as_str()).await.unwrap();
    let mut raw = nats
        .subscribe(format!("{}.live.{item}", iso.subject_prefix))
        .await
        .unwrap();
    nats.flush().await.unwrap();
    let received = broadcast.metric("broadcast_events_received_total").await;
    gateway.bid(&item, 3).await;
    tokio::time::timeout(FRAME_WAIT, futures::StreamExt::next(&mut raw))
        .await
        .expect("the event was published")
        .expect("subscription open");
    assert_eq!(
        broadcast.metric("broadcast_events_received_total").await,
        received,
        "the bid made while nobody watched never reached this instance"
    );
    let mut late = broadcast.connect(&format!("/ws/items/{item}")).await;
    assert_eq!(late.next_of_type("snapshot").await["seq"], 2);
    iso.cleanup().await;
}
