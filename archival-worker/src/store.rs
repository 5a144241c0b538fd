//! Every SQL statement of the worker: migrations, and the batch write that archives events and
//! updates the read model in one transaction.
//!
//! Idempotency rests on `event_id`: rows are inserted with `ON CONFLICT (event_id) DO NOTHING
//! RETURNING event_id`, and the projections are updated from the rows actually inserted, so a
//! redelivered event changes nothing. Inputs are sorted by key before each statement so two
//! workers lock rows in the same order and cannot deadlock each other.

mod notifications;

use crate::notifications::Notification;
use anyhow::Context;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use shared::migrations::Migrator;
use shared::postgres_pool;
use shared::{
    AuctionClosed, AuctionExtended, AuctionRelisted, BidPlaced, EventId, ItemId, ItemState,
    Timestamp,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::time::Duration;
use uuid::Uuid;

/// The read model's versioned migrations, recorded in `schema_migrations` (the accounts schema
/// keeps its own table and lock, see `shared::migrations`).
const MIGRATOR: Migrator = Migrator::new(
    "schema_migrations",
    0x4155_4354_494f_4e01, // "AUCTION" + 1: serializes workers starting together
    &[
        shared::migration!(1, "read_model", "0001_read_model.sql"),
        shared::migration!(2, "lifecycle", "0002_lifecycle.sql"),
        shared::migration!(3, "dead_letter_event_id", "0003_dead_letter_event_id.sql"),
        shared::migration!(
            4,
            "proxy_bids_and_buy_now",
            "0004_proxy_bids_and_buy_now.sql"
        ),
        shared::migration!(5, "notifications", "0005_notifications.sql"),
    ],
);

/// Why a store operation failed: PostgreSQL unreachable or too slow (`Unavailable`, retry
/// later) or anything else (`Other`), by the one rule of `shared::postgres_pool`.
pub use shared::postgres_pool::QueryError as StoreError;

/// An event that cannot be archived, kept with the reason.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The event's id, when the message names one (a payload may be too broken to).
    pub event_id: Option<EventId>,
    pub stream_sequence: u64,
    pub subject: String,
    pub payload: Vec<u8>,
    pub reason: String,
}

/// One JetStream batch, decoded.
#[derive(Debug, Default)]
pub struct Batch {
    pub bids: Vec<BidPlaced>,
    pub closes: Vec<AuctionClosed>,
    /// Extensions and relisted rounds, in stream order.
    pub changes: Vec<Change>,
    pub dead: Vec<DeadLetter>,
    /// The current state of the batch's items as Redis showed them before the write (those it
    /// could read): what an `outbid` says would lead again. Missing items only leave that out.
    pub items: HashMap<ItemId, ItemState>,
}

/// An admin change to an auction's schedule or round.
#[derive(Debug, Clone)]
pub enum Change {
    Extended(AuctionExtended),
    Relisted(AuctionRelisted),
}

impl Change {
    fn event_id(&self) -> Uuid {
        match self {
            Change::Extended(e) => e.event_id.as_uuid(),
            Change::Relisted(e) => e.event_id.as_uuid(),
        }
    }
}

impl Batch {
    pub fn len(&self) -> usize {
        self.bids.len() + self.closes.len() + self.changes.len() + self.dead.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a batch write inserted (the rest were already archived).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Written {
    pub bids: usize,
    pub closes: usize,
    pub changes: usize,
    pub dead: usize,
    /// The notifications its new events produced, committed with them, to publish now.
    pub notifications: Vec<Notification>,
}

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    timeout: Duration,
}

impl Store {
    /// A pool that connects lazily, so the worker starts while PostgreSQL is down.
    ///
    /// # Errors
    /// When the URL is invalid.
    pub fn new(url: &str, size: usize, timeout: Duration) -> anyhow::Result<Self> {
        let pool = shared::postgres_pool::lazy_pool(url, size, timeout)?;
        Ok(Self { pool, timeout })
    }

    /// Runs `op` under the store's deadline; connection problems become `Unavailable`.
    async fn timed<T>(&self, op: impl Future<Output = anyhow::Result<T>>) -> Result<T, StoreError> {
        postgres_pool::within(self.timeout, async { Ok(op.await?) }).await
    }

