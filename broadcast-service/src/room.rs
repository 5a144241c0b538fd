//! A room: one watched item in this instance, with its viewers, its NATS subscriptions and
//! the one task that fans its events out.
//!
//! The room task is the only place an item's live events are decoded, ordered (see
//! [`Sequencer`]) and framed as WebSocket bytes, once. It then writes those same bytes to
//! every viewer's socket in one pass through [`Viewer::offer`], which never waits: one
//! non-blocking write per viewer, with no task woken and nothing copied (a socket that is
//! full gets the bytes queued for its session instead). No per-viewer JSON encoding happens,
//! and no per-viewer task does work proportional to the room's size. The same task
//! keeps the item's presence: it publishes this instance's count, sums everyone's, and
//! broadcasts `viewers` frames at most once per interval.
//!
//! Snapshots are read through [`Room::snapshot`], a single flight per room: when many viewers
//! need a snapshot at once (a NATS reconnect, a burst of subscribes), one Redis read and one
//! encoding serve them all, as long as the read started after each viewer's reason to resync.

use crate::deadline::sleep_until;
use crate::metrics::Metrics;
use crate::presence::{self, CountThrottle, Presence, PresenceBeat, Recorded};
use crate::protocol::{Snapshot, viewers_frame};
use crate::sequencer::Sequencer;
use crate::store::{Store, StoreError};
use crate::viewer::{Frame, FrameKind, Offered, Resync, RoomKey, Viewer};
use crate::wire;
use bytes::Bytes;
use futures::StreamExt;
use shared::mutex;
use shared::subjects::Subjects;
use shared::{Event, ItemId, Timestamp};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tungstenite::Utf8Bytes;

/// What every room of one instance shares.
pub struct RoomSettings {
    pub nats: async_nats::Client,
    pub store: Store,
    pub subjects: Subjects,
    pub subject_prefix: String,
    pub instance_id: String,
    pub reorder_hold: Duration,
    pub presence_interval: Duration,
    pub presence_expiry: Duration,
    pub viewers_min_interval: Duration,
    /// `PARALLEL_PASS_MIN_VIEWERS`: rooms this large split a pass over the cores.
    pub parallel_pass_min: usize,
    pub metrics: Arc<Metrics>,
}

/// After Redis failed to serve a snapshot, further requests fail at once for this long
/// instead of queueing behind one another for a full timeout each.
const UNAVAILABLE_BACKOFF: Duration = Duration::from_millis(500);

/// The last snapshot read, and when its read started.
struct CachedSnapshot {
    started: Instant,
    snapshot: Option<Arc<Snapshot>>,
}

/// The single flight's state: the last good read, and when Redis last failed.
#[derive(Default)]
struct SnapshotFlight {
    cached: Option<CachedSnapshot>,
    failed_at: Option<Instant>,
}

pub struct Room {
    item: ItemId,
    /// This room's key, carried by its frames (the viewers' fast track lookup).
    key: RoomKey,
    /// Viewers from which a pass is split over the cores (see [`Room::fan_out`]).
    parallel_pass_min: usize,
    /// Viewers by connection id. A std mutex: it is held while offering a frame to each viewer
    /// (a non-blocking write, never an `.await`) and for inserts and removals.
    viewers: Mutex<HashMap<u64, Arc<Viewer>>>,
    /// The latest `viewers` frame (WebSocket bytes), for viewers who just received their
    /// snapshot.
    latest_viewers: Mutex<Option<Bytes>>,
    /// `seq + 1` of the first snapshot read (`0`: none yet): where the room's sequencer
    /// continues from, so an early event is not mistaken for the first one.
    first_snapshot_seq: AtomicU64,
    /// `true` once the live subscription is in force at the server.
    ready: watch::Sender<bool>,
    /// Cancelled when the last viewer leaves (or the service stops).
    stop: CancellationToken,
    /// A tokio mutex on purpose: it is held across the Redis read so concurrent requests
    /// wait for the read in flight instead of starting their own.
    snapshot: tokio::sync::Mutex<SnapshotFlight>,
    store: Store,
}

impl Room {
    pub(crate) fn new(
        item: ItemId,
        store: Store,
        stop: CancellationToken,
        parallel_pass_min: usize,
    ) -> Self {
        Self {
            item,
            key: RoomKey::next(),
            parallel_pass_min,
            viewers: Mutex::new(HashMap::new()),
            latest_viewers: Mutex::new(None),
            first_snapshot_seq: AtomicU64::new(0),
            ready: watch::Sender::new(false),
            stop,
            snapshot: tokio::sync::Mutex::new(SnapshotFlight::default()),
            store,
        }
    }

