//! The optimistic bid strategy: `WATCH` / `MULTI` / `EXEC` with retry, for comparison with the
//! Lua script in the contention experiment (`--redis-strategy optimistic`).
//!
//! It keeps every guarantee of the contract: the item's state, the outbox entry, the closing
//! score (and listing index), and the idempotency record are written in one `MULTI`, which `EXEC` applies only if
//! nobody touched the watched keys since they were read; otherwise the attempt starts over. The
//! rules are the same as `place_bid.lua`'s, the event the same field list, and the idempotency
//! record the same JSON, so the two strategies can even serve one item side by side.
//!
//! Proxy bidding is the script's alone: it decides several bids in one step, which this
//! strategy does not reimplement. A bid with a maximum, or any bid on an item whose leader has
//! a standing maximum (set through a script gateway), is refused here with
//! `proxy_bidding_unsupported` before anything is written; increment tables apply as in the
//! script (`shared::IncrementTable`). Buy it now is a script (`close_item.lua`) whatever the
//! strategy, and `EXEC` fails if it changed the watched item meanwhile.
//!
//! `WATCH` state belongs to a connection, so each attempt holds one of a small set of
//! exclusive connections instead of the shared multiplexed one.

use super::bids::{BidOutcome, IdempotencyTtl, PlaceBid};
use super::script_reply::ScriptReply;
use super::{BidReply, Store, StoreError};
use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};
use shared::item_state::field;
use shared::redis_connection::RedisConnection;
use shared::{
    BidPlaced, Cents, Event, EventId, FieldError, FieldList, IncrementTable, Timestamp, UserId,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Mutex;

/// Attempts before a bid gives up under contention (answered 503, nothing written).
const MAX_ATTEMPTS: usize = 200;

/// Exclusive connections for transactions.
pub struct TxnPool {
    connections: Vec<Mutex<RedisConnection>>,
    next: AtomicUsize,
    /// Attempts whose `EXEC` applied nothing (the gateway's `gateway_optimistic_retries_total`).
    retries: Counter,
}

impl TxnPool {
    /// `size` lazily connected connections; lost races are counted in `retries`.
    ///
    /// # Errors
    /// When the URL or its TLS settings are invalid.
    pub fn new(
        redis: &shared::service_options::RedisOptions,
        size: usize,
        timeout: std::time::Duration,
        retries: Counter,
    ) -> anyhow::Result<Self> {
        let connections = (0..size.max(1))
            .map(|_| shared::redis_connection::connect_lazily(redis, timeout).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            connections,
            next: AtomicUsize::new(0),
            retries,
        })
    }

    /// The next connection, round robin.
    fn slot(&self) -> Result<&Mutex<RedisConnection>, StoreError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len().max(1);
        self.connections.get(i).ok_or_else(|| {
            StoreError::Internal(anyhow::anyhow!("the transaction pool has no connections"))
        })
    }
}

/// The idempotency record, as `place_bid.lua` writes it with cjson.
#[derive(Serialize, Deserialize)]
struct IdempotencyRecord {
    user: String,
    amount: String,
    /// The maximum in cents, `""` for a plain bid (absent in records written before proxy
    /// bidding).
    #[serde(default)]
    max: String,
    /// The reply lists, `{reply_fields [, event_fields]}` (see `store/script_reply.rs`).
    reply: Vec<Vec<String>>,
}

/// The fields the rules need, in the order `place_bid.lua` reads them.
const FIELDS: [&str; 15] = [
    field::STATUS,
    field::START_US,
    field::END_US,
    field::STARTING_CENTS,
    field::MIN_INCREMENT_CENTS,
    field::CURRENT_CENTS,
    field::BID_COUNT,
    field::SEQ,
    field::EXTENSION_WINDOW_US,
    field::EXTENSION_US,
    field::HIGHEST_BIDDER,
    field::ROUND,
    field::SELLER_ID,
    field::INCREMENTS,
    field::LEADER_MAX_CENTS,
];