    /// `select 1`, for readiness.
    ///
    /// # Errors
    /// When PostgreSQL is unreachable.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.timed(async {
            self.pool.get().await?.simple_query("select 1").await?;
            Ok(())
        })
        .await
    }

    /// Applies missing migrations, holding an advisory lock so concurrent starts are safe.
    ///
    /// # Errors
    /// When PostgreSQL is unreachable or a migration fails.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.timed(async {
            let mut client = self.pool.get().await?;
            for version in MIGRATOR.run(&mut client).await? {
                tracing::info!(version, "migration applied");
            }
            Ok(())
        })
        .await
    }

    /// Archives a batch and updates the read model, all in one transaction.
    ///
    /// # Errors
    /// When PostgreSQL fails; nothing of the batch is then written.
    #[tracing::instrument(name = "postgres.write_batch", skip_all, fields(events = batch.len()))]
    pub async fn write_batch(&self, batch: &Batch) -> Result<Written, StoreError> {
        self.timed(async {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            // Relisted rounds first: a batch may hold a relist and the new round's first bids,
            // and the projection must reset before those bids count.
            let changes = apply_changes(&tx, &batch.changes).await?;
            let bids = insert_bids(&tx, &batch.bids).await?;
            project_bids(&tx, &bids).await?;
            let closes = insert_closes(&tx, &batch.closes).await?;
            project_closes(&tx, &closes).await?;
            // After the bids are in, so an outbid sees the batch's own earlier bids and a
            // close sees every bidder of its round.
            let mut notes = notifications::outbids(&tx, &bids, &batch.items).await?;
            notes.extend(notifications::closes(&tx, &closes).await?);
            let notifications = notifications::insert(&tx, &notes).await?;
            let dead = insert_dead_letters(&tx, &batch.dead).await?;
            tx.commit().await?;
            Ok(Written {
                bids: bids.len(),
                closes: closes.len(),
                changes,
                dead,
                notifications,
            })
        })
        .await
    }
}

impl Store {
    /// Stores the `ending_soon` of the auction round `state` for those of its bidders and
    /// watchers who have none for its current schedule; returns the new ones to publish.
    ///
    /// # Errors
    /// When PostgreSQL fails (nothing is then stored).
    #[tracing::instrument(name = "postgres.ending_soon", skip_all, fields(item_id = %state.id))]
    pub async fn ending_soon(
        &self,
        state: &ItemState,
        now: Timestamp,
    ) -> Result<Vec<Notification>, StoreError> {
        self.timed(async {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            let stored = notifications::ending_soon(&tx, state, now).await?;
            tx.commit().await?;
            Ok(stored)
        })
        .await
    }
}

/// `events` sorted by `event_id`, each once: one row per event, and the order every insert
/// locks rows in, so two workers cannot deadlock.
fn by_event_id<T>(events: &[T], id: impl Fn(&T) -> EventId) -> Vec<&T> {
    let mut sorted: Vec<&T> = events.iter().collect();
    sorted.sort_by_key(|e| id(e));
    sorted.dedup_by_key(|e| id(e));
    sorted
}

/// Those of `sorted` whose `event_id` came back from `returning event_id`: the ones not
/// archived before, which alone may change the projections.
fn newly_inserted<'a, T>(
    sorted: Vec<&'a T>,
    rows: &[tokio_postgres::Row],
    id: impl Fn(&T) -> EventId,
) -> Vec<&'a T> {
    let inserted: HashSet<Uuid> = rows.iter().map(|row| row.get(0)).collect();
    sorted
        .into_iter()
        .filter(|e| inserted.contains(&id(e).as_uuid()))
        .collect()
}

