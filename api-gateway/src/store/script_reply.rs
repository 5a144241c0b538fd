//! The one reply shape of the gateway's Lua scripts, and its decoder.
//!
//! Every script answers `{reply_fields, event_fields…}`: flat `name, value, …` lists.
//! `reply_fields` always holds `outcome` and whatever else the caller needs besides the events
//! (the price after a bid, the end time that made a close not due). Each `event_fields`, one
//! per event the script wrote (most write at most one; a bid answered by a standing maximum
//! writes two), is the very list it passed to `XADD`, in `seq` order, decoded by
//! [`Event::from_fields`] exactly as the outbox relay decodes the entry.

use super::{Store, StoreError};
use shared::{Event, EventId, FieldError, FieldList, ItemId};

/// The reply field every script sets.
pub(super) const OUTCOME: &str = "outcome";

/// Why a script's reply does not have the documented shape: a bug in a script or its caller.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("the reply has no lists")]
    Shape(usize),
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("unknown outcome {0:?}")]
    UnknownOutcome(String),
    /// An outcome that must carry an event came without one (or with several), or the other
    /// way round.
    #[error("outcome {0:?} with unexpected events, or without its event")]
    EventMismatch(String),
}

/// A decoded reply.
#[derive(Debug)]
pub(super) struct ScriptReply {
    pub outcome: String,
    /// Every reply field, `outcome` included.
    pub fields: FieldList,
    /// The events the script appended, in `seq` order.
    pub events: Vec<Event>,
}

impl ScriptReply {
    /// Decodes the reply lists.
    ///
    /// # Errors
    /// [`ReplyError`] when the shape, a field or the event is malformed.
    pub fn parse(lists: Vec<Vec<String>>) -> Result<Self, ReplyError> {
        let parts = lists.len();
        let mut lists = lists.into_iter();
        let Some(fields) = lists.next() else {
            return Err(ReplyError::Shape(parts));
        };
        let fields = FieldList::from_flat(fields)?;
        let events = lists
            .map(|flat| FieldList::from_flat(flat).and_then(|f| Event::from_fields(&f)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            outcome: fields.text(OUTCOME)?.to_owned(),
            fields,
            events,
        })
    }

    /// The caller's outcome for a script whose outcome `with_event` always carries the event
    /// and whose other outcomes never do: `event` turns the event into the caller's outcome
    /// (`None` for an event of another kind), `without` names the other outcomes.
    ///
    /// # Errors
    /// [`ReplyError::EventMismatch`] when the event is missing, unexpected or of another kind;
    /// [`ReplyError::UnknownOutcome`] for an outcome the caller does not name.
    pub fn decide<T: Clone>(
        self,
        with_event: &str,
        event: impl FnOnce(Event) -> Option<T>,
        without: &[(&str, T)],
    ) -> Result<T, ReplyError> {
        let one = self.events.len() == 1;
        let mut events = self.events.into_iter();
        match events.next() {
            Some(e) if one && self.outcome == with_event => {
                event(e).ok_or(ReplyError::EventMismatch(self.outcome))
            }
            Some(_) => Err(ReplyError::EventMismatch(self.outcome)),
            None if self.outcome == with_event => Err(ReplyError::EventMismatch(self.outcome)),
            None => Self {
                outcome: self.outcome,
                fields: self.fields,
                events: Vec::new(),
            }
            .decide_without_event(without),
        }
    }

    /// The caller's outcome for a script none of whose outcomes carries an event.
    ///
    /// # Errors
    /// [`ReplyError::EventMismatch`] when the reply has an event;
    /// [`ReplyError::UnknownOutcome`] for an outcome not in `outcomes`.
    pub fn decide_without_event<T: Clone>(self, outcomes: &[(&str, T)]) -> Result<T, ReplyError> {
        if !self.events.is_empty() {
            return Err(ReplyError::EventMismatch(self.outcome));
        }
        outcomes
            .iter()
            .find(|(name, _)| *name == self.outcome)
            .map(|(_, outcome)| outcome.clone())
            .ok_or(ReplyError::UnknownOutcome(self.outcome))
    }
}

