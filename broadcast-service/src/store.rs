//! All of the service's Redis I/O: reading an item's hash for a snapshot, and `PING` for
//! readiness. The service never writes to Redis; the gateway owns the layout and this module
//! reads it through `shared`'s [`Keyspace`] and [`ItemState::from_hash`], so the two cannot
//! drift apart.
//!
//! Every call runs under a deadline (`REDIS_TIMEOUT_MS`, with the one timeout rule of
//! `shared::redis_connection`), so an unreachable Redis becomes a fast
//! [`StoreError::Unavailable`] (the session retries the snapshot) rather than a stalled
//! socket. A read has no side effect, so "never sent" and "sent, not answered" are alike
//! here. The connection is a `ConnectionManager` (one multiplexed connection, reconnected in
//! the background), so the service recovers by itself when Redis returns.

use anyhow::Context;
use redis::aio::ConnectionManager;
use shared::redis_connection::{self, RedisCallError};
use shared::redis_keys::Keyspace;
use shared::{ItemId, ItemState};
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

/// Why a Redis read failed, as far as the caller can act on it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis is unreachable or did not answer in time: retry later.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// Redis answered with something that is not an item hash: a bug or a corrupted key.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<RedisCallError> for StoreError {
    fn from(e: RedisCallError) -> Self {
        match e {
            RedisCallError::NoConnection(_) => StoreError::Unavailable(e.to_string()),
            RedisCallError::Redis(e) => StoreError::from(e),
        }
    }
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_cluster_error()
        {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Internal(anyhow::Error::new(e).context("redis command failed"))
        }
    }
}

/// Handle to Redis shared by every session (cheap to clone).
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    keys: Keyspace,
    timeout: Duration,
}

impl Store {
    /// Prepares a lazily connected store; Redis does not have to be up.
    ///
    /// # Errors
    /// When the URL is invalid.
    pub fn new(url: &str, keys: Keyspace, timeout: Duration) -> anyhow::Result<Self> {
        let conn = redis_connection::connect_lazily(url, timeout)?;
        Ok(Self {
            conn,
            keys,
            timeout,
        })
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
    /// [`StoreError::Unavailable`] when Redis does not answer in time.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.timed(async move { redis::cmd("PING").query_async::<String>(&mut conn).await })
            .await
            .map(drop)
    }

    /// The item's current state, or `None` if it does not exist.
    ///
    /// # Errors
    /// When Redis is unavailable or the hash is malformed.
    #[tracing::instrument(name = "redis.item_state", level = "debug", skip_all, fields(item_id = %id))]
    pub async fn item_state(&self, id: &ItemId) -> Result<Option<ItemState>, StoreError> {
        let key = self.keys.item(id).item;
        let mut conn = self.conn.clone();
        let hash: HashMap<String, String> = self
            .timed(async move { redis::cmd("HGETALL").arg(key).query_async(&mut conn).await })
            .await?;
        if hash.is_empty() {
            return Ok(None);
        }
        ItemState::from_hash(id.clone(), &hash)
            .map(Some)
            .with_context(|| format!("item {id} has a malformed hash"))
            .map_err(StoreError::Internal)
    }
}
