//! The reading half of a connection: client frames in, [`Control`] requests out.
//!
//! Rules it enforces, each with a clear outcome:
//! * a malformed message (not JSON, unknown type, invalid item id, binary) gets an error
//!   frame and the connection stays open, up to [`INVALID_MESSAGE_BUDGET`] of them; past that
//!   the socket closes with 1008 (policy);
//! * a message larger than `MAX_INBOUND_BYTES` closes the socket with 1009 (too big);
//! * nothing received for the idle timeout (a healthy client answers the server's pings)
//!   closes the socket with 1001 (going away).

use super::Control;
use super::client_stream::ClientStream;
use crate::error::{ApiError, InputError};
use crate::metrics::Metrics;
use crate::protocol::{ClientMessage, PONG_FRAME};
use crate::wire::close_code;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::sync::CancellationToken;
use tungstenite::{Message, Utf8Bytes};

/// Malformed messages a connection may send before it is closed with 1008.
pub(crate) const INVALID_MESSAGE_BUDGET: u32 = 20;

/// Reads until the client leaves, breaks a rule, or `stop` is cancelled (the session ended).
/// `early` holds what the client sent right after its handshake. The WebSocket is built
/// here, not by the caller, so its state exists once in the connection's future rather than
/// once per await point that carries it.
pub(crate) async fn run(
    client: ClientStream,
    early: Vec<u8>,
    config: WebSocketConfig,
    control: mpsc::Sender<Control>,
    idle_timeout: Duration,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut stream =
        WebSocketStream::from_partially_read(client, early, Role::Server, Some(config)).await;
    let mut invalid = 0u32;
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => return,
            // `next()` is cancellation-safe: a frame is either returned or left unread.
            next = tokio::time::timeout(idle_timeout, stream.next()) => next,
        };
        let message = match next {
            Err(_idle) => {
                let _ = control
                    .send(Control::Close(close_code::AWAY, "idle timeout"))
                    .await;
                return;
            }
            Ok(None) => return,
            Ok(Some(Err(error))) => {
                // Say why, rather than drop the socket: a client can tell its own bug.
                let close = if is_too_big(&error) {
                    Some((close_code::SIZE, "message too big"))
                } else if matches!(error, tungstenite::Error::Utf8(_)) {
                    Some((close_code::INVALID_DATA, "text frame is not UTF-8"))
                } else {
                    None
                };
                if let Some((code, reason)) = close {
                    let _ = control.send(Control::Close(code, reason)).await;
                }
                return;
            }
            Ok(Some(Ok(message))) => message,
        };
        let request = match message {
            Message::Text(text) => match ClientMessage::parse(&text) {
                Ok(ClientMessage::Subscribe(item)) => Control::Subscribe(item),
                Ok(ClientMessage::Unsubscribe(item)) => Control::Unsubscribe(item),
                Ok(ClientMessage::Auth(token)) => Control::Authenticate(token),
                Ok(ClientMessage::Ping) => {
                    Control::Reply(Utf8Bytes::from_static(PONG_FRAME), "reply")
                }
                Err(error) => {
                    invalid += 1;
                    metrics.client_error(error.code());
                    Control::Reply(error.to_frame(None), "error")
                }
            },
            Message::Binary(_) => {
                invalid += 1;
                let error = ApiError::invalid(
                    InputError::InvalidMessage,
                    "binary frames are not supported; send JSON text",
                );
                metrics.client_error(error.code());
                Control::Reply(error.to_frame(None), "error")
            }
            // Pings are answered by the WebSocket layer; pongs only prove the client is alive.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            Message::Close(_) => return,
        };
        if control.send(request).await.is_err() {
            return;
        }
        if invalid > INVALID_MESSAGE_BUDGET {
            let _ = control
                .send(Control::Close(
                    close_code::POLICY,
                    "too many invalid messages",
                ))
                .await;
            return;
        }
    }
}

/// Whether a read failed because the client sent more than the configured maximum.
fn is_too_big(error: &tungstenite::Error) -> bool {
    matches!(error, tungstenite::Error::Capacity(_))
}
