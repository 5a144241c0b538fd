//! The worker's HTTP surface and its one core task: a consumer that stops is named by `/ready`
//! (503) while it is down and restarted, and what arrived meanwhile is archived; any path
//! other than the probes is a JSON 404, and a probe asked with another method a JSON 405.

use crate::helpers::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_consumer_is_named_by_ready_then_restarted_and_archives_what_waited() {
    let setup = setup().await;
    let (gateway, worker, item) = start(&setup).await;
    worker.wait_ready(WAIT).await;
    let mut accepted = vec![accepted_bid(&gateway, &item, "alice", 100).await];
    assert_archived_exactly_once(setup.database(), &accepted).await;

    setup.worker.task_faults.stop("consumer");
    worker
        .wait_task_down(WAIT, "consumer", &["postgres", "nats"])
        .await;
    for n in 1..20u64 {
        accepted.push(accepted_bid(&gateway, &item, "bob", 100 + n).await);
    }

    setup.worker.task_faults.resume("consumer");
    worker.wait_ready(WAIT).await;
    assert_archived_exactly_once(setup.database(), &accepted).await;
    worker.stop().await;
}

#[tokio::test]
async fn an_unknown_path_is_a_json_404_and_a_wrong_method_on_a_probe_a_json_405() {
    let setup = setup().await;
    let worker = spawn_worker(&setup.worker).await;
    let unknown = ["/nope", "/api/v1/items", "/ready/extra"].map(|path| (path, false));
    let probes = ["/health", "/ready", "/metrics"].map(|path| (path, true));
    for (path, posted) in unknown.into_iter().chain(probes) {
        let (reply, status, code) = if posted {
            let reply = worker.post(path, serde_json::json!({})).await;
            (reply, 405, "method_not_allowed")
        } else {
            (worker.get(path).await, 404, "not_found")
        };
        let body = reply.assert_error(status, code);
        assert!(body["message"].is_string(), "{path}: {body}");
    }
    let health = worker.get("/health").await;
    assert_eq!(health.assert_status(200)["status"], "ok");
    worker.stop().await;
}
