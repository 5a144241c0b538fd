//! The local price pre-filter: each instance remembers the latest known price of every item it
//! has seen (from its own script replies and from the live subject), and answers a bid at or
//! below that price as too low without a Redis round trip.
//!
//! It can never reject a bid Redis would accept: a known price is a price some bid reached,
//! prices only rise, and an accepted bid must exceed the current price by at least the
//! minimum increment (which is positive). Near the end of an auction the filter steps aside so
//! clients get the precise `auction_closed` answer from Redis.

use dashmap::DashMap;
use shared::{Event, ItemId, Timestamp, UserId};

/// Margin before the end time within which the filter defers to Redis.
const END_MARGIN_US: i64 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownPrice {
    pub current_cents: i64,
    pub seq: u64,
    pub end_us: i64,
    /// The item's seller, whose own bids the filter leaves to the script (a 403, not a
    /// `bid_too_low`).
    pub seller_id: Option<UserId>,
}

#[derive(Default)]
pub struct PriceCache {
    items: DashMap<ItemId, KnownPrice>,
}

impl PriceCache {
    /// Records a price seen at `seq`; older observations never overwrite newer ones.
    pub fn observe(&self, item: &ItemId, known: KnownPrice) {
        if known.current_cents <= 0 {
            return;
        }
        match self.items.entry(item.clone()) {
            dashmap::Entry::Occupied(mut entry) => {
                if known.seq > entry.get().seq {
                    entry.insert(known);
                }
            }
            dashmap::Entry::Vacant(entry) => {
                entry.insert(known);
            }
        }
    }

    /// Records a live event from any instance. Anything but a bid (a close, a cancellation,
    /// an extension, a new round) drops what is known: a new round starts from a lower price,
    /// and the next reply from Redis teaches the cache again.
    pub fn observe_event(&self, event: &Event) {
        match event {
            Event::BidPlaced(bid) => self.observe(
                &bid.item_id,
                KnownPrice {
                    current_cents: bid.amount_cents,
                    seq: bid.seq,
                    end_us: bid.end_time.micros(),
                    seller_id: bid.seller_id.clone(),
                },
            ),
            other => self.forget(other.item_id()),
        }
    }

    /// Drops what is known about `item`.
    pub fn forget(&self, item: &ItemId) {
        self.items.remove(item);
    }

    /// The known price when it already makes `amount_cents` too low.
    pub fn rejects(&self, item: &ItemId, amount_cents: i64, now: Timestamp) -> Option<KnownPrice> {
        let known = self.items.get(item)?.clone();
        (amount_cents <= known.current_cents && now.micros() + END_MARGIN_US < known.end_us)
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

    fn known(current_cents: i64, seq: u64) -> KnownPrice {
        KnownPrice {
            current_cents,
            seq,
            end_us: i64::MAX / 2,
            seller_id: None,
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
        cache.observe_event(&Event::AuctionRelisted(shared::AuctionRelisted {
            event_id: shared::EventId::new(),
            item_id: item(),
            seq: 9,
            timestamp: Timestamp::from_micros(0),
            round: 2,
            starting_price_cents: 100,
            start_time: Timestamp::from_micros(0),
            end_time: Timestamp::from_micros(i64::MAX / 2),
            seller_id: None,
        }));
        assert!(
            cache
                .rejects(&item(), 200, Timestamp::from_micros(0))
                .is_none()
        );
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
                seller_id: None,
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
