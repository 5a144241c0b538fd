//! What a viewer of the cluster saw, item by item: the contract's order (a snapshot, then every
//! event with a higher `seq`, in order) checked frame by frame as the frames arrive.

use crate::watcher::Watcher;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// One viewer's record.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Seen {
    /// `bid_placed` frames received.
    pub events: u64,
    /// `snapshot` frames received (one per subscribe, plus resyncs).
    pub snapshots: u64,
    /// An event whose `seq` was not above the last one seen for its item (a repeat or a
    /// reordering): a violation of the contract.
    pub out_of_order: u64,
    /// An event more than one above the last seen without a snapshot between (a live event
    /// missed; a viewer resyncs with the next snapshot).
    pub gaps: u64,
    /// Highest `seq` seen per item (snapshot or event).
    #[serde(skip)]
    pub last_seq: HashMap<String, u64>,
    /// Events received after the run's marker was set (see [`OrderedViewer::mark`]).
    pub events_after_mark: u64,
    #[serde(skip)]
    marked: bool,
}

impl Seen {
    fn frame(&mut self, text: &str) {
        let Ok(frame) = serde_json::from_str::<serde_json::Value>(text) else {
            return;
        };
        let (Some(kind), Some(item), Some(seq)) = (
            frame["type"].as_str(),
            frame["item_id"].as_str(),
            frame["seq"].as_u64(),
        ) else {
            return;
        };
        let last = self.last_seq.get(item).copied();
        match kind {
            "snapshot" => {
                self.snapshots += 1;
                // A snapshot may be older than an event already seen (sent before it); the
                // newest seq still counts.
                self.last_seq
                    .insert(item.to_owned(), last.unwrap_or(0).max(seq));
            }
            "bid_placed" => {
                self.events += 1;
                if self.marked {
                    self.events_after_mark += 1;
                }
                match last {
                    Some(last) if seq <= last => self.out_of_order += 1,
                    Some(last) if seq > last + 1 => self.gaps += 1,
                    _ => {}
                }
                self.last_seq
                    .insert(item.to_owned(), last.unwrap_or(0).max(seq));
            }
            _ => {}
        }
    }
}

/// The record, even if a frame handler panicked while holding it (the counts stay valid).
fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A reconnecting viewer of some items on one broadcast address, with its record.
pub struct OrderedViewer {
    watcher: Watcher,
    seen: Arc<Mutex<Seen>>,
}

impl OrderedViewer {
    /// Watches `items` at `authority` (`host:port`: an instance or the load balancer).
    pub fn start(authority: &str, items: Vec<String>) -> Self {
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let record = Arc::clone(&seen);
        let watcher = Watcher::start(authority, items, move |text| lock(&record).frame(text));
        Self { watcher, seen }
    }

    /// The record so far.
    pub fn seen(&self) -> Seen {
        lock(&self.seen).clone()
    }

    /// Starts counting events separately from here (the moment of a fault).
    pub fn mark(&self) {
        lock(&self.seen).marked = true;
    }

    pub async fn stop(self) -> Seen {
        let seen = self.seen();
        self.watcher.stop().await;
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(events, snapshots, out_of_order, gaps)`.
    type Counts = (u64, u64, u64, u64);

    /// Each case: the frames one viewer receives, its counts and the last `seq` of item `a`
    /// after them.
    const CASES: &[(&[&str], Counts, u64)] = &[
        // Events in order after a snapshot are clean.
        (
            &[
                r#"{"type":"snapshot","item_id":"a","seq":2}"#,
                r#"{"type":"bid_placed","item_id":"a","seq":3}"#,
                r#"{"type":"bid_placed","item_id":"a","seq":4}"#,
            ],
            (2, 1, 0, 0),
            4,
        ),
        // A repeat is out of order, and a skip is a gap.
        (
            &[
                r#"{"type":"bid_placed","item_id":"a","seq":1}"#,
                r#"{"type":"bid_placed","item_id":"a","seq":1}"#,
                r#"{"type":"bid_placed","item_id":"a","seq":3}"#,
            ],
            (3, 0, 1, 1),
            3,
        ),
    ];

    #[test]
    fn order_repeats_and_gaps_are_counted_per_frame() {
        for (frames, counts, last_seq) in CASES {
            let mut seen = Seen::default();
            for frame in *frames {
                seen.frame(frame);
            }
            assert_eq!(
                (seen.events, seen.snapshots, seen.out_of_order, seen.gaps),
                *counts,
                "{frames:?}"
            );
            assert_eq!(seen.last_seq["a"], *last_seq, "{frames:?}");
        }
    }
}
