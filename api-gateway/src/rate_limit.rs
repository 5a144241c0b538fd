//! Per-user bid rate limit (the contract's 429).
//!
//! A live auction bidder places a bid every few seconds; a client sending dozens a second is
//! a bot or a bug, and its bids would only crowd out everyone else's on the hot item. The limit
//! is a GCRA token bucket per user id (governor), kept per gateway instance: with N instances a
//! user gets at most N times the rate, which is enough to stop floods without a Redis round
//! trip on the hot path.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use shared::UserId;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often state of users who went quiet is dropped, so memory follows active bidders.
const CLEANUP_EVERY: Duration = Duration::from_secs(60);

pub struct BidRateLimit {
    /// `None` when limiting is disabled (rate 0).
    limiter: Option<DefaultKeyedRateLimiter<UserId>>,
    clock: DefaultClock,
}

impl BidRateLimit {
    /// `per_second` bids per user sustained, `burst` at once; `per_second == 0` disables.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
            DefaultKeyedRateLimiter::dashmap(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            clock: DefaultClock::default(),
        }
    }

    /// `Err(retry_after)` when `user` must wait before bidding again.
    pub fn check(&self, user: &UserId) -> Result<(), Duration> {
        match &self.limiter {
            None => Ok(()),
            Some(limiter) => limiter
                .check_key(user)
                .map_err(|not_until| not_until.wait_time_from(self.clock.now())),
        }
    }

    fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Periodically drops the state of users whose buckets are full again, until `shutdown`.
pub async fn run_cleanup(limit: Arc<BidRateLimit>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(CLEANUP_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => limit.forget_idle(),
            () = shutdown.cancelled() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    #[test]
    fn a_user_past_the_burst_must_wait() {
        let limit = BidRateLimit::new(1, 3);
        for _ in 0..3 {
            assert!(limit.check(&user("a")).is_ok());
        }
        let wait = limit.check(&user("a")).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
    }

    #[test]
    fn users_are_limited_separately() {
        let limit = BidRateLimit::new(1, 1);
        assert!(limit.check(&user("a")).is_ok());
        assert!(limit.check(&user("a")).is_err());
        assert!(limit.check(&user("b")).is_ok());
    }

    #[test]
    fn rate_zero_disables_the_limit() {
        let limit = BidRateLimit::new(0, 0);
        for _ in 0..1000 {
            assert!(limit.check(&user("a")).is_ok());
        }
    }
}
