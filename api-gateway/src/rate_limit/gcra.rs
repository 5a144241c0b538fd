//! The arithmetic of one rate limit: GCRA (the generic cell rate algorithm, a token bucket kept
//! as one timestamp), with no I/O and no clock of its own, so every rule is a unit test.
//!
//! A key's state is its *theoretical arrival time* (`tat`): when its bucket would be full
//! again. A request at `now` is admitted when `tat` is at most `tolerance` ahead of `now`, and
//! moves `tat` one `interval` on. `interval = 1 s / rate` and `tolerance = (burst − 1) ×
//! interval`, so `burst` requests pass at once and then one per interval. The same timestamp
//! is kept in Redis for the whole cluster (`scripts/rate_debit.lua`); a [`Cell`] is one
//! instance's copy plus the admissions it has not told Redis about yet.
//!
//! Times are µs on the instance's monotonic clock (`Limiter::now_us`); Redis answers a *debt*
//! (how far its `tat` is ahead of its own now), which [`Cell::learn`] adds to this clock, so no
//! two machines' clocks are ever compared.

use std::num::NonZeroU32;
use std::time::Duration;

const MICROS_PER_SEC: u64 = 1_000_000;

/// A rate and a burst, as GCRA's interval and tolerance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    interval_us: u64,
    tolerance_us: u64,
}

impl Quota {
    /// `per_second` requests a second sustained, `burst` at once; a burst below the rate counts
    /// as the rate (so a second's worth always passes at once).
    pub fn per_second(per_second: NonZeroU32, burst: u32) -> Self {
        let burst = u64::from(burst.max(per_second.get()));
        let interval_us = (MICROS_PER_SEC / u64::from(per_second.get())).max(1);
        Self {
            interval_us,
            tolerance_us: interval_us * (burst - 1),
        }
    }

    /// µs of debt one admission adds.
    pub fn interval_us(&self) -> u64 {
        self.interval_us
    }

    /// µs of debt a key may carry and still be admitted.
    pub fn tolerance_us(&self) -> u64 {
        self.tolerance_us
    }
}

/// One key's limit state in one instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cell {
    /// Theoretical arrival time, µs on this instance's clock; everything it knows of, the
    /// cluster's admissions at the last sync included.
    tat_us: u64,
    /// Admissions made here since the last sync took them.
    pending: u32,
}

impl Cell {
    /// Admits one request at `now_us`, or says how long until one would be admitted.
    ///
    /// # Errors
    /// The wait when the key is over its limit; nothing changes then (a refused request costs
    /// the key nothing, so a client that backs off is admitted again on time).
    pub fn admit(&mut self, quota: &Quota, now_us: u64) -> Result<(), Duration> {
        let tat = self.tat_us.max(now_us);
        let ahead = tat - now_us;
        if ahead > quota.tolerance_us {
            return Err(Duration::from_micros(ahead - quota.tolerance_us));
        }
        self.tat_us = tat + quota.interval_us;
        self.pending = self.pending.saturating_add(1);
        Ok(())
    }

    /// Admissions not yet told to Redis; they count as told from now on.
    pub fn take_pending(&mut self) -> u32 {
        std::mem::take(&mut self.pending)
    }

    /// Whether a sync has admissions of this key to charge.
    pub fn has_pending(&self) -> bool {
        self.pending > 0
    }

    /// Folds in the cluster's view: the bucket's `debt_us` (from this instance's debit in a
    /// sync, or from another instance's verdict), plus what was admitted here that the bucket
    /// has not been charged yet. It never moves `tat` back, so the instance's own admissions
    /// are never forgotten (a Redis that lost the key, say restarted, knows less).
    pub fn learn(&mut self, quota: &Quota, now_us: u64, debt_us: u64) {
        let since = u64::from(self.pending) * quota.interval_us;
        self.tat_us = self.tat_us.max(now_us + debt_us + since);
    }