/// Inserts the bids not archived yet; returns those it inserted.
async fn insert_bids<'a>(
    tx: &deadpool_postgres::Transaction<'_>,
    bids: &'a [BidPlaced],
) -> anyhow::Result<Vec<&'a BidPlaced>> {
    if bids.is_empty() {
        return Ok(Vec::new());
    }
    let sorted = by_event_id(bids, |b| b.event_id);
    let ids: Vec<Uuid> = sorted.iter().map(|b| b.event_id.as_uuid()).collect();
    let items: Vec<&str> = sorted.iter().map(|b| b.item_id.as_str()).collect();
    let rounds: Vec<i32> = sorted.iter().map(|b| b.round as i32).collect();
    let seqs: Vec<i64> = sorted.iter().map(|b| b.seq as i64).collect();
    let bid_ids: Vec<&str> = sorted.iter().map(|b| b.bid_id.as_str()).collect();
    let users: Vec<&str> = sorted.iter().map(|b| b.user_id.as_str()).collect();
    let amounts: Vec<i64> = sorted.iter().map(|b| b.amount_cents).collect();
    let previous: Vec<i64> = sorted.iter().map(|b| b.previous_bid_cents).collect();
    let placed: Vec<DateTime<Utc>> = sorted.iter().map(|b| b.timestamp.to_datetime()).collect();
    let ends: Vec<DateTime<Utc>> = sorted.iter().map(|b| b.end_time.to_datetime()).collect();
    let extended: Vec<bool> = sorted.iter().map(|b| b.extended).collect();
    let automatic: Vec<bool> = sorted.iter().map(|b| b.automatic).collect();
    let rows = tx
        .query(
            "insert into bids (event_id, item_id, round, seq, bid_id, user_id, amount_cents,
                               previous_cents, placed_at, end_time, extended, automatic)
             select * from unnest($1::uuid[], $2::text[], $3::int4[], $4::int8[], $5::text[],
                                  $6::text[], $7::int8[], $8::int8[], $9::timestamptz[],
                                  $10::timestamptz[], $11::bool[], $12::bool[])
             order by 1
             on conflict (event_id) do nothing
             returning event_id",
            &[
                &ids, &items, &rounds, &seqs, &bid_ids, &users, &amounts, &previous, &placed,
                &ends, &extended, &automatic,
            ],
        )
        .await
        .context("inserting bids")?;
    Ok(newly_inserted(sorted, &rows, |b| b.event_id))
}

