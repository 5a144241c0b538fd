//! Server WebSocket frames as the bytes that go on the wire.
//!
//! Server frames are not masked (RFC 6455 §5.1), so a frame's bytes are the same for every
//! socket: a room encodes each event once and writes those very bytes to all its viewers.
//! The encoding itself is tungstenite's; this module only fixes the frame kinds we send.

use bytes::Bytes;
use tungstenite::Utf8Bytes;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};

/// The close codes the server uses (RFC 6455 §7.4.1).
pub mod close_code {
    /// The server is going away (shutdown) or the client went idle.
    pub const AWAY: u16 = 1001;
    /// The client sent a text frame that is not UTF-8 (RFC 6455 7.4.1).
    pub const INVALID_DATA: u16 = 1007;
    /// The client broke a rule (an invalid item id in the URL, too many invalid messages).
    pub const POLICY: u16 = 1008;
    /// The client sent a message larger than allowed.
    pub const SIZE: u16 = 1009;
    /// Too many connections: try again later.
    pub const AGAIN: u16 = 1013;
}

/// A whole (final) text frame carrying `text`.
pub fn text(text: &Utf8Bytes) -> Bytes {
    let frame = Frame::message(Bytes::from(text.clone()), OpCode::Data(Data::Text), true);
    encode(frame)
}

/// An empty ping (the keepalive the server sends).
pub fn ping() -> Bytes {
    encode(Frame::ping(Bytes::new()))
}

/// A close frame with `code` and `reason`.
pub fn close(code: u16, reason: &'static str) -> Bytes {
    encode(Frame::close(Some(CloseFrame {
        code: code.into(),
        reason: Utf8Bytes::from_static(reason),
    })))
}

fn encode(frame: Frame) -> Bytes {
    let mut out = Vec::with_capacity(frame.len());
    // Writing to a `Vec` cannot fail.
    let _ = frame.format(&mut out);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_text_frame_is_fin_text_length_then_payload() {
        let bytes = text(&Utf8Bytes::from_static("hi"));
        assert_eq!(&bytes[..], &[0x81, 2, b'h', b'i']);
    }

    #[test]
    fn a_long_text_frame_uses_the_16_bit_length() {
        let payload = "x".repeat(300);
        let bytes = text(&Utf8Bytes::from(payload));
        assert_eq!(&bytes[..4], &[0x81, 126, 0x01, 0x2c]);
        assert_eq!(bytes.len(), 304);
    }

    #[test]
    fn close_carries_code_and_reason() {
        let bytes = close(1001, "bye");
        assert_eq!(&bytes[..], &[0x88, 5, 0x03, 0xe9, b'b', b'y', b'e']);
        assert_eq!(&ping()[..], &[0x89, 0]);
    }
}
