//! Changes to an auction besides bids: close now, cancel with a reason, extend the end time,
//! relist a closed or cancelled item as a new round. Each is one atomic script that also writes
//! the event to the outbox, and the event goes out live like a bid, so viewers and the archive
//! see every change.
//!
//! Who may: an admin (a token with the `admin` role, [`Admin`]) does all four on any auction;
//! without a token they are 401, with another account's 403 `forbidden`, in `--auth-mode open`
//! too. The seller of an auction may also cancel it, but only before its first bid (after it,
//! 409 `auction_has_bids`: bidders count on a running auction, so only an admin may then);
//! anyone else's cancellation is 403. The seller's checks run inside the close script, so a
//! bid racing the cancellation cannot slip between the check and the cancel.

use super::error_schema as refused;
use super::identity::{Admin, Identity};
use super::json_body::JsonBody;
use super::round_terms::RoundTermsRequest;
use super::{AppState, item_id};
use crate::closer;
use crate::error::{ApiError, ErrorCode};
use crate::store::{CloseMode, CloseOutcome, ExtendOutcome, RelistOutcome};
use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use shared::text::Reason;
use shared::{Event, ItemId, Timestamp};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/items/{id}/close", post(close_now))
        .route("/api/v1/items/{id}/cancel", post(cancel))
        .route("/api/v1/items/{id}/extend", post(extend))
        .route("/api/v1/items/{id}/relist", post(relist))
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

/// Ends `raw` as `mode` says; `seller` is the seller cancelling their own auction (`None`
/// for an admin).
async fn end(
    ctx: AppState,
    raw: String,
    mode: CloseMode,
    reason: &str,
    seller: Option<&shared::UserId>,
) -> Result<Json<Announced>, ApiError> {
    let id = item_id(raw)?;
    let outcome = match seller {
        Some(seller) => ctx.store.cancel_as_seller(&id, seller, reason).await?,
        None => ctx.store.close_item(&id, mode, reason).await?,
    };
    match outcome {
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
        CloseOutcome::NotSeller => Err(ApiError::new(
            ErrorCode::Forbidden,
            "only the auction's seller or an admin may cancel it",
        )),
        CloseOutcome::HasBids => Err(ApiError::new(
            ErrorCode::AuctionHasBids,
            "the auction has bids; only an admin can cancel it now",
        )),
        CloseOutcome::NotDue | CloseOutcome::Replayed(_) => Err(ApiError::Internal(
            anyhow::anyhow!("close script answered not_due or replayed to an admin close"),
        )),
    }
}

#[tracing::instrument(skip_all, fields(item_id = %raw))]
#[utoipa::path(
    post, path = "/api/v1/items/{id}/close", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "item id")),
    responses((status = 200, description = "the event announced", body = serde_json::Value), refused::BadInput, refused::Unauthenticated, refused::Forbidden, refused::NotFound, refused::Conflict, refused::Throttled, refused::Unavailable)
)]
async fn close_now(
    State(ctx): State<AppState>,
    _admin: Admin,
    Path(raw): Path<String>,
) -> Result<Json<Announced>, ApiError> {
    end(ctx, raw, CloseMode::Now, "", None).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CancelRequest {
    reason: String,
}

#[tracing::instrument(skip_all, fields(item_id = %raw))]
#[utoipa::path(
    post, path = "/api/v1/items/{id}/cancel", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "item id")),
    request_body = CancelRequest,
    responses((status = 200, description = "the event announced", body = serde_json::Value), refused::BadInput, refused::Unauthenticated, refused::Forbidden, refused::NotFound, refused::Conflict, refused::BodyTimedOut, refused::TooLarge, refused::Throttled, refused::Unavailable)
)]
async fn cancel(
    State(ctx): State<AppState>,
    caller: Identity,
    Path(raw): Path<String>,
    JsonBody(request): JsonBody<CancelRequest>,
) -> Result<Json<Announced>, ApiError> {
    let reason = Reason::parse(&request.reason)
        .map_err(|e| ApiError::new(ErrorCode::InvalidReason, format!("reason {e}")))?;
    let seller = (!caller.is_admin()).then_some(&caller.user_id);
    end(ctx, raw, CloseMode::Cancel, reason.as_str(), seller).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ExtendRequest {
    #[schema(value_type = String, format = DateTime)]
    end_time: Timestamp,
}

#[tracing::instrument(skip_all, fields(item_id = %raw))]
#[utoipa::path(
    post, path = "/api/v1/items/{id}/extend", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "item id")),
    request_body = ExtendRequest,
    responses((status = 200, description = "the event announced", body = serde_json::Value), refused::BadInput, refused::Unauthenticated, refused::Forbidden, refused::NotFound, refused::Conflict, refused::BodyTimedOut, refused::TooLarge, refused::Throttled, refused::Unavailable)
)]
async fn extend(
    State(ctx): State<AppState>,
    _admin: Admin,
    Path(raw): Path<String>,
    JsonBody(request): JsonBody<ExtendRequest>,
) -> Result<Json<Announced>, ApiError> {
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

#[tracing::instrument(skip_all, fields(item_id = %raw))]
#[utoipa::path(
    post, path = "/api/v1/items/{id}/relist", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "item id")),
    request_body = RoundTermsRequest,
    responses((status = 200, description = "the event announced", body = serde_json::Value), refused::BadInput, refused::Unauthenticated, refused::Forbidden, refused::NotFound, refused::Conflict, refused::BodyTimedOut, refused::TooLarge, refused::Throttled, refused::Unavailable)
)]
async fn relist(
    State(ctx): State<AppState>,
    _admin: Admin,
    Path(raw): Path<String>,
    JsonBody(request): JsonBody<RoundTermsRequest>,
) -> Result<Json<Announced>, ApiError> {
    let id = item_id(raw)?;
    let terms = request.validate(&ctx.config.default_increments)?;
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
