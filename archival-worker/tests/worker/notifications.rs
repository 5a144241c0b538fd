//! A user's private notifications end to end: bids through a real gateway, archived by a real
//! worker that derives `outbid`, `won`, `lost` and `ending_soon`, stored in PostgreSQL, read
//! back through the gateway's `/api/v1/me/…` routes, and delivered to signed-in sockets of
//! real broadcast instances.

use crate::helpers::*;
use broadcast_service::config::Config as BroadcastConfig;
use futures::StreamExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use testkit::reply::Reply;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Generous: the suites run beside other work on a two-core machine.
const WAIT: Duration = Duration::from_secs(30);

/// A broadcast instance on `setup`'s Redis and NATS prefixes, trusting `gateway`'s tokens.
async fn spawn_broadcast(setup: &Setup, gateway: &Gateway) -> Service {
    let mut config = BroadcastConfig::defaults();
    config.listen_addr = testkit::service::LOOPBACK_ANY_PORT;
    config.common = setup.gateway.common.clone();
    config.redis = setup.gateway.redis.clone();
    config.instance_id = testkit::unique_id("bc");
    config.redis_timeout_ms = 2_000;
    config.tokens.jwks_url = gateway.url("/.well-known/jwks.json");
    config.tokens.jwt_issuer = setup.gateway.auth.jwt_issuer.clone();
    config.tokens.jwt_audience = setup.gateway.auth.jwt_audience.clone();
    let service = Service::start(
        broadcast_service::Application::build(config),
        broadcast_service::Application::port,
        broadcast_service::Application::run,
    )
    .await;
    service.wait_ready(WAIT).await;
    service
}

/// A socket signed in as `user`, past its `authenticated` frame (so its user's feed is open).
struct Socket(WebSocketStream<MaybeTlsStream<TcpStream>>);

impl Socket {
    async fn signed_in(broadcast: &Service, gateway: &Gateway, user: &str) -> Self {
        let url = format!(
            "ws://127.0.0.1:{}/ws?access_token={}",
            broadcast.port(),
            gateway.token(user)
        );
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket handshake");
        let mut socket = Self(ws);
        let first = socket.next(WAIT).await.expect("a first frame");
        assert_eq!(first["type"], "authenticated", "{first}");
        socket
    }

    /// The next JSON text frame within `wait`, or `None`.
    async fn next(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.0.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Some(serde_json::from_str(&text).expect("a JSON frame"));
                }
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }

    /// The next frame of `kind`, skipping others (viewers counts, pings).
    async fn next_of_type(&mut self, kind: &str, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.next(left).await?;
            if frame["type"] == kind {
                return Some(frame);
            }
        }
    }

    /// Every frame that arrives within `wait`.
    async fn drain(&mut self, wait: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut frames = Vec::new();
        while let Some(frame) = self
            .next(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            frames.push(frame);
        }
        frames
    }
}

async fn notifications(gateway: &Gateway, user: &str, query: &str) -> Reply {
    gateway
        .get_as(Some(user), &format!("/api/v1/me/notifications{query}"))
        .await
}

/// Where a user marks notifications read.
const READ: &str = "/api/v1/me/notifications/read";

/// Marks `user`'s notifications read (`body`: `ids` or `all`) and asserts the 204.
async fn mark_read(gateway: &Gateway, user: &str, body: Value) {
    gateway
        .post_as(Some(user), READ, body)
        .await
        .assert_status(204);
}

/// Waits until `user` has `count` notifications in all, then returns them, newest first.
async fn wait_notifications(gateway: &Gateway, user: &str, count: usize) -> Vec<Value> {
    wait_until(
        WAIT,
        &format!("{count} notifications for {user}"),
        || async {
            let reply = notifications(gateway, user, "").await;
            let rows = reply.body["notifications"].as_array()?.clone();
            (reply.status == 200 && rows.len() >= count).then_some(rows)
        },
    )
    .await
    .expect("the notifications were stored")
}

