//! A viewer: one WebSocket connection as the rooms see it, and the only way bytes reach its
//! socket.
//!
//! A room fans an event out by calling [`Viewer::offer`] on each of its viewers in one pass.
//! `offer` applies the ordering rules for that item (see [`Track`]) and, when nothing is
//! queued for the socket, writes the event's shared bytes straight to it with a non-blocking
//! `try_write`. No task is woken and nothing is copied per viewer: an event costs one write
//! system call per viewer. Only when the kernel's send buffer is full do the bytes wait, as a
//! reference-counted slice, in the viewer's queue, which its session drains once the socket
//! is writable again.
//!
//! The queue is bounded: a room frame that finds `queue_limit` frames already waiting is
//! dropped, and the item is marked for a fresh snapshot (conflation). Frames the session
//! writes itself (snapshots, replies, pings, the close frame) are few and bounded by the
//! session's own pace, so they are never dropped. Every write to the socket happens under
//! one mutex, so frames from rooms and from the session never interleave.

use crate::metrics::Metrics;
use bytes::{Buf, Bytes};
use shared::ItemId;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

/// What a shared frame is, as far as the ordering rules are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A live event with its item `seq`: delivered only in order, after the snapshot.
    Event { seq: u64 },
    /// A `viewers` count: delivered as it comes.
    Viewers,
}

/// One frame encoded once (as WebSocket bytes) and shared by every viewer of its item.
#[derive(Debug)]
pub struct Frame {
    pub item: ItemId,
    pub kind: FrameKind,
    pub wire: Bytes,
    /// When the room received it, for the fan-out latency histogram.
    pub received: Instant,
}

/// Why a viewer needs a fresh snapshot of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resync {
    /// A new subscription, or a subscribe for an item already watched.
    Subscribe,
    /// The viewer's queue was full and a frame was dropped.
    Lagged,
    /// An event arrived whose predecessor never did.
    Gap,
    /// NATS reconnected: events published while it was away are lost.
    Reconnect,
}

impl Resync {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subscribe => "subscribe",
            Self::Lagged => "lagged",
            Self::Gap => "gap",
            Self::Reconnect => "reconnect",
        }
    }
}

/// What became of a frame offered to a viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// Handed to the socket (or queued behind bytes already waiting for it).
    Sent,
    /// Not for this viewer now: not watched, already covered, or held until its snapshot.
    Skipped,
    /// Dropped because the viewer's queue was full; a snapshot is due instead.
    Lagged,
}

/// One watched item's ordering state: "a snapshot, then every later event once, in order".
#[derive(Debug, Default)]
struct Track {
    /// `seq` of the last snapshot or event written.
    last_seq: u64,
    /// Events are written as they come; `false` while a snapshot is due.
    live: bool,
    /// Events that arrived while a snapshot was due, to follow it (those it covers are
    /// skipped), so an event racing the snapshot read is neither lost nor duplicated.
    held: Vec<Arc<Frame>>,
    /// More events came than `held` may keep: the snapshot must be followed by another.
    held_overflowed: bool,
}

/// Bytes accepted for the socket that it has not taken yet, oldest first.
#[derive(Debug, Default)]
struct Queue {
    pending: VecDeque<Bytes>,
    /// When the socket last took bytes while some were waiting (or when they started to).
    stalled_since: Option<Instant>,
}

#[derive(Debug, Default)]
struct Outbound {
    queue: Queue,
    tracks: HashMap<ItemId, Track>,
    /// Items to resync, taken by the session. The first reason recorded wins, so a lag is
    /// counted as a conflation even if a reconnect follows before the session looks.
    resyncs: HashMap<ItemId, Resync>,
    /// The socket failed, or a close frame was written: nothing more goes out.
    closed: bool,
}

pub struct Viewer {
    id: u64,
    socket: Arc<TcpStream>,
    /// A std mutex: held for a map lookup and one non-blocking write, never across `.await`.
    out: Mutex<Outbound>,
    /// Wakes the session: a resync was requested, bytes started waiting, or the socket failed.
    wake: Notify,
    /// Room frames that may wait for the socket before the viewer counts as lagging.
    queue_limit: usize,
    metrics: Arc<Metrics>,
}

