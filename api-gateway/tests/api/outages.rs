//! Dependency outages: Redis down gives fast 503s and recovers by itself; NATS down never
//! stops bidding and loses nothing.

use crate::helpers::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn redis_down_gives_fast_503_and_bidding_recovers_when_it_returns() {
    let mut redis = RedisServer::start().unwrap();
    let mut config = test_config(&redis.url(), testkit::SHARED_NATS_URL);
    config.redis_timeout_ms = api_gateway::config::Config::defaults().redis_timeout_ms;
    let app = spawn_app_with(config).await;
    let item = app.create_item(json!({})).await;
    app.accepted_bid(&item, "alice", json!(11)).await;

    redis.stop();
    let mut elapsed = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        let refused = app.bid(&item, "alice", json!(20)).await;
        elapsed.push(started.elapsed());
        refused.assert_error(503, "unavailable");
    }
    elapsed.sort();
    // The contract asks for 503 within 100 ms; allow for a loaded test machine on the max.
    assert!(
        elapsed[3] < Duration::from_millis(100),
        "median {:?}",
        elapsed[3]
    );
    assert!(elapsed[6] < Duration::from_secs(1), "max {:?}", elapsed[6]);
    let ready = app.get("/ready").await;
    assert_eq!(ready.assert_status(503)["redis"], "down");

    redis.restart().unwrap();
    // A fresh Redis (no persistence here): the same gateway serves again without a restart.
    wait_until(
        Duration::from_secs(10),
        "gateway to reach Redis again",
        || async {
            let gone = app.get(&format!("/api/v1/items/{item}")).await;
            (gone.status == 404).then_some(())
        },
    )
    .await
    .unwrap();
    // The first write after the restart reloads the scripts into the empty Redis; on a starved
    // machine that may miss the production deadline once, so the creation is retried too.
    let item = wait_until(Duration::from_secs(10), "items created again", || async {
        let body = json!({"name": "Test camera", "starting_price": 10, "end_time": in_secs(3600)});
        let created = app.post_as(Some(SELLER), "/api/v1/items", body).await;
        (created.status == 201).then(|| created.body["id"].as_str().map(str::to_owned))?
    })
    .await
    .unwrap();
    app.accepted_bid(&item, "alice", json!(11)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_during_bids_still_archives_every_accepted_bid_exactly_once() {
    let mut nats = NatsServer::start().unwrap();
    let config = test_config(testkit::SHARED_REDIS_URL, &nats.url());
    let app = spawn_app_with(config).await;
    let item = app.create_penny_item().await;
    let mut accepted = Vec::new();
    let bid = |n: u64| app.accepted_bid(&item, "alice", decimal(100 + n));
    for n in 0..50 {
        accepted.push(bid(n).await.event_id);
    }
    wait_until(Duration::from_secs(10), "first 50 archived", || async {
        (app.archived_event_ids().await.len() == 50).then_some(())
    })
    .await
    .unwrap();

    nats.stop();
    // Bids still go to the outbox, so the gateway stays ready.
    app.get("/ready").await.assert_status(200);
    let started = Instant::now();
    for n in 50..150 {
        accepted.push(bid(n).await.event_id);
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bids stayed fast while NATS was down"
    );

    nats.restart().unwrap();
    assert_archived_exactly_once(&app.config, &accepted).await;
}

/// Readiness means "can take bids": a load balancer must not pull every gateway when only NATS
/// is down, since accepted bids wait in the Redis outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_stays_ready_with_nats_shown_down_while_only_nats_is_down() {
    let mut nats = NatsServer::start().unwrap();
    let app = spawn_app_with(test_config(testkit::SHARED_REDIS_URL, &nats.url())).await;
    app.wait_dependency_up(Duration::from_secs(10), "nats")
        .await;
    let ready = app.wait_ready(Duration::from_secs(10)).await;
    assert_eq!(
        (ready["redis"].as_str(), ready["nats"].as_str()),
        (Some("up"), Some("up"))
    );

    nats.stop();
    let down = wait_until(
        Duration::from_secs(10),
        "/ready to show NATS down",
        || async {
            let ready = app.get("/ready").await;
            assert_eq!(ready.status, 200, "still ready: {}", ready.text);
            (ready.body["nats"] == "down").then_some(ready.body)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (down["status"].as_str(), down["redis"].as_str()),
        (Some("ready"), Some("up"))
    );
    let item = app.create_item(json!({})).await;
    app.accepted_bid(&item, "alice", json!(11)).await;

    nats.restart().unwrap();
    wait_until(
        Duration::from_secs(20),
        "/ready to show NATS up",
        || async { (app.get("/ready").await.body["nats"] == "up").then_some(()) },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn postgres_down_makes_history_a_fast_503_and_never_touches_bidding() {
    let mut config = shared_config();
    // Nothing listens there: the read model is "down".
    config.database.url = format!(
        "postgres://postgres@127.0.0.1:{}/auction",
        testkit::server::free_port().unwrap()
    )
    .into();
    config.database_timeout_ms = api_gateway::config::Config::defaults().database_timeout_ms;
    let app = spawn_app_with(config).await;
    let item = app.create_item(json!({})).await;
    for path in [
        format!("/api/v1/items/{item}/bids"),
        "/api/v1/users/alice/bids".to_owned(),
        "/api/v1/users/alice/stats".to_owned(),
    ] {
        let started = Instant::now();
        let reply = app.get_as(Some("alice"), &path).await;
        assert_eq!(
            (reply.status, reply.body["error"].as_str()),
            (503, Some("unavailable")),
            "{path}: {}",
            reply.text
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{path} took {:?}",
            started.elapsed()
        );
    }
    app.accepted_bid(&item, "alice", json!(11)).await;
}

/// Keeps a Redis busy for `millis` with a script that spins on `TIME` (a stalled Redis: every
/// other command waits behind it, then runs).
async fn stall(redis_url: String, millis: u64) {
    let client = redis::Client::open(redis_url).unwrap();
    // No response timeout on this connection: the stall is the point.
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    let spin = "local s = redis.call('TIME') \
                repeat local t = redis.call('TIME') \
                until (t[1] - s[1]) * 1000000 + (t[2] - s[2]) >= tonumber(ARGV[1]) * 1000 \
                return 1";
    let _: i64 = redis::cmd("EVAL")
        .arg(spin)
        .arg(0)
        .arg(millis)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_bid_redis_answers_too_late_is_outcome_unknown_and_a_keyed_retry_learns_it() {
    let redis = RedisServer::start().unwrap();
    let mut config = test_config(&redis.url(), testkit::SHARED_NATS_URL);
    config.redis_timeout_ms = 100;
    let app = spawn_app_with(config).await;
    let item = app.create_item(json!({})).await;
    // A first bid loads the bid script, so the stalled one is a single EVALSHA.
    app.accepted_bid(&item, "bob", json!(11)).await;
    let send = || app.bid_with_key(&item, "alice", json!(20), "stalled-1");

    // Generous on both sides for a loaded CI machine: the stall has begun well before the bid
    // and lasts well past its 100 ms deadline.
    let stalled = tokio::spawn(stall(redis.url(), 1_500));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let first = send().await;
    let waited = started.elapsed();
    first.assert_error(503, "outcome_unknown");
    assert_eq!(first.headers["retry-after"], "1");
    assert!(
        waited < Duration::from_millis(1_000),
        "answered after {waited:?}"
    );
    stalled.await.unwrap();

    // The script ran once Redis was free: the bid is in, and the keyed retry says so.
    let second = send().await;
    let second = second.assert_status(200);
    assert_eq!(
        (
            second["code"].as_str(),
            second["seq"].as_u64(),
            second["replayed"].as_bool()
        ),
        (Some("accepted"), Some(2), Some(true)),
        "{second}"
    );
    assert_eq!(app.item(&item).await["bid_count"], 2);
}