/// Updates `auctions`, `user_items` and `user_stats` from newly inserted bids.
async fn project_bids(
    tx: &deadpool_postgres::Transaction<'_>,
    bids: &[&BidPlaced],
) -> anyhow::Result<()> {
    if bids.is_empty() {
        return Ok(());
    }
    // Per item: how many new bids of its newest round in this batch, and the newest bid. Bids
    // of an older round (a batch can span a relist) are archived but project nothing: the
    // projection shows the latest round.
    let mut items: BTreeMap<&str, (i64, &BidPlaced)> = BTreeMap::new();
    // Per (user, item): the user's highest new bid. Per user: how many new bids.
    let mut user_items: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    let mut users: BTreeMap<&str, i64> = BTreeMap::new();
    for bid in bids {
        let entry = items.entry(bid.item_id.as_str()).or_insert((0, bid));
        if bid.round > entry.1.round {
            *entry = (1, bid);
        } else if bid.round == entry.1.round {
            entry.0 += 1;
            if bid.seq > entry.1.seq {
                entry.1 = bid;
            }
        }
        let highest = user_items
            .entry((bid.user_id.as_str(), bid.item_id.as_str()))
            .or_insert(0);
        *highest = (*highest).max(bid.amount_cents);
        *users.entry(bid.user_id.as_str()).or_insert(0) += 1;
    }

    let item_ids: Vec<&str> = items.keys().copied().collect();
    let rounds: Vec<i32> = items.values().map(|(_, b)| b.round as i32).collect();
    let prices: Vec<i64> = items.values().map(|(_, b)| b.amount_cents).collect();
    let leaders: Vec<&str> = items.values().map(|(_, b)| b.user_id.as_str()).collect();
    let counts: Vec<i64> = items.values().map(|(n, _)| *n).collect();
    let seqs: Vec<i64> = items.values().map(|(_, b)| b.seq as i64).collect();
    let ends: Vec<DateTime<Utc>> = items
        .values()
        .map(|(_, b)| b.end_time.to_datetime())
        .collect();
    tx.execute(
        "insert into auctions as a (item_id, round, current_cents, highest_bidder, bid_count,
                                    last_seq, end_time)
         select * from unnest($1::text[], $2::int4[], $3::int8[], $4::text[], $5::int8[],
                              $6::int8[], $7::timestamptz[])
         order by 1
         on conflict (item_id) do update set
             bid_count = case when a.round = excluded.round
                              then a.bid_count + excluded.bid_count else excluded.bid_count end,
             round = excluded.round,
             current_cents = case when excluded.last_seq > a.last_seq
                                  then excluded.current_cents else a.current_cents end,
             highest_bidder = case when excluded.last_seq > a.last_seq
                                   then excluded.highest_bidder else a.highest_bidder end,
             end_time = case when excluded.last_seq > a.last_seq
                             then excluded.end_time else a.end_time end,
             last_seq = greatest(a.last_seq, excluded.last_seq),
             updated_at = now()
         where a.round <= excluded.round",
        &[&item_ids, &rounds, &prices, &leaders, &counts, &seqs, &ends],
    )
    .await
    .context("updating auctions from bids")?;

    let ui_users: Vec<&str> = user_items.keys().map(|(u, _)| *u).collect();
    let ui_items: Vec<&str> = user_items.keys().map(|(_, i)| *i).collect();
    let ui_highest: Vec<i64> = user_items.values().copied().collect();
    tx.execute(
        "insert into user_items as u (user_id, item_id, highest_cents)
         select * from unnest($1::text[], $2::text[], $3::int8[])
         order by 1, 2
         on conflict (user_id, item_id) do update set
             highest_cents = greatest(u.highest_cents, excluded.highest_cents)",
        &[&ui_users, &ui_items, &ui_highest],
    )
    .await
    .context("updating user_items")?;

    let user_ids: Vec<&str> = users.keys().copied().collect();
    let placed: Vec<i64> = users.values().copied().collect();
    tx.execute(
        "insert into user_stats as s (user_id, bids_placed)
         select * from unnest($1::text[], $2::int8[])
         order by 1
         on conflict (user_id) do update set
             bids_placed = s.bids_placed + excluded.bids_placed,
             updated_at = now()",
        &[&user_ids, &placed],
    )
    .await
    .context("updating user_stats from bids")?;
    Ok(())
}

/// Inserts the auction results not archived yet; returns those it inserted.
async fn insert_closes<'a>(
    tx: &deadpool_postgres::Transaction<'_>,
    closes: &'a [AuctionClosed],
) -> anyhow::Result<Vec<&'a AuctionClosed>> {
    if closes.is_empty() {
        return Ok(Vec::new());
    }
    let sorted = by_event_id(closes, |c| c.event_id);
    let ids: Vec<Uuid> = sorted.iter().map(|c| c.event_id.as_uuid()).collect();
    let items: Vec<&str> = sorted.iter().map(|c| c.item_id.as_str()).collect();
    let rounds: Vec<i32> = sorted.iter().map(|c| c.round as i32).collect();
    let seqs: Vec<i64> = sorted.iter().map(|c| c.seq as i64).collect();
    let winners: Vec<Option<&str>> = sorted
        .iter()
        .map(|c| c.winner_id.as_ref().map(|w| w.as_str()))
        .collect();
    let prices: Vec<Option<i64>> = sorted.iter().map(|c| c.final_price_cents).collect();
    let reserve: Vec<bool> = sorted.iter().map(|c| c.reserve_met).collect();
    let closed: Vec<DateTime<Utc>> = sorted.iter().map(|c| c.timestamp.to_datetime()).collect();
    let cancelled: Vec<bool> = sorted.iter().map(|c| c.cancelled).collect();
    let reasons: Vec<Option<&str>> = sorted.iter().map(|c| c.reason.as_deref()).collect();
    let buy_now: Vec<bool> = sorted.iter().map(|c| c.buy_now).collect();
    let rows = tx
        .query(
            "insert into auction_results (event_id, item_id, round, seq, winner_id,
                                          final_price_cents, reserve_met, closed_at,
                                          cancelled, reason, buy_now)
             select * from unnest($1::uuid[], $2::text[], $3::int4[], $4::int8[], $5::text[],
                                  $6::int8[], $7::bool[], $8::timestamptz[], $9::bool[],
                                  $10::text[], $11::bool[])
             order by 1
             on conflict (event_id) do nothing
             returning event_id",
            &[
                &ids, &items, &rounds, &seqs, &winners, &prices, &reserve, &closed, &cancelled,
                &reasons, &buy_now,
            ],
        )
        .await
        .context("inserting auction results")?;
    Ok(newly_inserted(sorted, &rows, |c| c.event_id))
}

