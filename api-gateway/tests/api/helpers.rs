//! `spawn_app` and friends: a gateway in-process (testkit's [`Gateway`], with its typed
//! requests), and what only the gateway's own tests read behind its back: its Redis keys, its
//! outbox and its archive stream.

use api_gateway::config::Config;
use futures::StreamExt;
use serde_json::Value;
use shared::ItemId;
use shared::redis_keys::{ItemKeys, Keyspace};
use std::collections::HashMap;
use std::ops::Deref;
use std::time::Duration;
use testkit::gateway::{gateway_config, spawn_gateway};
use testkit::isolation::Isolation;

pub use testkit::gateway::{ADMIN, Gateway, SELLER, decimal, in_secs};
pub use testkit::{NatsServer, RedisServer, unique_id, wait_until};

/// A configuration isolated from every other test: own key prefix, subjects and stream.
pub fn test_config(redis_url: &str, nats_url: &str) -> Config {
    let mut config = gateway_config(&Isolation::new(redis_url, nats_url));
    // Tests assert strict `seq` order on the live subject; on a loaded CI machine a bid's
    // task can be descheduled longer than the default 20 ms hold.
    config.live_reorder_hold_ms = 2_000;
    config
}

pub fn shared_config() -> Config {
    test_config(testkit::SHARED_REDIS_URL, testkit::SHARED_NATS_URL)
}

/// A running gateway; it derefs to testkit's [`Gateway`] for the requests.
pub struct TestApp(Gateway);

impl Deref for TestApp {
    type Target = Gateway;

    fn deref(&self) -> &Gateway {
        &self.0
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(shared_config()).await
}

pub async fn spawn_app_with(config: Config) -> TestApp {
    TestApp(spawn_gateway(config).await)
}

/// A gateway and an archival worker on one fresh database, the worker on the gateway's
/// subjects and archive stream: for tests that follow a bid into PostgreSQL. Returns the
/// gateway, the worker (stopped when dropped) and the database's URL.
pub async fn spawn_app_and_worker() -> (TestApp, testkit::service::Service, String) {
    let database = testkit::fresh_database(testkit::SHARED_POSTGRES_ADMIN_URL)
        .await
        .expect("fresh database");
    let mut config = shared_config();
    config.database.url = database.clone().into();
    let app = spawn_app_with(config.clone()).await;
    let mut worker_config = archival_worker::config::Config::defaults();
    worker_config.listen_addr = testkit::service::LOOPBACK_ANY_PORT;
    worker_config.common = config.common;
    worker_config.archive = config.archive;
    worker_config.database.url = database.clone().into();
    let worker = testkit::service::Service::start(
        archival_worker::Application::build(worker_config),
        archival_worker::Application::port,
        archival_worker::Application::run,
    )
    .await;
    (app, worker, database)
}

impl TestApp {
    /// A new item that opens `start_in` seconds from now and ends `end_in` seconds from now.
    pub async fn create_scheduled_item(&self, start_in: i64, end_in: i64) -> String {
        let times =
            serde_json::json!({"start_time": in_secs(start_in), "end_time": in_secs(end_in)});
        self.create_item(times).await
    }

    /// Stops the gateway gracefully and waits for it.
    pub async fn stop(self) {
        self.0.stop().await;
    }

    /// Waits (up to `within`) for the gateway to stop by itself, without asking it to, and
    /// returns what its `run` returned.
    pub async fn exited(self, within: Duration) -> anyhow::Result<()> {
        self.0.exited(within).await
    }

    pub fn keys(&self) -> Keyspace {
        Keyspace::new(self.config.redis.key_prefix.clone())
    }

    /// The Redis keys of `item`.
    pub fn item_keys(&self, item: &str) -> ItemKeys {
        self.keys().item(&ItemId::parse(item).expect("valid id"))
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.config.redis.url.expose())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection")
    }

    /// The raw item hash.
    pub async fn item_hash(&self, item: &str) -> HashMap<String, String> {
        redis::cmd("HGETALL")
            .arg(self.item_keys(item).item)
            .query_async(&mut self.redis().await)
            .await
            .expect("hgetall")
    }

    /// Entries in the item's outbox shard that carry this item's events.
    pub async fn outbox_entries_for(&self, item: &str) -> usize {
        self.outbox_event_ids(item).await.len()
    }

