//! A viewer: one WebSocket connection as the rooms see it, and the only way bytes reach its
//! socket.
//!
//! A room fans an event out by calling [`Viewer::offer`] on each of its viewers in one pass.
//! `offer` applies the ordering rules for that item ([`tracks`]) and, when nothing is queued
//! for the socket, writes the event's shared bytes straight to it with a non-blocking
//! `send` ([`socket_queue`]). No task is woken and nothing is copied per viewer: an event
//! costs one write system call per viewer. Only when the kernel's send buffer is full do the
//! bytes wait, as a reference-counted slice, in the viewer's queue, which its session drains
//! once the socket is writable again.
//!
//! The queue is bounded: a room frame that finds `queue_limit` frames already waiting is
//! dropped, and the item is marked for a fresh snapshot (conflation). Both halves live under
//! one mutex, so an ordering decision and its write happen together, and frames from rooms
//! and from the session never interleave.

mod socket_queue;
mod tracks;

pub use tracks::{Frame, FrameKind, Resync, RoomKey};

use crate::metrics::Metrics;
use bytes::Bytes;
use shared::ItemId;
use shared::mutex;
use socket_queue::SocketQueue;
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracks::{Admission, Tracks};

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

/// Everything the viewer's mutex guards: what to write, and where it stands on the socket.
#[derive(Debug)]
struct Outbound {
    queue: SocketQueue,
    tracks: Tracks,
}

pub struct Viewer {
    id: u64,
    socket: Arc<TcpStream>,
    /// A std mutex: held for a map lookup and one non-blocking write, never across `.await`.
    out: Mutex<Outbound>,
    /// Wakes the session: a resync was requested, bytes started waiting, or the socket failed.
    wake: Notify,
    metrics: Arc<Metrics>,
}

impl Viewer {
    /// A viewer whose queue holds up to `queue_limit` room frames (at least one).
    pub fn new(id: u64, socket: Arc<TcpStream>, queue_limit: usize, metrics: Arc<Metrics>) -> Self {
        let queue_limit = queue_limit.max(1);
        Self {
            id,
            socket,
            out: Mutex::new(Outbound {
                queue: SocketQueue::new(queue_limit),
                tracks: Tracks::new(queue_limit),
            }),
            wake: Notify::new(),
            metrics,
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    fn out(&self) -> MutexGuard<'_, Outbound> {
        mutex::lock(&self.out)
    }

    /// Writes a room's shared frame if the viewer's ordering rules let it through now. Never
    /// waits: a full socket queues it, a full queue drops it and asks for a snapshot.
    pub fn offer(&self, frame: &Arc<Frame>) -> Offered {
        let mut guard = self.out();
        let out = &mut *guard;
        if out.queue.is_closed() {
            return Offered::Skipped;
        }
        match out.tracks.admit(frame, out.queue.is_full()) {
            Admission::Write => {
                self.write(out, &frame.wire);
                Offered::Sent
            }
            Admission::Skip => Offered::Skipped,
            Admission::Gap => {
                drop(guard);
                self.wake.notify_one();
                Offered::Skipped
            }
            Admission::Lagged => {
                drop(guard);
                self.wake.notify_one();
                Offered::Lagged
            }
        }
    }

    /// Writes one of its user's private events (see [`crate::user_feed`]) unless the socket's
    /// queue is full, in which case it is dropped ([`Offered::Lagged`]): private events have
    /// no snapshot to conflate into, and a socket that cannot keep up must not grow a backlog.
    pub fn offer_private(&self, wire: &Bytes) -> Offered {
        let mut out = self.out();
        if out.queue.is_closed() {
            return Offered::Skipped;
        }
        if out.queue.is_full() {
            return Offered::Lagged;
        }
        self.write(&mut out, wire);
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
        out.queue.close();
    }

    /// Starts watching `item` (or asks for a fresh snapshot of an item already watched):
    /// events are held from now on until [`Viewer::install_snapshot`].
    pub fn track(&self, item: &ItemId) {
        self.out().tracks.track(item);
    }

    /// Stops watching `item`: nothing more is written for it.
    pub fn untrack(&self, item: &ItemId) {
        self.out().tracks.untrack(item);
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
        if out.queue.is_closed() || !out.tracks.is_tracked(item) {
            return 0;
        }
        self.write(out, snapshot);
        if let Some(viewers) = viewers {
            self.write(out, viewers);
        }
        let Some(installed) = out.tracks.install(item, seq) else {
            return 0;
        };
        if installed.resync {
            self.wake.notify_one();
        }
        for frame in &installed.followed {
            self.write(out, &frame.wire);
        }
        u64::try_from(installed.followed.len()).unwrap_or(u64::MAX)
    }

    /// Asks the session for a fresh snapshot of `item` (if watched); its events are held
    /// until then.
    pub fn request_snapshot(&self, item: &ItemId, reason: Resync) {
        let requested = self.out().tracks.request_snapshot(item, reason);
        if requested {
            self.wake.notify_one();
        }
    }

    /// Takes the pending resync requests.
    pub fn take_resyncs(&self) -> HashMap<ItemId, Resync> {
        self.out().tracks.take_resyncs()
    }

    /// Completes when something for the session happened since the last call (a stored
    /// permit makes a wake-up before the call count). Cancellation-safe.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Whether the socket failed (or was closed): the session should end.
    pub fn is_closed(&self) -> bool {
        self.out().queue.is_closed()
    }

    /// Since when bytes have been waiting for the socket without it taking any; `None`
    /// when nothing waits.
    pub fn stalled_since(&self) -> Option<Instant> {
        self.out().queue.stalled_since()
    }

    /// Whether nothing waits for the socket.
    pub fn is_drained(&self) -> bool {
        self.out().queue.is_empty()
    }

    /// Waits until the socket can take bytes, then writes as many waiting ones as it takes.
    ///
    /// # Errors
    /// When the socket failed; the viewer is closed then.
    pub async fn drain(&self) -> io::Result<()> {
        self.socket.writable().await?;
        self.out().queue.flush(&self.socket, &self.metrics)
    }

    /// Writes `wire` straight to the socket when nothing waits, else queues it (nothing
    /// once closed); wakes the session when bytes start waiting or the socket fails.
    #[inline]
    fn write(&self, out: &mut Outbound, wire: &Bytes) {
        if out.queue.write(&self.socket, wire, &self.metrics) {
            self.wake.notify_one();
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
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.out().queue.discard(&self.metrics);
    }
}

#[cfg(test)]
mod tests {
    use super::tracks::tests::event;
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

    #[tokio::test]
    async fn a_snapshot_goes_out_first_then_the_count_then_the_held_events_it_does_not_cover() {
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
        let followed =
            viewer.install_snapshot(&item, 4, &Bytes::from("s4;"), Some(&Bytes::from("v2;")));
        assert_eq!(followed, 1);
        assert_eq!(viewer.offer(&event(&item, 6)), Offered::Sent);
        assert_eq!(viewer.offer(&event(&item, 8)), Offered::Skipped, "a gap");
        assert_eq!(viewer.take_resyncs().get(&item), Some(&Resync::Gap));

        viewer.close(&Bytes::from("c;"));
        viewer.send(&Bytes::from("late;"));
        assert_eq!(
            viewer.install_snapshot(&item, 8, &Bytes::from("s8;"), None),
            0
        );
        assert!(viewer.is_closed());
        drop(viewer);
        let mut written = String::new();
        client.read_to_string(&mut written).await.unwrap();
        assert_eq!(written, "s4;v2;e5;e6;c;", "nothing after the close frame");
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
                room: tracks::tests::room_of(&item),
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
