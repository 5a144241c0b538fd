//! The socket as the WebSocket reader sees it.
//!
//! tungstenite decodes the client's frames (masking, fragmentation, size limits, control
//! frames) from this stream. It also writes now and then: the pong to a client's ping and
//! the reply to a client's close. Those bytes must not bypass the viewer's queue, or they
//! could land in the middle of a frame a room is writing, so writes go through
//! [`Viewer::send`], which queues them in order with everything else.

use crate::viewer::Viewer;
use bytes::Bytes;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub(crate) struct ClientStream {
    socket: Arc<TcpStream>,
    viewer: Arc<Viewer>,
}

impl ClientStream {
    pub(crate) fn new(socket: Arc<TcpStream>, viewer: Arc<Viewer>) -> Self {
        Self { socket, viewer }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.socket.poll_read_ready(cx))?;
            // `try_read` clears the readiness it consumed when it would block, so the next
            // `poll_read_ready` registers for the next wake-up.
            match self.socket.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.viewer.send(&Bytes::copy_from_slice(buf));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
