//! The WebSocket protocol as data: what a client may send and the frames the server writes.
//!
//! Client → server (text frames, JSON):
//! * `{"type":"subscribe","item_id":"X"}`: watch X (again: ask for a fresh snapshot).
//! * `{"type":"unsubscribe","item_id":"X"}`: stop watching X; answered `unsubscribed`.
//! * `{"type":"ping"}`: answered `{"type":"pong"}` (browsers cannot send protocol pings).
//! * `{"type":"auth","token":"<access token>"}`: sign the socket in (at any time, again to
//!   renew); answered `authenticated` or an `invalid_token` / `unavailable` error. Watching
//!   never needs it.
//!
//! Server → client: `snapshot` (the item's view plus `type` and `item_id`), the events as the
//! gateway published them (`bid_placed`, `auction_closed`), `viewers`, `unsubscribed`, `pong`,
//! `{"type":"authenticated","user_id","expires_at"}`, the signed-in user's private events as
//! published on `<prefix>.user.<user_id>`, `{"type":"auth_expired"}` when the sign-in ends,
//! and `error` (see [`crate::error::ApiError::to_frame`]).
//!
//! Every frame that goes to many viewers is encoded here once and shared as WebSocket bytes (see [`crate::wire`]).

use crate::error::{ApiError, InputError};
use crate::identity::{PresentedToken, SignedIn};
use crate::wire;
use bytes::Bytes;
use serde::Serialize;
use shared::item_state::ItemView;
use shared::{ItemId, ItemState, Timestamp};
use tungstenite::Utf8Bytes;

/// A parsed client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    Subscribe(ItemId),
    Unsubscribe(ItemId),
    Ping,
    Auth(PresentedToken),
}

/// Longest piece of client input echoed back in an error message.
const ECHO_MAX: usize = 40;

fn echo(text: &str) -> String {
    text.chars().take(ECHO_MAX).collect()
}

impl ClientMessage {
    /// Parses one text frame.
    ///
    /// # Errors
    /// `invalid_json` (not JSON), `invalid_message` (not an object with a string `type`, no
    /// string `item_id`, or an `auth` without a string `token`), `unknown_type`, or
    /// `invalid_item_id`.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            ApiError::invalid(InputError::InvalidJson, format!("message is not JSON: {e}"))
        })?;
        let Some(kind) = value.get("type").and_then(serde_json::Value::as_str) else {
            return Err(ApiError::invalid(
                InputError::InvalidMessage,
                "a message must be a JSON object with a string \"type\"",
            ));
        };
        let item = || -> Result<ItemId, ApiError> {
            let raw = value
                .get("item_id")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| {
                    ApiError::invalid(
                        InputError::InvalidMessage,
                        format!("a {kind} message needs a string \"item_id\""),
                    )
                })?;
            ItemId::parse(raw).map_err(|e| {
                ApiError::invalid(
                    InputError::InvalidItemId,
                    format!("item id {:?} {e}", echo(raw)),
                )
            })
        };
        match kind {
            "subscribe" => Ok(Self::Subscribe(item()?)),
            "unsubscribe" => Ok(Self::Unsubscribe(item()?)),
            "ping" => Ok(Self::Ping),
            "auth" => value
                .get("token")
                .and_then(serde_json::Value::as_str)
                .and_then(PresentedToken::new)
                .map(Self::Auth)
                .ok_or_else(|| {
                    ApiError::invalid(
                        InputError::InvalidMessage,
                        "an auth message needs a non-empty string \"token\"",
                    )
                }),
            other => Err(ApiError::invalid(
                InputError::UnknownType,
                format!(
                    "unknown message type {:?}; expected subscribe, unsubscribe, auth or ping",
                    echo(other)
                ),
            )),
        }
    }
}

/// An encoded snapshot of one item at one `seq`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub seq: u64,
    pub text: Utf8Bytes,
    /// `text` as a WebSocket frame, encoded once for every viewer it goes to.
    pub wire: Bytes,
}

/// `{"type":"snapshot", ...ItemView, "item_id"}`. The view already carries `seq` and `id`;
/// `item_id` is added so every frame about an item names it the same way.
#[derive(Serialize)]
struct SnapshotFrame<'a> {
    r#type: &'static str,
    item_id: &'a ItemId,
    #[serde(flatten)]
    view: ItemView,
}

impl Snapshot {
    /// Encodes the item's view at `now`.
    pub fn encode(state: &ItemState, now: Timestamp) -> Self {
        let frame = SnapshotFrame {
            r#type: "snapshot",
            item_id: &state.id,
            view: state.view(now),
        };
        // The view is plain strings, integers and options: it always serializes.
        let text = Utf8Bytes::from(serde_json::to_string(&frame).unwrap_or_default());
        Self {
            seq: state.seq,
            wire: wire::text(&text),
            text,
        }
    }
}

/// `{"type":"viewers","item_id","count"}`, built once per change and shared by every viewer.
pub fn viewers_frame(item: &ItemId, count: u64) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Viewers<'a> {
        r#type: &'static str,
        item_id: &'a ItemId,
        count: u64,
    }
    let frame = Viewers {
        r#type: "viewers",
        item_id: item,
        count,
    };
    Utf8Bytes::from(serde_json::to_string(&frame).unwrap_or_default())
}

/// `{"type":"unsubscribed","item_id"}`: after it, nothing more comes for that item.
pub fn unsubscribed_frame(item: &ItemId) -> Utf8Bytes {
    let frame = serde_json::json!({ "type": "unsubscribed", "item_id": item });
    Utf8Bytes::from(frame.to_string())
}

