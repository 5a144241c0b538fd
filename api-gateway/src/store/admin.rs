//! Admin changes to an auction other than ending it: extending and relisting.

use super::{RoundTerms, Store, StoreError};
use shared::{AuctionExtended, AuctionRelisted, Event, ItemId, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtendOutcome {
    Extended(AuctionExtended),
    NotFound,
    /// Closed, cancelled, or past its end.
    NotActive,
    /// The new end is not later than the current one.
    NotLater,
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
        let mut invocation = self.item_change(&self.scripts.extend_item, id);
        invocation.arg(end.micros());
        self.run_script("extend_item.lua", invocation, |reply| {
            reply.decide(
                "extended",
                |event| match event {
                    Event::AuctionExtended(e) => Some(ExtendOutcome::Extended(e)),
                    _ => None,
                },
                &[
                    ("not_found", ExtendOutcome::NotFound),
                    ("not_active", ExtendOutcome::NotActive),
                    ("not_later", ExtendOutcome::NotLater),
                ],
            )
        })
        .await
    }

    /// Runs `relist_item.lua`: the next round, on `terms` (the fields creation sets).
    ///
    /// # Errors
    /// When Redis is unavailable.
    pub async fn relist_item(
        &self,
        id: &ItemId,
        terms: &RoundTerms,
    ) -> Result<RelistOutcome, StoreError> {
        let mut invocation = self.item_change(&self.scripts.relist_item, id);
        invocation.arg(terms.start_arg()).arg(terms.end_us);
        terms.push_fields(&mut invocation);
        self.run_script("relist_item.lua", invocation, |reply| {
            reply.decide(
                "relisted",
                |event| match event {
                    Event::AuctionRelisted(e) => Some(RelistOutcome::Relisted(e)),
                    _ => None,
                },
                &[
                    ("not_found", RelistOutcome::NotFound),
                    ("active", RelistOutcome::Active),
                    ("ended", RelistOutcome::EndsInThePast),
                ],
            )
        })
        .await
    }
}
