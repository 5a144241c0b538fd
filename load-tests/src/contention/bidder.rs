//! The bid every goose user places: on one of the run's items, a little above the last price
//! this user saw for it, so concurrent bids collide the way eager bidders' do.
//!
//! The reply is read and tallied in [`BidTally`] (accepted with its `seq`, rejected with its
//! code and amount, or the error), which is what the checks compare with the state read back.
//!
//! Each goose user bids as its own account with that account's access token: the first ones
//! as the accounts the run registered through the API, the others as `u<index>` with a token
//! the harness signed ([`crate::credentials`]). Against a gateway in `--auth-mode open` the
//! bids carry no token.

use super::tally::BidTally;
use crate::api::{
    ApiClient, BID_REQUEST_NAME, BidAuth, BidBody, PROXY_BID_REQUEST_NAME, Reply, bid_path,
};
use goose::prelude::*;
use shared::Cents;
use std::collections::HashMap;

/// A bid is the last price seen plus the minimum increment plus 0 to this many cents, so
/// bids from users who saw the same price usually differ and most of them lose.
const MAX_EXTRA_RAISE_CENTS: i64 = 4;

/// A proxy bidder's maximum is its amount plus 1 to this many increments.
const MAX_PROXY_INCREMENTS: i64 = 100;

/// The items a run bids on, their prices, and the tally of what happened.
#[derive(Debug)]
pub struct BidTarget {
    pub item_ids: Vec<String>,
    bid_paths: Vec<String>,
    starting_price_cents: i64,
    pub min_increment_cents: i64,
    pub tally: BidTally,
    auth: BidAuth,
    /// The user ids of the first goose users (accounts registered through the API).
    registered: Vec<String>,
    /// Every other user (odd goose index) bids with a maximum (`bench-write --proxy-bidders`).
    proxy_bidders: bool,
}

impl BidTarget {
    /// Bids on `item_ids`, which were all created with these prices, authenticated as `auth`
    /// says; the first users are the `registered` accounts.
    pub fn new(
        item_ids: Vec<String>,
        (starting_price_cents, min_increment_cents): (i64, i64),
        auth: BidAuth,
        registered: Vec<String>,
    ) -> Self {
        Self {
            bid_paths: item_ids.iter().map(|id| bid_path(id)).collect(),
            tally: BidTally::new(item_ids.len()),
            item_ids,
            starting_price_cents,
            min_increment_cents,
            auth,
            registered,
            proxy_bidders: false,
        }
    }

    /// Half the users (every odd goose index) bid with a maximum: proxy bidding under
    /// contention, timed apart as [`PROXY_BID_REQUEST_NAME`].
    #[must_use]
    pub fn with_proxy_bidders(mut self, on: bool) -> Self {
        self.proxy_bidders = on;
        self
    }

    /// [`BidTarget::new`] with `api`'s way of authenticating bids and its registered accounts.
    pub fn for_client(item_ids: Vec<String>, prices: (i64, i64), api: &ApiClient) -> Self {
        let registered = api.registered_bidders().to_vec();
        Self::new(item_ids, prices, api.bid_auth().clone(), registered)
    }

    /// The account goose user `index` bids as.
    fn user_id(&self, index: usize) -> String {
        self.registered
            .get(index)
            .cloned()
            .unwrap_or_else(|| format!("u{index}"))
    }
}

/// Per-user state: the last current price this user saw, per item index.
#[derive(Debug, Default, Clone)]
struct LastSeen(HashMap<usize, i64>);

/// The next amount to bid: the minimum increment plus `extra` above the last price seen;
/// before any (or when the price reads below the start, i.e. no bid yet) the starting price
/// plus `extra`, as a first bid may equal the starting price.
pub fn next_bid(last_seen: Option<i64>, starting: i64, increment: i64, extra: i64) -> i64 {
    match last_seen {
        Some(price) if price >= starting => price + increment + extra,
        _ => starting + extra,
    }
}

