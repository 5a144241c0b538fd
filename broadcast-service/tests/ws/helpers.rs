//! Start real broadcast instances and a real gateway (testkit's) in-process, and talk to them
//! over HTTP and WebSockets.
//!
//! Every test gets its own [`Isolation`] (Redis key prefix and NATS subject prefix), so tests
//! share the machine's Redis and NATS (or use throwaway ones when they kill a dependency)
//! without seeing each other's items, events or presence.

use broadcast_service::Application;
use broadcast_service::config::Config;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::ops::Deref;
use std::time::Duration;
use testkit::service::{LOOPBACK_ANY_PORT, Service};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub use broadcast_service::config::Config as BroadcastConfig;
pub use testkit::gateway::{Gateway, in_secs};
pub use testkit::isolation::Isolation;
pub use testkit::{NatsServer, RedisServer, unique_id, wait_until};

/// How long a test waits for any one frame.
pub const FRAME_WAIT: Duration = Duration::from_secs(10);

/// The gauges and counters the tests watch.
pub const CONNECTIONS: &str = "broadcast_connections";
pub const SUBSCRIPTIONS: &str = "broadcast_subscriptions";
pub const ROOMS: &str = "broadcast_rooms";
pub const CONFLATIONS: &str = "broadcast_conflations_total";

/// A broadcast configuration on `isolation`'s servers and prefixes.
pub fn broadcast_config(isolation: &Isolation) -> Config {
    let mut config = Config::defaults();
    config.listen_addr = LOOPBACK_ANY_PORT;
    isolation.isolate(&mut config.common, Some(&mut config.redis), None);
    config.instance_id = unique_id("bc");
    // A starved test machine must not turn a slow snapshot into an error frame.
    config.redis_timeout_ms = 2_000;
    config
}

/// A gateway configuration on the same prefixes, without its archive relay: the archive is
/// not under test here, so no JetStream stream per test.
pub fn gateway_config(isolation: &Isolation) -> api_gateway::config::Config {
    let mut config = testkit::gateway::gateway_config(isolation);
    config.relay_enabled = false;
    config
}

/// One test's stage, `Stage(gateway, broadcast, item, isolation)`: a gateway producing real
/// events, a broadcast instance watching them and an item to watch (starting at 1.00,
/// increment 0.01), all on one isolation, whose Redis keys are deleted when the stage is
/// dropped (even when the test fails).
pub struct Stage(pub Gateway, pub Broadcast, pub String, pub Isolation);

impl Stage {
    pub async fn new(
        isolation: Isolation,
        gateway: api_gateway::config::Config,
        broadcast: BroadcastConfig,
    ) -> Self {
        let gateway = spawn_gateway(gateway).await;
        let broadcast = spawn_broadcast(broadcast).await;
        let item = gateway.create_penny_item().await;
        Self(gateway, broadcast, item, isolation)
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        self.3.delete_redis_keys_now();
    }
}

/// A [`Stage`] on `isolation`, its broadcast instance configured by `configure`.
pub async fn start_with(isolation: Isolation, configure: impl FnOnce(&mut Config)) -> Stage {
    let gateway = gateway_config(&isolation);
    let mut broadcast = broadcast_config(&isolation);
    configure(&mut broadcast);
    Stage::new(isolation, gateway, broadcast).await
}

/// A [`Stage`] on `isolation` with the default broadcast configuration.
pub async fn start(isolation: Isolation) -> Stage {
    start_with(isolation, |_| {}).await
}

/// A running broadcast instance; it derefs to its [`Service`] for HTTP and metrics.
pub struct Broadcast(Service);

impl Deref for Broadcast {
    type Target = Service;

    fn deref(&self) -> &Service {
        &self.0
    }
}

/// Starts a broadcast instance and waits until it is ready.
pub async fn spawn_broadcast(config: Config) -> Broadcast {
    let service = Service::start(
        Application::build(config),
        Application::port,
        Application::run,
    )
    .await;
    // Until NATS is connected, live events would be missed (and covered by a snapshot
    // later); tests that count events start from a connected instance.
    service.wait_ready(FRAME_WAIT).await;
    Broadcast(service)
}

