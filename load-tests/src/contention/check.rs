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

use super::tally::ItemOutcomes;
use crate::api::ItemState;
use serde::Serialize;
use std::collections::BTreeMap;

/// One item's figures next to its state, and what did not match.
#[derive(Debug, Clone, Serialize)]
pub struct ItemCheck {
    pub item_id: String,
    pub accepted: u64,
    pub rejected_too_low: u64,
    pub highest_accepted_cents: Option<i64>,
    pub highest_rejected_cents: Option<i64>,
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
            accepted: seen.accepted,
            rejected_too_low: seen.rejected_too_low,
            highest_accepted_cents: seen.highest_accepted_cents,
            highest_rejected_cents: seen.highest_rejected_cents,
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
    if state.seq != seen.accepted {
        violations.push(format!(
            "seq {} differs from the {} accepted bids",
            state.seq, seen.accepted
        ));
    }
    if state.bid_count != seen.accepted {
        violations.push(format!(
            "bid_count {} differs from the {} accepted bids",
            state.bid_count, seen.accepted
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

    fn seen(accepted: u64, highest: Option<i64>, rejected: Option<i64>) -> ItemOutcomes {
        ItemOutcomes {
            accepted,
            rejected_too_low: u64::from(rejected.is_some()),
            other_rejections: 0,
            highest_accepted_cents: highest,
            highest_seq: (accepted > 0).then_some(accepted),
            highest_rejected_cents: rejected,
        }
    }

    fn state(seq: u64, price: Option<i64>) -> ItemState {
        ItemState {
            seq,
            bid_count: seq,
            current_bid_cents: price,
        }
    }

    #[test]
    fn an_item_passes_only_when_its_state_matches_what_the_users_saw() {
        // (accepted, highest accepted, highest rejected as too low) seen, (seq, price) read
        // back, then how many violations and what the first one says.
        for (seen_, state_, count, says) in [
            ((7, Some(130), Some(134)), (7, Some(130)), 0, ""),
            ((0, None, None), (0, None), 0, "an item nobody bid on"),
            ((7, Some(130), None), (6, Some(130)), 3, "seq 6"),
            ((7, Some(130), None), (8, Some(130)), 3, "seq 8"),
            ((7, Some(130), None), (7, Some(129)), 1, "final price"),
            (
                (7, Some(130), Some(135)),
                (7, Some(130)),
                1,
                "rejected as too low",
            ),
            ((0, None, Some(100)), (0, None), 1, "rejected as too low"),
        ] {
            let check = ItemCheck::new(
                "i",
                &seen(seen_.0, seen_.1, seen_.2),
                &state(state_.0, state_.1),
                5,
            );
            assert_eq!(
                check.violations.len(),
                count,
                "{seen_:?} {state_:?}: {:?}",
                check.violations
            );
            assert_eq!(check.passed(), count == 0);
            assert!(
                check.violations.first().is_none_or(|v| v.contains(says)),
                "{says}"
            );
        }
    }

    #[test]
    fn a_500_or_an_unreadable_reply_is_a_violation_a_503_is_not() {
        let errors = BTreeMap::from([
            ("status 503".to_owned(), 4),
            ("transport".to_owned(), 1),
            ("status 409".to_owned(), 1),
        ]);
        assert!(error_violations("bid", &errors).is_empty());
        let errors = BTreeMap::from([
            ("status 500".to_owned(), 2),
            ("unreadable reply".to_owned(), 1),
        ]);
        assert_eq!(
            error_violations("bid", &errors),
            [
                "2 bid requests answered status 500",
                "1 bid requests answered unreadable reply"
            ]
        );
    }

    #[test]
    fn a_run_answered_mostly_with_refusals_is_a_violation() {
        let errors = BTreeMap::from([("status 429".to_owned(), 6), ("transport".to_owned(), 1)]);
        assert!(refusal_violation("bid", 10, &errors).is_some_and(|v| v.starts_with("7 of 10")));
        assert_eq!(refusal_violation("bid", 14, &errors), None);
        assert_eq!(refusal_violation("bid", 0, &BTreeMap::new()), None);
    }

    #[test]
    fn only_bids_without_a_definite_answer_are_undetermined() {
        let errors = BTreeMap::from([("status 409".to_owned(), 3)]);
        assert_eq!(undetermined_note(&errors), None);
        let errors = BTreeMap::from([
            ("status 409".to_owned(), 3),
            ("status 503".to_owned(), 2),
            ("transport".to_owned(), 1),
        ]);
        assert!(undetermined_note(&errors).is_some_and(|n| n.starts_with("3 bids")));
    }

    #[test]
    fn goose_status_counts_become_error_kinds_without_the_expected_status() {
        let statuses = BTreeMap::from([(200, 90), (0, 2), (503, 1)]);
        assert_eq!(
            status_errors(&statuses, 200),
            BTreeMap::from([("transport".to_owned(), 2), ("status 503".to_owned(), 1)])
        );
    }
}
