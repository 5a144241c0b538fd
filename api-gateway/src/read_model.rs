//! Reads of the PostgreSQL read model that archival-worker maintains: bid history, bidder
//! statistics and a user's notifications. The gateway writes there only a signed-in user's
//! own actions: the watchlist ([`watchlist`]) and marking notifications read
//! ([`notifications`]); the worker owns the schema and everything else.
//!
//! The pool connects lazily and every query runs under a short deadline, so a PostgreSQL
//! outage makes the history endpoints answer 503 quickly and never touches bidding, which
//! does not use this module at all.

mod notifications;
mod watchlist;

pub use notifications::{NotificationPage, StoredNotification};

use anyhow::Context;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use shared::money::serialize_cents;
use shared::postgres_pool;
use shared::{ItemId, Timestamp, UserId};
use std::future::Future;
use std::time::Duration;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// Why a read failed: PostgreSQL unreachable, too slow or not migrated yet (`Unavailable`), or
/// a bug (`Other`), by the one rule of `shared::postgres_pool`.
pub use shared::postgres_pool::QueryError as ReadError;

/// One archived bid, as a row of both histories (an item's adds its bidder's pseudonym,
/// `bidder`, and shows `user_id` only to that bidder and admins).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ArchivedBid {
    #[schema(value_type = String)]
    pub event_id: Uuid,
    pub bid_id: String,
    pub item_id: String,
    pub round: i32,
    pub seq: i64,
    #[schema(value_type = Option<String>)]
    pub user_id: String,
    #[serde(serialize_with = "serialize_cents")]
    #[schema(value_type = f64)]
    pub amount: i64,
    pub amount_cents: i64,
    #[serde(serialize_with = "serialize_cents")]
    #[schema(value_type = f64)]
    pub previous_bid: i64,
    pub previous_bid_cents: i64,
    #[schema(value_type = String, format = DateTime)]
    pub placed_at: Timestamp,
    pub extended: bool,
    /// Placed by the system for a bidder's maximum rather than by the bidder. Public, as it is
    /// in the live event, so a reloaded history tags the same rows the live feed did; the
    /// maximum behind it is never archived.
    pub automatic: bool,
}

/// A bidder's totals.
#[derive(Debug, Clone, Serialize)]
pub struct UserStats {
    pub user_id: String,
    pub bids_placed: i64,
    pub items_bid_on: i64,
    pub items_won: i64,
    /// Sum over items of the user's highest bid on each.
    #[serde(serialize_with = "serialize_cents")]
    pub total_committed: i64,
    pub total_committed_cents: i64,
    /// Sum of the final prices of the items the user won.
    #[serde(serialize_with = "serialize_cents")]
    pub total_won: i64,
    pub total_won_cents: i64,
}

/// Where a page of a user's history continues: strictly older than this bid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserCursor {
    pub placed_at_us: i64,
    pub event_id: Uuid,
}

impl UserCursor {
    /// Parses `"<placed_at µs>_<event_id>"`.
    pub fn parse(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once('_')?;
        Some(Self {
            placed_at_us: micros.parse().ok()?,
            event_id: Uuid::parse_str(id).ok()?,
        })
    }

    pub fn of(bid: &ArchivedBid) -> Self {
        Self {
            placed_at_us: bid.placed_at.micros(),
            event_id: bid.event_id,
        }
    }

    pub fn encode(self) -> String {
        format!("{}_{}", self.placed_at_us, self.event_id)
    }
}

#[derive(Clone)]
pub struct ReadModel {
    pool: Pool,
    timeout: Duration,
}

/// Connections to the read model: history reads are short and rare next to bids.
const POOL_SIZE: usize = 4;

const BID_COLUMNS: &str = "event_id, bid_id, item_id, round, seq, user_id, amount_cents, \
                           previous_cents, placed_at, extended, automatic";

fn bid_from_row(row: &tokio_postgres::Row) -> ArchivedBid {
    let placed_at: DateTime<Utc> = row.get(8);
    let amount: i64 = row.get(6);
    let previous: i64 = row.get(7);
    ArchivedBid {
        event_id: row.get(0),
        bid_id: row.get(1),
        item_id: row.get(2),
        round: row.get(3),
        seq: row.get(4),
        user_id: row.get(5),
        amount,
        amount_cents: amount,
        previous_bid: previous,
        previous_bid_cents: previous,
        placed_at: Timestamp::from_micros(placed_at.timestamp_micros()),
        extended: row.get(9),
        automatic: row.get(10),
    }
}

