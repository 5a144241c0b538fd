//! What a JetStream message becomes: an event for the batch, or a dead letter with the reason
//! it cannot be archived (it does not decode, or it breaks a rule of the schema).
//!
//! The schema's rules are checked here, before any SQL, so the common bad events never reach
//! PostgreSQL; whatever PostgreSQL still refuses is isolated by the consumer
//! ([`crate::consumer::process_batch`]) and dead-lettered through [`refused`].

use crate::store::{Batch, Change, DeadLetter};
use async_nats::jetstream;
use shared::{Event, EventId};

/// Decodes messages into a batch; undecodable ones become dead letters.
pub fn decode_batch(messages: &[jetstream::Message]) -> Batch {
    let mut batch = Batch::default();
    for message in messages {
        decode(message, &mut batch);
    }
    batch
}

/// Why an event cannot be archived. Its text is the dead letter's `reason`.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    /// The payload is not an event of the shared schema.
    #[error("undecodable event: {0}")]
    Undecodable(#[from] serde_json::Error),
    /// A bid's `seq` is 0; every accepted bid's is 1 or more.
    #[error("seq must be positive")]
    ZeroSeq,
    /// A bid of zero or less.
    #[error("amount must be positive")]
    NonPositiveAmount,
    /// A bid whose previous price is below zero.
    #[error("previous bid must not be negative")]
    NegativePreviousBid,
    /// PostgreSQL refused the event's values (see `shared::postgres_pool::data_refusal`).
    #[error("refused by PostgreSQL: {0}")]
    RefusedByPostgres(String),
}

/// Decodes one message into the batch: an event, or a dead letter with the reason.
fn decode(message: &jetstream::Message, batch: &mut Batch) {
    let event = serde_json::from_slice::<Event>(&message.payload)
        .map_err(Rejected::from)
        .and_then(|event| validate(&event).map(|()| event));
    match event {
        Ok(Event::BidPlaced(bid)) => batch.bids.push(bid),
        Ok(Event::AuctionClosed(close)) => batch.closes.push(close),
        Ok(Event::AuctionExtended(e)) => batch.changes.push(Change::Extended(e)),
        Ok(Event::AuctionRelisted(e)) => batch.changes.push(Change::Relisted(e)),
        Err(rejected) => batch.dead.push(dead_letter(message, &rejected)),
    }
}

/// Rules the schema enforces, checked first so one bad event cannot fail a whole batch.
fn validate(event: &Event) -> Result<(), Rejected> {
    match event {
        Event::BidPlaced(bid) if bid.seq == 0 => Err(Rejected::ZeroSeq),
        Event::BidPlaced(bid) if bid.amount_cents <= 0 => Err(Rejected::NonPositiveAmount),
        Event::BidPlaced(bid) if bid.previous_bid_cents < 0 => Err(Rejected::NegativePreviousBid),
        _ => Ok(()),
    }
}

/// The dead letter of one message PostgreSQL refused, with the refusal as its reason.
pub fn refused(message: &jetstream::Message, refusal: String) -> DeadLetter {
    dead_letter(message, &Rejected::RefusedByPostgres(refusal))
}

fn dead_letter(message: &jetstream::Message, rejected: &Rejected) -> DeadLetter {
    DeadLetter {
        event_id: event_id(message),
        stream_sequence: message.info().map(|i| i.stream_sequence).unwrap_or(0),
        subject: message.subject.to_string(),
        payload: message.payload.to_vec(),
        // A reason may quote the payload (serde names an unknown variant), and PostgreSQL's
        // text refuses a NUL: the reason must not poison its own dead letter.
        reason: rejected.to_string().replace('\0', "\\u{0}"),
    }
}

/// The message's event id: the relay's `Nats-Msg-Id` header, else the payload's `event_id`
/// if the payload is JSON enough to have one.
fn event_id(message: &jetstream::Message) -> Option<EventId> {
    let header = message
        .headers
        .as_ref()
        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
        .and_then(|id| EventId::parse(id.as_str()).ok());
    header.or_else(|| {
        let value: serde_json::Value = serde_json::from_slice(&message.payload).ok()?;
        EventId::parse(value.get("event_id")?.as_str()?).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_keep_their_dead_letter_reasons() {
        assert_eq!(Rejected::ZeroSeq.to_string(), "seq must be positive");
        assert_eq!(
            Rejected::NonPositiveAmount.to_string(),
            "amount must be positive"
        );
        assert_eq!(
            Rejected::NegativePreviousBid.to_string(),
            "previous bid must not be negative"
        );
        assert_eq!(
            Rejected::RefusedByPostgres("22021: invalid byte sequence".into()).to_string(),
            "refused by PostgreSQL: 22021: invalid byte sequence"
        );
        let Err(e) = serde_json::from_slice::<Event>(b"{") else {
            panic!("a truncated payload decoded");
        };
        assert!(
            Rejected::from(e)
                .to_string()
                .starts_with("undecodable event: ")
        );
    }
}
