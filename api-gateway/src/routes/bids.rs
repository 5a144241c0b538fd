//! `POST /api/v1/items/{id}/bid`: the hot path.
//!
//! A bid that is too low is a normal outcome (200, `success: false`, `code: bid_too_low`), not
//! an error: the bid was processed. The response keeps the original Go system's fields
//! (`success, message, current_bid, your_bid, is_highest, event_id`).
//!
//! Proxy bidding: a bid may carry `max_amount` (at least `amount`), and the script bids for
//! that bidder only as much as needed to lead, up to it. A valid bid that a standing maximum
//! answered at once is `success: true, is_highest: false, code: outbid_by_proxy`; the leader
//! raising its own maximum is `code: max_raised` (no price change). The maximum is echoed to
//! its bidder only, never in any event, view or history.
//!
//! The bidder is the access token's account ([`Bidder`]): no token is 401 before the body is
//! read, and a body `user_id` naming someone else is 403 `user_id_mismatch` (the body may omit
//! it, or repeat the caller's own). Only `--auth-mode open` takes a bid without a token, as the
//! original system did, and then the body's `user_id` is the bidder. An account an admin
//! suspended from bidding is 403 `account_suspended` (from this gateway's in-memory set, never a
//! query per bid); the item's seller is 403 `seller_cannot_bid` (decided inside the script).
//! Every refusal happens before anything is written.

use super::error_schema as refused;
use super::identity::{Bidder, Identity};
use super::json_body::JsonBody;
use super::{AppState, item_id};
use crate::auth::error::Activity;
use crate::config::AuthMode;
use crate::error::{ApiError, ErrorCode};
use crate::price_cache::KnownPrice;
use crate::store::{BidOutcome, BidReply, PlaceBid, StoreError};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use shared::money::serialize_cents;
use shared::{Cents, Event, IdempotencyKey, Timestamp, UserId};
use std::time::Instant;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/items/{id}/bid", post(place_bid))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct BidRequest {
    /// Optional with a token (it must then be the token's account); the bidder in
    /// `--auth-mode open` without one.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    user_id: Option<UserId>,
    /// The bid placed now: at least the item's `next_minimum_bid`.
    #[schema(value_type = f64, minimum = 0.01, example = 12.5)]
    amount: Cents,
    /// The most the system may bid for you (proxy bidding), at least `amount`; it bids only
    /// as much as needed to lead. Shown to nobody else.
    #[serde(default)]
    #[schema(value_type = Option<f64>, minimum = 0.01, example = 40)]
    max_amount: Option<Cents>,
}

/// Who places the bid: the token's account; in open mode without a token, the body's user.
///
/// # Errors
/// 403 `user_id_mismatch` when the body names another account than the token's; 400
/// `invalid_input` for an open-mode bid with neither.
fn bidder(
    mode: AuthMode,
    caller: Option<Identity>,
    named: Option<UserId>,
) -> Result<UserId, ApiError> {
    match (caller, named) {
        (Some(caller), Some(named)) if named != caller.user_id => Err(ApiError::new(
            ErrorCode::UserIdMismatch,
            format!(
                "the body's user_id {named} is not the account of the access token; \
                 leave user_id out (the token says who bids) or send your own"
            ),
        )),
        (Some(caller), _) => Ok(caller.user_id),
        (None, named) => match (mode, named) {
            (AuthMode::Open, Some(named)) => Ok(named),
            (AuthMode::Open, None) => Err(ApiError::new(
                ErrorCode::InvalidInput,
                "user_id is required for a bid without an access token",
            )),
            // `Bidder` refuses a token-less bid in token mode before this runs.
            (AuthMode::Token, _) => Err(ApiError::Unauthorized("bidding needs an access token")),
        },
    }
}

#[derive(Debug, Serialize)]
struct BidResponse {
    success: bool,
    message: &'static str,
    /// The outcome: `accepted`, `outbid_by_proxy`, `max_raised`, `max_not_raised` or
    /// `bid_too_low`.
    code: &'static str,
    #[serde(serialize_with = "serialize_cents")]
    current_bid: i64,
    current_bid_cents: i64,
    #[serde(serialize_with = "serialize_cents")]
    your_bid: i64,
    your_bid_cents: i64,
    is_highest: bool,
    /// Your maximum, echoed to you only (absent for a plain bid).
    #[serde(
        serialize_with = "shared::money::serialize_opt_cents",
        skip_serializing_if = "Option::is_none"
    )]
    max_amount: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_amount_cents: Option<i64>,
    /// The event of your bid (the first, when a standing maximum answered it).
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<String>,
    seq: u64,
    /// Smallest amount the next bid may have (absent when answered from the local cache).
    #[serde(skip_serializing_if = "Option::is_none")]
    minimum_bid_cents: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<Timestamp>,
    /// This bid moved the end time (anti-sniping).
    extended: bool,
    /// The stored answer of an earlier request with the same `Idempotency-Key`.
    replayed: bool,
}

