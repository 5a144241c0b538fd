//! The gateway on a Redis Cluster (3 masters + 3 replicas from `cluster.sh`, `REDIS_URL`
//! listing the nodes): every script touches one slot, listings, closing and the outbox relay
//! walk every master, and `--durable-accept` answers only after a replica has the write.

use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use testkit::cluster::{LocalCluster, master_of};

fn cluster_config(cluster: &LocalCluster) -> api_gateway::config::Config {
    let redis_url = cluster.get("REDIS_URL").expect("REDIS_URL");
    test_config(&redis_url, testkit::SHARED_NATS_URL)
}

/// Redis port of the master serving `item`'s keys.
fn master_port(cluster: &LocalCluster, app: &TestApp, item: &str) -> u16 {
    let slot = cluster.slot_of(&app.item_keys(item).item).expect("slot");
    let nodes = cluster.redis_nodes().expect("nodes");
    master_of(&nodes, slot).expect("a master").port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bids_listing_closing_and_the_outbox_work_across_every_master_of_a_redis_cluster() {
    let cluster = tokio::task::block_in_place(LocalCluster::redis_only).expect("cluster");
    let app = spawn_app_with(cluster_config(&cluster)).await;
    // Four items on each master, chosen by their ids' slots: random ids alone leave a master
    // without any in about one run in forty.
    let mut per_master: HashMap<u16, usize> = HashMap::new();
    let mut items = Vec::new();
    // One end time for all: the listing then orders them by id, paging through ties.
    let end = in_secs(5);
    while items.len() < 12 {
        let id = testkit::unique_id("item");
        let on = per_master
            .entry(master_port(&cluster, &app, &id))
            .or_default();
        if *on < 4 {
            *on += 1;
            items.push(app.create_item(json!({"id": id, "end_time": end})).await);
        }
    }
    let masters: HashSet<u16> = items
        .iter()
        .map(|item| master_port(&cluster, &app, item))
        .collect();
    assert_eq!(masters.len(), 3, "12 items spread over every master");

    // The listing reads every shard's listing set on its master, and pages across them.
    let mut listed = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = app
            .get(&format!("/api/v1/items?limit=5&cursor={cursor}"))
            .await;
        let body = page.assert_status(200);
        listed.extend(
            body["items"]
                .as_array()
                .expect("items")
                .iter()
                .filter_map(|item| item["id"].as_str().map(str::to_owned)),
        );
        match body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    let mut expected = items.clone();
    expected.sort();
    assert_eq!(
        listed, expected,
        "each item once, by end time (all equal) then id"
    );

    let mut accepted = Vec::new();
    for item in &items {
        accepted.push(app.accepted_bid(item, "alice", json!(11)).await.event_id);
        accepted.push(app.accepted_bid(item, "bob", json!(12)).await.event_id);
    }

    // The closer walks every shard's closing set, whichever master holds it.
    for item in &items {
        let state = wait_until(Duration::from_secs(20), "auction closed", || async {
            let state = app.item(item).await;
            (state["closed_at"] != Value::Null).then_some(state)
        })
        .await
        .unwrap();
        assert_eq!(
            (state["winner_id"].as_str(), state["seq"].as_u64()),
            (Some("bob"), Some(3))
        );
    }
    // Each close moved its item to the closed listing set on the item's own master.
    let closed = app.get("/api/v1/items?status=closed&limit=100").await;
    let closed: Vec<&str> = closed.assert_status(200)["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|item| item["id"].as_str())
        .collect();
    assert_eq!(
        closed,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    // The relay reads every shard's outbox: everything reaches JetStream exactly once, and the
    // lag gauge (XLEN of every shard, one command per slot) reads zero.
    assert_archived_exactly_once_or_more(&app, &accepted).await;
    app.wait_metric(Duration::from_secs(15), "gateway_outbox_lag", 0.0)
        .await;
    app.stop().await;
}

/// Every accepted bid is in the archive stream once (the closes add their own events).
async fn assert_archived_exactly_once_or_more(app: &TestApp, accepted: &[String]) {
    let archived = wait_until(Duration::from_secs(30), "bids archived", || async {
        let ids = app.archived_event_ids().await;
        accepted.iter().all(|id| ids.contains(id)).then_some(ids)
    })
    .await
    .unwrap();
    let unique: HashSet<&String> = archived.iter().collect();
    assert_eq!(unique.len(), archived.len(), "no event archived twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_durable_accept_a_bid_is_answered_once_its_replica_has_it() {
    let cluster = tokio::task::block_in_place(LocalCluster::redis_only).expect("cluster");
    let mut config = cluster_config(&cluster);
    config.durable_accept = true;
    let app = spawn_app_with(config).await;
    let item = app.create_item(json!({})).await;
    app.accepted_bid(&item, "alice", json!(11)).await;

    // The master's replica holds the bid the moment it was answered.
    let master = master_port(&cluster, &app, &item);
    let nodes = cluster.redis_nodes().expect("nodes");
    let replica = nodes
        .iter()
        .find(|n| !n.master && replica_of(n.port) == Some(master))
        .expect("the master has a replica");
    let client = redis::Client::open(format!("redis://127.0.0.1:{}", replica.port)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("READONLY").query_async(&mut conn).await.unwrap();
    let price: Option<String> = redis::cmd("HGET")
        .arg(app.item_keys(&item).item)
        .arg("current_cents")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(price.as_deref(), Some("1100"));
    app.stop().await;
}

/// The master port a replica follows (`INFO replication`'s `master_port`).
fn replica_of(port: u16) -> Option<u16> {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "info", "replication"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| line.trim().strip_prefix("master_port:")?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_durable_accept_and_no_replica_a_bid_is_an_unknown_outcome_yet_applied() {
    let redis = RedisServer::start().unwrap();
    let plain = test_config(&redis.url(), testkit::SHARED_NATS_URL);
    let mut durable = plain.clone();
    durable.durable_accept = true;
    durable.durable_accept_timeout_ms = 50;
    // Creating an item is a script too: the plain gateway creates it.
    let creator = spawn_app_with(plain).await;
    let item = creator.create_item(json!({})).await;
    creator.stop().await;
    let app = spawn_app_with(durable).await;

    let reply = app.bid(&item, "alice", json!(11)).await;
    reply.assert_error(503, "outcome_unknown");
    // Not "unavailable": the master applied it; only its survival of a failover is unknown.
    let hash = app.item_hash(&item).await;
    assert_eq!(
        (hash["seq"].as_str(), hash["current_cents"].as_str()),
        ("1", "1100")
    );
    app.stop().await;
}

#[tokio::test]
async fn the_optimistic_strategy_is_refused_on_a_redis_cluster() {
    let mut config = test_config(
        "redis://127.0.0.1:1,redis://127.0.0.1:2",
        testkit::SHARED_NATS_URL,
    );
    config.redis_strategy = api_gateway::config::RedisStrategy::Optimistic;
    let Err(e) = api_gateway::Application::build(config).await else {
        panic!("the optimistic strategy started on a cluster");
    };
    assert!(e.to_string().contains("--redis-strategy optimistic"), "{e}");
}

#[tokio::test]
async fn a_duplicate_window_shorter_than_the_relays_worst_redelivery_is_refused() {
    let mut config = shared_config();
    config.archive.duplicate_window_secs = 10;
    let Err(e) = api_gateway::Application::build(config).await else {
        panic!("a 10 s duplicate window was accepted");
    };
    assert!(
        e.to_string().contains("--archive-duplicate-window-secs"),
        "{e}"
    );
}