    /// Whether this cell says nothing a fresh one would not: no debt and nothing to sync.
    pub fn is_idle(&self, now_us: u64) -> bool {
        self.pending == 0 && self.tat_us <= now_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(per_second: u32, burst: u32) -> Quota {
        Quota::per_second(NonZeroU32::new(per_second).unwrap(), burst)
    }

    const SEC: u64 = MICROS_PER_SEC;

    #[test]
    fn a_burst_passes_at_once_then_one_per_interval() {
        let q = quota(10, 20);
        let mut cell = Cell::default();
        let now = 100 * SEC;
        for _ in 0..20 {
            assert_eq!(cell.admit(&q, now), Ok(()));
        }
        let wait = cell.admit(&q, now).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(cell.admit(&q, now + 99_999).is_err());
        assert_eq!(cell.admit(&q, now + 100_000), Ok(()));
        assert!(cell.admit(&q, now + 100_000).is_err());
    }

    #[test]
    fn a_refused_request_costs_nothing() {
        let q = quota(1, 2);
        let mut cell = Cell::default();
        cell.admit(&q, 0).unwrap();
        cell.admit(&q, 0).unwrap();
        for _ in 0..100 {
            assert!(cell.admit(&q, SEC / 2).is_err());
        }
        assert_eq!(cell.admit(&q, SEC), Ok(()));
        assert_eq!(cell.take_pending(), 3, "only admissions are pending");
    }

    #[test]
    fn a_burst_below_the_rate_counts_as_the_rate() {
        let q = quota(5, 1);
        let mut cell = Cell::default();
        for _ in 0..5 {
            assert_eq!(cell.admit(&q, 0), Ok(()));
        }
        assert!(cell.admit(&q, 0).is_err());
    }

    #[test]
    fn the_cluster_debt_learned_in_a_sync_refuses_what_the_burst_no_longer_covers() {
        let q = quota(1, 3);
        let mut cell = Cell::default();
        cell.admit(&q, 0).unwrap();
        assert_eq!(cell.take_pending(), 1);
        // Another instance admitted two more: Redis's bucket is 3 s ahead.
        cell.learn(&q, 10, 3 * SEC);
        let wait = cell.admit(&q, 10).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
    }

    #[test]
    fn admissions_made_while_a_sync_was_under_way_are_kept() {
        let q = quota(1, 10);
        let mut cell = Cell::default();
        cell.admit(&q, 0).unwrap();
        cell.take_pending();
        cell.admit(&q, 0).unwrap();
        cell.admit(&q, 0).unwrap();
        // Redis knew only the first.
        cell.learn(&q, 0, SEC);
        assert_eq!(cell.tat_us, 3 * SEC);
        assert_eq!(cell.take_pending(), 2);
    }

    #[test]
    fn learning_never_forgets_the_instances_own_admissions() {
        let q = quota(1, 2);
        let mut cell = Cell::default();
        cell.admit(&q, 0).unwrap();
        cell.admit(&q, 0).unwrap();
        cell.take_pending();
        // A Redis that lost the key answers no debt.
        cell.learn(&q, 0, 0);
        assert!(cell.admit(&q, 0).is_err());
    }

    #[test]
    fn a_bucket_learned_from_a_verdict_admits_at_the_rate_not_a_fresh_burst() {
        let q = quota(10, 20);
        let mut cell = Cell::default();
        // Another instance's bucket for this key runs 2.5 s ahead (tolerance 1.9 s).
        cell.learn(&q, 0, 2_500_000);
        assert_eq!(cell.admit(&q, 0), Err(Duration::from_millis(600)));
        assert_eq!(cell.admit(&q, 600_000), Ok(()));
        assert!(cell.admit(&q, 600_000).is_err());
    }

    #[test]
    fn a_cell_is_idle_once_its_debt_is_paid_and_synced() {
        let q = quota(1, 1);
        let mut cell = Cell::default();
        cell.admit(&q, 0).unwrap();
        assert!(
            !cell.is_idle(2 * SEC),
            "pending admissions must be synced first"
        );
        cell.take_pending();
        assert!(!cell.is_idle(SEC / 2));
        assert!(cell.is_idle(SEC));
    }
}