    /// Event ids of the item's entries still in its outbox shard.
    async fn outbox_event_ids(&self, item: &str) -> Vec<String> {
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.item_keys(item).outbox)
            .arg("-")
            .arg("+")
            .query_async(&mut self.redis().await)
            .await
            .expect("xrange");
        entries
            .ids
            .iter()
            .filter(|e| e.get::<String>("item_id").as_deref() == Some(item))
            .map(|e| {
                e.get::<String>("event_id")
                    .expect("an outbox entry has an event_id")
            })
            .collect()
    }

    /// How many events were written for `item`: those still in the outbox and those the relay
    /// already moved to the archive, each once. The outbox is read first, so an event the relay
    /// moves between the two reads is seen in both and counted once, never missed.
    pub async fn events_for(&self, item: &str) -> usize {
        let mut ids: std::collections::HashSet<String> =
            self.outbox_event_ids(item).await.into_iter().collect();
        ids.extend(
            archived_events(&self.config)
                .await
                .iter()
                .filter(|event| event["item_id"] == item)
                .filter_map(|event| event["event_id"].as_str().map(str::to_owned)),
        );
        ids.len()
    }

    /// Asserts that a refused bid changed nothing: no accepted bid, no price, no outbox entry.
    pub async fn assert_no_bid_on(&self, item: &str) {
        let hash = self.item_hash(item).await;
        assert_eq!(
            (
                hash["seq"].as_str(),
                hash["bid_count"].as_str(),
                hash["current_cents"].as_str()
            ),
            ("0", "0", "0"),
            "{hash:?}"
        );
        assert_eq!(self.events_for(item).await, 0);
    }

    pub async fn nats(&self) -> async_nats::Client {
        async_nats::connect(self.config.common.nats_url.expose())
            .await
            .expect("nats connection")
    }

    /// A subscription to the item's live subject, in place before the call returns.
    pub async fn subscribe_live(&self, item: &str) -> async_nats::Subscriber {
        let nats = self.nats().await;
        let live = nats
            .subscribe(format!("{}.live.{item}", self.config.common.subject_prefix))
            .await
            .expect("live subscription");
        nats.flush().await.expect("subscription flushed");
        live
    }

    /// Event ids stored in this app's archive stream, in stream order.
    pub async fn archived_event_ids(&self) -> Vec<String> {
        archived_event_ids(&self.config).await
    }

    /// Waits until the archive stream holds `count` events; returns them.
    pub async fn wait_archived(&self, count: usize) -> Vec<Value> {
        wait_until(
            Duration::from_secs(10),
            &format!("{count} events archived"),
            || async {
                let events = archived_events(&self.config).await;
                (events.len() == count).then_some(events)
            },
        )
        .await
        .unwrap()
    }

    /// Waits until the item's outbox holds none of its entries.
    pub async fn wait_outbox_drained(&self, item: &str) {
        wait_until(Duration::from_secs(15), "the outbox drained", || async {
            (self.outbox_entries_for(item).await == 0).then_some(())
        })
        .await
        .unwrap();
    }
}

/// Item fields for an auction ending in `end_in` seconds whose bids in its last `window`
/// seconds move the end to `extension` seconds after the bid.
pub fn anti_sniping(end_in: i64, window: u64, extension: u64) -> Value {
    serde_json::json!({
        "end_time": in_secs(end_in),
        "extension_window_secs": window,
        "extension_secs": extension,
    })
}

/// Event ids stored in `config`'s archive stream (empty when the stream does not exist).
pub async fn archived_event_ids(config: &Config) -> Vec<String> {
    archived_events(config)
        .await
        .iter()
        .map(|event| event["event_id"].as_str().expect("event_id").to_owned())
        .collect()
}

/// Waits until `config`'s archive holds at least as many events as were accepted and has
/// stopped growing (longer than a relay retry), then asserts it holds exactly the accepted
/// event ids, each once. Comparing as soon as the count is reached would miss a late duplicate.
pub async fn assert_archived_exactly_once(config: &Config, accepted: &[String]) {
    let mut archived = testkit::wait_quiescent(
        Duration::from_secs(30),
        Duration::from_secs(2),
        "every accepted bid archived",
        || archived_event_ids(config),
        |ids| ids.len() >= accepted.len(),
    )
    .await
    .unwrap();
    archived.sort();
    let mut expected = accepted.to_vec();
    expected.sort();
    assert_eq!(
        archived, expected,
        "archive holds each accepted event exactly once"
    );
}

/// Every event in `config`'s archive stream, decoded as JSON, in stream order.
pub async fn archived_events(config: &Config) -> Vec<Value> {
    let client = async_nats::connect(config.common.nats_url.expose())
        .await
        .expect("nats");
    let js = async_nats::jetstream::new(client);
    let Ok(mut stream) = js.get_stream(&config.archive.stream).await else {
        return Vec::new();
    };
    let Ok(info) = stream.info().await else {
        return Vec::new();
    };
    let count = info.state.messages;
    if count == 0 {
        return Vec::new();
    }
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
        .expect("ordered consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut events = Vec::new();
    while (events.len() as u64) < count {
        let message = tokio::time::timeout(Duration::from_secs(5), messages.next())
            .await
            .expect("archived message within 5 s")
            .expect("stream open")
            .expect("message");
        events.push(serde_json::from_slice(&message.payload).expect("event json"));
    }
    events
}

/// Whether any number in `value`, at any depth, equals `amount` (as dollars or as cents) or
/// any key names a reserve amount: how a response would reveal a hidden reserve. Checked on
/// the values, not the text, so a random id or a timestamp that happens to contain the same
/// digits does not count.
pub fn reveals_amount(value: &Value, dollars: f64) -> bool {
    let cents = dollars * 100.0;
    match value {
        Value::Number(n) => n
            .as_f64()
            .is_some_and(|n| (n - dollars).abs() < 1e-9 || (n - cents).abs() < 1e-9),
        Value::Array(items) => items.iter().any(|v| reveals_amount(v, dollars)),
        Value::Object(fields) => fields.iter().any(|(key, v)| {
            key == "reserve_price" || key == "reserve_cents" || reveals_amount(v, dollars)
        }),
        Value::String(_) | Value::Bool(_) | Value::Null => false,
    }
}
