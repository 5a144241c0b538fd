//! The writing half of a connection and the owner of what it watches.
//!
//! For each watched item the session keeps a cursor: the room, the last `seq` written, and
//! whether a snapshot is due. The ordering rules that make "snapshot, then every later event
//! once, in order" hold even when events race the snapshot:
//!
//! 1. **Register first.** A subscribe joins the room, which returns only once the item's NATS
//!    subscription is in force, so every event published from then on reaches the queue.
//! 2. **Then read.** The snapshot is read from Redis after that; the gateway commits an event
//!    to Redis before publishing it, so any event the snapshot does not include arrives later.
//! 3. **Filter by `seq`.** Events queued before the snapshot with `seq <= snapshot.seq` are
//!    skipped; later ones must be exactly `last + 1`. A jump means an event was lost (NATS
//!    outage, overflow): the event is dropped and a fresh snapshot is due.
//!
//! Conflation uses the same path: a room that finds the queue full drops the frame and flags
//! the item; the session then reads a fresh snapshot before anything else and skips the
//! backlog it covers. Every reason to resync records *when* it arose, and the snapshot must
//! be read after that moment (see [`Room::snapshot`]).

use super::Control;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::protocol::unsubscribed_frame;
use crate::room::Room;
use crate::routes::AppState;
use crate::store::StoreError;
use crate::viewer::{Frame, FrameKind, Resync, Viewer};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use futures::SinkExt;
use futures::stream::SplitSink;
use shared::ItemId;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Frames taken off the queue and written with one flush.
const BATCH: usize = 64;
/// Wait before retrying a snapshot Redis could not serve.
const SNAPSHOT_RETRY: Duration = Duration::from_secs(1);

type Sink = SplitSink<WebSocket, Message>;

/// A snapshot this cursor is waiting for.
#[derive(Debug, Clone, Copy)]
struct Due {
    reason: Resync,
    /// The snapshot must be read no earlier than this.
    since: Instant,
    /// Not before this (after Redis failed).
    retry_at: Option<Instant>,
    /// The client was told the snapshot is delayed.
    warned: bool,
}

impl Due {
    fn now(reason: Resync) -> Self {
        Self {
            reason,
            since: Instant::now(),
            retry_at: None,
            warned: false,
        }
    }
}

struct Cursor {
    room: Arc<Room>,
    /// `seq` of the last snapshot or event written.
    last_seq: u64,
    due: Option<Due>,
}

/// Why the session stopped writing.
enum End {
    /// The client left, or a close frame was written.
    Closed,
    /// The socket failed or did not take a write in time.
    SocketFailed,
}

struct Session<'a> {
    sink: Sink,
    viewer: Arc<Viewer>,
    state: &'a AppState,
    metrics: &'a Metrics,
    cursors: HashMap<ItemId, Cursor>,
    /// Frames to write at the next flush, with their metric kind.
    out: Vec<(Message, &'static str)>,
    /// Receipt times of the events in `out`, observed once they are written.
    received: Vec<Instant>,
}

/// Writes to the socket until the reader ends, a close is requested, the service shuts down
/// (close 1001) or the socket fails; then leaves every room.
pub(crate) async fn run(
    sink: Sink,
    viewer: Arc<Viewer>,
    mut queue: mpsc::Receiver<Arc<Frame>>,
    mut requests: mpsc::Receiver<Control>,
    state: &AppState,
) {
    let mut session = Session {
        sink,
        viewer,
        state,
        metrics: &state.metrics,
        cursors: HashMap::new(),
        out: Vec::new(),
        received: Vec::new(),
    };
    let end = session.serve(&mut queue, &mut requests).await;
    if matches!(end, End::SocketFailed) {
        tracing::debug!(connection = session.viewer.id(), "socket failed or stalled");
    }
    let items: Vec<ItemId> = session.cursors.keys().cloned().collect();
    for item in items {
        session.forget(&item);
    }
}

