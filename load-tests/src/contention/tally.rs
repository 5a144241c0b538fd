//! What the users saw happen to their bids, per item: the figures the checks compare with the
//! state read back afterwards.
//!
//! Goose times requests and counts HTTP failures; what a reply *says* (accepted with which
//! `seq`, rejected as too low, at which amount) only the users know, so they keep this tally,
//! shared by all of them. One std mutex guards it: it is held for a few increments once per
//! answer, never across an `.await`, and on two cores it is barely contended.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// One item's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ItemOutcomes {
    pub accepted: u64,
    /// The events the accepted bids appended: one each, except a proxy bid answered by a
    /// standing maximum (two) and a leader raising its own maximum (none, or one).
    pub events: u64,
    pub rejected_too_low: u64,
    /// 200 with `success: false` and a code other than `bid_too_low`.
    pub other_rejections: u64,
    pub highest_accepted_cents: Option<i64>,
    /// The highest `seq` an accepted bid's reply carried.
    pub highest_seq: Option<u64>,
    /// The highest amount rejected as too low.
    pub highest_rejected_cents: Option<i64>,
}

#[derive(Debug)]
struct Counts {
    items: Vec<ItemOutcomes>,
    /// Bids without a readable 200 answer, by kind (`status 503`, `transport`, …).
    errors: BTreeMap<String, u64>,
}

/// Every bid outcome of one run (a hot-item level or the mixed run), by item index; outcomes
/// for an index out of range are ignored.
#[derive(Debug)]
pub struct BidTally(Mutex<Counts>);

impl BidTally {
    /// A tally for `items` items, all empty.
    pub fn new(items: usize) -> Self {
        let items = vec![ItemOutcomes::default(); items];
        Self(Mutex::new(Counts {
            items,
            errors: BTreeMap::new(),
        }))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Counts) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn with_item(&self, item: usize, f: impl FnOnce(&mut ItemOutcomes)) {
        self.with(|counts| counts.items.get_mut(item).map(f));
    }

    /// An accepted bid of `amount_cents` on item `item`, numbered `seq` by the gateway.
    #[cfg(test)]
    pub fn accepted(&self, item: usize, amount_cents: i64, seq: Option<u64>) {
        self.accepted_placing(item, amount_cents, seq, 1);
    }

    /// An accepted bid (`success: true`) that left the price at `price_cents` and appended
    /// `events` events, the last numbered `seq`.
    pub fn accepted_placing(&self, item: usize, price_cents: i64, seq: Option<u64>, events: u64) {
        let amount_cents = price_cents;
        self.with_item(item, |o| {
            o.accepted += 1;
            o.events += events;
            o.highest_accepted_cents = o.highest_accepted_cents.max(Some(amount_cents));
            o.highest_seq = o.highest_seq.max(seq);
        });
    }

    /// A bid answered 200 with `success: false` and `code`.
    pub fn rejected(&self, item: usize, amount_cents: i64, code: Option<&str>) {
        self.with_item(item, |o| {
            if code == Some("bid_too_low") {
                o.rejected_too_low += 1;
                o.highest_rejected_cents = o.highest_rejected_cents.max(Some(amount_cents));
            } else {
                o.other_rejections += 1;
            }
        });
    }

    /// A bid without a readable 200 answer; `kind` says what came back instead.
    pub fn error(&self, kind: String) {
        self.with(|counts| *counts.errors.entry(kind).or_default() += 1);
    }

    /// Item `item`'s counters so far (empty for an index out of range).
    pub fn item(&self, item: usize) -> ItemOutcomes {
        self.with(|counts| counts.items.get(item).copied().unwrap_or_default())
    }

    /// Accepted bids over every item.
    pub fn accepted_total(&self) -> u64 {
        self.with(|counts| counts.items.iter().map(|o| o.accepted).sum())
    }

    /// Rejected bids (any code) over every item.
    pub fn rejected_total(&self) -> u64 {
        let rejected = |o: &ItemOutcomes| o.rejected_too_low + o.other_rejections;
        self.with(|counts| counts.items.iter().map(rejected).sum())
    }

    /// Errors so far, by kind.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.with(|counts| counts.errors.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_kept_per_item_with_their_maxima() {
        let tally = BidTally::new(3);
        assert_eq!(
            tally.item(2),
            ItemOutcomes::default(),
            "a fresh item has no outcomes"
        );
        tally.accepted(0, 150, Some(2));
        tally.accepted(0, 120, Some(1));
        tally.rejected(0, 149, Some("bid_too_low"));
        tally.rejected(0, 900, Some("closed"));
        tally.accepted(1, 300, Some(1));
        let expected = ItemOutcomes {
            accepted: 2,
            events: 2,
            rejected_too_low: 1,
            other_rejections: 1,
            highest_accepted_cents: Some(150),
            highest_seq: Some(2),
            highest_rejected_cents: Some(149),
        };
        assert_eq!(tally.item(0), expected);
        assert_eq!(tally.item(1).accepted, 1);
        assert_eq!((tally.accepted_total(), tally.rejected_total()), (3, 2));
    }

    #[test]
    fn errors_are_counted_by_kind_and_out_of_range_items_are_ignored() {
        let tally = BidTally::new(1);
        assert!(tally.errors().is_empty());
        for kind in ["status 503", "status 503", "transport"] {
            tally.error(kind.into());
        }
        tally.accepted(7, 100, Some(1));
        let expected = BTreeMap::from([("status 503".into(), 2), ("transport".into(), 1)]);
        assert_eq!(tally.errors(), expected);
        assert_eq!(tally.accepted_total(), 0);
    }
}
