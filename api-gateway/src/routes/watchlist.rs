//! `GET /api/v1/me/watchlist`, `PUT` and `DELETE /api/v1/me/watchlist/{item_id}`: the items the
//! caller watches (their bidders and watchers get `ending_soon`). Token required; a user only
//! ever sees and changes their own list.

use super::error_schema as refused;
use super::identity::Identity;
use super::{AppState, item_id};
use crate::error::ApiError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{Value, json};
use shared::Timestamp;
use shared::item_state::ItemView;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me/watchlist", get(list))
        .route("/api/v1/me/watchlist/{item_id}", put(watch).delete(unwatch))
}

/// Most items a watchlist shows (the most recently added): each is one Redis read.
const SHOWN: i64 = 200;

#[tracing::instrument(skip_all, fields(user_id = %caller.user_id))]
#[utoipa::path(
    get, path = "/api/v1/me/watchlist", tag = "me", security(("bearer" = [])),
    responses((status = 200, description = "the watched items (item views, most recently watched first, at most 200)", body = serde_json::Value), refused::Unauthenticated, refused::Throttled, refused::Unavailable)
)]
async fn list(State(ctx): State<AppState>, caller: Identity) -> Result<Json<Value>, ApiError> {
    let ids = ctx.read_model.watched(&caller.user_id, SHOWN).await?;
    let states = futures::future::try_join_all(ids.iter().map(|id| ctx.store.get_item(id))).await?;
    let now = Timestamp::now();
    // An item deleted from Redis since it was watched is not shown.
    let items: Vec<ItemView> = states.into_iter().flatten().map(|s| s.view(now)).collect();
    Ok(Json(json!({ "items": items })))
}

#[tracing::instrument(skip_all, fields(user_id = %caller.user_id, item_id = %raw))]
#[utoipa::path(
    put, path = "/api/v1/me/watchlist/{item_id}", tag = "me", security(("bearer" = [])),
    params(("item_id" = String, Path, description = "item id")),
    responses((status = 204, description = "watched (again: no change)"), refused::BadInput, refused::Unauthenticated, refused::NotFound, refused::Throttled, refused::Unavailable)
)]
async fn watch(
    State(ctx): State<AppState>,
    caller: Identity,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = item_id(raw)?;
    if ctx.store.get_item(&id).await?.is_none() {
        return Err(ApiError::ItemNotFound(id.to_string()));
    }
    ctx.read_model.watch(&caller.user_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[tracing::instrument(skip_all, fields(user_id = %caller.user_id, item_id = %raw))]
#[utoipa::path(
    delete, path = "/api/v1/me/watchlist/{item_id}", tag = "me", security(("bearer" = [])),
    params(("item_id" = String, Path, description = "item id")),
    responses((status = 204, description = "not watched (any more)"), refused::BadInput, refused::Unauthenticated, refused::Throttled, refused::Unavailable)
)]
async fn unwatch(
    State(ctx): State<AppState>,
    caller: Identity,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = item_id(raw)?;
    ctx.read_model.unwatch(&caller.user_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
