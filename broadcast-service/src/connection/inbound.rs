//! The reading half of a connection: client frames in, [`Control`] requests out.
//!
//! Rules it enforces, each with a clear outcome:
//! * a malformed message (not JSON, unknown type, invalid item id, binary) gets an error
//!   frame and the connection stays open, up to [`INVALID_MESSAGE_BUDGET`] of them; past that
//!   the socket closes with 1008 (policy);
//! * more than `MAX_MESSAGES_PER_SEC` messages a second (bursts of twice that allowed) get a
//!   `rate_limited` error frame and are dropped; past [`RATE_LIMITED_BUDGET`] dropped ones
//!   (the count starts over once the client has been calm long enough to refill its burst)
//!   the socket closes with 1008;
//! * a message larger than `MAX_INBOUND_BYTES` closes the socket with 1009 (too big);
//! * nothing received for the idle timeout (a healthy client answers the server's pings)
//!   closes the socket with 1001 (going away).

use super::Control;
use super::client_stream::ClientStream;
use super::context::ConnectionSettings;
use crate::error::{ApiError, InputError};
use crate::metrics::Metrics;
use crate::protocol::{ClientMessage, PONG_FRAME};
use crate::wire::close_code;
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use std::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::sync::CancellationToken;
use tungstenite::{Message, Utf8Bytes};

/// Malformed messages a connection may send before it is closed with 1008.
pub(crate) const INVALID_MESSAGE_BUDGET: u32 = 20;

/// Messages over the rate a connection may send (without calming down) before it is closed
/// with 1008.
pub(crate) const RATE_LIMITED_BUDGET: u32 = 20;

/// A connection's message rate: a token bucket of `2 × per_second` refilled at `per_second`.
struct MessageRate {
    per_second: u32,
    tokens: f64,
    last: Instant,
    /// Messages dropped since the bucket was last full.
    refused: u32,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Allowed,
    Refused,
    Close,
}

impl MessageRate {
    fn new(per_second: u32, now: Instant) -> Self {
        Self {
            per_second,
            tokens: Self::capacity(per_second),
            last: now,
            refused: 0,
        }
    }

    fn capacity(per_second: u32) -> f64 {
        2.0 * f64::from(per_second)
    }

    fn check(&mut self, now: Instant) -> Verdict {
        if self.per_second == 0 {
            return Verdict::Allowed;
        }
        let capacity = Self::capacity(self.per_second);
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * f64::from(self.per_second)).min(capacity);
        if self.tokens >= capacity {
            self.refused = 0;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allowed;
        }
        self.refused += 1;
        if self.refused > RATE_LIMITED_BUDGET {
            Verdict::Close
        } else {
            Verdict::Refused
        }
    }
}

/// Reads until the client leaves, breaks a rule, or `stop` is cancelled (the session ended).
/// `early` holds what the client sent right after its handshake. The WebSocket is built
/// here, not by the caller, so its state exists once in the connection's future rather than
/// once per await point that carries it.
pub(crate) async fn run(
    client: ClientStream,
    early: Vec<u8>,
    config: WebSocketConfig,
    mut control: mpsc::Sender<Control>,
    settings: &ConnectionSettings,
    metrics: &Metrics,
    stop: CancellationToken,
) {
    let mut stream =
        WebSocketStream::from_partially_read(client, early, Role::Server, Some(config)).await;
    let idle_timeout = settings.idle_timeout;
    let mut rate = MessageRate::new(settings.max_messages_per_sec, Instant::now());
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
        if matches!(message, Message::Text(_) | Message::Binary(_)) {
            match rate.check(Instant::now()) {
                Verdict::Allowed => {}
                Verdict::Refused => {
                    let error = ApiError::RateLimited {
                        per_second: settings.max_messages_per_sec,
                    };
                    metrics.client_error(error.code());
                    if control
                        .send(Control::Reply(error.to_frame(None), "error"))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    continue;
                }
                Verdict::Close => {
                    let _ = control
                        .send(Control::Close(close_code::POLICY, "too many messages"))
                        .await;
                    return;
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_of_twice_the_rate_passes_then_messages_are_refused_then_closed() {
        let start = Instant::now();
        let mut rate = MessageRate::new(10, start);
        for n in 0..20 {
            assert_eq!(rate.check(start), Verdict::Allowed, "message {n}");
        }
        for _ in 0..RATE_LIMITED_BUDGET {
            assert_eq!(rate.check(start), Verdict::Refused);
        }
        assert_eq!(rate.check(start), Verdict::Close);
    }

    #[test]
    fn the_rate_refills_and_a_calm_client_starts_over() {
        let start = Instant::now();
        let mut rate = MessageRate::new(10, start);
        for _ in 0..20 {
            rate.check(start);
        }
        assert_eq!(rate.check(start), Verdict::Refused);
        let later = start + Duration::from_millis(100);
        assert_eq!(
            rate.check(later),
            Verdict::Allowed,
            "one message per 100 ms"
        );
        let calm = later + Duration::from_secs(3);
        assert_eq!(rate.check(calm), Verdict::Allowed);
        assert_eq!(rate.refused, 0, "a full bucket forgives");
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let now = Instant::now();
        let mut rate = MessageRate::new(0, now);
        assert!((0..10_000).all(|_| rate.check(now) == Verdict::Allowed));
    }
}
