//! The real-time path: accepted events go out on core NATS `auction.live.<item_id>`, per item
//! in `seq` order, without ever slowing a bid down.
//!
//! Two things make this more than a `publish` call:
//!
//! * **Never block a bid.** Handlers hand the encoded event to a bounded queue with
//!   `try_send`; one task drains it into NATS. When NATS is down or slow the queue fills and
//!   further live events are dropped (counted in `gateway_live_dropped`): the live path is best
//!   effort by design, viewers resync from snapshots, and the outbox still archives every event.
//! * **Keep `seq` order.** Concurrent requests for one item get their script replies in `seq`
//!   order from Redis, but the tasks that handle those replies race. Each item therefore has a
//!   small reorder buffer: an event is released when it is the next `seq`, when no other bid
//!   for that item is in flight in this instance (so any gap belongs to another instance), or
//!   when it has waited its hold time (`LIVE_REORDER_HOLD_MS`, 20 ms by default), whichever
//!   comes first.
//! * **Track only what is in flight.** An item's reorder buffer exists while a bid (or close)
//!   for it is being answered or an event of it waits, and is dropped as soon as it is idle:
//!   memory follows the requests in flight, not every item id ever bid on (ids that do not
//!   exist included). An idle item has nothing to order: its next event goes out at once
//!   unless another bid for it is in flight, which is exactly when a buffer exists again.

use crate::metrics::Metrics;
use bytes::Bytes;
use dashmap::DashMap;
use shared::subjects::Subjects;
use shared::{Event, ItemId};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Live events queued for NATS before new ones are dropped.
const QUEUE: usize = 65_536;

/// One encoded live message.
pub struct Outgoing {
    subject: String,
    event_id: String,
    payload: Bytes,
}

#[derive(Default)]
struct ItemOrder {
    /// Highest `seq` released since the item was last idle.
    last: u64,
    /// Bids for this item sent to Redis and not yet answered.
    in_flight: u32,
    /// Events waiting for a lower `seq`, with the time they arrived.
    pending: BTreeMap<u64, (Instant, Outgoing)>,
}

/// Orders and queues live events.
pub struct LivePublisher {
    queue: mpsc::Sender<Outgoing>,
    items: DashMap<ItemId, ItemOrder>,
    subjects: Subjects,
    metrics: Arc<Metrics>,
    /// Longest an event waits for a lower `seq` that may never come through this instance.
    hold: Duration,
}

impl LivePublisher {
    /// The publisher and the receiving end for [`run`].
    pub fn new(
        subjects: Subjects,
        metrics: Arc<Metrics>,
        hold: Duration,
    ) -> (Arc<Self>, mpsc::Receiver<Outgoing>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        let publisher = Arc::new(Self {
            queue,
            items: DashMap::new(),
            subjects,
            metrics,
            hold,
        });
        (publisher, rx)
    }

    /// Marks a bid for `item` as in flight; call before sending it to Redis.
    pub fn begin(self: &Arc<Self>, item: &ItemId) -> InFlight {
        self.items.entry(item.clone()).or_default().in_flight += 1;
        InFlight {
            publisher: Arc::clone(self),
            item: item.clone(),
            finished: false,
        }
    }

    /// Items with a bid in flight or an event waiting (the reorder buffers held).
    pub fn tracked_items(&self) -> usize {
        self.items.len()
    }

    fn finish<'a>(&self, item: &ItemId, events: impl IntoIterator<Item = &'a Event>) {
        self.finish_locked(item, events);
        // Idle: forget it. The check and the removal are atomic under the map's shard lock,
        // so a `begin` that came in meanwhile keeps the entry.
        self.items.remove_if(item, |_, order| {
            order.in_flight == 0 && order.pending.is_empty()
        });
    }

    fn finish_locked<'a>(&self, item: &ItemId, events: impl IntoIterator<Item = &'a Event>) {
        let mut order = self.items.entry(item.clone()).or_default();
        order.in_flight = order.in_flight.saturating_sub(1);
        for event in events {
            match event.to_json() {
                Ok(json) => {
                    let outgoing = Outgoing {
                        subject: self.subjects.live(item),
                        event_id: event.event_id().to_string(),
                        payload: Bytes::from(json),
                    };
                    order
                        .pending
                        .insert(event.seq(), (Instant::now(), outgoing));
                }
                // Never publish a stand-in: viewers resync from a snapshot, and the outbox
                // relay dead-letters the same event where it can be inspected.
                Err(e) => {
                    self.metrics.live_dropped.inc();
                    tracing::error!(event_id = %event.event_id(), error = %e, "event does not encode; not published live");
                }
            }
        }
        self.release(&mut order);
    }

    /// Queues every pending event that may go now, in `seq` order.
    fn release(&self, order: &mut ItemOrder) {
        let now = Instant::now();
        let overdue = order
            .pending
            .values()
            .any(|(since, _)| now.duration_since(*since) >= self.hold);
        while let Some(entry) = order.pending.first_entry() {
            let seq = *entry.key();
            if !(seq <= order.last + 1 || order.in_flight == 0 || overdue) {
                break;
            }
            let (_, outgoing) = entry.remove();
            order.last = order.last.max(seq);
            if self.queue.try_send(outgoing).is_err() {
                self.metrics.live_dropped.inc();
            }
        }
    }
}

