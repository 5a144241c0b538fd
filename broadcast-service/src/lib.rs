//! The auction platform's WebSocket fan-out.
//!
//! Viewers watch items; for each subscription the service sends a snapshot of the item read
//! from Redis, then every later event from core NATS `<prefix>.live.<item>` in `seq` order,
//! each once. Events are encoded once per instance and shared by every viewer; a viewer that
//! falls behind gets a fresh snapshot instead of its backlog.
//!
//! * [`config`]: the clap `Config`.
//! * [`error`]: `ApiError`, the one error type, as HTTP responses and as error frames.
//! * [`routes`]: `/ws` endpoints, `/health`, `/ready`, `/metrics` and the watch page.
//! * [`connection`]: one socket: its reader and its session (snapshots, ordering, writes),
//!   with what it uses of the service in one `ConnectionContext`.
//! * [`hub`]: which items this instance watches and which signed-in users it holds private
//!   events for (interest-based NATS), reconnect resync.
//! * [`room`]: one watched item: its fan-out task, snapshot single flight and presence.
//! * [`identity`]: a socket's access token, checked with `shared::access_token` against the
//!   signer's JWKS, and how long its sign-in holds.
//! * [`user_feed`]: one signed-in user's private events (`<prefix>.user.<user_id>`) to that
//!   user's sockets only.
//! * [`viewer`]: a connection as rooms see it: ordering per item (its tracks), direct writes
//!   to its socket and a bounded queue for what the socket cannot take at once.
//! * `deadline`: `sleep_until` for `select!` branches that wait on a deadline only sometimes.
//! * [`wire`]: server WebSocket frames as bytes.
//! * [`sequencer`]: per-item ordering, duplicates and gaps of live events.
//! * [`presence`]: viewer counts summed over instances.
//! * [`protocol`]: client messages and server frames.
//! * [`limits`]: per-address and total connection limits.
//! * [`store`]: every Redis read.
//! * [`nats`]: the NATS connection and the subscription barrier.
//! * [`metrics`]: the Prometheus registry.
//! * [`missing_items`]: items recently found not to exist, answered without a room.

pub mod config;
pub mod connection;
mod deadline;
pub mod error;
pub mod hub;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod missing_items;
pub mod nats;
pub mod presence;
pub mod protocol;
pub mod room;
pub mod routes;
pub mod sequencer;
pub mod store;
pub mod user_feed;
pub mod viewer;
pub mod wire;

use anyhow::Context;
use config::Config;
use connection::{ConnectionContext, ConnectionSettings};
use hub::Hub;
use identity::SocketIdentity;
use limits::ConnectionLimits;
use metrics::Metrics;
use room::RoomSettings;
use shared::redis_keys::Keyspace;
use shared::subjects::Subjects;
use shared::supervisor::{Backoff, Supervisor};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use store::Store;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long shutdown waits for sockets to take their close frames, and for rooms to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The supervised task that resyncs every viewer after a NATS (re)connection
/// ([`Hub::watch_reconnects`]); `/ready` names it while it is down, and tests stop it through
/// `Config::task_faults`.
pub const RECONNECT_RESYNC: &str = "reconnect_resync";

/// Pauses before a supervised task is started again: quick at first, capped so a task that
/// cannot run is retried every few seconds.
pub const RESTART: Backoff = Backoff {
    first: Duration::from_millis(100),
    max: Duration::from_secs(5),
};

/// A built service: listener bound, clients prepared, nothing running yet.
pub struct Application {
    listener: TcpListener,
    config: Arc<Config>,
    nats: async_nats::Client,
    nats_connected: Arc<Notify>,
    store: Store,
    identity: SocketIdentity,
    metrics: Arc<Metrics>,
}

