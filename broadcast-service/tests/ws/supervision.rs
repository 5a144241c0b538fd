//! The one background task, the reconnect resync, is supervised: stopped (through the
//! `Config::task_faults` test hook) it is named by `/ready` (503) while it is down, and it is
//! started again, after which the service is ready again.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn a_stopped_reconnect_resync_is_named_by_ready_then_restarted() {
    let iso = Isolation::shared();
    let config = broadcast_config(&iso);
    let faults = config.task_faults.clone();
    let broadcast = spawn_broadcast(config).await;

    faults.stop(broadcast_service::RECONNECT_RESYNC);
    let body = wait_until(FRAME_WAIT, "ready to name the stopped task", || async {
        let reply = broadcast.get("/ready").await;
        (reply.status == 503 && reply.body["tasks_down"] == json!(["reconnect_resync"]))
            .then_some(reply.body)
    })
    .await
    .unwrap();
    assert_eq!(
        body,
        json!({"status": "not_ready", "redis": "up", "nats": "up", "tasks_down": ["reconnect_resync"]}),
        "only the task is down"
    );

    faults.resume(broadcast_service::RECONNECT_RESYNC);
    let body = wait_until(FRAME_WAIT, "ready again", || async {
        let reply = broadcast.get("/ready").await;
        (reply.status == 200).then_some(reply.body)
    })
    .await
    .unwrap();
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body.get("tasks_down"), None, "{body}");
    broadcast.stop().await;
}
