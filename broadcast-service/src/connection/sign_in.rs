//! A connection's sign-in: which user it is signed in as, until when, and its membership of
//! that user's feed (see [`crate::user_feed`]).
//!
//! The rules:
//! * A valid token (upgrade header or query, or an `auth` message at any time) is answered
//!   `authenticated`; from that frame on the socket gets the user's private events.
//! * A refused token gets an `invalid_token` error frame, a token that cannot be checked (the
//!   key set is unreachable) an `unavailable` one. Either way the socket stays open and keeps
//!   watching, and a sign-in it already had is kept: the failure concerns the token just sent.
//! * At the token's `exp` (plus the leeway) the socket leaves the feed and gets
//!   `auth_expired`; a new `auth` signs it in again. A token for another user moves the socket
//!   to that user's feed.
//!
//! Only signed-in sockets carry any of this: for an anonymous one the session's expiry timer
//! is off and no feed knows it.

use super::ConnectionContext;
use crate::error::ApiError;
use crate::identity::PresentedToken;
use crate::protocol::{AUTH_EXPIRED_FRAME, authenticated_frame};
use crate::viewer::Viewer;
use crate::wire;
use shared::UserId;
use std::sync::Arc;
use tokio::time::Instant;
use tungstenite::Utf8Bytes;

/// A connection's current sign-in, if any.
#[derive(Default)]
pub(super) struct SignIn {
    current: Option<Current>,
}

struct Current {
    user: UserId,
    /// When the sign-in ends (the token's `exp` plus the leeway).
    until: Instant,
}

impl SignIn {
    /// When the current sign-in ends; `None` when the socket is anonymous.
    pub(super) fn until(&self) -> Option<Instant> {
        self.current.as_ref().map(|current| current.until)
    }

    /// Verifies `token` and signs the socket in (or renews, or switches user), answering
    /// `authenticated` or an error frame.
    #[tracing::instrument(name = "ws.auth", level = "debug", skip_all, fields(connection = viewer.id(), user_id = tracing::field::Empty))]
    pub(super) async fn authenticate(
        &mut self,
        token: &PresentedToken,
        viewer: &Arc<Viewer>,
        context: &ConnectionContext,
    ) {
        let signed_in = match context.identity.verify(token).await {
            Ok(signed_in) => signed_in,
            Err(error) => {
                refuse(&error, viewer, context);
                return;
            }
        };
        tracing::Span::current().record("user_id", tracing::field::display(&signed_in.user));
        if let Some(current) = &self.current
            && current.user != signed_in.user
        {
            context.hub.leave_user(&current.user, viewer.id());
        }
        let feed = context.hub.join_user(&signed_in.user, viewer).await;
        // Written by the feed under its lock, so no private event precedes it.
        let reply = wire::text(&authenticated_frame(&signed_in));
        feed.activate(viewer.id(), signed_in.until, &reply);
        context.metrics.sent("reply", 1);
        context.metrics.auth("authenticated");
        if self.current.is_none() {
            context.metrics.authenticated.inc();
        }
        self.current = Some(Current {
            user: signed_in.user,
            until: signed_in.until,
        });
    }

    /// Ends a sign-in whose time is up: the socket leaves the feed, then gets `auth_expired`.
    pub(super) fn expire(&mut self, viewer: &Viewer, context: &ConnectionContext) {
        if !self.end(viewer.id(), context) {
            return;
        }
        viewer.send(&wire::text(&Utf8Bytes::from_static(AUTH_EXPIRED_FRAME)));
        context.metrics.sent("reply", 1);
        context.metrics.auth("expired");
    }

    /// Leaves the feed (the socket is closing, or the sign-in expired); whether there was a
    /// sign-in.
    pub(super) fn end(&mut self, viewer_id: u64, context: &ConnectionContext) -> bool {
        let Some(current) = self.current.take() else {
            return false;
        };
        context.hub.leave_user(&current.user, viewer_id);
        context.metrics.authenticated.dec();
        true
    }
}

/// Answers a token that was refused or could not be checked.
fn refuse(error: &ApiError, viewer: &Viewer, context: &ConnectionContext) {
    context.metrics.auth(error.code());
    context.metrics.client_error(error.code());
    viewer.send(&wire::text(&error.to_frame(None)));
    context.metrics.sent("error", 1);
}
