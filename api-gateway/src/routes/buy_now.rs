//! `POST /api/v1/items/{id}/buy`: buy it now.
//!
//! An item created with a `buy_now_price` can be bought at that price by anyone but its seller
//! until its first bid, while it runs. Buying closes the auction at once with the buyer as its
//! winner: one `close_item.lua` call (mode `buy`) decides, atomically against every bid script,
//! so of a buy and racing bids exactly one outcome holds. The close is then announced and
//! confirmed exactly like the closer's (an `auction_closed` event with `buy_now: true`).
//!
//! A retry of a purchase that went through (its answer lost) finds the auction closed with the
//! caller as its buy-it-now winner and gets the same answer again, marked `replayed`; an
//! `Idempotency-Key` is accepted and checked for form, but the item's closed state is what makes
//! the retry safe, for any key or none.

use super::bids::idempotency_key;
use super::error_schema as refused;
use super::identity::Bidder;
use super::{AppState, item_id};
use crate::auth::error::Activity;
use crate::closer;
use crate::config::AuthMode;
use crate::error::{ApiError, ErrorCode};
use crate::store::BuyOutcome;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use shared::money::serialize_cents;
use shared::{Event, ItemId, ItemStatus, Timestamp, UserId};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/items/{id}/buy", post(buy))
}

#[derive(Debug, Serialize)]
struct BuyResponse {
    success: bool,
    item_id: ItemId,
    winner_id: UserId,
    #[serde(serialize_with = "serialize_cents")]
    final_price: i64,
    final_price_cents: i64,
    /// The `seq` of the `auction_closed` event.
    seq: u64,
    /// `null` for a replayed answer (the event was announced when the purchase was made).
    event_id: Option<String>,
    /// The answer to an earlier identical purchase.
    replayed: bool,
}

fn unavailable(message: &str) -> ApiError {
    ApiError::new(ErrorCode::BuyNowUnavailable, message)
}

#[tracing::instrument(skip_all, fields(item_id = %raw))]
#[utoipa::path(
    post, path = "/api/v1/items/{id}/buy", tag = "bids", security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "item id"),
        ("Idempotency-Key" = Option<String>, Header, description = "retry safety: a retry of a completed purchase answers it again"),
    ),
    responses((status = 200, description = "bought: the auction is closed with you as winner", body = serde_json::Value), refused::BadInput, refused::Unauthenticated, (status = 403, description = "not allowed for this account (the seller, a suspended bidder)", body = super::error_schema::ErrorBody), (status = 404, description = "no such item", body = super::error_schema::ErrorBody), (status = 409, description = "buy_now_unavailable (a bid exists, or the item has no buy-it-now price), or the auction is not running", body = super::error_schema::ErrorBody), refused::Throttled, refused::Unavailable)
)]
async fn buy(
    State(ctx): State<AppState>,
    Path(raw): Path<String>,
    Bidder(caller): Bidder,
    headers: HeaderMap,
) -> Result<Json<BuyResponse>, ApiError> {
    let id = item_id(raw)?;
    idempotency_key(&headers)?;
    // Buying needs an account even in `--auth-mode open`: there is no body to name one.
    let buyer = match (caller, ctx.config.auth.auth_mode) {
        (Some(caller), _) => caller.user_id,
        (None, AuthMode::Open | AuthMode::Token) => {
            return Err(ApiError::Unauthorized("buying needs an access token"));
        }
    };
    if ctx.suspensions.forbids(&buyer, Activity::Bid) {
        return Err(ApiError::new(
            ErrorCode::AccountSuspended,
            "this account is suspended from bidding",
        ));
    }
    if let Err(wait) = ctx.rate_limit.check(&buyer) {
        return Err(ApiError::RateLimited {
            retry_after_secs: wait.as_secs().max(1),
        });
    }
    let in_flight = ctx.live.begin(&id);
    let outcome = ctx.store.buy_now(&id, &buyer).await;
    let close = match &outcome {
        Ok(BuyOutcome::Bought(close)) => Some(close.clone()),
        _ => None,
    };
    let event = close.clone().map(Event::AuctionClosed);
    in_flight.finish(event.as_ref());
    if let Some(event) = &event {
        ctx.prices.observe_event(event);
    }
    match outcome? {
        BuyOutcome::Bought(close) => {
            closer::confirm(&ctx.store, &close).await;
            let answer = BuyResponse {
                success: true,
                item_id: id,
                winner_id: buyer,
                final_price: close.final_price_cents.unwrap_or_default(),
                final_price_cents: close.final_price_cents.unwrap_or_default(),
                seq: close.seq,
                event_id: Some(close.event_id.to_string()),
                replayed: false,
            };
            Ok(Json(answer))
        }
        BuyOutcome::Gone | BuyOutcome::Ended => replay_or_refuse(&ctx, id, buyer).await,
        BuyOutcome::NotStarted => Err(ApiError::new(
            ErrorCode::AuctionNotStarted,
            "the auction has not started yet",
        )),
        BuyOutcome::NoBuyNow => Err(unavailable("this item has no buy-it-now price")),
        BuyOutcome::HasBids => Err(unavailable(
            "buy it now ended with the first bid; bid instead",
        )),
        BuyOutcome::Seller => Err(ApiError::new(
            ErrorCode::SellerCannotBid,
            "the seller of an auction cannot buy it",
        )),
    }
}

/// The auction is over: the caller's own completed purchase answers again; anything else is a
/// refusal naming why.
async fn replay_or_refuse(
    ctx: &AppState,
    id: ItemId,
    buyer: UserId,
) -> Result<Json<BuyResponse>, ApiError> {
    let Some(state) = ctx.store.get_item(&id).await? else {
        return Err(ApiError::ItemNotFound(id.to_string()));
    };
    let bought_by_caller = state.closed_at.is_some()
        && state.winner_id.as_ref() == Some(&buyer)
        && state.bid_count == 0
        && state.buy_now_cents > 0
        && state.current_cents == state.buy_now_cents;
    if bought_by_caller {
        return Ok(Json(BuyResponse {
            success: true,
            item_id: id,
            winner_id: buyer,
            final_price: state.current_cents,
            final_price_cents: state.current_cents,
            seq: state.seq,
            event_id: None,
            replayed: true,
        }));
    }
    Err(match state.status_at(Timestamp::now()) {
        ItemStatus::Cancelled => {
            ApiError::new(ErrorCode::AuctionCancelled, "the auction was cancelled")
        }
        _ => ApiError::new(ErrorCode::AuctionClosed, "the auction has ended"),
    })
}
