//! `POST /api/v1/items/{id}/bid`: the hot path.
//!
//! A bid that is too low is a normal outcome (200, `success: false`, `code: bid_too_low`), not
//! an error: the bid was processed. The response keeps the original Go system's fields
//! (`success, message, current_bid, your_bid, is_highest, event_id`).

use super::json_body::JsonBody;
use super::{AppState, item_id};
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BidRequest {
    user_id: UserId,
    amount: Cents,
}

#[derive(Debug, Serialize)]
struct BidResponse {
    success: bool,
    message: &'static str,
    /// The outcome: `accepted` or `bid_too_low`.
    code: &'static str,
    #[serde(serialize_with = "serialize_cents")]
    current_bid: i64,
    current_bid_cents: i64,
    #[serde(serialize_with = "serialize_cents")]
    your_bid: i64,
    your_bid_cents: i64,
    is_highest: bool,
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

fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
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
async fn place_bid(
    State(ctx): State<AppState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<BidRequest>,
) -> Result<Json<BidResponse>, ApiError> {
    let started = Instant::now();
    let bid = PlaceBid {
        item_id: item_id(raw_id)?,
        user_id: request.user_id,
        amount_cents: request.amount.get(),
        idempotency_key: idempotency_key(&headers)?,
    };
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
    {
        ctx.metrics.prefilter_rejections.inc();
        ctx.metrics.bid(BidOutcome::TooLow.as_str());
        ctx.metrics
            .bid_duration
            .observe(started.elapsed().as_secs_f64());
        return Ok(Json(too_low_from_cache(&bid, known)));
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
    let event = reply.event.take().map(Event::BidPlaced);
    // A replayed answer was published when it was first given.
    in_flight.finish(event.as_ref().filter(|_| !reply.replayed));
    if reply.seq > 0 {
        ctx.prices.observe(
            &bid.item_id,
            KnownPrice {
                current_cents: reply.current_cents,
                seq: reply.seq,
                end_us: reply.end_us,
            },
        );
    }
    if let Some(event) = &event {
        tracing::Span::current().record("event_id", tracing::field::display(event.event_id()));
    }
    ctx.metrics.bid(reply.outcome.as_str());
    ctx.metrics
        .bid_duration
        .observe(started.elapsed().as_secs_f64());
    respond(&bid, &reply, event.as_ref())
}

fn respond(
    bid: &PlaceBid,
    reply: &BidReply,
    event: Option<&Event>,
) -> Result<Json<BidResponse>, ApiError> {
    let success = match reply.outcome {
        BidOutcome::Accepted => true,
        BidOutcome::TooLow => false,
        BidOutcome::NotFound => return Err(ApiError::ItemNotFound(bid.item_id.to_string())),
        BidOutcome::NotStarted => {
            return Err(ApiError::new(
                ErrorCode::AuctionNotStarted,
                "the auction has not started yet",
            ));
        }
        BidOutcome::Closed => {
            return Err(ApiError::new(
                ErrorCode::AuctionClosed,
                "the auction has ended",
            ));
        }
        BidOutcome::Cancelled => {
            return Err(ApiError::new(
                ErrorCode::AuctionCancelled,
                "the auction was cancelled",
            ));
        }
        BidOutcome::IdempotencyConflict => {
            return Err(ApiError::new(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was already used for a different bid",
            ));
        }
    };
    let placed = match event {
        Some(Event::BidPlaced(placed)) => Some(placed),
        _ => None,
    };
    Ok(Json(BidResponse {
        success,
        message: if success { ACCEPTED } else { TOO_LOW },
        code: reply.outcome.as_str(),
        current_bid: reply.current_cents,
        current_bid_cents: reply.current_cents,
        your_bid: bid.amount_cents,
        your_bid_cents: bid.amount_cents,
        is_highest: reply.highest_bidder.as_ref() == Some(&bid.user_id),
        event_id: placed.map(|e| e.event_id.to_string()),
        seq: reply.seq,
        minimum_bid_cents: Some(reply.minimum_cents),
        end_time: Some(Timestamp::from_micros(reply.end_us)),
        extended: placed.is_some_and(|e| e.extended),
        replayed: reply.replayed,
    }))
}

fn too_low_from_cache(bid: &PlaceBid, known: KnownPrice) -> BidResponse {
    BidResponse {
        success: false,
        message: TOO_LOW,
        code: BidOutcome::TooLow.as_str(),
        current_bid: known.current_cents,
        current_bid_cents: known.current_cents,
        your_bid: bid.amount_cents,
        your_bid_cents: bid.amount_cents,
        is_highest: false,
        event_id: None,
        seq: known.seq,
        minimum_bid_cents: None,
        end_time: Some(Timestamp::from_micros(known.end_us)),
        extended: false,
        replayed: false,
    }
}
