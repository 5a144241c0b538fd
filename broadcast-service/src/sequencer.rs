//! Per-item ordering of live events before fan-out.
//!
//! The gateway publishes each item's events in `seq` order per instance, but with several
//! gateway instances two events of one item may reach NATS out of order, and core NATS may
//! drop one (a publish during an outage, a slow consumer). The sequencer releases events in
//! `seq` order, drops duplicates and late arrivals, and holds an event whose predecessor is
//! missing for a short time. When the hold expires the held events are released anyway: the
//! gap is then real, and each viewer's session sees it and fetches a fresh snapshot (the
//! missing event is in Redis, because a higher `seq` exists).
//!
//! A room starts mid-stream, so until it knows a `seq` to continue from (its first snapshot
//! read, see [`Sequencer::seed`]) even the first event waits out the hold: it may have
//! overtaken its predecessor.

use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// Held events beyond this many are released at once: a far-ahead `seq` must not make the
/// buffer grow without bound.
const MAX_PENDING: usize = 1024;

pub struct Sequencer<T> {
    hold: Duration,
    /// Highest `seq` released (or known from a snapshot); `None` until then.
    last: Option<u64>,
    /// Events waiting for a lower `seq`, with the time each arrived.
    pending: BTreeMap<u64, (Instant, T)>,
}

impl<T> Sequencer<T> {
    pub fn new(hold: Duration) -> Self {
        Self {
            hold,
            last: None,
            pending: BTreeMap::new(),
        }
    }

    /// Sets the `seq` to continue from when none is known yet (a snapshot's): held events
    /// it makes contiguous go out, older ones are dropped.
    pub fn seed(&mut self, seq: u64, out: &mut Vec<T>) {
        if self.last.is_none() {
            self.last = Some(seq);
            self.release_contiguous(out);
        }
    }

    /// Offers an event that arrived at `now`; appends to `out` every event that may go now,
    /// in `seq` order.
    pub fn push(&mut self, seq: u64, event: T, now: Instant, out: &mut Vec<T>) {
        match self.last {
            Some(last) if seq <= last => {}
            Some(last) if seq == last + 1 => {
                self.last = Some(seq);
                out.push(event);
                self.release_contiguous(out);
            }
            _ => {
                self.pending.entry(seq).or_insert((now, event));
                if self.pending.len() > MAX_PENDING {
                    self.release_all(out);
                }
            }
        }
    }

    /// When held events must be released even though the gap persists.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending
            .values()
            .map(|(since, _)| *since + self.hold)
            .min()
    }

    /// Releases every held event if the hold has expired at `now`.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<T>) {
        if self.deadline().is_some_and(|deadline| deadline <= now) {
            self.release_all(out);
        }
    }

    fn release_contiguous(&mut self, out: &mut Vec<T>) {
        while let Some(entry) = self.pending.first_entry() {
            let seq = *entry.key();
            match self.last {
                Some(last) if seq <= last => {
                    entry.remove();
                }
                Some(last) if seq == last + 1 => {
                    out.push(entry.remove().1);
                    self.last = Some(seq);
                }
                _ => break,
            }
        }
    }

    fn release_all(&mut self, out: &mut Vec<T>) {
        for (seq, (_, event)) in std::mem::take(&mut self.pending) {
            if self.last.is_none_or(|last| seq > last) {
                self.last = Some(seq);
                out.push(event);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: Duration = Duration::from_millis(50);

    fn push(s: &mut Sequencer<u64>, seq: u64, now: Instant) -> Vec<u64> {
        let mut out = Vec::new();
        s.push(seq, seq, now, &mut out);
        out
    }

    fn seeded(seq: u64) -> Sequencer<u64> {
        let mut s = Sequencer::new(HOLD);
        s.seed(seq, &mut Vec::new());
        s
    }

    #[test]
    fn without_a_known_seq_the_first_event_waits_for_the_hold() {
        let mut s = Sequencer::new(HOLD);
        let now = Instant::now();
        assert!(push(&mut s, 41, now).is_empty());
        assert_eq!(push(&mut s, 40, now), Vec::<u64>::new());
        let mut out = Vec::new();
        s.expire(now + HOLD, &mut out);
        assert_eq!(out, vec![40, 41]);
        assert_eq!(push(&mut s, 42, now), vec![42]);
    }

    #[test]
    fn a_seed_releases_held_events_that_follow_it_and_drops_older_ones() {
        let mut s = Sequencer::new(HOLD);
        let now = Instant::now();
        push(&mut s, 5, now);
        push(&mut s, 4, now);
        push(&mut s, 7, now);
        let mut out = Vec::new();
        s.seed(4, &mut out);
        assert_eq!(out, vec![5]);
        assert_eq!(push(&mut s, 6, now), vec![6, 7]);
        s.seed(100, &mut out);
        assert_eq!(
            push(&mut s, 8, now),
            vec![8],
            "a later seed changes nothing"
        );
    }

    #[test]
    fn duplicates_and_late_events_are_dropped() {
        let mut s = seeded(4);
        let now = Instant::now();
        push(&mut s, 5, now);
        push(&mut s, 6, now);
        assert!(push(&mut s, 6, now).is_empty());
        assert!(push(&mut s, 4, now).is_empty());
    }

    #[test]
    fn an_early_event_waits_for_its_predecessor_then_both_go_in_order() {
        let mut s = seeded(0);
        let now = Instant::now();
        push(&mut s, 1, now);
        assert!(push(&mut s, 3, now).is_empty());
        assert!(push(&mut s, 4, now).is_empty());
        assert_eq!(s.deadline(), Some(now + HOLD));
        assert_eq!(push(&mut s, 2, now), vec![2, 3, 4]);
        assert_eq!(s.deadline(), None);
    }

    #[test]
    fn a_gap_that_outlives_the_hold_releases_the_held_events() {
        let mut s = seeded(0);
        let now = Instant::now();
        push(&mut s, 1, now);
        push(&mut s, 3, now);
        let mut out = Vec::new();
        s.expire(now + HOLD / 2, &mut out);
        assert!(out.is_empty(), "not yet");
        s.expire(now + HOLD, &mut out);
        assert_eq!(out, vec![3]);
        assert!(push(&mut s, 2, now).is_empty(), "too late now");
        assert_eq!(push(&mut s, 4, now), vec![4]);
    }

    #[test]
    fn a_far_ahead_flood_does_not_grow_the_buffer_without_bound() {
        let mut s = seeded(0);
        let now = Instant::now();
        push(&mut s, 1, now);
        let mut released = 0;
        for seq in 3..(3 + MAX_PENDING as u64 + 1) {
            released += push(&mut s, seq, now).len();
        }
        assert_eq!(released, MAX_PENDING + 1);
        assert_eq!(s.deadline(), None);
    }
}
