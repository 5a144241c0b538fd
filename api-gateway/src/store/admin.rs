//! Admin changes to an auction other than ending it: extending and relisting.

use super::script_reply::ReplyError;
use super::{Store, StoreError};
use shared::{AuctionExtended, AuctionRelisted, Event, EventId, ItemId, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtendOutcome {
    Extended(AuctionExtended),
    NotFound,
    /// Closed, cancelled, or past its end.
    NotActive,
    /// The new end is not later than the current one.
    NotLater,
}

/// A new round's terms.
#[derive(Debug, Clone)]
pub struct Relist {
    pub start_us: Option<i64>,
    pub end_us: i64,
    pub starting_cents: i64,
    pub min_increment_cents: i64,
    pub reserve_cents: i64,
    pub extension_window_us: i64,
    pub extension_us: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelistOutcome {
    Relisted(AuctionRelisted),
    NotFound,
    /// The current round is still running.
    Active,
    /// The new end is not after both now and the start.
    EndsInThePast,
}

impl Store {
    /// Runs `extend_item.lua`.
    ///
    /// # Errors
    /// When Redis is unavailable.
    pub async fn extend_item(
        &self,
        id: &ItemId,
        end: Timestamp,
    ) -> Result<ExtendOutcome, StoreError> {
        let keys = self.keys.item(id);
        let event_id = EventId::new();
        let mut invocation = self.scripts.extend_item.prepare_invoke();
        invocation
            .key(&keys.item)
            .key(&keys.closing)
            .key(&keys.outbox)
            .arg(id.as_str())
            .arg(event_id.to_string())
            .arg(end.micros());
        self.run_script("extend_item.lua", invocation, |reply| {
            match (reply.outcome.as_str(), reply.event) {
                ("extended", Some(Event::AuctionExtended(e))) => Ok(ExtendOutcome::Extended(e)),
                ("not_found", None) => Ok(ExtendOutcome::NotFound),
                ("not_active", None) => Ok(ExtendOutcome::NotActive),
                ("not_later", None) => Ok(ExtendOutcome::NotLater),
                (_, Some(_)) | ("extended", None) => Err(ReplyError::EventMismatch(reply.outcome)),
                _ => Err(ReplyError::UnknownOutcome(reply.outcome)),
            }
        })
        .await
    }

    /// Runs `relist_item.lua`.
    ///
    /// # Errors
    /// When Redis is unavailable.
    pub async fn relist_item(
        &self,
        id: &ItemId,
        terms: &Relist,
    ) -> Result<RelistOutcome, StoreError> {
        let keys = self.keys.item(id);
        let event_id = EventId::new();
        let mut invocation = self.scripts.relist_item.prepare_invoke();
        invocation
            .key(&keys.item)
            .key(&keys.closing)
            .key(&keys.outbox)
            .arg(id.as_str())
            .arg(event_id.to_string())
            .arg(terms.start_us.map(|s| s.to_string()).unwrap_or_default())
            .arg(terms.end_us)
            .arg(terms.starting_cents)
            .arg(terms.min_increment_cents)
            .arg(terms.reserve_cents)
            .arg(terms.extension_window_us)
            .arg(terms.extension_us);
        self.run_script("relist_item.lua", invocation, |reply| {
            match (reply.outcome.as_str(), reply.event) {
                ("relisted", Some(Event::AuctionRelisted(e))) => Ok(RelistOutcome::Relisted(e)),
                ("not_found", None) => Ok(RelistOutcome::NotFound),
                ("active", None) => Ok(RelistOutcome::Active),
                ("ended", None) => Ok(RelistOutcome::EndsInThePast),
                (_, Some(_)) | ("relisted", None) => Err(ReplyError::EventMismatch(reply.outcome)),
                _ => Err(ReplyError::UnknownOutcome(reply.outcome)),
            }
        })
        .await
    }
}
