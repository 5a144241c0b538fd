//! Admin actions on an auction: close now, cancel with a reason, extend the end time, relist a
//! closed or cancelled item as a new round. Each is one atomic script that also writes the
//! event to the outbox, and the event goes out live like a bid, so viewers and the archive see
//! every change. Requests need `Authorization: Bearer <ADMIN_TOKEN>`.

use super::json_body::JsonBody;
use super::{AppState, item_id};
use crate::closer;
use crate::error::{ApiError, ErrorCode};
use crate::store::{CloseMode, CloseOutcome, ExtendOutcome, Relist, RelistOutcome};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use shared::text::Reason;
use shared::{Cents, Event, ItemId, Timestamp};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/items/{id}/close", post(close_now))
        .route("/api/v1/items/{id}/cancel", post(cancel))
        .route("/api/v1/items/{id}/extend", post(extend))
        .route("/api/v1/items/{id}/relist", post(relist))
}

/// Checks the bearer token in constant time.
fn authorize(ctx: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let expected = ctx.config.admin_token.as_bytes();
    if expected.is_empty() {
        return Err(ApiError::Unauthorized(
            "admin endpoints are disabled (no ADMIN_TOKEN)",
        ));
    }
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .as_bytes();
    let same = given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "a valid admin bearer token is required",
        ))
    }
}

/// The answer to an admin action: the event it produced, in its wire form.
#[derive(Debug, Serialize)]
struct Announced {
    item_id: ItemId,
    event: Event,
}

/// Publishes an admin event live (in `seq` order with bids), teaches the price cache, and
/// answers with the event.
fn announce(ctx: &AppState, item: &ItemId, event: Event) -> Json<Announced> {
    ctx.prices.observe_event(&event);
    ctx.live.begin(item).finish(Some(&event));
    Json(Announced {
        item_id: item.clone(),
        event,
    })
}

fn not_active(message: &str) -> ApiError {
    ApiError::new(ErrorCode::AuctionNotActive, message)
}

async fn end(
    ctx: AppState,
    raw: String,
    mode: CloseMode,
    reason: &str,
) -> Result<Json<Announced>, ApiError> {
    let id = item_id(raw)?;
    match ctx.store.close_item(&id, mode, reason).await? {
        CloseOutcome::Closed(close) => {
            let answer = announce(&ctx, &id, Event::AuctionClosed(close.clone()));
            closer::confirm(&ctx.store, &close).await;
            Ok(answer)
        }
        CloseOutcome::Gone => match ctx.store.get_item(&id).await? {
            None => Err(ApiError::ItemNotFound(id.to_string())),
            Some(_) => Err(not_active("the auction is already closed or cancelled")),
        },
        CloseOutcome::Ended => Err(not_active("the auction has ended; its result stands")),
        CloseOutcome::NotDue | CloseOutcome::Replayed(_) => Err(ApiError::Internal(
            anyhow::anyhow!("close script answered not_due or replayed to an admin close"),
        )),
    }
}

#[tracing::instrument(skip_all, fields(item_id = %raw))]
async fn close_now(
    State(ctx): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<Json<Announced>, ApiError> {
    authorize(&ctx, &headers)?;
    end(ctx, raw, CloseMode::Now, "").await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelRequest {
    reason: String,
}

#[tracing::instrument(skip_all, fields(item_id = %raw))]
async fn cancel(
    State(ctx): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    JsonBody(request): JsonBody<CancelRequest>,
) -> Result<Json<Announced>, ApiError> {
    authorize(&ctx, &headers)?;
    let reason = Reason::parse(&request.reason)
        .map_err(|e| ApiError::new(ErrorCode::InvalidReason, format!("reason {e}")))?;
    end(ctx, raw, CloseMode::Cancel, reason.as_str()).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendRequest {
    end_time: Timestamp,
}

#[tracing::instrument(skip_all, fields(item_id = %raw))]
async fn extend(
    State(ctx): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    JsonBody(request): JsonBody<ExtendRequest>,
) -> Result<Json<Announced>, ApiError> {
    authorize(&ctx, &headers)?;
    let id = item_id(raw)?;
    match ctx.store.extend_item(&id, request.end_time).await? {
        ExtendOutcome::Extended(extended) => {
            Ok(announce(&ctx, &id, Event::AuctionExtended(extended)))
        }
        ExtendOutcome::NotFound => Err(ApiError::ItemNotFound(id.to_string())),
        ExtendOutcome::NotActive => Err(not_active("only a running auction can be extended")),
        ExtendOutcome::NotLater => Err(ApiError::new(
            ErrorCode::InvalidEndTime,
            "end_time must be later than the current end time",
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RelistRequest {
    starting_price: Cents,
    min_increment: Option<Cents>,
    reserve_price: Option<Cents>,
    start_time: Option<Timestamp>,
    end_time: Timestamp,
    extension_window_secs: Option<u32>,
    extension_secs: Option<u32>,
}

#[tracing::instrument(skip_all, fields(item_id = %raw))]
async fn relist(
    State(ctx): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    JsonBody(request): JsonBody<RelistRequest>,
) -> Result<Json<Announced>, ApiError> {
    authorize(&ctx, &headers)?;
    let id = item_id(raw)?;
    let window = request.extension_window_secs.unwrap_or(0).min(86_400);
    let extension = request.extension_secs.unwrap_or(window).min(86_400);
    let terms = Relist {
        start_us: request.start_time.map(Timestamp::micros),
        end_us: request.end_time.micros(),
        starting_cents: request.starting_price.get(),
        min_increment_cents: request.min_increment.map_or(100, Cents::get),
        reserve_cents: request.reserve_price.map_or(0, Cents::get),
        extension_window_us: i64::from(window) * 1_000_000,
        extension_us: i64::from(extension) * 1_000_000,
    };
    match ctx.store.relist_item(&id, &terms).await? {
        RelistOutcome::Relisted(relisted) => {
            Ok(announce(&ctx, &id, Event::AuctionRelisted(relisted)))
        }
        RelistOutcome::NotFound => Err(ApiError::ItemNotFound(id.to_string())),
        RelistOutcome::Active => Err(ApiError::new(
            ErrorCode::AuctionActive,
            "the current round is still running; close or cancel it first",
        )),
        RelistOutcome::EndsInThePast => Err(ApiError::new(
            ErrorCode::InvalidEndTime,
            "end_time must be in the future and after start_time",
        )),
    }
}
