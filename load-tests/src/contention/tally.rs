//! What the users saw happen to their bids, per item: the figures the checks compare with the
//! state read back afterwards.
//!
//! Goose times requests and counts HTTP failures; what a reply *says* (accepted with which
//! `seq`, rejected as too low, at which amount) only the users know, so they keep this tally,
//! shared by all of them. Per-item figures are atomics (relaxed: each is an independent count
//! or maximum, read only after goose has joined every user); the rare errors go in a map
//! under a mutex.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Marks "none yet" in the maximum fields of [`ItemTally`].
const NONE: i64 = i64::MIN;

/// One item's counters.
#[derive(Debug)]
struct ItemTally {
    accepted: AtomicU64,
    rejected_too_low: AtomicU64,
    /// 200 with `success: false` and a code other than `bid_too_low`.
    other_rejections: AtomicU64,
    highest_accepted_cents: AtomicI64,
    highest_seq: AtomicI64,
    highest_rejected_cents: AtomicI64,
}

impl Default for ItemTally {
    fn default() -> Self {
        Self {
            accepted: AtomicU64::new(0),
            rejected_too_low: AtomicU64::new(0),
            other_rejections: AtomicU64::new(0),
            highest_accepted_cents: AtomicI64::new(NONE),
            highest_seq: AtomicI64::new(NONE),
            highest_rejected_cents: AtomicI64::new(NONE),
        }
    }
}

/// Every bid outcome of one run (a hot-item level or the mixed run), by item index.
#[derive(Debug)]
pub struct BidTally {
    items: Vec<ItemTally>,
    /// Bids without a readable 200 answer, by kind (`status 503`, `transport`, …).
    errors: Mutex<BTreeMap<String, u64>>,
}

/// A snapshot of one item's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ItemOutcomes {
    pub accepted: u64,
    pub rejected_too_low: u64,
    pub other_rejections: u64,
    pub highest_accepted_cents: Option<i64>,
    /// The highest `seq` an accepted bid's reply carried.
    pub highest_seq: Option<u64>,
    /// The highest amount rejected as too low.
    pub highest_rejected_cents: Option<i64>,
}

fn some(value: i64) -> Option<i64> {
    (value != NONE).then_some(value)
}

impl BidTally {
    /// A tally for `items` items, all empty.
    pub fn new(items: usize) -> Self {
        Self {
            items: (0..items).map(|_| ItemTally::default()).collect(),
            errors: Mutex::new(BTreeMap::new()),
        }
    }

    /// An accepted bid of `amount_cents` on item `item`, numbered `seq` by the gateway.
    pub fn accepted(&self, item: usize, amount_cents: i64, seq: Option<u64>) {
        let Some(tally) = self.items.get(item) else {
            return;
        };
        tally.accepted.fetch_add(1, Ordering::Relaxed);
        tally
            .highest_accepted_cents
            .fetch_max(amount_cents, Ordering::Relaxed);
        if let Some(seq) = seq.and_then(|s| i64::try_from(s).ok()) {
            tally.highest_seq.fetch_max(seq, Ordering::Relaxed);
        }
    }

    /// A bid answered 200 with `success: false` and `code`.
    pub fn rejected(&self, item: usize, amount_cents: i64, code: Option<&str>) {
        let Some(tally) = self.items.get(item) else {
            return;
        };
        if code == Some("bid_too_low") {
            tally.rejected_too_low.fetch_add(1, Ordering::Relaxed);
            tally
                .highest_rejected_cents
                .fetch_max(amount_cents, Ordering::Relaxed);
        } else {
            tally.other_rejections.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A bid without a readable 200 answer; `kind` says what came back instead.
    pub fn error(&self, kind: String) {
        let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        *errors.entry(kind).or_default() += 1;
    }

    /// Item `item`'s counters so far (empty for an index out of range).
    pub fn item(&self, item: usize) -> ItemOutcomes {
        let Some(tally) = self.items.get(item) else {
            return ItemOutcomes {
                accepted: 0,
                rejected_too_low: 0,
                other_rejections: 0,
                highest_accepted_cents: None,
                highest_seq: None,
                highest_rejected_cents: None,
            };
        };
        ItemOutcomes {
            accepted: tally.accepted.load(Ordering::Relaxed),
            rejected_too_low: tally.rejected_too_low.load(Ordering::Relaxed),
            other_rejections: tally.other_rejections.load(Ordering::Relaxed),
            highest_accepted_cents: some(tally.highest_accepted_cents.load(Ordering::Relaxed)),
            highest_seq: some(tally.highest_seq.load(Ordering::Relaxed))
                .and_then(|s| u64::try_from(s).ok()),
            highest_rejected_cents: some(tally.highest_rejected_cents.load(Ordering::Relaxed)),
        }
    }

    /// Accepted bids over every item.
    pub fn accepted_total(&self) -> u64 {
        (0..self.items.len()).map(|i| self.item(i).accepted).sum()
    }

    /// Rejected bids (any code) over every item.
    pub fn rejected_total(&self) -> u64 {
        (0..self.items.len())
            .map(|i| {
                let item = self.item(i);
                item.rejected_too_low + item.other_rejections
            })
            .sum()
    }

    /// Errors so far, by kind.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_item_has_no_outcomes() {
        let tally = BidTally::new(2);
        assert_eq!(
            tally.item(1),
            ItemOutcomes {
                accepted: 0,
                rejected_too_low: 0,
                other_rejections: 0,
                highest_accepted_cents: None,
                highest_seq: None,
                highest_rejected_cents: None,
            }
        );
        assert!(tally.errors().is_empty());
    }

    #[test]
    fn outcomes_are_kept_per_item_with_their_maxima() {
        let tally = BidTally::new(2);
        tally.accepted(0, 150, Some(2));
        tally.accepted(0, 120, Some(1));
        tally.rejected(0, 149, Some("bid_too_low"));
        tally.rejected(0, 900, Some("closed"));
        tally.accepted(1, 300, Some(1));
        let first = tally.item(0);
        assert_eq!(first.accepted, 2);
        assert_eq!(first.highest_accepted_cents, Some(150));
        assert_eq!(first.highest_seq, Some(2));
        assert_eq!(first.rejected_too_low, 1);
        assert_eq!(first.highest_rejected_cents, Some(149));
        assert_eq!(first.other_rejections, 1);
        assert_eq!(tally.item(1).accepted, 1);
        assert_eq!(tally.accepted_total(), 3);
        assert_eq!(tally.rejected_total(), 2);
    }

    #[test]
    fn errors_are_counted_by_kind_and_out_of_range_items_are_ignored() {
        let tally = BidTally::new(1);
        tally.error("status 503".into());
        tally.error("status 503".into());
        tally.error("transport".into());
        tally.accepted(7, 100, Some(1));
        assert_eq!(tally.errors().get("status 503"), Some(&2));
        assert_eq!(tally.errors().get("transport"), Some(&1));
        assert_eq!(tally.accepted_total(), 0);
    }
}