/// The item as read under `WATCH`.
#[derive(Debug, Clone)]
struct Watched {
    status: String,
    start_us: i64,
    end_us: i64,
    starting: i64,
    current: i64,
    bid_count: i64,
    seq: u64,
    window: i64,
    extension: i64,
    highest: Option<UserId>,
    round: u32,
    seller: Option<UserId>,
    increments: IncrementTable,
    /// The leader's standing maximum (`0`: none).
    leader_max: i64,
}

impl Watched {
    /// The `HMGET` of [`FIELDS`]; `None` when the item does not exist. An absent number
    /// counts as zero (an item without anti-sniping has no window), a malformed one is an
    /// error.
    fn parse(values: [Option<String>; FIELDS.len()]) -> Result<Option<Self>, FieldError> {
        let f: FieldList = FIELDS
            .into_iter()
            .zip(values)
            .filter_map(|(name, value)| Some((name.to_owned(), value?)))
            .collect();
        let Some(status) = f.get(field::STATUS) else {
            return Ok(None);
        };
        Ok(Some(Self {
            status: status.to_owned(),
            start_us: f.int_or(field::START_US, 0)?,
            end_us: f.int_or(field::END_US, 0)?,
            starting: f.int_or(field::STARTING_CENTS, 0)?,
            current: f.int_or(field::CURRENT_CENTS, 0)?,
            bid_count: f.int_or(field::BID_COUNT, 0)?,
            seq: f.int_or(field::SEQ, 0)?,
            window: f.int_or(field::EXTENSION_WINDOW_US, 0)?,
            extension: f.int_or(field::EXTENSION_US, 0)?,
            highest: f.optional_user_id(field::HIGHEST_BIDDER)?,
            round: f.int_or(field::ROUND, 1)?,
            seller: f.optional_user_id(field::SELLER_ID)?,
            increments: match f.optional(field::INCREMENTS) {
                Some(text) => {
                    IncrementTable::from_storage(text).map_err(|_| FieldError::BadInteger {
                        field: field::INCREMENTS,
                        value: text.to_owned(),
                    })?
                }
                None => {
                    let flat: i64 = f.int(field::MIN_INCREMENT_CENTS)?;
                    IncrementTable::flat(Cents::new(flat).map_err(|_| FieldError::BadInteger {
                        field: field::MIN_INCREMENT_CENTS,
                        value: flat.to_string(),
                    })?)
                }
            },
            leader_max: f.int_or(field::LEADER_MAX_CENTS, 0)?,
        }))
    }
}

/// What the rules decided: the answer, and for an accepted bid the item's new bid count
/// (its other new values are in the answer's event).
struct Decision {
    reply: BidReply,
    bid_count: Option<i64>,
}

