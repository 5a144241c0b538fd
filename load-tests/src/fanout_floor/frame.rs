//! The frame `fanout-floor` writes: as many bytes per event per socket as a real `bid_placed`
//! WebSocket frame. Bytes 0..8 hold the writer's stamp (µs since the Unix epoch), 8..12 the
//! pass number, both little-endian, then filler. Every frame of a run has the same length,
//! which the reader is told, so frames need no delimiter.

use shared::{BidPlaced, Event, EventId, ItemId, Timestamp, UserId};

/// Bytes before the filler: the stamp and the pass number.
pub const HEADER_BYTES: usize = 12;

/// A frame length below [`HEADER_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a frame needs at least {HEADER_BYTES} bytes for its stamp and pass number, not {0}")]
pub struct FrameTooShort(pub usize);

/// What a reader finds at the start of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub pass: u32,
    /// When the writer started the pass, µs since the Unix epoch.
    pub at_us: u64,
}

/// A frame buffer of `len` bytes (spaces, as in the JSON a real frame carries).
///
/// # Errors
/// When `len` cannot hold the header.
pub fn new_frame(len: usize) -> Result<Vec<u8>, FrameTooShort> {
    (len >= HEADER_BYTES)
        .then(|| vec![b' '; len])
        .ok_or(FrameTooShort(len))
}

impl Stamp {
    /// Writes this stamp into the header of `frame` (one from [`new_frame`]).
    pub fn write(self, frame: &mut [u8]) {
        let header = self
            .at_us
            .to_le_bytes()
            .into_iter()
            .chain(self.pass.to_le_bytes());
        frame
            .iter_mut()
            .zip(header)
            .for_each(|(byte, stamp)| *byte = stamp);
    }

    /// The stamp at the start of `frame`, `None` when it is shorter than the header.
    pub fn read(frame: &[u8]) -> Option<Self> {
        let at_us = u64::from_le_bytes(frame.get(..8)?.try_into().ok()?);
        let pass = u32::from_le_bytes(frame.get(8..HEADER_BYTES)?.try_into().ok()?);
        Some(Self { pass, at_us })
    }
}

/// A `bid_placed` event on `item_id` as bench-fanout's bids make them (bidder `u<seq-1>`, a
/// cent above the previous price), for servers that are handed events rather than bids
/// (`bench-fanout-nchan`'s peer).
pub fn sample_bid_placed(item_id: ItemId, seq: u64) -> Event {
    let event_id = EventId::new();
    let previous = 99 + i64::try_from(seq).unwrap_or(0);
    Event::BidPlaced(BidPlaced {
        event_id,
        item_id,
        seq,
        timestamp: Timestamp::now(),
        bid_id: event_id.to_string(),
        user_id: UserId::parse(format!("u{}", seq.saturating_sub(1)))
            .expect("u and digits is a valid user id"),
        amount_cents: previous + 1,
        previous_bid_cents: previous,
        end_time: Timestamp::from_micros(Timestamp::now().micros() + 3_600_000_000),
        extended: false,
        round: 1,
        // The seller every experiment's items have (`api::SELLER_ID`).
        seller_id: Some(UserId::parse(crate::api::SELLER_ID).expect("a valid user id literal")),
        automatic: false,
        answered: false,
    })
}

/// Bytes of the `bid_placed` frame a bench-fanout viewer receives: the event's JSON as the
/// gateway publishes it (ids shaped as bench-fanout makes them) in one unmasked
/// server-to-client WebSocket text frame, computed from the shared event type so the floor
/// follows the schema.
pub fn bid_placed_frame_bytes() -> usize {
    // Literals that satisfy the id rules (1 to 64 of [A-Za-z0-9_-]); the unit test below
    // builds this frame too.
    let item_id = ItemId::parse("fan0123456789-item").expect("a valid item id literal");
    let event = sample_bid_placed(item_id, 20);
    // Plain cents always encode: only a decimal that is not valid JSON could fail.
    let payload = event
        .to_json()
        .expect("a literal bid_placed event encodes")
        .len();
    // RFC 6455 §5.2: 2 header bytes, plus 2 or 8 for longer payloads; no mask from a server.
    let header = match payload {
        0..=125 => 2,
        126..=65_535 => 4,
        _ => 10,
    };
    header + payload
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_from_the_frame() {
        let mut frame = new_frame(300).unwrap();
        let stamp = Stamp {
            pass: 7,
            at_us: 1_700_000_000_123_456,
        };
        stamp.write(&mut frame);
        assert_eq!(frame.len(), 300);
        assert_eq!(Stamp::read(&frame), Some(stamp));
    }

    #[test]
    fn a_frame_shorter_than_its_header_is_refused() {
        assert_eq!(new_frame(11).unwrap_err(), FrameTooShort(11));
        assert!(new_frame(HEADER_BYTES).is_ok());
        assert_eq!(Stamp::read(&[0; 11]), None);
    }

    #[test]
    fn the_default_frame_is_as_long_as_a_real_bid_placed_frame() {
        let bytes = bid_placed_frame_bytes();
        // 15 JSON fields (`automatic` since issue 16) with a UUID twice and two RFC 3339
        // times: about 400 bytes.
        assert!((250..=450).contains(&bytes), "{bytes}");
    }
}
