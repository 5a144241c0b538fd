//! A viewer: one WebSocket connection as the rooms see it.
//!
//! Rooms never touch a socket. They offer each shared [`Frame`] to the viewer's bounded queue
//! with `try_send`, which never waits, so a slow viewer cannot slow a room or the other
//! viewers down. When the queue is full the frame is dropped and the viewer is asked to
//! resync that item: its session then sends a fresh snapshot and skips the stale backlog
//! (conflation). The queue holds `Arc`s of frames encoded once per room, so however many
//! viewers lag, memory is bounded by `queue length × pointers`, not by copies.

use crate::metrics::Metrics;
use axum::extract::ws::Utf8Bytes;
use shared::ItemId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

/// What a shared frame is, as far as a session's ordering rules are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A live event with its item `seq`: delivered only in order, after the snapshot.
    Event { seq: u64 },
    /// A `viewers` count: delivered as it comes.
    Viewers,
}

/// One frame encoded once and shared by every viewer of its item.
#[derive(Debug)]
pub struct Frame {
    pub item: ItemId,
    pub kind: FrameKind,
    pub text: Utf8Bytes,
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

/// The part of a connection that rooms hold.
pub struct Viewer {
    id: u64,
    queue: mpsc::Sender<Arc<Frame>>,
    /// Items to resync, set by rooms and the reconnect watcher, taken by the session. A std
    /// mutex: it is held for a map insert or a swap, never across an `.await`.
    resync: Mutex<HashMap<ItemId, Resync>>,
    /// Wakes the session when `resync` gained an entry.
    wake: Notify,
    /// Bytes of this viewer's frames in its queue (its share of `broadcast_queued_bytes`).
    queued: AtomicI64,
    metrics: Arc<Metrics>,
}

impl Viewer {
    /// A viewer and the receiving end of its queue (for its session).
    pub fn new(
        id: u64,
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> (Arc<Self>, mpsc::Receiver<Arc<Frame>>) {
        let (queue, rx) = mpsc::channel(capacity.max(1));
        let viewer = Arc::new(Self {
            id,
            queue,
            resync: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            queued: AtomicI64::new(0),
            metrics,
        });
        (viewer, rx)
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Queues a shared frame without waiting; a full queue makes the viewer resync the item.
    pub fn offer(&self, frame: &Arc<Frame>) {
        match self.queue.try_send(Arc::clone(frame)) {
            Ok(()) => {
                let len = byte_len(frame);
                self.queued.fetch_add(len, Ordering::Relaxed);
                self.metrics.queued_bytes.inc_by(len);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.request_snapshot(&frame.item, Resync::Lagged);
            }
            // The session has ended; the connection is leaving its rooms.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Called by the session for each frame it takes off the queue.
    pub fn dequeued(&self, frame: &Frame) {
        let len = byte_len(frame);
        self.queued.fetch_sub(len, Ordering::Relaxed);
        self.metrics.queued_bytes.dec_by(len);
    }

    /// Asks the session for a fresh snapshot of `item`. The first reason recorded wins, so a
    /// lag is counted as a conflation even if a reconnect follows before the session looks.
    pub fn request_snapshot(&self, item: &ItemId, reason: Resync) {
        let mut resync = self.resync.lock().unwrap_or_else(|e| e.into_inner());
        if !resync.contains_key(item) {
            resync.insert(item.clone(), reason);
            drop(resync);
            self.wake.notify_one();
        }
    }

    /// Takes the pending resync requests.
    pub fn take_resyncs(&self) -> HashMap<ItemId, Resync> {
        std::mem::take(&mut *self.resync.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Completes when a resync was requested since the last call (a stored permit makes a
    /// request made before the call count). Cancellation-safe.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        // Frames still queued are freed with the queue.
        self.metrics
            .queued_bytes
            .dec_by(self.queued.load(Ordering::Relaxed));
    }
}

fn byte_len(frame: &Frame) -> i64 {
    i64::try_from(frame.text.len()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(item: &ItemId, seq: u64) -> Arc<Frame> {
        Arc::new(Frame {
            item: item.clone(),
            kind: FrameKind::Event { seq },
            text: Utf8Bytes::from("0123456789"),
            received: Instant::now(),
        })
    }

    #[tokio::test]
    async fn a_full_queue_drops_the_frame_and_requests_a_lagged_resync() {
        let metrics = Arc::new(Metrics::default());
        let (viewer, mut rx) = Viewer::new(1, 2, Arc::clone(&metrics));
        let item = ItemId::parse("x").unwrap();
        for seq in 1..=3 {
            viewer.offer(&frame(&item, seq));
        }
        assert_eq!(metrics.queued_bytes.get(), 20);
        let resyncs = viewer.take_resyncs();
        assert_eq!(resyncs.get(&item), Some(&Resync::Lagged));
        let first = rx.recv().await.unwrap();
        viewer.dequeued(&first);
        assert_eq!(first.kind, FrameKind::Event { seq: 1 });
        assert_eq!(metrics.queued_bytes.get(), 10);
        drop(rx);
        drop(viewer);
        assert_eq!(metrics.queued_bytes.get(), 0, "dropping releases the rest");
    }

    #[tokio::test]
    async fn a_resync_request_wakes_the_session_even_if_made_before_it_waits() {
        let (viewer, _rx) = Viewer::new(1, 2, Arc::new(Metrics::default()));
        viewer.request_snapshot(&ItemId::parse("x").unwrap(), Resync::Gap);
        tokio::time::timeout(std::time::Duration::from_secs(1), viewer.woken())
            .await
            .expect("woken by the stored permit");
    }
}
