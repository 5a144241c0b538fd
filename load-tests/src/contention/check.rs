//! The correctness checks of a contention run: what the users saw, against the state the
//! gateway reports afterwards and the answers it gave.
//!
//! Per item (the contract's "no lost update"): the final price is the highest accepted bid,
//! `seq` and `bid_count` equal the number of accepted bids (and no reply carried a higher
//! `seq`), and every bid rejected as too low was below the final price plus the minimum
//! increment. Per run: no answer a correct gateway never gives (a 500, an unreadable reply).
//! A 503 is reported but allowed: the contract answers it when Redis is unreachable or slow,
//! and the optimistic strategy when a bid lost the race too often. Its outcome is not always
//! definite, though: when the gateway's Redis deadline expires while the script is already
//! running, the bid is applied and the client still gets 503. Such a bid makes `seq` exceed
//! the accepted count the users saw; the check keeps failing then (no lost update cannot be
//! proved with unknown outcomes) and says why, see [`undetermined_note`].

use super::bidder::BidTarget;
use super::tally::ItemOutcomes;
use crate::api::{ApiClient, ItemState};
use crate::verdict::prefixed;
use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use std::collections::BTreeMap;

/// Items read back at once after a run.
const READ_CONCURRENCY: usize = 16;

/// One item's figures next to its state, and what did not match.
#[derive(Debug, Clone, Serialize)]
pub struct ItemCheck {
    pub item_id: String,
    /// What the users saw.
    #[serde(flatten)]
    pub seen: ItemOutcomes,
    pub final_price_cents: Option<i64>,
    pub final_seq: u64,
    pub final_bid_count: u64,
    /// Empty when the item passed.
    pub violations: Vec<String>,
}

