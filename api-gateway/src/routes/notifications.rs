//! `GET /api/v1/me/notifications` and `POST /api/v1/me/notifications/read`: the caller's
//! private notifications (`outbid`, `won`, `lost`, `ending_soon`) as the archival worker stored
//! them, the same ones it published to the caller's signed-in sockets. Token required; a user
//! only ever sees and marks their own.

use super::AppState;
use super::error_schema as refused;
use super::history::{QueryResult, limit, query};
use super::identity::Identity;
use super::json_body::JsonBody;
use crate::error::{ApiError, ErrorCode};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me/notifications", get(list))
        .route("/api/v1/me/notifications/read", post(mark_read))
}

/// Most ids one `read` call may name.
const MAX_IDS: usize = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    before: Option<String>,
    /// Only the unread ones.
    #[serde(default)]
    unread: bool,
}

/// The cursor is the last shown notification's id, as text; clients treat it as opaque.
fn cursor(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidCursor,
                "before must be a next_cursor from a previous page",
            )
        })
}

#[tracing::instrument(skip_all, fields(user_id = %caller.user_id))]
#[utoipa::path(
    get, path = "/api/v1/me/notifications", tag = "me", security(("bearer" = [])),
    params(
        ("limit" = Option<i64>, Query, description = "1 to 500 (default 50)"),
        ("before" = Option<String>, Query, description = "the next_cursor of the previous page"),
        ("unread" = Option<bool>, Query, description = "only unread notifications"),
    ),
    responses((status = 200, description = "the caller's notifications, newest first, with next_cursor and unread_count", body = serde_json::Value), refused::BadInput, refused::Unauthenticated, refused::Throttled, refused::Unavailable)
)]
async fn list(
    State(ctx): State<AppState>,
    caller: Identity,
    params: QueryResult<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let params = query(params)?;
    let limit = limit(params.limit)?;
    let before = params.before.as_deref().map(cursor).transpose()?;
    let page = ctx
        .read_model
        .notifications(&caller.user_id, limit, before, params.unread)
        .await?;
    let next = (page.notifications.len() as i64 == limit)
        .then(|| page.notifications.last().map(|n| n.id.to_string()))
        .flatten();
    let rows: Vec<Value> = page.notifications.iter().map(|n| n.to_json()).collect();
    Ok(Json(json!({
        "notifications": rows,
        "next_cursor": next,
        "unread_count": page.unread_count,
    })))
}

/// `{"ids": [...]}` or `{"all": true}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct MarkReadRequest {
    /// Notification ids (1 to 500) to mark read; ids that are not the caller's change nothing.
    ids: Option<Vec<i64>>,
    /// `true`: every notification of the caller.
    all: Option<bool>,
}

#[tracing::instrument(skip_all, fields(user_id = %caller.user_id))]
#[utoipa::path(
    post, path = "/api/v1/me/notifications/read", tag = "me", security(("bearer" = [])),
    request_body = MarkReadRequest,
    responses((status = 204, description = "marked read"), refused::BadInput, refused::Unauthenticated, refused::BodyTimedOut, (status = 413, description = "the body is too large", body = super::error_schema::ErrorBody), refused::Throttled, refused::Unavailable)
)]
async fn mark_read(
    State(ctx): State<AppState>,
    caller: Identity,
    JsonBody(request): JsonBody<MarkReadRequest>,
) -> Result<StatusCode, ApiError> {
    let ids = match (request.ids, request.all) {
        (None, Some(true)) => None,
        (Some(ids), None) if (1..=MAX_IDS).contains(&ids.len()) => Some(ids),
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidInput,
                format!("send either ids (1 to {MAX_IDS} notification ids) or all: true"),
            ));
        }
    };
    ctx.read_model
        .mark_read(&caller.user_id, ids.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
