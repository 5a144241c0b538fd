//! Start a real gateway and real broadcast instances in-process, and talk to them over HTTP
//! and WebSockets.
//!
//! Every test gets its own Redis key prefix and NATS subject prefix, so tests share the
//! machine's Redis and NATS (or use throwaway ones when they kill a dependency) without
//! seeing each other's items, events or presence.

use broadcast_service::Application;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

pub use testkit::{NatsServer, RedisServer, unique_id, wait_until};

/// How long a test waits for any one frame.
pub const FRAME_WAIT: Duration = Duration::from_secs(10);

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        shared::telemetry::init(shared::telemetry::LogFormat::Pretty, "info");
    }
}

/// The gateway's admin token in these tests.
pub const ADMIN_TOKEN: &str = "broadcast-test-admin";

/// One test's private corner of Redis and NATS.
#[derive(Debug, Clone)]
pub struct Isolation {
    pub redis_url: String,
    pub nats_url: String,
    pub key_prefix: String,
    pub subject_prefix: String,
}

impl Isolation {
    pub fn new(redis_url: &str, nats_url: &str) -> Self {
        let tag = unique_id("b").replace('-', "");
        Self {
            redis_url: redis_url.to_owned(),
            nats_url: nats_url.to_owned(),
            key_prefix: format!("{tag}:"),
            subject_prefix: tag,
        }
    }

    pub fn shared() -> Self {
        Self::new(testkit::SHARED_REDIS_URL, testkit::SHARED_NATS_URL)
    }

    pub fn broadcast_config(&self) -> broadcast_service::config::Config {
        let mut config = broadcast_service::config::Config::defaults();
        config.listen_addr = "127.0.0.1:0".parse().expect("valid address");
        config.redis.url = self.redis_url.as_str().into();
        config.common.nats_url = self.nats_url.as_str().into();
        config.redis.key_prefix = self.key_prefix.clone();
        config.common.subject_prefix = self.subject_prefix.clone();
        config.instance_id = unique_id("bc");
        // A starved test machine must not turn a slow snapshot into an error frame.
        config.redis_timeout_ms = 2_000;
        config.max_connections_per_ip = 2_000;
        config
    }

    pub fn gateway_config(&self) -> api_gateway::config::Config {
        let mut config = api_gateway::config::Config::defaults();
        config.listen_addr = "127.0.0.1:0".parse().expect("valid address");
        config.redis.url = self.redis_url.as_str().into();
        config.common.nats_url = self.nats_url.as_str().into();
        config.redis.key_prefix = self.key_prefix.clone();
        config.common.subject_prefix = self.subject_prefix.clone();
        config.redis_timeout_ms = 2_000;
        config.bid_rate_per_user = 0;
        // The archive is not under test here; no JetStream stream per test.
        config.relay_enabled = false;
        config.admin_token = ADMIN_TOKEN.to_owned();
        config
    }

    /// Deletes every Redis key this test wrote (best effort).
    pub async fn cleanup(&self) {
        let Ok(client) = redis::Client::open(self.redis_url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.key_prefix))
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<u64, _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
        }
    }
}

/// A running broadcast instance.
pub struct Broadcast {
    pub port: u16,
    http: reqwest::Client,
    shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_broadcast(config: broadcast_service::config::Config) -> Broadcast {
    init_logs();
    let app = Application::build(config)
        .await
        .expect("broadcast service builds");
    let port = app.port();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(app.run(shutdown.clone()));
    let broadcast = Broadcast {
        port,
        http: reqwest::Client::new(),
        shutdown,
        handle: Some(handle),
    };
    // Until NATS is connected, live events would be missed (and covered by a snapshot
    // later); tests that count events start from a connected instance.
    wait_until(FRAME_WAIT, "broadcast ready", || async {
        (broadcast.get("/ready").await.0 == 200).then_some(())
    })
    .await
    .unwrap();
    broadcast
}

impl Drop for Broadcast {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Broadcast {
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Opens a WebSocket on `path` (e.g. `/ws?item_id=x`).
    pub async fn connect(&self, path: &str) -> Client {
        Client::connect(&self.ws_url(path), None).await
    }

    /// Opens a WebSocket whose socket receive buffer is tiny, so a client that stops reading
    /// pushes back on the server after a few frames instead of after megabytes.
    pub async fn connect_with_small_buffer(&self, path: &str) -> Client {
        Client::connect(&self.ws_url(path), Some(4096)).await
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(self.http_url(path))
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    pub async fn metrics_text(&self) -> String {
        self.get("/metrics").await.1
    }

    /// The value of one series (`name` with its labels, as exposed), `0` when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics_text().await, series)
    }

    /// Waits until `series` equals `value`.
    pub async fn wait_for_metric(&self, series: &str, value: f64) {
        wait_until(FRAME_WAIT, &format!("{series} == {value}"), || async {
            (self.metric(series).await == value).then_some(())
        })
        .await
        .unwrap();
    }

