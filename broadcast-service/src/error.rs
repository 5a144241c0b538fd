//! One error type for the whole service. Over HTTP it becomes a status code and the body
//! `{"error": code, "message": text}`; on a WebSocket it becomes the frame
//! `{"type":"error","code","message","item_id"?}`. Either way `code` is a stable snake_case
//! string a client can branch on.
//!
//! Internal causes are logged once, where they become a response or a frame, and never shown.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use shared::ItemId;
use tungstenite::Utf8Bytes;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The client's request or message is malformed or breaks a rule; `code` says which
    /// (`invalid_json`, `invalid_message`, `unknown_type`, `invalid_item_id`, `not_found`, …).
    #[error("{message}")]
    InvalidInput { code: &'static str, message: String },
    #[error("item {0} does not exist")]
    ItemNotFound(ItemId),
    /// The connection already watches as many items as it may.
    #[error("a connection may watch at most {max} items; unsubscribe from one first")]
    TooManySubscriptions { max: usize },
    /// An unsubscribe for an item the connection does not watch.
    #[error("not subscribed to item {0}")]
    NotSubscribed(ItemId),
    /// A dependency is unreachable or too slow; the server retries by itself.
    #[error("{0} is unavailable, retrying")]
    Unavailable(&'static str),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            code,
            message: message.into(),
        }
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidInput {
                code: "not_found", ..
            }
            | Self::ItemNotFound(_) => StatusCode::NOT_FOUND,
            Self::InvalidInput { .. } | Self::NotSubscribed(_) => StatusCode::BAD_REQUEST,
            Self::TooManySubscriptions { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput { code, .. } => code,
            Self::ItemNotFound(_) => "item_not_found",
            Self::TooManySubscriptions { .. } => "too_many_subscriptions",
            Self::NotSubscribed(_) => "not_subscribed",
            Self::Unavailable(_) => "unavailable",
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
        let body = json!({ "error": self.code(), "message": self.to_string() });
        (self.status_code(), axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn internal_errors_never_show_their_cause() {
        let frame = ApiError::Internal(anyhow::anyhow!("secret detail")).to_frame(None);
        assert!(!frame.contains("secret"));
        assert!(!frame.contains("item_id"));
    }
}
