//! The optimistic bid strategy: `WATCH` / `MULTI` / `EXEC` with retry, for comparison with the
//! Lua script in the contention experiment (`--redis-strategy optimistic`).
//!
//! It keeps every guarantee of the contract: the item's state, the outbox entry, the closing
//! score and the idempotency record are written in one `MULTI`, which `EXEC` applies only if
//! nobody touched the watched keys since they were read; otherwise the attempt starts over. The
//! rules are the same as `place_bid.lua`'s, the reply has the same shape, and the idempotency
//! record the same JSON, so the two strategies can even serve one item side by side.
//!
//! `WATCH` state belongs to a connection, so each attempt holds one of a small set of
//! exclusive connections instead of the shared multiplexed one.

use super::bids::{PlaceBid, parse_reply};
use super::{BidReply, Store, StoreError};
use prometheus_client::metrics::counter::Counter;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use shared::EventId;
use shared::item_state::field;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Mutex;

/// Attempts before a bid gives up under contention (answered 503, nothing written).
const MAX_ATTEMPTS: usize = 200;

/// Exclusive connections for transactions.
pub struct TxnPool {
    connections: Vec<Mutex<ConnectionManager>>,
    next: AtomicUsize,
    /// Attempts whose `EXEC` applied nothing (the gateway's `gateway_optimistic_retries_total`).
    retries: Counter,
}

impl TxnPool {
    /// `size` lazily connected connections; lost races are counted in `retries`.
    ///
    /// # Errors
    /// When the URL is invalid.
    pub fn new(
        url: &str,
        size: usize,
        timeout: std::time::Duration,
        retries: Counter,
    ) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let connections = (0..size.max(1))
            .map(|_| {
                ConnectionManager::new_lazy_with_config(
                    client.clone(),
                    super::connection_config(timeout),
                )
                .map(Mutex::new)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            connections,
            next: AtomicUsize::new(0),
            retries,
        })
    }

    fn slot(&self) -> &Mutex<ConnectionManager> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        &self.connections[i]
    }
}

/// The idempotency record, as `place_bid.lua` writes it with cjson.
#[derive(Serialize, Deserialize)]
struct IdempotencyRecord {
    user: String,
    amount: String,
    reply: Vec<String>,
}

/// The fields the rules need, as `place_bid.lua` reads them.
const FIELDS: [&str; 12] = [
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
];

