//! Redis's `maxmemory-policy`: a policy that may evict keys (idempotency records, items) is
//! warned about and shown (`gateway_redis_evicting`, `/ready`'s `redis_maxmemory_policy` and
//! `redis_evicts`), never a reason for `/ready` to fail; `noeviction` shows as safe. Each case
//! runs its own throwaway Redis configured so.

use crate::helpers::*;
use serde_json::Value;
use std::time::Duration;

const EVICTING: &str = "gateway_redis_evicting";

/// A gateway on a throwaway Redis started with `redis_args`; waits until `/ready` shows the
/// policy it read and returns that body (and the app, and the Redis it must outlive).
async fn gateway_on(redis_args: &[&str]) -> (TestApp, RedisServer, Value) {
    let redis = RedisServer::start_configured(redis_args).expect("redis-server");
    let app = spawn_app_with(test_config(&redis.url(), testkit::SHARED_NATS_URL)).await;
    let ready = wait_until(Duration::from_secs(10), "the policy in /ready", || async {
        let reply = app.get("/ready").await;
        reply
            .body
            .get("redis_maxmemory_policy")
            .is_some()
            .then_some((reply.status, reply.body))
    })
    .await
    .expect("the policy is shown");
    assert_eq!(
        ready.0, 200,
        "shown, never a reason to be unready: {}",
        ready.1
    );
    (app, redis, ready.1)
}

#[tokio::test]
async fn an_evicting_policy_is_shown_in_ready_and_the_metric_but_ready_stays_200() {
    let (app, _redis, ready) = gateway_on(&["--maxmemory-policy", "allkeys-lru"]).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["redis_maxmemory_policy"], "allkeys-lru", "{ready}");
    assert_eq!(ready["redis_evicts"], true, "{ready}");
    assert_eq!(app.metric(EVICTING).await, 1.0);
    assert_eq!(
        app.metric("gateway_redis_maxmemory_policy{policy=\"allkeys-lru\"}")
            .await,
        1.0
    );
    // Bids go on.
    let item = app.create_item(serde_json::json!({})).await;
    app.accepted_bid(&item, "alice", serde_json::json!(11))
        .await;
}

#[tokio::test]
async fn a_volatile_policy_evicts_idempotency_records_and_is_warned_about_too() {
    let (app, _redis, ready) = gateway_on(&["--maxmemory-policy", "volatile-ttl"]).await;
    assert_eq!(ready["redis_maxmemory_policy"], "volatile-ttl", "{ready}");
    assert_eq!(ready["redis_evicts"], true, "{ready}");
    assert_eq!(app.metric(EVICTING).await, 1.0);
}

#[tokio::test]
async fn noeviction_is_shown_as_safe() {
    let (app, _redis, ready) = gateway_on(&["--maxmemory-policy", "noeviction"]).await;
    assert_eq!(ready["redis_maxmemory_policy"], "noeviction", "{ready}");
    assert_eq!(ready["redis_evicts"], false, "{ready}");
    assert_eq!(app.metric(EVICTING).await, 0.0);
    assert_eq!(
        app.metric("gateway_redis_maxmemory_policy{policy=\"noeviction\"}")
            .await,
        1.0
    );
}

/// ElastiCache refuses `CONFIG`: the policy is read from `INFO memory` instead.
#[tokio::test]
async fn without_config_the_policy_is_read_from_info() {
    let (app, _redis, ready) = gateway_on(&[
        "--maxmemory-policy",
        "allkeys-lfu",
        "--rename-command",
        "CONFIG",
        "",
    ])
    .await;
    assert_eq!(ready["redis_maxmemory_policy"], "allkeys-lfu", "{ready}");
    assert_eq!(ready["redis_evicts"], true, "{ready}");
    assert_eq!(app.metric(EVICTING).await, 1.0);
}

/// A server that refuses `CONFIG` and `INFO` alike: the policy is `unknown`, nothing else
/// changes (no `redis_evicts`, the gauge 0, still ready).
#[tokio::test]
async fn a_server_that_hides_its_policy_is_unknown_and_still_ready() {
    let (app, _redis, ready) = gateway_on(&[
        "--maxmemory-policy",
        "allkeys-lru",
        "--rename-command",
        "CONFIG",
        "",
        "--rename-command",
        "INFO",
        "",
    ])
    .await;
    assert_eq!(ready["redis_maxmemory_policy"], "unknown", "{ready}");
    assert!(ready.get("redis_evicts").is_none(), "{ready}");
    assert_eq!(app.metric(EVICTING).await, 0.0);
    assert_eq!(
        app.metric("gateway_redis_maxmemory_policy{policy=\"unknown\"}")
            .await,
        1.0
    );
}
