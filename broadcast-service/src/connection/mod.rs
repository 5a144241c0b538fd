//! One WebSocket connection, from upgrade to close.
//!
//! The socket is shared three ways. Rooms write live events to it directly through the
//! connection's [`Viewer`]; two halves run concurrently in the connection's task:
//!
//! * [`inbound`] reads client frames, enforces the idle timeout, the frame size limit and the
//!   invalid-message budget, and turns each frame into a [`Control`] for the session.
//! * [`session`] owns everything the connection watches: it joins and leaves rooms, writes
//!   snapshots, replies and pings, and drains what the socket could not take at once. Its
//!   [`sign_in`] says which user the socket is signed in as, and until when; its [`cursors`]
//!   which items it watches.
//!
//! What a connection uses of the rest of the service comes in one [`ConnectionContext`].
//!
//! When the reader ends (the client closed, went idle or broke a rule) it drops its sender
//! and the session finishes, writing a close frame if one was asked for; when the session
//! ends (shutdown, write failure) it cancels the reader. They never block each other, since
//! every wait is a `select!` branch.

mod client_stream;
mod context;
mod cursors;
mod inbound;
mod session;
mod sign_in;

pub use context::{ConnectionContext, ConnectionSettings};

use crate::error::ApiError;
use crate::identity::PresentedToken;
use crate::limits::{ConnectionPermit, Refusal};
use crate::metrics::Metrics;
use crate::viewer::Viewer;
use crate::wire::{self, close_code};
use client_stream::ClientStream;
use futures::channel::mpsc;
use shared::ItemId;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tungstenite::Utf8Bytes;

/// What the reader asks of the session.
#[derive(Debug)]
pub(crate) enum Control {
    Subscribe(ItemId),
    Unsubscribe(ItemId),
    /// Sign the socket in with this token (again: renew, or switch user).
    Authenticate(PresentedToken),
    /// A frame for this client only (an error or a pong), with its metric kind.
    Reply(Utf8Bytes, &'static str),
    /// Write a close frame and end the connection.
    Close(u16, &'static str),
}

/// Longest a refused connection waits for its close frame to go out.
const REFUSAL_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Client messages waiting for the session; the reader waits when it is full, which slows
/// down a client that floods the server instead of buffering for it.
///
/// The queue is `futures`' channel, not tokio's: tokio's allocates a block of 32 message
/// slots (32 × 56 bytes) and a cache-padded channel up front, resident for as long as the
/// socket lives, where this one allocates a node per message in flight and holds next to
/// nothing while a viewer is idle.
const CONTROL_QUEUE: usize = 16;
/// Bytes read from a socket per read call. Client messages are a few dozen bytes, and
/// tungstenite zero-fills its whole read buffer up front, so this is resident memory per idle
/// viewer. A larger message (up to `MAX_INBOUND_BYTES`) still arrives: the buffer grows for it.
const READ_BUFFER: usize = 512;

/// What the upgrade request itself asked for, each part already parsed (a bad one is answered
/// with an error frame once the socket is open: browsers cannot read a failed upgrade).
#[derive(Debug, Default)]
pub(crate) struct Opening {
    /// The item of `/ws?item_id=` or `/ws/items/{id}`.
    pub item: Option<Result<ItemId, ApiError>>,
    /// The token of `Authorization: Bearer` or `?access_token=`.
    pub token: Option<Result<PresentedToken, ApiError>>,
}

/// Serves one upgraded socket until it closes. `read` holds whatever the client sent right
/// after its handshake, before the upgrade completed.
#[tracing::instrument(name = "ws.connection", level = "debug", skip_all, fields(connection = tracing::field::Empty))]
pub(crate) async fn serve(
    socket: TcpStream,
    read: Vec<u8>,
    context: Arc<ConnectionContext>,
    admission: Result<ConnectionPermit, Refusal>,
    opening: Opening,
) {
    let id = context.next_id();
    tracing::Span::current().record("connection", id);
    let socket = Arc::new(socket);
    let viewer = Arc::new(Viewer::new(
        id,
        Arc::clone(&socket),
        context.settings.viewer_queue,
        Arc::clone(&context.metrics),
    ));
    let permit = match admission {
        Ok(permit) => permit,
        Err(refusal) => {
            context.metrics.rejected(refusal.as_str());
            viewer.close(&wire::close(close_code::AGAIN, refusal.reason()));
            viewer.finish(REFUSAL_GRACE).await;
            return;
        }
    };
    let _open = OpenConnection::new(&context.metrics);
    // The capacity is the buffer plus one slot per sender (there is one).
    let (mut control, requests) = mpsc::channel(CONTROL_QUEUE - 1);
    // Signed in first, so a sign-in's answer precedes the first snapshot.
    match opening.token {
        Some(Ok(token)) => {
            let _ = control.try_send(Control::Authenticate(token));
        }
        Some(Err(error)) => {
            context.metrics.auth(error.code());
            context.metrics.client_error(error.code());
            let _ = control.try_send(Control::Reply(error.to_frame(None), "error"));
        }
        None => {}
    }
    match opening.item {
        Some(Ok(item)) => {
            let _ = control.try_send(Control::Subscribe(item));
        }
        Some(Err(error)) => {
            context.metrics.client_error(error.code());
            let _ = control.try_send(Control::Reply(error.to_frame(None), "error"));
            let _ = control.try_send(Control::Close(close_code::POLICY, "invalid item id"));
        }
        None => {}
    }
    let max_inbound = context.settings.max_inbound_bytes;
    // Viewers send only small control messages (bounded by `max_inbound`): a small read
    // buffer keeps an idle viewer cheap. The write side is the viewer's queue, not this.
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_inbound))
        .max_frame_size(Some(max_inbound))
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0);
    let reader_stop = CancellationToken::new();
    // Both halves in one task: neither does work worth a task of its own. Each is built
    // straight into its box: a future held in a local, even one moved into a box before the
    // `join!`, keeps its storage in the connection's state machine until the end of the
    // scope, so it would be laid out twice (once inline, once boxed).
    let reader = Box::pin(inbound::run(
        ClientStream::new(socket, Arc::clone(&viewer)),
        read,
        config,
        control,
        &context.settings,
        &context.metrics,
        reader_stop.clone(),
    ));
    let session = Box::pin(async {
        session::run(viewer, requests, &context).await;
        reader_stop.cancel();
    });
    tokio::join!(reader, session);
    tracing::debug!(connection = id, "connection closed");
    drop(permit);
}

/// Keeps `broadcast_connections` exact however the connection ends.
struct OpenConnection(Arc<Metrics>);

impl OpenConnection {
    fn new(metrics: &Arc<Metrics>) -> Self {
        metrics.connections.inc();
        Self(Arc::clone(metrics))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections.dec();
    }
}