/// The answer to an application-level `{"type":"ping"}`.
pub const PONG_FRAME: &str = r#"{"type":"pong"}"#;

/// `{"type":"authenticated","user_id","expires_at"}`: the socket is signed in as `user_id`
/// and gets that user's private events until `expires_at` (the token's `exp`).
pub fn authenticated_frame(signed_in: &SignedIn) -> Utf8Bytes {
    let frame = serde_json::json!({
        "type": "authenticated",
        "user_id": signed_in.user,
        "expires_at": signed_in.expires_at,
    });
    Utf8Bytes::from(frame.to_string())
}

/// The sign-in ended (its token expired): no more private events until a new `auth`. The
/// socket stays open and keeps watching.
pub const AUTH_EXPIRED_FRAME: &str = r#"{"type":"auth_expired"}"#;

#[cfg(test)]
mod tests {
    use super::*;
    use shared::UserId;

    fn code_of(text: &str) -> &'static str {
        ClientMessage::parse(text).unwrap_err().code()
    }

    #[test]
    fn subscribe_and_unsubscribe_carry_a_valid_item_id() {
        let item = ItemId::parse("lot-7").unwrap();
        assert_eq!(
            ClientMessage::parse(r#"{"type":"subscribe","item_id":"lot-7"}"#).unwrap(),
            ClientMessage::Subscribe(item.clone())
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"unsubscribe","item_id":"lot-7"}"#).unwrap(),
            ClientMessage::Unsubscribe(item)
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"ping"}"#).unwrap(),
            ClientMessage::Ping
        );
    }

    #[test]
    fn auth_carries_a_non_empty_token() {
        assert_eq!(
            ClientMessage::parse(r#"{"type":"auth","token":"a.b.c"}"#).unwrap(),
            ClientMessage::Auth(PresentedToken::new("a.b.c").unwrap())
        );
        assert_eq!(code_of(r#"{"type":"auth"}"#), "invalid_message");
        assert_eq!(code_of(r#"{"type":"auth","token":""}"#), "invalid_message");
        assert_eq!(code_of(r#"{"type":"auth","token":5}"#), "invalid_message");
    }

    #[test]
    fn authenticated_names_the_user_and_the_expiry() {
        let signed_in = SignedIn {
            user: UserId::parse("alice").unwrap(),
            expires_at: Timestamp::from_micros(1_700_000_000_000_000),
            until: tokio::time::Instant::now(),
        };
        let json: serde_json::Value =
            serde_json::from_str(&authenticated_frame(&signed_in)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "authenticated", "user_id": "alice",
                "expires_at": "2023-11-14T22:13:20.000000Z"})
        );
    }

    #[test]
    fn text_that_is_not_json_is_invalid_json() {
        assert_eq!(code_of("hello"), "invalid_json");
    }

    #[test]
    fn json_without_a_string_type_is_an_invalid_message() {
        assert_eq!(code_of("[1,2]"), "invalid_message");
        assert_eq!(code_of(r#"{"type":5}"#), "invalid_message");
        assert_eq!(code_of(r#"{"type":"subscribe"}"#), "invalid_message");
    }

    #[test]
    fn an_unknown_type_is_named_in_the_error() {
        let error = ClientMessage::parse(r#"{"type":"dance"}"#).unwrap_err();
        assert_eq!(error.code(), "unknown_type");
        assert!(error.to_string().contains("dance"));
    }

    #[test]
    fn an_item_id_with_a_subject_wildcard_is_an_invalid_item_id() {
        assert_eq!(
            code_of(r#"{"type":"subscribe","item_id":"a.>"}"#),
            "invalid_item_id"
        );
        assert_eq!(
            code_of(r#"{"type":"subscribe","item_id":""}"#),
            "invalid_item_id"
        );
    }

    #[test]
    fn snapshot_has_type_item_id_and_seq_once() {
        // Built directly: reading the hash is `shared::item_state`'s to test.
        let state = ItemState {
            id: ItemId::parse("i1").unwrap(),
            name: "Camera".into(),
            description: String::new(),
            stored_status: "active".into(),
            start: Timestamp::from_micros(1_000_000),
            end: Timestamp::from_micros(9_000_000),
            starting_cents: 1000,
            min_increment_cents: 100,
            reserve_cents: 0,
            current_cents: 1500,
            highest_bidder: UserId::parse("alice").ok(),
            bid_count: 3,
            seq: 3,
            extension_window_secs: 0,
            extension_secs: 0,
            round: 1,
            winner_id: None,
            closed_at: None,
            cancel_reason: None,
            seller_id: None,
            increments: shared::IncrementTable::flat(shared::Cents::new(100).unwrap()),
            buy_now_cents: 0,
        };
        let snapshot = Snapshot::encode(&state, Timestamp::from_micros(2_000_000));
        assert_eq!(snapshot.seq, 3);
        assert_eq!(snapshot.text.matches("\"seq\"").count(), 1);
        let json: serde_json::Value = serde_json::from_str(&snapshot.text).unwrap();
        assert_eq!(json["type"], "snapshot");
        assert_eq!(json["item_id"], "i1");
        assert_eq!(json["seq"], 3);
        assert_eq!(json["current_bid"].to_string(), "15");
        assert_eq!(json["status"], "active");
        assert_eq!(json["next_minimum_bid_cents"], 1600);
    }

    #[test]
    fn viewers_frame_names_item_and_count() {
        let json: serde_json::Value =
            serde_json::from_str(&viewers_frame(&ItemId::parse("x").unwrap(), 4)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type":"viewers","item_id":"x","count":4})
        );
    }
}