impl Broadcast {
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port())
    }

    /// Opens a WebSocket on `path` (e.g. `/ws?item_id=x`).
    pub async fn connect(&self, path: &str) -> Client {
        Client::connect(&self.ws_url(path), None).await
    }

    /// Opens a WebSocket on `path` whose upgrade request carries `Authorization: <value>`.
    pub async fn connect_authorized(&self, path: &str, authorization: &str) -> Client {
        Client::connect_with(
            &self.ws_url(path),
            None,
            &[("authorization", authorization)],
        )
        .await
    }

    /// Opens a WebSocket on `path` whose upgrade request carries these headers.
    pub async fn connect_with_headers(&self, path: &str, headers: &[(&str, &str)]) -> Client {
        Client::connect_with(&self.ws_url(path), None, headers).await
    }

    /// Opens a WebSocket whose socket receive buffer is tiny, so a client that stops reading
    /// pushes back on the server after a few frames instead of after megabytes.
    pub async fn connect_with_small_buffer(&self, path: &str) -> Client {
        Client::connect(&self.ws_url(path), Some(4096)).await
    }

    /// Waits until `series` equals `value`.
    pub async fn wait_for_metric(&self, series: &str, value: f64) {
        self.wait_metric(FRAME_WAIT, series, value).await;
    }

    /// Asserts each `(series, value)` as it stands now.
    pub async fn assert_metrics(&self, expected: &[(&str, f64)]) {
        for &(series, value) in expected {
            assert_eq!(self.metric(series).await, value, "{series}");
        }
    }

    /// Stops the service gracefully and waits for it.
    pub async fn stop(self) {
        self.0.stop().await;
    }
}

/// Starts a gateway and waits until it is on NATS: one that is not yet drops live events,
/// and tests count them.
pub async fn spawn_gateway(config: api_gateway::config::Config) -> Gateway {
    let gateway = testkit::gateway::spawn_gateway(config).await;
    gateway.wait_dependency_up(FRAME_WAIT, "nats").await;
    gateway
}

/// Places an accepted bid of `units` whole currency units by alice; returns its `seq`.
pub async fn bid(gateway: &Gateway, item: &str, units: u64) -> u64 {
    gateway.accepted_bid(item, "alice", json!(units)).await.seq
}

/// Places one bid per `seq` in `seqs`, in order, the one that gets seq `n` at `n + 1` units
/// (each above the last), and asserts each got its `seq`.
pub async fn place_bids(gateway: &Gateway, item: &str, seqs: std::ops::RangeInclusive<u64>) {
    for seq in seqs {
        assert_eq!(bid(gateway, item, seq + 1).await, seq);
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
        Self::connect_with(url, receive_buffer, &[]).await
    }

    async fn connect_with(
        url: &str,
        receive_buffer: Option<u32>,
        headers: &[(&str, &str)],
    ) -> Self {
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
        let mut request = url.into_client_request().expect("a websocket request");
        for &(name, value) in headers {
            let name: tokio_tungstenite::tungstenite::http::HeaderName =
                name.parse().expect("a header name");
            request
                .headers_mut()
                .append(name, value.parse().expect("a header value"));
        }
        let (ws, _) = tokio_tungstenite::client_async(request, stream)
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

    /// Sends `message`; false when the socket is already closed (a fuzz case may close it).
    pub async fn try_send(&mut self, message: Message) -> bool {
        self.ws.send(message).await.is_ok()
    }

    pub async fn subscribe(&mut self, item: &str) {
        self.send_json(json!({"type": "subscribe", "item_id": item}))
            .await;
    }

    pub async fn unsubscribe(&mut self, item: &str) {
        self.send_json(json!({"type": "unsubscribe", "item_id": item}))
            .await;
    }

    pub async fn ping(&mut self) {
        self.send_json(json!({"type": "ping"})).await;
    }

    /// Pings and asserts that the very next frame is the pong: the connection is usable and
    /// nothing else was queued for it.
    pub async fn assert_answers_ping(&mut self) {
        self.ping().await;
        assert_eq!(self.next_json().await, json!({"type": "pong"}));
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

    /// The very next frame, which must be an `error` with `code` (tokens.rs's
    /// `expect_error` skips other frames); returns it.
    pub async fn immediate_error(&mut self, code: &str) -> Value {
        let error = self.next_json().await;
        assert_eq!(
            (error["type"].as_str(), error["code"].as_str()),
            (Some("error"), Some(code)),
            "{error}"
        );
        error
    }

    /// The next `snapshot`, skipping other frames.
    pub async fn expect_snapshot(&mut self) -> Value {
        self.next_of_type("snapshot").await
    }

    /// The next `bid_placed` event, skipping other frames.
    pub async fn next_bid(&mut self) -> Value {
        self.next_of_type("bid_placed").await
    }

    /// Reads `bid_placed` events and asserts they carry exactly `seqs`, in order.
    pub async fn expect_bids(&mut self, seqs: std::ops::RangeInclusive<u64>) {
        for seq in seqs {
            assert_eq!(self.next_bid().await["seq"], seq);
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
