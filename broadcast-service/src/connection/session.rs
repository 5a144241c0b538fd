//! The connection's own task: what it watches, its snapshots, its replies and the bytes its
//! socket could not take at once.
//!
//! Rooms write live events straight to the socket (see [`Viewer::offer`]); the session does
//! everything else. The ordering rules that make "snapshot, then every later event once, in
//! order" hold even when events race the snapshot:
//!
//! 1. **Register first.** A subscribe starts tracking the item (its events are held from then
//!    on) and joins the room, which returns only once the item's NATS subscription is in
//!    force, so every event published from then on reaches the viewer.
//! 2. **Then read.** The snapshot is read from Redis after that; the gateway commits an event
//!    to Redis before publishing it, so any event the snapshot does not include arrives later.
//! 3. **Filter by `seq`.** Held events with `seq <= snapshot.seq` are skipped; later ones must
//!    be exactly `last + 1`. A jump means an event was lost (NATS outage, overflow): a fresh
//!    snapshot is due.
//!
//! Conflation uses the same path: a room that finds the viewer's queue full drops the frame
//! and flags the item; the session reads a fresh snapshot once the socket has taken what
//! waits, so a slow viewer gets the newest state rather than its backlog. Every reason to
//! resync records *when* it arose, and the snapshot must be read after that moment (see
//! [`Room::snapshot`]).

use super::cursors::Cursors;
use super::sign_in::SignIn;
use super::{ConnectionContext, Control};
use crate::deadline::sleep_until;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::protocol::unsubscribed_frame;
use crate::room::Room;
use crate::store::StoreError;
use crate::viewer::{Resync, Viewer};
use crate::wire::{self, close_code};
use futures::StreamExt;
use futures::channel::mpsc;
use shared::ItemId;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Wait before retrying a snapshot Redis could not serve.
const SNAPSHOT_RETRY: Duration = Duration::from_secs(1);
/// Longest a closing session waits for its last bytes (the close frame) to go out.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

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
    due: Option<Due>,
}

/// Why the session stopped.
enum End {
    /// The client left, or a close frame was written.
    Closed,
    /// The socket failed or did not take a write in time.
    SocketFailed,
}

struct Session<'a> {
    viewer: Arc<Viewer>,
    context: &'a ConnectionContext,
    metrics: &'a Metrics,
    cursors: Cursors<Cursor>,
    sign_in: SignIn,
}

/// Serves the connection until the reader ends, a close is requested, the service shuts down
/// (close 1001) or the socket fails; then leaves every room.
pub(crate) async fn run(
    viewer: Arc<Viewer>,
    mut requests: mpsc::Receiver<Control>,
    context: &ConnectionContext,
) {
    let mut session = Session {
        viewer,
        context,
        metrics: &context.metrics,
        cursors: Cursors::default(),
        sign_in: SignIn::default(),
    };
    match session.serve(&mut requests).await {
        End::Closed => session.finish_writing().await,
        End::SocketFailed => {
            tracing::debug!(connection = session.viewer.id(), "socket failed or stalled");
        }
    }
    let items: Vec<ItemId> = session.cursors.keys().cloned().collect();
    for item in items {
        session.forget(&item);
    }
    session.sign_in.end(session.viewer.id(), context);
}

