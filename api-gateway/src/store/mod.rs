//! All of the gateway's Redis I/O: item creation and reads, the bid script, closing, the
//! outbox stream operations the relay uses, and the shared rate limits' counts
//! ([`rate_limits`], on a connection of their own). Handlers and the relay never build Redis commands.
//!
//! Every call on the request path runs under the store's deadline (`REDIS_TIMEOUT_MS`), so an
//! unreachable or stalled Redis becomes a fast [`StoreError::Unavailable`] (a 503), never a
//! hung request; by the one timeout rule of `shared::redis_connection`, a command that was
//! sent and not answered is [`StoreError::TimedOut`] instead. The connection is
//! `shared::redis_connection`'s (one multiplexed connection per server, to one Redis or to every
//! node of a Redis Cluster, reconnected in the background), so the gateway recovers by itself
//! when Redis returns.

mod admin;
mod bids;
mod closing;
mod items;
mod listing;
mod maxmemory_policy;
mod optimistic;
pub mod outbox;
pub mod rate_limits;
mod script_reply;

pub use admin::{ExtendOutcome, RelistOutcome};
pub use bids::{BidOutcome, BidReply, IdempotencyTtl, PlaceBid};
pub use closing::{ANNOUNCE_GRACE, BuyOutcome, CloseMode, CloseOutcome};
pub use items::{CreatedItem, NewItem, RoundTerms};
pub use listing::{ListingCursor, ListingPage, ListingQuery};
pub use maxmemory_policy::PolicyReading;

use shared::redis_connection::{self, RedisCallError, RedisFailure, RedisHandle};
use shared::redis_keys::Keyspace;
use shared::service_options::RedisOptions;
use std::future::Future;

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
    /// By the one classification (`RedisCallError::failure`): unreachable, refused or "not
    /// now" (`LOADING` after a restart, `TRYAGAIN`, …) is `Unavailable`, a 503 the client may
    /// retry; sent and not answered is `TimedOut`; only a reply that means a bug is `Internal`.
    fn from(e: RedisCallError) -> Self {
        match e.failure() {
            RedisFailure::Unavailable => StoreError::Unavailable(e.to_string()),
            RedisFailure::TimedOut => StoreError::TimedOut,
            RedisFailure::Internal => {
                StoreError::Internal(anyhow::Error::new(e).context("redis command failed"))
            }
        }
    }
}

impl From<redis::RedisError> for StoreError {
    /// A call on a connection of its own (the outbox readers'), classified the same way.
    fn from(e: redis::RedisError) -> Self {
        StoreError::from(RedisCallError::Redis(e))
    }
}

/// Handle to Redis shared by every request (cheap to clone).
#[derive(Clone)]
pub struct Store {
    redis: RedisHandle,
    /// The listing's reads, on a connection of their own (see [`listing`]): a page's replies
    /// never queue in front of a bid's.
    listing: RedisHandle,
    keys: Keyspace,
    scripts: &'static Scripts,
    /// Exclusive connections when bids use the optimistic strategy instead of the script.
    optimistic: Option<std::sync::Arc<optimistic::TxnPool>>,
}

/// The Lua scripts, loaded into Redis on first use (EVALSHA with a NOSCRIPT fallback).
pub(crate) struct Scripts {
    place_bid: redis::Script,
    create_item: redis::Script,
    close_item: redis::Script,
    confirm_close: redis::Script,
    extend_item: redis::Script,
    relist_item: redis::Script,
    reindex_item: redis::Script,
    /// The text of `reindex_item` (prelude included), which the optimistic strategy `EVAL`s
    /// inside its `MULTI`, where a script cannot be loaded on demand.
    reindex_item_text: String,
    start_listed: redis::Script,
    list_page: redis::Script,
}

/// The listing index's Lua functions (`scripts/item_index.lua`), prepended to every script
/// that changes what a listing shows of an item, so there is one copy of the rules.
const ITEM_INDEX: &str = include_str!("../scripts/item_index.lua");

fn with_item_index(body: &str) -> String {
    format!("{ITEM_INDEX}\n{body}")
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: std::sync::OnceLock<Scripts> = std::sync::OnceLock::new();
    SCRIPTS.get_or_init(|| {
        let indexed = |body: &str| redis::Script::new(&with_item_index(body));
        let reindex_item_text = with_item_index(include_str!("../scripts/reindex_item.lua"));
        Scripts {
            place_bid: indexed(include_str!("../scripts/place_bid.lua")),
            create_item: indexed(include_str!("../scripts/create_item.lua")),
            close_item: indexed(include_str!("../scripts/close_item.lua")),
            confirm_close: redis::Script::new(include_str!("../scripts/confirm_close.lua")),
            extend_item: indexed(include_str!("../scripts/extend_item.lua")),
            relist_item: indexed(include_str!("../scripts/relist_item.lua")),
            reindex_item: redis::Script::new(&reindex_item_text),
            reindex_item_text,
            start_listed: indexed(include_str!("../scripts/start_listed.lua")),
            list_page: redis::Script::new(include_str!("../scripts/list_page.lua")),
        }
    })
}

impl Store {
    /// Prepares a lazily connected store; it does not need Redis to be up.
    ///
    /// # Errors
    /// When the URL or its TLS settings are invalid.
    pub fn new(
        redis: &RedisOptions,
        keys: Keyspace,
        timeout: std::time::Duration,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            redis: RedisHandle::connect_lazily(redis, timeout)?,
            listing: RedisHandle::connect_lazily(redis, timeout)?,
            keys,
            scripts: scripts(),
            optimistic: None,
        })
    }

    /// Places bids with `WATCH`/`MULTI`/`EXEC` over `connections` exclusive connections
    /// instead of the Lua script (for the contention experiment). `retries` counts the
    /// attempts that lost the race and started over.
    ///
    /// # Errors
    /// When the URL or its TLS settings are invalid.
    pub fn with_optimistic_bids(
        mut self,
        redis: &RedisOptions,
        connections: usize,
        retries: prometheus_client::metrics::counter::Counter,
    ) -> anyhow::Result<Self> {
        self.optimistic = Some(std::sync::Arc::new(optimistic::TxnPool::new(
            redis,
            connections,
            self.redis.deadline(),
            retries,
        )?));
        Ok(self)
    }

    /// Makes every write script wait for a replica's acknowledgement (`--durable-accept`,
    /// see `shared::redis_connection::RedisHandle::with_replica_ack`).
    pub fn with_durable_accept(mut self, timeout: std::time::Duration) -> Self {
        self.redis = self.redis.with_replica_ack(timeout);
        self
    }

    pub fn keys(&self) -> &Keyspace {
        &self.keys
    }

    /// Runs one call on a connection of its own (the optimistic strategy's) under the
    /// store's deadline; calls on the shared connection go through [`RedisHandle`].
    async fn timed<T>(
        &self,
        op: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        Ok(redis_connection::within(self.redis.deadline(), op).await?)
    }

    /// `PING`, for readiness.
    ///
    /// # Errors
    /// [`StoreError::TimedOut`] when Redis does not answer in time.
    pub async fn ping(&self) -> Result<(), StoreError> {
        Ok(self.redis.ping().await?)
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
        let lengths: Vec<u64> = self.redis.query_pipeline(&pipe).await?;
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