/// `place_bid.lua`'s rules, on values read under `WATCH`.
fn decide(bid: &PlaceBid, event_id: EventId, item: &Watched, now: i64) -> Decision {
    if item.seller.as_ref() == Some(&bid.user_id) {
        return Decision {
            reply: BidReply::without_state(BidOutcome::SellerCannotBid),
            bid_count: None,
        };
    }
    if item.leader_max > 0 {
        return Decision {
            reply: BidReply::without_state(BidOutcome::ProxyUnsupported),
            bid_count: None,
        };
    }
    let minimum = if item.bid_count > 0 {
        item.current + item.increments.increment_at(item.current)
    } else {
        item.starting
    };
    let answer = |outcome| Decision {
        reply: BidReply {
            outcome,
            current_cents: item.current,
            seq: item.seq,
            highest_bidder: item.highest.clone(),
            end_us: item.end_us,
            minimum_cents: minimum,
            round: item.round,
            seller_id: item.seller.clone(),
            events: Vec::new(),
            replayed: false,
        },
        bid_count: None,
    };
    if item.status == "cancelled" {
        return answer(BidOutcome::Cancelled);
    }
    if item.status != "active" || now >= item.end_us {
        return answer(BidOutcome::Closed);
    }
    if now < item.start_us {
        return answer(BidOutcome::NotStarted);
    }
    if bid.amount_cents < minimum {
        return answer(BidOutcome::TooLow);
    }
    let (mut end_us, mut extended) = (item.end_us, false);
    if item.window > 0 && item.end_us - now <= item.window && now + item.extension > item.end_us {
        end_us = now + item.extension;
        extended = true;
    }
    // The price ceiling, as in `place_bid.lua`: a bid nobody may beat wins now.
    let next_increment = item.increments.increment_at(bid.amount_cents);
    if !Cents::new(bid.amount_cents).is_ok_and(|amount| amount.leaves_room_above(next_increment)) {
        (end_us, extended) = (now, false);
    }
    let seq = item.seq + 1;
    Decision {
        reply: BidReply {
            outcome: BidOutcome::Accepted,
            current_cents: bid.amount_cents,
            seq,
            highest_bidder: Some(bid.user_id.clone()),
            end_us,
            minimum_cents: bid.amount_cents + next_increment,
            round: item.round,
            seller_id: item.seller.clone(),
            events: vec![BidPlaced {
                event_id,
                item_id: bid.item_id.clone(),
                seq,
                timestamp: Timestamp::from_micros(now),
                bid_id: event_id.to_string(),
                user_id: bid.user_id.clone(),
                amount_cents: bid.amount_cents,
                previous_bid_cents: item.current,
                end_time: Timestamp::from_micros(end_us),
                extended,
                round: item.round,
                seller_id: item.seller.clone(),
                automatic: false,
                answered: false,
            }],
            replayed: false,
        },
        bid_count: Some(item.bid_count + 1),
    }
}

/// The stored answer of an earlier request with the same key, or a conflict when that request
/// was a different bid.
fn replay(bid: &PlaceBid, stored: &str) -> Result<BidReply, StoreError> {
    let record: IdempotencyRecord = serde_json::from_str(stored).map_err(|e| {
        StoreError::Internal(anyhow::Error::new(e).context("unreadable idempotency record"))
    })?;
    let max = bid.max_cents.map(|m| m.to_string()).unwrap_or_default();
    if record.user != bid.user_id.as_str()
        || record.amount != bid.amount_cents.to_string()
        || record.max != max
    {
        return Ok(BidReply::without_state(BidOutcome::IdempotencyConflict));
    }
    let reply = ScriptReply::parse(record.reply)
        .and_then(BidReply::from_script)
        .map_err(|e| StoreError::Internal(anyhow::Error::new(e).context("idempotency record")))?;
    Ok(BidReply {
        replayed: true,
        ..reply
    })
}