impl Session<'_> {
    async fn serve(&mut self, requests: &mut mpsc::Receiver<Control>) -> End {
        let ping_every = self.context.settings.ping_interval;
        let write_timeout = self.context.settings.write_timeout;
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Created once, not once per loop: every session of the instance waits on the same
        // shutdown token, and re-registering with its waiter list on each wake-up serialised
        // all sessions on one lock (visible in a 10,000-viewer profile).
        let shutdown = self.context.shutdown.clone();
        let mut shutdown = std::pin::pin!(shutdown.cancelled());
        let viewer = Arc::clone(&self.viewer);
        let mut woken = std::pin::pin!(viewer.woken());
        loop {
            if viewer.is_closed() {
                return End::SocketFailed;
            }
            self.take_resyncs();
            // A due snapshot waits until the socket took everything queued before it, so a
            // slow viewer gets the newest state, not a snapshot stuck behind its backlog.
            // Boxed, like every rare await here (a request, the sign-in): a Redis read is a
            // future far larger than the idle loop's, and inline it would be laid out in every
            // connection's state for as long as the socket lives.
            if viewer.is_drained() && self.cursors.values().any(|cursor| cursor.due.is_some()) {
                Box::pin(self.send_due_snapshots()).await;
            }
            let stalled = viewer.stalled_since();
            let stall_deadline = stalled.map(|since| since + write_timeout);
            // `None` for an anonymous socket: no timer at all.
            let signed_in_until = self.sign_in.until();
            // One timer for the three deadlines (the sign-in's end, a stalled write's, a
            // snapshot retry's), not one each: every branch's future is laid out in the
            // connection's state whether it is enabled or not.
            let deadline = [signed_in_until, stall_deadline, self.next_retry()]
                .into_iter()
                .flatten()
                .min();
            // Every branch is cancellation-safe: `next` leaves unreceived values queued,
            // `woken` keeps its permit, `drain` writes only after the socket is writable and
            // then without waiting, ticks and sleeps hold no data (an expiry that fires is
            // handled at once). Client requests are taken only while nothing waits for the
            // socket: a client that sends without reading is slowed down instead of buffered
            // for.
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    self.close(close_code::AWAY, "server shutting down");
                    return End::Closed;
                }
                () = &mut woken => woken.set(viewer.woken()),
                drained = viewer.drain(), if stalled.is_some() => {
                    if drained.is_err() {
                        return End::SocketFailed;
                    }
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    let now = Instant::now();
                    if signed_in_until.is_some_and(|until| until <= now) {
                        self.sign_in.expire(&self.viewer, self.context);
                    }
                    if stall_deadline.is_some_and(|at| at <= now) {
                        return End::SocketFailed;
                    }
                    // Otherwise a snapshot retry is due: the loop's top sends it.
                }
                request = requests.next(), if stalled.is_none() => match request {
                    None => return End::Closed,
                    Some(Control::Close(code, reason)) => {
                        self.close(code, reason);
                        return End::Closed;
                    }
                    Some(request) => Box::pin(self.handle(request)).await,
                },
                _ = ping.tick() => self.send(&wire::ping(), "ping"),
            }
        }
    }

    async fn handle(&mut self, request: Control) {
        match request {
            Control::Subscribe(item) => self.subscribe(item).await,
            Control::Authenticate(token) => {
                self.sign_in
                    .authenticate(&token, &self.viewer, self.context)
                    .await;
            }
            Control::Unsubscribe(item) => {
                if self.forget(&item) {
                    self.send(&wire::text(&unsubscribed_frame(&item)), "reply");
                } else {
                    self.error(ApiError::NotSubscribed(item.clone()), &item);
                }
            }
            Control::Reply(text, kind) => self.send(&wire::text(&text), kind),
            // Handled by the caller, which ends the session.
            Control::Close(..) => {}
        }
    }

    #[tracing::instrument(name = "ws.subscribe", level = "debug", skip_all, fields(connection = self.viewer.id(), item_id = %item))]
    async fn subscribe(&mut self, item: ItemId) {
        if let Some(cursor) = self.cursors.get_mut(&item) {
            // Subscribing again asks for a fresh snapshot.
            self.viewer.track(&item);
            cursor.due = Some(Due::now(Resync::Subscribe));
            return;
        }
        if self.context.missing.contains(&item) {
            self.metrics.missing_item_answers.inc();
            self.error(ApiError::ItemNotFound(item.clone()), &item);
            return;
        }
        let max = self.context.settings.max_subscriptions;
        if self.cursors.len() >= max {
            self.error(ApiError::TooManySubscriptions { max }, &item);
            return;
        }
        self.viewer.track(&item);
        let room = self.context.hub.join(&item, &self.viewer).await;
        self.metrics.subscriptions.inc();
        self.cursors.insert(
            item,
            Cursor {
                room,
                due: Some(Due::now(Resync::Subscribe)),
            },
        );
    }

    /// Stops watching `item`; whether it was watched.
    fn forget(&mut self, item: &ItemId) -> bool {
        if self.cursors.remove(item).is_none() {
            return false;
        }
        self.viewer.untrack(item);
        self.context.hub.leave(item, self.viewer.id());
        self.metrics.subscriptions.dec();
        true
    }

    fn send(&self, wire: &bytes::Bytes, kind: &'static str) {
        self.viewer.send(wire);
        self.metrics.sent(kind, 1);
    }

    fn error(&self, error: ApiError, item: &ItemId) {
        self.metrics.client_error(error.code());
        self.send(&wire::text(&error.to_frame(Some(item))), "error");
    }

    /// Turns resync requests from rooms and the reconnect watcher into due snapshots.
    fn take_resyncs(&mut self) {
        for (item, reason) in self.viewer.take_resyncs() {
            if let Some(cursor) = self.cursors.get_mut(&item)
                && cursor.due.is_none()
            {
                // The request made the item's events wait, but a snapshot installed since (one
                // that was already being read) made them live again. Hold them until this one,
                // or an event written while it is read could precede a snapshot older than it.
                self.viewer.track(&item);
                cursor.due = Some(Due::now(reason));
            }
        }
    }

    /// Reads and writes every snapshot that is due (and not waiting for a retry). Once Redis
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
                    if !self.cursors.contains_key(&item) {
                        continue;
                    }
                    let viewers = room.latest_viewers();
                    let followed = self.viewer.install_snapshot(
                        &item,
                        snapshot.seq,
                        &snapshot.wire,
                        viewers.as_ref(),
                    );
                    if let Some(cursor) = self.cursors.get_mut(&item) {
                        cursor.due = None;
                    }
                    self.metrics.sent("snapshot", 1);
                    if viewers.is_some() {
                        self.metrics.sent("viewers", 1);
                    }
                    if followed > 0 {
                        self.metrics.sent("event", followed);
                    }
                    self.metrics.snapshot(due.reason.as_str());
                    if due.reason == Resync::Lagged {
                        self.metrics.conflations.inc();
                    }
                }
                Ok(None) => {
                    self.context.missing.insert(&item);
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

    /// Writes a close frame after what waits; nothing is written after it.
    fn close(&self, code: u16, reason: &'static str) {
        self.viewer.close(&wire::close(code, reason));
        self.metrics.sent("close", 1);
    }

    /// Gives the socket a moment to take what still waits (the close frame, a reply).
    async fn finish_writing(&self) {
        let grace = self.context.settings.write_timeout.min(CLOSE_GRACE);
        self.viewer.finish(grace).await;
    }
}
