//! Redis side of the outbox relay: one consumer-group reader per outbox shard stream.
//!
//! The bid script appends each accepted event to its shard's stream in the same atomic step
//! that applies the bid. The relay reads new entries with `XREADGROUP` (which puts them in this
//! consumer's pending list), publishes them, and only then `XACK`s and `XDEL`s them. Entries a
//! crashed instance left pending are taken over with `XAUTOCLAIM` once idle long enough.

use super::{StoreError, connection_config};
use anyhow::{Context, anyhow};
use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use shared::{
    AuctionClosed, AuctionExtended, AuctionRelisted, BidPlaced, Event, EventId, ItemId, Timestamp,
    UserId,
};
use std::time::Duration;

/// Consumer group every gateway instance joins on every shard.
pub const GROUP: &str = "archive-relay";

/// One outbox entry: its stream id and the event it carries (or why it cannot be decoded).
#[derive(Debug)]
pub struct OutboxEntry {
    pub id: String,
    pub event: Result<Event, String>,
}

/// This instance's reader of one shard's outbox.
pub struct OutboxShard {
    conn: ConnectionManager,
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
    /// When the URL is invalid.
    pub fn new(
        url: &str,
        stream: String,
        consumer: String,
        block: Duration,
    ) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new_lazy_with_config(
            client,
            connection_config(block + Duration::from_secs(2)),
        )?;
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
        pipe.cmd("XACK")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(ids)
            .ignore();
        pipe.cmd("XDEL").arg(&self.stream).arg(ids).ignore();
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
        pipe.cmd("XACK")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(id)
            .ignore();
        pipe.cmd("XDEL").arg(&self.stream).arg(id).ignore();
        pipe.query_async::<()>(&mut self.conn).await?;
        Ok(())
    }
}

fn decode(entry: StreamId) -> OutboxEntry {
    let event = event_from_entry(&entry).map_err(|e| format!("{e:#}"));
    OutboxEntry {
        id: entry.id,
        event,
    }
}

/// Rebuilds the event from the fields `place_bid.lua` wrote with `XADD`.
fn event_from_entry(entry: &StreamId) -> anyhow::Result<Event> {
    let text = |name: &str| -> anyhow::Result<String> {
        entry
            .get::<String>(name)
            .ok_or_else(|| anyhow!("outbox entry lacks field {name}"))
    };
    let int = |name: &str| -> anyhow::Result<i64> {
        text(name)?
            .parse()
            .with_context(|| format!("outbox field {name} is not an integer"))
    };
    match text("type")?.as_str() {
        "bid_placed" => {
            let event_id = EventId::parse(&text("event_id")?).context("bad event_id")?;
            Ok(Event::BidPlaced(BidPlaced {
                event_id,
                item_id: ItemId::parse(text("item_id")?).context("bad item_id")?,
                seq: u64::try_from(int("seq")?)?,
                timestamp: Timestamp::from_micros(int("ts_us")?),
                bid_id: event_id.to_string(),
                user_id: UserId::parse(text("user_id")?).context("bad user_id")?,
                amount_cents: int("amount_cents")?,
                previous_bid_cents: int("previous_cents")?,
                end_time: Timestamp::from_micros(int("end_us")?),
                extended: text("extended")? == "1",
                round: u32::try_from(int("round")?)?,
            }))
        }
        "auction_closed" => Ok(Event::AuctionClosed(AuctionClosed {
            event_id: EventId::parse(&text("event_id")?).context("bad event_id")?,
            item_id: ItemId::parse(text("item_id")?).context("bad item_id")?,
            seq: u64::try_from(int("seq")?)?,
            timestamp: Timestamp::from_micros(int("ts_us")?),
            winner_id: match text("winner_id")?.as_str() {
                "" => None,
                w => Some(UserId::parse(w).context("bad winner_id")?),
            },
            final_price_cents: match text("final_price_cents")?.as_str() {
                "" => None,
                _ => Some(int("final_price_cents")?),
            },
            reserve_met: text("reserve_met")? == "1",
            round: u32::try_from(int("round")?)?,
            cancelled: text("cancelled").is_ok_and(|c| c == "1"),
            reason: text("reason").ok().filter(|r| !r.is_empty()),
        })),
        "auction_extended" => Ok(Event::AuctionExtended(AuctionExtended {
            event_id: EventId::parse(&text("event_id")?).context("bad event_id")?,
            item_id: ItemId::parse(text("item_id")?).context("bad item_id")?,
            seq: u64::try_from(int("seq")?)?,
            timestamp: Timestamp::from_micros(int("ts_us")?),
            end_time: Timestamp::from_micros(int("end_us")?),
            round: u32::try_from(int("round")?)?,
        })),
        "auction_relisted" => Ok(Event::AuctionRelisted(AuctionRelisted {
            event_id: EventId::parse(&text("event_id")?).context("bad event_id")?,
            item_id: ItemId::parse(text("item_id")?).context("bad item_id")?,
            seq: u64::try_from(int("seq")?)?,
            timestamp: Timestamp::from_micros(int("ts_us")?),
            round: u32::try_from(int("round")?)?,
            starting_price_cents: int("starting_cents")?,
            start_time: Timestamp::from_micros(int("start_us")?),
            end_time: Timestamp::from_micros(int("end_us")?),
        })),
        other => anyhow::bail!("unknown outbox event type {other:?}"),
    }
}