/// Marks auctions closed with their result and credits the winners.
async fn project_closes(
    tx: &deadpool_postgres::Transaction<'_>,
    closes: &[&AuctionClosed],
) -> anyhow::Result<()> {
    if closes.is_empty() {
        return Ok(());
    }
    let mut by_item: Vec<&AuctionClosed> = closes.to_vec();
    by_item.sort_by(|a, b| a.item_id.cmp(&b.item_id));
    let items: Vec<&str> = by_item.iter().map(|c| c.item_id.as_str()).collect();
    let rounds: Vec<i32> = by_item.iter().map(|c| c.round as i32).collect();
    let winners: Vec<Option<&str>> = by_item
        .iter()
        .map(|c| c.winner_id.as_ref().map(|w| w.as_str()))
        .collect();
    let prices: Vec<Option<i64>> = by_item.iter().map(|c| c.final_price_cents).collect();
    let reserve: Vec<bool> = by_item.iter().map(|c| c.reserve_met).collect();
    let closed: Vec<DateTime<Utc>> = by_item.iter().map(|c| c.timestamp.to_datetime()).collect();
    let seqs: Vec<i64> = by_item.iter().map(|c| c.seq as i64).collect();
    let statuses: Vec<&str> = by_item
        .iter()
        .map(|c| if c.cancelled { "cancelled" } else { "closed" })
        .collect();
    let reasons: Vec<Option<&str>> = by_item.iter().map(|c| c.reason.as_deref()).collect();
    tx.execute(
        "insert into auctions as a (item_id, round, status, winner_id, final_price_cents,
                                    reserve_met, closed_at, last_seq, cancel_reason)
         select i, r, st, w, p, m, t, s, why
         from unnest($1::text[], $2::int4[], $3::text[], $4::int8[], $5::bool[],
                     $6::timestamptz[], $7::int8[], $8::text[], $9::text[])
             as x(i, r, w, p, m, t, s, st, why)
         order by 1
         on conflict (item_id) do update set
             status = excluded.status, cancel_reason = excluded.cancel_reason,
             winner_id = excluded.winner_id,
             final_price_cents = excluded.final_price_cents, reserve_met = excluded.reserve_met,
             closed_at = excluded.closed_at, last_seq = excluded.last_seq,
             updated_at = now()
         where a.last_seq < excluded.last_seq",
        &[
            &items, &rounds, &winners, &prices, &reserve, &closed, &seqs, &statuses, &reasons,
        ],
    )
    .await
    .context("closing auctions")?;

    let mut won: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for close in closes {
        if let (Some(winner), Some(price)) = (&close.winner_id, close.final_price_cents) {
            let entry = won.entry(winner.as_str()).or_insert((0, 0));
            entry.0 += 1;
            entry.1 += price;
        }
    }
    if won.is_empty() {
        return Ok(());
    }
    let users: Vec<&str> = won.keys().copied().collect();
    let counts: Vec<i64> = won.values().map(|(n, _)| *n).collect();
    let totals: Vec<i64> = won.values().map(|(_, t)| *t).collect();
    tx.execute(
        "insert into user_stats as s (user_id, items_won, total_won_cents)
         select * from unnest($1::text[], $2::int8[], $3::int8[])
         order by 1
         on conflict (user_id) do update set
             items_won = s.items_won + excluded.items_won,
             total_won_cents = s.total_won_cents + excluded.total_won_cents,
             updated_at = now()",
        &[&users, &counts, &totals],
    )
    .await
    .context("crediting winners")?;
    Ok(())
}