    fn viewers(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Viewer>>> {
        mutex::lock(&self.viewers)
    }

    /// Adds a viewer; returns how many this room has now.
    pub(crate) fn add(&self, viewer: &Arc<Viewer>) -> usize {
        let mut viewers = self.viewers();
        viewers.insert(viewer.id(), Arc::clone(viewer));
        viewers.len()
    }

    /// Removes a viewer; returns how many remain.
    pub(crate) fn remove(&self, viewer_id: u64) -> usize {
        let mut viewers = self.viewers();
        viewers.remove(&viewer_id);
        viewers.len()
    }

    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }

    /// Viewers of this room in this instance.
    pub fn local_count(&self) -> u64 {
        u64::try_from(self.viewers().len()).unwrap_or(u64::MAX)
    }

    /// Asks every viewer for a fresh snapshot of this item.
    pub(crate) fn resync_all(&self, reason: Resync) {
        for viewer in self.viewers().values() {
            viewer.request_snapshot(&self.item, reason);
        }
    }

    /// Waits until the live subscription is in force (or the room gave up waiting for NATS).
    pub(crate) async fn wait_ready(&self) {
        if !crate::nats::confirmed(&self.ready).await {
            tracing::warn!(item_id = %self.item, "room not confirmed by NATS; serving anyway");
        }
    }