const ACCEPTED: &str = "bid accepted";
const TOO_LOW: &str = "bid is below the minimum next bid";
const OUTBID_BY_PROXY: &str = "bid accepted, and outbid at once by another bidder's maximum";
const MAX_RAISED: &str = "your maximum is raised; you still lead";
const MAX_NOT_RAISED: &str = "your maximum is already at least this";
/// The messages of the refusals (error answers) too long for their `respond` arm.
const NO_PROXY: &str = "this gateway runs the optimistic bid strategy, which does not implement \
     proxy bidding: bid without max_amount (or on an item without a standing maximum)";
const NOT_STARTED: &str = "the auction has not started yet";
const KEY_REUSED: &str = "this Idempotency-Key was already used for a different bid";
const SELLER_BID: &str = "the seller of an auction cannot bid on it";

/// The `Idempotency-Key` header, validated.
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidIdempotencyKey,
            "Idempotency-Key must be ASCII",
        )
    })?;
    IdempotencyKey::parse(text).map(Some).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidIdempotencyKey,
            format!("Idempotency-Key {e}"),
        )
    })
}

#[tracing::instrument(
    name = "place_bid",
    level = "debug",
    skip_all,
    fields(item_id = %raw_id, event_id = tracing::field::Empty)
)]
#[utoipa::path(
    post, path = "/api/v1/items/{id}/bid", tag = "bids", security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "item id"),
        ("Idempotency-Key" = Option<String>, Header, description = "retry safety: the same key returns the first outcome"),
    ),
    request_body = BidRequest,
    responses((status = 200, description = "the outcome (accepted, or refused as too low)", body = serde_json::Value), refused::BadInput, refused::Unauthenticated, refused::Forbidden, refused::NotFound, refused::Conflict, refused::BodyTimedOut, refused::TooLarge, refused::Throttled, refused::Unavailable)
)]
async fn place_bid(
    State(ctx): State<AppState>,
    Path(raw_id): Path<String>,
    Bidder(caller): Bidder,
    headers: HeaderMap,
    JsonBody(request): JsonBody<BidRequest>,
) -> Result<Json<BidResponse>, ApiError> {
    let started = Instant::now();
    let max_cents = request.max_amount.map(Cents::get);
    if max_cents.is_some_and(|max| max < request.amount.get()) {
        return Err(ApiError::new(
            ErrorCode::InvalidMaxAmount,
            "max_amount must be at least amount",
        ));
    }
    let bid = PlaceBid {
        item_id: item_id(raw_id)?,
        user_id: bidder(ctx.config.auth.auth_mode, caller, request.user_id)?,
        amount_cents: request.amount.get(),
        max_cents,
        idempotency_key: idempotency_key(&headers)?,
    };
    if ctx.suspensions.forbids(&bid.user_id, Activity::Bid) {
        ctx.metrics.bid(ErrorCode::AccountSuspended.as_str());
        return Err(ApiError::new(
            ErrorCode::AccountSuspended,
            "this account is suspended from bidding",
        ));
    }
    if let Err(wait) = ctx.rate_limit.check(&bid.user_id) {
        ctx.metrics.bid(ErrorCode::RateLimited.as_str());
        return Err(ApiError::RateLimited {
            retry_after_secs: wait.as_secs().max(1),
        });
    }
    // A retry with an Idempotency-Key must get the first answer, which only Redis has.
    if bid.idempotency_key.is_none()
        && ctx.config.price_prefilter
        && let Some(known) = ctx
            .prices
            .rejects(&bid.item_id, bid.amount_cents, Timestamp::now())
            // The seller's own bid goes to the script, which answers `seller_cannot_bid`.
            .filter(|known| known.seller_id.as_ref() != Some(&bid.user_id))
    {
        ctx.metrics.prefilter_rejections.inc();
        ctx.metrics.bid(BidOutcome::TooLow.as_str());
        ctx.metrics
            .bid_duration
            .observe(started.elapsed().as_secs_f64());
        return Ok(Json(too_low_from_cache(&bid, &known)));
    }

    let in_flight = ctx.live.begin(&bid.item_id);
    let mut reply = ctx
        .store
        .place_bid(&bid, ctx.config.idempotency_ttl())
        .await
        .map_err(|e| match e {
            StoreError::TimedOut => ApiError::OutcomeUnknown("redis"),
            other => other.into(),
        })?;
    let events: Vec<Event> = std::mem::take(&mut reply.events)
        .into_iter()
        .map(Event::BidPlaced)
        .collect();
    // A replayed answer was published when it was first given.
    in_flight.finish(events.iter().filter(|_| !reply.replayed));
    if reply.seq > 0 {
        ctx.prices.observe(
            &bid.item_id,
            KnownPrice {
                current_cents: reply.current_cents,
                seq: reply.seq,
                end_us: reply.end_us,
                seller_id: reply.seller_id.clone(),
            },
        );
    }
    if let Some(event) = events.first() {
        tracing::Span::current().record("event_id", tracing::field::display(event.event_id()));
    }
    ctx.metrics.bid(reply.outcome.as_str());
    ctx.metrics
        .bid_duration
        .observe(started.elapsed().as_secs_f64());
    respond(&bid, &reply, &events)
}