impl Store {
    /// Places a bid with `WATCH`/`MULTI`/`EXEC`, retrying when another writer got there first.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when Redis is unreachable or the bid lost the race
    /// [`MAX_ATTEMPTS`] times (nothing was written).
    pub(super) async fn place_bid_optimistic(
        &self,
        pool: &TxnPool,
        bid: &PlaceBid,
        ttl: IdempotencyTtl,
    ) -> Result<BidReply, StoreError> {
        let keys = self.keys.item(&bid.item_id);
        let idem = bid.idempotency_key.as_ref().map(|k| keys.idempotency(k));
        let event_id = EventId::new();
        for _ in 0..MAX_ATTEMPTS {
            let mut conn = pool.slot()?.lock().await;
            let conn = &mut *conn;
            let mut watch = redis::cmd("WATCH");
            watch.arg(&keys.item);
            if let Some(key) = &idem {
                watch.arg(key);
            }
            self.timed(watch.query_async::<()>(conn)).await?;
            if let Some(key) = &idem {
                let stored: Option<String> = self
                    .timed(redis::cmd("GET").arg(key).query_async(conn))
                    .await?;
                if let Some(stored) = stored {
                    self.timed(redis::cmd("UNWATCH").query_async::<()>(conn))
                        .await?;
                    return replay(bid, &stored);
                }
            }
            let values = self
                .timed(
                    redis::cmd("HMGET")
                        .arg(&keys.item)
                        .arg(&FIELDS[..])
                        .query_async(conn),
                )
                .await?;
            let item = Watched::parse(values).map_err(|e| {
                StoreError::Internal(anyhow::Error::new(e).context("malformed item hash"))
            })?;
            let Some(item) = item else {
                self.timed(redis::cmd("UNWATCH").query_async::<()>(conn))
                    .await?;
                return Ok(BidReply::without_state(BidOutcome::NotFound));
            };
            let (secs, micros): (i64, i64) =
                self.timed(redis::cmd("TIME").query_async(conn)).await?;
            let decision = decide(bid, event_id, &item, secs * 1_000_000 + micros);

            let mut pipe = redis::pipe();
            pipe.atomic();
            if let (Some(placed), Some(bid_count)) =
                (decision.reply.events.first(), decision.bid_count)
            {
                pipe.cmd("HSET")
                    .arg(&keys.item)
                    .arg(field::CURRENT_CENTS)
                    .arg(placed.amount_cents)
                    .arg(field::HIGHEST_BIDDER)
                    .arg(placed.user_id.as_str())
                    .arg(field::BID_COUNT)
                    .arg(bid_count)
                    .arg(field::SEQ)
                    .arg(placed.seq)
                    .arg(field::END_US)
                    .arg(placed.end_time.micros())
                    .ignore();
                if placed.end_time.micros() != item.end_us {
                    pipe.cmd("ZADD")
                        .arg(&keys.closing)
                        .arg(placed.end_time.micros())
                        .arg(bid.item_id.as_str())
                        .ignore();
                    // The listing index, as `place_bid.lua` keeps it (after the HSET above,
                    // so it reads the new end).
                    self.queue_reindex(&mut pipe, &bid.item_id);
                }
                // The same field list `place_bid.lua` appends.
                pipe.cmd("XADD")
                    .arg(&keys.outbox)
                    .arg("*")
                    .arg(Event::BidPlaced(placed.clone()).to_fields().into_flat())
                    .ignore();
            }
            if let Some(key) = &idem {
                let record = IdempotencyRecord {
                    user: bid.user_id.to_string(),
                    amount: bid.amount_cents.to_string(),
                    max: String::new(),
                    reply: decision.reply.to_script_lists(),
                };
                let json = serde_json::to_string(&record)
                    .map_err(|e| StoreError::Internal(anyhow::anyhow!(e)))?;
                pipe.cmd("SET")
                    .arg(key)
                    .arg(json)
                    .arg("EX")
                    .arg(ttl.of(decision.reply.outcome))
                    .ignore();
            }
            // As the script: a refused seller leaves no idempotency record either.
            let writes_nothing = matches!(
                decision.reply.outcome,
                BidOutcome::SellerCannotBid | BidOutcome::ProxyUnsupported
            );
            if writes_nothing || (decision.bid_count.is_none() && idem.is_none()) {
                self.timed(redis::cmd("UNWATCH").query_async::<()>(conn))
                    .await?;
                return Ok(decision.reply);
            }
            // `None`: a watched key changed, EXEC applied nothing; read again and retry.
            let applied: Option<redis::Value> = self.timed(pipe.query_async(conn)).await?;
            if applied.is_some() {
                return Ok(decision.reply);
            }
            pool.retries.inc();
        }
        Err(StoreError::Unavailable(format!(
            "bid lost the optimistic race {MAX_ATTEMPTS} times"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::ItemId;

    fn bid(amount_cents: i64) -> PlaceBid {
        PlaceBid {
            item_id: ItemId::parse("i").unwrap(),
            user_id: UserId::parse("alice").unwrap(),
            amount_cents,
            max_cents: None,
            idempotency_key: None,
        }
    }

    fn item(status: &str, current: i64, bid_count: i64) -> Watched {
        let values = [
            status,
            "0",
            "1000",
            "100",
            "10",
            &current.to_string(),
            &bid_count.to_string(),
            "4",
            "0",
            "0",
            "bob",
            "1",
            "sam",
            "",
            "0",
        ]
        .map(|v| Some(v.to_owned()));
        Watched::parse(values).unwrap().unwrap()
    }

    fn outcome(amount_cents: i64, item: &Watched, now: i64) -> BidOutcome {
        decide(&bid(amount_cents), EventId::new(), item, now)
            .reply
            .outcome
    }

    #[test]
    fn the_rules_match_the_lua_script() {
        assert_eq!(outcome(99, &item("active", 0, 0), 5), BidOutcome::TooLow);
        assert_eq!(outcome(100, &item("active", 0, 0), 5), BidOutcome::Accepted);
        assert_eq!(outcome(109, &item("active", 100, 1), 5), BidOutcome::TooLow);
        let accepted = decide(&bid(110), EventId::new(), &item("active", 100, 1), 5).reply;
        assert_eq!(accepted.outcome, BidOutcome::Accepted);
        assert_eq!(accepted.seq, 5, "seq + 1");
        assert_eq!(
            outcome(500, &item("active", 0, 0), 1000),
            BidOutcome::Closed
        );
        assert_eq!(
            outcome(500, &item("cancelled", 0, 0), 5),
            BidOutcome::Cancelled
        );
    }

    #[test]
    fn the_seller_cannot_bid_on_their_own_item() {
        let seller = PlaceBid {
            user_id: UserId::parse("sam").unwrap(),
            ..bid(500)
        };
        let decision = decide(&seller, EventId::new(), &item("active", 0, 0), 5);
        assert_eq!(decision.reply.outcome, BidOutcome::SellerCannotBid);
        assert!(decision.bid_count.is_none() && decision.reply.events.is_empty());
    }

    #[test]
    fn a_bid_with_no_room_above_it_ends_the_auction_now() {
        let mut top = item("active", 100, 1);
        top.increments = IncrementTable::flat(Cents::new(10).unwrap());
        let ceiling = Cents::MAX.get();
        let below = decide(&bid(ceiling - 10), EventId::new(), &top, 5).reply;
        assert_eq!(below.end_us, 1000, "room left: the end stays");
        let at = decide(&bid(ceiling - 9), EventId::new(), &top, 5).reply;
        assert_eq!(at.outcome, BidOutcome::Accepted);
        assert_eq!(at.end_us, 5, "the end moves to now");
        assert!(!at.events[0].extended);
    }

    #[test]
    fn an_accepted_bid_carries_its_event_and_the_stored_record_reads_back_the_same() {
        let reply = decide(&bid(110), EventId::new(), &item("active", 100, 1), 5).reply;
        let placed = reply.events[0].clone();
        assert_eq!((placed.previous_bid_cents, placed.seq), (100, 5));
        let lists = reply.to_script_lists();
        let back = BidReply::from_script(ScriptReply::parse(lists).unwrap()).unwrap();
        assert_eq!(back, reply);
    }

    #[test]
    fn a_tiered_table_sets_the_minimum_and_a_standing_maximum_is_refused() {
        let mut tiered = item("active", 1_000, 1);
        tiered.increments = IncrementTable::from_storage("0:10;1000:100").unwrap();
        assert_eq!(outcome(1_099, &tiered, 5), BidOutcome::TooLow);
        assert_eq!(outcome(1_100, &tiered, 5), BidOutcome::Accepted);
        tiered.leader_max = 5_000;
        let refused = decide(&bid(9_000), EventId::new(), &tiered, 5);
        assert_eq!(refused.reply.outcome, BidOutcome::ProxyUnsupported);
        assert!(refused.bid_count.is_none());
    }

    #[test]
    fn a_missing_item_is_none_and_a_malformed_number_is_an_error() {
        assert!(Watched::parse(Default::default()).unwrap().is_none());
        let mut values = [(); FIELDS.len()].map(|()| Some("1".to_owned()));
        values[0] = Some("active".into());
        values[5] = Some("ten".into());
        assert!(matches!(
            Watched::parse(values),
            Err(FieldError::BadInteger {
                field: field::CURRENT_CENTS,
                ..
            })
        ));
    }
}