impl Store {
    /// An invocation of a script that changes one item and appends its event to the outbox
    /// (`close_item`, `extend_item`, `relist_item`): `KEYS` item, closing set, outbox and the
    /// shard's listing sets (last, as `item_index.lua` wants them); `ARGV` the item id and a
    /// new event id, then what the caller adds.
    pub(super) fn item_change(
        &self,
        script: &'static redis::Script,
        id: &ItemId,
    ) -> redis::ScriptInvocation<'static> {
        let keys = self.keys.item(id);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(&keys.item)
            .key(&keys.closing)
            .key(&keys.outbox)
            .key(&self.keys.listing_keys(keys.shard))
            .arg(id.as_str())
            .arg(EventId::new().to_string());
        invocation
    }

    /// Runs one script under the store's deadline and decodes its reply with `decode`.
    ///
    /// # Errors
    /// The call's own error, or [`StoreError::Internal`] naming `script` when the reply is
    /// malformed.
    pub(super) async fn run_script<T>(
        &self,
        script: &'static str,
        invocation: redis::ScriptInvocation<'static>,
        decode: impl FnOnce(ScriptReply) -> Result<T, ReplyError>,
    ) -> Result<T, StoreError> {
        let lists: Vec<Vec<String>> = self.redis.invoke(&invocation).await?;
        ScriptReply::parse(lists).and_then(decode).map_err(|e| {
            StoreError::Internal(anyhow::Error::new(e).context(format!("{script} replied")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn extended_event() -> Vec<String> {
        list(&[
            "type",
            "auction_extended",
            "event_id",
            "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "item_id",
            "item-1",
            "seq",
            "3",
            "ts_us",
            "10",
            "end_us",
            "20",
            "round",
            "1",
        ])
    }

    #[test]
    fn a_reply_with_an_event_decodes_both_lists() {
        let reply =
            ScriptReply::parse(vec![list(&["outcome", "extended"]), extended_event()]).unwrap();
        assert_eq!(reply.outcome, "extended");
        assert!(matches!(reply.events.as_slice(), [Event::AuctionExtended(e)] if e.seq == 3));
    }

    #[test]
    fn a_reply_without_an_outcome_or_of_the_wrong_shape_is_an_error() {
        assert!(matches!(
            ScriptReply::parse(vec![list(&["end_us", "5"])]),
            Err(ReplyError::Field(FieldError::Missing(OUTCOME)))
        ));
        assert!(matches!(
            ScriptReply::parse(Vec::new()),
            Err(ReplyError::Shape(0))
        ));
        let empty_event = vec![list(&["outcome", "x"]), Vec::new()];
        assert!(matches!(
            ScriptReply::parse(empty_event),
            Err(ReplyError::Field(FieldError::Missing("type")))
        ));
        assert!(matches!(
            ScriptReply::parse(vec![list(&["outcome"])]),
            Err(ReplyError::Field(FieldError::OddLength(1)))
        ));
    }

    #[test]
    fn only_the_outcome_with_an_event_may_carry_one() {
        let decide = |lists: Vec<Vec<String>>| {
            ScriptReply::parse(lists).unwrap().decide(
                "extended",
                |event| matches!(event, Event::AuctionExtended(_)).then_some("extended"),
                &[("not_found", "not_found")],
            )
        };
        assert!(matches!(
            decide(vec![list(&["outcome", "extended"]), extended_event()]),
            Ok("extended")
        ));
        assert!(matches!(
            decide(vec![list(&["outcome", "not_found"])]),
            Ok("not_found")
        ));
        assert!(matches!(
            decide(vec![list(&["outcome", "extended"])]),
            Err(ReplyError::EventMismatch(_))
        ));
        assert!(matches!(
            decide(vec![list(&["outcome", "not_found"]), extended_event()]),
            Err(ReplyError::EventMismatch(_))
        ));
        assert!(matches!(
            decide(vec![list(&["outcome", "gone"])]),
            Err(ReplyError::UnknownOutcome(_))
        ));
        assert!(matches!(
            decide(vec![
                list(&["outcome", "extended"]),
                extended_event(),
                extended_event()
            ]),
            Err(ReplyError::EventMismatch(_))
        ));
    }

    #[test]
    fn a_malformed_event_is_an_error_naming_its_field() {
        let mut event = extended_event();
        event.truncate(6);
        assert!(matches!(
            ScriptReply::parse(vec![list(&["outcome", "extended"]), event]),
            Err(ReplyError::Field(FieldError::Missing("seq")))
        ));
    }
}