impl ReadModel {
    /// A lazily connecting pool; PostgreSQL does not have to be up.
    ///
    /// # Errors
    /// When the URL is invalid.
    pub fn new(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let pool = shared::postgres_pool::lazy_pool(url, POOL_SIZE, timeout)
            .context("building the read-model pool")?;
        Ok(Self { pool, timeout })
    }

    /// Runs `op` under the read model's deadline.
    async fn timed<T>(&self, op: impl Future<Output = anyhow::Result<T>>) -> Result<T, ReadError> {
        postgres_pool::within(self.timeout, async { Ok(op.await?) }).await
    }

    /// The archived bids `filter` selects (the `where … order by … limit …` after
    /// `from bids`), with `params`.
    async fn bids(
        &self,
        filter: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<ArchivedBid>, ReadError> {
        self.timed(async {
            let client = self.pool.get().await?;
            let rows = client
                .query(&format!("select {BID_COLUMNS} from bids {filter}"), params)
                .await?;
            Ok(rows.iter().map(bid_from_row).collect())
        })
        .await
    }

    /// An item's bids, newest first, older than `before_seq` when given.
    ///
    /// # Errors
    /// [`ReadError::Unavailable`] when PostgreSQL is unreachable or not migrated.
    pub async fn item_bids(
        &self,
        item: &ItemId,
        limit: i64,
        before_seq: Option<i64>,
    ) -> Result<Vec<ArchivedBid>, ReadError> {
        self.bids(
            "where item_id = $1 and seq < coalesce($2, 9223372036854775807)
             order by seq desc limit $3",
            &[&item.as_str(), &before_seq, &limit],
        )
        .await
    }

    /// A bidder's bids, newest first, older than `before` when given.
    ///
    /// # Errors
    /// [`ReadError::Unavailable`] when PostgreSQL is unreachable or not migrated.
    pub async fn user_bids(
        &self,
        user: &UserId,
        limit: i64,
        before: Option<UserCursor>,
    ) -> Result<Vec<ArchivedBid>, ReadError> {
        match before {
            None => {
                self.bids(
                    "where user_id = $1 order by placed_at desc, event_id desc limit $2",
                    &[&user.as_str(), &limit],
                )
                .await
            }
            Some(cursor) => {
                let at = DateTime::<Utc>::from_timestamp_micros(cursor.placed_at_us)
                    .unwrap_or(DateTime::<Utc>::MIN_UTC);
                self.bids(
                    "where user_id = $1 and (placed_at, event_id) < ($2, $3)
                     order by placed_at desc, event_id desc limit $4",
                    &[&user.as_str(), &at, &cursor.event_id, &limit],
                )
                .await
            }
        }
    }

    /// A bidder's totals (zeros for someone who never bid).
    ///
    /// # Errors
    /// [`ReadError::Unavailable`] when PostgreSQL is unreachable or not migrated.
    pub async fn user_stats(&self, user: &UserId) -> Result<UserStats, ReadError> {
        self.timed(async {
            let client = self.pool.get().await?;
            let row = client
                .query_one(
                    "select
                        coalesce((select bids_placed from user_stats where user_id = $1), 0),
                        (select count(*) from user_items where user_id = $1),
                        coalesce((select items_won from user_stats where user_id = $1), 0),
                        coalesce((select sum(highest_cents) from user_items where user_id = $1), 0)::bigint,
                        coalesce((select total_won_cents from user_stats where user_id = $1), 0)",
                    &[&user.as_str()],
                )
                .await?;
            let committed: i64 = row.get(3);
            let won: i64 = row.get(4);
            Ok(UserStats {
                user_id: user.to_string(),
                bids_placed: row.get(0),
                items_bid_on: row.get(1),
                items_won: row.get(2),
                total_committed: committed,
                total_committed_cents: committed,
                total_won: won,
                total_won_cents: won,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_cursors_round_trip() {
        let cursor = UserCursor {
            placed_at_us: 1_700_000_000_123_456,
            event_id: Uuid::now_v7(),
        };
        assert_eq!(UserCursor::parse(&cursor.encode()), Some(cursor));
    }

    #[test]
    fn malformed_cursors_are_rejected() {
        for bad in ["", "12", "x_y", "12_notauuid"] {
            assert_eq!(UserCursor::parse(bad), None, "{bad}");
        }
    }
}