fn respond(
    bid: &PlaceBid,
    reply: &BidReply,
    events: &[Event],
) -> Result<Json<BidResponse>, ApiError> {
    let verdict = match reply.outcome {
        BidOutcome::Accepted => Ok((true, ACCEPTED)),
        BidOutcome::OutbidByProxy => Ok((true, OUTBID_BY_PROXY)),
        BidOutcome::MaxRaised => Ok((true, MAX_RAISED)),
        BidOutcome::MaxNotRaised => Ok((false, MAX_NOT_RAISED)),
        BidOutcome::TooLow => Ok((false, TOO_LOW)),
        BidOutcome::NotFound => return Err(ApiError::ItemNotFound(bid.item_id.to_string())),
        BidOutcome::ProxyUnsupported => Err((ErrorCode::ProxyBiddingUnsupported, NO_PROXY)),
        BidOutcome::NotStarted => Err((ErrorCode::AuctionNotStarted, NOT_STARTED)),
        BidOutcome::Closed => Err((ErrorCode::AuctionClosed, "the auction has ended")),
        BidOutcome::Cancelled => Err((ErrorCode::AuctionCancelled, "the auction was cancelled")),
        BidOutcome::IdempotencyConflict => Err((ErrorCode::IdempotencyKeyReused, KEY_REUSED)),
        BidOutcome::SellerCannotBid => Err((ErrorCode::SellerCannotBid, SELLER_BID)),
    };
    let (success, message) = verdict.map_err(|(code, message)| ApiError::new(code, message))?;
    // The bidder's own bid is the first event (an automatic answer follows it).
    let placed = match events.first() {
        Some(Event::BidPlaced(placed)) => Some(placed),
        _ => None,
    };
    Ok(Json(BidResponse {
        success,
        message,
        code: reply.outcome.as_str(),
        current_bid: reply.current_cents,
        current_bid_cents: reply.current_cents,
        your_bid: bid.amount_cents,
        your_bid_cents: bid.amount_cents,
        is_highest: reply.highest_bidder.as_ref() == Some(&bid.user_id),
        max_amount: bid.max_cents,
        max_amount_cents: bid.max_cents,
        event_id: placed.map(|e| e.event_id.to_string()),
        seq: reply.seq,
        minimum_bid_cents: Some(reply.minimum_cents),
        end_time: Some(Timestamp::from_micros(reply.end_us)),
        extended: placed.is_some_and(|e| e.extended),
        replayed: reply.replayed,
    }))
}

fn too_low_from_cache(bid: &PlaceBid, known: &KnownPrice) -> BidResponse {
    BidResponse {
        success: false,
        message: TOO_LOW,
        code: BidOutcome::TooLow.as_str(),
        current_bid: known.current_cents,
        current_bid_cents: known.current_cents,
        your_bid: bid.amount_cents,
        your_bid_cents: bid.amount_cents,
        is_highest: false,
        max_amount: bid.max_cents,
        max_amount_cents: bid.max_cents,
        event_id: None,
        seq: known.seq,
        minimum_bid_cents: None,
        end_time: Some(Timestamp::from_micros(known.end_us)),
        extended: false,
        replayed: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn id(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    fn caller(name: &str) -> Option<Identity> {
        Some(Identity {
            user_id: id(name),
            roles: vec![Role::User],
        })
    }

    #[test]
    fn the_token_decides_the_bidder_and_the_body_may_only_repeat_it() {
        for mode in [AuthMode::Token, AuthMode::Open] {
            assert_eq!(bidder(mode, caller("ada"), None).ok(), Some(id("ada")));
            assert_eq!(
                bidder(mode, caller("ada"), Some(id("ada"))).ok(),
                Some(id("ada"))
            );
            let mismatch = bidder(mode, caller("ada"), Some(id("mallory"))).unwrap_err();
            assert_eq!(mismatch.code(), ErrorCode::UserIdMismatch);
        }
    }

    #[test]
    fn only_open_mode_takes_the_body_user_without_a_token() {
        assert_eq!(
            bidder(AuthMode::Open, None, Some(id("alice"))).ok(),
            Some(id("alice"))
        );
        let missing = bidder(AuthMode::Open, None, None).unwrap_err();
        assert_eq!(missing.code(), ErrorCode::InvalidInput);
        for named in [None, Some(id("mallory"))] {
            let anonymous = bidder(AuthMode::Token, None, named).unwrap_err();
            assert_eq!(anonymous.code(), ErrorCode::Unauthorized);
        }
    }
}
