//! Redis side of the outbox relay: one consumer-group reader per outbox shard stream.
//!
//! The bid script appends each accepted event to its shard's stream in the same atomic step
//! that applies the bid. The relay reads new entries with `XREADGROUP` (which puts them in this
//! consumer's pending list), publishes them, and only then `XACK`s and `XDEL`s them. Entries a
//! crashed instance left pending are taken over with `XAUTOCLAIM` once idle long enough.

use super::StoreError;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use shared::redis_connection::RedisConnection;
use shared::{Event, FieldError, FieldList};
use std::time::Duration;

/// Consumer group every gateway instance joins on every shard.
pub const GROUP: &str = "archive-relay";

/// One outbox entry: its stream id and the event it carries (or why it cannot be decoded,
/// which becomes its dead-letter reason).
#[derive(Debug)]
pub struct OutboxEntry {
    pub id: String,
    pub event: Result<Event, FieldError>,
}

/// This instance's reader of one shard's outbox.
pub struct OutboxShard {
    conn: RedisConnection,
    stream: String,
    consumer: String,
    block: Duration,
    /// Where the next `XAUTOCLAIM` scan continues (`0-0` starts over).
    claim_cursor: String,
}

impl OutboxShard {
    /// A reader with its own connection, because `XREADGROUP ... BLOCK` holds a connection.
    ///
    /// # Errors
    /// When the URL or its TLS settings are invalid.
    pub fn new(
        redis: &shared::service_options::RedisOptions,
        stream: String,
        consumer: String,
        block: Duration,
    ) -> anyhow::Result<Self> {
        let conn = shared::redis_connection::connect_lazily(redis, block + Duration::from_secs(2))?;
        Ok(Self {
            conn,
            stream,
            consumer,
            block,
            claim_cursor: "0-0".into(),
        })
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Creates the consumer group (and the stream) if missing.
    ///
    /// # Errors
    /// When Redis is unavailable.
    pub async fn ensure_group(&mut self) -> Result<(), StoreError> {
        let result: redis::RedisResult<String> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.conn)
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads up to `count` entries: new ones (`>`, blocking up to the block time when there
    /// are none) or this consumer's own unacknowledged ones (`0`, never blocking).
    ///
    /// Cancellation-safe in the sense that matters: an entry read but not processed stays in
    /// this consumer's pending list and is read again with `own_pending = true`.
    ///
    /// # Errors
    /// When Redis is unavailable or the group is missing (Redis lost its data).
    pub async fn read(
        &mut self,
        count: usize,
        own_pending: bool,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count);
        if !own_pending {
            cmd.arg("BLOCK").arg(self.block.as_millis() as u64);
        }
        cmd.arg("STREAMS")
            .arg(&self.stream)
            .arg(if own_pending { "0" } else { ">" });
        let reply: Option<StreamReadReply> = cmd.query_async(&mut self.conn).await?;
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(decode)
            .collect())
    }

    /// Takes over up to `count` entries that other consumers left pending for `min_idle`.
    ///
    /// # Errors
    /// When Redis is unavailable.
    pub async fn reclaim(
        &mut self,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(min_idle.as_millis() as u64)
            .arg(&self.claim_cursor)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.conn)
            .await?;
        self.claim_cursor = reply.next_stream_id;
        Ok(reply.claimed.into_iter().map(decode).collect())
    }

    /// Acknowledges and deletes entries that JetStream has stored.
    ///
    /// # Errors
    /// When Redis is unavailable (the entries stay pending and are published again; the
    /// JetStream duplicate window and the archive's unique `event_id` absorb the repeat).
    pub async fn ack_and_delete(&mut self, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        self.remove(&mut pipe, ids);
        pipe.query_async::<()>(&mut self.conn).await?;
        Ok(())
    }

    /// Moves an undecodable entry to `<stream>:dead` (kept for inspection) and removes it, so
    /// it never blocks the shard.
    ///
    /// # Errors
    /// When Redis is unavailable.
    pub async fn dead_letter(&mut self, id: &str, reason: &str) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("XADD")
            .arg(format!("{}:dead", self.stream))
            .arg("*")
            .arg("entry_id")
            .arg(id)
            .arg("reason")
            .arg(reason)
            .ignore();
        self.remove(&mut pipe, &[id]);
        pipe.query_async::<()>(&mut self.conn).await?;
        Ok(())
    }

    /// Adds to `pipe` what takes entries out of the shard for good: acknowledged for the group
    /// (no longer pending) and deleted from the stream (no longer taking memory).
    fn remove(&self, pipe: &mut redis::Pipeline, ids: &[impl redis::ToRedisArgs]) {
        pipe.cmd("XACK")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(ids)
            .ignore();
        pipe.cmd("XDEL").arg(&self.stream).arg(ids).ignore();
    }
}

/// Decodes an entry with the one event decoder. A value that is not text (never written by
/// the scripts) counts as missing, so the entry is dead-lettered naming that field.
fn decode(entry: StreamId) -> OutboxEntry {
    let fields: FieldList = entry
        .map
        .into_iter()
        .filter_map(|(name, value)| Some((name, redis::from_redis_value::<String>(value).ok()?)))
        .collect();
    OutboxEntry {
        id: entry.id,
        event: Event::from_fields(&fields),
    }
}