/// A bid in flight; finishing (or dropping) it lets the item's later events go out.
pub struct InFlight {
    publisher: Arc<LivePublisher>,
    item: ItemId,
    finished: bool,
}

impl InFlight {
    /// The bid is answered; `events` is what it produced (anything new: none, one, or a bid
    /// and the automatic bid a standing maximum answered it with).
    pub fn finish<'a>(mut self, events: impl IntoIterator<Item = &'a Event>) {
        self.finished = true;
        self.publisher.finish(&self.item, events);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // An error or a cancelled request: nothing to publish, but the item must not wait
        // for this bid any longer.
        if !self.finished {
            self.publisher.finish(&self.item, None::<&Event>);
        }
    }
}

/// Drains the queue into NATS until `shutdown`, then publishes what is left and flushes.
pub async fn run(
    client: async_nats::Client,
    mut rx: mpsc::Receiver<Outgoing>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            // `recv` is cancellation-safe: a message is either returned or left queued.
            message = rx.recv() => match message {
                Some(message) => publish(&client, message, &metrics).await,
                None => break,
            },
            () = shutdown.cancelled() => {
                while let Ok(message) = rx.try_recv() {
                    publish(&client, message, &metrics).await;
                }
                break;
            }
        }
    }
    if let Err(e) = tokio::time::timeout(Duration::from_secs(2), client.flush()).await {
        tracing::warn!(error = %e, "live events not flushed before shutdown");
    }
}

#[tracing::instrument(name = "nats.publish_live", level = "debug", skip_all, fields(event_id = %message.event_id))]
async fn publish(client: &async_nats::Client, message: Outgoing, metrics: &Metrics) {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Event-Id", message.event_id.as_str());
    match client
        .publish_with_headers(message.subject, headers, message.payload)
        .await
    {
        Ok(()) => {
            metrics.live_published.inc();
        }
        Err(e) => {
            metrics.live_dropped.inc();
            tracing::debug!(error = %e, "live publish failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publisher() -> (Arc<LivePublisher>, mpsc::Receiver<Outgoing>) {
        LivePublisher::new(
            Subjects::new("t".to_owned()),
            Arc::new(Metrics::default()),
            Duration::from_millis(20),
        )
    }

    fn bid(item: &ItemId, seq: u64) -> Event {
        Event::BidPlaced(shared::BidPlaced {
            event_id: shared::EventId::new(),
            item_id: item.clone(),
            seq,
            timestamp: shared::Timestamp::from_micros(0),
            bid_id: "b".into(),
            user_id: shared::UserId::parse("u").unwrap(),
            amount_cents: 100,
            previous_bid_cents: 0,
            end_time: shared::Timestamp::from_micros(0),
            extended: false,
            round: 1,
            seller_id: None,
            automatic: false,
            answered: false,
        })
    }

    #[test]
    fn ten_thousand_bids_on_unknown_items_leave_no_entries() {
        let (live, _queue) = publisher();
        for n in 0..10_000 {
            let item = ItemId::parse(format!("nope-{n}")).unwrap();
            live.begin(&item).finish(None::<&Event>);
        }
        let failed = ItemId::parse("dropped").unwrap();
        drop(live.begin(&failed));
        assert_eq!(live.tracked_items(), 0);
    }

    #[test]
    fn an_item_is_tracked_only_while_a_bid_is_in_flight_and_its_events_keep_seq_order() {
        let (live, mut queue) = publisher();
        let item = ItemId::parse("lot").unwrap();
        let (first, second) = (live.begin(&item), live.begin(&item));
        let (one, two) = (bid(&item, 1), bid(&item, 2));
        // The second bid's reply (seq 2) is handled first: it waits for the first.
        second.finish(Some(&two));
        assert!(
            queue.try_recv().is_err(),
            "seq 2 waits while seq 1 is in flight"
        );
        assert_eq!(live.tracked_items(), 1);
        first.finish(Some(&one));
        let order: Vec<String> = std::iter::from_fn(|| queue.try_recv().ok())
            .map(|m| m.event_id)
            .collect();
        let expected = [one.event_id().to_string(), two.event_id().to_string()];
        assert_eq!(order, expected, "in seq order");
        assert_eq!(live.tracked_items(), 0, "idle again: forgotten");
    }
}
