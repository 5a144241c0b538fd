//! Subscribing: the three endpoints, several items on one socket, unsubscribe, limits, and
//! interest-based NATS subscriptions.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn query_and_path_endpoints_start_with_a_snapshot_then_stream_events() {
    let Stage(gateway, broadcast, item, ..) = &start(Isolation::shared()).await;
    bid(gateway, item, 2).await;

    let mut by_query = broadcast.connect(&format!("/ws?item_id={item}")).await;
    let mut by_path = broadcast.connect(&format!("/ws/items/{item}")).await;
    for viewer in [&mut by_query, &mut by_path] {
        let snapshot = viewer.expect_snapshot().await;
        assert_eq!(snapshot["item_id"], item.as_str());
        assert_eq!(snapshot["id"], item.as_str());
        assert_eq!(snapshot["seq"], 1);
        assert_eq!(snapshot["current_bid"].to_string(), "2");
        assert_eq!(snapshot["status"], "active");
        assert_eq!(snapshot["name"], "Test camera");
    }
    bid(gateway, item, 3).await;
    for viewer in [&mut by_query, &mut by_path] {
        let event = viewer.next_bid().await;
        assert_eq!(event["seq"], 2);
        assert_eq!(event["amount"].to_string(), "3");
        assert_eq!(event["item_id"], item.as_str());
    }
}

#[tokio::test]
async fn one_socket_watches_several_items_and_unsubscribe_stops_delivery() {
    let Stage(gateway, broadcast, a, ..) = &start(Isolation::shared()).await;
    let b = gateway.create_penny_item().await;

    let mut viewer = broadcast.connect("/ws").await;
    viewer.subscribe(a).await;
    viewer.subscribe(&b).await;
    let mut snapshots = vec![
        viewer.expect_snapshot().await["item_id"].clone(),
        viewer.expect_snapshot().await["item_id"].clone(),
    ];
    snapshots.sort_by_key(|v| v.to_string());
    let mut expected = vec![json!(a), json!(b)];
    expected.sort_by_key(|v| v.to_string());
    assert_eq!(snapshots, expected);

    bid(gateway, a, 2).await;
    bid(gateway, &b, 5).await;
    let first = viewer.next_bid().await;
    let second = viewer.next_bid().await;
    assert_eq!((&first["item_id"], &first["seq"]), (&json!(a), &json!(1)));
    assert_eq!((&second["item_id"], &second["seq"]), (&json!(b), &json!(1)));

    viewer.unsubscribe(a).await;
    let answer = viewer.next_of_type("unsubscribed").await;
    assert_eq!(answer["item_id"], a.as_str());
    bid(gateway, a, 3).await;
    bid(gateway, &b, 6).await;
    // B's event was published after A's; if A's were still delivered it would come first.
    let next = viewer.next_bid().await;
    assert_eq!((&next["item_id"], &next["seq"]), (&json!(b), &json!(2)));

    viewer.unsubscribe(a).await;
    let error = viewer.next_of_type("error").await;
    assert_eq!(error["code"], "not_subscribed");
    assert_eq!(broadcast.metric(SUBSCRIPTIONS).await, 1.0);
}

#[tokio::test]
async fn subscribing_again_sends_a_fresh_snapshot() {
    let Stage(gateway, broadcast, item, ..) = &start(Isolation::shared()).await;
    let mut viewer = broadcast.connect(&format!("/ws/items/{item}")).await;
    assert_eq!(viewer.expect_snapshot().await["seq"], 0);
    bid(gateway, item, 2).await;
    assert_eq!(viewer.next_bid().await["seq"], 1);
    viewer.subscribe(item).await;
    assert_eq!(viewer.expect_snapshot().await["seq"], 1);
    assert_eq!(broadcast.metric(SUBSCRIPTIONS).await, 1.0);
}

#[tokio::test]
async fn an_unknown_item_gets_an_item_not_found_error_frame() {
    let iso = Isolation::shared();
    let broadcast = spawn_broadcast(broadcast_config(&iso)).await;
    let mut viewer = broadcast.connect("/ws?item_id=no-such-item").await;
    let error = viewer.next_json().await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "item_not_found");
    assert_eq!(error["item_id"], "no-such-item");
    // The connection stays usable and watches nothing.
    viewer.assert_answers_ping().await;
    broadcast.wait_for_metric(SUBSCRIPTIONS, 0.0).await;
    broadcast.wait_for_metric(ROOMS, 0.0).await;
}

