//! `PUT /api/v1/admin/users/{id}/suspension`: an admin suspends an account from bidding, from
//! selling, or both, or lifts it (`{"bidding": bool, "selling": bool, "reason"?}`, the state
//! the account should have; the same request twice changes nothing more).
//!
//! The change is stored in the accounts schema, applied to this gateway's in-memory set at
//! once, and announced on NATS so every other gateway re-reads the suspensions now rather than
//! at its next poll (see `crate::suspensions` for the propagation bound). Bids and item
//! creations of a suspended account are then 403 `account_suspended`; signing in still works,
//! so the account can read its own history.

use super::AppState;
use super::auth::sessions;
use super::error_schema as refused;
use super::identity::Admin;
use super::json_body::JsonBody;
use crate::auth::Account;
use crate::auth::accounts::Suspension;
use crate::error::{ApiError, ErrorCode};
use axum::extract::{Path, State};
use axum::routing::put;
use axum::{Json, Router};
use serde::Deserialize;
use shared::UserId;
use shared::subjects::Subjects;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/admin/users/{id}/suspension", put(set_suspension))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SuspensionRequest {
    bidding: bool,
    selling: bool,
    /// Why (1 to 500 characters), shown to the account and to admins.
    reason: Option<String>,
}

/// 200 with the account as it is now; 404 `account_not_found`; 401/403 for a caller who is not
/// an admin.
#[tracing::instrument(skip_all, fields(user_id = %raw, admin = %admin.0.user_id))]
#[utoipa::path(
    put, path = "/api/v1/admin/users/{id}/suspension", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "user id")),
    request_body = SuspensionRequest,
    responses((status = 200, description = "the account as it is now", body = serde_json::Value), refused::BadInput, refused::Unauthenticated, refused::Forbidden, refused::NotFound, refused::BodyTimedOut, refused::TooLarge, refused::Throttled, refused::Unavailable)
)]
async fn set_suspension(
    State(ctx): State<AppState>,
    admin: Admin,
    Path(raw): Path<String>,
    JsonBody(request): JsonBody<SuspensionRequest>,
) -> Result<Json<Account>, ApiError> {
    let user = UserId::parse(raw)
        .map_err(|e| ApiError::new(ErrorCode::InvalidUserId, format!("user id {e}")))?;
    let reason = request.reason.as_deref().map(str::trim);
    if reason.is_some_and(|r| r.is_empty() || r.chars().count() > 500) {
        return Err(ApiError::new(
            ErrorCode::InvalidReason,
            "reason must have 1 to 500 characters",
        ));
    }
    let suspension = Suspension {
        bidding: request.bidding,
        selling: request.selling,
    };
    let account = sessions(&ctx)?
        .accounts()
        .set_suspension(&user, suspension, reason)
        .await?;
    ctx.suspensions.apply([(user.clone(), suspension)]);
    tracing::info!(
        bidding = suspension.bidding,
        selling = suspension.selling,
        "suspension set"
    );
    // Best effort: a gateway that misses it reads the change at its next poll.
    let subject = Subjects::new(ctx.config.common.subject_prefix.clone()).suspensions();
    if let Err(e) = ctx.nats.publish(subject, bytes::Bytes::new()).await {
        tracing::warn!(error = %e, "suspension not announced; other gateways learn it by polling");
    }
    Ok(Json(account))
}
