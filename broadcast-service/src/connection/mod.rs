//! One WebSocket connection, from upgrade to close.
//!
//! The socket is split in two halves that run concurrently in the connection's task:
//!
//! * [`inbound`] reads client frames, enforces the idle timeout, the frame size limit and the
//!   invalid-message budget, and turns each frame into a [`Control`] for the session.
//! * [`session`] owns the writing half and everything the connection watches: it joins and
//!   leaves rooms, sends snapshots, and drains the viewer queue in `seq` order.
//!
//! When the reader ends (the client closed, went idle or broke a rule) it drops its sender
//! and the session finishes, writing a close frame if one was asked for; when the session
//! ends (shutdown, write failure) it cancels the reader. Both halves live in one task because
//! neither does work worth a thread of its own; they never block each other, since every
//! wait is a `select!` branch.

mod inbound;
mod session;

use crate::error::ApiError;
use crate::limits::{ConnectionPermit, Refusal};
use crate::routes::AppState;
use crate::viewer::Viewer;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use futures::StreamExt;
use shared::ItemId;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the reader asks of the session.
#[derive(Debug)]
pub(crate) enum Control {
    Subscribe(ItemId),
    Unsubscribe(ItemId),
    /// A frame for this client only (an error or a pong), with its metric kind.
    Reply(Utf8Bytes, &'static str),
    /// Write a close frame and end the connection.
    Close(u16, &'static str),
}

/// Client messages waiting for the session; the reader waits when it is full, which slows
/// down a client that floods the server instead of buffering for it.
const CONTROL_QUEUE: usize = 16;

/// Serves one upgraded socket until it closes.
#[tracing::instrument(name = "ws.connection", level = "debug", skip_all, fields(connection = tracing::field::Empty))]
pub(crate) async fn serve(
    mut socket: WebSocket,
    state: AppState,
    admission: Result<ConnectionPermit, Refusal>,
    initial: Option<Result<ItemId, ApiError>>,
) {
    let permit = match admission {
        Ok(permit) => permit,
        Err(refusal) => {
            state.metrics.rejected(refusal.as_str());
            let close = CloseFrame {
                code: close_code::AGAIN,
                reason: Utf8Bytes::from_static(refusal.reason()),
            };
            let _ = socket.send(Message::Close(Some(close))).await;
            return;
        }
    };
    let _open = OpenConnection::new(&state);
    let id = state.next_connection_id.fetch_add(1, Ordering::Relaxed);
    tracing::Span::current().record("connection", id);
    let (viewer, queue) = Viewer::new(id, state.config.viewer_queue, state.metrics.clone());
    let (control, requests) = mpsc::channel(CONTROL_QUEUE);
    match initial {
        Some(Ok(item)) => {
            let _ = control.try_send(Control::Subscribe(item));
        }
        Some(Err(error)) => {
            state.metrics.client_error(error.code());
            let _ = control.try_send(Control::Reply(error.to_frame(None), "error"));
            let _ = control.try_send(Control::Close(close_code::POLICY, "invalid item id"));
        }
        None => {}
    }
    let (sink, stream) = socket.split();
    let reader_stop = CancellationToken::new();
    let reader = inbound::run(
        stream,
        control,
        state.config.idle_timeout(),
        state.metrics.clone(),
        reader_stop.clone(),
    );
    let session = async {
        session::run(sink, viewer, queue, requests, &state).await;
        reader_stop.cancel();
    };
    // `join!`, not a `FuturesUnordered` with a waker per half: that one skips repolling the
    // reader on each event, but its task nodes and boxes cost about 0.6 KiB more per idle
    // viewer (measured at 10,000), which the 16 KiB budget cannot spare.
    tokio::join!(reader, session);
    tracing::debug!(connection = id, "connection closed");
    drop(permit);
}

/// Keeps `broadcast_connections` exact however the connection ends.
struct OpenConnection(std::sync::Arc<crate::metrics::Metrics>);

impl OpenConnection {
    fn new(state: &AppState) -> Self {
        state.metrics.connections.inc();
        Self(state.metrics.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections.dec();
    }
}
