//! A sequential model of the auction rules of issue 16 (proxy bidding, ties, the reserve,
//! increment tables, buy it now), written from the rules' text, independently of the Lua
//! script: the property test replays what the gateway accepted, in `seq` order, through it.

/// One bid the model places: who, at what price, and whether the system placed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelBid {
    pub user: String,
    pub amount: i64,
    pub automatic: bool,
}

/// What one call did, as the gateway's `code` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelOutcome {
    Accepted,
    OutbidByProxy,
    MaxRaised,
    MaxNotRaised,
    TooLow,
    Bought,
    BuyNowUnavailable,
    Closed,
}

impl ModelOutcome {
    /// The gateway's answer for it: the bid response's `code`, or the buy's.
    pub fn code(&self) -> &'static str {
        match self {
            ModelOutcome::Accepted => "accepted",
            ModelOutcome::OutbidByProxy => "outbid_by_proxy",
            ModelOutcome::MaxRaised => "max_raised",
            ModelOutcome::MaxNotRaised => "max_not_raised",
            ModelOutcome::TooLow => "bid_too_low",
            ModelOutcome::Bought => "bought",
            ModelOutcome::BuyNowUnavailable => "buy_now_unavailable",
            ModelOutcome::Closed => "auction_closed",
        }
    }
}

/// An auction as the rules see it, in cents.
#[derive(Debug, Clone)]
pub struct Model {
    pub starting: i64,
    /// `(from, increment)` rows, ascending, the first from 0.
    pub increments: Vec<(i64, i64)>,
    /// `0`: none.
    pub reserve: i64,
    /// `0`: none.
    pub buy_now: i64,
    pub price: i64,
    pub leader: Option<String>,
    /// The leader's maximum (at least the price while there is a leader).
    pub leader_max: i64,
    pub bids: u64,
    pub closed: bool,
}

impl Model {
    pub fn new(starting: i64, increments: Vec<(i64, i64)>, reserve: i64, buy_now: i64) -> Self {
        Self {
            starting,
            increments,
            reserve,
            buy_now,
            price: 0,
            leader: None,
            leader_max: 0,
            bids: 0,
            closed: false,
        }
    }

    /// The increment at `price`: the last row whose `from` is at or below it.
    pub fn increment(&self, price: i64) -> i64 {
        self.increments
            .iter()
            .rev()
            .find(|(from, _)| *from <= price)
            .map_or(self.increments[0].1, |(_, step)| *step)
    }

    pub fn minimum(&self) -> i64 {
        if self.bids == 0 {
            self.starting
        } else {
            self.price + self.increment(self.price)
        }
    }

    /// The reserve lifts a price below it when the maximum reaches it.
    fn lift(&self, price: i64, max: i64) -> i64 {
        if self.reserve > price && max >= self.reserve {
            self.reserve
        } else {
            price
        }
    }

    fn place(&mut self, bids: &[ModelBid]) {
        for b in bids {
            self.price = b.amount;
            self.leader = Some(b.user.clone());
            self.bids += 1;
        }
    }

