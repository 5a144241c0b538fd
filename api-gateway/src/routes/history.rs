//! History and statistics from the PostgreSQL read model: `GET /api/v1/items/{id}/bids`,
//! `GET /api/v1/users/{id}/bids`, `GET /api/v1/users/{id}/stats`.
//!
//! The archive lags the live state by the relay and the worker (well under a second normally);
//! current prices come from `GET /api/v1/items/{id}`, which reads Redis.
//!
//! Privacy: a bidder's own history and totals are for that bidder and admins only (401 without
//! a token, 403 `forbidden` for another account). An item's history is public, but names each
//! bidder by a pseudonym (`bidder`, stable per item and bidder, see
//! `crate::bidder_pseudonyms`); `user_id` is filled in only for an admin and on the caller's
//! own rows, and is `null` otherwise.

use super::error_schema as refused;
use super::identity::Identity;
use super::{AppState, item_id};
use crate::error::{ApiError, ErrorCode};
use crate::read_model::{ArchivedBid, ReadError, UserCursor};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::{ItemId, UserId};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/items/{id}/bids", get(item_bids))
        .route("/api/v1/users/{id}/bids", get(user_bids))
        .route("/api/v1/users/{id}/stats", get(user_stats))
}

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Unavailable(_) => ApiError::Unavailable("history"),
            ReadError::Other(e) => ApiError::Internal(e),
        }
    }
}

/// A page size: 1 to 500, default 50 (every paged read of the read model).
pub(super) fn limit(requested: Option<i64>) -> Result<i64, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::new(
            ErrorCode::InvalidLimit,
            format!("limit must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

fn user_id(raw: String) -> Result<UserId, ApiError> {
    UserId::parse(raw).map_err(|e| ApiError::new(ErrorCode::InvalidUserId, format!("user id {e}")))
}

pub(super) type QueryResult<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

/// The query string, or 400 `invalid_query` naming what is wrong with it.
pub(super) fn query<T>(query: QueryResult<T>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemBidsQuery {
    limit: Option<i64>,
    before_seq: Option<i64>,
}

#[tracing::instrument(skip_all, fields(item_id = %raw))]
#[utoipa::path(
    get, path = "/api/v1/items/{id}/bids", tag = "history",
    params(
        ("id" = String, Path, description = "item id"),
        ("limit" = Option<i64>, Query, description = "1 to 500 (default 50)"),
        ("before_seq" = Option<i64>, Query, description = "page before this sequence number"),
    ),
    responses((status = 200, description = "the item's bids, newest first: `{item_id, bids, next_before_seq}`, each of `bids` an `ArchivedBid` with its bidder's pseudonym `bidder`", body = serde_json::Value), refused::BadInput, refused::NotFound, refused::Throttled, refused::Unavailable)
)]
async fn item_bids(
    State(ctx): State<AppState>,
    caller: Option<Identity>,
    Path(raw): Path<String>,
    params: QueryResult<ItemBidsQuery>,
) -> Result<Json<Value>, ApiError> {
    let id = item_id(raw)?;
    let params = query(params)?;
    let limit = limit(params.limit)?;
    if params.before_seq.is_some_and(|s| s < 1) {
        return Err(ApiError::new(
            ErrorCode::InvalidCursor,
            "before_seq must be positive",
        ));
    }
    let bids = ctx
        .read_model
        .item_bids(&id, limit, params.before_seq)
        .await?;
    let next = (bids.len() as i64 == limit)
        .then(|| bids.last().map(|b| b.seq))
        .flatten();
    let rows = bids
        .iter()
        .map(|bid| public_row(&ctx, &id, caller.as_ref(), bid))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(
        json!({ "item_id": id, "bids": rows, "next_before_seq": next }),
    ))
}

/// One row of an item's public history: the archived bid with its bidder's pseudonym, and its
/// `user_id` only when `caller` may see it (an admin, or the bidder).
fn public_row(
    ctx: &AppState,
    item: &ItemId,
    caller: Option<&Identity>,
    bid: &ArchivedBid,
) -> Result<Value, ApiError> {
    let mut row = serde_json::to_value(bid).map_err(|e| ApiError::Internal(e.into()))?;
    let shown = caller.is_some_and(|c| c.is_admin() || c.user_id.as_str() == bid.user_id.as_str());
    if let Some(fields) = row.as_object_mut() {
        fields.insert(
            "bidder".into(),
            ctx.identity.pseudonyms().of(item, &bid.user_id).into(),
        );
        if !shown {
            fields.insert("user_id".into(), Value::Null);
        }
    }
    Ok(row)
}

/// The caller, when they may see `user`'s history: that user or an admin.
///
/// # Errors
/// 403 `forbidden` for anyone else.
fn may_see(caller: &Identity, user: &UserId) -> Result<(), ApiError> {
    if caller.may_see(user) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Forbidden,
            "a bidder's history and statistics are visible only to that bidder and admins",
        ))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBidsQuery {
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    before: Option<String>,
}

#[tracing::instrument(skip_all, fields(user_id = %raw))]
#[utoipa::path(
    get, path = "/api/v1/users/{id}/bids", tag = "history", security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "user id (the caller's own, or any for an admin)"),
        ("limit" = Option<i64>, Query, description = "1 to 500 (default 50)"),
        ("before" = Option<String>, Query, description = "the cursor of the previous page"),
    ),
    responses((status = 200, description = "the user's bids, newest first: `{user_id, bids, next_cursor}`, each of `bids` an `ArchivedBid`", body = serde_json::Value), refused::BadInput, refused::Unauthenticated, refused::Forbidden, refused::Throttled, refused::Unavailable)
)]
async fn user_bids(
    State(ctx): State<AppState>,
    caller: Identity,
    Path(raw): Path<String>,
    params: QueryResult<UserBidsQuery>,
) -> Result<Json<Value>, ApiError> {
    let user = user_id(raw)?;
    may_see(&caller, &user)?;
    let params = query(params)?;
    let limit = limit(params.limit)?;
    let before = match params.before.as_deref() {
        None => None,
        Some(text) => Some(UserCursor::parse(text).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidCursor,
                "before must be a next_cursor from a previous page",
            )
        })?),
    };
    let bids = ctx.read_model.user_bids(&user, limit, before).await?;
    let next = (bids.len() as i64 == limit)
        .then(|| bids.last().map(|b| UserCursor::of(b).encode()))
        .flatten();
    Ok(Json(
        json!({ "user_id": user, "bids": bids, "next_cursor": next }),
    ))
}

#[tracing::instrument(skip_all, fields(user_id = %raw))]
#[utoipa::path(
    get, path = "/api/v1/users/{id}/stats", tag = "history", security(("bearer" = [])),
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, description = "the user's bid statistics", body = serde_json::Value), refused::BadInput, refused::Unauthenticated, refused::Forbidden, refused::NotFound, refused::Throttled, refused::Unavailable)
)]
async fn user_stats(
    State(ctx): State<AppState>,
    caller: Identity,
    Path(raw): Path<String>,
) -> Result<Json<crate::read_model::UserStats>, ApiError> {
    let user = user_id(raw)?;
    may_see(&caller, &user)?;
    Ok(Json(ctx.read_model.user_stats(&user).await?))
}