    /// A snapshot read from Redis no earlier than `since`; `None` when the item does not
    /// exist. Reuses the last read when it started at or after `since`.
    ///
    /// # Errors
    /// When Redis is unavailable (or was, moments ago) or the item hash is malformed.
    pub async fn snapshot(&self, since: Instant) -> Result<Option<Arc<Snapshot>>, StoreError> {
        let mut flight = self.snapshot.lock().await;
        if let Some(hit) = flight.cached.as_ref().filter(|c| c.started >= since) {
            return Ok(hit.snapshot.clone());
        }
        if flight
            .failed_at
            .is_some_and(|at| at.elapsed() < UNAVAILABLE_BACKOFF)
        {
            return Err(StoreError::Unavailable("failed moments ago".to_owned()));
        }
        let started = Instant::now();
        let state = match self.store.item_state(&self.item).await {
            Ok(state) => state,
            Err(e) => {
                if let StoreError::Unavailable(why) = &e {
                    tracing::warn!(item_id = %self.item, error = %why, "snapshot read failed; viewers will retry");
                    flight.failed_at = Some(Instant::now());
                }
                return Err(e);
            }
        };
        let snapshot = state.map(|s| Arc::new(Snapshot::encode(&s, Timestamp::now())));
        if let Some(snapshot) = &snapshot {
            let _ = self.first_snapshot_seq.compare_exchange(
                0,
                snapshot.seq.saturating_add(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        flight.failed_at = None;
        flight.cached = Some(CachedSnapshot {
            started,
            snapshot: snapshot.clone(),
        });
        Ok(snapshot)
    }

    /// The latest `viewers` frame, if a count is known yet.
    pub fn latest_viewers(&self) -> Option<Bytes> {
        mutex::lock(&self.latest_viewers).clone()
    }

    /// The `seq` of the room's first snapshot, once one was read.
    fn first_snapshot_seq(&self) -> Option<u64> {
        self.first_snapshot_seq
            .load(Ordering::Relaxed)
            .checked_sub(1)
    }

    /// Offers `frame` to every viewer in one pass: each either gets the bytes written to its
    /// socket right here or has them queued for its session (see [`Viewer::offer`]).
    ///
    /// A room of at least `PARALLEL_PASS_MIN_VIEWERS` (2,048) viewers is split into one share per core,
    /// written at once by this thread and scoped helper threads: a pass is one `send` per
    /// socket (about 6 µs each here, the kernel's loopback floor), so one core for 10,000
    /// viewers is 60 ms a frame; two cores halve it. Every viewer is in exactly one share and
    /// the pass returns only when all are done, so each viewer still gets the room's frames in
    /// order, and its mutex keeps the write beside the ordering decision as before. The room's
    /// map stays locked for the pass, as it was.
    fn fan_out(&self, metrics: &Metrics, frame: &Arc<Frame>) {
        let sent = {
            let viewers = self.viewers();
            let shares = pass_shares(viewers.len(), self.parallel_pass_min);
            if shares <= 1 {
                offer_all(viewers.values(), metrics, frame)
            } else {
                let all: Vec<&Arc<Viewer>> = viewers.values().collect();
                let per_share = all.len().div_ceil(shares);
                let mut chunks = all.chunks(per_share);
                let here = chunks.next().unwrap_or_default();
                std::thread::scope(|scope| {
                    let helpers: Vec<_> = chunks
                        .map(|chunk| {
                            scope.spawn(move || offer_all(chunk.iter().copied(), metrics, frame))
                        })
                        .collect();
                    let mut sent = offer_all(here.iter().copied(), metrics, frame);
                    for helper in helpers {
                        // `offer` does not panic; if a helper did, its share's count is lost,
                        // nothing else (the viewers' state is behind their own mutexes).
                        sent += helper.join().unwrap_or(0);
                    }
                    sent
                })
            }
        };
        let kind = match frame.kind {
            FrameKind::Event { .. } => "event",
            FrameKind::Viewers => "viewers",
        };
        metrics.sent(kind, sent);
    }
}

/// How many shares a pass over `viewers` is split into: one per core for a room of at least
/// `min` (below the default 2,048 a pass takes a few milliseconds, less than starting a thread
/// is worth), else one.
fn pass_shares(viewers: usize, min: usize) -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    if viewers < min {
        return 1;
    }
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// Offers `frame` to each of `viewers`; how many got it written (or queued).
fn offer_all<'a>(
    viewers: impl Iterator<Item = &'a Arc<Viewer>>,
    metrics: &Metrics,
    frame: &Arc<Frame>,
) -> u64 {
    let mut sent = 0;
    for viewer in viewers {
        if viewer.offer(frame) == Offered::Sent {
            sent += 1;
            metrics
                .fan_out_latency
                .observe(frame.received.elapsed().as_secs_f64());
        }
    }
    sent
}

/// Subscribes to the item's live events and presence, confirms the subscriptions, then fans
/// events out and keeps presence until the room is stopped. Publishes a final count of zero
/// on the way out so other instances drop this one's viewers at once.
pub(crate) async fn run(room: Arc<Room>, settings: Arc<RoomSettings>) {
    let nats = &settings.nats;
    let Some((mut live, mut beats)) = subscribe(&room, &settings).await else {
        room.ready.send_replace(true);
        return;
    };
    if nats.connection_state() == async_nats::connection::State::Connected
        && let Err(e) = crate::nats::barrier(nats, crate::nats::CONFIRM_TIMEOUT).await
    {
        tracing::warn!(item_id = %room.item, error = %e, "subscription not confirmed; a reconnect will resync");
    }
    room.ready.send_replace(true);
    settings.metrics.rooms.inc();
    tracing::debug!(item_id = %room.item, "room open");

    let presence_subject = presence::subject(&settings.subject_prefix, &room.item);
    let mut sequencer = Sequencer::new(settings.reorder_hold);
    let mut presence = Presence::new(settings.instance_id.clone(), settings.presence_expiry);
    let mut throttle = CountThrottle::new(settings.viewers_min_interval);
    let mut beat = Heartbeat::default();
    let mut total: Option<u64> = None;
    let mut released = Vec::new();
    // Local joins and leaves show up within a quarter of the presence interval.
    let mut tick = tokio::time::interval(settings.presence_interval / 4);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        let hold_deadline = sequencer.deadline();
        // Every branch is cancellation-safe: `next()` on a subscription either yields a
        // message or leaves it queued; ticks and sleeps hold no data. Not `biased`: a busy
        // live subject must not starve the hold deadline or the presence tick.
        tokio::select! {
            () = room.stop.cancelled() => break,
            message = live.next() => match message {
                Some(message) => {
                    on_live(&room, &settings.metrics, message, &mut sequencer, &mut released);
                }
                // Only when the NATS client itself is closed (the service is stopping).
                None => break,
            },
            message = beats.next() => {
                if let Some(message) = message
                    && let Ok(received) = serde_json::from_slice::<PresenceBeat>(&message.payload)
                    && received.item_id == room.item
                    && presence.record(received, Instant::now()) == Recorded::NewInstance
                {
                    beat.announce = true;
                }
            }
            () = sleep_until(hold_deadline), if hold_deadline.is_some() => {
                if let Some(seq) = room.first_snapshot_seq() {
                    sequencer.seed(seq, &mut released);
                }
                sequencer.expire(Instant::now(), &mut released);
                for frame in released.drain(..) {
                    room.fan_out(&settings.metrics, &frame);
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                let local = room.local_count();
                if beat.due(local, now, settings.presence_interval) {
                    publish_beat(nats, &presence_subject, &room.item, &settings.instance_id, local).await;
                    beat.sent(local, now);
                }
                presence.expire(now);
                let count = presence.total(local);
                if total != Some(count) {
                    total = Some(count);
                    *mutex::lock(&room.latest_viewers) =
                        Some(wire::text(&viewers_frame(&room.item, count)));
                }
                if throttle.should_send(count, now) && let Some(wire) = room.latest_viewers() {
                    room.fan_out(&settings.metrics, &Arc::new(Frame {
                        room: room.key,
                        item: room.item.clone(),
                        kind: FrameKind::Viewers,
                        wire,
                        received: now,
                    }));
                }
            }
        }
    }

    publish_beat(
        nats,
        &presence_subject,
        &room.item,
        &settings.instance_id,
        0,
    )
    .await;
    let _ = live.unsubscribe().await;
    let _ = beats.unsubscribe().await;
    settings.metrics.rooms.dec();
    tracing::debug!(item_id = %room.item, "room closed");
}

/// Subscribes to the live and presence subjects, retrying until it works or the room stops.
async fn subscribe(
    room: &Room,
    settings: &RoomSettings,
) -> Option<(async_nats::Subscriber, async_nats::Subscriber)> {
    let nats = &settings.nats;
    let live_subject = settings.subjects.live(&room.item);
    let presence_subject = presence::subject(&settings.subject_prefix, &room.item);
    let live = crate::nats::subscribe_retrying(nats, &live_subject, &room.stop).await?;
    let beats = crate::nats::subscribe_retrying(nats, &presence_subject, &room.stop).await?;
    Some((live, beats))
}

/// Decodes one live message, orders it and fans out whatever may go now.
#[tracing::instrument(name = "fan_out", level = "debug", skip_all, fields(item_id = %room.item, event_id, seq))]
fn on_live(
    room: &Room,
    metrics: &Metrics,
    message: async_nats::Message,
    sequencer: &mut Sequencer<Arc<Frame>>,
    released: &mut Vec<Arc<Frame>>,
) {
    let received = Instant::now();
    metrics.events_received.inc();
    let event = match serde_json::from_slice::<Event>(&message.payload) {
        Ok(event) if event.item_id() == &room.item => event,
        Ok(_) | Err(_) => {
            metrics.events_invalid.inc();
            tracing::warn!(subject = %message.subject, "ignoring a live message that is not this item's event");
            return;
        }
    };
    let span = tracing::Span::current();
    span.record("event_id", tracing::field::display(event.event_id()));
    span.record("seq", event.seq());
    // The payload is the event's JSON as the gateway encoded it: forward those very bytes,
    // framed once for every viewer.
    let Ok(text) = Utf8Bytes::try_from(message.payload) else {
        metrics.events_invalid.inc();
        return;
    };
    let frame = Arc::new(Frame {
        room: room.key,
        item: room.item.clone(),
        kind: FrameKind::Event { seq: event.seq() },
        wire: wire::text(&text),
        received,
    });
    if let Some(seq) = room.first_snapshot_seq() {
        sequencer.seed(seq, released);
    }
    sequencer.push(event.seq(), frame, received, released);
    for frame in released.drain(..) {
        room.fan_out(metrics, &frame);
    }
}

/// When this instance last published its count, and which.
#[derive(Default)]
struct Heartbeat {
    sent: Option<(u64, Instant)>,
    /// Another instance just appeared and should hear our count now.
    announce: bool,
}

impl Heartbeat {
    fn due(&self, local: u64, now: Instant, interval: Duration) -> bool {
        match self.sent {
            None => true,
            Some((count, at)) => self.announce || count != local || now >= at + interval,
        }
    }

    fn sent(&mut self, local: u64, now: Instant) {
        self.sent = Some((local, now));
        self.announce = false;
    }
}

/// Publishes this instance's count of one item (best effort: a lost beat is repeated at the
/// next heartbeat, and counts expire on their own).
async fn publish_beat(
    nats: &async_nats::Client,
    subject: &str,
    item: &ItemId,
    instance: &str,
    count: u64,
) {
    let beat = PresenceBeat {
        instance: instance.to_owned(),
        item_id: item.clone(),
        count,
        timestamp: Timestamp::now(),
    };
    let Ok(payload) = serde_json::to_vec(&beat) else {
        return;
    };
    if let Err(e) = nats.publish(subject.to_owned(), payload.into()).await {
        tracing::debug!(error = %e, "presence beat not published");
    }
}
