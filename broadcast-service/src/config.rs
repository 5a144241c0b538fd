//! The broadcast service's configuration: one clap struct, every field a flag with an env
//! fallback. The options every service shares are `shared::service_options`, flattened in;
//! what stays here is the service's own, including `LISTEN_ADDR`, `INSTANCE_ID` and
//! `REDIS_TIMEOUT_MS`, whose defaults are this service's. Durations are in milliseconds so
//! tests can shorten them without new knobs.

use clap::Parser;
use shared::service_options::{CommonOptions, RedisOptions};
use shared::supervisor::TaskFaults;
use std::net::SocketAddr;
use std::time::Duration;

// `Debug` shows every option; URLs print redacted (`SecretUrl`).
/// WebSocket fan-out of live auction events.
#[derive(Debug, Clone, Parser)]
#[command(name = "broadcast-service", version, about)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8081")]
    pub listen_addr: SocketAddr,

    #[command(flatten)]
    pub common: CommonOptions,

    // Read for snapshots only: the service never writes to Redis.
    #[command(flatten)]
    pub redis: RedisOptions,

    /// This instance's name in presence messages; must be unique among running instances.
    #[arg(long, env = "INSTANCE_ID", default_value_t = default_instance_id())]
    pub instance_id: String,

    /// Longest a snapshot read from Redis may take before it is retried (milliseconds).
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 500)]
    pub redis_timeout_ms: u64,

    /// Items one connection may watch at once.
    #[arg(long, env = "MAX_SUBSCRIPTIONS_PER_CONNECTION", default_value_t = 32)]
    pub max_subscriptions_per_connection: usize,

    /// Open WebSocket connections allowed from one client address (more are closed with 1013).
    #[arg(long, env = "MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,

    /// Open WebSocket connections allowed in this instance (more are closed with 1013).
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 50_000)]
    pub max_connections: usize,

    /// Frames waiting for one connection's socket before it counts as lagging and gets a
    /// fresh snapshot instead of the backlog. Frames are shared, so this bounds pointers,
    /// not copies.
    #[arg(long, env = "VIEWER_QUEUE", default_value_t = 128)]
    pub viewer_queue: usize,

    /// Largest message a client may send (bytes); larger ones close the socket with 1009.
    #[arg(long, env = "MAX_INBOUND_BYTES", default_value_t = 4096)]
    pub max_inbound_bytes: usize,

    /// How often the server pings each socket (milliseconds).
    #[arg(long, env = "PING_INTERVAL_MS", default_value_t = 20_000)]
    pub ping_interval_ms: u64,

    /// A socket that sends nothing (not even a pong) for this long is closed (milliseconds).
    #[arg(long, env = "IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub idle_timeout_ms: u64,

    /// A socket that cannot take a write for this long is dropped (milliseconds).
    #[arg(long, env = "WRITE_TIMEOUT_MS", default_value_t = 10_000)]
    pub write_timeout_ms: u64,

    /// How long an event waits for a missing lower `seq` (events from several gateways may
    /// arrive out of order) before it is released and viewers resync (milliseconds).
    #[arg(long, env = "REORDER_HOLD_MS", default_value_t = 50)]
    pub reorder_hold_ms: u64,

    /// How often each instance publishes its viewer count per watched item (milliseconds).
    #[arg(long, env = "PRESENCE_INTERVAL_MS", default_value_t = 1_000)]
    pub presence_interval_ms: u64,

    /// Another instance's counts are forgotten after this long without a heartbeat (ms).
    #[arg(long, env = "PRESENCE_EXPIRY_MS", default_value_t = 5_000)]
    pub presence_expiry_ms: u64,

    /// Shortest time between two `viewers` frames for one item (milliseconds).
    #[arg(long, env = "VIEWERS_MIN_INTERVAL_MS", default_value_t = 1_000)]
    pub viewers_min_interval_ms: u64,

    /// Kernel send buffer of each socket (bytes; 0 keeps the OS default, which grows up to
    /// megabytes per socket). A cap keeps a slow client's backlog in this process's bounded
    /// queue, where it is conflated, rather than in kernel memory.
    #[arg(long, env = "SOCKET_SEND_BUFFER_BYTES", default_value_t = 131_072)]
    pub socket_send_buffer_bytes: u32,

    /// Take the client address from the last `X-Forwarded-For` entry (behind a load
    /// balancer that appends it); otherwise the TCP peer address is used.
    #[arg(long, env = "TRUST_FORWARDED_FOR", default_value_t = false, action = clap::ArgAction::Set)]
    pub trust_forwarded_for: bool,

    /// Test hook, not a flag: lets a test stop the `reconnect_resync` task. Inert unless a test
    /// uses it.
    #[arg(skip)]
    pub task_faults: TaskFaults,
}

fn default_instance_id() -> String {
    format!("bc-{}", uuid::Uuid::now_v7().simple())
}

impl Config {
    /// A configuration with every default, for tests and embedding.
    pub fn defaults() -> Self {
        Self::parse_from(["broadcast-service"])
    }

    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms.max(1))
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.max(1))
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms.max(1))
    }

    pub fn reorder_hold(&self) -> Duration {
        Duration::from_millis(self.reorder_hold_ms)
    }

    pub fn presence_interval(&self) -> Duration {
        Duration::from_millis(self.presence_interval_ms.max(1))
    }

    pub fn presence_expiry(&self) -> Duration {
        Duration::from_millis(self.presence_expiry_ms.max(1))
    }

    pub fn viewers_min_interval(&self) -> Duration {
        Duration::from_millis(self.viewers_min_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_contract() {
        let config = Config::defaults();
        assert_eq!(config.listen_addr.port(), 8081);
        assert_eq!(config.redis.url.expose(), "redis://127.0.0.1:6379");
        assert_eq!(config.common.nats_url.expose(), "nats://127.0.0.1:4222");
        assert_eq!(config.common.subject_prefix, "auction");
        assert_eq!(config.max_subscriptions_per_connection, 32);
    }

    #[test]
    fn a_subject_prefix_with_a_wildcard_stops_startup() {
        // The rule itself is tested in `shared::service_options`.
        assert!(Config::try_parse_from(["broadcast-service", "--subject-prefix=a.*"]).is_err());
    }

    #[test]
    fn credentials_are_redacted_in_debug_output() {
        let mut config = Config::defaults();
        config.redis.url = "redis://user:hunter2@cache:6379".into();
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
