//! The worker's HTTP surface and its one core task: a consumer that stops is named by `/ready`
//! (503) while it is down and restarted, and what arrived meanwhile is archived; any path
//! other than the probes is a JSON 404, and a probe asked with another method a JSON 405.

use crate::helpers::*;
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

async fn wait_ready(worker: &Running) {
    wait_until(WAIT, "worker ready", || async {
        (get(&worker.base, "/ready").await.0 == 200).then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_consumer_is_named_by_ready_then_restarted_and_archives_what_waited() {
    let setup = setup().await;
    let gateway = spawn_gateway(&setup).await;
    let worker = spawn_worker(&setup.worker).await;
    wait_ready(&worker).await;
    let item = create_item(&gateway).await;
    let mut accepted = vec![accepted_bid(&gateway, &item, "alice", 100).await];
    assert_archived_exactly_once(setup.worker.database.url.expose(), &accepted).await;

    setup.worker.task_faults.stop("consumer");
    let body = wait_until(WAIT, "ready to name the stopped consumer", || async {
        let (status, body) = get(&worker.base, "/ready").await;
        (status == 503 && body["tasks_down"] == json!(["consumer"])).then_some(body)
    })
    .await
    .unwrap();
    assert_eq!(
        (
            body["status"].as_str(),
            body["postgres"].as_str(),
            body["nats"].as_str()
        ),
        (Some("not_ready"), Some("up"), Some("up")),
        "only the consumer is down: {body}"
    );
    for n in 1..20u64 {
        accepted.push(accepted_bid(&gateway, &item, "bob", 100 + n).await);
    }

    setup.worker.task_faults.resume("consumer");
    wait_ready(&worker).await;
    assert_archived_exactly_once(setup.worker.database.url.expose(), &accepted).await;
    worker.stop().await;
    delete_stream(&setup).await;
}

#[tokio::test]
async fn an_unknown_path_is_a_json_404() {
    let setup = setup().await;
    let worker = spawn_worker(&setup.worker).await;
    for path in ["/nope", "/api/v1/items", "/ready/extra"] {
        let (status, body) = get(&worker.base, path).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("not_found")),
            "{path}: {body}"
        );
        assert!(body["message"].is_string(), "{path}: {body}");
    }
    let (status, body) = get(&worker.base, "/health").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    worker.stop().await;
}

#[tokio::test]
async fn a_wrong_method_on_a_probe_is_a_json_405() {
    let setup = setup().await;
    let worker = spawn_worker(&setup.worker).await;
    for path in ["/health", "/ready", "/metrics"] {
        let (status, body) = post(&worker.base, path, json!({})).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (405, Some("method_not_allowed")),
            "{path}: {body}"
        );
        assert!(body["message"].is_string(), "{path}: {body}");
    }
    worker.stop().await;
}
