//! Start a gateway and workers in-process, sharing one test's stream and database.

use archival_worker::config::Config as WorkerConfig;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use testkit::{PostgresServer, unique_id, wait_until};

/// The gateway's admin token in these tests.
pub const ADMIN_TOKEN: &str = "worker-test-admin";

/// An admin action through the gateway.
pub async fn admin(gateway: &Running, item: &str, action: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/items/{item}/{action}", gateway.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// One test's world: the gateway's and the worker's configurations, wired together.
#[derive(Clone)]
pub struct Setup {
    pub gateway: api_gateway::config::Config,
    pub worker: WorkerConfig,
}

pub async fn setup() -> Setup {
    let database = testkit::fresh_database(testkit::SHARED_POSTGRES_ADMIN_URL)
        .await
        .expect("fresh database");
    setup_with(testkit::SHARED_NATS_URL, &database)
}

pub fn setup_with(nats_url: &str, database_url: &str) -> Setup {
    let tag = unique_id("w").replace('-', "");
    let mut gateway = api_gateway::config::Config::defaults();
    gateway.listen_addr = "127.0.0.1:0".parse().expect("address");
    gateway.common.nats_url = nats_url.into();
    gateway.redis.key_prefix = format!("{tag}:");
    gateway.common.subject_prefix = tag.clone();
    gateway.archive.stream = tag.to_uppercase();
    gateway.archive.duplicate_window_secs = 600;
    gateway.bid_rate_per_user = 0;
    gateway.redis_timeout_ms = 2_000;
    gateway.database.url = database_url.into();
    gateway.database_timeout_ms = 2_000;
    gateway.admin_token = ADMIN_TOKEN.to_owned();
    let mut worker = WorkerConfig::defaults();
    worker.listen_addr = "127.0.0.1:0".parse().expect("address");
    worker.common.nats_url = nats_url.into();
    worker.database.url = database_url.into();
    worker.common.subject_prefix = tag.clone();
    worker.archive.stream = tag.to_uppercase();
    worker.ack_wait_secs = 2;
    worker.database_timeout_ms = 2_000;
    Setup { gateway, worker }
}

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        shared::telemetry::init(shared::telemetry::LogFormat::Pretty, "info");
    }
}

/// A service running in-process; cancelled when dropped.
pub struct Running {
    pub base: String,
    shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Running {
    /// Graceful stop, waiting for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle.await.expect("task").expect("ran cleanly");
        }
    }
}

pub async fn spawn_gateway(setup: &Setup) -> Running {
    init_logs();
    let app = api_gateway::Application::build(setup.gateway.clone())
        .await
        .expect("gateway");
    let base = format!("http://127.0.0.1:{}", app.port());
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(app.run(shutdown.clone()));
    Running {
        base,
        shutdown,
        handle: Some(handle),
    }
}

pub async fn spawn_worker(config: &WorkerConfig) -> Running {
    init_logs();
    let app = archival_worker::Application::build(config.clone())
        .await
        .expect("worker");
    let base = format!("http://127.0.0.1:{}", app.port());
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(app.run(shutdown.clone()));
    Running {
        base,
        shutdown,
        handle: Some(handle),
    }
}

pub async fn post(base: &str, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub async fn get(base: &str, path: &str) -> (u16, Value) {
    let response = reqwest::get(format!("{base}{path}"))
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub async fn create_item(gateway: &Running) -> String {
    let id = unique_id("item");
    let end = shared::Timestamp::from_micros(shared::Timestamp::now().micros() + 3_600_000_000);
    let (status, body) = post(
        &gateway.base,
        "/api/v1/items",
        json!({"id": id, "name": "Lot", "starting_price": 1, "min_increment": 0.01, "end_time": end}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    id
}

/// Places a bid that must be accepted; returns its event id.
pub async fn accepted_bid(gateway: &Running, item: &str, user: &str, cents: u64) -> String {
    let (status, body) = post(
        &gateway.base,
        &format!("/api/v1/items/{item}/bid"),
        json!({"user_id": user, "amount": format!("{}.{:02}", cents / 100, cents % 100)}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (200, Some("accepted")),
        "{body}"
    );
    body["event_id"].as_str().expect("event id").to_owned()
}

pub async fn pg(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("postgres");
    tokio::spawn(connection);
    client
}

/// Every archived bid's event id (each once if the archive is right).
pub async fn archived_ids(url: &str) -> Vec<String> {
    let Ok((client, connection)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await else {
        return Vec::new();
    };
    tokio::spawn(connection);
    client
        .query("select event_id::text from bids", &[])
        .await
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default()
}

/// Waits until the archive holds as many bids as `accepted`, then asserts it holds exactly them.
pub async fn assert_archived_exactly_once(url: &str, accepted: &[String]) {
    let archived = wait_until(Duration::from_secs(40), "bids archived", || async {
        let ids = archived_ids(url).await;
        (ids.len() >= accepted.len()).then_some(ids)
    })
    .await
    .expect("archive caught up");
    assert_eq!(archived.len(), accepted.len(), "no duplicates");
    let archived: HashSet<&String> = archived.iter().collect();
    let accepted: HashSet<&String> = accepted.iter().collect();
    assert_eq!(archived, accepted, "exactly the accepted bids");
}

pub async fn delete_stream(setup: &Setup) {
    if let Ok(client) = async_nats::connect(setup.gateway.common.nats_url.expose()).await {
        let _ = async_nats::jetstream::new(client)
            .delete_stream(&setup.gateway.archive.stream)
            .await;
    }
}
