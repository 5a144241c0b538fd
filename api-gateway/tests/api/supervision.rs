//! No background task stops unnoticed: one that ends is named by `/ready` (503) while it is
//! down and is restarted, or, for the live publisher, stops the gateway with an error naming
//! it. Tasks are stopped through the `Config::task_faults` test hook.

use crate::helpers::*;
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// Stops `task` and waits for `/ready` to answer 503 naming it (and only it), Redis and NATS
/// up.
async fn stop_and_see_it_named(app: &TestApp, task: &str) {
    app.config.task_faults.stop(task);
    app.wait_task_down(WAIT, task, &["redis", "nats"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_relay_shard_is_named_by_ready_then_restarted_and_relays_what_waited() {
    let app = spawn_app().await;
    app.wait_ready(WAIT).await;
    let item = app.create_item(json!({})).await;
    let task = format!("outbox_relay.s{}", app.item_keys(&item).shard);

    stop_and_see_it_named(&app, &task).await;
    let event_id = app.accepted_bid(&item, "alice", json!(11)).await.event_id;
    assert_eq!(
        app.outbox_entries_for(&item).await,
        1,
        "with its shard's relay down, the bid waits in the outbox"
    );

    app.config.task_faults.resume(&task);
    let ready = app.wait_ready(WAIT).await;
    assert_eq!(ready.get("tasks_down"), None, "{ready}");
    wait_until(WAIT, "the waiting bid archived", || async {
        app.archived_event_ids()
            .await
            .contains(&event_id)
            .then_some(())
    })
    .await
    .unwrap();
    app.wait_outbox_drained(&item).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_restartable_task_that_stops_is_named_by_ready_and_comes_back() {
    let app = spawn_app().await;
    app.wait_ready(WAIT).await;
    for task in [
        "price_cache",
        "rate_limit_sync",
        "closer",
        "outbox_relay.s0",
        "redis_eviction_policy",
    ] {
        stop_and_see_it_named(&app, task).await;
        app.config.task_faults.resume(task);
        let ready = app.wait_ready(WAIT).await;
        assert_eq!(ready["status"], "ready", "{task}: {ready}");
    }

    // The restarted closer does its work: an auction ending in a second is closed.
    let item = app.create_item(json!({"end_time": in_secs(1)})).await;
    let closed = wait_until(WAIT, "the auction closed", || async {
        let state = app.item(&item).await;
        (state["status"] == "closed").then_some(state)
    })
    .await
    .unwrap();
    assert_eq!(closed["status"], "closed");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_live_publisher_stops_the_gateway_with_an_error_naming_it() {
    let app = spawn_app().await;
    app.wait_ready(WAIT).await;
    let health = app.url("/health");
    let config = app.config.clone();

    config.task_faults.stop("live_publisher");
    let error = app
        .exited(WAIT)
        .await
        .expect_err("the gateway must not go on without its live publisher");

    assert!(format!("{error:#}").contains("live_publisher"), "{error:#}");
    assert!(
        reqwest::get(health).await.is_err(),
        "the stopped gateway no longer serves"
    );
}
