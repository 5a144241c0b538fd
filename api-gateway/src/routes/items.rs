//! Creating, reading and listing auctions.
//!
//! Creating one needs an access token: its account is the auction's seller (`seller_id`, kept
//! in the item and carried by every event of it), unless an admin suspended it from selling
//! (403 `account_suspended`). Reading and listing are public.

use super::identity::Identity;
use super::json_body::JsonBody;
use super::{AppState, item_id};
use crate::auth::error::Activity;
use crate::error::{ApiError, ErrorCode};
use crate::store::{CreatedItem, NewItem};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use shared::item_state::ItemView;
use shared::text::{ItemDescription, ItemName};
use shared::{Cents, IncrementRow, IncrementTable, ItemId, ItemStatus, Timestamp, UserId};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/items", get(list_items).post(create_item))
        .route("/api/v1/items/{id}", get(get_item))
}

/// Longest allowed auction.
const MAX_DURATION_US: i64 = 366 * 24 * 3600 * 1_000_000;
/// Longest anti-sniping window or extension.
const MAX_EXTENSION_SECS: u32 = 24 * 3600;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateItemRequest {
    #[schema(value_type = Option<String>)]
    id: Option<ItemId>,
    name: String,
    #[serde(default)]
    description: String,
    #[schema(value_type = f64, minimum = 0.01, example = 12.5)]
    starting_price: Cents,
    /// A flat increment; without it (and without `increments`) the gateway's
    /// `DEFAULT_INCREMENTS` table applies.
    #[schema(value_type = Option<f64>)]
    min_increment: Option<Cents>,
    /// A tiered increment schedule instead of `min_increment`: rows ascending by `from`,
    /// the first from 0; the increment in force is the last row at or below the price.
    #[schema(value_type = Option<Vec<IncrementRowSchema>>)]
    increments: Option<Vec<IncrementRow>>,
    #[schema(value_type = Option<f64>)]
    reserve_price: Option<Cents>,
    /// Buy it now: anyone but the seller may end the auction at this price
    /// (`POST /api/v1/items/{id}/buy`) until the first bid. At least the starting price and
    /// the reserve.
    #[schema(value_type = Option<f64>)]
    buy_now_price: Option<Cents>,
    #[schema(value_type = Option<String>, format = DateTime)]
    start_time: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    end_time: Timestamp,
    extension_window_secs: Option<u32>,
    extension_secs: Option<u32>,
}

/// One row of an increment schedule, as the OpenAPI document shows it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct IncrementRowSchema {
    /// From this price on (0 for the first row).
    #[schema(minimum = 0, example = 100)]
    from: f64,
    #[schema(minimum = 0.01, example = 2.5)]
    increment: f64,
}

impl CreateItemRequest {
    /// Applies the rules serde cannot express; `seller` creates it.
    fn validate(self, seller: UserId, default: &IncrementTable) -> Result<NewItem, ApiError> {
        let increments = match (self.min_increment, self.increments) {
            (Some(_), Some(_)) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidIncrements,
                    "give min_increment or increments, not both",
                ));
            }
            (Some(flat), None) => IncrementTable::flat(flat),
            (None, Some(rows)) => IncrementTable::new(rows).map_err(|e| {
                ApiError::new(ErrorCode::InvalidIncrements, format!("increments {e}"))
            })?,
            (None, None) => default.clone(),
        };
        let reserve_cents = self.reserve_price.map_or(0, Cents::get);
        if let Some(buy_now) = self.buy_now_price
            && (buy_now.get() < self.starting_price.get() || buy_now.get() < reserve_cents)
        {
            return Err(ApiError::new(
                ErrorCode::InvalidBuyNowPrice,
                "buy_now_price must be at least the starting price and the reserve",
            ));
        }
        let name = ItemName::parse(&self.name)
            .map_err(|e| ApiError::new(ErrorCode::InvalidName, format!("name {e}")))?;
        let description = ItemDescription::parse(&self.description).map_err(|e| {
            ApiError::new(ErrorCode::InvalidDescription, format!("description {e}"))
        })?;
        let start_us = self.start_time.map(Timestamp::micros);
        let end_us = self.end_time.micros();
        let reference = start_us.unwrap_or_else(|| Timestamp::now().micros());
        if end_us - reference > MAX_DURATION_US {
            return Err(ApiError::new(
                ErrorCode::InvalidEndTime,
                "an auction may last at most 366 days",
            ));
        }
        let window = self.extension_window_secs.unwrap_or(0);
        let extension = self.extension_secs.unwrap_or(window);
        if window > MAX_EXTENSION_SECS || extension > MAX_EXTENSION_SECS {
            return Err(ApiError::new(
                ErrorCode::InvalidExtension,
                "extension_window_secs and extension_secs must be at most 86400",
            ));
        }
        if window > 0 && extension == 0 {
            return Err(ApiError::new(
                ErrorCode::InvalidExtension,
                "extension_secs must be positive when extension_window_secs is set",
            ));
        }
        Ok(NewItem {
            id: self.id.unwrap_or_else(|| {
                // "item-" + 32 hex digits: always a valid id.
                ItemId::parse(format!("item-{}", uuid::Uuid::now_v7().simple()))
                    .expect("generated ids match the id rules")
            }),
            name: name.into_string(),
            description: description.into_string(),
            starting_cents: self.starting_price.get(),
            increments,
            reserve_cents,
            buy_now_cents: self.buy_now_price.map_or(0, Cents::get),
            start_us,
            end_us,
            extension_window_us: i64::from(window) * 1_000_000,
            extension_us: i64::from(extension) * 1_000_000,
            seller_id: Some(seller),
        })
    }
}

