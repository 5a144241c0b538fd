//! The reads of the gateway's Redis layout that more than one service makes: an item's current
//! state (the gateway answers `GET /api/v1/items/{id}` with it, the broadcast service sends it
//! as a snapshot, the archival worker in its notifications), so all read the same key the same
//! way; and the auctions ending soon (the worker's `ending_soon`).

use crate::ids::ItemId;
use crate::item_state::{ItemState, ItemStateError};
use crate::redis_connection::{RedisCallError, RedisHandle};
use crate::redis_keys::Keyspace;
use crate::timestamp::Timestamp;
use std::collections::HashMap;

/// Why an item's state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ItemReadError {
    #[error(transparent)]
    Redis(#[from] RedisCallError),
    /// The hash is not one the gateway writes: a bug or a corrupted key.
    #[error("item {item} has a malformed hash")]
    Malformed {
        item: ItemId,
        #[source]
        source: ItemStateError,
    },
}

impl ItemReadError {
    /// As the caller's own error: a failed call by the caller's classification of it
    /// (`RedisCallError::failure`), a malformed hash as the bug it is.
    pub fn into_error<E: From<RedisCallError> + From<anyhow::Error>>(self) -> E {
        match self {
            Self::Redis(e) => E::from(e),
            malformed @ Self::Malformed { .. } => E::from(anyhow::Error::new(malformed)),
        }
    }
}

/// The item's current state, or `None` if it does not exist (one `HGETALL`).
///
/// # Errors
/// When Redis fails the call or the hash is malformed.
pub async fn item_state(
    redis: &RedisHandle,
    keys: &Keyspace,
    id: &ItemId,
) -> Result<Option<ItemState>, ItemReadError> {
    let hash: HashMap<String, String> = redis
        .query(redis::cmd("HGETALL").arg(keys.item(id).item))
        .await?;
    if hash.is_empty() {
        return Ok(None);
    }
    ItemState::from_hash(id.clone(), &hash)
        .map(Some)
        .map_err(|source| ItemReadError::Malformed {
            item: id.clone(),
            source,
        })
}

/// Items of outbox shard `shard` whose scheduled end is after `after` and at or before `until`
/// (the shard's closing set), soonest first, at most `limit`, with their end times (µs). The
/// set also holds closed items whose announcement is pending (see the gateway's closer), so a
/// caller that needs running auctions checks each item's state.
///
/// # Errors
/// When Redis fails the call.
pub async fn items_ending(
    redis: &RedisHandle,
    keys: &Keyspace,
    shard: u32,
    after: Timestamp,
    until: Timestamp,
    limit: usize,
) -> Result<Vec<(ItemId, i64)>, RedisCallError> {
    let found: Vec<(String, f64)> = redis
        .query(
            redis::cmd("ZRANGE")
                .arg(keys.closing(shard))
                .arg(format!("({}", after.micros()))
                .arg(until.micros())
                .arg("BYSCORE")
                .arg("LIMIT")
                .arg(0)
                .arg(limit)
                .arg("WITHSCORES"),
        )
        .await?;
    Ok(found
        .into_iter()
        .filter_map(|(id, end)| Some((ItemId::parse(id).ok()?, end as i64)))
        .collect())
}