fn num(value: &Option<String>) -> i64 {
    value.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// What the rules decided: the reply, and for an accepted bid the writes.
struct Decision {
    reply: Vec<String>,
    accepted: Option<Accepted>,
}

struct Accepted {
    seq: i64,
    end_us: i64,
    extended: bool,
    previous: i64,
    bid_count: i64,
    round: String,
    now: i64,
}

/// `place_bid.lua`'s rules, on values read under `WATCH`.
fn decide(bid: &PlaceBid, event_id: &str, f: &[Option<String>], now: i64) -> Decision {
    let status = f[0].as_deref().unwrap_or_default();
    let (start_us, end_us) = (num(&f[1]), num(&f[2]));
    let (starting, increment) = (num(&f[3]), num(&f[4]));
    let (current, bid_count, seq) = (num(&f[5]), num(&f[6]), num(&f[7]));
    let (window, extension) = (num(&f[8]), num(&f[9]));
    let highest = f[10].clone().unwrap_or_default();
    let round = f[11].clone().unwrap_or_else(|| "1".into());
    let minimum = if bid_count > 0 {
        current + increment
    } else {
        starting
    };
    let answer = |outcome: &str| Decision {
        reply: vec![
            outcome.into(),
            current.to_string(),
            seq.to_string(),
            highest.clone(),
            end_us.to_string(),
            minimum.to_string(),
            round.clone(),
        ],
        accepted: None,
    };
    if status == "cancelled" {
        return answer("cancelled");
    }
    if status != "active" || now >= end_us {
        return answer("closed");
    }
    if now < start_us {
        return answer("not_started");
    }
    if bid.amount_cents < minimum {
        return answer("bid_too_low");
    }
    let (mut new_end, mut extended) = (end_us, false);
    if window > 0 && end_us - now <= window && now + extension > end_us {
        new_end = now + extension;
        extended = true;
    }
    let seq = seq + 1;
    Decision {
        reply: vec![
            "accepted".into(),
            bid.amount_cents.to_string(),
            seq.to_string(),
            bid.user_id.to_string(),
            new_end.to_string(),
            (bid.amount_cents + increment).to_string(),
            round.clone(),
            event_id.into(),
            now.to_string(),
            current.to_string(),
            if extended { "1" } else { "0" }.into(),
        ],
        accepted: Some(Accepted {
            seq,
            end_us: new_end,
            extended,
            previous: current,
            bid_count: bid_count + 1,
            round,
            now,
        }),
    }
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
        ttl_secs: u64,
    ) -> Result<BidReply, StoreError> {
        let keys = self.keys.item(&bid.item_id);
        let idem = bid.idempotency_key.as_ref().map(|k| keys.idempotency(k));
        let event_id = EventId::new().to_string();
        let amount = bid.amount_cents.to_string();
        for _ in 0..MAX_ATTEMPTS {
            let mut conn = pool.slot().lock().await;
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
                    let record: IdempotencyRecord = serde_json::from_str(&stored)
                        .map_err(|e| StoreError::Internal(anyhow::anyhow!(e)))?;
                    let mut reply =
                        if record.user != bid.user_id.as_str() || record.amount != amount {
                            vec!["idempotency_conflict".to_owned()]
                        } else {
                            record.reply
                        };
                    reply.push("replayed".into());
                    return parse_reply(bid, &reply).map_err(StoreError::Internal);
                }
            }
            let fields: Vec<Option<String>> = self
                .timed(
                    redis::cmd("HMGET")
                        .arg(&keys.item)
                        .arg(&FIELDS[..])
                        .query_async(conn),
                )
                .await?;
            if fields[0].is_none() {
                self.timed(redis::cmd("UNWATCH").query_async::<()>(conn))
                    .await?;
                return parse_reply(bid, &["not_found".to_owned()]).map_err(StoreError::Internal);
            }
            let (secs, micros): (i64, i64) =
                self.timed(redis::cmd("TIME").query_async(conn)).await?;
            let decision = decide(bid, &event_id, &fields, secs * 1_000_000 + micros);

            let mut pipe = redis::pipe();
            pipe.atomic();
            if let Some(a) = &decision.accepted {
                pipe.cmd("HSET")
                    .arg(&keys.item)
                    .arg(field::CURRENT_CENTS)
                    .arg(&amount)
                    .arg(field::HIGHEST_BIDDER)
                    .arg(bid.user_id.as_str())
                    .arg(field::BID_COUNT)
                    .arg(a.bid_count)
                    .arg(field::SEQ)
                    .arg(a.seq)
                    .arg(field::END_US)
                    .arg(a.end_us)
                    .ignore();
                if a.extended {
                    pipe.cmd("ZADD")
                        .arg(&keys.closing)
                        .arg(a.end_us)
                        .arg(bid.item_id.as_str())
                        .ignore();
                }
                pipe.cmd("XADD")
                    .arg(&keys.outbox)
                    .arg("*")
                    .arg(&[
                        ("type", "bid_placed".to_owned()),
                        ("event_id", event_id.clone()),
                        ("item_id", bid.item_id.to_string()),
                        ("seq", a.seq.to_string()),
                        ("ts_us", a.now.to_string()),
                        ("user_id", bid.user_id.to_string()),
                        ("amount_cents", amount.clone()),
                        ("previous_cents", a.previous.to_string()),
                        ("end_us", a.end_us.to_string()),
                        ("extended", if a.extended { "1" } else { "0" }.to_owned()),
                        ("round", a.round.clone()),
                    ])
                    .ignore();
            }
            if let Some(key) = &idem {
                let record = IdempotencyRecord {
                    user: bid.user_id.to_string(),
                    amount: amount.clone(),
                    reply: decision.reply.clone(),
                };
                let json = serde_json::to_string(&record)
                    .map_err(|e| StoreError::Internal(anyhow::anyhow!(e)))?;
                pipe.cmd("SET")
                    .arg(key)
                    .arg(json)
                    .arg("EX")
                    .arg(ttl_secs)
                    .ignore();
            }
            if decision.accepted.is_none() && idem.is_none() {
                self.timed(redis::cmd("UNWATCH").query_async::<()>(conn))
                    .await?;
                return parse_reply(bid, &decision.reply).map_err(StoreError::Internal);
            }
            // `None`: a watched key changed, EXEC applied nothing; read again and retry.
            let applied: Option<redis::Value> = self.timed(pipe.query_async(conn)).await?;
            if applied.is_some() {
                return parse_reply(bid, &decision.reply).map_err(StoreError::Internal);
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
    use shared::{ItemId, UserId};

    fn bid(amount_cents: i64) -> PlaceBid {
        PlaceBid {
            item_id: ItemId::parse("i").unwrap(),
            user_id: UserId::parse("alice").unwrap(),
            amount_cents,
            idempotency_key: None,
        }
    }

    fn fields(status: &str, current: i64, bid_count: i64) -> Vec<Option<String>> {
        [
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
        ]
        .iter()
        .map(|v| Some((*v).to_owned()))
        .collect()
    }

    #[test]
    fn the_rules_match_the_lua_script() {
        assert_eq!(
            decide(&bid(99), "e", &fields("active", 0, 0), 5).reply[0],
            "bid_too_low"
        );
        assert_eq!(
            decide(&bid(100), "e", &fields("active", 0, 0), 5).reply[0],
            "accepted"
        );
        assert_eq!(
            decide(&bid(109), "e", &fields("active", 100, 1), 5).reply[0],
            "bid_too_low"
        );
        let accepted = decide(&bid(110), "e", &fields("active", 100, 1), 5);
        assert_eq!(accepted.reply[0], "accepted");
        assert_eq!(accepted.reply[2], "5", "seq + 1");
        assert_eq!(
            decide(&bid(500), "e", &fields("active", 0, 0), 1000).reply[0],
            "closed"
        );
        assert_eq!(
            decide(&bid(500), "e", &fields("cancelled", 0, 0), 5).reply[0],
            "cancelled"
        );
    }
}
