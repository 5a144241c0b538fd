//! The socket half of a viewer: bytes on their way to one socket, written without waiting.
//!
//! A write goes straight to the socket with a non-blocking `send` when nothing waits.
//! What the kernel does not take waits here, oldest first, as a reference-counted slice of
//! the frame every viewer shares (nothing is copied), until the session
//! [flushes](SocketQueue::flush) it once the socket is writable again.
//!
//! The queue is the viewer's backpressure: once [`SocketQueue::is_full`], rooms stop adding
//! to it and the viewer lags instead (see [`super::tracks`]). The session's own frames
//! (snapshots, replies, pings, the close frame) are never refused: they are few, and bounded
//! by the session's own pace.

use crate::metrics::Metrics;
use bytes::{Buf, Bytes};
use socket2::SockRef;
use std::collections::VecDeque;
use std::io;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Bytes accepted for the socket that it has not taken yet.
#[derive(Debug)]
pub(super) struct SocketQueue {
    pending: VecDeque<Bytes>,
    /// When the socket last took bytes while some were waiting (or when they started to).
    stalled_since: Option<Instant>,
    /// Room frames that may wait before the viewer counts as lagging.
    limit: usize,
    /// The socket failed, or a close frame was written: nothing more goes out.
    closed: bool,
}

impl SocketQueue {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            pending: VecDeque::new(),
            stalled_since: None,
            limit,
            closed: false,
        }
    }

    #[inline]
    pub(super) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether as many frames wait as a room may queue.
    #[inline]
    pub(super) fn is_full(&self) -> bool {
        self.pending.len() >= self.limit
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Since when bytes have been waiting without the socket taking any; `None` when nothing
    /// waits.
    pub(super) fn stalled_since(&self) -> Option<Instant> {
        self.stalled_since
    }

    /// Writes `wire` after whatever waits: straight to the socket when nothing does, and
    /// nothing at all once closed. Returns whether the session must wake: bytes started
    /// waiting, or the socket failed (the queue is closed and emptied then).
    #[inline]
    pub(super) fn write(&mut self, socket: &TcpStream, wire: &Bytes, metrics: &Metrics) -> bool {
        if self.closed {
            return false;
        }
        let was_empty = self.pending.is_empty();
        match self.write_or_queue(socket, wire, metrics) {
            Ok(()) => was_empty && !self.pending.is_empty(),
            Err(_) => {
                self.discard(metrics);
                true
            }
        }
    }

    fn write_or_queue(
        &mut self,
        socket: &TcpStream,
        wire: &Bytes,
        metrics: &Metrics,
    ) -> io::Result<()> {
        if self.pending.is_empty() {
            // Straight to the socket, past tokio's readiness: this runs once per viewer per
            // event, and tokio's `try_write` first reads the socket's readiness record, one
            // more cache miss per viewer in a pass over thousands. Nothing is lost by it: a
            // `WouldBlock` here queues the bytes and wakes the session, whose `flush` goes
            // through tokio, which learns then that the socket is not writable and waits.
            match SockRef::from(socket).send(wire) {
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
    ///
    /// # Errors
    /// When the socket failed; the queue is closed and emptied then.
    pub(super) fn flush(&mut self, socket: &TcpStream, metrics: &Metrics) -> io::Result<()> {
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
                Err(e) => {
                    metrics.queued_bytes.dec_by(len_i64(written));
                    self.discard(metrics);
                    return Err(e);
                }
            }
        }
        if written > 0 {
            metrics.queued_bytes.dec_by(len_i64(written));
            self.stalled_since = (!self.pending.is_empty()).then(Instant::now);
        }
        Ok(())
    }

    /// Nothing more is written after what already waits (a close frame was queued last).
    pub(super) fn close(&mut self) {
        self.closed = true;
    }

    /// Closes the queue and forgets everything waiting (the socket failed or is going away).
    pub(super) fn discard(&mut self, metrics: &Metrics) {
        self.closed = true;
        let bytes: usize = self.pending.drain(..).map(|b| b.len()).sum();
        self.stalled_since = None;
        metrics.queued_bytes.dec_by(len_i64(bytes));
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

    /// The server's end of a real loopback connection, and the client's end.
    async fn connected() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (server, client)
    }

    #[tokio::test]
    async fn bytes_go_straight_out_until_the_socket_is_full_then_wait_in_order() {
        let metrics = Metrics::default();
        let (server, mut client) = connected().await;
        let mut queue = SocketQueue::new(4);
        assert!(!queue.write(&server, &Bytes::from_static(b"hi;"), &metrics));
        assert!(queue.is_empty(), "a writable socket takes it at once");
        let mut hi = [0; 3];
        client.read_exact(&mut hi).await.unwrap();
        assert_eq!(&hi, b"hi;");

        let chunk = Bytes::from(vec![b'.'; 64 * 1024]);
        let mut writes = 0;
        let mut woken = 0;
        while queue.is_empty() {
            writes += 1;
            assert!(writes < 10_000, "the client's buffers never filled");
            woken += usize::from(queue.write(&server, &chunk, &metrics));
        }
        assert_eq!(woken, 1, "the session wakes when bytes start waiting");
        assert!(!queue.write(&server, &chunk, &metrics), "not again");
        assert!(queue.stalled_since().is_some());
        assert!(metrics.queued_bytes.get() > 0);

        let total = writes * chunk.len() + chunk.len();
        let reader = tokio::spawn(async move {
            let mut sink = vec![0; 256 * 1024];
            let mut read = 0;
            while read < total {
                read += client.read(&mut sink).await.unwrap();
            }
            read
        });
        while !queue.is_empty() {
            server.writable().await.unwrap();
            queue.flush(&server, &metrics).unwrap();
        }
        assert_eq!(metrics.queued_bytes.get(), 0);
        assert_eq!(queue.stalled_since(), None);
        assert_eq!(reader.await.unwrap(), total, "every byte, none twice");
    }

    #[tokio::test]
    async fn a_closed_queue_writes_nothing_and_a_discarded_one_forgets_its_bytes() {
        let metrics = Metrics::default();
        let (server, _client) = connected().await;
        let mut queue = SocketQueue::new(1);
        queue.push(Bytes::from_static(b"waiting"), &metrics);
        assert!(queue.is_full());
        queue.close();
        assert!(!queue.write(&server, &Bytes::from_static(b"late"), &metrics));
        assert_eq!(metrics.queued_bytes.get(), 7);
        queue.discard(&metrics);
        assert!(queue.is_closed() && queue.is_empty());
        assert_eq!(metrics.queued_bytes.get(), 0);
    }
}
