//! What a connection needs from the rest of the service: the hub, the token verifier, the
//! metrics, its settings and the shutdown signal. Built once per instance; every upgraded socket gets a reference.
//!
//! The connection code depends on this and on nothing of the HTTP layer, so the routes can
//! hand a socket over without the connection knowing what else the router holds.

use crate::config::Config;
use crate::hub::Hub;
use crate::identity::SocketIdentity;
use crate::metrics::Metrics;
use crate::missing_items::MissingItems;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The limits and timers of every connection, read once from the [`Config`].
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// Room frames that may wait for one socket before its viewer lags (`VIEWER_QUEUE`).
    pub viewer_queue: usize,
    /// Largest message a client may send (`MAX_INBOUND_BYTES`).
    pub max_inbound_bytes: usize,
    /// Items one connection may watch at once (`MAX_SUBSCRIPTIONS_PER_CONNECTION`).
    pub max_subscriptions: usize,
    /// How often the server pings the socket.
    pub ping_interval: Duration,
    /// A client silent for this long is closed with 1001.
    pub idle_timeout: Duration,
    /// A socket that takes no bytes for this long is dropped.
    pub write_timeout: Duration,
    /// Messages a connection may send per second (`MAX_MESSAGES_PER_SEC`; 0: no limit).
    pub max_messages_per_sec: u32,
    /// How long a missing item is answered from memory (`MISSING_ITEM_CACHE_MS`).
    pub missing_item_cache: Duration,
}

impl From<&Config> for ConnectionSettings {
    fn from(config: &Config) -> Self {
        Self {
            viewer_queue: config.viewer_queue,
            max_inbound_bytes: config.max_inbound_bytes,
            max_subscriptions: config.max_subscriptions_per_connection,
            ping_interval: config.ping_interval(),
            idle_timeout: config.idle_timeout(),
            write_timeout: config.write_timeout(),
            max_messages_per_sec: config.max_messages_per_sec,
            missing_item_cache: Duration::from_millis(config.missing_item_cache_ms),
        }
    }
}

/// Everything the connections of one instance share.
pub struct ConnectionContext {
    /// Where sessions join and leave rooms.
    pub(super) hub: Arc<Hub>,
    /// Checks the access tokens sockets sign in with.
    pub(super) identity: SocketIdentity,
    pub(super) metrics: Arc<Metrics>,
    pub(super) settings: ConnectionSettings,
    /// Items recently found not to exist, answered without a room.
    pub(super) missing: MissingItems,
    /// Cancelled on SIGINT/SIGTERM: every socket closes with 1001.
    pub(super) shutdown: CancellationToken,
    /// Source of connection ids (rooms key their viewers by them).
    next_id: AtomicU64,
}

impl ConnectionContext {
    pub fn new(
        hub: Arc<Hub>,
        identity: SocketIdentity,
        metrics: Arc<Metrics>,
        settings: ConnectionSettings,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            hub,
            identity,
            metrics,
            missing: MissingItems::new(settings.missing_item_cache),
            settings,
            shutdown,
            next_id: AtomicU64::new(1),
        }
    }

    /// A connection id no other connection of this instance has.
    pub(super) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}
