//! All of the service's Redis I/O: reading an item's hash for a snapshot, and `PING` for
//! readiness. The service never writes to Redis; the gateway owns the layout and this module
//! reads it through `shared`'s [`redis_reads`], so the two cannot drift apart.
//!
//! Every call runs under a deadline (`REDIS_TIMEOUT_MS`, with the one timeout rule and the one
//! failure classification of `shared::redis_connection`), so an unreachable Redis becomes a
//! fast [`StoreError::Unavailable`] (the session retries the snapshot) rather than a stalled
//! socket. A read has no side effect, so "never sent" and "sent, not answered" are alike
//! here. The connection reconnects in the background, so the service recovers by itself when
//! Redis returns.

use shared::ItemId;
use shared::ItemState;
use shared::redis_connection::{RedisCallError, RedisFailure, RedisHandle};
use shared::redis_keys::Keyspace;
use shared::redis_reads::{self, ItemReadError};
use shared::service_options::RedisOptions;
use std::time::Duration;

/// Why a Redis read failed, as far as the caller can act on it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis is unreachable, did not answer in time, or answered "not now" (`LOADING` after a
    /// restart, `TRYAGAIN`, …): retry later.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// Redis answered with something that is not an item hash: a bug or a corrupted key.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<RedisCallError> for StoreError {
    /// By the one classification (`RedisCallError::failure`); a read has no side effect, so
    /// "timed out" is simply unavailable here.
    fn from(e: RedisCallError) -> Self {
        match e.failure() {
            RedisFailure::Unavailable | RedisFailure::TimedOut => {
                StoreError::Unavailable(e.to_string())
            }
            RedisFailure::Internal => {
                StoreError::Internal(anyhow::Error::new(e).context("redis command failed"))
            }
        }
    }
}

/// Handle to Redis shared by every session (cheap to clone).
#[derive(Clone)]
pub struct Store {
    redis: RedisHandle,
    keys: Keyspace,
}

impl Store {
    /// Prepares a lazily connected store; Redis does not have to be up.
    ///
    /// # Errors
    /// When the URL or its TLS settings are invalid.
    pub fn new(redis: &RedisOptions, keys: Keyspace, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            redis: RedisHandle::connect_lazily(redis, timeout)?,
            keys,
        })
    }

    /// `PING`, for readiness.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when Redis does not answer in time.
    pub async fn ping(&self) -> Result<(), StoreError> {
        Ok(self.redis.ping().await?)
    }

    /// The item's current state, or `None` if it does not exist.
    ///
    /// # Errors
    /// When Redis is unavailable or the hash is malformed.
    #[tracing::instrument(name = "redis.item_state", level = "debug", skip_all, fields(item_id = %id))]
    pub async fn item_state(&self, id: &ItemId) -> Result<Option<ItemState>, StoreError> {
        redis_reads::item_state(&self.redis, &self.keys, id)
            .await
            .map_err(ItemReadError::into_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::{ErrorKind, RedisError, ServerErrorKind};

    #[test]
    fn redis_loading_its_data_after_a_restart_is_unavailable_so_the_snapshot_is_retried() {
        for kind in [ServerErrorKind::BusyLoading, ServerErrorKind::TryAgain] {
            let e = RedisCallError::Redis(RedisError::from((ErrorKind::Server(kind), "not now")));
            assert!(
                matches!(StoreError::from(e), StoreError::Unavailable(_)),
                "{kind:?}"
            );
        }
    }
}