    /// A bid of `amount` with an optional maximum by `user`.
    pub fn bid(
        &mut self,
        user: &str,
        amount: i64,
        max: Option<i64>,
    ) -> (ModelOutcome, Vec<ModelBid>) {
        if self.closed {
            return (ModelOutcome::Closed, Vec::new());
        }
        if amount < self.minimum() {
            return (ModelOutcome::TooLow, Vec::new());
        }
        let reach = max.unwrap_or(amount).max(amount);
        let bid = |user: &str, amount, automatic| ModelBid {
            user: user.to_owned(),
            amount,
            automatic,
        };
        let leads = self.leader.as_deref() == Some(user);
        let (outcome, placed) = if leads && max.is_some() {
            if reach <= self.leader_max.max(self.price) {
                return (ModelOutcome::MaxNotRaised, Vec::new());
            }
            self.leader_max = reach;
            let lifted = self.lift(self.price, reach);
            let placed = if lifted > self.price {
                vec![bid(user, lifted, true)]
            } else {
                Vec::new()
            };
            (ModelOutcome::MaxRaised, placed)
        } else if self.bids == 0 {
            self.leader_max = reach;
            (
                ModelOutcome::Accepted,
                vec![bid(user, self.lift(amount, reach), false)],
            )
        } else if leads {
            self.leader_max = self.leader_max.max(amount);
            (ModelOutcome::Accepted, vec![bid(user, amount, false)])
        } else {
            let standing = self.leader_max.max(self.price);
            if reach > standing {
                let price = amount.max(reach.min(standing + self.increment(standing)));
                self.leader_max = reach;
                (
                    ModelOutcome::Accepted,
                    vec![bid(user, self.lift(price, reach), false)],
                )
            } else {
                // The earlier bidder keeps a tie.
                let leader = self.leader.clone().unwrap_or_default();
                let answer = standing.min(reach + self.increment(reach));
                (
                    ModelOutcome::OutbidByProxy,
                    vec![
                        bid(user, amount, false),
                        bid(&leader, self.lift(answer, standing), true),
                    ],
                )
            }
        };
        self.place(&placed);
        (outcome, placed)
    }

    /// Buy it now by `user`: only before the first bid.
    pub fn buy(&mut self, user: &str) -> ModelOutcome {
        if self.closed {
            return ModelOutcome::Closed;
        }
        if self.buy_now == 0 || self.bids > 0 {
            return ModelOutcome::BuyNowUnavailable;
        }
        self.closed = true;
        self.price = self.buy_now;
        self.leader = Some(user.to_owned());
        ModelOutcome::Bought
    }
}

#[test]
fn the_model_follows_ebays_example() {
    // Flat 0.50 increments from a 10.00 start.
    let mut m = Model::new(1_000, vec![(0, 50)], 0, 0);
    assert_eq!(m.bid("ann", 1_000, Some(2_000)).0, ModelOutcome::Accepted);
    assert_eq!(
        (m.price, m.leader_max),
        (1_000, 2_000),
        "only as much as needed"
    );
    let (outcome, bids) = m.bid("bob", 1_500, None);
    assert_eq!(outcome, ModelOutcome::OutbidByProxy);
    assert_eq!(bids[1].amount, 1_550, "bob's bid plus one increment");
    assert!(bids[1].automatic);
    // Two maxima meet: the lower plus one increment, capped at the higher.
    let (outcome, bids) = m.bid("cy", 1_600, Some(3_000));
    assert_eq!(outcome, ModelOutcome::Accepted);
    assert_eq!(bids[0].amount, 2_050);
    let (_, bids) = m.bid("dee", 2_100, Some(2_990));
    assert_eq!(bids[1].amount, 3_000, "capped at the higher maximum");
    // A tie goes to the earlier bidder.
    let mut tie = Model::new(1_000, vec![(0, 50)], 0, 0);
    tie.bid("ann", 1_000, Some(2_000));
    let (outcome, bids) = tie.bid("bob", 1_100, Some(2_000));
    assert_eq!(outcome, ModelOutcome::OutbidByProxy);
    assert_eq!((bids[1].user.as_str(), bids[1].amount), ("ann", 2_000));
}

#[test]
fn the_model_lifts_to_the_reserve_and_keeps_a_raise_silent() {
    let mut m = Model::new(1_000, vec![(0, 100)], 5_000, 0);
    assert_eq!(m.bid("ann", 1_000, Some(4_000)).1[0].amount, 1_000);
    let (outcome, bids) = m.bid("ann", 1_100, Some(4_500));
    assert_eq!((outcome, bids.len()), (ModelOutcome::MaxRaised, 0));
    let (outcome, bids) = m.bid("ann", 1_100, Some(6_000));
    assert_eq!(outcome, ModelOutcome::MaxRaised);
    assert_eq!(
        bids[0].amount, 5_000,
        "a maximum past the reserve lifts the price to it"
    );
    assert_eq!(
        m.bid("ann", 5_100, Some(5_500)).0,
        ModelOutcome::MaxNotRaised
    );
}
