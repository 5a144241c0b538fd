//! One error type for the whole API, mapped to a status code and a JSON body
//! `{"error": code, "message": text}` with a stable snake_case `code`.
//!
//! The status follows from the [`ErrorCode`] alone, so a route names what went wrong and can
//! never pair a code with the wrong status. Internal causes are logged once, here, and never
//! shown to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Serialize, Serializer};

/// The `error` field of every error body. Clients match on these strings: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    // 400: the request breaks a rule; the message says which field and how.
    /// The body is JSON but not of the expected shape (a wrong type, a rule of a field).
    InvalidInput,
    /// The body is not JSON.
    InvalidJson,
    /// The body could not be read.
    InvalidBody,
    InvalidItemId,
    InvalidUserId,
    InvalidIdempotencyKey,
    InvalidName,
    InvalidDescription,
    InvalidEndTime,
    InvalidExtension,
    InvalidQuery,
    InvalidStatus,
    InvalidLimit,
    InvalidCursor,
    InvalidReason,
    /// A bid's `max_amount` below its `amount`.
    InvalidMaxAmount,
    /// An item's `increments` table breaks a rule (rows ascending from 0, positive steps).
    InvalidIncrements,
    /// An item's `buy_now_price` below its starting price or reserve.
    InvalidBuyNowPrice,
    /// The login is neither an email nor a username by the rules (or not the kind the field
    /// names).
    InvalidLogin,
    InvalidDisplayName,
    /// A new password breaks a rule; the message says which.
    WeakPassword,
    /// 401: no bearer token where one is needed.
    Unauthorized,
    /// 401: the login or the password is wrong (one code for both: it never says which).
    InvalidCredentials,
    /// 401: the access token is forged, expired or not for us; answered with
    /// `WWW-Authenticate: Bearer error="invalid_token"`.
    InvalidToken,
    /// 401: the refresh token is unknown, expired or signed out; sign in again.
    InvalidRefreshToken,
    /// 401: a refresh token came back after it was exchanged; its whole sign-in is revoked.
    RefreshTokenReused,
    /// 403: the account may not do this (another user's history, an admin action without the
    /// role, someone else's auction).
    Forbidden,
    /// 403: a bid's body names another `user_id` than the access token's account.
    UserIdMismatch,
    /// 403: the seller of an auction bid on it.
    SellerCannotBid,
    /// 403: an admin suspended the account from this (bidding or selling).
    AccountSuspended,
    /// 404: no such endpoint (answered by `shared::error_body`'s fallback, as in every
    /// service; 405 `method_not_allowed` likewise).
    NotFound,
    /// 404: no such item.
    ItemNotFound,
    /// 404: no such account.
    AccountNotFound,
    // 409: the request is fine but the auction's state refuses it.
    ItemExists,
    /// Another account already signs in with this email or username.
    LoginTaken,
    IdempotencyKeyReused,
    /// The current round still runs (relisting).
    AuctionActive,
    /// Closed or cancelled already (admin actions).
    AuctionNotActive,
    /// A seller's cancellation after the first bid: only an admin may cancel then.
    AuctionHasBids,
    AuctionNotStarted,
    AuctionClosed,
    AuctionCancelled,
    /// Buy it now is gone (a bid exists) or the item never had it.
    BuyNowUnavailable,
    /// The optimistic strategy does not implement proxy bidding (422).
    ProxyBiddingUnsupported,
    /// 408: the request's body did not arrive within `REQUEST_BODY_TIMEOUT_MS` of its headers
    /// (answered by `shared::http_server`, as in every service; nothing was done).
    RequestTimeout,
    /// 413.
    PayloadTooLarge,
    /// 429: the client may retry after `Retry-After`.
    RateLimited,
    /// 500: a bug; details are in the log only.
    Internal,
    /// 503: a dependency is unreachable or too slow; retry.
    Unavailable,
    /// 503: a write's dependency did not answer; retry with the same `Idempotency-Key`.
    OutcomeUnknown,
}

