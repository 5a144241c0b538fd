//! The goose side of bench-write: every user bids on one item as fast as it
//! can, each time a little above the last price it saw, so concurrent bids
//! collide and most are rejected as too low.
//!
//! Goose times each request and counts HTTP failures; what the response *says*
//! (accepted or outbid) only this module knows, so it keeps its own tally in
//! atomics shared by all users.

use crate::money::{Decimal, reported_cents};
use goose::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The name bid requests carry in goose's metrics (instead of a path with the item id).
pub const BID_REQUEST_NAME: &str = "POST /api/v1/items/{id}/bid";

/// A bid is the last price seen plus 1 to this many cents.
const MAX_RAISE_CENTS: i64 = 5;

/// The item every user bids on, and the tally of what happened.
#[derive(Debug)]
pub struct BidTarget {
    bid_path: String,
    starting_price_cents: i64,
    tally: Tally,
}

impl BidTarget {
    pub fn new(item_id: &str, starting_price_cents: i64) -> Self {
        Self {
            bid_path: format!("/api/v1/items/{item_id}/bid"),
            starting_price_cents,
            tally: Tally::default(),
        }
    }

    /// What the users have seen so far.
    pub fn outcomes(&self) -> BidOutcomes {
        let tally = &self.tally;
        let highest = tally.highest_accepted_cents.load(Ordering::Relaxed);
        BidOutcomes {
            accepted: tally.accepted.load(Ordering::Relaxed),
            rejected: tally.rejected.load(Ordering::Relaxed),
            errors: tally.errors.load(Ordering::Relaxed),
            highest_accepted_cents: (highest != NO_BID).then_some(highest),
        }
    }
}

/// Marks "no bid accepted yet" in [`Tally::highest_accepted_cents`].
const NO_BID: i64 = i64::MIN;

/// Counters shared by every user. Relaxed ordering suffices: each is an
/// independent count, read only after goose has joined every user.
#[derive(Debug)]
struct Tally {
    /// 200 with `success: true`.
    accepted: AtomicU64,
    /// 200 with `success: false` (outbid, `bid_too_low`).
    rejected: AtomicU64,
    /// Anything else: transport error, a status other than 200, an unreadable body.
    errors: AtomicU64,
    /// Highest amount among accepted bids, [`NO_BID`] before the first.
    highest_accepted_cents: AtomicI64,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            highest_accepted_cents: AtomicI64::new(NO_BID),
        }
    }
}

/// A snapshot of [`Tally`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BidOutcomes {
    pub accepted: u64,
    pub rejected: u64,
    pub errors: u64,
    pub highest_accepted_cents: Option<i64>,
}

impl BidOutcomes {
    /// Every bid sent (or attempted) by the users.
    pub fn total(&self) -> u64 {
        self.accepted + self.rejected + self.errors
    }
}

/// Per-user state: the last current price this user saw in a reply.
#[derive(Debug, Clone, Copy)]
struct LastSeen(i64);

#[derive(Serialize)]
struct BidBody {
    user_id: String,
    amount: Decimal,
}

#[derive(Deserialize)]
struct BidReply {
    success: bool,
    #[serde(default)]
    current_bid: Option<Box<RawValue>>,
    #[serde(default)]
    current_bid_cents: Option<i64>,
}

/// The next amount to bid: `raise` (1 to [`MAX_RAISE_CENTS`]) above the last
/// price seen; without one (or before the first bid, when the price may read
/// 0), the starting price plus `raise - 1`, as the first bid may equal it.
pub fn next_bid(last_seen: Option<i64>, starting_price_cents: i64, raise: i64) -> i64 {
    match last_seen {
        Some(price) if price >= starting_price_cents => price + raise,
        _ => starting_price_cents + raise - 1,
    }
}

/// The goose scenario: one transaction, bidding on `target` in a loop with no wait.
pub fn scenario(target: Arc<BidTarget>) -> Scenario {
    let bid: TransactionFunction = Arc::new(move |user| {
        let target = Arc::clone(&target);
        Box::pin(async move { place_bid(user, &target).await })
    });
    scenario!("Bidders").register_transaction(Transaction::new(bid).set_name("bid"))
}

