//! The hub: which items this instance watches and which signed-in users it holds private
//! events for, and nothing else.
//!
//! Interest-based NATS: the first viewer of an item creates its [`Room`], whose task
//! subscribes to `<prefix>.live.<item>`; the last viewer to leave stops it, and the task
//! unsubscribes. Joining and leaving happen under one lock, so a join can never slip into a
//! room that is being closed. Signed-in users get the same treatment: the first socket of a
//! user opens its [`UserFeed`] (one subscription to `<prefix>.user.<user_id>`), the last one
//! to leave closes it.
//!
//! The hub also watches NATS (re)connections: core NATS does not replay what was published
//! while this instance was away, so after a reconnect every viewer of every room gets a fresh
//! snapshot rather than silently missing a price.

use crate::room::{self, Room, RoomSettings};
use crate::user_feed::{self, UserFeed};
use crate::viewer::{Resync, Viewer};
use shared::mutex;
use shared::{ItemId, UserId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest the hub waits for a reconnected NATS to confirm the re-sent subscriptions before
/// resyncing viewers anyway.
const RECONNECT_BARRIER_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Hub {
    /// A std mutex: held only to look up, insert or remove a room (never across `.await`).
    rooms: Mutex<HashMap<ItemId, Arc<Room>>>,
    /// Signed-in users' feeds; a std mutex, like `rooms`.
    feeds: Mutex<HashMap<UserId, Arc<UserFeed>>>,
    settings: Arc<RoomSettings>,
    /// Owns every room and feed task.
    tasks: TaskTracker,
    /// Parent of every room's and feed's stop token.
    stop: CancellationToken,
}

impl Hub {
    pub fn new(settings: RoomSettings) -> Self {
        Self {
            rooms: Mutex::new(HashMap::new()),
            feeds: Mutex::new(HashMap::new()),
            settings: Arc::new(settings),
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        }
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<ItemId, Arc<Room>>> {
        mutex::lock(&self.rooms)
    }

    /// Adds `viewer` to the item's room, opening the room (and its NATS subscription) if this
    /// is the item's first viewer here, and returns once the subscription is in force. From
    /// then on every event published for the item reaches the viewer's queue, so a snapshot
    /// read after this returns misses nothing.
    pub async fn join(&self, item: &ItemId, viewer: &Arc<Viewer>) -> Arc<Room> {
        let room = {
            let mut rooms = self.rooms();
            let room = match rooms.get(item) {
                Some(room) => Arc::clone(room),
                None => {
                    let room = Arc::new(Room::new(
                        item.clone(),
                        self.settings.store.clone(),
                        self.stop.child_token(),
                        self.settings.parallel_pass_min,
                    ));
                    rooms.insert(item.clone(), Arc::clone(&room));
                    self.settings.metrics.rooms_opened.inc();
                    self.tasks
                        .spawn(room::run(Arc::clone(&room), Arc::clone(&self.settings)));
                    room
                }
            };
            room.add(viewer);
            room
        };
        room.wait_ready().await;
        room
    }

    /// Removes the viewer from the item's room, closing the room when it was the last one.
    pub fn leave(&self, item: &ItemId, viewer_id: u64) {
        let mut rooms = self.rooms();
        if let Some(room) = rooms.get(item)
            && room.remove(viewer_id) == 0
        {
            room.stop();
            rooms.remove(item);
        }
    }

    /// Makes `viewer` a member of the user's feed, opening the feed (and its NATS subscription)
    /// if this is the user's first socket here, and returns once the subscription is in
    /// force. The member receives nothing until the session activates it
    /// ([`UserFeed::activate`]) along with its `authenticated` reply.
    pub async fn join_user(&self, user: &UserId, viewer: &Arc<Viewer>) -> Arc<UserFeed> {
        let feed = {
            let mut feeds = mutex::lock(&self.feeds);
            let feed = match feeds.get(user) {
                Some(feed) => Arc::clone(feed),
                None => {
                    let feed = Arc::new(UserFeed::new(user.clone(), self.stop.child_token()));
                    feeds.insert(user.clone(), Arc::clone(&feed));
                    self.tasks.spawn(user_feed::run(
                        Arc::clone(&feed),
                        self.settings.nats.clone(),
                        self.settings.subjects.user(user),
                        Arc::clone(&self.settings.metrics),
                    ));
                    feed
                }
            };
            feed.add(viewer);
            feed
        };
        feed.wait_ready().await;
        feed
    }

    /// Removes the socket from the user's feed, closing the feed when it was the last one.
    pub fn leave_user(&self, user: &UserId, viewer_id: u64) {
        let mut feeds = mutex::lock(&self.feeds);
        if let Some(feed) = feeds.get(user)
            && feed.remove(viewer_id) == 0
        {
            feed.stop();
            feeds.remove(user);
        }
    }

    /// Users with a feed in this instance.
    pub fn user_feed_count(&self) -> usize {
        mutex::lock(&self.feeds).len()
    }

    /// Items with a room in this instance.
    pub fn room_count(&self) -> usize {
        self.rooms().len()
    }

    /// Asks every viewer of every room for a fresh snapshot.
    pub fn resync_all(&self, reason: Resync) {
        let rooms: Vec<Arc<Room>> = self.rooms().values().cloned().collect();
        for room in rooms {
            room.resync_all(reason);
        }
    }

    /// On every NATS (re)connection: waits until the re-sent subscriptions are in force, then
    /// resyncs every viewer. Runs until `shutdown`.
    pub async fn watch_reconnects(
        self: Arc<Self>,
        connected: Arc<Notify>,
        shutdown: CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                // `notified` is cancellation-safe; a connection signalled while nobody waits
                // is kept as a permit.
                () = connected.notified() => {}
            }
            if self.room_count() == 0 {
                continue;
            }
            if let Err(e) =
                crate::nats::barrier(&self.settings.nats, RECONNECT_BARRIER_TIMEOUT).await
            {
                tracing::warn!(error = %e, "resubscriptions not confirmed; resyncing anyway");
            }
            tracing::info!(
                rooms = self.room_count(),
                "NATS connected: resyncing every viewer"
            );
            self.resync_all(Resync::Reconnect);
        }
    }

    /// Stops every room (each publishes a zero count and unsubscribes) and every user feed,
    /// and waits for them, at most `grace`.
    pub async fn stop(&self, grace: Duration) {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("rooms did not stop within {grace:?}");
        }
    }
}