impl ItemCheck {
    /// Compares what the users saw on `item_id` with its `state`.
    pub fn new(
        item_id: &str,
        seen: &ItemOutcomes,
        state: &ItemState,
        min_increment_cents: i64,
    ) -> Self {
        Self {
            item_id: item_id.to_owned(),
            seen: *seen,
            final_price_cents: state.current_bid_cents,
            final_seq: state.seq,
            final_bid_count: state.bid_count,
            violations: item_violations(seen, state, min_increment_cents),
        }
    }

    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// What does not match between what the users saw and the item's state.
fn item_violations(
    seen: &ItemOutcomes,
    state: &ItemState,
    min_increment_cents: i64,
) -> Vec<String> {
    let mut violations = Vec::new();
    if state.current_bid_cents != seen.highest_accepted_cents {
        violations.push(format!(
            "final price {:?} is not the highest accepted bid {:?}",
            state.current_bid_cents, seen.highest_accepted_cents
        ));
    }
    // Every event is a bid here: one per accepted plain bid, two for a bid a standing
    // maximum answered (its own and the automatic one).
    if state.seq != seen.events {
        violations.push(format!(
            "seq {} differs from the {} events of {} accepted bids",
            state.seq, seen.events, seen.accepted
        ));
    }
    if state.bid_count != seen.events {
        violations.push(format!(
            "bid_count {} differs from the {} events of {} accepted bids",
            state.bid_count, seen.events, seen.accepted
        ));
    }
    if let Some(highest_seq) = seen.highest_seq
        && highest_seq != state.seq
    {
        violations.push(format!(
            "an accepted bid was numbered {highest_seq}, the item ended at seq {}",
            state.seq
        ));
    }
    if let Some(rejected) = seen.highest_rejected_cents {
        match state.current_bid_cents {
            Some(price) if rejected < price + min_increment_cents => {}
            Some(price) => violations.push(format!(
                "a bid of {rejected} cents was rejected as too low, but the final price \
                 {price} plus the increment {min_increment_cents} does not exceed it"
            )),
            None => violations.push(format!(
                "a bid of {rejected} cents was rejected as too low, but the item has no bid"
            )),
        }
    }
    violations
}

/// Every item of `target` read back and checked against what its users saw.
///
/// # Errors
/// An item cannot be read back.
pub async fn check_items(api: &ApiClient, target: &BidTarget) -> anyhow::Result<Vec<ItemCheck>> {
    let (tally, increment) = (&target.tally, target.min_increment_cents);
    futures::stream::iter(target.item_ids.iter().enumerate())
        .map(|(index, id)| async move {
            let state = api.item_state(id).await?;
            anyhow::Ok(ItemCheck::new(id, &tally.item(index), &state, increment))
        })
        .buffered(READ_CONCURRENCY)
        .try_collect()
        .await
        .context("reading the items back")
}

/// Everything wrong with the bids of a run: each item's check (with a note when bids
/// without a definite answer may explain it), answers a correct gateway never gives, and a
/// run of `requests` bids answered mostly with refusals.
pub fn bid_violations(
    checks: &[ItemCheck],
    errors: &BTreeMap<String, u64>,
    requests: u64,
) -> Vec<String> {
    let item = |c: &ItemCheck| prefixed(format_args!("item {}", c.item_id), &c.violations);
    let mut violations: Vec<String> = checks.iter().flat_map(item).collect();
    if !violations.is_empty() {
        violations.extend(undetermined_note(errors));
    }
    violations.extend(error_violations("bid", errors));
    violations.extend(refusal_violation("bid", requests, errors));
    violations
}

/// Answers a correct gateway never gives, among `errors` of `kind` (`bid`, `item read`, …):
/// a 5xx other than 503, an unreadable reply.
pub fn error_violations(kind: &str, errors: &BTreeMap<String, u64>) -> Vec<String> {
    errors
        .iter()
        .filter(|(error, _)| error.as_str() != "status 503" && is_forbidden(error))
        .map(|(error, count)| format!("{count} {kind} requests answered {error}"))
        .collect()
}

/// A run answered mostly with refusals (429, 503, transport errors) measured the refusals,
/// not the system: more than half of `requests` without their expected answer is a violation.
pub fn refusal_violation(
    kind: &str,
    requests: u64,
    errors: &BTreeMap<String, u64>,
) -> Option<String> {
    let refused: u64 = errors.values().sum();
    (refused * 2 > requests && refused > 0).then(|| {
        format!(
            "{refused} of {requests} {kind} requests got no answer they expect: the run \
             measured refusals"
        )
    })
}

fn is_forbidden(error: &str) -> bool {
    error.starts_with("status 5") || error.starts_with("unreadable")
}

/// When items failed their check and some bids had no definite answer (a 503, a transport
/// error), a note saying those bids may have been applied after all.
pub fn undetermined_note(errors: &BTreeMap<String, u64>) -> Option<String> {
    let undetermined: u64 = errors
        .iter()
        .filter(|(kind, _)| !kind.starts_with("status 4"))
        .map(|(_, count)| count)
        .sum();
    (undetermined > 0).then(|| {
        format!(
            "{undetermined} bids had no definite answer (503 or transport error); a 503 from \
             the gateway's Redis deadline may still have been applied, so the counts cannot \
             be reconciled"
        )
    })
}

/// Goose's status counts as error kinds, for the statuses other than `ok`.
pub fn status_errors(statuses: &BTreeMap<u16, u64>, ok: u16) -> BTreeMap<String, u64> {
    statuses
        .iter()
        .filter(|(status, _)| **status != ok)
        .map(|(status, count)| {
            let kind = if *status == 0 {
                "transport".to_owned()
            } else {
                format!("status {status}")
            };
            (kind, *count)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the users saw, `(accepted, highest accepted, highest rejected as too low)`, against
    /// the state read back, `(seq and bid_count, price)`, with a 5-cent increment.
    fn check(seen: (u64, Option<i64>, Option<i64>), state: (u64, Option<i64>)) -> ItemCheck {
        let (accepted, highest_accepted_cents, highest_rejected_cents) = seen;
        let seen = ItemOutcomes {
            accepted,
            events: accepted,
            rejected_too_low: u64::from(highest_rejected_cents.is_some()),
            other_rejections: 0,
            highest_accepted_cents,
            highest_seq: (accepted > 0).then_some(accepted),
            highest_rejected_cents,
        };
        let (seq, current_bid_cents) = state;
        let bid_count = seq;
        ItemCheck::new(
            "i",
            &seen,
            &ItemState {
                seq,
                bid_count,
                current_bid_cents,
            },
            5,
        )
    }

    fn errors(counts: &[(&str, u64)]) -> BTreeMap<String, u64> {
        counts
            .iter()
            .map(|(kind, n)| ((*kind).to_owned(), *n))
            .collect()
    }

    #[test]
    fn an_item_passes_only_when_its_state_matches_what_the_users_saw() {
        // Then how many violations, and what the first one says.
        let (price, too_low) = (Some(130), "rejected as too low");
        for (seen, state, count, says) in [
            ((7, price, Some(134)), (7, price), 0, "a consistent item"),
            ((0, None, None), (0, None), 0, "an item nobody bid on"),
            ((7, price, None), (6, price), 3, "seq 6"),
            ((7, price, None), (8, price), 3, "seq 8"),
            ((7, price, None), (7, Some(129)), 1, "final price"),
            ((7, price, Some(135)), (7, price), 1, too_low),
            ((0, None, Some(100)), (0, None), 1, too_low),
        ] {
            let violations = check(seen, state).violations;
            assert_eq!(
                violations.len(),
                count,
                "{seen:?} {state:?}: {violations:?}"
            );
            let first = violations.first();
            assert!(first.is_none_or(|v| v.contains(says)), "{says}");
            assert_eq!(check(seen, state).passed(), count == 0);
        }
    }

    #[test]
    fn a_500_or_an_unreadable_reply_is_a_violation_a_503_is_not() {
        let allowed = errors(&[("status 503", 4), ("transport", 1), ("status 409", 1)]);
        assert!(error_violations("bid", &allowed).is_empty());
        let forbidden = errors(&[("status 500", 2), ("unreadable reply", 1)]);
        let expected = [
            "2 bid requests answered status 500",
            "1 bid requests answered unreadable reply",
        ];
        assert_eq!(error_violations("bid", &forbidden), expected);
    }

    #[test]
    fn a_run_answered_mostly_with_refusals_is_a_violation() {
        let refused = errors(&[("status 429", 6), ("transport", 1)]);
        let violation = refusal_violation("bid", 10, &refused);
        assert!(violation.is_some_and(|v| v.starts_with("7 of 10")));
        assert_eq!(refusal_violation("bid", 14, &refused), None);
        assert_eq!(refusal_violation("bid", 0, &BTreeMap::new()), None);
    }

    #[test]
    fn only_bids_without_a_definite_answer_are_undetermined() {
        assert_eq!(undetermined_note(&errors(&[("status 409", 3)])), None);
        let unsure = errors(&[("status 409", 3), ("status 503", 2), ("transport", 1)]);
        assert!(undetermined_note(&unsure).is_some_and(|n| n.starts_with("3 bids")));
    }

    #[test]
    fn goose_status_counts_become_error_kinds_without_the_expected_status() {
        let statuses = BTreeMap::from([(200, 90), (0, 2), (503, 1)]);
        let expected = errors(&[("transport", 2), ("status 503", 1)]);
        assert_eq!(status_errors(&statuses, 200), expected);
    }
}
