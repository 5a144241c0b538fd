//! One error type for the whole service. Over HTTP it becomes a status code and the body
//! `{"error": code, "message": text}`; on a WebSocket it becomes the frame
//! `{"type":"error","code","message","item_id"?}`. Either way `code` is a stable snake_case
//! string a client can branch on. The variant decides both the status and the code (an
//! [`InputError`] names which rule a 400 broke), so no status is chosen by looking at text.
//!
//! Internal causes are logged once, where they become a response or a frame, and never shown.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use shared::ItemId;
use tungstenite::Utf8Bytes;

/// What is wrong with a client's input: each variant is one stable `code` of
/// [`ApiError::InvalidInput`], so the code a client branches on is chosen by type, never by
/// spelling it at the call site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputError {
    /// `invalid_json`: a message that is not JSON.
    InvalidJson,
    /// `invalid_message`: not an object with a string `type`, a subscribe or unsubscribe
    /// without a string `item_id`, or a binary frame.
    InvalidMessage,
    /// `unknown_type`: a `type` the server does not know.
    UnknownType,
    /// `invalid_item_id`: an item id outside the id rules (in a message or in the URL).
    InvalidItemId,
    /// `websocket_upgrade_required`: a plain HTTP request to a WebSocket endpoint.
    UpgradeRequired,
    /// `unsupported_websocket_version`: a handshake for another version than 13.
    UnsupportedVersion,
    /// `invalid_websocket_key`: a handshake without a `Sec-WebSocket-Key`.
    MissingKey,
}

impl InputError {
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidMessage => "invalid_message",
            Self::UnknownType => "unknown_type",
            Self::InvalidItemId => "invalid_item_id",
            Self::UpgradeRequired => "websocket_upgrade_required",
            Self::UnsupportedVersion => "unsupported_websocket_version",
            Self::MissingKey => "invalid_websocket_key",
        }
    }
}

/// Every error a client can see; the variant decides the HTTP status and the `code`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the client's request or message is malformed or breaks a rule; `kind` says which.
    #[error("{message}")]
    InvalidInput { kind: InputError, message: String },
    /// 404 `not_found`: no route for this method and path.
    #[error("no such endpoint")]
    NotFound,
    /// 404 `item_not_found`.
    #[error("item {0} does not exist")]
    ItemNotFound(ItemId),
    /// 429 `too_many_subscriptions`: the connection already watches as many items as it may.
    #[error("a connection may watch at most {max} items; unsubscribe from one first")]
    TooManySubscriptions { max: usize },
    /// 429 `rate_limited`: the connection sends more messages than it may; the message was
    /// dropped, and a connection that keeps on is closed with 1008.
    #[error("at most {per_second} messages a second; this one was dropped")]
    RateLimited { per_second: u32 },
    /// 400 `not_subscribed`: an unsubscribe for an item the connection does not watch.
    #[error("not subscribed to item {0}")]
    NotSubscribed(ItemId),
    /// 401 `invalid_token`: the access token a socket presented is malformed, forged, expired
    /// or not for us (the reason is logged, never shown). The socket stays open and public.
    #[error("the access token is not valid; refresh it or sign in again, then send the new one")]
    InvalidToken,
    /// 503 `unavailable`: the token signer's key set could not be fetched, so a token could
    /// not be checked either way; the client may send it again later.
    #[error("the token issuer's key set is unavailable; send the token again later")]
    KeysUnavailable,
    /// 503 `unavailable`: a dependency is unreachable or too slow; the server retries by
    /// itself.
    #[error("{0} is unavailable, retrying")]
    Unavailable(&'static str),
    /// 500 `internal`: the cause is logged, never shown.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn invalid(kind: InputError, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            kind,
            message: message.into(),
        }
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidInput { .. } | Self::NotSubscribed(_) => StatusCode::BAD_REQUEST,
            Self::NotFound | Self::ItemNotFound(_) => StatusCode::NOT_FOUND,
            Self::TooManySubscriptions { .. } | Self::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::KeysUnavailable | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput { kind, .. } => kind.code(),
            Self::NotFound => "not_found",
            Self::ItemNotFound(_) => "item_not_found",
            Self::TooManySubscriptions { .. } => "too_many_subscriptions",
            Self::RateLimited { .. } => "rate_limited",
            Self::NotSubscribed(_) => "not_subscribed",
            Self::InvalidToken => "invalid_token",
            Self::KeysUnavailable | Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    fn log(&self) {
        match self {
            Self::Internal(e) => tracing::error!(error = %e, error.chain = ?e, "request failed"),
            Self::Unavailable(what) => tracing::warn!(dependency = what, "dependency unavailable"),
            _ => {}
        }
    }

    /// The WebSocket error frame, naming the item it concerns when there is one.
    pub fn to_frame(&self, item: Option<&ItemId>) -> Utf8Bytes {
        #[derive(Serialize)]
        struct ErrorFrame<'a> {
            r#type: &'static str,
            code: &'static str,
            message: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            item_id: Option<&'a ItemId>,
        }
        // Per-viewer frames are not where a dependency outage is logged (the room logs it once).
        if let Self::Internal(e) = self {
            tracing::error!(error = %e, error.chain = ?e, "viewer sent an internal error");
        }
        let frame = ErrorFrame {
            r#type: "error",
            code: self.code(),
            message: self.to_string(),
            item_id: item,
        };
        // A struct of strings always serializes.
        Utf8Bytes::from(serde_json::to_string(&frame).unwrap_or_default())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        shared::error_body::response(self.status_code(), self.code(), &self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_frame_carries_type_code_message_and_item() {
        let item = ItemId::parse("lot-1").unwrap();
        let frame = ApiError::ItemNotFound(item.clone()).to_frame(Some(&item));
        let json: serde_json::Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(json["type"], "error");
        assert_eq!(json["code"], "item_not_found");
        assert_eq!(json["item_id"], "lot-1");
        assert_eq!(json["message"], "item lot-1 does not exist");
    }

    #[test]
    fn each_variant_answers_its_own_status_and_code() {
        let item = ItemId::parse("lot-1").unwrap();
        let cases = [
            (
                ApiError::invalid(InputError::InvalidJson, "x"),
                400,
                "invalid_json",
            ),
            (
                ApiError::invalid(InputError::UpgradeRequired, "x"),
                400,
                "websocket_upgrade_required",
            ),
            (ApiError::NotFound, 404, "not_found"),
            (ApiError::ItemNotFound(item.clone()), 404, "item_not_found"),
            (ApiError::NotSubscribed(item), 400, "not_subscribed"),
            (
                ApiError::TooManySubscriptions { max: 1 },
                429,
                "too_many_subscriptions",
            ),
            (ApiError::InvalidToken, 401, "invalid_token"),
            (ApiError::KeysUnavailable, 503, "unavailable"),
            (ApiError::Unavailable("redis"), 503, "unavailable"),
            (ApiError::Internal(anyhow::anyhow!("x")), 500, "internal"),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status_code().as_u16(), status, "{error:?}");
            assert_eq!(error.code(), code, "{error:?}");
        }
    }

    #[tokio::test]
    async fn an_unknown_route_is_a_404_with_the_error_body() {
        let response = ApiError::NotFound.into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json,
            json!({"error": "not_found", "message": "no such endpoint"})
        );
    }

    #[test]
    fn internal_errors_never_show_their_cause() {
        let frame = ApiError::Internal(anyhow::anyhow!("secret detail")).to_frame(None);
        assert!(!frame.contains("secret"));
        assert!(!frame.contains("item_id"));
    }
}
