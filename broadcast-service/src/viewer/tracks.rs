//! The ordering half of a viewer: for each watched item, "a snapshot, then every later event
//! once, in order".
//!
//! Bookkeeping only, no I/O: [`Tracks::admit`] decides what becomes of a room's frame,
//! [`Tracks::install`] which held events follow a snapshot, and resync requests wait here for
//! the session. The [`Viewer`](super::Viewer) applies each verdict under the same lock as its
//! socket writes, so a decision and its write are never reordered by another writer.
//!
//! The rules, per item:
//! * While a snapshot is due (a new subscription, a gap, a lag, a reconnect) the item is not
//!   live: its events are held, up to the queue limit, to follow the snapshot.
//! * A snapshot at `seq` skips the held events it covers; the rest must continue it exactly
//!   (`seq + 1`, `seq + 2`, …).
//! * A live event must be exactly `last + 1`: a lower one is a duplicate, a higher one means
//!   one was lost, and a fresh snapshot is due instead.

use bytes::Bytes;
use shared::ItemId;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::time::Instant;

/// Which room a frame comes from: a number unique to each room this process opens, so a
/// viewer finds the frame's track by comparing one integer held inline in its track list,
/// instead of hashing the item's string and comparing it with the copy on the viewer's heap
/// (at 10,000 viewers that lookup and its cache misses were ~16 % of the fan-out thread's
/// samples; see ARCHITECTURE.md, "Profiles").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomKey(u64);

impl RoomKey {
    /// A key no other room of this process has.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// What a shared frame is, as far as the ordering rules are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A live event with its item `seq`: delivered only in order, after the snapshot.
    Event { seq: u64 },
    /// A `viewers` count: delivered as it comes.
    Viewers,
}

/// One frame encoded once (as WebSocket bytes) and shared by every viewer of its item.
#[derive(Debug)]
pub struct Frame {
    /// The room that framed it (the fast key of the viewers' tracks).
    pub room: RoomKey,
    pub item: ItemId,
    pub kind: FrameKind,
    pub wire: Bytes,
    /// When the room received it, for the fan-out latency histogram.
    pub received: Instant,
}

/// Why a viewer needs a fresh snapshot of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resync {
    /// A new subscription, or a subscribe for an item already watched.
    Subscribe,
    /// The viewer's queue was full and a frame was dropped.
    Lagged,
    /// An event arrived whose predecessor never did.
    Gap,
    /// NATS reconnected: events published while it was away are lost.
    Reconnect,
}

impl Resync {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subscribe => "subscribe",
            Self::Lagged => "lagged",
            Self::Gap => "gap",
            Self::Reconnect => "reconnect",
        }
    }
}

/// What the ordering rules make of a room's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// Write it now; the item's track has moved past it.
    Write,
    /// Not for the socket now: not watched, already covered, or held for the next snapshot.
    Skip,
    /// Its predecessor never came: a snapshot was requested instead (the session must wake).
    Gap,
    /// The socket's queue is full: dropped, and a snapshot was requested (the session must
    /// wake).
    Lagged,
}

/// What follows a snapshot that was just written.
#[derive(Debug)]
pub(super) struct Installed {
    /// Held events the snapshot does not cover, in order, to be written right after it.
    pub followed: Vec<Arc<Frame>>,
    /// Another snapshot was requested at once (a gap among the held events, or more events
    /// came than could be held): the session must wake.
    pub resync: bool,
}

/// One watched item's ordering state.
#[derive(Debug, Default)]
struct Track {
    /// `seq` of the last snapshot or event written.
    last_seq: u64,
    /// Events are written as they come; `false` while a snapshot is due.
    live: bool,
    /// Events that arrived while a snapshot was due, to follow it (those it covers are
    /// skipped), so an event racing the snapshot read is neither lost nor duplicated.
    held: Vec<Arc<Frame>>,
    /// More events came than `held` may keep: the snapshot must be followed by another.
    held_overflowed: bool,
}

/// One watched item: its id, the room its frames came from (bound by the first frame seen,
/// see [`RoomKey`]), and its ordering state.
#[derive(Debug)]
struct Entry {
    room: Option<RoomKey>,
    item: ItemId,
    track: Track,
}

/// Every item one viewer watches, and the snapshots it needs.
#[derive(Debug)]
pub(super) struct Tracks {
    /// A list, not a map: a socket watches at most `MAX_SUBSCRIPTIONS_PER_CONNECTION` (32)
    /// items and nearly always one, so a scan of inline keys beats hashing.
    entries: Vec<Entry>,
    /// Items to resync, taken by the session. The first reason recorded wins, so a lag is
    /// counted as a conflation even if a reconnect follows before the session looks.
    resyncs: HashMap<ItemId, Resync>,
    /// Events one item may hold while its snapshot is due (the viewer's queue limit: more
    /// than that would not be written before the viewer lagged anyway).
    hold_limit: usize,
}

