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
    gateway.database.url = database_url.into();
    gateway.database_timeout_ms = 2_000;
    let mut worker = WorkerConfig::defaults();
    worker.listen_addr = LOOPBACK_ANY_PORT;
    isolation.isolate(
        &mut worker.common,
        Some(&mut worker.redis),
        Some(&mut worker.archive),
    );
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

/// The gateway and item of [`start`] without the worker, for tests that fill the stream
/// before a worker reads it.
pub async fn gateway_and_item(setup: &Setup) -> (Gateway, String) {
    let gateway = spawn_gateway(setup).await;
    let item = gateway.create_penny_item().await;
    (gateway, item)
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

/// One accepted bid of `100 + n` cents per `n` in `ns`, by `u{n % bidders}` in turn; their
/// event ids, in order.
pub async fn accepted_bids(
    gateway: &Gateway,
    item: &str,
    ns: std::ops::Range<u64>,
    bidders: u64,
) -> Vec<String> {
    let mut accepted = Vec::new();
    for n in ns {
        accepted.push(accepted_bid(gateway, item, &format!("u{}", n % bidders), 100 + n).await);
    }
    accepted
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

/// Every archived bid's event id and natural key `(item, round, seq)`: the event id is the
/// table's primary key, so only the natural key can reveal the same bid stored twice.
pub async fn archived_bids(url: &str) -> Vec<(String, (String, i32, i64))> {
    let Ok((client, connection)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await else {
        return Vec::new();
    };
    tokio::spawn(connection);
    let query = "select event_id::text, item_id, round, seq from bids order by event_id";
    client
        .query(query, &[])
        .await
        .map(|rows| {
            let row = |r: &tokio_postgres::Row| (r.get(0), (r.get(1), r.get(2), r.get(3)));
            rows.iter().map(row).collect()
        })
        .unwrap_or_default()
}

/// How long the archive must stay unchanged before an exactly-once check compares: longer
/// than the worker's redelivery (`ack_wait_secs = 2`), so a late duplicate would show.
const QUIET: Duration = Duration::from_millis(2_500);

/// Waits until the archive holds at least as many bids as `accepted` and has stopped changing,
/// then asserts it holds exactly them, each bid (by its natural key) once.
pub async fn assert_archived_exactly_once(url: &str, accepted: &[String]) {
    let archived = testkit::wait_quiescent(
        Duration::from_secs(40),
        QUIET,
        "bids archived",
        || archived_bids(url),
        |bids| bids.len() >= accepted.len(),
    )
    .await
    .expect("archive caught up");
    let keys: HashSet<&(String, i32, i64)> = archived.iter().map(|(_, key)| key).collect();
    assert_eq!(
        keys.len(),
        archived.len(),
        "no bid stored twice: {archived:?}"
    );
    assert_eq!(archived.len(), accepted.len(), "no extra bids");
    let archived: HashSet<&String> = archived.iter().map(|(id, _)| id).collect();
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