/// Records extensions and relisted rounds once each, and applies the new ones to `auctions`
/// in `seq` order (an older change never overrides a newer state).
async fn apply_changes(
    tx: &deadpool_postgres::Transaction<'_>,
    changes: &[Change],
) -> anyhow::Result<usize> {
    let mut sorted: Vec<&Change> = changes.iter().collect();
    sorted.sort_by_key(|c| match c {
        Change::Extended(e) => (e.item_id.clone(), e.seq),
        Change::Relisted(e) => (e.item_id.clone(), e.seq),
    });
    let mut applied = 0;
    for change in sorted {
        let (kind, item, round, seq, end, at) = match change {
            Change::Extended(e) => (
                "auction_extended",
                &e.item_id,
                e.round,
                e.seq,
                e.end_time,
                e.timestamp,
            ),
            Change::Relisted(e) => (
                "auction_relisted",
                &e.item_id,
                e.round,
                e.seq,
                e.end_time,
                e.timestamp,
            ),
        };
        let (round, seq) = (round as i32, seq as i64);
        let inserted = tx
            .execute(
                "insert into auction_changes
                     (event_id, type, item_id, round, seq, end_time, occurred_at)
                 values ($1, $2, $3, $4, $5, $6, $7) on conflict (event_id) do nothing",
                &[
                    &change.event_id(),
                    &kind,
                    &item.as_str(),
                    &round,
                    &seq,
                    &end.to_datetime(),
                    &at.to_datetime(),
                ],
            )
            .await
            .context("recording an auction change")?;
        if inserted == 0 {
            continue;
        }
        applied += 1;
        let statement = match change {
            Change::Extended(_) => {
                "insert into auctions as a (item_id, round, end_time, last_seq)
                 values ($1, $2, $3, $4)
                 on conflict (item_id) do update set
                     end_time = excluded.end_time, last_seq = excluded.last_seq,
                     updated_at = now()
                 where a.last_seq < excluded.last_seq"
            }
            Change::Relisted(_) => {
                "insert into auctions as a (item_id, round, status, end_time, last_seq)
                 values ($1, $2, 'active', $3, $4)
                 on conflict (item_id) do update set
                     round = excluded.round, status = 'active', current_cents = 0,
                     highest_bidder = null, bid_count = 0, end_time = excluded.end_time,
                     winner_id = null, final_price_cents = null, reserve_met = null,
                     closed_at = null, cancel_reason = null, last_seq = excluded.last_seq,
                     updated_at = now()
                 where a.last_seq < excluded.last_seq"
            }
        };
        tx.execute(
            statement,
            &[&item.as_str(), &round, &end.to_datetime(), &seq],
        )
        .await
        .with_context(|| format!("applying {kind}"))?;
    }
    Ok(applied)
}

async fn insert_dead_letters(
    tx: &deadpool_postgres::Transaction<'_>,
    dead: &[DeadLetter],
) -> anyhow::Result<usize> {
    if dead.is_empty() {
        return Ok(0);
    }
    let seqs: Vec<i64> = dead.iter().map(|d| d.stream_sequence as i64).collect();
    let subjects: Vec<&str> = dead.iter().map(|d| d.subject.as_str()).collect();
    let payloads: Vec<&[u8]> = dead.iter().map(|d| d.payload.as_slice()).collect();
    let reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
    let ids: Vec<Option<Uuid>> = dead
        .iter()
        .map(|d| d.event_id.map(|id| id.as_uuid()))
        .collect();
    let inserted = tx
        .execute(
            "insert into dead_letters (stream_sequence, subject, payload, reason, event_id)
             select * from unnest($1::int8[], $2::text[], $3::bytea[], $4::text[], $5::uuid[])
             order by 1
             on conflict (stream_sequence) do nothing",
            &[&seqs, &subjects, &payloads, &reasons, &ids],
        )
        .await
        .context("inserting dead letters")?;
    Ok(inserted as usize)
}