impl Tracks {
    pub(super) fn new(hold_limit: usize) -> Self {
        Self {
            entries: Vec::new(),
            resyncs: HashMap::new(),
            hold_limit,
        }
    }

    /// Applies the item's rules to a room's frame; `queue_full` says whether the socket's
    /// queue can take no more. A frame admitted for writing has already advanced the track.
    #[inline]
    pub(super) fn admit(&mut self, frame: &Arc<Frame>, queue_full: bool) -> Admission {
        let Some(track) = track_of_frame(&mut self.entries, frame) else {
            // Not (or no longer) watched; a new subscription's snapshot covers it.
            return Admission::Skip;
        };
        if !track.live {
            if matches!(frame.kind, FrameKind::Event { .. }) {
                if track.held.len() < self.hold_limit {
                    track.held.push(Arc::clone(frame));
                } else {
                    track.held_overflowed = true;
                }
            }
            return Admission::Skip;
        }
        if let FrameKind::Event { seq } = frame.kind {
            if seq <= track.last_seq {
                return Admission::Skip;
            }
            if seq != track.last_seq + 1 {
                // The snapshot about to be read covers the missing events and this one.
                track.live = false;
                request(&mut self.resyncs, &frame.item, Resync::Gap);
                return Admission::Gap;
            }
        }
        if queue_full {
            track.live = false;
            request(&mut self.resyncs, &frame.item, Resync::Lagged);
            return Admission::Lagged;
        }
        if let FrameKind::Event { seq } = frame.kind {
            track.last_seq = seq;
        }
        Admission::Write
    }

    /// Starts watching `item` (or asks for a fresh snapshot of an item already watched):
    /// events are held from now on until [`Tracks::install`].
    pub(super) fn track(&mut self, item: &ItemId) {
        match track_of(&mut self.entries, item) {
            Some(track) => track.live = false,
            None => {
                // Room for one first: a first push would make room for four entries, and
                // nearly every viewer watches one item for as long as it is connected.
                if self.entries.capacity() == 0 {
                    self.entries.reserve_exact(1);
                }
                self.entries.push(Entry {
                    room: None,
                    item: item.clone(),
                    track: Track::default(),
                });
            }
        }
    }

    /// Stops watching `item`, forgetting any snapshot it waited for.
    pub(super) fn untrack(&mut self, item: &ItemId) {
        self.entries.retain(|e| &e.item != item);
        self.resyncs.remove(item);
    }

    pub(super) fn is_tracked(&self, item: &ItemId) -> bool {
        self.entries.iter().any(|e| &e.item == item)
    }

    /// A snapshot at `seq` was written: makes the item live again and returns the held
    /// events that continue it. `None` when the item is not watched.
    pub(super) fn install(&mut self, item: &ItemId, seq: u64) -> Option<Installed> {
        let track = track_of(&mut self.entries, item)?;
        track.last_seq = seq;
        track.live = true;
        let held = std::mem::take(&mut track.held);
        let overflowed = std::mem::take(&mut track.held_overflowed);
        let mut followed = Vec::new();
        for frame in held {
            let FrameKind::Event { seq } = frame.kind else {
                continue;
            };
            if seq <= track.last_seq {
                continue;
            }
            if seq != track.last_seq + 1 {
                track.live = false;
                break;
            }
            track.last_seq = seq;
            followed.push(frame);
        }
        let resync = if !track.live {
            Some(Resync::Gap)
        } else if overflowed {
            // Events after the held ones were dropped: only a newer snapshot covers them.
            track.live = false;
            Some(Resync::Lagged)
        } else {
            None
        };
        if let Some(reason) = resync {
            request(&mut self.resyncs, item, reason);
        }
        Some(Installed {
            followed,
            resync: resync.is_some(),
        })
    }

    /// Asks for a fresh snapshot of `item`, holding its events until then; whether the item
    /// is watched (otherwise nothing changes).
    pub(super) fn request_snapshot(&mut self, item: &ItemId, reason: Resync) -> bool {
        let Some(track) = track_of(&mut self.entries, item) else {
            return false;
        };
        track.live = false;
        request(&mut self.resyncs, item, reason);
        true
    }

