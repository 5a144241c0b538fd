//! The limits that keep one client from crowding out the rest (the contract's 429), shared by
//! every gateway instance through Redis.
//!
//! * [`limiter`]: [`RateLimit`] (a rate and a burst per key, decided in memory) and
//!   [`Limiter`], which syncs every limit's counts with Redis in batches, with the bound on
//!   how far N instances can go past a limit, and the fallback when Redis is down.
//! * [`gcra`]: the arithmetic of one key's limit, without I/O.
//! * [`client_address`] (in `shared`, as the broadcast service limits sockets by the same
//!   rule): whom a request counts against: the peer, or the client a trusted proxy forwarded
//!   for; IPv6 grouped by /64.
//! * [`auth_throttle`]: exact counts of sign-in and registration attempts per account and per
//!   address.
//!
//! The limits: bids per user (`BID_RATE_PER_USER` 10/s, burst `BID_BURST_PER_USER` 20: a
//! person bids every few seconds; a client sending dozens a second is a bot or a bug, and its
//! bids would crowd out everyone else's on the hot item), requests per client address
//! (`IP_RATE_PER_SEC`, off by default; see `LimitOptions`), and the sign-in throttle.

pub mod auth_throttle;
pub mod gcra;
pub mod limiter;

pub use auth_throttle::{AuthRules, AuthThrottle, Throttled};
pub use gcra::Quota;
pub use limiter::{Limiter, RateLimit, SyncStats};
pub use shared::client_address::{self, ClientKey, TrustedProxies};

use std::num::NonZeroU32;

/// The quota of `per_second` with `burst`; `None` (the limit is off) when the rate is 0.
pub fn quota(per_second: u32, burst: u32) -> Option<Quota> {
    NonZeroU32::new(per_second).map(|rate| Quota::per_second(rate, burst))
}
