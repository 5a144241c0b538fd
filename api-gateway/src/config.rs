//! The gateway's configuration: one clap struct, every field a flag with an env fallback.
//! The options every service shares are `shared::service_options`, flattened in; what stays
//! here is the gateway's own, including the options whose default is the gateway's
//! (`LISTEN_ADDR`, `INSTANCE_ID`, and the two deadlines).

use clap::{Parser, ValueEnum};
use shared::service_options::{ArchiveOptions, CommonOptions, DatabaseOptions, RedisOptions};
use shared::supervisor::TaskFaults;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Stateless HTTP API of the auction platform.
#[derive(Clone, Parser)]
#[command(name = "api-gateway", version, about)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen_addr: SocketAddr,

    #[command(flatten)]
    pub common: CommonOptions,

    #[command(flatten)]
    pub redis: RedisOptions,

    // The read model, for the history endpoints only (archival-worker writes it).
    #[command(flatten)]
    pub database: DatabaseOptions,

    // The stream the outbox relay publishes to.
    #[command(flatten)]
    pub archive: ArchiveOptions,

    /// Longest a history query may take before it fails with 503 (milliseconds).
    #[arg(long, env = "DATABASE_TIMEOUT_MS", default_value_t = 500)]
    pub database_timeout_ms: u64,

    /// Longest a Redis call may take before the request fails with 503 (milliseconds).
    /// Keeps an unreachable Redis a fast error, never a hang.
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 80)]
    pub redis_timeout_ms: u64,

    /// Name of this instance's outbox consumer; must be unique among running instances.
    #[arg(long, env = "INSTANCE_ID", default_value_t = default_instance_id())]
    pub instance_id: String,

    /// Outbox entries published per relay batch.
    #[arg(long, env = "RELAY_BATCH", default_value_t = 512)]
    pub relay_batch: usize,

    /// Outbox entries another instance left unacknowledged this long are reclaimed (ms).
    #[arg(long, env = "RELAY_RECLAIM_IDLE_MS", default_value_t = 30_000)]
    pub relay_reclaim_idle_ms: u64,

    /// How often each relay shard looks for entries to reclaim (ms).
    #[arg(long, env = "RELAY_RECLAIM_INTERVAL_MS", default_value_t = 5_000)]
    pub relay_reclaim_interval_ms: u64,

    /// How long an idempotency record (`Idempotency-Key`) is kept (seconds).
    #[arg(long, env = "IDEMPOTENCY_TTL_SECS", default_value_t = 86_400)]
    pub idempotency_ttl_secs: u64,

    /// Largest accepted request body (bytes).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    pub max_body_bytes: usize,

    /// Answer bids at or below the locally known price without a Redis call. Disable to
    /// measure the Redis-bound write path.
    #[arg(long, env = "PRICE_PREFILTER", default_value_t = true, action = clap::ArgAction::Set)]
    pub price_prefilter: bool,

    /// Bids per second one user may place through this instance (0 disables the limit).
    #[arg(long, env = "BID_RATE_PER_USER", default_value_t = 10)]
    pub bid_rate_per_user: u32,

    /// Bids one user may place at once before the per-second rate applies.
    #[arg(long, env = "BID_BURST_PER_USER", default_value_t = 20)]
    pub bid_burst_per_user: u32,

    /// Bearer token for the admin endpoints (close, cancel, extend, relist); empty disables
    /// them.
    #[arg(long, env = "ADMIN_TOKEN", default_value = "", hide_env_values = true)]
    pub admin_token: String,

    /// How often the closer looks for auctions past their end time (milliseconds).
    #[arg(long, env = "CLOSER_INTERVAL_MS", default_value_t = 100)]
    pub closer_interval_ms: u64,

    /// Longest a live event waits in this instance for a lower `seq` of its item whose bid is
    /// still being answered (milliseconds). Past it the event goes out anyway (viewers' own
    /// reordering and snapshots cover the gap); tests raise it so a loaded machine cannot
    /// reorder the live stream they assert on.
    #[arg(long, env = "LIVE_REORDER_HOLD_MS", default_value_t = 20)]
    pub live_reorder_hold_ms: u64,

    /// How a bid is applied in Redis: one Lua script (`lua`), or `WATCH`/`MULTI`/`EXEC` with
    /// retry (`optimistic`, for comparison; same guarantees, slower under contention).
    #[arg(long, env = "REDIS_STRATEGY", value_enum, default_value = "lua")]
    pub redis_strategy: RedisStrategy,

    /// Run the outbox relay in this instance (disable only to test a crashed relay).
    #[arg(long, env = "RELAY_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub relay_enabled: bool,

    /// Test hook, not a flag: lets a test stop a named background task (see
    /// `Application::run` for the names). Inert unless a test uses it.
    #[arg(skip)]
    pub task_faults: TaskFaults,
}

/// How bids are applied in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RedisStrategy {
    Lua,
    Optimistic,
}

fn default_instance_id() -> String {
    format!("gw-{}", uuid::Uuid::now_v7().simple())
}

impl Config {
    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    /// A configuration with every default, for tests and embedding.
    pub fn defaults() -> Self {
        Self::parse_from(["api-gateway"])
    }
}

impl fmt::Debug for Config {
    /// URLs print redacted (`SecretUrl`), the admin token only as set or not.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen_addr", &self.listen_addr)
            .field("common", &self.common)
            .field("redis", &self.redis)
            .field("database", &self.database)
            .field("archive", &self.archive)
            .field("redis_timeout_ms", &self.redis_timeout_ms)
            .field("instance_id", &self.instance_id)
            .field("relay_enabled", &self.relay_enabled)
            .field(
                "admin_token",
                &if self.admin_token.is_empty() {
                    ""
                } else {
                    "***"
                },
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_in_debug_output() {
        let mut config = Config::defaults();
        config.redis.url = "redis://user:hunter2@cache:6379".into();
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2"));
        assert!(text.contains("redis://***@cache:6379"));
    }

    #[test]
    fn defaults_follow_the_contract() {
        let config = Config::defaults();
        assert_eq!(config.listen_addr.port(), 8080);
        assert_eq!(config.redis.url.expose(), "redis://127.0.0.1:6379");
        assert_eq!(config.common.nats_url.expose(), "nats://127.0.0.1:4222");
        assert_eq!(config.archive.stream, "AUCTION_ARCHIVE");
    }
}
