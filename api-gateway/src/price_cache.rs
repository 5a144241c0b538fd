//! The local price pre-filter: each instance remembers the latest known price of every item it
//! has seen (from its own script replies and from the live subject), and answers a bid at or
//! below that price as too low without a Redis round trip.
//!
//! Within one round it can never reject a bid Redis would accept: a known price is a price
//! some bid reached, prices only rise, and an accepted bid must exceed the current price by at
//! least the minimum increment (which is positive). What ends a round (a close, a cancel) or
//! starts a new one (a relist, from a lower price) breaks that, so:
//!
//! * every non-bid event leaves a *reset* at its `seq`: nothing known before it (a late reply
//!   or live event of the old round) can bring the old price back, since `seq` keeps rising
//!   across rounds;
//! * a known price is trusted for [`PriceCache::ttl`] after it was learned
//!   (`PRICE_PREFILTER_TTL_MS`, 1 s) and then the bid goes to Redis, which teaches the filter
//!   again. An instance learns of another's close or relist from its live event within
//!   milliseconds; the TTL bounds how long it can be wrong when that event is lost (NATS down
//!   or reconnecting, a full queue);
//! * near the end of an auction the filter steps aside so clients get the precise
//!   `auction_closed` answer from Redis.

use dashmap::DashMap;
use shared::{Event, ItemId, Timestamp};
use std::time::Duration;
use tokio::time::Instant;

/// Margin before the end time within which the filter defers to Redis.
const END_MARGIN_US: i64 = 1_000_000;

/// Entries older than this are dropped by [`PriceCache::forget_stale`]: far past the TTL, and
/// past any delivery delay of a late event a reset must still outrank.
const FORGET_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownPrice {
    /// `0` for a reset (nothing is known about the price at `seq`): it rejects nothing.
    pub current_cents: i64,
    pub seq: u64,
    pub end_us: i64,
}

/// What is known about one item, and since when.
#[derive(Debug, Clone, Copy)]
struct Entry {
    known: KnownPrice,
    learned: Instant,
}

pub struct PriceCache {
    items: DashMap<ItemId, Entry>,
    ttl: Duration,
}

impl Default for PriceCache {
    /// With the default TTL (1 s).
    fn default() -> Self {
        Self::new(Duration::from_secs(1))
    }
}

impl PriceCache {
    /// A cache whose known prices reject bids for `ttl` after they were learned.
    pub fn new(ttl: Duration) -> Self {
        Self {
            items: DashMap::new(),
            ttl,
        }
    }

    /// How long a known price is trusted.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Records what was seen at `seq`; older observations never overwrite newer ones, and one
    /// at the same `seq` (Redis confirming the state is unchanged) renews the entry.
    pub fn observe(&self, item: &ItemId, known: KnownPrice) {
        let entry = Entry {
            known,
            learned: Instant::now(),
        };
        self.items
            .entry(item.clone())
            .and_modify(|e| {
                if known.seq >= e.known.seq {
                    *e = entry;
                }
            })
            .or_insert(entry);
    }

    /// Records a live event from any instance (or an admin action of this one). Anything but
    /// a bid (a close, a cancellation, an extension, a new round) resets what is known at the
    /// event's `seq`: a new round starts from a lower price, and the next reply from Redis
    /// teaches the cache again.
    pub fn observe_event(&self, event: &Event) {
        let known = match event {
            Event::BidPlaced(bid) => KnownPrice {
                current_cents: bid.amount_cents,
                seq: bid.seq,
                end_us: bid.end_time.micros(),
            },
            other => KnownPrice {
                current_cents: 0,
                seq: other.seq(),
                end_us: 0,
            },
        };
        self.observe(event.item_id(), known);
    }

    /// Drops entries learned longer ago than any use they could have.
    pub fn forget_stale(&self) {
        self.items
            .retain(|_, entry| entry.learned.elapsed() < FORGET_AFTER);
    }

    /// How many items the cache holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The known price when it already makes `amount_cents` too low.
    pub fn rejects(&self, item: &ItemId, amount_cents: i64, now: Timestamp) -> Option<KnownPrice> {
        let entry = *self.items.get(item)?;
        let known = entry.known;
        (entry.learned.elapsed() < self.ttl
            && amount_cents <= known.current_cents
            && now.micros() + END_MARGIN_US < known.end_us)
            .then_some(known)
    }
}

