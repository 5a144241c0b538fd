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
    /// Highest `seq` released.
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

    fn finish(&self, item: &ItemId, event: Option<&Event>) {
        let mut order = self.items.entry(item.clone()).or_default();
        order.in_flight = order.in_flight.saturating_sub(1);
        if let Some(event) = event {
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
    /// The bid is answered; `event` is what it produced (if anything new).
    pub fn finish(mut self, event: Option<&Event>) {
        self.finished = true;
        self.publisher.finish(&self.item, event);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // An error or a cancelled request: nothing to publish, but the item must not wait
        // for this bid any longer.
        if !self.finished {
            self.publisher.finish(&self.item, None);
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
