//! `GET /api/v1/me`: the caller's own account, for a valid bearer access token.
//!
//! With our own accounts it is the stored account (never its password hash); with an external
//! issuer, which keeps the accounts, it is what the token says: the user id and the roles.

use super::AppState;
use super::auth::sessions;
use super::error_schema as refused;
use super::identity::Identity;
use crate::auth::{Account, Role};
use crate::error::ApiError;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use shared::UserId;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/me", get(me))
}

/// The caller as an external issuer's token describes it.
#[derive(Debug, Serialize)]
struct TokenSubject {
    id: UserId,
    roles: Vec<Role>,
}

/// 200 with the account; 401 without a valid token; 404 `account_not_found` when the account
/// was deleted since the token was issued.
#[tracing::instrument(skip_all, fields(user_id = %caller.user_id))]
#[utoipa::path(
    get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "the caller's account", body = serde_json::Value), refused::Unauthenticated, refused::NotFound, refused::Throttled, refused::Unavailable)
)]
async fn me(State(ctx): State<AppState>, caller: Identity) -> Result<Response, ApiError> {
    if ctx.identity.local().is_none() {
        return Ok(Json(TokenSubject {
            id: caller.user_id,
            roles: caller.roles,
        })
        .into_response());
    }
    let account: Account = sessions(&ctx)?.me(&caller.user_id).await?;
    Ok(Json(account).into_response())
}
