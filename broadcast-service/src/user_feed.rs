//! A user feed: one signed-in user's private events in this instance, with the sockets that
//! signed in as that user, its one NATS subscription and the task that forwards it.
//!
//! Private events (`outbid`, `won`, `lost`, `ending_soon`, …) are published on core NATS
//! `<prefix>.user.<user_id>` by the archival worker. Interest-based, like rooms: the first
//! socket of a user to sign in here opens the feed, whose task subscribes; the last one to
//! leave (sign-in expired, another user, socket closed) stops it, and the task unsubscribes.
//! So an instance holds one subscription per signed-in user, however many sockets that user
//! has, and anonymous sockets cost nothing here: they are never members of a feed.
//!
//! A message is forwarded only when it is a JSON object with a string `type`; its bytes go out
//! as they came, framed once for every member. A member receives only while its sign-in holds:
//! the feed itself skips a member past its deadline, so an expired token stops private events
//! at once even if its session is busy. The write never waits: a socket whose queue is full
//! misses the event (counted in `broadcast_private_dropped_total`). Private events have no
//! snapshot to catch up with; they are notifications, and the state they announce is in the
//! API. Likewise, what is published while this instance is away from NATS is not replayed.

use crate::metrics::Metrics;
use crate::viewer::{Offered, Viewer};
use crate::wire;
use futures::StreamExt;
use shared::UserId;
use shared::mutex;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tungstenite::Utf8Bytes;

/// One socket of the feed's user.
struct Member {
    viewer: Arc<Viewer>,
    /// Private events go to it until then; `None` until its sign-in is answered, so nothing
    /// precedes the `authenticated` frame.
    until: Option<Instant>,
}

pub struct UserFeed {
    user: UserId,
    /// Members by connection id. A std mutex: held while a frame is offered to each member (a
    /// non-blocking write, never an `.await`), and for inserts, activations and removals.
    members: Mutex<HashMap<u64, Member>>,
    /// `true` once the subscription is in force at the server.
    ready: watch::Sender<bool>,
    /// Cancelled when the last member leaves (or the service stops).
    stop: CancellationToken,
}

impl UserFeed {
    pub(crate) fn new(user: UserId, stop: CancellationToken) -> Self {
        Self {
            user,
            members: Mutex::new(HashMap::new()),
            ready: watch::Sender::new(false),
            stop,
        }
    }

    fn members(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Member>> {
        mutex::lock(&self.members)
    }

    /// Adds a socket that receives nothing yet (see [`UserFeed::activate`]); a socket already
    /// a member keeps its place.
    pub(crate) fn add(&self, viewer: &Arc<Viewer>) {
        self.members().entry(viewer.id()).or_insert_with(|| Member {
            viewer: Arc::clone(viewer),
            until: None,
        });
    }

    /// Removes a socket; returns how many remain.
    pub(crate) fn remove(&self, viewer_id: u64) -> usize {
        let mut members = self.members();
        members.remove(&viewer_id);
        members.len()
    }

    /// Writes `reply` (the `authenticated` frame) to the member and lets private events reach
    /// it until `until`, both under the members' lock, so every event forwarded after the
    /// reply follows it and none precedes it. Whether the socket is a member.
    pub fn activate(&self, viewer_id: u64, until: Instant, reply: &bytes::Bytes) -> bool {
        let mut members = self.members();
        let Some(member) = members.get_mut(&viewer_id) else {
            return false;
        };
        member.viewer.send(reply);
        member.until = Some(until);
        true
    }

    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }

    /// Waits until the subscription is in force (or the feed gave up waiting for NATS).
    pub(crate) async fn wait_ready(&self) {
        if !crate::nats::confirmed(&self.ready).await {
            tracing::warn!(user_id = %self.user, "user feed not confirmed by NATS; serving anyway");
        }
    }

    /// Offers one framed private event to every member whose sign-in still holds.
    fn forward(&self, metrics: &Metrics, wire: &bytes::Bytes) {
        let now = Instant::now();
        let (mut sent, mut dropped) = (0, 0);
        for member in self.members().values() {
            if member.until.is_none_or(|until| now >= until) {
                continue;
            }
            match member.viewer.offer_private(wire) {
                Offered::Sent => sent += 1,
                Offered::Lagged => dropped += 1,
                Offered::Skipped => {}
            }
        }
        metrics.sent("private", sent);
        metrics.private_dropped.inc_by(dropped);
    }
}

/// Whether `payload` is a private event this service forwards: a JSON object with a string
/// `type`. Its text is returned as it came.
pub fn private_event(payload: bytes::Bytes) -> Option<Utf8Bytes> {
    let object =
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&payload).ok()?;
    if !object.get("type").is_some_and(serde_json::Value::is_string) {
        return None;
    }
    Utf8Bytes::try_from(payload).ok()
}

/// Subscribes to the user's subject, confirms the subscription, then forwards its messages
/// until the feed is stopped.
pub(crate) async fn run(
    feed: Arc<UserFeed>,
    nats: async_nats::Client,
    subject: String,
    metrics: Arc<Metrics>,
) {
    let Some(mut messages) = crate::nats::subscribe_retrying(&nats, &subject, &feed.stop).await
    else {
        feed.ready.send_replace(true);
        return;
    };
    if nats.connection_state() == async_nats::connection::State::Connected
        && let Err(e) = crate::nats::barrier(&nats, crate::nats::CONFIRM_TIMEOUT).await
    {
        tracing::warn!(user_id = %feed.user, error = %e, "user feed subscription not confirmed");
    }
    feed.ready.send_replace(true);
    metrics.user_feeds.inc();
    loop {
        // Both branches are cancellation-safe: `next()` yields a message or leaves it queued.
        let message = tokio::select! {
            () = feed.stop.cancelled() => break,
            message = messages.next() => message,
        };
        // `None` only when the NATS client itself is closed (the service is stopping).
        let Some(message) = message else { break };
        metrics.private_received.inc();
        match private_event(message.payload) {
            Some(text) => feed.forward(&metrics, &wire::text(&text)),
            None => {
                metrics.private_invalid.inc();
                tracing::warn!(user_id = %feed.user, "ignoring a private message that is not a JSON object with a string type");
            }
        }
    }
    let _ = messages.unsubscribe().await;
    metrics.user_feeds.dec();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_object_with_a_string_type_is_forwarded_as_it_came() {
        let payload = r#"{"type":"outbid","item_id":"lot-1", "amount": 12.5}"#;
        let text = private_event(bytes::Bytes::from_static(payload.as_bytes()));
        assert_eq!(text.as_deref(), Some(payload));
    }

    #[test]
    fn anything_else_is_not_a_private_event() {
        for payload in [
            "not json",
            r#"["type","outbid"]"#,
            r#"{"kind":"outbid"}"#,
            r#"{"type":7}"#,
            r#""outbid""#,
        ] {
            assert_eq!(
                private_event(bytes::Bytes::from_static(payload.as_bytes())),
                None,
                "{payload}"
            );
        }
    }
}
