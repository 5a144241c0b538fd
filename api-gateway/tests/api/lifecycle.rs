//! Auctions end by themselves: the closer closes each exactly once, with the right winner.

use crate::helpers::*;
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

async fn wait_closed(app: &TestApp, item: &str) -> Value {
    wait_until(Duration::from_secs(15), "auction closed", || async {
        let state = app.item(item).await;
        (state["closed_at"] != Value::Null).then_some(state)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auction_closes_at_its_end_with_the_highest_bidder_as_winner() {
    let app = spawn_app().await;
    // The live events are asserted: a gateway not yet on NATS drops them (and `/ready` no
    // longer waits for NATS, which is advisory).
    app.wait_dependency_up(Duration::from_secs(10), "nats")
        .await;
    let item = app.create_item(json!({"end_time": in_secs(2)})).await;
    let mut live = app.subscribe_live(&item).await;
    app.accepted_bid(&item, "alice", json!(11)).await;
    app.accepted_bid(&item, "bob", json!(12)).await;

    let state = wait_closed(&app, &item).await;
    assert_eq!(state["status"], "closed");
    assert_eq!(state["winner_id"], "bob");
    assert_eq!(state["final_price"].to_string(), "12");
    assert_eq!(state["seq"], 3, "the close takes the next seq");

    let late = app.bid(&item, "carol", json!(50)).await;
    late.assert_error(409, "auction_closed");

    let mut types = Vec::new();
    while types.len() < 3 {
        let message = tokio::time::timeout(Duration::from_secs(5), live.next())
            .await
            .unwrap()
            .unwrap();
        let event: Value = serde_json::from_slice(&message.payload).unwrap();
        types.push((
            event["type"].as_str().unwrap().to_owned(),
            event["seq"].as_u64().unwrap(),
        ));
        if event["type"] == "auction_closed" {
            assert_eq!(event["winner_id"], "bob");
            assert_eq!(event["final_price_cents"], 1200);
            assert_eq!(event["reserve_met"], true);
        }
    }
    assert_eq!(
        types,
        vec![
            ("bid_placed".into(), 1),
            ("bid_placed".into(), 2),
            ("auction_closed".into(), 3)
        ]
    );
    let archived = app.wait_archived(3).await;
    assert_eq!(archived[2]["type"], "auction_closed");
    wait_announcement_confirmed(&app, &item).await;
    assert_eq!(
        app.metric("gateway_close_announcements_repeated_total")
            .await,
        0.0
    );
}

#[tokio::test]
async fn reserve_not_met_closes_without_a_winner_and_never_reveals_the_reserve() {
    let app = spawn_app().await;
    let item = app
        .create_item(json!({"end_time": in_secs(2), "reserve_price": 987.65}))
        .await;
    app.accepted_bid(&item, "alice", json!(50)).await;
    assert_eq!(app.item(&item).await["reserve_met"], false);
    let state = wait_closed(&app, &item).await;
    assert_eq!(state["status"], "closed");
    assert_eq!(state["winner_id"], Value::Null);
    assert_eq!(state["final_price"], Value::Null);
    assert_eq!(state["reserve_met"], false);
    assert!(!reveals_amount(&state, 987.65), "{state}");
}

#[tokio::test]
async fn a_bid_in_the_anti_sniping_window_postpones_the_close() {
    let app = spawn_app().await;
    let item = app.create_item(anti_sniping(2, 10, 4)).await;
    let body = app.bid(&item, "alice", json!(11)).await.body;
    assert_eq!(body["extended"], true, "{body}");
    let new_end = shared::Timestamp::parse_rfc3339(body["end_time"].as_str().unwrap()).unwrap();

    let state = wait_closed(&app, &item).await;
    assert_eq!(state["winner_id"], "alice");
    let events = app.wait_archived(2).await;
    let closed_at =
        shared::Timestamp::parse_rfc3339(events[1]["timestamp"].as_str().unwrap()).unwrap();
    assert!(
        closed_at >= new_end,
        "closed at {closed_at}, before the extended end {new_end}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_gateways_close_a_thousand_auctions_ending_together_exactly_once() {
    let config = shared_config();
    let gateways = [
        spawn_app_with(config.clone()).await,
        spawn_app_with(config.clone()).await,
        spawn_app_with(config.clone()).await,
    ];
    // Time for 1,000 creations and 750 bids in a debug build on a loaded 2-core machine.
    let end = in_secs(12);
    let mut winners = HashMap::new();
    let creations = futures::stream::iter(0..1000usize)
        .map(|i| {
            let app = &gateways[i % 3];
            let end = end.clone();
            async move {
                let id = format!("lot-{i}");
                let lot = json!({"id": id, "name": "lot", "starting_price": 1, "end_time": end});
                app.post_as(Some(SELLER), "/api/v1/items", lot)
                    .await
                    .assert_status(201);
                let bidder = format!("u{}", i % 17);
                if i % 4 != 0 {
                    app.accepted_bid(&id, &bidder, json!(2)).await;
                    Some((id, bidder))
                } else {
                    None
                }
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    winners.extend(creations.into_iter().flatten());

    let events = wait_until(Duration::from_secs(30), "1000 closes archived", || async {
        let events = archived_events(&config).await;
        let closes = events
            .iter()
            .filter(|e| e["type"] == "auction_closed")
            .count();
        (closes >= 1000).then_some(events)
    })
    .await
    .unwrap();
    let closes: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "auction_closed")
        .collect();
    assert_eq!(closes.len(), 1000, "each auction closed once");
    let mut seen = std::collections::HashSet::new();
    for close in &closes {
        let item = close["item_id"].as_str().unwrap();
        assert!(seen.insert(item.to_owned()), "{item} closed twice");
        match winners.get(item) {
            Some(bidder) => assert_eq!(close["winner_id"], bidder.as_str(), "{item}"),
            None => assert_eq!(close["winner_id"], Value::Null, "{item}"),
        }
    }
    let mut closed_by = Vec::new();
    for app in &gateways {
        closed_by.push(app.metric("gateway_auctions_closed_total").await);
    }
    assert_eq!(
        closed_by.iter().sum::<f64>(),
        1000.0,
        "closes per instance: {closed_by:?}"
    );
}

#[tokio::test]
async fn a_close_due_while_no_gateway_runs_happens_when_one_starts() {
    let config = shared_config();
    let first = spawn_app_with(config.clone()).await;
    let item = first.create_item(json!({"end_time": in_secs(2)})).await;
    first.accepted_bid(&item, "alice", json!(11)).await;
    let item_key = first.item_keys(&item).item;
    let mut redis = first.redis().await;
    first.stop().await;
    // Past the end with no gateway running: nothing can close it yet.
    wait_until(Duration::from_secs(5), "end time passed", || async {
        let end: i64 = redis::cmd("HGET")
            .arg(&item_key)
            .arg("end_us")
            .query_async(&mut redis.clone())
            .await
            .ok()?;
        (shared::Timestamp::now().micros() > end).then_some(())
    })
    .await
    .unwrap();
    let status: String = redis::cmd("HGET")
        .arg(&item_key)
        .arg("status")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(status, "active");

    let second = spawn_app_with(config.clone()).await;
    let state = wait_closed(&second, &item).await;
    assert_eq!(
        (state["status"].as_str(), state["winner_id"].as_str()),
        (Some("closed"), Some("alice"))
    );
}

/// The price ceiling: a bid no valid amount could beat (its amount plus the increment is above
/// the API maximum, 1,000,000,000,000) wins at once; the auction never waits for a bid nobody
/// may send.
pub async fn assert_a_bid_at_the_ceiling_wins_at_once(app: &TestApp) {
    let item = app
        .create_item(json!({"starting_price": 999_999_999_990_i64, "min_increment": 5}))
        .await;
    // 999,999,999,995 leaves room: the next minimum, 1e12, may still be sent.
    let room = app
        .accepted_bid(&item, "alice", json!(999_999_999_995_i64))
        .await;
    assert_eq!(room.body["minimum_bid_cents"], 100_000_000_000_000_i64);
    let before = shared::Timestamp::now();
    let top = app
        .accepted_bid(&item, "bob", json!(1_000_000_000_000_i64))
        .await;
    let ends = top.body["end_time"].as_str().unwrap();
    let ends = shared::Timestamp::parse_rfc3339(ends).unwrap();
    assert!(
        ends <= shared::Timestamp::now() && ends >= before,
        "{}",
        top.body
    );
    app.bid(&item, "carol", json!(1_000_000_000_000_i64))
        .await
        .assert_error(409, "auction_closed");

    let state = wait_closed(app, &item).await;
    assert_eq!(
        (state["status"].as_str(), state["winner_id"].as_str()),
        (Some("closed"), Some("bob")),
        "{state}"
    );
    assert_eq!(state["final_price"].to_string(), "1000000000000");
}

#[tokio::test]
async fn a_bid_at_the_price_ceiling_wins_at_once_and_the_auction_closes() {
    assert_a_bid_at_the_ceiling_wins_at_once(&spawn_app().await).await;
}

/// Waits until `item`'s close is confirmed as announced: it left its closing set and its hash
/// keeps no event to announce again.
async fn wait_announcement_confirmed(app: &TestApp, item: &str) {
    let keys = app.item_keys(item);
    wait_until(
        Duration::from_secs(5),
        "the announcement confirmed",
        || async {
            let mut redis = app.redis().await;
            let score: Option<f64> = redis::cmd("ZSCORE")
                .arg(&keys.closing)
                .arg(item)
                .query_async(&mut redis)
                .await
                .ok()?;
            let pending: Option<String> = redis::cmd("HGET")
                .arg(&keys.item)
                .arg("close_event")
                .query_async(&mut redis)
                .await
                .ok()?;
            (score.is_none() && pending.is_none()).then_some(())
        },
    )
    .await
    .unwrap();
}

/// Waits for the next `auction_closed` on `live` (other events are skipped).
async fn next_close(live: &mut async_nats::Subscriber, within: Duration) -> Value {
    tokio::time::timeout(within, async {
        loop {
            let message = live.next().await.expect("subscription open");
            let event: Value = serde_json::from_slice(&message.payload).expect("event json");
            if event["type"] == "auction_closed" {
                return event;
            }
        }
    })
    .await
    .expect("auction_closed published live")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_whose_reply_never_reached_its_gateway_is_still_announced_live() {
    let app = spawn_app().await;
    let item = app.create_item(json!({})).await;
    app.accepted_bid(&item, "alice", json!(11)).await;
    let mut live = app.subscribe_live(&item).await;

    // The close script runs, and its reply is lost (a call that timed out after Redis took
    // it, or a gateway that stopped right after sending it): nobody announces the close.
    let store =
        api_gateway::store::Store::new(&app.config.redis, app.keys(), Duration::from_secs(2))
            .unwrap();
    let id = shared::ItemId::parse(&item).unwrap();
    let lost = store
        .close_item(&id, api_gateway::store::CloseMode::Now, "")
        .await
        .unwrap();
    assert!(matches!(lost, api_gateway::store::CloseOutcome::Closed(_)));

    // A later pass of the gateway's closer announces it.
    let close = next_close(&mut live, Duration::from_secs(15)).await;
    assert_eq!(
        (close["seq"].as_u64(), close["winner_id"].as_str()),
        (Some(2), Some("alice")),
        "{close}"
    );
    // Once announced it is confirmed: nothing is left to announce again.
    wait_announcement_confirmed(&app, &item).await;
    let archived = app.wait_archived(2).await;
    assert_eq!(archived[1]["type"], "auction_closed", "closed once");
    assert_eq!(
        app.metric("gateway_close_announcements_repeated_total")
            .await,
        1.0
    );
}

#[tokio::test]
async fn an_item_whose_close_fails_does_not_stop_the_others_from_closing() {
    let mut config = shared_config();
    config.closer_concurrency = 1;
    let app = spawn_app_with(config).await;
    // The broken item sorts into an earlier shard than the good one, so a pass that gave up
    // at the first error would never reach the good one.
    let shard = |id: &str| shared::redis_keys::shard_of(&shared::ItemId::parse(id).unwrap());
    let ids: Vec<String> = (0..64).map(|_| unique_id("lot")).collect();
    let broken = ids.iter().min_by_key(|id| shard(id)).unwrap().clone();
    let good = ids.iter().max_by_key(|id| shard(id)).unwrap().clone();
    assert!(shard(&broken) < shard(&good));
    for id in [&broken, &good] {
        let lot = json!({"id": id, "name": "lot", "starting_price": 1, "end_time": in_secs(1)});
        app.post_as(Some(SELLER), "/api/v1/items", lot)
            .await
            .assert_status(201);
    }
    // A corrupt hash: the close script fails on it every time.
    let _: () = redis::cmd("HSET")
        .arg(app.item_keys(&broken).item)
        .arg("seq")
        .arg("not-a-number")
        .query_async(&mut app.redis().await)
        .await
        .unwrap();

    let state = wait_closed(&app, &good).await;
    assert_eq!(state["status"], "closed");
    wait_until(Duration::from_secs(5), "the failure counted", || async {
        (app.metric("gateway_close_failures_total").await >= 1.0).then_some(())
    })
    .await
    .unwrap();
}