    /// Stops the service gracefully and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle
                .await
                .expect("broadcast task")
                .expect("broadcast ran cleanly");
        }
    }
}

pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix(series)?;
            rest.strip_prefix(' ')?.trim().parse().ok()
        })
        .unwrap_or(0.0)
}

/// A running gateway, used to produce real events.
pub struct Gateway {
    base: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
}

pub async fn spawn_gateway(config: api_gateway::config::Config) -> Gateway {
    init_logs();
    let app = api_gateway::Application::build(config)
        .await
        .expect("gateway builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run(shutdown.clone()));
    let gateway = Gateway {
        base,
        http: reqwest::Client::new(),
        shutdown,
    };
    // A gateway not yet on NATS drops live events; tests count them.
    wait_until(FRAME_WAIT, "gateway on NATS", || async {
        gateway.nats_ready().await.then_some(())
    })
    .await
    .unwrap();
    gateway
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Gateway {
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
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

    /// Creates an active auction starting at 1.00 with a 0.01 increment.
    pub async fn create_item(&self) -> String {
        let id = unique_id("item");
        let end =
            shared::Timestamp::from_micros(shared::Timestamp::now().micros() + 3_600 * 1_000_000);
        let (status, body) = self
            .post(
                "/api/v1/items",
                json!({
                    "id": id,
                    "name": "Test camera",
                    "starting_price": 1,
                    "min_increment": 0.01,
                    "end_time": end.to_rfc3339(),
                }),
            )
            .await;
        assert_eq!(status, 201, "create item: {body}");
        id
    }

    /// Places an accepted bid of `units` whole currency units; returns its `seq`.
    pub async fn bid(&self, item: &str, units: u64) -> u64 {
        let (status, body) = self
            .post(
                &format!("/api/v1/items/{item}/bid"),
                json!({ "user_id": "alice", "amount": units }),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (200, Some("accepted")),
            "bid {units} on {item}: {body}"
        );
        body["seq"].as_u64().expect("seq in bid answer")
    }

    /// An admin action (`close`, `cancel`, `extend`, `relist`); returns status and body.
    pub async fn admin(&self, item: &str, action: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/api/v1/items/{item}/{action}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn nats_ready(&self) -> bool {
        match self.http.get(format!("{}/ready", self.base)).send().await {
            Ok(response) => response
                .json::<Value>()
                .await
                .is_ok_and(|body| body["nats"] == "up"),
            Err(_) => false,
        }
    }
}

/// What a client read.
#[derive(Debug)]
pub enum Received {
    Json(Value),
    Closed(Option<(u16, String)>),
}

/// A WebSocket client.
pub struct Client {
    ws: WebSocketStream<TcpStream>,
}

impl Client {
    async fn connect(url: &str, receive_buffer: Option<u32>) -> Self {
        let address = url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .expect("ws:// url");
        let address: std::net::SocketAddr = address.parse().expect("socket address");
        let socket = TcpSocket::new_v4().expect("socket");
        if let Some(bytes) = receive_buffer {
            socket.set_recv_buffer_size(bytes).expect("receive buffer");
        }
        let stream = socket.connect(address).await.expect("tcp connect");
        let (ws, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .expect("websocket handshake");
        Self { ws }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text))
            .await
            .expect("text frame sent");
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.expect("frame sent");
    }

    /// The next JSON frame or the close, within `wait` (pings and pongs are skipped).
    pub async fn receive(&mut self, wait: Duration) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            return Some(match message {
                None => Received::Closed(None),
                Some(Err(_)) => Received::Closed(None),
                Some(Ok(Message::Text(text))) => {
                    Received::Json(serde_json::from_str(&text).expect("server frames are JSON"))
                }
                Some(Ok(Message::Close(frame))) => Received::Closed(
                    frame.map(|f| (u16::from(f.code), f.reason.as_str().to_owned())),
                ),
                Some(Ok(_)) => continue,
            });
        }
    }

    /// The next JSON frame; panics on a close or after [`FRAME_WAIT`].
    pub async fn next_json(&mut self) -> Value {
        match self.receive(FRAME_WAIT).await {
            Some(Received::Json(value)) => value,
            other => panic!("expected a JSON frame, got {other:?}"),
        }
    }

    /// The next frame of type `kind`, skipping others (e.g. `viewers`).
    pub async fn next_of_type(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.next_json().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Waits for the server's close frame; returns its code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            match self.receive(FRAME_WAIT).await {
                Some(Received::Json(_)) => continue,
                Some(Received::Closed(Some(frame))) => return frame,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        // Read until the server's answer so the server sees a clean close.
        while let Ok(Some(Ok(_))) = tokio::time::timeout(FRAME_WAIT, self.ws.next()).await {}
    }
}
