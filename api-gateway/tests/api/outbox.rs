//! The outbox relay across instances: a crashed gateway's pending entries are reclaimed.

use crate::helpers::*;
use api_gateway::Application;
use serde_json::json;
use std::time::Duration;
use testkit::reply::Reply;
use testkit::service::metric_value;
use tokio_util::sync::CancellationToken;

/// A gateway on its own runtime, so the test can kill it abruptly: shutting the runtime down
/// drops every task (HTTP, relay) mid-flight, as a crash would.
struct CrashableGateway {
    runtime: Option<tokio::runtime::Runtime>,
    base: String,
}

impl CrashableGateway {
    fn start(config: api_gateway::config::Config) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            let app = Application::build(config).await.unwrap();
            tx.send(app.port()).unwrap();
            app.run(CancellationToken::new()).await
        });
        let port = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Self {
            runtime: Some(runtime),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    fn crash(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for CrashableGateway {
    fn drop(&mut self) {
        self.crash();
    }
}

async fn pending_count(app: &TestApp, stream: &str) -> u64 {
    let reply: redis::Value = redis::cmd("XPENDING")
        .arg(stream)
        .arg("archive-relay")
        .query_async(&mut app.redis().await)
        .await
        .unwrap_or(redis::Value::Nil);
    match reply {
        redis::Value::Array(values) => match values.first() {
            Some(redis::Value::Int(n)) => *n as u64,
            _ => 0,
        },
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_left_pending_by_a_crashed_gateway_are_reclaimed_and_archived_once() {
    let mut nats = NatsServer::start().unwrap();
    let mut config = test_config(testkit::SHARED_REDIS_URL, &nats.url());
    config.relay_reclaim_idle_ms = 1_000;
    config.relay_reclaim_interval_ms = 300;

    // Gateway A takes the bids and starts relaying them...
    let mut crashing = config.clone();
    crashing.instance_id = "gateway-a".into();
    let mut a = CrashableGateway::start(crashing);
    // ...and a relay-less gateway B (same Redis, NATS and prefixes) is the observer/creator.
    let mut observer_config = config.clone();
    observer_config.relay_enabled = false;
    observer_config.instance_id = "observer".into();
    let observer = spawn_app_with(observer_config).await;
    let item = observer.create_penny_item().await;
    let stream = observer.item_keys(&item).outbox;

    let mut accepted = Vec::new();
    let bid_via_a = |n: u64| {
        let request = observer
            .http()
            .post(format!("{}/api/v1/items/{item}/bid", a.base))
            .bearer_auth(observer.token("alice"))
            .json(&json!({"amount": decimal(100 + n)}));
        async move {
            let reply = Reply::read(request.send().await.unwrap()).await;
            let body = reply.assert_outcome("accepted");
            body["event_id"].as_str().unwrap().to_owned()
        }
    };
    for n in 0..20 {
        accepted.push(bid_via_a(n).await);
    }
    wait_until(
        Duration::from_secs(10),
        "A relayed the first bids",
        || async { (observer.archived_event_ids().await.len() == 20).then_some(()) },
    )
    .await
    .unwrap();

    // NATS goes away: A reads new entries into its pending list but cannot get them acked.
    nats.stop();
    for n in 20..60 {
        accepted.push(bid_via_a(n).await);
    }
    wait_until(
        Duration::from_secs(10),
        "A holding entries pending",
        || async { (pending_count(&observer, &stream).await > 0).then_some(()) },
    )
    .await
    .unwrap();
    a.crash();
    nats.restart().unwrap();

    // Gateway C, a healthy instance, takes over what A left behind.
    let mut healthy = config.clone();
    healthy.instance_id = "gateway-c".into();
    let c = spawn_app_with(healthy).await;
    assert_archived_exactly_once(&c.config, &accepted).await;
    assert_eq!(pending_count(&c, &stream).await, 0, "nothing left pending");
    let metrics = c.metrics_text().await;
    let reclaimed = metric_value(&metrics, "gateway_relay_reclaimed_total").unwrap_or(0.0);
    assert!(reclaimed > 0.0, "C reclaimed A's entries: {metrics}");
}

#[tokio::test]
async fn an_undecodable_outbox_entry_is_dead_lettered_with_its_decode_error_and_the_shard_moves_on()
{
    let app = spawn_app().await;
    let item = app.create_item(json!({})).await;
    let stream = app.item_keys(&item).outbox;
    // A bid as a broken script might append it: everything but its seq.
    let broken: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg(&[
            ("type", "bid_placed"),
            ("event_id", &shared::EventId::new().to_string()),
            ("item_id", &item),
            ("ts_us", "1700000000000000"),
            ("user_id", "alice"),
            ("amount_cents", "2000"),
            ("previous_cents", "0"),
            ("end_us", "1700000600000000"),
            ("extended", "0"),
            ("round", "1"),
        ])
        .query_async(&mut app.redis().await)
        .await
        .unwrap();

    let accepted = app.accepted_bid(&item, "alice", json!(20)).await;

    let dead = wait_until(
        Duration::from_secs(10),
        "the broken entry dead-lettered",
        || async {
            let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(format!("{stream}:dead"))
                .arg("-")
                .arg("+")
                .query_async(&mut app.redis().await)
                .await
                .ok()?;
            (!reply.ids.is_empty()).then_some(reply.ids)
        },
    )
    .await
    .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].get::<String>("entry_id"), Some(broken));
    assert_eq!(
        dead[0].get::<String>("reason").as_deref(),
        Some("lacks field seq")
    );
    // The accepted bid behind it still reaches the archive, and nothing stays in the outbox.
    assert_archived_exactly_once(&app.config, &[accepted.event_id]).await;
    app.wait_outbox_drained(&item).await;
}