impl Viewer {
    pub fn new(id: u64, socket: Arc<TcpStream>, queue_limit: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            id,
            socket,
            out: Mutex::new(Outbound::default()),
            wake: Notify::new(),
            queue_limit: queue_limit.max(1),
            metrics,
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    fn out(&self) -> MutexGuard<'_, Outbound> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes a room's shared frame if the viewer's ordering rules let it through now. Never
    /// waits: a full socket queues it, a full queue drops it and asks for a snapshot.
    pub fn offer(&self, frame: &Arc<Frame>) -> Offered {
        let mut guard = self.out();
        let out = &mut *guard;
        if out.closed {
            return Offered::Skipped;
        }
        let Some(track) = out.tracks.get_mut(&frame.item) else {
            // Not (or no longer) watched; a new subscription's snapshot covers it.
            return Offered::Skipped;
        };
        if !track.live {
            if matches!(frame.kind, FrameKind::Event { .. }) {
                if track.held.len() < self.queue_limit {
                    track.held.push(Arc::clone(frame));
                } else {
                    track.held_overflowed = true;
                }
            }
            return Offered::Skipped;
        }
        if let FrameKind::Event { seq } = frame.kind {
            if seq <= track.last_seq {
                return Offered::Skipped;
            }
            if seq != track.last_seq + 1 {
                // The snapshot about to be read covers the missing events and this one.
                track.live = false;
                request(&mut out.resyncs, &frame.item, Resync::Gap);
                drop(guard);
                self.wake.notify_one();
                return Offered::Skipped;
            }
        }
        if out.queue.pending.len() >= self.queue_limit {
            track.live = false;
            request(&mut out.resyncs, &frame.item, Resync::Lagged);
            drop(guard);
            self.wake.notify_one();
            return Offered::Lagged;
        }
        if let FrameKind::Event { seq } = frame.kind {
            track.last_seq = seq;
        }
        self.write(out, &frame.wire);
        Offered::Sent
    }

    /// Writes a frame of the session's own (a reply, a ping) after whatever waits.
    pub fn send(&self, wire: &Bytes) {
        self.write(&mut self.out(), wire);
    }

    /// Writes a close frame; nothing is written after it.
    pub fn close(&self, wire: &Bytes) {
        let mut out = self.out();
        self.write(&mut out, wire);
        out.closed = true;
    }

    /// Starts watching `item` (or asks for a fresh snapshot of an item already watched):
    /// events are held from now on until [`Viewer::install_snapshot`].
    pub fn track(&self, item: &ItemId) {
        let mut out = self.out();
        out.tracks.entry(item.clone()).or_default().live = false;
    }

    /// Stops watching `item`: nothing more is written for it.
    pub fn untrack(&self, item: &ItemId) {
        let mut out = self.out();
        out.tracks.remove(item);
        out.resyncs.remove(item);
    }

    /// Writes a snapshot at `seq` (and the latest `viewers` frame), then the held events it
    /// does not cover, and makes the item live again. Returns how many held events followed.
    pub fn install_snapshot(
        &self,
        item: &ItemId,
        seq: u64,
        snapshot: &Bytes,
        viewers: Option<&Bytes>,
    ) -> u64 {
        let mut guard = self.out();
        let out = &mut *guard;
        if out.closed || !out.tracks.contains_key(item) {
            return 0;
        }
        self.write(out, snapshot);
        if let Some(viewers) = viewers {
            self.write(out, viewers);
        }
        let Some(track) = out.tracks.get_mut(item) else {
            return 0;
        };
        track.last_seq = seq;
        track.live = true;
        let held = std::mem::take(&mut track.held);
        let overflowed = std::mem::take(&mut track.held_overflowed);
        let mut followed = Vec::new();
        for frame in held {
            let FrameKind::Event { seq } = frame.kind else {
                continue;
            };
            if seq <= track.last_seq {
                continue;
            }
            if seq != track.last_seq + 1 {
                track.live = false;
                break;
            }
            track.last_seq = seq;
            followed.push(frame);
        }
        let resync = if !track.live {
            Some(Resync::Gap)
        } else if overflowed {
            // Events after the held ones were dropped: only a newer snapshot covers them.
            track.live = false;
            Some(Resync::Lagged)
        } else {
            None
        };
        if let Some(reason) = resync {
            request(&mut out.resyncs, item, reason);
            self.wake.notify_one();
        }
        for frame in &followed {
            self.write(out, &frame.wire);
        }
        u64::try_from(followed.len()).unwrap_or(u64::MAX)
    }

    /// Asks the session for a fresh snapshot of `item` (if watched); its events are held
    /// until then.
    pub fn request_snapshot(&self, item: &ItemId, reason: Resync) {
        let mut guard = self.out();
        let out = &mut *guard;
        let Some(track) = out.tracks.get_mut(item) else {
            return;
        };
        track.live = false;
        request(&mut out.resyncs, item, reason);
        drop(guard);
        self.wake.notify_one();
    }

    /// Takes the pending resync requests.
    pub fn take_resyncs(&self) -> HashMap<ItemId, Resync> {
        std::mem::take(&mut self.out().resyncs)
    }

    /// Completes when something for the session happened since the last call (a stored
    /// permit makes a wake-up before the call count). Cancellation-safe.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Whether the socket failed (or was closed): the session should end.
    pub fn is_closed(&self) -> bool {
        self.out().closed
    }

    /// Since when bytes have been waiting for the socket without it taking any; `None`
    /// when nothing waits.
    pub fn stalled_since(&self) -> Option<Instant> {
        self.out().queue.stalled_since
    }

    /// Whether nothing waits for the socket.
    pub fn is_drained(&self) -> bool {
        self.out().queue.pending.is_empty()
    }

    /// Waits until the socket can take bytes, then writes as many waiting ones as it takes.
    ///
    /// # Errors
    /// When the socket failed; the viewer is closed then.
    pub async fn drain(&self) -> io::Result<()> {
        self.socket.writable().await?;
        let mut out = self.out();
        let result = out.queue.flush(&self.socket, &self.metrics);
        if result.is_err() {
            self.fail(&mut out);
        }
        result
    }

    /// Writes `wire` straight to the socket when nothing waits, else queues it (nothing
    /// once closed); wakes the session when bytes start waiting or the socket fails.
    fn write(&self, out: &mut Outbound, wire: &Bytes) {
        if out.closed {
            return;
        }
        let was_empty = out.queue.pending.is_empty();
        match out.queue.write(&self.socket, wire, &self.metrics) {
            Ok(()) => {
                if was_empty && !out.queue.pending.is_empty() {
                    self.wake.notify_one();
                }
            }
            Err(_) => {
                self.fail(out);
                self.wake.notify_one();
            }
        }
    }

    /// Gives the socket up to `grace` to take what still waits (a close frame, a reply)
    /// before the connection goes.
    pub async fn finish(&self, grace: Duration) {
        let drained = async {
            while !self.is_drained() {
                if self.drain().await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(grace, drained).await;
    }

    fn fail(&self, out: &mut Outbound) {
        out.closed = true;
        let queued = out.queue.clear();
        self.metrics.queued_bytes.dec_by(queued);
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let queued = self.out().queue.clear();
        self.metrics.queued_bytes.dec_by(queued);
    }
}

fn request(resyncs: &mut HashMap<ItemId, Resync>, item: &ItemId, reason: Resync) {
    if !resyncs.contains_key(item) {
        resyncs.insert(item.clone(), reason);
    }
}

impl Queue {
    /// Writes `wire` after whatever waits: straight to the socket when nothing does.
    fn write(&mut self, socket: &TcpStream, wire: &Bytes, metrics: &Metrics) -> io::Result<()> {
        if self.pending.is_empty() {
            match socket.try_write(wire) {
                Ok(n) if n == wire.len() => return Ok(()),
                Ok(n) => {
                    self.push(wire.slice(n..), metrics);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        self.push(wire.clone(), metrics);
        Ok(())
    }

    fn push(&mut self, bytes: Bytes, metrics: &Metrics) {
        if self.pending.is_empty() {
            self.stalled_since = Some(Instant::now());
        }
        metrics.queued_bytes.inc_by(len_i64(bytes.len()));
        self.pending.push_back(bytes);
    }

    /// Writes waiting bytes until the socket would block or nothing waits.
    fn flush(&mut self, socket: &TcpStream, metrics: &Metrics) -> io::Result<()> {
        let mut written = 0;
        while let Some(front) = self.pending.front_mut() {
            match socket.try_write(front) {
                Ok(n) => {
                    written += n;
                    if n == front.len() {
                        self.pending.pop_front();
                    } else {
                        front.advance(n);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if written > 0 {
            metrics.queued_bytes.dec_by(len_i64(written));
            self.stalled_since = (!self.pending.is_empty()).then(Instant::now);
        }
        Ok(())
    }

    /// Forgets everything waiting; returns how many bytes that was.
    fn clear(&mut self) -> i64 {
        let bytes = self.pending.drain(..).map(|b| b.len()).sum();
        self.stalled_since = None;
        len_i64(bytes)
    }
}

fn len_i64(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A viewer on one end of a real loopback connection, and the client's end.
    async fn connected(queue_limit: usize, metrics: &Arc<Metrics>) -> (Viewer, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let viewer = Viewer::new(1, Arc::new(server), queue_limit, Arc::clone(metrics));
        (viewer, client)
    }

    fn event(item: &ItemId, seq: u64) -> Arc<Frame> {
        Arc::new(Frame {
            item: item.clone(),
            kind: FrameKind::Event { seq },
            wire: Bytes::from(format!("e{seq};")),
            received: Instant::now(),
        })
    }

    async fn read_exactly(client: &mut TcpStream, len: usize) -> String {
        let mut buf = vec![0; len];
        client.read_exact(&mut buf).await.unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[tokio::test]
    async fn events_held_while_a_snapshot_is_due_follow_it_minus_those_it_covers() {
        let metrics = Arc::new(Metrics::default());
        let (viewer, mut client) = connected(8, &metrics).await;
        let item = ItemId::parse("x").unwrap();
        assert_eq!(
            viewer.offer(&event(&item, 1)),
            Offered::Skipped,
            "not watched"
        );
        viewer.track(&item);
        for seq in 3..=5 {
            assert_eq!(viewer.offer(&event(&item, seq)), Offered::Skipped, "held");
        }
        let followed = viewer.install_snapshot(&item, 4, &Bytes::from("s4;"), None);
        assert_eq!(followed, 1);
        assert_eq!(
            viewer.offer(&event(&item, 5)),
            Offered::Skipped,
            "a duplicate"
        );
        assert_eq!(viewer.offer(&event(&item, 6)), Offered::Sent);
        assert_eq!(read_exactly(&mut client, 9).await, "s4;e5;e6;");
        assert!(viewer.take_resyncs().is_empty());

        assert_eq!(viewer.offer(&event(&item, 8)), Offered::Skipped, "a gap");
        assert_eq!(viewer.take_resyncs().get(&item), Some(&Resync::Gap));
        assert_eq!(viewer.offer(&event(&item, 9)), Offered::Skipped, "held");
    }

    #[tokio::test]
    async fn tracking_a_live_item_again_holds_its_events_until_the_next_snapshot() {
        let metrics = Arc::new(Metrics::default());
        let (viewer, mut client) = connected(8, &metrics).await;
        let item = ItemId::parse("x").unwrap();
        viewer.track(&item);
        viewer.install_snapshot(&item, 1, &Bytes::from("s1;"), None);
        assert_eq!(viewer.offer(&event(&item, 2)), Offered::Sent);
        viewer.track(&item);
        assert_eq!(viewer.offer(&event(&item, 3)), Offered::Skipped, "held");
        assert_eq!(viewer.offer(&event(&item, 4)), Offered::Skipped, "held");
        assert_eq!(
            viewer.install_snapshot(&item, 3, &Bytes::from("s3;"), None),
            1
        );
        assert_eq!(read_exactly(&mut client, 12).await, "s1;e2;s3;e4;");
    }

    #[tokio::test]
    async fn a_socket_that_stops_taking_bytes_queues_a_bounded_backlog_then_lags() {
        let metrics = Arc::new(Metrics::default());
        let (viewer, mut client) = connected(4, &metrics).await;
        let item = ItemId::parse("x").unwrap();
        viewer.track(&item);
        viewer.install_snapshot(&item, 0, &Bytes::from("s0;"), None);
        let big = |seq| {
            Arc::new(Frame {
                item: item.clone(),
                kind: FrameKind::Event { seq },
                wire: Bytes::from(vec![b'.'; 64 * 1024]),
                received: Instant::now(),
            })
        };
        let mut seq = 0;
        let lagged_at = loop {
            seq += 1;
            assert!(seq < 10_000, "the client's buffers never filled");
            if viewer.offer(&big(seq)) == Offered::Lagged {
                break seq;
            }
        };
        assert!(viewer.stalled_since().is_some());
        let queued = metrics.queued_bytes.get();
        assert!(
            queued > 0 && queued <= 4 * 64 * 1024,
            "{queued} bytes queued"
        );
        assert_eq!(viewer.take_resyncs().get(&item), Some(&Resync::Lagged));
        assert_eq!(viewer.offer(&big(lagged_at + 1)), Offered::Skipped, "held");

        // The client reads again: the backlog drains and nothing waits any more.
        let reader = tokio::spawn(async move {
            let mut sink = vec![0; 256 * 1024];
            while client.read(&mut sink).await.unwrap_or(0) > 0 {}
        });
        while !viewer.is_drained() {
            viewer.drain().await.unwrap();
        }
        assert_eq!(metrics.queued_bytes.get(), 0);
        assert_eq!(viewer.stalled_since(), None);
        drop(viewer);
        reader.abort();
    }
}
