//! Admin changes to an auction other than ending it: extending and relisting.

use super::{Store, StoreError};
use anyhow::{Context, anyhow};
use shared::{AuctionExtended, AuctionRelisted, EventId, ItemId, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtendOutcome {
    Extended(AuctionExtended),
    NotFound,
    /// Closed, cancelled, or past its end.
    NotActive,
    /// The new end is not later than the current one.
    NotLater,
}

/// A new round's terms.
#[derive(Debug, Clone)]
pub struct Relist {
    pub start_us: Option<i64>,
    pub end_us: i64,
    pub starting_cents: i64,
    pub min_increment_cents: i64,
    pub reserve_cents: i64,
    pub extension_window_us: i64,
    pub extension_us: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelistOutcome {
    Relisted(AuctionRelisted),
    NotFound,
    /// The current round is still running.
    Active,
    /// The new end is not after both now and the start.
    EndsInThePast,
}

fn reply_int(reply: &[String], i: usize) -> anyhow::Result<i64> {
    reply
        .get(i)
        .ok_or_else(|| anyhow!("script reply too short: {reply:?}"))?
        .parse()
        .with_context(|| format!("script reply field {i} is not an integer: {reply:?}"))
}

impl Store {
    /// Runs `extend_item.lua`.
    ///
    /// # Errors
    /// When Redis is unavailable.
    pub async fn extend_item(
        &self,
        id: &ItemId,
        end: Timestamp,
    ) -> Result<ExtendOutcome, StoreError> {
        let keys = self.keys.item(id);
        let event_id = EventId::new();
        let mut invocation = self.scripts.extend_item.prepare_invoke();
        invocation
            .key(&keys.item)
            .key(&keys.closing)
            .key(&keys.outbox)
            .arg(id.as_str())
            .arg(event_id.to_string())
            .arg(end.micros());
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .timed(async move { invocation.invoke_async(&mut conn).await })
            .await?;
        let parse = || -> anyhow::Result<ExtendOutcome> {
            Ok(match reply.first().map(String::as_str) {
                Some("extended") => ExtendOutcome::Extended(AuctionExtended {
                    event_id,
                    item_id: id.clone(),
                    seq: u64::try_from(reply_int(&reply, 1)?)?,
                    timestamp: Timestamp::from_micros(reply_int(&reply, 2)?),
                    end_time: Timestamp::from_micros(reply_int(&reply, 3)?),
                    round: u32::try_from(reply_int(&reply, 4)?)?,
                }),
                Some("not_found") => ExtendOutcome::NotFound,
                Some("not_active") => ExtendOutcome::NotActive,
                Some("not_later") => ExtendOutcome::NotLater,
                _ => anyhow::bail!("unexpected extend reply {reply:?}"),
            })
        };
        parse().map_err(StoreError::Internal)
    }

    /// Runs `relist_item.lua`.
    ///
    /// # Errors
    /// When Redis is unavailable.
    pub async fn relist_item(
        &self,
        id: &ItemId,
        terms: &Relist,
    ) -> Result<RelistOutcome, StoreError> {
        let keys = self.keys.item(id);
        let event_id = EventId::new();
        let mut invocation = self.scripts.relist_item.prepare_invoke();
        invocation
            .key(&keys.item)
            .key(&keys.closing)
            .key(&keys.outbox)
            .arg(id.as_str())
            .arg(event_id.to_string())
            .arg(terms.start_us.map(|s| s.to_string()).unwrap_or_default())
            .arg(terms.end_us)
            .arg(terms.starting_cents)
            .arg(terms.min_increment_cents)
            .arg(terms.reserve_cents)
            .arg(terms.extension_window_us)
            .arg(terms.extension_us);
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .timed(async move { invocation.invoke_async(&mut conn).await })
            .await?;
        let parse = || -> anyhow::Result<RelistOutcome> {
            Ok(match reply.first().map(String::as_str) {
                Some("relisted") => RelistOutcome::Relisted(AuctionRelisted {
                    event_id,
                    item_id: id.clone(),
                    seq: u64::try_from(reply_int(&reply, 1)?)?,
                    timestamp: Timestamp::from_micros(reply_int(&reply, 2)?),
                    round: u32::try_from(reply_int(&reply, 3)?)?,
                    starting_price_cents: terms.starting_cents,
                    start_time: Timestamp::from_micros(reply_int(&reply, 4)?),
                    end_time: Timestamp::from_micros(reply_int(&reply, 5)?),
                }),
                Some("not_found") => RelistOutcome::NotFound,
                Some("active") => RelistOutcome::Active,
                Some("ended") => RelistOutcome::EndsInThePast,
                _ => anyhow::bail!("unexpected relist reply {reply:?}"),
            })
        };
        parse().map_err(StoreError::Internal)
    }
}