/// Places one bid on item `index` of `target` and tallies the answer.
///
/// # Errors
/// Goose's transaction error when the request could not be made or its reply is unreadable
/// (the bid is tallied as an error first).
pub async fn place_bid(
    user: &mut GooseUser,
    target: &BidTarget,
    index: usize,
) -> TransactionResult {
    let tally = &target.tally;
    let Some(path) = target.bid_paths.get(index) else {
        return Ok(());
    };
    let last_seen = user.get_session_data::<LastSeen>();
    let last_seen = last_seen.and_then(|seen| seen.0.get(&index).copied());
    let extra = fastrand::i64(0..=MAX_EXTRA_RAISE_CENTS);
    let (starting, increment) = (target.starting_price_cents, target.min_increment_cents);
    let amount = next_bid(last_seen, starting, increment, extra);
    let Ok(cents) = Cents::new(amount) else {
        tally.error("invalid amount".to_owned());
        return Ok(());
    };
    let user_id = target.user_id(user.weighted_users_index);
    let proxy = target.proxy_bidders && user.weighted_users_index % 2 == 1;
    let max_amount = proxy
        .then(|| Cents::new(amount + increment * fastrand::i64(1..=MAX_PROXY_INCREMENTS)).ok())
        .flatten();
    let token = match target.auth.token(&user_id) {
        Ok(token) => token,
        Err(e) => {
            tally.error(format!("no token: {e:#}"));
            return Ok(());
        }
    };
    let body = BidBody {
        max_amount,
        ..BidBody::plain(&user_id, cents)
    };
    let mut builder = user
        .get_request_builder(&GooseMethod::Post, path)?
        .json(&body);
    if let Some(token) = token {
        builder = builder.bearer_auth(token);
    }
    let request = GooseRequest::builder()
        .method(GooseMethod::Post)
        .path(path.as_str())
        .name(if proxy {
            PROXY_BID_REQUEST_NAME
        } else {
            BID_REQUEST_NAME
        })
        // Goose would count any 2xx as a success; the contract's answer is 200.
        .expect_status_code(200)
        .set_request_builder(builder)
        .build();
    let mut goose = match user.request(request).await {
        Ok(goose) => goose,
        Err(e) => {
            // The bid may or may not have reached the gateway.
            tally.error("request failed".to_owned());
            return Err(e);
        }
    };
    // Goose has already counted the statuses other than 200 as failed requests.
    let response = match goose.response {
        Ok(response) if response.status().as_u16() == 200 => response,
        other => {
            let status = other.map(|r| r.status().as_u16());
            tally.error(status.map_or_else(|_| "transport".to_owned(), |s| format!("status {s}")));
            return Ok(());
        }
    };
    let reply = response.json::<Reply>().await.ok();
    let Some((reply, current)) = reply.and_then(|r| r.current_cents().ok().map(|c| (r, c))) else {
        tally.error("unreadable reply".to_owned());
        return user.set_failure("unreadable bid reply", &mut goose.request, None, None);
    };
    if reply.success {
        // What the bid left: its own amount, or (proxy bidding) the price a maximum set, and
        // the events it appended (a standing maximum answers with a second one).
        let events = match reply.code.as_deref() {
            Some("outbid_by_proxy") => 2,
            Some("max_raised") => u64::from(reply.event_id.is_some()),
            _ => 1,
        };
        tally.accepted_placing(index, current.unwrap_or(amount), reply.seq, events);
    } else {
        tally.rejected(index, amount, reply.code.as_deref());
    }
    if let Some(price) = current {
        match user.get_session_data_mut::<LastSeen>() {
            Some(seen) => {
                seen.0.insert(index, price);
            }
            None => user.set_session_data(LastSeen(HashMap::from([(index, price)]))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bid_clears_the_last_price_seen_by_the_increment_plus_a_little() {
        // (last seen, starting, increment, extra) → bid. A first bid (nothing seen, or a price
        // below the start: no bid yet) is the starting price plus the extra; bench-write's
        // items have a 1-cent increment, so its bids are 1 to 5 cents above the last price.
        for (last_seen, increment, extra, bid) in [
            (None, 5, 0, 100),
            (None, 5, 4, 104),
            (Some(0), 5, 2, 102),
            (Some(100), 5, 0, 105),
            (Some(12_345), 5, 4, 12_354),
            (None, 1, 0, 100),
            (None, 1, 4, 104),
            (Some(0), 1, 2, 102),
            (Some(100), 1, 0, 101),
            (Some(12_345), 1, 4, 12_350),
        ] {
            assert_eq!(
                next_bid(last_seen, 100, increment, extra),
                bid,
                "{last_seen:?} {increment} {extra}"
            );
        }
    }

    #[test]
    fn a_target_has_one_bid_path_and_tally_slot_per_item() {
        let target = BidTarget::new(
            vec!["a".into(), "b".into()],
            (100, 5),
            BidAuth::Open,
            vec![],
        );
        assert_eq!(
            target.bid_paths,
            ["/api/v1/items/a/bid", "/api/v1/items/b/bid"]
        );
        target.tally.accepted(1, 100, Some(1));
        target.tally.accepted(2, 100, Some(1));
        assert_eq!(target.tally.accepted_total(), 1, "item 2 does not exist");
    }

    #[test]
    fn the_first_users_bid_as_the_registered_accounts() {
        let target = BidTarget::new(vec!["a".into()], (100, 5), BidAuth::Open, vec!["ua".into()]);
        assert_eq!(target.user_id(0), "ua");
        assert_eq!(target.user_id(1), "u1");
    }
}