impl ErrorCode {
    /// Every code, for the OpenAPI document's `ErrorCode` enum: a new code goes here too (the
    /// `openapi` test checks the document lists each wire string of this array once).
    pub const ALL: [ErrorCode; 50] = [
        Self::InvalidInput,
        Self::InvalidJson,
        Self::InvalidBody,
        Self::InvalidItemId,
        Self::InvalidUserId,
        Self::InvalidIdempotencyKey,
        Self::InvalidName,
        Self::InvalidDescription,
        Self::InvalidEndTime,
        Self::InvalidExtension,
        Self::InvalidQuery,
        Self::InvalidStatus,
        Self::InvalidLimit,
        Self::InvalidCursor,
        Self::InvalidReason,
        Self::InvalidMaxAmount,
        Self::InvalidIncrements,
        Self::InvalidBuyNowPrice,
        Self::InvalidLogin,
        Self::InvalidDisplayName,
        Self::WeakPassword,
        Self::Unauthorized,
        Self::InvalidCredentials,
        Self::InvalidToken,
        Self::InvalidRefreshToken,
        Self::RefreshTokenReused,
        Self::Forbidden,
        Self::UserIdMismatch,
        Self::SellerCannotBid,
        Self::AccountSuspended,
        Self::NotFound,
        Self::ItemNotFound,
        Self::AccountNotFound,
        Self::ItemExists,
        Self::LoginTaken,
        Self::IdempotencyKeyReused,
        Self::AuctionActive,
        Self::AuctionNotActive,
        Self::AuctionHasBids,
        Self::AuctionNotStarted,
        Self::AuctionClosed,
        Self::AuctionCancelled,
        Self::BuyNowUnavailable,
        Self::ProxyBiddingUnsupported,
        Self::RequestTimeout,
        Self::PayloadTooLarge,
        Self::RateLimited,
        Self::Internal,
        Self::Unavailable,
        Self::OutcomeUnknown,
    ];

    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid_input",
            Self::InvalidJson => "invalid_json",
            Self::InvalidBody => "invalid_body",
            Self::InvalidItemId => "invalid_item_id",
            Self::InvalidUserId => "invalid_user_id",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::InvalidName => "invalid_name",
            Self::InvalidDescription => "invalid_description",
            Self::InvalidEndTime => "invalid_end_time",
            Self::InvalidExtension => "invalid_extension",
            Self::InvalidQuery => "invalid_query",
            Self::InvalidStatus => "invalid_status",
            Self::InvalidLimit => "invalid_limit",
            Self::InvalidCursor => "invalid_cursor",
            Self::InvalidReason => "invalid_reason",
            Self::InvalidMaxAmount => "invalid_max_amount",
            Self::InvalidIncrements => "invalid_increments",
            Self::InvalidBuyNowPrice => "invalid_buy_now_price",
            Self::InvalidLogin => "invalid_login",
            Self::InvalidDisplayName => "invalid_display_name",
            Self::WeakPassword => "weak_password",
            Self::Unauthorized => "unauthorized",
            Self::InvalidCredentials => "invalid_credentials",
            Self::InvalidToken => "invalid_token",
            Self::InvalidRefreshToken => "invalid_refresh_token",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::Forbidden => "forbidden",
            Self::UserIdMismatch => "user_id_mismatch",
            Self::SellerCannotBid => "seller_cannot_bid",
            Self::AccountSuspended => "account_suspended",
            Self::NotFound => "not_found",
            Self::ItemNotFound => "item_not_found",
            Self::AccountNotFound => "account_not_found",
            Self::ItemExists => "item_exists",
            Self::LoginTaken => "login_taken",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::AuctionActive => "auction_active",
            Self::AuctionNotActive => "auction_not_active",
            Self::AuctionHasBids => "auction_has_bids",
            Self::AuctionNotStarted => "auction_not_started",
            Self::AuctionClosed => "auction_closed",
            Self::AuctionCancelled => "auction_cancelled",
            Self::BuyNowUnavailable => "buy_now_unavailable",
            Self::ProxyBiddingUnsupported => "proxy_bidding_unsupported",
            Self::RequestTimeout => shared::http_server::REQUEST_TIMEOUT_CODE,
            Self::PayloadTooLarge => "payload_too_large",
            Self::RateLimited => "rate_limited",
            Self::Internal => "internal",
            Self::Unavailable => "unavailable",
            Self::OutcomeUnknown => "outcome_unknown",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidInput
            | Self::InvalidJson
            | Self::InvalidBody
            | Self::InvalidItemId
            | Self::InvalidUserId
            | Self::InvalidIdempotencyKey
            | Self::InvalidName
            | Self::InvalidDescription
            | Self::InvalidEndTime
            | Self::InvalidExtension
            | Self::InvalidQuery
            | Self::InvalidStatus
            | Self::InvalidLimit
            | Self::InvalidCursor
            | Self::InvalidReason
            | Self::InvalidMaxAmount
            | Self::InvalidIncrements
            | Self::InvalidBuyNowPrice
            | Self::InvalidLogin
            | Self::InvalidDisplayName
            | Self::WeakPassword => StatusCode::BAD_REQUEST,
            Self::Unauthorized
            | Self::InvalidCredentials
            | Self::InvalidToken
            | Self::InvalidRefreshToken
            | Self::RefreshTokenReused => StatusCode::UNAUTHORIZED,
            Self::Forbidden
            | Self::UserIdMismatch
            | Self::SellerCannotBid
            | Self::AccountSuspended => StatusCode::FORBIDDEN,
            Self::NotFound | Self::ItemNotFound | Self::AccountNotFound => StatusCode::NOT_FOUND,
            Self::ItemExists
            | Self::LoginTaken
            | Self::IdempotencyKeyReused
            | Self::AuctionActive
            | Self::AuctionNotActive
            | Self::AuctionHasBids
            | Self::AuctionNotStarted
            | Self::AuctionClosed
            | Self::AuctionCancelled
            | Self::BuyNowUnavailable => StatusCode::CONFLICT,
            Self::ProxyBiddingUnsupported => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable | Self::OutcomeUnknown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The client must change the request, or accept the state it found: a 4xx, as `code`
    /// says.
    #[error("{message}")]
    Rejected { code: ErrorCode, message: String },
    /// 413.
    #[error("request body is too large")]
    PayloadTooLarge,
    /// 404.
    #[error("item {0} does not exist")]
    ItemNotFound(String),
    /// 401: no bearer token where one is needed.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 429: the client sends too fast (bids, requests from its address, sign-in attempts); it
    /// may retry after the given time.
    #[error("too many requests, retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// 503: a dependency is unreachable or too slow; the client may retry.
    #[error("{0} is unavailable, try again")]
    Unavailable(&'static str),
    /// 503: a write was sent but its dependency did not answer in time: it may still be
    /// applied. Its own code tells a client to retry with the same `Idempotency-Key` (which
    /// returns the first outcome) rather than assume nothing happened.
    #[error(
        "{0} did not answer in time; the bid may still have been applied: retry with the same Idempotency-Key to learn its outcome"
    )]
    OutcomeUnknown(&'static str),
    /// 500, with a generic message.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A refusal with `code` and a message telling the client what to change.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Rejected {
            code,
            message: message.into(),
        }
    }

    /// 429 for a client that must wait `wait` (`Retry-After` in whole seconds, rounded up,
    /// at least 1).
    pub fn rate_limited(wait: std::time::Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self::RateLimited {
            retry_after_secs: secs.max(1),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Rejected { code, .. } => *code,
            Self::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            Self::ItemNotFound(_) => ErrorCode::ItemNotFound,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::OutcomeUnknown(_) => ErrorCode::OutcomeUnknown,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn status_code(&self) -> StatusCode {
        self.code().status()
    }
}

/// The `WWW-Authenticate` challenge a 401 must carry (RFC 7235 §3.1): the scheme, and for a
/// token that was presented but refused, RFC 6750's `invalid_token`, which tells a client to
/// refresh or sign in again rather than retry.
fn challenge(code: ErrorCode) -> Option<&'static str> {
    match code {
        ErrorCode::InvalidToken => Some(r#"Bearer error="invalid_token""#),
        _ if code.status() == StatusCode::UNAUTHORIZED => Some("Bearer"),
        _ => None,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        match &self {
            Self::Internal(e) => {
                tracing::error!(error = %e, error.chain = ?e, "request failed");
            }
            Self::Unavailable(what) | Self::OutcomeUnknown(what) => {
                tracing::warn!(
                    dependency = what,
                    code = code.as_str(),
                    "dependency unavailable"
                );
            }
            _ => {}
        }
        let mut response =
            shared::error_body::response(code.status(), code.as_str(), &self.to_string());
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
        if let Some(challenge) = challenge(code) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_its_variant_in_snake_case() {
        let codes = [
            ErrorCode::InvalidInput,
            ErrorCode::InvalidJson,
            ErrorCode::InvalidBody,
            ErrorCode::InvalidItemId,
            ErrorCode::InvalidUserId,
            ErrorCode::InvalidIdempotencyKey,
            ErrorCode::InvalidName,
            ErrorCode::InvalidDescription,
            ErrorCode::InvalidEndTime,
            ErrorCode::InvalidExtension,
            ErrorCode::InvalidQuery,
            ErrorCode::InvalidStatus,
            ErrorCode::InvalidLimit,
            ErrorCode::InvalidCursor,
            ErrorCode::InvalidReason,
            ErrorCode::InvalidLogin,
            ErrorCode::InvalidDisplayName,
            ErrorCode::WeakPassword,
            ErrorCode::Unauthorized,
            ErrorCode::InvalidCredentials,
            ErrorCode::InvalidToken,
            ErrorCode::InvalidRefreshToken,
            ErrorCode::RefreshTokenReused,
            ErrorCode::Forbidden,
            ErrorCode::UserIdMismatch,
            ErrorCode::SellerCannotBid,
            ErrorCode::AccountSuspended,
            ErrorCode::NotFound,
            ErrorCode::ItemNotFound,
            ErrorCode::AccountNotFound,
            ErrorCode::ItemExists,
            ErrorCode::LoginTaken,
            ErrorCode::IdempotencyKeyReused,
            ErrorCode::AuctionActive,
            ErrorCode::AuctionNotActive,
            ErrorCode::AuctionHasBids,
            ErrorCode::AuctionNotStarted,
            ErrorCode::AuctionClosed,
            ErrorCode::AuctionCancelled,
            ErrorCode::RequestTimeout,
            ErrorCode::PayloadTooLarge,
            ErrorCode::RateLimited,
            ErrorCode::Internal,
            ErrorCode::Unavailable,
            ErrorCode::OutcomeUnknown,
        ];
        for code in codes {
            let snake: String = format!("{code:?}")
                .chars()
                .enumerate()
                .flat_map(|(i, c)| {
                    let sep = (i > 0 && c.is_ascii_uppercase()).then_some('_');
                    sep.into_iter()
                        .chain(std::iter::once(c.to_ascii_lowercase()))
                })
                .collect();
            assert_eq!(code.as_str(), snake);
            assert_eq!(serde_json::to_value(code).unwrap(), snake);
        }
    }

    #[test]
    fn the_status_follows_from_the_code() {
        let status = |e: ApiError| e.status_code().as_u16();
        assert_eq!(status(ApiError::new(ErrorCode::InvalidName, "x")), 400);
        assert_eq!(status(ApiError::new(ErrorCode::NotFound, "x")), 404);
        assert_eq!(status(ApiError::new(ErrorCode::ItemExists, "x")), 409);
        assert_eq!(status(ApiError::new(ErrorCode::AuctionClosed, "x")), 409);
        assert_eq!(status(ApiError::ItemNotFound("i".into())), 404);
        assert_eq!(status(ApiError::PayloadTooLarge), 413);
        assert_eq!(status(ApiError::new(ErrorCode::RequestTimeout, "x")), 408);
        assert_eq!(status(ApiError::Unauthorized("no")), 401);
        assert_eq!(
            status(ApiError::RateLimited {
                retry_after_secs: 1
            }),
            429
        );
        assert_eq!(status(ApiError::OutcomeUnknown("redis")), 503);
        assert_eq!(status(ApiError::new(ErrorCode::WeakPassword, "x")), 400);
        assert_eq!(status(ApiError::new(ErrorCode::InvalidToken, "x")), 401);
        assert_eq!(status(ApiError::new(ErrorCode::Forbidden, "x")), 403);
        assert_eq!(status(ApiError::new(ErrorCode::UserIdMismatch, "x")), 403);
        assert_eq!(status(ApiError::new(ErrorCode::SellerCannotBid, "x")), 403);
        assert_eq!(status(ApiError::new(ErrorCode::AccountSuspended, "x")), 403);
        assert_eq!(status(ApiError::new(ErrorCode::AuctionHasBids, "x")), 409);
        assert_eq!(status(ApiError::new(ErrorCode::LoginTaken, "x")), 409);
        assert_eq!(status(ApiError::Internal(anyhow::anyhow!("bug"))), 500);
    }

    #[test]
    fn a_wait_becomes_whole_seconds_rounded_up_and_at_least_one() {
        let secs = |ms| match ApiError::rate_limited(std::time::Duration::from_millis(ms)) {
            ApiError::RateLimited { retry_after_secs } => retry_after_secs,
            other => panic!("{other:?}"),
        };
        assert_eq!(secs(0), 1);
        assert_eq!(secs(100), 1);
        assert_eq!(secs(1_000), 1);
        assert_eq!(secs(1_001), 2);
        assert_eq!(secs(900_000), 900);
    }

    #[test]
    fn every_401_carries_a_bearer_challenge_and_a_refused_token_says_invalid_token() {
        let header = |e: ApiError| {
            e.into_response()
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .map(|v| v.to_str().unwrap_or_default().to_owned())
        };
        assert_eq!(
            header(ApiError::new(ErrorCode::InvalidToken, "x")).as_deref(),
            Some(r#"Bearer error="invalid_token""#)
        );
        assert_eq!(
            header(ApiError::Unauthorized("no token")).as_deref(),
            Some("Bearer")
        );
        assert_eq!(header(ApiError::new(ErrorCode::LoginTaken, "x")), None);
    }
}
