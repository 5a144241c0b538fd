//! All of the gateway's Redis I/O: item creation and reads, the bid script, closing, and the
//! outbox stream operations the relay uses. Handlers and the relay never build Redis commands.
//!
//! Every call on the request path runs under the store's deadline (`REDIS_TIMEOUT_MS`), so an
//! unreachable or stalled Redis becomes a fast [`StoreError::Unavailable`] (a 503), never a
//! hung request; by the one timeout rule of `shared::redis_connection`, a command that was
//! sent and not answered is [`StoreError::TimedOut`] instead. The connection is a
//! `ConnectionManager` (one multiplexed connection, reconnected in the background), so the
//! gateway recovers by itself when Redis returns.

mod admin;
mod bids;
mod closing;
mod items;
mod optimistic;
pub mod outbox;
mod script_reply;

pub use admin::{ExtendOutcome, Relist, RelistOutcome};
pub use bids::{BidOutcome, BidReply, PlaceBid};
pub use closing::{CloseMode, CloseOutcome};
pub use items::{CreatedItem, NewItem};

use redis::aio::ConnectionManager;
use shared::redis_connection::{self, RedisCallError};
use shared::redis_keys::Keyspace;
use std::future::Future;
use std::time::Duration;

/// Why a Redis operation failed, as far as the caller can act on it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis is unreachable or refused the command: nothing was applied.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// Redis did not answer within the deadline. The command may have been sent and may still
    /// run (a busy or stalled Redis executes it later), so a write's outcome is unknown.
    #[error("redis did not answer in time")]
    TimedOut,
    /// Redis answered with an error or an unexpected reply: a bug or a corrupted key.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<RedisCallError> for StoreError {
    /// No connection within the deadline means nothing was sent: simply unavailable.
    fn from(e: RedisCallError) -> Self {
        match e {
            RedisCallError::NoConnection(_) => StoreError::Unavailable(e.to_string()),
            RedisCallError::Redis(e) => StoreError::from(e),
        }
    }
}

impl From<redis::RedisError> for StoreError {
    /// Unreachable, slow, or answering "not now" (`LOADING` while a restarted Redis reads its
    /// append-only file, `TRYAGAIN`, `MASTERDOWN`, `CLUSTERDOWN`: redis-rs marks these
    /// wait-and-retry) is `Unavailable`, a 503 the client may retry; only a reply that means a
    /// bug is `Internal`. The `resilience` experiment found `LOADING` answered as 500s for
    /// seconds after a Redis restart.
    fn from(e: redis::RedisError) -> Self {
        if e.is_timeout() {
            // The connection's response timeout: the command is on its way or queued.
            StoreError::TimedOut
        } else if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_cluster_error()
            || matches!(e.retry_method(), redis::RetryMethod::WaitAndRetry)
        {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Internal(anyhow::Error::new(e).context("redis command failed"))
        }
    }
}

/// Handle to Redis shared by every request (cheap to clone).
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    keys: Keyspace,
    timeout: Duration,
    scripts: &'static Scripts,
    /// Exclusive connections when bids use the optimistic strategy instead of the script.
    optimistic: Option<std::sync::Arc<optimistic::TxnPool>>,
}

/// The Lua scripts, loaded into Redis on first use (EVALSHA with a NOSCRIPT fallback).
pub(crate) struct Scripts {
    place_bid: redis::Script,
    create_item: redis::Script,
    close_item: redis::Script,
    extend_item: redis::Script,
    relist_item: redis::Script,
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: std::sync::OnceLock<Scripts> = std::sync::OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        place_bid: redis::Script::new(include_str!("../scripts/place_bid.lua")),
        create_item: redis::Script::new(include_str!("../scripts/create_item.lua")),
        close_item: redis::Script::new(include_str!("../scripts/close_item.lua")),
        extend_item: redis::Script::new(include_str!("../scripts/extend_item.lua")),
        relist_item: redis::Script::new(include_str!("../scripts/relist_item.lua")),
    })
}

/// The one connection rule (`shared::redis_connection`), for the outbox readers and the
/// optimistic strategy's connections, which open their own.
pub(crate) use shared::redis_connection::connection_config;

impl Store {
    /// Prepares a lazily connected store; it does not need Redis to be up.
    ///
    /// # Errors
    /// When the URL is invalid.
    pub fn new(url: &str, keys: Keyspace, timeout: Duration) -> anyhow::Result<Self> {
        let conn = redis_connection::connect_lazily(url, timeout)?;
        Ok(Self {
            conn,
            keys,
            timeout,
            scripts: scripts(),
            optimistic: None,
        })
    }

    /// Places bids with `WATCH`/`MULTI`/`EXEC` over `connections` exclusive connections
    /// instead of the Lua script (for the contention experiment). `retries` counts the
    /// attempts that lost the race and started over.
    ///
    /// # Errors
    /// When the URL is invalid.
    pub fn with_optimistic_bids(
        mut self,
        url: &str,
        connections: usize,
        retries: prometheus_client::metrics::counter::Counter,
    ) -> anyhow::Result<Self> {
        self.optimistic = Some(std::sync::Arc::new(optimistic::TxnPool::new(
            url,
            connections,
            self.timeout,
            retries,
        )?));
        Ok(self)
    }

    pub fn keys(&self) -> &Keyspace {
        &self.keys
    }

    /// Runs one Redis operation under the store's deadline.
    async fn timed<T>(
        &self,
        op: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        redis_connection::within(self.timeout, op)
            .await
            .map_err(StoreError::from)
    }

    /// `PING`, for readiness.
    ///
    /// # Errors
    /// [`StoreError::TimedOut`] when Redis does not answer in time.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.timed(async move { redis::cmd("PING").query_async::<String>(&mut conn).await })
            .await
            .map(drop)
    }

    /// Entries waiting in every outbox shard (the relay's lag).
    ///
    /// # Errors
    /// When Redis is unavailable.
    pub async fn outbox_lag(&self) -> Result<u64, StoreError> {
        let mut pipe = redis::pipe();
        for shard in Keyspace::shards() {
            pipe.cmd("XLEN").arg(self.keys.outbox(shard));
        }
        let mut conn = self.conn.clone();
        let lengths: Vec<u64> = self
            .timed(async move { pipe.query_async(&mut conn).await })
            .await?;
        Ok(lengths.iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::{ErrorKind, RedisError, ServerErrorKind};

    fn server_error(kind: ServerErrorKind) -> StoreError {
        StoreError::from(RedisError::from((
            ErrorKind::Server(kind),
            "server said so",
        )))
    }

    #[test]
    fn redis_loading_its_data_after_a_restart_is_unavailable_not_internal() {
        assert!(matches!(
            server_error(ServerErrorKind::BusyLoading),
            StoreError::Unavailable(_)
        ));
    }

    #[test]
    fn redis_asking_to_try_again_is_unavailable() {
        for kind in [ServerErrorKind::TryAgain, ServerErrorKind::MasterDown] {
            assert!(
                matches!(server_error(kind), StoreError::Unavailable(_)),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn a_script_error_is_internal() {
        assert!(matches!(
            server_error(ServerErrorKind::ResponseError),
            StoreError::Internal(_)
        ));
    }
}
