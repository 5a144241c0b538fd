//! `spawn_app` and friends: start a gateway in-process and talk to it and to its Redis/NATS.

use api_gateway::{Application, config::Config};
use futures::StreamExt;
use serde_json::{Value, json};
use shared::ItemId;
use shared::redis_keys::Keyspace;
use std::collections::HashMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use testkit::{NatsServer, RedisServer, unique_id, wait_until};

/// A configuration isolated from every other test: own key prefix, subjects and stream.
pub fn test_config(redis_url: &str, nats_url: &str) -> Config {
    let tag = unique_id("t").replace('-', "");
    let mut config = Config::defaults();
    config.listen_addr = "127.0.0.1:0".parse().expect("valid address");
    config.redis.url = redis_url.into();
    config.common.nats_url = nats_url.into();
    config.redis.key_prefix = format!("{tag}:");
    config.common.subject_prefix = tag.clone();
    config.archive.stream = tag.to_uppercase();
    // A starved test machine must not turn slow answers into 503s; the outage tests set the
    // production deadline back explicitly.
    config.redis_timeout_ms = 2_000;
    // Tests bid fast from one user on purpose; the rate-limit test turns it back on.
    config.bid_rate_per_user = 0;
    // Tests assert strict `seq` order on the live subject; on a loaded CI machine a bid's
    // task can be descheduled longer than the default 20 ms hold.
    config.live_reorder_hold_ms = 2_000;
    config
}

pub fn shared_config() -> Config {
    test_config(testkit::SHARED_REDIS_URL, testkit::SHARED_NATS_URL)
}

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        shared::telemetry::init(shared::telemetry::LogFormat::Pretty, "info");
    }
}

/// A running gateway.
pub struct TestApp {
    pub base: String,
    pub config: Config,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(shared_config()).await
}

pub async fn spawn_app_with(config: Config) -> TestApp {
    init_logs();
    let app = Application::build(config.clone())
        .await
        .expect("gateway builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(app.run(shutdown.clone()));
    TestApp {
        base,
        config,
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .expect("http client"),
        shutdown,
        handle: Some(handle),
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An auction end time `secs` from now, RFC 3339.
pub fn in_secs(secs: i64) -> String {
    shared::Timestamp::from_micros(shared::Timestamp::now().micros() + secs * 1_000_000)
        .to_rfc3339()
}

impl TestApp {
    /// Stops the gateway gracefully and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle
                .await
                .expect("gateway task")
                .expect("gateway ran cleanly");
        }
    }

    /// Waits (up to `within`) for the gateway to stop by itself, without asking it to, and
    /// returns what its `run` returned.
    pub async fn exited(mut self, within: Duration) -> anyhow::Result<()> {
        let handle = self.handle.take().expect("gateway still running");
        tokio::time::timeout(within, handle)
            .await
            .expect("gateway stopped by itself in time")
            .expect("gateway task")
    }

    /// Waits for `/ready` to answer 200 and returns its body.
    pub async fn wait_ready(&self) -> Value {
        wait_until(Duration::from_secs(15), "gateway ready", || async {
            let (status, body) = self.get("/ready").await;
            (status == 200).then_some(body)
        })
        .await
        .unwrap()
    }

    pub fn keys(&self) -> Keyspace {
        Keyspace::new(self.config.redis.key_prefix.clone())
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates an active auction (starting 10.00, increment 1.00 unless `extra` says otherwise).
    pub async fn create_item(&self, extra: Value) -> String {
        let id = unique_id("item");
        let mut body = json!({
            "id": id,
            "name": "Test camera",
            "starting_price": 10,
            "end_time": in_secs(3600),
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let (status, json) = self.post("/api/v1/items", body).await;
        assert_eq!(status, 201, "create item: {json}");
        id
    }

    pub async fn bid(&self, item: &str, user: &str, amount: Value) -> (u16, Value) {
        self.post(
            &format!("/api/v1/items/{item}/bid"),
            json!({ "user_id": user, "amount": amount }),
        )
        .await
    }

    pub async fn item(&self, item: &str) -> Value {
        let (status, json) = self.get(&format!("/api/v1/items/{item}")).await;
        assert_eq!(status, 200, "get item: {json}");
        json
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
        let key = self
            .keys()
            .item(&ItemId::parse(item).expect("valid id"))
            .item;
        redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut self.redis().await)
            .await
            .expect("hgetall")
    }

    /// Entries in the item's outbox shard that carry this item's events.
    pub async fn outbox_entries_for(&self, item: &str) -> usize {
        let key = self
            .keys()
            .item(&ItemId::parse(item).expect("valid id"))
            .outbox;
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .query_async(&mut self.redis().await)
            .await
            .expect("xrange");
        entries
            .ids
            .iter()
            .filter(|e| e.get::<String>("item_id").as_deref() == Some(item))
            .count()
    }

    pub async fn nats(&self) -> async_nats::Client {
        async_nats::connect(self.config.common.nats_url.expose())
            .await
            .expect("nats connection")
    }

    /// Event ids stored in this app's archive stream, in stream order.
    pub async fn archived_event_ids(&self) -> Vec<String> {
        archived_event_ids(&self.config).await
    }
}

/// Event ids stored in `config`'s archive stream (empty when the stream does not exist).
pub async fn archived_event_ids(config: &Config) -> Vec<String> {
    archived_events(config)
        .await
        .iter()
        .map(|event| event["event_id"].as_str().expect("event_id").to_owned())
        .collect()
}

/// Deletes a test's stream from the shared NATS (best effort).
pub async fn delete_stream(config: &Config) {
    if let Ok(client) = async_nats::connect(config.common.nats_url.expose()).await {
        let _ = async_nats::jetstream::new(client)
            .delete_stream(&config.archive.stream)
            .await;
    }
}

/// Money text for a JSON body, from cents (`1234` → `"12.34"`).
pub fn decimal(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Waits until `config`'s archive holds as many events as were accepted, then asserts it holds
/// exactly the accepted event ids, each once.
pub async fn assert_archived_exactly_once(config: &Config, accepted: &[String]) {
    let archived = wait_until(
        Duration::from_secs(30),
        "every accepted bid archived",
        || async {
            let ids = archived_event_ids(config).await;
            (ids.len() >= accepted.len()).then_some(ids)
        },
    )
    .await
    .unwrap();
    let mut archived = archived;
    archived.sort();
    let mut expected = accepted.to_vec();
    expected.sort();
    assert_eq!(
        archived, expected,
        "archive holds each accepted event exactly once"
    );
}

impl TestApp {
    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics request")
            .text()
            .await
            .expect("metrics body")
    }
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