impl Application {
    /// Binds the listener and prepares the Redis and NATS clients and the token verifier.
    /// No dependency has to be up: snapshots are retried until Redis answers, viewers resync
    /// when NATS connects, and the token signer's key set is fetched on the first sign-in.
    ///
    /// # Errors
    /// When the address cannot be bound, a URL is invalid or no HTTP client can be built for
    /// `JWKS_URL`.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listener = bind(config.listen_addr, config.socket_send_buffer_bytes)
            .with_context(|| format!("binding {}", config.listen_addr))?;
        let store = Store::new(
            &config.redis,
            Keyspace::new(config.redis.key_prefix.clone()),
            config.redis_timeout(),
        )
        .context("invalid REDIS_URL")?;
        let identity = SocketIdentity::new(&config.tokens)?;
        let (nats, nats_connected) =
            nats::connect(&config.common.nats_url, &config.instance_id).await?;
        Ok(Self {
            listener,
            config: Arc::new(config),
            nats,
            nats_connected,
            store,
            identity,
            metrics: Arc::new(Metrics::default()),
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        shared::http_server::port(&self.listener)
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, closes every socket with
    /// 1001, stops the rooms (each unsubscribes and publishes a zero count), flushes NATS and
    /// returns.
    ///
    /// The one background task, [`RECONNECT_RESYNC`], is supervised: if it ends before
    /// shutdown it is logged, `/ready` answers 503 naming it, and it is started again after
    /// [`RESTART`]'s pause.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self {
            listener,
            config,
            nats,
            nats_connected,
            store,
            identity,
            metrics,
        } = self;
        let hub = Arc::new(Hub::new(RoomSettings {
            nats: nats.clone(),
            store: store.clone(),
            subjects: Subjects::new(config.common.subject_prefix.clone()),
            subject_prefix: config.common.subject_prefix.clone(),
            instance_id: config.instance_id.clone(),
            reorder_hold: config.reorder_hold(),
            presence_interval: config.presence_interval(),
            presence_expiry: config.presence_expiry(),
            viewers_min_interval: config.viewers_min_interval(),
            parallel_pass_min: usize::try_from(config.parallel_pass_min_viewers)
                .unwrap_or(usize::MAX),
            metrics: Arc::clone(&metrics),
        }));
        let supervisor = Supervisor::new(config.task_faults.clone());
        // Restart: it holds nothing but the `Notify` it waits on, which lives outside it (a
        // connection signalled while it was down is kept as a permit), so a new one simply
        // waits for the next (re)connection. While it is down a reconnect resyncs nobody, so
        // `/ready` names it.
        supervisor.spawn_restarting(RECONNECT_RESYNC, RESTART, {
            let (hub, stop) = (Arc::clone(&hub), supervisor.shutdown_token());
            move || Arc::clone(&hub).watch_reconnects(Arc::clone(&nats_connected), stop.clone())
        });

        let connections = TaskTracker::new();
        let state = routes::AppState {
            limits: Arc::new(ConnectionLimits::new(
                config.max_connections_per_ip,
                config.max_connections,
            )),
            connection_context: Arc::new(ConnectionContext::new(
                Arc::clone(&hub),
                identity,
                Arc::clone(&metrics),
                ConnectionSettings::from(&*config),
                shutdown.clone(),
            )),
            config: Arc::clone(&config),
            store,
            nats: nats.clone(),
            metrics,
            connections: connections.clone(),
            tasks: supervisor.health(),
        };
        tracing::info!(addr = %listener.local_addr()?, instance = %config.instance_id, "broadcast-service listening");
        shared::http_server::serve_connections(
            listener,
            routes::router(state),
            shutdown.clone(),
            SHUTDOWN_GRACE,
            &config.common.http,
        )
        .await;

        // Upgraded sockets are not HTTP requests: each session saw `shutdown` and is writing
        // its 1001 close frame; wait for them before the rooms go.
        connections.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("sockets did not close within {SHUTDOWN_GRACE:?}");
        }
        if supervisor.stop(SHUTDOWN_GRACE).await.is_err() {
            tracing::warn!("background tasks did not stop within {SHUTDOWN_GRACE:?}");
        }
        hub.stop(SHUTDOWN_GRACE).await;
        if tokio::time::timeout(Duration::from_secs(2), nats.flush())
            .await
            .is_err()
        {
            tracing::warn!("NATS not flushed before shutdown");
        }
        tracing::info!("broadcast-service stopped");
        Ok(())
    }
}

/// Binds the listener. A send buffer size set here is inherited by every accepted socket
/// (Linux copies it at accept), which is the only point where it still takes effect.
fn bind(addr: SocketAddr, send_buffer_bytes: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if send_buffer_bytes > 0 {
        socket.set_send_buffer_size(send_buffer_bytes)?;
    }
    socket.bind(addr)?;
    socket.listen(1024)
}