/// Keeps the cache fed from every instance's live events until `shutdown`.
pub async fn follow_live(
    client: async_nats::Client,
    subject: String,
    cache: std::sync::Arc<PriceCache>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use futures::StreamExt;
    let mut subscription = match client.subscribe(subject).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "price pre-filter cannot follow live events; it will use local replies only");
            return;
        }
    };
    let mut sweep = tokio::time::interval(FORGET_AFTER);
    loop {
        tokio::select! {
            message = subscription.next() => match message {
                Some(message) => {
                    if let Ok(event) = serde_json::from_slice::<Event>(&message.payload) {
                        cache.observe_event(&event);
                    }
                }
                None => break,
            },
            _ = sweep.tick() => cache.forget_stale(),
            () = shutdown.cancelled() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> ItemId {
        ItemId::parse("i").unwrap()
    }

    fn relisted(seq: u64) -> Event {
        Event::AuctionRelisted(shared::AuctionRelisted {
            event_id: shared::EventId::new(),
            item_id: item(),
            seq,
            timestamp: Timestamp::from_micros(0),
            round: 2,
            starting_price_cents: 100,
            start_time: Timestamp::from_micros(0),
            end_time: Timestamp::from_micros(i64::MAX / 2),
        })
    }

    fn known(current_cents: i64, seq: u64) -> KnownPrice {
        KnownPrice {
            current_cents,
            seq,
            end_us: i64::MAX / 2,
        }
    }

    #[test]
    fn bids_at_or_below_the_known_price_are_rejected() {
        let cache = PriceCache::default();
        cache.observe(&item(), known(1000, 3));
        let now = Timestamp::from_micros(0);
        assert!(cache.rejects(&item(), 999, now).is_some());
        assert!(cache.rejects(&item(), 1000, now).is_some());
        assert!(cache.rejects(&item(), 1001, now).is_none());
    }

    #[test]
    fn unknown_items_are_never_rejected() {
        let cache = PriceCache::default();
        assert!(
            cache
                .rejects(&item(), 1, Timestamp::from_micros(0))
                .is_none()
        );
    }

    #[test]
    fn older_observations_do_not_lower_the_price() {
        let cache = PriceCache::default();
        cache.observe(&item(), known(2000, 5));
        cache.observe(&item(), known(1500, 4));
        assert!(
            cache
                .rejects(&item(), 1999, Timestamp::from_micros(0))
                .is_some()
        );
    }

    #[test]
    fn a_new_round_is_never_filtered_by_the_old_rounds_price() {
        let cache = PriceCache::default();
        cache.observe(&item(), known(5000, 7));
        cache.observe_event(&relisted(9));
        assert!(
            cache
                .rejects(&item(), 200, Timestamp::from_micros(0))
                .is_none()
        );
    }

    #[test]
    fn a_late_reply_of_the_old_round_cannot_bring_its_price_back_after_a_relist() {
        let cache = PriceCache::default();
        cache.observe(&item(), known(5000, 7));
        cache.observe_event(&relisted(9));
        // A bid of the old round answered before the relist, handled after it.
        cache.observe(&item(), known(5000, 8));
        assert!(
            cache
                .rejects(&item(), 200, Timestamp::from_micros(0))
                .is_none()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_price_learned_longer_ago_than_the_ttl_rejects_nothing() {
        let cache = PriceCache::new(Duration::from_millis(300));
        cache.observe(&item(), known(1000, 3));
        let now = Timestamp::from_micros(0);
        tokio::time::advance(Duration::from_millis(299)).await;
        assert!(cache.rejects(&item(), 500, now).is_some());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(cache.rejects(&item(), 500, now).is_none());
        // Redis confirming the same state renews it.
        cache.observe(&item(), known(1000, 3));
        assert!(cache.rejects(&item(), 500, now).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn entries_no_longer_of_use_are_forgotten() {
        let cache = PriceCache::default();
        cache.observe(&item(), known(1000, 3));
        cache.forget_stale();
        assert_eq!(cache.len(), 1);
        tokio::time::advance(FORGET_AFTER).await;
        cache.forget_stale();
        assert!(cache.is_empty());
    }

    #[test]
    fn the_filter_defers_to_redis_near_the_end() {
        let cache = PriceCache::default();
        cache.observe(
            &item(),
            KnownPrice {
                current_cents: 1000,
                seq: 1,
                end_us: 10_000_000,
            },
        );
        assert!(
            cache
                .rejects(&item(), 10, Timestamp::from_micros(1_000_000))
                .is_some()
        );
        assert!(
            cache
                .rejects(&item(), 10, Timestamp::from_micros(9_500_000))
                .is_none()
        );
    }
}
