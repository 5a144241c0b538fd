//! Start a gateway (testkit's) and workers in-process, sharing one test's stream and
//! database, and read what the worker wrote.

use archival_worker::config::Config as WorkerConfig;
use std::collections::HashSet;
use std::time::Duration;
use testkit::gateway::gateway_config;
use testkit::isolation::Isolation;
use testkit::service::LOOPBACK_ANY_PORT;

pub use testkit::gateway::{Gateway, decimal, in_secs};
pub use testkit::service::Service;
pub use testkit::{PostgresServer, wait_until};

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
    let isolation = Isolation::new(testkit::SHARED_REDIS_URL, nats_url);
    let mut gateway = gateway_config(&isolation);
    gateway.archive.duplicate_window_secs = 600;
    gateway.database.url = database_url.into();
    gateway.database_timeout_ms = 2_000;
    let mut worker = WorkerConfig::defaults();
    worker.listen_addr = LOOPBACK_ANY_PORT;
    isolation.isolate(&mut worker.common, None, Some(&mut worker.archive));
    worker.database.url = database_url.into();
    worker.ack_wait_secs = 2;
    worker.database_timeout_ms = 2_000;
    Setup { gateway, worker }
}

impl Setup {
    /// The read model's URL.
    pub fn database(&self) -> &str {
        self.worker.database.url.expose()
    }
}

pub async fn spawn_gateway(setup: &Setup) -> Gateway {
    testkit::gateway::spawn_gateway(setup.gateway.clone()).await
}

/// A gateway and a worker on `setup` (bids in, archive out) and an item to bid on (starting
/// at 1.00, increment 0.01).
pub async fn start(setup: &Setup) -> (Gateway, Service, String) {
    let gateway = spawn_gateway(setup).await;
    let worker = spawn_worker(&setup.worker).await;
    let item = gateway.create_penny_item().await;
    (gateway, worker, item)
}

pub async fn spawn_worker(config: &WorkerConfig) -> Service {
    Service::start(
        archival_worker::Application::build(config.clone()),
        archival_worker::Application::port,
        archival_worker::Application::run,
    )
    .await
}

/// Places a bid of `cents` that must be accepted; returns its event id.
pub async fn accepted_bid(gateway: &Gateway, item: &str, user: &str, cents: u64) -> String {
    gateway
        .accepted_bid(item, user, decimal(cents))
        .await
        .event_id
}

pub async fn pg(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("postgres");
    tokio::spawn(connection);
    client
}

/// The bids counted in `user_stats`, over every user.
pub async fn bids_placed(db: &tokio_postgres::Client) -> i64 {
    let query = "select sum(bids_placed)::bigint from user_stats";
    db.query_one(query, &[]).await.expect("user_stats").get(0)
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

/// Publishes `payload` straight to the item's archive subject, as the relay would, and waits
/// for the stream's ack.
pub async fn publish_to_archive(setup: &Setup, item: &str, payload: Vec<u8>) {
    let client = async_nats::connect(setup.gateway.common.nats_url.expose())
        .await
        .expect("nats");
    let subject = format!("{}.archive.{item}", setup.gateway.common.subject_prefix);
    async_nats::jetstream::new(client)
        .publish(subject, payload.into())
        .await
        .expect("published")
        .await
        .expect("stored in the stream");
}

/// Waits until `setup`'s archive stream holds `count` messages (the relay publishes
/// asynchronously; a test that must place a message after them waits for this).
pub async fn wait_stream_holds(setup: &Setup, count: u64) {
    let client = async_nats::connect(setup.gateway.common.nats_url.expose())
        .await
        .expect("nats");
    let js = async_nats::jetstream::new(client);
    wait_until(
        Duration::from_secs(20),
        &format!("{count} messages in the stream"),
        || async {
            let mut stream = js.get_stream(&setup.gateway.archive.stream).await.ok()?;
            let held = stream.info().await.ok()?.state.messages;
            (held >= count).then_some(())
        },
    )
    .await
    .expect("the relay published");
}