impl Session<'_> {
    async fn serve(
        &mut self,
        queue: &mut mpsc::Receiver<Arc<Frame>>,
        requests: &mut mpsc::Receiver<Control>,
    ) -> End {
        let ping_every = self.state.config.ping_interval();
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Created once, not once per loop: every session of the instance waits on the same
        // shutdown token, and re-registering with its waiter list on each event serialised
        // all sessions on one lock (visible in a 10,000-viewer profile).
        let shutdown = self.state.shutdown.clone();
        let mut shutdown = std::pin::pin!(shutdown.cancelled());
        let viewer = Arc::clone(&self.viewer);
        let mut woken = std::pin::pin!(viewer.woken());
        loop {
            self.take_resyncs();
            self.send_due_snapshots().await;
            if self.flush().await.is_err() {
                return End::SocketFailed;
            }
            let retry = self.next_retry();
            // Every branch is cancellation-safe: `recv` leaves unreceived values queued,
            // `woken` keeps its permit, ticks and sleeps hold no data. The order matters:
            // resync requests and pings come before the queue, so a busy item can neither
            // delay a conflation nor starve the keepalive.
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    return self.close(close_code::AWAY, "server shutting down").await;
                }
                request = requests.recv() => match request {
                    None => return End::Closed,
                    Some(Control::Close(code, reason)) => return self.close(code, reason).await,
                    Some(request) => self.handle(request).await,
                },
                () = &mut woken => woken.set(viewer.woken()),
                _ = ping.tick() => self.out.push((Message::Ping(bytes::Bytes::new()), "ping")),
                () = sleep_until(retry), if retry.is_some() => {}
                frame = queue.recv() => {
                    // The viewer (held here) keeps the sender alive, so `None` cannot happen.
                    if let Some(frame) = frame {
                        self.deliver(&frame);
                        while self.out.len() < BATCH && let Ok(frame) = queue.try_recv() {
                            self.deliver(&frame);
                        }
                    }
                }
            }
        }
    }

    async fn handle(&mut self, request: Control) {
        match request {
            Control::Subscribe(item) => self.subscribe(item).await,
            Control::Unsubscribe(item) => {
                if self.forget(&item) {
                    self.out
                        .push((Message::Text(unsubscribed_frame(&item)), "reply"));
                } else {
                    self.error(ApiError::NotSubscribed(item.clone()), &item);
                }
            }
            Control::Reply(text, kind) => self.out.push((Message::Text(text), kind)),
            // Handled by the caller, which ends the session.
            Control::Close(..) => {}
        }
    }

    #[tracing::instrument(name = "ws.subscribe", level = "debug", skip_all, fields(connection = self.viewer.id(), item_id = %item))]
    async fn subscribe(&mut self, item: ItemId) {
        if let Some(cursor) = self.cursors.get_mut(&item) {
            // Subscribing again asks for a fresh snapshot.
            cursor.due = Some(Due::now(Resync::Subscribe));
            return;
        }
        let max = self.state.config.max_subscriptions_per_connection;
        if self.cursors.len() >= max {
            self.error(ApiError::TooManySubscriptions { max }, &item);
            return;
        }
        let room = self.state.hub.join(&item, &self.viewer).await;
        self.metrics.subscriptions.inc();
        self.cursors.insert(
            item,
            Cursor {
                room,
                last_seq: 0,
                due: Some(Due::now(Resync::Subscribe)),
            },
        );
    }

    /// Stops watching `item`; whether it was watched.
    fn forget(&mut self, item: &ItemId) -> bool {
        if self.cursors.remove(item).is_none() {
            return false;
        }
        self.state.hub.leave(item, self.viewer.id());
        self.metrics.subscriptions.dec();
        true
    }

    fn error(&mut self, error: ApiError, item: &ItemId) {
        self.metrics.client_error(error.code());
        self.out
            .push((Message::Text(error.to_frame(Some(item))), "error"));
    }

    /// Turns resync requests from rooms and the reconnect watcher into due snapshots.
    fn take_resyncs(&mut self) {
        for (item, reason) in self.viewer.take_resyncs() {
            if let Some(cursor) = self.cursors.get_mut(&item)
                && cursor.due.is_none()
            {
                cursor.due = Some(Due::now(reason));
            }
        }
    }

    /// Reads and queues every snapshot that is due (and not waiting for a retry). Once Redis
    /// fails, the rest wait for the next retry too, so a session never spends one timeout per
    /// watched item in a row.
    async fn send_due_snapshots(&mut self) {
        let now = Instant::now();
        let due: Vec<(ItemId, Due, Arc<Room>)> = self
            .cursors
            .iter()
            .filter_map(|(item, cursor)| {
                let due = cursor.due?;
                due.retry_at
                    .is_none_or(|at| at <= now)
                    .then(|| (item.clone(), due, Arc::clone(&cursor.room)))
            })
            .collect();
        let mut redis_down = false;
        for (item, due, room) in due {
            let result = if redis_down {
                Err(StoreError::Unavailable("skipped this round".to_owned()))
            } else {
                room.snapshot(due.since).await
            };
            match result {
                Ok(Some(snapshot)) => {
                    if let Some(cursor) = self.cursors.get_mut(&item) {
                        cursor.last_seq = snapshot.seq;
                        cursor.due = None;
                    }
                    self.out
                        .push((Message::Text(snapshot.text.clone()), "snapshot"));
                    self.metrics.snapshot(due.reason.as_str());
                    if due.reason == Resync::Lagged {
                        self.metrics.conflations.inc();
                    }
                    if let Some(viewers) = room.latest_viewers() {
                        self.out.push((Message::Text(viewers), "viewers"));
                    }
                }
                Ok(None) => {
                    self.forget(&item);
                    self.error(ApiError::ItemNotFound(item.clone()), &item);
                }
                Err(StoreError::Unavailable(_)) => {
                    redis_down = true;
                    if !due.warned {
                        self.error(ApiError::Unavailable("redis"), &item);
                    }
                    if let Some(cursor) = self.cursors.get_mut(&item) {
                        cursor.due = Some(Due {
                            retry_at: Some(Instant::now() + SNAPSHOT_RETRY),
                            warned: true,
                            ..due
                        });
                    }
                }
                Err(StoreError::Internal(e)) => {
                    self.forget(&item);
                    self.error(ApiError::Internal(e), &item);
                }
            }
        }
    }

    /// The earliest snapshot retry, if any waits.
    fn next_retry(&self) -> Option<Instant> {
        self.cursors
            .values()
            .filter_map(|cursor| cursor.due.and_then(|due| due.retry_at))
            .min()
    }

    /// Applies the ordering rules to one shared frame.
    fn deliver(&mut self, frame: &Frame) {
        self.viewer.dequeued(frame);
        let Some(cursor) = self.cursors.get_mut(&frame.item) else {
            // Not (or no longer) watched; a new subscription's snapshot covers it.
            return;
        };
        if cursor.due.is_some() {
            // The snapshot about to be read covers whatever this is.
            return;
        }
        match frame.kind {
            FrameKind::Viewers => self
                .out
                .push((Message::Text(frame.text.clone()), "viewers")),
            FrameKind::Event { seq } if seq <= cursor.last_seq => {}
            FrameKind::Event { seq } if seq == cursor.last_seq + 1 => {
                cursor.last_seq = seq;
                self.out.push((Message::Text(frame.text.clone()), "event"));
                self.received.push(frame.received);
            }
            FrameKind::Event { .. } => {
                cursor.due = Some(Due::now(Resync::Gap));
            }
        }
    }

    /// Writes everything queued with one flush, under the write timeout.
    #[tracing::instrument(name = "ws.write", level = "trace", skip_all, fields(connection = self.viewer.id(), frames = self.out.len()))]
    async fn flush(&mut self) -> Result<(), ()> {
        if self.out.is_empty() {
            return Ok(());
        }
        // A few kinds per flush at most: a linear scan beats hashing (no allocation either).
        let mut counts: [(&'static str, u64); 8] = [("", 0); 8];
        let out = std::mem::take(&mut self.out);
        let sink = &mut self.sink;
        let write = async {
            for (message, kind) in out {
                count(&mut counts, kind);
                sink.feed(message).await?;
            }
            sink.flush().await
        };
        match tokio::time::timeout(self.state.config.write_timeout(), write).await {
            Ok(Ok(())) => {
                for (kind, n) in counts.into_iter().filter(|(_, n)| *n > 0) {
                    self.metrics.sent(kind, n);
                }
                for received in self.received.drain(..) {
                    self.metrics
                        .fan_out_latency
                        .observe(received.elapsed().as_secs_f64());
                }
                Ok(())
            }
            Ok(Err(_)) | Err(_) => Err(()),
        }
    }

    /// Writes what is queued, then a close frame (best effort: the peer may be gone).
    async fn close(&mut self, code: u16, reason: &'static str) -> End {
        self.out.push((
            Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            })),
            "close",
        ));
        let _ = self.flush().await;
        End::Closed
    }
}

/// Adds one frame of `kind` to `counts`, which has a slot for every kind a session writes.
fn count(counts: &mut [(&'static str, u64)], kind: &'static str) {
    if let Some(slot) = counts
        .iter_mut()
        .find(|(k, n)| *k == kind || (*n == 0 && k.is_empty()))
    {
        slot.0 = kind;
        slot.1 += 1;
    }
}

/// Sleeps until `deadline`; pending forever without one (the branch is disabled then).
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