#[tokio::test]
async fn a_connection_may_watch_only_so_many_items() {
    let two = |config: &mut BroadcastConfig| config.max_subscriptions_per_connection = 2;
    let Stage(gateway, broadcast, item, ..) = &start_with(Isolation::shared(), two).await;
    let items = [
        item.clone(),
        gateway.create_penny_item().await,
        gateway.create_penny_item().await,
    ];
    let mut viewer = broadcast.connect("/ws").await;
    for item in &items[..2] {
        viewer.subscribe(item).await;
        viewer.expect_snapshot().await;
    }
    viewer.subscribe(&items[2]).await;
    let error = viewer.next_of_type("error").await;
    assert_eq!(error["code"], "too_many_subscriptions");
    assert_eq!(error["item_id"], items[2].as_str());
    viewer.unsubscribe(&items[0]).await;
    viewer.next_of_type("unsubscribed").await;
    viewer.subscribe(&items[2]).await;
    assert_eq!(viewer.expect_snapshot().await["item_id"], items[2].as_str());
}

#[tokio::test]
async fn nats_subscriptions_follow_interest_first_viewer_in_last_viewer_out() {
    let Stage(gateway, broadcast, item, isolation) = &start(Isolation::shared()).await;
    assert_eq!(broadcast.metric(ROOMS).await, 0.0);

    let mut first = broadcast.connect(&format!("/ws/items/{item}")).await;
    first.expect_snapshot().await;
    let mut second = broadcast.connect(&format!("/ws/items/{item}")).await;
    second.expect_snapshot().await;
    assert_eq!(broadcast.metric(ROOMS).await, 1.0);

    first.close().await;
    bid(gateway, item, 2).await;
    assert_eq!(second.next_bid().await["seq"], 1);
    assert_eq!(broadcast.metric(ROOMS).await, 1.0);

    second.close().await;
    broadcast.wait_for_metric(ROOMS, 0.0).await;
    broadcast.wait_for_metric(CONNECTIONS, 0.0).await;
    // No room, no subscription: a bid made now passes through NATS without reaching this
    // instance. A raw subscriber shows when it has passed.
    let nats = async_nats::connect(isolation.nats_url.as_str())
        .await
        .unwrap();
    let mut raw = nats
        .subscribe(format!("{}.live.{item}", isolation.subject_prefix))
        .await
        .unwrap();
    nats.flush().await.unwrap();
    let received = broadcast.metric("broadcast_events_received_total").await;
    bid(gateway, item, 3).await;
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
    assert_eq!(late.expect_snapshot().await["seq"], 2);
}

/// A missing item costs one room (a NATS subscription and a Redis read); subscribing to it
/// again, from this socket or another, is answered from memory.
#[tokio::test]
async fn subscribing_again_to_a_missing_item_opens_no_room() {
    let broadcast = spawn_broadcast(broadcast_config(&Isolation::shared())).await;
    let missing = unique_id("missing");
    let mut first = broadcast.connect("/ws").await;
    let mut second = broadcast.connect("/ws").await;
    for round in 0..3 {
        let viewer = if round == 1 { &mut second } else { &mut first };
        for _ in 0..5 {
            viewer.subscribe(&missing).await;
            let error = viewer.immediate_error("item_not_found").await;
            assert_eq!(error["item_id"], missing.as_str());
        }
    }
    let opened_and_answered = [
        ("broadcast_rooms_opened_total", 1.0),
        ("broadcast_missing_item_answers_total", 14.0),
    ];
    broadcast.assert_metrics(&opened_and_answered).await;
    broadcast.wait_for_metric(ROOMS, 0.0).await;
    first.assert_answers_ping().await;
}

/// A client flooding messages gets `rate_limited` frames (the messages are dropped), and one
/// that keeps on is closed with 1008.
#[tokio::test]
async fn a_flooding_client_is_rate_limited_then_closed_with_1008() {
    let mut config = broadcast_config(&Isolation::shared());
    // One a second, a burst of 2: the test sends far faster than the bucket refills.
    config.max_messages_per_sec = 1;
    let broadcast = spawn_broadcast(config).await;
    let mut viewer = broadcast.connect("/ws").await;
    // The burst, 20 dropped, and the one that ends it: exactly what the server reads, so no
    // unread bytes turn its close into a reset.
    for _ in 0..23 {
        viewer.ping().await;
    }
    let mut pongs = 0;
    let mut limited = 0;
    let code = loop {
        match viewer.receive(FRAME_WAIT).await {
            Some(Received::Json(frame)) if frame["type"] == "pong" => pongs += 1,
            Some(Received::Json(frame)) => {
                assert_eq!(frame["code"], "rate_limited", "{frame}");
                limited += 1;
            }
            Some(Received::Closed(close)) => break close.map(|(code, _)| code),
            None => panic!("neither closed nor answered"),
        }
    };
    assert_eq!(code, Some(1008));
    assert_eq!(pongs, 2, "the burst answered");
    assert_eq!(limited, 20, "20 dropped with a frame before the close");
    broadcast.wait_for_metric(CONNECTIONS, 0.0).await;
}