/// `user`'s notifications once their count has stopped changing for longer than a
/// redelivery takes.
async fn settled_notifications(gateway: &Gateway, user: &str) -> Vec<Value> {
    testkit::wait_quiescent(
        WAIT,
        Duration::from_millis(2_500),
        "notifications settled",
        || async {
            notifications(gateway, user, "").await.body["notifications"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        },
        |_| true,
    )
    .await
    .expect("notifications settled")
}

fn kinds(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|row| row["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn an_outbid_bidder_on_the_other_broadcast_instance_gets_outbid_within_a_second() {
    let setup = setup().await;
    let (gateway, _worker, item) = start(&setup).await;
    let first = spawn_broadcast(&setup, &gateway).await;
    let second = spawn_broadcast(&setup, &gateway).await;
    let mut alice = Socket::signed_in(&first, &gateway, "alice").await;
    let mut bob = Socket::signed_in(&second, &gateway, "bob").await;
    let mut carol = Socket::signed_in(&second, &gateway, "carol").await;
    accepted_bid(&gateway, &item, "alice", 100).await;
    // Alice's lead is archived before Bob outbids her, so the measured time is his bid's.
    wait_until(WAIT, "alice's bid archived", || async {
        (archived_bids(setup.database()).await.len() == 1).then_some(())
    })
    .await
    .expect("archived");

    let sent = Instant::now();
    let outbid = gateway.accepted_bid(&item, "bob", decimal(150)).await;
    let frame = alice
        .next_of_type("outbid", Duration::from_secs(1))
        .await
        .expect("alice hears she was outbid within a second");
    let latency = sent.elapsed();
    println!("outbid across instances: {} ms", latency.as_millis());

    assert_eq!(frame["item_id"], item.as_str());
    assert_eq!(frame["current_bid"], 1.5);
    assert_eq!(frame["current_bid_cents"], 150);
    assert_eq!(frame["minimum_to_lead_cents"], 151);
    assert_eq!(frame["minimum_to_lead"], 1.51);
    assert_eq!(frame["seq"], outbid.seq);
    assert!(frame["notification_id"].as_i64().is_some(), "{frame}");
    assert!(frame["timestamp"].is_string(), "{frame}");
    // The persisted row carries the very frame.
    let rows = wait_notifications(&gateway, "alice", 1).await;
    assert_eq!(rows[0]["data"], frame);
    assert_eq!(rows[0]["id"], frame["notification_id"]);
    // The leader and a bystander on the other instance get no private frame.
    let private = |frames: Vec<Value>| {
        frames
            .into_iter()
            .filter(|f| f["type"] != "viewers" && f["type"] != "pong")
            .collect::<Vec<_>>()
    };
    assert_eq!(
        private(bob.drain(Duration::from_millis(500)).await),
        Vec::<Value>::new()
    );
    assert_eq!(
        private(carol.drain(Duration::from_millis(100)).await),
        Vec::<Value>::new()
    );
    assert!(kinds(&settled_notifications(&gateway, "bob").await).is_empty());
}

#[tokio::test]
async fn an_admin_close_tells_the_winner_won_and_the_other_bidders_lost_without_the_winner() {
    let setup = setup().await;
    let (gateway, _worker, item) = start(&setup).await;
    let broadcast = spawn_broadcast(&setup, &gateway).await;
    let mut bob_socket = Socket::signed_in(&broadcast, &gateway, "bob").await;
    accepted_bid(&gateway, &item, "alice", 100).await;
    accepted_bid(&gateway, &item, "bob", 200).await;
    accepted_bid(&gateway, &item, "carol", 300).await;
    gateway
        .admin(&item, "close", json!({}))
        .await
        .assert_status(200);

    let won = wait_notifications(&gateway, "carol", 1).await;
    assert_eq!(kinds(&won), ["won"]);
    assert_eq!(won[0]["data"]["final_price_cents"], 300);
    assert_eq!(won[0]["data"]["final_price"], 3);
    for loser in ["alice", "bob"] {
        let rows = wait_notifications(&gateway, loser, 2).await;
        assert_eq!(kinds(&rows), ["lost", "outbid"], "{loser}: {rows:?}");
        let lost = &rows[0]["data"];
        assert_eq!(lost["final_price_cents"], 300);
        assert!(lost.get("winner_id").is_none(), "no winner in lost: {lost}");
    }
    // Bob's socket got his outbid, then his loss.
    let outbid = bob_socket
        .next_of_type("outbid", WAIT)
        .await
        .expect("outbid");
    assert_eq!(outbid["current_bid_cents"], 300);
    let lost = bob_socket.next_of_type("lost", WAIT).await.expect("lost");
    assert_eq!(lost["item_id"], item.as_str());
    assert!(lost.get("winner_id").is_none());
    // Someone who never bid is told nothing; the seller neither.
    assert!(settled_notifications(&gateway, "dave").await.is_empty());
    assert!(
        settled_notifications(&gateway, testkit::gateway::SELLER)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn the_closer_ending_an_auction_tells_its_bidders_and_a_missed_reserve_has_no_winner() {
    let setup = setup().await;
    let (gateway, _worker, _) = start(&setup).await;
    let item = gateway
        .create_item(json!({"starting_price": 1, "min_increment": 0.01,
                            "reserve_price": 50, "end_time": in_secs(3)}))
        .await;
    accepted_bid(&gateway, &item, "alice", 100).await;
    accepted_bid(&gateway, &item, "bob", 200).await;

    let bob = wait_notifications(&gateway, "bob", 1).await;
    assert_eq!(kinds(&bob), ["lost"]);
    assert!(bob[0]["data"].get("final_price").is_none(), "{bob:?}");
    let alice = wait_notifications(&gateway, "alice", 2).await;
    assert_eq!(kinds(&alice), ["lost", "outbid"]);
}

#[tokio::test]
async fn redelivered_events_create_no_duplicate_notifications() {
    let setup = setup().await;
    let (gateway, worker, item) = start(&setup).await;
    let mut accepted = Vec::new();
    for (user, cents) in [("alice", 100), ("bob", 200), ("alice", 300), ("bob", 400)] {
        accepted.push(accepted_bid(&gateway, &item, user, cents).await);
    }
    gateway
        .admin(&item, "close", json!({}))
        .await
        .assert_status(200);
    wait_notifications(&gateway, "bob", 2).await;
    let before = (
        settled_notifications(&gateway, "alice").await,
        settled_notifications(&gateway, "bob").await,
    );
    assert_eq!(kinds(&before.0), ["lost", "outbid", "outbid"]);
    assert_eq!(kinds(&before.1), ["won", "outbid"]);

    // A second worker with its own durable consumer reads the whole stream again.
    let mut again = setup.worker.clone();
    again.consumer_name = "redelivery".into();
    let second = spawn_worker(&again).await;
    second
        .wait_metric(WAIT, "archive_duplicates_total", 5.0)
        .await;
    let after = (
        settled_notifications(&gateway, "alice").await,
        settled_notifications(&gateway, "bob").await,
    );
    assert_eq!(after, before, "the same notifications, none twice");
    assert_eq!(
        second.metric("archive_notifications_stored_total").await,
        0.0
    );
    assert_eq!(
        worker.metric("archive_notifications_stored_total").await,
        5.0
    );
}

#[tokio::test]
async fn the_watchlist_is_added_to_listed_and_removed_from_by_its_owner_only() {
    let setup = setup().await;
    let (gateway, _worker, item) = start(&setup).await;
    let other = gateway.create_penny_item().await;
    let path = |id: &str| format!("/api/v1/me/watchlist/{id}");
    let put = |user: Option<&'static str>, id: String| {
        let request = gateway.http().put(gateway.url(&path(&id)));
        let request = match user {
            Some(user) => request.bearer_auth(gateway.token(user)),
            None => request,
        };
        gateway.send(request)
    };
    // The read model is migrated by the worker; until then the list is unavailable.
    wait_until(WAIT, "watchlist ready", || async {
        (put(Some("alice"), item.clone()).await.status == 204).then_some(())
    })
    .await
    .expect("watched");
    put(Some("alice"), other.clone()).await.assert_status(204);
    put(Some("alice"), item.clone()).await.assert_status(204);
    put(Some("bob"), other.clone()).await.assert_status(204);

    let listed = gateway.get_as(Some("alice"), "/api/v1/me/watchlist").await;
    let ids: Vec<&str> = listed.assert_status(200)["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|view| view["id"].as_str().expect("an item view"))
        .collect();
    assert_eq!(
        ids,
        [other.as_str(), item.as_str()],
        "newest first, once each"
    );
    assert_eq!(listed.body["items"][0]["name"], "Test camera");

    let delete = gateway
        .http()
        .delete(gateway.url(&path(&other)))
        .bearer_auth(gateway.token("alice"));
    assert_eq!(gateway.send(delete).await.status, 204);
    let listed = gateway.get_as(Some("alice"), "/api/v1/me/watchlist").await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed.body["items"][0]["id"], item.as_str());
    // Bob's list is his own.
    let bob = gateway.get_as(Some("bob"), "/api/v1/me/watchlist").await;
    assert_eq!(bob.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(bob.body["items"][0]["id"], other.as_str());

    put(Some("alice"), "no-such-item".into())
        .await
        .assert_error(404, "item_not_found");
    put(Some("alice"), "bad%20id".into())
        .await
        .assert_error(400, "invalid_item_id");
    put(None, item.clone()).await.assert_status(401);
    gateway
        .get_as(None, "/api/v1/me/watchlist")
        .await
        .assert_status(401);
    let anonymous_delete = gateway.http().delete(gateway.url(&path(&item)));
    assert_eq!(gateway.send(anonymous_delete).await.status, 401);
    let listed = gateway.get_as(Some("alice"), "/api/v1/me/watchlist").await;
    assert_eq!(
        listed.body["items"].as_array().map(Vec::len),
        Some(1),
        "unchanged"
    );
}

#[tokio::test]
async fn notifications_are_paged_newest_first_marked_read_and_counted() {
    let setup = setup().await;
    let (gateway, _worker, item) = start(&setup).await;
    // Alice is outbid four times.
    for (user, cents) in [
        ("alice", 100),
        ("bob", 110),
        ("alice", 120),
        ("bob", 130),
        ("alice", 140),
        ("bob", 150),
        ("alice", 160),
        ("bob", 170),
    ] {
        accepted_bid(&gateway, &item, user, cents).await;
    }
    let all = wait_notifications(&gateway, "alice", 4).await;
    let prices: Vec<&Value> = all
        .iter()
        .map(|n| &n["data"]["current_bid_cents"])
        .collect();
    assert_eq!(prices, [&json!(170), &json!(150), &json!(130), &json!(110)]);
    assert!(
        all.iter()
            .all(|n| n["read"] == false && n["type"] == "outbid")
    );

    let first = notifications(&gateway, "alice", "?limit=3").await;
    assert_eq!(first.assert_status(200)["unread_count"], 4);
    assert_eq!(
        first.body["notifications"].as_array().map(Vec::len),
        Some(3)
    );
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = notifications(&gateway, "alice", &format!("?limit=3&before={cursor}")).await;
    assert_eq!(
        second.body["notifications"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(second.body["notifications"][0]["id"], all[3]["id"]);
    assert_eq!(second.body["next_cursor"], Value::Null);

    // Bob cannot mark Alice's read; Alice marks two.
    let ids = json!([all[0]["id"], all[1]["id"]]);
    mark_read(&gateway, "bob", json!({"ids": ids})).await;
    assert_eq!(
        notifications(&gateway, "alice", "").await.body["unread_count"],
        4
    );
    mark_read(&gateway, "alice", json!({"ids": ids})).await;
    let unread = notifications(&gateway, "alice", "?unread=true").await;
    assert_eq!(unread.body["unread_count"], 2);
    let left: Vec<&Value> = unread.body["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .map(|n| &n["id"])
        .collect();
    assert_eq!(left, [&all[2]["id"], &all[3]["id"]]);
    let read = notifications(&gateway, "alice", "").await;
    assert_eq!(read.body["notifications"][0]["read"], true);

    mark_read(&gateway, "alice", json!({"all": true})).await;
    assert_eq!(
        notifications(&gateway, "alice", "").await.body["unread_count"],
        0
    );

    // Bad input changes nothing and says why.
    for body in [
        json!({}),
        json!({"ids": []}),
        json!({"ids": [1], "all": true}),
        json!({"all": false}),
    ] {
        gateway
            .post_as(Some("alice"), READ, body)
            .await
            .assert_error(400, "invalid_input");
    }
    notifications(&gateway, "alice", "?before=zz")
        .await
        .assert_error(400, "invalid_cursor");
    notifications(&gateway, "alice", "?limit=0")
        .await
        .assert_error(400, "invalid_limit");
    notifications(&gateway, "alice", "?colour=red")
        .await
        .assert_error(400, "invalid_query");
    gateway
        .get_as(None, "/api/v1/me/notifications")
        .await
        .assert_status(401);
    gateway
        .post_as(None, READ, json!({"all": true}))
        .await
        .assert_status(401);
}

#[tokio::test]
async fn ending_soon_reaches_bidders_and_watchers_once_per_round_and_schedule() {
    let mut setup = setup().await;
    setup.worker.ending_soon_interval_ms = 100;
    setup.worker.ending_soon_window_secs = 120;
    let (gateway, _worker, _) = start(&setup).await;
    let item = gateway
        .create_item(json!({"starting_price": 1, "end_time": in_secs(60),
                            "extension_window_secs": 100, "extension_secs": 90}))
        .await;
    let far = gateway
        .create_item(json!({"end_time": in_secs(3600)}))
        .await;
    let watch = |user: &'static str, id: String| {
        let request = gateway
            .http()
            .put(gateway.url(&format!("/api/v1/me/watchlist/{id}")))
            .bearer_auth(gateway.token(user));
        gateway.send(request)
    };
    let broadcast = spawn_broadcast(&setup, &gateway).await;
    let mut carol_socket = Socket::signed_in(&broadcast, &gateway, "carol").await;
    wait_until(WAIT, "watching", || async {
        (watch("carol", item.clone()).await.status == 204).then_some(())
    })
    .await
    .expect("watched");
    watch("carol", far.clone()).await.assert_status(204);
    accepted_bid(&gateway, &item, "alice", 100).await;

    let frame = carol_socket
        .next_of_type("ending_soon", WAIT)
        .await
        .expect("carol hears the item ends soon");
    assert_eq!(frame["item_id"], item.as_str());
    assert!(frame["end_time"].is_string(), "{frame}");
    let rows = wait_notifications(&gateway, "carol", 1).await;
    assert_eq!(rows[0]["data"], frame);
    // Alice bid before or after the pass first saw the item: a later check finds her.
    let alice = wait_notifications(&gateway, "alice", 1).await;
    assert_eq!(kinds(&alice), ["ending_soon"]);
    let end = gateway.item(&item).await["end_time"].clone();

    // A late bid extends the end (anti-sniping): no second notice for it.
    accepted_bid(&gateway, &item, "bob", 200).await;
    assert_ne!(gateway.item(&item).await["end_time"], end, "extended");
    let bob = wait_notifications(&gateway, "bob", 1).await;
    assert_eq!(
        kinds(&bob),
        ["ending_soon"],
        "bob, a new bidder, is told once"
    );
    assert_eq!(
        kinds(&settled_notifications(&gateway, "carol").await),
        ["ending_soon"]
    );
    assert_eq!(
        kinds(&settled_notifications(&gateway, "alice").await),
        ["outbid", "ending_soon"]
    );

    // An admin's new schedule re-arms it.
    gateway
        .admin(&item, "extend", json!({"end_time": in_secs(100)}))
        .await
        .assert_status(200);
    let carol = wait_notifications(&gateway, "carol", 2).await;
    assert_eq!(kinds(&carol), ["ending_soon", "ending_soon"]);
    assert_ne!(carol[0]["data"]["end_time"], carol[1]["data"]["end_time"]);
    // The far item is not in the window; nobody else hears of anything.
    assert!(carol.iter().all(|n| n["item_id"] == item.as_str()));
    assert!(settled_notifications(&gateway, "dave").await.is_empty());
}

#[tokio::test]
async fn with_redis_unreachable_the_worker_still_archives_and_notifies_without_the_minimum() {
    let mut setup = setup().await;
    let port = testkit::server::free_port().expect("a free port");
    setup.worker.redis.url = format!("redis://127.0.0.1:{port}").as_str().into();
    let (gateway, worker, item) = start(&setup).await;
    let accepted = vec![
        accepted_bid(&gateway, &item, "alice", 100).await,
        accepted_bid(&gateway, &item, "bob", 200).await,
    ];
    assert_archived_exactly_once(setup.database(), &accepted).await;
    let rows = wait_notifications(&gateway, "alice", 1).await;
    assert_eq!(rows[0]["type"], "outbid");
    assert_eq!(rows[0]["data"]["current_bid_cents"], 200);
    assert_eq!(rows[0]["data"]["minimum_to_lead_cents"], Value::Null);
    assert!(worker.metric("archive_redis_read_failures_total").await >= 1.0);
}

/// An item for the proxy tests: from 1.00 in steps of 0.50, ending in ten minutes.
async fn half_step_item(gateway: &Gateway) -> String {
    gateway
        .create_item(json!({"starting_price": 1, "min_increment": 0.5, "end_time": in_secs(600)}))
        .await
}

/// `user`'s bid `body` on `item`.
async fn bid_as(gateway: &Gateway, item: &str, user: &str, body: Value) -> Reply {
    let path = format!("/api/v1/items/{item}/bid");
    gateway.post_as(Some(user), &path, body).await
}

/// Proxy bidding (issue 16): a bid answered at once by the leader's automatic bid outbids the
/// bidder who just bid, never the maximum's owner, who hears only when a higher maximum takes
/// the lead from it.
#[tokio::test]
async fn a_standing_maximum_alerts_the_challenger_it_beats_and_its_owner_only_when_beaten() {
    let setup = setup().await;
    let (gateway, _worker, _) = start(&setup).await;
    let item = half_step_item(&gateway).await;
    let bid = |user: &'static str, body: Value| bid_as(&gateway, &item, user, body);
    let alice = bid("alice", json!({"amount": 1, "max_amount": 10})).await;
    alice.assert_status(200);
    assert_eq!(alice.body["is_highest"], true, "{:?}", alice.body);
    let bob = bid("bob", json!({"amount": 2})).await;
    bob.assert_status(200);
    assert_eq!(bob.body["code"], "outbid_by_proxy", "{:?}", bob.body);

    let bob_rows = wait_notifications(&gateway, "bob", 1).await;
    assert_eq!(kinds(&bob_rows), ["outbid"]);
    assert_eq!(bob_rows[0]["data"]["current_bid_cents"], 250);
    // Bob's bid briefly led before alice's automatic answer; she is not told she was outbid.
    assert!(settled_notifications(&gateway, "alice").await.is_empty());

    let carol = bid("carol", json!({"amount": 3, "max_amount": 20})).await;
    carol.assert_status(200);
    assert_eq!(carol.body["is_highest"], true, "{:?}", carol.body);
    let alice_rows = wait_notifications(&gateway, "alice", 1).await;
    assert_eq!(kinds(&alice_rows), ["outbid"]);
    assert_eq!(alice_rows[0]["data"]["current_bid_cents"], 1050);
    // Nobody's maximum is in anybody's notification.
    for user in ["alice", "bob", "carol"] {
        let text = settled_notifications(&gateway, user).await;
        let text = serde_json::to_string(&text).expect("json");
        assert!(
            !text.contains("2000") && !text.contains("\"20\""),
            "{user}: {text}"
        );
    }
}

/// The outbid decision does not depend on batching: with one event per batch, the bid a
/// standing maximum answers is archived before the automatic answer, in another transaction,
/// and its owner is still not told they were outbid (the bid's event says it was answered).
#[tokio::test]
async fn a_batch_boundary_between_a_bid_and_its_automatic_answer_alerts_only_the_challenger() {
    let mut setup = setup().await;
    setup.worker.batch_size = 1;
    let (gateway, worker, _) = start(&setup).await;
    let item = half_step_item(&gateway).await;
    let bid = |user: &'static str, body: Value| bid_as(&gateway, &item, user, body);
    bid("alice", json!({"amount": 1, "max_amount": 10}))
        .await
        .assert_status(200);
    for (amount, price) in [(2, 250), (4, 450)] {
        let bob = bid("bob", json!({ "amount": amount })).await;
        assert_eq!(bob.assert_status(200)["code"], "outbid_by_proxy");
        assert_eq!(bob.body["current_bid_cents"], price);
    }

    let bob_rows = wait_notifications(&gateway, "bob", 2).await;
    assert_eq!(kinds(&bob_rows), ["outbid", "outbid"]);
    assert_eq!(bob_rows[0]["data"]["current_bid_cents"], 450);
    assert!(
        settled_notifications(&gateway, "alice").await.is_empty(),
        "alice kept the lead throughout"
    );
    // Every one of the five events was a batch of its own.
    assert_eq!(worker.metric("archive_batch_size_count").await, 5.0);
    assert_eq!(worker.metric("archive_batch_size_sum").await, 5.0);
    let db = pg(setup.database()).await;
    let archived: i64 = db
        .query_one("select count(*) from bids", &[])
        .await
        .expect("bids")
        .get(0);
    assert_eq!(archived, 5);
}

/// A rolling upgrade: events from a gateway that predates the `answered` flag. The same bids
/// are archived with the flag taken out of every event (as such a gateway wrote them), in one
/// batch, and the maximum's owner is still not told they were outbid: the round's next bid is
/// their own automatic answer.
#[tokio::test]
async fn bids_from_a_gateway_without_the_answered_flag_alert_only_the_challenger() {
    let setup = setup().await;
    let gateway = spawn_gateway(&setup).await;
    let item = half_step_item(&gateway).await;
    let bid = |user: &'static str, body: Value| bid_as(&gateway, &item, user, body);
    bid("alice", json!({"amount": 1, "max_amount": 10}))
        .await
        .assert_status(200);
    let bob = bid("bob", json!({ "amount": 2 })).await;
    assert_eq!(bob.assert_status(200)["code"], "outbid_by_proxy");
    // Three bids: alice's, bob's and alice's automatic answer.
    wait_stream_holds(&setup, 3).await;

    let client = async_nats::connect(setup.gateway.common.nats_url.expose())
        .await
        .expect("nats");
    let stream = async_nats::jetstream::new(client)
        .get_stream(&setup.gateway.archive.stream)
        .await
        .expect("the archive stream");
    let mut events = Vec::new();
    for sequence in 1..=3 {
        let message = stream.get_raw_message(sequence).await.expect("a message");
        let mut event: Value = serde_json::from_slice(&message.payload).expect("an event");
        if let Some(fields) = event.as_object_mut() {
            fields.remove("answered");
        }
        events.push(serde_json::to_vec(&event).expect("json"));
    }
    assert!(
        events
            .iter()
            .all(|e| !String::from_utf8_lossy(e).contains("answered")),
        "no event carries the flag any more"
    );
    stream.purge().await.expect("purged");
    for event in events {
        publish_to_archive(&setup, &item, event).await;
    }
    let worker = spawn_worker(&setup.worker).await;

    let bob_rows = wait_notifications(&gateway, "bob", 1).await;
    assert_eq!(kinds(&bob_rows), ["outbid"]);
    assert!(
        settled_notifications(&gateway, "alice").await.is_empty(),
        "alice kept the lead"
    );
    assert_eq!(
        worker.metric("archive_batch_size_count").await,
        1.0,
        "one batch"
    );
}

/// Buy it now ends a round like any close: the buyer, who never bid, is told `won` at the
/// buy-it-now price. `lost` goes to the round's bidders, and a round is bought before its
/// first bid, so it has none: the bidders of the item's earlier round, told `won` and `lost`
/// when it closed, are told nothing about this one.
#[tokio::test]
async fn buying_it_now_tells_the_buyer_won_and_no_earlier_rounds_bidder_lost() {
    let setup = setup().await;
    let (gateway, _worker, item) = start(&setup).await;
    accepted_bid(&gateway, &item, "alice", 100).await;
    accepted_bid(&gateway, &item, "bob", 200).await;
    gateway
        .admin(&item, "close", json!({}))
        .await
        .assert_status(200);
    assert_eq!(
        kinds(&wait_notifications(&gateway, "bob", 1).await),
        ["won"]
    );
    assert_eq!(
        kinds(&wait_notifications(&gateway, "alice", 2).await),
        ["lost", "outbid"]
    );
    let terms = json!({"starting_price": 10, "buy_now_price": 80, "end_time": in_secs(600)});
    gateway
        .admin(&item, "relist", terms)
        .await
        .assert_status(200);
    let buy = format!("/api/v1/items/{item}/buy");
    let bought = gateway.post_as(Some("carol"), &buy, json!({})).await;
    assert_eq!(bought.assert_status(200)["final_price_cents"], 8_000);

    let carol = wait_notifications(&gateway, "carol", 1).await;
    assert_eq!(kinds(&carol), ["won"]);
    assert_eq!(carol[0]["item_id"], item.as_str());
    assert_eq!(carol[0]["data"]["final_price_cents"], 8_000);
    assert_eq!(carol[0]["data"]["final_price"], 80);
    let settled = [
        ("carol", vec!["won"]),
        ("bob", vec!["won"]),
        ("alice", vec!["lost", "outbid"]),
        (testkit::gateway::SELLER, vec![]),
    ];
    for (user, expected) in settled {
        let rows = settled_notifications(&gateway, user).await;
        assert_eq!(kinds(&rows), expected, "{user}: {rows:?}");
    }
}
