//! One error type for the whole API, mapped to a status code and a JSON body
//! `{"error": code, "message": text}` with a stable snake_case `code`.
//!
//! Internal causes are logged once, here, and never shown to the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or breaks a rule; `code` says which.
    #[error("{message}")]
    InvalidInput { code: &'static str, message: String },
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("item {0} does not exist")]
    ItemNotFound(String),
    /// The auction does not take bids now (`auction_not_started`, `auction_closed`, …).
    #[error("{message}")]
    AuctionNotActive { code: &'static str, message: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Admin endpoints: no or wrong credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The client sends too fast; it may retry after the given time.
    #[error("too many bids, retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// A dependency is unreachable or too slow; the client may retry.
    #[error("{0} is unavailable, try again")]
    Unavailable(&'static str),
    /// A write was sent but its dependency did not answer in time: it may still be applied.
    /// A 503 like [`ApiError::Unavailable`], with its own code so a client knows to retry
    /// with the same `Idempotency-Key` (which returns the first outcome) rather than assume
    /// nothing happened.
    #[error(
        "{0} did not answer in time; the bid may still have been applied: retry with the same Idempotency-Key to learn its outcome"
    )]
    OutcomeUnknown(&'static str),
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
            Self::InvalidInput { .. } => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::ItemNotFound(_) => StatusCode::NOT_FOUND,
            Self::AuctionNotActive { .. } | Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Unavailable(_) | Self::OutcomeUnknown(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput { code, .. }
            | Self::AuctionNotActive { code, .. }
            | Self::Conflict { code, .. } => code,
            Self::PayloadTooLarge => "payload_too_large",
            Self::ItemNotFound(_) => "item_not_found",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unauthorized(_) => "unauthorized",
            Self::Unavailable(_) => "unavailable",
            Self::OutcomeUnknown(_) => "outcome_unknown",
            Self::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(e) => {
                tracing::error!(error = %e, error.chain = ?e, "request failed");
            }
            Self::Unavailable(what) | Self::OutcomeUnknown(what) => {
                tracing::warn!(
                    dependency = what,
                    code = self.code(),
                    "dependency unavailable"
                );
            }
            _ => {}
        }
        let body = json!({ "error": self.code(), "message": self.to_string() });
        let mut response = (self.status_code(), axum::Json(body)).into_response();
        let retry_after = match self {
            Self::Unavailable(_) | Self::OutcomeUnknown(_) => Some(1),
            Self::RateLimited { retry_after_secs } => Some(retry_after_secs),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from(secs));
        }
        response
    }
}
