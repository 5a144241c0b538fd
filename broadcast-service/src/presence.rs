//! Presence: how many people watch an item, summed over every broadcast instance.
//!
//! Each instance that has viewers of an item publishes a [`PresenceBeat`] with its own count on
//! core NATS `<prefix>.presence.<item>` when the count changes and as a heartbeat, and
//! subscribes to the same subject while it has viewers (interest-based, like live events).
//! [`Presence`] keeps the latest count per instance and forgets an instance that stopped
//! sending heartbeats (crashed, partitioned), so a dead instance's viewers do not linger.
//! Receipt time, not the sender's clock, decides expiry, so clock skew between hosts cannot
//! keep a dead count alive; the sender's timestamp only orders beats from one instance.
//! [`CountThrottle`] keeps `viewers` frames to at most one per interval per item.

use serde::{Deserialize, Serialize};
use shared::{ItemId, Timestamp};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// Subject of one item's presence beats.
pub fn subject(prefix: &str, item: &ItemId) -> String {
    format!("{prefix}.presence.{item}")
}

/// One instance's viewer count of one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceBeat {
    pub instance: String,
    pub item_id: ItemId,
    pub count: u64,
    pub timestamp: Timestamp,
}

#[derive(Debug)]
struct Remote {
    count: u64,
    timestamp: Timestamp,
    seen: Instant,
}

/// What recording a beat changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// An instance not known before: it should hear our count soon rather than at our next
    /// heartbeat.
    NewInstance,
    Updated,
    /// Our own beat, or an older one than already known.
    Ignored,
}

/// The latest count of every other instance for one item.
#[derive(Debug)]
pub struct Presence {
    me: String,
    expiry: Duration,
    others: HashMap<String, Remote>,
}

impl Presence {
    pub fn new(me: impl Into<String>, expiry: Duration) -> Self {
        Self {
            me: me.into(),
            expiry,
            others: HashMap::new(),
        }
    }

    pub fn record(&mut self, beat: PresenceBeat, now: Instant) -> Recorded {
        if beat.instance == self.me {
            return Recorded::Ignored;
        }
        match self.others.get_mut(&beat.instance) {
            Some(known) if beat.timestamp < known.timestamp => Recorded::Ignored,
            Some(known) => {
                known.count = beat.count;
                known.timestamp = beat.timestamp;
                known.seen = now;
                Recorded::Updated
            }
            None => {
                self.others.insert(
                    beat.instance,
                    Remote {
                        count: beat.count,
                        timestamp: beat.timestamp,
                        seen: now,
                    },
                );
                Recorded::NewInstance
            }
        }
    }

    /// Forgets instances silent for longer than the expiry.
    pub fn expire(&mut self, now: Instant) {
        let expiry = self.expiry;
        self.others
            .retain(|_, remote| now.saturating_duration_since(remote.seen) < expiry);
    }

    /// Viewers over all instances, given this instance's own count.
    pub fn total(&self, local: u64) -> u64 {
        self.others
            .values()
            .fold(local, |sum, remote| sum.saturating_add(remote.count))
    }
}

/// Decides when a changed count is broadcast: only when it differs from the last one sent
/// and at least `min_interval` after it.
#[derive(Debug)]
pub struct CountThrottle {
    min_interval: Duration,
    sent: Option<(u64, Instant)>,
}

impl CountThrottle {
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            sent: None,
        }
    }

    /// Whether `count` should be broadcast at `now`; records it as sent when so.
    pub fn should_send(&mut self, count: u64, now: Instant) -> bool {
        match self.sent {
            Some((sent, _)) if sent == count => false,
            Some((_, at)) if now < at + self.min_interval => false,
            _ => {
                self.sent = Some((count, now));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(instance: &str, count: u64, micros: i64) -> PresenceBeat {
        PresenceBeat {
            instance: instance.to_owned(),
            item_id: ItemId::parse("x").unwrap(),
            count,
            timestamp: Timestamp::from_micros(micros),
        }
    }

    #[test]
    fn counts_of_other_instances_are_summed_with_ours() {
        let mut p = Presence::new("me", Duration::from_secs(5));
        let now = Instant::now();
        assert_eq!(p.record(beat("a", 3, 1), now), Recorded::NewInstance);
        assert_eq!(p.record(beat("b", 4, 1), now), Recorded::NewInstance);
        assert_eq!(p.record(beat("a", 2, 2), now), Recorded::Updated);
        assert_eq!(p.total(1), 1 + 2 + 4);
    }

    #[test]
    fn our_own_beats_and_older_beats_are_ignored() {
        let mut p = Presence::new("me", Duration::from_secs(5));
        let now = Instant::now();
        assert_eq!(p.record(beat("me", 9, 1), now), Recorded::Ignored);
        p.record(beat("a", 3, 10), now);
        assert_eq!(p.record(beat("a", 7, 5), now), Recorded::Ignored);
        assert_eq!(p.total(0), 3);
    }

    #[test]
    fn an_instance_silent_past_the_expiry_is_forgotten() {
        let mut p = Presence::new("me", Duration::from_secs(5));
        let now = Instant::now();
        p.record(beat("a", 3, 1), now);
        p.record(beat("b", 4, 1), now + Duration::from_secs(3));
        p.expire(now + Duration::from_secs(5));
        assert_eq!(p.total(0), 4);
    }

    #[test]
    fn the_throttle_sends_changes_at_most_once_per_interval() {
        let mut t = CountThrottle::new(Duration::from_secs(1));
        let now = Instant::now();
        assert!(t.should_send(1, now));
        assert!(!t.should_send(1, now + Duration::from_secs(5)), "unchanged");
        assert!(
            !t.should_send(2, now + Duration::from_millis(500)),
            "too soon"
        );
        assert!(t.should_send(2, now + Duration::from_secs(1)));
    }

    #[test]
    fn beats_round_trip_through_json() {
        let b = beat("a", 3, 1_700_000_000_000_000);
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<PresenceBeat>(&json).unwrap(), b);
    }
}