async fn place_bid(user: &mut GooseUser, target: &BidTarget) -> TransactionResult {
    let tally = &target.tally;
    let last_seen = user.get_session_data::<LastSeen>().map(|seen| seen.0);
    let raise = fastrand::i64(1..=MAX_RAISE_CENTS);
    let amount = next_bid(last_seen, target.starting_price_cents, raise);
    let body = BidBody {
        user_id: format!("u{}", user.weighted_users_index),
        amount: Decimal(amount),
    };
    let builder = user
        .get_request_builder(&GooseMethod::Post, &target.bid_path)?
        .json(&body);
    let request = GooseRequest::builder()
        .method(GooseMethod::Post)
        .path(target.bid_path.as_str())
        .name(BID_REQUEST_NAME)
        // Goose would count any 2xx as a success; the contract's answer is 200.
        .expect_status_code(200)
        .set_request_builder(builder)
        .build();
    let mut goose = match user.request(request).await {
        Ok(goose) => goose,
        Err(e) => {
            // The bid may or may not have reached the gateway.
            tally.errors.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
    };
    let response = match goose.response {
        Ok(response) if response.status().as_u16() == 200 => response,
        // Goose already recorded these as failed requests.
        _ => {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
    };
    let reply = match response.json::<BidReply>().await {
        Ok(reply) => reply,
        Err(_) => {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            return user.set_failure("unreadable bid reply", &mut goose.request, None, None);
        }
    };
    let current = match reported_cents(reply.current_bid_cents, reply.current_bid.as_deref()) {
        Ok(current) => current,
        Err(_) => {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            return user.set_failure("unreadable current_bid", &mut goose.request, None, None);
        }
    };
    if reply.success {
        tally.accepted.fetch_add(1, Ordering::Relaxed);
        tally
            .highest_accepted_cents
            .fetch_max(amount, Ordering::Relaxed);
    } else {
        tally.rejected.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(price) = current {
        match user.get_session_data_mut::<LastSeen>() {
            Some(seen) => seen.0 = price,
            None => user.set_session_data(LastSeen(price)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bid_is_at_or_just_above_the_starting_price() {
        assert_eq!(next_bid(None, 100, 1), 100);
        assert_eq!(next_bid(None, 100, 5), 104);
    }

    #[test]
    fn a_price_below_the_start_is_treated_as_no_bid_yet() {
        assert_eq!(next_bid(Some(0), 100, 3), 102);
    }

    #[test]
    fn later_bids_raise_the_last_seen_price_by_one_to_five_cents() {
        assert_eq!(next_bid(Some(100), 100, 1), 101);
        assert_eq!(next_bid(Some(12_345), 100, 5), 12_350);
    }

    #[test]
    fn outcomes_start_empty_and_count_every_kind() {
        let target = BidTarget::new("bench-x", 100);
        assert_eq!(
            target.outcomes(),
            BidOutcomes {
                accepted: 0,
                rejected: 0,
                errors: 0,
                highest_accepted_cents: None
            }
        );
        target.tally.accepted.fetch_add(2, Ordering::Relaxed);
        target.tally.rejected.fetch_add(3, Ordering::Relaxed);
        target.tally.errors.fetch_add(1, Ordering::Relaxed);
        target
            .tally
            .highest_accepted_cents
            .fetch_max(150, Ordering::Relaxed);
        let outcomes = target.outcomes();
        assert_eq!(outcomes.total(), 6);
        assert_eq!(outcomes.highest_accepted_cents, Some(150));
    }

    #[test]
    fn bid_reply_prefers_integer_cents() {
        let reply: BidReply = serde_json::from_str(
            r#"{"success":false,"code":"bid_too_low","current_bid":1.5,"current_bid_cents":150,"seq":3}"#,
        )
        .unwrap();
        assert!(!reply.success);
        let current = reported_cents(reply.current_bid_cents, reply.current_bid.as_deref());
        assert_eq!(current, Ok(Some(150)));
    }

    #[test]
    fn bid_reply_with_only_a_decimal_price_is_read_exactly() {
        let reply: BidReply =
            serde_json::from_str(r#"{"success":true,"code":"accepted","current_bid":20.07}"#)
                .unwrap();
        let current = reported_cents(reply.current_bid_cents, reply.current_bid.as_deref());
        assert_eq!(current, Ok(Some(2007)));
    }
}