    /// Takes the pending resync requests.
    pub(super) fn take_resyncs(&mut self) -> HashMap<ItemId, Resync> {
        std::mem::take(&mut self.resyncs)
    }
}

/// The track `frame` belongs to: by its room's key, else (its room's first frame for this
/// viewer) by the item's id, binding the key for the next frames. A key is one room's and
/// a room has one item, so a key match is an item match: the result is the track of
/// `frame.item` either way.
#[inline]
fn track_of_frame<'a>(entries: &'a mut [Entry], frame: &Frame) -> Option<&'a mut Track> {
    if let Some(index) = entries.iter().position(|e| e.room == Some(frame.room)) {
        return entries.get_mut(index).map(|e| &mut e.track);
    }
    let entry = entries.iter_mut().find(|e| e.item == frame.item)?;
    entry.room = Some(frame.room);
    Some(&mut entry.track)
}

/// The track of `item`, if watched.
fn track_of<'a>(entries: &'a mut [Entry], item: &ItemId) -> Option<&'a mut Track> {
    entries
        .iter_mut()
        .find(|e| &e.item == item)
        .map(|e| &mut e.track)
}

/// Records a resync for `item` unless one is already pending (the first reason wins).
fn request(resyncs: &mut HashMap<ItemId, Resync>, item: &ItemId, reason: Resync) {
    if !resyncs.contains_key(item) {
        resyncs.insert(item.clone(), reason);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// What the viewer would have written, in order: the frames the rules let through.
    #[derive(Default)]
    struct Written(String);

    impl Written {
        fn snapshot(&mut self, tracks: &mut Tracks, item: &ItemId, seq: u64) -> u64 {
            self.0.push_str(&format!("s{seq};"));
            let installed = tracks.install(item, seq).unwrap();
            for frame in &installed.followed {
                self.0.push_str(std::str::from_utf8(&frame.wire).unwrap());
            }
            u64::try_from(installed.followed.len()).unwrap()
        }

        fn offer(&mut self, tracks: &mut Tracks, frame: &Arc<Frame>) -> Admission {
            let admission = tracks.admit(frame, false);
            if admission == Admission::Write {
                self.0.push_str(std::str::from_utf8(&frame.wire).unwrap());
            }
            admission
        }
    }

    /// The room key of `item` in these tests: one per item id, as one room per item.
    pub(in crate::viewer) fn room_of(item: &ItemId) -> RoomKey {
        use std::sync::Mutex;
        static KEYS: Mutex<Vec<(String, RoomKey)>> = Mutex::new(Vec::new());
        let mut keys = KEYS.lock().unwrap();
        if let Some((_, key)) = keys.iter().find(|(id, _)| id == item.as_str()) {
            return *key;
        }
        let key = RoomKey::next();
        keys.push((item.as_str().to_owned(), key));
        key
    }

    /// Event `seq` of `item`, whose bytes read `e<seq>;`.
    pub(in crate::viewer) fn event(item: &ItemId, seq: u64) -> Arc<Frame> {
        Arc::new(Frame {
            room: room_of(item),
            item: item.clone(),
            kind: FrameKind::Event { seq },
            wire: Bytes::from(format!("e{seq};")),
            received: Instant::now(),
        })
    }

    #[test]
    fn events_held_while_a_snapshot_is_due_follow_it_minus_those_it_covers() {
        let mut tracks = Tracks::new(8);
        let mut written = Written::default();
        let item = ItemId::parse("x").unwrap();
        assert_eq!(
            written.offer(&mut tracks, &event(&item, 1)),
            Admission::Skip,
            "not watched"
        );
        tracks.track(&item);
        for seq in 3..=5 {
            assert_eq!(
                written.offer(&mut tracks, &event(&item, seq)),
                Admission::Skip,
                "held"
            );
        }
        let followed = written.snapshot(&mut tracks, &item, 4);
        assert_eq!(followed, 1);
        assert_eq!(
            written.offer(&mut tracks, &event(&item, 5)),
            Admission::Skip,
            "a duplicate"
        );
        assert_eq!(
            written.offer(&mut tracks, &event(&item, 6)),
            Admission::Write
        );
        assert_eq!(written.0, "s4;e5;e6;");
        assert!(tracks.take_resyncs().is_empty());

        assert_eq!(
            written.offer(&mut tracks, &event(&item, 8)),
            Admission::Gap,
            "a gap"
        );
        assert_eq!(tracks.take_resyncs().get(&item), Some(&Resync::Gap));
        assert_eq!(
            written.offer(&mut tracks, &event(&item, 9)),
            Admission::Skip,
            "held"
        );
    }

    #[test]
    fn tracking_a_live_item_again_holds_its_events_until_the_next_snapshot() {
        let mut tracks = Tracks::new(8);
        let mut written = Written::default();
        let item = ItemId::parse("x").unwrap();
        tracks.track(&item);
        written.snapshot(&mut tracks, &item, 1);
        assert_eq!(
            written.offer(&mut tracks, &event(&item, 2)),
            Admission::Write
        );
        tracks.track(&item);
        assert_eq!(
            written.offer(&mut tracks, &event(&item, 3)),
            Admission::Skip,
            "held"
        );
        assert_eq!(
            written.offer(&mut tracks, &event(&item, 4)),
            Admission::Skip,
            "held"
        );
        assert_eq!(written.snapshot(&mut tracks, &item, 3), 1);
        assert_eq!(written.0, "s1;e2;s3;e4;");
    }

    #[test]
    fn a_full_queue_drops_the_frame_and_asks_for_a_snapshot_once() {
        let mut tracks = Tracks::new(8);
        let item = ItemId::parse("x").unwrap();
        tracks.track(&item);
        tracks.install(&item, 0).unwrap();
        assert_eq!(tracks.admit(&event(&item, 1), true), Admission::Lagged);
        assert_eq!(
            tracks.admit(&event(&item, 1), true),
            Admission::Skip,
            "held"
        );
        assert!(tracks.request_snapshot(&item, Resync::Reconnect));
        assert_eq!(
            tracks.take_resyncs().get(&item),
            Some(&Resync::Lagged),
            "the first reason wins"
        );
    }

    #[test]
    fn more_held_events_than_the_limit_make_the_snapshot_ask_for_another() {
        let mut tracks = Tracks::new(2);
        let item = ItemId::parse("x").unwrap();
        tracks.track(&item);
        for seq in 1..=3 {
            assert_eq!(tracks.admit(&event(&item, seq), false), Admission::Skip);
        }
        let installed = tracks.install(&item, 0).unwrap();
        assert_eq!(installed.followed.len(), 2);
        assert!(installed.resync);
        assert_eq!(tracks.take_resyncs().get(&item), Some(&Resync::Lagged));
        assert_eq!(
            tracks.admit(&event(&item, 3), false),
            Admission::Skip,
            "held"
        );
    }

    #[test]
    fn an_unwatched_item_takes_no_snapshot_and_no_resync() {
        let mut tracks = Tracks::new(8);
        let item = ItemId::parse("x").unwrap();
        assert!(tracks.install(&item, 1).is_none());
        assert!(!tracks.request_snapshot(&item, Resync::Reconnect));
        tracks.track(&item);
        assert!(tracks.request_snapshot(&item, Resync::Reconnect));
        tracks.untrack(&item);
        assert!(tracks.take_resyncs().is_empty());
    }

    #[test]
    fn a_track_is_found_by_its_rooms_key_and_by_its_item_when_another_room_frames_it() {
        let mut tracks = Tracks::new(8);
        let (x, y) = (ItemId::parse("x").unwrap(), ItemId::parse("y").unwrap());
        for item in [&x, &y] {
            tracks.track(item);
            tracks.install(item, 0).unwrap();
        }
        let frame = |room, item: &ItemId, seq| {
            Arc::new(Frame {
                room,
                item: item.clone(),
                kind: FrameKind::Event { seq },
                wire: Bytes::from(format!("{item}{seq};")),
                received: Instant::now(),
            })
        };
        let (room_x, room_y) = (RoomKey::next(), RoomKey::next());
        assert_eq!(tracks.admit(&frame(room_x, &x, 1), false), Admission::Write);
        assert_eq!(tracks.admit(&frame(room_y, &y, 1), false), Admission::Write);
        assert_eq!(tracks.admit(&frame(room_x, &x, 2), false), Admission::Write);
        assert_eq!(
            tracks.admit(&frame(room_x, &x, 2), false),
            Admission::Skip,
            "a duplicate, found by the key"
        );
        // The item's room closed and another opened: found by the item, then by the new key.
        let reopened = RoomKey::next();
        assert_eq!(
            tracks.admit(&frame(reopened, &x, 3), false),
            Admission::Write
        );
        assert_eq!(
            tracks.admit(&frame(reopened, &x, 4), false),
            Admission::Write
        );
        tracks.untrack(&x);
        assert_eq!(
            tracks.admit(&frame(reopened, &x, 5), false),
            Admission::Skip,
            "no longer watched"
        );
        assert_eq!(tracks.admit(&frame(room_y, &y, 2), false), Admission::Write);
    }
}
