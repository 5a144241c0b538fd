//! The worker's configuration: one clap struct, every field a flag with an env fallback.
//! The options every service shares are `shared::service_options`, flattened in; what stays
//! here is the worker's own, including `LISTEN_ADDR` and `DATABASE_TIMEOUT_MS`, whose
//! defaults are the worker's.

use clap::Parser;
use shared::service_options::{ArchiveOptions, CommonOptions, DatabaseOptions, RedisOptions};
use shared::supervisor::TaskFaults;
use std::net::SocketAddr;
use std::time::Duration;

// `Debug` shows every option; URLs print redacted (`SecretUrl`).
/// Archives every auction event from JetStream into PostgreSQL.
#[derive(Debug, Clone, Parser)]
#[command(name = "archival-worker", version, about)]
pub struct Config {
    /// Address of the health and metrics endpoints (port 0 picks a free port).
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8082")]
    pub listen_addr: SocketAddr,

    #[command(flatten)]
    pub common: CommonOptions,

    #[command(flatten)]
    pub database: DatabaseOptions,

    // The stream to consume (created if missing, with the gateway's settings).
    #[command(flatten)]
    pub archive: ArchiveOptions,

    // The gateway's Redis, read only for notifications (the current minimum bid of an
    // `outbid`, the auctions ending soon); the archive never waits for it.
    #[command(flatten)]
    pub redis: RedisOptions,

    /// Deadline of one Redis read (ms).
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 500)]
    pub redis_timeout_ms: u64,

    /// How long before an auction's end its bidders and watchers get `ending_soon` (seconds).
    #[arg(long, env = "ENDING_SOON_WINDOW_SECS", default_value_t = 300)]
    pub ending_soon_window_secs: u64,

    /// How often the `ending_soon` pass looks for auctions entering that window (ms).
    #[arg(long, env = "ENDING_SOON_INTERVAL_MS", default_value_t = 5_000)]
    pub ending_soon_interval_ms: u64,

    /// Durable consumer name; every worker of one deployment shares it.
    #[arg(long, env = "CONSUMER_NAME", default_value = "archival-worker")]
    pub consumer_name: String,

    /// Most events written per transaction.
    #[arg(long, env = "BATCH_SIZE", default_value_t = 1000)]
    pub batch_size: usize,

    /// Longest a fetch waits for a batch to fill (ms); bounds the delay to a row at low rates.
    #[arg(long, env = "BATCH_WAIT_MS", default_value_t = 50)]
    pub batch_wait_ms: u64,

    /// How long JetStream waits for an ack before redelivering (seconds). It is how long a
    /// crashed worker's unacked batch waits before a restarted (or another) worker gets it, so
    /// it is short, yet above `DATABASE_TIMEOUT_MS` so a batch still being written is not
    /// handed out twice (a batch commits in milliseconds; a failing one is nak'd at once).
    /// Durable consumers keep the value they were created with.
    #[arg(long, env = "ACK_WAIT_SECS", default_value_t = 10)]
    pub ack_wait_secs: u64,

    /// PostgreSQL connections in the pool.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 4)]
    pub database_pool_size: usize,

    /// Longest one database step may take before the batch is abandoned (ms).
    #[arg(long, env = "DATABASE_TIMEOUT_MS", default_value_t = 5_000)]
    pub database_timeout_ms: u64,

    /// Test hook, not a flag: lets a test stop the `consumer` task. Inert unless a test uses
    /// it.
    #[arg(skip)]
    pub task_faults: TaskFaults,
}

impl Config {
    pub fn database_timeout(&self) -> Duration {
        Duration::from_millis(self.database_timeout_ms)
    }

    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    pub fn ending_soon(&self) -> crate::ending_soon::EndingSoonSettings {
        crate::ending_soon::EndingSoonSettings {
            window: Duration::from_secs(self.ending_soon_window_secs),
            interval: Duration::from_millis(self.ending_soon_interval_ms.max(1)),
        }
    }

    /// A configuration with every default, for tests and embedding.
    pub fn defaults() -> Self {
        Self::parse_from(["archival-worker"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_password_is_redacted_in_debug_output() {
        let mut config = Config::defaults();
        config.database.url = "postgres://app:hunter2@db:5432/auction".into();
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn defaults_follow_the_contract() {
        let config = Config::defaults();
        assert_eq!(config.listen_addr.port(), 8082);
        assert_eq!(
            config.database.url.expose(),
            "postgres://postgres@127.0.0.1:5432/auction"
        );
    }
}