#[tracing::instrument(skip_all, fields(item_id = tracing::field::Empty))]
#[utoipa::path(
    post, path = "/api/v1/items", tag = "items", security(("bearer" = [])),
    request_body = CreateItemRequest,
    responses((status = 201, description = "the item created", body = serde_json::Value), (status = 400, description = "invalid input (see `error`)", body = super::openapi::ErrorBody), (status = 401, description = "no or invalid bearer token", body = super::openapi::ErrorBody), (status = 403, description = "not allowed for this account", body = super::openapi::ErrorBody), (status = 409, description = "conflicts with the state of the item or account", body = super::openapi::ErrorBody), (status = 413, description = "request body too large", body = super::openapi::ErrorBody), (status = 429, description = "too many requests; see Retry-After", body = super::openapi::ErrorBody), (status = 503, description = "a dependency is unavailable; retry", body = super::openapi::ErrorBody))
)]
async fn create_item(
    State(ctx): State<AppState>,
    seller: Identity,
    JsonBody(request): JsonBody<CreateItemRequest>,
) -> Result<impl IntoResponse, ApiError> {
    if ctx.suspensions.forbids(&seller.user_id, Activity::Sell) {
        return Err(ApiError::new(
            ErrorCode::AccountSuspended,
            "this account is suspended from selling",
        ));
    }
    let item = request.validate(seller.user_id, &ctx.config.default_increments)?;
    tracing::Span::current().record("item_id", tracing::field::display(&item.id));
    match ctx.store.create_item(&item).await? {
        CreatedItem::Created => {}
        CreatedItem::Exists => {
            return Err(ApiError::new(
                ErrorCode::ItemExists,
                format!("item {} already exists", item.id),
            ));
        }
        CreatedItem::EndsInThePast => {
            return Err(ApiError::new(
                ErrorCode::InvalidEndTime,
                "end_time must be in the future and after start_time",
            ));
        }
    }
    let view = read_view(&ctx, &item.id).await?;
    let location = format!("/api/v1/items/{}", item.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view),
    ))
}

async fn read_view(ctx: &AppState, id: &ItemId) -> Result<ItemView, ApiError> {
    let state = ctx
        .store
        .get_item(id)
        .await?
        .ok_or_else(|| ApiError::ItemNotFound(id.to_string()))?;
    Ok(state.view(Timestamp::now()))
}

#[tracing::instrument(skip_all, fields(item_id = %raw))]
#[utoipa::path(
    get, path = "/api/v1/items/{id}", tag = "items",
    params(("id" = String, Path, description = "item id")),
    responses((status = 200, description = "the item", body = serde_json::Value), (status = 400, description = "invalid input (see `error`)", body = super::openapi::ErrorBody), (status = 404, description = "no such item or account", body = super::openapi::ErrorBody), (status = 429, description = "too many requests; see Retry-After", body = super::openapi::ErrorBody), (status = 503, description = "a dependency is unavailable; retry", body = super::openapi::ErrorBody))
)]
async fn get_item(
    State(ctx): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<ItemView>, ApiError> {
    let id = item_id(raw)?;
    read_view(&ctx, &id).await.map(Json)
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    limit: Option<usize>,
}

#[tracing::instrument(skip_all)]
#[utoipa::path(
    get, path = "/api/v1/items", tag = "items",
    params(
        ("status" = Option<String>, Query, description = "scheduled, active, closed or cancelled"),
        ("limit" = Option<u32>, Query, description = "1 to 1000 (default 100)"),
    ),
    responses((status = 200, description = "items, soonest-ending first", body = serde_json::Value), (status = 400, description = "invalid input (see `error`)", body = super::openapi::ErrorBody), (status = 429, description = "too many requests; see Retry-After", body = super::openapi::ErrorBody), (status = 503, description = "a dependency is unavailable; retry", body = super::openapi::ErrorBody))
)]
async fn list_items(
    State(ctx): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    let wanted = match query.status.as_deref() {
        None | Some("") => None,
        Some("scheduled") => Some(ItemStatus::Scheduled),
        Some("active") => Some(ItemStatus::Active),
        Some("closed") => Some(ItemStatus::Closed),
        Some("cancelled") => Some(ItemStatus::Cancelled),
        Some(other) => {
            return Err(ApiError::new(
                ErrorCode::InvalidStatus,
                format!("status must be scheduled, active, closed or cancelled, not {other:?}"),
            ));
        }
    };
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let now = Timestamp::now();
    let mut items: Vec<ItemView> = ctx
        .store
        .list_items()
        .await?
        .into_iter()
        .map(|state| state.view(now))
        .filter(|view| wanted.is_none_or(|s| view.status == s))
        .collect();
    // Soonest-ending first: what a bidder browsing live auctions wants to see.
    items.sort_by(|a, b| a.end_time.cmp(&b.end_time).then_with(|| a.id.cmp(&b.id)));
    let total = items.len();
    items.truncate(limit);
    Ok(Json(
        json!({ "items": items, "count": items.len(), "total": total }),
    ))
}
